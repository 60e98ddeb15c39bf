/* addr_limit.c: see addr_limit.h. */
#include "addr_limit.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash64.h"

struct addr_limit_node {
    struct addr_limit_node *next;
    unsigned char key[16];   /* IPv6 form; IPv4 as ::ffff:a.b.c.d */
    unsigned count;
};

void addr_limit_init(struct addr_limit *l)
{
    memset(l, 0, sizeof *l);
}

static bool make_key(const struct sockaddr *addr, unsigned char key[16])
{
    if (addr->sa_family == AF_INET) {
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        memcpy(key, mapped, 12);
        memcpy(key + 12, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return true;
    }
    if (addr->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
        return true;
    }
    return false;  /* unix sockets are not capped per address */
}

static struct addr_limit_node **find(struct addr_limit *l, const unsigned char key[16])
{
    struct addr_limit_node **p = &l->buckets[hash64(HASH64_SEED, key, 16) % ADDR_LIMIT_BUCKETS];
    while (*p && memcmp((*p)->key, key, 16) != 0)
        p = &(*p)->next;
    return p;
}

bool addr_limit_acquire(struct addr_limit *l, const struct sockaddr *addr, unsigned max)
{
    unsigned char key[16];
    if (!make_key(addr, key))
        return true;
    struct addr_limit_node **p = find(l, key);
    if (!*p) {
        struct addr_limit_node *n = calloc(1, sizeof *n);
        if (!n)
            return false;
        memcpy(n->key, key, 16);
        *p = n;
    }
    if (max > 0 && (*p)->count >= max)
        return false;
    (*p)->count++;
    return true;
}

void addr_limit_release(struct addr_limit *l, const struct sockaddr *addr)
{
    unsigned char key[16];
    if (!make_key(addr, key))
        return;
    struct addr_limit_node **p = find(l, key);
    if (!*p)
        return;
    if ((*p)->count > 0)
        (*p)->count--;
    if ((*p)->count == 0) {
        struct addr_limit_node *dead = *p;
        *p = dead->next;
        free(dead);
    }
}

unsigned addr_limit_count(const struct addr_limit *l, const struct sockaddr *addr)
{
    unsigned char key[16];
    if (!make_key(addr, key))
        return 0;
    struct addr_limit_node **p = find((struct addr_limit *)l, key);
    return *p ? (*p)->count : 0;
}

void addr_limit_deinit(struct addr_limit *l)
{
    for (size_t i = 0; i < ADDR_LIMIT_BUCKETS; i++) {
        while (l->buckets[i]) {
            struct addr_limit_node *n = l->buckets[i];
            l->buckets[i] = n->next;
            free(n);
        }
    }
}
