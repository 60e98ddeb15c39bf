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

/* ---- the test server ------------------------------------------------------- */

struct server {
    int listen_fd;
    int port;
    SSL_CTX *tls;          /* NULL: plain HTTP */
    pthread_t thread;
};

struct conn {
    int fd;
    SSL *ssl;
};

static int conn_read(struct conn *c, char *buf, int n)
{
    return c->ssl ? SSL_read(c->ssl, buf, n) : (int)recv(c->fd, buf, (size_t)n, 0);
}

static void conn_write(struct conn *c, const char *buf, size_t n)
{
    while (n > 0) {
        int w = c->ssl ? SSL_write(c->ssl, buf, (int)n) : (int)send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

static void send_body(struct conn *c, int status, const char *body, size_t len, bool with_length)
{
    char head[256];
    int n = with_length ? snprintf(head, sizeof head,
                                   "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                                   "Connection: close\r\n\r\n",
                                   status, len)
                        : snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nConnection: close\r\n\r\n", status);
    conn_write(c, head, (size_t)n);
    conn_write(c, body, len);
}

static void *serve_conn(void *p)
{
    struct conn *c = p;
    char req[65536];
    size_t len = 0;
    char *end = NULL;
    if (c->ssl != NULL && SSL_accept(c->ssl) != 1)
        goto out;
    while (len < sizeof req - 1) {
        int n = conn_read(c, req + len, (int)(sizeof req - 1 - len));
        if (n <= 0)
            goto out;
        len += (size_t)n;
        req[len] = '\0';
        end = strstr(req, "\r\n\r\n");
        if (end != NULL) {
            const char *cl = strcasestr(req, "Content-Length:");
            size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
            if (len - (size_t)(end + 4 - req) >= want)
                break;
        }
    }
    if (end == NULL)
        goto out;
    const char *body = end + 4;
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
out:
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);
    free(c);
    return NULL;
}

static void *server_main(void *p)
{
    struct server *s = p;
    for (;;) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;   /* the listener was shut down */
        struct conn *c = calloc(1, sizeof *c);
        c->fd = fd;
        if (s->tls) {
            c->ssl = SSL_new(s->tls);
            SSL_set_fd(c->ssl, fd);
        }
        pthread_t t;
        pthread_create(&t, NULL, serve_conn, c);
        pthread_detach(t);
    }
}

static void server_start(struct server *s, SSL_CTX *tls)
{
    memset(s, 0, sizeof *s);
    s->tls = tls;
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->listen_fd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(s->listen_fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->thread, NULL, server_main, s);
}

static void server_stop(struct server *s)
{
    shutdown(s->listen_fd, SHUT_RDWR);
    close(s->listen_fd);
    pthread_join(s->thread, NULL);
}

/* ---- a self-signed certificate for 127.0.0.1 -------------------------------- */

static char ca_path[64];
static SSL_CTX *server_tls;

static void make_tls(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, bc, -1);
    X509_EXTENSION_free(bc);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    snprintf(ca_path, sizeof ca_path, "/tmp/popgate-http-test-%d.pem", (int)getpid());
    FILE *f = fopen(ca_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    server_tls = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(server_tls, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(server_tls, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
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

static void guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ONE);
}

/* Run the loop until the callback or 10 s. */
static void run(void)
{
    ev_timer guard;
    ev_timer_init(&guard, guard_cb, 10.0, 0.0);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    ev_timer_stop(loop, &guard);
}

static void post(const char *path, unsigned timeout_ms, struct outcome *o, const char *body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", plain.port, path);
    memset(o, 0, sizeof *o);
    struct http_request *r = http_post_form(client, url, body, strlen(body), timeout_ms, on_done, o);
    assert_non_null(r);
    assert_false(o->called);   /* never from inside http_post_form */
    run();
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
    run();
    assert_true(o.called);
    assert_int_equal(o.result, HTTP_ERR_CONNECT);
    /* Not a URL curl will fetch: refused at once or reported, never followed. */
    struct outcome o2 = { 0 };
    struct http_request *r = http_post_form(client, "file:///etc/passwd", "x=1", 3, 1000, on_done, &o2);
    if (r != NULL) {
        run();
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
    ev_timer_init(&t, guard_cb, 0.1, 0.0);
    ev_timer_start(loop, &t);
    ev_run(loop, 0);
    http_request_cancel(r);
    assert_int_equal(http_client_active(client), 0);
    ev_timer_init(&t, guard_cb, 0.2, 0.0);
    ev_timer_start(loop, &t);
    ev_run(loop, 0);
    assert_false(o.called);
    /* Freeing the client with a request in flight calls nothing either. */
    struct http_client *c2 = http_client_new(loop, NULL);
    assert_non_null(http_post_form(c2, url, "x=1", 3, 5000, on_done, &o));
    ev_timer_init(&t, guard_cb, 0.05, 0.0);
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
    run();
    assert_true(o.called);
    assert_int_equal(o.result, HTTP_ERR_TLS);
    /* With ca_file it does. */
    struct http_client_options opt = { .ca_file = ca_path };
    struct http_client *c2 = http_client_new(loop, &opt);
    memset(&o, 0, sizeof o);
    assert_non_null(http_post_form(c2, url, "x=2", 3, 5000, on_done, &o));
    run();
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
