/* upstream_conn: see upstream_conn.h for the contract.
 *
 * Every stream and timer event enters the object before it calls the owner
 * and leaves it after (hiredis' IN_CALLBACK): a free asked for meanwhile
 * only marks it, and the last leave destroys it. */
#include "upstream_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "safe_text.h"

static size_t on_read(struct net_stream *s, const char *data, size_t len, void *arg);
static void on_close(struct net_stream *s, enum net_stream_error err, void *arg);

static const struct net_stream_callbacks stream_callbacks = {
    .on_read = on_read,
    .on_drain = NULL,
    .on_close = on_close,
};

static enum upstream_error error_of(enum net_stream_error err)
{
    if (err == NET_STREAM_TIMEOUT)
        return UPSTREAM_ERR_TIMEOUT;
    if (err == NET_STREAM_TLS_VERIFY_ERROR)
        return UPSTREAM_ERR_TLS_VERIFY;
    return UPSTREAM_ERR_IO;
}

/* ---- lifetime -------------------------------------------------------------- */

void upstream_conn_enter(struct upstream_conn *u)
{
    u->in_cb++;
}

bool upstream_conn_leave(struct upstream_conn *u)
{
    if (--u->in_cb == 0 && u->free_pending) {
        u->ops->destroy(u);
        return true;
    }
    return false;
}

bool upstream_conn_freeing(const struct upstream_conn *u)
{
    return u->free_pending;
}

void upstream_conn_timers_stop(struct upstream_conn *u)
{
    ev_timer_stop(u->loop, &u->timer);
    ev_timer_stop(u->loop, &u->soon_timer);
}

void upstream_conn_free(struct upstream_conn *u)
{
    if (u->in_cb > 0) {
        u->free_pending = true;
        upstream_conn_timers_stop(u);
        return;
    }
    u->ops->destroy(u);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct upstream_conn *u = w->data;
    if (u->timer_on_progress) {
        ev_tstamp left = u->last_progress + u->timer_span - ev_now(loop);
        if (left > 0.) {
            ev_timer_set(w, left, 0.);
            ev_timer_start(loop, w);
            return;
        }
    }
    upstream_conn_enter(u);
    u->ops->timed_out(u, !u->timer_on_progress);
    upstream_conn_leave(u);
}

static void soon_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct upstream_conn *u = w->data;
    upstream_conn_enter(u);
    u->ops->finish(u, u->soon_result);
    upstream_conn_leave(u);
}

bool upstream_conn_init(struct upstream_conn *u, struct ev_loop *loop,
                        const struct upstream_endpoint *ep, const char *peer,
                        const struct upstream_conn_ops *ops)
{
    memset(u, 0, sizeof *u);
    u->loop = loop;
    u->ops = ops;
    u->peer = peer;
    u->ep = *ep;
    u->ep.verify_name = NULL;
    u->ep.tls_ctx = NULL;
    if (ep->verify_name && (u->verify_name = strdup(ep->verify_name)) == NULL)
        return false;
    u->ep.verify_name = u->verify_name;
    if (ep->tls_ctx && SSL_CTX_up_ref(ep->tls_ctx) == 1)
        u->ep.tls_ctx = ep->tls_ctx;
    ev_timer_init(&u->timer, timer_cb, 0., 0.);
    ev_timer_init(&u->soon_timer, soon_cb, 0., 0.);
    u->timer.data = u->soon_timer.data = u;
    return true;
}

void upstream_conn_deinit(struct upstream_conn *u)
{
    upstream_conn_timers_stop(u);
    upstream_conn_close(u);
    if (u->ep.tls_ctx)
        SSL_CTX_free(u->ep.tls_ctx);
    u->ep.tls_ctx = NULL;
    free(u->verify_name);
    u->verify_name = NULL;
    u->ep.verify_name = NULL;
}

/* ---- timers and completion ---------------------------------------------------- */

/* A deadline (connect) or an inactivity limit pushed back by every byte that
 * arrives (replies). A span <= 0 disables it. */
static void timer_arm(struct upstream_conn *u, double span, bool on_progress)
{
    ev_timer_stop(u->loop, &u->timer);
    if (span <= 0.)
        return;
    u->timer_span = span;
    u->timer_on_progress = on_progress;
    u->last_progress = ev_now(u->loop);
    ev_timer_set(&u->timer, span, 0.);
    ev_timer_start(u->loop, &u->timer);
}

void upstream_conn_await_reply(struct upstream_conn *u)
{
    timer_arm(u, u->ep.command_timeout, true);
}

void upstream_conn_timer_stop(struct upstream_conn *u)
{
    ev_timer_stop(u->loop, &u->timer);
}

void upstream_conn_finish_soon(struct upstream_conn *u, int result)
{
    ev_timer_stop(u->loop, &u->timer);
    u->soon_result = result;
    ev_timer_set(&u->soon_timer, 0., 0.);
    ev_timer_start(u->loop, &u->soon_timer);
}

