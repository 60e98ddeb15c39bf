/* Unit tests for backends/legacy_pop3: the whole client on a libev loop
 * against a scripted fake POP3 server on 127.0.0.1 in the same loop.
 *
 * The fake server answers CAPA, USER, PASS, STAT, UIDL, LIST, TOP n 0 and
 * QUIT from a small maildrop description, dot-stuffs what it sends, records
 * every command line, and can misbehave on cue: refuse, stall, or close the
 * connection part-way through a reply. Its output is non-blocking with a
 * queue: client and server share one thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "header_hash.h"
#include "legacy_pop3.h"

/* Longest a test may run before it counts as hung. */
#define TEST_GUARD_SECONDS 10.0
#define FAKE_MAX_MSGS 64

/* ---- a growable string ----------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof tmp);
    buf_put(b, tmp, (size_t)n);
}

static const char *buf_str(const struct buf *b)
{
    return b->p ? b->p : "";
}

static void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- the fake server -------------------------------------------------------- */

struct fake_msg {
    const char *uidl;
    uint32_t size;
    const char *header;         /* unstuffed, CRLF, ends with the blank line */
    bool top_err;               /* -ERR to its TOP */
};

struct fake_script {
    const char *greeting;       /* NULL: "+OK fake ready"; "" sends nothing */
    const char *capa;           /* capability lines joined by CRLF; NULL: -ERR */
    const char *user_reply;     /* NULL: "+OK" */
    const char *pass_reply;     /* NULL: "+OK Logged in." */
    const char *uidl_body;      /* the listing lines, stuffed; NULL: from msgs */
    const char *list_body;      /* NULL: from msgs */
    const char *stall_on;       /* no reply to this verb, nor anything after */
    const char *close_on;       /* close during the reply to this verb ... */
    size_t close_after;         /* ... after this many octets of it */
    struct fake_msg msgs[FAKE_MAX_MSGS];
    size_t n_msgs;
};

struct fake_server {
    struct ev_loop *loop;
    const struct fake_script *script;
    int listen_fd, fd;
    ev_io accept_w, read_w, write_w;
    uint16_t port;
    char in[8192];
    size_t in_len;
    struct buf out;
    size_t out_sent;
    bool close_when_flushed;
    bool stalled;
    bool eof_seen;              /* the client closed its side */
    unsigned connections;
    struct buf commands;        /* every command line, each followed by '\n' */
    unsigned max_tops_per_read; /* the most TOP commands one read brought */
};

static void fake_close_conn(struct fake_server *f)
{
    if (f->fd < 0)
        return;
    ev_io_stop(f->loop, &f->read_w);
    ev_io_stop(f->loop, &f->write_w);
    close(f->fd);
    f->fd = -1;
}

static void fake_flush(struct fake_server *f)
{
    while (f->fd >= 0 && f->out_sent < f->out.len) {
        ssize_t n = send(f->fd, f->out.p + f->out_sent, f->out.len - f->out_sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ev_io_start(f->loop, &f->write_w);
                return;
            }
            fake_close_conn(f);
            return;
        }
        f->out_sent += (size_t)n;
    }
    ev_io_stop(f->loop, &f->write_w);
    if (f->out_sent == f->out.len) {
        f->out.len = f->out_sent = 0;
        if (f->close_when_flushed)
            fake_close_conn(f);
    }
}

static void fake_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    fake_flush(w->data);
}

/* Queue a reply, or its first close_after octets when it is the one to cut. */
static void fake_reply(struct fake_server *f, const char *verb, const char *text, size_t len)
{
    const struct fake_script *s = f->script;
    if (s->close_on && strcasecmp(verb, s->close_on) == 0) {
        if (len > s->close_after)
            len = s->close_after;
        f->close_when_flushed = true;
    }
    buf_put(&f->out, text, len);
}

/* Dot-stuff text (lines ending in LF) into b. */
static void stuff(struct buf *b, const char *text)
{
    bool line_start = true;
    for (const char *c = text; *c; c++) {
        if (line_start && *c == '.')
            buf_put(b, ".", 1);
        buf_put(b, c, 1);
        line_start = *c == '\n';
    }
}

