/* net_stream.c: see net_stream.h for the contract. */
#include "net_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

enum net_stream_state {
    NS_CONNECTING,
    NS_TLS_WAIT_FLUSH,  /* STLS reply still queued: handshake starts when it is out */
    NS_HANDSHAKING,
    NS_OPEN,
    NS_CLOSING,         /* close_after_flush: writing what is queued, reading nothing */
    NS_DEAD,            /* on_close delivered or pending; no more I/O */
};

/* Reads from every stream land here first; a single-threaded loop needs one. */
static char read_scratch[NET_STREAM_READ_CHUNK];

/* net_stream_defer_flush(): >0 while io_cb runs, and the streams whose writes
 * wait for it to return (linked through deferred_next). */
static int dispatch_depth;
static struct net_stream *deferred_head;

/* Reads per readiness event before yielding to other connections. */
#define READS_PER_EVENT 8

struct net_stream {
    struct ev_loop *loop;
    int fd;
    SSL *ssl;
    enum net_stream_state state;

    ev_io rio, wio;
    ev_timer deadline;        /* connect / handshake timeout */
    ev_timer notify;          /* delivers on_close outside the caller's stack */

    const struct net_stream_callbacks *cbs;
    void *arg;
    net_stream_done_cb *done; /* pending connect or handshake completion */
    bool tls_is_server;

    bool read_paused;         /* by the user, or because input is left over */
    bool corked;              /* writes queue until net_stream_uncork */
    bool deferred;            /* writes queue until the I/O dispatch returns */
    bool drain_owed;          /* a quiet flush crossed the low-water mark: tell on_drain from the loop */
    bool read_wants_write;    /* SSL_read returned WANT_WRITE */
    bool write_wants_read;    /* SSL_write returned WANT_READ */
    enum net_stream_error close_reason;
    bool close_scheduled;

    int callback_depth;       /* >0 while one of our callbacks runs */
    bool free_pending;        /* net_stream_free() called inside a callback */

    /* Unconsumed input, at most NET_STREAM_READ_CHUNK bytes. */
    char *in_buf;
    size_t in_len;
    bool wipe_input;          /* net_stream_wipe_input: no input byte outlives its use */

    /* Queued output: out_buf[out_start .. out_start+out_len), capacity out_cap <= NET_STREAM_OUT_MAX. */
    char *out_buf;
    size_t out_start, out_len, out_cap;

    struct net_stream *deferred_next;
};

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void notify_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void flush_output(struct net_stream *s);
static void flush_output_quietly(struct net_stream *s);
static void read_input(struct net_stream *s);

/* ---- watcher helpers: idempotent, like hiredis' libev adapter ----------- */

static void want_read(struct net_stream *s, bool on)
{
    if (on && !ev_is_active(&s->rio))
        ev_io_start(s->loop, &s->rio);
    else if (!on && ev_is_active(&s->rio))
        ev_io_stop(s->loop, &s->rio);
}

static void want_write(struct net_stream *s, bool on)
{
    if (on && !ev_is_active(&s->wio))
        ev_io_start(s->loop, &s->wio);
    else if (!on && ev_is_active(&s->wio))
        ev_io_stop(s->loop, &s->wio);
}

/* Should the read watcher run? */
static void update_read_interest(struct net_stream *s)
{
    bool reading = (s->state == NS_OPEN && !s->read_paused) || s->write_wants_read;
    want_read(s, reading);
}

/* ---- deferred free ------------------------------------------------------ */

static void undefer(struct net_stream *s)
{
    if (!s->deferred)
        return;
    for (struct net_stream **p = &deferred_head; *p; p = &(*p)->deferred_next) {
        if (*p == s) {
            *p = s->deferred_next;
            break;
        }
    }
    s->deferred = false;
    s->deferred_next = NULL;
}

/* Drops the kept input. */
static void free_input(struct net_stream *s)
{
    if (s->wipe_input && s->in_buf)
        explicit_bzero(s->in_buf, s->in_len);
    free(s->in_buf);
    s->in_buf = NULL;
    s->in_len = 0;
}

