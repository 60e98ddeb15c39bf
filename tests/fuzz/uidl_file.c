/* Fuzz target: the legacy UIDL import file (translate/uidl_file.h), which an
 * administrator hands to `popgate-admin uidl import` from another system.
 *
 * The input is parsed as a whole file. A reference reader written from the
 * header's contract classifies every line on its own (blank or comment, one
 * of the problems, or an entry); the parser must agree line by line, except
 * that a well-formed line whose UIDL an earlier line already had is both an
 * entry and a duplicate error. Duplicates and ambiguous Message-IDs are
 * checked pairwise against the entries. Every entry must point inside the
 * input and round-trip through the stored value form. The input is also read
 * as one stored value with uidl_value_parse.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "uidl_file.h"

/* What the reference reader makes of one line. */
enum ref_kind { REF_SKIP, REF_ENTRY, REF_PROBLEM };

struct ref_line {
    enum ref_kind kind;
    enum uidl_file_problem problem;
    const char *uidl;
    size_t uidl_len;
    char msgid[998];             /* decoded */
    size_t msgid_len;
    bool has_hash;
    const char *hash;
    uint64_t size;
};

static bool ref_visible(unsigned char c)
{
    return c > ' ' && c < 0x7f;
}

/* Splits on spaces and tabs into at most five fields; returns how many. */
static size_t ref_fields(const char *s, size_t len, const char **f, size_t *fl)
{
    size_t n = 0;
    const char *end = s + len;
    while (s < end && n < 5) {
        if (*s == ' ' || *s == '\t') {
            s++;
            continue;
        }
        const char *start = s;
        while (s < end && *s != ' ' && *s != '\t')
            s++;
        f[n] = start;
        fl[n] = (size_t)(s - start);
        n++;
    }
    return n;
}

static struct ref_line ref_classify(const char *s, size_t len)
{
    static struct ref_line r;
    memset(&r, 0, sizeof r);
    r.kind = REF_PROBLEM;
    const char *f[5];
    size_t fl[5];
    size_t n = ref_fields(s, len, f, fl);
    if (n == 0 || f[0][0] == '#') {
        r.kind = REF_SKIP;
        return r;
    }
    if (n != 3 && n != 4) {
        r.problem = UIDL_FILE_FIELD_COUNT;
        return r;
    }
    if (fl[0] > 70) {
        r.problem = UIDL_FILE_UIDL_TOO_LONG;
        return r;
    }
    for (size_t i = 0; i < fl[0]; i++) {
        if (!ref_visible((unsigned char)f[0][i])) {
            r.problem = UIDL_FILE_UIDL_BAD_CHAR;
            return r;
        }
    }
    /* The size in 64 bits, digit count bounded so it cannot wrap. */
    uint64_t v = 0;
    bool size_ok = fl[1] > 0;
    for (size_t i = 0; i < fl[1] && size_ok; i++) {
        if (f[1][i] < '0' || f[1][i] > '9')
            size_ok = false;
        else if (v <= UINT32_MAX)
            v = v * 10 + (uint64_t)(f[1][i] - '0');
    }
    if (!size_ok || v > UINT32_MAX) {
        r.problem = UIDL_FILE_BAD_SIZE;
        return r;
    }
    if (n == 4 && !(fl[2] == 1 && f[2][0] == '-')) {
        bool ok = fl[2] == 32;
        for (size_t i = 0; ok && i < 32; i++)
            ok = (f[2][i] >= '0' && f[2][i] <= '9') || (f[2][i] >= 'a' && f[2][i] <= 'f');
        if (!ok) {
            r.problem = UIDL_FILE_BAD_HASH;
            return r;
        }
        r.has_hash = true;
        r.hash = f[2];
    }
    const char *id = f[n - 1];
    size_t il = fl[n - 1];
    if (il == 1 && id[0] == '-') {
        r.msgid_len = 0;
    } else if (n == 3) {
        if (il > 998) {
            r.problem = UIDL_FILE_MSGID_TOO_LONG;
            return r;
        }
        bool ok = il >= 3 && id[0] == '<' && id[il - 1] == '>';
        for (size_t i = 1; ok && i + 1 < il; i++)
            ok = ref_visible((unsigned char)id[i]) && id[i] != '<' && id[i] != '>';
        if (!ok) {
            r.problem = UIDL_FILE_BAD_MSGID;
            return r;
        }
        memcpy(r.msgid, id, il);
        r.msgid_len = il;
    } else {
        /* %XX decoding; too long is reported as soon as a 999th octet comes. */
        size_t k = 0;
        for (size_t i = 0; i < il; i++) {
            unsigned c = (unsigned char)id[i];
            if (c == '%') {
                char hx[3] = { 0 };
                bool ok = i + 2 < il;
                for (int j = 1; ok && j <= 2; j++) {
                    char d = id[i + (size_t)j];
                    ok = (d >= '0' && d <= '9') || (d >= 'a' && d <= 'f') || (d >= 'A' && d <= 'F');
                    hx[j - 1] = d;
                }
                if (!ok) {
                    r.problem = UIDL_FILE_BAD_MSGID;
                    return r;
                }
                c = (unsigned)strtoul(hx, NULL, 16);
                i += 2;
            }
            if (k == 998) {
                r.problem = UIDL_FILE_MSGID_TOO_LONG;
                return r;
            }
            r.msgid[k++] = (char)c;
        }
        if (k == 0 || r.msgid[0] == ' ' || r.msgid[0] == '\t' || r.msgid[k - 1] == ' ' ||
            r.msgid[k - 1] == '\t') {
            r.problem = UIDL_FILE_BAD_MSGID;
            return r;
        }
        r.msgid_len = k;
    }
    r.kind = REF_ENTRY;
    r.uidl = f[0];
    r.uidl_len = fl[0];
    r.size = v;
    return r;
}