/* ---- the stream ------------------------------------------------------------------ */

struct net_stream *upstream_conn_stream(const struct upstream_conn *u)
{
    return u->stream;
}

bool upstream_conn_tls_active(const struct upstream_conn *u)
{
    return u->tls_active;
}

bool upstream_conn_needs_starttls(const struct upstream_conn *u)
{
    return u->ep.tls == UPSTREAM_TLS_STARTTLS && !u->tls_active;
}

void upstream_conn_close(struct upstream_conn *u)
{
    net_stream_free(u->stream);
    u->stream = NULL;
}

void upstream_conn_resume_read(struct upstream_conn *u)
{
    upstream_conn_enter(u);
    net_stream_resume_read(u->stream);
    upstream_conn_leave(u);
}

static void tls_done(struct net_stream *s, bool ok, enum net_stream_error err, void *arg)
{
    (void)s;
    struct upstream_conn *u = arg;
    char why[96];
    upstream_conn_enter(u);
    if (!ok) {
        if (err == NET_STREAM_TLS_VERIFY_ERROR)
            snprintf(why, sizeof why, "%s certificate did not verify", u->peer);
        else
            snprintf(why, sizeof why, "TLS handshake with %s failed", u->peer);
        upstream_conn_close(u);
        u->ops->failed(u, error_of(err), why);
    } else {
        u->tls_active = true;
        if (u->upgrading)
            u->ops->upgraded(u);
        else
            u->ops->connected(u);
    }
    upstream_conn_leave(u);
}

static void begin_tls(struct upstream_conn *u, bool upgrading)
{
    u->upgrading = upgrading;
    net_stream_start_tls(u->stream, u->ep.tls_ctx, false, u->ep.verify_name,
                         u->ep.connect_timeout, tls_done);
}

void upstream_conn_start_tls(struct upstream_conn *u)
{
    begin_tls(u, true);
}

static void connect_done(struct net_stream *s, bool ok, enum net_stream_error err, void *arg)
{
    (void)s;
    struct upstream_conn *u = arg;
    char why[96];
    upstream_conn_enter(u);
    if (!ok) {
        snprintf(why, sizeof why, err == NET_STREAM_TIMEOUT ? "connect to %s timed out"
                                                            : "connect to %s failed", u->peer);
        upstream_conn_close(u);
        u->ops->failed(u, error_of(err), why);
    } else if (u->ep.tls == UPSTREAM_TLS_IMPLICIT) {
        begin_tls(u, false);
    } else {
        u->ops->connected(u);
    }
    upstream_conn_leave(u);
}

enum upstream_connect_result upstream_conn_connect(struct upstream_conn *u)
{
    if (u->ep.tls != UPSTREAM_TLS_NONE && u->ep.tls_ctx == NULL)
        return UPSTREAM_CONNECT_NO_TLS_CONTEXT;
    u->stream = net_stream_connect(u->loop, (const struct sockaddr *)&u->ep.addr, u->ep.addrlen,
                                   u->ep.connect_timeout, &stream_callbacks, u, connect_done);
    if (u->stream == NULL)
        return UPSTREAM_CONNECT_NO_SOCKET;
    timer_arm(u, u->ep.connect_timeout, false);
    return UPSTREAM_CONNECT_STARTED;
}

static size_t on_read(struct net_stream *s, const char *data, size_t len, void *arg)
{
    (void)s;
    struct upstream_conn *u = arg;
    upstream_conn_enter(u);
    if (len > 0)
        u->last_progress = ev_now(u->loop);
    size_t used = u->ops->read(u, data, len);
    if (upstream_conn_leave(u))
        return len;
    return used;
}

static void on_close(struct net_stream *s, enum net_stream_error err, void *arg)
{
    (void)s;
    struct upstream_conn *u = arg;
    char why[96];
    snprintf(why, sizeof why, err == NET_STREAM_EOF ? "%s closed the connection"
                                                    : "%s connection failed", u->peer);
    upstream_conn_enter(u);
    upstream_conn_close(u);
    u->ops->closed(u, error_of(err), why);
    upstream_conn_leave(u);
}

/* ---- error text and secrets ---------------------------------------------------- */

void upstream_conn_set_error_span(struct upstream_conn *u, const char *prefix,
                                  const char *text, size_t len)
{
    safe_text_copy(u->last_error, sizeof u->last_error, prefix, text, len);
}

void upstream_conn_set_error(struct upstream_conn *u, const char *msg)
{
    upstream_conn_set_error_span(u, "", msg, strlen(msg));
}

const char *upstream_conn_last_error(const struct upstream_conn *u)
{
    return u->last_error;
}

void upstream_wipe(void *p, size_t len)
{
    explicit_bzero(p, len);
}

void upstream_secret_free(char **s)
{
    if (*s == NULL)
        return;
    upstream_wipe(*s, strlen(*s));
    free(*s);
    *s = NULL;
}