static void fake_command(struct fake_server *f, char *line, unsigned *tops)
{
    const struct fake_script *s = f->script;
    struct buf r = { 0 };
    buf_puts(&f->commands, line);
    buf_puts(&f->commands, "\n");
    char verb[16] = "";
    sscanf(line, "%15s", verb);
    if (s->stall_on && strcasecmp(verb, s->stall_on) == 0) {
        f->stalled = true;
        return;
    }
    if (strcmp(verb, "CAPA") == 0) {
        if (s->capa)
            buf_printf(&r, "+OK Capability list follows\r\n%s\r\n.\r\n", s->capa);
        else
            buf_puts(&r, "-ERR unknown command\r\n");
    } else if (strcmp(verb, "USER") == 0) {
        buf_printf(&r, "%s\r\n", s->user_reply ? s->user_reply : "+OK");
    } else if (strcmp(verb, "PASS") == 0) {
        buf_printf(&r, "%s\r\n", s->pass_reply ? s->pass_reply : "+OK Logged in.");
    } else if (strcmp(verb, "STAT") == 0) {
        uint64_t total = 0;
        for (size_t i = 0; i < s->n_msgs; i++)
            total += s->msgs[i].size;
        buf_printf(&r, "+OK %zu %llu\r\n", s->n_msgs, (unsigned long long)total);
    } else if (strcmp(verb, "UIDL") == 0) {
        buf_puts(&r, "+OK\r\n");
        if (s->uidl_body)
            buf_puts(&r, s->uidl_body);
        else
            for (size_t i = 0; i < s->n_msgs; i++)
                buf_printf(&r, "%zu %s\r\n", i + 1, s->msgs[i].uidl);
        buf_puts(&r, ".\r\n");
    } else if (strcmp(verb, "LIST") == 0) {
        buf_printf(&r, "+OK %zu messages\r\n", s->n_msgs);
        if (s->list_body)
            buf_puts(&r, s->list_body);
        else
            for (size_t i = 0; i < s->n_msgs; i++)
                buf_printf(&r, "%zu %u\r\n", i + 1, (unsigned)s->msgs[i].size);
        buf_puts(&r, ".\r\n");
    } else if (strcmp(verb, "TOP") == 0) {
        unsigned n = 0, lines = 1;
        (*tops)++;
        if (sscanf(line, "TOP %u %u", &n, &lines) != 2 || n < 1 || n > s->n_msgs || lines != 0 ||
            s->msgs[n - 1].top_err) {
            buf_puts(&r, "-ERR no such message\r\n");
        } else {
            buf_puts(&r, "+OK\r\n");
            stuff(&r, s->msgs[n - 1].header);
            buf_puts(&r, ".\r\n");
        }
    } else if (strcmp(verb, "QUIT") == 0) {
        buf_puts(&r, "+OK Logging out.\r\n");
        f->close_when_flushed = true;
    } else {
        buf_puts(&r, "-ERR unknown command\r\n");
    }
    fake_reply(f, verb, buf_str(&r), r.len);
    buf_free(&r);
}

static void fake_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    struct fake_server *f = w->data;
    ssize_t n = recv(f->fd, f->in + f->in_len, sizeof f->in - f->in_len, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        f->eof_seen = true;
        fake_close_conn(f);
        return;
    }
    f->in_len += (size_t)n;
    unsigned tops = 0;
    char *nl;
    while (!f->stalled && f->fd >= 0 && !f->close_when_flushed &&
           (nl = memchr(f->in, '\n', f->in_len)) != NULL) {
        size_t llen = (size_t)(nl - f->in) + 1;
        char line[sizeof f->in];
        memcpy(line, f->in, llen);
        line[llen - 1] = '\0';
        if (llen >= 2 && line[llen - 2] == '\r')
            line[llen - 2] = '\0';
        memmove(f->in, f->in + llen, f->in_len - llen);
        f->in_len -= llen;
        fake_command(f, line, &tops);
    }
    if (tops > f->max_tops_per_read)
        f->max_tops_per_read = tops;
    fake_flush(f);
}

static void fake_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct fake_server *f = w->data;
    int fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0)
        return;
    f->connections++;
    if (f->fd >= 0) {
        close(fd);
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    f->fd = fd;
    ev_io_init(&f->read_w, fake_read_cb, fd, EV_READ);
    ev_io_init(&f->write_w, fake_write_cb, fd, EV_WRITE);
    f->read_w.data = f->write_w.data = f;
    ev_io_start(loop, &f->read_w);
    const char *g = f->script->greeting ? f->script->greeting : "+OK fake ready";
    if (*g) {
        buf_printf(&f->out, "%s\r\n", g);
        fake_flush(f);
    }
}

