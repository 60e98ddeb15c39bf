/* session_transaction.c: the TRANSACTION state (RFC 1939 section 5).
 *
 * Message numbers are the maildrop snapshot's and stay fixed for the session.
 * LIST and UIDL are produced a buffer at a time while the client reads; RETR
 * and TOP stream the upstream literal through the dot_stream with
 * backpressure: when the client's output passes the high-water mark the body
 * sink stops taking bytes, which stops reads from the IMAP socket until the
 * client drains. Everything a transfer writes while one upstream read is
 * handled (status line, body bytes, final ".") is deferred to the end of that
 * read (net_stream_defer_flush): a small message leaves in one send, a large
 * one in sends of NET_STREAM_DEFER_MAX instead of one per piece. */
#include "session_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "reply_code.h"

/* One buffer of listing lines or dot-stuffed body per write. */
#define SEND_CHUNK (16 * 1024)
/* TOP reads BODY[HEADER], then the body text in windows that start small (a
 * few lines are usually wanted) and double, so neither a short TOP of a 50 MB
 * message nor a fetchmail-style "TOP n 99999999" costs more than a few round
 * trips. The windows are BODY[]<header octets + offset>, not BODY[TEXT]<offset>:
 * the same bytes by RFC 3501 (BODY[] is HEADER then TEXT), but a server's TEXT
 * depends on its MIME parse. Cyrus 3.6 answers BODY[TEXT] "" for a message
 * whose Content-Type boundary has an unterminated quote, while its BODY[] and
 * its own POP3 TOP have the text. */
#define TOP_WINDOW_MIN (4 * 1024)
#define TOP_WINDOW_MAX (4 * 1024 * 1024)
#define TOP_BYTES_PER_LINE 128

static bool output_full(const struct session *s)
{
    return net_stream_out_pending(s->client) >= NET_STREAM_OUT_HIGH_WATER;
}

/* Resolve a message-number argument. Replies and returns NULL when there is
 * no such (undeleted) message. */
static struct maildrop_entry *message_arg(struct session *s, const struct pop3_command *cmd,
                                          unsigned index, uint32_t *msgnum)
{
    if (cmd->argc <= index) {
        session_bad_command(s, "-ERR Message number required.");
        return NULL;
    }
    if (!pop3_parse_msgnum(cmd->argv[index], s->drop.count, msgnum)) {
        session_reply(s, "-ERR There is no such message.");
        return NULL;
    }
    struct maildrop_entry *e = maildrop_get(&s->drop, *msgnum);
    if (e->flags & MAILDROP_DELETED) {
        session_reply(s, "-ERR Message is deleted.");
        return NULL;
    }
    return e;
}

void session_cmd_stat(struct session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    uint32_t count;
    uint64_t octets;
    maildrop_stat(&s->drop, &count, &octets);
    session_replyf(s, "+OK %" PRIu32 " %" PRIu64, count, octets);
}

/* ---- LIST and UIDL ------------------------------------------------------ */

static size_t format_listing_line(const struct session *s, uint32_t msgnum,
                                  const struct maildrop_entry *e, bool uidl, char *out, size_t cap)
{
    if (!uidl)
        return (size_t)snprintf(out, cap, "%" PRIu32 " %" PRIu32 "\r\n", msgnum, e->size);
    size_t legacy_len;
    const char *legacy = legacy_uidl_find(&s->legacy_uidls, msgnum, &legacy_len);
    if (legacy)
        return (size_t)snprintf(out, cap, "%" PRIu32 " %.*s\r\n", msgnum, (int)legacy_len, legacy);
    char id[MAILDROP_UIDL_MAX + 1];
    maildrop_uidl(&s->drop, e, id);
    return (size_t)snprintf(out, cap, "%" PRIu32 " %s\r\n", msgnum, id);
}

