/* auth_throttle: failed-login counters shared by every gateway node through
 * Redis, so password guessing is slowed per user and per client address
 * however the attempts are spread over nodes; and the upstream's own
 * request to slow down (a throttle answer), so that no node logs the user in
 * upstream again before the backoff has passed.
 *
 *   REDIS_KEY_AUTHFAIL        failures for this user in the current window
 *   REDIS_KEY_AUTHFAIL_ADDR   failures from this client address
 *   REDIS_KEY_BACKOFF         present while the upstream backoff runs (PX)
 * (translate/redis_keys.h).
 * Each counter expires `window` seconds after its first failure. Two separate
 * keys (not one script) keep the layout Redis-Cluster-ready: the user key
 * lives in the user's slot, the address key wherever it hashes. */
#ifndef POPGATE_AUTH_THROTTLE_H
#define POPGATE_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "redis_store.h"

enum auth_throttle_verdict {
    AUTH_THROTTLE_ALLOW,
    AUTH_THROTTLE_BLOCK,          /* too many failed logins */
    AUTH_THROTTLE_BACKOFF,        /* the upstream asked for a backoff on this user */
    AUTH_THROTTLE_UNAVAILABLE,    /* Redis could not answer */
};

struct auth_throttle_limits {
    uint32_t max_per_user;    /* 0 = no limit */
    uint32_t max_per_addr;    /* 0 = no limit */
    uint32_t window;          /* seconds */
};

typedef void auth_throttle_cb(enum auth_throttle_verdict v, void *arg);

struct auth_throttle_check;

/* Reads both counters and the backoff (three commands in one round trip);
 * BLOCK wins over BACKOFF. Returns a handle to
 * cancel with auth_throttle_cancel() if the session ends first; NULL if the
 * check could not start (then cb is never called). */
struct auth_throttle_check *auth_throttle_check(struct redis_store *store, const char *state_user,
                                                const char *addr, const struct auth_throttle_limits *l,
                                                auth_throttle_cb *cb, void *arg);
void auth_throttle_cancel(struct auth_throttle_check *check);

/* Counts one failure for both (fire and forget). */
void auth_throttle_record_failure(struct redis_store *store, const char *state_user, const char *addr,
                                  uint32_t window);

/* Starts (or restarts) the user's upstream backoff for ms > 0 milliseconds
 * (fire and forget). The latest throttle answer sets it: it is the
 * upstream's newest word on how long to wait. */
void auth_throttle_record_backoff(struct redis_store *store, const char *state_user, uint32_t ms);

#endif