static void destroy(struct net_stream *s)
{
    undefer(s);
    want_read(s, false);
    want_write(s, false);
    ev_timer_stop(s->loop, &s->deadline);
    ev_timer_stop(s->loop, &s->notify);
    if (s->ssl)
        SSL_free(s->ssl);
    if (s->fd >= 0)
        close(s->fd);
    free_input(s);
    free(s->out_buf);
    free(s);
}

static void enter_callback(struct net_stream *s)
{
    s->callback_depth++;
}

/* Returns false if the stream was freed during the callback: stop touching it. */
static bool leave_callback(struct net_stream *s)
{
    s->callback_depth--;
    if (s->callback_depth == 0 && s->free_pending) {
        destroy(s);
        return false;
    }
    return !s->free_pending;
}

void net_stream_free(struct net_stream *s)
{
    if (!s)
        return;
    if (s->callback_depth > 0) {
        s->free_pending = true;
        s->state = NS_DEAD;
        want_read(s, false);
        want_write(s, false);
        return;
    }
    destroy(s);
}

/* ---- death -------------------------------------------------------------- */

/* Stop all I/O and arrange for on_close to run from the loop, never from the
 * caller's stack: a write error inside a user's call must not free the user's
 * objects under its feet. */
static void fail(struct net_stream *s, enum net_stream_error err)
{
    if (s->state == NS_DEAD)
        return;
    s->state = NS_DEAD;
    s->close_reason = err;
    want_read(s, false);
    want_write(s, false);
    ev_timer_stop(s->loop, &s->deadline);
    if (!s->close_scheduled) {
        s->close_scheduled = true;
        ev_timer_set(&s->notify, 0., 0.);
        ev_timer_start(s->loop, &s->notify);
    }
}

static void notify_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct net_stream *s = w->data;
    net_stream_done_cb *done = s->done;
    s->done = NULL;
    enter_callback(s);
    if (done)
        done(s, false, s->close_reason, s->arg);
    else if (s->cbs && s->cbs->on_close)
        s->cbs->on_close(s, s->close_reason, s->arg);
    leave_callback(s);
}

/* ---- construction ------------------------------------------------------- */

static struct net_stream *stream_new(struct ev_loop *loop, int fd,
                                     const struct net_stream_callbacks *cbs, void *arg)
{
    struct net_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->fd = fd;
    s->cbs = cbs;
    s->arg = arg;
    ev_io_init(&s->rio, io_cb, fd, EV_READ);
    ev_io_init(&s->wio, io_cb, fd, EV_WRITE);
    s->rio.data = s->wio.data = s;
    ev_timer_init(&s->deadline, deadline_cb, 0., 0.);
    ev_timer_init(&s->notify, notify_cb, 0., 0.);
    s->deadline.data = s->notify.data = s;
    return s;
}

static void set_nodelay(int fd)
{
    int one = 1;
    /* Replies are small and interactive; best effort, not all sockets are TCP. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

struct net_stream *net_stream_from_fd(struct ev_loop *loop, int fd,
                                      const struct net_stream_callbacks *cbs, void *arg)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return NULL;
    set_nodelay(fd);
    struct net_stream *s = stream_new(loop, fd, cbs, arg);
    if (!s)
        return NULL;
    s->state = NS_OPEN;
    update_read_interest(s);
    return s;
}

struct net_stream *net_stream_connect(struct ev_loop *loop, const struct sockaddr *addr,
                                      socklen_t addrlen, double timeout,
                                      const struct net_stream_callbacks *cbs, void *arg,
                                      net_stream_done_cb *done)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    set_nodelay(fd);
    struct net_stream *s = stream_new(loop, fd, cbs, arg);
    if (!s) {
        close(fd);
        return NULL;
    }
    s->done = done;
    s->state = NS_CONNECTING;
    if (connect(fd, addr, addrlen) < 0 && errno != EINPROGRESS) {
        fail(s, NET_STREAM_IO_ERROR);  /* reported through done, from the loop */
        return s;
    }
    want_write(s, true);
    ev_timer_set(&s->deadline, timeout, 0.);
    ev_timer_start(loop, &s->deadline);
    return s;
}

/* Connect or handshake done: the stream is open; tell the caller. False when
 * the stream was freed inside the callback. */
