/* session_auth.c: the AUTHORIZATION state. CAPA, STLS, USER/PASS, AUTH PLAIN
 * (RFC 5034), and the upstream login that turns credentials into a maildrop:
 * connect, LOGIN/AUTHENTICATE, SELECT, listing. */
#include "session_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/crypto.h>

#include "hash64.h"
#include "log.h"
#include "metrics.h"
#include "reply_code.h"
#include "sasl_plain.h"

/* RFC 5034 allows longer SASL lines; the decoded PLAIN message of a user name
 * and password up to the line limit fits in this. */
#define SASL_DECODED_MAX ((POP3_SASL_LINE_MAX / 4) * 3 + 3)

static bool auth_allowed(const struct session *s)
{
    return net_stream_is_tls(s->client) || s->cfg->allow_plaintext_auth;
}

static const char plaintext_refused[] =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";

/* ---- CAPA and STLS ------------------------------------------------------ */

void session_cmd_capa(struct session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    bool pre_auth = s->state == SESSION_AUTHORIZATION;
    session_reply(s, "+OK Capability list follows");
    session_reply(s, "TOP");
    session_reply(s, "UIDL");
    session_reply(s, "RESP-CODES");
    session_reply(s, "AUTH-RESP-CODE");
    session_reply(s, "PIPELINING");
    if (pre_auth && auth_allowed(s)) {
        session_reply(s, "USER");
        session_reply(s, "SASL PLAIN");
    }
    if (pre_auth && !net_stream_is_tls(s->client) && s->cfg->server_tls)
        session_reply(s, "STLS");
    char line[40];
    if (pre_auth ? s->cfg->capa_login_delay[0] != '\0' : mapping_capa_login_delay(s->mapping, line, sizeof line))
        session_reply(s, pre_auth ? s->cfg->capa_login_delay : line);
    if (pre_auth ? s->cfg->capa_expire[0] != '\0' : mapping_capa_expire(s->mapping, line, sizeof line))
        session_reply(s, pre_auth ? s->cfg->capa_expire : line);
    session_reply(s, ".");
}

static void on_tls_ready(struct net_stream *ns, bool ok, enum net_stream_error err, void *arg)
{
    (void)ns;
    struct session *s = arg;
    if (!ok) {
        log_event(LOG_LEVEL_INFO, s->id, "tls-failed", "peer", s->peer,
                  "error", net_stream_error_name(err), LOG_END);
        session_tls_failed(s, err);
        return;
    }
    /* RFC 2595: forget everything learned before TLS. */
    pop3_line_reader_init(&s->reader);
    s->have_user = false;
    session_set_state(s, SESSION_AUTHORIZATION);
    if (!s->greeted)
        session_greet(s);
    session_command_done(s);
}

void session_start_tls_handshake(struct session *s)
{
    s->busy = true;
    session_set_state(s, SESSION_TLS_HANDSHAKE);
    net_stream_start_tls(s->client, s->cfg->server_tls, true, NULL, s->cfg->preauth_timeout,
                         on_tls_ready);
}

void session_cmd_stls(struct session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    if (net_stream_is_tls(s->client)) {
        session_bad_command(s, "-ERR TLS is already active.");
        return;
    }
    if (!s->cfg->server_tls) {
        session_bad_command(s, "-ERR TLS is not available.");
        return;
    }
    session_reply(s, "+OK Begin TLS negotiation now.");
    session_start_tls_handshake(s);
}

/* ---- the upstream login ------------------------------------------------- */

void session_login_failed_with(struct session *s, const char *reply, const char *reason, bool delayed)
{
    log_event(LOG_LEVEL_INFO, s->id, "login", "user", s->device.login.user,
              "device", s->device.login.device, "result", "failed", "reason", reason,
              "upstream_error", s->imap && *imap_client_last_error(s->imap) ? imap_client_last_error(s->imap) : NULL,
              LOG_END);
    s->gw->logins_failed++;
    metrics_counter_add2(METRIC_LOGINS_TOTAL, "failed", reason, 1);
    session_wipe_password(s);
    session_legacy_release(s);
    session_device_release(s);
    imap_client_free(s->imap);
    s->imap = NULL;
    s->have_user = false;
    maildrop_free(&s->drop);
    session_set_state(s, SESSION_AUTHORIZATION);
    session_reply_after(s, delayed ? s->cfg->auth_failure_delay : 0, reply);
}

static void login_failed(struct session *s, enum imap_result r, const char *step)
{
    struct pop3_error_reply reply = reply_for_login_failure(r);
    log_event(LOG_LEVEL_DEBUG, s->id, "login-step-failed", "step", step,
              "upstream", imap_result_name(r), LOG_END);
    session_login_failed_with(s, reply.line, reply.reason, reply.delayed);
}