static void fake_start(struct fake_server *f, struct ev_loop *loop, const struct fake_script *s)
{
    memset(f, 0, sizeof *f);
    f->loop = loop;
    f->script = s;
    f->fd = -1;
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(f->listen_fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->listen_fd, 4), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);
    ev_io_init(&f->accept_w, fake_accept_cb, f->listen_fd, EV_READ);
    f->accept_w.data = f;
    ev_io_start(loop, &f->accept_w);
}

static void fake_stop(struct fake_server *f)
{
    fake_close_conn(f);
    ev_io_stop(f->loop, &f->accept_w);
    close(f->listen_fd);
    buf_free(&f->out);
}

/* ---- running the client ------------------------------------------------------ */

struct outcome {
    bool done;
    enum legacy_pop3_result result;
    struct legacy_pop3_stats stats;
    char last_error[256];
    struct buf items;           /* "uidl size msgid\n" per item, msgid "-" if none */
    struct buf commands;        /* what the fake server received (run_script) */
    unsigned n_items;
    /* Misbehaving callers. */
    unsigned free_at_item;      /* free the client inside this item (1-based); 0: never */
    bool free_in_done;
    struct legacy_pop3 *client;
    bool inside_fetch;          /* set around legacy_pop3_fetch() */
    bool called_inside_fetch;
    struct ev_loop *loop;
};

static void on_item(const char *uidl, size_t uidl_len, uint32_t size, const char *msgid,
                    size_t msgid_len, const char *hash, void *arg)
{
    if (hash)
        assert_int_equal(strlen(hash), HEADER_HASH_HEX_LEN);
    struct outcome *o = arg;
    assert_false(o->done);
    assert_int_equal(strlen(uidl), uidl_len);
    if (msgid) {
        assert_int_equal(strlen(msgid), msgid_len);
        assert_true(msgid_len >= 3);
    } else {
        assert_int_equal(msgid_len, 0);
    }
    buf_printf(&o->items, "%s %u %s\n", uidl, (unsigned)size, msgid ? msgid : "-");
    o->n_items++;
    if (o->inside_fetch)
        o->called_inside_fetch = true;
    if (o->free_at_item == o->n_items) {
        legacy_pop3_free(o->client);
        o->client = NULL;
        ev_break(o->loop, EVBREAK_ALL);
    }
}

static void on_done(struct legacy_pop3 *p, enum legacy_pop3_result r, void *arg)
{
    struct outcome *o = arg;
    assert_false(o->done);
    assert_ptr_equal(p, o->client);
    if (o->inside_fetch)
        o->called_inside_fetch = true;
    o->done = true;
    o->result = r;
    o->stats = *legacy_pop3_stats(p);
    snprintf(o->last_error, sizeof o->last_error, "%s", legacy_pop3_last_error(p));
    if (o->free_in_done) {
        legacy_pop3_free(p);
        o->client = NULL;
    }
    ev_break(o->loop, EVBREAK_ALL);
}

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    *(bool *)w->data = true;
    ev_break(loop, EVBREAK_ALL);
}

static struct legacy_pop3_server server_at(uint16_t port)
{
    struct legacy_pop3_server srv;
    memset(&srv, 0, sizeof srv);
    struct sockaddr_in *a = (struct sockaddr_in *)&srv.endpoint.addr;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv.endpoint.addrlen = sizeof *a;
    srv.endpoint.tls = UPSTREAM_TLS_NONE;
    srv.endpoint.connect_timeout = 5;
    srv.endpoint.command_timeout = 5;
    return srv;
}

/* Runs the loop until the client is done (or freed) or the guard fires. */
static void run_loop(struct ev_loop *loop, struct outcome *o)
{
    bool hung = false;
    ev_timer guard;
    ev_timer_init(&guard, guard_cb, TEST_GUARD_SECONDS, 0.);
    guard.data = &hung;
    ev_timer_start(loop, &guard);
    while (!o->done && o->client != NULL && !hung)
        ev_run(loop, 0);
    ev_timer_stop(loop, &guard);
    assert_false(hung);
}

/* Lets the fake server see what the client's end left behind (QUIT's close). */
static void settle(struct ev_loop *loop)
{
    for (int i = 0; i < 20; i++)
        ev_run(loop, EVRUN_NOWAIT);
}

