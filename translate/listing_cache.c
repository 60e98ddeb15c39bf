/* listing_cache: see listing_cache.h. A chained hash table of users with an
 * LRU list through them; each user holds up to LISTING_CACHE_FOLDERS
 * folder listings. */
#include "listing_cache.h"

#include <stdlib.h>
#include <string.h>

#include "hash64.h"

struct listing_cache_user {
    struct listing_cache_user *hash_next;
    struct listing_cache_user *lru_prev, *lru_next;
    uint64_t hash;
    char *key;               /* owned, key_len octets */
    size_t key_len;
    size_t bytes;            /* this user's share of cache->bytes */
    struct listing_cache_folder folders[LISTING_CACHE_FOLDERS];
    uint8_t n_folders;
};

static size_t folder_bytes(const struct listing_cache_folder *f)
{
    return strlen(f->name) + 1 + (size_t)f->count * sizeof *f->records;
}

static size_t user_base_bytes(const struct listing_cache_user *u)
{
    return sizeof *u + u->key_len;
}

static void lru_unlink(struct listing_cache *c, struct listing_cache_user *u)
{
    if (u->lru_prev)
        u->lru_prev->lru_next = u->lru_next;
    else
        c->lru_first = u->lru_next;
    if (u->lru_next)
        u->lru_next->lru_prev = u->lru_prev;
    else
        c->lru_last = u->lru_prev;
    u->lru_prev = u->lru_next = NULL;
}

static void lru_push_front(struct listing_cache *c, struct listing_cache_user *u)
{
    u->lru_prev = NULL;
    u->lru_next = c->lru_first;
    if (c->lru_first)
        c->lru_first->lru_prev = u;
    c->lru_first = u;
    if (!c->lru_last)
        c->lru_last = u;
}

static void folder_free(struct listing_cache_folder *f)
{
    free(f->name);
    free(f->records);
    memset(f, 0, sizeof *f);
}

static void user_remove(struct listing_cache *c, struct listing_cache_user *u)
{
    struct listing_cache_user **pp = &c->buckets[u->hash & (c->n_buckets - 1)];
    while (*pp != u)
        pp = &(*pp)->hash_next;
    *pp = u->hash_next;
    lru_unlink(c, u);
    for (unsigned i = 0; i < u->n_folders; i++)
        folder_free(&u->folders[i]);
    c->bytes -= u->bytes;
    c->n_users--;
    free(u->key);
    free(u);
}

/* Evicts least recently used users, never `keep`, until the total holds. */
static void evict(struct listing_cache *c, const struct listing_cache_user *keep)
{
    struct listing_cache_user *u = c->lru_last;
    while (c->bytes > c->max_bytes && u) {
        struct listing_cache_user *prev = u->lru_prev;
        if (u != keep)
            user_remove(c, u);
        u = prev;
    }
}

void listing_cache_init(struct listing_cache *c, size_t max_bytes, size_t max_user_bytes)
{
    memset(c, 0, sizeof *c);
    c->max_bytes = max_bytes;
    c->max_user_bytes = max_user_bytes;
}

void listing_cache_set_limits(struct listing_cache *c, size_t max_bytes, size_t max_user_bytes)
{
    c->max_bytes = max_bytes;
    c->max_user_bytes = max_user_bytes;
    for (struct listing_cache_user *u = c->lru_first, *next; u; u = next) {
        next = u->lru_next;
        if (u->bytes > max_user_bytes)
            user_remove(c, u);
    }
    evict(c, NULL);
}

void listing_cache_deinit(struct listing_cache *c)
{
    while (c->lru_first)
        user_remove(c, c->lru_first);
    free(c->buckets);
    memset(c, 0, sizeof *c);
}

static struct listing_cache_user *find_user(struct listing_cache *c, const char *key, size_t len,
                                            uint64_t hash)
{
    if (c->n_buckets == 0)
        return NULL;
    for (struct listing_cache_user *u = c->buckets[hash & (c->n_buckets - 1)]; u; u = u->hash_next)
        if (u->hash == hash && u->key_len == len && memcmp(u->key, key, len) == 0)
            return u;
    return NULL;
}

