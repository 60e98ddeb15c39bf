/* imap_client: see imap_client.h for the contract.
 *
 * Shape: one operation at a time. Each operation is a short sequence of steps
 * (connect: TCP, TLS, greeting, CAPABILITY, STARTTLS, ...; login: LOGIN or
 * AUTHENTICATE, maybe CAPABILITY), driven by the responses that imap_parse
 * frames out of the byte stream. Untagged responses are handled the same way
 * whatever operation is running, so EXISTS, EXPUNGE or flag changes may
 * arrive at any time.
 *
 * Completion rules, so no caller is re-entered unexpectedly:
 * - an outcome caused by network input, a timer or the stream's callbacks
 *   completes the operation directly from that event;
 * - an outcome known while the caller is still inside one of our functions
 *   (bad argument, dead connection, failed write) completes from a zero-delay
 *   timer on the next loop iteration, never from inside the call.
 *
 * Ownership: the client copies struct imap_upstream, duplicates verify_name and
 * holds a reference on tls_ctx, so the caller's configuration may be reloaded
 * while the connection lives.
 */
#include "imap_client.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"
#include "imap_quote.h"
#include "message_id.h"
#include "net_stream.h"
#include "safe_text.h"

/* last_error: octets kept, NUL included. Enough for a server's NO text. */
#define IMAP_LAST_ERROR_MAX 256
/* Literals that are not the body being fetched and are at most this long are
 * absorbed into the response line as strings; longer ones are read and
 * dropped. A mailbox name or a flag sent as literal is far shorter. */
#define IMAP_SMALL_LITERAL_MAX 4096
/* Longest UID set accepted by the store/expunge/move/copy commands. Dovecot
 * accepts command lines of 64 KiB; callers with more UIDs split the work. */
#define IMAP_UIDSET_MAX (60 * 1024)
/* Longest flag list for STORE and section name for FETCH. */
#define IMAP_FLAGS_MAX 512
#define IMAP_SECTION_MAX 64
/* Longest mailbox name, before quoting. */
#define IMAP_MAILBOX_MAX 1024
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
    OP_LIST,      /* special-use lookup */
    OP_COMMAND,   /* STORE, EXPUNGE, MOVE, COPY, NOOP: just the tagged result */
    OP_LOGOUT,
};

enum imap_step {
    STEP_NONE,
    STEP_TCP,                /* waiting for the TCP connect */
    STEP_TLS,                /* waiting for a TLS handshake */
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
    struct ev_loop *loop;
    struct imap_upstream up;        /* copy; verify_name owned, tls_ctx referenced */
    char *verify_name;              /* heap copy that up.verify_name points to */
    struct net_stream *stream;      /* NULL before connect and once dead */
    struct imap_reader reader;

    ev_timer op_timer;              /* connect deadline or command inactivity */
    ev_timer soon_timer;            /* deferred completion, see the top of the file */
    bool timer_on_progress;         /* op_timer counts from the last input */
    double timer_span;
    ev_tstamp last_progress;

    enum imap_op op;
    enum imap_step step;
    imap_done_cb *done;
    void *arg;
    enum imap_result soon_result;
    char tag[IMAP_TAG_MAX + 1];
    unsigned tag_seq;
    bool write_ok;                  /* no write of the command being built failed */

    /* login */
    struct imap_login_command *login;  /* heap, wiped and freed after use */
    unsigned login_seg;
    char *sasl_response;            /* heap, wiped; sent after "+" without SASL-IR */
    bool caps_fresh;                /* capabilities were received during this op */

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

    /* special-use lookup */
    char list_use[IMAP_SPECIAL_USE_MAX + 1];
    char *list_out;                 /* caller's buffer, list_cap octets */
    size_t list_cap;
    enum { LIST_NONE, LIST_FOUND, LIST_UNUSABLE } list_match;

    unsigned caps;
    bool sizes_estimated;           /* the greeting names a server whose RFC822.SIZE is an estimate */
    uint32_t uidvalidity;
    uint32_t exists;
    bool tls_active;
    bool bye_seen;
    bool bye_throttled;             /* the BYE was a throttle: the close is one too */

    imap_throttle_cb *throttle_cb;  /* observer of throttle answers, may be NULL */
    void *throttle_arg;

    bool dead;                      /* the connection is gone; ops fail at once */
    enum imap_result dead_result;

    int in_cb;                      /* >0 while an event of ours is being handled */
    bool free_pending;

    char last_error[IMAP_LAST_ERROR_MAX];
};

static size_t on_read(struct net_stream *s, const char *data, size_t len, void *arg);
static void on_close(struct net_stream *s, enum net_stream_error err, void *arg);

static const struct net_stream_callbacks stream_callbacks = {
    .on_read = on_read,
    .on_drain = NULL,
    .on_close = on_close,
};

/* ---- errors text ---------------------------------------------------------- */

/* Server text goes into logs: keep printable ASCII only, bounded. */
static void set_error_span(struct imap_client *c, const char *prefix, const char *p, size_t len)
{
    safe_text_copy(c->last_error, sizeof c->last_error, prefix, p, len);
}

static void set_error(struct imap_client *c, const char *msg)
{
    set_error_span(c, "", msg, strlen(msg));
}

/* ---- callbacks and lifetime ------------------------------------------------ */

static void destroy(struct imap_client *c)
{
    ev_timer_stop(c->loop, &c->op_timer);
    ev_timer_stop(c->loop, &c->soon_timer);
    net_stream_free(c->stream);
    imap_reader_deinit(&c->reader);
    if (c->login) {
        imap_login_command_wipe(c->login);
        free(c->login);
    }
    if (c->sasl_response) {
        explicit_bzero(c->sasl_response, strlen(c->sasl_response));
        free(c->sasl_response);
    }
    if (c->up.tls_ctx)
        SSL_CTX_free(c->up.tls_ctx);
    free(c->verify_name);
    free(c);
}

static void enter(struct imap_client *c)
{
    c->in_cb++;
}

/* Returns true if the client was destroyed: the caller must not touch it. */
static bool leave(struct imap_client *c)
{
    if (--c->in_cb == 0 && c->free_pending) {
        destroy(c);
        return true;
    }
    return false;
}

static void clear_secrets(struct imap_client *c)
{
    if (c->login) {
        imap_login_command_wipe(c->login);
        free(c->login);
        c->login = NULL;
    }
    if (c->sasl_response) {
        explicit_bzero(c->sasl_response, strlen(c->sasl_response));
        free(c->sasl_response);
        c->sasl_response = NULL;
    }
}

