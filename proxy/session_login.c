/* session_login.c: the login as an explicit step machine (the LOGIN state,
 * between PASS or AUTH and the +OK of the TRANSACTION state).
 *
 * Every step is entered through login_enter(), which logs the transition and
 * starts it; next_step() below is the one place that says what follows what.
 * A step ends with login_step_done() or login_fail*(), never by calling the
 * next step itself, so the order can be read here and nowhere else. The
 * bodies of the steps that belong to a concern of their own stay in its file
 * (session_mapping.c, session_device.c, session_legacy.c, session_sizes.c);
 * the upstream steps connect and authenticate are here, select and listing
 * (with the node's listing cache) in session_listing.c. Where the server
 * takes it, the listing is sent behind the SELECT without waiting; the steps
 * and their order stay the same (the listing step then waits for the reply
 * already under way).
 *
 *   throttle -> mapping [-> app-password -> token] -> connect -> authenticate -> device-lock
 *   -> legacy-check -> { select -> listing [-> legacy-match, first folder] }
 *      for each of the mapping's folders
 *   -> state-load (and the view) -> measure-sizes -> complete
 *
 * Why this order: guessing is slowed before the upstream sees the attempt;
 * the mapping names the upstream; with auth = oauth2 the app password is
 * checked and the access token found before any upstream is contacted (the
 * token endpoint may be slow: no upstream connection idles meanwhile); the device is locked only once the upstream
 * accepted the credentials (an unauthenticated client must not lock a
 * device); the lazy legacy import needs the password, wiped right after; the
 * device state is keyed by ids the listings produce; sizes are measured only
 * for what the view shows. */
#include "session_internal.h"

#include "log.h"
#include "metrics.h"
#include "reply_code.h"

const char *const login_step_names[LOGIN_STEP_COUNT] = {
    [LOGIN_IDLE] = "none",
    [LOGIN_THROTTLE] = "throttle",
    [LOGIN_MAPPING] = "mapping",
    [LOGIN_APP_PASSWORD] = "app-password",
    [LOGIN_TOKEN] = "token",
    [LOGIN_CONNECT] = "connect",
    [LOGIN_AUTHENTICATE] = "authenticate",
    [LOGIN_DEVICE_LOCK] = "device-lock",
    [LOGIN_LEGACY_CHECK] = "legacy-check",
    [LOGIN_SELECT] = "select",
    [LOGIN_LISTING] = "listing",
    [LOGIN_LEGACY_MATCH] = "legacy-match",
    [LOGIN_STATE_LOAD] = "state-load",
    [LOGIN_MEASURE_SIZES] = "measure-sizes",
    [LOGIN_COMPLETE] = "complete",
};

static void login_enter(struct session *s, enum login_step step);

/* The name of a step for the log; bounds-checked so that no value of the enum
 * (LOGIN_STEP_COUNT included) can read past the table. */
static const char *step_name(enum login_step step)
{
    const char *name = (unsigned)step < LOGIN_STEP_COUNT ? login_step_names[step] : NULL;
    return name ? name : "?";
}

/* ---- the order ------------------------------------------------------------ */

/* The folder just listed was the mapping's last one. */
static bool last_folder(const struct session *s)
{
    return (unsigned)s->login.folder + 1 >= s->mapping->n_folders;
}

/* What follows `done`. The folder loop: each folder is selected and listed;
 * legacy UIDLs are matched against the first folder only. */
static enum login_step next_step(const struct session *s, enum login_step done)
{
    switch (done) {
    case LOGIN_IDLE:
        return LOGIN_THROTTLE;
    case LOGIN_THROTTLE:
        return LOGIN_MAPPING;
    case LOGIN_MAPPING:
        return s->mapping->auth == MAPPING_AUTH_OAUTH2 ? LOGIN_APP_PASSWORD : LOGIN_CONNECT;
    case LOGIN_APP_PASSWORD:
        return LOGIN_TOKEN;
    case LOGIN_TOKEN:
        return LOGIN_CONNECT;
    case LOGIN_CONNECT:
        return LOGIN_AUTHENTICATE;
    case LOGIN_AUTHENTICATE:
        return LOGIN_DEVICE_LOCK;
    case LOGIN_DEVICE_LOCK:
        return LOGIN_LEGACY_CHECK;
    case LOGIN_LEGACY_CHECK:
        return LOGIN_SELECT;
    case LOGIN_SELECT:
        return LOGIN_LISTING;
    case LOGIN_LISTING:
        if (s->login.folder == 0)
            return LOGIN_LEGACY_MATCH;
        return last_folder(s) ? LOGIN_STATE_LOAD : LOGIN_SELECT;
    case LOGIN_LEGACY_MATCH:
        return last_folder(s) ? LOGIN_STATE_LOAD : LOGIN_SELECT;
    case LOGIN_STATE_LOAD:
        return LOGIN_MEASURE_SIZES;
    case LOGIN_MEASURE_SIZES:
        return LOGIN_COMPLETE;
    case LOGIN_COMPLETE:
    case LOGIN_STEP_COUNT:
        break;
    }
    return LOGIN_IDLE;
}

