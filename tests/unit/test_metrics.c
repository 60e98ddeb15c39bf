/* Unit tests for proxy/metrics: the exact Prometheus text for a known set of
 * updates, bounded labels, histogram buckets, health, HTTP request routing and
 * responses, and the server itself on a loopback port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics.h"

static int reset(void **state)
{
    (void)state;
    metrics_reset();
    return 0;
}

static char *render(void)
{
    size_t n = metrics_render(NULL, 0);
    char *text = malloc(n + 1);
    assert_non_null(text);
    assert_int_equal(metrics_render(text, n + 1), n);
    assert_int_equal(strlen(text), n);
    return text;
}

/* The lines of the rendering that start with prefix, joined. */
static char *lines_of(const char *prefix)
{
    char *text = render();
    size_t cap = strlen(text) + 1;
    char *out = calloc(1, cap);
    assert_non_null(out);
    size_t plen = strlen(prefix);
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (strncmp(line, prefix, plen) == 0)
            strncat(out, line, len);
        line += len;
    }
    free(text);
    return out;
}

static void assert_lines(const char *prefix, const char *want)
{
    char *got = lines_of(prefix);
    assert_string_equal(got, want);
    free(got);
}

/* ---- rendering -------------------------------------------------------------------- */

static const char expected_text[] =
    "# HELP popgate_sessions_active POP3 sessions open now.\n"
    "# TYPE popgate_sessions_active gauge\n"
    "popgate_sessions_active 2\n"
    "# HELP popgate_sessions_total POP3 sessions finished, by outcome.\n"
    "# TYPE popgate_sessions_total counter\n"
    "popgate_sessions_total{outcome=\"quit\"} 3\n"
    "popgate_sessions_total{outcome=\"timeout\"} 0\n"
    "popgate_sessions_total{outcome=\"client_closed\"} 1\n"
    "# HELP popgate_logins_total Login attempts, by result and reason.\n"
    "# TYPE popgate_logins_total counter\n"
    "popgate_logins_total{result=\"ok\",reason=\"\"} 4\n"
    "popgate_logins_total{result=\"fail\",reason=\"auth\"} 2\n"
    "popgate_logins_total{result=\"fail\",reason=\"in-use\"} 1\n"
    "# HELP popgate_bytes_relayed_total Message bytes sent to POP3 clients (RETR and TOP).\n"
    "# TYPE popgate_bytes_relayed_total counter\n"
    "popgate_bytes_relayed_total 123456789012\n"
    "# HELP popgate_retr_total RETR commands answered with a message.\n"
    "# TYPE popgate_retr_total counter\n"
    "popgate_retr_total 7\n"
    "# HELP popgate_redis_errors_total Redis requests that failed: no connection, timeout or error reply.\n"
    "# TYPE popgate_redis_errors_total counter\n"
    "popgate_redis_errors_total 0\n"
    "# HELP popgate_connections_refused_total Client connections closed before a session started, by reason.\n"
    "# TYPE popgate_connections_refused_total counter\n"
    "# HELP popgate_oauth_reauth_needed Logins whose OAuth refresh the provider refused: the user must be "
    "authorised again (popgate-admin oauth authorize).\n"
    "# TYPE popgate_oauth_reauth_needed counter\n"
    "popgate_oauth_reauth_needed 0\n"
    "# HELP popgate_oauth_token_requests_total Requests to OAuth token endpoints at login, by grant and outcome.\n"
    "# TYPE popgate_oauth_token_requests_total counter\n"
    "# HELP popgate_upstream_latency_seconds Upstream IMAP command round trips.\n"
    "# TYPE popgate_upstream_latency_seconds histogram\n"
    "popgate_upstream_latency_seconds_bucket{le=\"0.005\"} 1\n"
    "popgate_upstream_latency_seconds_bucket{le=\"0.01\"} 1\n"
    "popgate_upstream_latency_seconds_bucket{le=\"0.025\"} 1\n"
    "popgate_upstream_latency_seconds_bucket{le=\"0.05\"} 1\n"
    "popgate_upstream_latency_seconds_bucket{le=\"0.1\"} 1\n"
    "popgate_upstream_latency_seconds_bucket{le=\"0.25\"} 2\n"
    "popgate_upstream_latency_seconds_bucket{le=\"0.5\"} 2\n"
    "popgate_upstream_latency_seconds_bucket{le=\"1\"} 2\n"
    "popgate_upstream_latency_seconds_bucket{le=\"2.5\"} 3\n"
    "popgate_upstream_latency_seconds_bucket{le=\"5\"} 3\n"
    "popgate_upstream_latency_seconds_bucket{le=\"10\"} 3\n"
    "popgate_upstream_latency_seconds_bucket{le=\"30\"} 3\n"
    "popgate_upstream_latency_seconds_bucket{le=\"60\"} 3\n"
    "popgate_upstream_latency_seconds_bucket{le=\"+Inf\"} 4\n"
    "popgate_upstream_latency_seconds_sum 122.750000\n"
    "popgate_upstream_latency_seconds_count 4\n"
    "# HELP popgate_redis_latency_seconds Redis request round trips.\n"
    "# TYPE popgate_redis_latency_seconds histogram\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.0005\"} 1\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.001\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.0025\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.005\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.01\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.025\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.05\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.1\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.25\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"0.5\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"1\"} 2\n"
    "popgate_redis_latency_seconds_bucket{le=\"+Inf\"} 2\n"
    "popgate_redis_latency_seconds_sum 0.001250\n"
    "popgate_redis_latency_seconds_count 2\n";

