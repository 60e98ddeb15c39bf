/* Unit tests for translate/imap_parse: framing in every split, literals,
 * bounds, tokens, response framing, FETCH attributes (INTERNALDATE, EMAILID)
 * and LIST entries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"

/* ---- a transcript of reader events -------------------------------------- */

/* Events are written as text so runs with different input splits can be
 * compared byte for byte. Literal data is collected across chunks and written
 * as one DATA entry when the next event arrives, since its chunking depends on
 * the split by design. */
struct transcript {
    char *s;
    size_t len, cap;
    char *data;
    size_t data_len, data_cap;
    bool failed;
};

static void grow_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1)
            c *= 2;
        *buf = realloc(*buf, c);
        assert_non_null(*buf);
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void tr_put(struct transcript *t, const char *p, size_t n)
{
    grow_append(&t->s, &t->len, &t->cap, p, n);
}

static void tr_puts(struct transcript *t, const char *s)
{
    tr_put(t, s, strlen(s));
}

/* Bytes other than printable ASCII, CR and LF are written as \xNN so the
 * transcript stays a C string. */
static void tr_put_escaped(struct transcript *t, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch >= 0x20 && ch < 0x7f) || ch == '\r' || ch == '\n') {
            tr_put(t, p + i, 1);
        } else {
            char esc[5];
            snprintf(esc, sizeof esc, "\\x%02x", ch);
            tr_puts(t, esc);
        }
    }
}

static void tr_flush_data(struct transcript *t)
{
    if (t->data_len == 0)
        return;
    tr_puts(t, "DATA[");
    tr_put_escaped(t, t->data, t->data_len);
    tr_puts(t, "]\n");
    t->data_len = 0;
}

/* How the consumer behaves: it takes at most take_max bytes of literal data
 * per offer (backpressure), and absorbs literals of at most absorb_max
 * octets into the line (absorb_max < 0: never). */
struct consumer {
    size_t take_max;
    long absorb_max;
};

static void feed_chunk(struct imap_reader *r, const char *data, size_t len,
                       struct transcript *t, const struct consumer *c)
{
    size_t off = 0;
    while (!t->failed) {
        struct imap_read_event ev;
        size_t n = imap_reader_feed(r, data + off, len - off, &ev);
        off += n;
        char hdr[96];
        switch (ev.status) {
        case IMAP_READ_AGAIN:
            assert_int_equal(off, len);
            return;
        case IMAP_READ_LINE:
            tr_flush_data(t);
            tr_puts(t, "LINE[");
            tr_put_escaped(t, ev.line, ev.line_len);
            tr_puts(t, "]\n");
            break;
        case IMAP_READ_LITERAL_START:
            tr_flush_data(t);
            snprintf(hdr, sizeof hdr, "LIT%s %llu[", ev.literal8 ? "8" : "",
                     (unsigned long long)ev.literal_len);
            tr_puts(t, hdr);
            tr_put_escaped(t, ev.line, ev.line_len);
            tr_puts(t, "]\n");
            if (c->absorb_max >= 0 && ev.literal_len <= (uint64_t)c->absorb_max) {
                assert_true(imap_reader_absorb_literal(r));
                tr_puts(t, "ABSORB\n");
            }
            break;
        case IMAP_READ_LITERAL_DATA: {
            assert_true(ev.data_len > 0);
            assert_ptr_equal(ev.data, data + off);
            size_t k = ev.data_len < c->take_max ? ev.data_len : c->take_max;
            grow_append(&t->data, &t->data_len, &t->data_cap, ev.data, k);
            imap_reader_literal_take(r, k);
            off += k;
            break;
        }
        case IMAP_READ_ERROR:
            tr_flush_data(t);
            tr_puts(t, "ERROR[");
            tr_puts(t, ev.error);
            tr_puts(t, "]\n");
            t->failed = true;
            return;
        }
    }
}

/* Feed input cut at the given points (ascending, may be empty). */
static char *run_split(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                       const struct consumer *c)
{
    struct imap_reader r;
    struct transcript t = { 0 };
    imap_reader_init(&r);
    size_t prev = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        feed_chunk(&r, in + prev, end - prev, &t, c);
        prev = end;
    }
    tr_flush_data(&t);
    imap_reader_deinit(&r);
    tr_puts(&t, "");
    free(t.data);
    return t.s;
}

static const struct consumer TAKE_ALL = { SIZE_MAX, -1 };

/* The whole input must give `expected`; so must every split into two feeds,
 * byte-by-byte feeding, and a consumer that takes one literal byte at a time. */
static void check_all_splits(const char *in, size_t len, const struct consumer *c,
                             const char *expected)
{
    char *whole = run_split(in, len, NULL, 0, c);
    assert_string_equal(whole, expected);
    free(whole);

    for (size_t cut = 0; cut <= len; cut++) {
        char *got = run_split(in, len, &cut, 1, c);
        if (strcmp(got, expected) != 0)
            fail_msg("split at %zu differs:\n%s\nexpected:\n%s", cut, got, expected);
        free(got);
    }

    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    char *bytes = run_split(in, len, cuts, len, c);
    assert_string_equal(bytes, expected);
    free(bytes);
    free(cuts);

    struct consumer slow = *c;
    slow.take_max = 1;
    char *slowly = run_split(in, len, NULL, 0, &slow);
    assert_string_equal(slowly, expected);
    free(slowly);
}

#define CHECK(in, consumer, expected) check_all_splits(in, sizeof(in) - 1, consumer, expected)

/* ---- reader tests ------------------------------------------------------- */

static void test_plain_lines(void **state)
{
    (void)state;
    CHECK("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] Dovecot ready.\r\n"
          "* 3 EXISTS\r\n"
          "A0001 OK [READ-WRITE] Select completed.\r\n",
          &TAKE_ALL,
          "LINE[* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] Dovecot ready.]\n"
          "LINE[* 3 EXISTS]\n"
          "LINE[A0001 OK [READ-WRITE] Select completed.]\n");
}

static void test_bare_lf_accepted(void **state)
{
    (void)state;
    CHECK("* 1 EXPUNGE\n+ \r\n", &TAKE_ALL, "LINE[* 1 EXPUNGE]\nLINE[+ ]\n");
}

static void test_body_literal_streamed(void **state)
{
    (void)state;
    /* The literal holds CRLF, a literal-looking "{5}" and a quote: none of it
     * is framing. */
    CHECK("* 12 FETCH (UID 7 BODY[] {15}\r\nab\r\n{5}\r\n\"x\\y\r\n FLAGS (\\Seen))\r\n"
          "A0004 OK Fetch completed.\r\n",
          &TAKE_ALL,
          "LIT 15[* 12 FETCH (UID 7 BODY[] {15}]\n"
          "DATA[ab\r\n{5}\r\n\"x\\y\r\n]\n"
          "LINE[* 12 FETCH (UID 7 BODY[] {15} FLAGS (\\Seen))]\n"
          "LINE[A0004 OK Fetch completed.]\n");
}

static void test_zero_length_literal(void **state)
{
    (void)state;
    CHECK("* 2 FETCH (UID 8 BODY[] {0}\r\n)\r\nA1 OK x\r\n",
          &TAKE_ALL,
          "LIT 0[* 2 FETCH (UID 8 BODY[] {0}]\n"
          "LINE[* 2 FETCH (UID 8 BODY[] {0})]\n"
          "LINE[A1 OK x]\n");
}

