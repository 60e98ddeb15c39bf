/* session_oauth.c: the login steps of a mapping with auth = oauth2 (README.md
 * "Microsoft 365 and Google Workspace").
 *
 *   app-password  the device's record and the user's sealed tokens are read
 *                 (one Lua call); the typed app password is checked with
 *                 Argon2id on a worker thread (work_pool.h), which also gives
 *                 the key that unwraps the user's data key.
 *   token         an access token: the cached one while it is valid (another
 *                 node may have stored it), else one from the provider:
 *                 device grant: the refresh token, opened with the data key,
 *                 under the user's refresh lock; the node that gets a
 *                 rotated refresh token seals and saves it (compare-and-set
 *                 on its generation, oauth_store.h) before the login goes
 *                 on. Nodes that find the lock taken poll Redis for the
 *                 token it saves. client_credentials, jwt_bearer: asked
 *                 directly; the secret or key is the mapping's.
 *   authenticate  AUTHENTICATE OAUTHBEARER or XOAUTH2 (imap_client.h).
 *
 * Everything runs on the loop except the hash; the token step as a whole
 * (lock waits and the provider's answer) is bounded by the mapping's
 * command_timeout and then answers [SYS/TEMP].
 *
 * Secrets: the app password (the session's password buffer, wiped when the
 * hash is done), the data key, the refresh and access tokens: held in this
 * login's struct oauth_login, wiped when it is released (login done or
 * failed, session gone). Logs name the outcome and the provider's error
 * code, never a value. */
#include "session_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "app_password.h"
#include "base64.h"
#include "hex.h"
#include "log.h"
#include "metrics.h"
#include "oauth_client.h"
#include "oauth_store.h"
#include "sasl_plain.h"
#include "test_hold.h"
#include "token_envelope.h"

/* A cached access token is used until this many seconds before it expires:
 * time for the upstream login and clock differences between nodes. Tokens
 * that live less than twice as long are used for half their life. */
#define OAUTH_EXPIRY_MARGIN 60
/* When the provider names no lifetime (RFC 6749 makes expires_in optional). */
#define OAUTH_DEFAULT_LIFETIME 300
/* How often a node that found the refresh lock taken looks for the token. */
#define OAUTH_LOCK_POLL 0.2
#define OAUTH_LOCK_TOKEN_LEN 16   /* random octets, hex in Redis */

struct oauth_hash_job;

struct oauth_login {
    struct oauth_stored stored;            /* ~17 KB: the login's reads */
    uint8_t data_key[ENVELOPE_KEY_LEN];
    char *access_token;                    /* OAUTH_ACCESS_TOKEN_MAX + 1, wiped */
    bool token_from_cache;
    struct redis_request *req;
    struct oauth_hash_job *job;
    struct work_item *item;
    struct oauth_call *call;
    ev_timer timer;                        /* lock polling */
    ev_tstamp deadline;                    /* the token step's end (command_timeout) */
    char lock_token[HEX_LEN(OAUTH_LOCK_TOKEN_LEN) + 1];
    bool lock_held;
    bool saved;                            /* the save's compare-and-set held */
    bool lock_taken;                       /* the lock request's answer */
};

/* What a worker thread needs: copies, owned by the job, so a session that
 * goes away meanwhile leaves nothing dangling (work_pool.h). */
struct oauth_hash_job {
    struct session *s;                     /* NULL once the session gave up the job */
    struct app_password_record rec;
    char user[LOGIN_USER_MAX + 1];
    char device[DEVICE_NAME_MAX + 1];
    char typed[APP_PASSWORD_TYPED_MAX + 1];
    size_t typed_len;
    uint8_t data_key[ENVELOPE_KEY_LEN];
    enum app_password_status status;
};

static const char reply_reauth[] =
    "-ERR [AUTH] Re-authorisation needed: the mail provider no longer accepts this account's grant; "
    "an administrator must run popgate-admin oauth authorize.";
static const char reply_redis[] = "-ERR [SYS/TEMP] Mail service temporarily unavailable, try again later.";
static const char reply_crypto[] = "-ERR [SYS/TEMP] Temporary failure, try again later.";
static const char reply_temp[] = "-ERR [SYS/TEMP] Mail provider's sign-in service unavailable, try again later.";

/* Every buffer here held a secret: wiped before it is freed. */
static void wipe_free(void *p, size_t len)
{
    if (p) {
        OPENSSL_cleanse(p, len);
        free(p);
    }
}

static void job_free(struct oauth_hash_job *job)
{
    wipe_free(job, sizeof *job);
}

