/* Unit tests for translate/pop3_parse: the line reader must give the same
 * events for an input whatever its split, and the command parser and message
 * number rules must match Dovecot's strictness. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pop3_parse.h"

/* Splits per input for the random-split runs; fixed seed so a failure repeats. */
#define RANDOM_SPLITS 200
#define SPLIT_SEED 0x9e3779b97f4a7c15ull

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64: deterministic across libcs, unlike rand(). */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A growable text of the reader's events, one per line: "R <len> <bytes>",
 * "TOO_LONG", "INVALID", then "END <AGAIN state>" so two runs compare with
 * strcmp. Bytes are printed as escaped hex outside printable ASCII. */
struct transcript {
    char *buf;
    size_t len, cap;
};

static void ts_append(struct transcript *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        assert_non_null(t->buf);
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void ts_printf(struct transcript *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ts_printf(struct transcript *t, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(tmp));
    ts_append(t, tmp, (size_t)n);
}

static void ts_line(struct transcript *t, const char *line, size_t len)
{
    ts_printf(t, "R %zu ", len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            ts_append(t, (const char *)&c, 1);
        else
            ts_printf(t, "\\x%02x", c);
    }
    ts_append(t, "\n", 1);
}

/* The caller's side of the AUTH dialogue: after a line starting with "AUTH"
 * the next line may be a long SASL response. Reacting to events (not to
 * offsets) keeps the run independent of the split. */
static void feed_chunk(struct pop3_line_reader *r, struct transcript *t, const char *data, size_t len)
{
    while (len > 0) {
        enum pop3_line_status st;
        const char *line;
        size_t line_len;
        size_t used = pop3_line_reader_feed(r, data, len, &st, &line, &line_len);

        assert_true(used <= len);
        assert_true(used > 0);
        switch (st) {
        case POP3_LINE_AGAIN:
            assert_int_equal(used, len);
            assert_null(line);
            break;
        case POP3_LINE_READY:
            assert_non_null(line);
            assert_int_equal(line[line_len], '\0');
            assert_true(line_len <= POP3_SASL_LINE_MAX);
            ts_line(t, line, line_len);
            if (line_len >= 4 && strncmp(line, "AUTH", 4) == 0)
                pop3_line_reader_allow_long_line(r);
            break;
        case POP3_LINE_TOO_LONG:
            assert_null(line);
            ts_printf(t, "TOO_LONG\n");
            break;
        case POP3_LINE_INVALID:
            assert_null(line);
            ts_printf(t, "INVALID\n");
            break;
        }
        data += used;
        len -= used;
    }
}

static char *run_split(const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
    struct pop3_line_reader r;
    struct transcript t = { 0 };
    size_t pos = 0;

    pop3_line_reader_init(&r);
    ts_append(&t, "", 0);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        feed_chunk(&r, &t, in + pos, end - pos);
        pos = end;
    }
    /* What is left half-read shows in the transcript too. */
    ts_printf(&t, "END len=%zu skipping=%d\n", r.len, (int)r.skipping);
    return t.buf;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs in whole, byte by byte and RANDOM_SPLITS random splits; all must agree.
 * Returns the transcript (caller frees). */
static char *run_all_splits(const char *in, size_t len)
{
    char *whole = run_split(in, len, NULL, 0);

    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    char *bytewise = run_split(in, len, cuts, len);
    assert_string_equal(whole, bytewise);
    free(bytewise);

    uint64_t seed = SPLIT_SEED ^ len;
    for (int s = 0; s < RANDOM_SPLITS && len > 1; s++) {
        size_t ncuts = (size_t)(rng_next(&seed) % (len < 16 ? len : 16));
        for (size_t k = 0; k < ncuts; k++)
            cuts[k] = (size_t)(rng_next(&seed) % (len + 1));
        qsort(cuts, ncuts, sizeof(*cuts), cmp_size);
        char *split = run_split(in, len, cuts, ncuts);
        assert_string_equal(whole, split);
        free(split);
    }
    free(cuts);
    return whole;
}

static void expect_events(const char *in, size_t len, const char *expected)
{
    char *got = run_all_splits(in, len);
    assert_string_equal(got, expected);
    free(got);
}
#define EXPECT(lit, expected) expect_events(lit, sizeof(lit) - 1, expected)

static void test_pipelined_commands(void **state)
{
    (void)state;
    EXPECT("USER alice\r\nPASS secret\r\nSTAT\r\nLIST 1\r\nQUIT\r\n",
           "R 10 USER alice\nR 11 PASS secret\nR 4 STAT\nR 6 LIST 1\nR 4 QUIT\n"
           "END len=0 skipping=0\n");
}

static void test_lf_and_crlf_endings(void **state)
{
    (void)state;
    EXPECT("STAT\nLIST\r\nNOOP\n\r\n\n", "R 4 STAT\nR 4 LIST\nR 4 NOOP\nR 0 \nR 0 \nEND len=0 skipping=0\n");
}

static void test_lone_cr_is_kept(void **state)
{
    (void)state;
    EXPECT("A\rB\r\nC\r\r\n\rD\n", "R 3 A\\x0dB\nR 2 C\\x0d\nR 2 \\x0dD\nEND len=0 skipping=0\n");
}

static void test_partial_line_waits(void **state)
{
    (void)state;
    EXPECT("STAT\r\nLIS", "R 4 STAT\nEND len=3 skipping=0\n");
}

/* Builds "<fill x n><tail>" into a fresh buffer. */
static char *make_line(size_t n, char fill, const char *tail, size_t *len)
{
    size_t tl = strlen(tail);
    char *s = malloc(n + tl + 1);
    assert_non_null(s);
    memset(s, fill, n);
    memcpy(s + n, tail, tl + 1);
    *len = n + tl;
    return s;
}

static void test_line_max_exactly_fits(void **state)
{
    (void)state;
    size_t len;
    char *s = make_line(POP3_LINE_MAX, 'a', "\r\nNOOP\r\n", &len);
    char *got = run_all_splits(s, len);
    assert_non_null(strstr(got, "R 255 aaaa"));
    assert_non_null(strstr(got, "\nR 4 NOOP\nEND len=0 skipping=0\n"));
    assert_null(strstr(got, "TOO_LONG"));
    free(got);
    free(s);

    /* A 255-octet line with a bare LF, too. */
    s = make_line(POP3_LINE_MAX, 'b', "\nNOOP\n", &len);
    got = run_all_splits(s, len);
    assert_non_null(strstr(got, "R 255 bbbb"));
    assert_null(strstr(got, "TOO_LONG"));
    free(got);
    free(s);
}

static void test_line_one_over_is_too_long(void **state)
{
    (void)state;
    size_t len;
    char *s = make_line(POP3_LINE_MAX + 1, 'a', "\r\nNOOP\r\n", &len);
    expect_events(s, len, "TOO_LONG\nR 4 NOOP\nEND len=0 skipping=0\n");
    free(s);

    /* 255 octets then a lone CR: the CR is the 256th octet of the line. */
    s = make_line(POP3_LINE_MAX, 'a', "\rX\r\nNOOP\r\n", &len);
    expect_events(s, len, "TOO_LONG\nR 4 NOOP\nEND len=0 skipping=0\n");
    free(s);
}

static void test_huge_line_without_lf_stays_bounded(void **state)
{
    (void)state;
    size_t len;
    char *s = make_line(100000, 'z', "", &len);
    /* Reported once, then everything is skipped: nothing is buffered. */
    expect_events(s, len, "TOO_LONG\nEND len=0 skipping=1\n");
    free(s);

    s = make_line(100000, 'z', "\r\nuidl 3\r\n", &len);
    expect_events(s, len, "TOO_LONG\nR 6 uidl 3\nEND len=0 skipping=0\n");
    free(s);

    /* Many over-long lines in a row: one report each. */
    s = make_line(1000, 'q', "\n", &len);
    size_t total = 3 * len;
    char *three = malloc(total + 1);
    assert_non_null(three);
    for (int k = 0; k < 3; k++)
        memcpy(three + (size_t)k * len, s, len);
    expect_events(three, total, "TOO_LONG\nTOO_LONG\nTOO_LONG\nEND len=0 skipping=0\n");
    free(three);
    free(s);
}

static void test_nul_in_line_is_invalid(void **state)
{
    (void)state;
    EXPECT("US\0ER a\r\nSTAT\r\n", "INVALID\nR 4 STAT\nEND len=0 skipping=0\n");
    EXPECT("\0\n\0\0\r\nNOOP\n", "INVALID\nINVALID\nR 4 NOOP\nEND len=0 skipping=0\n");
}

static void test_nul_in_too_long_line_reports_too_long_only(void **state)
{
    (void)state;
    size_t len;
    char *s = make_line(POP3_LINE_MAX + 10, 'a', "\r\nNOOP\r\n", &len);
    s[3] = '\0';
    expect_events(s, len, "TOO_LONG\nR 4 NOOP\nEND len=0 skipping=0\n");
    free(s);
}

static void test_sasl_long_line(void **state)
{
    (void)state;
    size_t len;
    /* After "AUTH PLAIN" the driver raises the limit for one line: 1024 fits,
     * and the line after it is back to 255. */
    char *resp = make_line(POP3_SASL_LINE_MAX, 'Q', "", &len);
    char *in = malloc(len + 1024);
    assert_non_null(in);
    size_t n = 0;
    memcpy(in, "AUTH PLAIN\r\n", 12);
    n += 12;
    memcpy(in + n, resp, len);
    n += len;
    memcpy(in + n, "\r\n", 2);
    n += 2;
    memset(in + n, 'b', POP3_LINE_MAX + 1);
    n += POP3_LINE_MAX + 1;
    memcpy(in + n, "\r\n", 2);
    n += 2;
    char *got = run_all_splits(in, n);
    assert_non_null(strstr(got, "R 10 AUTH PLAIN\nR 1024 QQQQ"));
    assert_non_null(strstr(got, "\nTOO_LONG\nEND len=0 skipping=0\n"));
    free(got);

    /* 1025 octets of response is too long even for SASL. */
    n = 12;
    memset(in + n, 'Q', POP3_SASL_LINE_MAX + 1);
    n += POP3_SASL_LINE_MAX + 1;
    memcpy(in + n, "\r\n*\r\n", 5);
    n += 5;
    expect_events(in, n, "R 10 AUTH PLAIN\nTOO_LONG\nR 1 *\nEND len=0 skipping=0\n");
    free(in);
    free(resp);
}

static void test_reader_line_stays_valid_and_is_writable(void **state)
{
    (void)state;
    struct pop3_line_reader r;
    enum pop3_line_status st;
    const char *line;
    size_t line_len;
    char in[] = "LIST  1\r\nSTAT\r\n";

    pop3_line_reader_init(&r);
    size_t used = pop3_line_reader_feed(&r, in, sizeof(in) - 1, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_READY);
    assert_int_equal(used, 9);
    assert_string_equal(line, "LIST  1");

    struct pop3_command cmd;
    pop3_command_parse(r.buf, &cmd);
    assert_int_equal(cmd.verb, POP3_LIST);
    assert_int_equal(cmd.argc, 1);
    assert_string_equal(cmd.argv[0], "1");

    used = pop3_line_reader_feed(&r, in + 9, sizeof(in) - 1 - 9, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_READY);
    assert_string_equal(line, "STAT");
    used = pop3_line_reader_feed(&r, "", 0, &st, &line, &line_len);
    assert_int_equal(used, 0);
    assert_int_equal(st, POP3_LINE_AGAIN);
}

/* True when the reader's memory holds the secret anywhere. */
static bool reader_holds(const struct pop3_line_reader *r, const char *secret)
{
    return memmem(r, sizeof *r, secret, strlen(secret)) != NULL;
}

#define SECRET "s3cr3t-Pa55word"

/* A PASS line, split so its password spans two reads: once forgotten (as
 * the session does after handling it), no byte of it is left anywhere in the
 * reader; the command parse, which splits in place, does not change that. */
static void test_reader_forgets_pass_line(void **state)
{
    (void)state;
    struct pop3_line_reader r;
    enum pop3_line_status st;
    const char *line;
    size_t line_len;
    const char in[] = "PASS " SECRET "\r\n";

    pop3_line_reader_init(&r);
    size_t used = pop3_line_reader_feed(&r, in, 9, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_AGAIN);
    assert_int_equal(used, 9);
    used = pop3_line_reader_feed(&r, in + 9, sizeof in - 1 - 9, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_READY);
    assert_string_equal(line, "PASS " SECRET);
    assert_true(reader_holds(&r, SECRET));

    char copy[POP3_LINE_MAX + 1];
    memcpy(copy, line, line_len + 1);
    struct pop3_command cmd;
    pop3_command_parse(copy, &cmd);
    assert_int_equal(cmd.verb, POP3_PASS);
    assert_string_equal(cmd.rest, SECRET);

    pop3_line_reader_forget_line(&r);
    assert_false(reader_holds(&r, SECRET));
    assert_false(reader_holds(&r, "PASS"));
    /* The reader still works after the wipe. */
    used = pop3_line_reader_feed(&r, "STAT\r\n", 6, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_READY);
    assert_string_equal(line, "STAT");
}

/* Without forget_line the next feed wipes the line: it was valid until then. */
static void test_reader_next_feed_wipes_line(void **state)
{
    (void)state;
    struct pop3_line_reader r;
    enum pop3_line_status st;
    const char *line;
    size_t line_len;
    const char in[] = "PASS " SECRET "\r\nNOOP";

    pop3_line_reader_init(&r);
    size_t used = pop3_line_reader_feed(&r, in, sizeof in - 1, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_READY);
    used += pop3_line_reader_feed(&r, in + used, sizeof in - 1 - used, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_AGAIN);
    assert_int_equal(used, sizeof in - 1);
    assert_false(reader_holds(&r, SECRET));
}

/* An AUTH PLAIN response (base64 of the password) that is invalid, too long,
 * or cut by the end of the connection leaves nothing behind either. */
static void test_reader_wipes_dropped_lines(void **state)
{
    (void)state;
    struct pop3_line_reader r;
    enum pop3_line_status st;
    const char *line;
    size_t line_len;

    pop3_line_reader_init(&r);
    const char invalid[] = SECRET "\0x\r\n";
    pop3_line_reader_feed(&r, invalid, sizeof invalid - 1, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_INVALID);
    assert_false(reader_holds(&r, SECRET));

    char long_line[POP3_LINE_MAX + 2 + sizeof SECRET];
    memcpy(long_line, SECRET, sizeof SECRET - 1);
    memset(long_line + sizeof SECRET - 1, 'A', sizeof long_line - (sizeof SECRET - 1));
    size_t used = pop3_line_reader_feed(&r, long_line, sizeof long_line, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_TOO_LONG);
    assert_true(used < sizeof long_line);
    assert_false(reader_holds(&r, SECRET));
    pop3_line_reader_feed(&r, "\n", 1, &st, &line, &line_len);

    pop3_line_reader_feed(&r, "PASS " SECRET, sizeof SECRET + 4, &st, &line, &line_len);
    assert_int_equal(st, POP3_LINE_AGAIN);
    assert_true(reader_holds(&r, SECRET));
    pop3_line_reader_deinit(&r);
    assert_false(reader_holds(&r, SECRET));
}

static void parse(const char *text, struct pop3_command *cmd, char *buf, size_t cap)
{
    assert_true(strlen(text) < cap);
    strcpy(buf, text);
    pop3_command_parse(buf, cmd);
}

static void test_verbs_case_insensitive(void **state)
{
    (void)state;
    static const struct { const char *text; enum pop3_verb verb; } cases[] = {
        { "user a", POP3_USER }, { "PaSs a", POP3_PASS }, { "auth", POP3_AUTH },
        { "apop a b", POP3_APOP }, { "Capa", POP3_CAPA }, { "stls", POP3_STLS },
        { "quit", POP3_QUIT }, { "sTaT", POP3_STAT }, { "list", POP3_LIST },
        { "uidl", POP3_UIDL }, { "retr 1", POP3_RETR }, { "top 1 2", POP3_TOP },
        { "dele 1", POP3_DELE }, { "rset", POP3_RSET }, { "NOOP", POP3_NOOP },
        { "", POP3_UNKNOWN }, { "XTND", POP3_UNKNOWN }, { "USERX a", POP3_UNKNOWN },
        { "USE", POP3_UNKNOWN }, { " USER a", POP3_UNKNOWN }, { "TOPS", POP3_UNKNOWN },
        { "UNKNOWN", POP3_UNKNOWN }, { "\xd5SER", POP3_UNKNOWN },
    };
    char buf[64];
    struct pop3_command cmd;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        parse(cases[i].text, &cmd, buf, sizeof(buf));
        assert_int_equal(cmd.verb, cases[i].verb);
    }
}

