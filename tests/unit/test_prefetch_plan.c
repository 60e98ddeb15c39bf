/* Unit tests for translate/prefetch_plan: the batch a RETR of a small
 * message asks for (its folder, small messages only, within the budget,
 * deleted and vanished ones skipped) and its UID set (only those UIDs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prefetch_plan.h"

#define KB 1024

/* Messages with UIDs 10, 11, ... and the given sizes, in one folder. */
static void drop_of(struct maildrop *m, const uint32_t *sizes, uint32_t n)
{
    maildrop_init(m, 5);
    for (uint32_t i = 0; i < n; i++)
        assert_true(maildrop_append(m, 10 + i, sizes[i]));
}

static void assert_batch(const struct prefetch_batch *b, const uint32_t *want, uint32_t n)
{
    assert_int_equal(b->count, n);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(b->msgnums[i], want[i]);
}

static void test_small_messages_follow_within_budget(void **state)
{
    (void)state;
    struct maildrop m;
    uint32_t sizes[100];
    for (int i = 0; i < 100; i++)
        sizes[i] = 1000;
    drop_of(&m, sizes, 100);
    struct prefetch_batch b;
    /* 64 KiB of 1000-octet messages: 65 of them, from message 3 on. */
    assert_int_equal(prefetch_plan(&m, 3, 64 * KB, 16 * KB, &b), 65);
    assert_int_equal(b.msgnums[0], 3);
    assert_int_equal(b.msgnums[64], 67);
    assert_int_equal(b.octets, 65000);
    char set[PREFETCH_UIDSET_CAP];
    assert_int_equal(prefetch_uidset(&m, &b, set), strlen("12:76"));
    assert_string_equal(set, "12:76");
    /* Near the end: what is left. */
    assert_int_equal(prefetch_plan(&m, 99, 64 * KB, 16 * KB, &b), 2);
    assert_int_equal(prefetch_plan(&m, 100, 64 * KB, 16 * KB, &b), 1);
    maildrop_free(&m);
}

static void test_a_large_message_ends_the_batch(void **state)
{
    (void)state;
    struct maildrop m;
    const uint32_t sizes[] = { 100, 200, 16 * KB, 16 * KB + 1, 300, 400 };
    drop_of(&m, sizes, 6);
    struct prefetch_batch b;
    /* A message exactly at the threshold is small; one octet more is not. */
    assert_int_equal(prefetch_plan(&m, 1, 64 * KB, 16 * KB, &b), 3);
    assert_batch(&b, (const uint32_t[]){ 1, 2, 3 }, 3);
    /* The large one itself is never planned: it streams alone. */
    assert_int_equal(prefetch_plan(&m, 4, 64 * KB, 16 * KB, &b), 0);
    assert_int_equal(b.count, 0);
    assert_int_equal(prefetch_plan(&m, 5, 64 * KB, 16 * KB, &b), 2);
    /* Out of range. */
    assert_int_equal(prefetch_plan(&m, 0, 64 * KB, 16 * KB, &b), 0);
    assert_int_equal(prefetch_plan(&m, 7, 64 * KB, 16 * KB, &b), 0);
    maildrop_free(&m);
}

static void test_budget_is_never_exceeded(void **state)
{
    (void)state;
    struct maildrop m;
    const uint32_t sizes[] = { 4000, 4000, 4000, 4000, 4000 };
    drop_of(&m, sizes, 5);
    struct prefetch_batch b;
    assert_int_equal(prefetch_plan(&m, 1, 12000, 4000, &b), 3);
    assert_int_equal(b.octets, 12000);
    assert_int_equal(prefetch_plan(&m, 1, 11999, 4000, &b), 2);
    assert_true(b.octets <= 11999);
    /* A budget of 0 plans nothing. */
    assert_int_equal(prefetch_plan(&m, 1, 0, 0, &b), 0);
    maildrop_free(&m);
}

