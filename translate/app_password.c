/* app_password.c: see app_password.h. */
#include "app_password.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base64.h"
#include "sasl_plain.h"

#define BASE32_CHARS 32                          /* characters of a password */
#define DERIVED_LEN  (APP_PASSWORD_VERIFIER_LEN + APP_PASSWORD_KEK_LEN)

static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

const char *app_password_status_text(enum app_password_status s)
{
    switch (s) {
    case APP_PASSWORD_OK: return "ok";
    case APP_PASSWORD_WRONG: return "wrong app password";
    case APP_PASSWORD_BAD_RECORD: return "stored app password record is invalid";
    case APP_PASSWORD_CRYPTO_ERROR: return "cryptographic library failure";
    }
    return "unknown";
}

bool app_password_generate(char out[APP_PASSWORD_TEXT_MAX])
{
    uint8_t raw[APP_PASSWORD_RAW_LEN];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return false;
    size_t o = 0;
    /* 160 bits, five at a time, most significant first. */
    for (size_t i = 0; i < BASE32_CHARS; i++) {
        size_t bit = i * 5;
        unsigned v = (unsigned)raw[bit / 8] << 8;
        if (bit / 8 + 1 < sizeof raw)
            v |= raw[bit / 8 + 1];
        v = (v >> (11 - bit % 8)) & 0x1f;
        if (i > 0 && i % 4 == 0)
            out[o++] = '-';
        out[o++] = base32_alphabet[v];
    }
    out[o] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return true;
}

static int base32_value(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

bool app_password_decode(const char *typed, size_t len, uint8_t raw[APP_PASSWORD_RAW_LEN])
{
    memset(raw, 0, APP_PASSWORD_RAW_LEN);
    if (len > APP_PASSWORD_TYPED_MAX)
        return false;
    size_t nchars = 0;
    for (size_t i = 0; i < len; i++) {
        if (typed[i] == '-' || typed[i] == ' ')
            continue;
        int v = base32_value(typed[i]);
        if (v < 0 || nchars == BASE32_CHARS) {
            OPENSSL_cleanse(raw, APP_PASSWORD_RAW_LEN);
            return false;
        }
        size_t bit = nchars * 5;
        /* Spread the five bits over one or two octets. */
        unsigned shifted = (unsigned)v << (11 - bit % 8);
        raw[bit / 8] |= (uint8_t)(shifted >> 8);
        if (bit / 8 + 1 < APP_PASSWORD_RAW_LEN)
            raw[bit / 8 + 1] |= (uint8_t)shifted;
        nchars++;
    }
    if (nchars != BASE32_CHARS) {
        OPENSSL_cleanse(raw, APP_PASSWORD_RAW_LEN);
        return false;
    }
    return true;
}

static bool params_in_bounds(const struct app_password_record *rec)
{
    return rec->t_cost >= 1 && rec->t_cost <= APP_PASSWORD_ARGON2_T_MAX && rec->lanes >= 1 &&
           rec->lanes <= APP_PASSWORD_ARGON2_LANES_MAX && rec->m_cost_kib >= 8 * rec->lanes &&
           rec->m_cost_kib <= APP_PASSWORD_ARGON2_M_KIB_MAX;
}

enum app_password_status app_password_derive(const struct app_password_record *rec,
                                             const uint8_t raw[APP_PASSWORD_RAW_LEN],
                                             uint8_t verifier[APP_PASSWORD_VERIFIER_LEN],
                                             uint8_t kek[APP_PASSWORD_KEK_LEN])
{
    if (!params_in_bounds(rec))
        return APP_PASSWORD_BAD_RECORD;
    uint8_t derived[DERIVED_LEN];
    int rc = argon2id_hash_raw(rec->t_cost, rec->m_cost_kib, rec->lanes, raw, APP_PASSWORD_RAW_LEN, rec->salt,
                               APP_PASSWORD_SALT_LEN, derived, sizeof derived);
    if (rc != ARGON2_OK) {
        OPENSSL_cleanse(derived, sizeof derived);
        return APP_PASSWORD_CRYPTO_ERROR;
    }
    /* The verifier is a hash of the first half, so what Redis keeps is one
     * step away from the Argon2 output, and the KEK half is never stored. */
    SHA256(derived, APP_PASSWORD_VERIFIER_LEN, verifier);
    memcpy(kek, derived + APP_PASSWORD_VERIFIER_LEN, APP_PASSWORD_KEK_LEN);
    OPENSSL_cleanse(derived, sizeof derived);
    return APP_PASSWORD_OK;
}

bool app_password_verifier_equal(const uint8_t a[APP_PASSWORD_VERIFIER_LEN],
                                 const uint8_t b[APP_PASSWORD_VERIFIER_LEN])
{
    return CRYPTO_memcmp(a, b, APP_PASSWORD_VERIFIER_LEN) == 0;
}

enum app_password_status app_password_issue(const char *user, const char *device,
                                            const uint8_t data_key[ENVELOPE_KEY_LEN],
                                            char text[APP_PASSWORD_TEXT_MAX],
                                            struct app_password_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->t_cost = APP_PASSWORD_ARGON2_T;
    rec->m_cost_kib = APP_PASSWORD_ARGON2_M_KIB;
    rec->lanes = APP_PASSWORD_ARGON2_LANES;
    uint8_t raw[APP_PASSWORD_RAW_LEN], kek[APP_PASSWORD_KEK_LEN];
    enum app_password_status st = APP_PASSWORD_CRYPTO_ERROR;
    if (RAND_bytes(rec->salt, APP_PASSWORD_SALT_LEN) == 1 && app_password_generate(text) &&
        app_password_decode(text, strlen(text), raw)) {
        st = app_password_derive(rec, raw, rec->verifier, kek);
        if (st == APP_PASSWORD_OK &&
            envelope_wrap_key(kek, user, device, data_key, rec->wrapped_key) != ENVELOPE_OK)
            st = APP_PASSWORD_CRYPTO_ERROR;
    }
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(kek, sizeof kek);
    if (st != APP_PASSWORD_OK) {
        OPENSSL_cleanse(text, APP_PASSWORD_TEXT_MAX);
        memset(rec, 0, sizeof *rec);
    }
    return st;
}

enum app_password_status app_password_check(const struct app_password_record *rec, const char *user,
                                            const char *device, const char *typed, size_t typed_len,
                                            uint8_t data_key[ENVELOPE_KEY_LEN])
{
    memset(data_key, 0, ENVELOPE_KEY_LEN);
    if (!params_in_bounds(rec))
        return APP_PASSWORD_BAD_RECORD;
    uint8_t raw[APP_PASSWORD_RAW_LEN], verifier[APP_PASSWORD_VERIFIER_LEN], kek[APP_PASSWORD_KEK_LEN];
    if (!app_password_decode(typed, typed_len, raw))
        return APP_PASSWORD_WRONG;
    enum app_password_status st = app_password_derive(rec, raw, verifier, kek);
    if (st == APP_PASSWORD_OK && !app_password_verifier_equal(verifier, rec->verifier))
        st = APP_PASSWORD_WRONG;
    if (st == APP_PASSWORD_OK) {
        /* The verifier matched, so the KEK is right: a failure to unwrap means
         * the stored wrapped key was altered or belongs to another device. */
        if (envelope_unwrap_key(kek, user, device, rec->wrapped_key, data_key) != ENVELOPE_OK)
            st = APP_PASSWORD_BAD_RECORD;
    }
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(kek, sizeof kek);
    OPENSSL_cleanse(verifier, sizeof verifier);
    return st;
}

bool app_password_record_format(const struct app_password_record *rec, char *out, size_t cap)
{
    char salt[BASE64_LEN(APP_PASSWORD_SALT_LEN) + 1];
    char ver[BASE64_LEN(APP_PASSWORD_VERIFIER_LEN) + 1];
    char wrapped[BASE64_LEN(ENVELOPE_WRAPPED_KEY_LEN) + 1];
    base64_encode(rec->salt, sizeof rec->salt, salt, sizeof salt);
    base64_encode(rec->verifier, sizeof rec->verifier, ver, sizeof ver);
    base64_encode(rec->wrapped_key, sizeof rec->wrapped_key, wrapped, sizeof wrapped);
    int n = snprintf(out, cap, "v1$%u$%u$%u$%s$%s$%s", (unsigned)rec->t_cost, (unsigned)rec->m_cost_kib,
                     (unsigned)rec->lanes, salt, ver, wrapped);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            out[0] = '\0';
        return false;
    }
    return true;
}