static void test_literal8_with_nul(void **state)
{
    (void)state;
    CHECK("* 3 FETCH (UID 9 BINARY[] ~{3}\r\na\0b)\r\n",
          &TAKE_ALL,
          "LIT8 3[* 3 FETCH (UID 9 BINARY[] ~{3}]\n"
          "DATA[a\\x00b]\n"
          "LINE[* 3 FETCH (UID 9 BINARY[] ~{3})]\n");
}

static void test_two_literals_one_line(void **state)
{
    (void)state;
    CHECK("* 4 FETCH (BODY[HEADER] {2}\r\nH\n BODY[TEXT] {3}\r\nT\r\n)\r\n",
          &TAKE_ALL,
          "LIT 2[* 4 FETCH (BODY[HEADER] {2}]\n"
          "DATA[H\n]\n"
          "LIT 3[* 4 FETCH (BODY[HEADER] {2} BODY[TEXT] {3}]\n"
          "DATA[T\r\n]\n"
          "LINE[* 4 FETCH (BODY[HEADER] {2} BODY[TEXT] {3})]\n");
}

static void test_absorbed_literal_becomes_quoted(void **state)
{
    (void)state;
    const struct consumer absorb_small = { SIZE_MAX, 16 };
    CHECK("* LIST () \"/\" {6}\r\nIN\"B\\X\r\n* 1 FETCH (BODY[] {20}\r\n01234567890123456789)\r\n"
          "* LIST () \"/\" {0}\r\n\r\n",
          &absorb_small,
          "LIT 6[* LIST () \"/\" {6}]\n"
          "ABSORB\n"
          "LINE[* LIST () \"/\" \"IN\\\"B\\\\X\"]\n"
          "LIT 20[* 1 FETCH (BODY[] {20}]\n"
          "DATA[01234567890123456789]\n"
          "LINE[* 1 FETCH (BODY[] {20})]\n"
          "LIT 0[* LIST () \"/\" {0}]\n"
          "ABSORB\n"
          "LINE[* LIST () \"/\" \"\"]\n");

    /* The absorbed form reads back as the literal's value. */
    struct imap_reader r;
    struct imap_read_event ev;
    const char in[] = "* LIST () \"/\" {6}\r\nIN\"B\\X\r\n";
    imap_reader_init(&r);
    size_t off = imap_reader_feed(&r, in, sizeof in - 1, &ev);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_START);
    assert_true(imap_reader_absorb_literal(&r));
    off += imap_reader_feed(&r, in + off, sizeof in - 1 - off, &ev);
    assert_int_equal(ev.status, IMAP_READ_LINE);
    assert_int_equal(off, sizeof in - 1);
    struct imap_tokenizer t;
    struct imap_token tok;
    imap_tokenizer_init(&t, ev.line, ev.line_len);
    /* "*" "LIST" "(" ")" "/" then the mailbox name. */
    for (int i = 0; i < 6; i++)
        imap_next_token(&t, &tok);
    assert_int_equal(tok.type, IMAP_TOK_QUOTED);
    char val[16];
    assert_int_equal(imap_token_copy(&tok, val, sizeof val), 6);
    assert_string_equal(val, "IN\"B\\X");
    imap_reader_deinit(&r);
}

static void test_absorb_refused_when_too_big(void **state)
{
    (void)state;
    struct imap_reader r;
    struct imap_read_event ev;
    const char in[] = "* 1 FETCH (BODY[] {40000}\r\n";
    imap_reader_init(&r);
    assert_int_equal(imap_reader_feed(&r, in, sizeof in - 1, &ev), sizeof in - 1);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_START);
    /* 2 * 40000 escaped octets could exceed IMAP_LINE_MAX. */
    assert_false(imap_reader_absorb_literal(&r));
    assert_int_equal(imap_reader_feed(&r, "xy", 2, &ev), 0);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_DATA);
    assert_int_equal(ev.data_len, 2);
    imap_reader_deinit(&r);
}

static void test_backpressure_keeps_position(void **state)
{
    (void)state;
    struct imap_reader r;
    struct imap_read_event ev;
    const char in[] = "* 1 FETCH (BODY[] {5}\r\nhello)\r\n";
    size_t len = sizeof in - 1;
    imap_reader_init(&r);
    size_t off = imap_reader_feed(&r, in, len, &ev);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_START);
    /* Offered only the literal's bytes, not the ")" after it. */
    assert_int_equal(imap_reader_feed(&r, in + off, len - off, &ev), 0);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_DATA);
    assert_int_equal(ev.data_len, 5);
    /* Take two, then the consumer pauses; the same bytes come again later. */
    imap_reader_literal_take(&r, 2);
    off += 2;
    assert_int_equal(imap_reader_feed(&r, in + off, len - off, &ev), 0);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_DATA);
    assert_int_equal(ev.data_len, 3);
    assert_memory_equal(ev.data, "llo", 3);
    imap_reader_literal_take(&r, 3);
    off += 3;
    off += imap_reader_feed(&r, in + off, len - off, &ev);
    assert_int_equal(ev.status, IMAP_READ_LINE);
    assert_int_equal(off, len);
    imap_reader_deinit(&r);
}

static void test_errors_and_stickiness(void **state)
{
    (void)state;
    CHECK("* OK a\rb\r\n", &TAKE_ALL, "ERROR[bare CR in response]\n");
    CHECK("* OK a\0b\r\n", &TAKE_ALL, "ERROR[NUL in response]\n");

    struct imap_reader r;
    struct imap_read_event ev;
    imap_reader_init(&r);
    imap_reader_feed(&r, "x\ry", 3, &ev);
    assert_int_equal(ev.status, IMAP_READ_ERROR);
    assert_int_equal(imap_reader_feed(&r, "* OK\r\n", 6, &ev), 0);
    assert_int_equal(ev.status, IMAP_READ_ERROR);
    imap_reader_deinit(&r);
}

static void test_line_length_bound(void **state)
{
    (void)state;
    size_t n = IMAP_LINE_MAX + 2;
    char *in = malloc(n + 2);
    assert_non_null(in);
    memset(in, 'a', n);
    memcpy(in + IMAP_LINE_MAX, "\r\n", 2);

    /* Exactly IMAP_LINE_MAX octets: accepted. */
    struct imap_reader r;
    struct imap_read_event ev;
    imap_reader_init(&r);
    assert_int_equal(imap_reader_feed(&r, in, IMAP_LINE_MAX + 2, &ev), IMAP_LINE_MAX + 2);
    assert_int_equal(ev.status, IMAP_READ_LINE);
    assert_int_equal(ev.line_len, IMAP_LINE_MAX);
    imap_reader_deinit(&r);

    /* One more octet: an error, reported when the octet arrives, fed in
     * small pieces so nothing depends on seeing the whole line at once. */
    memset(in, 'a', n + 2);
    imap_reader_init(&r);
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < 1000 ? n - off : 1000;
        off += imap_reader_feed(&r, in + off, k, &ev);
        if (ev.status == IMAP_READ_ERROR)
            break;
        assert_int_equal(ev.status, IMAP_READ_AGAIN);
    }
    assert_int_equal(ev.status, IMAP_READ_ERROR);
    assert_string_equal(ev.error, "response line too long");
    assert_int_equal(off, IMAP_LINE_MAX + 1);
    assert_true(r.cap <= IMAP_LINE_MAX);
    imap_reader_deinit(&r);
    free(in);
}

