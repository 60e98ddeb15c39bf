/* Unit tests for translate/sasl_oauth.c (XOAUTH2 and OAUTHBEARER initial
 * responses, the error challenge), translate/base64.c and
 * translate/form_encode.c. Reference values come from Google's XOAUTH2
 * documentation and RFC 7628 section 4.1, encoded with Python's base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"
#include "form_encode.h"
#include "sasl_oauth.h"
#include "sasl_plain.h"

static char out[SASL_OAUTH_RESPONSE_MAX];

static void test_xoauth2_documented_example(void **state)
{
    (void)state;
    const char *tok = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
    assert_int_equal(sasl_xoauth2_response(out, sizeof out, "someuser@example.com", 20, tok, strlen(tok)),
                     SASL_OAUTH_OK);
    assert_string_equal(out, "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNS"
                             "bGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
}

static void test_oauthbearer_rfc7628_example(void **state)
{
    (void)state;
    const char *tok = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
    assert_int_equal(sasl_oauth_response(SASL_MECH_OAUTHBEARER, out, sizeof out, "user@example.com", 16,
                                         "server.example.com", 143, tok, strlen(tok)),
                     SASL_OAUTH_OK);
    assert_string_equal(out, "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9"
                             "QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB");
    assert_string_equal(sasl_oauth_mech_name(SASL_MECH_OAUTHBEARER), "OAUTHBEARER");
    assert_string_equal(sasl_oauth_mech_name(SASL_MECH_XOAUTH2), "XOAUTH2");
}

/* Decode a response back to its bytes. */
static size_t decode(unsigned char *raw, size_t cap)
{
    long n = base64_decode_strict(out, strlen(out), raw, cap);
    assert_true(n > 0);
    return (size_t)n;
}

static void test_oauthbearer_escapes_saslname(void **state)
{
    (void)state;
    assert_int_equal(sasl_oauthbearer_response(out, sizeof out, "a,b=c", 5, "h", 993, "t", 1), SASL_OAUTH_OK);
    unsigned char raw[128];
    size_t n = decode(raw, sizeof raw);
    const char want[] = "n,a=a=2Cb=3Dc,\001host=h\001port=993\001auth=Bearer t\001\001";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(raw, want, n);
}

static void test_forbidden_octets_refused(void **state)
{
    (void)state;
    /* Tokens outside b64token: a ^A would forge a field, CR LF an IMAP line. */
    static const char *const bad_tokens[] = { "abc\001auth=x", "abc\r\nA1 LOGOUT", "a b", "=abc", "ab=c",
                                              "tok\"", "" };
    for (size_t i = 0; i < sizeof bad_tokens / sizeof *bad_tokens; i++) {
        memset(out, 'x', 16);
        assert_int_equal(sasl_xoauth2_response(out, sizeof out, "u", 1, bad_tokens[i], strlen(bad_tokens[i])),
                         SASL_OAUTH_INVALID);
        assert_int_equal(out[0], '\0');
        assert_int_equal(sasl_oauthbearer_response(out, sizeof out, "u", 1, "h", 1, bad_tokens[i],
                                                   strlen(bad_tokens[i])),
                         SASL_OAUTH_INVALID);
    }
    assert_int_equal(sasl_xoauth2_response(out, sizeof out, "u\001", 2, "t", 1), SASL_OAUTH_INVALID);
    assert_int_equal(sasl_xoauth2_response(out, sizeof out, "", 0, "t", 1), SASL_OAUTH_INVALID);
    assert_int_equal(sasl_oauthbearer_response(out, sizeof out, "u", 1, "h\r\n", 1, "t", 1), SASL_OAUTH_INVALID);
    assert_int_equal(sasl_oauthbearer_response(out, sizeof out, "u", 1, "h", 0, "t", 1), SASL_OAUTH_INVALID);
    assert_int_equal(sasl_oauthbearer_response(out, sizeof out, "u", 1, "h", 65536, "t", 1), SASL_OAUTH_INVALID);
    /* Every b64token character and padding pass. */
    const char *all = "AZaz09-._~+/==";
    assert_int_equal(sasl_xoauth2_response(out, sizeof out, "u", 1, all, strlen(all)), SASL_OAUTH_OK);
}

static void test_bounds(void **state)
{
    (void)state;
    char *tok = malloc(SASL_OAUTH_TOKEN_MAX + 1);
    assert_non_null(tok);
    memset(tok, 'A', SASL_OAUTH_TOKEN_MAX + 1);
    char user[3 * SASL_OAUTH_USER_MAX];
    memset(user, ',', sizeof user);
    char host[SASL_OAUTH_HOST_MAX + 2];
    memset(host, 'h', sizeof host);
    host[SASL_OAUTH_HOST_MAX] = '\0';
    /* The worst case fits SASL_OAUTH_RESPONSE_MAX. */
    assert_int_equal(sasl_oauthbearer_response(out, sizeof out, user, SASL_OAUTH_USER_MAX, host, 65535, tok,
                                               SASL_OAUTH_TOKEN_MAX),
                     SASL_OAUTH_OK);
    assert_true(strlen(out) < sizeof out);
    /* One over any bound, or a small buffer, is TOO_LONG and leaves no token. */
    assert_int_equal(sasl_xoauth2_response(out, sizeof out, "u", 1, tok, SASL_OAUTH_TOKEN_MAX + 1),
                     SASL_OAUTH_TOO_LONG);
    assert_int_equal(sasl_xoauth2_response(out, sizeof out, user, SASL_OAUTH_USER_MAX + 1, "t", 1),
                     SASL_OAUTH_TOO_LONG);
    host[SASL_OAUTH_HOST_MAX] = 'h';
    host[SASL_OAUTH_HOST_MAX + 1] = '\0';
    assert_int_equal(sasl_oauthbearer_response(out, sizeof out, "u", 1, host, 1, "t", 1), SASL_OAUTH_TOO_LONG);
    char small[20];
    assert_int_equal(sasl_xoauth2_response(small, sizeof small, "u", 1, "token", 5), SASL_OAUTH_TOO_LONG);
    assert_int_equal(small[0], '\0');
    free(tok);
}