/* Complete the running operation with r and call its callback. */
static void finish(struct imap_client *c, enum imap_result r)
{
    imap_done_cb *done = c->done;
    void *arg = c->arg;
    ev_timer_stop(c->loop, &c->op_timer);
    ev_timer_stop(c->loop, &c->soon_timer);
    clear_secrets(c);
    c->op = OP_NONE;
    c->step = STEP_NONE;
    c->done = NULL;
    c->arg = NULL;
    c->item_cb = NULL;
    c->message_id_cb = NULL;
    c->found = NULL;
    c->list_out = NULL;
    c->body_streaming = false;
    c->paused = false;
    if (done) {
        c->in_cb++;
        done(c, r, arg);
        c->in_cb--;
    }
}

static void soon_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct imap_client *c = w->data;
    enter(c);
    finish(c, c->soon_result);
    leave(c);
}

/* Complete the running operation from the loop, not from the caller's call. */
static void finish_soon(struct imap_client *c, enum imap_result r)
{
    ev_timer_stop(c->loop, &c->op_timer);
    c->soon_result = r;
    ev_timer_set(&c->soon_timer, 0., 0.);
    ev_timer_start(c->loop, &c->soon_timer);
}

/* The connection is unusable from now on. */
static void mark_dead(struct imap_client *c, enum imap_result r, const char *msg)
{
    if (c->dead)
        return;
    c->dead = true;
    c->dead_result = r;
    if (msg)
        set_error(c, msg);
    net_stream_free(c->stream);
    c->stream = NULL;
    clear_secrets(c);
}

/* A fatal condition seen while handling network input or a timer. */
static void io_fail(struct imap_client *c, enum imap_result r, const char *msg)
{
    mark_dead(c, r, msg);
    if (c->op != OP_NONE)
        finish(c, r);
}

/* A fatal condition seen inside one of the caller's calls. */
static void api_fail(struct imap_client *c, enum imap_result r, const char *msg)
{
    mark_dead(c, r, msg);
    finish_soon(c, r);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct imap_client *c = w->data;
    if (c->timer_on_progress) {
        ev_tstamp left = c->last_progress + c->timer_span - ev_now(loop);
        if (left > 0.) {
            ev_timer_set(w, left, 0.);
            ev_timer_start(loop, w);
            return;
        }
    }
    enter(c);
    io_fail(c, IMAP_RESULT_TIMEOUT, c->op == OP_CONNECT ? "connect timed out"
                                                        : "upstream command timed out");
    leave(c);
}

/* Start the timer: a deadline for connect, an inactivity limit for commands
 * (pushed back by every byte that arrives). A span <= 0 disables it. */
static void timer_arm(struct imap_client *c, double span, bool on_progress)
{
    ev_timer_stop(c->loop, &c->op_timer);
    if (span <= 0.)
        return;
    c->timer_span = span;
    c->timer_on_progress = on_progress;
    c->last_progress = ev_now(c->loop);
    ev_timer_set(&c->op_timer, span, 0.);
    ev_timer_start(c->loop, &c->op_timer);
}

struct imap_client *imap_client_new(struct ev_loop *loop, const struct imap_upstream *up)
{
    struct imap_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->up = *up;
    if (up->verify_name) {
        c->verify_name = strdup(up->verify_name);
        if (c->verify_name == NULL) {
            free(c);
            return NULL;
        }
    }
    c->up.verify_name = c->verify_name;
    if (c->up.tls_ctx)
        SSL_CTX_up_ref(c->up.tls_ctx);
    imap_reader_init(&c->reader);
    ev_timer_init(&c->op_timer, timer_cb, 0., 0.);
    ev_timer_init(&c->soon_timer, soon_cb, 0., 0.);
    c->op_timer.data = c->soon_timer.data = c;
    return c;
}

void imap_client_free(struct imap_client *c)
{
    if (c == NULL)
        return;
    /* No callback of the pending operation runs after this. */
    c->done = NULL;
    c->item_cb = NULL;
    c->message_id_cb = NULL;
    c->list_out = NULL;
    c->sink.section_start = NULL;
    c->sink.data = NULL;
    if (c->in_cb > 0) {
        c->free_pending = true;
        ev_timer_stop(c->loop, &c->op_timer);
        ev_timer_stop(c->loop, &c->soon_timer);
        return;
    }
    destroy(c);
}

void imap_client_on_throttle(struct imap_client *c, imap_throttle_cb *cb, void *arg)
{
    c->throttle_cb = cb;
    c->throttle_arg = arg;
}

/* A throttle answer arrived: tell the observer (it only records). */
static void notify_throttle(struct imap_client *c, uint32_t suggested_ms)
{
    if (!c->throttle_cb)
        return;
    c->in_cb++;
    c->throttle_cb(suggested_ms, c->throttle_arg);
    c->in_cb--;
}

/* ---- sending commands ------------------------------------------------------ */

static void cmd_put(struct imap_client *c, const char *p, size_t len)
{
    if (c->write_ok && !net_stream_write(c->stream, p, len))
        c->write_ok = false;
}

static void cmd_puts(struct imap_client *c, const char *s)
{
    cmd_put(c, s, strlen(s));
}

static void next_tag(struct imap_client *c)
{
    c->tag_seq = c->tag_seq % 9999 + 1;
    snprintf(c->tag, sizeof c->tag, "A%04u", c->tag_seq);
    c->write_ok = true;
}

/* New tag, "<tag> " written. */
static void cmd_begin(struct imap_client *c)
{
    /* One command, one send(): the pieces queue until cmd_end. */
    net_stream_cork(c->stream);
    next_tag(c);
    cmd_puts(c, c->tag);
    cmd_put(c, " ", 1);
}

static bool cmd_end(struct imap_client *c)
{
    cmd_put(c, "\r\n", 2);
    net_stream_uncork(c->stream);
    return c->write_ok;
}

/* Start an operation. False if it already completed (dead connection). */
static bool op_begin(struct imap_client *c, enum imap_op op, imap_done_cb *done, void *arg)
{
    assert(c->op == OP_NONE && "one imap_client operation at a time");
    assert(!c->free_pending);
    c->op = op;
    c->step = STEP_TAGGED;
    c->done = done;
    c->arg = arg;
    c->caps_fresh = false;
    if (c->dead) {
        finish_soon(c, c->dead_result);
        return false;
    }
    assert(c->stream != NULL || op == OP_CONNECT);
    return true;
}

