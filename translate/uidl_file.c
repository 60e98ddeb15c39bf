/* uidl_file.c: see uidl_file.h. */
#include "uidl_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "array_grow.h"
#include "header_hash.h"

_Static_assert(UIDL_HASH_HEX_LEN == HEADER_HASH_HEX_LEN, "one hash length");

/* A line has three or four fields; a fifth is only looked for to refuse it. */
#define FIELDS_SEEN 5

static const char *const problem_texts[UIDL_FILE_PROBLEM_COUNT] = {
    [UIDL_FILE_FIELD_COUNT] = "expected four fields: <uidl> <size> <header-hash> <message-id>",
    [UIDL_FILE_UIDL_TOO_LONG] = "uidl longer than 70 characters",
    [UIDL_FILE_UIDL_BAD_CHAR] = "uidl holds a character outside 0x21..0x7E",
    [UIDL_FILE_BAD_SIZE] = "size is not a decimal number of octets up to 4294967295",
    [UIDL_FILE_BAD_MSGID] = "message-id must be %XX-encoded (three fields: <...> of 0x21..0x7E), or - when the message has none",
    [UIDL_FILE_BAD_HASH] = "header-hash must be 32 lower-case hex digits, or -",
    [UIDL_FILE_MSGID_TOO_LONG] = "message-id longer than 998 characters",
    [UIDL_FILE_DUPLICATE_UIDL] = "duplicate uidl",
};

const char *uidl_file_problem_text(enum uidl_file_problem p)
{
    return (unsigned)p < UIDL_FILE_PROBLEM_COUNT ? problem_texts[p] : "unknown problem";
}

bool uidl_file_entry_matchable(const struct uidl_file_entry *e)
{
    return e->key != UIDL_KEY_NONE;
}

static bool visible(char c)
{
    return c >= 0x21 && c <= 0x7e;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Decimal digits only, no sign; false past UINT32_MAX. */
static bool parse_size(const char *s, size_t len, uint32_t *out)
{
    if (len == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > UINT32_MAX)
            return false;
    }
    *out = (uint32_t)v;
    return true;
}

struct parser {
    struct uidl_file *f;
    size_t entries_cap;
    size_t errors_cap;
    size_t pool_len, pool_cap;
};

