/* Unit tests for the OAuth2 secrets at rest and in flight:
 * translate/token_envelope.c (seal/open, tampering, wrong key, other user or
 * purpose, key wrapping), translate/app_password.c (generation, decoding,
 * Argon2id verify/wrong, records) and translate/jwt_assertion.c (RS256 JWT
 * from a PEM and from a service-account JSON, verified here with the public
 * key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "app_password.h"
#include "base64.h"
#include "jwt_assertion.h"
#include "sasl_plain.h"
#include "token_envelope.h"

/* ---- envelope ---------------------------------------------------------------- */

static void test_envelope_round_trip(void **state)
{
    (void)state;
    uint8_t key[ENVELOPE_KEY_LEN];
    assert_int_equal(envelope_new_key(key), ENVELOPE_OK);
    const char *secret = "0.AAAA-refresh-token";
    size_t len = strlen(secret);
    uint8_t sealed[128], again[128], plain[128];
    size_t n, n2, pn;
    assert_int_equal(envelope_seal(key, ENVELOPE_PURPOSE_REFRESH_TOKEN, "alice", (const uint8_t *)secret, len,
                                   sealed, sizeof sealed, &n),
                     ENVELOPE_OK);
    assert_int_equal(n, ENVELOPE_SEALED_LEN(len));
    assert_int_equal(sealed[0], ENVELOPE_VERSION);
    assert_null(memmem(sealed, n, "refresh", 7));   /* no plaintext in the output */
    /* A fresh nonce each time: sealing twice differs. */
    assert_int_equal(envelope_seal(key, ENVELOPE_PURPOSE_REFRESH_TOKEN, "alice", (const uint8_t *)secret, len,
                                   again, sizeof again, &n2),
                     ENVELOPE_OK);
    assert_memory_not_equal(sealed + 1, again + 1, ENVELOPE_NONCE_LEN);
    assert_int_equal(envelope_open(key, ENVELOPE_PURPOSE_REFRESH_TOKEN, "alice", sealed, n, plain, sizeof plain, &pn),
                     ENVELOPE_OK);
    assert_int_equal(pn, len);
    assert_memory_equal(plain, secret, len);
    /* Empty plaintext works too. */
    assert_int_equal(envelope_seal(key, "p", "u", NULL, 0, again, sizeof again, &n2), ENVELOPE_OK);
    assert_int_equal(envelope_open(key, "p", "u", again, n2, plain, sizeof plain, &pn), ENVELOPE_OK);
    assert_int_equal(pn, 0);
}

static void test_envelope_refuses_tampering_and_other_bindings(void **state)
{
    (void)state;
    uint8_t key[ENVELOPE_KEY_LEN], other[ENVELOPE_KEY_LEN];
    assert_int_equal(envelope_new_key(key), ENVELOPE_OK);
    assert_int_equal(envelope_new_key(other), ENVELOPE_OK);
    const uint8_t secret[] = "access-token-value";
    uint8_t sealed[128], plain[128];
    size_t n, pn;
    assert_int_equal(envelope_seal(key, ENVELOPE_PURPOSE_ACCESS_TOKEN, "alice", secret, sizeof secret - 1, sealed,
                                   sizeof sealed, &n),
                     ENVELOPE_OK);
    /* Every single flipped bit, in nonce, ciphertext and tag, is caught. */
    for (size_t i = 1; i < n; i++) {
        sealed[i] ^= 0x01;
        memset(plain, 0x55, sizeof plain);
        assert_int_equal(envelope_open(key, ENVELOPE_PURPOSE_ACCESS_TOKEN, "alice", sealed, n, plain, sizeof plain,
                                       &pn),
                         ENVELOPE_AUTH_FAILED);
        assert_int_equal(pn, 0);
        for (size_t k = 0; k < n - ENVELOPE_OVERHEAD; k++)
            assert_int_equal(plain[k], 0);   /* nothing of a guess left behind */
        sealed[i] ^= 0x01;
    }
    assert_int_equal(envelope_open(other, ENVELOPE_PURPOSE_ACCESS_TOKEN, "alice", sealed, n, plain, sizeof plain, &pn),
                     ENVELOPE_AUTH_FAILED);
    assert_int_equal(envelope_open(key, ENVELOPE_PURPOSE_ACCESS_TOKEN, "bob", sealed, n, plain, sizeof plain, &pn),
                     ENVELOPE_AUTH_FAILED);
    assert_int_equal(envelope_open(key, ENVELOPE_PURPOSE_REFRESH_TOKEN, "alice", sealed, n, plain, sizeof plain, &pn),
                     ENVELOPE_AUTH_FAILED);
    /* Version, length and capacity. */
    sealed[0] = 2;
    assert_int_equal(envelope_open(key, ENVELOPE_PURPOSE_ACCESS_TOKEN, "alice", sealed, n, plain, sizeof plain, &pn),
                     ENVELOPE_MALFORMED);
    sealed[0] = ENVELOPE_VERSION;
    assert_int_equal(envelope_open(key, ENVELOPE_PURPOSE_ACCESS_TOKEN, "alice", sealed, ENVELOPE_OVERHEAD - 1, plain,
                                   sizeof plain, &pn),
                     ENVELOPE_MALFORMED);
    assert_int_equal(envelope_open(key, ENVELOPE_PURPOSE_ACCESS_TOKEN, "alice", sealed, n - 1, plain, sizeof plain,
                                   &pn),
                     ENVELOPE_AUTH_FAILED);   /* truncated */
    assert_int_equal(envelope_open(key, ENVELOPE_PURPOSE_ACCESS_TOKEN, "alice", sealed, n, plain, 3, &pn),
                     ENVELOPE_TOO_LONG);
    assert_int_equal(envelope_seal(key, "p", "u", secret, sizeof secret, sealed, ENVELOPE_SEALED_LEN(sizeof secret) - 1,
                                   &n),
                     ENVELOPE_TOO_LONG);
    uint8_t *big = calloc(1, ENVELOPE_SEALED_LEN(ENVELOPE_PLAIN_MAX + 1));
    assert_non_null(big);
    assert_int_equal(envelope_seal(key, "p", "u", big, ENVELOPE_PLAIN_MAX + 1, big,
                                   ENVELOPE_SEALED_LEN(ENVELOPE_PLAIN_MAX + 1), &n),
                     ENVELOPE_TOO_LONG);
    free(big);
    assert_string_not_equal(envelope_status_text(ENVELOPE_AUTH_FAILED), "unknown");
}

