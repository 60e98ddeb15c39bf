/* redis_sentinel: finds the Redis master through Redis Sentinel and tells
 * when it changes, for redis_store. hiredis 0.14 has no Sentinel support, so
 * this speaks the protocol itself (asynchronously, on the libev loop):
 * - a query asks one sentinel after another `SENTINEL get-master-addr-by-name`
 *   until one answers (each with the store's timeout);
 * - a watch connection stays SUBSCRIBEd to `+switch-master` and reports a
 *   failover of our master at once, instead of waiting for the old master's
 *   connection to fail (a demoted master may stay up, answering READONLY).
 * The caller must still check the server's ROLE: a sentinel's view can lag. */
#ifndef POPGATE_REDIS_SENTINEL_H
#define POPGATE_REDIS_SENTINEL_H

#include <ev.h>

#define REDIS_SENTINELS_MAX 8

struct redis_sentinel;

/* address: "IP:port" or "[IPv6]:port" of the master, NULL if no sentinel knew. */
typedef void redis_sentinel_master_cb(const char *address, void *arg);
typedef void redis_sentinel_switch_cb(void *arg);

struct redis_sentinel *redis_sentinel_new(struct ev_loop *loop, const char *const *sentinels, unsigned n,
                                          const char *master_name, double timeout,
                                          redis_sentinel_switch_cb *on_switch, void *arg);
/* One query at a time; a new one replaces (and silences) the previous. */
void redis_sentinel_query(struct redis_sentinel *s, redis_sentinel_master_cb *cb, void *arg);
void redis_sentinel_free(struct redis_sentinel *s);

#endif
