/* Unit tests for translate/maildrop: numbering, STAT/RSET semantics, the
 * Dovecot-compatible UIDL, and UID sets that, sent in bounded chunks, cover
 * exactly the messages they should upstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "maildrop.h"

static void test_append_and_get(void **state)
{
    (void)state;
    struct maildrop m;

    maildrop_init(&m, 77);
    assert_int_equal(m.count, 0);
    assert_null(maildrop_get(&m, 0));
    assert_null(maildrop_get(&m, 1));
    /* Past the first allocation, so growth keeps earlier entries. */
    for (uint32_t i = 1; i <= 1000; i++)
        assert_true(maildrop_append(&m, i * 3, i + 100));
    assert_int_equal(m.count, 1000);
    assert_true(m.cap >= 1000);
    assert_null(maildrop_get(&m, 0));
    assert_null(maildrop_get(&m, 1001));
    assert_null(maildrop_get(&m, UINT32_MAX));
    for (uint32_t n = 1; n <= 1000; n++) {
        struct maildrop_entry *e = maildrop_get(&m, n);
        assert_non_null(e);
        assert_int_equal(e->uid, n * 3);
        assert_int_equal(e->size, n + 100);
        assert_int_equal(e->flags, 0);
    }
    assert_int_equal(m.uidvalidity, 77);
    maildrop_free(&m);
    assert_int_equal(m.count, 0);
    assert_null(m.entries);
    assert_null(maildrop_get(&m, 1));
    maildrop_free(&m);
}

static void test_append_bound(void **state)
{
    (void)state;
    struct maildrop m;

    maildrop_init(&m, 1);
    for (uint32_t i = 1; i <= MAILDROP_MAX_MESSAGES; i++) {
        if (!maildrop_append(&m, i, 1))
            fail_msg("append %u failed below the bound", i);
    }
    assert_int_equal(m.cap, MAILDROP_MAX_MESSAGES);
    assert_false(maildrop_append(&m, MAILDROP_MAX_MESSAGES + 1, 1));
    assert_int_equal(m.count, MAILDROP_MAX_MESSAGES);
    assert_int_equal(maildrop_get(&m, MAILDROP_MAX_MESSAGES)->uid, MAILDROP_MAX_MESSAGES);
    maildrop_free(&m);
}

static void test_stat_and_rset(void **state)
{
    (void)state;
    struct maildrop m;
    uint32_t count;
    uint64_t octets;

    maildrop_init(&m, 1);
    maildrop_stat(&m, &count, &octets);
    assert_int_equal(count, 0);
    assert_int_equal(octets, 0);

    assert_true(maildrop_append(&m, 10, 100));
    assert_true(maildrop_append(&m, 11, 200));
    assert_true(maildrop_append(&m, 12, UINT32_MAX));
    assert_true(maildrop_append(&m, 13, UINT32_MAX));
    maildrop_stat(&m, &count, &octets);
    assert_int_equal(count, 4);
    /* 64-bit total: two 4 GB sizes must not wrap. */
    assert_int_equal(octets, 300 + 2 * (uint64_t)UINT32_MAX);

    maildrop_get(&m, 2)->flags |= MAILDROP_DELETED | MAILDROP_RETRIEVED;
    maildrop_get(&m, 3)->flags |= MAILDROP_DELETED;
    maildrop_get(&m, 4)->flags |= MAILDROP_GONE | MAILDROP_SIZE_EXACT;
    maildrop_stat(&m, &count, &octets);
    assert_int_equal(count, 2);
    assert_int_equal(octets, 100 + (uint64_t)UINT32_MAX);

    maildrop_rset(&m);
    maildrop_stat(&m, &count, &octets);
    assert_int_equal(count, 4);
    assert_int_equal(maildrop_get(&m, 1)->flags, 0);
    assert_int_equal(maildrop_get(&m, 2)->flags, MAILDROP_RETRIEVED);
    assert_int_equal(maildrop_get(&m, 3)->flags, 0);
    assert_int_equal(maildrop_get(&m, 4)->flags, MAILDROP_GONE | MAILDROP_SIZE_EXACT);
    maildrop_free(&m);
}

static void test_uidl_format(void **state)
{
    (void)state;
    char out[MAILDROP_UIDL_MAX + 1];

    assert_int_equal(maildrop_format_uidl(1, 1700000000, out), 16);
    assert_string_equal(out, "000000016553f100");
    assert_int_equal(maildrop_format_uidl(0xabcdef, 0x1a2b, out), 16);
    assert_string_equal(out, "00abcdef00001a2b");
    assert_int_equal(maildrop_format_uidl(UINT32_MAX, UINT32_MAX, out), 16);
    assert_string_equal(out, "ffffffffffffffff");
}

