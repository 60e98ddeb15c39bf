/* legacy_pop3: an asynchronous client that reads a legacy POP3 server's
 * listing, for lazy migration. On the libev loop; nothing blocks.
 *
 * When a user whose mapping names `legacy_pop3 = host:port` first logs in to
 * popgate, legacy_pop3_fetch() logs in to the old POP3 server with the user's
 * own credentials and hands out, for every message, its UIDL, its size (as the
 * old server's LIST said) and its Message-ID, so popgate can serve the UIDLs
 * the user's clients already know. It only reads: it never sends DELE or
 * RSET, and ends with QUIT (nothing was marked, so the UPDATE state changes
 * nothing).
 *
 * The conversation (RFC 1939, 2449, 2595):
 *   greeting; CAPA (an -ERR is tolerated: the server then counts as having
 *   no capabilities); with tls = starttls, STLS, refused unless CAPA lists it,
 *   then TLS with the certificate checked against verify_name, and CAPA again;
 *   USER, PASS; STAT; UIDL; LIST; TOP n 0 for every usable message; QUIT.
 * TOP commands are pipelined, at most LEGACY_POP3_TOP_WINDOW in flight, when
 * CAPA listed PIPELINING, else sent one at a time. When CAPA answered +OK
 * without TOP, no TOP is sent and every message has no Message-ID.
 *
 * Callbacks
 * - item: once per usable message, in message-number order, as soon as its
 *   UIDL, size and Message-ID are known (after its TOP reply). uidl is
 *   NUL-terminated, 1..UIDL_MAX octets of 0x21..0x7E; msgid is the normalised
 *   key from message_id_extract() (translate/message_id.h),
 *   NUL-terminated (it may hold NULs: use msgid_len), or NULL with msgid_len 0 when the message has none, its
 *   TOP failed, or its header passed LEGACY_POP3_HEADER_MAX. Both are valid
 *   during the call only.
 * - done: exactly once, with the outcome, unless legacy_pop3_free() came
 *   first. Never from inside legacy_pop3_fetch(): an outcome known at once
 *   (bad credentials, no socket) is reported from the loop. On any result
 *   but OK the items already handed out are correct but the list is
 *   incomplete; a caller that needs the whole mailbox discards them.
 *
 * Messages that are not handed out (counted in struct legacy_pop3_stats):
 * - no valid UIDL: the UIDL listing left the message out, gave it twice, or
 *   gave an empty or over-long UIDL or one with octets outside 0x21..0x7E.
 *   The fetch goes on: such a message cannot have been known to a client by
 *   a valid UIDL, and failing the whole migration for it would make the
 *   client download every other message again.
 * - duplicate UIDL: two or more messages share it (RFC 1939 forbids it); none
 *   of them is handed out, so popgate never serves one UIDL for two messages.
 * - no size: LIST left the message out or gave a size that is not a number.
 * A listing line without a usable message number, an over-long line (see
 * POP3_REPLY_LINE_MAX in translate/pop3_reply.h), or -ERR to STAT, UIDL or
 * LIST fails the fetch with LEGACY_POP3_PROTOCOL_ERROR.
 *
 * Credentials: user and pass are copied; the copy of the password is wiped
 * (upstream_wipe) and freed as soon as PASS has been handed to the
 * connection, and on every other way out. CR or LF in either, an empty one,
 * or one longer than LEGACY_POP3_CREDENTIAL_MAX: LEGACY_POP3_INVALID_ARGUMENT
 * without connecting. (A C string cannot hold NUL.)
 *
 * Memory, bounded by the message count n that STAT reports (n at most
 * max_messages, else LEGACY_POP3_TOO_MANY_MESSAGES before UIDL is sent):
 * one 12-octet record per message and a pool of the UIDL octets grown by
 * doubling (in all under n * (12 + 2 * UIDL_MAX) + 4 KiB), a transient
 * n * 4 octets to find duplicate UIDLs, one
 * header buffer of LEGACY_POP3_HEADER_MAX octets while TOP replies are read,
 * and the reply reader's line buffer (POP3_REPLY_LINE_MAX). A header longer
 * than LEGACY_POP3_HEADER_MAX is read to its end without being kept; that
 * message counts as having no Message-ID (a Message-ID field past the bound,
 * possibly a second one, cannot be ruled out).
 *
 * Timeouts: connect_timeout bounds TCP connect, TLS, greeting, CAPA and STLS
 * together; from USER on, command_timeout is the longest the server may go
 * without sending a byte while a reply is awaited. A missing reply to QUIT
 * (timeout, close, -ERR) does not matter: everything was read, the result is OK.
 * There is no deadline for the fetch as a whole: without PIPELINING it takes
 * one round trip per message. Dovecot with pop3_lock_session = yes answers
 * PASS for a maildrop another session holds only after its lock wait (about
 * 12 s, then -ERR [IN-USE]): a command_timeout below that reports TIMEOUT.
 *
 * Lifetime: legacy_pop3_free() may be called at any time, also from inside
 * item or done (the free is deferred until the callback returns); no callback
 * runs after it. The client copies *srv and verify_name and takes a reference
 * on tls_ctx (io/upstream_conn.h), so the caller's configuration may be
 * reloaded meanwhile.
 */
