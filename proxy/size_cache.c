/* size_cache.c: see size_cache.h. */
#include "size_cache.h"

#include <string.h>

#include "login_name.h"

struct slot {
    uint64_t key;   /* 0 = empty; a real key of 0 is folded to 1 */
    uint32_t size;
};

static struct slot slots[SIZE_CACHE_SLOTS];

uint64_t size_cache_key(const char *user, const char *mailbox, uint32_t uidvalidity, uint32_t uid)
{
    /* Names with their NUL, so ("ab","c") and ("a","bc") differ. */
    uint64_t h = hash64(HASH64_SEED, user, strlen(user) + 1);
    h = hash64(h, mailbox, strlen(mailbox) + 1);
    h = hash64(h, &uidvalidity, sizeof uidvalidity);
    h = hash64(h, &uid, sizeof uid);
    return h ? h : 1;
}

void size_cache_store(uint64_t key, uint32_t exact_size)
{
    struct slot *s = &slots[key % SIZE_CACHE_SLOTS];
    s->key = key;
    s->size = exact_size;
}

bool size_cache_lookup(uint64_t key, uint32_t *exact_size)
{
    const struct slot *s = &slots[key % SIZE_CACHE_SLOTS];
    if (s->key != key)
        return false;
    *exact_size = s->size;
    return true;
}