static void fetch(struct ev_loop *loop, struct legacy_pop3_server *srv, const char *user,
                  const char *pass, struct outcome *o)
{
    o->loop = loop;
    o->inside_fetch = true;
    o->client = legacy_pop3_fetch(loop, srv, user, pass, on_item, on_done, o);
    o->inside_fetch = false;
    assert_non_null(o->client);
    run_loop(loop, o);
    assert_false(o->called_inside_fetch);
}

/* One whole run against a fake server with the script. */
static void run_script(const struct fake_script *s, struct legacy_pop3_server *srv_in,
                       struct outcome *o, struct fake_server *f)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    fake_start(f, loop, s);
    struct legacy_pop3_server srv = server_at(f->port);
    if (srv_in) {
        srv.endpoint.tls = srv_in->endpoint.tls;
        srv.endpoint.tls_ctx = srv_in->endpoint.tls_ctx;
        srv.endpoint.verify_name = srv_in->endpoint.verify_name;
        srv.endpoint.connect_timeout = srv_in->endpoint.connect_timeout;
        srv.endpoint.command_timeout = srv_in->endpoint.command_timeout;
        srv.max_messages = srv_in->max_messages;
    }
    fetch(loop, &srv, "alice", "s3cret pass", o);
    if (o->client) {
        legacy_pop3_free(o->client);
        o->client = NULL;
    }
    settle(loop);
    fake_stop(f);
    o->commands = f->commands;
    memset(&f->commands, 0, sizeof f->commands);
    ev_loop_destroy(loop);
}

static void outcome_free(struct outcome *o)
{
    buf_free(&o->items);
    buf_free(&o->commands);
}

/* Every command the server saw is one the client may send: no DELE or RSET. */
static void assert_read_only(const struct outcome *o)
{
    const char *c = buf_str(&o->commands);
    assert_null(strstr(c, "DELE"));
    assert_null(strstr(c, "RSET"));
    assert_null(strstr(c, "RETR"));
}

/* ---- maildrops ----------------------------------------------------------------- */

static char header_store[FAKE_MAX_MSGS][256];
static char uidl_store[FAKE_MAX_MSGS][32];

/* n messages with Message-ID <m<i>@example.org>; then the special cases:
 * message 2 folded, 3 without Message-ID, 4 with two of them. */
static void maildrop(struct fake_script *s, size_t n, bool specials)
{
    assert_true(n <= FAKE_MAX_MSGS);
    s->n_msgs = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(uidl_store[i], sizeof uidl_store[i], "%08zXu%08Xv", i + 1, 0x5f00u);
        snprintf(header_store[i], sizeof header_store[i],
                 "From: a@example.org\r\nMessage-ID: <m%zu@example.org>\r\nSubject: %zu\r\n\r\n",
                 i + 1, i + 1);
        s->msgs[i] = (struct fake_msg){ uidl_store[i], (uint32_t)(1000 + i), header_store[i], false };
    }
    if (specials && n >= 4) {
        s->msgs[1].header = "Subject: folded\r\nMessage-Id:\r\n   <folded.2@example.org>\r\n\r\n";
        s->msgs[2].header = "Subject: none\r\n\r\n";
        s->msgs[3].header = "Message-ID: <a@x>\r\nSubject: dup\r\nMessage-ID: <b@x>\r\n\r\n";
    }
}

