/* Unit tests for translate/redis_keys.c: every key of the schema spelled as
 * README.md "Devices and their state in Redis" lists it, the prefixes and
 * SCAN patterns popgate-admin lists with, and the bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "redis_keys.h"

static void expect_key(enum redis_key k, const char *subject, const char *device, const char *want)
{
    char out[REDIS_KEY_MAX];
    memset(out, 'x', sizeof out);
    assert_int_equal(redis_key(out, k, subject, device), strlen(want));
    assert_string_equal(out, want);
}

static void test_every_key_as_documented(void **state)
{
    (void)state;
    expect_key(REDIS_KEY_READ, "alice", NULL, "pg1:{alice}:read");
    expect_key(REDIS_KEY_GOT, "alice", "phone", "pg1:{alice}:got:phone");
    expect_key(REDIS_KEY_HIDE, "alice", "phone", "pg1:{alice}:hide:phone");
    expect_key(REDIS_KEY_DEV, "alice", "phone", "pg1:{alice}:dev:phone");
    expect_key(REDIS_KEY_LOCK, "alice", "phone", "pg1:{alice}:lock:phone");
    expect_key(REDIS_KEY_SESSIONS, "alice", NULL, "pg1:{alice}:sessions");
    expect_key(REDIS_KEY_DELAY, "alice", "phone", "pg1:{alice}:delay:phone");
    expect_key(REDIS_KEY_RTIME, "alice", "phone", "pg1:{alice}:rtime:phone");
    expect_key(REDIS_KEY_SIZE, "alice", NULL, "pg1:{alice}:size");
    expect_key(REDIS_KEY_LEGACY, "alice", NULL, "pg1:{alice}:legacy");
    expect_key(REDIS_KEY_AUTHFAIL, "alice", NULL, "pg1:{alice}:authfail");
    expect_key(REDIS_KEY_AUTHFAIL_ADDR, "::1", NULL, "pg1:authfail:addr:{::1}");
    expect_key(REDIS_KEY_BACKOFF, "alice", NULL, "pg1:{alice}:backoff");
    expect_key(REDIS_KEY_MAP, "alice@example.org", NULL, "pg1:map:alice@example.org");
    expect_key(REDIS_KEY_UIDL, "alice", NULL, "pg1:{alice}:uidl");
    expect_key(REDIS_KEY_NODE, "mx1:4242", NULL, "pg1:node:mx1:4242");
    expect_key(REDIS_KEY_APP_PASSWORD, "alice", NULL, "pg1:{alice}:apw");
    expect_key(REDIS_KEY_OAUTH, "alice", NULL, "pg1:{alice}:oauth");
    expect_key(REDIS_KEY_OAUTH_LOCK, "alice", NULL, "pg1:{alice}:oauthlock");
    /* A key without a device ignores one given; a named key the device. */
    expect_key(REDIS_KEY_READ, "alice", "phone", "pg1:{alice}:read");
    expect_key(REDIS_KEY_MAP, "alice", "phone", "pg1:map:alice");
}

static void test_version_prefix_on_every_key(void **state)
{
    (void)state;
    for (int k = 0; k < REDIS_KEYS; k++) {
        char out[REDIS_KEY_MAX];
        assert_true(redis_key(out, (enum redis_key)k, "u", "d") > 0);
        assert_memory_equal(out, REDIS_KEY_VERSION ":", strlen(REDIS_KEY_VERSION) + 1);
    }
}

static void test_prefixes(void **state)
{
    (void)state;
    char out[REDIS_KEY_MAX];
    assert_int_equal(redis_key_prefix(out, REDIS_KEY_DEV, "alice"), strlen("pg1:{alice}:dev:"));
    assert_string_equal(out, "pg1:{alice}:dev:");
    assert_int_equal(redis_key_prefix(out, REDIS_KEY_MAP, NULL), strlen("pg1:map:"));
    assert_string_equal(out, "pg1:map:");
    assert_int_equal(redis_key_prefix(out, REDIS_KEY_NODE, "ignored"), strlen("pg1:node:"));
    assert_string_equal(out, "pg1:node:");
    /* Every key of the kind starts with its prefix. */
    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_DEV, "alice", "phone");
    redis_key_prefix(out, REDIS_KEY_DEV, "alice");
    assert_memory_equal(key, out, strlen(out));
}

static void test_patterns_escape_glob_characters(void **state)
{
    (void)state;
    char out[REDIS_KEY_PATTERN_MAX];
    assert_int_equal(redis_key_pattern(out, REDIS_KEY_MAP, NULL), strlen("pg1:map:*"));
    assert_string_equal(out, "pg1:map:*");
    /* The hash tag's braces are no glob characters; a user's * ? [ ] \ are. */
    redis_key_pattern(out, REDIS_KEY_DEV, "a*b?[c]\\");
    assert_string_equal(out, "pg1:{a\\*b\\?\\[c\\]\\\\}:dev:*");
}

static void test_bound(void **state)
{
    (void)state;
    /* The longest user and device fit every key. */
    char user[LOGIN_USER_MAX + 1], device[DEVICE_NAME_MAX + 1];
    memset(user, 'u', LOGIN_USER_MAX);
    user[LOGIN_USER_MAX] = '\0';
    memset(device, 'd', DEVICE_NAME_MAX);
    device[DEVICE_NAME_MAX] = '\0';
    for (int k = 0; k < REDIS_KEYS; k++) {
        char out[REDIS_KEY_MAX];
        assert_true(redis_key(out, (enum redis_key)k, user, device) > 0);
        char pattern[REDIS_KEY_PATTERN_MAX];
        assert_true(redis_key_pattern(pattern, (enum redis_key)k, user) > 0);
    }
    /* A subject over the bound: nothing, and an empty key, never a cut one. */
    char big[REDIS_KEY_MAX + 8];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char out[REDIS_KEY_MAX];
    assert_int_equal(redis_key(out, REDIS_KEY_UIDL, big, NULL), 0);
    assert_string_equal(out, "");
    char pattern[REDIS_KEY_PATTERN_MAX];
    assert_int_equal(redis_key_pattern(pattern, REDIS_KEY_DEV, big), 0);
    assert_string_equal(pattern, "");
    assert_int_equal(redis_key(out, REDIS_KEYS, "alice", NULL), 0);
}

/* popgate-admin oauth status lists every user by SCAN, and reads the user
 * back from each key found. */
static void test_every_user_pattern_and_user_of_key(void **state)
{
    (void)state;
    char out[REDIS_KEY_MAX], user[LOGIN_USER_MAX + 1];
    assert_int_equal(redis_key_all_users_pattern(out, REDIS_KEY_OAUTH), strlen("pg1:{*}:oauth"));
    assert_string_equal(out, "pg1:{*}:oauth");
    assert_int_equal(redis_key_all_users_pattern(out, REDIS_KEY_DEV), 0);
    size_t len = redis_key(out, REDIS_KEY_OAUTH, "bob@example.org", NULL);
    assert_true(redis_key_user_of(out, len, REDIS_KEY_OAUTH, user));
    assert_string_equal(user, "bob@example.org");
    assert_false(redis_key_user_of(out, len, REDIS_KEY_OAUTH_LOCK, user));
    assert_false(redis_key_user_of("pg1:{}:oauth", 12, REDIS_KEY_OAUTH, user));
    assert_false(redis_key_user_of("pg2:{a}:oauth", 13, REDIS_KEY_OAUTH, user));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key_as_documented),
        cmocka_unit_test(test_version_prefix_on_every_key),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_patterns_escape_glob_characters),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_every_user_pattern_and_user_of_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
