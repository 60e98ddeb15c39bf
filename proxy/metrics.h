/* metrics: the process's counters, gauges and histograms, and the small HTTP
 * server that exposes them in the Prometheus text format (0.0.4) with a
 * health endpoint for load balancers.
 *
 *   GET /metrics  200, every metric below, names prefixed popgate_
 *   GET /health   200 "ok\n", or 503 "<reason>\n" after metrics_set_health(false, ...)
 *   other paths   404; other methods 405; a malformed request 400; a request
 *                 whose head passes METRICS_REQUEST_MAX bytes 431.
 * HTTP/1.0, one response per connection, then close.
 *
 * The registry is process-wide and single-threaded, like the libev loop it
 * lives on: every function here is called from the loop's thread only. The
 * update functions cost a few comparisons and never allocate, so sessions
 * call them on every event that counts.
 *
 * Labels stay bounded. Each counter has at most two label names, fixed in
 * the table in metrics.c, and at most METRICS_SERIES_MAX label value
 * combinations, made on first use (or declared at startup with
 * metrics_counter_declare so they show as 0 before anything happened). Once
 * a counter has METRICS_SERIES_MAX - 1 combinations, new ones are counted
 * under "other" (every label). A label value longer than METRICS_LABEL_MAX or
 * holding a byte outside [A-Za-z0-9_.:/-] is also counted as "other": label
 * values are codes chosen by the program, never text from a client, and this
 * keeps the output free of anything that would need escaping.
 *
 * The server never blocks: a non-blocking listener and sockets on the loop,
 * at most METRICS_MAX_CONNECTIONS at once (more are closed on accept), a
 * request head of at most METRICS_REQUEST_MAX bytes, and every connection
 * closed METRICS_TIMEOUT seconds after accept whatever its state. The
 * response is rendered once per request into a buffer owned by the
 * connection and freed with it.
 */
#ifndef POPGATE_METRICS_H
#define POPGATE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define METRICS_SERIES_MAX 24        /* label value combinations per counter, "other" included */
#define METRICS_LABEL_MAX 32         /* bytes of one label value */
#define METRICS_REASON_MAX 64        /* bytes of the /health reason kept */
#define METRICS_REQUEST_MAX 4096     /* bytes of one request head, request line included */
#define METRICS_MAX_CONNECTIONS 16
#define METRICS_TIMEOUT 5.0          /* seconds from accept to close, default */

enum metric_counter {
    METRIC_SESSIONS_TOTAL,           /* popgate_sessions_total{outcome} */
    METRIC_LOGINS_TOTAL,             /* popgate_logins_total{result,reason} */
    METRIC_BYTES_RELAYED_TOTAL,      /* popgate_bytes_relayed_total: message bytes sent to clients */
    METRIC_RETR_TOTAL,               /* popgate_retr_total */
    METRIC_REDIS_ERRORS_TOTAL,       /* popgate_redis_errors_total */
    METRIC_CONNECTIONS_REFUSED_TOTAL,/* popgate_connections_refused_total{reason} */
    METRIC_OAUTH_REAUTH_NEEDED,      /* popgate_oauth_reauth_needed: refreshes the provider refused */
    METRIC_OAUTH_TOKEN_REQUESTS,     /* popgate_oauth_token_requests_total{grant,outcome} */
    METRIC_COUNTER_COUNT
};

enum metric_gauge {
    METRIC_SESSIONS_ACTIVE,          /* popgate_sessions_active */
    METRIC_GAUGE_COUNT
};

enum metric_histogram {
    METRIC_UPSTREAM_LATENCY,         /* popgate_upstream_latency_seconds */
    METRIC_REDIS_LATENCY,            /* popgate_redis_latency_seconds */
    METRIC_HISTOGRAM_COUNT
};

/* Zero every metric, forget every label value, health ok. The registry
 * starts in this state; tests call it between cases. */
void metrics_reset(void);

/* Make the series (label1, label2) exist with value 0. Label values the
 * counter does not have are ignored (pass NULL). */
void metrics_counter_declare(enum metric_counter id, const char *label1, const char *label2);

/* Add n to the series of the counter's label value(s). For a counter with no
 * labels the values are ignored; a missing value (NULL) is "". */
void metrics_counter_add(enum metric_counter id, const char *label_value, uint64_t n);
void metrics_counter_add2(enum metric_counter id, const char *label1, const char *label2, uint64_t n);

void metrics_gauge_set(enum metric_gauge id, int64_t value);
void metrics_gauge_add(enum metric_gauge id, int64_t delta);

/* One observation in seconds; negative (a clock step) counts as 0. Kept with
 * microsecond resolution, so the _sum prints exactly. */
void metrics_observe(enum metric_histogram id, double seconds);

/* What /health answers. reason (may be NULL when ok) is copied, at most
 * METRICS_REASON_MAX bytes, bytes outside printable ASCII replaced by '?'. */
void metrics_set_health(bool ok, const char *reason);

/* The exposition text, as snprintf would write it: at most cap - 1 bytes and
 * a NUL into out (out may be NULL when cap is 0); returns the full length. */
size_t metrics_render(char *out, size_t cap);

/* ---- HTTP, pure parts (tested without sockets) ---------------------------- */

enum metrics_route {
    METRICS_ROUTE_METRICS,
    METRICS_ROUTE_HEALTH,
    METRICS_ROUTE_NOT_FOUND,         /* 404 */
    METRICS_ROUTE_BAD_METHOD,        /* 405: a method other than GET */
    METRICS_ROUTE_BAD_REQUEST,       /* 400 */
    METRICS_ROUTE_TOO_LARGE,         /* 431: no end of head within METRICS_REQUEST_MAX bytes */
};

/* The request head received so far (len bytes). False while it is not
 * complete: no empty line yet (CRLF CRLF or LF LF) and fewer than
 * METRICS_REQUEST_MAX bytes. True with *route set once it can be answered.
 * The query string is ignored ("/metrics?x" is /metrics). */
bool metrics_http_route(const char *req, size_t len, enum metrics_route *route);

/* The whole response for a route: status line, Content-Type, Content-Length,
 * Connection: close, body. Reads the registry and the health for /metrics and
 * /health. Returns a malloc'd buffer the caller frees, *len its size; NULL if
 * out of memory. */
char *metrics_http_response(enum metrics_route route, size_t *len);

/* ---- HTTP server on the loop ---------------------------------------------- */

/* Listen on a numeric "ADDRESS:PORT" ("127.0.0.1:9110", "[::1]:9110"; port 0
 * picks a free one, see metrics_port). No name lookups. False with a message
 * in err if the text is bad, the socket cannot be bound, or the server is
 * already listening. */
bool metrics_listen(struct ev_loop *loop, const char *addr, char *err, size_t errlen);

/* The port bound by metrics_listen, 0 when not listening. */
unsigned metrics_port(void);

/* Seconds from accept to close for connections accepted from now on. */
void metrics_set_timeout(double seconds);

/* Stop listening and close every open connection. Idempotent. The registry
 * keeps its values. */
void metrics_stop(void);

#endif
