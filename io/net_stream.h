/* net_stream: one non-blocking byte stream (TCP, optionally TLS) on a libev loop.
 *
 * Used for both sides of the gateway: the POP3 client connection and the
 * upstream IMAP connection. It hides plain TCP versus TLS from its user.
 *
 * Ownership and lifetime
 * - net_stream owns its fd and SSL object and closes/frees them.
 * - The owner frees a stream with net_stream_free(). It is safe to call from
 *   inside any of the stream's own callbacks: the free is deferred until the
 *   callback returns (hiredis-style IN_CALLBACK flag).
 * - After on_close has been called the stream delivers nothing more; the owner
 *   still has to free it.
 *
 * Memory bounds
 * - Reads go into one loop-wide scratch buffer (NET_STREAM_READ_CHUNK); only
 *   bytes the consumer did not take are copied into a per-stream buffer, so an
 *   idle stream holds no I/O buffer at all.
 * - Output that cannot be written at once is kept in a per-stream buffer of at
 *   most NET_STREAM_OUT_MAX bytes, allocated on demand and released when empty.
 *   Producers of bulk data (RETR, LIST) must stop while
 *   net_stream_out_pending() >= NET_STREAM_OUT_HIGH_WATER and continue from
 *   on_drain, which fires once pending output falls to NET_STREAM_OUT_LOW_WATER.
 *
 * Backpressure on input
 * - on_read returns how many bytes it consumed. If that is fewer than offered,
 *   the stream keeps the rest and stops reading the socket until
 *   net_stream_resume_read(), which first re-offers the kept bytes (and then
 *   any bytes OpenSSL already decrypted: SSL_pending is honoured).
 */
#ifndef POPGATE_NET_STREAM_H
#define POPGATE_NET_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>

#define NET_STREAM_READ_CHUNK      (16 * 1024)
#define NET_STREAM_OUT_MAX         (96 * 1024)
#define NET_STREAM_OUT_HIGH_WATER  (48 * 1024)
#define NET_STREAM_OUT_LOW_WATER   (8 * 1024)
/* A deferred stream sends at once when this much is queued. */
#define NET_STREAM_DEFER_MAX       (32 * 1024)

enum net_stream_error {
    NET_STREAM_EOF = 0,          /* peer closed cleanly */
    NET_STREAM_IO_ERROR,         /* read/write/connect failed */
    NET_STREAM_TLS_ERROR,        /* handshake or record layer failed */
    NET_STREAM_TLS_VERIFY_ERROR, /* peer certificate rejected */
    NET_STREAM_TIMEOUT,          /* connect or handshake deadline passed */
    NET_STREAM_OVERFLOW,         /* output would exceed NET_STREAM_OUT_MAX */
};

struct net_stream;

struct net_stream_callbacks {
    /* Bytes arrived. Valid only during the call. Return how many were used. */
    size_t (*on_read)(struct net_stream *s, const char *data, size_t len, void *arg);
    /* Pending output fell to the low-water mark (or to zero). Optional. */
    void (*on_drain)(struct net_stream *s, void *arg);
    /* The stream is dead: EOF or an error. Called at most once. */
    void (*on_close)(struct net_stream *s, enum net_stream_error err, void *arg);
};

/* Completion of net_stream_connect / net_stream_start_tls. ok == false means
 * the stream is unusable; err says why. on_close is not called for it. */
typedef void net_stream_done_cb(struct net_stream *s, bool ok, enum net_stream_error err, void *arg);

/* Wrap an accepted, connected socket. */
struct net_stream *net_stream_from_fd(struct ev_loop *loop, int fd,
                                      const struct net_stream_callbacks *cbs, void *arg);

/* Start a non-blocking connect. done fires once, with the outcome. */
struct net_stream *net_stream_connect(struct ev_loop *loop, const struct sockaddr *addr,
                                      socklen_t addrlen, double timeout,
                                      const struct net_stream_callbacks *cbs, void *arg,
                                      net_stream_done_cb *done);

/* Begin a TLS handshake on an established stream (implicit TLS right after
 * accept/connect, or STLS/STARTTLS later). For a client, verify_name (may be
 * NULL when the context does not verify) is checked against the certificate.
 * Reads are not delivered during the handshake. */
void net_stream_start_tls(struct net_stream *s, SSL_CTX *ctx, bool is_server,
                          const char *verify_name, double timeout, net_stream_done_cb *done);

/* Queue bytes for writing. Returns false (and closes the stream with
 * NET_STREAM_OVERFLOW) if the output bound would be exceeded. */
bool net_stream_write(struct net_stream *s, const void *data, size_t len);
bool net_stream_printf(struct net_stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Corked, writes only queue (up to the same bound); uncorking sends them in
 * as few system calls as possible. For replies built from several pieces
 * (an IMAP command, pipelined POP3 answers). Uncorking never calls on_drain. */
void net_stream_cork(struct net_stream *s);
void net_stream_uncork(struct net_stream *s);

/* Until the I/O event being handled returns (one socket's readiness on any
 * stream, with every callback it runs), writes to s only queue; then they
 * leave together, as one send where the socket takes them. A reply written
 * in pieces from several callbacks (a RETR's status line, body and final
 * line, all from one upstream read) becomes one TCP segment and one wakeup
 * of the reader instead of one per piece. Lasts for the current event only:
 * call it in each callback that writes. Outside an I/O event (timers) it does
 * nothing. Queued bytes count in net_stream_out_pending() and against
 * NET_STREAM_OUT_MAX; once NET_STREAM_DEFER_MAX are queued they are sent at
 * once, so bulk data still goes out in large sends while it is produced.
 * Never calls on_drain from inside a write. */
void net_stream_defer_flush(struct net_stream *s);

size_t net_stream_out_pending(const struct net_stream *s);
bool net_stream_is_tls(const struct net_stream *s);

void net_stream_pause_read(struct net_stream *s);
void net_stream_resume_read(struct net_stream *s);

/* The input carries secrets (a POP3 client's PASS and AUTH lines): from now
 * on every input byte is wiped (explicit_bzero) once on_read has been offered
 * it, in the loop-wide read buffer and in the kept input alike. Not for bulk
 * streams: it costs a pass over every byte read. */
void net_stream_wipe_input(struct net_stream *s);

/* Flush what is queued, then shut the connection down and call on_close with
 * NET_STREAM_EOF. Used for QUIT and for protocol errors. */
void net_stream_close_after_flush(struct net_stream *s);

/* Replace the callbacks/arg (e.g. when ownership moves). */
void net_stream_set_callbacks(struct net_stream *s, const struct net_stream_callbacks *cbs, void *arg);

void net_stream_free(struct net_stream *s);

const char *net_stream_error_name(enum net_stream_error err);

#endif
