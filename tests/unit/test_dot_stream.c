/* Unit tests for translate/dot_stream: RETR/TOP output must be the same bytes
 * whatever the split of the input and the size of the output buffer, and must
 * un-stuff to the CRLF-normalised message that LIST sizes describe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dot_stream.h"

#define RANDOM_SPLITS 200
#define SPLIT_SEED 0x2545f4914f6cdd1dull
/* No TOP limit in a run. */
#define NO_LIMIT SIZE_MAX
/* Output buffer sizes every input is also run with, whole and byte by byte;
 * 1, 2 and 3 exercise the carry of "\r\n" and ".\r\n". */
static const size_t fixed_caps[] = { 1, 2, 3, 7, 64, 65536 };

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct bytes {
    char *p;
    size_t len, cap;
};

static void bytes_append(struct bytes *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

struct run_opts {
    enum dot_stream_nul nul;
    size_t header_len;         /* where dot_stream_limit_lines() is called; NO_LIMIT for RETR */
    uint32_t limit;
    size_t out_cap;            /* 0: a random size from 1 to 80 per call */
    bool stop_at_limit;        /* stop feeding once the limit is reached, as the session may */
};

struct run_result {
    struct bytes out;
    uint64_t unstuffed;
    bool limit_reached;
};

/* Each call gets an exactly sized heap buffer so ASan catches any overrun. */
static size_t pick_cap(const struct run_opts *o, uint64_t *rng)
{
    return o->out_cap != 0 ? o->out_cap : 1 + (size_t)(rng_next(rng) % 80);
}

static void feed_segment(struct dot_stream *ds, const struct run_opts *o, uint64_t *rng,
                         const char *in, size_t len, struct run_result *r)
{
    while (len > 0) {
        if (o->stop_at_limit && dot_stream_limit_reached(ds))
            return;
        size_t cap = pick_cap(o, rng);
        char *buf = malloc(cap);
        assert_non_null(buf);
        size_t out_len = 12345;
        size_t used = dot_stream_feed(ds, in, len, buf, cap, &out_len);
        assert_true(used <= len);
        assert_true(out_len <= cap);
        assert_true(used > 0 || out_len > 0);
        bytes_append(&r->out, buf, out_len);
        free(buf);
        in += used;
        len -= used;
    }
}

static void finish(struct dot_stream *ds, const struct run_opts *o, uint64_t *rng, struct run_result *r)
{
    for (;;) {
        size_t cap = pick_cap(o, rng);
        char *buf = malloc(cap);
        assert_non_null(buf);
        size_t out_len = 12345;
        bool done = dot_stream_finish(ds, buf, cap, &out_len);
        assert_true(out_len <= cap);
        assert_true(done || out_len > 0);
        bytes_append(&r->out, buf, out_len);
        free(buf);
        if (done)
            break;
    }
    /* Finishing again writes nothing more. */
    char one;
    size_t out_len = 12345;
    assert_true(dot_stream_finish(ds, &one, 1, &out_len));
    assert_int_equal(out_len, 0);
}

/* Feeds in chunks ending at cuts[] (ascending); the header boundary always
 * cuts too, since the limit is set between two feeds. */
static struct run_result run(const char *in, size_t len, const struct run_opts *o,
                             const size_t *cuts, size_t ncuts, uint64_t rng)
{
    struct dot_stream ds;
    struct run_result r = { 0 };
    size_t pos = 0;
    bool limit_set = false;

    bytes_append(&r.out, "", 0);
    dot_stream_init(&ds, o->nul);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        for (;;) {
            if (!limit_set && pos == o->header_len) {
                dot_stream_limit_lines(&ds, o->limit);
                limit_set = true;
            }
            if (pos >= end)
                break;
            size_t seg_end = (!limit_set && o->header_len < end) ? o->header_len : end;
            feed_segment(&ds, o, &rng, in + pos, seg_end - pos, &r);
            pos = seg_end;
        }
    }
    r.limit_reached = dot_stream_limit_reached(&ds);
    finish(&ds, o, &rng, &r);
    r.unstuffed = ds.unstuffed_octets;
    return r;
}

