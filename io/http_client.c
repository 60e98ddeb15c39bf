/* http_client.c: see http_client.h.
 *
 * The libev glue follows curl's multi_socket contract: curl says which fd to
 * watch for what (socket_cb) and when to call it back (timer_cb); popgate
 * reports readiness with curl_multi_socket_action() and collects finished
 * transfers with curl_multi_info_read(). curl is never called from inside
 * its own callbacks. */
#include "http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "form_encode.h"

#define BODY_INITIAL 4096

struct sock_watch {
    ev_io io;
    curl_socket_t fd;
    struct http_client *c;
    struct sock_watch *prev, *next;
};

struct http_client {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    char *ca_file;
    char *user_agent;
    struct curl_slist *headers;
    struct http_request *requests;   /* in flight */
    struct sock_watch *watches;
    unsigned active;
};

/* The response buffer, shared by the async and the blocking paths. */
struct body_buf {
    char *p;
    size_t len, cap;
    size_t cap_max;      /* HTTP_CLIENT_BODY_MAX + 1, or a caller's fixed buffer */
    bool fixed;          /* p is the caller's: never realloc'ed or freed */
    bool too_large;
};

struct http_request {
    struct http_client *c;
    CURL *easy;
    char *body;
    size_t body_len;
    struct body_buf resp;
    char errbuf[CURL_ERROR_SIZE];
    http_done_fn done;
    void *arg;
    ev_tstamp started;
    struct http_request *prev, *next;
};

const char *http_result_name(enum http_result r)
{
    switch (r) {
    case HTTP_OK: return "ok";
    case HTTP_ERR_CONNECT: return "connect";
    case HTTP_ERR_TIMEOUT: return "timeout";
    case HTTP_ERR_TLS: return "tls";
    case HTTP_ERR_TOO_LARGE: return "too_large";
    case HTTP_ERR_OTHER: return "other";
    }
    return "unknown";
}

bool http_client_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct body_buf *b = userp;
    size_t n = size * nmemb;
    /* One octet stays free for the NUL. */
    if (n > b->cap_max - 1 - b->len) {
        b->too_large = true;
        return 0;   /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : BODY_INITIAL;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > b->cap_max)
            cap = b->cap_max;
        char *p = malloc(cap);
        if (p == NULL)
            return 0;
        if (b->p != NULL) {
            memcpy(p, b->p, b->len);
            OPENSSL_cleanse(b->p, b->cap);   /* the old copy held the same tokens */
            free(b->p);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static void body_buf_free(struct body_buf *b)
{
    if (b->p != NULL && !b->fixed) {
        OPENSSL_cleanse(b->p, b->cap);
        free(b->p);
    }
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Everything both paths set on an easy handle. */
static bool setup_easy(CURL *e, const char *ca_file, const char *user_agent, struct curl_slist *headers,
                       const char *url, const char *body, size_t body_len, unsigned timeout_ms,
                       struct body_buf *resp, char *errbuf)
{
    if (timeout_ms == 0 || timeout_ms > HTTP_CLIENT_TIMEOUT_MAX_MS)
        timeout_ms = HTTP_CLIENT_TIMEOUT_MAX_MS;
    errbuf[0] = '\0';
    bool ok = curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_POSTFIELDS, body) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HTTP_CLIENT_BODY_MAX) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEDATA, resp) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
    if (ok && ca_file != NULL)
        ok = curl_easy_setopt(e, CURLOPT_CAINFO, ca_file) == CURLE_OK;
    return ok;
}

static struct curl_slist *default_headers(void)
{
    /* "Expect:" drops curl's 100-continue wait for bodies over 1 KiB. */
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    struct curl_slist *h2 = h ? curl_slist_append(h, "Expect:") : NULL;
    if (h2 == NULL)
        curl_slist_free_all(h);
    return h2;
}

