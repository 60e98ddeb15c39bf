/* Unit tests for translate/pop3_reply: status lines, multi-line responses in
 * both modes with dot-unstuffing, the line bound, and the listing parsers.
 * Every framing case is fed whole, at every two-way split, byte by byte and
 * in random chunks; all must give the same events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pop3_reply.h"

#define RANDOM_SPLITS 100

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The events of one run as text: "OK(text)", "ERR(text)", "BAD(text)",
 * "LINE(text)", "DATA(bytes)" (adjacent DATA events joined, since their
 * split follows the input's), "END", "LONG". */
struct log {
    char *p;
    size_t len, cap;
    bool in_data;
};

static void log_put(struct log *l, const char *s, size_t n)
{
    if (l->len + n + 1 > l->cap) {
        l->cap = (l->len + n + 1) * 2;
        l->p = realloc(l->p, l->cap);
        assert_non_null(l->p);
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
    l->p[l->len] = '\0';
}

static void log_puts(struct log *l, const char *s)
{
    log_put(l, s, strlen(s));
}

static void log_event(struct log *l, const struct pop3_reply_event *ev)
{
    static const char *const names[] = {
        [POP3_REPLY_OK] = "OK", [POP3_REPLY_ERR] = "ERR", [POP3_REPLY_BAD_STATUS] = "BAD",
        [POP3_REPLY_LINE] = "LINE", [POP3_REPLY_DATA] = "DATA", [POP3_REPLY_END] = "END",
        [POP3_REPLY_TOO_LONG] = "LONG",
    };
    if (ev->type == POP3_REPLY_AGAIN)
        return;
    if (ev->type == POP3_REPLY_DATA) {
        assert_true(ev->len > 0);
        if (!l->in_data)
            log_puts(l, "DATA(");
        l->in_data = true;
        log_put(l, ev->text, ev->len);
        return;
    }
    if (l->in_data)
        log_puts(l, ")");
    l->in_data = false;
    log_puts(l, names[ev->type]);
    if (ev->text) {
        /* The text is NUL-terminated where the reader owns it. */
        if (ev->type != POP3_REPLY_DATA)
            assert_int_equal(ev->text[ev->len], '\0');
        log_puts(l, "(");
        log_put(l, ev->text, ev->len);
        log_puts(l, ")");
    }
}

static void log_close(struct log *l)
{
    if (l->in_data)
        log_puts(l, ")");
    l->in_data = false;
    if (l->p == NULL)
        log_put(l, "", 0);
}

/* Feeds in[0..len) in chunks of the given sizes (cycled; NULL: whole). */
static char *run(enum pop3_reply_expect expect, const char *in, size_t len,
                 const size_t *chunks, size_t n_chunks, uint64_t *rng)
{
    struct pop3_reply_reader r;
    struct log l = { 0 };
    pop3_reply_reader_init(&r);
    pop3_reply_expect(&r, expect);
    size_t pos = 0, k = 0;
    while (pos < len) {
        size_t chunk = len - pos;
        if (rng)
            chunk = 1 + (size_t)(rng_next(rng) % 7);
        else if (chunks)
            chunk = chunks[k++ % n_chunks];
        if (chunk > len - pos)
            chunk = len - pos;
        /* An exactly sized copy, so ASan sees a read past the chunk. */
        char *buf = malloc(chunk);
        assert_non_null(buf);
        memcpy(buf, in + pos, chunk);
        size_t off = 0;
        while (off < chunk) {
            struct pop3_reply_event ev;
            size_t used = pop3_reply_feed(&r, buf + off, chunk - off, &ev);
            assert_true(used <= chunk - off);
            assert_true(used > 0 || ev.type != POP3_REPLY_AGAIN);
            if (ev.type == POP3_REPLY_AGAIN)
                assert_int_equal(used, chunk - off);
            log_event(&l, &ev);
            off += used;
        }
        free(buf);
        pos += chunk;
    }
    log_close(&l);
    return l.p;
}

/* Every way of feeding gives want. */
static void check_len(enum pop3_reply_expect expect, const char *in, size_t len, const char *want)
{
    char *whole = run(expect, in, len, NULL, 0, NULL);
    assert_string_equal(whole, want);
    free(whole);
    static const size_t one[] = { 1 };
    char *bytes = run(expect, in, len, one, 1, NULL);
    assert_string_equal(bytes, want);
    free(bytes);
    for (size_t split = 1; split < len; split++) {
        size_t two[] = { split, len };
        char *s = run(expect, in, len, two, 2, NULL);
        assert_string_equal(s, want);
        free(s);
    }
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < RANDOM_SPLITS; i++) {
        char *s = run(expect, in, len, NULL, 0, &rng);
        assert_string_equal(s, want);
        free(s);
    }
}