static void apply_known_updates(void)
{
    metrics_counter_declare(METRIC_SESSIONS_TOTAL, "quit", NULL);
    metrics_counter_declare(METRIC_SESSIONS_TOTAL, "timeout", NULL);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "quit", 2);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "client_closed", 1);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "quit", 1);
    metrics_counter_add2(METRIC_LOGINS_TOTAL, "ok", NULL, 4);
    metrics_counter_add2(METRIC_LOGINS_TOTAL, "fail", "auth", 1);
    metrics_counter_add2(METRIC_LOGINS_TOTAL, "fail", "in-use", 1);
    metrics_counter_add2(METRIC_LOGINS_TOTAL, "fail", "auth", 1);
    metrics_counter_add(METRIC_BYTES_RELAYED_TOTAL, NULL, 123456789000ULL);
    metrics_counter_add(METRIC_BYTES_RELAYED_TOTAL, "ignored", 12);
    for (int i = 0; i < 7; i++)
        metrics_counter_add(METRIC_RETR_TOTAL, NULL, 1);
    metrics_gauge_add(METRIC_SESSIONS_ACTIVE, 3);
    metrics_gauge_add(METRIC_SESSIONS_ACTIVE, -1);
    metrics_observe(METRIC_UPSTREAM_LATENCY, 0.005);   /* on a bound: in that bucket */
    metrics_observe(METRIC_UPSTREAM_LATENCY, 0.245);
    metrics_observe(METRIC_UPSTREAM_LATENCY, 2.5);
    metrics_observe(METRIC_UPSTREAM_LATENCY, 120.0);   /* past every bound: +Inf only */
    metrics_observe(METRIC_REDIS_LATENCY, 0.0005);
    metrics_observe(METRIC_REDIS_LATENCY, 0.00075);
}

static void test_render_exact(void **state)
{
    (void)state;
    apply_known_updates();
    char *text = render();
    assert_string_equal(text, expected_text);
    free(text);
}

