/* Tests for io/http_client.c against a small HTTP/1.1 server on 127.0.0.1
 * run by this test in threads (plain and TLS with a certificate made here).
 * A fake server is what makes the faults: a reply that never comes, a body
 * over the bound with and without Content-Length, a refused connection, an
 * untrusted certificate. Checked: success with the form body delivered
 * intact, the status passed through, the total timeout, oversized bodies,
 * connection refused, TLS verification on (and passing with ca_file),
 * cancel without callback, the loop never blocked (a 10 ms timer keeps
 * ticking during a slow request), and the blocking variant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <ev.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http_client.h"
#include "loopback_http.h"

/* The routes: each path is one behaviour of a token endpoint or a fault. */
static void loopback_handler(struct conn *c, const char *req, const char *body)
{
    if (strncmp(req, "POST /token ", 12) == 0) {
        char reply[70000];
        int n = snprintf(reply, sizeof reply, "{\"access_token\":\"abc\",\"token_type\":\"Bearer\",\"got\":\"%s\"}",
                         body);
        send_body(c, 200, reply, (size_t)n, true);
    } else if (strncmp(req, "POST /status503 ", 16) == 0) {
        send_body(c, 503, "{\"error\":\"temporarily_unavailable\"}", 35, true);
    } else if (strncmp(req, "POST /big ", 10) == 0 || strncmp(req, "POST /bignolen ", 15) == 0 ||
               strncmp(req, "POST /exact ", 12) == 0) {
        size_t n = strncmp(req, "POST /exact ", 12) == 0 ? HTTP_CLIENT_BODY_MAX : HTTP_CLIENT_BODY_MAX + 4000;
        char *big = malloc(n);
        memset(big, 'x', n);
        send_body(c, 200, big, n, strncmp(req, "POST /bignolen ", 15) != 0);
        free(big);
    } else if (strncmp(req, "POST /slow ", 11) == 0) {
        /* Never answer; wait for the client to give up (at most 5 s). */
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        (void)poll(&pfd, 1, 5000);
    } else {
        send_body(c, 404, "", 0, true);
    }
}

/* ---- running requests on a loop ---------------------------------------------- */

struct outcome {
    bool called;
    enum http_result result;
    long status;
    char body[256];
    size_t body_len;
    char error[HTTP_CLIENT_ERROR_MAX];
    double elapsed_ms;
};

static struct ev_loop *loop;
static struct http_client *client;
static struct server plain;
static unsigned ticks;

static void on_done(const struct http_response *r, void *arg)
{
    struct outcome *o = arg;
    o->called = true;
    o->result = r->result;
    o->status = r->status;
    o->body_len = r->body_len;
    snprintf(o->body, sizeof o->body, "%s", r->body);
    snprintf(o->error, sizeof o->error, "%s", r->error);
    o->elapsed_ms = r->elapsed_ms;
    assert_int_equal(strlen(r->body), r->body_len);   /* NUL-terminated, no NUL inside here */
    ev_break(loop, EVBREAK_ONE);
}

static void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    ticks++;
}

static void post(const char *path, unsigned timeout_ms, struct outcome *o, const char *body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", plain.port, path);
    memset(o, 0, sizeof *o);
    struct http_request *r = http_post_form(client, url, body, strlen(body), timeout_ms, on_done, o);
    assert_non_null(r);
    assert_false(o->called);   /* never from inside http_post_form */
    loopback_run(loop);
    assert_true(o->called);
    assert_int_equal(http_client_active(client), 0);
}

static int setup(void **state)
{
    (void)state;
    assert_true(http_client_global_init());
    loop = ev_loop_new(EVFLAG_AUTO);
    client = http_client_new(loop, NULL);
    assert_non_null(client);
    server_start(&plain, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    http_client_free(client);
    ev_loop_destroy(loop);
    server_stop(&plain);
    return 0;
}

static void test_success_with_form_body(void **state)
{
    (void)state;
    struct outcome o;
    post("/token", 5000, &o, "grant_type=refresh_token&refresh_token=a%2Fb%26c");
    assert_int_equal(o.result, HTTP_OK);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.body, "{\"access_token\":\"abc\",\"token_type\":\"Bearer\","
                                "\"got\":\"grant_type=refresh_token&refresh_token=a%2Fb%26c\"}");
    assert_string_equal(o.error, "");
    /* Status codes pass through with their body. */
    post("/status503", 5000, &o, "x=1");
    assert_int_equal(o.result, HTTP_OK);
    assert_int_equal(o.status, 503);
    assert_string_equal(o.body, "{\"error\":\"temporarily_unavailable\"}");
}

static void test_timeout_does_not_block_the_loop(void **state)
{
    (void)state;
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.01, 0.01);
    ev_timer_start(loop, &tick);
    ticks = 0;
    struct outcome o;
    post("/slow", 400, &o, "x=1");
    ev_timer_stop(loop, &tick);
    assert_int_equal(o.result, HTTP_ERR_TIMEOUT);
    assert_true(o.elapsed_ms >= 350 && o.elapsed_ms < 3000);
    /* 40 ticks would fit; a loop blocked in curl would see one or two. */
    print_message("      timeout after %.0f ms, %u timer ticks meanwhile\n", o.elapsed_ms, ticks);
    assert_true(ticks >= 10);
    assert_non_null(strstr(o.error, "imeout") ? o.error : NULL);
}

