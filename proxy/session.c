/* session.c: session lifecycle, timers, and the command loop. The commands
 * themselves live in session_auth.c, session_transaction.c and
 * session_commit.c. */
#include "session_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "log.h"
#include "metrics.h"
#include "pop3_status.h"

const char *const session_state_names[SESSION_STATE_COUNT] = {
    [SESSION_TLS_HANDSHAKE] = "tls-handshake",
    [SESSION_AUTHORIZATION] = "authorization",
    [SESSION_SASL_RESPONSE] = "sasl-response",
    [SESSION_LOGIN] = "login",
    [SESSION_TRANSACTION] = "transaction",
    [SESSION_UPDATE] = "update",
    [SESSION_CLOSING] = "closing",
};

#define IN(st) (1u << (st))

struct command_handler {
    enum pop3_verb verb;
    unsigned allowed_states;
    void (*run)(struct session *s, const struct pop3_command *cmd);
};

static const struct command_handler command_table[] = {
    { POP3_CAPA, IN(SESSION_AUTHORIZATION) | IN(SESSION_TRANSACTION), session_cmd_capa },
    { POP3_STLS, IN(SESSION_AUTHORIZATION), session_cmd_stls },
    { POP3_USER, IN(SESSION_AUTHORIZATION), session_cmd_user },
    { POP3_PASS, IN(SESSION_AUTHORIZATION), session_cmd_pass },
    { POP3_AUTH, IN(SESSION_AUTHORIZATION), session_cmd_auth },
    { POP3_QUIT, IN(SESSION_AUTHORIZATION) | IN(SESSION_TRANSACTION), session_cmd_quit },
    { POP3_STAT, IN(SESSION_TRANSACTION), session_cmd_stat },
    { POP3_LIST, IN(SESSION_TRANSACTION), session_cmd_list },
    { POP3_UIDL, IN(SESSION_TRANSACTION), session_cmd_uidl },
    { POP3_RETR, IN(SESSION_TRANSACTION), session_cmd_retr },
    { POP3_TOP, IN(SESSION_TRANSACTION), session_cmd_top },
    { POP3_DELE, IN(SESSION_TRANSACTION), session_cmd_dele },
    { POP3_RSET, IN(SESSION_TRANSACTION), session_cmd_rset },
    { POP3_NOOP, IN(SESSION_TRANSACTION), session_cmd_noop },
};

static size_t on_client_read(struct net_stream *ns, const char *data, size_t len, void *arg);
static void on_client_drain(struct net_stream *ns, void *arg);
static void on_client_close(struct net_stream *ns, enum net_stream_error err, void *arg);

static const struct net_stream_callbacks client_callbacks = {
    .on_read = on_client_read,
    .on_drain = on_client_drain,
    .on_close = on_client_close,
};

/* ---- replies ------------------------------------------------------------ */

/* A reply over RFC 2449's bound is popgate's bug: sending it cut or not at
 * all would leave the client misled or waiting, so the session ends, loudly. */
static void reply_too_long(struct session *s)
{
    log_event(LOG_LEVEL_ERROR, s->id, "reply-too-long", "state", session_state_names[s->state],
              "max_octets", LOG_U64(POP3_STATUS_LINE_MAX), LOG_END);
    session_close(s, "-ERR [SYS/TEMP] Internal error.", "reply-too-long");
}

static void send_reply(struct session *s, const char *framed, size_t len)
{
    /* Line and CRLF in one write: one segment, and a client's read never
     * ends between them. */
    if (net_stream_write(s->client, framed, len))
        s->bytes_out += len;
}

void session_reply(struct session *s, const char *line)
{
    char framed[POP3_STATUS_LINE_MAX];
    size_t len = pop3_status_line(framed, line);
    if (len == 0) {
        reply_too_long(s);
        return;
    }
    send_reply(s, framed, len);
}

