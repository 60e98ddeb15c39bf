/* loopback_http: a small HTTP/1.1 server on 127.0.0.1 (plain, or TLS with
 * a self-signed certificate made at run time) for the unit tests of
 * io/http_client.c and backends/oauth_client.c. Header only: unit tests are
 * one .c file each. A test defines
 *     static void loopback_handler(struct conn *c, const char *req, const char *body);
 * before including it; the handler answers with send_body(). Each
 * connection runs in its own thread and is closed after one answer.
 * Include it after <cmocka.h>: set-up failures are cmocka assertions.
 * loopback_run() runs a test's loop until a callback breaks it (or 10 s). */
#ifndef POPGATE_LOOPBACK_HTTP_H
#define POPGATE_LOOPBACK_HTTP_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct conn;
static void loopback_handler(struct conn *c, const char *req, const char *body);

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

static inline int conn_read(struct conn *c, char *buf, int n)
{
    return c->ssl ? SSL_read(c->ssl, buf, n) : (int)recv(c->fd, buf, (size_t)n, 0);
}

static inline void conn_write(struct conn *c, const char *buf, size_t n)
{
    while (n > 0) {
        int w = c->ssl ? SSL_write(c->ssl, buf, (int)n) : (int)send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

static inline void send_body(struct conn *c, int status, const char *body, size_t len, bool with_length)
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

static inline void *serve_conn(void *p)
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
    loopback_handler(c, req, end + 4);
out:
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);
    free(c);
    return NULL;
}

static inline void *server_main(void *p)
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

static inline void server_start(struct server *s, SSL_CTX *tls)
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

static inline void server_stop(struct server *s)
{
    shutdown(s->listen_fd, SHUT_RDWR);
    close(s->listen_fd);
    pthread_join(s->thread, NULL);
}

/* ---- a self-signed certificate for 127.0.0.1 -------------------------------- */

static char ca_path[64];
static SSL_CTX *server_tls;

static inline void make_tls(void)
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

/* ---- running a test's loop ------------------------------------------------------ */

static inline void loopback_guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ONE);
}

/* Run the loop until a callback breaks it, or 10 s. */
static inline void loopback_run(struct ev_loop *l)
{
    ev_timer guard;
    ev_timer_init(&guard, loopback_guard_cb, 10.0, 0.0);
    ev_timer_start(l, &guard);
    ev_run(l, 0);
    ev_timer_stop(l, &guard);
}

#endif