static void check(enum pop3_reply_expect expect, const char *in, const char *want)
{
    check_len(expect, in, strlen(in), want);
}

static void test_status_lines(void **state)
{
    (void)state;
    check(POP3_EXPECT_SINGLE, "+OK Dovecot ready.\r\n", "OK(Dovecot ready.)");
    check(POP3_EXPECT_SINGLE, "+OK\r\n", "OK()");
    check(POP3_EXPECT_SINGLE, "+OK\n", "OK()");
    check(POP3_EXPECT_SINGLE, "+ok lower\r\n", "OK(lower)");
    check(POP3_EXPECT_SINGLE, "-ERR [IN-USE] locked\r\n", "ERR([IN-USE] locked)");
    check(POP3_EXPECT_SINGLE, "-ERR\r\n", "ERR()");
    check(POP3_EXPECT_SINGLE, "+OKAY\r\n", "BAD(+OKAY)");
    check(POP3_EXPECT_SINGLE, "* OK IMAP\r\n", "BAD(* OK IMAP)");
    check(POP3_EXPECT_SINGLE, "\r\n", "BAD()");
    /* A CR inside the line is a byte of it; only the one before LF goes. */
    check(POP3_EXPECT_SINGLE, "+OK a\rb\r\r\n", "OK(a\rb\r)");
    /* Nothing after an incomplete line. */
    check(POP3_EXPECT_SINGLE, "+OK no end", "");
    check(POP3_EXPECT_SINGLE, "+OK 1\r\n-ERR 2\r\n+OK 3\r\n", "OK(1)ERR(2)OK(3)");
}

static void test_status_with_nul(void **state)
{
    (void)state;
    static const char in[] = "-ERR a\0b\r\n";
    char *s = run(POP3_EXPECT_SINGLE, in, sizeof in - 1, NULL, 0, NULL);
    static const char want[] = "ERR(a\0b)";
    assert_memory_equal(s, want, sizeof want - 1);
    free(s);
}

static void test_lines_unstuffed(void **state)
{
    (void)state;
    check(POP3_EXPECT_LINES, "+OK 2 messages\r\n1 abc\r\n2 def\r\n.\r\n",
          "OK(2 messages)LINE(1 abc)LINE(2 def)END");
    check(POP3_EXPECT_LINES, "+OK\r\n..\r\n...x\r\n.y\r\n\r\n.\r\n",
          "OK()LINE(.)LINE(..x)LINE(y)LINE()END");
    /* Bare LF and a "." that is not alone. */
    check(POP3_EXPECT_LINES, "+OK\nTOP\n. \n.\n", "OK()LINE(TOP)LINE( )END");
    /* -ERR opens nothing: the next line is a status line again. */
    check(POP3_EXPECT_LINES, "-ERR no CAPA\r\n+OK\r\nUSER\r\n.\r\n",
          "ERR(no CAPA)OK()LINE(USER)END");
    /* An empty multi-line response. */
    check(POP3_EXPECT_LINES, "+OK\r\n.\r\n+OK\r\n.\r\n", "OK()ENDOK()END");
}