static bool report_open(struct net_stream *s)
{
    ev_timer_stop(s->loop, &s->deadline);
    want_write(s, false);
    s->state = NS_OPEN;
    net_stream_done_cb *done = s->done;
    s->done = NULL;
    enter_callback(s);
    done(s, true, NET_STREAM_EOF, s->arg);
    return leave_callback(s);
}

static void finish_connect(struct net_stream *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        fail(s, NET_STREAM_IO_ERROR);
        return;
    }
    /* The callback may have started TLS: the handshake owns the watchers then. */
    if (report_open(s) && s->state == NS_OPEN)
        update_read_interest(s);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    fail(w->data, NET_STREAM_TIMEOUT);
}

/* ---- TLS ---------------------------------------------------------------- */

static bool is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static void do_handshake(struct net_stream *s)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        if (!report_open(s))
            return;
        update_read_interest(s);
        if (s->out_len > 0)
            flush_output(s);
        return;
    }
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        want_write(s, false);
        want_read(s, true);
        return;
    case SSL_ERROR_WANT_WRITE:
        want_read(s, false);
        want_write(s, true);
        return;
    default:
        if (!s->tls_is_server && SSL_get_verify_result(s->ssl) != X509_V_OK)
            fail(s, NET_STREAM_TLS_VERIFY_ERROR);
        else
            fail(s, NET_STREAM_TLS_ERROR);
        return;
    }
}

static void begin_handshake(struct net_stream *s)
{
    s->state = NS_HANDSHAKING;
    do_handshake(s);
}

void net_stream_start_tls(struct net_stream *s, SSL_CTX *ctx, bool is_server,
                          const char *verify_name, double timeout, net_stream_done_cb *done)
{
    s->done = done;
    s->tls_is_server = is_server;
    /* Plaintext that arrived after STLS/STARTTLS must not be taken as if it came
     * through TLS (the CVE-2011-0411 command injection). */
    free_input(s);
    s->read_paused = false;
    want_read(s, false);

    s->ssl = SSL_new(ctx);
    if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1) {
        fail(s, NET_STREAM_TLS_ERROR);
        return;
    }
    SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (is_server) {
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
        if (verify_name && *verify_name) {
            if (!is_ip_literal(verify_name))
                SSL_set_tlsext_host_name(s->ssl, verify_name);
            int ok = is_ip_literal(verify_name)
                ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), verify_name)
                : SSL_set1_host(s->ssl, verify_name);
            if (ok != 1) {
                fail(s, NET_STREAM_TLS_ERROR);
                return;
            }
        }
    }
    ev_timer_stop(s->loop, &s->deadline);
    ev_timer_set(&s->deadline, timeout, 0.);
    ev_timer_start(s->loop, &s->deadline);
    if (s->out_len > 0) {
        s->state = NS_TLS_WAIT_FLUSH;
        flush_output(s);
    } else {
        begin_handshake(s);
    }
}

bool net_stream_is_tls(const struct net_stream *s)
{
    return s->ssl != NULL && s->state != NS_TLS_WAIT_FLUSH;
}

/* ---- reading ------------------------------------------------------------ */

/* Offer bytes to the user. Keeps what it did not take (pausing reads).
 * Returns false if the stream was freed or stopped delivering. */
static bool deliver_offer(struct net_stream *s, const char *data, size_t len)
{
    enter_callback(s);
    size_t used = s->cbs->on_read(s, data, len, s->arg);
    if (!leave_callback(s))
        return false;
    if (used > len)
        used = len;
    if (used < len && s->state == NS_OPEN) {
        size_t rest = len - used;
        if (data == s->in_buf) {
            memmove(s->in_buf, s->in_buf + used, rest);
            if (s->wipe_input)
                explicit_bzero(s->in_buf + rest, used);
        } else {
            /* The socket is read only while nothing is kept, so in_buf is
             * free here. It gets exactly the rest (at most
             * NET_STREAM_READ_CHUNK): a paused stream holds no more than it
             * was offered. */
            free_input(s);
            if (!(s->in_buf = malloc(rest))) {
                fail(s, NET_STREAM_IO_ERROR);
                return false;
            }
            memcpy(s->in_buf, data + used, rest);
        }
        s->in_len = rest;
        s->read_paused = true;
        update_read_interest(s);
        return false;
    }
    if (data == s->in_buf)
        free_input(s);
    return s->state == NS_OPEN && !s->read_paused;
}

