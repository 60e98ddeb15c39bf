/* device_state: each device's download state in Redis, and its lock.
 *
 * The keys (translate/redis_keys.h): a user's read set, and per device the
 * got and hide sets, the dev hash, the lock, the LOGIN-DELAY marker and the
 * retrieval times; the user's session count and exact sizes.
 *
 * The id lists are strings (translate/id_list.h): a run of consecutive ids
 * in a few bytes, any other id in 8 (the previous release's sets are
 * converted on first touch, lua_scripts.c). Round trips do not grow with the mailbox:
 * loading the state of every message is one script call over one argument
 * holding all ids concatenated; committing
 * is one that checks the lock and changes everything atomically (lua_scripts.h).
 *
 * Every call returns the pending redis_request (cancel it if the session goes
 * away first) and calls back exactly once otherwise.
 */
#ifndef POPGATE_DEVICE_STATE_H
#define POPGATE_DEVICE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "login_name.h"
#include "redis_keys.h"
#include "redis_store.h"

/* In the Redis lists (read, got, hide) and in the load and commit scripts'
 * id arguments an id is 8 bytes, big-endian; as a field of the size hash it
 * is 16 lower-case hex digits. */
#define DEVICE_ID_BYTES 8
#define DEVICE_ID_HEX 16
#define DEVICE_TOKEN_MAX 40

struct device_keys {
    char read[REDIS_KEY_MAX];
    char got[REDIS_KEY_MAX];
    char hide[REDIS_KEY_MAX];
    char dev[REDIS_KEY_MAX];
    char lock[REDIS_KEY_MAX];
    char sessions[REDIS_KEY_MAX];
    char delay[REDIS_KEY_MAX];
    char rtime[REDIS_KEY_MAX];
    char size[REDIS_KEY_MAX];
};

void device_keys_init(struct device_keys *k, const char *state_user, const char *device);
/* Writes the 16-hex form of id at out (which must have room for 16 bytes). */
void device_id_format(uint64_t id, char *out);
/* Writes the 8-byte form of id at out (DEVICE_ID_BYTES, not NUL-terminated). */
void device_id_pack(uint64_t id, char *out);

enum device_result {
    DEVICE_OK,
    DEVICE_IN_USE,        /* lock held by another session (any node) */
    DEVICE_LOCK_LOST,     /* our lock expired or was taken: do not commit */
    DEVICE_UNAVAILABLE,   /* Redis down, timeout, or an unexpected reply */
    DEVICE_LOGIN_DELAY,   /* the device logged in less than login_delay ago */
    DEVICE_TOO_MANY_SESSIONS,  /* the user has max_sessions sessions already */
};
typedef void device_done_cb(enum device_result r, void *arg);

/* Checked atomically with taking the lock (a mapping's limits). */
struct device_limits {
    int64_t now_ms;
    unsigned max_sessions;     /* the user's sessions on every node; 0 = no cap */
    uint32_t login_delay;      /* seconds between the device's logins; 0 = off */
};

/* What the lock's script read beside it for the login's legacy check
 * (uidl_store.h's keys): the legacy UIDLs stored (HLEN) and whether the lazy
 * import's marker exists. */
struct device_legacy_check {
    uint64_t entries;
    bool imported;
};
/* legacy: valid during the call, and only with DEVICE_OK. */
typedef void device_lock_cb(enum device_result r, const struct device_legacy_check *legacy, void *arg);

/* DEVICE_OK (lock taken, session counted, delay started), DEVICE_IN_USE,
 * DEVICE_LOGIN_DELAY or DEVICE_TOO_MANY_SESSIONS (nothing changed); with
 * OK, the legacy check of state_user in the same round trip. */
struct redis_request *device_lock_acquire(struct redis_store *store, const struct device_keys *k,
                                          const char *state_user, const char *token, uint32_t ttl_ms,
                                          const struct device_limits *lim, device_lock_cb *done, void *arg);
struct redis_request *device_lock_refresh(struct redis_store *store, const struct device_keys *k,
                                          const char *token, uint32_t ttl_ms, int64_t now_ms,
                                          device_done_cb *done, void *arg);
