/* Unit tests for translate/sasl_plain.c: strict base64 (RFC 4648 vectors and
 * every way to be malformed) and the AUTH PLAIN split (RFC 4616). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sasl_plain.h"

static void expect_decoded(const char *b64, const char *want, size_t want_len)
{
    unsigned char out[64];
    memset(out, 0xAA, sizeof out);
    long n = base64_decode_strict(b64, strlen(b64), out, sizeof out);
    assert_int_equal(n, (long)want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[want_len], 0xAA);  /* nothing written past the end */
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    expect_decoded("", "", 0);
    expect_decoded("Zg==", "f", 1);
    expect_decoded("Zm8=", "fo", 2);
    expect_decoded("Zm9v", "foo", 3);
    expect_decoded("Zm9vYg==", "foob", 4);
    expect_decoded("Zm9vYmE=", "fooba", 5);
    expect_decoded("Zm9vYmFy", "foobar", 6);
    expect_decoded("+/+/", "\xfb\xff\xbf", 3);
    expect_decoded("AAEC", "\x00\x01\x02", 3);
}

static void test_malformed_base64_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg=", "Zg", "Z", "Zm9vY", "Zg==Zg==", "=Zg=", "Z=g=", "Zm9v\n", "Zm 9v", "Zm9-", "Zm9_", "====",
        "Zg=A",
    };
    unsigned char out[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(base64_decode_strict(bad[i], strlen(bad[i]), out, sizeof out), -1);
}

static void test_output_bound(void **state)
{
    (void)state;
    unsigned char out[5];
    assert_int_equal(base64_decode_strict("Zm9vYmFy", 8, out, 5), -1);  /* 6 bytes do not fit */
    assert_int_equal(base64_decode_strict("Zm9vYmE=", 8, out, 5), 5);   /* 5 do */
}

static enum sasl_plain_result parse(const char *b64, struct sasl_plain *p, size_t *decoded)
{
    static unsigned char buf[128];
    return sasl_plain_parse(b64, strlen(b64), buf, sizeof buf, decoded, p);
}

static void test_plain_split(void **state)
{
    (void)state;
    struct sasl_plain p;
    size_t decoded;
    /* "\0tim\0tanstaaftanstaaf" (RFC 4616 example) */
    assert_int_equal(parse("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", &p, &decoded), SASL_PLAIN_OK);
    assert_int_equal(decoded, 21);
    assert_int_equal(p.authcid_len, 3);
    assert_memory_equal(p.authcid, "tim", 3);
    assert_int_equal(p.passwd_len, 16);
    assert_memory_equal(p.passwd, "tanstaaftanstaaf", 16);
    /* authzid equal to authcid: "tim\0tim\0pw" */
    assert_int_equal(parse("dGltAHRpbQBwdw==", &p, &decoded), SASL_PLAIN_OK);
    assert_memory_equal(p.passwd, "pw", 2);
    /* An empty password is the upstream's to refuse, not ours: "\0u\0" */
    assert_int_equal(parse("AHUA", &p, &decoded), SASL_PLAIN_OK);
    assert_int_equal(p.passwd_len, 0);
}

static void test_plain_refused_and_malformed(void **state)
{
    (void)state;
    struct sasl_plain p;
    size_t decoded;
    /* Acting for another user: "Ursel\0Kurt\0xipj3plmq" */
    assert_int_equal(parse("VXJzZWwAS3VydAB4aXBqM3BsbXE=", &p, &decoded), SASL_PLAIN_REFUSED);
    assert_int_equal(decoded, 20);  /* the caller wipes this much */
    /* NUL in the password: "\0u\0p\0q" */
    assert_int_equal(parse("AHUAcABx", &p, &decoded), SASL_PLAIN_REFUSED);
    /* One NUL only: "u\0p" */
    assert_int_equal(parse("dQBw", &p, &decoded), SASL_PLAIN_MALFORMED);
    assert_int_equal(parse("", &p, &decoded), SASL_PLAIN_MALFORMED);
    assert_int_equal(decoded, 0);
    assert_int_equal(parse("not base64!", &p, &decoded), SASL_PLAIN_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_malformed_base64_refused),
        cmocka_unit_test(test_output_bound),
        cmocka_unit_test(test_plain_split),
        cmocka_unit_test(test_plain_refused_and_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
