/* lua_scripts: every Lua script popgate runs inside Redis, with its KEYS and
 * ARGV named in one place.
 *
 * Each script has two enums below, the positions of its keys and of its
 * arguments; lua_scripts.c gives each position a name (designated by the
 * enum), and the script's Lua reads its keys and arguments by those names:
 * redis_script.c puts `local lock_key, sessions_key = KEYS[1], KEYS[2]` and
 * the same for ARGV before the body. A C caller fills arrays indexed by the
 * enums (redis_script_call), so no call site counts positions.
 *
 * Keys are named by translate/redis_keys.h; one script touches only the keys
 * of one user (one Redis Cluster slot). A script runs atomically: Redis
 * serves no one else meanwhile, so each one's work is bounded by the mailbox
 * (a few ms for 50,000 messages) or by its caller's batch size.
 */
#ifndef POPGATE_LUA_SCRIPTS_H
#define POPGATE_LUA_SCRIPTS_H

#include <stdbool.h>

enum lua_script_id {
    LUA_STATE_LOAD,     /* every message's state bits for a device, and its hash */
    LUA_STATE_COMMIT,   /* QUIT: a session's changes, if it still holds the lock */
    LUA_LOCK_ACQUIRE,   /* the device lock, with the session cap and LOGIN-DELAY */
    LUA_LOCK_REFRESH,
    LUA_LOCK_RELEASE,
    LUA_UIDL_SAVE,      /* the lazy migration's UIDLs and marker */
    LUA_COUNTER_INCR,   /* a failed-login counter with its window */
    LUA_THROTTLE_READ,  /* a login's user failure counter and upstream backoff */
    LUA_OAUTH_LOAD,     /* a login's app password record and the user's sealed tokens */
    LUA_OAUTH_SAVE,     /* a refreshed token, compare-and-set on the refresh generation */
    LUA_OAUTH_REAUTH,   /* the provider refused the refresh: re-authorisation needed */
    LUA_SCRIPTS
};

struct lua_script {
    const char *name;               /* for logs */
    const char *const *keys;        /* n_keys Lua names of KEYS[1..] */
    unsigned n_keys;
    const char *const *args;        /* n_args Lua names of ARGV[1..] */
    unsigned n_args;
    /* More ARGV may follow the named ones; the body reads them from
     * ARGV[first_extra] on. */
    bool extra_args;
    const char *body;
};

/* NULL for an id out of range. */
const struct lua_script *lua_script(enum lua_script_id id);

/* ---- positions ------------------------------------------------------------ */

/* Ids are DEVICE_ID_BYTES (8) bytes each, concatenated; bits are
 * VIEW_STATE_* + '0'. */
enum { STATE_LOAD_KEY_READ, STATE_LOAD_KEY_GOT, STATE_LOAD_KEY_HIDE, STATE_LOAD_KEY_DEV,
       STATE_LOAD_KEY_RTIME, STATE_LOAD_KEY_SIZE, STATE_LOAD_KEYS };
enum { STATE_LOAD_ARG_IDS, STATE_LOAD_ARG_NOW, STATE_LOAD_ARG_TTL, STATE_LOAD_ARG_EXPIRE_BEFORE,
       STATE_LOAD_ARG_OLD_IDS, STATE_LOAD_ARGS };

enum { STATE_COMMIT_KEY_READ, STATE_COMMIT_KEY_GOT, STATE_COMMIT_KEY_HIDE, STATE_COMMIT_KEY_DEV,
       STATE_COMMIT_KEY_LOCK, STATE_COMMIT_KEY_RTIME, STATE_COMMIT_KEY_SIZE, STATE_COMMIT_KEY_SESSIONS,
       STATE_COMMIT_KEYS };
enum { STATE_COMMIT_ARG_TOKEN, STATE_COMMIT_ARG_NOW, STATE_COMMIT_ARG_ADDR, STATE_COMMIT_ARG_TTL,
       STATE_COMMIT_ARG_VIEW, STATE_COMMIT_ARG_UIDVALIDITY, STATE_COMMIT_ARG_IDSCHEME,
       STATE_COMMIT_ARG_GOT_IDS, STATE_COMMIT_ARG_HIDDEN_IDS, STATE_COMMIT_ARG_ALL_IDS,
       STATE_COMMIT_ARG_RETRIEVED, STATE_COMMIT_ARG_CLEAR_MARK_ALL, STATE_COMMIT_ARG_RECORD_RTIME,
       STATE_COMMIT_ARGS };

