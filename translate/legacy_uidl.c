/* legacy_uidl.c: see legacy_uidl.h. */
#include "legacy_uidl.h"

#include <stdlib.h>
#include <string.h>

#include "array_grow.h"

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
    if (!array_reserve((void **)&t->entries, &cap, t->count, 1, sizeof *t->entries, 64, MAILDROP_MAX_MESSAGES))
        return false;
    t->cap = (uint32_t)cap;
    /* Offsets are 32 bits: MAILDROP_MAX_MESSAGES * UIDL_MAX fits. */
    if (!array_reserve((void **)&t->chars, &t->chars_cap, t->chars_len, len, 1, 64,
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

static void free_fields(struct legacy_match *m)
{
    free(m->fields);
    free(m->field_ptrs);
    free(m->field_lens);
    m->fields = NULL;
    m->field_ptrs = NULL;
    m->field_lens = NULL;
}

void legacy_match_free(struct legacy_match *m)
{
    free(m->msgs);
    free(m->ids);
    free(m->uidls);
    free(m->lookup);
    free(m->sizes);
    free_fields(m);
    free(m->hashed);
    free(m->hash_uids);
    free(m->hash_lookup);
    legacy_match_init(m);
}

bool legacy_match_add(struct legacy_match *m, uint32_t uid, const char *msgid, size_t len)
{
    if (m->prepared || len > UIDL_MSGID_MAX || (m->count > 0 && uid <= m->msgs[m->count - 1].uid))
        return false;
    if (!array_reserve((void **)&m->msgs, &m->cap, m->count, 1, sizeof *m->msgs, 64, MAILDROP_MAX_MESSAGES) ||
        !array_reserve((void **)&m->ids, &m->ids_cap, m->ids_len, len, 1, 64, LEGACY_MATCH_IDS_MAX))
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
    if (!array_reserve((void **)&m->uidls, &m->uidls_cap, m->uidls_len, need, 1, 64, SIZE_MAX))
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

/* ---- the header-hash stage --------------------------------------------- */

static struct legacy_match_msg *find_uid(const struct legacy_match *m, uint32_t uid)
{
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->msgs[mid].uid == uid)
            return &m->msgs[mid];
        if (m->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool legacy_match_set_size(struct legacy_match *m, uint32_t uid, uint32_t size)
{
    struct legacy_match_msg *e = find_uid(m, uid);
    if (!e)
        return false;
    e->size = size;
    e->has_size = 1;
    return true;
}

static bool unmatched(const struct legacy_match_msg *e)
{
    return e->outcome != OUTCOME_MATCHED && e->outcome != OUTCOME_PENDING;
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Lends n fields of at most each_max octets, written by put(i, out). */
static bool lend_fields(struct legacy_match *m, size_t n, size_t each_max,
                        size_t (*put)(const struct legacy_match *m, size_t i, char *out),
                        const char *const **fields, const size_t **lens)
{
    free_fields(m);
    m->fields = malloc(n * (each_max + 1) + 1);
    m->field_ptrs = malloc((n ? n : 1) * sizeof *m->field_ptrs);
    m->field_lens = malloc((n ? n : 1) * sizeof *m->field_lens);
    if (!m->fields || !m->field_ptrs || !m->field_lens)
        return false;
    for (size_t i = 0; i < n; i++) {
        char *out = m->fields + i * (each_max + 1);
        m->field_ptrs[i] = out;
        m->field_lens[i] = put(m, i, out);
    }
    *fields = m->field_ptrs;
    *lens = m->field_lens;
    return true;
}

static size_t put_size_field(const struct legacy_match *m, size_t i, char *out)
{
    return uidl_size_field(m->sizes[i], out);
}

bool legacy_match_size_fields(struct legacy_match *m, const char *const **fields, const size_t **lens,
                              size_t *n)
{
    *n = 0;
    if (!m->prepared || m->resolved)
        return false;
    /* Ids never given a value were not found. */
    for (size_t i = 0; i < m->count; i++)
        if (m->msgs[i].outcome == OUTCOME_PENDING)
            m->msgs[i].outcome = OUTCOME_NOT_STORED;
    free(m->sizes);
    m->sizes = malloc((m->count ? m->count : 1) * sizeof *m->sizes);
    if (!m->sizes)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < m->count; i++)
        if (unmatched(&m->msgs[i]) && m->msgs[i].has_size)
            m->sizes[k++] = m->msgs[i].size;
    qsort(m->sizes, k, sizeof *m->sizes, compare_u32);
    size_t d = 0;
    for (size_t i = 0; i < k; i++)
        if (d == 0 || m->sizes[d - 1] != m->sizes[i])
            m->sizes[d++] = m->sizes[i];
    m->n_sizes = d;
    if (!lend_fields(m, d, UIDL_SIZE_FIELD_MAX, put_size_field, fields, lens))
        return false;
    *n = d;
    return true;
}

bool legacy_match_set_size_values(struct legacy_match *m, const char *const *values, size_t n,
                                  uint32_t **uids, size_t *n_uids)
{
    *n_uids = 0;
    if (n != m->n_sizes || m->resolved)
        return false;
    /* Keep the sizes the store has. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (values[i])
            m->sizes[k++] = m->sizes[i];
    m->n_sizes = k;
    size_t count = 0;
    for (size_t i = 0; i < m->count; i++)
        count += m->msgs[i].has_size &&
                 bsearch(&m->msgs[i].size, m->sizes, k, sizeof *m->sizes, compare_u32) != NULL;
    free(m->hashed);
    free(m->hash_uids);
    m->hashed = malloc((count ? count : 1) * sizeof *m->hashed);
    uint32_t *out = m->hash_uids = malloc((count ? count : 1) * sizeof *out);
    if (!m->hashed || !out)
        return false;
    m->n_hashed = 0;
    for (size_t i = 0; i < m->count; i++) {
        if (!m->msgs[i].has_size ||
            !bsearch(&m->msgs[i].size, m->sizes, k, sizeof *m->sizes, compare_u32))
            continue;
        m->hashed[m->n_hashed] = (struct legacy_match_hashed){ .msg = (uint32_t)i };
        out[m->n_hashed++] = m->msgs[i].uid;
    }
    *uids = out;
    *n_uids = m->n_hashed;
    return true;
}

bool legacy_match_set_hash(struct legacy_match *m, uint32_t uid, const char *hex)
{
    size_t lo = 0, hi = m->n_hashed;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t u = m->msgs[m->hashed[mid].msg].uid;
        if (u == uid) {
            memcpy(m->hashed[mid].hex, hex, UIDL_HASH_HEX_LEN);
            m->hashed[mid].hex[UIDL_HASH_HEX_LEN] = '\0';
            m->hashed[mid].state = 1;
            return true;
        }
        if (u < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* A hashed message's key, for sorting. */
struct hash_key {
    const char *hex;
    uint32_t size;
    struct legacy_match_hashed *h;
};

static int compare_hash_keys(const void *pa, const void *pb)
{
    const struct hash_key *a = pa, *b = pb;
    int c = memcmp(a->hex, b->hex, UIDL_HASH_HEX_LEN);
    if (c)
        return c;
    return a->size < b->size ? -1 : a->size > b->size;
}

static size_t put_hash_field(const struct legacy_match *m, size_t i, char *out)
{
    const struct legacy_match_hashed *h = &m->hashed[m->hash_lookup[i]];
    return uidl_hash_field(m->msgs[h->msg].size, h->hex, out);
}

bool legacy_match_hash_fields(struct legacy_match *m, const char *const **fields, const size_t **lens,
                              size_t *n)
{
    *n = 0;
    if (m->resolved)
        return false;
    free_fields(m);
    struct hash_key *sorted = malloc((m->n_hashed ? m->n_hashed : 1) * sizeof *sorted);
    if (!sorted)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < m->n_hashed; i++)
        if (m->hashed[i].state == 1)
            sorted[k++] = (struct hash_key){ m->hashed[i].hex, m->msgs[m->hashed[i].msg].size, &m->hashed[i] };
    qsort(sorted, k, sizeof *sorted, compare_hash_keys);
    for (size_t i = 0; i < k;) {
        size_t j = i + 1;
        while (j < k && compare_hash_keys(&sorted[i], &sorted[j]) == 0)
            j++;
        for (size_t x = i; x < j; x++)
            sorted[x].h->state = j - i > 1 ? 2 : unmatched(&m->msgs[sorted[x].h->msg]) ? 3 : 1;
        i = j;
    }
    free(sorted);
    free(m->hash_lookup);
    m->hash_lookup = malloc((m->n_hashed ? m->n_hashed : 1) * sizeof *m->hash_lookup);
    if (!m->hash_lookup)
        return false;
    m->n_hash_lookup = 0;
    for (size_t i = 0; i < m->n_hashed; i++)
        if (m->hashed[i].state == 3)
            m->hash_lookup[m->n_hash_lookup++] = (uint32_t)i;
    if (!lend_fields(m, m->n_hash_lookup, UIDL_HASH_FIELD_MAX, put_hash_field, fields, lens))
        return false;
    *n = m->n_hash_lookup;
    return true;
}

bool legacy_match_set_hash_values(struct legacy_match *m, const char *const *values, const size_t *lens,
                                  size_t n)
{
    if (n != m->n_hash_lookup || m->resolved)
        return false;
    if (!array_reserve((void **)&m->uidls, &m->uidls_cap, m->uidls_len, n * UIDL_MAX, 1, 64, SIZE_MAX))
        return false;
    for (size_t i = 0; i < n; i++) {
        struct legacy_match_msg *e = &m->msgs[m->hashed[m->hash_lookup[i]].msg];
        size_t uidl_len;
        uint32_t size;
        if (!values[i] || !uidl_value_parse(values[i], lens[i], &uidl_len, &size))
            continue;  /* keeps the Message-ID stage's outcome */
        memcpy(m->uidls + m->uidls_len, values[i], uidl_len);
        e->uidl_off = (uint32_t)m->uidls_len;
        e->uidl_len = (uint8_t)uidl_len;
        m->uidls_len += uidl_len;
        e->outcome = OUTCOME_MATCHED;
        e->by_hash = 1;
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
        default:
            stats->matched++;
            if (m->msgs[i].by_hash)
                stats->matched_header_hash++;
            else
                stats->matched_message_id++;
            break;
        }
    }
    for (size_t i = 0; i < m->n_hashed; i++) {
        stats->hashed += m->hashed[i].state != 0;
        stats->same_header_hash += m->hashed[i].state == 2 && unmatched(&m->msgs[m->hashed[i].msg]);
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