/* ---- reference model --------------------------------------------------- */

/* The CRLF-normalised message: what LIST counts and what un-stuffing RETR's
 * output must give back. Written line by line, independent of the stream. */
static struct bytes ref_normalise(const char *in, size_t len, const struct run_opts *o)
{
    struct bytes b = { 0 };
    size_t i = 0;
    uint32_t body_lines = 0;

    bytes_append(&b, "", 0);
    while (i < len) {
        size_t start = i;
        if (o->header_len != NO_LIMIT && start >= o->header_len && body_lines++ >= o->limit)
            break;
        /* A line ends at LF; a CR right before it is part of the ending,
         * any other CR is text. */
        while (i < len && in[i] != '\n')
            i++;
        size_t end = i < len && i > start && in[i - 1] == '\r' ? i - 1 : i;
        for (size_t k = start; k < end; k++) {
            char c = in[k];
            if (c == '\0' && o->nul == DOT_STREAM_NUL_REPLACE)
                c = (char)0x80;
            bytes_append(&b, &c, 1);
        }
        bytes_append(&b, "\r\n", 2);
        if (i < len)
            i++;
    }
    return b;
}

/* Undoes dot-stuffing of a complete multi-line response, checking its form:
 * every LF preceded by CR (bare CRs are text), every line starting with '.'
 * stuffed, and ".\r\n" last. Returns the message and the number of stuffing
 * dots removed. */
static struct bytes unstuff(const struct bytes *out, size_t *dots)
{
    struct bytes b = { 0 };
    size_t i = 0;

    bytes_append(&b, "", 0);
    *dots = 0;
    for (size_t k = 0; k < out->len; k++) {
        if (out->p[k] == '\n')
            assert_true(k > 0 && out->p[k - 1] == '\r');
    }
    for (;;) {
        assert_true(i < out->len);
        const char *crlf = memchr(out->p + i, '\n', out->len - i);
        assert_non_null(crlf);
        size_t end = (size_t)(crlf - out->p) - 1;     /* the CR */
        if (end == i + 1 && out->p[i] == '.') {
            assert_int_equal(end + 2, out->len);      /* terminator is last */
            return b;
        }
        if (out->p[i] == '.') {
            assert_true(out->p[i + 1] == '.');
            (*dots)++;
            i++;
        }
        bytes_append(&b, out->p + i, end - i + 2);
        i = end + 2;
    }
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs whole and byte by byte with every fixed output size, then in `splits`
 * random splits with random output sizes; checks each run against the
 * reference and the first run. Returns the first run's result. */
static struct run_result check_all(const char *in, size_t len, const struct run_opts *base, int splits)
{
    struct bytes norm = ref_normalise(in, len, base);
    struct run_result first = { 0 };
    bool have_first = false;
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    uint64_t rng = SPLIT_SEED ^ (uint64_t)len;

    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;

