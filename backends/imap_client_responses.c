/* imap_client_responses: what the IMAP server sends, for the client of
 * imap_client.h. imap_reader frames lines and literals out of the stream;
 * untagged responses are handled the same way whatever operation runs (so
 * EXISTS, EXPUNGE or flag changes may arrive at any time) and tagged ones
 * complete the operation. A body literal streams to the caller's sink, and a
 * full sink pauses the upstream until imap_client_resume_body().
 */
#include "imap_client_internal.h"

#include <string.h>
#include <strings.h>

#include "message_id.h"

/* Literals that are not the body being fetched and are at most this long are
 * absorbed into the response line as strings; longer ones are read and
 * dropped. A mailbox name or a flag sent as literal is far shorter. */
#define IMAP_SMALL_LITERAL_MAX 4096

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
    c->message_id_cb(uid, msgid, msgid_len, c->arg);
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
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, err);
        return;
    }
    unsigned all = IMAP_FETCH_HAS_UID | IMAP_FETCH_HAS_SIZE | IMAP_FETCH_HAS_FLAGS;
    if (c->listing_dates)
        all |= IMAP_FETCH_HAS_INTERNALDATE;
    if (c->listing_ids == IMAP_IDS_EMAILID)
        all |= IMAP_FETCH_HAS_EMAILID;
    else if (c->listing_ids == IMAP_IDS_X_GM_MSGID)
        all |= IMAP_FETCH_HAS_X_GM_MSGID;
    /* Flag updates the server sends on its own lack RFC822.SIZE: not listing items. */
    if (c->op == OP_LISTING && (a.present & all) == all && c->item_cb) {
        struct imap_listing_item item = {
            .uid = a.uid, .size = a.size, .seen = a.seen, .deleted = a.deleted,
            .internaldate = c->listing_dates ? clamp_date(a.internaldate) : 0,
            .emailid = c->listing_ids == IMAP_IDS_EMAILID ? a.emailid : NULL,
            .emailid_len = c->listing_ids == IMAP_IDS_EMAILID ? a.emailid_len : 0,
            .x_gm_msgid = c->listing_ids == IMAP_IDS_X_GM_MSGID ? a.x_gm_msgid : 0,
        };
        c->item_cb(&item, c->arg);
    }
    if (c->op == OP_MESSAGE_IDS && (a.present & IMAP_FETCH_HAS_UID) && c->message_id_cb)
        handle_message_id(c, a.uid, r->data, r->data_len);
    if (c->op == OP_BODIES)
        imap_bodies_fetch_end(c, &a);
}

/* One "* LIST" during a special-use lookup: the first mailbox with the
 * attribute wins. A \Noselect or \NonExistent one cannot take messages. */
