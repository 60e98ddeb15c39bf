/* Unit tests for translate/view: what each view kind shows for every
 * combination of upstream \Seen and Redis state, each window and its exact
 * bound, max_messages keeping the newest, the filter keeping order and entry
 * contents, and config parsing that leaves the policy untouched on bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include "view.h"

#define NOW ((int64_t)1770000000)   /* 2026-02-02, a fixed clock */
#define DAY ((int64_t)86400)

static void assert_policy_equal(const struct view_policy *a, const struct view_policy *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->since, b->since);
    assert_int_equal(a->from_first_login, b->from_first_login);
    assert_int_equal(a->max_age, b->max_age);
    assert_int_equal(a->max_messages, b->max_messages);
    assert_int_equal(a->on_retr, b->on_retr);
    assert_int_equal(a->on_dele, b->on_dele);
}

/* A policy with every field away from its default, so a parser that touches
 * the wrong field, or resets one, shows up in assert_policy_equal(). */
static void policy_nondefault(struct view_policy *p)
{
    *p = (struct view_policy){
        .kind = VIEW_ALL,
        .since = 1234567,
        .from_first_login = true,
        .max_age = 777,
        .max_messages = 55,
        .on_retr = ON_RETR_KEEP,
        .on_dele = ON_DELE_TRASH,
    };
}

static void test_defaults(void **state)
{
    (void)state;
    struct view_policy p;

    policy_nondefault(&p);
    view_policy_defaults(&p);
    assert_int_equal(p.kind, VIEW_UNREAD);
    assert_int_equal(p.since, 0);
    assert_false(p.from_first_login);
    assert_int_equal(p.max_age, 0);
    assert_int_equal(p.max_messages, 0);
    assert_int_equal(p.on_retr, ON_RETR_SEEN);
    assert_int_equal(p.on_dele, ON_DELE_HIDE);
}

/* Every view kind against every combination of the four inputs, written out
 * as a table rather than recomputed, so the test states the behaviour. */
static void test_kinds_truth_table(void **state)
{
    (void)state;
    static const struct {
        bool seen, read, got, hidden;
        bool unread, new, all;
    } rows[] = {
        /* seen   read   got    hidden   unread new    all */
        { false, false, false, false,   true,  true,  true  },
        { true,  false, false, false,   false, true,  true  },
        { false, true,  false, false,   false, true,  true  },
        { true,  true,  false, false,   false, true,  true  },
        { false, false, true,  false,   false, false, true  },
        { true,  false, true,  false,   false, false, true  },
        { false, true,  true,  false,   false, false, true  },
        { true,  true,  true,  false,   false, false, true  },
        { false, false, false, true,    false, false, false },
        { true,  false, false, true,    false, false, false },
        { false, true,  false, true,    false, false, false },
        { true,  true,  false, true,    false, false, false },
        { false, false, true,  true,    false, false, false },
        { true,  false, true,  true,    false, false, false },
        { false, true,  true,  true,    false, false, false },
        { true,  true,  true,  true,    false, false, false },
    };
    /* Session flags other than SEEN_UPSTREAM must not change the answer. */
    static const uint8_t other_flags[] = {
        0, MAILDROP_DELETED | MAILDROP_GONE | MAILDROP_RETRIEVED | MAILDROP_SIZE_EXACT,
    };
    struct view_policy p;

    view_policy_defaults(&p);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        uint8_t st = (uint8_t)((rows[r].read ? VIEW_STATE_READ : 0) | (rows[r].got ? VIEW_STATE_GOT : 0) |
                               (rows[r].hidden ? VIEW_STATE_HIDDEN : 0));
        for (size_t o = 0; o < sizeof other_flags / sizeof other_flags[0]; o++) {
            uint8_t fl = (uint8_t)(other_flags[o] | (rows[r].seen ? MAILDROP_SEEN_UPSTREAM : 0));
            const bool expect[VIEW_KIND_COUNT] = { rows[r].unread, rows[r].new, rows[r].all };
            for (unsigned k = 0; k < VIEW_KIND_COUNT; k++) {
                p.kind = (enum view_kind)k;
                if (view_includes(&p, fl, (uint32_t)NOW, st, NOW, NOW) != expect[k])
                    fail_msg("row %zu flags 0x%02x kind %s: expected %d", r, fl, view_kind_name(p.kind),
                             expect[k]);
            }
        }
    }
}