/* The items the maildrop() above gives, in order. */
static char *expected_items(size_t n, bool specials)
{
    struct buf b = { 0 };
    for (size_t i = 0; i < n; i++) {
        char msgid[64];
        snprintf(msgid, sizeof msgid, "<m%zu@example.org>", i + 1);
        if (specials && i == 1)
            strcpy(msgid, "<folded.2@example.org>");
        if (specials && (i == 2 || i == 3))
            strcpy(msgid, "-");
        buf_printf(&b, "%08zXu%08Xv %u %s\n", i + 1, 0x5f00u, (unsigned)(1000 + i), msgid);
    }
    return b.p;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_pipelined_happy_path(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER\r\nUIDL\r\nPIPELINING\r\nRESP-CODES";
    maildrop(&s, 50, true);
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_true(o.done);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    char *want = expected_items(50, true);
    assert_string_equal(buf_str(&o.items), want);
    free(want);
    assert_int_equal(o.stats.messages, 50);
    assert_int_equal(o.stats.delivered, 50);
    assert_int_equal(o.stats.without_msgid, 2);
    assert_int_equal(o.stats.bad_uidl + o.stats.duplicate_uidl + o.stats.no_size, 0);
    assert_string_equal(o.last_error, "");
    /* Commands went out in windows, never more than the window. */
    assert_true(f.max_tops_per_read > 1);
    assert_true(f.max_tops_per_read <= LEGACY_POP3_TOP_WINDOW);
    outcome_free(&o);
}

/* The fixed part of the conversation, as the server saw it. */
static void assert_conversation(const struct outcome *o, size_t tops)
{
    struct buf want = { 0 };
    buf_puts(&want, "CAPA\nUSER alice\nPASS s3cret pass\nSTAT\nUIDL\nLIST\n");
    for (size_t i = 1; i <= tops; i++)
        buf_printf(&want, "TOP %zu 0\n", i);
    buf_puts(&want, "QUIT\n");
    assert_string_equal(buf_str(&o->commands), want.p);
    buf_free(&want);
}

static void test_one_at_a_time_without_pipelining(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER\r\nUIDL";
    maildrop(&s, 6, true);
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    char *want = expected_items(6, true);
    assert_string_equal(buf_str(&o.items), want);
    free(want);
    assert_int_equal(f.max_tops_per_read, 1);
    assert_conversation(&o, 6);
    assert_read_only(&o);
    outcome_free(&o);
}

static void test_capa_refused_is_tolerated(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = NULL;
    maildrop(&s, 4, true);
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    char *want = expected_items(4, true);
    assert_string_equal(buf_str(&o.items), want);
    free(want);
    assert_int_equal(f.max_tops_per_read, 1);
    assert_conversation(&o, 4);
    outcome_free(&o);
}

static void test_no_top_capability_no_message_ids(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "USER\r\nUIDL\r\nPIPELINING";
    maildrop(&s, 3, false);
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    assert_string_equal(buf_str(&o.items), "00000001u00005F00v 1000 -\n"
                                           "00000002u00005F00v 1001 -\n"
                                           "00000003u00005F00v 1002 -\n");
    assert_int_equal(o.stats.without_msgid, 3);
    assert_conversation(&o, 0);
    outcome_free(&o);
}

static void test_dot_stuffed_header_lines(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER\r\nPIPELINING";
    maildrop(&s, 2, false);
    /* A line "." and a line "..x" inside the header: stuffed on the wire
     * as ".." and "...x"; neither may end the reply early. */
    s.msgs[0].header = "X-A: 1\r\n.\r\n..hidden: 2\r\nMessage-ID: <after.dots@example.org>\r\n\r\n";
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    assert_string_equal(buf_str(&o.items),
                        "00000001u00005F00v 1000 <after.dots@example.org>\n"
                        "00000002u00005F00v 1001 <m2@example.org>\n");
    outcome_free(&o);
}

static void test_header_over_the_bound(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER\r\nPIPELINING";
    maildrop(&s, 3, false);
    /* Message 2: a Message-ID first, then more than the bound of header. */
    struct buf big = { 0 };
    buf_puts(&big, "Message-ID: <big@example.org>\r\n");
    while (big.len <= LEGACY_POP3_HEADER_MAX)
        buf_puts(&big, "X-Filler: 0123456789012345678901234567890123456789012345678901234567\r\n");
    buf_puts(&big, "\r\n");
    s.msgs[1].header = big.p;
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    assert_string_equal(buf_str(&o.items), "00000001u00005F00v 1000 <m1@example.org>\n"
                                           "00000002u00005F00v 1001 -\n"
                                           "00000003u00005F00v 1002 <m3@example.org>\n");
    assert_int_equal(o.stats.header_too_long, 1);
    assert_int_equal(o.stats.without_msgid, 1);
    buf_free(&big);
    outcome_free(&o);
}

static void test_top_refused_for_one_message(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER\r\nPIPELINING";
    maildrop(&s, 3, false);
    s.msgs[1].top_err = true;
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    assert_string_equal(buf_str(&o.items), "00000001u00005F00v 1000 <m1@example.org>\n"
                                           "00000002u00005F00v 1001 -\n"
                                           "00000003u00005F00v 1002 <m3@example.org>\n");
    assert_int_equal(o.stats.top_failed, 1);
    outcome_free(&o);
}

static void test_unusable_messages_are_skipped(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER\r\nPIPELINING";
    maildrop(&s, 9, false);
    /* 1 fine; 2 over-long UIDL; 3 a DEL octet; 4 and 6 share one UIDL;
     * 5 missing; 7 named twice; 8 no LIST size; 9 fine. A message number
     * beyond STAT's count is ignored. */
    s.uidl_body = "1 one\r\n"
                  "2 0123456789012345678901234567890123456789012345678901234567890123456789X\r\n"
                  "3 bad\x7f\r\n"
                  "4 same\r\n"
                  "6 same\r\n"
                  "7 seven\r\n"
                  "7 seven-again\r\n"
                  "8 eight\r\n"
                  "9 ..nine\r\n"
                  "10 ten\r\n";
    s.list_body = "1 11\r\n2 22\r\n3 33\r\n4 44\r\n5 55\r\n6 66\r\n7 77\r\n8 big\r\n9 99\r\n";
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    assert_string_equal(buf_str(&o.items), "one 11 <m1@example.org>\n"
                                           "..nine 99 <m9@example.org>\n");
    assert_int_equal(o.stats.messages, 9);
    assert_int_equal(o.stats.delivered, 2);
    assert_int_equal(o.stats.bad_uidl, 4);       /* 2, 3, 5, 7 */
    assert_int_equal(o.stats.duplicate_uidl, 2); /* 4, 6 */
    assert_int_equal(o.stats.no_size, 1);        /* 8 */
    /* Only the usable messages were asked for. */
    assert_non_null(strstr(buf_str(&o.commands), "TOP 1 0\nTOP 9 0\nQUIT\n"));
    outcome_free(&o);
}

static void test_empty_maildrop(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER";
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    assert_int_equal(o.n_items, 0);
    assert_string_equal(buf_str(&o.commands), "CAPA\nUSER alice\nPASS s3cret pass\nSTAT\nQUIT\n");
    outcome_free(&o);
}

static void test_pass_refused(void **state)
{
    (void)state;
    static const struct {
        const char *user_reply, *pass_reply, *capa;
        enum legacy_pop3_result want;
    } cases[] = {
        { NULL, "-ERR [AUTH] Authentication failed.", "USER\r\nTOP", LEGACY_POP3_AUTH_FAILED },
        { NULL, "-ERR Authentication failed.", NULL, LEGACY_POP3_AUTH_FAILED },
        { "-ERR no such user", NULL, "USER", LEGACY_POP3_AUTH_FAILED },
        { NULL, "-ERR [IN-USE] Mailbox locked", "USER", LEGACY_POP3_UNAVAILABLE },
        { NULL, "-ERR [SYS/TEMP] try later", "USER", LEGACY_POP3_UNAVAILABLE },
        { NULL, "-ERR [LOGIN-DELAY] too soon", "USER", LEGACY_POP3_UNAVAILABLE },
        /* CAPA did not offer USER: plaintext login may be what is refused. */
        { "-ERR [AUTH] Plaintext authentication disallowed", NULL, "TOP\r\nSTLS",
          LEGACY_POP3_UNAVAILABLE },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static struct fake_script s;
        memset(&s, 0, sizeof s);
        s.capa = cases[i].capa;
        s.user_reply = cases[i].user_reply;
        s.pass_reply = cases[i].pass_reply;
        maildrop(&s, 2, false);
        struct outcome o = { 0 };
        struct fake_server f;
        run_script(&s, NULL, &o, &f);
        assert_int_equal(o.result, cases[i].want);
        assert_int_equal(o.n_items, 0);
        assert_null(strstr(buf_str(&o.commands), "STAT"));
        assert_null(strstr(o.last_error, "s3cret"));
        assert_non_null(strstr(o.last_error, "-ERR"));
        if (cases[i].user_reply)
            assert_null(strstr(buf_str(&o.commands), "PASS"));
        outcome_free(&o);
    }
}

static void test_greeting_refused(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.greeting = "-ERR [SYS/TEMP] too many connections";
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_UNAVAILABLE);
    assert_string_equal(buf_str(&o.commands), "");

    memset(&s, 0, sizeof s);
    s.greeting = "* OK [CAPABILITY IMAP4rev1] an IMAP server";
    struct outcome o2 = { 0 };
    run_script(&s, NULL, &o2, &f);
    assert_int_equal(o2.result, LEGACY_POP3_PROTOCOL_ERROR);
    outcome_free(&o);
    outcome_free(&o2);
}