/* deliver_offer, then the wipe net_stream_wipe_input asks for. */
static bool deliver(struct net_stream *s, const char *data, size_t len)
{
    /* Read before the callback, which may free s. Whatever happens, the
     * offered bytes leave the shared read buffer (kept ones as a copy). */
    bool wipe = s->wipe_input;
    bool ok = deliver_offer(s, data, len);
    if (wipe && data == read_scratch)
        explicit_bzero(read_scratch, len);
    return ok;
}

/* One read from the socket or TLS. >0 bytes, 0 would block, -1 dead. */
static ssize_t read_some(struct net_stream *s)
{
    if (s->ssl) {
        ERR_clear_error();
        int n = SSL_read(s->ssl, read_scratch, sizeof read_scratch);
        if (n > 0)
            return n;
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        if (e == SSL_ERROR_WANT_WRITE) {
            s->read_wants_write = true;
            want_write(s, true);
            return 0;
        }
        fail(s, e == SSL_ERROR_ZERO_RETURN ? NET_STREAM_EOF : NET_STREAM_TLS_ERROR);
        return -1;
    }
    ssize_t n = recv(s->fd, read_scratch, sizeof read_scratch, 0);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    fail(s, n == 0 ? NET_STREAM_EOF : NET_STREAM_IO_ERROR);
    return -1;
}

static void read_input(struct net_stream *s)
{
    s->read_wants_write = false;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        if (s->state != NS_OPEN || s->read_paused)
            return;
        ssize_t n = read_some(s);
        if (n <= 0)
            return;
        if (!deliver(s, read_scratch, (size_t)n))
            return;
        /* A short read from a plain socket emptied its receive queue: one
         * more would only return EAGAIN. The watcher is level-triggered, so
         * bytes that arrive meanwhile wake it again. */
        if (!s->ssl && (size_t)n < sizeof read_scratch)
            return;
    }
    /* Yielded for fairness; TLS may hold decrypted bytes the fd will not signal. */
    if (s->ssl && SSL_pending(s->ssl) > 0)
        ev_feed_event(s->loop, &s->rio, EV_READ);
}

void net_stream_wipe_input(struct net_stream *s)
{
    s->wipe_input = true;
}

void net_stream_pause_read(struct net_stream *s)
{
    s->read_paused = true;
    update_read_interest(s);
}

void net_stream_resume_read(struct net_stream *s)
{
    if (s->state != NS_OPEN || !s->read_paused)
        return;
    s->read_paused = false;
    if (s->in_len > 0 && !deliver(s, s->in_buf, s->in_len))
        return;
    update_read_interest(s);
    /* Bytes OpenSSL already decrypted would not wake the fd watcher. */
    if (s->ssl && SSL_pending(s->ssl) > 0)
        ev_feed_event(s->loop, &s->rio, EV_READ);
}

/* ---- writing ------------------------------------------------------------ */

/* One write. >0 bytes written, 0 would block, -1 dead. */
static ssize_t write_some(struct net_stream *s, const char *data, size_t len)
{
    /* The reply to STLS/STARTTLS still goes out in plaintext. */
    if (s->ssl && s->state != NS_TLS_WAIT_FLUSH) {
        ERR_clear_error();
        int n = SSL_write(s->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0)
            return n;
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_WANT_READ) {
            s->write_wants_read = true;
            update_read_interest(s);
            return 0;
        }
        fail(s, NET_STREAM_TLS_ERROR);
        return -1;
    }
    ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    fail(s, NET_STREAM_IO_ERROR);
    return -1;
}

static void release_output_buffer(struct net_stream *s)
{
    free(s->out_buf);
    s->out_buf = NULL;
    s->out_start = s->out_len = s->out_cap = 0;
}

/* Output is fully written: finish what was waiting for that. */
static void output_flushed(struct net_stream *s)
{
    if (s->state == NS_TLS_WAIT_FLUSH) {
        begin_handshake(s);
    } else if (s->state == NS_CLOSING) {
        if (s->ssl)
            (void)SSL_shutdown(s->ssl);  /* best effort close_notify, never waited for */
        shutdown(s->fd, SHUT_WR);
        fail(s, NET_STREAM_EOF);
    }
}