static void test_window_since(void **state)
{
    (void)state;
    struct view_policy p;
    const int64_t since = 1769817600;   /* 2026-01-31 00:00:00 UTC */

    view_policy_defaults(&p);
    p.kind = VIEW_ALL;
    p.since = since;
    assert_true(view_includes(&p, 0, (uint32_t)since, 0, NOW, 0));
    assert_false(view_includes(&p, 0, (uint32_t)since - 1, 0, NOW, 0));
    assert_true(view_includes(&p, 0, UINT32_MAX, 0, NOW, 0));
    assert_false(view_includes(&p, 0, 0, 0, NOW, 0));
    /* Off: even an internaldate of 0 (the epoch) is shown. */
    p.since = 0;
    assert_true(view_includes(&p, 0, 0, 0, NOW, 0));
}

static void test_window_max_age(void **state)
{
    (void)state;
    struct view_policy p;

    view_policy_defaults(&p);
    p.kind = VIEW_ALL;
    p.max_age = 30 * DAY;
    /* Exactly max_age old is still inside. */
    assert_true(view_includes(&p, 0, (uint32_t)(NOW - 30 * DAY), 0, NOW, 0));
    assert_false(view_includes(&p, 0, (uint32_t)(NOW - 30 * DAY - 1), 0, NOW, 0));
    assert_true(view_includes(&p, 0, (uint32_t)NOW, 0, NOW, 0));
    /* A date ahead of the clock (skewed upstream) is young, not excluded. */
    assert_true(view_includes(&p, 0, (uint32_t)(NOW + DAY), 0, NOW, 0));
    /* The window moves with now. */
    assert_false(view_includes(&p, 0, (uint32_t)(NOW - 30 * DAY), 0, NOW + 1, 0));
    /* The largest max_age reaches back past the epoch without wrapping. */
    p.max_age = UINT32_MAX;
    assert_true(view_includes(&p, 0, 0, 0, NOW, 0));
    p.max_age = 0;
    assert_true(view_includes(&p, 0, 0, 0, NOW, 0));
}

static void test_window_from_first_login(void **state)
{
    (void)state;
    struct view_policy p;
    const int64_t first = NOW - 10 * DAY;

    view_policy_defaults(&p);
    p.kind = VIEW_ALL;
    p.from_first_login = true;
    assert_true(view_includes(&p, 0, (uint32_t)first, 0, NOW, first));
    assert_false(view_includes(&p, 0, (uint32_t)first - 1, 0, NOW, first));
    /* First login unknown: no bound. */
    assert_true(view_includes(&p, 0, 1, 0, NOW, 0));
    /* Setting off: the first login does not matter. */
    p.from_first_login = false;
    assert_true(view_includes(&p, 0, (uint32_t)first - 1, 0, NOW, first));
}

/* Each window excludes on its own when the others would admit the message,
 * whichever of them is the tightest. */
