/* size_cache.c: see size_cache.h. */
#include "size_cache.h"

struct slot {
    uint64_t key;   /* 0 = empty; a real key of 0 is folded to 1 */
    uint32_t size;
};

static struct slot slots[SIZE_CACHE_SLOTS];

static uint64_t fnv1a(uint64_t h, const void *data, uint64_t len)
{
    const unsigned char *p = data;
    for (uint64_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    /* A separator byte so ("ab","c") and ("a","bc") differ. */
    return fnv1a(h, "", 1);
}

uint64_t size_cache_key(const char *user, const char *mailbox, uint32_t uidvalidity, uint32_t uid)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a_str(h, user);
    h = fnv1a_str(h, mailbox);
    h = fnv1a(h, &uidvalidity, sizeof uidvalidity);
    h = fnv1a(h, &uid, sizeof uid);
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