static void handle_list(struct imap_client *c, const struct imap_response *r)
{
    struct imap_list_entry e;
    const char *err;
    if (!imap_list_parse(r->data, r->data_len, &e, &err)) {
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, err);
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
        if (imap_resp_code_is(r, "CAPABILITY") && !imap_read_caps(c, r->code_args, r->code_args_len)) {
            imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed CAPABILITY code");
            return;
        }
        if (imap_resp_code_is(r, "UIDVALIDITY")) {
            struct imap_tokenizer t;
            struct imap_token tok;
            uint32_t v;
            imap_tokenizer_init(&t, r->code_args, r->code_args_len);
            imap_next_token(&t, &tok);
            if (!imap_token_u32(&tok, &v) || v == 0) {
                imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed UIDVALIDITY");
                return;
            }
            c->uidvalidity = v;
        }
        /* RFC 7162: HIGHESTMODSEQ, or NOMODSEQ for a folder without
         * mod-sequences; a malformed one is as good as none (no cache). */
        uint64_t n;
        if (imap_resp_code_is(r, "UIDNEXT"))
            c->uidnext = imap_resp_code_number(r, &n) && n <= UINT32_MAX ? (uint32_t)n : 0;
        if (imap_resp_code_is(r, "HIGHESTMODSEQ"))
            c->highestmodseq = imap_resp_code_number(r, &n) ? n : 0;
        if (imap_resp_code_is(r, "NOMODSEQ"))
            c->highestmodseq = 0;
        if (r->status == IMAP_STATUS_BYE) {
            uint32_t ms;
            c->bye_seen = true;
            if (c->op != OP_LOGOUT) {
                imap_set_error_span(c, "BYE ", r->text, r->text_len);
                if (imap_response_throttled(r, &ms)) {
                    c->bye_throttled = true;
                    imap_notify_throttle(c, ms);
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
    if (imap_resp_name_is(r, "CAPABILITY") && !imap_read_caps(c, r->data, r->data_len)) {
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed CAPABILITY response");
        return;
    }
    if (c->op == OP_LIST && c->list_out != NULL && imap_resp_name_is(r, "LIST"))
        handle_list(c, r);
}

static bool tag_is(const struct imap_response *r, const char *tag)
{
    return r->tag_len == strlen(tag) && memcmp(r->tag, tag, r->tag_len) == 0;
}

/* imap_select_listing: the SELECT's reply (tagged select_tag), or after a
 * failed SELECT the FETCH's reply, which completes the operation with the
 * SELECT's result and keeps its error text. False for the FETCH's reply
 * after a good SELECT: an ordinary listing's end, for handle_tagged. */
static bool handle_pipelined_select(struct imap_client *c, const struct imap_response *r)
{
    if (!c->select_tag[0]) {
        if (!tag_is(r, c->tag))
            imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "tagged response for no pending command");
        else
            imap_op_finish(c, c->select_result);
        return true;
    }
    if (!tag_is(r, c->select_tag)) {
        /* Commands complete in order: the FETCH cannot end before its SELECT. */
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "listing answered before its SELECT");
        return true;
    }
    c->select_tag[0] = '\0';
    if (imap_resp_code_is(r, "CAPABILITY") && !imap_read_caps(c, r->code_args, r->code_args_len)) {
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed CAPABILITY code");
        return true;
    }
    uint32_t backoff_ms;
    bool throttled = imap_response_throttled(r, &backoff_ms);
    enum imap_result res = throttled ? IMAP_RESULT_THROTTLED : tagged_result(r, false);
    if (res != IMAP_RESULT_OK)
        imap_set_error_span(c, "", r->name, (size_t)(r->text + r->text_len - r->name));
    if (throttled) {
        imap_notify_throttle(c, backoff_ms);
        if (c->dead || upstream_conn_freeing(&c->conn))
            return true;
    }
    if (res == IMAP_RESULT_OK && c->uidvalidity == 0) {
        imap_set_error(c, "SELECT without UIDVALIDITY");
        res = IMAP_RESULT_PROTOCOL_ERROR;
    }
    imap_done_cb *selected = c->selected_cb;
    c->selected_cb = NULL;
    if (res != IMAP_RESULT_OK) {
        /* The server refuses the FETCH too (no mailbox is selected after a
         * failed SELECT, RFC 3501 6.3.1); its reply ends the operation. */
        c->select_result = res;
        c->pending_item_cb = NULL;
        return true;
    }
    c->item_cb = c->pending_item_cb;
    c->pending_item_cb = NULL;
    if (selected)
        selected(c, IMAP_RESULT_OK, c->arg);
    return true;
}

static void handle_tagged(struct imap_client *c, const struct imap_response *r)
{
    if (c->op == OP_LISTING && (c->select_tag[0] || c->select_result != IMAP_RESULT_OK) &&
        handle_pipelined_select(c, r))
        return;
    if (c->op == OP_NONE || c->step == STEP_TCP || c->step == STEP_TLS ||
        c->step == STEP_GREETING || r->tag_len != strlen(c->tag) ||
        memcmp(r->tag, c->tag, r->tag_len) != 0) {
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "tagged response for no pending command");
        return;
    }
    if (imap_resp_code_is(r, "CAPABILITY") && !imap_read_caps(c, r->code_args, r->code_args_len)) {
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "malformed CAPABILITY code");
        return;
    }
    bool login = (c->op == OP_LOGIN);
    uint32_t backoff_ms;
    bool throttled = imap_response_throttled(r, &backoff_ms);
    /* A throttle may come as BAD (Office 365): it is not our syntax error. */
    enum imap_result res = throttled ? IMAP_RESULT_THROTTLED : tagged_result(r, login);
    if (res != IMAP_RESULT_OK) {
        /* From the status word on: "NO [AUTHENTICATIONFAILED] ..." */
        imap_set_error_span(c, c->oauth_challenge, r->name, (size_t)(r->text + r->text_len - r->name));
    }
    if (throttled) {
        imap_notify_throttle(c, backoff_ms);
        if (c->dead || upstream_conn_freeing(&c->conn))
            return;
    }

    switch (c->step) {
    case STEP_CAPABILITY:
        if (res != IMAP_RESULT_OK) {
            imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "upstream refused CAPABILITY");
            return;
        }
        imap_connect_caps_known(c);
        return;
    case STEP_STARTTLS:
        if (res != IMAP_RESULT_OK) {
            imap_io_fail(c, IMAP_RESULT_UNAVAILABLE, "upstream refused STARTTLS");
            return;
        }
        c->step = STEP_STARTTLS_ACCEPTED;
        return;
    case STEP_LOGIN:
    case STEP_LOGIN_LITERAL:
    case STEP_AUTH_CONTINUE:
        imap_clear_secrets(c);
        if (res == IMAP_RESULT_OK && !c->caps_fresh) {
            /* Capabilities change at login (UIDPLUS, MOVE appear); ask. */
            imap_io_send(c, "CAPABILITY", STEP_CAPABILITY_AFTER_LOGIN);
            return;
        }
        imap_op_finish(c, res);
        return;
    case STEP_CAPABILITY_AFTER_LOGIN:
        /* The login itself succeeded; a refused CAPABILITY leaves caps as they were. */
        imap_op_finish(c, IMAP_RESULT_OK);
        return;
    default:
        break;
    }

    if (c->op == OP_SELECT && res == IMAP_RESULT_OK && c->uidvalidity == 0) {
        imap_set_error(c, "SELECT without UIDVALIDITY");
        res = IMAP_RESULT_PROTOCOL_ERROR;
    }
    if (c->op == OP_LIST && c->list_out != NULL) {
        if (res == IMAP_RESULT_OK && c->list_match != LIST_FOUND) {
            imap_set_error_span(c, c->list_match == LIST_UNUSABLE ? "unusable or too long name for "
                                                             : "no mailbox has ",
                           c->list_use, strlen(c->list_use));
            res = IMAP_RESULT_NO;
        }
        if (res != IMAP_RESULT_OK)
            c->list_out[0] = '\0';
    }
    if (c->op == OP_LOGOUT) {
        imap_mark_dead(c, IMAP_RESULT_IO_ERROR, "logged out");
        imap_op_finish(c, res);
        return;
    }
    imap_op_finish(c, res);
}