/* Emit listing lines while the client keeps up; finish with ".". */
static void continue_listing(struct session *s)
{
    char buf[SEND_CHUNK];
    /* Longest line: 10-digit number, space, 70-char UIDL, CRLF. */
    const size_t line_max = 10 + 1 + MAILDROP_UIDL_MAX + 2 + 1;
    while (s->listing.next <= s->drop.count) {
        if (output_full(s))
            return;  /* resumed from session_output_drained */
        size_t len = 0;
        while (s->listing.next <= s->drop.count && len + line_max <= sizeof buf) {
            uint32_t n = s->listing.next++;
            const struct maildrop_entry *e = maildrop_get(&s->drop, n);
            if (!(e->flags & MAILDROP_DELETED))
                len += format_listing_line(s, n, e, s->listing.uidl, buf + len, sizeof buf - len);
        }
        if (!net_stream_write(s->client, buf, len))
            return;
        s->bytes_out += len;
    }
    session_reply(s, ".");
    s->listing.active = false;
    session_command_done(s);
}

static void listing_command(struct session *s, const struct pop3_command *cmd, bool uidl)
{
    if (cmd->argc == 1) {
        uint32_t n;
        struct maildrop_entry *e = message_arg(s, cmd, 0, &n);
        if (!e)
            return;
        char line[128];
        size_t len = format_listing_line(s, n, e, uidl, line, sizeof line);
        line[len - 2] = '\0';  /* session_reply adds the CRLF */
        session_replyf(s, "+OK %s", line);
        return;
    }
    uint32_t count;
    uint64_t octets;
    maildrop_stat(&s->drop, &count, &octets);
    if (uidl)
        session_reply(s, "+OK Unique-ID listing follows.");
    else
        session_replyf(s, "+OK %" PRIu32 " messages (%" PRIu64 " octets)", count, octets);
    s->listing = (struct listing_cursor){ .active = true, .uidl = uidl, .next = 1 };
    s->busy = true;
    continue_listing(s);
}

void session_cmd_list(struct session *s, const struct pop3_command *cmd)
{
    listing_command(s, cmd, false);
}

void session_cmd_uidl(struct session *s, const struct pop3_command *cmd)
{
    listing_command(s, cmd, true);
}

/* ---- RETR and TOP ------------------------------------------------------- */

static void on_section_start(uint64_t literal_len, void *arg);
static size_t on_body_data(const char *data, size_t len, void *arg);
static void on_section_fetched(struct imap_client *c, enum imap_result r, void *arg);
static void on_batch_fetched(struct imap_client *c, enum imap_result r, void *arg);

static const struct imap_body_sink body_sink = {
    .section_start = on_section_start,
    .data = on_body_data,
};

static void fetch_next_section(struct session *s)
{
    struct transfer *x = &s->xfer;
    const struct maildrop_entry *e = maildrop_get(&s->drop, x->msgnum);
    x->literal_len = 0;
    x->received = 0;
    x->found = false;
    if (!x->is_top)
        imap_fetch_body(s->imap, e->uid, "", 0, 0, &body_sink, &x->found, on_section_fetched, s);
    else if (x->top_phase == 0)
        imap_fetch_body(s->imap, e->uid, "HEADER", 0, 0, &body_sink, &x->found, on_section_fetched, s);
    else
        imap_fetch_body(s->imap, e->uid, "", x->header_octets + x->text_offset, x->window, &body_sink,
                        &x->found, on_section_fetched, s);
}

static void on_transfer_folder_selected(struct imap_client *c, enum imap_result r, void *arg)
{
    struct session *s = arg;
    if (r != IMAP_RESULT_OK)
        on_section_fetched(c, r, s);
    else if (s->xfer.batch)
        session_prefetch_fetch(s, on_batch_fetched);
    else
        fetch_next_section(s);
}