void session_oauth_release(struct session *s)
{
    struct oauth_login *o = s->oauth;
    if (!o)
        return;
    redis_request_cancel(o->req);
    if (o->call)
        oauth_call_cancel(o->call);
    if (o->item) {
        /* done(job, true) frees it later, from the loop. */
        o->job->s = NULL;
        work_pool_cancel(o->item);
    }
    ev_timer_stop(s->gw->loop, &o->timer);
    if (o->lock_held)
        oauth_store_unlock(s->gw->redis, s->device.login.state_user, o->lock_token);
    wipe_free(o->access_token, OAUTH_ACCESS_TOKEN_MAX + 1);
    wipe_free(o, sizeof *o);
    s->oauth = NULL;
}

/* A wrong app password counts as a failed login, as a wrong password does. */
static void fail_password(struct session *s)
{
    auth_throttle_record_failure(s->gw->redis, s->device.login.state_user, s->peer_addr,
                                 s->cfg->auth_throttle.window);
    login_fail(s, "-ERR [AUTH] Authentication failed.", "app-password", true);
}

/* ---- app-password --------------------------------------------------------- */

static void hash_work(void *arg)
{
    struct oauth_hash_job *job = arg;
    job->status = app_password_check(&job->rec, job->user, job->device, job->typed, job->typed_len,
                                     job->data_key);
    OPENSSL_cleanse(job->typed, sizeof job->typed);
    /* Test builds only: a hash that outlasts another login's refresh. */
    test_hold("oauth-hash", job->device);
}

static void hash_done(void *arg, bool cancelled)
{
    struct oauth_hash_job *job = arg;
    struct session *s = job->s;
    if (cancelled || !s) {
        job_free(job);
        return;
    }
    struct oauth_login *o = s->oauth;
    o->item = NULL;
    o->job = NULL;
    enum app_password_status st = job->status;
    memcpy(o->data_key, job->data_key, sizeof o->data_key);
    job_free(job);
    session_wipe_password(s);
    if (st == APP_PASSWORD_OK) {
        login_step_done(s);
        return;
    }
    log_event(LOG_LEVEL_DEBUG, s->id, "app-password", "result", app_password_status_text(st), LOG_END);
    if (st == APP_PASSWORD_CRYPTO_ERROR)
        login_fail(s, reply_crypto, "crypto", false);
    else
        fail_password(s);
}

static void on_loaded_for_password(bool ok, void *arg)
{
    struct session *s = arg;
    struct oauth_login *o = s->oauth;
    o->req = NULL;
    if (!ok) {
        login_fail(s, reply_redis, "redis", false);
        return;
    }
    struct oauth_hash_job *job = calloc(1, sizeof *job);
    if (!job) {
        login_fail(s, "-ERR [SYS/TEMP] Out of resources.", "resources", false);
        return;
    }
    size_t typed_len = s->password ? strlen(s->password) : 0;
    /* No record for this device, or not an app password's length: the same
     * answer, after the same delay, as a wrong one. */
    if (!o->stored.has_record || typed_len > APP_PASSWORD_TYPED_MAX ||
        app_password_record_parse(o->stored.record, strlen(o->stored.record), &job->rec) != APP_PASSWORD_OK) {
        job_free(job);
        session_wipe_password(s);
        fail_password(s);
        return;
    }
    job->s = s;
    snprintf(job->user, sizeof job->user, "%s", s->device.login.state_user);
    snprintf(job->device, sizeof job->device, "%s", s->device.login.device);
    memcpy(job->typed, s->password, typed_len);
    job->typed_len = typed_len;
    o->job = job;
    o->item = work_pool_submit(s->gw->work, hash_work, hash_done, job);
    if (!o->item) {
        o->job = NULL;
        job_free(job);
        login_fail(s, "-ERR [SYS/TEMP] Too many logins at once, try again later.", "busy", false);
    }
}

void session_oauth_check_password(struct session *s)
{
    s->oauth = calloc(1, sizeof *s->oauth);
    if (!s->oauth) {
        login_fail(s, "-ERR [SYS/TEMP] Out of resources.", "resources", false);
        return;
    }
    ev_timer_init(&s->oauth->timer, NULL, 0., 0.);
    s->oauth->req = oauth_store_load(s->gw->redis, s->device.login.state_user, s->device.login.device,
                                     &s->oauth->stored, on_loaded_for_password, s);
    if (!s->oauth->req)
        on_loaded_for_password(false, s);
}

/* ---- token ---------------------------------------------------------------- */

static const struct oauth_settings *settings(const struct session *s)
{
    return &s->mapping->oauth;
}

/* Open a sealed base64 value with the data key into out (cap octets, NUL
 * terminated). */
