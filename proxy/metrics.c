/* Metrics registry, Prometheus text rendering and the HTTP endpoint; the
 * contract is in metrics.h. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/* ---- the registry ------------------------------------------------------------ */

struct counter_def {
    const char *name;
    const char *help;
    const char *labels[2];   /* label names; NULL when absent */
};

static const struct counter_def counter_defs[METRIC_COUNTER_COUNT] = {
    [METRIC_SESSIONS_TOTAL] = { "popgate_sessions_total", "POP3 sessions finished, by outcome.",
                                { "outcome", NULL } },
    [METRIC_LOGINS_TOTAL] = { "popgate_logins_total", "Login attempts, by result and reason.",
                              { "result", "reason" } },
    [METRIC_BYTES_RELAYED_TOTAL] = { "popgate_bytes_relayed_total",
                                     "Message bytes sent to POP3 clients (RETR and TOP).", { NULL, NULL } },
    [METRIC_RETR_TOTAL] = { "popgate_retr_total", "RETR commands answered with a message.", { NULL, NULL } },
    [METRIC_REDIS_ERRORS_TOTAL] = { "popgate_redis_errors_total",
                                    "Redis requests that failed: no connection, timeout or error reply.",
                                    { NULL, NULL } },
    [METRIC_CONNECTIONS_REFUSED_TOTAL] = { "popgate_connections_refused_total",
                                           "Client connections closed before a session started, by reason.",
                                           { "reason", NULL } },
    [METRIC_OAUTH_REAUTH_NEEDED] = { "popgate_oauth_reauth_needed",
                                     "Logins whose OAuth refresh the provider refused: the user must be "
                                     "authorised again (popgate-admin oauth authorize).", { NULL, NULL } },
    [METRIC_OAUTH_TOKEN_REQUESTS] = { "popgate_oauth_token_requests_total",
                                      "Requests to OAuth token endpoints at login, by grant and outcome.",
                                      { "grant", "outcome" } },
};

struct gauge_def {
    const char *name;
    const char *help;
};

static const struct gauge_def gauge_defs[METRIC_GAUGE_COUNT] = {
    [METRIC_SESSIONS_ACTIVE] = { "popgate_sessions_active", "POP3 sessions open now." },
};

/* Bucket bounds in microseconds, with the text of their le label, so the
 * rendering is exact and does not depend on how a double prints. */
struct bucket {
    uint64_t le_us;
    const char *le;
};

#define HISTOGRAM_BUCKETS_MAX 14

struct histogram_def {
    const char *name;
    const char *help;
    unsigned n_buckets;      /* <= HISTOGRAM_BUCKETS_MAX, +Inf not included */
    struct bucket buckets[HISTOGRAM_BUCKETS_MAX];
};

static const struct histogram_def histogram_defs[METRIC_HISTOGRAM_COUNT] = {
    /* Upstream IMAP round trips run from a millisecond on loopback to the
     * 60 s command timeout. */
    [METRIC_UPSTREAM_LATENCY] = {
        "popgate_upstream_latency_seconds", "Upstream IMAP command round trips.", 13,
        { { 5000, "0.005" }, { 10000, "0.01" }, { 25000, "0.025" }, { 50000, "0.05" },
          { 100000, "0.1" }, { 250000, "0.25" }, { 500000, "0.5" }, { 1000000, "1" },
          { 2500000, "2.5" }, { 5000000, "5" }, { 10000000, "10" }, { 30000000, "30" },
          { 60000000, "60" } } },
    /* Redis answers in well under a millisecond when healthy. */
    [METRIC_REDIS_LATENCY] = {
        "popgate_redis_latency_seconds", "Redis request round trips.", 11,
        { { 500, "0.0005" }, { 1000, "0.001" }, { 2500, "0.0025" }, { 5000, "0.005" },
          { 10000, "0.01" }, { 25000, "0.025" }, { 50000, "0.05" }, { 100000, "0.1" },
          { 250000, "0.25" }, { 500000, "0.5" }, { 1000000, "1" } } },
};

struct series {
    char values[2][METRICS_LABEL_MAX + 1];
    uint64_t value;
};

struct counter {
    unsigned n;
    struct series series[METRICS_SERIES_MAX];
};

struct histogram {
    uint64_t counts[HISTOGRAM_BUCKETS_MAX];   /* per bucket, not cumulative */
    uint64_t count;
    uint64_t sum_us;
};