/* Send "<tag> <text>\r\n" for an operation begun by the caller. */
static void api_send(struct imap_client *c, const char *text)
{
    cmd_begin(c);
    cmd_puts(c, text);
    if (!cmd_end(c)) {
        api_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return;
    }
    timer_arm(c, c->up.command_timeout, true);
}

/* Send a follow-up command from inside response handling. */
static bool io_send(struct imap_client *c, const char *text, enum imap_step next)
{
    cmd_begin(c);
    cmd_puts(c, text);
    if (!cmd_end(c)) {
        io_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return false;
    }
    c->step = next;
    return true;
}

static void api_invalid(struct imap_client *c, const char *msg)
{
    set_error(c, msg);
    finish_soon(c, IMAP_RESULT_INVALID_ARGUMENT);
}

/* ---- capabilities ------------------------------------------------------------ */

static const struct {
    const char *name;
    unsigned bit;
} cap_names[] = {
    { "STARTTLS", IMAP_CAP_STARTTLS },
    { "SASL-IR", IMAP_CAP_SASL_IR },
    { "AUTH=PLAIN", IMAP_CAP_AUTH_PLAIN },
    { "UIDPLUS", IMAP_CAP_UIDPLUS },
    { "MOVE", IMAP_CAP_MOVE },
    { "OBJECTID", IMAP_CAP_OBJECTID },
    { "LOGINDISABLED", IMAP_CAP_LOGINDISABLED },
    { "SPECIAL-USE", IMAP_CAP_SPECIAL_USE },
    { "X-GM-EXT-1", IMAP_CAP_X_GM_EXT_1 },
};

/* A capability list replaces what was known before (RFC 3501 6.1.1). */
static bool read_caps(struct imap_client *c, const char *p, size_t len)
{
    struct imap_tokenizer t;
    struct imap_token tok;
    unsigned caps = 0;
    imap_tokenizer_init(&t, p, len);
    for (;;) {
        enum imap_token_type ty = imap_next_token(&t, &tok);
        if (ty == IMAP_TOK_END)
            break;
        if (ty != IMAP_TOK_ATOM)
            return false;
        for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++)
            if (imap_token_is(&tok, cap_names[i].name))
                caps |= cap_names[i].bit;
    }
    c->caps = caps;
    c->caps_fresh = true;
    return true;
}

/* ---- connect ------------------------------------------------------------------- */

static void connect_finished_caps(struct imap_client *c);

static void tls_done(struct net_stream *s, bool ok, enum net_stream_error err, void *arg)
{
    (void)s;
    struct imap_client *c = arg;
    enter(c);
    if (!ok) {
        io_fail(c, err == NET_STREAM_TLS_VERIFY_ERROR ? IMAP_RESULT_TLS_VERIFY_ERROR
                   : err == NET_STREAM_TIMEOUT ? IMAP_RESULT_TIMEOUT : IMAP_RESULT_IO_ERROR,
                err == NET_STREAM_TLS_VERIFY_ERROR ? "upstream certificate did not verify"
                                                   : "TLS handshake with upstream failed");
    } else {
        c->tls_active = true;
        if (c->step == STEP_TLS && c->up.tls == IMAP_TLS_IMPLICIT) {
            c->step = STEP_GREETING;
        } else {
            /* RFC 3501 6.2.1: capabilities from before STARTTLS are void. */
            c->caps = 0;
            io_send(c, "CAPABILITY", STEP_CAPABILITY);
        }
    }
    leave(c);
}

static void start_tls(struct imap_client *c)
{
    c->step = STEP_TLS;
    net_stream_start_tls(c->stream, c->up.tls_ctx, false, c->up.verify_name,
                         c->up.connect_timeout, tls_done);
}

static void connect_done(struct net_stream *s, bool ok, enum net_stream_error err, void *arg)
{
    (void)s;
    struct imap_client *c = arg;
    enter(c);
    if (!ok) {
        io_fail(c, err == NET_STREAM_TIMEOUT ? IMAP_RESULT_TIMEOUT : IMAP_RESULT_IO_ERROR,
                err == NET_STREAM_TIMEOUT ? "connect to upstream timed out"
                                          : "connect to upstream failed");
    } else if (c->up.tls == IMAP_TLS_IMPLICIT) {
        start_tls(c);
    } else {
        c->step = STEP_GREETING;
    }
    leave(c);
}

void imap_connect(struct imap_client *c, imap_done_cb *done, void *arg)
{
    assert(c->stream == NULL && "imap_connect once per client");
    if (!op_begin(c, OP_CONNECT, done, arg))
        return;
    if (c->up.tls != IMAP_TLS_NONE && c->up.tls_ctx == NULL) {
        api_invalid(c, "TLS requested without a TLS context");
        return;
    }
    c->step = STEP_TCP;
    c->stream = net_stream_connect(c->loop, (const struct sockaddr *)&c->up.addr, c->up.addrlen,
                                   c->up.connect_timeout, &stream_callbacks, c, connect_done);
    if (c->stream == NULL) {
        api_fail(c, IMAP_RESULT_IO_ERROR, "cannot create upstream socket");
        return;
    }
    timer_arm(c, c->up.connect_timeout, false);
}

/* Capabilities are known (from the greeting or CAPABILITY): STARTTLS next,
 * or done. */
static void connect_finished_caps(struct imap_client *c)
{
    if (c->up.tls == IMAP_TLS_STARTTLS && !c->tls_active) {
        if (!(c->caps & IMAP_CAP_STARTTLS)) {
            /* Carrying on in plaintext would expose the password. */
            io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "upstream does not offer STARTTLS");
            return;
        }
        io_send(c, "STARTTLS", STEP_STARTTLS);
        return;
    }
    finish(c, IMAP_RESULT_OK);
}

static void handle_greeting(struct imap_client *c, const struct imap_response *r)
{
    if (r->type != IMAP_RESP_UNTAGGED || r->status == IMAP_STATUS_NONE ||
        r->status == IMAP_STATUS_NO || r->status == IMAP_STATUS_BAD) {
        io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "upstream greeting is not * OK");
        return;
    }
    if (r->status == IMAP_STATUS_BYE) {
        /* "Too many connections" greetings: a throttle, or just unavailable. */
        uint32_t ms;
        enum imap_result res = imap_response_throttled(r, &ms) ? IMAP_RESULT_THROTTLED
                                                               : IMAP_RESULT_UNAVAILABLE;
        set_error_span(c, "BYE ", r->text, r->text_len);
        mark_dead(c, res, NULL);
        if (res == IMAP_RESULT_THROTTLED)
            notify_throttle(c, ms);
        finish(c, res);
        return;
    }
    if (r->status == IMAP_STATUS_PREAUTH) {
        /* The gateway authenticates users through upstream LOGIN; a connection
         * that is already logged in would accept any password. */
        io_fail(c, IMAP_RESULT_UNAVAILABLE, "upstream greeted with PREAUTH");
        return;
    }
    /* Exchange (Online and on-premises) greets "The Microsoft Exchange IMAP4
     * service is ready." and reports an estimated RFC822.SIZE unless an
     * administrator turned on ImapEnableExactRFC822Size per mailbox. */
    static const char exchange[] = "Microsoft Exchange";
    c->sizes_estimated = memmem(r->text, r->text_len, exchange, sizeof exchange - 1) != NULL;
    if (imap_resp_code_is(r, "CAPABILITY")) {
        if (!read_caps(c, r->code_args, r->code_args_len)) {
            io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed CAPABILITY in greeting");
            return;
        }
        connect_finished_caps(c);
        return;
    }
    io_send(c, "CAPABILITY", STEP_CAPABILITY);
}