static void test_render_fresh(void **state)
{
    (void)state;
    /* Every metric is there before anything happened, with 0 where it has
     * no labels, and only HELP/TYPE where its label values are not known yet. */
    assert_lines("popgate_sessions", "popgate_sessions_active 0\n");
    assert_lines("popgate_logins", "");
    assert_lines("popgate_connections", "");
    assert_lines("popgate_bytes_relayed_total", "popgate_bytes_relayed_total 0\n");
    assert_lines("popgate_retr_total", "popgate_retr_total 0\n");
    assert_lines("popgate_redis_errors_total", "popgate_redis_errors_total 0\n");
    char *text = render();
    assert_non_null(strstr(text, "# TYPE popgate_logins_total counter\n# HELP popgate_bytes"));
    assert_non_null(strstr(text, "popgate_upstream_latency_seconds_bucket{le=\"+Inf\"} 0\n"
                                 "popgate_upstream_latency_seconds_sum 0.000000\n"
                                 "popgate_upstream_latency_seconds_count 0\n"));
    free(text);
    /* Reset forgets values and label values. */
    apply_known_updates();
    metrics_reset();
    char *again = render();
    assert_null(strstr(again, "quit"));
    assert_non_null(strstr(again, "popgate_retr_total 0\n"));
    free(again);
}

static void test_render_truncates_like_snprintf(void **state)
{
    (void)state;
    apply_known_updates();
    size_t full = metrics_render(NULL, 0);
    assert_int_equal(full, strlen(expected_text));
    char small[100];
    memset(small, 'Z', sizeof small);
    assert_int_equal(metrics_render(small, sizeof small), full);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, expected_text, sizeof small - 1);
    char one[1] = { 'Z' };
    assert_int_equal(metrics_render(one, 1), full);
    assert_int_equal(one[0], '\0');
}

static void test_gauge_set(void **state)
{
    (void)state;
    metrics_gauge_set(METRIC_SESSIONS_ACTIVE, 42);
    assert_lines("popgate_sessions_active", "popgate_sessions_active 42\n");
    metrics_gauge_add(METRIC_SESSIONS_ACTIVE, -43);
    assert_lines("popgate_sessions_active", "popgate_sessions_active -1\n");
}

/* ---- labels -------------------------------------------------------------------------- */

static void test_labels_bounded(void **state)
{
    (void)state;
    char name[16];
    /* METRICS_SERIES_MAX - 1 distinct values get their own series... */
    for (int i = 0; i < METRICS_SERIES_MAX - 1; i++) {
        snprintf(name, sizeof name, "r%02d", i);
        metrics_counter_add(METRIC_CONNECTIONS_REFUSED_TOTAL, name, 1);
    }
    /* ...then new ones go to "other", old ones keep counting. */
    metrics_counter_add(METRIC_CONNECTIONS_REFUSED_TOTAL, "new1", 1);
    metrics_counter_add(METRIC_CONNECTIONS_REFUSED_TOTAL, "new2", 2);
    metrics_counter_add(METRIC_CONNECTIONS_REFUSED_TOTAL, "r00", 1);
    char *lines = lines_of("popgate_connections_refused_total{");
    size_t count = 0;
    for (const char *p = lines; (p = strchr(p, '\n')) != NULL; p++)
        count++;
    assert_int_equal(count, METRICS_SERIES_MAX);
    assert_non_null(strstr(lines, "popgate_connections_refused_total{reason=\"r00\"} 2\n"));
    assert_non_null(strstr(lines, "popgate_connections_refused_total{reason=\"other\"} 3\n"));
    assert_null(strstr(lines, "new1"));
    free(lines);

    /* Two labels: both become "other" once full. */
    for (int i = 0; i < METRICS_SERIES_MAX + 5; i++) {
        snprintf(name, sizeof name, "x%02d", i);
        metrics_counter_add2(METRIC_LOGINS_TOTAL, "fail", name, 1);
    }
    assert_lines("popgate_logins_total{result=\"other\"",
                 "popgate_logins_total{result=\"other\",reason=\"other\"} 6\n");
}

