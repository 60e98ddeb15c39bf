/* Unit tests for translate/listing_cache and translate/listing_build: the
 * node's cache of folder listings keeps its bounds per user and in total,
 * evicts the least recently used user, and a cached listing merged with a
 * CHANGEDSINCE answer equals the folder, or says it cannot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "listing_build.h"
#include "listing_cache.h"

static struct listing_record rec(uint32_t uid, uint8_t flags)
{
    return (struct listing_record){ .state_id = 1000u + uid, .uid = uid, .size = uid * 10,
                                    .internaldate = 1700000000u + uid, .flags = flags };
}

static struct listing_meta meta(uint64_t modseq, uint32_t uidnext)
{
    return (struct listing_meta){ .uidvalidity = 42, .uidnext = uidnext, .highestmodseq = modseq };
}

static void test_put_get_replace_forget(void **state)
{
    (void)state;
    struct listing_cache c;
    listing_cache_init(&c, 1 << 20, 1 << 20);
    struct listing_record r[3] = { rec(1, 0), rec(2, LISTING_SEEN), rec(5, 0) };
    struct listing_meta m = meta(77, 6);
    assert_null(listing_cache_get(&c, "h:143\0alice", 11, "INBOX"));
    assert_true(listing_cache_put(&c, "h:143\0alice", 11, "INBOX", &m, r, 3));
    const struct listing_cache_folder *f = listing_cache_get(&c, "h:143\0alice", 11, "INBOX");
    assert_non_null(f);
    assert_int_equal(f->count, 3);
    assert_true(f->meta.highestmodseq == 77);
    assert_int_equal(f->records[1].flags, LISTING_SEEN);
    assert_memory_equal(f->records, r, sizeof r);
    /* Another folder, another user (the key is bytes, NUL included). */
    assert_null(listing_cache_get(&c, "h:143\0alice", 11, "Archive"));
    assert_null(listing_cache_get(&c, "h:143\0alicf", 11, "INBOX"));
    assert_null(listing_cache_get(&c, "h:143\0alice", 10, "INBOX"));
    /* Replacing a folder keeps one copy and the byte count right. */
    size_t bytes = c.bytes;
    m.highestmodseq = 78;
    assert_true(listing_cache_put(&c, "h:143\0alice", 11, "INBOX", &m, r, 2));
    assert_int_equal(c.bytes, bytes - sizeof r[0]);
    f = listing_cache_get(&c, "h:143\0alice", 11, "INBOX");
    assert_int_equal(f->count, 2);
    assert_true(f->meta.highestmodseq == 78);
    /* An empty folder is a listing too. */
    assert_true(listing_cache_put(&c, "h:143\0alice", 11, "Empty", &m, NULL, 0));
    assert_int_equal(listing_cache_get(&c, "h:143\0alice", 11, "Empty")->count, 0);
    listing_cache_forget(&c, "h:143\0alice", 11, "INBOX");
    listing_cache_forget(&c, "h:143\0alice", 11, "Empty");
    assert_null(listing_cache_get(&c, "h:143\0alice", 11, "INBOX"));
    assert_int_equal(c.bytes, 0);
    assert_int_equal(c.n_users, 0);
    listing_cache_deinit(&c);
}

static void test_bounds_and_lru(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct listing_record *r = calloc(N, sizeof *r);
    assert_non_null(r);
    for (uint32_t i = 0; i < N; i++)
        r[i] = rec(i + 1, 0);
    struct listing_meta m = meta(5, N + 1);
    size_t one = N * sizeof *r;
    struct listing_cache c;
    /* Room for about three users in total, one folder each per user. */
    listing_cache_init(&c, 3 * one + 3 * 1024, one + 1024);
    char key[32];
    for (int u = 0; u < 5; u++) {
        int n = snprintf(key, sizeof key, "user%d", u);
        assert_true(listing_cache_put(&c, key, (size_t)n, "INBOX", &m, r, N));
        assert_true(c.bytes <= c.max_bytes);
        if (u == 2)   /* user0 is used again: user1 is now the oldest */
            assert_non_null(listing_cache_get(&c, "user0", 5, "INBOX"));
    }
    assert_int_equal(c.n_users, 3);
    assert_non_null(listing_cache_get(&c, "user0", 5, "INBOX"));
    assert_null(listing_cache_get(&c, "user1", 5, "INBOX"));
    assert_null(listing_cache_get(&c, "user2", 5, "INBOX"));
    assert_non_null(listing_cache_get(&c, "user4", 5, "INBOX"));
    /* A second folder of user4 would pass the per-user bound: not kept,
     * and its first folder stays. */
    assert_false(listing_cache_put(&c, "user4", 5, "Archive", &m, r, N));
    assert_null(listing_cache_get(&c, "user4", 5, "Archive"));
    assert_non_null(listing_cache_get(&c, "user4", 5, "INBOX"));
    /* A smaller bound on reload evicts until it holds. */
    listing_cache_set_limits(&c, one + 1024, one + 1024);
    assert_true(c.bytes <= one + 1024);
    assert_int_equal(c.n_users, 1);
    listing_cache_set_limits(&c, 0, 0);
    assert_int_equal(c.bytes, 0);
    assert_false(listing_cache_put(&c, "user9", 5, "INBOX", &m, r, 1));
    listing_cache_deinit(&c);
    free(r);
}

