/* redis_keys: the name of every Redis key popgate and popgate-admin use. Pure
 * string building; no other file spells a key or the version prefix. A new
 * key is a row in the table below (and README.md "Devices and their state in
 * Redis"), a member of enum redis_key, and a row of the table in redis_keys.c.
 *
 * Every user key carries {user}, the user name in lower case (login_name.h
 * state_user): the Redis Cluster hash tag, so one user's keys share a slot
 * and one Lua script may touch them all. Of the node-wide keys, the address
 * counter is tagged by its address ({127.0.0.1}: each address in one slot,
 * addresses spread over the cluster); map and node keys, one key per
 * command, hash whole (a host name holds no brace, and map keeps the name
 * its durable overrides were written under).
 *
 * | key                           | type       | contents                                            |
 * | ----------------------------- | ---------- | --------------------------------------------------- |
 * | pg1:{user}:read               | id list    | ids of messages retrieved by any device             |
 * | pg1:{user}:got:<device>       | id list    | ids this device retrieved                           |
 * | pg1:{user}:hide:<device>      | id list    | ids this device deleted with on_dele = hide, or     |
 * |                               |            | that on_dele could not remove upstream              |
 * | pg1:{user}:dev:<device>       | hash       | first_seen, last_seen, last_addr, retrieved, view,  |
 * |                               |            | uidvalidity, idscheme, mark_all                     |
 * | pg1:{user}:lock:<device>      | string     | token of the session holding the device, PX expiry  |
 * | pg1:{user}:sessions           | sorted set | lock tokens of the user's open sessions, scored by  |
 * |                               |            | expiry in ms (max_sessions_per_user)                |
 * | pg1:{user}:delay:<device>     | string     | present for login_delay after the device's login    |
 * | pg1:{user}:rtime:<device>     | string     | when the got ids were first retrieved: "n@t,..."    |
 * |                               |            | runs over got's order (expire)                      |
 * | pg1:{user}:size               | hash       | id -> exact POP3 size, where RFC822.SIZE is not     |
 * |                               |            | what RETR sends (or every one with exact_sizes)     |
 * | pg1:{user}:legacy             | string     | the lazy legacy_pop3 import ran (its outcome)       |
 * | pg1:{user}:authfail           | string     | failed logins in the current window (expires)       |
 * | pg1:authfail:addr:{<address>} | string     | failed logins from a client address (expires)       |
 * | pg1:{user}:backoff            | string     | the upstream's throttle backoff runs (PX expiry)    |
 * | pg1:map:<user>                | hash       | the user's override (popgate-admin map set)         |
 * | pg1:{user}:uidl               | hash       | legacy UIDLs: Message-ID or header hash -> "uidl    |
 * |                               |            | size" (popgate-admin uidl import, lazy import)      |
 * | pg1:node:<host>:<pid>         | hash       | a node's counters, every 5 s, expiring after 30 s   |
 * | pg1:{user}:apw                | hash       | auth = oauth2: device -> its app password's record  |
 * |                               |            | (Argon2id salt and verifier, the user's data key    |
 * |                               |            | wrapped by that password; app_password.h)           |
 * | pg1:{user}:oauth              | hash       | auth = oauth2: rt (refresh token sealed under the   |
 * |                               |            | data key), rt_gen, at + at_exp (access token,       |
 * |                               |            | sealed), status, reason, authorized_at,             |
 * |                               |            | refreshed_at, refreshes (README "Microsoft 365 ...")|
 * | pg1:{user}:oauthlock          | string     | the node refreshing the user's token (PX expiry)    |
 *
 * An id list is a string (translate/id_list.h: groups of 8-byte ids and runs
 * of consecutive ones); a message id is message_state_id() (login_name.h),
 * 16 lower-case hex digits where it is a hash field (size).
 * "pg1" is REDIS_KEY_VERSION: a release that changes what a key holds changes
 * the version, so old and new nodes never read each other's state.
 */
#ifndef POPGATE_REDIS_KEYS_H
#define POPGATE_REDIS_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "login_name.h"

#define REDIS_KEY_VERSION "pg1"

/* Bound of every key, NUL included: the longest subject is a user name (an
 * address or a node id is shorter), with a device and the fixed parts. */
#define REDIS_KEY_MAX (32 + LOGIN_USER_MAX + DEVICE_NAME_MAX)
/* A SCAN MATCH pattern: each byte of a key escaped, plus the '*'. */
#define REDIS_KEY_PATTERN_MAX (2 * REDIS_KEY_MAX + 2)

enum redis_key {
    REDIS_KEY_READ,
    REDIS_KEY_GOT,
    REDIS_KEY_HIDE,
    REDIS_KEY_DEV,
    REDIS_KEY_LOCK,
    REDIS_KEY_SESSIONS,
    REDIS_KEY_DELAY,
    REDIS_KEY_RTIME,
    REDIS_KEY_SIZE,
    REDIS_KEY_LEGACY,
    REDIS_KEY_AUTHFAIL,
    REDIS_KEY_AUTHFAIL_ADDR,
    REDIS_KEY_BACKOFF,
    REDIS_KEY_MAP,
    REDIS_KEY_UIDL,
    REDIS_KEY_NODE,
    REDIS_KEY_APP_PASSWORD,
    REDIS_KEY_OAUTH,
    REDIS_KEY_OAUTH_LOCK,
    REDIS_KEYS
};

/* Writes key k into out (REDIS_KEY_MAX bytes) and returns its length.
 * subject: the user (state_user) for a user key and for map, the client
 * address for authfail:addr, the node id for node. device: the device name
 * for a <device> key, ignored by the others. 0, out empty, when the key
 * would not fit (a subject over its bound). */
size_t redis_key(char *out, enum redis_key k, const char *subject, const char *device);

/* The part of key k every such key of subject starts with, up to where the
 * device (or for map, authfail:addr and node, the subject) begins:
 * "pg1:{alice}:dev:", "pg1:map:". subject is ignored for the latter. Same
 * return as redis_key. */
size_t redis_key_prefix(char *out, enum redis_key k, const char *subject);

/* A SCAN MATCH pattern for every key that starts with redis_key_prefix(k,
 * subject): the glob characters * ? [ ] \ escaped (out: REDIS_KEY_PATTERN_MAX
 * bytes). Returns the pattern's length, 0 as redis_key. */
size_t redis_key_pattern(char *out, enum redis_key k, const char *subject);

/* A SCAN MATCH pattern for user key k of every user ("pg1:{*}:oauth").
 * Same return as redis_key; 0 for a device or named key. */
size_t redis_key_all_users_pattern(char *out, enum redis_key k);

/* The user in a user key k ("pg1:{alice}:oauth" -> "alice") into user
 * (LOGIN_USER_MAX + 1 bytes). False if key is not such a key. */
bool redis_key_user_of(const char *key, size_t len, enum redis_key k, char *user);

#endif