/* ---- login ------------------------------------------------------------------------ */

static bool has_forbidden_octet(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

void imap_login(struct imap_client *c, const char *user, const char *pass,
                imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_LOGIN, done, arg))
        return;
    /* C strings cannot hold NUL; CR and LF are refused in every form. */
    if (has_forbidden_octet(user) || has_forbidden_octet(pass)) {
        api_invalid(c, "credentials contain CR or LF");
        return;
    }
    size_t ulen = strlen(user), plen = strlen(pass);
    if (ulen > IMAP_CREDENTIAL_MAX || plen > IMAP_CREDENTIAL_MAX) {
        api_invalid(c, "credentials too long");
        return;
    }

    if (c->caps & IMAP_CAP_AUTH_PLAIN) {
        char *resp = malloc(IMAP_SASL_PLAIN_MAX);
        if (resp == NULL) {
            api_fail(c, IMAP_RESULT_IO_ERROR, "out of memory");
            return;
        }
        if (imap_sasl_plain(resp, IMAP_SASL_PLAIN_MAX, user, ulen, pass, plen) != IMAP_QUOTE_OK) {
            free(resp);
            api_invalid(c, "credentials cannot be encoded");
            return;
        }
        cmd_begin(c);
        if (c->caps & IMAP_CAP_SASL_IR) {
            cmd_puts(c, "AUTHENTICATE PLAIN ");
            cmd_puts(c, resp);
            explicit_bzero(resp, strlen(resp));
            free(resp);
            c->step = STEP_LOGIN;
        } else {
            cmd_puts(c, "AUTHENTICATE PLAIN");
            c->sasl_response = resp;
            c->step = STEP_AUTH_CONTINUE;
        }
        cmd_end(c);
    } else if (c->caps & IMAP_CAP_LOGINDISABLED) {
        set_error(c, "upstream has LOGINDISABLED and no AUTH=PLAIN");
        finish_soon(c, IMAP_RESULT_UNAVAILABLE);
        return;
    } else {
        c->login = malloc(sizeof *c->login);
        if (c->login == NULL) {
            api_fail(c, IMAP_RESULT_IO_ERROR, "out of memory");
            return;
        }
        next_tag(c);
        if (imap_login_command(c->login, c->tag, user, ulen, pass, plen) != IMAP_QUOTE_OK) {
            api_invalid(c, "credentials cannot be encoded");
            return;
        }
        /* Up to the first literal's "{N}\r\n", or the whole command. */
        cmd_put(c, c->login->buf, c->login->seg_end[0]);
        c->login_seg = 1;
        c->step = c->login->nsegs > 1 ? STEP_LOGIN_LITERAL : STEP_LOGIN;
    }
    if (!c->write_ok) {
        api_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return;
    }
    timer_arm(c, c->up.command_timeout, true);
}

/* A "+" continuation: the next piece of LOGIN or AUTHENTICATE goes out. */
static void handle_continuation(struct imap_client *c)
{
    if (c->step == STEP_AUTH_CONTINUE && c->sasl_response) {
        c->write_ok = true;
        cmd_puts(c, c->sasl_response);
        bool ok = cmd_end(c);
        clear_secrets(c);
        if (!ok) {
            io_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
            return;
        }
        c->step = STEP_LOGIN;
        return;
    }
    if (c->step == STEP_LOGIN_LITERAL && c->login && c->login_seg < c->login->nsegs) {
        size_t start = c->login->seg_end[c->login_seg - 1];
        c->write_ok = true;
        cmd_put(c, c->login->buf + start, c->login->seg_end[c->login_seg] - start);
        c->login_seg++;
        if (!c->write_ok) {
            io_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
            return;
        }
        if (c->login_seg == c->login->nsegs) {
            clear_secrets(c);
            c->step = STEP_LOGIN;
        }
        return;
    }
    io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "unexpected continuation from upstream");
}

/* ---- other operations ------------------------------------------------------------ */

void imap_select(struct imap_client *c, const char *mailbox, imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_SELECT, done, arg))
        return;
    char cmd[sizeof "SELECT " + IMAP_QUOTED_MAX(IMAP_MAILBOX_MAX)];
    size_t pos = 7, len = strlen(mailbox);
    memcpy(cmd, "SELECT ", 7);
    if (len > IMAP_MAILBOX_MAX || !imap_append_quoted(cmd, sizeof cmd - 1, &pos, mailbox, len)) {
        api_invalid(c, "mailbox name cannot be sent as a quoted string");
        return;
    }
    cmd[pos] = '\0';
    c->uidvalidity = 0;
    c->exists = 0;
    api_send(c, cmd);
}

uint32_t imap_client_uidvalidity(const struct imap_client *c)
{
    return c->uidvalidity;
}

uint32_t imap_client_exists(const struct imap_client *c)
{
    return c->exists;
}

unsigned imap_client_caps(const struct imap_client *c)
{
    return c->caps;
}

bool imap_client_sizes_estimated(const struct imap_client *c)
{
    return c->sizes_estimated;
}

enum imap_stable_ids imap_client_stable_ids(const struct imap_client *c)
{
    /* EMAILID first: the standard, and what a server with both documents. */
    if (c->caps & IMAP_CAP_OBJECTID)
        return IMAP_IDS_EMAILID;
    if (c->caps & IMAP_CAP_X_GM_EXT_1)
        return IMAP_IDS_X_GM_MSGID;
    return IMAP_IDS_NONE;
}

