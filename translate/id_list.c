/* id_list.c: see id_list.h. */
#include "id_list.h"

/* A LEB128 varint of at most ID_LIST_VARINT_MAX bytes at p (len left): its
 * length, 0 when cut or longer. */
static size_t read_varint(const unsigned char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < ID_LIST_VARINT_MAX; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

/* Both public functions: every id to each (when non-NULL), their number to
 * *total (only for a well-formed list). */
static bool walk(const void *list, size_t len, void (*each)(uint64_t id, void *arg), void *arg, uint64_t *total)
{
    const unsigned char *p = list;
    bool have_prev = false;
    uint64_t prev = 0, counted = 0;
    while (len > 0) {
        uint64_t n;
        size_t used = read_varint(p + 1, len - 1, &n);
        if (used == 0 || n == 0 || n > ID_LIST_RUN_MAX)
            return false;
        used += 1;
        if (p[0] == ID_LIST_IDS) {
            if ((len - used) / ID_LIST_ID_BYTES < n)
                return false;
            for (uint64_t i = 0; i < n; i++, used += ID_LIST_ID_BYTES) {
                uint64_t id = 0;
                for (int b = 0; b < ID_LIST_ID_BYTES; b++)
                    id = id << 8 | p[used + (size_t)b];
                if (each)
                    each(id, arg);
                prev = id;
            }
        } else if (p[0] == ID_LIST_RUN && have_prev && (prev & 0xffffffffULL) + n <= 0xffffffffULL) {
            for (uint64_t i = 1; each && i <= n; i++)
                each(prev + i, arg);
            prev += n;
        } else {
            return false;
        }
        counted += n;
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
