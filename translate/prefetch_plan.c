/* prefetch_plan: see prefetch_plan.h. */
#include "prefetch_plan.h"

#include <stdio.h>

uint32_t prefetch_plan(const struct maildrop *m, uint32_t msgnum, uint64_t budget, uint64_t message_max,
                       struct prefetch_batch *out)
{
    out->count = 0;
    out->octets = 0;
    const struct maildrop_entry *first = maildrop_get((struct maildrop *)m, msgnum);
    if (!first || (first->flags & (MAILDROP_DELETED | MAILDROP_GONE)) || first->size > message_max ||
        first->size > budget)
        return 0;
    for (uint32_t n = msgnum; n <= m->count && out->count < PREFETCH_MESSAGES_MAX; n++) {
        const struct maildrop_entry *e = &m->entries[n - 1];
        if (e->folder != first->folder || e->size > message_max || out->octets + e->size > budget)
            break;
        if (e->flags & (MAILDROP_DELETED | MAILDROP_GONE))
            continue;
        out->msgnums[out->count++] = n;
        out->octets += e->size;
    }
    return out->count;
}

size_t prefetch_uidset(const struct maildrop *m, const struct prefetch_batch *b,
                       char out[PREFETCH_UIDSET_CAP])
{
    size_t len = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < b->count;) {
        uint32_t lo = m->entries[b->msgnums[i] - 1].uid;
        uint32_t hi = lo;
        uint32_t j = i + 1;
        while (j < b->count && hi < UINT32_MAX && m->entries[b->msgnums[j] - 1].uid == hi + 1)
            hi = m->entries[b->msgnums[j++] - 1].uid;
        /* Each run takes at most 11 octets per UID it covers: it fits. */
        int w = hi == lo ? snprintf(out + len, PREFETCH_UIDSET_CAP - len, "%s%u", len ? "," : "", (unsigned)lo)
                         : snprintf(out + len, PREFETCH_UIDSET_CAP - len, "%s%u:%u", len ? "," : "",
                                    (unsigned)lo, (unsigned)hi);
        len += (size_t)w;
        i = j;
    }
    return len;
}