static struct listing_cache_folder *find_folder(struct listing_cache_user *u, const char *folder)
{
    for (unsigned i = 0; i < u->n_folders; i++)
        if (strcmp(u->folders[i].name, folder) == 0)
            return &u->folders[i];
    return NULL;
}

const struct listing_cache_folder *listing_cache_get(struct listing_cache *c, const char *user,
                                                     size_t user_len, const char *folder)
{
    struct listing_cache_user *u = find_user(c, user, user_len, hash64(HASH64_SEED, user, user_len));
    if (!u)
        return NULL;
    lru_unlink(c, u);
    lru_push_front(c, u);
    return find_folder(u, folder);
}

/* Doubles the bucket array once users outnumber buckets; a failed growth
 * leaves longer chains, not a failure. */
static void maybe_grow(struct listing_cache *c)
{
    if (c->n_users < c->n_buckets)
        return;
    size_t n = c->n_buckets ? c->n_buckets * 2 : 64;
    struct listing_cache_user **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < c->n_buckets; i++) {
        for (struct listing_cache_user *u = c->buckets[i], *next; u; u = next) {
            next = u->hash_next;
            u->hash_next = b[u->hash & (n - 1)];
            b[u->hash & (n - 1)] = u;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = n;
}

static struct listing_cache_user *add_user(struct listing_cache *c, const char *key, size_t len,
                                           uint64_t hash)
{
    maybe_grow(c);
    if (c->n_buckets == 0)
        return NULL;
    struct listing_cache_user *u = calloc(1, sizeof *u);
    char *k = malloc(len ? len : 1);
    if (!u || !k) {
        free(u);
        free(k);
        return NULL;
    }
    memcpy(k, key, len);
    u->key = k;
    u->key_len = len;
    u->hash = hash;
    u->bytes = user_base_bytes(u);
    u->hash_next = c->buckets[hash & (c->n_buckets - 1)];
    c->buckets[hash & (c->n_buckets - 1)] = u;
    lru_push_front(c, u);
    c->bytes += u->bytes;
    c->n_users++;
    return u;
}

static void drop_folder(struct listing_cache *c, struct listing_cache_user *u,
                        struct listing_cache_folder *f)
{
    size_t b = folder_bytes(f);
    u->bytes -= b;
    c->bytes -= b;
    folder_free(f);
    *f = u->folders[u->n_folders - 1];
    memset(&u->folders[u->n_folders - 1], 0, sizeof *f);
    u->n_folders--;
    if (u->n_folders == 0)
        user_remove(c, u);
}

void listing_cache_forget(struct listing_cache *c, const char *user, size_t user_len, const char *folder)
{
    struct listing_cache_user *u = find_user(c, user, user_len, hash64(HASH64_SEED, user, user_len));
    struct listing_cache_folder *f = u ? find_folder(u, folder) : NULL;
    if (f)
        drop_folder(c, u, f);
}

bool listing_cache_put(struct listing_cache *c, const char *user, size_t user_len, const char *folder,
                       const struct listing_meta *meta, const struct listing_record *records,
                       uint32_t count)
{
    listing_cache_forget(c, user, user_len, folder);
    size_t name_len = strlen(folder);
    size_t need = name_len + 1 + (size_t)count * sizeof *records;
    uint64_t hash = hash64(HASH64_SEED, user, user_len);
    struct listing_cache_user *u = find_user(c, user, user_len, hash);
    size_t base = u ? u->bytes : sizeof *u + user_len;
    if (base + need > c->max_user_bytes || base + need > c->max_bytes ||
        (u && u->n_folders >= LISTING_CACHE_FOLDERS))
        return false;
    if (!u && !(u = add_user(c, user, user_len, hash)))
        return false;
    struct listing_cache_folder f = { .meta = *meta, .count = count };
    f.name = malloc(name_len + 1);
    f.records = malloc(count ? (size_t)count * sizeof *records : 1);
    if (!f.name || !f.records) {
        free(f.name);
        free(f.records);
        if (u->n_folders == 0)
            user_remove(c, u);
        return false;
    }
    memcpy(f.name, folder, name_len + 1);
    if (count)
        memcpy(f.records, records, (size_t)count * sizeof *records);
    u->folders[u->n_folders++] = f;
    u->bytes += need;
    c->bytes += need;
    lru_unlink(c, u);
    lru_push_front(c, u);
    evict(c, u);
    return true;
}