void imap_fetch_listing(struct imap_client *c, imap_listing_cb *item_cb,
                        imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_LISTING, done, arg))
        return;
    c->item_cb = item_cb;
    /* "1:*" on an empty mailbox would still name the highest UID. */
    if (c->exists == 0) {
        finish_soon(c, IMAP_RESULT_OK);
        return;
    }
    static const char *const listing_cmd[] = {
        [IMAP_IDS_NONE] = "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)",
        [IMAP_IDS_EMAILID] = "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE EMAILID)",
        [IMAP_IDS_X_GM_MSGID] = "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE X-GM-MSGID)",
    };
    c->listing_ids = imap_client_stable_ids(c);
    api_send(c, listing_cmd[c->listing_ids]);
}

void imap_fetch_message_ids(struct imap_client *c, imap_message_id_cb *item_cb,
                            imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_MESSAGE_IDS, done, arg))
        return;
    c->message_id_cb = item_cb;
    if (c->exists == 0) {
        finish_soon(c, IMAP_RESULT_OK);
        return;
    }
    api_send(c, "UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
}

static bool valid_section(const char *s)
{
    size_t n = strlen(s);
    if (n > IMAP_SECTION_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
            return false;
    return true;
}

void imap_fetch_body(struct imap_client *c, uint32_t uid, const char *section,
                     uint64_t offset, uint64_t length, const struct imap_body_sink *sink,
                     bool *found, imap_done_cb *done, void *arg)
{
    *found = false;
    if (!op_begin(c, OP_BODY, done, arg))
        return;
    if (uid == 0 || !valid_section(section)) {
        api_invalid(c, "bad UID or section for FETCH");
        return;
    }
    c->sink = *sink;
    c->found = found;
    c->body_uid = uid;
    c->body_seen = false;
    c->body_streaming = false;
    /* Fixed text, a uint32 UID, the section and two 20-digit numbers. */
    char cmd[128 + IMAP_SECTION_MAX];
    if (length > 0)
        snprintf(cmd, sizeof cmd, "UID FETCH %u (BODY.PEEK[%s]<%llu.%llu>)", (unsigned)uid,
                 section, (unsigned long long)offset, (unsigned long long)length);
    else
        snprintf(cmd, sizeof cmd, "UID FETCH %u (BODY.PEEK[%s])", (unsigned)uid, section);
    api_send(c, cmd);
}

void imap_client_resume_body(struct imap_client *c)
{
    if (!c->paused || c->dead)
        return;
    c->paused = false;
    if (c->op != OP_NONE)
        timer_arm(c, c->up.command_timeout, true);
    enter(c);
    net_stream_resume_read(c->stream);
    leave(c);
}

static bool valid_uidset(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > IMAP_UIDSET_MAX)
        return false;
    return strspn(s, "0123456789,:*") == n;
}

/* Flags for STORE: atoms (system flags with a backslash) separated by spaces. */
static bool valid_flags(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > IMAP_FLAGS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f || strchr("(){\"%*]", ch) != NULL)
            return false;
    }
    return true;
}

/* "<tag> UID <verb> <uidset><tail>\r\n" for store, expunge, move, copy. */
static void send_uid_command(struct imap_client *c, const char *verb, const char *uidset,
                             const char *tail1, const char *tail2, const char *tail3)
{
    cmd_begin(c);
    cmd_puts(c, "UID ");
    cmd_puts(c, verb);
    cmd_puts(c, " ");
    cmd_puts(c, uidset);
    cmd_puts(c, tail1);
    cmd_puts(c, tail2);
    cmd_puts(c, tail3);
    if (!cmd_end(c)) {
        api_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return;
    }
    timer_arm(c, c->up.command_timeout, true);
}

void imap_store_add_flags(struct imap_client *c, const char *uidset, const char *flags,
                          imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_COMMAND, done, arg))
        return;
    if (!valid_uidset(uidset) || !valid_flags(flags)) {
        api_invalid(c, "bad UID set or flags for STORE");
        return;
    }
    send_uid_command(c, "STORE", uidset, " +FLAGS.SILENT (", flags, ")");
}

void imap_uid_expunge(struct imap_client *c, const char *uidset, imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_COMMAND, done, arg))
        return;
    if (!valid_uidset(uidset)) {
        api_invalid(c, "bad UID set for EXPUNGE");
        return;
    }
    if (!(c->caps & IMAP_CAP_UIDPLUS)) {
        set_error(c, "upstream lacks UIDPLUS: no UID EXPUNGE");
        finish_soon(c, IMAP_RESULT_NO);
        return;
    }
    send_uid_command(c, "EXPUNGE", uidset, "", "", "");
}

static void uid_to_mailbox(struct imap_client *c, const char *verb, const char *uidset,
                           const char *mailbox)
{
    char quoted[IMAP_QUOTED_MAX(IMAP_MAILBOX_MAX) + 2];
    size_t pos = 1, len = strlen(mailbox);
    quoted[0] = ' ';
    if (!valid_uidset(uidset) || len > IMAP_MAILBOX_MAX ||
        !imap_append_quoted(quoted, sizeof quoted - 1, &pos, mailbox, len)) {
        api_invalid(c, "bad UID set or mailbox name");
        return;
    }
    quoted[pos] = '\0';
    send_uid_command(c, verb, uidset, quoted, "", "");
}

void imap_uid_move(struct imap_client *c, const char *uidset, const char *mailbox,
                   imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_COMMAND, done, arg))
        return;
    if (!(c->caps & IMAP_CAP_MOVE)) {
        set_error(c, "upstream lacks MOVE");
        finish_soon(c, IMAP_RESULT_NO);
        return;
    }
    uid_to_mailbox(c, "MOVE", uidset, mailbox);
}

void imap_uid_copy(struct imap_client *c, const char *uidset, const char *mailbox,
                   imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_COMMAND, done, arg))
        return;
    uid_to_mailbox(c, "COPY", uidset, mailbox);
}

/* A special-use attribute: "\\" and an atom, e.g. "\\Trash". */
static bool valid_special_use(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > IMAP_SPECIAL_USE_MAX || s[0] != '\\')
        return false;
    for (size_t i = 1; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("(){\"%*]\\[", ch) != NULL)
            return false;
    }
    return true;
}

void imap_find_special_use(struct imap_client *c, const char *use, char *name_out, size_t name_cap,
                           imap_done_cb *done, void *arg)
{
    if (name_cap > 0)
        name_out[0] = '\0';
    if (!op_begin(c, OP_LIST, done, arg))
        return;
    if (name_cap == 0 || !valid_special_use(use)) {
        api_invalid(c, "bad special-use attribute or name buffer");
        return;
    }
    memcpy(c->list_use, use, strlen(use) + 1);
    c->list_out = name_out;
    c->list_cap = name_cap;
    c->list_match = LIST_NONE;
    /* RFC 6154 selection option: the server lists only special-use mailboxes. */
    api_send(c, (c->caps & IMAP_CAP_SPECIAL_USE) ? "LIST (SPECIAL-USE) \"\" \"*\""
                                                 : "LIST \"\" \"*\"");
}

