/* pop3load: POP3 load generator for the benchmarks in bench/ (see README.md).
 *
 * One libev loop drives many concurrent POP3 sessions over non-blocking
 * sockets, plain or implicit TLS, against a loopback address only. Each
 * session runs one fixed script (the workload) and is then replaced by a new
 * one until the session count or the duration is reached. Multi-line replies
 * are scanned as they stream in for their terminating "." line and counted,
 * never stored, so a 10 MB RETR costs the same memory as a NOOP.
 *
 * Output: one JSON object on stdout. For the idle workloads a line
 * "READY <ready> <errors>" goes to stderr once every connection is up, so a
 * harness can sample the server while they are held.
 *
 * Memory bounds: one loop-wide read buffer (READ_CHUNK); per session a status
 * line buffer (STATUS_LINE_MAX) and an output buffer (OUT_MAX); a fixed
 * latency histogram (HIST_BUCKETS counters). Nothing grows with the number of
 * sessions run or bytes received.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* Reads land here; one loop needs one buffer. */
#define READ_CHUNK        (64 * 1024)
/* Reads per readiness event before other sessions get their turn. */
#define READS_PER_EVENT   16
/* RFC 2449 caps a reply line at 512 octets incl. CRLF; longer lines are
 * truncated (the rest is skipped), which is enough to read a status. */
#define STATUS_LINE_MAX   512
/* Longest command: "USER " + NAME_MAX + CRLF, or PIPELINE_MAX short ones. */
#define NAME_MAX_LEN      255
#define OUT_MAX           1024
#define PIPELINE_MAX      32
#define ERROR_TEXT_MAX    200
/* Histogram: exact below 64 us, then 64 sub-buckets per power of two
 * (relative error under 1.6 %), up to 2^64 us. */
#define HIST_SUB_BITS     6
#define HIST_SUB          (1u << HIST_SUB_BITS)
#define HIST_BUCKETS      ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

enum workload {
    WL_STAT_UIDL,
    WL_RETR_ALL,
    WL_UIDL,
    WL_IDLE_PREAUTH,
    WL_IDLE_AUTH,
    WL_TLS_HANDSHAKE,
};

static const char *const workload_names[] = {
    [WL_STAT_UIDL] = "stat-uidl",
    [WL_RETR_ALL] = "retr-all",
    [WL_UIDL] = "uidl",
    [WL_IDLE_PREAUTH] = "idle-preauth",
    [WL_IDLE_AUTH] = "idle-auth",
    [WL_TLS_HANDSHAKE] = "tls-handshake",
};

/* What the script does at one step. Step 0 is the greeting. */
enum step_kind {
    STEP_GREETING,
    STEP_SINGLE,     /* one-line reply */
    STEP_STAT,       /* one-line reply that sets the message count */
    STEP_MULTI,      /* multi-line reply */
    STEP_QUIT,       /* one-line reply, then the session is complete */
    STEP_HOLD,       /* no command: the session is ready and is held open */
    STEP_DONE,       /* no command: the session is complete, close it */
};

struct step {
    enum step_kind kind;
    bool barrier;    /* later commands wait for this reply */
    bool is_retr;
};

enum phase {
    PH_FREE,
    PH_CONNECTING,
    PH_HANDSHAKE,
    PH_ACTIVE,
    PH_HOLD,
};

struct session {
    unsigned slot;
    enum phase phase;
    int fd;
    SSL *ssl;
    ev_io io;
    ev_timer timer;          /* inactivity timeout */
    int io_events;           /* events io is started with, 0 = stopped */
    ev_tstamp started;
    unsigned user;           /* user number for the patterns */
    bool pending;            /* still being set up (counts against max_pending) */

    uint32_t next_step;      /* next step whose command is to be sent */
    uint32_t answered;       /* replies fully received (greeting included) */
    bool barrier_pending;
    uint32_t nmsgs;          /* from STAT */

    bool in_body;            /* inside a multi-line reply */
    /* First two bytes of the current body line and its length (capped at 3):
     * all the terminator check needs. */
    uint8_t body_len;
    char body_c0, body_c1;

    char line[STATUS_LINE_MAX];
    size_t line_len;

    char out[OUT_MAX];
    size_t out_len, out_off;
};

struct options {
    const char *host;
    int port;
    bool tls;
    enum workload workload;
    const char *user_fmt;
    const char *pass_fmt;
    unsigned users;
    unsigned first_user;
    unsigned concurrency;
    uint64_t sessions;       /* 0 = no session limit (duration must be set) */
    double duration;         /* 0 = no duration limit */
    double timeout;
    double hold;
    bool hold_stdin;
    unsigned pipeline;
    unsigned max_pending;
    uint64_t max_errors;     /* 0 = unlimited */
    double max_time;
};

