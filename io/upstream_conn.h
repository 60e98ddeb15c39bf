/* upstream_conn: the connection under every client popgate opens to a server
 * (the IMAP client, the legacy POP3 client), whatever protocol it speaks.
 *
 * It lives in io/, not backends/, because it knows no protocol: it holds the
 * endpoint settings, the byte stream (TCP, implicit TLS, the STARTTLS upgrade
 * the protocol asks for), the connect deadline and the reply inactivity timer,
 * the zero-delay completion, the deferred free and the error text. A client
 * embeds a struct upstream_conn and keeps only its protocol; it reaches its
 * own object from the base with UPSTREAM_CONN_OWNER.
 *
 * Events. The base calls its owner through struct upstream_conn_ops, always
 * from the loop (a stream event, a timer), never from inside one of the
 * owner's own calls, and always between upstream_conn_enter() and
 * upstream_conn_leave(): a free from inside any of them (and from inside the
 * owner's callbacks to its caller) is deferred until the event returns.
 *
 * Completion rule the clients share: an outcome caused by network input, a
 * timer or the stream completes the operation directly from that event; an
 * outcome known while the caller is still inside one of the client's
 * functions (bad argument, dead connection, failed write) completes through
 * upstream_conn_finish_soon(), on the next loop iteration.
 *
 * Ownership: upstream_conn_init() copies the endpoint, duplicates
 * verify_name and takes a reference on tls_ctx, so the caller's
 * configuration may be reloaded while the connection lives.
 */
#ifndef POPGATE_UPSTREAM_CONN_H
#define POPGATE_UPSTREAM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "net_stream.h"

/* last_error: octets kept, NUL included. Enough for a server's NO or -ERR text. */
#define UPSTREAM_LAST_ERROR_MAX 256

/* How the connection is secured: TLS from the first byte (IMAPS, POP3S),
 * upgraded by the protocol's command (STARTTLS, STLS), or not at all. */
enum upstream_tls { UPSTREAM_TLS_IMPLICIT, UPSTREAM_TLS_STARTTLS, UPSTREAM_TLS_NONE };

/* One server to connect to, resolved at config load (never in a session). */
struct upstream_endpoint {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    enum upstream_tls tls;
    SSL_CTX *tls_ctx;              /* client context, verification set up; NULL with tls = none */
    const char *verify_name;       /* host name or IP checked against the certificate */
    double connect_timeout;        /* seconds: TCP connect, TLS, greeting and what the
                                      protocol does before its first command; > 0 */
    double command_timeout;        /* seconds without a byte while a reply is awaited; <= 0: none */
};

/* What went wrong with the connection, from the stream's many reasons: the
 * one distinction a client reports (net_stream's TLS_ERROR, OVERFLOW and EOF
 * are all an I/O error to it). */
enum upstream_error { UPSTREAM_ERR_IO, UPSTREAM_ERR_TIMEOUT, UPSTREAM_ERR_TLS_VERIFY };

struct upstream_conn;

struct upstream_conn_ops {
    /* Bytes from the server, valid during the call. Returns how many were
     * used; fewer stops reading until upstream_conn_resume_read(). */
    size_t (*read)(struct upstream_conn *u, const char *data, size_t len);
    /* TCP is up and, with implicit TLS, the handshake is done: the greeting
     * comes next. */
    void (*connected)(struct upstream_conn *u);
    /* The handshake of upstream_conn_start_tls() is done. */
    void (*upgraded)(struct upstream_conn *u);
    /* Connect or a handshake failed; why is the text for logs. The stream is
     * already gone. */
    void (*failed)(struct upstream_conn *u, enum upstream_error err, const char *why);
    /* The established stream closed (EOF or an error); the stream is gone. */
    void (*closed)(struct upstream_conn *u, enum upstream_error err, const char *why);
    /* The timer ran out: the connect deadline (connecting) or the reply
     * inactivity limit. The stream is still there. */
    void (*timed_out)(struct upstream_conn *u, bool connecting);
    /* The zero-delay completion asked for by upstream_conn_finish_soon(). */
    void (*finish)(struct upstream_conn *u, int result);
    /* Free the owner (which calls upstream_conn_deinit()). */
    void (*destroy)(struct upstream_conn *u);
};