static void test_server_closes_mid_listing(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER\r\nPIPELINING";
    maildrop(&s, 20, false);
    s.close_on = "UIDL";
    s.close_after = 60;         /* "+OK" and a few lines, cut inside one */
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_IO_ERROR);
    assert_int_equal(o.n_items, 0);
    assert_string_equal(o.last_error, "legacy server closed the connection");
    outcome_free(&o);
}

static void test_server_closes_mid_top(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER";
    maildrop(&s, 5, false);
    /* One at a time: the cut comes in the first TOP reply. */
    s.close_on = "TOP";
    s.close_after = 20;
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_IO_ERROR);
    assert_int_equal(o.n_items, 0);
    outcome_free(&o);
}

static void test_stall_times_out(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER";
    maildrop(&s, 3, false);
    s.stall_on = "LIST";
    struct legacy_pop3_server srv = server_at(0);
    srv.endpoint.command_timeout = 0.2;
    struct outcome o = { 0 };
    struct fake_server f;
    ev_tstamp start = ev_time();
    run_script(&s, &srv, &o, &f);
    ev_tstamp took = ev_time() - start;
    assert_int_equal(o.result, LEGACY_POP3_TIMEOUT);
    assert_true(took >= 0.2);
    assert_true(took < 3.0);
    outcome_free(&o);

    /* No greeting at all: the connect deadline. */
    memset(&s, 0, sizeof s);
    s.greeting = "";
    srv.endpoint.connect_timeout = 0.2;
    srv.endpoint.command_timeout = 60;
    struct outcome o2 = { 0 };
    run_script(&s, &srv, &o2, &f);
    assert_int_equal(o2.result, LEGACY_POP3_TIMEOUT);
    assert_string_equal(o2.last_error, "connect to legacy server timed out");
    outcome_free(&o2);
}