    size_t nfixed = sizeof(fixed_caps) / sizeof(fixed_caps[0]);
    size_t total = 2 * nfixed + (size_t)splits;
    for (size_t n = 0; n < total; n++) {
        struct run_opts o = *base;
        struct run_result r;
        if (n < 2 * nfixed) {
            o.out_cap = fixed_caps[n / 2];
            o.stop_at_limit = (n % 4) == 1;
            r = run(in, len, &o, cuts, n % 2 ? len : 0, rng);
        } else {
            o.out_cap = 0;
            o.stop_at_limit = n % 2;
            size_t ncuts = len == 0 ? 0 : (size_t)(rng_next(&rng) % (len < 24 ? len : 24));
            size_t *rc = malloc((ncuts + 1) * sizeof(*rc));
            assert_non_null(rc);
            for (size_t k = 0; k < ncuts; k++)
                rc[k] = (size_t)(rng_next(&rng) % (len + 1));
            qsort(rc, ncuts, sizeof(*rc), cmp_size);
            r = run(in, len, &o, rc, ncuts, rng_next(&rng));
            free(rc);
        }

        size_t dots;
        struct bytes back = unstuff(&r.out, &dots);
        assert_int_equal(back.len, norm.len);
        assert_memory_equal(back.p, norm.p, norm.len);
        assert_int_equal(r.unstuffed, norm.len);
        assert_int_equal(r.unstuffed, r.out.len - dots - 3);
        free(back.p);

        if (!have_first) {
            first = r;
            have_first = true;
            continue;
        }
        assert_int_equal(r.out.len, first.out.len);
        assert_memory_equal(r.out.p, first.out.p, first.out.len);
        assert_int_equal(r.unstuffed, first.unstuffed);
        assert_int_equal(r.limit_reached, first.limit_reached);
        free(r.out.p);
    }
    free(cuts);
    free(norm.p);
    return first;
}

static void expect_out(const char *in, size_t len, const struct run_opts *o,
                       const char *expected, size_t expected_len)
{
    struct run_result r = check_all(in, len, o, RANDOM_SPLITS);
    assert_int_equal(r.out.len, expected_len);
    assert_memory_equal(r.out.p, expected, expected_len);
    free(r.out.p);
}

static const struct run_opts retr_replace = { DOT_STREAM_NUL_REPLACE, NO_LIMIT, 0, 0, false };
static const struct run_opts retr_pass = { DOT_STREAM_NUL_PASS, NO_LIMIT, 0, 0, false };

#define RETR(in, out) expect_out(in, sizeof(in) - 1, &retr_replace, out, sizeof(out) - 1)

static void test_line_endings(void **state)
{
    (void)state;
    RETR("a\nb\n", "a\r\nb\r\n.\r\n");
    RETR("a\r\nb\r\n", "a\r\nb\r\n.\r\n");
    /* Bare CRs are text, sent as stored (as Dovecot's, Cyrus's and Courier's
     * own POP3 servers do); a message ending in one gets CRLF after it. */
    RETR("a\rb\r", "a\rb\r\r\n.\r\n");
    RETR("a\r\n\rb\n\r\nc", "a\r\n\rb\r\n\r\nc\r\n.\r\n");
    RETR("\n\r", "\r\n\r\r\n.\r\n");
    RETR("x\r\r", "x\r\r\r\n.\r\n");
    /* Courier serves a CRLF-stored file as CR CR LF lines: they pass. */
    RETR("\r\r\n\n", "\r\r\n\r\n.\r\n");
    RETR("Subject: s\r\r\nTo: t\r\r\n\r\r\nbody\r\r\n",
         "Subject: s\r\r\nTo: t\r\r\n\r\r\nbody\r\r\n.\r\n");
    /* A bare CR is not a line start: no stuffing after it. */
    RETR("a\r.b\n", "a\r.b\r\n.\r\n");
    RETR("\r.\r\n", "\r.\r\n.\r\n");
}

static void test_bare_cr_counts_as_sent(void **state)
{
    (void)state;
    /* LIST must equal the octets RETR sends before stuffing: a bare CR is one
     * octet, a final one gets the CRLF the message lacked. */
    struct run_result r = check_all("a\rb\r\n", 5, &retr_replace, 0);
    assert_int_equal(r.unstuffed, 5);
    free(r.out.p);
    r = check_all("x\r", 2, &retr_replace, 0);
    assert_int_equal(r.unstuffed, 4);
    free(r.out.p);
    r = check_all("h\r\r\n", 4, &retr_replace, 0);
    assert_int_equal(r.unstuffed, 4);
    free(r.out.p);
}

static void test_dot_stuffing(void **state)
{
    (void)state;
    RETR(".\r\n..\r\n", "..\r\n...\r\n.\r\n");
    RETR(".", "..\r\n.\r\n");
    RETR(".\n", "..\r\n.\r\n");
    RETR("a.\n.b\r.\r\n x.", "a.\r\n..b\r.\r\n x.\r\n.\r\n");
    RETR("a.\n.b\n.\r\n x.", "a.\r\n..b\r\n..\r\n x.\r\n.\r\n");
    RETR("\r\n.\r\n", "\r\n..\r\n.\r\n");
}

static void test_no_final_newline_and_empty(void **state)
{
    (void)state;
    RETR("abc", "abc\r\n.\r\n");
    RETR("", ".\r\n");
    RETR("\r\n", "\r\n.\r\n");

    struct run_result r = check_all("abc", 3, &retr_replace, 0);
    /* LIST must say 5: the added CRLF is part of the message RETR sends. */
    assert_int_equal(r.unstuffed, 5);
    free(r.out.p);
    r = check_all("", 0, &retr_replace, 0);
    assert_int_equal(r.unstuffed, 0);
    free(r.out.p);
}

static void test_nul_policies(void **state)
{
    (void)state;
    static const char in[] = "a\0b\n\0.\n.\0\n";
    static const char replaced[] = "a\x80" "b\r\n\x80.\r\n..\x80\r\n.\r\n";
    static const char passed[] = "a\0b\r\n\0.\r\n..\0\r\n.\r\n";

    expect_out(in, sizeof(in) - 1, &retr_replace, replaced, sizeof(replaced) - 1);
    expect_out(in, sizeof(in) - 1, &retr_pass, passed, sizeof(passed) - 1);
}

static void test_long_lines(void **state)
{
    (void)state;
    size_t len = 5000 + 1 + 1 + 3000;
    char *in = malloc(len);
    assert_non_null(in);
    memset(in, 'x', 5000);
    in[5000] = '\n';
    in[5001] = '.';
    memset(in + 5002, 'y', 3000);

    struct run_result r = check_all(in, len, &retr_replace, 40);
    assert_int_equal(r.out.len, 5000 + 2 + 1 + 1 + 3000 + 2 + 3);
    assert_int_equal(r.unstuffed, 5000 + 2 + 1 + 3000 + 2);
    assert_memory_equal(r.out.p + 5000, "\r\n..yyy", 7);
    free(r.out.p);
    free(in);
}

static const char top_msg[] = "H1: a\r\nH2: .b\r\n\r\nl1\n.l2\r\nl3\rl4";
#define TOP_HEADER_LEN 17

static void expect_top(uint32_t limit, const char *expected, bool reached)
{
    struct run_opts o = { DOT_STREAM_NUL_REPLACE, TOP_HEADER_LEN, limit, 0, false };
    struct run_result r = check_all(top_msg, sizeof(top_msg) - 1, &o, RANDOM_SPLITS);
    assert_string_equal(r.out.p, expected);
    assert_int_equal(r.limit_reached, reached);
    free(r.out.p);
}

static void test_top_limits(void **state)
{
    (void)state;
    assert_memory_equal(top_msg + TOP_HEADER_LEN - 4, "\r\n\r\n", 4);
    expect_top(0, "H1: a\r\nH2: .b\r\n\r\n.\r\n", true);
    expect_top(1, "H1: a\r\nH2: .b\r\n\r\nl1\r\n.\r\n", true);
    expect_top(2, "H1: a\r\nH2: .b\r\n\r\nl1\r\n..l2\r\n.\r\n", true);
    /* The partial last line counts as a line and still gets its CRLF; the
     * bare CR inside it is text, not a line end. */
    expect_top(3, "H1: a\r\nH2: .b\r\n\r\nl1\r\n..l2\r\nl3\rl4\r\n.\r\n", false);
    expect_top(99999999, "H1: a\r\nH2: .b\r\n\r\nl1\r\n..l2\r\nl3\rl4\r\n.\r\n", false);
}

static void test_top_edge_cases(void **state)
{
    (void)state;
    /* Limit set at the very start: TOP with no header. */
    struct run_opts o = { DOT_STREAM_NUL_REPLACE, 0, 0, 0, false };
    static const char two[] = "a\nb\n";
    expect_out(two, 4, &o, ".\r\n", 3);
    o.limit = 1;
    expect_out(two, 4, &o, "a\r\n.\r\n", 6);

    /* The header's CR and its LF arrive on either side of the limit. */
    static const char split_crlf[] = "H\r\nb\nc\n";
    o = (struct run_opts){ DOT_STREAM_NUL_REPLACE, 2, 1, 0, false };
    expect_out(split_crlf, 7, &o, "H\r\nb\r\n.\r\n", 9);

    /* The limit is reached at the CR of a CRLF; the LF after it must not
     * start another line. */
    static const char cr_end[] = "H\n\nb\r\nc\n";
    o = (struct run_opts){ DOT_STREAM_NUL_REPLACE, 3, 1, 0, false };
    expect_out(cr_end, 8, &o, "H\r\n\r\nb\r\n.\r\n", 11);

    /* Courier: a header of CR CR LF lines ends in a lone CR when it has no
     * blank line after it. TOP n 0 finishes that line as RETR sends it, with
     * no invented blank line; the LF that completes it in the text does not
     * count as a body line. */
    static const char lone_cr[] = "S: x\r";
    o = (struct run_opts){ DOT_STREAM_NUL_REPLACE, 5, 0, 0, false };
    expect_out(lone_cr, 5, &o, "S: x\r\r\n.\r\n", 10);
    static const char cr_then_text[] = "S: x\r\nb1\nb2\n";
    o = (struct run_opts){ DOT_STREAM_NUL_REPLACE, 5, 0, 0, false };
    expect_out(cr_then_text, 13, &o, "S: x\r\n.\r\n", 9);
    o.limit = 1;
    expect_out(cr_then_text, 13, &o, "S: x\r\nb1\r\n.\r\n", 13);

    /* Empty message under a limit. */
    o = (struct run_opts){ DOT_STREAM_NUL_REPLACE, 0, 5, 0, false };
    expect_out("", 0, &o, ".\r\n", 3);
}

static void test_tiny_output_buffers(void **state)
{
    (void)state;
    static const char in[] = ".\n..\r\nab\rc";
    static const char want[] = "..\r\n...\r\nab\rc\r\n.\r\n";

    const size_t no_cuts[1] = { 0 };

    for (size_t cap = 1; cap <= 3; cap++) {
        struct run_opts o = retr_replace;
        o.out_cap = cap;
        struct run_result r = run(in, sizeof(in) - 1, &o, no_cuts, 0, 1);
        assert_int_equal(r.out.len, sizeof(want) - 1);
        assert_memory_equal(r.out.p, want, sizeof(want) - 1);
        assert_int_equal(r.unstuffed, sizeof(want) - 1 - 2 - 3);
        free(r.out.p);
    }

    /* finish() alone, one byte at a time: "\r\n" then ".\r\n". */
    struct dot_stream ds;
    char out[1];
    size_t n;
    dot_stream_init(&ds, DOT_STREAM_NUL_REPLACE);
    assert_int_equal(dot_stream_feed(&ds, "x", 1, out, 1, &n), 1);
    assert_int_equal(n, 1);
    static const char tail[] = "\r\n.\r\n";
    for (size_t k = 0; k < 5; k++) {
        bool done = dot_stream_finish(&ds, out, 1, &n);
        assert_int_equal(n, 1);
        assert_int_equal(out[0], tail[k]);
        assert_int_equal(done, k == 4);
    }
}

/* Whatever the feeds left pending, DOT_STREAM_FINISH_MAX bytes finish in one
 * call: the session relies on it to write the tail without a loop. */
static void test_finish_fits_in_max(void **state)
{
    (void)state;
    static const char *const inputs[] = { "abc", "ab\n", "", "a\r", "..", "x\r\n", "\n" };

    for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
        for (size_t cap = 1; cap <= 4; cap++) {
            struct dot_stream ds;
            struct bytes got = { 0 };
            const char *in = inputs[k];
            size_t len = strlen(in);
            char *buf = malloc(cap);
            assert_non_null(buf);

            bytes_append(&got, "", 0);
            dot_stream_init(&ds, DOT_STREAM_NUL_REPLACE);
            while (len > 0) {
                size_t n;
                size_t used = dot_stream_feed(&ds, in, len, buf, cap, &n);
                bytes_append(&got, buf, n);
                in += used;
                len -= used;
            }
            free(buf);
            char tail[DOT_STREAM_FINISH_MAX];
            size_t n;
            assert_true(dot_stream_finish(&ds, tail, sizeof(tail), &n));
            bytes_append(&got, tail, n);

            struct bytes want = ref_normalise(inputs[k], strlen(inputs[k]), &retr_replace);
            size_t dots;
            struct bytes back = unstuff(&got, &dots);
            assert_int_equal(back.len, want.len);
            assert_memory_equal(back.p, want.p, want.len);
            free(back.p);
            free(want.p);
            free(got.p);
        }
    }
}

