/* imap_client_commands: the mailbox operations of the IMAP client (see
 * imap_client.h): each checks its arguments, so nothing a caller passes can
 * break a command line, writes one command and leaves the reply to
 * imap_client_responses.c. An argument refused completes the operation with
 * IMAP_RESULT_INVALID_ARGUMENT from the loop, without sending anything.
 */
#include "imap_client_internal.h"

#include <stdio.h>
#include <string.h>

#include "imap_quote.h"

/* Longest UID set accepted by the store/expunge/move/copy commands. Dovecot
 * accepts command lines of 64 KiB; callers with more UIDs split the work. */
#define IMAP_UIDSET_MAX (60 * 1024)
/* Longest flag list for STORE and section name for FETCH. */
#define IMAP_FLAGS_MAX 512
#define IMAP_SECTION_MAX 64
/* Longest mailbox name, before quoting. */
#define IMAP_MAILBOX_MAX 1024

static const char condstore[] = " (CONDSTORE)";
#define SELECT_COMMAND_MAX (sizeof "SELECT " + IMAP_QUOTED_MAX(IMAP_MAILBOX_MAX) + sizeof condstore)

/* "SELECT <mailbox> [(CONDSTORE)]" into cmd (SELECT_COMMAND_MAX octets),
 * the mailbox state reset; false (the operation failed) when the name
 * cannot be sent. */
static bool select_command(struct imap_client *c, const char *mailbox, char *cmd)
{
    size_t pos = 7, len = strlen(mailbox);
    memcpy(cmd, "SELECT ", 7);
    if (len > IMAP_MAILBOX_MAX || !imap_append_quoted(cmd, SELECT_COMMAND_MAX - sizeof condstore, &pos, mailbox, len)) {
        imap_api_invalid(c, "mailbox name cannot be sent as a quoted string");
        return false;
    }
    /* RFC 7162: HIGHESTMODSEQ in the reply, which tells a cached listing
     * (proxy/session_listing.c) whether anything changed. */
    if (c->caps & IMAP_CAP_CONDSTORE) {
        memcpy(cmd + pos, condstore, sizeof condstore - 1);
        pos += sizeof condstore - 1;
    }
    cmd[pos] = '\0';
    c->uidvalidity = 0;
    c->exists = 0;
    c->uidnext = 0;
    c->highestmodseq = 0;
    return true;
}

void imap_select(struct imap_client *c, const char *mailbox, imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_SELECT, done, arg))
        return;
    char cmd[SELECT_COMMAND_MAX];
    if (select_command(c, mailbox, cmd))
        imap_api_send(c, cmd);
}

bool imap_client_pipelines_select(const struct imap_client *c)
{
    return c->select_pipelining;
}

/* Both commands go out in one write: the SELECT's line is ended without
 * uncorking, so the server reads them together. The listing runs as the
 * operation (OP_LISTING, c->tag the FETCH's); the SELECT's reply is
 * recognised by select_tag (imap_client_responses.c). item_cb is held back
 * until the SELECT succeeded: a FETCH item never reaches the caller before
 * it knows the folder's UIDVALIDITY. */
void imap_select_listing(struct imap_client *c, const char *mailbox, uint64_t changedsince, bool dates,
                         imap_done_cb *selected, imap_listing_cb *item_cb, imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_LISTING, done, arg))
        return;
    char cmd[SELECT_COMMAND_MAX];
    if (changedsince > 0 && !(c->caps & IMAP_CAP_CONDSTORE)) {
        imap_api_invalid(c, "CHANGEDSINCE without CONDSTORE");
        return;
    }
    if (!select_command(c, mailbox, cmd))
        return;
    imap_cmd_begin(c);
    imap_cmd_puts(c, cmd);
    imap_cmd_put(c, "\r\n", 2);
    bool select_written = c->write_ok;
    memcpy(c->select_tag, c->tag, sizeof c->tag);
    c->selected_cb = selected;
    c->pending_item_cb = item_cb;
    c->select_result = IMAP_RESULT_OK;
    char tail[48] = "";
    if (changedsince > 0)
        snprintf(tail, sizeof tail, " (CHANGEDSINCE %llu)", (unsigned long long)changedsince);
    imap_cmd_begin(c);
    imap_write_listing(c, dates, tail);
    if (!imap_cmd_end(c) || !select_written) {
        imap_api_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return;
    }
    upstream_conn_await_reply(&c->conn);
}

uint32_t imap_client_uidvalidity(const struct imap_client *c)
{
    return c->uidvalidity;
}

uint32_t imap_client_exists(const struct imap_client *c)
{
    return c->exists;
}

uint32_t imap_client_uidnext(const struct imap_client *c)
{
    return c->uidnext;
}