static void test_many_users_hash_growth(void **state)
{
    (void)state;
    struct listing_cache c;
    listing_cache_init(&c, 64 << 20, 1 << 20);
    struct listing_record r[2] = { rec(1, 0), rec(2, 0) };
    struct listing_meta m = meta(1, 3);
    char key[32];
    for (int u = 0; u < 5000; u++) {
        int n = snprintf(key, sizeof key, "u%d", u);
        assert_true(listing_cache_put(&c, key, (size_t)n, "INBOX", &m, r, 2));
    }
    for (int u = 0; u < 5000; u++) {
        int n = snprintf(key, sizeof key, "u%d", u);
        const struct listing_cache_folder *f = listing_cache_get(&c, key, (size_t)n, "INBOX");
        assert_non_null(f);
        assert_int_equal(f->records[1].uid, 2);
    }
    assert_int_equal(c.n_users, 5000);
    listing_cache_deinit(&c);
}

static void test_build_merges_changes(void **state)
{
    (void)state;
    struct listing_record cached[4] = { rec(2, 0), rec(3, 0), rec(7, 0), rec(9, 0) };
    struct listing_build b;
    listing_build_init(&b);
    assert_true(listing_build_start_from(&b, cached, 4));
    /* \Seen on 3, \Deleted on 9, new mail 10 and 12, in mailbox order. */
    struct listing_record changes[4] = { rec(3, LISTING_SEEN), rec(9, LISTING_DELETED), rec(10, 0),
                                         rec(12, 0) };
    for (int i = 0; i < 4; i++)
        listing_build_apply(&b, &changes[i]);
    assert_false(b.inconsistent);
    assert_int_equal(b.count, 6);
    assert_int_equal(b.replaced, 2);
    assert_int_equal(b.appended, 2);
    uint32_t uids[6] = { 2, 3, 7, 9, 10, 12 };
    for (int i = 0; i < 6; i++)
        assert_int_equal(b.records[i].uid, uids[i]);
    assert_int_equal(b.records[1].flags, LISTING_SEEN);
    assert_int_equal(b.records[3].flags, LISTING_DELETED);
    assert_int_equal(b.records[0].flags, 0);
    /* A UID among the cached ones that the cache lacks: not a correct
     * cache, the caller lists in full. */
    struct listing_record odd = rec(5, 0);
    listing_build_apply(&b, &odd);
    assert_true(b.inconsistent);
    assert_int_equal(b.count, 6);
    /* Reset: a full listing from nothing, appended in order. */
    listing_build_reset(&b);
    assert_false(b.inconsistent);
    for (uint32_t u = 1; u <= 5000; u++) {
        struct listing_record x = rec(u, 0);
        listing_build_apply(&b, &x);
    }
    assert_int_equal(b.count, 5000);
    assert_int_equal(b.appended, 5000);
    assert_int_equal(b.records[4999].uid, 5000);
    listing_build_free(&b);
    /* Starting from an empty cache. */
    assert_true(listing_build_start_from(&b, NULL, 0));
    struct listing_record one = rec(1, 0);
    listing_build_apply(&b, &one);
    assert_int_equal(b.count, 1);
    listing_build_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace_forget),
        cmocka_unit_test(test_bounds_and_lru),
        cmocka_unit_test(test_many_users_hash_growth),
        cmocka_unit_test(test_build_merges_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