/* Fire and forget: compare-and-delete. */
void device_lock_release(struct redis_store *store, const struct device_keys *k, const char *token);

/* ids_scheme: "emailid" when ids come from EMAILID, "gmmsgid" from Gmail's
 * X-GM-MSGID, else "uid". */
struct device_load_result {
    enum device_result result;
    const char *bits;          /* one char '0'..'7' per id: VIEW_STATE_* bits + '0' */
    size_t nbits;
    int64_t first_seen;        /* 0 for a device never seen before */
    uint32_t uidvalidity;      /* last UIDVALIDITY this device committed with, 0 if none */
    char ids_scheme[8];
    uint64_t stored_read, stored_got, stored_hide;  /* set sizes, to detect stale ids */
    bool mark_all;             /* popgate-admin device mark-all is pending */
    /* Exact sizes known for some ids: n_sizes pairs (1-based index into the
     * ids, size) of integer replies, valid during the callback. */
    redisReply *const *sizes;
    size_t n_sizes;
    uint64_t stored_sizes;     /* entries in the size hash, to detect stale ones */
};
typedef void device_load_cb(const struct device_load_result *r, void *arg);

/* Reads the state bits of every id; registers the device (first_seen = now,
 * expiring after ttl_ms) if it is new, and changes nothing else, except that
 * state the previous release wrote (sets of hex ids) is converted: old_ids
 * holds each listed message's id as that release formed it (aligned with
 * ids; message_state_id_hashed_uid for UID-based ones) and is sent, in a
 * second round trip, only when such state is found. ids and old_ids must stay
 * valid until the callback. With expire_before > 0 (EXPIRE), an id this
 * device first retrieved at or before that time (epoch seconds) reads as
 * hidden. */
struct redis_request *device_state_load(struct redis_store *store, const struct device_keys *k,
                                        const char *ids, size_t ids_len, const char *old_ids, size_t old_len,
                                        int64_t now, uint64_t ttl_ms, int64_t expire_before,
                                        device_load_cb *done, void *arg);

struct device_commit {
    const char *token;             /* our lock token: the commit fails if it is not held */
    int64_t now;
    const char *addr;              /* client address for last_addr */
    uint64_t ttl_ms;               /* device_ttl: all of the device's keys expire after it */
    const char *view;              /* view name, shown by popgate-admin */
    uint32_t uidvalidity;
    const char *ids_scheme;
    /* Lists of DEVICE_ID_BYTES ids, concatenated. */
    const char *got_ids; size_t got_len;        /* add to got:<device> and read */
    const char *hidden_ids; size_t hidden_len;  /* add to hide:<device> */
    const char *all_ids; size_t all_len;        /* when non-empty: prune ids not in it */
    uint32_t retrieved;            /* RETR count, added to the device's counter */
    bool clear_mark_all;           /* the mark-all request was carried out */
    bool record_retrieval_time;    /* EXPIRE: note when got ids were first retrieved */
};

/* DEVICE_OK: committed, and the lock released with it (the session ends at
 * QUIT); DEVICE_LOCK_LOST or DEVICE_UNAVAILABLE: nothing changed. */
struct redis_request *device_state_commit(struct redis_store *store, const struct device_keys *k,
                                          const struct device_commit *c, device_done_cb *done, void *arg);

/* Records the exact POP3 size of message id for every node (fire and
 * forget; the hash expires after ttl_ms unless a commit refreshes it). */
void device_size_store(struct redis_store *store, const struct device_keys *k, uint64_t id, uint32_t size,
                       uint64_t ttl_ms);

/* The user's policy override, hash REDIS_KEY_MAP (popgate-admin map set):
 * pairs of field/value replies, valid during the callback; none when absent. */
typedef void device_override_cb(enum device_result r, const redisReply *const *pairs, size_t n_pairs,
                                void *arg);
struct redis_request *device_override_load(struct redis_store *store, const char *state_user,
                                           device_override_cb *done, void *arg);

#endif