struct stats {
    uint64_t started;
    uint64_t completed;
    uint64_t errors;
    uint64_t bytes_in;
    uint64_t messages;       /* RETR replies */
    uint64_t ready;          /* idle workloads: sessions that reached HOLD */
    uint64_t hist[HIST_BUCKETS];
    uint64_t lat_max_us;
    double lat_sum_us;
    char first_error[ERROR_TEXT_MAX];
};

static struct options opt = {
    .host = "127.0.0.1",
    .user_fmt = "user%d",
    .pass_fmt = "pw%d",
    .users = 1,
    .first_user = 1,
    .concurrency = 1,
    .timeout = 60.0,
    .hold = 10.0,
    .pipeline = 1,
    .max_pending = 256,
    .max_errors = 1000,
    .max_time = 900.0,
};

static struct stats st;
static struct ev_loop *loop;
static struct sockaddr_storage target;
static socklen_t target_len;
static SSL_CTX *ssl_ctx;
static struct session *sessions;
static unsigned *free_slots;          /* stack of free slot indexes */
static unsigned n_free;
/* Sessions being set up: until the greeting, or for the idle workloads
 * until they are held. Capped so a burst of connects does not overflow the
 * server's listen backlog. */
static unsigned n_pending;
static unsigned n_active;
static ev_tstamp t_start, t_ready, t_end;
static bool stopping;                 /* no new sessions */
static bool all_ready_reported;
static ev_timer deadline_timer, hold_timer;
static ev_io stdin_watcher;
static char read_buf[READ_CHUNK];

static void session_start(struct session *s);
static void session_set_up(struct session *s);
static bool idle_workload(void);
static void session_finish(struct session *s, bool ok);
static void session_io_cb(struct ev_loop *l, ev_io *w, int revents);
static void fill_slots(void);

/* ---- small helpers ------------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pop3load: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void note_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_error(const char *fmt, ...)
{
    st.errors++;
    if (st.first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.first_error, sizeof st.first_error, fmt, ap);
    va_end(ap);
}

/* Expand a user or password pattern: "%d" (or "%u") becomes n, "%%" a
 * percent sign. Never a printf format: patterns come from the command line. */
static bool expand_pattern(const char *pat, unsigned n, char *out, size_t out_size)
{
    size_t o = 0;
    for (const char *p = pat; *p; p++) {
        char num[16];
        const char *piece = p;
        size_t plen = 1;
        if (p[0] == '%' && (p[1] == 'd' || p[1] == 'u')) {
            plen = (size_t)snprintf(num, sizeof num, "%u", n);
            piece = num;
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            p++;
        }
        if (o + plen >= out_size)
            return false;
        memcpy(out + o, piece, plen);
        o += plen;
    }
    out[o] = '\0';
    return true;
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0) || v > 86400.0)
        return false;
    *out = v;
    return true;
}

/* The benchmark must never load anything but this machine. */
static void resolve_loopback(const char *host, int port)
{
    memset(&target, 0, sizeof target);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&target;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&target;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127)
            die("%s is not a loopback address (127.0.0.0/8 or ::1 only)", host);
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        target_len = sizeof *v4;
        return;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr))
            die("%s is not a loopback address (127.0.0.0/8 or ::1 only)", host);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        target_len = sizeof *v6;
        return;
    }
    die("host must be a numeric loopback address (127.0.0.0/8 or ::1), not %s", host);
}

/* ---- latency histogram --------------------------------------------------- */

static unsigned hist_index(uint64_t us)
{
    if (us < HIST_SUB)
        return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us);
    unsigned sub = (unsigned)(us >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

static double hist_value(unsigned idx)
{
    if (idx < HIST_SUB)
        return idx;
    unsigned e = idx / HIST_SUB + HIST_SUB_BITS - 1;
    unsigned sub = idx % HIST_SUB;
    double width = (double)(1ull << (e - HIST_SUB_BITS));
    return (double)(HIST_SUB + sub) * width + width / 2.0;
}

static void hist_add(double seconds)
{
    uint64_t us = seconds <= 0 ? 0 : (uint64_t)(seconds * 1e6);
    st.hist[hist_index(us)]++;
    st.lat_sum_us += (double)us;
    if (us > st.lat_max_us)
        st.lat_max_us = us;
}

static double hist_quantile_ms(double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        total += st.hist[i];
    if (!total)
        return 0.0;
    uint64_t rank = (uint64_t)(q * (double)(total - 1)) + 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += st.hist[i];
        if (seen >= rank) {
            double v = hist_value(i);
            if (v > (double)st.lat_max_us)
                v = (double)st.lat_max_us;
            return v / 1000.0;
        }
    }
    return (double)st.lat_max_us / 1000.0;
}