void login_step_done(struct session *s)
{
    enum login_step next = next_step(s, s->login.step);
    if (next == LOGIN_SELECT)
        s->login.folder = s->login.step == LOGIN_LEGACY_CHECK ? 0 : (uint8_t)(s->login.folder + 1);
    login_enter(s, next);
}

/* ---- failure -------------------------------------------------------------- */

void login_fail(struct session *s, const char *reply, const char *reason, bool delayed)
{
    log_event(LOG_LEVEL_INFO, s->id, "login", "user", s->device.login.user,
              "device", s->device.login.device, "result", "failed", "reason", reason,
              "upstream_error", s->imap && *imap_client_last_error(s->imap) ? imap_client_last_error(s->imap) : NULL,
              LOG_END);
    s->gw->logins_failed++;
    metrics_counter_add2(METRIC_LOGINS_TOTAL, "failed", reason, 1);
    session_wipe_password(s);
    session_oauth_release(s);
    session_legacy_release(s);
    session_listing_release(s);
    session_device_release(s);
    imap_client_free(s->imap);
    s->imap = NULL;
    s->have_user = false;
    maildrop_free(&s->drop);
    s->login.step = LOGIN_IDLE;
    session_set_state(s, SESSION_AUTHORIZATION);
    session_reply_after(s, delayed ? s->cfg->auth_failure_delay : 0, reply);
}

void login_fail_upstream(struct session *s, enum imap_result r)
{
    struct pop3_error_reply reply = reply_for_login_failure(r);
    log_event(LOG_LEVEL_DEBUG, s->id, "login-step-failed", "step", step_name(s->login.step),
              "upstream", imap_result_name(r), LOG_END);
    login_fail(s, reply.line, reply.reason, reply.delayed);
}

/* ---- throttle ------------------------------------------------------------- */

static void on_throttle_verdict(enum auth_throttle_verdict v, void *arg)
{
    struct session *s = arg;
    s->throttle = NULL;
    if (v == AUTH_THROTTLE_BLOCK) {
        login_fail(s, "-ERR [AUTH] Too many failed logins; try again later.", "throttled", true);
        return;
    }
    if (v == AUTH_THROTTLE_BACKOFF) {
        struct pop3_error_reply reply = reply_for_upstream_backoff();
        login_fail(s, reply.line, reply.reason, reply.delayed);
        return;
    }
    if (v == AUTH_THROTTLE_UNAVAILABLE) {
        login_fail(s, "-ERR [SYS/TEMP] Mail service temporarily unavailable, try again later.", "redis", false);
        return;
    }
    login_step_done(s);
}

static void check_throttle(struct session *s)
{
    s->throttle = auth_throttle_check(s->gw->redis, s->device.login.state_user, s->peer_addr,
                                      &s->cfg->auth_throttle, on_throttle_verdict, s);
    if (!s->throttle)
        on_throttle_verdict(AUTH_THROTTLE_UNAVAILABLE, s);
}

/* ---- connect and authenticate --------------------------------------------- */

/* The upstream answered with a throttle, at login, RETR/TOP or QUIT: no
 * node contacts it for this user again before the backoff has passed (the
 * Redis key auth_throttle_check reads), and this session sends no more
 * RETR/TOP meanwhile. The failing command's own reply follows as usual. */
static void on_upstream_throttled(uint32_t suggested_ms, void *arg)
{
    struct session *s = arg;
    uint32_t ms = upstream_backoff_ms(suggested_ms, s->cfg->upstream_backoff, s->cfg->upstream_backoff_max);
    log_event(LOG_LEVEL_WARN, s->id, "upstream-throttled", "user", s->device.login.user,
              "suggested_ms", LOG_U64(suggested_ms), "backoff_ms", LOG_U64(ms),
              "upstream_error", s->imap ? imap_client_last_error(s->imap) : NULL, LOG_END);
    if (ms == 0)
        return;
    s->upstream_backoff_until = ev_now(s->gw->loop) + ms / 1000.;
    auth_throttle_record_backoff(s->gw->redis, s->device.login.state_user, ms);
}

/* The completion of an upstream step with nothing to keep from it
 * (connect): the next step, or the login fails. */
static void on_upstream_step(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        login_fail_upstream(s, r);
        return;
    }
    login_step_done(s);
}

