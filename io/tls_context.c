/* tls_context.c: see tls_context.h. */
#include "tls_context.h"

#include <stdio.h>

#include <openssl/err.h>

static void describe_error(const char *what, char *err, size_t err_len)
{
    unsigned long e = ERR_get_error();
    char reason[256];
    ERR_error_string_n(e, reason, sizeof reason);
    snprintf(err, err_len, "%s: %s", what, e ? reason : "unknown error");
    ERR_clear_error();
}

SSL_CTX *tls_server_context_new(const char *cert_file, const char *key_file,
                                char *err, size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        describe_error("SSL_CTX_new", err, err_len);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* POP3 sessions are short; tickets would only add state to rotate. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        describe_error(cert_file, err, err_len);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        describe_error(key_file, err, err_len);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *tls_client_context_new(bool verify, const char *ca_file, char *err, size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        describe_error("SSL_CTX_new", err, err_len);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (verify) {
        int ok = (ca_file && *ca_file) ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                       : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            describe_error(ca_file && *ca_file ? ca_file : "system CA store", err, err_len);
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}