#ifndef POPGATE_LEGACY_POP3_H
#define POPGATE_LEGACY_POP3_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "upstream_conn.h"

/* Header octets kept per TOP reply (the blank line and anything after it
 * included). Real headers are a few KiB; 64 KiB holds mailing-list and
 * spam-filter monsters. */
#define LEGACY_POP3_HEADER_MAX (64 * 1024)
/* TOP commands in flight with PIPELINING: small enough that the commands
 * (about 20 octets each) always fit a socket buffer, large enough to hide
 * the round trip. */
#define LEGACY_POP3_TOP_WINDOW 32
/* Default for max_messages. */
#define LEGACY_POP3_MAX_MESSAGES_DEFAULT 200000
/* Longest user name or password: "PASS " + 248 + CRLF is the 255
 * octets RFC 2449 allows a command line. */
#define LEGACY_POP3_CREDENTIAL_MAX 248

/* endpoint.tls: UPSTREAM_TLS_IMPLICIT is POP3S, _STARTTLS is STLS. */
struct legacy_pop3_server {
    struct upstream_endpoint endpoint;
    uint32_t max_messages;         /* 0: LEGACY_POP3_MAX_MESSAGES_DEFAULT */
};

enum legacy_pop3_result {
    LEGACY_POP3_OK = 0,
    LEGACY_POP3_AUTH_FAILED,       /* -ERR to USER or PASS (no code, or [AUTH]) */
    LEGACY_POP3_UNAVAILABLE,       /* -ERR greeting or STLS; -ERR [IN-USE],
                                      [LOGIN-DELAY] or [SYS/...] to USER/PASS, or
                                      any -ERR there when CAPA did not offer USER */
    LEGACY_POP3_IO_ERROR,          /* connect refused, reset, EOF, TLS failure */
    LEGACY_POP3_TLS_VERIFY_ERROR,  /* certificate did not verify or name mismatch */
    LEGACY_POP3_TIMEOUT,
    LEGACY_POP3_PROTOCOL_ERROR,    /* garbage, over-long line, no STLS offered,
                                      -ERR to STAT, UIDL or LIST */
    LEGACY_POP3_INVALID_ARGUMENT,  /* credentials, or TLS without a context */
    LEGACY_POP3_TOO_MANY_MESSAGES, /* STAT said more than max_messages */
};
const char *legacy_pop3_result_name(enum legacy_pop3_result r);

struct legacy_pop3_stats {
    uint32_t messages;             /* STAT's count */
    uint32_t delivered;            /* items handed out */
    uint32_t without_msgid;        /* of those, handed out with no Message-ID */
    uint32_t bad_uidl;             /* not handed out: no valid UIDL */
    uint32_t duplicate_uidl;       /* not handed out: UIDL shared with another */
    uint32_t no_size;              /* not handed out: no valid LIST size */
    uint32_t top_failed;           /* handed out without Message-ID: -ERR to TOP */
    uint32_t header_too_long;      /* handed out without Message-ID: over the bound */
};

struct legacy_pop3;

/* hash: the header hash (translate/header_hash.h, NUL-terminated hex) of
 * the TOP reply, or NULL when TOP failed or was not sent. */
typedef void legacy_pop3_item_cb(const char *uidl, size_t uidl_len, uint32_t size,
                                 const char *msgid, size_t msgid_len, const char *hash, void *arg);
/* p is valid for legacy_pop3_stats(), _last_error() and _free() during the call. */
typedef void legacy_pop3_done_cb(struct legacy_pop3 *p, enum legacy_pop3_result r, void *arg);

/* Starts the fetch. Returns NULL only when memory ran out (done is then not
 * called). */
struct legacy_pop3 *legacy_pop3_fetch(struct ev_loop *loop, const struct legacy_pop3_server *srv,
                                      const char *user, const char *pass,
                                      legacy_pop3_item_cb *item, legacy_pop3_done_cb *done,
                                      void *arg);
void legacy_pop3_free(struct legacy_pop3 *p);

/* Counters so far; final once done ran. Valid until legacy_pop3_free(). */
const struct legacy_pop3_stats *legacy_pop3_stats(const struct legacy_pop3 *p);
/* Why the fetch failed, or the server's -ERR text (printable ASCII, bounded),
 * for logs. "" when nothing went wrong. */
const char *legacy_pop3_last_error(const struct legacy_pop3 *p);

#endif
