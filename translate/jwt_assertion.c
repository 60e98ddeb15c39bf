/* jwt_assertion.c: see jwt_assertion.h. */
#include "jwt_assertion.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "base64.h"
#include "oauth_json.h"

#define JWT_RSA_BITS_MIN 2048
#define JWT_JSON_MAX     (JWT_ASSERTION_MAX / 4 * 3)   /* header or claims as JSON */
#define JWT_SIG_MAX      1024                           /* an 8192-bit RSA signature */

static void set_err(char *err, size_t errlen, const char *text)
{
    if (errlen > 0)
        snprintf(err, errlen, "%s", text);
}

/* An encrypted key would make OpenSSL prompt on the terminal; refuse it. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static EVP_PKEY *pem_private_key(const char *pem, size_t len, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL) {
        set_err(err, errlen, "no unencrypted PEM private key found");
        return NULL;
    }
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < JWT_RSA_BITS_MIN) {
        set_err(err, errlen, "the private key is not an RSA key of 2048 bits or more (RS256 needs one)");
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

/* A string member of the service-account JSON, or "" when absent. */
static bool json_member(json_t *root, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    json_t *v = json_object_get(root, name);
    if (v == NULL)
        return true;
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return false;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

static bool load_service_account(const char *data, size_t len, struct jwt_signing_key *key, char *err,
                                 size_t errlen)
{
    oauth_json_use_wiping_allocator();
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    bool ok = false;
    json_t *pk = json_object_get(root, "private_key");
    if (!json_is_object(root)) {
        set_err(err, errlen, "not a JSON object");
    } else if (!json_is_string(pk)) {
        set_err(err, errlen, "service-account JSON lacks \"private_key\"");
    } else if (!json_member(root, "client_email", key->client_email, sizeof key->client_email) ||
               !json_member(root, "private_key_id", key->key_id, sizeof key->key_id)) {
        set_err(err, errlen, "service-account JSON has an invalid client_email or private_key_id");
    } else if (key->client_email[0] == '\0') {
        set_err(err, errlen, "service-account JSON lacks \"client_email\"");
    } else {
        key->pkey = pem_private_key(json_string_value(pk), json_string_length(pk), err, errlen);
        ok = key->pkey != NULL;
    }
    json_decref(root);
    return ok;
}

bool jwt_signing_key_load(const char *data, size_t len, struct jwt_signing_key *key, char *err, size_t errlen)
{
    memset(key, 0, sizeof *key);
    if (len > JWT_KEY_FILE_MAX) {
        set_err(err, errlen, "key file larger than 64 KiB");
        return false;
    }
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    bool ok = (i < len && data[i] == '{') ? load_service_account(data, len, key, err, errlen)
                                          : (key->pkey = pem_private_key(data, len, err, errlen)) != NULL;
    if (!ok)
        jwt_signing_key_free(key);
    return ok;
}

void jwt_signing_key_free(struct jwt_signing_key *key)
{
    EVP_PKEY_free(key->pkey);
    memset(key, 0, sizeof *key);
}

/* base64url(JSON of obj) appended to out at *pos. Steals obj. */
static bool put_json_part(json_t *obj, char *out, size_t cap, size_t *pos)
{
    char json[JWT_JSON_MAX];
    size_t n = obj ? json_dumpb(obj, json, sizeof json, JSON_COMPACT) : 0;
    json_decref(obj);
    if (n == 0 || n > sizeof json)
        return false;
    if (!base64url_encode((const unsigned char *)json, n, out + *pos, cap - *pos))
        return false;
    *pos += strlen(out + *pos);
    return true;
}

static bool claim_ok(const char *s, bool required)
{
    if (s == NULL || s[0] == '\0')
        return !required;
    return strlen(s) <= JWT_CLAIM_MAX;
}

bool jwt_assertion_sign(const struct jwt_signing_key *key, const struct jwt_claims *c, char *out, size_t cap,
                        char *err, size_t errlen)
{
    if (cap > 0)
        out[0] = '\0';
    unsigned lifetime = c->lifetime ? c->lifetime : JWT_LIFETIME_DEFAULT;
    if (key->pkey == NULL || !claim_ok(c->iss, true) || !claim_ok(c->sub, true) || !claim_ok(c->aud, true) ||
        !claim_ok(c->scope, false) || lifetime > JWT_LIFETIME_DEFAULT || cap < 2) {
        set_err(err, errlen, "JWT claim missing or too long");
        return false;
    }
    oauth_json_use_wiping_allocator();
    json_t *header = json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
    if (header != NULL && key->key_id[0] != '\0')
        json_object_set_new(header, "kid", json_string(key->key_id));
    json_t *claims = json_pack("{s:s,s:s}", "iss", c->iss, "sub", c->sub);
    if (claims != NULL && c->scope != NULL && c->scope[0] != '\0')
        json_object_set_new(claims, "scope", json_string(c->scope));
    if (claims != NULL) {
        json_object_set_new(claims, "aud", json_string(c->aud));
        json_object_set_new(claims, "iat", json_integer((json_int_t)c->iat));
        json_object_set_new(claims, "exp", json_integer((json_int_t)c->iat + lifetime));
    }
    size_t pos = 0;
    bool ok = put_json_part(header, out, cap, &pos);
    if (ok && pos + 1 < cap)
        out[pos++] = '.';
    else
        ok = false;
    ok = put_json_part(claims, out, cap, &pos) && ok;
    if (!ok) {
        OPENSSL_cleanse(out, cap);
        set_err(err, errlen, "JWT does not fit its buffer, or a claim is not UTF-8");
        return false;
    }

    unsigned char sig[JWT_SIG_MAX];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
         EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out, pos) == 1;
    EVP_MD_CTX_free(md);
    if (ok && pos + 1 < cap) {
        out[pos++] = '.';
        ok = base64url_encode(sig, siglen, out + pos, cap - pos);
    } else {
        ok = false;
    }
    if (!ok) {
        OPENSSL_cleanse(out, cap);
        set_err(err, errlen, "signing the JWT failed, or it does not fit its buffer");
    }
    return ok;
}