static void test_key_wrapping(void **state)
{
    (void)state;
    uint8_t kek[ENVELOPE_KEY_LEN], data_key[ENVELOPE_KEY_LEN], got[ENVELOPE_KEY_LEN];
    uint8_t wrapped[ENVELOPE_WRAPPED_KEY_LEN];
    assert_int_equal(envelope_new_key(kek), ENVELOPE_OK);
    assert_int_equal(envelope_new_key(data_key), ENVELOPE_OK);
    assert_int_equal(envelope_wrap_key(kek, "alice", "scanner", data_key, wrapped), ENVELOPE_OK);
    assert_int_equal(envelope_unwrap_key(kek, "alice", "scanner", wrapped, got), ENVELOPE_OK);
    assert_memory_equal(got, data_key, sizeof got);
    /* Another device's or user's wrap does not stand in. */
    assert_int_equal(envelope_unwrap_key(kek, "alice", "phone", wrapped, got), ENVELOPE_AUTH_FAILED);
    assert_int_equal(envelope_unwrap_key(kek, "bob", "scanner", wrapped, got), ENVELOPE_AUTH_FAILED);
    assert_int_equal(envelope_unwrap_key(kek, "alice", NULL, wrapped, got), ENVELOPE_AUTH_FAILED);
    /* A wrapped key does not open as a token of the same user. */
    uint8_t plain[64];
    size_t pn;
    assert_int_equal(envelope_open(kek, ENVELOPE_PURPOSE_REFRESH_TOKEN, "alice", wrapped, sizeof wrapped, plain,
                                   sizeof plain, &pn),
                     ENVELOPE_AUTH_FAILED);
    /* The app grants' single wrap, without a device. */
    assert_int_equal(envelope_wrap_key(kek, "alice", NULL, data_key, wrapped), ENVELOPE_OK);
    assert_int_equal(envelope_unwrap_key(kek, "alice", "", wrapped, got), ENVELOPE_OK);
}

/* ---- app passwords ------------------------------------------------------------ */

