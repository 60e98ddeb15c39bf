/* gateway: the process-wide part of popgate. One libev loop, the listeners,
 * the set of live sessions, the global connection cap, and the signal
 * handling (SIGHUP reloads the config, SIGTERM/SIGINT drain and stop).
 *
 * Sessions register themselves with gateway_session_started/_ended; the
 * gateway owns nothing of theirs but the list linkage. */
#ifndef POPGATE_GATEWAY_H
#define POPGATE_GATEWAY_H

#include <stdbool.h>

#include <ev.h>

#include "addr_limit.h"
#include "config.h"
#include "listing_cache.h"
#include "http_client.h"
#include "redis_store.h"
#include "work_pool.h"

/* Worker threads for the app passwords' Argon2id (work_pool.h). */
#define GATEWAY_HASH_THREADS 2

struct session;

struct gateway {
    struct ev_loop *loop;
    char config_path[PATH_MAX];
    struct config *config;           /* the config new sessions get */
    struct redis_store *redis;       /* shared by all sessions; [redis] changes need a restart */
    struct listing_cache listing_cache;  /* upstream listings seen (session_listing.c) */
    /* auth = oauth2 logins: token endpoint requests on the loop, and the
     * threads that run the app passwords' Argon2id off it */
    struct http_client *http;
    struct work_pool *work;

    int listen_fds[CONFIG_MAX_LISTENERS];
    ev_io listen_watchers[CONFIG_MAX_LISTENERS];
    unsigned n_listen;

    struct addr_limit per_addr;      /* live connections per client address */
    struct session *sessions;        /* intrusive doubly-linked list */
    unsigned n_sessions;
    unsigned n_pending;              /* connections still sending their PROXY header */
    unsigned long long sessions_total;
    unsigned long long logins_ok, logins_failed;
    char node_id[128];               /* hostname:pid, for REDIS_KEY_NODE */
    long long started;
    ev_timer stats_timer;            /* publishes the node's counters to Redis */

    bool draining;
    ev_signal sighup, sigterm, sigint;
    ev_timer drain_deadline;
};

/* Bind every listener of gw->config (done before dropping privileges). */
bool gateway_init(struct gateway *gw, struct ev_loop *loop, const char *config_path,
                  struct config *config);
/* Run until drained after SIGTERM/SIGINT. */
void gateway_run(struct gateway *gw);
void gateway_deinit(struct gateway *gw);

/* A client connection with its real address (after any PROXY header): apply
 * the global and per-address caps, then start its session. */
void gateway_admit(struct gateway *gw, int fd, const struct sockaddr *client, socklen_t clientlen,
                   bool implicit_tls);

void gateway_session_started(struct gateway *gw, struct session *s);
/* peer: the address the session counted against max_connections_per_addr. */
void gateway_session_ended(struct gateway *gw, struct session *s, const struct sockaddr *peer);

/* Drop root to [server] user/group once the ports are bound. */
bool gateway_drop_privileges(const struct config *c, char *err, size_t err_len);

#endif
