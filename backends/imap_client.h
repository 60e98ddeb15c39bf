/* imap_client: an asynchronous, streaming IMAP4rev1 client on the libev loop.
 *
 * One imap_client is one upstream connection for one POP3 session. Every
 * operation is asynchronous: it queues a command, and its completion callback
 * runs exactly once with the outcome. Only one operation is in flight at a
 * time; starting a second while one runs is a programming error (assert).
 *
 * Message bodies are never held whole: imap_fetch_body() hands literal bytes to
 * the caller's sink as they arrive. When the sink takes fewer bytes than offered
 * the client stops reading the socket until imap_client_resume_body(); this is
 * how a slow POP3 client slows the upstream down.
 *
 * Lifetime: imap_client_free() may be called at any time, including from inside
 * one of its callbacks (the free is deferred until the callback returns). A
 * pending operation's callback is not called after free. A fatal connection
 * error completes the pending operation with IMAP_RESULT_IO_ERROR (or
 * _TIMEOUT / _PROTOCOL_ERROR) and every later operation fails at once the same way.
 */
#ifndef POPGATE_IMAP_CLIENT_H
#define POPGATE_IMAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "imap_result.h"
#include "upstream_conn.h"


/* Capabilities seen (after login they are re-read if the server sends them). */
enum {
    IMAP_CAP_STARTTLS   = 1u << 0,
    IMAP_CAP_SASL_IR    = 1u << 1,
    IMAP_CAP_AUTH_PLAIN = 1u << 2,
    IMAP_CAP_UIDPLUS    = 1u << 3,
    IMAP_CAP_MOVE       = 1u << 4,
    IMAP_CAP_OBJECTID   = 1u << 5,
    IMAP_CAP_LOGINDISABLED = 1u << 6,
    IMAP_CAP_SPECIAL_USE = 1u << 7,
    IMAP_CAP_X_GM_EXT_1 = 1u << 8,  /* Gmail: X-GM-MSGID, X-GM-LABELS */
    IMAP_CAP_CONDSTORE  = 1u << 9,  /* RFC 7162 (QRESYNC implies it) */
    IMAP_CAP_AUTH_XOAUTH2 = 1u << 10,     /* Google's and Microsoft's OAuth 2.0 SASL */
    IMAP_CAP_AUTH_OAUTHBEARER = 1u << 11, /* RFC 7628 */
};

/* Where the listing's stable message ids come from, by capability: EMAILID
 * (RFC 8474 OBJECTID) first, else Gmail's X-GM-MSGID (X-GM-EXT-1), else none
 * (state ids then hang on UIDVALIDITY and UID). Both survive a UIDVALIDITY
 * change. */
enum imap_stable_ids { IMAP_IDS_NONE, IMAP_IDS_EMAILID, IMAP_IDS_X_GM_MSGID };


struct imap_client;

typedef void imap_done_cb(struct imap_client *c, enum imap_result r, void *arg);

/* One message of the listing, in mailbox order. */
struct imap_listing_item {
    uint32_t uid;
    uint32_t size;                 /* RFC822.SIZE */
    uint32_t internaldate;         /* INTERNALDATE (when asked for) as seconds since the epoch (UTC);
                                      dates before 1970 read as 0, after 2106 as
                                      UINT32_MAX (APPEND may set any year) */
    bool seen;                     /* \Seen flag */
    bool deleted;                  /* \Deleted flag */
    /* EMAILID (RFC 8474), fetched when the server has OBJECTID; NULL and 0
     * otherwise. Valid only during the callback. */
    const char *emailid;
    size_t emailid_len;
    /* X-GM-MSGID, fetched when the server has X-GM-EXT-1 and no OBJECTID;
     * 0 otherwise. */
    uint64_t x_gm_msgid;
};
typedef void imap_listing_cb(const struct imap_listing_item *item, void *arg);

/* One message's Message-ID as message_id_extract() gives it: msgid is
 * NUL-terminated, msgid_len octets (3..UIDL_MSGID_MAX), valid only during the
 * call; "" and 0 when the message has none, a malformed one, two of them, or
 * a Message-ID header longer than IMAP_MESSAGE_ID_HEADER_MAX. */
typedef void imap_message_id_cb(uint32_t uid, const char *msgid, size_t msgid_len, void *arg);
/* Longest BODY[HEADER.FIELDS (MESSAGE-ID)] literal read: a few hundred octets
 * in practice. A longer one is skipped as it streams past, never buffered. */
#define IMAP_MESSAGE_ID_HEADER_MAX (8 * 1024)

/* Body sink: returns how many of len bytes it took. Taking fewer pauses the
 * upstream; resume with imap_client_resume_body(). `section_start` is called
 * when a body literal begins, with its announced length. */
struct imap_body_sink {
    void (*section_start)(uint64_t literal_len, void *arg);
    size_t (*data)(const char *data, size_t len, void *arg);
};

/* The endpoint's connect_timeout bounds TCP connect, TLS and the greeting;
 * its command_timeout is the longest the server may go without sending a
 * byte while a command's reply is awaited. */