static void test_oversized_body(void **state)
{
    (void)state;
    struct outcome o;
    post("/big", 5000, &o, "x=1");   /* Content-Length over the bound */
    assert_int_equal(o.result, HTTP_ERR_TOO_LARGE);
    assert_int_equal(o.body_len, 0);
    post("/bignolen", 5000, &o, "x=1");   /* no length: cut while reading */
    assert_int_equal(o.result, HTTP_ERR_TOO_LARGE);
    post("/exact", 5000, &o, "x=1");   /* exactly the bound is fine */
    assert_int_equal(o.result, HTTP_OK);
    assert_int_equal(o.body_len, HTTP_CLIENT_BODY_MAX);
}

static void test_connection_refused(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);   /* nobody listens there now */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/token", ntohs(a.sin_port));
    struct outcome o = { 0 };
    assert_non_null(http_post_form(client, url, "x=1", 3, 5000, on_done, &o));
    loopback_run(loop);
    assert_true(o.called);
    assert_int_equal(o.result, HTTP_ERR_CONNECT);
    /* Not a URL curl will fetch: refused at once or reported, never followed. */
    struct outcome o2 = { 0 };
    struct http_request *r = http_post_form(client, "file:///etc/passwd", "x=1", 3, 1000, on_done, &o2);
    if (r != NULL) {
        loopback_run(loop);
        assert_true(o2.called);
        assert_int_not_equal(o2.result, HTTP_OK);
    }
}

static void test_cancel(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", plain.port);
    struct outcome o = { 0 };
    struct http_request *r = http_post_form(client, url, "x=1", 3, 5000, on_done, &o);
    assert_non_null(r);
    assert_int_equal(http_client_active(client), 1);
    /* Let it connect and send, then cancel. */
    ev_timer t;
    ev_timer_init(&t, loopback_guard_cb, 0.1, 0.0);
    ev_timer_start(loop, &t);
    ev_run(loop, 0);
    http_request_cancel(r);
    assert_int_equal(http_client_active(client), 0);
    ev_timer_init(&t, loopback_guard_cb, 0.2, 0.0);
    ev_timer_start(loop, &t);
    ev_run(loop, 0);
    assert_false(o.called);
    /* Freeing the client with a request in flight calls nothing either. */
    struct http_client *c2 = http_client_new(loop, NULL);
    assert_non_null(http_post_form(c2, url, "x=1", 3, 5000, on_done, &o));
    ev_timer_init(&t, loopback_guard_cb, 0.05, 0.0);
    ev_timer_start(loop, &t);
    ev_run(loop, 0);
    http_client_free(c2);
    assert_false(o.called);
}

static void test_tls_verification(void **state)
{
    (void)state;
    make_tls();
    struct server tls;
    server_start(&tls, server_tls);
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/token", tls.port);
    /* The system store does not trust the test's certificate. */
    struct outcome o = { 0 };
    assert_non_null(http_post_form(client, url, "x=1", 3, 5000, on_done, &o));
    loopback_run(loop);
    assert_true(o.called);
    assert_int_equal(o.result, HTTP_ERR_TLS);
    /* With ca_file it does. */
    struct http_client_options opt = { .ca_file = ca_path };
    struct http_client *c2 = http_client_new(loop, &opt);
    memset(&o, 0, sizeof o);
    assert_non_null(http_post_form(c2, url, "x=2", 3, 5000, on_done, &o));
    loopback_run(loop);
    assert_int_equal(o.result, HTTP_OK);
    assert_int_equal(o.status, 200);
    assert_non_null(strstr(o.body, "\"got\":\"x=2\""));
    http_client_free(c2);

    /* The blocking variant, same checks. */
    char buf[HTTP_CLIENT_BODY_MAX + 1], err[HTTP_CLIENT_ERROR_MAX];
    struct http_response r;
    http_post_form_blocking(&opt, url, "y=3", 3, 5000, buf, sizeof buf, err, &r);
    assert_int_equal(r.result, HTTP_OK);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"got\":\"y=3\""));
    http_post_form_blocking(NULL, url, "y=3", 3, 5000, buf, sizeof buf, err, &r);
    assert_int_equal(r.result, HTTP_ERR_TLS);
    assert_string_not_equal(r.error, "");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/bignolen", plain.port);
    http_post_form_blocking(NULL, url, "y=3", 3, 5000, buf, sizeof buf, err, &r);
    assert_int_equal(r.result, HTTP_ERR_TOO_LARGE);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", plain.port);
    http_post_form_blocking(NULL, url, "y=3", 3, 300, buf, sizeof buf, err, &r);
    assert_int_equal(r.result, HTTP_ERR_TIMEOUT);

    server_stop(&tls);
    SSL_CTX_free(server_tls);
    unlink(ca_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_with_form_body),
        cmocka_unit_test(test_timeout_does_not_block_the_loop),
        cmocka_unit_test(test_oversized_body),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_tls_verification),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
