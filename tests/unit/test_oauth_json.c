/* Unit tests for translate/oauth_json.c: token endpoint answers (RFC 6749
 * 5.1 and 5.2, in the shapes Microsoft's and Google's documentation show),
 * device authorization answers (RFC 8628 3.2, Google's verification_url),
 * and every way a body is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oauth_json.h"

static struct oauth_token_response tok;
static struct oauth_device_response dev;

static enum oauth_json_status parse_token(const char *body)
{
    return oauth_token_response_parse(body, strlen(body), &tok);
}

static enum oauth_json_status parse_device(const char *body)
{
    return oauth_device_response_parse(body, strlen(body), &dev);
}

static void test_microsoft_refresh_success(void **state)
{
    (void)state;
    assert_int_equal(parse_token("{\"token_type\":\"Bearer\",\"scope\":\"https://outlook.office.com/IMAP.AccessAsUser.All\","
                                 "\"expires_in\":3599,\"ext_expires_in\":3599,"
                                 "\"access_token\":\"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln\","
                                 "\"refresh_token\":\"0.AAAA-rotated_refresh~token\"}"),
                     OAUTH_JSON_OK);
    assert_false(tok.is_error);
    assert_string_equal(tok.access_token, "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln");
    assert_string_equal(tok.token_type, "Bearer");
    assert_string_equal(tok.refresh_token, "0.AAAA-rotated_refresh~token");
    assert_string_equal(tok.scope, "https://outlook.office.com/IMAP.AccessAsUser.All");
    assert_int_equal(tok.expires_in, 3599);
}

static void test_google_success_without_refresh(void **state)
{
    (void)state;
    assert_int_equal(parse_token("{\n  \"access_token\": \"ya29.a0AfH6SMB\",\n  \"expires_in\": \"3599\",\n"
                                 "  \"scope\": \"https://mail.google.com/\",\n  \"token_type\": \"bearer\"\n}"),
                     OAUTH_JSON_OK);
    assert_string_equal(tok.access_token, "ya29.a0AfH6SMB");
    assert_string_equal(tok.refresh_token, "");
    assert_int_equal(tok.expires_in, 3599);   /* a digit string is accepted */
    assert_int_equal(parse_token("{\"access_token\":\"a\",\"token_type\":\"Bearer\"}"), OAUTH_JSON_OK);
    assert_int_equal(tok.expires_in, -1);
    assert_string_equal(tok.scope, "");
}

static void test_error_responses(void **state)
{
    (void)state;
    assert_int_equal(parse_token("{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70008: The provided "
                                 "authorization code or refresh token has expired.\\r\\nTrace ID: 1\","
                                 "\"error_codes\":[70008],\"timestamp\":\"2026-12-04 11:00:00Z\"}"),
                     OAUTH_JSON_OK);
    assert_true(tok.is_error);
    assert_string_equal(tok.error, "invalid_grant");
    /* CR LF in the description become spaces, other control octets '?': it
     * goes to a log line. */
    assert_string_equal(tok.error_description,
                        "AADSTS70008: The provided authorization code or refresh token has expired.  Trace ID: 1");
    assert_int_equal(parse_token("{\"error\":\"e\",\"error_description\":\"a\\u0007b\\u00e9\"}"), OAUTH_JSON_OK);
    assert_string_equal(tok.error_description, "a?b??");
    assert_string_equal(tok.access_token, "");
    assert_int_equal(parse_token("{\"error\":\"authorization_pending\"}"), OAUTH_JSON_OK);
    assert_string_equal(tok.error, "authorization_pending");
    assert_string_equal(tok.error_description, "");
    /* A long description is cut, not refused. */
    char body[2048];
    char desc[1200];
    memset(desc, 'd', sizeof desc - 1);
    desc[sizeof desc - 1] = '\0';
    snprintf(body, sizeof body, "{\"error\":\"server_error\",\"error_description\":\"%s\"}", desc);
    assert_int_equal(parse_token(body), OAUTH_JSON_OK);
    assert_int_equal(strlen(tok.error_description), OAUTH_ERROR_TEXT_MAX);
    /* An error code with a space or too long is refused. */
    assert_int_equal(parse_token("{\"error\":\"bad code\"}"), OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_token("{\"error\":1}"), OAUTH_JSON_MALFORMED);
}