static enum http_result classify(CURLcode rc, const struct body_buf *resp)
{
    switch (rc) {
    case CURLE_OK: return HTTP_OK;
    case CURLE_OPERATION_TIMEDOUT: return HTTP_ERR_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: return HTTP_ERR_CONNECT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return HTTP_ERR_TLS;
    case CURLE_FILESIZE_EXCEEDED: return HTTP_ERR_TOO_LARGE;
    case CURLE_WRITE_ERROR: return resp->too_large ? HTTP_ERR_TOO_LARGE : HTTP_ERR_OTHER;
    default: return HTTP_ERR_OTHER;
    }
}

static void fill_response(CURL *e, CURLcode rc, struct body_buf *resp, const char *errbuf, char *err, size_t errlen,
                          struct http_response *out)
{
    memset(out, 0, sizeof *out);
    out->result = classify(rc, resp);
    if (out->result == HTTP_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
        out->body = resp->p ? resp->p : "";
        out->body_len = resp->len;
        err[0] = '\0';
    } else {
        out->body = "";
        if (out->result == HTTP_ERR_TOO_LARGE)
            snprintf(err, errlen, "response body over %d octets", HTTP_CLIENT_BODY_MAX);
        else
            snprintf(err, errlen, "%s%s%s", curl_easy_strerror(rc), errbuf[0] ? ": " : "", errbuf);
    }
    out->error = err;
}

/* ---- the multi interface on libev ----------------------------------------- */

static void check_done(struct http_client *c);

static void request_unlink_free(struct http_request *r)
{
    struct http_client *c = r->c;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->requests = r->next;
    if (r->next)
        r->next->prev = r->prev;
    c->active--;
    curl_multi_remove_handle(c->multi, r->easy);
    curl_easy_cleanup(r->easy);
    OPENSSL_cleanse(r->body, r->body_len);
    free(r->body);
    body_buf_free(&r->resp);
    free(r);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct sock_watch *sw = (struct sock_watch *)w;
    struct http_client *c = sw->c;
    int flags = ((revents & EV_READ) ? CURL_CSELECT_IN : 0) | ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(c->multi, sw->fd, flags, &running);
    check_done(c);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct http_client *c = w->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    struct http_client *c = userp;
    struct sock_watch *sw = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sw != NULL) {
            ev_io_stop(c->loop, &sw->io);
            if (sw->prev)
                sw->prev->next = sw->next;
            else
                c->watches = sw->next;
            if (sw->next)
                sw->next->prev = sw->prev;
            curl_multi_assign(c->multi, fd, NULL);
            free(sw);
        }
        return 0;
    }
    if (sw == NULL) {
        sw = calloc(1, sizeof *sw);
        if (sw == NULL)
            return -1;   /* curl fails this transfer */
        sw->fd = fd;
        sw->c = c;
        sw->next = c->watches;
        if (c->watches)
            c->watches->prev = sw;
        c->watches = sw;
        curl_multi_assign(c->multi, fd, sw);
    } else {
        ev_io_stop(c->loop, &sw->io);
    }
    int events = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    ev_io_init(&sw->io, io_cb, fd, events);
    ev_io_start(c->loop, &sw->io);
    return 0;
}

static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct http_client *c = userp;
    ev_timer_stop(c->loop, &c->timer);
    if (timeout_ms >= 0) {
        /* 0 means "as soon as possible": the next loop iteration, never a
         * call back into curl from here. */
        ev_timer_set(&c->timer, (ev_tstamp)timeout_ms / 1000.0, 0.0);
        ev_timer_start(c->loop, &c->timer);
    }
    return 0;
}

static void check_done(struct http_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct http_request *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = msg->data.result;
        char err[HTTP_CLIENT_ERROR_MAX];
        struct http_response resp;
        fill_response(r->easy, rc, &r->resp, r->errbuf, err, sizeof err, &resp);
        resp.elapsed_ms = (ev_now(c->loop) - r->started) * 1000.0;
        /* Out of the multi handle before the callback, so done may start new
         * requests or cancel others; the request is freed after it. */
        curl_multi_remove_handle(c->multi, r->easy);
        r->done(&resp, r->arg);
        request_unlink_free(r);
    }
}

