/* uidl_file.c: see uidl_file.h. */
#include "uidl_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A line has three fields; a fourth is only looked for to refuse the line. */
#define FIELDS_SEEN 4

static const char *const problem_texts[UIDL_FILE_PROBLEM_COUNT] = {
    [UIDL_FILE_FIELD_COUNT] = "expected three fields: <uidl> <size> <message-id>",
    [UIDL_FILE_UIDL_TOO_LONG] = "uidl longer than 70 characters",
    [UIDL_FILE_UIDL_BAD_CHAR] = "uidl holds a character outside 0x21..0x7E",
    [UIDL_FILE_BAD_SIZE] = "size is not a decimal number of octets up to 4294967295",
    [UIDL_FILE_BAD_MSGID] = "message-id must be <...> of characters 0x21..0x7E, or - when the message has none",
    [UIDL_FILE_MSGID_TOO_LONG] = "message-id longer than 998 characters",
    [UIDL_FILE_DUPLICATE_UIDL] = "duplicate uidl",
};

const char *uidl_file_problem_text(enum uidl_file_problem p)
{
    return (unsigned)p < UIDL_FILE_PROBLEM_COUNT ? problem_texts[p] : "unknown problem";
}

bool uidl_file_entry_matchable(const struct uidl_file_entry *e)
{
    return e->msgid_len > 0 && e->same_msgid_line == 0;
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

/* Growable arrays: doubling, so n lines cost O(n) copies in all. */
static bool grow(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t new_cap = *cap ? *cap * 2 : 64;
    if (new_cap > SIZE_MAX / elem)
        return false;
    void *q = realloc(*p, new_cap * elem);
    if (!q)
        return false;
    *p = q;
    *cap = new_cap;
    return true;
}

struct parser {
    struct uidl_file *f;
    size_t entries_cap;
    size_t errors_cap;
};

static bool add_error(struct parser *ps, size_t line, enum uidl_file_problem problem, size_t other_line)
{
    struct uidl_file *f = ps->f;
    if (!grow((void **)&f->errors, &ps->errors_cap, f->n_errors, sizeof *f->errors))
        return false;
    f->errors[f->n_errors++] = (struct uidl_file_error){ line, problem, other_line };
    return true;
}

/* The problem with one line's fields, or UIDL_FILE_PROBLEM_COUNT when it is
 * well-formed (then *e is filled in). */
static enum uidl_file_problem check_fields(const char *const *field, const size_t *flen,
                                           struct uidl_file_entry *e)
{
    if (flen[0] > UIDL_MAX)
        return UIDL_FILE_UIDL_TOO_LONG;
    for (size_t i = 0; i < flen[0]; i++)
        if (!visible(field[0][i]))
            return UIDL_FILE_UIDL_BAD_CHAR;
    if (!parse_size(field[1], flen[1], &e->size))
        return UIDL_FILE_BAD_SIZE;

    const char *id = field[2];
    size_t id_len = flen[2];
    if (id_len == 1 && id[0] == '-') {
        e->msgid = NULL;
        e->msgid_len = 0;
    } else {
        if (id_len > UIDL_MSGID_MAX)
            return UIDL_FILE_MSGID_TOO_LONG;
        if (id_len < 3 || id[0] != '<' || id[id_len - 1] != '>')
            return UIDL_FILE_BAD_MSGID;
        for (size_t i = 1; i + 1 < id_len; i++)
            if (!visible(id[i]) || id[i] == '<' || id[i] == '>')
                return UIDL_FILE_BAD_MSGID;
        e->msgid = id;
        e->msgid_len = id_len;
    }
    e->uidl = field[0];
    e->uidl_len = flen[0];
    e->same_msgid_line = 0;
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
    if (n != 3)
        return add_error(ps, line, UIDL_FILE_FIELD_COUNT, 0);

    struct uidl_file_entry e = { .line = line };
    enum uidl_file_problem problem = check_fields(field, flen, &e);
    if (problem != UIDL_FILE_PROBLEM_COUNT)
        return add_error(ps, line, problem, 0);

    struct uidl_file *f = ps->f;
    if (!grow((void **)&f->entries, &ps->entries_cap, f->n_entries, sizeof *f->entries))
        return false;
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

    size_t n = 0;
    for (size_t i = 0; i < f->n_entries; i++)
        if (f->entries[i].msgid_len > 0)
            sorted[n++] = &f->entries[i];
    qsort(sorted, n, sizeof *sorted, by_msgid);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && compare_bytes(sorted[i]->msgid, sorted[i]->msgid_len, sorted[j]->msgid,
                                      sorted[j]->msgid_len) == 0)
            j++;
        if (j - i > 1) {
            sorted[i]->same_msgid_line = sorted[i + 1]->line;
            for (size_t k = i + 1; k < j; k++)
                sorted[k]->same_msgid_line = sorted[i]->line;
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
    if (!find_duplicates(&ps)) {
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
