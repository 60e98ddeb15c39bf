/* legacy_uidl.c: see legacy_uidl.h. */
#include "legacy_uidl.h"

#include <stdlib.h>
#include <string.h>

/* struct legacy_match_msg.outcome: the stats counter a message falls in.
 * OUTCOME_PENDING is a unique id still waiting for its stored value. */
enum {
    OUTCOME_PENDING = 0,
    OUTCOME_NO_ID,
    OUTCOME_SAME_ID,
    OUTCOME_NOT_STORED,
    OUTCOME_BAD_VALUE,
    OUTCOME_SAME_UIDL,
    OUTCOME_MATCHED,
};

static bool visible(char c)
{
    return c >= 0x21 && c <= 0x7e;
}

/* Room for n more elements of elem bytes in *p (cap elements), doubling;
 * never beyond max elements. */
static bool reserve(void **p, size_t *cap, size_t used, size_t n, size_t elem, size_t max)
{
    if (n > max - used)
        return false;
    if (used + n <= *cap)
        return true;
    size_t new_cap = *cap ? *cap : 64;
    while (new_cap < used + n)
        new_cap *= 2;
    if (new_cap > max)
        new_cap = max;
    if (new_cap > SIZE_MAX / elem)
        return false;
    void *q = realloc(*p, new_cap * elem);
    if (!q)
        return false;
    *p = q;
    *cap = new_cap;
    return true;
}

/* ---- the session's table ------------------------------------------------ */

void legacy_uidl_init(struct legacy_uidl *t)
{
    memset(t, 0, sizeof *t);
}

bool legacy_uidl_add(struct legacy_uidl *t, uint32_t msgnum, const char *uidl, size_t len)
{
    if (msgnum == 0 || (t->count > 0 && msgnum <= t->entries[t->count - 1].msgnum) || len == 0 ||
        len > UIDL_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!visible(uidl[i]))
            return false;
    size_t cap = t->cap;
    if (!reserve((void **)&t->entries, &cap, t->count, 1, sizeof *t->entries, MAILDROP_MAX_MESSAGES))
        return false;
    t->cap = (uint32_t)cap;
    /* Offsets are 32 bits: MAILDROP_MAX_MESSAGES * UIDL_MAX fits. */
    if (!reserve((void **)&t->chars, &t->chars_cap, t->chars_len, len, 1,
                 (size_t)MAILDROP_MAX_MESSAGES * UIDL_MAX))
        return false;
    memcpy(t->chars + t->chars_len, uidl, len);
    t->entries[t->count++] = (struct legacy_uidl_entry){ msgnum, (uint32_t)t->chars_len, (uint8_t)len };
    t->chars_len += len;
    return true;
}

const char *legacy_uidl_find(const struct legacy_uidl *t, uint32_t msgnum, size_t *len)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t k = t->entries[mid].msgnum;
        if (k == msgnum) {
            *len = t->entries[mid].len;
            return t->chars + t->entries[mid].off;
        }
        if (k < msgnum)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void legacy_uidl_free(struct legacy_uidl *t)
{
    free(t->entries);
    free(t->chars);
    legacy_uidl_init(t);
}

/* ---- matching at login -------------------------------------------------- */

void legacy_match_init(struct legacy_match *m)
{
    memset(m, 0, sizeof *m);
}

void legacy_match_free(struct legacy_match *m)
{
    free(m->msgs);
    free(m->ids);
    free(m->uidls);
    free(m->lookup);
    legacy_match_init(m);
}

bool legacy_match_add(struct legacy_match *m, uint32_t uid, const char *msgid, size_t len)
{
    if (m->prepared || len > UIDL_MSGID_MAX || (m->count > 0 && uid <= m->msgs[m->count - 1].uid))
        return false;
    if (!reserve((void **)&m->msgs, &m->cap, m->count, 1, sizeof *m->msgs, MAILDROP_MAX_MESSAGES) ||
        !reserve((void **)&m->ids, &m->ids_cap, m->ids_len, len, 1, LEGACY_MATCH_IDS_MAX))
        return false;
    struct legacy_match_msg *e = &m->msgs[m->count++];
    *e = (struct legacy_match_msg){ .uid = uid, .id_off = (uint32_t)m->ids_len, .id_len = (uint16_t)len,
                                    .outcome = len ? OUTCOME_PENDING : OUTCOME_NO_ID };
    if (len) {
        memcpy(m->ids + m->ids_len, msgid, len);
        m->ids_len += len;
    }
    return true;
}