uint64_t imap_client_highestmodseq(const struct imap_client *c)
{
    return c->highestmodseq;
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

void imap_write_listing(struct imap_client *c, bool dates, const char *tail)
{
    static const char *const ids[] = {
        [IMAP_IDS_NONE] = "", [IMAP_IDS_EMAILID] = " EMAILID", [IMAP_IDS_X_GM_MSGID] = " X-GM-MSGID",
    };
    c->listing_ids = imap_client_stable_ids(c);
    c->listing_dates = dates;
    imap_cmd_puts(c, "UID FETCH 1:* (UID FLAGS RFC822.SIZE");
    imap_cmd_puts(c, dates ? " INTERNALDATE" : "");
    imap_cmd_puts(c, ids[c->listing_ids]);
    imap_cmd_puts(c, ")");
    imap_cmd_puts(c, tail);
}

/* The listing's items; `tail` follows the closing parenthesis. */
static void send_listing(struct imap_client *c, bool dates, const char *tail)
{
    imap_cmd_begin(c);
    imap_write_listing(c, dates, tail);
    if (!imap_cmd_end(c)) {
        imap_api_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return;
    }
    upstream_conn_await_reply(&c->conn);
}

void imap_fetch_listing(struct imap_client *c, bool dates, imap_listing_cb *item_cb,
                        imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_LISTING, done, arg))
        return;
    c->item_cb = item_cb;
    /* "1:*" on an empty mailbox would still name the highest UID. */
    if (c->exists == 0) {
        imap_op_finish_soon(c, IMAP_RESULT_OK);
        return;
    }
    send_listing(c, dates, "");
}

void imap_fetch_listing_changed(struct imap_client *c, uint64_t modseq, bool dates,
                                imap_listing_cb *item_cb, imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_LISTING, done, arg))
        return;
    c->item_cb = item_cb;
    if (!(c->caps & IMAP_CAP_CONDSTORE)) {
        imap_set_error(c, "upstream lacks CONDSTORE");
        imap_op_finish_soon(c, IMAP_RESULT_NO);
        return;
    }
    if (c->exists == 0) {
        imap_op_finish_soon(c, IMAP_RESULT_OK);
        return;
    }
    char tail[48];
    snprintf(tail, sizeof tail, " (CHANGEDSINCE %llu)", (unsigned long long)modseq);
    send_listing(c, dates, tail);
}

void imap_fetch_message_ids(struct imap_client *c, imap_message_id_cb *item_cb,
                            imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_MESSAGE_IDS, done, arg))
        return;
    c->message_id_cb = item_cb;
    if (c->exists == 0) {
        imap_op_finish_soon(c, IMAP_RESULT_OK);
        return;
    }
    imap_api_send(c, "UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
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
    if (!imap_op_begin(c, OP_BODY, done, arg))
        return;
    if (uid == 0 || !valid_section(section)) {
        imap_api_invalid(c, "bad UID or section for FETCH");
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
    imap_api_send(c, cmd);
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
    imap_cmd_begin(c);
    imap_cmd_puts(c, "UID ");
    imap_cmd_puts(c, verb);
    imap_cmd_puts(c, " ");
    imap_cmd_puts(c, uidset);
    imap_cmd_puts(c, tail1);
    imap_cmd_puts(c, tail2);
    imap_cmd_puts(c, tail3);
    if (!imap_cmd_end(c)) {
        imap_api_fail(c, IMAP_RESULT_IO_ERROR, "write to upstream failed");
        return;
    }
    upstream_conn_await_reply(&c->conn);
}

void imap_store_add_flags(struct imap_client *c, const char *uidset, const char *flags,
                          imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_COMMAND, done, arg))
        return;
    if (!valid_uidset(uidset) || !valid_flags(flags)) {
        imap_api_invalid(c, "bad UID set or flags for STORE");
        return;
    }
    send_uid_command(c, "STORE", uidset, " +FLAGS.SILENT (", flags, ")");
}

void imap_uid_expunge(struct imap_client *c, const char *uidset, imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_COMMAND, done, arg))
        return;
    if (!valid_uidset(uidset)) {
        imap_api_invalid(c, "bad UID set for EXPUNGE");
        return;
    }
    if (!(c->caps & IMAP_CAP_UIDPLUS)) {
        imap_set_error(c, "upstream lacks UIDPLUS: no UID EXPUNGE");
        imap_op_finish_soon(c, IMAP_RESULT_NO);
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
        imap_api_invalid(c, "bad UID set or mailbox name");
        return;
    }
    quoted[pos] = '\0';
    send_uid_command(c, verb, uidset, quoted, "", "");
}

void imap_uid_move(struct imap_client *c, const char *uidset, const char *mailbox,
                   imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_COMMAND, done, arg))
        return;
    if (!(c->caps & IMAP_CAP_MOVE)) {
        imap_set_error(c, "upstream lacks MOVE");
        imap_op_finish_soon(c, IMAP_RESULT_NO);
        return;
    }
    uid_to_mailbox(c, "MOVE", uidset, mailbox);
}

void imap_uid_copy(struct imap_client *c, const char *uidset, const char *mailbox,
                   imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_COMMAND, done, arg))
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
    if (!imap_op_begin(c, OP_LIST, done, arg))
        return;
    if (name_cap == 0 || !valid_special_use(use)) {
        imap_api_invalid(c, "bad special-use attribute or name buffer");
        return;
    }
    memcpy(c->list_use, use, strlen(use) + 1);
    c->list_out = name_out;
    c->list_cap = name_cap;
    c->list_match = LIST_NONE;
    /* RFC 6154 selection option: the server lists only special-use mailboxes. */
    imap_api_send(c, (c->caps & IMAP_CAP_SPECIAL_USE) ? "LIST (SPECIAL-USE) \"\" \"*\""
                                                 : "LIST \"\" \"*\"");
}

void imap_noop(struct imap_client *c, imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_COMMAND, done, arg))
        return;
    imap_api_send(c, "NOOP");
}

void imap_logout(struct imap_client *c, imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_LOGOUT, done, arg))
        return;
    imap_api_send(c, "LOGOUT");
}