static void test_windows_combined(void **state)
{
    (void)state;
    struct view_policy p;
    const int64_t since = NOW - 20 * DAY, first = NOW - 10 * DAY;

    view_policy_defaults(&p);
    p.kind = VIEW_ALL;
    p.since = since;
    p.max_age = 5 * DAY;
    p.from_first_login = true;

    /* max_age is the tightest bound here. */
    assert_true(view_includes(&p, 0, (uint32_t)(NOW - 5 * DAY), 0, NOW, first));
    assert_false(view_includes(&p, 0, (uint32_t)(NOW - 5 * DAY - 1), 0, NOW, first));
    /* from_first_login the tightest. */
    p.max_age = 15 * DAY;
    assert_true(view_includes(&p, 0, (uint32_t)first, 0, NOW, first));
    assert_false(view_includes(&p, 0, (uint32_t)first - 1, 0, NOW, first));
    /* since the tightest. */
    p.max_age = 30 * DAY;
    assert_true(view_includes(&p, 0, (uint32_t)since, 0, NOW, NOW - 25 * DAY));
    assert_false(view_includes(&p, 0, (uint32_t)since - 1, 0, NOW, NOW - 25 * DAY));

    /* Inside every window, the kind and HIDDEN still decide. */
    assert_true(view_includes(&p, 0, (uint32_t)NOW, 0, NOW, first));
    assert_false(view_includes(&p, 0, (uint32_t)NOW, VIEW_STATE_HIDDEN, NOW, first));
    p.kind = VIEW_UNREAD;
    assert_true(view_includes(&p, 0, (uint32_t)NOW, 0, NOW, first));
    assert_false(view_includes(&p, MAILDROP_SEEN_UPSTREAM, (uint32_t)NOW, 0, NOW, first));
    assert_false(view_includes(&p, 0, (uint32_t)NOW, VIEW_STATE_READ, NOW, first));
    p.kind = VIEW_NEW;
    assert_true(view_includes(&p, MAILDROP_SEEN_UPSTREAM, (uint32_t)NOW, VIEW_STATE_READ, NOW, first));
    assert_false(view_includes(&p, 0, (uint32_t)NOW, VIEW_STATE_GOT, NOW, first));
}

/* Appends uid with a distinct size, state_id and flags derived from it, so the
 * filter's copies can be checked field by field. */
static void add(struct maildrop *m, uint32_t uid, uint32_t internaldate, uint8_t flags)
{
    assert_true(maildrop_append(m, uid, uid * 100));
    struct maildrop_entry *e = maildrop_get(m, m->count);
    e->state_id = (uint64_t)uid << 32 | 0xabcU;
    e->internaldate = internaldate;
    e->flags = flags;
}

static void assert_uids(const struct maildrop *m, const uint32_t *uids, uint32_t n)
{
    assert_int_equal(m->count, n);
    for (uint32_t i = 0; i < n; i++) {
        const struct maildrop_entry *e = &m->entries[i];
        if (e->uid != uids[i])
            fail_msg("entry %u: uid %u, expected %u", i, e->uid, uids[i]);
        assert_int_equal(e->size, uids[i] * 100);
        assert_int_equal(e->state_id, (uint64_t)uids[i] << 32 | 0xabcU);
    }
}

static void test_filter_keeps_order_and_entries(void **state)
{
    (void)state;
    struct maildrop m;
    struct view_policy p;

    maildrop_init(&m, 42);
    add(&m, 3, (uint32_t)(NOW - 9 * DAY), 0);
    add(&m, 5, (uint32_t)(NOW - 8 * DAY), MAILDROP_SEEN_UPSTREAM);
    add(&m, 8, (uint32_t)(NOW - 7 * DAY), 0);
    add(&m, 9, (uint32_t)(NOW - 6 * DAY), 0);
    add(&m, 12, (uint32_t)(NOW - 5 * DAY), 0);
    add(&m, 20, (uint32_t)(NOW - 4 * DAY), 0);
    add(&m, 21, (uint32_t)(NOW - 3 * DAY), 0);
    const uint8_t st[] = { 0, 0, VIEW_STATE_READ, VIEW_STATE_GOT | VIEW_STATE_READ, VIEW_STATE_HIDDEN, 0, 0 };

    view_policy_defaults(&p);
    assert_int_equal(view_filter_maildrop(&m, st, &p, NOW, 0), 3);
    static const uint32_t expect[] = { 3, 20, 21 };
    assert_uids(&m, expect, 3);
    assert_int_equal(m.entries[0].internaldate, (uint32_t)(NOW - 9 * DAY));
    assert_int_equal(m.entries[2].internaldate, (uint32_t)(NOW - 3 * DAY));
    assert_int_equal(m.uidvalidity, 42);
    /* Message numbers follow the filtered order. */
    assert_int_equal(maildrop_get(&m, 2)->uid, 20);
    assert_null(maildrop_get(&m, 4));
    maildrop_free(&m);
}