/* Random messages over an alphabet rich in the bytes that matter; each is run
 * in many splits and checked against the reference normaliser, with and
 * without a TOP limit at a random line boundary. */
static void test_property_unstuff_gives_normalised(void **state)
{
    (void)state;
    static const char alphabet[] = { 'a', 'b', '.', '.', '\r', '\n', '\n', '\0', ' ', (char)0x80 };
    uint64_t rng = 12345;

    for (int m = 0; m < 300; m++) {
        size_t len = (size_t)(rng_next(&rng) % 200);
        char *in = malloc(len + 1);
        assert_non_null(in);
        for (size_t i = 0; i < len; i++)
            in[i] = alphabet[rng_next(&rng) % sizeof(alphabet)];

        struct run_opts o = { (rng_next(&rng) & 1) ? DOT_STREAM_NUL_PASS : DOT_STREAM_NUL_REPLACE,
                              NO_LIMIT, 0, 0, false };
        struct run_result r = check_all(in, len, &o, 20);
        free(r.out.p);

        /* Line boundaries: 0 and every position just after a CR or LF. */
        size_t bounds[201], nb = 0;
        bounds[nb++] = 0;
        for (size_t i = 0; i < len; i++)
            if (in[i] == '\r' || in[i] == '\n')
                bounds[nb++] = i + 1;
        o.header_len = bounds[rng_next(&rng) % nb];
        o.limit = (uint32_t)(rng_next(&rng) % 6);
        r = check_all(in, len, &o, 20);
        free(r.out.p);
        free(in);
    }
}

