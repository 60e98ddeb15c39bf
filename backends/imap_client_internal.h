/* imap_client_internal: what the three files of the IMAP client share, and
 * nothing outside them includes.
 *
 *   imap_client.c            the object, its operations' lifecycle, sending,
 *                            and the connect and login conversations
 *   imap_client_commands.c   the mailbox operations: arguments checked, the
 *                            command written
 *   imap_client_responses.c  what the server sends: lines and literals framed,
 *                            untagged data recorded, tagged replies completing
 *   imap_client_bodies.c     several whole bodies in one UID FETCH: each
 *                            literal attributed to its UID when its response ends
 *
 * The connection itself (stream, TLS, timers, deferred free, error text) is
 * io/upstream_conn.h, embedded as `conn`.
 */
#ifndef POPGATE_IMAP_CLIENT_INTERNAL_H
#define POPGATE_IMAP_CLIENT_INTERNAL_H

#include "imap_client.h"
#include "imap_parse.h"
#include "imap_quote.h"
#include "upstream_conn.h"

/* Longest special-use attribute asked for; RFC 6154 names are under 16. */
#define IMAP_SPECIAL_USE_MAX 64

enum imap_op {
    OP_NONE,
    OP_CONNECT,
    OP_LOGIN,
    OP_SELECT,
    OP_LISTING,
    OP_MESSAGE_IDS,
    OP_BODY,
    OP_BODIES,    /* imap_fetch_bodies: several whole bodies (imap_client_bodies.c) */
    OP_LIST,      /* special-use lookup */
    OP_COMMAND,   /* STORE, EXPUNGE, MOVE, COPY, NOOP: just the tagged result */
    OP_LOGOUT,
};

enum imap_step {
    STEP_NONE,
    STEP_TCP,                /* waiting for the TCP connect (and implicit TLS) */
    STEP_TLS,                /* waiting for the STARTTLS handshake */
    STEP_GREETING,
    STEP_CAPABILITY,         /* CAPABILITY before or after STARTTLS */
    STEP_STARTTLS,           /* STARTTLS sent */
    STEP_STARTTLS_ACCEPTED,  /* tagged OK read; handshake starts after the read */
    STEP_AUTH_CONTINUE,      /* AUTHENTICATE PLAIN sent without SASL-IR */
    STEP_LOGIN_LITERAL,      /* LOGIN waiting for "+" before the next segment */
    STEP_LOGIN,              /* LOGIN or AUTHENTICATE fully sent */
    STEP_CAPABILITY_AFTER_LOGIN,
    STEP_TAGGED,             /* any other command: waiting for its tagged reply */
};

struct imap_client {
    struct upstream_conn conn;      /* stream, TLS, timers, deferred free, last error */
    struct imap_reader reader;

    enum imap_op op;
    enum imap_step step;
    imap_done_cb *done;
    void *arg;
    char tag[IMAP_TAG_MAX + 1];
    unsigned tag_seq;
    bool write_ok;                  /* no write of the command being built failed */

    /* login */
    struct imap_login_command *login;  /* heap, wiped and freed after use */
    unsigned login_seg;
    char *sasl_response;            /* heap, wiped; sent after "+" without SASL-IR */
    bool caps_fresh;                /* capabilities were received during this op */
    const char *oauth_error_reply;  /* OAuth login: the answer to an error challenge; NULL otherwise */
    char oauth_challenge[128];      /* what the challenge said, put before the NO in the last error */

    /* listing, Message-IDs and body fetch */
    imap_listing_cb *item_cb;
    imap_message_id_cb *message_id_cb;
    struct imap_body_sink sink;
    bool *found;
    uint32_t body_uid;
    bool body_seen;                 /* the body literal began (only the first counts) */
    bool body_streaming;            /* literal bytes now go to the sink */
    uint64_t body_left;
    bool paused;                    /* the sink took fewer bytes than offered */
    enum imap_stable_ids listing_ids;  /* the stable id the listing asked for */
    bool listing_dates;             /* the listing asked for INTERNALDATE */
    imap_body_end_cb *body_end;     /* OP_BODIES: a FETCH response with a body ended */
    bool bodies_literal;            /* OP_BODIES: this FETCH response's body literal began */