static void test_stream_unstuffed(void **state)
{
    (void)state;
    check(POP3_EXPECT_STREAM, "+OK top\r\nSubject: x\r\n\r\n.\r\n",
          "OK(top)DATA(Subject: x\r\n\r\n)END");
    /* Stuffed lines lose one dot; a stuffed "." line is not the end. */
    check(POP3_EXPECT_STREAM, "+OK\r\n..\r\n..x\r\nA\r\n...\r\n.\r\n",
          "OK()DATA(.\r\n.x\r\nA\r\n..\r\n)END");
    /* An unstuffed dot line (a broken server) loses its dot as well. */
    check(POP3_EXPECT_STREAM, "+OK\r\n.x\r\n.\r\n", "OK()DATA(x\r\n)END");
    /* ".\r" followed by more than LF: the CR is data. */
    check(POP3_EXPECT_STREAM, "+OK\r\n.\rz\r\n.\r\n", "OK()DATA(\rz\r\n)END");
    check(POP3_EXPECT_STREAM, "+OK\r\n.\r\r\n.\r\n", "OK()DATA(\r\r\n)END");
    /* Bare LF line ends, kept as sent, and a bare LF terminator. */
    check(POP3_EXPECT_STREAM, "+OK\nA\n..B\n.\n", "OK()DATA(A\n.B\n)END");
    /* Nothing but the terminator. */
    check(POP3_EXPECT_STREAM, "+OK\r\n.\r\n", "OK()END");
    /* Pipelined replies, one failed. */
    check(POP3_EXPECT_STREAM,
          "+OK\r\nA: 1\r\n\r\n.\r\n-ERR no such message\r\n+OK\r\n.B: 2\r\n\r\n.\r\n",
          "OK()DATA(A: 1\r\n\r\n)END" "ERR(no such message)" "OK()DATA(B: 2\r\n\r\n)END");
    /* Long lines are no problem in STREAM mode. */
    size_t n = 3 * POP3_REPLY_LINE_MAX;
    char *in = malloc(n + 32), *want = malloc(n + 32);
    assert_non_null(in);
    assert_non_null(want);
    strcpy(in, "+OK\r\n");
    memset(in + 5, 'h', n);
    strcpy(in + 5 + n, "\r\n.\r\n");
    strcpy(want, "OK()DATA(");
    memset(want + 9, 'h', n);
    strcpy(want + 9 + n, "\r\n)END");
    char *s = run(POP3_EXPECT_STREAM, in, strlen(in), NULL, 0, NULL);
    assert_string_equal(s, want);
    free(s);
    static const size_t one[] = { 1 };
    s = run(POP3_EXPECT_STREAM, in, strlen(in), one, 1, NULL);
    assert_string_equal(s, want);
    free(s);
    free(in);
    free(want);
}

static void test_expectation_changes_between_replies(void **state)
{
    (void)state;
    static const char in[] = "+OK\r\n1 a\r\n.\r\n+OK\r\n.. x\r\n.\r\n+OK bye\r\n";
    struct pop3_reply_reader r;
    struct log l = { 0 };
    pop3_reply_reader_init(&r);
    pop3_reply_expect(&r, POP3_EXPECT_LINES);
    size_t off = 0, len = sizeof in - 1;
    int ends = 0;
    while (off < len) {
        struct pop3_reply_event ev;
        off += pop3_reply_feed(&r, in + off, len - off, &ev);
        log_event(&l, &ev);
        if (ev.type == POP3_REPLY_OK)
            assert_true(pop3_reply_in_multiline(&r) == (ends < 2));
        if (ev.type == POP3_REPLY_END) {
            assert_false(pop3_reply_in_multiline(&r));
            pop3_reply_expect(&r, ++ends == 1 ? POP3_EXPECT_STREAM : POP3_EXPECT_SINGLE);
        }
    }
    log_close(&l);
    assert_string_equal(l.p, "OK()LINE(1 a)END" "OK()DATA(. x\r\n)END" "OK(bye)");
    free(l.p);
}