void session_replyf(struct session *s, const char *fmt, ...)
{
    char framed[POP3_STATUS_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t len = pop3_status_vformat(framed, fmt, ap);
    va_end(ap);
    if (len == 0) {
        reply_too_long(s);
        return;
    }
    send_reply(s, framed, len);
}

/* ---- state -------------------------------------------------------------- */

void session_set_state(struct session *s, enum session_state st)
{
    if (s->state == st)
        return;
    log_event(LOG_LEVEL_DEBUG, s->id, "state", "from", session_state_names[s->state],
              "to", session_state_names[st], LOG_END);
    s->state = st;
}

static bool accepting_commands(const struct session *s)
{
    return !s->busy && (s->state == SESSION_AUTHORIZATION || s->state == SESSION_TRANSACTION ||
                        s->state == SESSION_SASL_RESPONSE);
}

/* ---- timers ------------------------------------------------------------- */

static void arm_timer(struct session *s, double seconds)
{
    ev_timer_stop(s->gw->loop, &s->idle_timer);
    ev_timer_set(&s->idle_timer, seconds, 0.);
    ev_timer_start(s->gw->loop, &s->idle_timer);
}

/* After login, activity restarts the idle timeout. Before it, nothing does:
 * preauth_timeout is the time a connection has to log in at all, so a client
 * sending CAPA forever is still cut off. */
static void on_folder_selected(struct imap_client *c, enum imap_result r, void *arg)
{
    struct session *s = arg;
    imap_done_cb *done = s->select_done;
    s->select_done = NULL;
    /* After a failed SELECT no mailbox is selected upstream (RFC 3501 6.3.1). */
    if (r != IMAP_RESULT_OK)
        s->selected_folder = -1;
    done(c, r, s);
}

void session_select_folder(struct session *s, uint8_t folder, imap_done_cb *done)
{
    if (s->selected_folder == folder) {
        done(s->imap, IMAP_RESULT_OK, s);
        return;
    }
    s->selected_folder = folder;
    s->select_done = done;
    imap_select(s->imap, s->mapping->folders[folder], on_folder_selected, s);
}

void session_touch(struct session *s)
{
    if (s->state == SESSION_TRANSACTION || s->state == SESSION_UPDATE)
        arm_timer(s, s->cfg->idle_timeout);
    else if (!ev_is_active(&s->idle_timer))
        arm_timer(s, s->cfg->preauth_timeout);
}

static void session_destroy(struct session *s, const char *reason);

static void on_idle_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct session *s = w->data;
    if (s->state == SESSION_CLOSING) {
        /* The final reply never drained: the client stopped reading. */
        session_destroy(s, "close-timeout");
        return;
    }
    session_close(s, "-ERR Disconnected for inactivity.", "timeout");
}

static void on_delayed_reply(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct session *s = w->data;
    session_reply(s, s->delayed_reply);
    s->delayed_reply = NULL;
    session_command_done(s);
}

void session_reply_after(struct session *s, double delay, const char *line)
{
    if (delay <= 0) {
        session_reply(s, line);
        session_command_done(s);
        return;
    }
    s->busy = true;
    s->delayed_reply = line;
    ev_timer_set(&s->delay_timer, delay, 0.);
    ev_timer_start(s->gw->loop, &s->delay_timer);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void format_peer(struct session *s, const struct sockaddr *sa)
{
    unsigned port = 0;
    snprintf(s->peer_addr, sizeof s->peer_addr, "unix");
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, s->peer_addr, sizeof s->peer_addr);
        port = ntohs(a->sin_port);
        snprintf(s->peer, sizeof s->peer, "%s:%u", s->peer_addr, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, s->peer_addr, sizeof s->peer_addr);
        port = ntohs(a->sin6_port);
        snprintf(s->peer, sizeof s->peer, "[%s]:%u", s->peer_addr, port);
    } else {
        snprintf(s->peer, sizeof s->peer, "unix");
    }
}

