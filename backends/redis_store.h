/* redis_store: the process's one connection to Redis, through hiredis's async
 * API on the libev loop. Never blocks: the address must be numeric (IP:port) or
 * a unix socket path, so hiredis never resolves a name.
 *
 * - Reconnects by itself with exponential backoff (REDIS_BACKOFF_MIN..MAX);
 *   while disconnected every command fails at once (asynchronously) with
 *   "redis unavailable", so logins fail closed with -ERR [SYS/TEMP].
 * - Every command has a deadline (config timeout). A command that misses it
 *   fails, and the connection is dropped and re-made: a Redis that stalls one
 *   reply is not trusted with the next.
 * - AUTH and SELECT are sent first on every (re)connection, then SCRIPT LOAD
 *   of every Lua script (redis_script.h), so a script call is one EVALSHA.
 *
 * - With [redis] cluster, each command goes to the node serving its key's
 *   slot (redis_cluster.h); MOVED and ASK are followed, TRYAGAIN,
 *   CLUSTERDOWN and more than REDIS_CLUSTER_REDIRECTS_MAX redirects in a row
 *   retried after REDIS_CLUSTER_RETRY_DELAY (at most
 *   REDIS_CLUSTER_RETRIES_MAX times), all within the command's deadline.
 *   A script's keys must all share one slot (the {user} tag): a call whose
 *   keys do not is refused, in every mode, before anything is sent.
 *
 * Lifetime of a request: redis_store_command() returns a handle valid until
 * its callback runs (exactly once) or until redis_request_cancel(), after
 * which the callback never runs. Cancel when the owner (a session) goes away.
 */
#ifndef POPGATE_REDIS_STORE_H
#define POPGATE_REDIS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "lua_scripts.h"

#define REDIS_ADDRESS_MAX 256
#define REDIS_PASSWORD_MAX 256
#define REDIS_BACKOFF_MIN 0.1
#define REDIS_BACKOFF_MAX 5.0

#define REDIS_SENTINEL_SLOTS 8       /* = REDIS_SENTINELS_MAX, and cluster seeds */
#define REDIS_CLUSTER_REDIRECTS_MAX 5  /* MOVED/ASK per try (each retry starts again) */
#define REDIS_CLUSTER_RETRIES_MAX 100  /* TRYAGAIN/CLUSTERDOWN per command (and the deadline) */
#define REDIS_CLUSTER_RETRY_DELAY 0.05

struct redis_store_config {
    char address[REDIS_ADDRESS_MAX];   /* "127.0.0.1:6379", "[::1]:6379" or "/run/redis.sock" */
    /* With sentinels, address is ignored: the master comes from Sentinel. */
    char sentinels[REDIS_SENTINEL_SLOTS][REDIS_ADDRESS_MAX];
    unsigned n_sentinels;
    char master_name[128];
    /* With cluster seeds, address is ignored: the nodes come from the
     * cluster's map (redis_cluster.h). Exclusive of address and sentinels. */
    char cluster[REDIS_SENTINEL_SLOTS][REDIS_ADDRESS_MAX];
    unsigned n_cluster;
    bool address_set;                  /* [redis] address was written */
    /* Commits wait (WAIT) for this many replicas before QUIT answers +OK. */
    unsigned replicas_ack;
    double wait_timeout;
    char password[REDIS_PASSWORD_MAX]; /* empty: no AUTH */
    unsigned database;
    double timeout;                    /* seconds per command and for connecting */
};

/* Checks the address syntax (numeric host only). */
bool redis_store_address_valid(const char *address);
/* "IP:port" / "[IPv6]:port" into its parts; false for anything else. */
bool redis_split_address(const char *address, char *ip, size_t ip_cap, int *port);

struct redis_store;
struct redis_request;

/* reply is NULL on failure, and error says why ("redis unavailable", "timeout",
 * or Redis's own error text for an error reply). Both valid only during the call. */
typedef void redis_reply_cb(const redisReply *reply, const char *error, void *arg);

/* Starts connecting at once. */
struct redis_store *redis_store_new(struct ev_loop *loop, const struct redis_store_config *cfg);
/* Pending callbacks run with "redis unavailable" before this returns. */
void redis_store_free(struct redis_store *store);
bool redis_store_connected(const struct redis_store *store);
/* Requests still waiting for their reply (shutdown waits for these, so lock
 * releases reach Redis before the process exits). */
unsigned redis_store_pending(const struct redis_store *store);
const struct redis_store_config *redis_store_config(const struct redis_store *store);

/* argv[1] is the command's one key (its slot routes it in a cluster). */
struct redis_request *redis_store_command(struct redis_store *store, redis_reply_cb *cb, void *arg,
                                          int argc, const char **argv, const size_t *argvlen);
/* A script call, for redis_script_call: argv is EVALSHA, the script's SHA1,
 * its keys and arguments. The formatted command is kept until the reply (as
 * many bytes as the arguments, while the call is pending): when Redis
 * answers NOSCRIPT, the script is loaded again and the command sent once
 * more, on the same handle; the callback sees only the second answer. */
struct redis_request *redis_store_script(struct redis_store *store, enum lua_script_id script, redis_reply_cb *cb,
                                         void *arg, int argc, const char **argv, const size_t *argvlen);
/* Only from inside req's callback, for a reply (not a failure): sends a
 * follow-up command on the same handle, whose reply goes to cb(arg) instead.
 * The handle stays valid, and cancellable, until that callback. For a step
 * that must wait for an answer (WAIT after the commit script) while the
 * caller holds one handle. False when the connection is going away: the
 * handle then ends with the running callback. */
bool redis_request_then(struct redis_request *req, redis_reply_cb *cb, void *arg, int argc, const char **argv,
                        const size_t *argvlen);
void redis_request_cancel(struct redis_request *req);
/* When req is cancelled, release(arg) runs (before the cancel returns): for
 * an arg the callback would have freed. */
void redis_request_on_cancel(struct redis_request *req, void (*release)(void *arg));
/* Fire and forget: for writes whose loss is harmless (a lock release that
 * would expire anyway, counters, node stats). */
void redis_store_send(struct redis_store *store, int argc, const char **argv, const size_t *argvlen);

#endif