struct imap_client *imap_client_new(struct ev_loop *loop, const struct upstream_endpoint *up);
void imap_client_free(struct imap_client *c);

/* Told whenever the server answers with a throttle (IMAP_RESULT_THROTTLED),
 * before the operation's own callback runs: suggested_ms is the backoff the
 * server named (Office 365), 0 when it named none. The observer must not
 * free the client or start an operation; it is for remembering the backoff. */
typedef void imap_throttle_cb(uint32_t suggested_ms, void *arg);
void imap_client_on_throttle(struct imap_client *c, imap_throttle_cb *cb, void *arg);

/* TCP connect, TLS (implicit or STARTTLS), greeting, CAPABILITY. */
void imap_connect(struct imap_client *c, imap_done_cb *done, void *arg);

/* AUTHENTICATE PLAIN with SASL-IR when advertised, else LOGIN with a quoted
 * string or a literal. CR, LF or NUL in user/pass: IMAP_RESULT_INVALID_ARGUMENT
 * without sending anything. */
void imap_login(struct imap_client *c, const char *user, const char *pass,
                imap_done_cb *done, void *arg);

/* AUTHENTICATE with an OAuth 2.0 access token: OAUTHBEARER (RFC 7628) when
 * the server's CAPABILITY offers it, else XOAUTH2; with SASL-IR when
 * offered. host and port go into OAUTHBEARER's response (the server's name
 * as configured). Neither mechanism offered: IMAP_RESULT_UNAVAILABLE with
 * nothing sent. A refused token: the server's error challenge is answered as
 * the mechanism asks, its status and scope kept for imap_client_last_error()
 * (the challenge holds no secret), then IMAP_RESULT_AUTH_FAILED. The token
 * is copied once into a heap buffer that is wiped after it is sent. */
void imap_authenticate_oauth(struct imap_client *c, const char *user, const char *host, unsigned port,
                             const char *token, imap_done_cb *done, void *arg);

/* SELECT (read-write), with the CONDSTORE parameter (RFC 7162) where the
 * server has it. After OK, imap_client_uidvalidity() and _exists() are
 * valid, and _uidnext() and _highestmodseq() are what the server reported:
 * 0 when it did not, and a HIGHESTMODSEQ of 0 after [NOMODSEQ] (a folder
 * without mod-sequences). EXISTS is kept up to date afterwards. */
void imap_select(struct imap_client *c, const char *mailbox, imap_done_cb *done, void *arg);
uint32_t imap_client_uidvalidity(const struct imap_client *c);
uint32_t imap_client_exists(const struct imap_client *c);
uint32_t imap_client_uidnext(const struct imap_client *c);
uint64_t imap_client_highestmodseq(const struct imap_client *c);
unsigned imap_client_caps(const struct imap_client *c);
enum imap_stable_ids imap_client_stable_ids(const struct imap_client *c);

/* UID FETCH 1:* (UID FLAGS RFC822.SIZE [INTERNALDATE] [EMAILID|X-GM-MSGID]);
 * item_cb once per message in mailbox order. INTERNALDATE only with dates
 * (item.internaldate is 0 without): on a Maildir it costs the server a
 * stat() per message, most of its time in a listing of a large folder. The
 * stable id asked for is imap_client_stable_ids()'s; a message the server
 * lists without it is no listing item (as one without RFC822.SIZE). */
void imap_fetch_listing(struct imap_client *c, bool dates, imap_listing_cb *item_cb,
                        imap_done_cb *done, void *arg);
/* The same listing of the messages whose mod-sequence is above modseq only:
 * flag changes and new mail since a SELECT that reported HIGHESTMODSEQ
 * modseq (UID FETCH 1:* (...) (CHANGEDSINCE modseq), RFC 7162). Expunges
 * are not reported: compare with EXISTS. Needs IMAP_CAP_CONDSTORE
 * (IMAP_RESULT_NO without it, nothing sent). */
void imap_fetch_listing_changed(struct imap_client *c, uint64_t modseq, bool dates,
                                imap_listing_cb *item_cb, imap_done_cb *done, void *arg);

/* Whether this server is known to take the listing's UID FETCH sent right
 * behind its SELECT, without waiting for the SELECT's reply: by the
 * greeting, Dovecot, Cyrus and Courier (tests/integration/test_pipelining.py
 * checks each); any other server gets one command at a time. */
bool imap_client_pipelines_select(const struct imap_client *c);

/* SELECT as imap_select() with the listing's UID FETCH as
 * imap_fetch_listing() (changedsince 0) or imap_fetch_listing_changed()
 * (changedsince > 0, CONDSTORE needed) pipelined behind it: one round trip
 * for both. `selected` runs when the SELECT's OK arrives, with the
 * accessors valid as after imap_select(); it must not free the client or
 * start an operation (the FETCH is still under way; freeing it is allowed). item_cb then runs for
 * the FETCH's items, and `done` once with the FETCH's result. A SELECT that
 * fails completes the whole operation with the SELECT's result and error
 * text (`selected` never runs, no item is passed; the FETCH's own refusal
 * is read and dropped). Only where imap_client_pipelines_select(). */