static void make_session_id(char out[17])
{
    unsigned char raw[8];
    static unsigned long long counter;
    if (RAND_bytes(raw, sizeof raw) != 1) {
        unsigned long long v = ++counter ^ (unsigned long long)getpid() << 32;
        memcpy(raw, &v, sizeof raw);
    }
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

void session_greet(struct session *s)
{
    /* No version or host name: nothing for a scanner to fingerprint. */
    s->greeted = true;
    session_reply(s, "+OK POP3 gateway ready.");
}

void session_start(struct gateway *gw, int fd, const struct sockaddr *peer, socklen_t peerlen,
                   bool implicit_tls)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s || peerlen > sizeof s->peer_sa) {
        addr_limit_release(&gw->per_addr, peer);
        free(s);
        close(fd);
        return;
    }
    memcpy(&s->peer_sa, peer, peerlen);
    s->gw = gw;
    s->cfg = config_ref(gw->config);
    s->mapping = &s->cfg->mappings[0];
    s->selected_folder = -1;
    s->policy = s->mapping->policy;
    make_session_id(s->id);
    format_peer(s, peer);
    pop3_line_reader_init(&s->reader);
    maildrop_init(&s->drop, 0);
    ev_timer_init(&s->idle_timer, on_idle_timeout, 0., 0.);
    s->idle_timer.data = s;
    ev_timer_init(&s->delay_timer, on_delayed_reply, 0., 0.);
    legacy_uidl_init(&s->legacy_uidls);
    session_legacy_init(s);
    s->delay_timer.data = s;
    session_device_init(s);

    s->client = net_stream_from_fd(gw->loop, fd, &client_callbacks, s);
    if (!s->client) {
        addr_limit_release(&gw->per_addr, peer);
        close(fd);
        config_unref(s->cfg);
        free(s);
        return;
    }
    /* PASS and AUTH lines: no copy of a password outlives its command. */
    net_stream_wipe_input(s->client);
    gateway_session_started(gw, s);
    log_event(LOG_LEVEL_INFO, s->id, "connect", "peer", s->peer,
              "tls", implicit_tls ? "implicit" : "no", LOG_END);
    session_touch(s);
    if (implicit_tls) {
        session_start_tls_handshake(s);
    } else {
        s->state = SESSION_AUTHORIZATION;
        session_greet(s);
    }
}

void session_wipe_password(struct session *s)
{
    if (s->password) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
        s->password = NULL;
    }
}

static void session_destroy(struct session *s, const char *reason)
{
    metrics_counter_add(METRIC_SESSIONS_TOTAL, s->close_reason ? s->close_reason : reason, 1);
    metrics_counter_add(METRIC_BYTES_RELAYED_TOTAL, NULL, s->bytes_out);
    log_event(LOG_LEVEL_INFO, s->id, "disconnect", "reason", reason,
              "state", session_state_names[s->state],
              "user", s->have_user ? s->device.login.user : NULL,
              "device", s->have_user ? s->device.login.device : NULL,
              "retr", LOG_U64(s->retr_count), "bytes_out", LOG_U64(s->bytes_out), LOG_END);
    ev_timer_stop(s->gw->loop, &s->idle_timer);
    ev_timer_stop(s->gw->loop, &s->delay_timer);
    session_oauth_release(s);
    session_legacy_release(s);
    session_listing_release(s);
    session_device_release(s);
    auth_throttle_cancel(s->throttle);
    imap_client_free(s->imap);
    session_prefetch_release(s);
    net_stream_free(s->client);
    pop3_line_reader_deinit(&s->reader);
    session_wipe_password(s);
    maildrop_free(&s->drop);
    free(s->commit);
    session_trash_release(s);
    gateway_session_ended(s->gw, s, (const struct sockaddr *)&s->peer_sa);
    config_unref(s->cfg);
    free(s);
}

void session_tls_failed(struct session *s, enum net_stream_error err)
{
    session_destroy(s, net_stream_error_name(err));
}

void session_close(struct session *s, const char *final_reply, const char *reason)
{
    if (s->state == SESSION_CLOSING)
        return;
    /* Inside a multi-line reply a status line would read as message text or
     * a listing line: a cut reply ends with the hang-up alone. */
    bool mid_reply = (s->xfer.active && s->xfer.started) || s->listing.active;
    if (final_reply && !mid_reply)
        session_reply(s, final_reply);
    log_event(LOG_LEVEL_DEBUG, s->id, "closing", "reason", reason, LOG_END);
    s->close_reason = reason;
    session_set_state(s, SESSION_CLOSING);
    ev_timer_stop(s->gw->loop, &s->delay_timer);
    /* A slow or stalled reader must not hold the session forever. */
    arm_timer(s, s->cfg->preauth_timeout);
    imap_client_free(s->imap);
    s->imap = NULL;
    net_stream_close_after_flush(s->client);
}

void session_abort(struct session *s, const char *reason)
{
    /* The drain deadline passed: end now, flush or not, so the device lock
     * is released before the process exits. */
    bool mid_reply = (s->xfer.active && s->xfer.started) || s->listing.active;
    if (!mid_reply && s->state != SESSION_CLOSING)
        session_reply(s, "-ERR [SYS/TEMP] Server shutting down.");
    session_destroy(s, reason);
}

static void on_client_close(struct net_stream *ns, enum net_stream_error err, void *arg)
{
    (void)ns;
    struct session *s = arg;
    session_destroy(s, s->state == SESSION_CLOSING && err == NET_STREAM_EOF ? "closed"
                                                                            : net_stream_error_name(err));
}