/* How a flush that crosses the low-water mark tells the producer: at once
 * (from the loop), from the loop later (the caller is inside the producer's
 * call), or not at all (the producer is the caller and checks
 * net_stream_out_pending() itself when the write returns). */
enum drain_notice { DRAIN_NOW, DRAIN_OWED, DRAIN_NONE };

static void write_queue(struct net_stream *s, enum drain_notice notice)
{
    size_t before = s->out_len;
    while (s->out_len > 0) {
        ssize_t n = write_some(s, s->out_buf + s->out_start, s->out_len);
        if (n < 0)
            return;
        if (n == 0)
            break;
        s->out_start += (size_t)n;
        s->out_len -= (size_t)n;
    }
    if (s->out_len == 0) {
        /* A deferred stream keeps its buffer for the rest of the event. */
        if (!s->deferred)
            release_output_buffer(s);
        else
            s->out_start = 0;
        s->write_wants_read = false;
        want_write(s, s->read_wants_write);
        update_read_interest(s);
    } else {
        want_write(s, !s->write_wants_read);
    }
    if (s->out_len == 0 && (s->state == NS_TLS_WAIT_FLUSH || s->state == NS_CLOSING)) {
        output_flushed(s);
        return;
    }
    bool crossed = before > NET_STREAM_OUT_LOW_WATER && s->out_len <= NET_STREAM_OUT_LOW_WATER &&
                   s->state == NS_OPEN && s->cbs->on_drain && notice != DRAIN_NONE;
    if (crossed && notice == DRAIN_OWED) {
        /* The producer stopped at the high-water mark and waits for on_drain;
         * it must get it, but not inside the call that uncorked. */
        s->drain_owed = true;
        ev_feed_event(s->loop, &s->wio, EV_WRITE);
    } else if (crossed) {
        s->drain_owed = false;
        enter_callback(s);
        s->cbs->on_drain(s, s->arg);
        leave_callback(s);
    }
}

static void flush_output(struct net_stream *s)
{
    write_queue(s, DRAIN_NOW);
}

static void flush_output_quietly(struct net_stream *s)
{
    write_queue(s, DRAIN_OWED);
}

/* The end of an I/O event: send what deferred streams queued during it. */
static void flush_deferred(void)
{
    while (deferred_head) {
        struct net_stream *s = deferred_head;
        deferred_head = s->deferred_next;
        s->deferred_next = NULL;
        s->deferred = false;
        if (s->state == NS_OPEN && !s->corked && !s->write_wants_read && s->out_len > 0)
            flush_output_quietly(s);
        else if (s->out_len == 0 && s->out_buf)
            release_output_buffer(s);
    }
}

/* Append to the queue, growing the buffer geometrically up to the bound. */
static bool queue_output(struct net_stream *s, const char *data, size_t len)
{
    if (s->out_len + len > NET_STREAM_OUT_MAX) {
        fail(s, NET_STREAM_OVERFLOW);
        return false;
    }
    if (s->out_start + s->out_len + len > s->out_cap) {
        if (s->out_start > 0) {
            memmove(s->out_buf, s->out_buf + s->out_start, s->out_len);
            s->out_start = 0;
        }
        if (s->out_len + len > s->out_cap) {
            size_t cap = s->out_cap ? s->out_cap : 4096;
            while (cap < s->out_len + len)
                cap *= 2;
            if (cap > NET_STREAM_OUT_MAX)
                cap = NET_STREAM_OUT_MAX;
            char *p = realloc(s->out_buf, cap);
            if (!p) {
                fail(s, NET_STREAM_IO_ERROR);
                return false;
            }
            s->out_buf = p;
            s->out_cap = cap;
        }
    }
    memcpy(s->out_buf + s->out_start + s->out_len, data, len);
    s->out_len += len;
    return true;
}