void imap_noop(struct imap_client *c, imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_COMMAND, done, arg))
        return;
    api_send(c, "NOOP");
}

void imap_logout(struct imap_client *c, imap_done_cb *done, void *arg)
{
    if (!op_begin(c, OP_LOGOUT, done, arg))
        return;
    api_send(c, "LOGOUT");
}

const char *imap_client_last_error(const struct imap_client *c)
{
    return c->last_error;
}

/* ---- responses ------------------------------------------------------------------------ */

static enum imap_result tagged_result(const struct imap_response *r, bool login)
{
    if (r->status == IMAP_STATUS_OK)
        return IMAP_RESULT_OK;
    if (r->status == IMAP_STATUS_BAD)
        return IMAP_RESULT_BAD;
    if (imap_resp_code_is(r, "AUTHENTICATIONFAILED") || imap_resp_code_is(r, "AUTHORIZATIONFAILED"))
        return IMAP_RESULT_AUTH_FAILED;
    if (imap_resp_code_is(r, "EXPIRED"))
        return IMAP_RESULT_EXPIRED;
    /* RFC 5530 codes for conditions that are not the user's fault and may
     * clear up: the POP3 client must not take them as a wrong password.
     * ([LIMIT] is a throttle, see imap_response_throttled.) */
    if (imap_resp_code_is(r, "INUSE"))
        return IMAP_RESULT_IN_USE;
    if (imap_resp_code_is(r, "OVERQUOTA"))
        return IMAP_RESULT_OVERQUOTA;
    if (imap_resp_code_is(r, "UNAVAILABLE") || imap_resp_code_is(r, "SERVERBUG") ||
        imap_resp_code_is(r, "PRIVACYREQUIRED"))
        return IMAP_RESULT_UNAVAILABLE;
    return login ? IMAP_RESULT_AUTH_FAILED : IMAP_RESULT_NO;
}

/* The item that carries the Message-ID header, as the server names it in
 * its answer: "BODY[HEADER.FIELDS (MESSAGE-ID)]". */
static bool is_message_id_item(const char *p, size_t len)
{
    static const char prefix[] = "BODY[HEADER.FIELDS (";
    return len >= sizeof prefix - 1 && strncasecmp(p, prefix, sizeof prefix - 1) == 0;
}

/* The value of the Message-ID header item in FETCH data that imap_fetch_parse
 * accepted: a quoted string (the literal, absorbed), a literal marker (too
 * long to absorb) or NIL. False when the data has no such item: a FETCH the
 * server sent on its own, such as a flag change. */
static bool message_id_item(const char *data, size_t len, struct imap_token *value)
{
    struct imap_tokenizer t;
    struct imap_token name;
    imap_tokenizer_init(&t, data, len);
    if (imap_next_token(&t, &name) != IMAP_TOK_LPAREN)
        return false;
    while (imap_next_token(&t, &name) == IMAP_TOK_ATOM) {
        enum imap_token_type ty = imap_next_token(&t, value);
        if (ty != IMAP_TOK_LPAREN) {
            if (is_message_id_item(name.p, name.len))
                return true;
            continue;
        }
        for (size_t depth = 1; depth > 0;) {
            ty = imap_next_token(&t, value);
            if (ty == IMAP_TOK_LPAREN)
                depth++;
            else if (ty == IMAP_TOK_RPAREN)
                depth--;
            else if (ty == IMAP_TOK_END || ty == IMAP_TOK_ERROR)
                return false;
        }
    }
    return false;
}

static void handle_message_id(struct imap_client *c, uint32_t uid, const char *data, size_t len)
{
    struct imap_token value;
    if (!message_id_item(data, len, &value))
        return;
    char header[IMAP_MESSAGE_ID_HEADER_MAX + 1];
    char msgid[UIDL_MSGID_MAX + 1] = "";
    size_t msgid_len = 0;
    if (value.type == IMAP_TOK_QUOTED) {
        size_t n = imap_token_copy(&value, header, sizeof header);
        if (n < sizeof header)
            msgid_len = message_id_extract(header, n, msgid);
    }
    c->in_cb++;
    c->message_id_cb(uid, msgid, msgid_len, c->arg);
    c->in_cb--;
}

/* The listing item holds 1970 to 2106; an APPEND may have set any 4-digit
 * year. The nearest bound keeps such mail in date order instead of failing
 * the whole listing. */
static uint32_t clamp_date(int64_t t)
{
    if (t < 0)
        return 0;
    if (t > (int64_t)UINT32_MAX)
        return UINT32_MAX;
    return (uint32_t)t;
}

static void handle_fetch(struct imap_client *c, const struct imap_response *r)
{
    struct imap_fetch_attrs a;
    const char *err;
    if (!imap_fetch_parse(r->data, r->data_len, false, &a, &err)) {
        io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, err);
        return;
    }
    unsigned all = IMAP_FETCH_HAS_UID | IMAP_FETCH_HAS_SIZE | IMAP_FETCH_HAS_FLAGS |
                   IMAP_FETCH_HAS_INTERNALDATE;
    if (c->listing_ids == IMAP_IDS_EMAILID)
        all |= IMAP_FETCH_HAS_EMAILID;
    else if (c->listing_ids == IMAP_IDS_X_GM_MSGID)
        all |= IMAP_FETCH_HAS_X_GM_MSGID;
    /* Flag updates the server sends on its own lack RFC822.SIZE: not listing items. */
    if (c->op == OP_LISTING && (a.present & all) == all && c->item_cb) {
        struct imap_listing_item item = {
            .uid = a.uid, .size = a.size, .seen = a.seen, .deleted = a.deleted,
            .internaldate = clamp_date(a.internaldate),
            .emailid = c->listing_ids == IMAP_IDS_EMAILID ? a.emailid : NULL,
            .emailid_len = c->listing_ids == IMAP_IDS_EMAILID ? a.emailid_len : 0,
            .x_gm_msgid = c->listing_ids == IMAP_IDS_X_GM_MSGID ? a.x_gm_msgid : 0,
        };
        c->in_cb++;
        c->item_cb(&item, c->arg);
        c->in_cb--;
    }
    if (c->op == OP_MESSAGE_IDS && (a.present & IMAP_FETCH_HAS_UID) && c->message_id_cb)
        handle_message_id(c, a.uid, r->data, r->data_len);
}