static void start_transfer(struct session *s, uint32_t msgnum, bool is_top, uint32_t top_lines)
{
    /* The upstream throttled this session: a client retrying RETR at once
     * must not keep the throttle going. Answered here, no upstream command. */
    if (ev_now(s->gw->loop) < s->upstream_backoff_until) {
        session_reply(s, reply_for_fetch_failure(IMAP_RESULT_THROTTLED).line);
        return;
    }
    s->xfer = (struct transfer){ .active = true, .is_top = is_top, .msgnum = msgnum,
                                 .top_lines = top_lines };
    dot_stream_init(&s->xfer.ds, s->cfg->nul_bytes);
    s->xfer.batch = !is_top && session_prefetch_plan(s, msgnum);
    s->busy = true;
    session_select_folder(s, maildrop_get(&s->drop, msgnum)->folder, on_transfer_folder_selected);
}

static void on_section_start(uint64_t literal_len, void *arg)
{
    struct session *s = arg;
    struct transfer *x = &s->xfer;
    x->literal_len = literal_len;
    if (x->started || s->state == SESSION_CLOSING)
        return;
    x->started = true;
    net_stream_defer_flush(s->client);
    if (x->is_top)
        session_reply(s, "+OK");
    else
        session_replyf(s, "+OK %" PRIu32 " octets", maildrop_get(&s->drop, x->msgnum)->size);
}

static size_t on_body_data(const char *data, size_t len, void *arg)
{
    struct session *s = arg;
    struct transfer *x = &s->xfer;
    if (s->state == SESSION_CLOSING)
        return len;  /* the client is gone; let the upstream finish */
    net_stream_defer_flush(s->client);
    char out[SEND_CHUNK];
    size_t used = 0;
    while (used < len) {
        if (dot_stream_limit_reached(&x->ds)) {
            used = len;  /* TOP has its lines; the rest of this window is dropped */
            break;
        }
        if (output_full(s)) {
            x->paused = true;
            break;
        }
        size_t out_len;
        used += dot_stream_feed(&x->ds, data + used, len - used, out, sizeof out, &out_len);
        if (!net_stream_write(s->client, out, out_len))
            return len;
        s->bytes_out += out_len;
    }
    x->received += used;
    return used;
}

static void finish_transfer(struct session *s)
{
    struct transfer *x = &s->xfer;
    char tail[8];
    size_t tail_len;
    /* At most CRLF + ".\r\n" remain; tail holds them in one go. */
    dot_stream_finish(&x->ds, tail, sizeof tail, &tail_len);
    net_stream_defer_flush(s->client);
    net_stream_write(s->client, tail, tail_len);
    s->bytes_out += tail_len;

    struct maildrop_entry *e = maildrop_get(&s->drop, x->msgnum);
    if (!x->is_top) {
        e->flags |= MAILDROP_RETRIEVED;
        s->retr_count++;
        metrics_counter_add(METRIC_RETR_TOTAL, NULL, 1);
        /* LIST must match what RETR sends: where the upstream's RFC822.SIZE
         * was off (no final newline, an estimate), every node lists the
         * measured size from now on. */
        if (x->ds.unstuffed_octets != e->size && x->ds.unstuffed_octets <= UINT32_MAX) {
            log_event(LOG_LEVEL_DEBUG, s->id, "size-learned", "uid", LOG_U64(e->uid),
                      "listed", LOG_U64(e->size), "exact", LOG_U64(x->ds.unstuffed_octets), LOG_END);
            e->size = (uint32_t)x->ds.unstuffed_octets;
            session_device_store_size(s, e);
        }
        e->flags |= MAILDROP_SIZE_EXACT;
    }
    x->active = false;
    session_command_done(s);
}

static bool connection_lost(enum imap_result r)
{
    return r == IMAP_RESULT_IO_ERROR || r == IMAP_RESULT_TIMEOUT || r == IMAP_RESULT_PROTOCOL_ERROR ||
           r == IMAP_RESULT_TLS_VERIFY_ERROR;
}