static void test_verb_names(void **state)
{
    (void)state;
    assert_string_equal(pop3_verb_name(POP3_TOP), "TOP");
    assert_string_equal(pop3_verb_name(POP3_NOOP), "NOOP");
    assert_string_equal(pop3_verb_name(POP3_UNKNOWN), "UNKNOWN");
    assert_string_equal(pop3_verb_name(POP3_VERB_COUNT), "UNKNOWN");
    for (int v = POP3_UNKNOWN + 1; v < POP3_VERB_COUNT; v++) {
        char buf[16];
        struct pop3_command cmd;
        parse(pop3_verb_name((enum pop3_verb)v), &cmd, buf, sizeof(buf));
        assert_int_equal(cmd.verb, v);
    }
}

static void test_arguments(void **state)
{
    (void)state;
    char buf[64];
    struct pop3_command cmd;

    parse("TOP 3 10", &cmd, buf, sizeof(buf));
    assert_int_equal(cmd.verb, POP3_TOP);
    assert_int_equal(cmd.argc, 2);
    assert_false(cmd.too_many_args);
    assert_string_equal(cmd.argv[0], "3");
    assert_int_equal(cmd.argv_len[0], 1);
    assert_string_equal(cmd.argv[1], "10");
    assert_int_equal(cmd.argv_len[1], 2);
    assert_string_equal(cmd.rest, "");

    parse("top   3    10   ", &cmd, buf, sizeof(buf));
    assert_int_equal(cmd.verb, POP3_TOP);
    assert_int_equal(cmd.argc, 2);
    assert_false(cmd.too_many_args);
    assert_string_equal(cmd.argv[0], "3");
    assert_string_equal(cmd.argv[1], "10");

    parse("TOP 1 2 3", &cmd, buf, sizeof(buf));
    assert_int_equal(cmd.argc, POP3_MAX_ARGS);
    assert_true(cmd.too_many_args);

    parse("STAT", &cmd, buf, sizeof(buf));
    assert_int_equal(cmd.argc, 0);
    assert_false(cmd.too_many_args);
    assert_string_equal(cmd.rest, "");

    parse("LIST ", &cmd, buf, sizeof(buf));
    assert_int_equal(cmd.verb, POP3_LIST);
    assert_int_equal(cmd.argc, 0);

    parse("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", &cmd, buf, sizeof(buf));
    assert_int_equal(cmd.verb, POP3_AUTH);
    assert_int_equal(cmd.argc, 2);
    assert_string_equal(cmd.argv[0], "PLAIN");
    assert_string_equal(cmd.argv[1], "dGVzdAB0ZXN0AHRlc3Q=");
}