/* A decimal field of 1..7 digits ending at '$'. */
static bool parse_u32(const char **p, const char *end, uint32_t *out)
{
    const char *s = *p;
    uint32_t v = 0;
    size_t n = 0;
    while (s < end && *s >= '0' && *s <= '9' && n < 7) {
        v = v * 10 + (uint32_t)(*s - '0');
        s++;
        n++;
    }
    if (n == 0 || s >= end || *s != '$')
        return false;
    *out = v;
    *p = s + 1;
    return true;
}

/* A base64 field of exactly len decoded octets, ending at '$' or at end. */
static bool parse_b64(const char **p, const char *end, uint8_t *out, size_t len, bool last)
{
    const char *s = *p;
    const char *stop = last ? end : memchr(s, '$', (size_t)(end - s));
    if (stop == NULL)
        return false;
    if (base64_decode_strict(s, (size_t)(stop - s), out, len) != (long)len)
        return false;
    *p = last ? end : stop + 1;
    return true;
}

enum app_password_status app_password_record_parse(const char *text, size_t len,
                                                   struct app_password_record *rec)
{
    memset(rec, 0, sizeof *rec);
    const char *p = text, *end = text + len;
    bool ok = len < APP_PASSWORD_RECORD_MAX && len > 3 && memcmp(p, "v1$", 3) == 0;
    if (ok) {
        p += 3;
        ok = parse_u32(&p, end, &rec->t_cost) && parse_u32(&p, end, &rec->m_cost_kib) &&
             parse_u32(&p, end, &rec->lanes) && parse_b64(&p, end, rec->salt, sizeof rec->salt, false) &&
             parse_b64(&p, end, rec->verifier, sizeof rec->verifier, false) &&
             parse_b64(&p, end, rec->wrapped_key, sizeof rec->wrapped_key, true) && params_in_bounds(rec);
    }
    if (!ok) {
        memset(rec, 0, sizeof *rec);
        return APP_PASSWORD_BAD_RECORD;
    }
    return APP_PASSWORD_OK;
}
