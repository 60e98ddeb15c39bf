/* oauth_store: a user's OAuth state in Redis, for the login path: the
 * device's app password record and the sealed tokens (redis_keys.h apw,
 * oauth, oauthlock), read and written through the Lua scripts of
 * lua_scripts.h (one EVALSHA each, one user's slot).
 *
 * What is stored is already sealed (token_envelope.h) and base64-encoded by
 * the caller: nothing here sees a token in the clear.
 *
 * Concurrency (README "Microsoft 365 and Google Workspace"): a node about to
 * refresh takes the user's refresh lock (SET NX PX); the others wait for the
 * token it saves. The save is a compare-and-set on rt_gen, the generation of
 * the refresh token the refresher read, so a refresh that outlived its lock
 * cannot overwrite a newer rotation, an authorisation or a revocation.
 *
 * Requests: each call returns the pending request (cancel it when the
 * session goes) or NULL with no callback (out of memory); the callback runs
 * once, with ok false when Redis failed or answered something else. */
#ifndef POPGATE_OAUTH_STORE_H
#define POPGATE_OAUTH_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "app_password.h"
#include "base64.h"
#include "oauth_client.h"
#include "oauth_json.h"
#include "redis_store.h"
#include "token_envelope.h"

/* Longest stored sealed token, base64, with the NUL. */
#define OAUTH_STORED_RT_MAX (BASE64_LEN(ENVELOPE_SEALED_LEN(OAUTH_REFRESH_TOKEN_MAX)) + 1)
#define OAUTH_STORED_AT_MAX (BASE64_LEN(ENVELOPE_SEALED_LEN(OAUTH_ACCESS_TOKEN_MAX)) + 1)
#define OAUTH_STATUS_MAX 32

/* What a login reads: ~17 KB, held only during the login. */
struct oauth_stored {
    bool has_record;
    char record[APP_PASSWORD_RECORD_MAX];   /* the device's app password record */
    bool has_rt;
    char rt[OAUTH_STORED_RT_MAX];           /* sealed refresh token, base64 */
    char rt_gen[24];                        /* its generation, decimal ("0": none yet) */
    bool has_at;
    char at[OAUTH_STORED_AT_MAX];           /* sealed access token, base64 */
    int64_t at_exp;                         /* unix seconds after which it is not used */
    char status[OAUTH_STATUS_MAX];          /* "", "ok", "reauth-needed" */
    char reason[OAUTH_REASON_MAX + 1];
};

typedef void oauth_store_cb(bool ok, void *arg);

/* Fills *out (caller's, valid until cb) for (user, device). */
struct redis_request *oauth_store_load(struct redis_store *r, const char *user, const char *device,
                                       struct oauth_stored *out, oauth_store_cb *cb, void *arg);

/* SET lock token NX PX ttl_ms: *taken tells whether this caller holds it. */
struct redis_request *oauth_store_lock(struct redis_store *r, const char *user, const char *token,
                                       unsigned ttl_ms, bool *taken, oauth_store_cb *cb, void *arg);

/* A token from the provider: at (sealed, base64) valid until at_exp; rt the
 * rotated refresh token (sealed, base64) or "" to keep the stored one.
 * need_rt: a device grant (saved only while gen is current). Releases the
 * lock if lock_token holds it ("" = none). *saved: the compare-and-set held. */
struct redis_request *oauth_store_save(struct redis_store *r, const char *user, const char *gen, const char *rt,
                                       const char *at, int64_t at_exp, const char *lock_token, bool need_rt,
                                       bool *saved, oauth_store_cb *cb, void *arg);

/* The provider refused the refresh (reason: its error code, no secret):
 * status reauth-needed, the cached access token dropped, if gen is still
 * the stored generation. Fire and forget, as is the lock release. */
void oauth_store_mark_reauth(struct redis_store *r, const char *user, const char *gen, const char *reason,
                             const char *lock_token);
void oauth_store_unlock(struct redis_store *r, const char *user, const char *lock_token);

/* The upstream refused a cached access token: drop it, so the next login
 * asks for a new one. Fire and forget. */
void oauth_store_drop_access(struct redis_store *r, const char *user);

#endif
