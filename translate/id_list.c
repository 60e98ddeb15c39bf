/* id_list.c: see id_list.h. */
#include "id_list.h"

/* The next record at p (len bytes left): a first id, or a run after prev.
 * Returns the record's length, 0 when malformed; *first and *n say which ids
 * it holds (first, first + 1, ..., first + n - 1). */
static size_t next_record(const unsigned char *p, size_t len, bool have_prev, uint64_t prev, uint64_t *first,
                          uint64_t *n)
{
    if (p[0] == ID_LIST_ONE) {
        if (len < ID_LIST_ONE_BYTES)
            return 0;
        uint64_t id = 0;
        for (int i = 1; i < ID_LIST_ONE_BYTES; i++)
            id = id << 8 | p[i];
        *first = id;
        *n = 1;
        return ID_LIST_ONE_BYTES;
    }
    if (p[0] != ID_LIST_RUN || !have_prev)
        return 0;
    uint64_t count = 0;
    size_t i = 1;
    for (int shift = 0;; shift += 7, i++) {
        if (i >= len || i > ID_LIST_VARINT_MAX)
            return 0;
        count |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i] & 0x80))
            break;
    }
    if (count == 0 || (prev & 0xffffffffULL) + count > 0xffffffffULL)
        return 0;
    *first = prev + 1;
    *n = count;
    return i + 1;
}

/* Both public functions: every id to each (when non-NULL), their number to
 * *total (only for a well-formed list). */
static bool walk(const void *list, size_t len, void (*each)(uint64_t id, void *arg), void *arg, uint64_t *total)
{
    const unsigned char *p = list;
    bool have_prev = false;
    uint64_t prev = 0, counted = 0;
    while (len > 0) {
        uint64_t first, n;
        size_t used = next_record(p, len, have_prev, prev, &first, &n);
        if (used == 0)
            return false;
        for (uint64_t i = 0; each && i < n; i++)
            each(first + i, arg);
        counted += n;
        prev = first + n - 1;
        have_prev = true;
        p += used;
        len -= used;
    }
    *total = counted;
    return true;
}

bool id_list_each(const void *list, size_t len, void (*each)(uint64_t id, void *arg), void *arg)
{
    uint64_t unused;
    return walk(list, len, each, arg, &unused);
}

bool id_list_count(const void *list, size_t len, uint64_t *count)
{
    return walk(list, len, NULL, NULL, count);
}