static void test_label_values_checked(void **state)
{
    (void)state;
    char long_value[METRICS_LABEL_MAX + 2];
    memset(long_value, 'a', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    metrics_counter_add(METRIC_SESSIONS_TOTAL, long_value, 1);          /* 33 bytes */
    long_value[METRICS_LABEL_MAX] = '\0';
    metrics_counter_add(METRIC_SESSIONS_TOTAL, long_value, 1);          /* 32 bytes: kept */
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "a\"b", 1);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "line\nbreak", 1);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "back\\slash", 1);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "sp ace", 1);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "\xc3\xa9", 1);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "Ok.1:2/3-4_5", 1);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, "", 1);
    metrics_counter_add(METRIC_SESSIONS_TOTAL, NULL, 1);
    assert_lines("popgate_sessions_total{",
                 "popgate_sessions_total{outcome=\"other\"} 6\n"
                 "popgate_sessions_total{outcome=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"} 1\n"
                 "popgate_sessions_total{outcome=\"Ok.1:2/3-4_5\"} 1\n"
                 "popgate_sessions_total{outcome=\"\"} 2\n");
    /* Out-of-range ids are ignored. */
    metrics_counter_add((enum metric_counter)METRIC_COUNTER_COUNT, "x", 1);
    metrics_gauge_set((enum metric_gauge)METRIC_GAUGE_COUNT, 1);
    metrics_observe((enum metric_histogram)METRIC_HISTOGRAM_COUNT, 1.0);
}

/* ---- histograms -------------------------------------------------------------------- */

static void test_histogram_edges(void **state)
{
    (void)state;
    metrics_observe(METRIC_REDIS_LATENCY, -3.0);        /* clock step: 0 */
    metrics_observe(METRIC_REDIS_LATENCY, 0.0);
    metrics_observe(METRIC_REDIS_LATENCY, 0.0005004);   /* rounds to 500 us: on the bound */
    metrics_observe(METRIC_REDIS_LATENCY, 0.0005006);   /* rounds to 501 us: next bucket */
    metrics_observe(METRIC_REDIS_LATENCY, 1.0);
    metrics_observe(METRIC_REDIS_LATENCY, 1.000001);
    metrics_observe(METRIC_REDIS_LATENCY, NAN);         /* NaN: 0 */
    metrics_observe(METRIC_REDIS_LATENCY, 1e300);       /* capped at a day */
    assert_lines("popgate_redis_latency_seconds_",
                 "popgate_redis_latency_seconds_bucket{le=\"0.0005\"} 4\n"
                 "popgate_redis_latency_seconds_bucket{le=\"0.001\"} 5\n"
                 "popgate_redis_latency_seconds_bucket{le=\"0.0025\"} 5\n"
                 "popgate_redis_latency_seconds_bucket{le=\"0.005\"} 5\n"
                 "popgate_redis_latency_seconds_bucket{le=\"0.01\"} 5\n"
                 "popgate_redis_latency_seconds_bucket{le=\"0.025\"} 5\n"
                 "popgate_redis_latency_seconds_bucket{le=\"0.05\"} 5\n"
                 "popgate_redis_latency_seconds_bucket{le=\"0.1\"} 5\n"
                 "popgate_redis_latency_seconds_bucket{le=\"0.25\"} 5\n"
                 "popgate_redis_latency_seconds_bucket{le=\"0.5\"} 5\n"
                 "popgate_redis_latency_seconds_bucket{le=\"1\"} 6\n"
                 "popgate_redis_latency_seconds_bucket{le=\"+Inf\"} 8\n"
                 "popgate_redis_latency_seconds_sum 86402.001002\n"
                 "popgate_redis_latency_seconds_count 8\n");
}

/* ---- HTTP routing ------------------------------------------------------------------------ */

static enum metrics_route route_of(const char *req)
{
    enum metrics_route r = (enum metrics_route)99;
    if (!metrics_http_route(req, strlen(req), &r))
        fail_msg("request not complete: \"%s\"", req);
    return r;
}

