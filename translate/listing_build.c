/* listing_build: see listing_build.h. */
#include "listing_build.h"

#include <stdlib.h>
#include <string.h>

#include "array_grow.h"

void listing_build_init(struct listing_build *b)
{
    memset(b, 0, sizeof *b);
}

bool listing_build_start_from(struct listing_build *b, const struct listing_record *records, uint32_t count)
{
    listing_build_reset(b);
    if (count == 0)
        return true;
    if (count > b->cap) {
        struct listing_record *r = realloc(b->records, (size_t)count * sizeof *r);
        if (!r)
            return false;
        b->records = r;
        b->cap = count;
    }
    memcpy(b->records, records, (size_t)count * sizeof *records);
    b->count = count;
    return true;
}

/* The index of uid among records[0, count), or count when absent. */
static uint32_t find_uid(const struct listing_build *b, uint32_t uid)
{
    uint32_t lo = 0, hi = b->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (b->records[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < b->count && b->records[lo].uid == uid ? lo : b->count;
}

void listing_build_apply(struct listing_build *b, const struct listing_record *item)
{
    if (b->count > 0 && item->uid <= b->records[b->count - 1].uid) {
        uint32_t i = find_uid(b, item->uid);
        if (i == b->count) {
            b->inconsistent = true;
            return;
        }
        b->records[i] = *item;
        b->replaced++;
        return;
    }
    size_t cap = b->cap;
    if (!array_reserve((void **)&b->records, &cap, b->count, 1, sizeof *b->records, 1024,
                       LISTING_BUILD_MAX)) {
        b->truncated = true;
        return;
    }
    b->cap = (uint32_t)cap;
    b->records[b->count++] = *item;
    b->appended++;
}

void listing_build_reset(struct listing_build *b)
{
    b->count = 0;
    b->replaced = b->appended = 0;
    b->inconsistent = b->truncated = false;
}

void listing_build_free(struct listing_build *b)
{
    free(b->records);
    listing_build_init(b);
}