/* ---- the scripts ---------------------------------------------------------- */

static struct step script_step(const struct session *s, uint32_t i)
{
    struct step none = { STEP_DONE, true, false };
    if (i == 0)
        return (struct step){ STEP_GREETING, true, false };
    switch (opt.workload) {
    case WL_TLS_HANDSHAKE:
        return none;
    case WL_IDLE_PREAUTH:
        return (struct step){ STEP_HOLD, true, false };
    default:
        break;
    }
    /* USER and PASS are barriers: proxies such as perdition read the
     * credentials and drop whatever else was in the buffer. */
    if (i == 1 || i == 2)
        return (struct step){ STEP_SINGLE, true, false };
    uint32_t k = i - 3;
    switch (opt.workload) {
    case WL_IDLE_AUTH:
        return (struct step){ STEP_HOLD, true, false };
    case WL_STAT_UIDL:
        if (k == 0)
            return (struct step){ STEP_STAT, false, false };
        if (k == 1)
            return (struct step){ STEP_MULTI, false, false };
        return (struct step){ STEP_QUIT, true, false };
    case WL_UIDL:
        if (k == 0)
            return (struct step){ STEP_MULTI, false, false };
        return (struct step){ STEP_QUIT, true, false };
    case WL_RETR_ALL:
        if (k == 0)
            return (struct step){ STEP_STAT, true, false };
        if (k <= s->nmsgs)
            return (struct step){ STEP_MULTI, false, true };
        return (struct step){ STEP_QUIT, true, false };
    default:
        return none;
    }
}

/* Command text for step i; returns its length, 0 if it has none or does not
 * fit in size. */
static size_t script_command(const struct session *s, uint32_t i, char *buf, size_t size)
{
    char name[NAME_MAX_LEN + 1];
    int n = 0;
    if (i == 1 || i == 2) {
        if (!expand_pattern(i == 1 ? opt.user_fmt : opt.pass_fmt, s->user, name, sizeof name))
            return 0;
        n = snprintf(buf, size, "%s %s\r\n", i == 1 ? "USER" : "PASS", name);
    } else {
        uint32_t k = i - 3;
        struct step step = script_step(s, i);
        if (step.kind == STEP_QUIT)
            n = snprintf(buf, size, "QUIT\r\n");
        else if (step.kind == STEP_STAT)
            n = snprintf(buf, size, "STAT\r\n");
        else if (opt.workload == WL_RETR_ALL)
            n = snprintf(buf, size, "RETR %" PRIu32 "\r\n", k);
        else if (step.kind == STEP_MULTI)
            n = snprintf(buf, size, "UIDL\r\n");
    }
    if (n <= 0 || (size_t)n >= size)
        return 0;
    return (size_t)n;
}

/* ---- watchers ------------------------------------------------------------ */

static void session_want(struct session *s, int events)
{
    if (s->io_events == events)
        return;
    if (s->io_events)
        ev_io_stop(loop, &s->io);
    s->io_events = events;
    if (events) {
        ev_io_set(&s->io, s->fd, events);
        ev_io_start(loop, &s->io);
    }
}

static void session_touch(struct session *s)
{
    if (s->phase == PH_HOLD)
        return;
    ev_timer_again(loop, &s->timer);
}

/* ---- output -------------------------------------------------------------- */

/* Write what is queued. Returns false if the session failed. */
static bool session_flush(struct session *s)
{
    while (s->out_off < s->out_len) {
        size_t left = s->out_len - s->out_off;
        if (s->ssl) {
            ERR_clear_error();
            int n = SSL_write(s->ssl, s->out + s->out_off, (int)left);
            if (n > 0) {
                s->out_off += (size_t)n;
                continue;
            }
            int e = SSL_get_error(s->ssl, n);
            if (e == SSL_ERROR_WANT_WRITE) {
                session_want(s, EV_READ | EV_WRITE);
                return true;
            }
            if (e == SSL_ERROR_WANT_READ)
                return true;
            note_error("TLS write failed");
            session_finish(s, false);
            return false;
        }
        ssize_t n = send(s->fd, s->out + s->out_off, left, MSG_NOSIGNAL);
        if (n > 0) {
            s->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            session_want(s, EV_READ | EV_WRITE);
            return true;
        }
        note_error("write: %s", strerror(errno));
        session_finish(s, false);
        return false;
    }
    s->out_off = s->out_len = 0;
    session_want(s, EV_READ);
    return true;
}

/* Queue every command the script allows now (pipeline depth, barriers), then
 * write. A TLS write that must be retried keeps its buffer, so nothing is
 * queued while output is pending. */