static void test_markers_count_toward_bound(void **state)
{
    (void)state;
    /* Many empty literals in one line: each leaves its marker in the line, so
     * the line bound stops the growth. */
    struct imap_reader r;
    struct imap_read_event ev;
    imap_reader_init(&r);
    bool failed = false;
    for (int i = 0; i < IMAP_LINE_MAX && !failed; i++) {
        const char *piece = i == 0 ? "* X {0}\r\n" : " {0}\r\n";
        size_t len = strlen(piece), off = 0;
        while (off < len) {
            off += imap_reader_feed(&r, piece + off, len - off, &ev);
            if (ev.status == IMAP_READ_ERROR) {
                failed = true;
                break;
            }
        }
    }
    assert_true(failed);
    assert_string_equal(ev.error, "response line too long");
    imap_reader_deinit(&r);
}

static void test_buffer_released_after_long_line(void **state)
{
    (void)state;
    struct imap_reader r;
    struct imap_read_event ev;
    char line[IMAP_LINE_KEEP * 2 + 2];
    memset(line, 'b', sizeof line);
    memcpy(line + sizeof line - 2, "\r\n", 2);
    imap_reader_init(&r);
    imap_reader_feed(&r, line, sizeof line, &ev);
    assert_int_equal(ev.status, IMAP_READ_LINE);
    assert_true(r.cap > IMAP_LINE_KEEP);
    imap_reader_feed(&r, "*", 1, &ev);
    assert_true(r.cap <= IMAP_LINE_KEEP);
    imap_reader_deinit(&r);
}

static void test_huge_literal_length(void **state)
{
    (void)state;
    /* Larger than number64: not a literal, so a line the tokenizer rejects. */
    struct imap_reader r;
    struct imap_read_event ev;
    const char in[] = "* 1 FETCH (BODY[] {99999999999999999999}\r\n";
    imap_reader_init(&r);
    imap_reader_feed(&r, in, sizeof in - 1, &ev);
    assert_int_equal(ev.status, IMAP_READ_LINE);
    struct imap_response resp;
    struct imap_fetch_attrs a;
    const char *err;
    assert_true(imap_response_parse(ev.line, ev.line_len, &resp, &err));
    assert_false(imap_fetch_parse(resp.data, resp.data_len, false, &a, &err));
    imap_reader_deinit(&r);

    /* 20 GB is fine: the body is never held. */
    const char big[] = "* 1 FETCH (BODY[] {21474836480}\r\n";
    imap_reader_init(&r);
    imap_reader_feed(&r, big, sizeof big - 1, &ev);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_START);
    assert_true(ev.literal_len == 21474836480ULL);
    imap_reader_deinit(&r);
}

/* ---- tokenizer ---------------------------------------------------------- */

static void expect_tok(struct imap_tokenizer *t, enum imap_token_type type, const char *text)
{
    struct imap_token tok;
    assert_int_equal(imap_next_token(t, &tok), type);
    if (text != NULL) {
        assert_int_equal(tok.len, strlen(text));
        assert_memory_equal(tok.p, text, tok.len);
    }
}

static void test_tokens(void **state)
{
    (void)state;
    const char line[] = "* 12 FETCH (UID 7 FLAGS (\\Seen \\Deleted $Fwd \\*) "
                        "BODY[HEADER.FIELDS (FROM \"X]\")]<0> {5} \"a\\\\b\\\"c\" NIL ~{2}) [UIDVALIDITY 3]";
    struct imap_tokenizer t;
    imap_tokenizer_init(&t, line, sizeof line - 1);
    expect_tok(&t, IMAP_TOK_ATOM, "*");
    expect_tok(&t, IMAP_TOK_ATOM, "12");
    expect_tok(&t, IMAP_TOK_ATOM, "FETCH");
    expect_tok(&t, IMAP_TOK_LPAREN, "(");
    expect_tok(&t, IMAP_TOK_ATOM, "UID");
    expect_tok(&t, IMAP_TOK_ATOM, "7");
    expect_tok(&t, IMAP_TOK_ATOM, "FLAGS");
    expect_tok(&t, IMAP_TOK_LPAREN, "(");
    expect_tok(&t, IMAP_TOK_ATOM, "\\Seen");
    expect_tok(&t, IMAP_TOK_ATOM, "\\Deleted");
    expect_tok(&t, IMAP_TOK_ATOM, "$Fwd");
    expect_tok(&t, IMAP_TOK_ATOM, "\\*");
    expect_tok(&t, IMAP_TOK_RPAREN, ")");
    expect_tok(&t, IMAP_TOK_ATOM, "BODY[HEADER.FIELDS (FROM \"X]\")]<0>");

    struct imap_token tok;
    assert_int_equal(imap_next_token(&t, &tok), IMAP_TOK_LITERAL);
    assert_true(tok.literal_len == 5);
    assert_false(tok.literal8);

    assert_int_equal(imap_next_token(&t, &tok), IMAP_TOK_QUOTED);
    char val[16];
    assert_int_equal(imap_token_copy(&tok, val, sizeof val), 5);
    assert_string_equal(val, "a\\b\"c");
    /* Truncation is reported by the full length. */
    char small[3];
    assert_int_equal(imap_token_copy(&tok, small, sizeof small), 5);
    assert_string_equal(small, "a\\");

    assert_int_equal(imap_next_token(&t, &tok), IMAP_TOK_ATOM);
    assert_true(imap_token_is(&tok, "nil"));
    assert_int_equal(imap_next_token(&t, &tok), IMAP_TOK_LITERAL);
    assert_true(tok.literal8);
    assert_true(tok.literal_len == 2);
    expect_tok(&t, IMAP_TOK_RPAREN, ")");
    expect_tok(&t, IMAP_TOK_LBRACKET, "[");
    expect_tok(&t, IMAP_TOK_ATOM, "UIDVALIDITY");
    assert_int_equal(imap_next_token(&t, &tok), IMAP_TOK_ATOM);
    uint32_t v;
    assert_true(imap_token_u32(&tok, &v));
    assert_int_equal(v, 3);
    expect_tok(&t, IMAP_TOK_RBRACKET, "]");
    expect_tok(&t, IMAP_TOK_END, NULL);
    expect_tok(&t, IMAP_TOK_END, NULL);
}

static void expect_token_error(const char *line)
{
    struct imap_tokenizer t;
    struct imap_token tok;
    imap_tokenizer_init(&t, line, strlen(line));
    enum imap_token_type ty;
    while ((ty = imap_next_token(&t, &tok)) != IMAP_TOK_END && ty != IMAP_TOK_ERROR)
        ;
    if (ty != IMAP_TOK_ERROR)
        fail_msg("no tokenizer error for: %s", line);
    assert_non_null(t.error);
    /* Errors are sticky. */
    assert_int_equal(imap_next_token(&t, &tok), IMAP_TOK_ERROR);
}

static void test_token_errors(void **state)
{
    (void)state;
    expect_token_error("\"unterminated");
    expect_token_error("\"bad \\x escape\"");
    expect_token_error("\"ends in backslash\\");
    expect_token_error("{5+}");
    expect_token_error("{}");
    expect_token_error("{12");
    expect_token_error("BODY[HEADER");
    expect_token_error("caf\xc3\xa9");
    expect_token_error("a\tb");
    expect_token_error("{99999999999999999999}");
}

