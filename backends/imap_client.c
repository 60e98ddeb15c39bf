/* imap_client: see imap_client.h for the contract, imap_client_internal.h
 * for how the client is split in three files. This one holds the object,
 * the lifecycle of an operation, sending, and the connect and login
 * conversations.
 *
 * Shape: one operation at a time. Each operation is a short sequence of steps
 * (connect: TCP, TLS, greeting, CAPABILITY, STARTTLS, ...; login: LOGIN or
 * AUTHENTICATE, maybe CAPABILITY), driven by the responses that imap_parse
 * frames out of the byte stream (imap_client_responses.c). The connection,
 * its timers, the deferred free and the zero-delay completion are
 * io/upstream_conn.h's, with the completion rules stated there.
 */
#include "imap_client_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_quote.h"
#include "sasl_oauth.h"

static struct imap_client *client_of(struct upstream_conn *u)
{
    return UPSTREAM_CONN_OWNER(u, struct imap_client, conn);
}

/* ---- errors text ---------------------------------------------------------- */

void imap_set_error_span(struct imap_client *c, const char *prefix, const char *p, size_t len)
{
    upstream_conn_set_error_span(&c->conn, prefix, p, len);
}

void imap_set_error(struct imap_client *c, const char *msg)
{
    upstream_conn_set_error(&c->conn, msg);
}

/* ---- operations and lifetime ----------------------------------------------- */

void imap_clear_secrets(struct imap_client *c)
{
    if (c->login) {
        imap_login_command_wipe(c->login);
        free(c->login);
        c->login = NULL;
    }
    upstream_secret_free(&c->sasl_response);
}

/* Complete the running operation with r and call its callback. */
void imap_op_finish(struct imap_client *c, enum imap_result r)
{
    imap_done_cb *done = c->done;
    void *arg = c->arg;
    upstream_conn_timers_stop(&c->conn);
    imap_clear_secrets(c);
    c->oauth_error_reply = NULL;
    c->oauth_challenge[0] = '\0';
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
    c->select_tag[0] = '\0';
    c->selected_cb = NULL;
    c->pending_item_cb = NULL;
    c->select_result = IMAP_RESULT_OK;
    if (done)
        done(c, r, arg);
}

/* Complete the running operation from the loop, not from the caller's call. */
void imap_op_finish_soon(struct imap_client *c, enum imap_result r)
{
    upstream_conn_finish_soon(&c->conn, (int)r);
}

/* The connection is unusable from now on. */
void imap_mark_dead(struct imap_client *c, enum imap_result r, const char *msg)
{
    if (c->dead)
        return;
    c->dead = true;
    c->dead_result = r;
    if (msg)
        imap_set_error(c, msg);
    upstream_conn_close(&c->conn);
    imap_clear_secrets(c);
}

void imap_io_fail(struct imap_client *c, enum imap_result r, const char *msg)
{
    imap_mark_dead(c, r, msg);
    if (c->op != OP_NONE)
        imap_op_finish(c, r);
}

void imap_api_fail(struct imap_client *c, enum imap_result r, const char *msg)
{
    imap_mark_dead(c, r, msg);
    imap_op_finish_soon(c, r);
}

void imap_api_invalid(struct imap_client *c, const char *msg)
{
    imap_set_error(c, msg);
    imap_op_finish_soon(c, IMAP_RESULT_INVALID_ARGUMENT);
}

static enum imap_result result_of(enum upstream_error err)
{
    static const enum imap_result results[] = {
        [UPSTREAM_ERR_IO] = IMAP_RESULT_IO_ERROR,
        [UPSTREAM_ERR_TIMEOUT] = IMAP_RESULT_TIMEOUT,
        [UPSTREAM_ERR_TLS_VERIFY] = IMAP_RESULT_TLS_VERIFY_ERROR,
    };
    return results[err];
}

/* ---- the connection's events (upstream_conn_ops) ---------------------------- */

static void destroy(struct upstream_conn *u)
{
    struct imap_client *c = client_of(u);
    upstream_conn_deinit(&c->conn);
    imap_reader_deinit(&c->reader);
    imap_clear_secrets(c);
    free(c);
}

static void soon_finish(struct upstream_conn *u, int result)
{
    imap_op_finish(client_of(u), (enum imap_result)result);
}

