/* Unit tests for translate/id_list.c: the id lists' format, as the Lua
 * scripts write it (backends/lua_scripts.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "id_list.h"

struct collected {
    uint64_t ids[16];
    size_t n;
};

static void collect(uint64_t id, void *arg)
{
    struct collected *c = arg;
    if (c->n < 16)
        c->ids[c->n] = id;
    c->n++;
}

static void test_one_id_and_a_run(void **state)
{
    (void)state;
    /* UIDVALIDITY 7, UIDs 5..8, then a hashed id. */
    static const unsigned char list[] = { 0, 1, 0, 0, 0, 7, 0, 0, 0, 5, 1, 3,
                                          0, 1, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4 };
    uint64_t n = 0;
    assert_true(id_list_count(list, sizeof list, &n));
    assert_int_equal(n, 5);
    struct collected c = { .n = 0 };
    assert_true(id_list_each(list, sizeof list, collect, &c));
    assert_int_equal(c.n, 5);
    assert_true(c.ids[0] == (7ULL << 32 | 5) && c.ids[3] == (7ULL << 32 | 8));
    assert_true(c.ids[4] == 0xdeadbeef01020304ULL);
}

static void test_long_run_varint(void **state)
{
    (void)state;
    /* 300 = 0xac 0x02 in LEB128. */
    static const unsigned char list[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0xac, 0x02 };
    uint64_t n = 0;
    assert_true(id_list_count(list, sizeof list, &n));
    assert_int_equal(n, 301);
    /* Two ids in one record, that do not follow each other. */
    static const unsigned char two[] = { 0, 2, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 3 };
    struct collected c = { .n = 0 };
    assert_true(id_list_each(two, sizeof two, collect, &c));
    assert_int_equal(c.n, 2);
    assert_true(c.ids[0] == (1ULL << 32 | 9) && c.ids[1] == (1ULL << 32 | 3));
    uint64_t empty = 9;
    assert_true(id_list_count("", 0, &empty));
    assert_int_equal(empty, 0);
}

static void test_malformed_lists(void **state)
{
    (void)state;
    uint64_t n = 42;
    static const unsigned char run_first[] = { 1, 3 };
    static const unsigned char cut_id[] = { 0, 1, 1, 2, 3 };
    static const unsigned char cut_group[] = { 0, 2, 0, 0, 0, 1, 0, 0, 0, 1 };
    static const unsigned char cut_varint[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0x80 };
    static const unsigned char unknown[] = { 2, 1 };
    static const unsigned char zero_run[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0 };
    static const unsigned char past_32[] = { 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 1, 2 };
    static const unsigned char long_varint[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0x81, 0x80, 0x80, 0x80, 0x80, 0 };
    assert_false(id_list_count(run_first, sizeof run_first, &n));
    assert_false(id_list_count(cut_id, sizeof cut_id, &n));
    assert_false(id_list_count(cut_group, sizeof cut_group, &n));
    assert_false(id_list_count(cut_varint, sizeof cut_varint, &n));
    assert_false(id_list_count(unknown, sizeof unknown, &n));
    assert_false(id_list_count(zero_run, sizeof zero_run, &n));
    assert_false(id_list_count(past_32, sizeof past_32, &n));
    assert_false(id_list_count(long_varint, sizeof long_varint, &n));
    assert_int_equal(n, 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_id_and_a_run),
        cmocka_unit_test(test_long_run_varint),
        cmocka_unit_test(test_malformed_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