static void test_token_numbers(void **state)
{
    (void)state;
    struct imap_token tok = { .type = IMAP_TOK_ATOM };
    uint32_t v = 99;
    tok.p = "4294967295"; tok.len = 10;
    assert_true(imap_token_u32(&tok, &v));
    assert_true(v == UINT32_MAX);
    tok.p = "4294967296"; tok.len = 10;
    assert_false(imap_token_u32(&tok, &v));
    tok.p = "12a"; tok.len = 3;
    assert_false(imap_token_u32(&tok, &v));
    tok.p = "-1"; tok.len = 2;
    assert_false(imap_token_u32(&tok, &v));
    tok.type = IMAP_TOK_QUOTED; tok.p = "12"; tok.len = 2;
    assert_false(imap_token_u32(&tok, &v));
}

/* ---- responses ---------------------------------------------------------- */

static void parse_ok(const char *line, struct imap_response *r)
{
    const char *err = NULL;
    if (!imap_response_parse(line, strlen(line), r, &err))
        fail_msg("parse failed for '%s': %s", line, err);
}

static bool span_eq(const char *p, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(p, s, len) == 0;
}

static void test_tagged_status_and_codes(void **state)
{
    (void)state;
    struct imap_response r;
    parse_ok("A0002 NO [AUTHENTICATIONFAILED] Authentication failed.", &r);
    assert_int_equal(r.type, IMAP_RESP_TAGGED);
    assert_true(span_eq(r.tag, r.tag_len, "A0002"));
    assert_int_equal(r.status, IMAP_STATUS_NO);
    assert_true(imap_resp_code_is(&r, "authenticationfailed"));
    assert_int_equal(r.code_args_len, 0);
    assert_true(span_eq(r.text, r.text_len, "Authentication failed."));

    parse_ok("A7 no [UNAVAILABLE] Temporary failure", &r);
    assert_int_equal(r.status, IMAP_STATUS_NO);
    assert_true(imap_resp_code_is(&r, "UNAVAILABLE"));

    parse_ok("A8 NO [EXPIRED] Password expired", &r);
    assert_true(imap_resp_code_is(&r, "EXPIRED"));

    parse_ok("A9 BAD Error in IMAP command: Unknown command", &r);
    assert_int_equal(r.status, IMAP_STATUS_BAD);
    assert_null(r.code);
    assert_false(imap_resp_code_is(&r, "EXPIRED"));

    parse_ok("A0003 OK", &r);
    assert_int_equal(r.status, IMAP_STATUS_OK);
    assert_int_equal(r.text_len, 0);

    parse_ok("A1 OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE] Logged in", &r);
    assert_true(imap_resp_code_is(&r, "CAPABILITY"));
    assert_true(span_eq(r.code_args, r.code_args_len, "IMAP4rev1 UIDPLUS MOVE"));
    assert_true(span_eq(r.text, r.text_len, "Logged in"));
}

static void test_untagged(void **state)
{
    (void)state;
    struct imap_response r;
    parse_ok("* OK [UIDVALIDITY 1700000000] UIDs valid", &r);
    assert_int_equal(r.type, IMAP_RESP_UNTAGGED);
    assert_int_equal(r.status, IMAP_STATUS_OK);
    assert_true(imap_resp_code_is(&r, "UIDVALIDITY"));
    assert_true(span_eq(r.code_args, r.code_args_len, "1700000000"));

    parse_ok("* OK [PERMANENTFLAGS (\\Answered \\Seen \\*)] Flags permitted.", &r);
    assert_true(imap_resp_code_is(&r, "PERMANENTFLAGS"));
    assert_true(span_eq(r.code_args, r.code_args_len, "(\\Answered \\Seen \\*)"));

    parse_ok("* 172 EXISTS", &r);
    assert_true(r.has_number);
    assert_int_equal(r.number, 172);
    assert_true(imap_resp_name_is(&r, "exists"));
    assert_int_equal(r.status, IMAP_STATUS_NONE);

    parse_ok("* 3 EXPUNGE", &r);
    assert_int_equal(r.number, 3);
    assert_true(imap_resp_name_is(&r, "EXPUNGE"));

    parse_ok("* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN", &r);
    assert_false(r.has_number);
    assert_int_equal(r.status, IMAP_STATUS_NONE);
    assert_true(imap_resp_name_is(&r, "CAPABILITY"));
    assert_true(span_eq(r.data, r.data_len, "IMAP4rev1 STARTTLS AUTH=PLAIN"));

    parse_ok("* BYE Server shutting down.", &r);
    assert_int_equal(r.status, IMAP_STATUS_BYE);
    assert_true(span_eq(r.text, r.text_len, "Server shutting down."));

    parse_ok("* PREAUTH [CAPABILITY IMAP4rev1] ready", &r);
    assert_int_equal(r.status, IMAP_STATUS_PREAUTH);
    assert_true(imap_resp_code_is(&r, "CAPABILITY"));

    parse_ok("* 5 FETCH (FLAGS (\\Seen))", &r);
    assert_true(imap_resp_name_is(&r, "FETCH"));
    assert_int_equal(r.number, 5);
    assert_true(span_eq(r.data, r.data_len, "(FLAGS (\\Seen))"));
}

static void test_continuation(void **state)
{
    (void)state;
    struct imap_response r;
    parse_ok("+ ", &r);
    assert_int_equal(r.type, IMAP_RESP_CONTINUATION);
    assert_int_equal(r.text_len, 0);
    parse_ok("+", &r);
    assert_int_equal(r.type, IMAP_RESP_CONTINUATION);
    parse_ok("+ OK ready for literal data", &r);
    assert_true(span_eq(r.text, r.text_len, "OK ready for literal data"));
}

static void expect_resp_error(const char *line)
{
    struct imap_response r;
    const char *err = NULL;
    if (imap_response_parse(line, strlen(line), &r, &err))
        fail_msg("accepted garbage: '%s'", line);
    assert_non_null(err);
}

static void test_response_garbage(void **state)
{
    (void)state;
    expect_resp_error("");
    expect_resp_error("*");
    expect_resp_error("* ");
    expect_resp_error("A1");
    expect_resp_error("A1 ");
    expect_resp_error("A1 FOO bar");
    expect_resp_error("A1 BYE tagged bye");
    expect_resp_error("(hello)");
    expect_resp_error("HTTP/1.1 400 Bad Request");
    expect_resp_error("A1 NO [AUTHENTICATIONFAILED no bracket");
    expect_resp_error("A1 NO [] empty code");
    expect_resp_error("* 12");
    expect_resp_error("* 12 ");
    expect_resp_error("* (x)");
}

/* ---- FETCH -------------------------------------------------------------- */

static void fetch_ok(const char *data, bool partial, struct imap_fetch_attrs *a)
{
    const char *err = NULL;
    if (!imap_fetch_parse(data, strlen(data), partial, a, &err))
        fail_msg("fetch parse failed for '%s': %s", data, err);
}

static void test_fetch_items_any_order(void **state)
{
    (void)state;
    static const char *const orders[] = {
        "(UID 42 FLAGS (\\Seen \\Deleted) RFC822.SIZE 1234)",
        "(RFC822.SIZE 1234 UID 42 FLAGS (\\Deleted \\Seen))",
        "(FLAGS (\\Deleted $Junk \\seen) RFC822.SIZE 1234 UID 42)",
        "(FLAGS (\\Seen \\DELETED) UID 42 MODSEQ (17) RFC822.SIZE 1234)",
        "(X-GM-LABELS (\"a b\" \\Inbox) UID 42 ENVELOPE (NIL \"s\" ((NIL NIL \"a\" \"b\")) NIL) "
        "RFC822.SIZE 1234 FLAGS (\\Seen \\Deleted) INTERNALDATE \"01-Jan-2026 00:00:00 +0000\")",
    };
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        struct imap_fetch_attrs a;
        fetch_ok(orders[i], false, &a);
        /* Only the last order carries INTERNALDATE. */
        unsigned expected = IMAP_FETCH_HAS_UID | IMAP_FETCH_HAS_SIZE | IMAP_FETCH_HAS_FLAGS;
        if (i == sizeof orders / sizeof orders[0] - 1)
            expected |= IMAP_FETCH_HAS_INTERNALDATE;
        assert_int_equal(a.present, expected);
        assert_int_equal(a.uid, 42);
        assert_int_equal(a.size, 1234);
        assert_true(a.seen);
        assert_true(a.deleted);
        assert_null(a.literal_item);
    }
}