static void timed_out(struct upstream_conn *u, bool connecting)
{
    imap_io_fail(client_of(u), IMAP_RESULT_TIMEOUT,
                 connecting ? "connect timed out" : "upstream command timed out");
}

static void connect_failed(struct upstream_conn *u, enum upstream_error err, const char *why)
{
    imap_io_fail(client_of(u), result_of(err), why);
}

static void closed(struct upstream_conn *u, enum upstream_error err, const char *why)
{
    struct imap_client *c = client_of(u);
    if (c->op == OP_LOGOUT && c->bye_seen) {
        /* Some servers close right after BYE, before the tagged OK. */
        imap_mark_dead(c, IMAP_RESULT_IO_ERROR, "logged out");
        imap_op_finish(c, IMAP_RESULT_OK);
    } else if (c->bye_seen) {
        imap_io_fail(c, c->bye_throttled ? IMAP_RESULT_THROTTLED : IMAP_RESULT_UNAVAILABLE, NULL);
    } else {
        imap_io_fail(c, result_of(err), why);
    }
}

static void connected(struct upstream_conn *u)
{
    client_of(u)->step = STEP_GREETING;
}

static void upgraded(struct upstream_conn *u)
{
    struct imap_client *c = client_of(u);
    /* RFC 3501 6.2.1: capabilities from before STARTTLS are void. */
    c->caps = 0;
    imap_io_send(c, "CAPABILITY", STEP_CAPABILITY);
}

static const struct upstream_conn_ops conn_ops = {
    .read = imap_client_read,
    .connected = connected,
    .upgraded = upgraded,
    .failed = connect_failed,
    .closed = closed,
    .timed_out = timed_out,
    .finish = soon_finish,
    .destroy = destroy,
};

struct imap_client *imap_client_new(struct ev_loop *loop, const struct upstream_endpoint *up)
{
    struct imap_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (!upstream_conn_init(&c->conn, loop, up, "upstream", &conn_ops)) {
        free(c);
        return NULL;
    }
    imap_reader_init(&c->reader);
    return c;
}

void imap_client_free(struct imap_client *c)
{
    if (c == NULL)
        return;
    /* No callback of the pending operation runs after this. */
    c->done = NULL;
    c->item_cb = NULL;
    c->selected_cb = NULL;
    c->pending_item_cb = NULL;
    c->message_id_cb = NULL;
    c->list_out = NULL;
    c->sink.section_start = NULL;
    c->sink.data = NULL;
    upstream_conn_free(&c->conn);
}

void imap_client_on_throttle(struct imap_client *c, imap_throttle_cb *cb, void *arg)
{
    c->throttle_cb = cb;
    c->throttle_arg = arg;
}

/* A throttle answer arrived: tell the observer (it only records). */
void imap_notify_throttle(struct imap_client *c, uint32_t suggested_ms)
{
    if (c->throttle_cb)
        c->throttle_cb(suggested_ms, c->throttle_arg);
}

const char *imap_client_last_error(const struct imap_client *c)
{
    return upstream_conn_last_error(&c->conn);
}

/* ---- sending commands ------------------------------------------------------ */

void imap_cmd_put(struct imap_client *c, const char *p, size_t len)
{
    if (c->write_ok && !net_stream_write(upstream_conn_stream(&c->conn), p, len))
        c->write_ok = false;
}

void imap_cmd_puts(struct imap_client *c, const char *s)
{
    imap_cmd_put(c, s, strlen(s));
}

static void next_tag(struct imap_client *c)
{
    c->tag_seq = c->tag_seq % 9999 + 1;
    snprintf(c->tag, sizeof c->tag, "A%04u", c->tag_seq);
    c->write_ok = true;
}

/* New tag, "<tag> " written. */
void imap_cmd_begin(struct imap_client *c)
{
    net_stream_cork(upstream_conn_stream(&c->conn));
    next_tag(c);
    imap_cmd_puts(c, c->tag);
    imap_cmd_put(c, " ", 1);
}

bool imap_cmd_end(struct imap_client *c)
{
    imap_cmd_put(c, "\r\n", 2);
    net_stream_uncork(upstream_conn_stream(&c->conn));
    return c->write_ok;
}