static void test_deleted_and_gone_are_skipped_not_ending(void **state)
{
    (void)state;
    struct maildrop m;
    const uint32_t sizes[] = { 100, 100, 100, 100, 100 };
    drop_of(&m, sizes, 5);
    maildrop_get(&m, 2)->flags |= MAILDROP_DELETED;
    maildrop_get(&m, 4)->flags |= MAILDROP_GONE;
    struct prefetch_batch b;
    assert_int_equal(prefetch_plan(&m, 1, 64 * KB, 16 * KB, &b), 3);
    assert_batch(&b, (const uint32_t[]){ 1, 3, 5 }, 3);
    char set[PREFETCH_UIDSET_CAP];
    prefetch_uidset(&m, &b, set);
    /* UID 11 and 13 are not asked for, though they are between. */
    assert_string_equal(set, "10,12,14");
    /* The deleted message itself plans nothing (RETR refuses it anyway). */
    assert_int_equal(prefetch_plan(&m, 2, 64 * KB, 16 * KB, &b), 0);
    assert_int_equal(prefetch_plan(&m, 4, 64 * KB, 16 * KB, &b), 0);
    maildrop_free(&m);
}

static void test_batch_stays_in_one_folder(void **state)
{
    (void)state;
    struct maildrop m;
    maildrop_init(&m, 5);
    assert_true(maildrop_append(&m, 7, 100));
    assert_true(maildrop_append(&m, 8, 100));
    assert_true(maildrop_add_folder(&m, 9, 1234));
    assert_true(maildrop_append(&m, 1, 100));
    assert_true(maildrop_append(&m, 2, 100));
    struct prefetch_batch b;
    assert_int_equal(prefetch_plan(&m, 1, 64 * KB, 16 * KB, &b), 2);
    assert_batch(&b, (const uint32_t[]){ 1, 2 }, 2);
    assert_int_equal(prefetch_plan(&m, 3, 64 * KB, 16 * KB, &b), 2);
    char set[PREFETCH_UIDSET_CAP];
    prefetch_uidset(&m, &b, set);
    assert_string_equal(set, "1:2");
    maildrop_free(&m);
}

static void test_count_bound_and_worst_case_uidset(void **state)
{
    (void)state;
    struct maildrop m;
    maildrop_init(&m, 5);
    /* Every UID 10 digits, none consecutive: the longest UID set. */
    for (uint32_t i = 0; i < 300; i++)
        assert_true(maildrop_append(&m, 4000000000u + 2 * i, 1));
    struct prefetch_batch b;
    assert_int_equal(prefetch_plan(&m, 1, 64 * KB, 16 * KB, &b), PREFETCH_MESSAGES_MAX);
    char set[PREFETCH_UIDSET_CAP];
    size_t len = prefetch_uidset(&m, &b, set);
    assert_int_equal(len, PREFETCH_MESSAGES_MAX * 11 - 1);
    assert_int_equal(strlen(set), len);
    assert_memory_equal(set, "4000000000,4000000002,", 22);
    /* The last UID of the maildrop: a run may not wrap past it. */
    maildrop_free(&m);
    maildrop_init(&m, 5);
    assert_true(maildrop_append(&m, UINT32_MAX - 1, 1));
    assert_true(maildrop_append(&m, UINT32_MAX, 1));
    assert_int_equal(prefetch_plan(&m, 1, 64 * KB, 16 * KB, &b), 2);
    prefetch_uidset(&m, &b, set);
    assert_string_equal(set, "4294967294:4294967295");
    maildrop_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_messages_follow_within_budget),
        cmocka_unit_test(test_a_large_message_ends_the_batch),
        cmocka_unit_test(test_budget_is_never_exceeded),
        cmocka_unit_test(test_deleted_and_gone_are_skipped_not_ending),
        cmocka_unit_test(test_batch_stays_in_one_folder),
        cmocka_unit_test(test_count_bound_and_worst_case_uidset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