/* One "* LIST" during a special-use lookup: the first mailbox with the
 * attribute wins. A \Noselect or \NonExistent one cannot take messages. */
static void handle_list(struct imap_client *c, const struct imap_response *r)
{
    struct imap_list_entry e;
    const char *err;
    if (!imap_list_parse(r->data, r->data_len, &e, &err)) {
        io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, err);
        return;
    }
    if (c->list_match != LIST_NONE || !imap_list_has_attr(&e, c->list_use) ||
        imap_list_has_attr(&e, "\\Noselect") || imap_list_has_attr(&e, "\\NonExistent"))
        return;
    /* A literal too long to absorb has no known name, and an absorbed one
     * may hold a NUL that would cut the C string short: neither can be used. */
    size_t n;
    if (e.name.type == IMAP_TOK_LITERAL ||
        (n = imap_token_copy(&e.name, c->list_out, c->list_cap)) >= c->list_cap ||
        strlen(c->list_out) != n) {
        c->list_out[0] = '\0';
        c->list_match = LIST_UNUSABLE;
        return;
    }
    c->list_match = LIST_FOUND;
}

static void handle_untagged(struct imap_client *c, const struct imap_response *r)
{
    if (r->status != IMAP_STATUS_NONE) {
        if (imap_resp_code_is(r, "CAPABILITY") && !read_caps(c, r->code_args, r->code_args_len)) {
            io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed CAPABILITY code");
            return;
        }
        if (imap_resp_code_is(r, "UIDVALIDITY")) {
            struct imap_tokenizer t;
            struct imap_token tok;
            uint32_t v;
            imap_tokenizer_init(&t, r->code_args, r->code_args_len);
            imap_next_token(&t, &tok);
            if (!imap_token_u32(&tok, &v) || v == 0) {
                io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed UIDVALIDITY");
                return;
            }
            c->uidvalidity = v;
        }
        if (r->status == IMAP_STATUS_BYE) {
            uint32_t ms;
            c->bye_seen = true;
            if (c->op != OP_LOGOUT) {
                set_error_span(c, "BYE ", r->text, r->text_len);
                if (imap_response_throttled(r, &ms)) {
                    c->bye_throttled = true;
                    notify_throttle(c, ms);
                }
            }
        }
        return;
    }
    if (r->has_number) {
        if (imap_resp_name_is(r, "EXISTS")) {
            c->exists = r->number;
        } else if (imap_resp_name_is(r, "EXPUNGE")) {
            if (c->exists > 0)
                c->exists--;
        } else if (imap_resp_name_is(r, "FETCH")) {
            handle_fetch(c, r);
        }
        return;
    }
    if (imap_resp_name_is(r, "CAPABILITY") && !read_caps(c, r->data, r->data_len)) {
        io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed CAPABILITY response");
        return;
    }
    if (c->op == OP_LIST && c->list_out != NULL && imap_resp_name_is(r, "LIST"))
        handle_list(c, r);
}

static void handle_tagged(struct imap_client *c, const struct imap_response *r)
{
    if (c->op == OP_NONE || c->step == STEP_TCP || c->step == STEP_TLS ||
        c->step == STEP_GREETING || r->tag_len != strlen(c->tag) ||
        memcmp(r->tag, c->tag, r->tag_len) != 0) {
        io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "tagged response for no pending command");
        return;
    }
    if (imap_resp_code_is(r, "CAPABILITY") && !read_caps(c, r->code_args, r->code_args_len)) {
        io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed CAPABILITY code");
        return;
    }
    bool login = (c->op == OP_LOGIN);
    uint32_t backoff_ms;
    bool throttled = imap_response_throttled(r, &backoff_ms);
    /* A throttle may come as BAD (Office 365): it is not our syntax error. */
    enum imap_result res = throttled ? IMAP_RESULT_THROTTLED : tagged_result(r, login);
    if (res != IMAP_RESULT_OK) {
        /* From the status word on: "NO [AUTHENTICATIONFAILED] ..." */
        set_error_span(c, "", r->name, (size_t)(r->text + r->text_len - r->name));
    }
    if (throttled) {
        notify_throttle(c, backoff_ms);
        if (c->dead || c->free_pending)
            return;
    }

    switch (c->step) {
    case STEP_CAPABILITY:
        if (res != IMAP_RESULT_OK) {
            io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "upstream refused CAPABILITY");
            return;
        }
        connect_finished_caps(c);
        return;
    case STEP_STARTTLS:
        if (res != IMAP_RESULT_OK) {
            io_fail(c, IMAP_RESULT_UNAVAILABLE, "upstream refused STARTTLS");
            return;
        }
        c->step = STEP_STARTTLS_ACCEPTED;
        return;
    case STEP_LOGIN:
    case STEP_LOGIN_LITERAL:
    case STEP_AUTH_CONTINUE:
        clear_secrets(c);
        if (res == IMAP_RESULT_OK && !c->caps_fresh) {
            /* Capabilities change at login (UIDPLUS, MOVE appear); ask. */
            io_send(c, "CAPABILITY", STEP_CAPABILITY_AFTER_LOGIN);
            return;
        }
        finish(c, res);
        return;
    case STEP_CAPABILITY_AFTER_LOGIN:
        /* The login itself succeeded; a refused CAPABILITY leaves caps as they were. */
        finish(c, IMAP_RESULT_OK);
        return;
    default:
        break;
    }

    if (c->op == OP_SELECT && res == IMAP_RESULT_OK && c->uidvalidity == 0) {
        set_error(c, "SELECT without UIDVALIDITY");
        res = IMAP_RESULT_PROTOCOL_ERROR;
    }
    if (c->op == OP_LIST && c->list_out != NULL) {
        if (res == IMAP_RESULT_OK && c->list_match != LIST_FOUND) {
            set_error_span(c, c->list_match == LIST_UNUSABLE ? "unusable or too long name for "
                                                             : "no mailbox has ",
                           c->list_use, strlen(c->list_use));
            res = IMAP_RESULT_NO;
        }
        if (res != IMAP_RESULT_OK)
            c->list_out[0] = '\0';
    }
    if (c->op == OP_LOGOUT) {
        mark_dead(c, IMAP_RESULT_IO_ERROR, "logged out");
        finish(c, res);
        return;
    }
    finish(c, res);
}