void imap_select_listing(struct imap_client *c, const char *mailbox, uint64_t changedsince, bool dates,
                         imap_done_cb *selected, imap_listing_cb *item_cb, imap_done_cb *done, void *arg);

/* UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]); item_cb once
 * per message in mailbox order; a FETCH without that item (a flag change
 * the server reports meanwhile) is no item. Sets no flag (PEEK). Memory: a
 * header within the bound joins the response line as a quoted string (at
 * most 2 * IMAP_MESSAGE_ID_HEADER_MAX + 2 octets escaped, well within
 * IMAP_LINE_MAX, released after the line) and is unescaped into a buffer of
 * IMAP_MESSAGE_ID_HEADER_MAX + 1 octets on the stack. */
void imap_fetch_message_ids(struct imap_client *c, imap_message_id_cb *item_cb,
                            imap_done_cb *done, void *arg);

/* UID FETCH <uid> (BODY.PEEK[<section>]<<offset>.<length>>).
 * section: "" for the whole message, "HEADER", "TEXT". length 0 means no
 * partial range. The sink gets the literal's bytes as they arrive. On OK,
 * *found (set before done runs) tells whether the server returned the body at
 * all: a UID expunged upstream yields OK with no body. */
void imap_fetch_body(struct imap_client *c, uint32_t uid, const char *section,
                     uint64_t offset, uint64_t length, const struct imap_body_sink *sink,
                     bool *found, imap_done_cb *done, void *arg);
void imap_client_resume_body(struct imap_client *c);

/* UID FETCH <uidset> (UID BODY.PEEK[]): the whole bodies of several messages
 * in one command (prefetch, see proxy/session_prefetch.c). Sets no flag
 * (PEEK). For each FETCH response that carries a BODY[] literal, in the
 * order the server sends them (any order, not the UID set's): the sink's
 * section_start(literal_len), its data for the literal's bytes, then
 * body_end(uid) once that FETCH response has ended, since the server may
 * put UID before or after the literal: only then is the body attributed.
 * uid is 0 when the response named none. A UID the server returns no
 * literal for (expunged meanwhile, or a NIL or quoted-string body) gets no
 * call at all: the caller treats it as not fetched, and a later
 * imap_fetch_body() of it reports found as it always did. Memory: the
 * client holds no body byte; the sink may take fewer bytes than offered
 * (the upstream pauses until imap_client_resume_body(), as for
 * imap_fetch_body), and a sink that takes every byte holds at most what it
 * chooses to keep. uidset as for imap_store_add_flags. */
typedef void imap_body_end_cb(uint32_t uid, void *arg);
void imap_fetch_bodies(struct imap_client *c, const char *uidset, const struct imap_body_sink *sink,
                       imap_body_end_cb *body_end, imap_done_cb *done, void *arg);

/* UID STORE <uidset> +FLAGS.SILENT (<flags>); uidset like "3,7,9:12". */
void imap_store_add_flags(struct imap_client *c, const char *uidset, const char *flags,
                          imap_done_cb *done, void *arg);
/* UID EXPUNGE <uidset> (requires UIDPLUS: IMAP_RESULT_NO without it). */
void imap_uid_expunge(struct imap_client *c, const char *uidset, imap_done_cb *done, void *arg);
/* UID MOVE or COPY (+ caller's store/expunge) to a mailbox. */
void imap_uid_move(struct imap_client *c, const char *uidset, const char *mailbox,
                   imap_done_cb *done, void *arg);
void imap_uid_copy(struct imap_client *c, const char *uidset, const char *mailbox,
                   imap_done_cb *done, void *arg);
/* Find the mailbox with a special-use attribute (RFC 6154), e.g. "\\Trash":
 * LIST (SPECIAL-USE) "" "*" where SPECIAL-USE is advertised, else LIST "" "*"
 * and the attributes it returns. OK with the name in name_out (NUL-terminated,
 * at most name_cap - 1 bytes), NO when no mailbox has it or its name does not
 * fit. name_out belongs to the caller and must stay valid until done runs or
 * the client is freed; it holds "" unless the result is OK. */
void imap_find_special_use(struct imap_client *c, const char *use, char *name_out, size_t name_cap,
                           imap_done_cb *done, void *arg);
/* NOOP: lets the server report EXPUNGE/EXISTS; keeps the connection alive. */
void imap_noop(struct imap_client *c, imap_done_cb *done, void *arg);
void imap_logout(struct imap_client *c, imap_done_cb *done, void *arg);

/* The server's greeting names one known to report estimated RFC822.SIZE
 * values (Microsoft Exchange): LIST cannot trust them (exact_sizes = auto). */
bool imap_client_sizes_estimated(const struct imap_client *c);

/* Text of the last tagged NO/BAD or BYE (sanitised, bounded), for logs. */
const char *imap_client_last_error(const struct imap_client *c);

#endif
