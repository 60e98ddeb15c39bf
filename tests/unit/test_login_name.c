/* Unit tests for translate/login_name: user#device splitting, device name
 * rules, and message state ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hash64.h"
#include "login_name.h"

static void test_split_at_last_separator(void **state)
{
    (void)state;
    struct login_name n;
    assert_true(login_name_parse("alice#phone", 11, '#', &n));
    assert_string_equal(n.user, "alice");
    assert_string_equal(n.device, "phone");
    assert_true(login_name_parse("Alice@Example.org#desk-2", 24, '#', &n));
    assert_string_equal(n.user, "Alice@Example.org");
    assert_string_equal(n.state_user, "alice@example.org");
    assert_string_equal(n.device, "desk-2");
    /* A user name may contain the separator; the device is after the last one. */
    assert_true(login_name_parse("a#b#c.d_e", 9, '#', &n));
    assert_string_equal(n.user, "a#b");
    assert_string_equal(n.device, "c.d_e");
}

static void test_no_suffix_is_default_device(void **state)
{
    (void)state;
    struct login_name n;
    assert_true(login_name_parse("bob", 3, '#', &n));
    assert_string_equal(n.user, "bob");
    assert_string_equal(n.device, DEVICE_DEFAULT);
    /* Another separator configured: '#' is then part of the user name. */
    assert_true(login_name_parse("bob#x+tab", 9, '+', &n));
    assert_string_equal(n.user, "bob#x");
    assert_string_equal(n.device, "tab");
}

static void test_invalid_names_refused_and_untouched(void **state)
{
    (void)state;
    struct login_name n;
    memset(&n, 'Z', sizeof n);
    const char *bad[] = { "alice#", "#phone", "alice#ph one", "alice#ph/one", "alice#ph{o}",
                          "alice#abcdefghijklmnopqrstuvwxyz0123456", "alice#\xc3\xa9" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(login_name_parse(bad[i], strlen(bad[i]), '#', &n));
        assert_int_equal(n.user[0], 'Z');
    }
    char long_user[LOGIN_USER_MAX + 2];
    memset(long_user, 'u', sizeof long_user - 1);
    long_user[sizeof long_user - 1] = '\0';
    assert_false(login_name_parse(long_user, strlen(long_user), '#', &n));
    assert_true(login_name_parse(long_user, LOGIN_USER_MAX, '#', &n));
}

static void test_device_name_bounds(void **state)
{
    (void)state;
    assert_true(device_name_valid("abcdefghijklmnopqrstuvwxyz012345", 32));
    assert_false(device_name_valid("abcdefghijklmnopqrstuvwxyz0123456", 33));
    assert_false(device_name_valid("", 0));
    assert_true(device_name_valid("A.b_c-9", 7));
}

static void test_state_ids(void **state)
{
    (void)state;
    /* EMAILID-based ids ignore UID and UIDVALIDITY: they survive a rebuild. */
    assert_true(message_state_id("Mabc", 4, 1, 5) == message_state_id("Mabc", 4, 2, 9));
    assert_true(message_state_id("Mabc", 4, 1, 5) != message_state_id("Mabd", 4, 1, 5));
    /* Without EMAILID the id depends on both. */
    assert_true(message_state_id(NULL, 0, 1, 5) != message_state_id(NULL, 0, 2, 5));
    assert_true(message_state_id(NULL, 0, 1, 5) != message_state_id(NULL, 0, 1, 6));
    assert_true(message_state_id(NULL, 0, 1, 5) == message_state_id(NULL, 0, 1, 5));
    /* Consecutive UIDs are consecutive ids (runs in device state). */
    assert_true(message_state_id(NULL, 0, 7, 6) == message_state_id(NULL, 0, 7, 5) + 1);
    assert_true(message_state_id(NULL, 0, 0xfffffffeU, 0xffffffffU) == 0xfffffffeffffffffULL);
    /* The previous releases' ids, as state written then holds them. */
    assert_true(message_state_id_hashed_uid(1, 5) != message_state_id_hashed_uid(2, 5));
    assert_true(message_state_id_hashed_uid(1, 5) == 0x15164fc6bb86c124ULL);
    /* X-GM-MSGID ids: one per number, apart from an EMAILID or a UID pair
     * whose bytes happen to match. */
    assert_true(message_state_id_x_gm(1278455344230334865ULL) == message_state_id_x_gm(1278455344230334865ULL));
    assert_true(message_state_id_x_gm(1) != message_state_id_x_gm(2));
    assert_true(message_state_id_x_gm(((uint64_t)5 << 32) | 1) != message_state_id(NULL, 0, 1, 5));
    assert_true(message_state_id_x_gm(0x31) != message_state_id("1", 1, 0, 0));
    /* FNV-1a 64 reference value: "a" from the standard offset basis. */
    assert_true(hash64(HASH64_SEED, "a", 1) == 0xaf63dc4c8601ec8cULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_at_last_separator),
        cmocka_unit_test(test_no_suffix_is_default_device),
        cmocka_unit_test(test_invalid_names_refused_and_untouched),
        cmocka_unit_test(test_device_name_bounds),
        cmocka_unit_test(test_state_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
