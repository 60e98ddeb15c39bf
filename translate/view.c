/* Device views and dispositions; the contract is in view.h. */
#include "view.h"

#include <stddef.h>
#include <string.h>

const char *const view_kind_names[VIEW_KIND_COUNT] = {
    [VIEW_UNREAD] = "unread",
    [VIEW_NEW] = "new",
    [VIEW_ALL] = "all",
};

const char *const on_retr_names[ON_RETR_COUNT] = {
    [ON_RETR_SEEN] = "seen",
    [ON_RETR_KEEP] = "keep",
};

const char *const on_dele_names[ON_DELE_COUNT] = {
    [ON_DELE_HIDE] = "hide",
    [ON_DELE_TRASH] = "trash",
    [ON_DELE_EXPUNGE] = "expunge",
};

#define SECONDS_PER_DAY 86400

void view_policy_defaults(struct view_policy *p)
{
    *p = (struct view_policy){
        .kind = VIEW_UNREAD,
        .since = 0,
        .from_first_login = false,
        .max_age = 0,
        .max_messages = 0,
        .on_retr = ON_RETR_SEEN,
        .on_dele = ON_DELE_HIDE,
    };
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ASCII only: strcasecmp() would depend on the locale. */
static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool word_equal(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++) {
        if (ascii_lower(*a) != ascii_lower(*b))
            return false;
    }
    return *a == *b;
}

static bool name_lookup(const char *const *names, unsigned count, const char *value, unsigned *out)
{
    for (unsigned i = 0; i < count; i++) {
        if (word_equal(value, names[i])) {
            *out = i;
            return true;
        }
    }
    return false;
}

/* Leading decimal digits of *s as a uint32, advancing *s past them. False for
 * no digits or a value above UINT32_MAX (checked per digit, so any number of
 * digits is safe). */
static bool parse_digits(const char **s, uint32_t *out)
{
    const char *c = *s;
    uint64_t n = 0;

    if (!is_digit(*c))
        return false;
    for (; is_digit(*c); c++) {
        n = n * 10 + (uint64_t)(*c - '0');
        if (n > UINT32_MAX)
            return false;
    }
    *s = c;
    *out = (uint32_t)n;
    return true;
}

bool view_parse_duration(const char *s, uint32_t *seconds)
{
    uint32_t n, unit;

    if (!parse_digits(&s, &n))
        return false;
    switch (*s) {
    case '\0': unit = 1; break;
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = SECONDS_PER_DAY; break;
    case 'w': unit = 7 * SECONDS_PER_DAY; break;
    default: return false;
    }
    if (*s != '\0' && s[1] != '\0')
        return false;
    if (n > UINT32_MAX / unit)
        return false;
    *seconds = n * unit;
    return true;
}

static bool parse_u32(const char *s, uint32_t *out)
{
    uint32_t n;

    if (!parse_digits(&s, &n) || *s != '\0')
        return false;
    *out = n;
    return true;
}