static void test_fetch_flags(void **state)
{
    (void)state;
    struct imap_fetch_attrs a;
    fetch_ok("(FLAGS ())", false, &a);
    assert_int_equal(a.present, IMAP_FETCH_HAS_FLAGS);
    assert_false(a.seen);
    assert_false(a.deleted);

    /* "Seen" without the backslash is a keyword, not the system flag. */
    fetch_ok("(UID 1 FLAGS (Seen \\Answered \\Recent \\Flagged \\Draft))", false, &a);
    assert_false(a.seen);
    assert_false(a.deleted);

    fetch_ok("(FLAGS (\\Seen))", false, &a);
    assert_true(a.seen);
    assert_int_equal(a.present, IMAP_FETCH_HAS_FLAGS);
}

static void test_fetch_partial_literal_item(void **state)
{
    (void)state;
    struct imap_fetch_attrs a;
    fetch_ok("(UID 7 BODY[]<0> {100}", true, &a);
    assert_true(span_eq(a.literal_item, a.literal_item_len, "BODY[]<0>"));
    assert_int_equal(a.present, IMAP_FETCH_HAS_UID);
    assert_int_equal(a.uid, 7);

    fetch_ok("(BODY[HEADER] {2} UID 9 BODY[TEXT] {0}", true, &a);
    assert_true(span_eq(a.literal_item, a.literal_item_len, "BODY[TEXT]"));
    assert_int_equal(a.uid, 9);

    fetch_ok("(BINARY[] ~{3}", true, &a);
    assert_true(span_eq(a.literal_item, a.literal_item_len, "BINARY[]"));

    /* A literal inside a list (an ENVELOPE field) is not an item's value. */
    struct imap_fetch_attrs b;
    const char *err;
    const char env[] = "(ENVELOPE (NIL {5}";
    assert_false(imap_fetch_parse(env, sizeof env - 1, true, &b, &err));
    /* Complete text given as partial: no literal at its end. */
    const char full[] = "(UID 1)";
    assert_false(imap_fetch_parse(full, sizeof full - 1, true, &b, &err));

    /* The completed line with the body literal's marker parses as usual. */
    fetch_ok("(UID 7 BODY[]<0> {100} FLAGS (\\Seen))", false, &a);
    assert_true(a.seen);
    assert_int_equal(a.uid, 7);
}

static void expect_fetch_error(const char *data)
{
    struct imap_fetch_attrs a;
    const char *err = NULL;
    if (imap_fetch_parse(data, strlen(data), false, &a, &err))
        fail_msg("accepted bad FETCH data: '%s'", data);
    assert_non_null(err);
}

static void test_fetch_garbage(void **state)
{
    (void)state;
    expect_fetch_error("");
    expect_fetch_error("UID 1");
    expect_fetch_error("(UID 1");
    expect_fetch_error("(UID)");
    expect_fetch_error("(UID 0)");
    expect_fetch_error("(UID x)");
    expect_fetch_error("(UID 4294967296)");
    expect_fetch_error("(RFC822.SIZE 4294967296)");
    expect_fetch_error("(RFC822.SIZE -1)");
    expect_fetch_error("(FLAGS \\Seen)");
    expect_fetch_error("(FLAGS (\\Seen)");
    expect_fetch_error("(FLAGS (\"\\Seen\"))");
    expect_fetch_error("(UID 1) trailing");
    expect_fetch_error("(UID 1 (x))");
    expect_fetch_error("(ENVELOPE (NIL \"x)");
    expect_fetch_error("(BODY[] {3} \"unterminated)");
}

/* ---- INTERNALDATE and EMAILID ------------------------------------------- */

static int64_t date_ok(const char *s)
{
    int64_t t = 0;
    if (!imap_parse_date_time(s, strlen(s), &t))
        fail_msg("date-time refused: '%s'", s);
    return t;
}

static void test_date_time(void **state)
{
    (void)state;
    /* Expected values from Python's datetime.strptime(..., "%d-%b-%Y %H:%M:%S %z"). */
    assert_true(date_ok("03-Feb-2026 04:05:06 +0000") == 1770091506);
    assert_true(date_ok(" 3-Feb-2026 04:05:06 +0000") == 1770091506);
    assert_true(date_ok("14-Jul-2025 16:59:59 -0700") == 1752537599);
    assert_true(date_ok("01-Jan-2026 05:30:00 +0530") == 1767225600);
    assert_true(date_ok("01-JAN-2026 05:30:00 +0530") == 1767225600);
    assert_true(date_ok("01-jan-2026 05:30:00 +0530") == 1767225600);
    assert_true(date_ok("01-Jan-1970 00:00:00 +0000") == 0);
    assert_true(date_ok("01-Jan-1970 01:00:00 +0100") == 0);
    assert_true(date_ok("31-Dec-1969 23:59:59 +0000") == -1);
    assert_true(date_ok("29-Feb-2024 23:59:59 +0000") == 1709251199);
    assert_true(date_ok("29-Feb-2000 12:00:00 +0000") == 951868800 - 43200);
    assert_true(date_ok("07-Feb-2106 06:28:15 +0000") == 4294967295LL);
    assert_true(date_ok("07-Feb-2106 06:28:16 +0000") == 4294967296LL);
    assert_true(date_ok("01-Jan-0001 00:00:00 +0000") == -62135596800LL);
    assert_true(date_ok("31-Dec-9999 23:59:59 -2359") == 253402387139LL);
    /* A leap second reads as the next second. */
    assert_true(date_ok("31-Dec-2016 23:59:60 +0000") == date_ok("01-Jan-2017 00:00:00 +0000"));
    /* Every month name. */
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    int64_t prev = 0;
    for (int i = 0; i < 12; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "01-%s-2026 00:00:00 +0000", months[i]);
        int64_t t = date_ok(buf);
        assert_true(t > prev);
        prev = t;
    }
    assert_true(prev == 1796083200);
}

static void expect_date_error(const char *s)
{
    int64_t t = 12345;
    if (imap_parse_date_time(s, strlen(s), &t))
        fail_msg("date-time accepted: '%s'", s);
    assert_true(t == 12345);
}