static bool session_send_more(struct session *s)
{
    if (s->out_len > 0) {
        if (!session_flush(s))
            return false;
        if (s->out_len > 0)
            return true;
    }
    while (s->answered >= 1 && !s->barrier_pending
           && s->next_step - s->answered < opt.pipeline) {
        struct step step = script_step(s, s->next_step);
        if (step.kind == STEP_HOLD || step.kind == STEP_DONE)
            break;
        size_t n = script_command(s, s->next_step, s->out + s->out_len, OUT_MAX - s->out_len);
        if (n == 0) {
            if (s->out_len > 0)
                break;
            note_error("command does not fit (user or password pattern too long)");
            session_finish(s, false);
            return false;
        }
        s->out_len += n;
        s->barrier_pending = step.barrier;
        s->next_step++;
    }
    return session_flush(s);
}

/* ---- input --------------------------------------------------------------- */

/* The reply to step `answered` is complete. Returns false if the session
 * ended. */
static bool reply_done(struct session *s)
{
    struct step step = script_step(s, s->answered);
    if (step.is_retr)
        st.messages++;
    s->answered++;
    if (step.barrier)
        s->barrier_pending = false;
    if (step.kind == STEP_QUIT) {
        session_finish(s, true);
        return false;
    }
    if (s->answered == s->next_step) {
        struct step next = script_step(s, s->answered);
        if (next.kind == STEP_DONE) {
            session_finish(s, true);
            return false;
        }
        if (next.kind == STEP_HOLD) {
            s->phase = PH_HOLD;
            ev_timer_stop(loop, &s->timer);
            session_set_up(s);
            st.ready++;
            hist_add(ev_now(loop) - s->started);
            fill_slots();
            return true;
        }
    }
    return session_send_more(s);
}

static bool status_line_done(struct session *s)
{
    if (s->answered == 0 && !idle_workload()) {
        session_set_up(s);
        fill_slots();
    }
    struct step step = script_step(s, s->answered);
    size_t len = s->line_len;
    while (len && (s->line[len - 1] == '\r' || s->line[len - 1] == '\n'))
        len--;
    s->line[len] = '\0';
    s->line_len = 0;
    if (strncmp(s->line, "+OK", 3) != 0) {
        note_error("step %" PRIu32 ": %.*s", s->answered, ERROR_TEXT_MAX - 24, s->line);
        session_finish(s, false);
        return false;
    }
    if (step.kind == STEP_STAT) {
        unsigned long n = 0;
        if (sscanf(s->line + 3, " %lu", &n) != 1 || n > UINT32_MAX) {
            note_error("unreadable STAT reply: %.*s", ERROR_TEXT_MAX - 24, s->line);
            session_finish(s, false);
            return false;
        }
        s->nmsgs = (uint32_t)n;
    }
    if (step.kind == STEP_MULTI) {
        s->in_body = true;
        s->body_len = 0;
        return true;
    }
    return reply_done(s);
}

/* Scan body bytes for the terminating "." line. Returns bytes consumed; sets
 * *ended when the terminator was among them. */
static size_t body_scan(struct session *s, const char *p, size_t len, bool *ended)
{
    const char *start = p, *end = p + len;
    *ended = false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *seg_end = nl ? nl : end;
        for (const char *q = p; q < seg_end && s->body_len < 3; q++) {
            if (s->body_len == 0)
                s->body_c0 = *q;
            else if (s->body_len == 1)
                s->body_c1 = *q;
            s->body_len++;
        }
        if (!nl)
            return len;
        bool term = (s->body_len == 1 && s->body_c0 == '.')
                    || (s->body_len == 2 && s->body_c0 == '.' && s->body_c1 == '\r');
        s->body_len = 0;
        p = nl + 1;
        if (term) {
            *ended = true;
            return (size_t)(p - start);
        }
    }
    return (size_t)(p - start);
}

/* Feed received bytes to the session. Returns false if the session ended. */
static bool session_feed(struct session *s, const char *p, size_t len)
{
    while (len > 0) {
        if (s->phase != PH_ACTIVE) {
            note_error("data from the server while holding");
            session_finish(s, false);
            return false;
        }
        if (s->in_body) {
            bool ended;
            size_t used = body_scan(s, p, len, &ended);
            p += used;
            len -= used;
            if (ended) {
                s->in_body = false;
                if (!reply_done(s))
                    return false;
            }
            continue;
        }
        const char *nl = memchr(p, '\n', len);
        size_t take = nl ? (size_t)(nl - p) + 1 : len;
        size_t room = STATUS_LINE_MAX - 1 - s->line_len;
        size_t copy = take < room ? take : room;
        memcpy(s->line + s->line_len, p, copy);
        s->line_len += copy;
        p += take;
        len -= take;
        if (nl && !status_line_done(s))
            return false;
    }
    return true;
}