static struct {
    struct counter counters[METRIC_COUNTER_COUNT];
    int64_t gauges[METRIC_GAUGE_COUNT];
    struct histogram histograms[METRIC_HISTOGRAM_COUNT];
    bool healthy;
    char reason[METRICS_REASON_MAX + 1];
} reg = { .healthy = true };

static const char other[] = "other";

void metrics_reset(void)
{
    memset(&reg, 0, sizeof reg);
    reg.healthy = true;
}

static bool label_value_ok(const char *v)
{
    size_t len = strlen(v);
    if (len > METRICS_LABEL_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == ':' || c == '/' || c == '-'))
            return false;
    }
    return true;
}

static const char *label_value(const char *v)
{
    if (v == NULL)
        return "";
    return label_value_ok(v) ? v : other;
}

static struct series *find_series(struct counter *c, const char *v1, const char *v2)
{
    for (unsigned i = 0; i < c->n; i++)
        if (strcmp(c->series[i].values[0], v1) == 0 && strcmp(c->series[i].values[1], v2) == 0)
            return &c->series[i];
    return NULL;
}

static struct series *add_series(struct counter *c, const char *v1, const char *v2)
{
    struct series *s = &c->series[c->n++];
    /* Both values passed label_value: at most METRICS_LABEL_MAX bytes. */
    snprintf(s->values[0], sizeof s->values[0], "%s", v1);
    snprintf(s->values[1], sizeof s->values[1], "%s", v2);
    s->value = 0;
    return s;
}

/* The series for these values, made if new; the "other" series once the
 * counter is full. Never NULL: the last slot is kept for "other". */
static struct series *series_for(enum metric_counter id, const char *l1, const char *l2)
{
    const struct counter_def *def = &counter_defs[id];
    struct counter *c = &reg.counters[id];
    /* A counter without labels has one series, series[0], always shown. */
    if (def->labels[0] == NULL)
        return &c->series[0];
    const char *v1 = label_value(l1);
    const char *v2 = def->labels[1] ? label_value(l2) : "";
    struct series *s = find_series(c, v1, v2);
    if (s)
        return s;
    if (c->n < METRICS_SERIES_MAX - 1)
        return add_series(c, v1, v2);
    v1 = other;
    v2 = def->labels[1] ? other : "";
    s = find_series(c, v1, v2);
    return s ? s : add_series(c, v1, v2);
}

void metrics_counter_declare(enum metric_counter id, const char *label1, const char *label2)
{
    if ((unsigned)id < METRIC_COUNTER_COUNT)
        (void)series_for(id, label1, label2);
}

void metrics_counter_add2(enum metric_counter id, const char *label1, const char *label2, uint64_t n)
{
    if ((unsigned)id < METRIC_COUNTER_COUNT)
        series_for(id, label1, label2)->value += n;
}

void metrics_counter_add(enum metric_counter id, const char *label_value_text, uint64_t n)
{
    metrics_counter_add2(id, label_value_text, NULL, n);
}

void metrics_gauge_set(enum metric_gauge id, int64_t value)
{
    if ((unsigned)id < METRIC_GAUGE_COUNT)
        reg.gauges[id] = value;
}

void metrics_gauge_add(enum metric_gauge id, int64_t delta)
{
    if ((unsigned)id < METRIC_GAUGE_COUNT)
        reg.gauges[id] += delta;
}

void metrics_observe(enum metric_histogram id, double seconds)
{
    if ((unsigned)id >= METRIC_HISTOGRAM_COUNT)
        return;
    /* NaN and negatives (a clock step) count as 0; anything beyond a day is
     * a day, which keeps the conversion defined and the sum from wrapping. */
    uint64_t us = 0;
    if (seconds > 86400.0)
        us = 86400ULL * 1000000ULL;
    else if (seconds > 0.0)
        us = (uint64_t)(seconds * 1e6 + 0.5);
    const struct histogram_def *def = &histogram_defs[id];
    struct histogram *h = &reg.histograms[id];
    unsigned b = 0;
    while (b < def->n_buckets && us > def->buckets[b].le_us)
        b++;
    if (b < def->n_buckets)
        h->counts[b]++;
    h->count++;
    h->sum_us += us;
}