bool imap_op_begin(struct imap_client *c, enum imap_op op, imap_done_cb *done, void *arg)
{
    assert(c->op == OP_NONE && "one imap_client operation at a time");
    assert(!upstream_conn_freeing(&c->conn));
    c->op = op;
    c->step = STEP_TAGGED;
    c->done = done;
    c->arg = arg;
    c->caps_fresh = false;
    if (c->dead) {
        imap_op_finish_soon(c, c->dead_result);
        return false;
    }
    assert(upstream_conn_stream(&c->conn) != NULL || op == OP_CONNECT);
    return true;
}

void imap_api_send(struct imap_client *c, const char *text)
{
    imap_cmd_begin(c);
    imap_cmd_puts(c, text);
    if (!imap_cmd_end(c)) {
        imap_api_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return;
    }
    upstream_conn_await_reply(&c->conn);
}

bool imap_io_send(struct imap_client *c, const char *text, enum imap_step next)
{
    imap_cmd_begin(c);
    imap_cmd_puts(c, text);
    if (!imap_cmd_end(c)) {
        imap_io_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return false;
    }
    c->step = next;
    return true;
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
    { "CONDSTORE", IMAP_CAP_CONDSTORE },
    { "QRESYNC", IMAP_CAP_CONDSTORE },
    { "AUTH=XOAUTH2", IMAP_CAP_AUTH_XOAUTH2 },
    { "AUTH=OAUTHBEARER", IMAP_CAP_AUTH_OAUTHBEARER },
};

/* A capability list replaces what was known before (RFC 3501 6.1.1). */
bool imap_read_caps(struct imap_client *c, const char *p, size_t len)
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

void imap_connect(struct imap_client *c, imap_done_cb *done, void *arg)
{
    assert(upstream_conn_stream(&c->conn) == NULL && "imap_connect once per client");
    if (!imap_op_begin(c, OP_CONNECT, done, arg))
        return;
    c->step = STEP_TCP;
    switch (upstream_conn_connect(&c->conn)) {
    case UPSTREAM_CONNECT_STARTED:
        return;
    case UPSTREAM_CONNECT_NO_TLS_CONTEXT:
        imap_api_invalid(c, "TLS requested without a TLS context");
        return;
    case UPSTREAM_CONNECT_NO_SOCKET:
        imap_api_fail(c, IMAP_RESULT_IO_ERROR, "cannot create upstream socket");
        return;
    }
}

/* Capabilities are known (from the greeting or CAPABILITY): STARTTLS next,
 * or done. */
void imap_connect_caps_known(struct imap_client *c)
{
    if (upstream_conn_needs_starttls(&c->conn)) {
        if (!(c->caps & IMAP_CAP_STARTTLS)) {
            /* Carrying on in plaintext would expose the password. */
            imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "upstream does not offer STARTTLS");
            return;
        }
        imap_io_send(c, "STARTTLS", STEP_STARTTLS);
        return;
    }
    imap_op_finish(c, IMAP_RESULT_OK);
}

/* Servers checked to answer a SELECT and the UID FETCH sent behind it in
 * order, the FETCH refused after a failed SELECT, and "UID FETCH 1:*" on an
 * empty folder with OK (tests/integration/test_pipelining.py), by the name
 * their greetings carry by default: Dovecot's login_greeting
 * ("Dovecot ready.", Debian's "Dovecot (Debian) ready."), Cyrus's
 * "... Cyrus IMAP <version> server ready", Courier's "Courier-IMAP ready.".
 * A server greeting otherwise is sent one command at a time. */
bool imap_greeting_pipelines_select(const char *text, size_t len)
{
    static const char *const known[] = { "Dovecot", "Cyrus IMAP", "Courier-IMAP" };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (memmem(text, len, known[i], strlen(known[i])) != NULL)
            return true;
    return false;
}