static void connect_upstream(struct session *s)
{
    s->imap = imap_client_new(s->gw->loop, &s->mapping->upstream);
    if (!s->imap) {
        login_fail(s, "-ERR [SYS/TEMP] Out of resources.", "resources", false);
        return;
    }
    imap_client_on_throttle(s->imap, on_upstream_throttled, s);
    imap_connect(s->imap, on_upstream_step, s);
}

static void on_authenticated(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    if (s->mapping->auth == MAPPING_AUTH_OAUTH2)
        session_oauth_authenticated(s, r);
    /* The legacy check may need it: a lazy migration logs in to the old
     * server with it (session_legacy.c), and wipes it then. */
    if (!s->mapping->has_legacy || r != IMAP_RESULT_OK)
        session_wipe_password(s);
    if (r != IMAP_RESULT_OK) {
        if (r == IMAP_RESULT_AUTH_FAILED)
            auth_throttle_record_failure(s->gw->redis, s->device.login.state_user, s->peer_addr,
                                         s->cfg->auth_throttle.window);
        login_fail_upstream(s, r);
        return;
    }
    login_step_done(s);
}

static void authenticate(struct session *s)
{
    char upstream_user[LOGIN_USER_MAX + 1];
    if (!login_transform_apply(&s->mapping->login, s->device.login.user, upstream_user)) {
        login_fail(s, "-ERR [AUTH] Authentication failed.", "login-transform", true);
        return;
    }
    if (s->mapping->auth == MAPPING_AUTH_OAUTH2) {
        session_oauth_authenticate(s, upstream_user, on_authenticated);
        return;
    }
    imap_login(s->imap, upstream_user, s->password, on_authenticated, s);
}

/* ---- select and listing (once per folder): session_listing.c ---------- */

/* ---- complete ------------------------------------------------------------- */

static void complete(struct session *s)
{
    uint32_t count;
    uint64_t octets;
    maildrop_stat(&s->drop, &count, &octets);
    log_event(LOG_LEVEL_INFO, s->id, "login", "user", s->device.login.user,
              "device", s->device.login.device, "result", "ok", "peer", s->peer,
              "messages", LOG_U64(count), "octets", LOG_U64(octets), LOG_END);
    s->gw->logins_ok++;
    metrics_counter_add2(METRIC_LOGINS_TOTAL, "ok", "none", 1);
    metrics_observe(METRIC_UPSTREAM_LATENCY, ev_now(s->gw->loop) - s->login_started);
    session_legacy_build(s);
    session_set_state(s, SESSION_TRANSACTION);
    session_reply(s, "+OK Logged in.");
    session_command_done(s);
}

/* ---- entering a step ------------------------------------------------------ */

static void login_enter(struct session *s, enum login_step step)
{
    bool per_folder = step == LOGIN_SELECT || step == LOGIN_LISTING || step == LOGIN_LEGACY_MATCH;
    log_event(LOG_LEVEL_DEBUG, s->id, "login-step", "from", step_name(s->login.step),
              "to", step_name(step),
              "folder", per_folder ? s->mapping->folders[s->login.folder] : NULL, LOG_END);
    s->login.step = step;
    switch (step) {
    case LOGIN_IDLE:
    case LOGIN_STEP_COUNT:
        break;
    case LOGIN_THROTTLE:
        check_throttle(s);
        break;
    case LOGIN_MAPPING:
        session_resolve_mapping(s);
        break;
    case LOGIN_APP_PASSWORD:
        session_oauth_check_password(s);
        break;
    case LOGIN_TOKEN:
        session_oauth_token(s);
        break;
    case LOGIN_CONNECT:
        connect_upstream(s);
        break;
    case LOGIN_AUTHENTICATE:
        authenticate(s);
        break;
    case LOGIN_DEVICE_LOCK:
        session_device_lock(s);
        break;
    case LOGIN_LEGACY_CHECK:
        session_legacy_prepare(s);
        break;
    case LOGIN_SELECT:
        session_listing_select(s);
        break;
    case LOGIN_LISTING:
        session_listing_fetch(s);
        break;
    case LOGIN_LEGACY_MATCH:
        session_legacy_match(s);
        break;
    case LOGIN_STATE_LOAD:
        session_device_load(s);
        break;
    case LOGIN_MEASURE_SIZES:
        session_measure_sizes(s);
        break;
    case LOGIN_COMPLETE:
        complete(s);
        break;
    }
}

void login_start(struct session *s)
{
    s->login_started = ev_now(s->gw->loop);
    s->login.step = LOGIN_IDLE;
    session_set_state(s, SESSION_LOGIN);
    login_step_done(s);
}
