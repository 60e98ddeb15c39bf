/* Fuzz target: the IMAP response reader, tokenizer and response parsers
 * (translate/imap_parse.h).
 *
 * The input is a server's byte stream. It is read twice: fed whole with every
 * literal taken at once, and fed in chunks split where the input's hash says,
 * the consumer taking literal bytes in random amounts (sometimes none: the
 * backpressure case) and feeding the rest again. Both runs must report the
 * same events, literal bytes compared as one run per literal, and stop at the
 * same byte on an error. Whether a literal is absorbed into its line is
 * decided by the literal's index, the same in both runs.
 *
 * Every complete line and every text before a literal goes through the
 * tokenizer, imap_response_parse(), imap_fetch_parse() and imap_list_parse(),
 * whatever the line says, with the pointers they return checked to lie inside
 * the text they were given.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_input.h"
#include "imap_parse.h"

enum { EV_LINE = 1, EV_LITERAL_START, EV_LITERAL_DATA, EV_ERROR };

static bool span_inside(const char *p, size_t len, const char *base, size_t base_len)
{
    if (len == 0)
        return true;
    return p != NULL && p >= base && p <= base + base_len && len <= (size_t)(base + base_len - p);
}

static void check_tokens(const char *line, size_t len)
{
    struct imap_tokenizer t;
    struct imap_token tok;
    enum imap_token_type ty;
    /* Copies of a token's value: one too small on purpose (truncation), one
     * large enough for any mailbox name the gateway keeps. */
    char small[4], big[IMAP_OBJECTID_MAX + 1];

    imap_tokenizer_init(&t, line, len);
    /* Each token but the last consumes at least one byte. */
    for (size_t n = 0; n <= len + 1; n++) {
        ty = imap_next_token(&t, &tok);
        FUZZ_CHECK(tok.type == ty);
        if (ty == IMAP_TOK_END || ty == IMAP_TOK_ERROR)
            break;
        FUZZ_CHECK(tok.len > 0 || ty == IMAP_TOK_QUOTED);
        FUZZ_CHECK(span_inside(tok.p, tok.len, line, len));
        if (ty == IMAP_TOK_ATOM || ty == IMAP_TOK_QUOTED) {
            size_t full = imap_token_copy(&tok, big, sizeof big);
            size_t part = imap_token_copy(&tok, small, sizeof small);
            /* An absorbed literal may hold NUL: compare by length. */
            size_t kept = full < sizeof small ? full : sizeof small - 1;
            FUZZ_CHECK(full == part && full <= tok.len && small[kept] == '\0');
            if (full < sizeof big)
                FUZZ_CHECK(big[full] == '\0' && memcmp(small, big, kept) == 0);
            uint32_t v;
            if (imap_token_u32(&tok, &v))
                FUZZ_CHECK(ty == IMAP_TOK_ATOM && tok.p[0] >= '0' && tok.p[0] <= '9');
            int64_t when;
            if (tok.len == IMAP_DATE_TIME_LEN)
                (void)imap_parse_date_time(tok.p, tok.len, &when);
        }
    }
    FUZZ_CHECK(ty == IMAP_TOK_END || ty == IMAP_TOK_ERROR);
    FUZZ_CHECK((ty == IMAP_TOK_ERROR) == (t.error != NULL));
    /* Sticky end. */
    FUZZ_CHECK(imap_next_token(&t, &tok) == ty);
}

static void check_fetch(const char *data, size_t len, bool partial)
{
    struct imap_fetch_attrs a;
    const char *error;

    if (imap_fetch_parse(data, len, partial, &a, &error)) {
        FUZZ_CHECK(error == NULL);
        if (a.present & IMAP_FETCH_HAS_UID)
            FUZZ_CHECK(a.uid != 0);
        FUZZ_CHECK(((a.present & IMAP_FETCH_HAS_X_GM_MSGID) != 0) == (a.x_gm_msgid != 0));
        if (a.present & IMAP_FETCH_HAS_EMAILID) {
            FUZZ_CHECK(a.emailid_len >= 1 && a.emailid_len <= IMAP_OBJECTID_MAX);
            FUZZ_CHECK(span_inside(a.emailid, a.emailid_len, data, len));
        }
        FUZZ_CHECK(partial == (a.literal_item != NULL));
        if (partial)
            FUZZ_CHECK(a.literal_item_len > 0 && span_inside(a.literal_item, a.literal_item_len, data, len));
    } else {
        FUZZ_CHECK(error != NULL);
    }
}