/* ---- commands ----------------------------------------------------------- */

void session_bad_command(struct session *s, const char *reply)
{
    s->bad_commands++;
    if (s->bad_commands >= s->cfg->max_bad_commands) {
        session_close(s, "-ERR Too many bad commands.", "bad-commands");
        return;
    }
    session_reply(s, reply);
}

static void dispatch(struct session *s, char *line)
{
    struct pop3_command cmd;
    pop3_command_parse(line, &cmd);
    if (cmd.verb == POP3_UNKNOWN) {
        session_bad_command(s, "-ERR Unknown command.");
        return;
    }
    if (cmd.verb == POP3_APOP) {
        /* The gateway never stores passwords, so it cannot check a digest. */
        session_bad_command(s, "-ERR APOP is not supported.");
        return;
    }
    for (size_t i = 0; i < sizeof command_table / sizeof command_table[0]; i++) {
        const struct command_handler *h = &command_table[i];
        if (h->verb != cmd.verb)
            continue;
        if (!(h->allowed_states & IN(s->state))) {
            session_bad_command(s, "-ERR Command not valid in this state.");
            return;
        }
        if (cmd.too_many_args) {
            session_bad_command(s, "-ERR Too many arguments.");
            return;
        }
        h->run(s, &cmd);
        return;
    }
    session_bad_command(s, "-ERR Unknown command.");
}

/* line is the reader's; it and every copy are wiped once handled, since it
 * may have been PASS, AUTH PLAIN with its initial response, or a SASL
 * response. */
static void handle_line(struct session *s, const char *line, size_t len)
{
    session_touch(s);
    if (s->state == SESSION_SASL_RESPONSE) {
        session_sasl_response(s, line, len);
        pop3_line_reader_forget_line(&s->reader);
        return;
    }
    /* A private copy: parsing splits it in place. */
    char copy[POP3_SASL_LINE_MAX + 1];
    memcpy(copy, line, len);
    copy[len] = '\0';
    dispatch(s, copy);
    explicit_bzero(copy, len);
    pop3_line_reader_forget_line(&s->reader);
}

static size_t on_client_read(struct net_stream *ns, const char *data, size_t len, void *arg)
{
    (void)ns;
    struct session *s = arg;
    size_t used = 0;
    /* Pipelined commands' replies leave together. */
    net_stream_cork(s->client);
    while (used < len && accepting_commands(s) &&
           net_stream_out_pending(s->client) < NET_STREAM_OUT_HIGH_WATER) {
        enum pop3_line_status status;
        const char *line;
        size_t line_len;
        used += pop3_line_reader_feed(&s->reader, data + used, len - used, &status, &line, &line_len);
        switch (status) {
        case POP3_LINE_AGAIN:
            break;
        case POP3_LINE_READY:
            handle_line(s, line, line_len);
            break;
        case POP3_LINE_TOO_LONG:
            session_touch(s);
            if (s->state == SESSION_SASL_RESPONSE) {
                session_set_state(s, SESSION_AUTHORIZATION);
                session_bad_command(s, "-ERR [AUTH] Authentication response too long.");
            } else {
                session_bad_command(s, "-ERR Command line too long.");
            }
            break;
        case POP3_LINE_INVALID:
            session_touch(s);
            if (s->state == SESSION_SASL_RESPONSE)
                session_set_state(s, SESSION_AUTHORIZATION);
            session_bad_command(s, "-ERR Invalid characters in command.");
            break;
        }
    }
    net_stream_uncork(s->client);
    s->input_paused = used < len;
    return used;
}

void session_command_done(struct session *s)
{
    s->busy = false;
    if (s->state == SESSION_CLOSING)
        return;
    session_touch(s);
    if (s->input_paused) {
        s->input_paused = false;
        net_stream_resume_read(s->client);
    }
}

static void on_client_drain(struct net_stream *ns, void *arg)
{
    (void)ns;
    struct session *s = arg;
    if (s->state == SESSION_CLOSING)
        return;
    session_touch(s);
    if (s->busy) {
        session_output_drained(s);
        return;
    }
    if (s->input_paused) {
        s->input_paused = false;
        net_stream_resume_read(s->client);
    }
}

/* ---- gateway list ------------------------------------------------------- */

struct session *session_next(struct session *s)
{
    return s->next;
}

void session_link(struct session **head, struct session *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
}

void session_unlink(struct session **head, struct session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}