static void test_line_bound(void **state)
{
    (void)state;
    size_t max = POP3_REPLY_LINE_MAX;
    char *in = malloc(2 * max + 64), *want = malloc(2 * max + 64);
    assert_non_null(in);
    assert_non_null(want);

    /* Exactly at the bound, with its CRLF: fine. */
    memcpy(in, "+OK ", 4);
    memset(in + 4, 'a', max - 4);
    strcpy(in + max, "\r\n");
    strcpy(want, "OK(");
    memset(want + 3, 'a', max - 4);
    strcpy(want + 3 + max - 4, ")");
    check(POP3_EXPECT_SINGLE, in, want);

    /* One octet more: reported once, skipped to its LF, then reading goes on. */
    memcpy(in, "+OK ", 4);
    memset(in + 4, 'a', max - 3);
    strcpy(in + max + 1, "\r\n-ERR next\r\n");
    check(POP3_EXPECT_SINGLE, in, "LONGERR(next)");

    /* A CR that is not before LF counts. */
    memcpy(in, "+OK ", 4);
    memset(in + 4, 'a', max - 4);
    strcpy(in + max, "\rx\n+OK\n");
    check(POP3_EXPECT_SINGLE, in, "LONGOK()");

    /* In a listing the bound holds too, and the listing goes on. */
    strcpy(in, "+OK\r\n1 ");
    memset(in + 7, 'u', max);
    strcpy(in + 7 + max, "\r\n2 v\r\n.\r\n");
    check(POP3_EXPECT_LINES, in, "OK()LONGLINE(2 v)END");
    free(in);
    free(want);
}

static void test_response_codes(void **state)
{
    (void)state;
    const char *t = "[IN-USE] mailbox locked";
    assert_true(pop3_reply_has_code(t, strlen(t), "IN-USE"));
    assert_true(pop3_reply_has_code(t, strlen(t), "in-use"));
    assert_false(pop3_reply_has_code(t, strlen(t), "IN"));
    assert_false(pop3_reply_has_code(t, strlen(t), "AUTH"));
    t = "[SYS/TEMP] try later";
    assert_true(pop3_reply_has_code(t, strlen(t), "SYS"));
    assert_true(pop3_reply_has_code(t, strlen(t), "SYS/TEMP"));
    assert_false(pop3_reply_has_code(t, strlen(t), "SYS/PERM"));
    t = "IN-USE no brackets";
    assert_false(pop3_reply_has_code(t, strlen(t), "IN-USE"));
    assert_false(pop3_reply_has_code("[AUTH", 5, "AUTH"));
    assert_false(pop3_reply_has_code("", 0, "AUTH"));
}

static enum pop3_listing_result uidl(const char *line, uint32_t *n, char *out)
{
    const char *u = NULL;
    size_t ulen = 0;
    enum pop3_listing_result r = pop3_parse_uidl_line(line, strlen(line), n, &u, &ulen);
    out[0] = '\0';
    if (r == POP3_LISTING_OK) {
        memcpy(out, u, ulen);
        out[ulen] = '\0';
    }
    return r;
}