static void test_quit_unanswered_is_still_ok(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER";
    maildrop(&s, 2, false);
    s.stall_on = "QUIT";
    struct legacy_pop3_server srv = server_at(0);
    srv.endpoint.command_timeout = 0.2;
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, &srv, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    assert_int_equal(o.n_items, 2);
    outcome_free(&o);
}

static void test_starttls_required_but_not_offered(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER\r\nPIPELINING";
    maildrop(&s, 2, false);
    struct legacy_pop3_server srv = server_at(0);
    srv.endpoint.tls = UPSTREAM_TLS_STARTTLS;
    srv.endpoint.tls_ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(srv.endpoint.tls_ctx);
    srv.endpoint.verify_name = "pop.example.org";
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, &srv, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_PROTOCOL_ERROR);
    assert_string_equal(o.last_error, "legacy server does not offer STLS");
    /* Nothing but CAPA went out: no credentials in plaintext. */
    assert_string_equal(buf_str(&o.commands), "CAPA\n");
    SSL_CTX_free(srv.endpoint.tls_ctx);
    outcome_free(&o);
}

static void test_too_many_messages(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER";
    maildrop(&s, 3, false);
    struct legacy_pop3_server srv = server_at(0);
    srv.max_messages = 2;
    struct outcome o = { 0 };
    struct fake_server f;
    run_script(&s, &srv, &o, &f);
    assert_int_equal(o.result, LEGACY_POP3_TOO_MANY_MESSAGES);
    assert_int_equal(o.stats.messages, 3);
    assert_null(strstr(buf_str(&o.commands), "UIDL"));
    outcome_free(&o);
}