static void test_date_time_invalid(void **state)
{
    (void)state;
    expect_date_error("");
    expect_date_error("3-Feb-2026 04:05:06 +0000");      /* day without its space */
    expect_date_error("003-Feb-2026 04:05:06 +0000");
    expect_date_error("03-Feb-2026 04:05:06 +0000 ");
    expect_date_error("\"03-Feb-2026 04:05:06 +0000\"");
    expect_date_error("03-Feb-2026 04:05:06");
    expect_date_error("03-Feb-26 04:05:06 +0000");
    expect_date_error("03-Fev-2026 04:05:06 +0000");
    expect_date_error("03-02-2026 04:05:06 +00000");
    expect_date_error("03 Feb 2026 04:05:06 +0000");
    expect_date_error("03-Feb-2026T04:05:06 +0000");
    expect_date_error("03-Feb-2026 04.05.06 +0000");
    expect_date_error("03-Feb-2026 04:05:06 0000 ");
    expect_date_error("03-Feb-2026 04:05:06 *0000");
    expect_date_error("03-Feb-2026 04:05:06 +00:0");
    expect_date_error("03-Feb-2026 04:05:06 +0A00");
    expect_date_error("0x-Feb-2026 04:05:06 +0000");
    expect_date_error(" x-Feb-2026 04:05:06 +0000");
    expect_date_error("  -Feb-2026 04:05:06 +0000");
    expect_date_error("+3-Feb-2026 04:05:06 +0000");
    expect_date_error("03-Feb-2O26 04:05:06 +0000");
    expect_date_error("00-Feb-2026 04:05:06 +0000");
    expect_date_error(" 0-Feb-2026 04:05:06 +0000");
    expect_date_error("32-Jan-2026 04:05:06 +0000");
    expect_date_error("31-Apr-2026 04:05:06 +0000");
    expect_date_error("29-Feb-2026 04:05:06 +0000");
    expect_date_error("29-Feb-1900 04:05:06 +0000");
    expect_date_error("03-Feb-2026 24:00:00 +0000");
    expect_date_error("03-Feb-2026 23:60:00 +0000");
    expect_date_error("03-Feb-2026 23:59:61 +0000");
    expect_date_error("03-Feb-2026 04:05:06 +2400");
    expect_date_error("03-Feb-2026 04:05:06 -0060");
    expect_date_error("03-Feb-2026 04:05:06 +0\\00");
    /* A NUL inside is not a shorter string. */
    const char nul[] = "03-Feb\0026 04:05:06 +0000";
    int64_t t;
    assert_false(imap_parse_date_time(nul, sizeof nul - 1, &t));
}

static void test_fetch_listing_items_any_order(void **state)
{
    (void)state;
    static const char *const orders[] = {
        "(UID 7 FLAGS (\\Seen) RFC822.SIZE 54 INTERNALDATE \"03-Feb-2026 04:05:06 +0000\" "
        "EMAILID (M6d99ac3275bb4e))",
        "(EMAILID (M6d99ac3275bb4e) INTERNALDATE \"03-Feb-2026 04:05:06 +0000\" UID 7 "
        "RFC822.SIZE 54 FLAGS (\\Seen))",
        "(INTERNALDATE \" 3-Feb-2026 05:05:06 +0100\" RFC822.SIZE 54 EMAILID (M6d99ac3275bb4e) "
        "FLAGS (\\Seen) MODSEQ (4) THREADID NIL UID 7)",
        "(FLAGS (\\Seen) EMAILID ( M6d99ac3275bb4e ) UID 7 THREADID (T1) "
        "internaldate \"02-Feb-2026 21:05:06 -0700\" RFC822.SIZE 54)",
    };
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        struct imap_fetch_attrs a;
        fetch_ok(orders[i], false, &a);
        assert_int_equal(a.present, IMAP_FETCH_HAS_UID | IMAP_FETCH_HAS_SIZE | IMAP_FETCH_HAS_FLAGS |
                                        IMAP_FETCH_HAS_INTERNALDATE | IMAP_FETCH_HAS_EMAILID);
        assert_int_equal(a.uid, 7);
        assert_int_equal(a.size, 54);
        assert_true(a.seen);
        assert_true(a.internaldate == 1770091506);
        assert_true(span_eq(a.emailid, a.emailid_len, "M6d99ac3275bb4e"));
    }

    /* Without EMAILID the attribute stays absent. */
    struct imap_fetch_attrs a;
    fetch_ok("(UID 1 FLAGS () RFC822.SIZE 3 INTERNALDATE \"31-Dec-1999 12:00:00 +0000\")", false, &a);
    assert_int_equal(a.present, IMAP_FETCH_HAS_UID | IMAP_FETCH_HAS_SIZE | IMAP_FETCH_HAS_FLAGS |
                                    IMAP_FETCH_HAS_INTERNALDATE);
    assert_true(a.internaldate == 946641600);
    assert_null(a.emailid);
    assert_int_equal(a.emailid_len, 0);

    /* Object ids use the whole alphabet and may be 255 long. */
    char line[400];
    char id[IMAP_OBJECTID_MAX + 2];
    memset(id, 'a', IMAP_OBJECTID_MAX);
    memcpy(id, "Az09_-", 6);
    id[IMAP_OBJECTID_MAX] = '\0';
    snprintf(line, sizeof line, "(EMAILID (%s))", id);
    fetch_ok(line, false, &a);
    assert_int_equal(a.emailid_len, IMAP_OBJECTID_MAX);
    assert_memory_equal(a.emailid, id, IMAP_OBJECTID_MAX);
    /* One longer is refused. */
    id[IMAP_OBJECTID_MAX] = 'a';
    id[IMAP_OBJECTID_MAX + 1] = '\0';
    snprintf(line, sizeof line, "(EMAILID (%s))", id);
    expect_fetch_error(line);
}

static void test_fetch_internaldate_emailid_garbage(void **state)
{
    (void)state;
    expect_fetch_error("(INTERNALDATE)");
    expect_fetch_error("(INTERNALDATE NIL)");
    expect_fetch_error("(INTERNALDATE 03-Feb-2026)");
    expect_fetch_error("(INTERNALDATE \"03-Feb-2026\")");
    expect_fetch_error("(INTERNALDATE \"30-Feb-2026 04:05:06 +0000\")");
    expect_fetch_error("(INTERNALDATE (\"03-Feb-2026 04:05:06 +0000\"))");
    expect_fetch_error("(INTERNALDATE {26})");
    expect_fetch_error("(EMAILID)");
    expect_fetch_error("(EMAILID NIL)");
    expect_fetch_error("(EMAILID M1)");
    expect_fetch_error("(EMAILID ())");
    expect_fetch_error("(EMAILID (\"M1\"))");
    expect_fetch_error("(EMAILID (M1 M2))");
    expect_fetch_error("(EMAILID (M1)");
    expect_fetch_error("(EMAILID (M.1))");
    expect_fetch_error("(EMAILID (M+1))");
    expect_fetch_error("(EMAILID (M[1]))");
}

/* ---- LIST --------------------------------------------------------------- */

static void list_ok(const char *data, struct imap_list_entry *e)
{
    const char *err = NULL;
    if (!imap_list_parse(data, strlen(data), e, &err))
        fail_msg("LIST parse failed for '%s': %s", data, err);
}

static void expect_list_name(const struct imap_list_entry *e, const char *name)
{
    char buf[64];
    assert_true(e->name.type == IMAP_TOK_ATOM || e->name.type == IMAP_TOK_QUOTED);
    assert_int_equal(imap_token_copy(&e->name, buf, sizeof buf), strlen(name));
    assert_string_equal(buf, name);
}