static void test_error_challenge(void **state)
{
    (void)state;
    struct sasl_oauth_error e;
    const char *c1 = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NoZW1lcyI6ImJlYXJlciIsInNjb3BlIjoiaHR0cHM6Ly9t"
                     "YWlsLmdvb2dsZS5jb20vIn0=";
    assert_true(sasl_oauth_error_parse(c1, strlen(c1), &e));
    assert_string_equal(e.status, "invalid_token");
    assert_string_equal(e.schemes, "bearer");
    assert_string_equal(e.scope, "https://mail.google.com/");
    const char *c2 = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=";
    assert_true(sasl_oauth_error_parse(c2, strlen(c2), &e));
    assert_string_equal(e.status, "401");
    assert_string_equal(e.scope, "");
    /* A number, control bytes made '?'. */
    char b64[256];
    const char *j = "{\"status\":400,\"schemes\":\"be\\u0001arer\"}";
    assert_true(base64_encode((const unsigned char *)j, strlen(j), b64, sizeof b64));
    assert_true(sasl_oauth_error_parse(b64, strlen(b64), &e));
    assert_string_equal(e.status, "400");
    assert_string_equal(e.schemes, "be?arer");
    /* Not base64, not JSON, not an object. */
    assert_false(sasl_oauth_error_parse("!!!!", 4, &e));
    assert_string_equal(e.status, "");
    assert_false(sasl_oauth_error_parse("bm9wZQ==", 8, &e)); /* "nope" */
    assert_false(sasl_oauth_error_parse("WzFd", 4, &e));     /* "[1]" */
}

static void test_base64_encoders(void **state)
{
    (void)state;
    char b[16];
    static const struct {
        const char *in, *std, *url;
    } v[] = { { "", "", "" },         { "f", "Zg==", "Zg" },        { "fo", "Zm8=", "Zm8" },
              { "foo", "Zm9v", "Zm9v" }, { "foob", "Zm9vYg==", "Zm9vYg" }, { "\xfb\xff", "+/8=", "-_8" } };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        size_t n = strlen(v[i].in);
        assert_true(base64_encode((const unsigned char *)v[i].in, n, b, sizeof b));
        assert_string_equal(b, v[i].std);
        assert_int_equal(strlen(b), BASE64_LEN(n));
        assert_true(base64url_encode((const unsigned char *)v[i].in, n, b, sizeof b));
        assert_string_equal(b, v[i].url);
        assert_int_equal(strlen(b), BASE64URL_LEN(n));
    }
    assert_false(base64_encode((const unsigned char *)"foo", 3, b, 4)); /* no room for the NUL */
    assert_int_equal(b[0], '\0');
    assert_true(base64_encode((const unsigned char *)"foo", 3, b, 5));
}

static void test_form_body(void **state)
{
    (void)state;
    static struct form_body f;
    form_init(&f);
    form_add(&f, "grant_type", "refresh_token");
    form_add(&f, "scope", "https://outlook.office.com/IMAP.AccessAsUser.All offline_access");
    form_add_n(&f, "x", "a&b=c\0d", 7);
    assert_true(form_ok(&f));
    assert_string_equal(f.buf, "grant_type=refresh_token&scope=https%3A%2F%2Foutlook.office.com%2FIMAP."
                               "AccessAsUser.All%20offline_access&x=a%26b%3Dc%00d");
    assert_int_equal(f.len, strlen(f.buf));
    /* A field that does not fit leaves the body as it was. */
    size_t before = f.len;
    char *big = malloc(FORM_BODY_MAX);
    assert_non_null(big);
    memset(big, '/', FORM_BODY_MAX - 1);
    big[FORM_BODY_MAX - 1] = '\0';
    form_add(&f, "refresh_token", big);
    assert_false(form_ok(&f));
    assert_int_equal(f.len, before);
    assert_int_equal(f.buf[before], '\0');
    form_add(&f, "a", "b"); /* ignored after an overflow */
    assert_int_equal(f.len, before);
    free(big);
    form_wipe(&f);
    assert_int_equal(f.len, 0);
    assert_int_equal(f.buf[0], '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xoauth2_documented_example),
        cmocka_unit_test(test_oauthbearer_rfc7628_example),
        cmocka_unit_test(test_oauthbearer_escapes_saslname),
        cmocka_unit_test(test_forbidden_octets_refused),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_error_challenge),
        cmocka_unit_test(test_base64_encoders),
        cmocka_unit_test(test_form_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
