/* token_envelope.c: see token_envelope.h. */
#include "token_envelope.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define AAD_LABEL "popgate-envelope"
/* label, version, purpose, NUL, user (<= 255 + slack), NUL, device. */
#define AAD_MAX 1024

const char *envelope_status_text(enum envelope_status s)
{
    switch (s) {
    case ENVELOPE_OK: return "ok";
    case ENVELOPE_TOO_LONG: return "value too long";
    case ENVELOPE_MALFORMED: return "sealed value malformed";
    case ENVELOPE_AUTH_FAILED: return "sealed value does not open with this key";
    case ENVELOPE_CRYPTO_ERROR: return "cryptographic library failure";
    }
    return "unknown";
}

enum envelope_status envelope_new_key(uint8_t key[ENVELOPE_KEY_LEN])
{
    return RAND_bytes(key, ENVELOPE_KEY_LEN) == 1 ? ENVELOPE_OK : ENVELOPE_CRYPTO_ERROR;
}

/* The associated data; false when it would not fit (a user far over any
 * login bound). */
static bool build_aad(uint8_t *aad, size_t *len, const char *purpose, const char *user, const char *device)
{
    size_t plen = strlen(purpose), ulen = strlen(user), dlen = device ? strlen(device) : 0;
    size_t need = sizeof AAD_LABEL - 1 + 1 + plen + 1 + ulen + (dlen ? 1 + dlen : 0);
    if (need > AAD_MAX)
        return false;
    size_t o = 0;
    memcpy(aad + o, AAD_LABEL, sizeof AAD_LABEL - 1);
    o += sizeof AAD_LABEL - 1;
    aad[o++] = ENVELOPE_VERSION;
    memcpy(aad + o, purpose, plen);
    o += plen;
    aad[o++] = 0;
    memcpy(aad + o, user, ulen);
    o += ulen;
    if (dlen) {
        aad[o++] = 0;
        memcpy(aad + o, device, dlen);
        o += dlen;
    }
    *len = o;
    return true;
}

static enum envelope_status seal(const uint8_t key[ENVELOPE_KEY_LEN], const char *purpose, const char *user,
                                 const char *device, const uint8_t *plain, size_t len, uint8_t *out, size_t cap,
                                 size_t *out_len)
{
    *out_len = 0;
    uint8_t aad[AAD_MAX];
    size_t aad_len;
    if (len > ENVELOPE_PLAIN_MAX || cap < ENVELOPE_SEALED_LEN(len) || !build_aad(aad, &aad_len, purpose, user, device))
        return ENVELOPE_TOO_LONG;
    out[0] = ENVELOPE_VERSION;
    uint8_t *nonce = out + 1, *ct = nonce + ENVELOPE_NONCE_LEN, *tag = ct + len;
    if (RAND_bytes(nonce, ENVELOPE_NONCE_LEN) != 1)
        return ENVELOPE_CRYPTO_ERROR;

    enum envelope_status st = ENVELOPE_CRYPTO_ERROR;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    if (ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, ENVELOPE_NONCE_LEN, NULL) == 1 &&
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
        (len == 0 || EVP_EncryptUpdate(ctx, ct, &n, plain, (int)len) == 1) &&
        EVP_EncryptFinal_ex(ctx, ct + len, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ENVELOPE_TAG_LEN, tag) == 1) {
        *out_len = ENVELOPE_SEALED_LEN(len);
        st = ENVELOPE_OK;
    }
    EVP_CIPHER_CTX_free(ctx);
    if (st != ENVELOPE_OK)
        OPENSSL_cleanse(out, ENVELOPE_SEALED_LEN(len));
    return st;
}

static enum envelope_status open_sealed(const uint8_t key[ENVELOPE_KEY_LEN], const char *purpose,
                                        const char *user, const char *device, const uint8_t *sealed,
                                        size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (len < ENVELOPE_OVERHEAD || sealed[0] != ENVELOPE_VERSION)
        return ENVELOPE_MALFORMED;
    size_t plen = len - ENVELOPE_OVERHEAD;
    uint8_t aad[AAD_MAX];
    size_t aad_len;
    if (plen > ENVELOPE_PLAIN_MAX || cap < plen || !build_aad(aad, &aad_len, purpose, user, device))
        return ENVELOPE_TOO_LONG;
    const uint8_t *nonce = sealed + 1, *ct = nonce + ENVELOPE_NONCE_LEN, *tag = ct + plen;
    uint8_t tagcopy[ENVELOPE_TAG_LEN];
    memcpy(tagcopy, tag, sizeof tagcopy);

    enum envelope_status st = ENVELOPE_CRYPTO_ERROR;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    if (ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, ENVELOPE_NONCE_LEN, NULL) == 1 &&
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
        EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
        (plen == 0 || EVP_DecryptUpdate(ctx, out, &n, ct, (int)plen) == 1) &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ENVELOPE_TAG_LEN, tagcopy) == 1) {
        /* Final checks the tag: failing here is the authentication failure. */
        st = EVP_DecryptFinal_ex(ctx, out + plen, &n) == 1 ? ENVELOPE_OK : ENVELOPE_AUTH_FAILED;
    }
    EVP_CIPHER_CTX_free(ctx);
    if (st == ENVELOPE_OK)
        *out_len = plen;
    else
        OPENSSL_cleanse(out, plen);
    return st;
}

enum envelope_status envelope_seal(const uint8_t key[ENVELOPE_KEY_LEN], const char *purpose, const char *user,
                                   const uint8_t *plain, size_t len, uint8_t *out, size_t cap,
                                   size_t *out_len)
{
    return seal(key, purpose, user, NULL, plain, len, out, cap, out_len);
}

enum envelope_status envelope_open(const uint8_t key[ENVELOPE_KEY_LEN], const char *purpose, const char *user,
                                   const uint8_t *sealed, size_t len, uint8_t *out, size_t cap,
                                   size_t *out_len)
{
    return open_sealed(key, purpose, user, NULL, sealed, len, out, cap, out_len);
}

enum envelope_status envelope_wrap_key(const uint8_t kek[ENVELOPE_KEY_LEN], const char *user, const char *device,
                                       const uint8_t data_key[ENVELOPE_KEY_LEN],
                                       uint8_t out[ENVELOPE_WRAPPED_KEY_LEN])
{
    size_t n;
    return seal(kek, ENVELOPE_PURPOSE_DATA_KEY, user, device, data_key, ENVELOPE_KEY_LEN, out,
                ENVELOPE_WRAPPED_KEY_LEN, &n);
}

enum envelope_status envelope_unwrap_key(const uint8_t kek[ENVELOPE_KEY_LEN], const char *user, const char *device,
                                         const uint8_t wrapped[ENVELOPE_WRAPPED_KEY_LEN],
                                         uint8_t data_key[ENVELOPE_KEY_LEN])
{
    size_t n;
    return open_sealed(kek, ENVELOPE_PURPOSE_DATA_KEY, user, device, wrapped, ENVELOPE_WRAPPED_KEY_LEN, data_key,
                       ENVELOPE_KEY_LEN, &n);
}