static void test_filter_flags_survive(void **state)
{
    (void)state;
    struct maildrop m;
    struct view_policy p;

    maildrop_init(&m, 1);
    add(&m, 1, 100, MAILDROP_SEEN_UPSTREAM);
    add(&m, 2, 200, MAILDROP_SEEN_UPSTREAM | MAILDROP_SIZE_EXACT);
    const uint8_t st[] = { VIEW_STATE_HIDDEN, 0 };

    view_policy_defaults(&p);
    p.kind = VIEW_ALL;
    assert_int_equal(view_filter_maildrop(&m, st, &p, NOW, 0), 1);
    assert_int_equal(m.entries[0].uid, 2);
    assert_int_equal(m.entries[0].flags, MAILDROP_SEEN_UPSTREAM | MAILDROP_SIZE_EXACT);
    assert_int_equal(m.entries[0].internaldate, 200);
    maildrop_free(&m);
}

/* max_messages counts what the view left, not the mailbox: the newest N of
 * the messages the device would see. */
static void test_filter_max_messages_newest(void **state)
{
    (void)state;
    struct maildrop m;
    struct view_policy p;
    uint8_t st[10] = { 0 };

    maildrop_init(&m, 1);
    for (uint32_t uid = 1; uid <= 10; uid++)
        add(&m, uid, (uint32_t)(NOW - (int64_t)(11 - uid) * DAY), 0);
    st[9] = VIEW_STATE_READ;    /* the newest is read: not among the N */
    st[7] = VIEW_STATE_HIDDEN;

    view_policy_defaults(&p);
    p.max_messages = 3;
    assert_int_equal(view_filter_maildrop(&m, st, &p, NOW, 0), 3);
    static const uint32_t expect[] = { 6, 7, 9 };
    assert_uids(&m, expect, 3);
    maildrop_free(&m);
}

static void test_filter_max_messages_bounds(void **state)
{
    (void)state;
    struct maildrop m;
    struct view_policy p;
    const uint8_t st[4] = { 0 };
    static const uint32_t all[] = { 10, 11, 12, 13 };

    view_policy_defaults(&p);
    /* Off, exactly as many as remain, and more than remain: all kept. */
    static const uint32_t keep_all[] = { 0, 4, 5, UINT32_MAX };
    for (size_t k = 0; k < sizeof keep_all / sizeof keep_all[0]; k++) {
        maildrop_init(&m, 1);
        for (uint32_t i = 0; i < 4; i++)
            add(&m, all[i], (uint32_t)NOW, 0);
        p.max_messages = keep_all[k];
        assert_int_equal(view_filter_maildrop(&m, st, &p, NOW, 0), 4);
        assert_uids(&m, all, 4);
        maildrop_free(&m);
    }
    /* One: only the last. */
    maildrop_init(&m, 1);
    for (uint32_t i = 0; i < 4; i++)
        add(&m, all[i], (uint32_t)NOW, 0);
    p.max_messages = 1;
    assert_int_equal(view_filter_maildrop(&m, st, &p, NOW, 0), 1);
    assert_uids(&m, &all[3], 1);
    maildrop_free(&m);
}

