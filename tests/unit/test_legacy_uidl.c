/* Unit tests for translate/legacy_uidl: the session's table of legacy UIDLs
 * and the rule that decides which upstream message gets which. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "legacy_uidl.h"
#include "maildrop.h"

static void assert_found(const struct legacy_uidl *t, uint32_t msgnum, const char *uidl)
{
    size_t len = 0;
    const char *p = legacy_uidl_find(t, msgnum, &len);
    if (!uidl) {
        assert_null(p);
        return;
    }
    assert_non_null(p);
    assert_int_equal(len, strlen(uidl));
    assert_memory_equal(p, uidl, len);
}

/* ---- the table ----------------------------------------------------------- */

static void test_table_add_find(void **state)
{
    (void)state;
    struct legacy_uidl t;
    legacy_uidl_init(&t);
    assert_found(&t, 1, NULL);
    assert_true(legacy_uidl_add(&t, 2, "UID-two", 7));
    assert_true(legacy_uidl_add(&t, 5, "x", 1));
    assert_true(legacy_uidl_add(&t, 9, "0000000100000abc", 16));
    assert_int_equal(t.count, 3);
    assert_found(&t, 2, "UID-two");
    assert_found(&t, 5, "x");
    assert_found(&t, 9, "0000000100000abc");
    assert_found(&t, 1, NULL);
    assert_found(&t, 3, NULL);
    assert_found(&t, 10, NULL);
    legacy_uidl_free(&t);
    assert_int_equal(t.count, 0);
    assert_null(t.entries);
    assert_found(&t, 2, NULL);
}

static void test_table_refuses(void **state)
{
    (void)state;
    struct legacy_uidl t;
    legacy_uidl_init(&t);
    char longest[UIDL_MAX + 1];
    memset(longest, 'L', sizeof longest);
    assert_false(legacy_uidl_add(&t, 0, "zero", 4));
    assert_false(legacy_uidl_add(&t, 1, "", 0));
    assert_false(legacy_uidl_add(&t, 1, longest, UIDL_MAX + 1));
    assert_false(legacy_uidl_add(&t, 1, "a b", 3));
    assert_false(legacy_uidl_add(&t, 1, "a\x7f", 2));
    assert_false(legacy_uidl_add(&t, 1, "\x80", 1));
    assert_int_equal(t.count, 0);
    assert_true(legacy_uidl_add(&t, 4, longest, UIDL_MAX));
    /* Ascending message numbers only. */
    assert_false(legacy_uidl_add(&t, 4, "again", 5));
    assert_false(legacy_uidl_add(&t, 3, "before", 6));
    assert_int_equal(t.count, 1);
    assert_found(&t, 4, "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL");
    legacy_uidl_free(&t);
}

static void test_table_many(void **state)
{
    (void)state;
    struct legacy_uidl t;
    legacy_uidl_init(&t);
    char uidl[32];
    for (uint32_t n = 1; n <= 20000; n++) {
        if (n % 3 == 0)
            continue;
        int len = snprintf(uidl, sizeof uidl, "U%u", n);
        assert_true(legacy_uidl_add(&t, n, uidl, (size_t)len));
    }
    for (uint32_t n = 1; n <= 20001; n++) {
        snprintf(uidl, sizeof uidl, "U%u", n);
        assert_found(&t, n, n % 3 == 0 || n > 20000 ? NULL : uidl);
    }
    legacy_uidl_free(&t);
}

/* ---- the match ----------------------------------------------------------- */

struct msg {
    uint32_t uid;
    const char *msgid;   /* NULL: none */
};

static void add_all(struct legacy_match *m, const struct msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_true(legacy_match_add(m, msgs[i].uid, msgs[i].msgid,
                                     msgs[i].msgid ? strlen(msgs[i].msgid) : 0));
}

/* Looks every lookup id up in a fake hash of (field, value) pairs and feeds
 * the values in one range. */