static void test_malformed_bodies(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "<html>502 Bad Gateway</html>",
        "[1,2]",
        "\"access_token\"",
        "{\"access_token\":\"a\",\"token_type\":\"Bearer\"} trailing",
        "{\"access_token\":\"a\",\"access_token\":\"b\",\"token_type\":\"Bearer\"}", /* duplicate name */
        "{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":[1]}",
        "{\"access_token\":7,\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"refresh_token\":{}}",
        "{\"access_token\":\"a\xff\",\"token_type\":\"Bearer\"}",                    /* invalid UTF-8 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&tok, 0x41, sizeof tok);
        assert_int_equal(parse_token(bad[i]), OAUTH_JSON_MALFORMED);
        assert_string_equal(tok.access_token, "");   /* wiped */
        assert_int_equal(tok.expires_in, -1);
    }
}

static void test_bad_values(void **state)
{
    (void)state;
    assert_int_equal(parse_token("{\"token_type\":\"Bearer\"}"), OAUTH_JSON_MISSING);
    assert_int_equal(parse_token("{\"access_token\":\"a\"}"), OAUTH_JSON_MISSING);
    assert_int_equal(parse_token("{\"access_token\":\"a\",\"token_type\":\"mac\"}"), OAUTH_JSON_BAD_VALUE);
    /* A token that could break the SASL response or the IMAP line. */
    assert_int_equal(parse_token("{\"access_token\":\"a\\u0001auth=x\",\"token_type\":\"Bearer\"}"),
                     OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_token("{\"access_token\":\"a\\r\\nb\",\"token_type\":\"Bearer\"}"), OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_token("{\"access_token\":\"a\\u0000b\",\"token_type\":\"Bearer\"}"), OAUTH_JSON_MALFORMED);
    assert_int_equal(parse_token("{\"access_token\":\"\",\"token_type\":\"Bearer\"}"), OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_token("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"refresh_token\":\"r\\n\"}"),
                     OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_token("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":-5}"),
                     OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_token("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":\"12x\"}"),
                     OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_token("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":99999999999}"),
                     OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_token("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1.5}"),
                     OAUTH_JSON_MALFORMED);
}

static void test_token_bounds(void **state)
{
    (void)state;
    size_t cap = OAUTH_ACCESS_TOKEN_MAX + 128;
    char *body = malloc(cap);
    char *t = malloc(OAUTH_ACCESS_TOKEN_MAX + 2);
    assert_non_null(body);
    assert_non_null(t);
    memset(t, 'A', OAUTH_ACCESS_TOKEN_MAX);
    t[OAUTH_ACCESS_TOKEN_MAX] = '\0';
    snprintf(body, cap, "{\"access_token\":\"%s\",\"token_type\":\"Bearer\"}", t);
    assert_int_equal(parse_token(body), OAUTH_JSON_OK);
    assert_int_equal(strlen(tok.access_token), OAUTH_ACCESS_TOKEN_MAX);
    t[OAUTH_ACCESS_TOKEN_MAX] = 'A';
    t[OAUTH_ACCESS_TOKEN_MAX + 1] = '\0';
    snprintf(body, cap, "{\"access_token\":\"%s\",\"token_type\":\"Bearer\"}", t);
    assert_int_equal(parse_token(body), OAUTH_JSON_TOO_LONG);
    /* A body over OAUTH_JSON_BODY_MAX is refused before parsing. */
    assert_int_equal(oauth_token_response_parse(body, OAUTH_JSON_BODY_MAX + 1, &tok), OAUTH_JSON_TOO_LONG);
    free(body);
    free(t);
    /* Deep nesting is an error, not a crash. */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 1);
    assert_non_null(deep);
    for (size_t i = 0; i < depth; i++) {
        deep[i] = '[';
        deep[depth + i] = ']';
    }
    deep[2 * depth] = '\0';
    assert_int_equal(parse_token(deep), OAUTH_JSON_MALFORMED);
    free(deep);
}