static void on_listing_item(const struct imap_listing_item *item, void *arg)
{
    struct session *s = arg;
    uint8_t folder = (uint8_t)(s->drop.n_folders - 1);
    uint32_t uidvalidity = s->drop.folder_uidvalidity[folder];
    /* RFC822.SIZE until the device state says the exact size (Redis). Beyond
     * MAILDROP_MAX_MESSAGES the maildrop shows the oldest ones only. */
    if (!maildrop_append(&s->drop, item->uid, item->size))
        return;
    struct maildrop_entry *e = maildrop_get(&s->drop, s->drop.count);
    e->internaldate = item->internaldate;
    if (item->x_gm_msgid)
        e->state_id = message_state_id_x_gm(item->x_gm_msgid);
    else
        e->state_id = message_state_id(item->emailid, item->emailid_len, uidvalidity, item->uid);
    if (folder > 0 && !item->emailid && !item->x_gm_msgid) {
        /* UID and UIDVALIDITY may repeat across folders; EMAILIDs and
         * X-GM-MSGIDs do not (Gmail's id is the same in every label). */
        uint32_t tag = s->drop.folder_tag[folder];
        e->state_id = hash64(e->state_id, &tag, sizeof tag);
    }
    if (item->seen)
        e->flags |= MAILDROP_SEEN_UPSTREAM;
}

static void login_complete(struct session *s)
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

static void on_selected(struct imap_client *c, enum imap_result r, void *arg);

/* The view is applied: sizes LIST can trust, then the +OK. */
static void after_state_loaded(struct session *s)
{
    session_measure_sizes(s, login_complete);
}

static void list_next_folder(struct session *s);

/* A mapping's folders form one maildrop: list each in turn. */
static void on_listed(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        login_failed(s, r, "listing");
        return;
    }
    session_legacy_match(s, list_next_folder);
}

static void list_next_folder(struct session *s)
{
    unsigned next = (unsigned)s->selected_folder + 1;
    if (next < s->mapping->n_folders) {
        session_select_folder(s, (uint8_t)next, on_selected);
        return;
    }
    session_device_load(s, after_state_loaded);
}

static void on_selected(struct imap_client *c, enum imap_result r, void *arg)
{
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        login_failed(s, r, "select");
        return;
    }
    uint32_t uidvalidity = imap_client_uidvalidity(c);
    if (s->selected_folder == 0) {
        maildrop_free(&s->drop);
        maildrop_init(&s->drop, uidvalidity);
        /* By capability, not by what the listing held: an empty mailbox
         * must not store a scheme that the next login calls changed. */
        s->device.ids = imap_client_stable_ids(c);
    } else if (!maildrop_add_folder(&s->drop, uidvalidity,
                                    maildrop_folder_tag(s->mapping->folders[s->selected_folder]))) {
        login_failed(s, IMAP_RESULT_INVALID_ARGUMENT, "select");
        return;
    }
    imap_fetch_listing(c, on_listing_item, on_listed, s);
}

static void select_mailbox(struct session *s)
{
    session_select_folder(s, 0, on_selected);
}

static void legacy_then_select(struct session *s)
{
    session_legacy_prepare(s, select_mailbox);
}

static void on_logged_in(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    /* A lazy migration logs in to the old server with it (session_legacy.c). */
    if (!s->mapping->has_legacy || r != IMAP_RESULT_OK)
        session_wipe_password(s);
    if (r != IMAP_RESULT_OK) {
        if (r == IMAP_RESULT_AUTH_FAILED)
            auth_throttle_record_failure(s->gw->redis, s->device.login.state_user, s->peer_addr,
                                         s->cfg->auth_throttle.window);
        login_failed(s, r, "login");
        return;
    }
    /* Only now: an unauthenticated client must not be able to lock a device. */
    session_device_lock(s, legacy_then_select);
}

static void on_connected(struct imap_client *c, enum imap_result r, void *arg)
{
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        login_failed(s, r, "connect");
        return;
    }
    char upstream_user[LOGIN_USER_MAX + 1];
    if (!login_transform_apply(&s->mapping->login, s->device.login.user, upstream_user)) {
        session_wipe_password(s);
        session_login_failed_with(s, "-ERR [AUTH] Authentication failed.", "login-transform", true);
        return;
    }
    imap_login(c, upstream_user, s->password, on_logged_in, s);
}

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

/* The mapping is known: connect to its upstream. */
static void connect_upstream(struct session *s)
{
    s->imap = imap_client_new(s->gw->loop, &s->mapping->upstream);
    if (!s->imap) {
        session_login_failed_with(s, "-ERR [SYS/TEMP] Out of resources.", "resources", false);
        return;
    }
    imap_client_on_throttle(s->imap, on_upstream_throttled, s);
    imap_connect(s->imap, on_connected, s);
}

static void on_throttle_verdict(enum auth_throttle_verdict v, void *arg)
{
    struct session *s = arg;
    s->throttle = NULL;
    if (v == AUTH_THROTTLE_BLOCK) {
        session_login_failed_with(s, "-ERR [AUTH] Too many failed logins; try again later.", "throttled",
                                  true);
        return;
    }
    if (v == AUTH_THROTTLE_BACKOFF) {
        struct pop3_error_reply reply = reply_for_upstream_backoff();
        session_login_failed_with(s, reply.line, reply.reason, reply.delayed);
        return;
    }
    if (v == AUTH_THROTTLE_UNAVAILABLE) {
        session_login_failed_with(s, "-ERR [SYS/TEMP] Mail service temporarily unavailable, try again later.",
                                  "redis", false);
        return;
    }
    session_resolve_mapping(s, connect_upstream);
}