static void test_http_route(void **state)
{
    (void)state;
    assert_int_equal(route_of("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9110\r\nAccept: */*\r\n\r\n"),
                     METRICS_ROUTE_METRICS);
    assert_int_equal(route_of("GET /metrics HTTP/1.0\r\n\r\n"), METRICS_ROUTE_METRICS);
    assert_int_equal(route_of("GET /metrics HTTP/1.0\n\n"), METRICS_ROUTE_METRICS);
    assert_int_equal(route_of("GET /metrics?name[]=x HTTP/1.1\r\n\r\n"), METRICS_ROUTE_METRICS);
    assert_int_equal(route_of("GET /health HTTP/1.0\r\n\r\n"), METRICS_ROUTE_HEALTH);
    assert_int_equal(route_of("GET /health? HTTP/1.0\r\n\r\n"), METRICS_ROUTE_HEALTH);
    /* Other paths, and near misses. */
    assert_int_equal(route_of("GET / HTTP/1.0\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    assert_int_equal(route_of("GET /metrics/ HTTP/1.0\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    assert_int_equal(route_of("GET /metricsx HTTP/1.0\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    assert_int_equal(route_of("GET /Metrics HTTP/1.0\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    assert_int_equal(route_of("GET /healthz HTTP/1.0\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    assert_int_equal(route_of("GET /favicon.ico HTTP/1.1\r\n\r\n"), METRICS_ROUTE_NOT_FOUND);
    /* Methods. */
    assert_int_equal(route_of("POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n"), METRICS_ROUTE_BAD_METHOD);
    assert_int_equal(route_of("HEAD /metrics HTTP/1.0\r\n\r\n"), METRICS_ROUTE_BAD_METHOD);
    assert_int_equal(route_of("get /metrics HTTP/1.0\r\n\r\n"), METRICS_ROUTE_BAD_METHOD);
    assert_int_equal(route_of("GETS /metrics HTTP/1.0\r\n\r\n"), METRICS_ROUTE_BAD_METHOD);
    /* Malformed request lines. */
    const char *bad[] = {
        "GET /metrics\r\n\r\n",                 /* HTTP/0.9 */
        "GET  /metrics HTTP/1.0\r\n\r\n",
        "GET /metrics  HTTP/1.0\r\n\r\n",
        "GET /metrics HTTP/1.0 \r\n\r\n",
        " GET /metrics HTTP/1.0\r\n\r\n",
        "GET metrics HTTP/1.0\r\n\r\n",
        "GET http://x/metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/2.0\r\n\r\n",
        "GET /metrics HTTP/1.x\r\n\r\n",
        "GET /metrics HTTP/1.10\r\n\r\n",
        "GET /metrics http/1.0\r\n\r\n",
        "GET /met\x01rics HTTP/1.0\r\n\r\n",
        "GET /m\x80 HTTP/1.0\r\n\r\n",
        "G(T /metrics HTTP/1.0\r\n\r\n",
        "\r\n\r\n",
        "\n\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (route_of(bad[i]) != METRICS_ROUTE_BAD_REQUEST)
            fail_msg("not refused as bad: \"%s\"", bad[i]);
    /* A NUL in the request line. */
    static const char nul[] = "GET /met\0rics HTTP/1.0\r\n\r\n";
    enum metrics_route r;
    assert_true(metrics_http_route(nul, sizeof nul - 1, &r));
    assert_int_equal(r, METRICS_ROUTE_BAD_REQUEST);
}

static void test_http_route_incomplete_and_bounded(void **state)
{
    (void)state;
    enum metrics_route r = (enum metrics_route)99;
    const char *partial[] = { "", "G", "GET /metrics HTTP/1.0", "GET /metrics HTTP/1.0\r\n",
                              "GET /metrics HTTP/1.0\r\nHost: x\r\n", "GET /metrics HTTP/1.0\r\n\r" };
    for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++)
        assert_false(metrics_http_route(partial[i], strlen(partial[i]), &r));
    assert_int_equal(r, 99);

    /* Headers that never end: undecided up to the bound, refused at it. */
    char *big = malloc(METRICS_REQUEST_MAX);
    assert_non_null(big);
    memcpy(big, "GET /metrics HTTP/1.0\r\n", 23);
    for (size_t i = 23; i < METRICS_REQUEST_MAX; i++)
        big[i] = (i % 40 == 39) ? '\n' : 'h';
    big[METRICS_REQUEST_MAX - 2] = 'h';
    assert_false(metrics_http_route(big, METRICS_REQUEST_MAX - 1, &r));
    assert_true(metrics_http_route(big, METRICS_REQUEST_MAX, &r));
    assert_int_equal(r, METRICS_ROUTE_TOO_LARGE);
    /* Ending exactly at the bound is still a request. */
    memcpy(big + METRICS_REQUEST_MAX - 4, "\r\n\r\n", 4);
    assert_true(metrics_http_route(big, METRICS_REQUEST_MAX, &r));
    assert_int_equal(r, METRICS_ROUTE_METRICS);
    free(big);
}

static void assert_response(enum metrics_route route, const char *want)
{
    size_t len = 0;
    char *resp = metrics_http_response(route, &len);
    assert_non_null(resp);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(resp, want, len);
    free(resp);
}

static void test_http_responses(void **state)
{
    (void)state;
    assert_response(METRICS_ROUTE_HEALTH, "HTTP/1.0 200 OK\r\n"
                                          "Content-Type: text/plain; charset=utf-8\r\n"
                                          "Content-Length: 3\r\n"
                                          "Connection: close\r\n\r\n"
                                          "ok\n");
    assert_response(METRICS_ROUTE_NOT_FOUND, "HTTP/1.0 404 Not Found\r\n"
                                             "Content-Type: text/plain; charset=utf-8\r\n"
                                             "Content-Length: 10\r\n"
                                             "Connection: close\r\n\r\n"
                                             "not found\n");
    assert_response(METRICS_ROUTE_BAD_METHOD, "HTTP/1.0 405 Method Not Allowed\r\n"
                                              "Content-Type: text/plain; charset=utf-8\r\n"
                                              "Content-Length: 19\r\n"
                                              "Allow: GET\r\n"
                                              "Connection: close\r\n\r\n"
                                              "method not allowed\n");
    assert_response(METRICS_ROUTE_BAD_REQUEST, "HTTP/1.0 400 Bad Request\r\n"
                                               "Content-Type: text/plain; charset=utf-8\r\n"
                                               "Content-Length: 12\r\n"
                                               "Connection: close\r\n\r\n"
                                               "bad request\n");
    assert_response(METRICS_ROUTE_TOO_LARGE, "HTTP/1.0 431 Request Header Fields Too Large\r\n"
                                             "Content-Type: text/plain; charset=utf-8\r\n"
                                             "Content-Length: 18\r\n"
                                             "Connection: close\r\n\r\n"
                                             "request too large\n");

    apply_known_updates();
    size_t len = 0;
    char *resp = metrics_http_response(METRICS_ROUTE_METRICS, &len);
    assert_non_null(resp);
    char head[256];
    snprintf(head, sizeof head, "HTTP/1.0 200 OK\r\n"
                                "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                                "Content-Length: %zu\r\n"
                                "Connection: close\r\n\r\n", strlen(expected_text));
    assert_int_equal(len, strlen(head) + strlen(expected_text));
    assert_memory_equal(resp, head, strlen(head));
    assert_memory_equal(resp + strlen(head), expected_text, strlen(expected_text));
    free(resp);
}

static void test_health(void **state)
{
    (void)state;
    metrics_set_health(false, "draining");
    assert_response(METRICS_ROUTE_HEALTH, "HTTP/1.0 503 Service Unavailable\r\n"
                                          "Content-Type: text/plain; charset=utf-8\r\n"
                                          "Content-Length: 9\r\n"
                                          "Connection: close\r\n\r\n"
                                          "draining\n");
    metrics_set_health(false, NULL);
    assert_response(METRICS_ROUTE_HEALTH, "HTTP/1.0 503 Service Unavailable\r\n"
                                          "Content-Type: text/plain; charset=utf-8\r\n"
                                          "Content-Length: 10\r\n"
                                          "Connection: close\r\n\r\n"
                                          "unhealthy\n");
    /* The reason is cut to its bound and cannot break the response. */
    char reason[200];
    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    reason[3] = '\r';
    reason[4] = '\n';
    metrics_set_health(false, reason);
    size_t len = 0;
    char *resp = metrics_http_response(METRICS_ROUTE_HEALTH, &len);
    assert_non_null(resp);
    char want[METRICS_REASON_MAX + 2];
    memset(want, 'r', METRICS_REASON_MAX);
    want[3] = want[4] = '?';
    want[METRICS_REASON_MAX] = '\n';
    want[METRICS_REASON_MAX + 1] = '\0';
    assert_true(len > strlen(want));
    assert_memory_equal(resp + len - strlen(want), want, strlen(want));
    assert_non_null(strstr(resp, "Content-Length: 65\r\n"));
    free(resp);
    metrics_set_health(true, "ignored");
    assert_response(METRICS_ROUTE_HEALTH, "HTTP/1.0 200 OK\r\n"
                                          "Content-Type: text/plain; charset=utf-8\r\n"
                                          "Content-Length: 3\r\n"
                                          "Connection: close\r\n\r\n"
                                          "ok\n");
}

/* ---- the server on loopback -------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_port(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Runs the loop until the server closes fd's connection or `seconds` pass;
 * returns what arrived (NUL-terminated, malloc'd) and whether it closed. */
static char *read_until_closed(struct ev_loop *loop, int fd, double seconds, bool *closed)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    *closed = false;
    double until = now() + seconds;
    while (now() < until) {
        ev_run(loop, EVRUN_NOWAIT);
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            *closed = true;
            break;
        }
        if (n > 0) {
            len += (size_t)n;
            assert_true(len < cap);
            continue;
        }
        usleep(1000);
    }
    buf[len] = '\0';
    return buf;
}

static char *http_get(struct ev_loop *loop, unsigned port, const char *request)
{
    int fd = connect_port(port);
    assert_int_equal(send(fd, request, strlen(request), 0), (ssize_t)strlen(request));
    bool closed;
    char *resp = read_until_closed(loop, fd, 5.0, &closed);
    assert_true(closed);
    close(fd);
    return resp;
}

static void test_server(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    char err[256];
    assert_true(metrics_listen(loop, "127.0.0.1:0", err, sizeof err));
    unsigned port = metrics_port();
    assert_true(port > 0);
    assert_false(metrics_listen(loop, "127.0.0.1:0", err, sizeof err));
    assert_non_null(strstr(err, "already"));

    apply_known_updates();
    char *resp = http_get(loop, port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_non_null(strstr(resp, "HTTP/1.0 200 OK\r\n"));
    const char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, expected_text);
    free(resp);

    metrics_set_health(false, "redis down");
    resp = http_get(loop, port, "GET /health HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(resp, "HTTP/1.0 503 "));
    assert_non_null(strstr(resp, "\r\n\r\nredis down\n"));
    free(resp);

    resp = http_get(loop, port, "GET /nope HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(resp, "HTTP/1.0 404 "));
    free(resp);

    /* A request sent one byte at a time is read to its end. */
    int fd = connect_port(port);
    const char *slow = "GET /health HTTP/1.0\r\n\r\n";
    for (const char *p = slow; *p; p++) {
        assert_int_equal(send(fd, p, 1, 0), 1);
        ev_run(loop, EVRUN_NOWAIT);
    }
    bool closed;
    resp = read_until_closed(loop, fd, 5.0, &closed);
    assert_true(closed);
    assert_non_null(strstr(resp, "HTTP/1.0 503 "));
    free(resp);
    close(fd);

    /* A head that never ends is refused at the bound. */
    fd = connect_port(port);
    char junk[METRICS_REQUEST_MAX];
    memset(junk, 'h', sizeof junk);
    memcpy(junk, "GET /metrics HTTP/1.0\r\nX: ", 26);
    assert_int_equal(send(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
    resp = read_until_closed(loop, fd, 5.0, &closed);
    assert_true(closed);
    assert_non_null(strstr(resp, "HTTP/1.0 431 "));
    free(resp);
    close(fd);

    metrics_stop();
    metrics_stop();
    assert_int_equal(metrics_port(), 0);
    ev_loop_destroy(loop);
}

static void test_server_limits(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    char err[256];
    metrics_set_timeout(0.3);
    assert_true(metrics_listen(loop, "127.0.0.1:0", err, sizeof err));
    unsigned port = metrics_port();

    /* METRICS_MAX_CONNECTIONS idle connections take every slot... */
    int idle[METRICS_MAX_CONNECTIONS];
    for (int i = 0; i < METRICS_MAX_CONNECTIONS; i++)
        idle[i] = connect_port(port);
    for (int i = 0; i < 20; i++)
        ev_run(loop, EVRUN_NOWAIT);
    /* ...so one more is closed without an answer, */
    int extra = connect_port(port);
    bool closed;
    char *resp = read_until_closed(loop, extra, 0.2, &closed);
    assert_true(closed);
    assert_string_equal(resp, "");
    free(resp);
    close(extra);
    /* and the idle ones are closed at the deadline, unanswered. */
    for (int i = 0; i < METRICS_MAX_CONNECTIONS; i++) {
        resp = read_until_closed(loop, idle[i], 3.0, &closed);
        assert_true(closed);
        assert_string_equal(resp, "");
        free(resp);
        close(idle[i]);
    }
    /* The slots are free again. */
    resp = http_get(loop, port, "GET /health HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(resp, "HTTP/1.0 200 OK\r\n"));
    free(resp);

    /* metrics_stop closes open connections too. */
    int open_fd = connect_port(port);
    ev_run(loop, EVRUN_NOWAIT);
    metrics_stop();
    resp = read_until_closed(loop, open_fd, 1.0, &closed);
    assert_true(closed);
    free(resp);
    close(open_fd);
    metrics_set_timeout(METRICS_TIMEOUT);
    ev_loop_destroy(loop);
}

static void test_listen_addresses(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256];
    const char *bad[] = { "", "127.0.0.1", "127.0.0.1:", ":9110", "localhost:9110", "::1:9110",
                          "[127.0.0.1]:9110", "127.0.0.1:65536", "127.0.0.1:123456", "127.0.0.1:9a",
                          "[::1]", "[::1]:-1", "127.0.0.1:+1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (metrics_listen(loop, bad[i], err, sizeof err)) {
            metrics_stop();
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_non_null(strstr(err, "bad address"));
    }
    /* IPv6 in brackets, where this host has ::1. */
    if (metrics_listen(loop, "[::1]:0", err, sizeof err)) {
        assert_true(metrics_port() > 0);
        metrics_stop();
    } else {
        assert_null(strstr(err, "bad address"));
    }
    /* An address this host does not have fails at bind, with the reason. */
    assert_false(metrics_listen(loop, "192.0.2.1:0", err, sizeof err));
    assert_non_null(strstr(err, "192.0.2.1:0"));
    assert_int_equal(metrics_port(), 0);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_render_exact, reset),
        cmocka_unit_test_setup(test_render_fresh, reset),
        cmocka_unit_test_setup(test_render_truncates_like_snprintf, reset),
        cmocka_unit_test_setup(test_gauge_set, reset),
        cmocka_unit_test_setup(test_labels_bounded, reset),
        cmocka_unit_test_setup(test_label_values_checked, reset),
        cmocka_unit_test_setup(test_histogram_edges, reset),
        cmocka_unit_test_setup(test_http_route, reset),
        cmocka_unit_test_setup(test_http_route_incomplete_and_bounded, reset),
        cmocka_unit_test_setup(test_http_responses, reset),
        cmocka_unit_test_setup(test_health, reset),
        cmocka_unit_test_setup(test_server, reset),
        cmocka_unit_test_setup(test_server_limits, reset),
        cmocka_unit_test_setup(test_listen_addresses, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