static void check_list(const char *data, size_t len)
{
    struct imap_list_entry e;
    const char *error;
    char name[IMAP_OBJECTID_MAX + 1];   /* truncation is allowed: only the bound matters here */

    if (!imap_list_parse(data, len, &e, &error)) {
        FUZZ_CHECK(error != NULL);
        return;
    }
    FUZZ_CHECK(error == NULL);
    FUZZ_CHECK(span_inside(e.attrs, e.attrs_len, data, len));
    (void)imap_list_has_attr(&e, "\\Trash");
    FUZZ_CHECK(e.name.type == IMAP_TOK_ATOM || e.name.type == IMAP_TOK_QUOTED ||
               e.name.type == IMAP_TOK_LITERAL);
    FUZZ_CHECK(span_inside(e.name.p, e.name.len, data, len));
    if (e.name.type != IMAP_TOK_LITERAL)
        (void)imap_token_copy(&e.name, name, sizeof name);
}

/* text is a complete line, or the text before a literal (partial). */
static void check_text(const char *text, size_t len, bool partial)
{
    struct imap_response r;
    const char *error;

    check_tokens(text, len);
    /* Whatever the line is, these must not misbehave on it. */
    check_fetch(text, len, partial);
    check_list(text, len);

    if (!imap_response_parse(text, len, &r, &error)) {
        FUZZ_CHECK(error != NULL);
        return;
    }
    FUZZ_CHECK(error == NULL);
    FUZZ_CHECK(span_inside(r.tag, r.tag_len, text, len));
    FUZZ_CHECK(span_inside(r.name, r.name_len, text, len));
    FUZZ_CHECK(span_inside(r.code, r.code_len, text, len));
    FUZZ_CHECK(span_inside(r.code_args, r.code_args_len, text, len));
    FUZZ_CHECK(span_inside(r.text, r.text_len, text, len));
    FUZZ_CHECK(span_inside(r.data, r.data_len, text, len));
    FUZZ_CHECK((r.type == IMAP_RESP_TAGGED) == (r.tag_len > 0));
    if (r.type == IMAP_RESP_TAGGED)
        FUZZ_CHECK(r.status == IMAP_STATUS_OK || r.status == IMAP_STATUS_NO ||
                   r.status == IMAP_STATUS_BAD);
    (void)imap_resp_name_is(&r, "FETCH");
    (void)imap_resp_code_is(&r, "UIDVALIDITY");
    /* A code's number: only with a code, and never 0 (RFC 7162 modseqs and
     * UIDNEXT are positive; 0 means "none" to the listing cache). */
    uint64_t code_number = 0;
    if (imap_resp_code_number(&r, &code_number))
        FUZZ_CHECK(r.code != NULL && code_number != 0);
    uint32_t backoff_ms = 0;
    bool throttled = imap_response_throttled(&r, &backoff_ms);
    /* An OK is never a throttle, and only a throttle names a backoff. */
    FUZZ_CHECK(!throttled || r.status != IMAP_STATUS_OK);
    FUZZ_CHECK(throttled || backoff_ms == 0);
    if (r.type == IMAP_RESP_UNTAGGED && r.status == IMAP_STATUS_NONE) {
        check_tokens(r.data, r.data_len);
        check_fetch(r.data, r.data_len, partial);
        check_list(r.data, r.data_len);
    }
    if (r.code_args_len > 0)
        check_tokens(r.code_args, r.code_args_len);
}