static void test_filter_windows_and_edges(void **state)
{
    (void)state;
    struct maildrop m;
    struct view_policy p;
    uint8_t st[6] = { 0 };

    /* An empty maildrop stays empty (entries NULL, state not read). */
    maildrop_init(&m, 1);
    view_policy_defaults(&p);
    assert_int_equal(view_filter_maildrop(&m, NULL, &p, NOW, 0), 0);
    assert_int_equal(m.count, 0);

    /* Windows apply in the filter too, and max_messages after them. */
    for (uint32_t uid = 1; uid <= 6; uid++)
        add(&m, uid, (uint32_t)(NOW - (int64_t)(7 - uid) * DAY), 0);   /* uid 1 is 6 days old */
    p.kind = VIEW_NEW;
    p.max_age = 4 * DAY;           /* uids 3..6 */
    p.from_first_login = true;     /* first login 5 days ago: no further cut */
    p.max_messages = 2;
    st[5] = VIEW_STATE_GOT;
    assert_int_equal(view_filter_maildrop(&m, st, &p, NOW, NOW - 5 * DAY), 2);
    static const uint32_t expect[] = { 4, 5 };
    assert_uids(&m, expect, 2);

    /* Everything filtered out: count 0, the allocation kept for maildrop_free(). */
    const uint8_t hidden[2] = { VIEW_STATE_HIDDEN, VIEW_STATE_HIDDEN };
    assert_int_equal(view_filter_maildrop(&m, hidden, &p, NOW, 0), 0);
    assert_int_equal(m.count, 0);
    assert_null(maildrop_get(&m, 1));
    maildrop_free(&m);
}

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint32_t seconds;
    } good[] = {
        { "0", 0 }, { "0d", 0 }, { "30", 30 }, { "30s", 30 }, { "5m", 300 }, { "2h", 7200 },
        { "30d", 2592000 }, { "2w", 1209600 }, { "007m", 420 },
        { "4294967295", UINT32_MAX }, { "4294967295s", UINT32_MAX },
        { "71582788m", 4294967280U }, { "1193046h", 4294965600U },
        { "49710d", 4294944000U }, { "7101w", 4294684800U },
    };
    static const char *const bad[] = {
        "", "d", "s", "30x", "-1d", "+1d", "-0", " 30d", "30d ", "30 d", "30dd", "30ds", "30D", "1.5h",
        "0x10", "4294967296", "4294967296s", "71582789m", "1193047h", "49711d", "7102w",
        "99999999999999999999", "18446744073709551616d",
    };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint32_t s = 12345;
        if (!view_parse_duration(good[i].text, &s))
            fail_msg("\"%s\" rejected", good[i].text);
        if (s != good[i].seconds)
            fail_msg("\"%s\" gave %u, expected %u", good[i].text, s, good[i].seconds);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t s = 12345;
        if (view_parse_duration(bad[i], &s))
            fail_msg("\"%s\" accepted as %u", bad[i], s);
        assert_int_equal(s, 12345);
    }
}

/* A rejected value leaves every field as it was. */
static void assert_rejected(const char *key, const char *value)
{
    struct view_policy p, before;

    policy_nondefault(&p);
    before = p;
    if (view_policy_set(&p, key, value))
        fail_msg("%s = \"%s\" accepted", key, value);
    assert_policy_equal(&p, &before);

    view_policy_defaults(&p);
    before = p;
    if (view_policy_set(&p, key, value))
        fail_msg("%s = \"%s\" accepted", key, value);
    assert_policy_equal(&p, &before);
}

/* Sets key = value on a non-default policy and checks that exactly the
 * expected change happened. */
static void assert_sets(const char *key, const char *value, const struct view_policy *expect)
{
    struct view_policy p;

    policy_nondefault(&p);
    if (!view_policy_set(&p, key, value))
        fail_msg("%s = \"%s\" rejected", key, value);
    assert_policy_equal(&p, expect);
}

static void test_set_view_and_dispositions(void **state)
{
    (void)state;
    struct view_policy want;
    static const char *const kinds[] = { "unread", "new", "all" };
    static const char *const retr[] = { "seen", "keep" };
    static const char *const dele[] = { "hide", "trash", "expunge" };

    for (unsigned k = 0; k < 3; k++) {
        policy_nondefault(&want);
        want.kind = (enum view_kind)k;
        assert_sets("view", kinds[k], &want);
    }
    for (unsigned k = 0; k < 2; k++) {
        policy_nondefault(&want);
        want.on_retr = (enum on_retr_action)k;
        assert_sets("on_retr", retr[k], &want);
    }
    for (unsigned k = 0; k < 3; k++) {
        policy_nondefault(&want);
        want.on_dele = (enum on_dele_action)k;
        assert_sets("on_dele", dele[k], &want);
    }
    policy_nondefault(&want);
    want.kind = VIEW_NEW;
    assert_sets("View", "NEW", &want);
    want.kind = VIEW_ALL;
    want.on_dele = ON_DELE_EXPUNGE;
    assert_sets("ON_DELE", "Expunge", &want);

    static const char *const bad_kind[] = { "", "unread ", " new", "al", "alll", "seen", "0", "unseen" };
    for (size_t i = 0; i < sizeof bad_kind / sizeof bad_kind[0]; i++)
        assert_rejected("view", bad_kind[i]);
    static const char *const bad_retr[] = { "", "seen ", "read", "hide", "1" };
    for (size_t i = 0; i < sizeof bad_retr / sizeof bad_retr[0]; i++)
        assert_rejected("on_retr", bad_retr[i]);
    static const char *const bad_dele[] = { "", "delete", "expunged", "move", "keep", "trash\t" };
    for (size_t i = 0; i < sizeof bad_dele / sizeof bad_dele[0]; i++)
        assert_rejected("on_dele", bad_dele[i]);
}