static void handle_line(struct imap_client *c, const char *line, size_t len)
{
    struct imap_response r;
    const char *err;
    if (!imap_response_parse(line, len, &r, &err)) {
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR,
                c->step == STEP_GREETING ? "upstream greeting is not IMAP" : err);
        return;
    }
    if (c->step == STEP_GREETING) {
        imap_handle_greeting(c, &r);
        return;
    }
    switch (r.type) {
    case IMAP_RESP_CONTINUATION:
        imap_handle_continuation(c, &r);
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
    if (c->op == OP_BODIES && imap_bodies_literal_start(c, ev->line, ev->line_len, ev->literal_len))
        return;
    if (literal_is_body(c, ev->line, ev->line_len)) {
        c->body_seen = true;
        c->body_left = ev->literal_len;
        c->body_streaming = ev->literal_len > 0;
        if (c->found)
            *c->found = true;
        if (c->sink.section_start)
            c->sink.section_start(ev->literal_len, c->arg);
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
    size_t k = c->sink.data ? c->sink.data(data, len, c->arg) : len;
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
        imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, "plaintext data after STARTTLS reply");
        return;
    }
    c->step = STEP_TLS;
    upstream_conn_start_tls(&c->conn);
}

size_t imap_client_read(struct upstream_conn *u, const char *data, size_t len)
{
    struct imap_client *c = UPSTREAM_CONN_OWNER(u, struct imap_client, conn);
    size_t off = 0;
    while (!c->dead && !upstream_conn_freeing(&c->conn)) {
        struct imap_read_event ev;
        off += imap_reader_feed(&c->reader, data + off, len - off, &ev);
        if (ev.status == IMAP_READ_AGAIN)
            break;
        if (ev.status == IMAP_READ_ERROR) {
            imap_io_fail(c, IMAP_RESULT_PROTOCOL_ERROR, ev.error);
            break;
        }
        if (ev.status == IMAP_READ_LINE) {
            handle_line(c, ev.line, ev.line_len);
            if (!c->dead && !upstream_conn_freeing(&c->conn) && c->step == STEP_STARTTLS_ACCEPTED) {
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
        if (c->dead || upstream_conn_freeing(&c->conn))
            break;
        imap_reader_literal_take(&c->reader, k);
        off += k;
        if (k < ev.data_len) {
            /* The sink is full: leave the rest with the stream, which stops
             * reading until imap_client_resume_body(). The upstream is not
             * idle by its own doing, so the inactivity timer rests too. */
            c->paused = true;
            upstream_conn_timer_stop(&c->conn);
            break;
        }
    }
    return c->dead ? len : off;
}

void imap_client_resume_body(struct imap_client *c)
{
    if (!c->paused || c->dead)
        return;
    c->paused = false;
    if (c->op != OP_NONE)
        upstream_conn_await_reply(&c->conn);
    upstream_conn_resume_read(&c->conn);
}