static void feed_from_hash(struct legacy_match *m, size_t n_lookup, const char *const (*hash)[2], size_t n_hash)
{
    const char **ids = calloc(n_lookup + 1, sizeof *ids);
    size_t *lens = calloc(n_lookup + 1, sizeof *lens);
    const char **values = calloc(n_lookup + 1, sizeof *values);
    size_t *vlens = calloc(n_lookup + 1, sizeof *vlens);
    assert_non_null(ids);
    assert_non_null(lens);
    assert_non_null(values);
    assert_non_null(vlens);
    legacy_match_lookup_ids(m, 0, n_lookup, ids, lens);
    for (size_t i = 0; i < n_lookup; i++) {
        for (size_t k = 0; k < n_hash; k++) {
            if (strlen(hash[k][0]) == lens[i] && memcmp(hash[k][0], ids[i], lens[i]) == 0) {
                values[i] = hash[k][1];
                vlens[i] = strlen(hash[k][1]);
            }
        }
    }
    assert_true(legacy_match_set_values(m, 0, values, vlens, n_lookup));
    free(ids);
    free(lens);
    free(values);
    free(vlens);
}

static void assert_uidl(const struct legacy_match *m, uint32_t uid, const char *uidl)
{
    size_t len = 0;
    const char *p = legacy_match_uidl(m, uid, &len);
    if (!uidl) {
        assert_null(p);
        return;
    }
    assert_non_null(p);
    assert_int_equal(len, strlen(uidl));
    assert_memory_equal(p, uidl, len);
}

static void test_match_rules(void **state)
{
    (void)state;
    static const struct msg msgs[] = {
        { 10, "<unique@x>" },        /* matched */
        { 11, NULL },                /* no Message-ID */
        { 12, "<twice@x>" },         /* same Message-ID upstream twice */
        { 13, "<not-stored@x>" },    /* not in the hash */
        { 14, "<twice@x>" },
        { 15, "<bad-value@x>" },     /* stored value malformed */
        { 16, "<dup-uidl-1@x>" },    /* two values give one UIDL */
        { 17, "<dup-uidl-2@x>" },
        { 18, "<size-differs@x>" },  /* the stored size is not compared */
        { 20, "<empty-value@x>" },
    };
    static const char *const hash[][2] = {
        { "<unique@x>", "OLD-1 1200" },
        { "<twice@x>", "OLD-2 300" },
        { "<bad-value@x>", "OLD-3" },
        { "<dup-uidl-1@x>", "OLD-4 10" },
        { "<dup-uidl-2@x>", "OLD-4 20" },
        { "<size-differs@x>", "OLD-5 4294967295" },
        { "<empty-value@x>", "" },
    };
    struct legacy_match m;
    legacy_match_init(&m);
    add_all(&m, msgs, sizeof msgs / sizeof msgs[0]);

    size_t n_lookup = 99;
    assert_true(legacy_match_prepare(&m, &n_lookup));
    /* Present and unique, in mailbox order: the repeated one is not asked for. */
    assert_int_equal(n_lookup, 7);
    const char *ids[7];
    size_t lens[7];
    legacy_match_lookup_ids(&m, 0, 7, ids, lens);
    static const char *const want[] = { "<unique@x>", "<not-stored@x>", "<bad-value@x>", "<dup-uidl-1@x>",
                                        "<dup-uidl-2@x>", "<size-differs@x>", "<empty-value@x>" };
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(lens[i], strlen(want[i]));
        assert_memory_equal(ids[i], want[i], lens[i]);
    }
    feed_from_hash(&m, n_lookup, hash, sizeof hash / sizeof hash[0]);

    struct legacy_match_stats st;
    assert_true(legacy_match_resolve(&m, &st));
    assert_int_equal(st.messages, 10);
    assert_int_equal(st.no_message_id, 1);
    assert_int_equal(st.same_message_id, 2);
    assert_int_equal(st.not_stored, 1);
    assert_int_equal(st.bad_value, 2);
    assert_int_equal(st.same_uidl, 2);
    assert_int_equal(st.matched, 2);

    assert_uidl(&m, 10, "OLD-1");
    assert_uidl(&m, 18, "OLD-5");
    for (uint32_t uid = 11; uid <= 17; uid++)
        assert_uidl(&m, uid, NULL);
    assert_uidl(&m, 19, NULL);
    assert_uidl(&m, 20, NULL);
    assert_uidl(&m, 9, NULL);
    legacy_match_free(&m);
    assert_int_equal(m.count, 0);
}

