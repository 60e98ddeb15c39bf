/* Fuzz target: the POP3 reply reader and listing parsers
 * (translate/pop3_reply.h), the client side that backends/legacy_pop3 uses.
 *
 * The input is a server's byte stream. What a +OK opens (a single line,
 * multi-line by lines, multi-line as a data stream) is drawn from a generator
 * seeded with the input's hash, once at the start and again after every event
 * that leaves the reader reading a status line, so every feeding draws the
 * same sequence. Properties:
 * 1. Fed whole, one byte at a time, and in chunks split where the hash says,
 *    the reader reports the same events (adjacent DATA joined) as a
 *    reference reader that takes the input a line at a time, written from
 *    the header's contract: LF ends a line and one CR before it goes, lines
 *    over POP3_REPLY_LINE_MAX are reported once as TOO_LONG and skipped,
 *    dot-unstuffing, "." ends a multi-line response, a status line is "+OK"
 *    or "-ERR" alone or followed by a space.
 * 2. Every call consumes at least one byte or reports an event, and AGAIN
 *    consumes everything.
 * 3. Every LINE goes through pop3_parse_uidl_line and pop3_parse_list_line,
 *    every status text through pop3_parse_stat: results point inside the
 *    line, a UIDL is valid, numbers agree with 64-bit arithmetic.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_input.h"
#include "pop3_reply.h"

enum { EV_OK = 1, EV_ERR, EV_BAD, EV_LINE, EV_DATA, EV_END, EV_LONG };

/* The events of one run; DATA is collected and logged as one event when
 * another event (or the end) comes. */
struct run_log {
    struct fuzz_log log;
    struct fuzz_log data;
};

static void log_flush_data(struct run_log *l)
{
    if (l->data.len > 0) {
        fuzz_log_event(&l->log, EV_DATA, l->data.p, l->data.len);
        l->data.len = 0;
    }
}

static void log_event(struct run_log *l, uint8_t type, const char *text, size_t len)
{
    if (type == EV_DATA) {
        fuzz_log_put(&l->data, text, len);
        return;
    }
    log_flush_data(l);
    fuzz_log_event(&l->log, type, text, len);
}

static void log_free(struct run_log *l)
{
    fuzz_log_free(&l->log);
    fuzz_log_free(&l->data);
}

static enum pop3_reply_expect draw(struct fuzz_rng *choice)
{
    return (enum pop3_reply_expect)(fuzz_rng_next(choice) % 3);
}

static uint64_t leading_decimal(const char *s, size_t len, size_t *ndigits)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (v <= UINT32_MAX)
            v = v * 10 + (uint64_t)(s[i] - '0');
        i++;
    }
    *ndigits = i;
    return v;
}

/* Property 3. */
static void check_listing(const char *line, size_t len)
{
    size_t nd;
    uint64_t lead = leading_decimal(line, len, &nd);
    uint32_t n = 0, size = 0;
    const char *u = NULL;
    size_t ulen = 0;
    enum pop3_listing_result r = pop3_parse_uidl_line(line, len, &n, &u, &ulen);
    if (r != POP3_LISTING_MALFORMED)
        FUZZ_CHECK(nd > 0 && lead == n && n >= 1 && (nd == len || line[nd] == ' ' ||
                                                     line[nd] == '\t'));
    if (r == POP3_LISTING_OK) {
        FUZZ_CHECK(u > line && u + ulen <= line + len);
        FUZZ_CHECK(pop3_uidl_valid(u, ulen));
        FUZZ_CHECK(u[-1] == ' ');
    }
    r = pop3_parse_list_line(line, len, &n, &size);
    if (r != POP3_LISTING_MALFORMED)
        FUZZ_CHECK(nd > 0 && lead == n && n >= 1);
    if (r == POP3_LISTING_OK) {
        size_t i = nd;
        while (i < len && line[i] == ' ')
            i++;
        size_t sd;
        uint64_t v = leading_decimal(line + i, len - i, &sd);
        FUZZ_CHECK(sd > 0 && v == size);
    }
    uint32_t count = 0;
    if (pop3_parse_stat(line, len, &count))
        FUZZ_CHECK(nd > 0 && lead == count);
    (void)pop3_reply_has_code(line, len, "IN-USE");
    (void)pop3_reply_has_code(line, len, "SYS");
}

/* The reader, fed in chunks: whole (rng NULL, one 0), one byte (one 1), or
 * random. */