bool net_stream_write(struct net_stream *s, const void *data, size_t len)
{
    if (s->state == NS_DEAD || s->state == NS_CLOSING)
        return false;
    const char *p = data;
    /* Write straight through when nothing is queued: most replies never touch
     * a per-stream buffer. */
    if (s->out_len == 0 && s->state == NS_OPEN && !s->write_wants_read && !s->corked && !s->deferred) {
        while (len > 0) {
            ssize_t n = write_some(s, p, len);
            if (n < 0)
                return false;
            if (n == 0)
                break;
            p += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return true;
    }
    if (!queue_output(s, p, len))
        return false;
    if (s->state != NS_OPEN || s->write_wants_read || s->corked)
        return true;
    if (!s->deferred) {
        want_write(s, true);
    } else if (s->out_len >= NET_STREAM_DEFER_MAX) {
        /* Enough for one large send; the caller checks what is left. */
        write_queue(s, DRAIN_NONE);
        return s->state != NS_DEAD;
    }
    return true;
}

void net_stream_defer_flush(struct net_stream *s)
{
    if (dispatch_depth == 0 || s->deferred || s->state != NS_OPEN)
        return;
    s->deferred = true;
    s->deferred_next = deferred_head;
    deferred_head = s;
}

void net_stream_cork(struct net_stream *s)
{
    s->corked = true;
}

void net_stream_uncork(struct net_stream *s)
{
    if (!s->corked)
        return;
    s->corked = false;
    if (s->state == NS_OPEN && s->out_len > 0 && !s->write_wants_read && !s->deferred)
        flush_output_quietly(s);
}

bool net_stream_printf(struct net_stream *s, const char *fmt, ...)
{
    /* Every formatted reply is one protocol line; POP3 and IMAP lines we
     * produce are far below this bound. */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return false;
    return net_stream_write(s, line, (size_t)n);
}

size_t net_stream_out_pending(const struct net_stream *s)
{
    return s->out_len;
}

void net_stream_close_after_flush(struct net_stream *s)
{
    if (s->state == NS_DEAD || s->state == NS_CLOSING)
        return;
    if (s->state != NS_OPEN) {
        fail(s, NET_STREAM_EOF);
        return;
    }
    s->state = NS_CLOSING;
    want_read(s, false);
    if (s->out_len == 0)
        output_flushed(s);
    else
        want_write(s, !s->write_wants_read);
}

void net_stream_set_callbacks(struct net_stream *s, const struct net_stream_callbacks *cbs, void *arg)
{
    s->cbs = cbs;
    s->arg = arg;
}

/* ---- dispatch ----------------------------------------------------------- */

static void dispatch(struct net_stream *s, int revents)
{
    switch (s->state) {
    case NS_CONNECTING:
        finish_connect(s);
        return;
    case NS_HANDSHAKING:
        do_handshake(s);
        return;
    case NS_TLS_WAIT_FLUSH:
    case NS_CLOSING:
        if (revents & EV_WRITE || s->write_wants_read)
            flush_output(s);
        return;
    case NS_OPEN:
        enter_callback(s);
        if (s->drain_owed && s->out_len <= NET_STREAM_OUT_LOW_WATER) {
            s->drain_owed = false;
            s->cbs->on_drain(s, s->arg);
        }
        if (s->state == NS_OPEN && (revents & EV_WRITE) && s->read_wants_write)
            read_input(s);
        if (s->state == NS_OPEN && s->out_len > 0 &&
            ((revents & EV_WRITE) || (s->write_wants_read && (revents & EV_READ))))
            flush_output(s);
        if ((revents & EV_READ) && s->state == NS_OPEN && !s->read_paused)
            read_input(s);
        leave_callback(s);
        return;
    case NS_DEAD:
        return;
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    dispatch_depth++;
    dispatch(w->data, revents);
    if (--dispatch_depth == 0)
        flush_deferred();
}

const char *net_stream_error_name(enum net_stream_error err)
{
    static const char *const names[] = {
        [NET_STREAM_EOF] = "eof",
        [NET_STREAM_IO_ERROR] = "io-error",
        [NET_STREAM_TLS_ERROR] = "tls-error",
        [NET_STREAM_TLS_VERIFY_ERROR] = "tls-verify-error",
        [NET_STREAM_TIMEOUT] = "timeout",
        [NET_STREAM_OVERFLOW] = "output-overflow",
    };
    if ((size_t)err < sizeof names / sizeof names[0] && names[err])
        return names[err];
    return "unknown";
}