void metrics_set_health(bool ok, const char *reason)
{
    reg.healthy = ok;
    reg.reason[0] = '\0';
    if (reason == NULL)
        return;
    size_t i = 0;
    for (; i < METRICS_REASON_MAX && reason[i] != '\0'; i++) {
        unsigned char c = (unsigned char)reason[i];
        reg.reason[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    reg.reason[i] = '\0';
}

/* ---- rendering ---------------------------------------------------------------- */

/* snprintf into a bounded buffer that keeps counting past its end, so one
 * pass both writes what fits and tells the full length. */
struct text {
    char *p;
    size_t cap;
    size_t len;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->len < t->cap ? t->cap - t->len : 0;
    int n = vsnprintf(room ? t->p + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

static void put_counter(struct text *t, enum metric_counter id)
{
    const struct counter_def *def = &counter_defs[id];
    const struct counter *c = &reg.counters[id];
    put(t, "# HELP %s %s\n# TYPE %s counter\n", def->name, def->help, def->name);
    if (def->labels[0] == NULL) {
        put(t, "%s %llu\n", def->name, (unsigned long long)c->series[0].value);
        return;
    }
    for (unsigned i = 0; i < c->n; i++) {
        const struct series *s = &c->series[i];
        if (def->labels[1] == NULL)
            put(t, "%s{%s=\"%s\"} %llu\n", def->name, def->labels[0], s->values[0],
                (unsigned long long)s->value);
        else
            put(t, "%s{%s=\"%s\",%s=\"%s\"} %llu\n", def->name, def->labels[0], s->values[0],
                def->labels[1], s->values[1], (unsigned long long)s->value);
    }
}

static void put_histogram(struct text *t, enum metric_histogram id)
{
    const struct histogram_def *def = &histogram_defs[id];
    const struct histogram *h = &reg.histograms[id];
    put(t, "# HELP %s %s\n# TYPE %s histogram\n", def->name, def->help, def->name);
    uint64_t cumulative = 0;
    for (unsigned b = 0; b < def->n_buckets; b++) {
        cumulative += h->counts[b];
        put(t, "%s_bucket{le=\"%s\"} %llu\n", def->name, def->buckets[b].le, (unsigned long long)cumulative);
    }
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n", def->name, (unsigned long long)h->count);
    put(t, "%s_sum %llu.%06llu\n", def->name, (unsigned long long)(h->sum_us / 1000000),
        (unsigned long long)(h->sum_us % 1000000));
    put(t, "%s_count %llu\n", def->name, (unsigned long long)h->count);
}

size_t metrics_render(char *out, size_t cap)
{
    struct text t = { out, cap, 0 };
    if (cap > 0)
        out[0] = '\0';
    for (unsigned i = 0; i < METRIC_GAUGE_COUNT; i++)
        put(&t, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauge_defs[i].name, gauge_defs[i].help,
            gauge_defs[i].name, gauge_defs[i].name, (long long)reg.gauges[i]);
    for (unsigned i = 0; i < METRIC_COUNTER_COUNT; i++)
        put_counter(&t, (enum metric_counter)i);
    for (unsigned i = 0; i < METRIC_HISTOGRAM_COUNT; i++)
        put_histogram(&t, (enum metric_histogram)i);
    return t.len;
}

/* ---- HTTP: request and response ------------------------------------------------ */

/* The end of the head: the empty line. NULL while it has not arrived. */
static const char *head_end(const char *req, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (req[i] != '\n')
            continue;
        if (req[i + 1] == '\n')
            return req + i + 2;
        if (req[i + 1] == '\r' && i + 2 < len && req[i + 2] == '\n')
            return req + i + 3;
    }
    return NULL;
}

static bool is_tchar(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

bool metrics_http_route(const char *req, size_t len, enum metrics_route *route)
{
    if (head_end(req, len) == NULL) {
        if (len < METRICS_REQUEST_MAX)
            return false;
        *route = METRICS_ROUTE_TOO_LARGE;
        return true;
    }
    /* Request line: METHOD SP TARGET SP HTTP/1.x, then CRLF or LF. */
    const char *eol = memchr(req, '\n', len);
    size_t line_len = (size_t)(eol - req);
    if (line_len > 0 && req[line_len - 1] == '\r')
        line_len--;
    const char *sp1 = memchr(req, ' ', line_len);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', line_len - (size_t)(sp1 + 1 - req)) : NULL;
    *route = METRICS_ROUTE_BAD_REQUEST;
    if (sp1 == NULL || sp2 == NULL || sp1 == req || sp2 == sp1 + 1)
        return true;
    for (const char *p = req; p < sp1; p++)
        if (!is_tchar(*p))
            return true;
    const char *target = sp1 + 1;
    size_t target_len = (size_t)(sp2 - target);
    const char *version = sp2 + 1;
    size_t version_len = line_len - (size_t)(version - req);
    if (version_len != 8 || memcmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' || version[7] > '9')
        return true;
    for (size_t i = 0; i < target_len; i++)
        if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f)
            return true;
    if (target[0] != '/')
        return true;
    if ((size_t)(sp1 - req) != 3 || memcmp(req, "GET", 3) != 0) {
        *route = METRICS_ROUTE_BAD_METHOD;
        return true;
    }
    const char *query = memchr(target, '?', target_len);
    size_t path_len = query ? (size_t)(query - target) : target_len;
    if (path_len == 8 && memcmp(target, "/metrics", 8) == 0)
        *route = METRICS_ROUTE_METRICS;
    else if (path_len == 7 && memcmp(target, "/health", 7) == 0)
        *route = METRICS_ROUTE_HEALTH;
    else
        *route = METRICS_ROUTE_NOT_FOUND;
    return true;
}

/* The longest status line and headers written below, with a 20-digit length. */
#define RESPONSE_HEAD_MAX 256

static char *respond(int status, const char *status_text, const char *content_type, const char *extra,
                     const char *body, size_t body_len, size_t *len)
{
    char head[RESPONSE_HEAD_MAX];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
                     status, status_text, content_type, body_len, extra);
    if (n < 0 || (size_t)n >= sizeof head)
        return NULL;
    char *r = malloc((size_t)n + body_len);
    if (!r)
        return NULL;
    memcpy(r, head, (size_t)n);
    memcpy(r + n, body, body_len);
    *len = (size_t)n + body_len;
    return r;
}

static char *plain(int status, const char *status_text, const char *extra, const char *body, size_t *len)
{
    return respond(status, status_text, "text/plain; charset=utf-8", extra, body, strlen(body), len);
}

char *metrics_http_response(enum metrics_route route, size_t *len)
{
    switch (route) {
    case METRICS_ROUTE_METRICS: {
        size_t need = metrics_render(NULL, 0);
        char *body = malloc(need + 1);
        if (!body)
            return NULL;
        metrics_render(body, need + 1);
        char *r = respond(200, "OK", "text/plain; version=0.0.4; charset=utf-8", "", body, need, len);
        free(body);
        return r;
    }
    case METRICS_ROUTE_HEALTH: {
        if (reg.healthy)
            return plain(200, "OK", "", "ok\n", len);
        char body[METRICS_REASON_MAX + 2];
        snprintf(body, sizeof body, "%s\n", reg.reason[0] ? reg.reason : "unhealthy");
        return plain(503, "Service Unavailable", "", body, len);
    }
    case METRICS_ROUTE_NOT_FOUND:
        return plain(404, "Not Found", "", "not found\n", len);
    case METRICS_ROUTE_BAD_METHOD:
        return plain(405, "Method Not Allowed", "Allow: GET\r\n", "method not allowed\n", len);
    case METRICS_ROUTE_TOO_LARGE:
        return plain(431, "Request Header Fields Too Large", "", "request too large\n", len);
    case METRICS_ROUTE_BAD_REQUEST:
        break;
    }
    return plain(400, "Bad Request", "", "bad request\n", len);
}

/* ---- HTTP server -------------------------------------------------------------------- */

#define ACCEPTS_PER_EVENT 16
#define LISTEN_BACKLOG 16

struct metrics_conn {
    bool used;
    int fd;
    ev_io io;
    ev_timer deadline;
    char req[METRICS_REQUEST_MAX];
    size_t req_len;
    char *resp;              /* owned; NULL until the request is routed */
    size_t resp_len;
    size_t resp_off;
};

/* Slots are static: a callback closing its own connection frees nothing
 * that the loop still reads. */
static struct {
    struct ev_loop *loop;
    int fd;
    ev_io accept_io;
    bool listening;
    unsigned port;
    double timeout;
    struct metrics_conn conns[METRICS_MAX_CONNECTIONS];
} srv = { .fd = -1, .timeout = METRICS_TIMEOUT };

static void conn_close(struct metrics_conn *c)
{
    if (!c->used)
        return;
    ev_io_stop(srv.loop, &c->io);
    ev_timer_stop(srv.loop, &c->deadline);
    close(c->fd);
    free(c->resp);
    c->resp = NULL;
    c->used = false;
}

/* Writes what the socket takes; closes once all is sent or on an error. */
static void conn_write(struct metrics_conn *c)
{
    while (c->resp_off < c->resp_len) {
        ssize_t n = send(c->fd, c->resp + c->resp_off, c->resp_len - c->resp_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c);
            return;
        }
        c->resp_off += (size_t)n;
    }
    conn_close(c);
}

static void on_conn_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    conn_write(w->data);
}

static void on_conn_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct metrics_conn *c = w->data;
    ssize_t n = recv(c->fd, c->req + c->req_len, sizeof c->req - c->req_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->req_len += (size_t)n;
    enum metrics_route route;
    if (!metrics_http_route(c->req, c->req_len, &route))
        return;
    c->resp = metrics_http_response(route, &c->resp_len);
    if (!c->resp) {
        conn_close(c);
        return;
    }
    c->resp_off = 0;
    ev_io_stop(loop, &c->io);
    ev_io_init(&c->io, on_conn_write, c->fd, EV_WRITE);
    c->io.data = c;
    ev_io_start(loop, &c->io);
    conn_write(c);
}

static void on_conn_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    conn_close(w->data);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct metrics_conn *c = NULL;
        for (unsigned k = 0; k < METRICS_MAX_CONNECTIONS && !c; k++)
            if (!srv.conns[k].used)
                c = &srv.conns[k];
        if (!c) {
            /* A scraper that opens more than this is broken or hostile:
             * closing at once keeps the backlog from filling up. */
            close(fd);
            continue;
        }
        c->used = true;
        c->fd = fd;
        c->req_len = 0;
        c->resp = NULL;
        c->resp_len = c->resp_off = 0;
        ev_io_init(&c->io, on_conn_read, fd, EV_READ);
        c->io.data = c;
        ev_io_start(loop, &c->io);
        ev_timer_init(&c->deadline, on_conn_deadline, srv.timeout, 0.);
        c->deadline.data = c;
        ev_timer_start(loop, &c->deadline);
    }
}