static void test_app_password_generate_and_decode(void **state)
{
    (void)state;
    char a[APP_PASSWORD_TEXT_MAX], b[APP_PASSWORD_TEXT_MAX];
    assert_true(app_password_generate(a));
    assert_true(app_password_generate(b));
    assert_int_equal(strlen(a), APP_PASSWORD_TEXT_LEN);
    assert_string_not_equal(a, b);
    for (size_t i = 0; i < APP_PASSWORD_TEXT_LEN; i++) {
        if (i % 5 == 4)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz234567", a[i]));
    }
    uint8_t raw[APP_PASSWORD_RAW_LEN], raw2[APP_PASSWORD_RAW_LEN];
    assert_true(app_password_decode(a, strlen(a), raw));
    /* Case, dashes and spaces do not matter. */
    char typed[APP_PASSWORD_TYPED_MAX];
    size_t o = 0;
    for (size_t i = 0; a[i]; i++) {
        if (a[i] == '-') {
            typed[o++] = ' ';
            continue;
        }
        typed[o++] = (char)(a[i] >= 'a' && a[i] <= 'z' ? a[i] - 32 : a[i]);
    }
    assert_true(app_password_decode(typed, o, raw2));
    assert_memory_equal(raw, raw2, sizeof raw);
    /* A known vector: RFC 4648 base32 of 20 octets 0x00..0x13. */
    uint8_t seq[APP_PASSWORD_RAW_LEN];
    for (size_t i = 0; i < sizeof seq; i++)
        seq[i] = (uint8_t)i;
    assert_true(app_password_decode("aaaq-eaye-auda-ocaj-bifq-ydio-b4ib-ceqt", 39, raw));
    assert_memory_equal(raw, seq, sizeof seq);
    /* Wrong shapes. */
    assert_false(app_password_decode("aaaq-eayd", 9, raw));                                   /* short */
    assert_false(app_password_decode("aaaq-eaye-auda-ocaj-bifq-ydio-b4ib-ceqta", 40, raw));   /* long */
    assert_false(app_password_decode("aaaq-eaye-auda-ocaj-bifq-ydio-b4ib-ceq1", 39, raw));    /* '1' */
    for (size_t i = 0; i < sizeof raw; i++)
        assert_int_equal(raw[i], 0);
}

static void test_app_password_issue_check(void **state)
{
    (void)state;
    uint8_t data_key[ENVELOPE_KEY_LEN], got[ENVELOPE_KEY_LEN];
    assert_int_equal(envelope_new_key(data_key), ENVELOPE_OK);
    char text[APP_PASSWORD_TEXT_MAX], text2[APP_PASSWORD_TEXT_MAX];
    struct app_password_record rec, rec2, parsed;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(app_password_issue("alice", "scanner", data_key, text, &rec), APP_PASSWORD_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    print_message("      one Argon2id derivation (t=%d, m=%d KiB, ASan build): %.1f ms\n", APP_PASSWORD_ARGON2_T,
                  APP_PASSWORD_ARGON2_M_KIB, ms);
    assert_int_equal(rec.t_cost, APP_PASSWORD_ARGON2_T);
    assert_int_equal(rec.m_cost_kib, APP_PASSWORD_ARGON2_M_KIB);
    assert_int_equal(app_password_issue("alice", "phone", data_key, text2, &rec2), APP_PASSWORD_OK);
    assert_memory_not_equal(rec.salt, rec2.salt, APP_PASSWORD_SALT_LEN);

    /* Right password, its own device: the data key comes back. */
    assert_int_equal(app_password_check(&rec, "alice", "scanner", text, strlen(text), got), APP_PASSWORD_OK);
    assert_memory_equal(got, data_key, sizeof got);
    assert_int_equal(app_password_check(&rec2, "alice", "phone", text2, strlen(text2), got), APP_PASSWORD_OK);
    assert_memory_equal(got, data_key, sizeof got);
    /* The other device's password, a changed character, garbage. */
    assert_int_equal(app_password_check(&rec, "alice", "scanner", text2, strlen(text2), got), APP_PASSWORD_WRONG);
    for (size_t i = 0; i < sizeof got; i++)
        assert_int_equal(got[i], 0);
    char bad[APP_PASSWORD_TEXT_MAX];
    memcpy(bad, text, sizeof bad);
    bad[0] = bad[0] == 'a' ? 'b' : 'a';
    assert_int_equal(app_password_check(&rec, "alice", "scanner", bad, strlen(bad), got), APP_PASSWORD_WRONG);
    assert_int_equal(app_password_check(&rec, "alice", "scanner", "secret", 6, got), APP_PASSWORD_WRONG);
    /* The record moved to another device name: the verifier matches but the
     * wrapped key does not open. */
    assert_int_equal(app_password_check(&rec, "alice", "phone", text, strlen(text), got), APP_PASSWORD_BAD_RECORD);

    /* Record text round trip. */
    char rtext[APP_PASSWORD_RECORD_MAX];
    assert_true(app_password_record_format(&rec, rtext, sizeof rtext));
    assert_true(strncmp(rtext, "v1$2$19456$1$", 13) == 0);
    assert_null(strstr(rtext, text));
    assert_int_equal(app_password_record_parse(rtext, strlen(rtext), &parsed), APP_PASSWORD_OK);
    assert_memory_equal(&parsed, &rec, sizeof rec);
    assert_int_equal(app_password_check(&parsed, "alice", "scanner", text, strlen(text), got), APP_PASSWORD_OK);
    /* Records that must not parse: parameters a tampered record could use to
     * exhaust memory or time, and broken fields. */
    static const char *const bad_records[] = {
        "v1$2$9999999$1$",
        "v2$2$19456$1$AAAAAAAAAAAAAAAAAAAAAA==$x$y",
        "v1$11$19456$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=$x",
        "v1$2$300000$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=$x",
        "",
    };
    for (size_t i = 0; i < sizeof bad_records / sizeof *bad_records; i++)
        assert_int_equal(app_password_record_parse(bad_records[i], strlen(bad_records[i]), &parsed),
                         APP_PASSWORD_BAD_RECORD);
    /* Only the wrapped field cut short. */
    char cut[APP_PASSWORD_RECORD_MAX];
    memcpy(cut, rtext, sizeof cut);
    cut[strlen(cut) - 4] = '\0';
    assert_int_equal(app_password_record_parse(cut, strlen(cut), &parsed), APP_PASSWORD_BAD_RECORD);
    struct app_password_record huge = rec;
    huge.m_cost_kib = APP_PASSWORD_ARGON2_M_KIB_MAX + 1;
    assert_int_equal(app_password_check(&huge, "alice", "scanner", text, strlen(text), got), APP_PASSWORD_BAD_RECORD);
}

/* ---- JWT ---------------------------------------------------------------------- */

static EVP_PKEY *test_key;
static char test_pem[4096];

static int jwt_setup(void **state)
{
    (void)state;
    test_key = EVP_RSA_gen(2048);
    assert_non_null(test_key);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, test_key, NULL, NULL, 0, NULL, NULL), 1);
    int n = BIO_read(bio, test_pem, sizeof test_pem - 1);
    assert_true(n > 0);
    test_pem[n] = '\0';
    BIO_free(bio);
    return 0;
}