static void test_match_build_for_maildrop(void **state)
{
    (void)state;
    static const struct msg msgs[] = {
        { 1, "<a@x>" }, { 2, "<b@x>" }, { 3, "<c@x>" }, { 5, "<e@x>" }, { 8, "<h@x>" },
    };
    static const char *const hash[][2] = {
        { "<a@x>", "LA 1" }, { "<c@x>", "LC 3" }, { "<e@x>", "LE 5" }, { "<h@x>", "LH 8" },
    };
    struct legacy_match m;
    legacy_match_init(&m);
    add_all(&m, msgs, sizeof msgs / sizeof msgs[0]);
    size_t n_lookup;
    assert_true(legacy_match_prepare(&m, &n_lookup));
    feed_from_hash(&m, n_lookup, hash, sizeof hash / sizeof hash[0]);
    struct legacy_match_stats st;
    assert_true(legacy_match_resolve(&m, &st));
    assert_int_equal(st.matched, 4);
    assert_int_equal(st.not_stored, 1);

    /* The view kept UIDs 2, 3, 4 (arrived after the ids were fetched) and 8. */
    struct maildrop drop;
    maildrop_init(&drop, 7);
    assert_true(maildrop_append(&drop, 2, 100));
    assert_true(maildrop_append(&drop, 3, 100));
    assert_true(maildrop_append(&drop, 4, 100));
    assert_true(maildrop_append(&drop, 8, 100));
    struct legacy_uidl t;
    legacy_uidl_init(&t);
    assert_true(legacy_match_build(&m, &drop, &t));
    legacy_match_free(&m);
    assert_int_equal(t.count, 2);
    assert_found(&t, 1, NULL);
    assert_found(&t, 2, "LC");
    assert_found(&t, 3, NULL);
    assert_found(&t, 4, "LH");
    legacy_uidl_free(&t);
    maildrop_free(&drop);
}

static void test_match_batches(void **state)
{
    (void)state;
    enum { N = 2500, BATCH = 1000 };
    struct legacy_match m;
    legacy_match_init(&m);
    char id[64], value[64];
    for (uint32_t i = 0; i < N; i++) {
        int n = snprintf(id, sizeof id, "<msg.%u@example.org>", i);
        assert_true(legacy_match_add(&m, 100 + 2 * i, id, (size_t)n));
    }
    size_t n_lookup;
    assert_true(legacy_match_prepare(&m, &n_lookup));
    assert_int_equal(n_lookup, N);

    /* Batches come back in any order; the middle one never does. */
    static char values_store[BATCH][64];
    const char *values[BATCH];
    size_t vlens[BATCH];
    const char *ids[BATCH];
    size_t lens[BATCH];
    static const size_t firsts[] = { 2000, 0 };
    for (size_t b = 0; b < 2; b++) {
        size_t first = firsts[b], n = first + BATCH <= N ? BATCH : N - first;
        legacy_match_lookup_ids(&m, first, n, ids, lens);
        for (size_t i = 0; i < n; i++) {
            snprintf(id, sizeof id, "<msg.%zu@example.org>", first + i);
            assert_int_equal(lens[i], strlen(id));
            assert_memory_equal(ids[i], id, lens[i]);
            /* Every seventh id is not in the hash. */
            if ((first + i) % 7 == 0) {
                values[i] = NULL;
                vlens[i] = 0;
                continue;
            }
            int k = snprintf(values_store[i], sizeof values_store[i], "LEGACY%zu %zu", first + i, i);
            values[i] = values_store[i];
            vlens[i] = (size_t)k;
        }
        assert_true(legacy_match_set_values(&m, first, values, vlens, n));
        /* A range is fed once. */
        assert_false(legacy_match_set_values(&m, first, values, vlens, 1));
    }
    /* Outside the lookup ids. */
    assert_false(legacy_match_set_values(&m, N, values, vlens, 1));
    assert_false(legacy_match_set_values(&m, N - 1, values, vlens, 2));

    struct legacy_match_stats st;
    assert_true(legacy_match_resolve(&m, &st));
    assert_int_equal(st.messages, N);
    size_t fed = 1000 + 500, absent = 0;
    for (size_t i = 0; i < N; i++)
        if ((i < 1000 || i >= 2000) && i % 7 == 0)
            absent++;
    assert_int_equal(st.matched, fed - absent);
    assert_int_equal(st.not_stored, N - (fed - absent));
    for (uint32_t i = 0; i < N; i++) {
        snprintf(value, sizeof value, "LEGACY%u", i);
        bool has = (i < 1000 || i >= 2000) && i % 7 != 0;
        assert_uidl(&m, 100 + 2 * i, has ? value : NULL);
        assert_uidl(&m, 101 + 2 * i, NULL);
    }
    /* Resolving again changes nothing. */
    struct legacy_match_stats again;
    assert_true(legacy_match_resolve(&m, &again));
    assert_memory_equal(&again, &st, sizeof st);
    assert_false(legacy_match_set_values(&m, 1000, values, vlens, 1));
    legacy_match_free(&m);
}