static void test_device_microsoft(void **state)
{
    (void)state;
    assert_int_equal(parse_device("{\"user_code\":\"FJ8VQMZ3K\",\"device_code\":\"DAQABAAEAAAD--DLA3VO7QrddgJg7Wevr\","
                                  "\"verification_uri\":\"https://microsoft.com/devicelogin\",\"expires_in\":900,"
                                  "\"interval\":5,\"message\":\"To sign in, use a web browser to open the page "
                                  "https://microsoft.com/devicelogin and enter the code FJ8VQMZ3K to authenticate.\"}"),
                     OAUTH_JSON_OK);
    assert_false(dev.is_error);
    assert_string_equal(dev.user_code, "FJ8VQMZ3K");
    assert_string_equal(dev.device_code, "DAQABAAEAAAD--DLA3VO7QrddgJg7Wevr");
    assert_string_equal(dev.verification_uri, "https://microsoft.com/devicelogin");
    assert_string_equal(dev.verification_uri_complete, "");
    assert_int_equal(dev.expires_in, 900);
    assert_int_equal(dev.interval, 5);
}

static void test_device_google_and_rfc(void **state)
{
    (void)state;
    /* Google: verification_url, interval as documented. */
    assert_int_equal(parse_device("{\"device_code\":\"4/4-GMMhmHCXhWEzkobqIHGG_EnNYYsAkukHspeYUk9E8\","
                                  "\"user_code\":\"GQVQ-JKEC\",\"verification_url\":\"https://www.google.com/device\","
                                  "\"expires_in\":1800,\"interval\":5}"),
                     OAUTH_JSON_OK);
    assert_string_equal(dev.verification_uri, "https://www.google.com/device");
    assert_string_equal(dev.user_code, "GQVQ-JKEC");
    /* RFC 8628 3.2 example: interval absent -> 5. */
    assert_int_equal(parse_device("{\"device_code\":\"GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS\","
                                  "\"user_code\":\"WDJB-MJHT\",\"verification_uri\":\"https://example.com/device\","
                                  "\"verification_uri_complete\":\"https://example.com/device?user_code=WDJB-MJHT\","
                                  "\"expires_in\":1800}"),
                     OAUTH_JSON_OK);
    assert_int_equal(dev.interval, 5);
    assert_string_equal(dev.verification_uri_complete, "https://example.com/device?user_code=WDJB-MJHT");
    /* Errors and missing fields. */
    assert_int_equal(parse_device("{\"error\":\"invalid_scope\",\"error_description\":\"Invalid scope\"}"),
                     OAUTH_JSON_OK);
    assert_true(dev.is_error);
    assert_string_equal(dev.error, "invalid_scope");
    assert_int_equal(parse_device("{\"device_code\":\"d\",\"user_code\":\"u\",\"expires_in\":5}"), OAUTH_JSON_MISSING);
    assert_string_equal(dev.device_code, "");  /* wiped */
    assert_int_equal(parse_device("{\"device_code\":\"d\",\"user_code\":\"u\",\"verification_uri\":\"x\"}"),
                     OAUTH_JSON_MISSING);
    assert_int_equal(parse_device("{\"device_code\":\"d\",\"user_code\":\"u\",\"verification_uri\":\"a b\","
                                  "\"expires_in\":5}"),
                     OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_device("{\"device_code\":\"d\",\"user_code\":\"u\",\"verification_uri\":\"x\","
                                  "\"expires_in\":5,\"interval\":0}"),
                     OAUTH_JSON_BAD_VALUE);
    assert_int_equal(parse_device("{\"device_code\":\"d\",\"user_code\":\"u\\u001b[2J\",\"verification_uri\":\"x\","
                                  "\"expires_in\":5}"),
                     OAUTH_JSON_BAD_VALUE);
}

static void test_status_texts(void **state)
{
    (void)state;
    for (int s = OAUTH_JSON_OK; s <= OAUTH_JSON_BAD_VALUE; s++)
        assert_string_not_equal(oauth_json_status_text((enum oauth_json_status)s), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_microsoft_refresh_success),
        cmocka_unit_test(test_google_success_without_refresh),
        cmocka_unit_test(test_error_responses),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_token_bounds),
        cmocka_unit_test(test_device_microsoft),
        cmocka_unit_test(test_device_google_and_rfc),
        cmocka_unit_test(test_status_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