    /* special-use lookup */
    char list_use[IMAP_SPECIAL_USE_MAX + 1];
    char *list_out;                 /* caller's buffer, list_cap octets */
    size_t list_cap;
    enum { LIST_NONE, LIST_FOUND, LIST_UNUSABLE } list_match;

    unsigned caps;
    bool sizes_estimated;           /* the greeting names a server whose RFC822.SIZE is an estimate */
    uint32_t uidvalidity;
    uint32_t exists;
    uint32_t uidnext;               /* [UIDNEXT] of the last SELECT; 0 = none */
    uint64_t highestmodseq;         /* [HIGHESTMODSEQ] of the last SELECT; 0 = none or [NOMODSEQ] */
    bool bye_seen;
    bool bye_throttled;             /* the BYE was a throttle: the close is one too */

    imap_throttle_cb *throttle_cb;  /* observer of throttle answers, may be NULL */
    void *throttle_arg;

    bool dead;                      /* the connection is gone; ops fail at once */
    enum imap_result dead_result;

    /* imap_select_listing: a SELECT whose reply is due before the listing's */
    bool select_pipelining;         /* the greeting names a server known to take it */
    char select_tag[IMAP_TAG_MAX + 1];  /* the SELECT's tag; "" once answered */
    imap_done_cb *selected_cb;
    imap_listing_cb *pending_item_cb;   /* becomes item_cb once the SELECT succeeded */
    enum imap_result select_result;     /* a failed SELECT's result, for the FETCH's reply */
};

/* imap_client.c: lifecycle of an operation. */
void imap_op_finish(struct imap_client *c, enum imap_result r);
void imap_op_finish_soon(struct imap_client *c, enum imap_result r);
void imap_mark_dead(struct imap_client *c, enum imap_result r, const char *msg);
/* A fatal condition seen while handling network input or a timer. */
void imap_io_fail(struct imap_client *c, enum imap_result r, const char *msg);
/* A fatal condition seen inside one of the caller's calls. */
void imap_api_fail(struct imap_client *c, enum imap_result r, const char *msg);
void imap_api_invalid(struct imap_client *c, const char *msg);
/* Start an operation. False if it already completed (dead connection). */
bool imap_op_begin(struct imap_client *c, enum imap_op op, imap_done_cb *done, void *arg);
void imap_clear_secrets(struct imap_client *c);
void imap_notify_throttle(struct imap_client *c, uint32_t suggested_ms);
void imap_set_error(struct imap_client *c, const char *msg);
void imap_set_error_span(struct imap_client *c, const char *prefix, const char *p, size_t len);

/* imap_client.c: sending. One command, one send: pieces queue until cmd_end. */
void imap_cmd_begin(struct imap_client *c);
void imap_cmd_put(struct imap_client *c, const char *p, size_t len);
void imap_cmd_puts(struct imap_client *c, const char *s);
bool imap_cmd_end(struct imap_client *c);
/* "<tag> <text>\r\n" for an operation begun by the caller. */
void imap_api_send(struct imap_client *c, const char *text);
/* A follow-up command from inside response handling. */
bool imap_io_send(struct imap_client *c, const char *text, enum imap_step next);

/* imap_client.c: the connect and login conversations. */
bool imap_read_caps(struct imap_client *c, const char *p, size_t len);
void imap_connect_caps_known(struct imap_client *c);
void imap_handle_greeting(struct imap_client *c, const struct imap_response *r);
void imap_handle_continuation(struct imap_client *c, const struct imap_response *r);

/* imap_client_commands.c: the listing's UID FETCH command written, not ended. */
void imap_write_listing(struct imap_client *c, bool dates, const char *tail);
/* imap_client.c: does the greeting name a server that takes a pipelined SELECT? */
bool imap_greeting_pipelines_select(const char *text, size_t len);
/* imap_client_bodies.c: OP_BODIES's part of reading responses. Is the
 * literal starting now (line: the response so far) a body to stream? And
 * a FETCH response (its parsed attributes) has ended. */
bool imap_bodies_literal_start(struct imap_client *c, const char *line, size_t len, uint64_t literal_len);
void imap_bodies_fetch_end(struct imap_client *c, const struct imap_fetch_attrs *a);

/* imap_client_responses.c: the bytes the server sends (ops->read). */
size_t imap_client_read(struct upstream_conn *u, const char *data, size_t len);

#endif