static int jwt_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(test_key);
    return 0;
}

/* base64url back to octets (the test's own reader, through the strict
 * base64 decoder). */
static size_t b64url_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    char tmp[8192];
    assert_true(len + 4 < sizeof tmp);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        tmp[n++] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (n % 4)
        tmp[n++] = '=';
    long got = base64_decode_strict(tmp, n, out, cap);
    assert_true(got >= 0);
    return (size_t)got;
}

static json_t *jwt_part(const char *jwt, int index, size_t *start, size_t *len)
{
    const char *p = jwt;
    for (int i = 0; i < index; i++)
        p = strchr(p, '.') + 1;
    const char *end = strchr(p, '.');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    *start = (size_t)(p - jwt);
    *len = n;
    unsigned char buf[4096];
    size_t m = b64url_decode(p, n, buf, sizeof buf);
    return index < 2 ? json_loadb((const char *)buf, m, 0, NULL) : NULL;
}

static void verify_jwt(const char *jwt, const char *kid)
{
    size_t hs, hl, cs, cl, ss, sl;
    json_t *h = jwt_part(jwt, 0, &hs, &hl);
    json_t *c = jwt_part(jwt, 1, &cs, &cl);
    (void)jwt_part(jwt, 2, &ss, &sl);
    assert_non_null(h);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
    if (kid)
        assert_string_equal(json_string_value(json_object_get(h, "kid")), kid);
    else
        assert_null(json_object_get(h, "kid"));
    assert_string_equal(json_string_value(json_object_get(c, "iss")), "svc@project.iam.gserviceaccount.com");
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "alice@example.org");
    assert_string_equal(json_string_value(json_object_get(c, "scope")), "https://mail.google.com/");
    assert_string_equal(json_string_value(json_object_get(c, "aud")), "https://oauth2.googleapis.com/token");
    assert_int_equal(json_integer_value(json_object_get(c, "iat")), 1764846000);
    assert_int_equal(json_integer_value(json_object_get(c, "exp")), 1764846000 + 3600);
    json_decref(h);
    json_decref(c);

    /* The signature over "header.claims", checked with the public key. */
    unsigned char sig[1024];
    size_t siglen = b64url_decode(jwt + ss, sl, sig, sizeof sig);
    assert_int_equal(siglen, 256);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, test_key), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, siglen, (const unsigned char *)jwt, ss - 1), 1);
    /* One changed claim byte fails. */
    char *copy = strdup(jwt);
    copy[cs + 2] = copy[cs + 2] == 'A' ? 'B' : 'A';
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, test_key), 1);
    assert_int_not_equal(EVP_DigestVerify(md, sig, siglen, (const unsigned char *)copy, ss - 1), 1);
    free(copy);
    EVP_MD_CTX_free(md);
}