static bool open_sealed(struct session *s, const char *purpose, const char *b64, char *out, size_t cap)
{
    size_t b64_len = strlen(b64);
    size_t raw_cap = b64_len / 4 * 3 + 3;
    uint8_t *raw = malloc(raw_cap);
    if (!raw)
        return false;
    long raw_len = base64_decode_strict(b64, b64_len, raw, raw_cap);
    size_t plain_len = 0;
    bool ok = raw_len > 0 &&
              envelope_open(s->oauth->data_key, purpose, s->device.login.state_user, raw, (size_t)raw_len,
                            (uint8_t *)out, cap - 1, &plain_len) == ENVELOPE_OK;
    wipe_free(raw, raw_cap);
    out[ok ? plain_len : 0] = '\0';
    return ok;
}

/* Seal text with the data key, as base64 into out (cap octets). */
static bool seal(struct session *s, const char *purpose, const char *text, size_t len, char *out, size_t cap)
{
    size_t raw_cap = ENVELOPE_SEALED_LEN(len), raw_len = 0;
    uint8_t *raw = malloc(raw_cap);
    bool ok = raw &&
              envelope_seal(s->oauth->data_key, purpose, s->device.login.state_user, (const uint8_t *)text, len,
                            raw, raw_cap, &raw_len) == ENVELOPE_OK &&
              base64_encode(raw, raw_len, out, cap);
    wipe_free(raw, raw_cap);
    return ok;
}

static bool keep_access_token(struct session *s, const char *token, size_t len)
{
    struct oauth_login *o = s->oauth;
    if (len > OAUTH_ACCESS_TOKEN_MAX)
        return false;
    if (!o->access_token)
        o->access_token = malloc(OAUTH_ACCESS_TOKEN_MAX + 1);
    if (!o->access_token)
        return false;
    memcpy(o->access_token, token, len);
    o->access_token[len] = '\0';
    return true;
}

static bool use_cached(struct session *s)
{
    struct oauth_login *o = s->oauth;
    if (!o->stored.has_at || o->stored.at_exp <= (int64_t)time(NULL))
        return false;
    if (!o->access_token)
        o->access_token = malloc(OAUTH_ACCESS_TOKEN_MAX + 1);
    if (!o->access_token ||
        !open_sealed(s, ENVELOPE_PURPOSE_ACCESS_TOKEN, o->stored.at, o->access_token, OAUTH_ACCESS_TOKEN_MAX + 1))
        return false;
    o->token_from_cache = true;
    log_event(LOG_LEVEL_DEBUG, s->id, "oauth-token", "source", "cache", LOG_END);
    return true;
}

static unsigned remaining_ms(const struct session *s)
{
    double left = s->oauth->deadline - ev_now(s->gw->loop);
    return left <= 0 ? 1 : (unsigned)(left * 1000.) + 1;
}

static int64_t usable_until(long expires_in)
{
    long life = expires_in > 0 ? expires_in : OAUTH_DEFAULT_LIFETIME;
    long margin = life >= 2 * OAUTH_EXPIRY_MARGIN ? OAUTH_EXPIRY_MARGIN : life / 2;
    return (int64_t)time(NULL) + life - margin;
}

static void on_saved(bool ok, void *arg)
{
    struct session *s = arg;
    struct oauth_login *o = s->oauth;
    o->req = NULL;
    o->lock_held = false;   /* the save released it (or it had expired) */
    if (!ok) {
        /* A rotated refresh token that could not be stored is lost with
         * this login; the next one refreshes with the old token again. */
        login_fail(s, reply_redis, "redis", false);
        return;
    }
    if (!o->saved)
        log_event(LOG_LEVEL_INFO, s->id, "oauth-token-not-saved", "user", s->device.login.user,
                  "why", "another node or popgate-admin changed the grant meanwhile", LOG_END);
    login_step_done(s);
}

