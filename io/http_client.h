/* http_client: HTTPS POSTs to OAuth token endpoints on the libev loop, with
 * libcurl's multi interface (libcurl4-openssl-dev).
 *
 * curl tells the client which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when to wake it (CURLMOPT_TIMERFUNCTION); they become ev_io and ev_timer
 * watchers, so no call here blocks the loop. Name resolution is curl's
 * threaded resolver (Debian's build has AsynchDNS), not a blocking
 * getaddrinfo on the loop.
 *
 * Bounds
 * - The response body is kept up to HTTP_CLIENT_BODY_MAX octets; one more
 *   ends the transfer with HTTP_ERR_TOO_LARGE.
 * - Every request has a total timeout (connect, TLS, request and response),
 *   timeout_ms, at most HTTP_CLIENT_TIMEOUT_MAX_MS.
 * - The request body is copied (at most FORM_BODY_MAX) and wiped when the
 *   request ends, as is the response body: both carry tokens.
 * - Only http and https URLs; redirects are not followed (a token endpoint
 *   does not redirect, and following one could send the secret elsewhere).
 * - TLS: peer and host name verified always; ca_file replaces the system's
 *   trust store when set (tests use their own CA).
 * - curl honours https_proxy / no_proxy from the environment, so a site's
 *   egress proxy works without a setting of popgate's own.
 *
 * Ownership and lifetime
 * - One http_client per loop; http_client_free() cancels what is in flight
 *   without calling back.
 * - http_post_form() returns a request handle, or NULL (with nothing queued
 *   and no callback) when the URL or body is refused or memory ran out.
 * - done is called exactly once per returned handle, from the loop, never
 *   from inside http_post_form(); after done returns the handle is freed.
 * - http_request_cancel() before done: the transfer is dropped and done is
 *   never called. Calling it from inside done, or after done, is not allowed
 *   (the handle is gone): owners forget the handle when done runs. Nor is
 *   http_client_free() allowed from inside done.
 *
 * Errors carry a short fixed text and curl's reason (which names the host at
 * most, never the body). */
#ifndef POPGATE_HTTP_CLIENT_H
#define POPGATE_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#define HTTP_CLIENT_BODY_MAX       (64 * 1024)
#define HTTP_CLIENT_TIMEOUT_MAX_MS (5 * 60 * 1000)
#define HTTP_CLIENT_ERROR_MAX      256

enum http_result {
    HTTP_OK,               /* a complete response arrived, whatever its status */
    HTTP_ERR_CONNECT,      /* resolve or connect failed (refused, unreachable) */
    HTTP_ERR_TIMEOUT,      /* the total timeout passed */
    HTTP_ERR_TLS,          /* handshake or certificate verification failed */
    HTTP_ERR_TOO_LARGE,    /* body over HTTP_CLIENT_BODY_MAX */
    HTTP_ERR_OTHER,        /* protocol error, broken connection */
};

const char *http_result_name(enum http_result r);

struct http_response {
    enum http_result result;
    long status;            /* HTTP status when result is HTTP_OK, else 0 */
    const char *body;       /* NUL-terminated; valid during the callback only */
    size_t body_len;
    const char *error;      /* "" on HTTP_OK; else a short reason, no secret */
    double elapsed_ms;      /* request start to completion */
};

typedef void (*http_done_fn)(const struct http_response *resp, void *arg);

struct http_client_options {
    const char *ca_file;    /* PEM CA bundle; NULL: the system's store */
    const char *user_agent; /* NULL: "popgate" */
};

struct http_client;
struct http_request;

/* NULL if curl cannot be set up. The options' strings are copied. Call
 * http_client_global_init() once at start-up, before threads exist. */
bool http_client_global_init(void);
struct http_client *http_client_new(struct ev_loop *loop, const struct http_client_options *opt);
void http_client_free(struct http_client *c);

/* POST body[0..body_len) as application/x-www-form-urlencoded to url.
 * timeout_ms 0 means HTTP_CLIENT_TIMEOUT_MAX_MS. */
struct http_request *http_post_form(struct http_client *c, const char *url, const char *body, size_t body_len,
                                    unsigned timeout_ms, http_done_fn done, void *arg);
void http_request_cancel(struct http_request *r);

/* Requests in flight (for tests and metrics). */
unsigned http_client_active(const struct http_client *c);

/* The same POST, blocking, for popgate-admin (never on the daemon's loop):
 * the same bounds, verification and error classes. resp->body points into
 * buf (capacity cap, at most HTTP_CLIENT_BODY_MAX + 1 is used); resp->error
 * into err. The caller wipes buf. */
void http_post_form_blocking(const struct http_client_options *opt, const char *url, const char *body,
                             size_t body_len, unsigned timeout_ms, char *buf, size_t cap,
                             char err[HTTP_CLIENT_ERROR_MAX], struct http_response *resp);

#endif
