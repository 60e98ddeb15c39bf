/* Fuzz target: the dot-stuffing stream (translate/dot_stream.h).
 *
 * The input is a message as the IMAP server hands it out. The NUL policy and
 * a TOP line limit (or none) are chosen from the input's hash. Properties:
 * 1. Un-stuffing the output (drop the final ".\r\n", remove one leading '.'
 *    from each line) gives the input as a plain reference normaliser writes
 *    it (a line ends at LF, a CR before it is part of the ending, a bare LF
 *    becomes CRLF, a bare CR is text and passes, NUL per policy, a final
 *    CRLF added when missing), cut to the TOP limit; every line that starts
 *    with '.' was stuffed, so no body line reads as the terminator; and
 *    unstuffed_octets counts exactly the normalised bytes.
 * 2. Feeding one byte at a time into a one-byte output, and feeding chunks
 *    split where the hash says into outputs of random sizes, give output
 *    byte-identical to one call with room for everything.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dot_stream.h"
#include "fuzz_input.h"

struct options {
    enum dot_stream_nul nul;
    bool limit;
    uint32_t lines;
};

/* The contract in the plainest terms: normalise, then keep the first
 * opt->lines lines for TOP. out has room for 2 * len + 2 bytes: each input
 * byte becomes at most two, plus the final CRLF. Returns the length. */
static size_t reference_normalise(const char *in, size_t len, const struct options *opt, char *out)
{
    size_t o = 0;
    bool line_start = true;
    uint64_t lines = 0;

    for (size_t i = 0; i < len; i++) {
        if (opt->limit && lines == opt->lines)
            return o;
        char c = in[i];
        if (c == '\r' && i + 1 < len && in[i + 1] == '\n')
            continue;   /* the LF ends the line */
        if (c == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
            line_start = true;
            lines++;
            continue;
        }
        out[o++] = (c == '\0' && opt->nul == DOT_STREAM_NUL_REPLACE) ? (char)0x80 : c;
        line_start = false;
    }
    if (!line_start) {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    return o;
}

/* Property 1. body/len: the stream's output; want/want_len: the normalised
 * input. Un-stuffs in place of a copy in scratch (at least len bytes). */
static void check_unstuffed(const char *body, size_t len, const char *want, size_t want_len,
                            char *scratch)
{
    FUZZ_CHECK(len >= 3 && memcmp(body + len - 3, ".\r\n", 3) == 0);
    len -= 3;
    FUZZ_CHECK(len == 0 || (len >= 2 && body[len - 2] == '\r' && body[len - 1] == '\n'));

    size_t o = 0, i = 0;
    while (i < len) {
        /* Every LF in the body ends a line and has its CR; other CRs are
         * text. */
        const char *lf = memchr(body + i, '\n', len - i);
        FUZZ_CHECK(lf != NULL && lf > body + i && lf[-1] == '\r');
        size_t end = (size_t)(lf - body) - 1;
        if (body[i] == '.' && i < end) {
            FUZZ_CHECK(end - i >= 2 && body[i + 1] == '.');
            i++;
        }
        memcpy(scratch + o, body + i, end + 2 - i);
        o += end + 2 - i;
        i = end + 2;
    }
    FUZZ_CHECK(o == want_len && memcmp(scratch, want, o) == 0);
}

static void stream_start(struct dot_stream *ds, const struct options *opt)
{
    dot_stream_init(ds, opt->nul);
    if (opt->limit)
        dot_stream_limit_lines(ds, opt->lines);
}

/* Feeds in chunks of in_max bytes into outputs of out_max bytes, or of sizes
 * drawn from rng when it is not NULL; appends to out, out_cap bytes. */
static size_t run_split(const char *in, size_t len, const struct options *opt, struct fuzz_rng *rng,
                        size_t in_max, size_t out_max, char *out, size_t out_cap, uint64_t *octets)
{
    struct dot_stream ds;
    size_t pos = 0, o = 0;
    char buf[64];   /* the output window; random sizes are drawn up to its size */

    stream_start(&ds, opt);
    while (pos < len) {
        size_t chunk = rng ? fuzz_chunk_len(rng, len - pos) : len - pos;
        if (chunk > in_max)
            chunk = in_max;
        size_t cap = rng ? fuzz_rng_range(rng, 1, sizeof buf) : out_max;
        size_t n;
        size_t used = dot_stream_feed(&ds, in + pos, chunk, buf, cap, &n);
        FUZZ_CHECK(used <= chunk && n <= cap);
        FUZZ_CHECK(used > 0 || n > 0);
        FUZZ_CHECK(n <= out_cap - o);
        memcpy(out + o, buf, n);
        o += n;
        pos += used;
    }
    for (;;) {
        size_t cap = rng ? fuzz_rng_range(rng, 1, DOT_STREAM_FINISH_MAX) : out_max;
        size_t n;
        bool done = dot_stream_finish(&ds, buf, cap, &n);
        FUZZ_CHECK(n <= cap && n <= out_cap - o);
        memcpy(out + o, buf, n);
        o += n;
        if (done)
            break;
        FUZZ_CHECK(n > 0);
    }
    *octets = ds.unstuffed_octets;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    uint64_t h = fuzz_hash(data, size);
    struct options opt = {
        .nul = (h & 1) ? DOT_STREAM_NUL_PASS : DOT_STREAM_NUL_REPLACE,
        .limit = (h >> 1) & 1,
        /* TOP counts are small in practice; 0 sends the headers only. */
        .lines = (uint32_t)((h >> 8) % 16),
    };
    /* Each input byte gives at most two output bytes (a stuffed '.', or a
     * line end), then the final CRLF and ".\r\n". */
    size_t cap = 2 * size + DOT_STREAM_FINISH_MAX;
    char *want = malloc(2 * size + 2);
    char *whole = malloc(cap);
    char *split = malloc(cap);
    FUZZ_CHECK(want && whole && split);

    /* One call with room for everything. */
    struct dot_stream ds;
    size_t n, fin;
    stream_start(&ds, &opt);
    FUZZ_CHECK(dot_stream_feed(&ds, in, size, whole, cap, &n) == size);
    FUZZ_CHECK(n <= 2 * size);
    uint64_t lines_ended = 0;
    for (size_t i = 0; i < size; i++)
        lines_ended += in[i] == '\n';
    FUZZ_CHECK(dot_stream_limit_reached(&ds) == (opt.limit && lines_ended >= opt.lines));
    FUZZ_CHECK(dot_stream_finish(&ds, whole + n, DOT_STREAM_FINISH_MAX, &fin));
    n += fin;
    uint64_t octets = ds.unstuffed_octets;

    size_t want_len = reference_normalise(in, size, &opt, want);
    FUZZ_CHECK(octets == want_len);
    check_unstuffed(whole, n, want, want_len, split);

    /* Property 2. */
    uint64_t split_octets;
    struct fuzz_rng rng;
    size_t m = run_split(in, size, &opt, NULL, 1, 1, split, cap, &split_octets);
    FUZZ_CHECK(m == n && memcmp(split, whole, n) == 0 && split_octets == octets);
    fuzz_rng_init(&rng, h);
    m = run_split(in, size, &opt, &rng, SIZE_MAX, 0, split, cap, &split_octets);
    FUZZ_CHECK(m == n && memcmp(split, whole, n) == 0 && split_octets == octets);

    free(want);
    free(whole);
    free(split);
    return 0;
}