static void on_token(const struct oauth_result *r, void *arg)
{
    struct session *s = arg;
    struct oauth_login *o = s->oauth;
    const struct oauth_settings *set = settings(s);
    const char *user = s->device.login.state_user;
    o->call = NULL;
    metrics_counter_add2(METRIC_OAUTH_TOKEN_REQUESTS, oauth_grant_name(set->grant), oauth_outcome_name(r->outcome),
                         1);
    log_event(r->outcome == OAUTH_OK ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, s->id, "oauth-token",
              "user", s->device.login.user, "grant", oauth_grant_name(set->grant),
              "outcome", oauth_outcome_name(r->outcome), "reason", r->reason[0] ? r->reason : NULL,
              "http_status", r->http_status ? LOG_U64((uint64_t)r->http_status) : NULL, LOG_END);
    bool device = set->grant == OAUTH_GRANT_DEVICE;
    switch (r->outcome) {
    case OAUTH_OK:
        break;
    case OAUTH_REFUSED:
        if (device) {
            metrics_counter_add(METRIC_OAUTH_REAUTH_NEEDED, NULL, 1);
            oauth_store_mark_reauth(s->gw->redis, user, o->stored.rt_gen, r->reason[0] ? r->reason : "refused",
                                    o->lock_held ? o->lock_token : "");
            o->lock_held = false;
            login_fail(s, reply_reauth, "oauth-reauth-needed", false);
        } else {
            login_fail(s, "-ERR [AUTH] The mail provider refused access to this mailbox.", "oauth-refused", false);
        }
        return;
    case OAUTH_MISCONFIGURED:
        login_fail(s, "-ERR [AUTH] The mail provider refused popgate's sign-in configuration; contact the "
                      "administrator.", "oauth-misconfigured", false);
        return;
    case OAUTH_PENDING:
    case OAUTH_TEMPORARY:
        login_fail(s, reply_temp, "oauth-temporary", false);
        return;
    }
    if (!keep_access_token(s, r->access_token, r->access_token_len)) {
        login_fail(s, reply_temp, "oauth-temporary", false);
        return;
    }
    /* Seal what another node may reuse: the access token, and a rotated
     * refresh token (heap: up to ~17 KB of base64). */
    char *at = malloc(OAUTH_STORED_AT_MAX);
    char *rt = malloc(OAUTH_STORED_RT_MAX);
    bool ok = at && rt && seal(s, ENVELOPE_PURPOSE_ACCESS_TOKEN, r->access_token, r->access_token_len, at,
                               OAUTH_STORED_AT_MAX);
    if (ok) {
        rt[0] = '\0';
        if (device && r->refresh_token && r->refresh_token_len > 0)
            ok = seal(s, ENVELOPE_PURPOSE_REFRESH_TOKEN, r->refresh_token, r->refresh_token_len, rt,
                      OAUTH_STORED_RT_MAX);
    }
    if (ok)
        o->req = oauth_store_save(s->gw->redis, user, o->stored.rt_gen, rt, at, usable_until(r->expires_in),
                                  o->lock_held ? o->lock_token : "", device, &o->saved, on_saved, s);
    wipe_free(at, OAUTH_STORED_AT_MAX);
    wipe_free(rt, OAUTH_STORED_RT_MAX);
    /* Neither is the provider's fault: the same replies as the app
     * password's crypto failure and as a save Redis refused (on_saved). */
    if (!ok)
        login_fail(s, reply_crypto, "crypto", false);
    else if (!o->req)
        login_fail(s, reply_redis, "redis", false);
}

static void refresh(struct session *s)
{
    struct oauth_login *o = s->oauth;
    char *rt = malloc(OAUTH_REFRESH_TOKEN_MAX + 1);
    if (!rt || !open_sealed(s, ENVELOPE_PURPOSE_REFRESH_TOKEN, o->stored.rt, rt, OAUTH_REFRESH_TOKEN_MAX + 1)) {
        wipe_free(rt, OAUTH_REFRESH_TOKEN_MAX + 1);
        /* It does not open with the key every app password of the user
         * unwraps: altered in Redis. Only a new consent mends it. */
        login_fail(s, reply_reauth, "oauth-key-mismatch", false);
        return;
    }
    o->call = oauth_refresh(s->gw->http, &settings(s)->identity, rt, remaining_ms(s), on_token, s);
    wipe_free(rt, OAUTH_REFRESH_TOKEN_MAX + 1);
    if (!o->call)
        login_fail(s, reply_temp, "oauth-request", false);
}

static void try_lock(struct session *s);

/* The state read again: after a poll while another session held the
 * refresh lock, or once this session took the lock (o->lock_held). */
static void on_reloaded(bool ok, void *arg)
{
    struct session *s = arg;
    struct oauth_login *o = s->oauth;
    o->req = NULL;
    if (!ok) {
        login_fail(s, reply_redis, "redis", false);
        return;
    }
    if (use_cached(s)) {
        if (o->lock_held) {
            oauth_store_unlock(s->gw->redis, s->device.login.state_user, o->lock_token);
            o->lock_held = false;
        }
        login_step_done(s);
        return;
    }
    if (!strcmp(o->stored.status, "reauth-needed")) {
        login_fail(s, reply_reauth, "oauth-reauth-needed", false);
        return;
    }
    if (o->lock_held)
        refresh(s);
    else
        try_lock(s);
}