static void session_read(struct session *s)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n;
        if (s->ssl) {
            ERR_clear_error();
            int r = SSL_read(s->ssl, read_buf, sizeof read_buf);
            if (r <= 0) {
                int e = SSL_get_error(s->ssl, r);
                if (e == SSL_ERROR_WANT_READ)
                    return;
                if (e == SSL_ERROR_WANT_WRITE) {
                    session_want(s, EV_READ | EV_WRITE);
                    return;
                }
                note_error(e == SSL_ERROR_ZERO_RETURN ? "server closed the connection (step %" PRIu32 ")"
                                                      : "TLS read failed (step %" PRIu32 ")", s->answered);
                session_finish(s, false);
                return;
            }
            n = r;
        } else {
            n = recv(s->fd, read_buf, sizeof read_buf, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return;
                note_error("read: %s (step %" PRIu32 ")", strerror(errno), s->answered);
                session_finish(s, false);
                return;
            }
            if (n == 0) {
                note_error("server closed the connection (step %" PRIu32 ")", s->answered);
                session_finish(s, false);
                return;
            }
        }
        st.bytes_in += (uint64_t)n;
        session_touch(s);
        if (!session_feed(s, read_buf, (size_t)n))
            return;
    }
    /* Decrypted bytes wait inside OpenSSL where the fd shows nothing: come
     * back for them after the other sessions had their turn. */
    if (s->ssl && SSL_has_pending(s->ssl))
        ev_feed_event(loop, &s->io, EV_READ);
}

/* ---- connection setup ---------------------------------------------------- */

static void session_handshake(struct session *s)
{
    ERR_clear_error();
    int r = SSL_connect(s->ssl);
    if (r == 1) {
        s->phase = PH_ACTIVE;
        session_want(s, EV_READ);
        session_read(s);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        session_want(s, EV_READ);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        session_want(s, EV_WRITE);
        return;
    }
    unsigned long code = ERR_peek_error();
    char why[120];
    ERR_error_string_n(code, why, sizeof why);
    note_error("TLS handshake failed: %s", code ? why : "connection closed");
    session_finish(s, false);
}

static void session_connected(struct session *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        note_error("connect: %s", strerror(err));
        session_finish(s, false);
        return;
    }
    if (opt.tls) {
        s->ssl = SSL_new(ssl_ctx);
        if (!s->ssl || !SSL_set_fd(s->ssl, s->fd)) {
            note_error("SSL_new failed");
            session_finish(s, false);
            return;
        }
        s->phase = PH_HANDSHAKE;
        session_handshake(s);
        return;
    }
    s->phase = PH_ACTIVE;
    session_want(s, EV_READ);
}

static void session_io_cb(struct ev_loop *l, ev_io *w, int revents)
{
    (void)l;
    struct session *s = w->data;
    switch (s->phase) {
    case PH_CONNECTING:
        session_connected(s);
        return;
    case PH_HANDSHAKE:
        session_touch(s);
        session_handshake(s);
        return;
    case PH_ACTIVE:
    case PH_HOLD:
        /* A TLS write may wait for readability (WANT_READ): retry it on
         * any event. */
        if ((revents & EV_WRITE) || s->out_off < s->out_len) {
            if (!session_send_more(s))
                return;
        }
        if (revents & EV_READ)
            session_read(s);
        return;
    case PH_FREE:
        return;
    }
}

static void session_timeout_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)revents;
    struct session *s = w->data;
    note_error("timeout after %.0f s without progress (step %" PRIu32 ")", opt.timeout, s->answered);
    session_finish(s, false);
}

static void session_start(struct session *s)
{
    s->next_step = 1;
    s->answered = 0;
    s->barrier_pending = false;
    s->nmsgs = 0;
    s->in_body = false;
    s->body_len = 0;
    s->line_len = 0;
    s->out_len = s->out_off = 0;
    s->pending = true;
    s->user = opt.first_user + s->slot % opt.users;
    s->started = ev_now(loop);
    s->ssl = NULL;
    s->io_events = 0;
    st.started++;
    n_active++;
    n_pending++;

    s->fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        s->phase = PH_CONNECTING;
        note_error("socket: %s", strerror(errno));
        session_finish(s, false);
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ev_io_init(&s->io, session_io_cb, s->fd, 0);
    s->io.data = s;
    ev_init(&s->timer, session_timeout_cb);
    s->timer.repeat = opt.timeout;
    s->timer.data = s;
    ev_timer_again(loop, &s->timer);
    s->phase = PH_CONNECTING;
    if (connect(s->fd, (struct sockaddr *)&target, target_len) == 0) {
        session_connected(s);
        return;
    }
    if (errno != EINPROGRESS) {
        note_error("connect: %s", strerror(errno));
        session_finish(s, false);
        return;
    }
    session_want(s, EV_WRITE);
}