static bool is_leap_year(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar, for
 * y >= 1 (Hinnant's days_from_civil): timegm() is not in C11 and mktime()
 * would read the local time zone. */
static int64_t days_from_civil(unsigned y, unsigned m, unsigned d)
{
    if (m <= 2)
        y--;
    unsigned era = y / 400;
    unsigned yoe = y - era * 400;
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + (int64_t)doe - 719468;
}

/* Exactly YYYY-MM-DD: a fixed shape keeps "2026-1-5" (day or month first?)
 * out, and the day is checked against its month so "2026-02-30" does not
 * silently become March 2nd. */
static bool parse_date(const char *s, int64_t *epoch)
{
    static const unsigned char month_days[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    for (size_t i = 0; i < 10; i++) {
        bool ok = (i == 4 || i == 7) ? s[i] == '-' : is_digit(s[i]);
        if (!ok)
            return false;   /* also stops at a NUL, so s is never read past its end */
    }
    if (s[10] != '\0')
        return false;

    unsigned y = (unsigned)((s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0'));
    unsigned m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
    unsigned d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > month_days[m - 1])
        return false;
    if (m == 2 && d == 29 && !is_leap_year(y))
        return false;
    *epoch = days_from_civil(y, m, d) * SECONDS_PER_DAY;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };
    unsigned i;

    if (name_lookup(yes, sizeof yes / sizeof yes[0], s, &i)) {
        *out = true;
        return true;
    }
    if (name_lookup(no, sizeof no / sizeof no[0], s, &i)) {
        *out = false;
        return true;
    }
    return false;
}

bool view_policy_set(struct view_policy *p, const char *key, const char *value)
{
    unsigned i;

    if (word_equal(key, "view")) {
        if (!name_lookup(view_kind_names, VIEW_KIND_COUNT, value, &i))
            return false;
        p->kind = (enum view_kind)i;
        return true;
    }
    if (word_equal(key, "since"))
        return parse_date(value, &p->since);
    if (word_equal(key, "from_first_login"))
        return parse_bool(value, &p->from_first_login);
    if (word_equal(key, "max_age"))
        return view_parse_duration(value, &p->max_age);
    if (word_equal(key, "max_messages"))
        return parse_u32(value, &p->max_messages);
    if (word_equal(key, "on_retr")) {
        if (!name_lookup(on_retr_names, ON_RETR_COUNT, value, &i))
            return false;
        p->on_retr = (enum on_retr_action)i;
        return true;
    }
    if (word_equal(key, "on_dele")) {
        if (!name_lookup(on_dele_names, ON_DELE_COUNT, value, &i))
            return false;
        p->on_dele = (enum on_dele_action)i;
        return true;
    }
    return false;
}

bool view_includes(const struct view_policy *p, uint8_t entry_flags, uint32_t internaldate, uint8_t state,
                   int64_t now, int64_t device_first_seen)
{
    if (state & VIEW_STATE_HIDDEN)
        return false;

    switch (p->kind) {
    case VIEW_UNREAD:
        /* GOT counts as read: this device is one of the user's devices, and a
         * READ set out of step with GOT must not bring downloaded mail back. */
        if ((entry_flags & MAILDROP_SEEN_UPSTREAM) || (state & (VIEW_STATE_READ | VIEW_STATE_GOT)))
            return false;
        break;
    case VIEW_NEW:
        if (state & VIEW_STATE_GOT)
            return false;
        break;
    case VIEW_ALL:
        break;
    default:
        /* Not reachable through view_policy_set(); showing nothing is the
         * failure that cannot make a device download mail again. */
        return false;
    }

    int64_t date = internaldate;
    if (p->since != 0 && date < p->since)
        return false;
    if (p->max_age != 0 && date < now - (int64_t)p->max_age)
        return false;
    if (p->from_first_login && device_first_seen != 0 && date < device_first_seen)
        return false;
    return true;
}

uint32_t view_filter_maildrop(struct maildrop *m, const uint8_t *state, const struct view_policy *p,
                              int64_t now, int64_t device_first_seen)
{
    uint32_t kept = 0;

    for (uint32_t i = 0; i < m->count; i++) {
        const struct maildrop_entry *e = &m->entries[i];
        if (view_includes(p, e->flags, e->internaldate, state[i], now, device_first_seen))
            m->entries[kept++] = *e;
    }
    if (p->max_messages != 0 && kept > p->max_messages) {
        memmove(m->entries, m->entries + (kept - p->max_messages),
                (size_t)p->max_messages * sizeof(*m->entries));
        kept = p->max_messages;
    }
    m->count = kept;
    return kept;
}

const char *view_kind_name(enum view_kind k)
{
    return (unsigned)k < VIEW_KIND_COUNT ? view_kind_names[k] : "unknown";
}

const char *view_on_retr_name(enum on_retr_action a)
{
    return (unsigned)a < ON_RETR_COUNT ? on_retr_names[a] : "unknown";
}

const char *view_on_dele_name(enum on_dele_action a)
{
    return (unsigned)a < ON_DELE_COUNT ? on_dele_names[a] : "unknown";
}