/* A string in one of the pools, and the message it belongs to, for sorting. */
struct sort_key {
    const char *p;
    uint32_t len;
    uint32_t index;
};

static int compare_keys(const void *pa, const void *pb)
{
    const struct sort_key *a = pa, *b = pb;
    int c = memcmp(a->p, b->p, a->len < b->len ? a->len : b->len);
    if (c)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static bool same_key(const struct sort_key *a, const struct sort_key *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* Sorts keys[0..n) and sets the outcome of every message in a run of equal
 * strings to `repeated`. */
static void mark_repeats(struct legacy_match *m, struct sort_key *keys, size_t n, uint8_t repeated)
{
    if (n > 1)
        qsort(keys, n, sizeof *keys, compare_keys);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && same_key(&keys[i], &keys[j]))
            j++;
        if (j - i > 1)
            for (size_t k = i; k < j; k++)
                m->msgs[keys[k].index].outcome = repeated;
        i = j;
    }
}

bool legacy_match_prepare(struct legacy_match *m, size_t *n_lookup)
{
    if (m->prepared) {
        *n_lookup = m->n_lookup;
        return true;
    }
    size_t with_id = 0;
    for (size_t i = 0; i < m->count; i++)
        with_id += m->msgs[i].id_len > 0;
    struct sort_key *keys = malloc((with_id ? with_id : 1) * sizeof *keys);
    if (!keys)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < m->count; i++)
        if (m->msgs[i].id_len > 0)
            keys[n++] = (struct sort_key){ m->ids + m->msgs[i].id_off, m->msgs[i].id_len, (uint32_t)i };
    mark_repeats(m, keys, n, OUTCOME_SAME_ID);
    free(keys);

    size_t unique = 0;
    for (size_t i = 0; i < m->count; i++)
        unique += m->msgs[i].outcome == OUTCOME_PENDING;
    m->lookup = malloc((unique ? unique : 1) * sizeof *m->lookup);
    if (!m->lookup)
        return false;
    m->n_lookup = 0;
    for (size_t i = 0; i < m->count; i++)
        if (m->msgs[i].outcome == OUTCOME_PENDING)
            m->lookup[m->n_lookup++] = (uint32_t)i;
    m->prepared = true;
    *n_lookup = m->n_lookup;
    return true;
}

void legacy_match_lookup_ids(const struct legacy_match *m, size_t first, size_t n, const char **ids,
                             size_t *lens)
{
    for (size_t i = 0; i < n && first + i < m->n_lookup; i++) {
        const struct legacy_match_msg *e = &m->msgs[m->lookup[first + i]];
        ids[i] = m->ids + e->id_off;
        lens[i] = e->id_len;
    }
}

bool legacy_match_set_values(struct legacy_match *m, size_t first, const char *const *values,
                             const size_t *lens, size_t n)
{
    if (!m->prepared || m->resolved || first > m->n_lookup || n > m->n_lookup - first)
        return false;
    /* Room for the longest UIDLs first, so a range is applied whole or not at
     * all. The pool stays far below 4 GiB (32-bit offsets): at most UIDL_MAX
     * octets for each of at most MAILDROP_MAX_MESSAGES messages. */
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        if (m->msgs[m->lookup[first + i]].outcome != OUTCOME_PENDING)
            return false;
        need += values[i] ? UIDL_MAX : 0;
    }
    if (!reserve((void **)&m->uidls, &m->uidls_cap, m->uidls_len, need, 1, SIZE_MAX))
        return false;
    for (size_t i = 0; i < n; i++) {
        struct legacy_match_msg *e = &m->msgs[m->lookup[first + i]];
        size_t uidl_len;
        uint32_t size;
        if (!values[i]) {
            e->outcome = OUTCOME_NOT_STORED;
        } else if (!uidl_value_parse(values[i], lens[i], &uidl_len, &size)) {
            e->outcome = OUTCOME_BAD_VALUE;
        } else {
            memcpy(m->uidls + m->uidls_len, values[i], uidl_len);
            e->uidl_off = (uint32_t)m->uidls_len;
            e->uidl_len = (uint8_t)uidl_len;
            m->uidls_len += uidl_len;
            e->outcome = OUTCOME_MATCHED;
        }
    }
    return true;
}