struct run {
    struct imap_reader r;
    struct fuzz_log log;
    uint64_t absorb_bits;   /* bit k: absorb the k-th literal (mod 64) */
    unsigned literals;
    uint64_t literal_left;  /* of the literal being handed out */
    /* Literal bytes handed out since the last other event: compared as one
     * piece, since the split of LITERAL_DATA depends on the feeding. */
    struct fuzz_log pending;
    /* The input, for checking an absorbed literal against its bytes. */
    const char *in;
    size_t in_len;
    /* An absorbed literal whose bytes were all in the input: the next line
     * (or text before a literal) must hold them at absorbed_at, quoted. */
    bool absorbed_check;
    size_t absorbed_at;
    const char *absorbed;
    size_t absorbed_len;
};

/* The absorbed literal must read as a quoted string of exactly its bytes. */
static void check_absorbed(struct run *run, const char *line, size_t len)
{
    if (!run->absorbed_check)
        return;
    run->absorbed_check = false;
    size_t at = run->absorbed_at;
    FUZZ_CHECK(at < len && line[at++] == '"');
    for (size_t i = 0; i < run->absorbed_len; i++) {
        char c = run->absorbed[i];
        if (c == '"' || c == '\\')
            FUZZ_CHECK(at < len && line[at++] == '\\');
        FUZZ_CHECK(at < len && line[at++] == c);
    }
    FUZZ_CHECK(at < len && line[at] == '"');
}

static void flush_literal(struct run *run)
{
    if (run->pending.len > 0) {
        fuzz_log_event(&run->log, EV_LITERAL_DATA, run->pending.p, run->pending.len);
        run->pending.len = 0;
    }
}

/* Handles one event. Returns false when the run must stop (error). */
static bool on_event(struct run *run, const struct imap_read_event *ev, size_t offset)
{
    switch (ev->status) {
    case IMAP_READ_LINE:
        flush_literal(run);
        FUZZ_CHECK(ev->line != NULL && ev->line_len <= IMAP_LINE_MAX);
        FUZZ_CHECK(run->literal_left == 0);
        fuzz_log_event(&run->log, EV_LINE, ev->line, ev->line_len);
        check_absorbed(run, ev->line, ev->line_len);
        check_text(ev->line, ev->line_len, false);
        return true;
    case IMAP_READ_LITERAL_START: {
        flush_literal(run);
        FUZZ_CHECK(ev->line != NULL && ev->line_len <= IMAP_LINE_MAX);
        FUZZ_CHECK(ev->literal_len <= IMAP_LITERAL_MAX);
        FUZZ_CHECK(ev->line_len >= 3 && ev->line[ev->line_len - 1] == '}');
        fuzz_log_event(&run->log, EV_LITERAL_START, ev->line, ev->line_len);
        check_absorbed(run, ev->line, ev->line_len);
        fuzz_log_put(&run->log, &ev->literal_len, sizeof ev->literal_len);
        fuzz_log_put(&run->log, &ev->literal8, sizeof ev->literal8);
        check_text(ev->line, ev->line_len, true);
        bool absorb = (run->absorb_bits >> (run->literals++ % 64)) & 1;
        size_t marker = run->r.marker_start;
        bool absorbed = absorb && imap_reader_absorb_literal(&run->r);
        if (absorbed && ev->literal_len <= run->in_len - offset) {
            run->absorbed_check = true;
            run->absorbed_at = marker;
            run->absorbed = run->in + offset;
            run->absorbed_len = (size_t)ev->literal_len;
        }
        fuzz_log_put(&run->log, &absorbed, sizeof absorbed);
        run->literal_left = absorbed ? 0 : ev->literal_len;
        return true;
    }
    case IMAP_READ_LITERAL_DATA:
        FUZZ_CHECK(ev->data != NULL && ev->data_len > 0 && ev->data_len <= run->literal_left);
        return true;
    case IMAP_READ_ERROR: {
        flush_literal(run);
        FUZZ_CHECK(ev->error != NULL);
        fuzz_log_event(&run->log, EV_ERROR, ev->error, strlen(ev->error));
        fuzz_log_put(&run->log, &offset, sizeof offset);
        /* Sticky: nothing more is consumed. */
        struct imap_read_event again;
        FUZZ_CHECK(imap_reader_feed(&run->r, "x", 1, &again) == 0 && again.status == IMAP_READ_ERROR);
        return false;
    }
    case IMAP_READ_AGAIN:
        return true;
    default:
        FUZZ_CHECK(!"unknown status");
        return false;
    }
}