static void test_match_refuses(void **state)
{
    (void)state;
    struct legacy_match m;
    legacy_match_init(&m);
    char too_long[UIDL_MSGID_MAX + 2];
    memset(too_long, 'a', sizeof too_long);
    assert_false(legacy_match_add(&m, 5, too_long, UIDL_MSGID_MAX + 1));
    assert_true(legacy_match_add(&m, 5, "<a@x>", 5));
    /* UIDs ascend: IMAP mailbox order. */
    assert_false(legacy_match_add(&m, 5, "<b@x>", 5));
    assert_false(legacy_match_add(&m, 4, "<b@x>", 5));
    assert_true(legacy_match_add(&m, 6, NULL, 0));
    assert_int_equal(m.count, 2);

    /* Nothing before prepare, and no uidl before resolve. */
    const char *v[] = { "A 1" };
    size_t vl[] = { 3 };
    assert_false(legacy_match_set_values(&m, 0, v, vl, 1));
    struct legacy_match_stats st;
    assert_false(legacy_match_resolve(&m, &st));
    size_t n_lookup;
    assert_true(legacy_match_prepare(&m, &n_lookup));
    assert_int_equal(n_lookup, 1);
    assert_false(legacy_match_add(&m, 7, "<c@x>", 5));
    size_t len;
    assert_null(legacy_match_uidl(&m, 5, &len));
    assert_true(legacy_match_set_values(&m, 0, v, vl, 1));
    assert_true(legacy_match_resolve(&m, &st));
    assert_uidl(&m, 5, "A");
    legacy_match_free(&m);
}

static void test_match_nothing_fed(void **state)
{
    (void)state;
    struct legacy_match m;
    legacy_match_init(&m);
    size_t n_lookup = 5;
    assert_true(legacy_match_prepare(&m, &n_lookup));
    assert_int_equal(n_lookup, 0);
    assert_true(legacy_match_set_values(&m, 0, NULL, NULL, 0));
    struct legacy_match_stats st;
    assert_true(legacy_match_resolve(&m, &st));
    assert_int_equal(st.messages, 0);
    assert_int_equal(st.matched, 0);
    legacy_match_free(&m);

    /* Ids looked up but never answered count as not stored. */
    legacy_match_init(&m);
    assert_true(legacy_match_add(&m, 1, "<a@x>", 5));
    assert_true(legacy_match_prepare(&m, &n_lookup));
    assert_true(legacy_match_resolve(&m, &st));
    assert_int_equal(st.not_stored, 1);
    assert_uidl(&m, 1, NULL);
    legacy_match_free(&m);
}

/* A UIDL repeated three times: none of the three keeps it; the others are
 * unaffected. Message-IDs that differ only in case are different ids. */
static void test_match_repeats(void **state)
{
    (void)state;
    static const struct msg msgs[] = {
        { 1, "<a@x>" }, { 2, "<A@x>" }, { 3, "<b@x>" }, { 4, "<c@x>" }, { 5, "<d@x>" },
        { 6, "<e@x>" }, { 7, "<e@x>" }, { 8, "<e@x>" },
    };
    static const char *const hash[][2] = {
        { "<a@x>", "SAME 1" }, { "<A@x>", "UPPER 2" }, { "<b@x>", "SAME 3" }, { "<c@x>", "OTHER 4" },
        { "<d@x>", "SAME 5" }, { "<e@x>", "E 6" },
    };
    struct legacy_match m;
    legacy_match_init(&m);
    add_all(&m, msgs, sizeof msgs / sizeof msgs[0]);
    size_t n_lookup;
    assert_true(legacy_match_prepare(&m, &n_lookup));
    assert_int_equal(n_lookup, 5);
    feed_from_hash(&m, n_lookup, hash, sizeof hash / sizeof hash[0]);
    struct legacy_match_stats st;
    assert_true(legacy_match_resolve(&m, &st));
    assert_int_equal(st.same_uidl, 3);
    assert_int_equal(st.same_message_id, 3);
    assert_int_equal(st.matched, 2);
    assert_uidl(&m, 1, NULL);
    assert_uidl(&m, 2, "UPPER");
    assert_uidl(&m, 3, NULL);
    assert_uidl(&m, 4, "OTHER");
    assert_uidl(&m, 5, NULL);
    assert_uidl(&m, 6, NULL);
    legacy_match_free(&m);
}