static void test_uidl_lines(void **state)
{
    (void)state;
    uint32_t n = 0;
    char u[POP3_REPLY_LINE_MAX + 1];
    assert_int_equal(uidl("1 000000017f9a3c21", &n, u), POP3_LISTING_OK);
    assert_int_equal(n, 1);
    assert_string_equal(u, "000000017f9a3c21");
    assert_int_equal(uidl("42   a!~ \t ", &n, u), POP3_LISTING_OK);
    assert_int_equal(n, 42);
    assert_string_equal(u, "a!~");
    assert_int_equal(uidl("4294967295 x", &n, u), POP3_LISTING_OK);
    assert_int_equal(n, UINT32_MAX);

    char line[100];
    strcpy(line, "7 ");
    memset(line + 2, 'z', POP3_UIDL_MAX);
    line[2 + POP3_UIDL_MAX] = '\0';
    assert_int_equal(uidl(line, &n, u), POP3_LISTING_OK);
    assert_int_equal(strlen(u), POP3_UIDL_MAX);
    strcat(line, "z");
    n = 0;
    assert_int_equal(uidl(line, &n, u), POP3_LISTING_BAD_VALUE);
    assert_int_equal(n, 7);

    assert_int_equal(uidl("3 a b", &n, u), POP3_LISTING_BAD_VALUE);
    assert_int_equal(uidl("3 a\x7f", &n, u), POP3_LISTING_BAD_VALUE);
    assert_int_equal(uidl("3 \xe4", &n, u), POP3_LISTING_BAD_VALUE);
    assert_int_equal(uidl("3", &n, u), POP3_LISTING_BAD_VALUE);
    assert_int_equal(uidl("3   ", &n, u), POP3_LISTING_BAD_VALUE);
    assert_int_equal(n, 3);
    assert_int_equal(uidl("0 abc", &n, u), POP3_LISTING_MALFORMED);
    assert_int_equal(uidl("4294967296 abc", &n, u), POP3_LISTING_MALFORMED);
    assert_int_equal(uidl("+1 abc", &n, u), POP3_LISTING_MALFORMED);
    assert_int_equal(uidl("1x abc", &n, u), POP3_LISTING_MALFORMED);
    assert_int_equal(uidl(" 1 abc", &n, u), POP3_LISTING_MALFORMED);
    assert_int_equal(uidl("", &n, u), POP3_LISTING_MALFORMED);

    const char *u2;
    size_t ulen;
    assert_int_equal(pop3_parse_uidl_line("5 a\0b", 5, &n, &u2, &ulen), POP3_LISTING_BAD_VALUE);
    assert_true(pop3_uidl_valid("!", 1));
    assert_false(pop3_uidl_valid("", 0));
    assert_false(pop3_uidl_valid(" ", 1));
}

static void test_list_lines(void **state)
{
    (void)state;
    uint32_t n = 0, size = 0;
#define LIST(s) pop3_parse_list_line(s, strlen(s), &n, &size)
    assert_int_equal(LIST("1 120"), POP3_LISTING_OK);
    assert_int_equal(n, 1);
    assert_int_equal(size, 120);
    assert_int_equal(LIST("2  0 extra info "), POP3_LISTING_OK);
    assert_int_equal(n, 2);
    assert_int_equal(size, 0);
    assert_int_equal(LIST("3 4294967295"), POP3_LISTING_OK);
    assert_int_equal(size, UINT32_MAX);
    size = 9;
    assert_int_equal(LIST("4 4294967296"), POP3_LISTING_BAD_VALUE);
    assert_int_equal(n, 4);
    assert_int_equal(size, 9);
    assert_int_equal(LIST("5 -1"), POP3_LISTING_BAD_VALUE);
    assert_int_equal(LIST("5 12k"), POP3_LISTING_BAD_VALUE);
    assert_int_equal(LIST("5"), POP3_LISTING_BAD_VALUE);
    assert_int_equal(LIST("x 5"), POP3_LISTING_MALFORMED);
    assert_int_equal(LIST("0 5"), POP3_LISTING_MALFORMED);
#undef LIST
}

static void test_stat(void **state)
{
    (void)state;
    uint32_t count = 7;
#define STAT(s) pop3_parse_stat(s, strlen(s), &count)
    assert_true(STAT("0 0"));
    assert_int_equal(count, 0);
    assert_true(STAT("3 1200"));
    assert_int_equal(count, 3);
    assert_true(STAT("3 123456789012345678901234567890 more"));
    assert_int_equal(count, 3);
    assert_true(STAT("4294967295 1 "));
    assert_int_equal(count, UINT32_MAX);
    count = 7;
    assert_false(STAT("4294967296 1"));
    assert_false(STAT("3"));
    assert_false(STAT("3 "));
    assert_false(STAT("3 x"));
    assert_false(STAT("3 12x"));
    assert_false(STAT("x 1"));
    assert_false(STAT(""));
    assert_int_equal(count, 7);
#undef STAT
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_lines),
        cmocka_unit_test(test_status_with_nul),
        cmocka_unit_test(test_lines_unstuffed),
        cmocka_unit_test(test_stream_unstuffed),
        cmocka_unit_test(test_expectation_changes_between_replies),
        cmocka_unit_test(test_line_bound),
        cmocka_unit_test(test_response_codes),
        cmocka_unit_test(test_uidl_lines),
        cmocka_unit_test(test_list_lines),
        cmocka_unit_test(test_stat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