static void handle_line(struct imap_client *c, const char *line, size_t len)
{
    struct imap_response r;
    const char *err;
    if (!imap_response_parse(line, len, &r, &err)) {
        io_fail(c, IMAP_RESULT_PROTOCOL_ERROR,
                c->step == STEP_GREETING ? "upstream greeting is not IMAP" : err);
        return;
    }
    if (c->step == STEP_GREETING) {
        handle_greeting(c, &r);
        return;
    }
    switch (r.type) {
    case IMAP_RESP_CONTINUATION:
        handle_continuation(c);
        return;
    case IMAP_RESP_UNTAGGED:
        handle_untagged(c, &r);
        return;
    case IMAP_RESP_TAGGED:
        handle_tagged(c, &r);
        return;
    }
}

/* Is the literal that starts now the body of the running body fetch? */
static bool literal_is_body(struct imap_client *c, const char *line, size_t len)
{
    if (c->op != OP_BODY || c->body_seen)
        return false;
    struct imap_response r;
    struct imap_fetch_attrs a;
    const char *err;
    if (!imap_response_parse(line, len, &r, &err) || r.type != IMAP_RESP_UNTAGGED ||
        !r.has_number || !imap_resp_name_is(&r, "FETCH") ||
        !imap_fetch_parse(r.data, r.data_len, true, &a, &err))
        return false;
    if ((a.present & IMAP_FETCH_HAS_UID) && a.uid != c->body_uid)
        return false;
    return a.literal_item_len >= 5 && strncasecmp(a.literal_item, "BODY[", 5) == 0;
}

/* Is the literal that starts now the header of a Message-ID fetch? */
static bool literal_is_message_id(struct imap_client *c, const char *line, size_t len)
{
    if (c->op != OP_MESSAGE_IDS)
        return false;
    struct imap_response r;
    struct imap_fetch_attrs a;
    const char *err;
    return imap_response_parse(line, len, &r, &err) && r.type == IMAP_RESP_UNTAGGED && r.has_number &&
           imap_resp_name_is(&r, "FETCH") && imap_fetch_parse(r.data, r.data_len, true, &a, &err) &&
           is_message_id_item(a.literal_item, a.literal_item_len);
}

static void handle_literal_start(struct imap_client *c, const struct imap_read_event *ev)
{
    /* A header within the bound joins the line as a quoted string, which
     * handle_message_id reads; a longer one streams past and is dropped. */
    if (literal_is_message_id(c, ev->line, ev->line_len)) {
        if (ev->literal_len <= IMAP_MESSAGE_ID_HEADER_MAX)
            imap_reader_absorb_literal(&c->reader);
        return;
    }
    if (literal_is_body(c, ev->line, ev->line_len)) {
        c->body_seen = true;
        c->body_left = ev->literal_len;
        c->body_streaming = ev->literal_len > 0;
        if (c->found)
            *c->found = true;
        if (c->sink.section_start) {
            c->in_cb++;
            c->sink.section_start(ev->literal_len, c->arg);
            c->in_cb--;
        }
        return;
    }
    if (ev->literal_len <= IMAP_SMALL_LITERAL_MAX)
        imap_reader_absorb_literal(&c->reader);
}

/* Literal bytes: to the sink while a body streams, else dropped. Returns how
 * many were taken. */
static size_t handle_literal_data(struct imap_client *c, const char *data, size_t len)
{
    if (!c->body_streaming)
        return len;
    size_t k = 0;
    if (c->sink.data) {
        c->in_cb++;
        k = c->sink.data(data, len, c->arg);
        c->in_cb--;
    } else {
        k = len;
    }
    if (k > len)
        k = len;
    c->body_left -= k;
    if (c->body_left == 0)
        c->body_streaming = false;
    return k;
}

static void begin_starttls_handshake(struct imap_client *c, size_t unread)
{
    /* Bytes after the STARTTLS reply were sent before TLS: an attacker's
     * injection (CVE-2011-0411 style). Refuse rather than drop them quietly. */
    if (unread > 0) {
        io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "plaintext data after STARTTLS reply");
        return;
    }
    start_tls(c);
}

static size_t on_read(struct net_stream *s, const char *data, size_t len, void *arg)
{
    (void)s;
    struct imap_client *c = arg;
    size_t off = 0;
    enter(c);
    if (len > 0)
        c->last_progress = ev_now(c->loop);
    while (!c->dead && !c->free_pending) {
        struct imap_read_event ev;
        off += imap_reader_feed(&c->reader, data + off, len - off, &ev);
        if (ev.status == IMAP_READ_AGAIN)
            break;
        if (ev.status == IMAP_READ_ERROR) {
            io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, ev.error);
            break;
        }
        if (ev.status == IMAP_READ_LINE) {
            handle_line(c, ev.line, ev.line_len);
            if (!c->dead && !c->free_pending && c->step == STEP_STARTTLS_ACCEPTED) {
                begin_starttls_handshake(c, len - off);
                break;
            }
            continue;
        }
        if (ev.status == IMAP_READ_LITERAL_START) {
            handle_literal_start(c, &ev);
            continue;
        }
        size_t k = handle_literal_data(c, ev.data, ev.data_len);
        if (c->dead || c->free_pending)
            break;
        imap_reader_literal_take(&c->reader, k);
        off += k;
        if (k < ev.data_len) {
            /* The sink is full: leave the rest with the stream, which stops
             * reading until imap_client_resume_body(). The upstream is not
             * idle by its own doing, so the inactivity timer rests too. */
            c->paused = true;
            ev_timer_stop(c->loop, &c->op_timer);
            break;
        }
    }
    if (leave(c))
        return len;
    return c->dead ? len : off;
}

static void on_close(struct net_stream *s, enum net_stream_error err, void *arg)
{
    (void)s;
    struct imap_client *c = arg;
    enter(c);
    if (c->op == OP_LOGOUT && c->bye_seen) {
        /* Some servers close right after BYE, before the tagged OK. */
        mark_dead(c, IMAP_RESULT_IO_ERROR, "logged out");
        finish(c, IMAP_RESULT_OK);
    } else if (c->bye_seen) {
        io_fail(c, c->bye_throttled ? IMAP_RESULT_THROTTLED : IMAP_RESULT_UNAVAILABLE, NULL);
    } else {
        io_fail(c, err == NET_STREAM_TIMEOUT ? IMAP_RESULT_TIMEOUT :
                   err == NET_STREAM_TLS_VERIFY_ERROR ? IMAP_RESULT_TLS_VERIFY_ERROR :
                   IMAP_RESULT_IO_ERROR,
                err == NET_STREAM_EOF ? "upstream closed the connection"
                                      : "upstream connection failed");
    }
    leave(c);
}