static void run_reader(const char *in, size_t len, uint64_t seed, struct fuzz_rng *split,
                       size_t one, struct run_log *l)
{
    struct pop3_reply_reader r;
    struct fuzz_rng choice;
    fuzz_rng_init(&choice, seed);
    pop3_reply_reader_init(&r);
    pop3_reply_expect(&r, draw(&choice));
    size_t pos = 0;
    while (pos < len) {
        size_t chunk = split ? fuzz_chunk_len(split, len - pos) : one ? one : len - pos;
        size_t off = 0;
        while (off < chunk) {
            struct pop3_reply_event ev;
            size_t used = pop3_reply_feed(&r, in + pos + off, chunk - off, &ev);
            FUZZ_CHECK(used <= chunk - off);
            FUZZ_CHECK(used > 0 || ev.type != POP3_REPLY_AGAIN);
            off += used;
            switch (ev.type) {
            case POP3_REPLY_AGAIN:
                FUZZ_CHECK(off == chunk);
                continue;
            case POP3_REPLY_DATA:
                FUZZ_CHECK(ev.len > 0);
                log_event(l, EV_DATA, ev.text, ev.len);
                continue;
            case POP3_REPLY_OK:
                log_event(l, EV_OK, ev.text, ev.len);
                check_listing(ev.text, ev.len);
                break;
            case POP3_REPLY_ERR:
                log_event(l, EV_ERR, ev.text, ev.len);
                break;
            case POP3_REPLY_BAD_STATUS:
                log_event(l, EV_BAD, ev.text, ev.len);
                break;
            case POP3_REPLY_LINE:
                FUZZ_CHECK(ev.len <= POP3_REPLY_LINE_MAX && ev.text[ev.len] == '\0');
                log_event(l, EV_LINE, ev.text, ev.len);
                check_listing(ev.text, ev.len);
                break;
            case POP3_REPLY_END:
                log_event(l, EV_END, NULL, 0);
                break;
            case POP3_REPLY_TOO_LONG:
                log_event(l, EV_LONG, NULL, 0);
                break;
            }
            if (!pop3_reply_in_multiline(&r))
                pop3_reply_expect(&r, draw(&choice));
        }
        pos += chunk;
    }
    log_flush_data(l);
}

static bool status_word(const char *s, size_t len, const char *word, size_t *at)
{
    size_t n = strlen(word);
    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c != word[i])
            return false;
    }
    if (len > n && s[n] != ' ')
        return false;
    *at = len > n ? n + 1 : n;
    return true;
}

/* Property 1: the contract, a line at a time over the whole input. */
static void run_reference(const char *in, size_t len, uint64_t seed, struct run_log *l)
{
    enum { STATUS, LINES, STREAM } mode = STATUS;
    struct fuzz_rng choice;
    fuzz_rng_init(&choice, seed);
    enum pop3_reply_expect expect = draw(&choice);
    size_t i = 0;
    while (i < len) {
        const char *lf = memchr(in + i, '\n', len - i);
        bool complete = lf != NULL;
        size_t end = complete ? (size_t)(lf - in) : len;
        size_t next = complete ? end + 1 : len;
        size_t raw = next - i;
        if (mode == STREAM) {
            size_t a = i;
            if (in[i] == '.') {
                bool dot_line = raw == 1 + complete || (raw == 2 + complete && in[i + 1] == '\r');
                if (dot_line && complete) {
                    log_event(l, EV_END, NULL, 0);
                    mode = STATUS;
                    expect = draw(&choice);
                    i = next;
                    continue;
                }
                if (dot_line)
                    break;    /* "." or ".\r" at the end: held */
                a++;
            }
            log_event(l, EV_DATA, in + a, next - a);
            i = next;
            continue;
        }
        size_t clen = end - i;
        if (clen > 0 && in[end - 1] == '\r')
            clen--;   /* before LF, or pending at the end of the input */
        if (clen > POP3_REPLY_LINE_MAX) {
            log_event(l, EV_LONG, NULL, 0);
        } else if (!complete) {
            break;
        } else if (mode == LINES) {
            if (clen == 1 && in[i] == '.') {
                log_event(l, EV_END, NULL, 0);
                mode = STATUS;
            } else if (clen > 0 && in[i] == '.') {
                log_event(l, EV_LINE, in + i + 1, clen - 1);
            } else {
                log_event(l, EV_LINE, in + i, clen);
            }
        } else {
            size_t at;
            if (status_word(in + i, clen, "+OK", &at)) {
                log_event(l, EV_OK, in + i + at, clen - at);
                if (expect == POP3_EXPECT_LINES)
                    mode = LINES;
                else if (expect == POP3_EXPECT_STREAM)
                    mode = STREAM;
            } else if (status_word(in + i, clen, "-ERR", &at)) {
                log_event(l, EV_ERR, in + i + at, clen - at);
            } else {
                log_event(l, EV_BAD, in + i, clen);
            }
        }
        if (mode == STATUS)
            expect = draw(&choice);
        i = next;
    }
    log_flush_data(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    uint64_t h = fuzz_hash(data, size);
    struct run_log want = { 0 }, whole = { 0 }, bytes = { 0 }, split = { 0 };
    struct fuzz_rng rng;

    run_reference(in, size, h, &want);
    run_reader(in, size, h, NULL, 0, &whole);
    FUZZ_CHECK(fuzz_log_equal(&want.log, &whole.log));
    run_reader(in, size, h, NULL, 1, &bytes);
    FUZZ_CHECK(fuzz_log_equal(&want.log, &bytes.log));
    fuzz_rng_init(&rng, h ^ 0x5bd1e995u);
    run_reader(in, size, h, &rng, 0, &split);
    FUZZ_CHECK(fuzz_log_equal(&want.log, &split.log));

    log_free(&want);
    log_free(&whole);
    log_free(&bytes);
    log_free(&split);
    return 0;
}