static void test_list_entries(void **state)
{
    (void)state;
    struct imap_list_entry e;
    /* What Dovecot 2.3.19 sends for LIST "" "*" and LIST (SPECIAL-USE) "" "*". */
    list_ok("(\\HasNoChildren \\Trash) \".\" Trash", &e);
    expect_list_name(&e, "Trash");
    assert_int_equal(e.delimiter, '.');
    assert_true(imap_list_has_attr(&e, "\\Trash"));
    assert_true(imap_list_has_attr(&e, "\\trash"));
    assert_true(imap_list_has_attr(&e, "\\HASNOCHILDREN"));
    assert_false(imap_list_has_attr(&e, "\\Sent"));
    assert_false(imap_list_has_attr(&e, "Trash"));
    assert_false(imap_list_has_attr(&e, "\\Tras"));

    list_ok("(\\Trash) \".\" Trash", &e);
    assert_true(imap_list_has_attr(&e, "\\Trash"));
    expect_list_name(&e, "Trash");

    list_ok("(\\HasNoChildren \\Trash) \"/\" \"Deleted Items\"", &e);
    expect_list_name(&e, "Deleted Items");
    assert_int_equal(e.delimiter, '/');

    list_ok("(\\Trash) \"\\\\\" \"a\\\"b\\\\c\"", &e);
    expect_list_name(&e, "a\"b\\c");
    assert_int_equal(e.delimiter, '\\');

    list_ok("() NIL INBOX", &e);
    expect_list_name(&e, "INBOX");
    assert_int_equal(e.delimiter, '\0');
    assert_false(imap_list_has_attr(&e, "\\Trash"));
    assert_int_equal(e.attrs_len, 0);

    /* astring: "]" and "[" may stand in an unquoted name. */
    list_ok("(\\Trash) \"/\" Papier]korb", &e);
    expect_list_name(&e, "Papier]korb");
    list_ok("(\\Trash) \"/\" [Gmail]/Trash", &e);
    expect_list_name(&e, "[Gmail]/Trash");
    list_ok("(\\Trash) \"/\" &AMQ-nderungen", &e);
    expect_list_name(&e, "&AMQ-nderungen");

    /* RFC 5258 extended data after the name. */
    list_ok("(\\Subscribed \\Trash) \"/\" Trash (\"CHILDINFO\" (\"SUBSCRIBED\"))", &e);
    expect_list_name(&e, "Trash");
    assert_true(imap_list_has_attr(&e, "\\Subscribed"));

    /* A literal the reader did not absorb: the name is unknown. */
    list_ok("(\\Trash) \"/\" {5000}", &e);
    assert_int_equal(e.name.type, IMAP_TOK_LITERAL);
    assert_true(e.name.literal_len == 5000);

    /* Spaces between the parts are tolerated. */
    list_ok("( \\Trash  \\Marked )  \"/\"  Trash", &e);
    assert_true(imap_list_has_attr(&e, "\\Marked"));
    expect_list_name(&e, "Trash");
}

/* The name as a literal: the reader absorbs it and LIST reads it back. */
static void test_list_literal_name_absorbed(void **state)
{
    (void)state;
    const char in[] = "* LIST (\\HasNoChildren \\Trash) \"/\" {9}\r\nMy \"Bin\"\\\r\n";
    struct imap_reader r;
    struct imap_read_event ev;
    size_t len = sizeof in - 1;
    imap_reader_init(&r);
    size_t off = imap_reader_feed(&r, in, len, &ev);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_START);
    assert_true(imap_reader_absorb_literal(&r));
    off += imap_reader_feed(&r, in + off, len - off, &ev);
    assert_int_equal(ev.status, IMAP_READ_LINE);
    assert_int_equal(off, len);

    struct imap_response resp;
    struct imap_list_entry e;
    const char *err;
    assert_true(imap_response_parse(ev.line, ev.line_len, &resp, &err));
    assert_true(imap_resp_name_is(&resp, "LIST"));
    assert_true(imap_list_parse(resp.data, resp.data_len, &e, &err));
    assert_true(imap_list_has_attr(&e, "\\Trash"));
    expect_list_name(&e, "My \"Bin\"\\");
    imap_reader_deinit(&r);
}

static void expect_list_error(const char *data)
{
    struct imap_list_entry e;
    const char *err = NULL;
    if (imap_list_parse(data, strlen(data), &e, &err))
        fail_msg("accepted bad LIST data: '%s'", data);
    assert_non_null(err);
}

static void test_list_garbage(void **state)
{
    (void)state;
    expect_list_error("");
    expect_list_error("\\Trash \"/\" Trash");
    expect_list_error("(\\Trash \"/\" Trash");
    expect_list_error("(\\Trash) \"/\"");
    expect_list_error("(\\Trash) \"/\" ");
    expect_list_error("(\\Trash) Trash");
    expect_list_error("(\\Trash) \"//\" Trash");
    expect_list_error("(\\Trash) \"\" Trash");
    expect_list_error("(\\Trash) NIL (Trash)");
    expect_list_error("((\\Trash)) \"/\" Trash");
    expect_list_error("(\"\\Trash\") \"/\" Trash");
    expect_list_error("(\\Trash) \"/\" \"Trash");
    expect_list_error("(\\Trash) \"/\" Trash extra");
    expect_list_error("(\\Trash) \"/\" Trash (\"CHILDINFO\"");
    expect_list_error("(\\Trash) \"/\" Trash () ()");
}

/* A line after a literal with garbage: framing succeeds, parsing fails. */
static void test_garbage_after_literal(void **state)
{
    (void)state;
    const char in[] = "* 1 FETCH (UID 3 BODY[] {3}\r\nabc GARBAGE\")\r\n";
    struct imap_reader r;
    struct imap_read_event ev;
    size_t len = sizeof in - 1, off = 0;
    imap_reader_init(&r);
    off += imap_reader_feed(&r, in, len, &ev);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_START);
    off += imap_reader_feed(&r, in + off, len - off, &ev);
    assert_int_equal(ev.status, IMAP_READ_LITERAL_DATA);
    imap_reader_literal_take(&r, ev.data_len);
    off += ev.data_len;
    off += imap_reader_feed(&r, in + off, len - off, &ev);
    assert_int_equal(ev.status, IMAP_READ_LINE);
    assert_int_equal(off, len);

    struct imap_response resp;
    struct imap_fetch_attrs a;
    const char *err;
    assert_true(imap_response_parse(ev.line, ev.line_len, &resp, &err));
    assert_false(imap_fetch_parse(resp.data, resp.data_len, false, &a, &err));
    assert_non_null(err);
    imap_reader_deinit(&r);
}

/* ---- provider throttles and X-GM-MSGID ------------------------------------ */

static void expect_throttle(const char *line, bool throttled, uint32_t ms)
{
    struct imap_response r;
    uint32_t got = 12345;
    parse_ok(line, &r);
    if (imap_response_throttled(&r, &got) != throttled)
        fail_msg("'%s': throttled should be %d", line, throttled);
    if (got != ms)
        fail_msg("'%s': backoff %u, expected %u", line, (unsigned)got, (unsigned)ms);
}

