/* Fuzz target: token endpoint and device authorization answers
 * (translate/oauth_json.h) and the SASL error challenge
 * (translate/sasl_oauth.h).
 *
 * The input is a body as a provider (or anything between it and popgate)
 * could send it. Checked:
 * - oauth_token_response_parse: OK means either an error whose code is 1..64
 *   visible ASCII octets, or a token of 1..OAUTH_ACCESS_TOKEN_MAX b64token
 *   octets with token_type "bearer" (any case), a refresh token of VSCHAR,
 *   expires_in -1 or in 0..10 years; every field NUL-terminated inside its
 *   array, free text printable. Any other status leaves the struct wiped
 *   (all zero but expires_in -1).
 * - the token goes into an XOAUTH2 and an OAUTHBEARER response, which must
 *   succeed and decode to exactly the documented layout;
 * - oauth_device_response_parse: the same kind of contract, interval 1..3600;
 * - the input as a base64 challenge: sasl_oauth_error_parse gives printable
 *   fields, or false with all fields empty.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "fuzz_input.h"
#include "oauth_json.h"
#include "sasl_oauth.h"
#include "sasl_plain.h"

static struct oauth_token_response tok;
static struct oauth_device_response dev;
static char sasl[SASL_OAUTH_RESPONSE_MAX];
static unsigned char raw[SASL_OAUTH_RAW_MAX];

static bool terminated_printable(const char *s, size_t cap, bool allow_space)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || (!allow_space && c == ' '))
            return false;
    }
    return true;
}

static bool b64token(const char *t)
{
    size_t n = strlen(t), i = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
    if (i == 0)
        return false;
    return strspn(t + i, "=") == n - i;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static void check_sasl(const char *token)
{
    size_t tlen = strlen(token);
    FUZZ_CHECK(sasl_xoauth2_response(sasl, sizeof sasl, "user@example.org", 16, token, tlen) == SASL_OAUTH_OK);
    long n = base64_decode_strict(sasl, strlen(sasl), raw, sizeof raw);
    FUZZ_CHECK(n == (long)(5 + 16 + 13 + tlen + 2));
    FUZZ_CHECK(memcmp(raw, "user=user@example.org\001auth=Bearer ", 34) == 0);
    FUZZ_CHECK(memcmp(raw + 34, token, tlen) == 0 && memcmp(raw + 34 + tlen, "\001\001", 2) == 0);

    FUZZ_CHECK(sasl_oauthbearer_response(sasl, sizeof sasl, "a,b", 3, "imap.example.org", 993, token, tlen) ==
               SASL_OAUTH_OK);
    n = base64_decode_strict(sasl, strlen(sasl), raw, sizeof raw);
    static const char head[] = "n,a=a=2Cb,\001host=imap.example.org\001port=993\001auth=Bearer ";
    FUZZ_CHECK(n == (long)(sizeof head - 1 + tlen + 2));
    FUZZ_CHECK(memcmp(raw, head, sizeof head - 1) == 0);
    FUZZ_CHECK(memcmp(raw + sizeof head - 1, token, tlen) == 0);
}

static void check_token(const char *body, size_t len)
{
    memset(&tok, 0x5a, sizeof tok);
    enum oauth_json_status st = oauth_token_response_parse(body, len, &tok);
    if (st != OAUTH_JSON_OK) {
        FUZZ_CHECK(tok.expires_in == -1);
        tok.expires_in = 0;
        FUZZ_CHECK(all_zero(&tok, sizeof tok));
        return;
    }
    FUZZ_CHECK(terminated_printable(tok.error_description, sizeof tok.error_description, true));
    FUZZ_CHECK(terminated_printable(tok.scope, sizeof tok.scope, true));
    if (tok.is_error) {
        FUZZ_CHECK(tok.error[0] != '\0' && terminated_printable(tok.error, sizeof tok.error, false));
        FUZZ_CHECK(tok.access_token[0] == '\0' && tok.refresh_token[0] == '\0');
        return;
    }
    FUZZ_CHECK(strnlen(tok.access_token, sizeof tok.access_token) <= OAUTH_ACCESS_TOKEN_MAX);
    FUZZ_CHECK(b64token(tok.access_token));
    FUZZ_CHECK(strcasecmp(tok.token_type, "bearer") == 0);
    FUZZ_CHECK(terminated_printable(tok.refresh_token, sizeof tok.refresh_token, true));
    FUZZ_CHECK(tok.expires_in >= -1 && tok.expires_in <= 10L * 366 * 24 * 3600);
    FUZZ_CHECK(tok.error[0] == '\0');
    check_sasl(tok.access_token);
    oauth_token_response_wipe(&tok);
}

static void check_device(const char *body, size_t len)
{
    memset(&dev, 0x5a, sizeof dev);
    enum oauth_json_status st = oauth_device_response_parse(body, len, &dev);
    if (st != OAUTH_JSON_OK) {
        FUZZ_CHECK(dev.expires_in == -1 && dev.interval == -1);
        dev.expires_in = dev.interval = 0;
        FUZZ_CHECK(all_zero(&dev, sizeof dev));
        return;
    }
    if (dev.is_error) {
        FUZZ_CHECK(dev.error[0] != '\0' && terminated_printable(dev.error, sizeof dev.error, false));
        FUZZ_CHECK(terminated_printable(dev.error_description, sizeof dev.error_description, true));
        return;
    }
    FUZZ_CHECK(dev.device_code[0] && terminated_printable(dev.device_code, sizeof dev.device_code, true));
    FUZZ_CHECK(dev.user_code[0] && terminated_printable(dev.user_code, sizeof dev.user_code, true));
    FUZZ_CHECK(dev.verification_uri[0] && terminated_printable(dev.verification_uri, sizeof dev.verification_uri, false));
    FUZZ_CHECK(terminated_printable(dev.verification_uri_complete, sizeof dev.verification_uri_complete, false));
    FUZZ_CHECK(dev.expires_in > 0 && dev.interval >= 1 && dev.interval <= 3600);
    oauth_device_response_wipe(&dev);
}

static void check_challenge(const uint8_t *data, size_t size)
{
    static char b64[BASE64_LEN(SASL_OAUTH_CHALLENGE_MAX) + 1];
    size_t n = size < SASL_OAUTH_CHALLENGE_MAX / 4 * 3 ? size : SASL_OAUTH_CHALLENGE_MAX / 4 * 3;
    FUZZ_CHECK(base64_encode(data, n, b64, sizeof b64));
    struct sasl_oauth_error e;
    bool ok = sasl_oauth_error_parse(b64, strlen(b64), &e);
    FUZZ_CHECK(terminated_printable(e.status, sizeof e.status, true));
    FUZZ_CHECK(terminated_printable(e.schemes, sizeof e.schemes, true));
    FUZZ_CHECK(terminated_printable(e.scope, sizeof e.scope, true));
    if (!ok)
        FUZZ_CHECK(e.status[0] == '\0' && e.schemes[0] == '\0' && e.scope[0] == '\0');
    /* The raw input as a challenge: never crashes, mostly not base64. */
    (void)sasl_oauth_error_parse((const char *)data, size, &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size octets on the heap: a read past the end is an
     * ASan report, not a read of the fuzzer's buffer. */
    char *body = malloc(size ? size : 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, data, size);
    check_token(body, size);
    check_device(body, size);
    check_challenge(data, size);
    free(body);
    return 0;
}