/* A legacy UIDL equal to popgate's own UIDL of an unmatched message would
 * give two messages one UIDL: that legacy UIDL goes, its message falls back
 * to its own UIDL; other legacy UIDLs stay. */
static void test_drop_collisions_with_own_uidls(void **state)
{
    (void)state;
    struct maildrop drop;
    maildrop_init(&drop, 0x10);
    for (uint32_t uid = 1; uid <= 4; uid++)
        assert_true(maildrop_append(&drop, uid, 100));
    char own3[MAILDROP_UIDL_MAX + 1];
    maildrop_uidl(&drop, maildrop_get(&drop, 3), own3);   /* message 3 keeps its own */

    struct legacy_uidl t;
    legacy_uidl_init(&t);
    assert_true(legacy_uidl_add(&t, 1, own3, strlen(own3)));  /* collides with message 3 */
    assert_true(legacy_uidl_add(&t, 2, "old-2", 5));
    assert_true(legacy_uidl_add(&t, 4, "old-4", 5));
    size_t dropped = 99;
    assert_true(legacy_uidl_drop_collisions(&t, &drop, &dropped));
    assert_int_equal(dropped, 1);
    size_t len;
    assert_null(legacy_uidl_find(&t, 1, &len));
    assert_memory_equal(legacy_uidl_find(&t, 2, &len), "old-2", 5);
    assert_memory_equal(legacy_uidl_find(&t, 4, &len), "old-4", 5);
    /* No collision left: nothing more goes. */
    assert_true(legacy_uidl_drop_collisions(&t, &drop, &dropped));
    assert_int_equal(dropped, 0);
    assert_int_equal(t.count, 2);
    legacy_uidl_free(&t);
    maildrop_free(&drop);
}

/* ---- the header-hash stage ----------------------------------------------- */

/* Values from a fake hash for lent fields. */
static void values_for(const char *const *fields, const size_t *lens, size_t n, const char *const (*hash)[2],
                       size_t n_hash, const char **values, size_t *vlens)
{
    for (size_t i = 0; i < n; i++) {
        values[i] = NULL;
        vlens[i] = 0;
        for (size_t k = 0; k < n_hash; k++)
            if (strlen(hash[k][0]) == lens[i] && memcmp(hash[k][0], fields[i], lens[i]) == 0) {
                values[i] = hash[k][1];
                vlens[i] = strlen(hash[k][1]);
            }
    }
}

#define H1 "11111111111111111111111111111111"
#define H2 "22222222222222222222222222222222"
#define H3 "33333333333333333333333333333333"

static void test_match_header_hash(void **state)
{
    (void)state;
    /* uid 1: matched by Message-ID; 2: no Message-ID, key H1/100 stored;
     * 3 and 4: one Message-ID twice, keys H2/200 and H2/201 (same hash,
     * other size: two keys); 5 and 6: no Message-ID, the same key H3/300
     * twice upstream: neither; 7: no Message-ID, size 999 not marked: not
     * even hashed. */
    static const struct msg msgs[] = {
        { 1, "<a@x>" }, { 2, NULL }, { 3, "PM20008:14:54 AM" }, { 4, "PM20008:14:54 AM" },
        { 5, NULL }, { 6, NULL }, { 7, NULL },
    };
    static const uint32_t sizes[] = { 50, 100, 200, 201, 300, 300, 999 };
    static const char *const hash[][2] = {
        { "<a@x>", "A 50" },
        { " hdr 100 " H1, "B 100" }, { " hdr 200 " H2, "C 200" }, { " hdr 201 " H2, "D 201" },
        { " hdr 300 " H3, "E 300" },
        { " size 100", "1" }, { " size 200", "1" }, { " size 201", "1" }, { " size 300", "1" },
    };
    static const char *const hexes[] = { NULL, H1, H2, H2, H3, H3, NULL };
    struct legacy_match m;
    legacy_match_init(&m);
    add_all(&m, msgs, 7);
    size_t n_lookup;
    assert_true(legacy_match_prepare(&m, &n_lookup));
    feed_from_hash(&m, n_lookup, hash, sizeof hash / sizeof hash[0]);
    for (size_t i = 0; i < 7; i++)
        assert_true(legacy_match_set_size(&m, msgs[i].uid, sizes[i]));

    const char *const *fields;
    const size_t *lens;
    size_t n;
    const char *values[16];
    size_t vlens[16];
    assert_true(legacy_match_size_fields(&m, &fields, &lens, &n));
    assert_int_equal(n, 5);           /* 100, 200, 201, 300, 999: the unmatched sizes */
    values_for(fields, lens, n, hash, sizeof hash / sizeof hash[0], values, vlens);
    uint32_t *uids;
    size_t n_uids;
    assert_true(legacy_match_set_size_values(&m, values, n, &uids, &n_uids));
    assert_int_equal(n_uids, 5);      /* uids 2..6 */
    for (size_t i = 0; i < n_uids; i++) {
        assert_int_equal(uids[i], i + 2);
        assert_true(legacy_match_set_hash(&m, uids[i], hexes[i + 1]));
    }
    assert_false(legacy_match_set_hash(&m, 7, H1));
    assert_true(legacy_match_hash_fields(&m, &fields, &lens, &n));
    assert_int_equal(n, 3);           /* 5 and 6 share their key */
    values_for(fields, lens, n, hash, sizeof hash / sizeof hash[0], values, vlens);
    assert_true(legacy_match_set_hash_values(&m, values, vlens, n));

    struct legacy_match_stats st;
    assert_true(legacy_match_resolve(&m, &st));
    assert_uidl(&m, 1, "A");
    assert_uidl(&m, 2, "B");
    assert_uidl(&m, 3, "C");
    assert_uidl(&m, 4, "D");
    assert_uidl(&m, 5, NULL);
    assert_uidl(&m, 6, NULL);
    assert_uidl(&m, 7, NULL);
    assert_int_equal(st.matched, 4);
    assert_int_equal(st.matched_message_id, 1);
    assert_int_equal(st.matched_header_hash, 3);
    assert_int_equal(st.hashed, 5);
    assert_int_equal(st.same_header_hash, 2);
    assert_int_equal(st.no_message_id, 3);
    legacy_match_free(&m);
}