void imap_handle_greeting(struct imap_client *c, const struct imap_response *r)
{
    if (r->type != IMAP_RESP_UNTAGGED || r->status == IMAP_STATUS_NONE ||
        r->status == IMAP_STATUS_NO || r->status == IMAP_STATUS_BAD) {
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "upstream greeting is not * OK");
        return;
    }
    if (r->status == IMAP_STATUS_BYE) {
        /* "Too many connections" greetings: a throttle, or just unavailable. */
        uint32_t ms;
        enum imap_result res = imap_response_throttled(r, &ms) ? IMAP_RESULT_THROTTLED
                                                               : IMAP_RESULT_UNAVAILABLE;
        imap_set_error_span(c, "BYE ", r->text, r->text_len);
        imap_mark_dead(c, res, NULL);
        if (res == IMAP_RESULT_THROTTLED)
            imap_notify_throttle(c, ms);
        imap_op_finish(c, res);
        return;
    }
    if (r->status == IMAP_STATUS_PREAUTH) {
        /* The gateway authenticates users through upstream LOGIN; a connection
         * that is already logged in would accept any password. */
        imap_io_fail(c, IMAP_RESULT_UNAVAILABLE, "upstream greeted with PREAUTH");
        return;
    }
    /* Exchange (Online and on-premises) greets "The Microsoft Exchange IMAP4
     * service is ready." and reports an estimated RFC822.SIZE unless an
     * administrator turned on ImapEnableExactRFC822Size per mailbox. */
    static const char exchange[] = "Microsoft Exchange";
    c->sizes_estimated = memmem(r->text, r->text_len, exchange, sizeof exchange - 1) != NULL;
    c->select_pipelining = imap_greeting_pipelines_select(r->text, r->text_len);
    if (imap_resp_code_is(r, "CAPABILITY")) {
        if (!imap_read_caps(c, r->code_args, r->code_args_len)) {
            imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed CAPABILITY in greeting");
            return;
        }
        imap_connect_caps_known(c);
        return;
    }
    imap_io_send(c, "CAPABILITY", STEP_CAPABILITY);
}

/* ---- login ------------------------------------------------------------------------ */

static bool has_forbidden_octet(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

void imap_login(struct imap_client *c, const char *user, const char *pass,
                imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_LOGIN, done, arg))
        return;
    /* C strings cannot hold NUL; CR and LF are refused in every form. */
    if (has_forbidden_octet(user) || has_forbidden_octet(pass)) {
        imap_api_invalid(c, "credentials contain CR or LF");
        return;
    }
    size_t ulen = strlen(user), plen = strlen(pass);
    if (ulen > IMAP_CREDENTIAL_MAX || plen > IMAP_CREDENTIAL_MAX) {
        imap_api_invalid(c, "credentials too long");
        return;
    }

    if (c->caps & IMAP_CAP_AUTH_PLAIN) {
        char *resp = malloc(IMAP_SASL_PLAIN_MAX);
        if (resp == NULL) {
            imap_api_fail(c, IMAP_RESULT_IO_ERROR, "out of memory");
            return;
        }
        if (imap_sasl_plain(resp, IMAP_SASL_PLAIN_MAX, user, ulen, pass, plen) != IMAP_QUOTE_OK) {
            free(resp);
            imap_api_invalid(c, "credentials cannot be encoded");
            return;
        }
        imap_cmd_begin(c);
        if (c->caps & IMAP_CAP_SASL_IR) {
            imap_cmd_puts(c, "AUTHENTICATE PLAIN ");
            imap_cmd_puts(c, resp);
            upstream_wipe(resp, strlen(resp));
            free(resp);
            c->step = STEP_LOGIN;
        } else {
            imap_cmd_puts(c, "AUTHENTICATE PLAIN");
            c->sasl_response = resp;
            c->step = STEP_AUTH_CONTINUE;
        }
        imap_cmd_end(c);
    } else if (c->caps & IMAP_CAP_LOGINDISABLED) {
        imap_set_error(c, "upstream has LOGINDISABLED and no AUTH=PLAIN");
        imap_op_finish_soon(c, IMAP_RESULT_UNAVAILABLE);
        return;
    } else {
        c->login = malloc(sizeof *c->login);
        if (c->login == NULL) {
            imap_api_fail(c, IMAP_RESULT_IO_ERROR, "out of memory");
            return;
        }
        next_tag(c);
        if (imap_login_command(c->login, c->tag, user, ulen, pass, plen) != IMAP_QUOTE_OK) {
            imap_api_invalid(c, "credentials cannot be encoded");
            return;
        }
        /* Up to the first literal's "{N}\r\n", or the whole command. */
        imap_cmd_put(c, c->login->buf, c->login->seg_end[0]);
        c->login_seg = 1;
        c->step = c->login->nsegs > 1 ? STEP_LOGIN_LITERAL : STEP_LOGIN;
    }
    if (!c->write_ok) {
        imap_api_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return;
    }
    upstream_conn_await_reply(&c->conn);
}