struct http_client *http_client_new(struct ev_loop *loop, const struct http_client_options *opt)
{
    struct http_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->multi = curl_multi_init();
    c->headers = default_headers();
    c->user_agent = strdup(opt && opt->user_agent ? opt->user_agent : "popgate");
    c->ca_file = opt && opt->ca_file ? strdup(opt->ca_file) : NULL;
    if (c->multi == NULL || c->headers == NULL || c->user_agent == NULL ||
        (opt && opt->ca_file && c->ca_file == NULL)) {
        http_client_free(c);
        return NULL;
    }
    ev_init(&c->timer, timer_cb);
    c->timer.data = c;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return c;
}

void http_client_free(struct http_client *c)
{
    if (c == NULL)
        return;
    while (c->requests != NULL)
        request_unlink_free(c->requests);
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    while (c->watches != NULL) {
        struct sock_watch *sw = c->watches;
        ev_io_stop(c->loop, &sw->io);
        c->watches = sw->next;
        free(sw);
    }
    if (c->loop != NULL)
        ev_timer_stop(c->loop, &c->timer);
    curl_slist_free_all(c->headers);
    free(c->ca_file);
    free(c->user_agent);
    free(c);
}

struct http_request *http_post_form(struct http_client *c, const char *url, const char *body, size_t body_len,
                                    unsigned timeout_ms, http_done_fn done, void *arg)
{
    if (body_len > FORM_BODY_MAX)
        return NULL;
    struct http_request *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->c = c;
    r->done = done;
    r->arg = arg;
    r->resp.cap_max = HTTP_CLIENT_BODY_MAX + 1;
    r->body = malloc(body_len + 1);
    r->easy = curl_easy_init();
    if (r->body == NULL || r->easy == NULL) {
        free(r->body);
        if (r->easy)
            curl_easy_cleanup(r->easy);
        free(r);
        return NULL;
    }
    memcpy(r->body, body, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    if (!setup_easy(r->easy, c->ca_file, c->user_agent, c->headers, url, r->body, body_len, timeout_ms, &r->resp,
                    r->errbuf) ||
        curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r) != CURLE_OK) {
        curl_easy_cleanup(r->easy);
        OPENSSL_cleanse(r->body, body_len);
        free(r->body);
        free(r);
        return NULL;
    }
    r->started = ev_now(c->loop);
    r->next = c->requests;
    if (c->requests)
        c->requests->prev = r;
    c->requests = r;
    c->active++;
    /* curl starts the transfer from its timer callback, on the loop: done
     * cannot run inside this call. */
    if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
        request_unlink_free(r);
        return NULL;
    }
    return r;
}

void http_request_cancel(struct http_request *r)
{
    if (r != NULL)
        request_unlink_free(r);
}

unsigned http_client_active(const struct http_client *c)
{
    return c->active;
}

void http_post_form_blocking(const struct http_client_options *opt, const char *url, const char *body,
                             size_t body_len, unsigned timeout_ms, char *buf, size_t cap,
                             char err[HTTP_CLIENT_ERROR_MAX], struct http_response *resp)
{
    struct body_buf b = {
        .p = buf,
        .cap = cap,
        .cap_max = cap < HTTP_CLIENT_BODY_MAX + 1 ? cap : HTTP_CLIENT_BODY_MAX + 1,
        .fixed = true,
    };
    if (cap > 0)
        buf[0] = '\0';
    char errbuf[CURL_ERROR_SIZE];
    CURL *e = curl_easy_init();
    struct curl_slist *headers = default_headers();
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    errbuf[0] = '\0';
    if (e != NULL && headers != NULL && body_len <= FORM_BODY_MAX && cap > 0 &&
        setup_easy(e, opt ? opt->ca_file : NULL, opt && opt->user_agent ? opt->user_agent : "popgate-admin",
                   headers, url, body, body_len, timeout_ms, &b, errbuf))
        rc = curl_easy_perform(e);
    fill_response(e, rc, &b, errbuf, err, HTTP_CLIENT_ERROR_MAX, resp);
    if (e != NULL)
        curl_easy_cleanup(e);
    curl_slist_free_all(headers);
}