static void on_poll_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct session *s = w->data;
    struct oauth_login *o = s->oauth;
    if (ev_now(s->gw->loop) >= o->deadline) {
        login_fail(s, reply_temp, "oauth-lock-timeout", false);
        return;
    }
    o->req = oauth_store_load(s->gw->redis, s->device.login.state_user, s->device.login.device, &o->stored,
                              on_reloaded, s);
    if (!o->req)
        on_reloaded(false, s);
}

static void on_lock(bool ok, void *arg)
{
    struct session *s = arg;
    struct oauth_login *o = s->oauth;
    o->req = NULL;
    if (!ok) {
        login_fail(s, reply_redis, "redis", false);
        return;
    }
    if (o->lock_taken) {
        /* What this session loaded may predate the lock: another session
         * may have refreshed and saved while this one waited for its app
         * password's hash. Refreshing with that rotated-away token would
         * be a reuse, which providers punish by revoking the grant, so
         * read the state again under the lock first. */
        o->lock_held = true;
        o->req = oauth_store_load(s->gw->redis, s->device.login.state_user, s->device.login.device, &o->stored,
                                  on_reloaded, s);
        if (!o->req)
            on_reloaded(false, s);
        return;
    }
    /* Another session refreshes: wait for the token it saves. */
    ev_timer_init(&o->timer, on_poll_timer, OAUTH_LOCK_POLL, 0.);
    o->timer.data = s;
    ev_timer_start(s->gw->loop, &o->timer);
}

static void try_lock(struct session *s)
{
    struct oauth_login *o = s->oauth;
    uint8_t raw[OAUTH_LOCK_TOKEN_LEN];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        login_fail(s, reply_crypto, "crypto", false);
        return;
    }
    hex_encode(raw, sizeof raw, o->lock_token);
    /* Held at most as long as this login may wait for the provider, and a
     * little more for the save. */
    unsigned ttl_ms = remaining_ms(s) + 2000;
    o->req = oauth_store_lock(s->gw->redis, s->device.login.state_user, o->lock_token, ttl_ms, &o->lock_taken,
                              on_lock, s);
    if (!o->req)
        on_lock(false, s);
}

void session_oauth_token(struct session *s)
{
    struct oauth_login *o = s->oauth;
    const struct oauth_settings *set = settings(s);
    o->deadline = ev_now(s->gw->loop) + s->mapping->upstream.command_timeout;
    if (use_cached(s)) {
        login_step_done(s);
        return;
    }
    switch (set->grant) {
    case OAUTH_GRANT_DEVICE:
        if (!o->stored.has_rt) {
            login_fail(s, "-ERR [AUTH] This account is not authorised yet: an administrator must run "
                          "popgate-admin oauth authorize.", "oauth-not-authorised", false);
            return;
        }
        if (!strcmp(o->stored.status, "reauth-needed")) {
            login_fail(s, reply_reauth, "oauth-reauth-needed", false);
            return;
        }
        try_lock(s);
        return;
    case OAUTH_GRANT_CLIENT_CREDENTIALS:
        o->call = oauth_client_credentials(s->gw->http, &set->identity, remaining_ms(s), on_token, s);
        break;
    case OAUTH_GRANT_JWT_BEARER: {
        char upstream_user[LOGIN_USER_MAX + 1];
        if (!login_transform_apply(&s->mapping->login, s->device.login.user, upstream_user)) {
            login_fail(s, "-ERR [AUTH] Authentication failed.", "login-transform", true);
            return;
        }
        o->call = oauth_jwt_bearer(s->gw->http, &set->identity, upstream_user, time(NULL), remaining_ms(s),
                                   on_token, s);
        break;
    }
    }
    if (!o->call)
        login_fail(s, reply_temp, "oauth-request", false);
}

/* ---- authenticate --------------------------------------------------------- */

void session_oauth_authenticate(struct session *s, const char *upstream_user, imap_done_cb *done)
{
    const struct mapping_endpoint *e = &s->mapping->imap;
    imap_authenticate_oauth(s->imap, upstream_user, e->verify_name[0] ? e->verify_name : e->host, e->port,
                            s->oauth->access_token, done, s);
}

void session_oauth_authenticated(struct session *s, enum imap_result r)
{
    /* The upstream refused a cached token (revoked early): the next login
     * asks the provider again instead of trying it once more. */
    if (r == IMAP_RESULT_AUTH_FAILED && s->oauth && s->oauth->token_from_cache)
        oauth_store_drop_access(s->gw->redis, s->device.login.state_user);
    session_oauth_release(s);
}