static void test_throttle_answers(void **state)
{
    (void)state;
    /* Gmail: as the code, at the end of the text, in a BYE. */
    expect_throttle("A1 NO [THROTTLED] Account exceeded command or bandwidth limits.", true, 0);
    expect_throttle("A1 NO Some failure [THROTTLED]", true, 0);
    expect_throttle("* BYE [THROTTLED] Too many simultaneous connections", true, 0);
    /* A command that was done, slowly, is done. */
    expect_throttle("A1 OK Success [THROTTLED]", false, 0);
    expect_throttle("A1 OK [THROTTLED] Success", false, 0);
    /* Yahoo. */
    expect_throttle("A1 NO [LIMIT] Too many connections", true, 0);
    /* Office 365, as NO and as BAD, with and without a number. */
    expect_throttle("A2 NO Request is throttled. Suggested Backoff Time: 299609 milliseconds", true, 299609);
    expect_throttle("A2 BAD Request is throttled. Suggested Backoff Time: 89117 milliseconds", true, 89117);
    expect_throttle("A2 BAD request is THROTTLED. suggested backoff time:1500 milliseconds", true, 1500);
    expect_throttle("A2 NO Request is throttled.", true, 0);
    expect_throttle("A2 NO Request is throttled. Suggested Backoff Time: 99999999999999999999 ms", true,
                    UINT32_MAX);
    expect_throttle("A2 NO Request is throttled. Suggested Backoff Time: soon", true, 0);
    /* Not throttles. */
    expect_throttle("A3 NO [AUTHENTICATIONFAILED] Authentication failed.", false, 0);
    expect_throttle("A3 NO [UNAVAILABLE] Backend down", false, 0);
    expect_throttle("A3 NO [INUSE] Mailbox locked", false, 0);
    expect_throttle("A3 NO [OVERQUOTA] Quota exceeded", false, 0);
    expect_throttle("A3 NO [LIMITED] not the LIMIT code", false, 0);
    expect_throttle("* BYE Connection closed. 14", false, 0);
    expect_throttle("* 3 EXISTS", false, 0);
}

static void test_fetch_x_gm_msgid(void **state)
{
    (void)state;
    struct imap_fetch_attrs a;
    fetch_ok("(UID 7 X-GM-MSGID 1278455344230334865 FLAGS () RFC822.SIZE 54 "
             "INTERNALDATE \"03-Feb-2026 04:05:06 +0000\")", false, &a);
    assert_int_equal(a.present, IMAP_FETCH_HAS_UID | IMAP_FETCH_HAS_SIZE | IMAP_FETCH_HAS_FLAGS |
                                    IMAP_FETCH_HAS_INTERNALDATE | IMAP_FETCH_HAS_X_GM_MSGID);
    assert_true(a.x_gm_msgid == 1278455344230334865ULL);
    fetch_ok("(x-gm-msgid 18446744073709551615)", false, &a);
    assert_true(a.x_gm_msgid == UINT64_MAX);
    /* Without it the attribute stays absent. */
    fetch_ok("(UID 1)", false, &a);
    assert_int_equal(a.present, IMAP_FETCH_HAS_UID);
    assert_true(a.x_gm_msgid == 0);
    expect_fetch_error("(X-GM-MSGID 18446744073709551616)");
    expect_fetch_error("(X-GM-MSGID 0)");
    expect_fetch_error("(X-GM-MSGID -1)");
    expect_fetch_error("(X-GM-MSGID 12a)");
    expect_fetch_error("(X-GM-MSGID \"12\")");
    expect_fetch_error("(X-GM-MSGID (12))");
    expect_fetch_error("(X-GM-MSGID)");
    expect_fetch_error("(X-GM-MSGID 000000000000000000001)");
}

/* RFC 7162 (CONDSTORE): the SELECT's codes a cached listing is checked by,
 * and a CHANGEDSINCE listing whose FETCH data carries MODSEQ. */
static void test_condstore_codes_and_modseq(void **state)
{
    (void)state;
    struct imap_response r;
    uint64_t n = 0;
    parse_ok("* OK [HIGHESTMODSEQ 715194045007] Highest", &r);
    assert_true(imap_resp_code_is(&r, "HIGHESTMODSEQ"));
    assert_true(imap_resp_code_number(&r, &n));
    assert_true(n == 715194045007ULL);
    parse_ok("* OK [HIGHESTMODSEQ 18446744073709551615] max", &r);
    assert_true(imap_resp_code_number(&r, &n));
    assert_true(n == UINT64_MAX);
    parse_ok("* OK [UIDNEXT 4392] Predicted next UID", &r);
    assert_true(imap_resp_code_is(&r, "UIDNEXT"));
    assert_true(imap_resp_code_number(&r, &n));
    assert_true(n == 4392);
    parse_ok("* OK [NOMODSEQ] Sorry, this mailbox format doesn't support modsequences", &r);
    assert_true(imap_resp_code_is(&r, "NOMODSEQ"));
    assert_false(imap_resp_code_number(&r, &n));
    /* Not one positive number: refused, so no cache is built on it. */
    static const char *const bad[] = {
        "* OK [HIGHESTMODSEQ 0] zero",
        "* OK [HIGHESTMODSEQ 18446744073709551616] overflow",
        "* OK [HIGHESTMODSEQ 12a] junk",
        "* OK [HIGHESTMODSEQ 1 2] two",
        "* OK [HIGHESTMODSEQ] none",
        "* OK [HIGHESTMODSEQ \"7\"] quoted",
        "* OK no code",
        "* BYE [UNAVAILABLE] Server shutting down",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parse_ok(bad[i], &r);
        assert_false(imap_resp_code_number(&r, &n));
    }
    /* A CHANGEDSINCE listing item: MODSEQ is skipped, the rest read. */
    struct imap_fetch_attrs a;
    fetch_ok("(UID 7 MODSEQ (624140003) FLAGS (\\Seen) RFC822.SIZE 99 "
             "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" EMAILID (M6d99ac3275bb4e))", false, &a);
    assert_int_equal(a.uid, 7);
    assert_int_equal(a.size, 99);
    assert_true(a.seen);
    assert_true(a.present & IMAP_FETCH_HAS_EMAILID);
    /* An unsolicited flag change under CONDSTORE: UID and MODSEQ, no size. */
    fetch_ok("(FLAGS (\\Deleted) UID 9 MODSEQ (12))", false, &a);
    assert_int_equal(a.uid, 9);
    assert_true(a.deleted);
    assert_false(a.present & IMAP_FETCH_HAS_SIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_lines),
        cmocka_unit_test(test_bare_lf_accepted),
        cmocka_unit_test(test_body_literal_streamed),
        cmocka_unit_test(test_zero_length_literal),
        cmocka_unit_test(test_literal8_with_nul),
        cmocka_unit_test(test_two_literals_one_line),
        cmocka_unit_test(test_absorbed_literal_becomes_quoted),
        cmocka_unit_test(test_absorb_refused_when_too_big),
        cmocka_unit_test(test_backpressure_keeps_position),
        cmocka_unit_test(test_errors_and_stickiness),
        cmocka_unit_test(test_line_length_bound),
        cmocka_unit_test(test_markers_count_toward_bound),
        cmocka_unit_test(test_buffer_released_after_long_line),
        cmocka_unit_test(test_huge_literal_length),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_token_errors),
        cmocka_unit_test(test_token_numbers),
        cmocka_unit_test(test_tagged_status_and_codes),
        cmocka_unit_test(test_untagged),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_response_garbage),
        cmocka_unit_test(test_fetch_items_any_order),
        cmocka_unit_test(test_fetch_flags),
        cmocka_unit_test(test_fetch_partial_literal_item),
        cmocka_unit_test(test_fetch_garbage),
        cmocka_unit_test(test_garbage_after_literal),
        cmocka_unit_test(test_date_time),
        cmocka_unit_test(test_date_time_invalid),
        cmocka_unit_test(test_fetch_listing_items_any_order),
        cmocka_unit_test(test_fetch_internaldate_emailid_garbage),
        cmocka_unit_test(test_list_entries),
        cmocka_unit_test(test_list_literal_name_absorbed),
        cmocka_unit_test(test_list_garbage),
        cmocka_unit_test(test_throttle_answers),
        cmocka_unit_test(test_fetch_x_gm_msgid),
        cmocka_unit_test(test_condstore_codes_and_modseq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