/* Takes user and password; the password is copied and wiped after use. */
static void begin_login(struct session *s, const char *user, size_t user_len,
                        const char *password, size_t password_len)
{
    if (user_len == 0 || user_len >= sizeof s->user ||
        !login_name_parse(user, user_len, s->cfg->device_separator, &s->device.login)) {
        session_reply(s, "-ERR [AUTH] Invalid user name or device name (device: A-Z a-z 0-9 . _ -, 1 to 32).");
        return;
    }
    memmove(s->user, user, user_len);
    s->user[user_len] = '\0';
    s->have_user = true;
    s->password = malloc(password_len + 1);
    if (!s->password) {
        session_reply(s, "-ERR [SYS/TEMP] Out of resources.");
        return;
    }
    memcpy(s->password, password, password_len);
    s->password[password_len] = '\0';
    s->busy = true;
    s->login_started = ev_now(s->gw->loop);
    session_set_state(s, SESSION_LOGIN);
    /* Guessing is slowed before the upstream server sees the attempt. */
    s->throttle = auth_throttle_check(s->gw->redis, s->device.login.state_user, s->peer_addr,
                                      &s->cfg->auth_throttle, on_throttle_verdict, s);
    if (!s->throttle)
        on_throttle_verdict(AUTH_THROTTLE_UNAVAILABLE, s);
}

/* ---- USER / PASS -------------------------------------------------------- */

void session_cmd_user(struct session *s, const struct pop3_command *cmd)
{
    if (!auth_allowed(s)) {
        session_bad_command(s, plaintext_refused);
        return;
    }
    if (cmd->argc != 1) {
        session_bad_command(s, "-ERR USER needs one argument.");
        return;
    }
    memcpy(s->user, cmd->argv[0], cmd->argv_len[0]);
    s->user[cmd->argv_len[0]] = '\0';
    s->have_user = true;
    session_reply(s, "+OK");
}

void session_cmd_pass(struct session *s, const struct pop3_command *cmd)
{
    if (!auth_allowed(s)) {
        session_bad_command(s, plaintext_refused);
        return;
    }
    if (!s->have_user) {
        session_bad_command(s, "-ERR No user name given.");
        return;
    }
    if (!cmd->rest || !*cmd->rest) {
        session_bad_command(s, "-ERR PASS needs an argument.");
        return;
    }
    begin_login(s, s->user, strlen(s->user), cmd->rest, strlen(cmd->rest));
}

/* ---- AUTH PLAIN (RFC 5034, RFC 4616) ------------------------------------ */

/* The response's decoded bytes hold the password: wiped on every path. */
static void auth_plain(struct session *s, const char *b64, size_t b64_len)
{
    unsigned char msg[SASL_DECODED_MAX];
    size_t decoded_len;
    struct sasl_plain plain;
    enum sasl_plain_result r = sasl_plain_parse(b64, b64_len, msg, sizeof msg, &decoded_len, &plain);
    if (r == SASL_PLAIN_MALFORMED)
        session_bad_command(s, "-ERR [AUTH] Invalid AUTH PLAIN response.");
    else if (r == SASL_PLAIN_REFUSED)
        session_reply_after(s, s->cfg->auth_failure_delay, "-ERR [AUTH] Authentication failed.");
    else
        begin_login(s, plain.authcid, plain.authcid_len, plain.passwd, plain.passwd_len);
    OPENSSL_cleanse(msg, decoded_len);
}

void session_cmd_auth(struct session *s, const struct pop3_command *cmd)
{
    if (cmd->argc == 0) {
        session_reply(s, "+OK");
        if (auth_allowed(s))
            session_reply(s, "PLAIN");
        session_reply(s, ".");
        return;
    }
    if (strcasecmp(cmd->argv[0], "PLAIN") != 0) {
        session_bad_command(s, "-ERR [AUTH] Unsupported authentication mechanism.");
        return;
    }
    if (!auth_allowed(s)) {
        session_bad_command(s, plaintext_refused);
        return;
    }
    if (cmd->argc == 2) {
        /* "=" is an empty initial response (RFC 5034 section 4). */
        bool empty = cmd->argv_len[1] == 1 && cmd->argv[1][0] == '=';
        auth_plain(s, cmd->argv[1], empty ? 0 : cmd->argv_len[1]);
        return;
    }
    session_set_state(s, SESSION_SASL_RESPONSE);
    pop3_line_reader_allow_long_line(&s->reader);
    session_reply(s, "+ ");
}

void session_sasl_response(struct session *s, const char *line, size_t len)
{
    session_set_state(s, SESSION_AUTHORIZATION);
    if (len == 1 && line[0] == '*') {
        session_bad_command(s, "-ERR [AUTH] Authentication aborted.");
        return;
    }
    auth_plain(s, line, len);
}