bool legacy_match_resolve(struct legacy_match *m, struct legacy_match_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    if (!m->prepared)
        return false;
    if (!m->resolved) {
        size_t found = 0;
        for (size_t i = 0; i < m->count; i++)
            found += m->msgs[i].outcome == OUTCOME_MATCHED;
        struct sort_key *keys = malloc((found ? found : 1) * sizeof *keys);
        if (!keys)
            return false;
        size_t n = 0;
        for (size_t i = 0; i < m->count; i++) {
            const struct legacy_match_msg *e = &m->msgs[i];
            if (e->outcome == OUTCOME_MATCHED)
                keys[n++] = (struct sort_key){ m->uidls + e->uidl_off, e->uidl_len, (uint32_t)i };
        }
        mark_repeats(m, keys, n, OUTCOME_SAME_UIDL);
        free(keys);
        for (size_t i = 0; i < m->count; i++) {
            struct legacy_match_msg *e = &m->msgs[i];
            if (e->outcome == OUTCOME_PENDING)
                e->outcome = OUTCOME_NOT_STORED;
            if (e->outcome != OUTCOME_MATCHED)
                e->uidl_len = 0;
        }
        m->resolved = true;
    }
    stats->messages = m->count;
    for (size_t i = 0; i < m->count; i++) {
        switch (m->msgs[i].outcome) {
        case OUTCOME_NO_ID: stats->no_message_id++; break;
        case OUTCOME_SAME_ID: stats->same_message_id++; break;
        case OUTCOME_NOT_STORED: stats->not_stored++; break;
        case OUTCOME_BAD_VALUE: stats->bad_value++; break;
        case OUTCOME_SAME_UIDL: stats->same_uidl++; break;
        default: stats->matched++; break;
        }
    }
    return true;
}

const char *legacy_match_uidl(const struct legacy_match *m, uint32_t uid, size_t *len)
{
    if (!m->resolved)
        return NULL;
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct legacy_match_msg *e = &m->msgs[mid];
        if (e->uid == uid) {
            if (e->uidl_len == 0)
                return NULL;
            *len = e->uidl_len;
            return m->uidls + e->uidl_off;
        }
        if (e->uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool legacy_match_build(const struct legacy_match *m, const struct maildrop *drop, struct legacy_uidl *t)
{
    for (uint32_t i = 0; i < drop->count; i++) {
        /* The match was made in the first folder (where an old POP3 server's
         * mail lives); another folder's UIDs are another numbering. */
        if (drop->entries[i].folder != 0)
            continue;
        size_t len;
        const char *uidl = legacy_match_uidl(m, drop->entries[i].uid, &len);
        if (uidl && !legacy_uidl_add(t, i + 1, uidl, len))
            return false;
    }
    return true;
}

/* ---- collisions with popgate's own UIDLs ---------------------------------- */

struct uidl_ref {
    const char *p;
    uint8_t len;
    uint32_t entry;
};

static int uidl_ref_order(const void *a, const void *b)
{
    const struct uidl_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (int)x->len - (int)y->len;
}

bool legacy_uidl_drop_collisions(struct legacy_uidl *t, const struct maildrop *drop, size_t *dropped)
{
    *dropped = 0;
    if (t->count == 0)
        return true;
    struct uidl_ref *refs = malloc(t->count * sizeof *refs);
    bool *collides = calloc(t->count, sizeof *collides);
    if (!refs || !collides) {
        free(refs);
        free(collides);
        return false;
    }
    for (uint32_t i = 0; i < t->count; i++)
        refs[i] = (struct uidl_ref){ t->chars + t->entries[i].off, t->entries[i].len, i };
    qsort(refs, t->count, sizeof *refs, uidl_ref_order);
    /* Both lists ascend by message number: walk them together. */
    uint32_t next_legacy = 0;
    for (uint32_t msgnum = 1; msgnum <= drop->count; msgnum++) {
        if (next_legacy < t->count && t->entries[next_legacy].msgnum == msgnum) {
            next_legacy++;
            continue;
        }
        char own[MAILDROP_UIDL_MAX + 1];
        struct uidl_ref key = { own, (uint8_t)maildrop_uidl(drop, &drop->entries[msgnum - 1], own), 0 };
        const struct uidl_ref *hit = bsearch(&key, refs, t->count, sizeof *refs, uidl_ref_order);
        if (hit)
            collides[hit->entry] = true;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < t->count; i++)
        if (!collides[i])
            t->entries[kept++] = t->entries[i];
    *dropped = t->count - kept;
    t->count = kept;
    free(refs);
    free(collides);
    return true;
}