/* "ADDRESS:PORT" with an IPv6 address in brackets. */
static bool parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *sslen)
{
    char host[INET6_ADDRSTRLEN];
    const char *colon = strrchr(text, ':');
    if (!colon || colon[1] == '\0')
        return false;
    const char *h = text;
    size_t hlen = (size_t)(colon - text);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof host)
        return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    unsigned long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9' || p - colon > 5)
            return false;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        return false;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (h == text && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *sslen = sizeof *sin;
        return true;
    }
    if (h != text && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof *sin6;
        return true;
    }
    return false;
}

bool metrics_listen(struct ev_loop *loop, const char *addr, char *err, size_t errlen)
{
    if (srv.listening) {
        snprintf(err, errlen, "metrics: already listening");
        return false;
    }
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (!parse_addr(addr, &ss, &sslen)) {
        snprintf(err, errlen, "metrics: bad address \"%s\" (want IPV4:PORT or [IPV6]:PORT)", addr);
        return false;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "metrics: socket: %s", strerror(errno));
        return false;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_storage bound;
    socklen_t boundlen = sizeof bound;
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, LISTEN_BACKLOG) < 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &boundlen) < 0) {
        snprintf(err, errlen, "metrics: %s: %s", addr, strerror(errno));
        close(fd);
        return false;
    }
    srv.port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                : ((struct sockaddr_in6 *)&bound)->sin6_port);
    srv.loop = loop;
    srv.fd = fd;
    ev_io_init(&srv.accept_io, on_accept, fd, EV_READ);
    ev_io_start(loop, &srv.accept_io);
    srv.listening = true;
    log_event(LOG_LEVEL_INFO, NULL, "metrics-listening", "address", addr, "port", LOG_U64(srv.port), LOG_END);
    return true;
}

unsigned metrics_port(void)
{
    return srv.listening ? srv.port : 0;
}

void metrics_set_timeout(double seconds)
{
    srv.timeout = seconds;
}

void metrics_stop(void)
{
    if (!srv.listening)
        return;
    for (unsigned i = 0; i < METRICS_MAX_CONNECTIONS; i++)
        conn_close(&srv.conns[i]);
    ev_io_stop(srv.loop, &srv.accept_io);
    close(srv.fd);
    srv.fd = -1;
    srv.port = 0;
    srv.listening = false;
}