/* Builds a maildrop from uids[] with flags[]. */
static void build(struct maildrop *m, const uint32_t *uids, const uint8_t *flags, size_t n)
{
    maildrop_init(m, 5);
    for (size_t i = 0; i < n; i++) {
        assert_true(maildrop_append(m, uids[i], 1));
        m->entries[i].flags = flags[i];
    }
}

static void expect_uidset(const struct maildrop *m, uint8_t flags, uint8_t without, const char *want)
{
    char out[512];
    uint32_t cursor = 0;
    size_t n = maildrop_uidset(m, 0, flags, without, &cursor, out, sizeof(out));

    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
    assert_int_equal(cursor, m->count);
    assert_int_equal(maildrop_uidset(m, 0, flags, without, &cursor, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void test_uidset_ranges(void **state)
{
    (void)state;
    enum { D = MAILDROP_DELETED, R = MAILDROP_RETRIEVED, G = MAILDROP_GONE };
    static const uint32_t uids[] = { 3, 7, 9, 10, 11, 12, 14, 15, 16, 20, 4294967294u, 4294967295u };
    static const uint8_t fl[] = { D, D, D, D | R, D, D, R, D | G, D, 0, D, D };
    struct maildrop m;

    build(&m, uids, fl, sizeof(uids) / sizeof(uids[0]));
    expect_uidset(&m, D, 0, "3,7,9:12,15:16,4294967294:4294967295");
    /* 15 is gone upstream, so 16 no longer extends a range. */
    expect_uidset(&m, D, G, "3,7,9:12,16,4294967294:4294967295");
    expect_uidset(&m, R, 0, "10,14");
    expect_uidset(&m, R, D, "14");
    expect_uidset(&m, D | R, 0, "10");
    expect_uidset(&m, 0, D | R | G, "20");
    expect_uidset(&m, G, D, "");
    expect_uidset(&m, 0, 0, "3,7,9:12,14:16,20,4294967294:4294967295");
    maildrop_free(&m);

    /* A match missing between two UIDs breaks the range even when the entry
     * in between is not in the set. */
    static const uint32_t gap_uids[] = { 1, 2, 3, 4 };
    static const uint8_t gap_fl[] = { D, D, 0, D };
    build(&m, gap_uids, gap_fl, 4);
    expect_uidset(&m, D, 0, "1:2,4");
    maildrop_free(&m);

    maildrop_init(&m, 5);
    expect_uidset(&m, 0, 0, "");
    maildrop_free(&m);
}

/* Parses a UID set and marks each UID in seen[]; fails on a duplicate. */
static void mark_set(const char *s, uint8_t *seen, uint32_t max_uid)
{
    while (*s != '\0') {
        char *end;
        unsigned long a = strtoul(s, &end, 10), b = a;
        assert_true(end != s);
        if (*end == ':') {
            s = end + 1;
            b = strtoul(s, &end, 10);
            assert_true(end != s);
            assert_true(b > a);
        }
        assert_true(b <= max_uid);
        for (unsigned long u = a; u <= b; u++) {
            assert_int_equal(seen[u], 0);
            seen[u] = 1;
        }
        s = end;
        if (*s == ',')
            s++;
        else
            assert_int_equal(*s, '\0');
    }
}

static void test_uidset_chunks_cover_exactly(void **state)
{
    (void)state;
    enum { N = 3000, MAX_UID = 3 * N + 10 };
    struct maildrop m;
    uint64_t rng = 99;
    uint32_t uid = 0;

    maildrop_init(&m, 5);
    for (uint32_t i = 0; i < N; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        uid += 1 + (uint32_t)(rng % 3 == 0);    /* runs with occasional gaps */
        assert_true(maildrop_append(&m, uid, 1));
        m.entries[i].flags = (uint8_t)((rng >> 8) % 4 != 0 ? MAILDROP_DELETED : 0);
        if ((rng >> 16) % 10 == 0)
            m.entries[i].flags |= MAILDROP_GONE;
    }

    static const size_t caps[] = { MAILDROP_UIDSET_MIN_CAP, 23, 30, 64, 200, 1000 };
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        uint8_t *seen = calloc(MAX_UID + 1, 1);
        assert_non_null(seen);
        char *out = malloc(caps[c]);
        assert_non_null(out);
        uint32_t cursor = 0;
        size_t n;
        int chunks = 0;
        while ((n = maildrop_uidset(&m, 0, MAILDROP_DELETED, MAILDROP_GONE, &cursor, out, caps[c])) > 0) {
            assert_true(n < caps[c]);
            assert_int_equal(strlen(out), n);
            mark_set(out, seen, MAX_UID);
            chunks++;
            assert_true(chunks < N + 1);
        }
        assert_int_equal(cursor, m.count);
        assert_true(chunks > 1);
        for (uint32_t i = 0; i < N; i++) {
            const struct maildrop_entry *e = &m.entries[i];
            bool want = (e->flags & MAILDROP_DELETED) && !(e->flags & MAILDROP_GONE);
            if (seen[e->uid] != want)
                fail_msg("cap %zu: uid %u in set %d, want %d", caps[c], e->uid, seen[e->uid], want);
            seen[e->uid] = 0;
        }
        /* Nothing outside the snapshot was named. */
        for (uint32_t u = 0; u <= MAX_UID; u++)
            assert_int_equal(seen[u], 0);
        free(out);
        free(seen);
    }
    maildrop_free(&m);
}

static void test_uidset_largest_range_fits_min_cap(void **state)
{
    (void)state;
    static const uint32_t uids[] = { 1, 4294967294u, 4294967295u };
    static const uint8_t fl[] = { MAILDROP_DELETED, MAILDROP_DELETED, MAILDROP_DELETED };
    struct maildrop m;
    char out[MAILDROP_UIDSET_MIN_CAP];
    uint32_t cursor = 0;

    build(&m, uids, fl, 3);
    assert_int_equal(maildrop_uidset(&m, 0, MAILDROP_DELETED, 0, &cursor, out, sizeof(out)), 1);
    assert_string_equal(out, "1");
    assert_int_equal(cursor, 1);
    assert_int_equal(maildrop_uidset(&m, 0, MAILDROP_DELETED, 0, &cursor, out, sizeof(out)), 21);
    assert_string_equal(out, "4294967294:4294967295");
    assert_int_equal(cursor, 3);
    assert_int_equal(maildrop_uidset(&m, 0, MAILDROP_DELETED, 0, &cursor, out, sizeof(out)), 0);
    maildrop_free(&m);
}

/* Several folders in one maildrop: UID sets never mix folders (each goes
 * to its own SELECTed mailbox), UIDLs differ even where UID and UIDVALIDITY
 * are equal, and the first folder keeps Dovecot's UIDL. */
static void test_folders(void **state)
{
    (void)state;
    struct maildrop m;
    maildrop_init(&m, 1700000000);
    assert_true(maildrop_append(&m, 1, 10));
    assert_true(maildrop_append(&m, 2, 10));
    uint32_t single = m.uidvalidity;
    assert_true(maildrop_add_folder(&m, 1700000000, 0xabcdef01));
    assert_int_not_equal(m.uidvalidity, single);
    assert_true(maildrop_append(&m, 2, 10));
    assert_true(maildrop_append(&m, 3, 10));
    for (uint32_t i = 1; i <= 4; i++)
        maildrop_get(&m, i)->flags |= MAILDROP_DELETED;

    char out[64];
    uint32_t cursor = 0;
    assert_int_equal(maildrop_uidset(&m, 0, MAILDROP_DELETED, 0, &cursor, out, sizeof out), 3);
    assert_string_equal(out, "1:2");
    assert_int_equal(maildrop_uidset(&m, 0, MAILDROP_DELETED, 0, &cursor, out, sizeof out), 0);
    cursor = 0;
    assert_int_equal(maildrop_uidset(&m, 1, MAILDROP_DELETED, 0, &cursor, out, sizeof out), 3);
    assert_string_equal(out, "2:3");

    char a[MAILDROP_UIDL_MAX + 1], b[MAILDROP_UIDL_MAX + 1];
    maildrop_uidl(&m, maildrop_get(&m, 2), a);
    maildrop_uidl(&m, maildrop_get(&m, 3), b);
    assert_string_equal(a, "000000026553f100");
    assert_string_equal(b, "000000026553f100-abcdef01");

    /* A folder's UIDVALIDITY change changes the maildrop's identity. */
    struct maildrop other;
    maildrop_init(&other, 1700000000);
    assert_true(maildrop_add_folder(&other, 1700000001, 0xabcdef01));
    assert_int_not_equal(other.uidvalidity, m.uidvalidity);
    assert_false(maildrop_add_folder(&other, 1, 0));
    for (int f = 2; f < MAILDROP_MAX_FOLDERS; f++)
        assert_true(maildrop_add_folder(&other, 1, (uint32_t)f));
    assert_false(maildrop_add_folder(&other, 1, 99));
    maildrop_free(&m);
    maildrop_free(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_get),
        cmocka_unit_test(test_append_bound),
        cmocka_unit_test(test_stat_and_rset),
        cmocka_unit_test(test_uidl_format),
        cmocka_unit_test(test_folders),
        cmocka_unit_test(test_uidset_ranges),
        cmocka_unit_test(test_uidset_chunks_cover_exactly),
        cmocka_unit_test(test_uidset_largest_range_fits_min_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