static void test_set_since(void **state)
{
    (void)state;
    struct view_policy want;
    static const struct {
        const char *text;
        int64_t epoch;
    } good[] = {
        { "2026-01-31", 1769817600 }, { "1970-01-01", 0 }, { "1970-01-02", 86400 },
        { "2024-02-29", 1709164800 }, { "2000-02-29", 951782400 }, { "2106-02-07", 4294944000LL },
        { "9999-12-31", 253402214400LL },
    };
    static const char *const bad[] = {
        "", "2026-02-30", "2026-02-29", "2100-02-29", "2026-04-31", "2026-1-5", "2026-01-5", "2026-1-05",
        "26-01-05", "02026-01-05", "2026-13-01", "2026-00-10", "2026-01-00", "2026-01-32", "1969-12-31",
        "0000-01-01", "2026/01/31", "20260131", " 2026-01-31", "2026-01-31 ", "2026-01-31T00:00:00Z",
        "2026-01-3x", "-2026-01-01", "2026-01", "0",
    };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        policy_nondefault(&want);
        want.since = good[i].epoch;
        assert_sets("since", good[i].text, &want);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_rejected("since", bad[i]);
}

/* Every day from 1970 to 2400 (leap rules for 100 and 400 included) agrees
 * with the C library's UTC conversion; the day after each month's last day
 * is rejected. */
static void test_since_every_day(void **state)
{
    (void)state;
    struct view_policy p;
    char text[40];   /* "YYYY-MM-DD"; sized for any three ints so the compiler sees no truncation */

    for (int y = 1970; y <= 2400; y++) {
        for (int mon = 1; mon <= 12; mon++) {
            int last = 0;
            for (int d = 1; d <= 31; d++) {
                struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d };
                time_t t = timegm(&tm);
                bool real = tm.tm_mon == mon - 1 && tm.tm_mday == d;
                snprintf(text, sizeof(text), "%04d-%02d-%02d", y, mon, d);
                view_policy_defaults(&p);
                p.since = -1;
                bool ok = view_policy_set(&p, "since", text);
                if (ok != real)
                    fail_msg("%s: accepted %d, real date %d", text, ok, real);
                if (real && p.since != (int64_t)t)
                    fail_msg("%s: %lld, expected %lld", text, (long long)p.since, (long long)t);
                if (!real)
                    assert_int_equal(p.since, -1);
                if (real)
                    last = d;
            }
            assert_true(last >= 28);
        }
    }
}

static void test_set_from_first_login(void **state)
{
    (void)state;
    struct view_policy want, p;
    static const char *const yes[] = { "yes", "YES", "true", "on", "1" };
    static const char *const no[] = { "no", "No", "false", "off", "0" };

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        view_policy_defaults(&p);
        assert_true(view_policy_set(&p, "from_first_login", yes[i]));
        assert_true(p.from_first_login);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        policy_nondefault(&want);
        want.from_first_login = false;
        assert_sets("from_first_login", no[i], &want);
    }
    static const char *const bad[] = { "", "maybe", "2", "yes ", "y", "n", "00", "-1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_rejected("from_first_login", bad[i]);
}