static void test_pass_keeps_spaces(void **state)
{
    (void)state;
    char buf[64];
    struct pop3_command cmd;

    parse("PASS my secret  pass ", &cmd, buf, sizeof(buf));
    assert_int_equal(cmd.verb, POP3_PASS);
    assert_string_equal(cmd.rest, "my secret  pass ");
    assert_int_equal(cmd.argc, 1);
    assert_false(cmd.too_many_args);
    assert_ptr_equal(cmd.argv[0], cmd.rest);
    assert_int_equal(cmd.argv_len[0], strlen("my secret  pass "));

    /* Only the one space after the verb is a separator. */
    parse("pass  lead", &cmd, buf, sizeof(buf));
    assert_string_equal(cmd.rest, " lead");

    parse("PASS ", &cmd, buf, sizeof(buf));
    assert_string_equal(cmd.rest, "");
    assert_int_equal(cmd.argc, 0);

    parse("PASS", &cmd, buf, sizeof(buf));
    assert_string_equal(cmd.rest, "");
    assert_int_equal(cmd.argc, 0);
}

static void test_msgnum(void **state)
{
    (void)state;
    static const struct { const char *s; uint32_t max; bool ok; uint32_t v; } cases[] = {
        { "0", 10, false, 0 },
        { "1", 10, true, 1 },
        { "10", 10, true, 10 },
        { "11", 10, false, 0 },
        { "4294967295", UINT32_MAX, true, UINT32_MAX },
        { "4294967296", UINT32_MAX, false, 0 },
        { "4294967297", UINT32_MAX, false, 0 },
        { "4294967297", 10, false, 0 },
        { "99999999999999999999", UINT32_MAX, false, 0 },
        { "+1", 10, false, 0 },
        { "-1", 10, false, 0 },
        { "1a", 10, false, 0 },
        { "a1", 10, false, 0 },
        { " 1", 10, false, 0 },
        { "1 ", 10, false, 0 },
        { "", 10, false, 0 },
        { "0001", 10, true, 1 },
        { "007", 10, true, 7 },
        { "000", 10, false, 0 },
        { "1", 0, false, 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t v = 12345;
        bool ok = pop3_parse_msgnum(cases[i].s, cases[i].max, &v);
        if (ok != cases[i].ok)
            fail_msg("msgnum \"%s\" max %u: got %d", cases[i].s, cases[i].max, ok);
        assert_int_equal(v, cases[i].ok ? cases[i].v : 12345);
    }
}

static void test_count(void **state)
{
    (void)state;
    uint32_t v = 7;

    assert_true(pop3_parse_count("0", &v));
    assert_int_equal(v, 0);
    assert_true(pop3_parse_count("99999999", &v));
    assert_int_equal(v, 99999999);
    assert_true(pop3_parse_count("4294967295", &v));
    assert_int_equal(v, UINT32_MAX);
    assert_true(pop3_parse_count("4294967296", &v));
    assert_int_equal(v, UINT32_MAX);
    assert_true(pop3_parse_count("123456789012345678901234567890", &v));
    assert_int_equal(v, UINT32_MAX);
    v = 7;
    assert_false(pop3_parse_count("", &v));
    assert_false(pop3_parse_count("-1", &v));
    assert_false(pop3_parse_count("+1", &v));
    assert_false(pop3_parse_count("1x", &v));
    assert_int_equal(v, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_commands),
        cmocka_unit_test(test_lf_and_crlf_endings),
        cmocka_unit_test(test_lone_cr_is_kept),
        cmocka_unit_test(test_partial_line_waits),
        cmocka_unit_test(test_line_max_exactly_fits),
        cmocka_unit_test(test_line_one_over_is_too_long),
        cmocka_unit_test(test_huge_line_without_lf_stays_bounded),
        cmocka_unit_test(test_nul_in_line_is_invalid),
        cmocka_unit_test(test_nul_in_too_long_line_reports_too_long_only),
        cmocka_unit_test(test_sasl_long_line),
        cmocka_unit_test(test_reader_line_stays_valid_and_is_writable),
        cmocka_unit_test(test_reader_forgets_pass_line),
        cmocka_unit_test(test_reader_next_feed_wipes_line),
        cmocka_unit_test(test_reader_wipes_dropped_lines),
        cmocka_unit_test(test_verbs_case_insensitive),
        cmocka_unit_test(test_verb_names),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_pass_keeps_spaces),
        cmocka_unit_test(test_msgnum),
        cmocka_unit_test(test_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
