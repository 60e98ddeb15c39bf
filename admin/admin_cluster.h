/* admin_cluster: popgate-admin against a Redis Cluster ([redis] cluster in
 * popgate's configuration). The same routing as the daemon, with the same
 * pure parts (translate/redis_cluster_map.h), on hiredis's blocking API:
 * the slot map from CLUSTER NODES on a seed, one connection per master
 * (made when first needed), each command sent to its key's master, MOVED
 * and ASK followed (at most REDIS_CLUSTER_REDIRECTS_MAX times), TRYAGAIN,
 * CLUSTERDOWN and endless redirects sent again after
 * REDIS_CLUSTER_RETRY_DELAY, as the daemon does, for at least the [redis]
 * timeout (and REDIS_CLUSTER_RETRIES_MAX times); SCAN run on every
 * master. */
#ifndef POPGATE_ADMIN_CLUSTER_H
#define POPGATE_ADMIN_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

struct admin;
struct admin_cluster;

/* Connects to a seed and reads the map; sets a->cluster and a->redis (the
 * seed). ADMIN_OK or ADMIN_UNAVAILABLE, after reporting why. */
int admin_cluster_connect(struct admin *a);
void admin_cluster_close(struct admin *a);
/* Points a->redis at the master serving key (for a pipeline of commands on
 * one key); false after reporting a failure. */
bool admin_cluster_route(struct admin *a, const char *key, size_t len);
/* One command on its key's master, redirects followed; as admin_command. */
redisReply *admin_cluster_command(struct admin *a, int argc, const char **argv, const size_t *argvlen);
/* A transaction pipelined on a key's master (admin_cluster_route, MULTI ...
 * EXEC) failed with the error text err: true when it may be sent again
 * whole (the cluster refused it at queueing, so EXEC ran nothing): MOVED
 * (the map now names the new master), or ASK, TRYAGAIN, CLUSTERDOWN (after
 * a pause: the slot is moving, a master being replaced); *tries (0 at
 * first) counts them, within the same bound as a command's. */
bool admin_cluster_again(struct admin *a, const char *err, unsigned *tries);
/* The masters' count; admin_cluster_use(a, i) points a->redis at the i-th
 * (false after reporting a failure): for SCAN on each. */
unsigned admin_cluster_masters(const struct admin *a);
bool admin_cluster_use(struct admin *a, unsigned i);

#endif