static void test_set_max_age_and_max_messages(void **state)
{
    (void)state;
    struct view_policy want;

    policy_nondefault(&want);
    want.max_age = 30 * 86400;
    assert_sets("max_age", "30d", &want);
    want.max_age = 0;
    assert_sets("max_age", "0", &want);
    want.max_age = 90;
    assert_sets("max_age", "90", &want);
    want.max_age = 2 * 604800;
    assert_sets("max_age", "2w", &want);

    policy_nondefault(&want);
    want.max_messages = 100;
    assert_sets("max_messages", "100", &want);
    want.max_messages = 0;
    assert_sets("max_messages", "0", &want);
    want.max_messages = UINT32_MAX;
    assert_sets("max_messages", "4294967295", &want);

    static const char *const bad_age[] = {
        "", "30x", "-1d", "+1d", "1.5d", "49711d", "4294967296", "99999999999999999999", "30d ", "off",
    };
    for (size_t i = 0; i < sizeof bad_age / sizeof bad_age[0]; i++)
        assert_rejected("max_age", bad_age[i]);
    static const char *const bad_count[] = {
        "", "-1", "+5", " 10", "10 ", "10x", "10k", "1e3", "4294967296", "99999999999999999999", "0x10",
    };
    for (size_t i = 0; i < sizeof bad_count / sizeof bad_count[0]; i++)
        assert_rejected("max_messages", bad_count[i]);
}

static void test_set_unknown_key(void **state)
{
    (void)state;
    static const char *const keys[] = { "", "views", "max-age", "maxage", "since ", "on_retrieve", "device_ttl" };

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        assert_rejected(keys[i], "all");
        assert_rejected(keys[i], "30d");
        assert_rejected(keys[i], "yes");
    }
}

static void test_names(void **state)
{
    (void)state;

    assert_string_equal(view_kind_name(VIEW_UNREAD), "unread");
    assert_string_equal(view_kind_name(VIEW_NEW), "new");
    assert_string_equal(view_kind_name(VIEW_ALL), "all");
    assert_string_equal(view_kind_name(VIEW_KIND_COUNT), "unknown");
    assert_string_equal(view_kind_name((enum view_kind)99), "unknown");
    assert_string_equal(view_on_retr_name(ON_RETR_SEEN), "seen");
    assert_string_equal(view_on_retr_name(ON_RETR_KEEP), "keep");
    assert_string_equal(view_on_retr_name(ON_RETR_COUNT), "unknown");
    assert_string_equal(view_on_dele_name(ON_DELE_HIDE), "hide");
    assert_string_equal(view_on_dele_name(ON_DELE_TRASH), "trash");
    assert_string_equal(view_on_dele_name(ON_DELE_EXPUNGE), "expunge");
    assert_string_equal(view_on_dele_name(ON_DELE_COUNT), "unknown");

    /* Each name is what the parser reads back: logs and config agree. */
    struct view_policy p;
    view_policy_defaults(&p);
    for (unsigned k = 0; k < VIEW_KIND_COUNT; k++) {
        assert_true(view_policy_set(&p, "view", view_kind_names[k]));
        assert_int_equal(p.kind, k);
    }
    for (unsigned k = 0; k < ON_RETR_COUNT; k++) {
        assert_true(view_policy_set(&p, "on_retr", on_retr_names[k]));
        assert_int_equal(p.on_retr, k);
    }
    for (unsigned k = 0; k < ON_DELE_COUNT; k++) {
        assert_true(view_policy_set(&p, "on_dele", on_dele_names[k]));
        assert_int_equal(p.on_dele, k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_kinds_truth_table),
        cmocka_unit_test(test_window_since),
        cmocka_unit_test(test_window_max_age),
        cmocka_unit_test(test_window_from_first_login),
        cmocka_unit_test(test_windows_combined),
        cmocka_unit_test(test_filter_keeps_order_and_entries),
        cmocka_unit_test(test_filter_flags_survive),
        cmocka_unit_test(test_filter_max_messages_newest),
        cmocka_unit_test(test_filter_max_messages_bounds),
        cmocka_unit_test(test_filter_windows_and_edges),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_set_view_and_dispositions),
        cmocka_unit_test(test_set_since),
        cmocka_unit_test(test_since_every_day),
        cmocka_unit_test(test_set_from_first_login),
        cmocka_unit_test(test_set_max_age_and_max_messages),
        cmocka_unit_test(test_set_unknown_key),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