static void on_section_fetched(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    struct transfer *x = &s->xfer;
    if (s->state == SESSION_CLOSING)
        return;
    if (r != IMAP_RESULT_OK) {
        log_event(LOG_LEVEL_WARN, s->id, "fetch-failed", "msg", LOG_U64(x->msgnum),
                  "upstream", imap_result_name(r), "upstream_error", imap_client_last_error(s->imap),
                  "started", x->started ? "yes" : "no", LOG_END);
        x->active = false;
        /* Never end a cut message with ".": the client must not take it as whole. */
        if (x->started)
            session_close(s, NULL, "upstream-failed-mid-message");
        else if (connection_lost(r))
            session_close(s, "-ERR [SYS/TEMP] Mail server connection lost.", "upstream-lost");
        else {
            session_reply(s, reply_for_fetch_failure(r).line);
            session_command_done(s);
        }
        return;
    }
    /* A window past the end of the message may come back as "" or NIL
     * instead of a literal: that is the end of TOP, not a vanished message. */
    if (!x->found && x->is_top && x->top_phase == 1) {
        finish_transfer(s);
        return;
    }
    if (!x->found) {
        if (x->started) {
            session_close(s, NULL, "message-vanished-mid-message");
            return;
        }
        maildrop_get(&s->drop, x->msgnum)->flags |= MAILDROP_GONE;
        x->active = false;
        session_replyf(s, "-ERR Message %" PRIu32 " expunged.", x->msgnum);
        session_command_done(s);
        return;
    }
    if (!x->is_top) {
        finish_transfer(s);
        return;
    }
    if (x->top_phase == 0) {
        /* TOP n 0 ends with the header, unless its last line is still open:
         * Courier's BODY[HEADER] of a message with no blank line drops the
         * final LF and ends in a lone CR. Only the text's first octets tell
         * how that line ends (a CRLF, or CR CR LF), so TOP n 0 then reads on,
         * with no line to spare, until the line is complete: the same bytes
         * RETR sends, no CR invented. */
        if (x->top_lines == 0 && x->ds.at_line_start && !x->ds.pending_cr) {
            finish_transfer(s);
            return;
        }
        dot_stream_limit_lines(&x->ds, x->top_lines);
        x->top_phase = 1;
        x->header_octets = x->received;
        x->text_offset = 0;
        uint64_t w = (uint64_t)x->top_lines * TOP_BYTES_PER_LINE;
        x->window = w < TOP_WINDOW_MIN ? TOP_WINDOW_MIN : w > TOP_WINDOW_MAX ? TOP_WINDOW_MAX : w;
        fetch_next_section(s);
        return;
    }
    /* A short window means the end of the body text. */
    if (dot_stream_limit_reached(&x->ds) || x->literal_len < x->window) {
        finish_transfer(s);
        return;
    }
    x->text_offset += x->literal_len;
    x->window = x->window * 2 > TOP_WINDOW_MAX ? TOP_WINDOW_MAX : x->window * 2;
    fetch_next_section(s);
}

/* ---- RETR from the prefetch buffer (session_prefetch.c) ------------------ */

/* The held body goes through the same dot_stream, status line and final
 * line as a streamed one (on_section_start, on_body_data, finish_transfer),
 * so the client gets the same bytes; output backpressure pauses it as it
 * pauses the upstream, and session_output_drained continues it. */
static void continue_held(struct session *s)
{
    struct transfer *x = &s->xfer;
    x->held_off += on_body_data(x->held + x->held_off, x->held_len - x->held_off, s);
    if (x->held_off < x->held_len || s->state == SESSION_CLOSING)
        return;
    x->held = NULL;
    session_prefetch_served(s, x->msgnum);
    finish_transfer(s);
}

static bool serve_held(struct session *s, uint32_t msgnum)
{
    const char *body;
    size_t len;
    if (!session_prefetch_body(s, msgnum, &body, &len))
        return false;
    struct transfer *x = &s->xfer;
    if (!x->active) {
        *x = (struct transfer){ .active = true, .msgnum = msgnum };
        dot_stream_init(&x->ds, s->cfg->nul_bytes);
        s->busy = true;
    }
    x->held = body;
    x->held_len = len;
    x->held_off = 0;
    x->found = true;
    on_section_start(len, s);
    continue_held(s);
    return true;
}