/* Returns 'IN-USE', 'LOGIN-DELAY', 'TOO-MANY', or on success {'OK', HLEN of
 * the legacy UIDLs, the legacy import's marker or false}: the login's legacy
 * check (uidl_store.h keys) read in the same round trip. */
enum { LOCK_ACQUIRE_KEY_LOCK, LOCK_ACQUIRE_KEY_SESSIONS, LOCK_ACQUIRE_KEY_DELAY, LOCK_ACQUIRE_KEY_UIDL,
       LOCK_ACQUIRE_KEY_LEGACY, LOCK_ACQUIRE_KEYS };
enum { LOCK_ACQUIRE_ARG_TOKEN, LOCK_ACQUIRE_ARG_TTL, LOCK_ACQUIRE_ARG_NOW, LOCK_ACQUIRE_ARG_MAX_SESSIONS,
       LOCK_ACQUIRE_ARG_LOGIN_DELAY, LOCK_ACQUIRE_ARGS };

enum { LOCK_REFRESH_KEY_LOCK, LOCK_REFRESH_KEY_SESSIONS, LOCK_REFRESH_KEYS };
enum { LOCK_REFRESH_ARG_TOKEN, LOCK_REFRESH_ARG_TTL, LOCK_REFRESH_ARG_NOW, LOCK_REFRESH_ARGS };

enum { LOCK_RELEASE_KEY_LOCK, LOCK_RELEASE_KEY_SESSIONS, LOCK_RELEASE_KEYS };
enum { LOCK_RELEASE_ARG_TOKEN, LOCK_RELEASE_ARGS };

/* Then Message-ID (or other field) / value pairs, as extra arguments. */
enum { UIDL_SAVE_KEY_UIDL, UIDL_SAVE_KEY_MARKER, UIDL_SAVE_KEYS };
enum { UIDL_SAVE_ARG_SET_MARKER, UIDL_SAVE_ARG_MARKER, UIDL_SAVE_ARGS };

/* Returns {record or false, rt or false, rt_gen, at or false, at_exp, status, reason}. */
enum { OAUTH_LOAD_KEY_APW, OAUTH_LOAD_KEY_OAUTH, OAUTH_LOAD_KEYS };
enum { OAUTH_LOAD_ARG_DEVICE, OAUTH_LOAD_ARGS };

/* rt "" keeps the stored refresh token (not rotated, or an app grant);
 * need_rt "1": a device grant, saved only while a refresh token is stored. */
enum { OAUTH_SAVE_KEY_OAUTH, OAUTH_SAVE_KEY_LOCK, OAUTH_SAVE_KEYS };
enum { OAUTH_SAVE_ARG_GEN, OAUTH_SAVE_ARG_RT, OAUTH_SAVE_ARG_AT, OAUTH_SAVE_ARG_AT_EXP, OAUTH_SAVE_ARG_NOW,
       OAUTH_SAVE_ARG_LOCK_TOKEN, OAUTH_SAVE_ARG_NEED_RT, OAUTH_SAVE_ARGS };

enum { OAUTH_REAUTH_KEY_OAUTH, OAUTH_REAUTH_KEY_LOCK, OAUTH_REAUTH_KEYS };
enum { OAUTH_REAUTH_ARG_GEN, OAUTH_REAUTH_ARG_REASON, OAUTH_REAUTH_ARG_NOW, OAUTH_REAUTH_ARG_LOCK_TOKEN,
       OAUTH_REAUTH_ARGS };


enum { COUNTER_INCR_KEY_COUNTER, COUNTER_INCR_KEYS };

/* Returns {the counter's value or false, PTTL of the backoff key}. */
enum { THROTTLE_READ_KEY_COUNTER, THROTTLE_READ_KEY_BACKOFF, THROTTLE_READ_KEYS };
enum { COUNTER_INCR_ARG_WINDOW, COUNTER_INCR_ARGS };

#endif