/* ---- session end and scheduling ----------------------------------------- */

static bool may_start(void)
{
    if (stopping)
        return false;
    if (opt.sessions && st.started >= opt.sessions)
        return false;
    /* ev_time, not ev_now: a run of immediate connect failures never
     * returns to the loop that would update ev_now. */
    if (opt.duration > 0 && ev_time() - t_start >= opt.duration)
        return false;
    if (opt.max_errors && st.errors >= opt.max_errors)
        return false;
    return true;
}

static void finish_run(void)
{
    t_end = ev_now(loop);
    ev_break(loop, EVBREAK_ALL);
}

static void hold_end_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    stopping = true;
    if (ev_is_active(&hold_timer))
        ev_timer_stop(loop, &hold_timer);
    if (ev_is_active(&stdin_watcher))
        ev_io_stop(loop, &stdin_watcher);
    for (unsigned i = 0; i < opt.concurrency; i++) {
        if (sessions[i].phase == PH_HOLD)
            session_finish(&sessions[i], true);
    }
}

static void stdin_cb(struct ev_loop *l, ev_io *w, int revents)
{
    (void)w;
    hold_end_cb(l, NULL, revents);
}

static bool idle_workload(void)
{
    return opt.workload == WL_IDLE_PREAUTH || opt.workload == WL_IDLE_AUTH;
}

/* Idle workloads: once every connection is up (or failed), tell the harness
 * and hold them. */
static void check_all_ready(void)
{
    if (all_ready_reported || !idle_workload() || n_pending > 0 || may_start())
        return;
    all_ready_reported = true;
    t_ready = ev_now(loop);
    fprintf(stderr, "READY %" PRIu64 " %" PRIu64 "\n", st.ready, st.errors);
    fflush(stderr);
    ev_timer_init(&hold_timer, hold_end_cb, opt.hold, 0.0);
    ev_timer_start(loop, &hold_timer);
    if (opt.hold_stdin) {
        ev_io_init(&stdin_watcher, stdin_cb, STDIN_FILENO, EV_READ);
        ev_io_start(loop, &stdin_watcher);
    }
}

/* Start sessions in free slots. A session that fails at once frees its slot
 * again from inside session_start; the outer call's loop takes it, so the
 * recursion is one level deep at most. */
static void fill_slots(void)
{
    static bool filling;
    if (filling)
        return;
    filling = true;
    while (n_free > 0 && n_pending < opt.max_pending && may_start())
        session_start(&sessions[free_slots[--n_free]]);
    filling = false;
    check_all_ready();
    if (n_active == 0 && !may_start())
        finish_run();
}

static void session_set_up(struct session *s)
{
    if (s->pending) {
        s->pending = false;
        n_pending--;
    }
}

static void session_finish(struct session *s, bool ok)
{
    if (s->phase == PH_FREE)
        return;
    session_set_up(s);
    if (ok && s->phase != PH_HOLD)
        hist_add(ev_now(loop) - s->started);
    if (ok)
        st.completed++;
    session_want(s, 0);
    ev_timer_stop(loop, &s->timer);
    if (s->ssl) {
        if (ok)
            SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->phase = PH_FREE;
    n_active--;
    free_slots[n_free++] = s->slot;
    fill_slots();
}

/* Duration runs end by themselves once the last session closes; this only
 * wakes the loop when nothing else would, so the end is noticed. */
static void duration_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    fill_slots();
}

static void deadline_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    stopping = true;
    for (unsigned i = 0; i < opt.concurrency; i++) {
        struct session *s = &sessions[i];
        if (s->phase == PH_HOLD) {
            session_finish(s, true);
        } else if (s->phase != PH_FREE) {
            note_error("aborted at --max-time");
            session_finish(s, false);
        }
    }
    finish_run();
}