static void on_batch_fetched(struct imap_client *c, enum imap_result r, void *arg)
{
    struct session *s = arg;
    struct transfer *x = &s->xfer;
    if (s->state == SESSION_CLOSING)
        return;
    x->batch = false;
    session_prefetch_done(s, r);
    if (r == IMAP_RESULT_OK && serve_held(s, x->msgnum))
        return;
    if (r == IMAP_RESULT_OK || r == IMAP_RESULT_NO || r == IMAP_RESULT_BAD) {
        /* Not held (no body came, or it did not fit), or the server refused
         * the batch (one message of it expunged, say, or a server that
         * takes no UID set here): the message is fetched alone, with a
         * single fetch's outcome. A throttle or a lost connection is the
         * answer to this RETR, as it would be to its single fetch. */
        fetch_next_section(s);
        return;
    }
    on_section_fetched(c, r, s);
}

void session_cmd_retr(struct session *s, const struct pop3_command *cmd)
{
    uint32_t n;
    if (!message_arg(s, cmd, 0, &n))
        return;
    if (serve_held(s, n))
        return;
    start_transfer(s, n, false, 0);
}

void session_cmd_top(struct session *s, const struct pop3_command *cmd)
{
    uint32_t n, lines;
    if (cmd->argc != 2) {
        session_bad_command(s, "-ERR TOP needs a message number and a line count.");
        return;
    }
    if (!pop3_parse_count(cmd->argv[1], &lines)) {
        session_reply(s, "-ERR Invalid line count.");
        return;
    }
    if (!message_arg(s, cmd, 0, &n))
        return;
    start_transfer(s, n, true, lines);
}

void session_output_drained(struct session *s)
{
    if (s->listing.active) {
        continue_listing(s);
    } else if (s->xfer.active && s->xfer.paused) {
        s->xfer.paused = false;
        if (s->xfer.held)
            continue_held(s);
        else
            imap_client_resume_body(s->imap);
    }
}

/* ---- DELE, RSET, NOOP --------------------------------------------------- */

static void dele_after_trash_lookup(struct session *s, enum imap_result r)
{
    struct maildrop_entry *e = maildrop_get(&s->drop, s->dele_msgnum);
    if (s->state == SESSION_CLOSING)
        return;
    if (r != IMAP_RESULT_OK)
        session_reply(s, "-ERR [SYS/TEMP] Mail server did not answer; message not deleted.");
    else if (!session_trash_name(s))
        /* Permanent: say it now, so QUIT commits everything else. */
        session_reply(s, "-ERR [SYS/PERM] The mail server has no Trash folder; message not deleted.");
    else {
        e->flags |= MAILDROP_DELETED;
        session_reply(s, "+OK Marked to be deleted.");
    }
    session_command_done(s);
}

void session_cmd_dele(struct session *s, const struct pop3_command *cmd)
{
    uint32_t n;
    struct maildrop_entry *e = message_arg(s, cmd, 0, &n);
    if (!e)
        return;
    if (s->policy.on_dele == ON_DELE_TRASH && s->trash_state == TRASH_UNKNOWN) {
        /* Whether there is a trash to move it to is learnt at the first DELE. */
        s->dele_msgnum = n;
        s->busy = true;
        session_trash_resolve(s, dele_after_trash_lookup);
        return;
    }
    if (s->policy.on_dele == ON_DELE_TRASH && !session_trash_name(s)) {
        session_reply(s, "-ERR [SYS/PERM] The mail server has no Trash folder; message not deleted.");
        return;
    }
    e->flags |= MAILDROP_DELETED;
    session_reply(s, "+OK Marked to be deleted.");
}

void session_cmd_rset(struct session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    maildrop_rset(&s->drop);
    session_reply(s, "+OK");
}

void session_cmd_noop(struct session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    session_reply(s, "+OK");
}
