/* Fuzz target: POP3 login names (translate/login_name.h) and the view policy
 * settings (translate/view.h view_policy_set, view_parse_duration).
 *
 * The input is a login as a client sends it, split with each separator a
 * configuration may choose; the result is checked against the contract: split
 * at the last separator, a user of 1..LOGIN_USER_MAX bytes kept as sent and
 * folded to lower case for the state identity, and a device name that always
 * matches [A-Za-z0-9._-]{1,32} (it goes into Redis keys and log lines).
 * The same input, cut at its first '=' into a key and a value, is applied as
 * a [policy] setting: false must leave the policy untouched, true must leave
 * it valid; and as a duration, checked against 64-bit arithmetic.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "login_name.h"
#include "view.h"

/* Separators a [state] device_separator may be, and the input's first byte. */
static const char separators[] = { '#', '+', '%', '/', '!' };

static bool device_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

static bool device_ok(const char *s, size_t len)
{
    if (len < 1 || len > DEVICE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!device_char(s[i]))
            return false;
    return true;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static void check_login(const char *login, size_t len, char sep)
{
    struct login_name out;
    memset(&out, 0x5a, sizeof out);
    bool ok = login_name_parse(login, len, sep, &out);

    const char *last = NULL;
    for (size_t i = 0; i < len; i++)
        if (login[i] == sep)
            last = login + i;
    size_t user_len = last ? (size_t)(last - login) : len;
    const char *device = last ? last + 1 : DEVICE_DEFAULT;
    size_t device_len = last ? len - user_len - 1 : strlen(DEVICE_DEFAULT);
    bool want = user_len >= 1 && user_len <= LOGIN_USER_MAX && device_ok(device, device_len);

    FUZZ_CHECK(device_name_valid(device, device_len) == device_ok(device, device_len));
    FUZZ_CHECK(ok == want);
    if (!ok) {
        /* out untouched */
        const unsigned char *p = (const unsigned char *)&out;
        for (size_t i = 0; i < sizeof out; i++)
            FUZZ_CHECK(p[i] == 0x5a);
        return;
    }
    size_t dlen = strnlen(out.device, sizeof out.device);
    FUZZ_CHECK(dlen < sizeof out.device && device_ok(out.device, dlen));
    FUZZ_CHECK(dlen == device_len && memcmp(out.device, device, dlen) == 0);
    FUZZ_CHECK(out.user[user_len] == '\0' && memcmp(out.user, login, user_len) == 0);
    FUZZ_CHECK(out.state_user[user_len] == '\0');
    for (size_t i = 0; i < user_len; i++)
        FUZZ_CHECK(out.state_user[i] == ascii_lower(login[i]));
}

static bool policy_valid(const struct view_policy *p)
{
    return (unsigned)p->kind < VIEW_KIND_COUNT && (unsigned)p->on_retr < ON_RETR_COUNT &&
           (unsigned)p->on_dele < ON_DELE_COUNT && p->since >= 0;
}

/* view_parse_duration() by its contract, in 64 bits. */
static bool reference_duration(const char *s, uint32_t *out)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0)
        return false;
    uint64_t unit;
    switch (s[n]) {
    case '\0': case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: return false;
    }
    if (s[n] != '\0' && s[n + 1] != '\0')
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > UINT32_MAX)
            return false;
    }
    if (v * unit > UINT32_MAX)
        return false;
    *out = (uint32_t)(v * unit);
    return true;
}

static void check_policy(const char *key, const char *value)
{
    struct view_policy p, before;
    view_policy_defaults(&p);
    /* A mapping's overrides start from a global policy that is not all
     * defaults; change one field so "unchanged" means something. */
    p.max_messages = 7;
    before = p;
    if (view_policy_set(&p, key, value))
        FUZZ_CHECK(policy_valid(&p));
    else
        FUZZ_CHECK(memcmp(&p, &before, sizeof p) == 0);
    (void)view_kind_name(p.kind);
    (void)view_on_retr_name(p.on_retr);
    (void)view_on_dele_name(p.on_dele);

    uint32_t got = 0xdeadbeef, want = 0xdeadbeef;
    bool ok = view_parse_duration(value, &got);
    FUZZ_CHECK(ok == reference_duration(value, &want));
    FUZZ_CHECK(got == want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;

    for (size_t i = 0; i < sizeof separators; i++)
        check_login(in, size, separators[i]);
    if (size > 0)
        check_login(in + 1, size - 1, in[0]);

    /* key=value as strings: the config hands C strings to view_policy_set. */
    char *copy = malloc(size + 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *eq = strchr(copy, '=');
    if (eq != NULL) {
        *eq = '\0';
        check_policy(copy, eq + 1);
    } else {
        check_policy("max_age", copy);
    }
    free(copy);
    return 0;
}