/* ---- report -------------------------------------------------------------- */

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void report(void)
{
    double elapsed = t_end - t_start;
    if (elapsed <= 0)
        elapsed = 1e-9;
    /* Idle workloads: the rate is how fast connections came up. */
    double rate_span = idle_workload() && all_ready_reported ? t_ready - t_start : elapsed;
    if (rate_span <= 0)
        rate_span = 1e-9;
    uint64_t lat_n = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        lat_n += st.hist[i];
    printf("{\"workload\":");
    json_string(workload_names[opt.workload]);
    printf(",\"host\":");
    json_string(opt.host);
    printf(",\"port\":%d,\"tls\":%s,\"concurrency\":%u,\"pipeline\":%u",
           opt.port, opt.tls ? "true" : "false", opt.concurrency, opt.pipeline);
    printf(",\"sessions\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"started\":%" PRIu64,
           st.completed, st.errors, st.started);
    printf(",\"elapsed\":%.6f,\"sessions_per_s\":%.3f", elapsed,
           idle_workload() ? (double)st.ready / rate_span : (double)st.completed / elapsed);
    printf(",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"mean_ms\":%.3f",
           hist_quantile_ms(0.50), hist_quantile_ms(0.99), (double)st.lat_max_us / 1000.0,
           lat_n ? st.lat_sum_us / (double)lat_n / 1000.0 : 0.0);
    printf(",\"bytes\":%" PRIu64 ",\"mb_per_s\":%.3f,\"messages\":%" PRIu64,
           st.bytes_in, (double)st.bytes_in / 1e6 / elapsed, st.messages);
    if (idle_workload())
        printf(",\"ready\":%" PRIu64 ",\"ready_s\":%.6f", st.ready,
               all_ready_reported ? t_ready - t_start : 0.0);
    printf(",\"first_error\":");
    json_string(st.first_error);
    printf("}\n");
    fflush(stdout);
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: pop3load -p PORT -w WORKLOAD [options]\n"
        "  -H, --host ADDR        127.0.0.0/8 or ::1 only (default 127.0.0.1)\n"
        "  -p, --port PORT        server port\n"
        "  -T, --tls              implicit TLS (POP3S); the certificate is not checked\n"
        "  -w, --workload NAME    stat-uidl | retr-all | uidl | idle-preauth | idle-auth | tls-handshake\n"
        "  -u, --user PATTERN     user name, %%d = user number (default user%%d)\n"
        "  -P, --password PATTERN password, %%d = user number (default pw%%d)\n"
        "  -U, --users N          session slot i uses user FIRST + i %% N (default 1)\n"
        "  -F, --first-user N     first user number (default 1)\n"
        "  -c, --concurrency N    sessions at once; connections held for idle-* (default 1)\n"
        "  -n, --sessions N       stop after N sessions\n"
        "  -d, --duration SEC     stop starting sessions after SEC seconds\n"
        "  -l, --pipeline N       commands in flight after login, 1..%d (default 1)\n"
        "  -t, --timeout SEC      a session without progress for SEC fails (default 60)\n"
        "      --hold SEC         idle-*: hold the connections SEC seconds (default 10)\n"
        "      --hold-stdin       idle-*: also stop holding when stdin is readable or closed\n"
        "      --max-pending N    connections being set up at once (default 256)\n"
        "      --max-errors N     stop starting sessions after N errors, 0 = never (default 1000)\n"
        "      --max-time SEC     hard limit for the whole run (default 900)\n"
        "Prints one JSON object on stdout; idle-* also print READY <ready> <errors> on stderr\n"
        "when every connection is up.\n", PIPELINE_MAX);
}