/* The one key rule for both imports (uidl_file.h uidl_keys_assign). */
static void test_keys_assign(void **state)
{
    (void)state;
    struct uidl_file_entry e[6] = {
        { .uidl = "u1", .uidl_len = 2, .msgid = "<a@x>", .msgid_len = 5, .size = 10, .has_hash = true, .hash = H1 },
        { .uidl = "u2", .uidl_len = 2, .msgid = "<d@x>", .msgid_len = 5, .size = 20, .has_hash = true, .hash = H2 },
        { .uidl = "u3", .uidl_len = 2, .msgid = "<d@x>", .msgid_len = 5, .size = 21, .has_hash = true, .hash = H2 },
        { .uidl = "u4", .uidl_len = 2, .size = 30, .has_hash = true, .hash = H3 },
        { .uidl = "u5", .uidl_len = 2, .size = 30, .has_hash = true, .hash = H3 },
        { .uidl = "u6", .uidl_len = 2, .size = 40 },
    };
    for (size_t i = 0; i < 6; i++)
        e[i].line = i + 1;
    struct uidl_key_stats st;
    assert_true(uidl_keys_assign(e, 6, &st));
    assert_int_equal(e[0].key, UIDL_KEY_MESSAGE_ID);
    assert_int_equal(e[1].key, UIDL_KEY_HEADER_HASH);   /* same id, other size: the key differs */
    assert_int_equal(e[2].key, UIDL_KEY_HEADER_HASH);
    assert_int_equal(e[3].key, UIDL_KEY_NONE);
    assert_int_equal(e[4].key, UIDL_KEY_NONE);
    assert_int_equal(e[3].same_hash_line, 5);
    assert_int_equal(e[4].same_hash_line, 4);
    assert_int_equal(e[5].key, UIDL_KEY_NONE);
    assert_int_equal(st.by_message_id, 1);
    assert_int_equal(st.by_header_hash, 2);
    assert_int_equal(st.same_header_hash, 2);
    assert_int_equal(st.no_key, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_add_find),
        cmocka_unit_test(test_drop_collisions_with_own_uidls),
        cmocka_unit_test(test_table_refuses),
        cmocka_unit_test(test_table_many),
        cmocka_unit_test(test_match_rules),
        cmocka_unit_test(test_match_build_for_maildrop),
        cmocka_unit_test(test_match_batches),
        cmocka_unit_test(test_match_refuses),
        cmocka_unit_test(test_match_nothing_fed),
        cmocka_unit_test(test_match_repeats),
        cmocka_unit_test(test_match_header_hash),
        cmocka_unit_test(test_keys_assign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
