/* tls_context: OpenSSL contexts for the POP3 listeners (server side) and the
 * upstream IMAP connections (client side). Both enforce TLS 1.2 or newer.
 * Contexts are reference counted by OpenSSL: a config reload builds new ones
 * and frees the old with SSL_CTX_free while live sessions keep theirs. */
#ifndef POPGATE_TLS_CONTEXT_H
#define POPGATE_TLS_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* Certificate chain and key in PEM files. On failure returns NULL and writes a
 * reason into err. */
SSL_CTX *tls_server_context_new(const char *cert_file, const char *key_file,
                                char *err, size_t err_len);

/* verify: check the upstream's certificate chain (against ca_file, or the
 * system store when ca_file is NULL/empty); the host name is checked per
 * connection by net_stream_start_tls. */
SSL_CTX *tls_client_context_new(bool verify, const char *ca_file, char *err, size_t err_len);

#endif
