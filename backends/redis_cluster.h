/* redis_cluster: redis_store's connections to a Redis Cluster, one per node,
 * and the slot map that says which node serves a key (translate/
 * redis_cluster_map.h). Debian 12 ships hiredis 0.14 and no hiredis-cluster,
 * so this is popgate's own small layer on hiredis async and libev.
 *
 * - Seeds ([redis] cluster) are connected first; the map comes from
 *   CLUSTER NODES on one of them, and again (at most every
 *   CLUSTER_REFRESH_MIN seconds) whenever a MOVED says it changed or a node's
 *   connection fails. Nothing is asked in the steady state: routing a command
 *   costs no extra round trip.
 * - Each node's connection sends AUTH when configured, then SCRIPT LOAD of
 *   every script, as redis_store does for one Redis; commands queued while
 *   it connects go out once it is up.
 * - A connection that fails is not retried for CLUSTER_RETRY_AFTER seconds,
 *   doubling with each failure in a row up to REDIS_BACKOFF_MAX: commands
 *   for its slots fail at once meanwhile ("redis unavailable"), so a dead
 *   master costs a session one fast -ERR [SYS/TEMP], not a timeout.
 *
 * Redirects (MOVED, ASK, TRYAGAIN) are followed by redis_store, which keeps
 * each command's bytes for that; this file only answers where to send. */
#ifndef POPGATE_REDIS_CLUSTER_H
#define POPGATE_REDIS_CLUSTER_H

#include <stdbool.h>

#include <ev.h>
#include <hiredis/async.h>

#include "redis_store.h"

#define CLUSTER_REFRESH_MIN 0.2
#define CLUSTER_RETRY_AFTER 0.5

struct redis_cluster;

struct redis_cluster *redis_cluster_new(struct ev_loop *loop, const struct redis_store_config *cfg);
/* Frees every connection: hiredis runs their pending callbacks with NULL. */
void redis_cluster_free(struct redis_cluster *c);
/* The connection (up or still connecting) of the node serving slot; slot -1:
 * any node that is up. NULL when none is known or its node is in its retry
 * pause. */
redisAsyncContext *redis_cluster_route(struct redis_cluster *c, int slot);
/* The connection to address ("IP:port"), made when new: for ASK. */
redisAsyncContext *redis_cluster_node(struct redis_cluster *c, const char *address);
/* A MOVED: slot is at address now; the map is refreshed soon after. */
void redis_cluster_moved(struct redis_cluster *c, unsigned slot, const char *address);
/* Whether ac is one of ours, up and not going away (a reply on it may be
 * followed by another command on it). */
bool redis_cluster_live(const redisAsyncContext *ac);
/* Drops ac's connection (a command timed out on it), failing what it holds. */
void redis_cluster_drop(struct redis_cluster *c, redisAsyncContext *ac, const char *why);
/* A map covering every slot, and a node up. */
bool redis_cluster_ready(const struct redis_cluster *c);

#endif