static void test_bad_credentials_refused_without_connecting(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        { "alice\r\nDELE 1", "pw" },
        { "alice", "pw\nDELE 1" },
        { "", "pw" },
        { "alice", "" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        static struct fake_script s;
        memset(&s, 0, sizeof s);
        struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
        struct fake_server f;
        fake_start(&f, loop, &s);
        struct legacy_pop3_server srv = server_at(f.port);
        struct outcome o = { 0 };
        fetch(loop, &srv, bad[i][0], bad[i][1], &o);
        assert_int_equal(o.result, LEGACY_POP3_INVALID_ARGUMENT);
        legacy_pop3_free(o.client);
        settle(loop);
        assert_int_equal(f.connections, 0);
        fake_stop(&f);
        ev_loop_destroy(loop);
        outcome_free(&o);
    }
    /* Too long. */
    char long_pass[LEGACY_POP3_CREDENTIAL_MAX + 2];
    memset(long_pass, 'p', sizeof long_pass - 1);
    long_pass[sizeof long_pass - 1] = '\0';
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct legacy_pop3_server srv = server_at(1);
    struct outcome o = { 0 };
    fetch(loop, &srv, "alice", long_pass, &o);
    assert_int_equal(o.result, LEGACY_POP3_INVALID_ARGUMENT);
    legacy_pop3_free(o.client);
    ev_loop_destroy(loop);
    outcome_free(&o);
}

static void test_connect_refused(void **state)
{
    (void)state;
    /* A port that was just free and has no listener. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct legacy_pop3_server srv = server_at(ntohs(a.sin_port));
    struct outcome o = { 0 };
    fetch(loop, &srv, "alice", "pw", &o);
    assert_int_equal(o.result, LEGACY_POP3_IO_ERROR);
    legacy_pop3_free(o.client);
    ev_loop_destroy(loop);
    outcome_free(&o);
}

static void test_free_inside_item_callback(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER\r\nPIPELINING";
    maildrop(&s, 10, false);
    struct outcome o = { .free_at_item = 3 };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    /* No callback after the free; ASan checks nothing was touched. */
    assert_false(o.done);
    assert_int_equal(o.n_items, 3);
    outcome_free(&o);

    /* Also when the items come without TOP, from one loop. */
    memset(&s, 0, sizeof s);
    s.capa = "USER";
    maildrop(&s, 10, false);
    struct outcome o2 = { .free_at_item = 2 };
    run_script(&s, NULL, &o2, &f);
    assert_false(o2.done);
    assert_int_equal(o2.n_items, 2);
    outcome_free(&o2);
}

static void test_free_inside_done_callback(void **state)
{
    (void)state;
    static struct fake_script s;
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER";
    maildrop(&s, 2, false);
    struct outcome o = { .free_in_done = true };
    struct fake_server f;
    run_script(&s, NULL, &o, &f);
    assert_true(o.done);
    assert_int_equal(o.result, LEGACY_POP3_OK);
    assert_null(o.client);
    outcome_free(&o);

    /* And on a failure path. */
    memset(&s, 0, sizeof s);
    s.capa = "TOP\r\nUSER";
    s.pass_reply = "-ERR nope";
    struct outcome o2 = { .free_in_done = true };
    run_script(&s, NULL, &o2, &f);
    assert_int_equal(o2.result, LEGACY_POP3_AUTH_FAILED);
    outcome_free(&o2);
}

static void test_result_names(void **state)
{
    (void)state;
    assert_string_equal(legacy_pop3_result_name(LEGACY_POP3_OK), "ok");
    assert_string_equal(legacy_pop3_result_name(LEGACY_POP3_TOO_MANY_MESSAGES),
                        "too-many-messages");
    assert_string_equal(legacy_pop3_result_name((enum legacy_pop3_result)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_happy_path),
        cmocka_unit_test(test_one_at_a_time_without_pipelining),
        cmocka_unit_test(test_capa_refused_is_tolerated),
        cmocka_unit_test(test_no_top_capability_no_message_ids),
        cmocka_unit_test(test_dot_stuffed_header_lines),
        cmocka_unit_test(test_header_over_the_bound),
        cmocka_unit_test(test_top_refused_for_one_message),
        cmocka_unit_test(test_unusable_messages_are_skipped),
        cmocka_unit_test(test_empty_maildrop),
        cmocka_unit_test(test_pass_refused),
        cmocka_unit_test(test_greeting_refused),
        cmocka_unit_test(test_server_closes_mid_listing),
        cmocka_unit_test(test_server_closes_mid_top),
        cmocka_unit_test(test_stall_times_out),
        cmocka_unit_test(test_quit_unanswered_is_still_ok),
        cmocka_unit_test(test_starttls_required_but_not_offered),
        cmocka_unit_test(test_too_many_messages),
        cmocka_unit_test(test_bad_credentials_refused_without_connecting),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_free_inside_item_callback),
        cmocka_unit_test(test_free_inside_done_callback),
        cmocka_unit_test(test_result_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