static void take_literal(struct run *run, const struct imap_read_event *ev, size_t n)
{
    fuzz_log_put(&run->pending, ev->data, n);
    imap_reader_literal_take(&run->r, n);
    run->literal_left -= n;
}

/* rng NULL: the whole input at once, literals taken whole. */
static void run_reader(struct run *run, const char *in, size_t len, struct fuzz_rng *rng)
{
    size_t pos = 0;
    bool last_take_empty = false;

    imap_reader_init(&run->r);
    run->in = in;
    run->in_len = len;
    while (pos < len) {
        size_t end = rng ? pos + fuzz_chunk_len(rng, len - pos) : len;
        /* Feed until the reader has used the chunk, or the consumer stops. */
        for (;;) {
            struct imap_read_event ev;
            size_t used = imap_reader_feed(&run->r, in + pos, end - pos, &ev);
            FUZZ_CHECK(used <= end - pos);
            pos += used;
            if (!on_event(run, &ev, pos))
                goto done;
            FUZZ_CHECK(run->r.cap <= IMAP_LINE_MAX && run->r.len <= run->r.cap);
            if (ev.status == IMAP_READ_AGAIN) {
                FUZZ_CHECK(pos == end);
                break;
            }
            if (ev.status != IMAP_READ_LITERAL_DATA)
                continue;
            FUZZ_CHECK(used == 0 && ev.data == in + pos && ev.data_len <= end - pos);
            size_t take = ev.data_len;
            if (rng) {
                take = fuzz_rng_range(rng, 0, ev.data_len);
                /* Backpressure may pause the stream, not stop it. */
                if (take == 0 && last_take_empty)
                    take = 1;
                last_take_empty = take == 0;
            }
            take_literal(run, &ev, take);
            pos += take;
            if (take < ev.data_len)
                break;  /* the rest is fed again, in a new chunk */
        }
    }
    /* One more call sees a literal that ended with the input. */
    struct imap_read_event ev;
    FUZZ_CHECK(imap_reader_feed(&run->r, in + len, 0, &ev) == 0);
    on_event(run, &ev, pos);
done:
    flush_literal(run);
    /* Where the reader stands must not depend on the feeding either. */
    fuzz_log_put(&run->log, &run->r.state, sizeof run->r.state);
    fuzz_log_put(&run->log, &run->r.len, sizeof run->r.len);
    fuzz_log_put(&run->log, &run->r.literal_left, sizeof run->r.literal_left);
    if (run->r.len > 0)
        fuzz_log_put(&run->log, run->r.buf, run->r.len);
    imap_reader_deinit(&run->r);
    fuzz_log_free(&run->pending);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    uint64_t h = fuzz_hash(data, size);
    struct run whole = { .absorb_bits = h }, split = { .absorb_bits = h };
    struct fuzz_rng rng;

    /* The date parser takes fixed-size text: give it the input directly too. */
    int64_t when;
    if (size >= IMAP_DATE_TIME_LEN)
        (void)imap_parse_date_time(in, IMAP_DATE_TIME_LEN, &when);

    run_reader(&whole, in, size, NULL);
    fuzz_rng_init(&rng, h);
    run_reader(&split, in, size, &rng);
    FUZZ_CHECK(fuzz_log_equal(&whole.log, &split.log));

    fuzz_log_free(&whole.log);
    fuzz_log_free(&split.log);
    return 0;
}