/* The fields are the base's: owners use the functions below. */
struct upstream_conn {
    struct ev_loop *loop;
    const struct upstream_conn_ops *ops;
    const char *peer;              /* "upstream", "legacy server": names it in texts */
    struct upstream_endpoint ep;   /* copy; verify_name owned, tls_ctx referenced */
    char *verify_name;             /* heap copy ep.verify_name points to */
    struct net_stream *stream;     /* NULL before connect and once closed */
    bool tls_active;
    bool upgrading;                /* the handshake running is the STARTTLS one */

    ev_timer timer;                /* connect deadline or reply inactivity */
    ev_timer soon_timer;           /* the zero-delay completion */
    bool timer_on_progress;        /* the timer counts from the last input */
    double timer_span;
    ev_tstamp last_progress;
    int soon_result;

    int in_cb;                     /* >0 while an event of ours is being handled */
    bool free_pending;
    char last_error[UPSTREAM_LAST_ERROR_MAX];
};

/* The object that embeds u as its member `member`. */
#define UPSTREAM_CONN_OWNER(u, type, member) ((type *)(void *)((char *)(u) - offsetof(type, member)))

/* peer must outlive u (a string literal). False when memory ran out; u then
 * holds nothing and needs no deinit. */
bool upstream_conn_init(struct upstream_conn *u, struct ev_loop *loop,
                        const struct upstream_endpoint *ep, const char *peer,
                        const struct upstream_conn_ops *ops);
/* Stops the timers, closes the stream, drops the copies. From ops->destroy. */
void upstream_conn_deinit(struct upstream_conn *u);

/* The owner's free: destroys now (ops->destroy), or, inside an event, when
 * the event returns; no op but destroy is called after it. */
void upstream_conn_free(struct upstream_conn *u);
/* A free is waiting for the event to return: touch nothing but the exit. */
bool upstream_conn_freeing(const struct upstream_conn *u);
/* Around an owner's call that may run events of ours (a resumed read). */
void upstream_conn_enter(struct upstream_conn *u);
/* True when the deferred free ran: u and its owner are gone. */
bool upstream_conn_leave(struct upstream_conn *u);

enum upstream_connect_result {
    UPSTREAM_CONNECT_STARTED,
    UPSTREAM_CONNECT_NO_TLS_CONTEXT,   /* TLS asked for without a context */
    UPSTREAM_CONNECT_NO_SOCKET,
};
/* Starts the TCP connect (implicit TLS follows by itself) and arms the
 * connect deadline. Unless STARTED, nothing was started and no op runs. */
enum upstream_connect_result upstream_conn_connect(struct upstream_conn *u);
/* The protocol's STARTTLS was accepted and no plaintext byte follows it:
 * the handshake, then ops->upgraded (or ops->failed). */
void upstream_conn_start_tls(struct upstream_conn *u);
bool upstream_conn_tls_active(const struct upstream_conn *u);
/* The endpoint asks for STARTTLS and the upgrade has not happened yet: the
 * protocol must upgrade before it sends credentials. */
bool upstream_conn_needs_starttls(const struct upstream_conn *u);
/* The stream, for writes; NULL before connect and once closed. */
struct net_stream *upstream_conn_stream(const struct upstream_conn *u);
/* Frees the stream now (the connection is unusable or over). Idempotent. */
void upstream_conn_close(struct upstream_conn *u);
void upstream_conn_resume_read(struct upstream_conn *u);

/* The reply inactivity limit (command_timeout), pushed back by every byte
 * that arrives; none when command_timeout <= 0. */
void upstream_conn_await_reply(struct upstream_conn *u);
/* The server is not idle by its own doing (the reader is slow): no limit. */
void upstream_conn_timer_stop(struct upstream_conn *u);
/* Both timers: the operation is over. */
void upstream_conn_timers_stop(struct upstream_conn *u);
/* ops->finish(u, result) from the loop's next iteration; stops the timer. */
void upstream_conn_finish_soon(struct upstream_conn *u, int result);

/* Server text goes into logs: printable ASCII only, bounded. */
void upstream_conn_set_error(struct upstream_conn *u, const char *msg);
void upstream_conn_set_error_span(struct upstream_conn *u, const char *prefix,
                                  const char *text, size_t len);
const char *upstream_conn_last_error(const struct upstream_conn *u);

/* Credentials: wipe len octets where a secret was (the compiler may not skip
 * it), and wipe and free a heap string, leaving NULL. */
void upstream_wipe(void *p, size_t len);
void upstream_secret_free(char **s);

#endif
