/* addr_limit: how many connections each client address holds, for the
 * per-address connection cap. Memory is one small node per distinct address
 * with a live connection (freed when its count returns to zero), in a fixed
 * array of ADDR_LIMIT_BUCKETS chains. IPv4 and IPv4-mapped IPv6 count as the
 * same address. */
#ifndef POPGATE_ADDR_LIMIT_H
#define POPGATE_ADDR_LIMIT_H

#include <stdbool.h>
#include <sys/socket.h>

#define ADDR_LIMIT_BUCKETS 4096

struct addr_limit_node;

struct addr_limit {
    struct addr_limit_node *buckets[ADDR_LIMIT_BUCKETS];
};

void addr_limit_init(struct addr_limit *l);
/* Counts one more connection from addr unless it already has max (0 = no
 * cap). Returns false, counting nothing, when the cap is reached. */
bool addr_limit_acquire(struct addr_limit *l, const struct sockaddr *addr, unsigned max);
void addr_limit_release(struct addr_limit *l, const struct sockaddr *addr);
unsigned addr_limit_count(const struct addr_limit *l, const struct sockaddr *addr);
void addr_limit_deinit(struct addr_limit *l);

#endif