static bool add_error(struct parser *ps, size_t line, enum uidl_file_problem problem, size_t other_line)
{
    struct uidl_file *f = ps->f;
    if (!array_reserve((void **)&f->errors, &ps->errors_cap, f->n_errors, 1, sizeof *f->errors, 64, SIZE_MAX))
        return false;
    f->errors[f->n_errors++] = (struct uidl_file_error){ line, problem, other_line };
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The three-field form's "<...>": copied as it is. */
static enum uidl_file_problem check_old_msgid(const char *id, size_t id_len, char *out, size_t *out_len)
{
    if (id_len > UIDL_MSGID_MAX)
        return UIDL_FILE_MSGID_TOO_LONG;
    if (id_len < 3 || id[0] != '<' || id[id_len - 1] != '>')
        return UIDL_FILE_BAD_MSGID;
    for (size_t i = 1; i + 1 < id_len; i++)
        if (!visible(id[i]) || id[i] == '<' || id[i] == '>')
            return UIDL_FILE_BAD_MSGID;
    memcpy(out, id, id_len);
    *out_len = id_len;
    return UIDL_FILE_PROBLEM_COUNT;
}

/* The four-field form's %XX-encoded key. A key that is empty, or begins or
 * ends with a blank, cannot come from message_id_extract: refused. */
static enum uidl_file_problem decode_msgid(const char *id, size_t id_len, char *out, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < id_len; i++) {
        char c = id[i];
        if (c == '%') {
            int hi = i + 2 < id_len ? hex_digit(id[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit(id[i + 2]) : -1;
            if (lo < 0)
                return UIDL_FILE_BAD_MSGID;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n == UIDL_MSGID_MAX)
            return UIDL_FILE_MSGID_TOO_LONG;
        out[n++] = c;
    }
    if (n == 0 || blank(out[0]) || blank(out[n - 1]))
        return UIDL_FILE_BAD_MSGID;
    *out_len = n;
    return UIDL_FILE_PROBLEM_COUNT;
}

static bool valid_hash(const char *h, size_t len)
{
    if (len != UIDL_HASH_HEX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return false;
    return true;
}

/* The problem with one line's fields (n is 3 or 4), or
 * UIDL_FILE_PROBLEM_COUNT when it is well-formed: then *e is filled in and
 * the decoded Message-ID is in idbuf (*id_len octets, 0 for none). */
static enum uidl_file_problem check_fields(const char *const *field, const size_t *flen, size_t n,
                                           struct uidl_file_entry *e, char *idbuf, size_t *id_len)
{
    if (flen[0] > UIDL_MAX)
        return UIDL_FILE_UIDL_TOO_LONG;
    for (size_t i = 0; i < flen[0]; i++)
        if (!visible(field[0][i]))
            return UIDL_FILE_UIDL_BAD_CHAR;
    if (!parse_size(field[1], flen[1], &e->size))
        return UIDL_FILE_BAD_SIZE;
    e->has_hash = false;
    e->hash[0] = '\0';
    if (n == 4 && !(flen[2] == 1 && field[2][0] == '-')) {
        if (!valid_hash(field[2], flen[2]))
            return UIDL_FILE_BAD_HASH;
        memcpy(e->hash, field[2], UIDL_HASH_HEX_LEN);
        e->hash[UIDL_HASH_HEX_LEN] = '\0';
        e->has_hash = true;
    }
    const char *id = field[n - 1];
    size_t len = flen[n - 1];
    *id_len = 0;
    if (!(len == 1 && id[0] == '-')) {
        enum uidl_file_problem p = n == 3 ? check_old_msgid(id, len, idbuf, id_len)
                                          : decode_msgid(id, len, idbuf, id_len);
        if (p != UIDL_FILE_PROBLEM_COUNT)
            return p;
    }
    e->uidl = field[0];
    e->uidl_len = flen[0];
    return UIDL_FILE_PROBLEM_COUNT;
}

static bool parse_line(struct parser *ps, const char *s, size_t len, size_t line)
{
    const char *field[FIELDS_SEEN];
    size_t flen[FIELDS_SEEN];
    size_t n = 0, i = 0;

    while (i < len && n < FIELDS_SEEN) {
        while (i < len && blank(s[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !blank(s[i]))
            i++;
        field[n] = s + start;
        flen[n] = i - start;
        n++;
    }
    if (n == 0 || field[0][0] == '#')
        return true;
    if (n != 3 && n != 4)
        return add_error(ps, line, UIDL_FILE_FIELD_COUNT, 0);

    struct uidl_file_entry e = { .line = line };
    char idbuf[UIDL_MSGID_MAX];
    size_t id_len;
    enum uidl_file_problem problem = check_fields(field, flen, n, &e, idbuf, &id_len);
    if (problem != UIDL_FILE_PROBLEM_COUNT)
        return add_error(ps, line, problem, 0);

    struct uidl_file *f = ps->f;
    if (!array_reserve((void **)&f->entries, &ps->entries_cap, f->n_entries, 1, sizeof *f->entries, 64, SIZE_MAX))
        return false;
    if (id_len > 0) {
        /* The pool moves as it grows: entries keep an offset until the end. */
        if (!array_reserve((void **)&f->pool, &ps->pool_cap, ps->pool_len, id_len, 1, 4096, SIZE_MAX))
            return false;
        memcpy(f->pool + ps->pool_len, idbuf, id_len);
        e.msgid = (const char *)(uintptr_t)(ps->pool_len + 1);
        e.msgid_len = id_len;
        ps->pool_len += id_len;
    }
    f->entries[f->n_entries++] = e;
    return true;
}

static int compare_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int compare_lines(size_t a, size_t b)
{
    return a < b ? -1 : a > b;
}

static int by_uidl(const void *pa, const void *pb)
{
    const struct uidl_file_entry *a = *(const struct uidl_file_entry *const *)pa;
    const struct uidl_file_entry *b = *(const struct uidl_file_entry *const *)pb;
    int c = compare_bytes(a->uidl, a->uidl_len, b->uidl, b->uidl_len);
    return c ? c : compare_lines(a->line, b->line);
}

static int by_msgid(const void *pa, const void *pb)
{
    const struct uidl_file_entry *a = *(const struct uidl_file_entry *const *)pa;
    const struct uidl_file_entry *b = *(const struct uidl_file_entry *const *)pb;
    int c = compare_bytes(a->msgid, a->msgid_len, b->msgid, b->msgid_len);
    return c ? c : compare_lines(a->line, b->line);
}

static int by_hash(const void *pa, const void *pb)
{
    const struct uidl_file_entry *a = *(const struct uidl_file_entry *const *)pa;
    const struct uidl_file_entry *b = *(const struct uidl_file_entry *const *)pb;
    int c = memcmp(a->hash, b->hash, UIDL_HASH_HEX_LEN);
    if (c)
        return c;
    if (a->size != b->size)
        return a->size < b->size ? -1 : 1;
    return compare_lines(a->line, b->line);
}

static bool same_hash(const struct uidl_file_entry *a, const struct uidl_file_entry *b)
{
    return a->size == b->size && memcmp(a->hash, b->hash, UIDL_HASH_HEX_LEN) == 0;
}

static bool same_msgid(const struct uidl_file_entry *a, const struct uidl_file_entry *b)
{
    return compare_bytes(a->msgid, a->msgid_len, b->msgid, b->msgid_len) == 0;
}

/* Sorts sorted[0..n) with cmp and, in each run of entries equal by same(),
 * points every entry at another of the run (the first at the second, the
 * others at the first) through the field at offset. */
static void mark_runs(struct uidl_file_entry **sorted, size_t n, int (*cmp)(const void *, const void *),
                      bool (*same)(const struct uidl_file_entry *, const struct uidl_file_entry *),
                      size_t offset)
{
    qsort(sorted, n, sizeof *sorted, cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && same(sorted[i], sorted[j]))
            j++;
        if (j - i > 1) {
            *(size_t *)(void *)((char *)sorted[i] + offset) = sorted[i + 1]->line;
            for (size_t k = i + 1; k < j; k++)
                *(size_t *)(void *)((char *)sorted[k] + offset) = sorted[i]->line;
        }
        i = j;
    }
}

bool uidl_keys_assign(struct uidl_file_entry *entries, size_t n, struct uidl_key_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    struct uidl_file_entry **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        entries[i].same_msgid_line = entries[i].same_hash_line = 0;
        if (entries[i].msgid_len > 0)
            sorted[k++] = &entries[i];
    }
    mark_runs(sorted, k, by_msgid, same_msgid, offsetof(struct uidl_file_entry, same_msgid_line));
    /* Every hash counts, also of messages keyed by Message-ID: the key must
     * be unique among all the legacy messages. */
    k = 0;
    for (size_t i = 0; i < n; i++)
        if (entries[i].has_hash)
            sorted[k++] = &entries[i];
    mark_runs(sorted, k, by_hash, same_hash, offsetof(struct uidl_file_entry, same_hash_line));
    free(sorted);

    for (size_t i = 0; i < n; i++) {
        struct uidl_file_entry *e = &entries[i];
        if (e->msgid_len > 0 && e->same_msgid_line == 0) {
            e->key = UIDL_KEY_MESSAGE_ID;
            stats->by_message_id++;
        } else if (e->has_hash && e->same_hash_line == 0) {
            e->key = UIDL_KEY_HEADER_HASH;
            stats->by_header_hash++;
        } else {
            e->key = UIDL_KEY_NONE;
            if (e->has_hash)
                stats->same_header_hash++;
            else if (e->msgid_len > 0)
                stats->same_message_id++;
            else
                stats->no_key++;
        }
    }
    return true;
}

size_t uidl_hash_field(uint32_t size, const char *hex, char out[UIDL_HASH_FIELD_MAX + 1])
{
    int n = snprintf(out, UIDL_HASH_FIELD_MAX + 1, " hdr %lu %.*s", (unsigned long)size, UIDL_HASH_HEX_LEN,
                     hex);
    return n > 0 ? (size_t)n : 0;
}

size_t uidl_size_field(uint32_t size, char out[UIDL_SIZE_FIELD_MAX + 1])
{
    int n = snprintf(out, UIDL_SIZE_FIELD_MAX + 1, " size %lu", (unsigned long)size);
    return n > 0 ? (size_t)n : 0;
}

size_t uidl_msgid_encode(const char *key, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    if (!key || len == 0 || (len == 1 && key[0] == '-')) {
        const char *w = len == 1 && key && key[0] == '-' ? "%2D" : "-";
        size_t wl = strlen(w);
        if (wl >= cap)
            return 0;
        memcpy(out, w, wl + 1);
        return wl;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        bool plain = c >= 0x21 && c <= 0x7e && c != '%';
        if (n + (plain ? 1 : 3) >= cap)
            return 0;
        if (plain) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

static int by_error_line(const void *pa, const void *pb)
{
    const struct uidl_file_error *a = pa;
    const struct uidl_file_error *b = pb;
    return compare_lines(a->line, b->line);
}

/* Sorting pointers, not entries, keeps the entries in file order. */
static bool find_duplicates(struct parser *ps)
{
    struct uidl_file *f = ps->f;
    if (f->n_entries < 2)
        return true;
    struct uidl_file_entry **sorted = malloc(f->n_entries * sizeof *sorted);
    if (!sorted)
        return false;

    for (size_t i = 0; i < f->n_entries; i++)
        sorted[i] = &f->entries[i];
    qsort(sorted, f->n_entries, sizeof *sorted, by_uidl);
    /* Within a run of equal UIDLs the first is the earliest line. */
    for (size_t i = 0; i < f->n_entries;) {
        const struct uidl_file_entry *first = sorted[i];
        size_t j = i + 1;
        while (j < f->n_entries && compare_bytes(first->uidl, first->uidl_len, sorted[j]->uidl,
                                                 sorted[j]->uidl_len) == 0) {
            if (!add_error(ps, sorted[j]->line, UIDL_FILE_DUPLICATE_UIDL, first->line)) {
                free(sorted);
                return false;
            }
            j++;
        }
        i = j;
    }

    free(sorted);

    /* Duplicates were added after the lines' own problems. */
    if (f->n_errors > 1)
        qsort(f->errors, f->n_errors, sizeof *f->errors, by_error_line);
    return true;
}

bool uidl_file_parse(const char *data, size_t len, struct uidl_file *out)
{
    memset(out, 0, sizeof *out);
    struct parser ps = { .f = out };
    size_t pos = 0, line = 0;

    while (pos < len) {
        const char *s = data + pos;
        const char *lf = memchr(s, '\n', len - pos);
        const char *end = lf ? lf : data + len;
        pos = (size_t)(end - data) + (lf != NULL);
        line++;
        if (end > s && end[-1] == '\r')
            end--;
        if (!parse_line(&ps, s, (size_t)(end - s), line)) {
            uidl_file_free(out);
            return false;
        }
    }
    for (size_t i = 0; i < out->n_entries; i++)
        if (out->entries[i].msgid)
            out->entries[i].msgid = out->pool + ((uintptr_t)out->entries[i].msgid - 1);
    if (!find_duplicates(&ps) || !uidl_keys_assign(out->entries, out->n_entries, &out->keys)) {
        uidl_file_free(out);
        return false;
    }
    for (size_t i = 0; i < out->n_entries; i++)
        out->n_matchable += uidl_file_entry_matchable(&out->entries[i]);
    return true;
}

void uidl_file_free(struct uidl_file *f)
{
    free(f->entries);
    free(f->errors);
    free(f->pool);
    memset(f, 0, sizeof *f);
}

size_t uidl_value_format(const struct uidl_file_entry *e, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%.*s %lu", (int)e->uidl_len, e->uidl, (unsigned long)e->size);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

bool uidl_value_parse(const char *value, size_t len, size_t *uidl_len, uint32_t *size)
{
    const char *sp = memchr(value, ' ', len);
    if (!sp || sp == value || (size_t)(sp - value) > UIDL_MAX)
        return false;
    size_t n = (size_t)(sp - value);
    for (size_t i = 0; i < n; i++)
        if (!visible(value[i]))
            return false;
    uint32_t v;
    if (!parse_size(sp + 1, len - n - 1, &v))
        return false;
    *uidl_len = n;
    *size = v;
    return true;
}