static void parse_args(int argc, char **argv)
{
    enum { O_HOLD = 256, O_HOLD_STDIN, O_MAX_PENDING, O_MAX_ERRORS, O_MAX_TIME };
    static const struct option longopts[] = {
        { "host", required_argument, NULL, 'H' },
        { "port", required_argument, NULL, 'p' },
        { "tls", no_argument, NULL, 'T' },
        { "workload", required_argument, NULL, 'w' },
        { "user", required_argument, NULL, 'u' },
        { "password", required_argument, NULL, 'P' },
        { "users", required_argument, NULL, 'U' },
        { "first-user", required_argument, NULL, 'F' },
        { "concurrency", required_argument, NULL, 'c' },
        { "sessions", required_argument, NULL, 'n' },
        { "duration", required_argument, NULL, 'd' },
        { "pipeline", required_argument, NULL, 'l' },
        { "timeout", required_argument, NULL, 't' },
        { "hold", required_argument, NULL, O_HOLD },
        { "hold-stdin", no_argument, NULL, O_HOLD_STDIN },
        { "max-pending", required_argument, NULL, O_MAX_PENDING },
        { "max-errors", required_argument, NULL, O_MAX_ERRORS },
        { "max-time", required_argument, NULL, O_MAX_TIME },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool have_workload = false;
    uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, "H:p:Tw:u:P:U:F:c:n:d:l:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            opt.host = optarg;
            break;
        case 'p':
            if (!parse_uint(optarg, 65535, &v) || v == 0)
                die("bad port %s", optarg);
            opt.port = (int)v;
            break;
        case 'T':
            opt.tls = true;
            break;
        case 'w': {
            size_t i;
            for (i = 0; i < sizeof workload_names / sizeof workload_names[0]; i++) {
                if (!strcmp(optarg, workload_names[i]))
                    break;
            }
            if (i == sizeof workload_names / sizeof workload_names[0])
                die("unknown workload %s", optarg);
            opt.workload = (enum workload)i;
            have_workload = true;
            break;
        }
        case 'u':
            opt.user_fmt = optarg;
            break;
        case 'P':
            opt.pass_fmt = optarg;
            break;
        case 'U':
            if (!parse_uint(optarg, 10000000, &v) || v == 0)
                die("bad --users %s", optarg);
            opt.users = (unsigned)v;
            break;
        case 'F':
            if (!parse_uint(optarg, 1000000000, &v))
                die("bad --first-user %s", optarg);
            opt.first_user = (unsigned)v;
            break;
        case 'c':
            if (!parse_uint(optarg, 1000000, &v) || v == 0)
                die("bad --concurrency %s", optarg);
            opt.concurrency = (unsigned)v;
            break;
        case 'n':
            if (!parse_uint(optarg, UINT64_MAX, &v))
                die("bad --sessions %s", optarg);
            opt.sessions = v;
            break;
        case 'd':
            if (!parse_seconds(optarg, &opt.duration))
                die("bad --duration %s", optarg);
            break;
        case 'l':
            if (!parse_uint(optarg, PIPELINE_MAX, &v) || v == 0)
                die("bad --pipeline %s (1..%d)", optarg, PIPELINE_MAX);
            opt.pipeline = (unsigned)v;
            break;
        case 't':
            if (!parse_seconds(optarg, &opt.timeout) || opt.timeout <= 0)
                die("bad --timeout %s", optarg);
            break;
        case O_HOLD:
            if (!parse_seconds(optarg, &opt.hold))
                die("bad --hold %s", optarg);
            break;
        case O_HOLD_STDIN:
            opt.hold_stdin = true;
            break;
        case O_MAX_PENDING:
            if (!parse_uint(optarg, 1000000, &v) || v == 0)
                die("bad --max-pending %s", optarg);
            opt.max_pending = (unsigned)v;
            break;
        case O_MAX_ERRORS:
            if (!parse_uint(optarg, UINT64_MAX, &v))
                die("bad --max-errors %s", optarg);
            opt.max_errors = v;
            break;
        case O_MAX_TIME:
            if (!parse_seconds(optarg, &opt.max_time) || opt.max_time <= 0)
                die("bad --max-time %s", optarg);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc)
        die("unexpected argument %s", argv[optind]);
    if (!opt.port || !have_workload) {
        usage(stderr);
        exit(2);
    }
    if (opt.workload == WL_TLS_HANDSHAKE)
        opt.tls = true;
    if (idle_workload())
        opt.sessions = opt.concurrency;
    else if (!opt.sessions && opt.duration <= 0)
        die("give --sessions or --duration: a run must be bounded");
    if (opt.hold > opt.max_time)
        opt.hold = opt.max_time;
    resolve_loopback(opt.host, opt.port);
}

/* Each connection is a descriptor: raise the soft limit as far as allowed. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)opt.concurrency + 64;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
        fprintf(stderr, "pop3load: warning: only %llu descriptors for %u connections\n",
                (unsigned long long)rl.rlim_cur, opt.concurrency);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    if (opt.tls) {
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (!ssl_ctx)
            die("SSL_CTX_new failed");
        /* Measuring the server's handshake cost: no verification work and no
         * session resumption on the client side. */
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
    }

    sessions = calloc(opt.concurrency, sizeof *sessions);
    free_slots = calloc(opt.concurrency, sizeof *free_slots);
    if (!sessions || !free_slots)
        die("out of memory for %u sessions", opt.concurrency);
    for (unsigned i = 0; i < opt.concurrency; i++) {
        unsigned slot = opt.concurrency - 1 - i;
        sessions[slot].slot = slot;
        sessions[slot].fd = -1;
        free_slots[n_free++] = slot;
    }

    loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop)
        die("no event loop");
    ev_now_update(loop);
    t_start = ev_now(loop);
    ev_timer_init(&deadline_timer, deadline_cb, opt.max_time, 0.0);
    ev_timer_start(loop, &deadline_timer);
    ev_timer duration_timer;
    ev_timer_init(&duration_timer, duration_cb, opt.duration, 0.0);
    if (opt.duration > 0)
        ev_timer_start(loop, &duration_timer);
    fill_slots();
    if (n_active > 0 || may_start())
        ev_run(loop, 0);
    else
        t_end = ev_now(loop);
    ev_timer_stop(loop, &duration_timer);
    report();
    if (ssl_ctx)
        SSL_CTX_free(ssl_ctx);
    free(sessions);
    free(free_slots);
    return st.errors && !st.completed ? 1 : 0;
}