/* The fast path copies runs of clean CRLF lines and finds the bytes that end
 * them 16 at a time: put each such byte at every offset of a long line,
 * between clean lines, with and without a TOP limit inside the clean run. */
static void test_special_at_every_offset(void **state)
{
    (void)state;
    static const char *const specials[] = { "\r", "\n", "\0", "\r\n.", "\n.", "\r\r\n", "." };
    static const char clean[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ\r\n";
    const size_t clean_len = sizeof(clean) - 1;

    for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
        size_t slen = strlen(specials[k]) + (specials[k][0] == '\0');
        for (size_t at = 0; at <= clean_len - 2; at++) {
            /* Three clean lines, the third with the special byte(s) at `at`,
             * then two more clean lines. */
            char in[6 * sizeof(clean)];
            size_t len = 0;
            for (int l = 0; l < 2; l++, len += clean_len)
                memcpy(in + len, clean, clean_len);
            memcpy(in + len, clean, at);
            memcpy(in + len + at, specials[k], slen);
            memcpy(in + len + at + slen, clean + at, clean_len - at);
            len += clean_len + slen;
            for (int l = 0; l < 2; l++, len += clean_len)
                memcpy(in + len, clean, clean_len);

            struct run_opts o = { k % 2 ? DOT_STREAM_NUL_PASS : DOT_STREAM_NUL_REPLACE, NO_LIMIT, 0, 0,
                                  false };
            struct run_result r = check_all(in, len, &o, 4);
            free(r.out.p);
            o.header_len = clean_len;
            o.limit = (uint32_t)(at % 4);
            r = check_all(in, len, &o, 4);
            free(r.out.p);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_bare_cr_counts_as_sent),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_no_final_newline_and_empty),
        cmocka_unit_test(test_nul_policies),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_top_limits),
        cmocka_unit_test(test_top_edge_cases),
        cmocka_unit_test(test_tiny_output_buffers),
        cmocka_unit_test(test_finish_fits_in_max),
        cmocka_unit_test(test_property_unstuff_gives_normalised),
        cmocka_unit_test(test_special_at_every_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