static const struct jwt_claims claims = {
    .iss = "svc@project.iam.gserviceaccount.com",
    .sub = "alice@example.org",
    .scope = "https://mail.google.com/",
    .aud = "https://oauth2.googleapis.com/token",
    .iat = 1764846000,
};

static void test_jwt_from_pem(void **state)
{
    (void)state;
    struct jwt_signing_key key;
    char err[128];
    assert_true(jwt_signing_key_load(test_pem, strlen(test_pem), &key, err, sizeof err));
    assert_string_equal(key.client_email, "");
    char jwt[JWT_ASSERTION_MAX];
    assert_true(jwt_assertion_sign(&key, &claims, jwt, sizeof jwt, err, sizeof err));
    verify_jwt(jwt, NULL);
    /* Claim bounds and lifetime. */
    struct jwt_claims c = claims;
    c.lifetime = 7200;
    assert_false(jwt_assertion_sign(&key, &c, jwt, sizeof jwt, err, sizeof err));
    assert_string_equal(jwt, "");
    c = claims;
    c.sub = NULL;
    assert_false(jwt_assertion_sign(&key, &c, jwt, sizeof jwt, err, sizeof err));
    assert_false(jwt_assertion_sign(&key, &claims, jwt, 100, err, sizeof err));
    jwt_signing_key_free(&key);
}

static void test_jwt_from_service_account_json(void **state)
{
    (void)state;
    json_t *sa = json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "service_account", "project_id", "p", "private_key_id",
                           "0123abcd", "private_key", test_pem, "client_email", "svc@project.iam.gserviceaccount.com");
    static char text[8192];
    size_t tn = json_dumpb(sa, text, sizeof text - 1, JSON_INDENT(2));
    json_decref(sa);
    assert_true(tn > 0 && tn < sizeof text);
    text[tn] = '\0';
    assert_non_null(strstr(text, "\\n"));   /* the PEM's newlines escaped, as in Google's files */
    struct jwt_signing_key key;
    char err[128];
    assert_true(jwt_signing_key_load(text, strlen(text), &key, err, sizeof err));
    assert_string_equal(key.client_email, "svc@project.iam.gserviceaccount.com");
    assert_string_equal(key.key_id, "0123abcd");
    char jwt[JWT_ASSERTION_MAX];
    struct jwt_claims c = claims;
    c.iss = key.client_email;
    assert_true(jwt_assertion_sign(&key, &c, jwt, sizeof jwt, err, sizeof err));
    verify_jwt(jwt, "0123abcd");
    jwt_signing_key_free(&key);
}

static void test_jwt_bad_keys(void **state)
{
    (void)state;
    struct jwt_signing_key key;
    char err[128];
    assert_false(jwt_signing_key_load("not a key", 9, &key, err, sizeof err));
    assert_null(key.pkey);
    assert_false(jwt_signing_key_load("{\"type\":\"service_account\"}", 26, &key, err, sizeof err));
    assert_non_null(strstr(err, "private_key"));
    /* An EC key is not RS256's. */
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, ec, NULL, NULL, 0, NULL, NULL);
    char pem[1024];
    int n = BIO_read(bio, pem, sizeof pem - 1);
    pem[n] = '\0';
    BIO_free(bio);
    EVP_PKEY_free(ec);
    assert_false(jwt_signing_key_load(pem, (size_t)n, &key, err, sizeof err));
    assert_non_null(strstr(err, "RSA"));
    /* The error never quotes key material. */
    assert_null(strstr(err, "BEGIN"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_round_trip),
        cmocka_unit_test(test_envelope_refuses_tampering_and_other_bindings),
        cmocka_unit_test(test_key_wrapping),
        cmocka_unit_test(test_app_password_generate_and_decode),
        cmocka_unit_test(test_app_password_issue_check),
        cmocka_unit_test_setup_teardown(test_jwt_from_pem, jwt_setup, jwt_teardown),
        cmocka_unit_test_setup_teardown(test_jwt_from_service_account_json, jwt_setup, jwt_teardown),
        cmocka_unit_test(test_jwt_bad_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