static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void check_file(const char *data, size_t size)
{
    struct uidl_file f;
    if (!uidl_file_parse(data, size, &f))
        return;  /* out of memory: nothing else to check */

    size_t next_entry = 0, next_error = 0, line = 0, pos = 0, n_dup = 0;
    while (pos < size) {
        const char *s = data + pos;
        const char *lf = memchr(s, '\n', size - pos);
        const char *end = lf ? lf : data + size;
        pos = (size_t)(end - data) + (lf ? 1 : 0);
        line++;
        if (end > s && end[-1] == '\r')
            end--;
        size_t len = (size_t)(end - s);
        const struct ref_line r = ref_classify(s, len);
        if (r.kind == REF_SKIP) {
            FUZZ_CHECK(next_entry == f.n_entries || f.entries[next_entry].line != line);
            FUZZ_CHECK(next_error == f.n_errors || f.errors[next_error].line != line);
            continue;
        }
        if (r.kind == REF_PROBLEM) {
            FUZZ_CHECK(next_error < f.n_errors);
            FUZZ_CHECK(f.errors[next_error].line == line);
            FUZZ_CHECK(f.errors[next_error].problem == r.problem);
            FUZZ_CHECK(f.errors[next_error].other_line == 0);
            next_error++;
            continue;
        }
        FUZZ_CHECK(next_entry < f.n_entries);
        const struct uidl_file_entry *e = &f.entries[next_entry++];
        FUZZ_CHECK(e->line == line);
        FUZZ_CHECK(e->uidl == r.uidl && e->uidl_len == r.uidl_len);
        FUZZ_CHECK(e->msgid_len == r.msgid_len && (e->msgid_len == 0) == (e->msgid == NULL));
        FUZZ_CHECK(e->msgid_len == 0 || memcmp(e->msgid, r.msgid, r.msgid_len) == 0);
        FUZZ_CHECK(e->has_hash == r.has_hash && (!r.has_hash || memcmp(e->hash, r.hash, 32) == 0));
        FUZZ_CHECK(e->size == r.size);
        FUZZ_CHECK(e->uidl >= data && e->uidl + e->uidl_len <= data + size);

        char value[UIDL_VALUE_MAX + 1];
        size_t vlen = uidl_value_format(e, value, sizeof value);
        size_t uidl_len = 0;
        uint32_t vsize = 0;
        FUZZ_CHECK(vlen > 0 && uidl_value_parse(value, vlen, &uidl_len, &vsize));
        FUZZ_CHECK(uidl_len == e->uidl_len && memcmp(value, e->uidl, uidl_len) == 0 && vsize == e->size);

        /* A duplicate error for this line iff an earlier entry has its UIDL. */
        size_t first = 0;
        for (size_t k = 0; k + 1 < next_entry && !first; k++)
            if (same_bytes(f.entries[k].uidl, f.entries[k].uidl_len, e->uidl, e->uidl_len))
                first = f.entries[k].line;
        if (first) {
            FUZZ_CHECK(next_error < f.n_errors && f.errors[next_error].line == line);
            FUZZ_CHECK(f.errors[next_error].problem == UIDL_FILE_DUPLICATE_UIDL);
            FUZZ_CHECK(f.errors[next_error].other_line == first);
            next_error++;
            n_dup++;
        } else {
            FUZZ_CHECK(next_error == f.n_errors || f.errors[next_error].line != line);
        }
    }
    FUZZ_CHECK(next_entry == f.n_entries);
    FUZZ_CHECK(next_error == f.n_errors);

    /* The key rule (uidl_keys_assign), pairwise. */
    size_t matchable = 0;
    for (size_t i = 0; i < f.n_entries; i++) {
        const struct uidl_file_entry *e = &f.entries[i];
        size_t other = 0, other_hash = 0;
        for (size_t k = 0; k < f.n_entries && !other && e->msgid_len; k++)
            if (k != i && same_bytes(f.entries[k].msgid, f.entries[k].msgid_len, e->msgid, e->msgid_len))
                other = f.entries[k].line;
        for (size_t k = 0; k < f.n_entries && !other_hash && e->has_hash; k++)
            if (k != i && f.entries[k].has_hash && f.entries[k].size == e->size &&
                memcmp(f.entries[k].hash, e->hash, 32) == 0)
                other_hash = f.entries[k].line;
        FUZZ_CHECK(e->same_msgid_line == other);
        FUZZ_CHECK(e->same_hash_line == other_hash);
        enum uidl_key want = e->msgid_len > 0 && other == 0 ? UIDL_KEY_MESSAGE_ID
                             : e->has_hash && other_hash == 0 ? UIDL_KEY_HEADER_HASH
                                                              : UIDL_KEY_NONE;
        FUZZ_CHECK(e->key == want);
        matchable += uidl_file_entry_matchable(e);
    }
    FUZZ_CHECK(f.n_matchable == matchable);
    uidl_file_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_file((const char *)data, size);

    size_t uidl_len = SIZE_MAX;
    uint32_t vsize = 0;
    if (uidl_value_parse((const char *)data, size, &uidl_len, &vsize)) {
        FUZZ_CHECK(uidl_len >= 1 && uidl_len <= UIDL_MAX && uidl_len < size);
        FUZZ_CHECK(data[uidl_len] == ' ');
    } else {
        FUZZ_CHECK(uidl_len == SIZE_MAX);
    }
    return 0;
}