void imap_authenticate_oauth(struct imap_client *c, const char *user, const char *host, unsigned port,
                             const char *token, imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_LOGIN, done, arg))
        return;
    enum sasl_oauth_mech mech;
    if (c->caps & IMAP_CAP_AUTH_OAUTHBEARER)
        mech = SASL_MECH_OAUTHBEARER;
    else if (c->caps & IMAP_CAP_AUTH_XOAUTH2)
        mech = SASL_MECH_XOAUTH2;
    else {
        imap_set_error(c, "upstream offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2");
        imap_op_finish_soon(c, IMAP_RESULT_UNAVAILABLE);
        return;
    }
    char *resp = malloc(SASL_OAUTH_RESPONSE_MAX);
    if (resp == NULL) {
        imap_api_fail(c, IMAP_RESULT_IO_ERROR, "out of memory");
        return;
    }
    if (sasl_oauth_response(mech, resp, SASL_OAUTH_RESPONSE_MAX, user, strlen(user), host, port, token,
                            strlen(token)) != SASL_OAUTH_OK) {
        upstream_wipe(resp, SASL_OAUTH_RESPONSE_MAX);
        free(resp);
        imap_api_invalid(c, "user or access token cannot be sent in a SASL response");
        return;
    }
    c->oauth_error_reply = mech == SASL_MECH_OAUTHBEARER ? SASL_OAUTH_ERROR_REPLY_OAUTHBEARER
                                                         : SASL_OAUTH_ERROR_REPLY_XOAUTH2;
    imap_cmd_begin(c);
    imap_cmd_puts(c, "AUTHENTICATE ");
    imap_cmd_puts(c, sasl_oauth_mech_name(mech));
    if (c->caps & IMAP_CAP_SASL_IR) {
        imap_cmd_puts(c, " ");
        imap_cmd_puts(c, resp);
        upstream_wipe(resp, strlen(resp));
        free(resp);
        c->step = STEP_LOGIN;
    } else {
        c->sasl_response = resp;
        c->step = STEP_AUTH_CONTINUE;
    }
    if (!imap_cmd_end(c)) {
        imap_api_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return;
    }
    upstream_conn_await_reply(&c->conn);
}

/* The OAuth mechanisms' error challenge: kept for the log (status and
 * scope, no secret in it), answered so the server sends its tagged NO. */
static void answer_oauth_challenge(struct imap_client *c, const struct imap_response *r)
{
    struct sasl_oauth_error e;
    if (sasl_oauth_error_parse(r->text, r->text_len, &e))
        snprintf(c->oauth_challenge, sizeof c->oauth_challenge, "oauth status=%.40s scope=%.60s; ",
                 e.status[0] ? e.status : "-", e.scope[0] ? e.scope : "-");
    c->write_ok = true;
    imap_cmd_puts(c, c->oauth_error_reply);
    c->oauth_error_reply = NULL;  /* answered once; a second challenge is a protocol error */
    if (!imap_cmd_end(c))
        imap_io_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
}

/* A "+" continuation: the next piece of LOGIN or AUTHENTICATE goes out. */
void imap_handle_continuation(struct imap_client *c, const struct imap_response *r)
{
    if (c->step == STEP_LOGIN && c->op == OP_LOGIN && c->oauth_error_reply) {
        answer_oauth_challenge(c, r);
        return;
    }
    if (c->step == STEP_AUTH_CONTINUE && c->sasl_response) {
        c->write_ok = true;
        imap_cmd_puts(c, c->sasl_response);
        bool ok = imap_cmd_end(c);
        imap_clear_secrets(c);
        if (!ok) {
            imap_io_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
            return;
        }
        c->step = STEP_LOGIN;
        return;
    }
    if (c->step == STEP_LOGIN_LITERAL && c->login && c->login_seg < c->login->nsegs) {
        size_t start = c->login->seg_end[c->login_seg - 1];
        c->write_ok = true;
        imap_cmd_put(c, c->login->buf + start, c->login->seg_end[c->login_seg] - start);
        c->login_seg++;
        if (!c->write_ok) {
            imap_io_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
            return;
        }
        if (c->login_seg == c->login->nsegs) {
            imap_clear_secrets(c);
            c->step = STEP_LOGIN;
        }
        return;
    }
    imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "unexpected continuation from upstream");
}
