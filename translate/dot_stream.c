/* POP3 multi-line encoder (CRLF normalisation, dot-stuffing); the contract is
 * in dot_stream.h.
 *
 * On the RETR hot path almost every line already ends in CRLF and needs
 * nothing done. find_special() looks for the next CR, LF or (when replaced)
 * NUL 16 bytes at a time, and copy_clean_lines() copies whole runs of such
 * lines with one memcpy: a fraction of a cycle per byte, where a loop over
 * bytes costs more than one. Everything else (a '.' to stuff, a bare CR or LF,
 * a NUL, a line cut by the end of the input) takes the byte-level path of
 * dot_stream_feed(), which copies the ordinary bytes between them in runs. */
#include "dot_stream.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bytes that end a run of ordinary bytes. '.' is not among them: it matters
 * only at the start of a line, which the main loop handles before a run. */
static const bool special_nul_replace[256] = { ['\0'] = true, ['\r'] = true, ['\n'] = true };
static const bool special_nul_pass[256] = { ['\r'] = true, ['\n'] = true };

/* Offset of the first special byte (CR, LF, and NUL when nul is REPLACE) in
 * p[0..n), or n if there is none. */
static size_t find_special(const char *p, size_t n, enum dot_stream_nul nul)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    const __m128i zero = _mm_setzero_si128();
    const bool check_nul = nul == DOT_STREAM_NUL_REPLACE;
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf));
        if (check_nul)
            hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, zero));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        if (mask != 0)
            return i + (size_t)__builtin_ctz(mask);
    }
#endif
    const bool *special = nul == DOT_STREAM_NUL_PASS ? special_nul_pass : special_nul_replace;
    while (i < n && !special[(unsigned char)p[i]])
        i++;
    return i;
}

/* Dovecot's IMAP BODY[] substitute for NUL; old clients hang on a raw NUL. */
#define NUL_SUBSTITUTE ((char)0x80)

void dot_stream_init(struct dot_stream *ds, enum dot_stream_nul nul)
{
    memset(ds, 0, sizeof(*ds));
    ds->nul = nul;
    ds->at_line_start = true;
}

void dot_stream_limit_lines(struct dot_stream *ds, uint32_t lines)
{
    ds->limit_active = true;
    ds->lines_left = lines;
    /* A header that ends in a lone CR (Courier serves CRLF files as CR CR LF
     * lines) leaves its last line open: it is finished, uncounted. */
    ds->line_before_limit = !ds->at_line_start || ds->pending_cr;
}

bool dot_stream_limit_reached(const struct dot_stream *ds)
{
    return ds->limit_active && ds->lines_left == 0 && !ds->line_before_limit;
}

/* Copies out as much of the carry as fits; true when the carry is empty. */
static bool flush_carry(struct dot_stream *ds, char *out, size_t out_cap, size_t *o)
{
    size_t n = out_cap - *o;

    if (n > ds->carry_len)
        n = ds->carry_len;
    memcpy(out + *o, ds->carry, n);
    *o += n;
    memmove(ds->carry, ds->carry + n, ds->carry_len - n);
    ds->carry_len = (uint8_t)(ds->carry_len - n);
    return ds->carry_len == 0;
}

/* Writes a piece of at most sizeof(carry) - 1 bytes; what does not fit waits in
 * the carry. Called only with an empty carry and room for at least one byte. */
static void emit_piece(struct dot_stream *ds, const char *piece, size_t len,
                       char *out, size_t out_cap, size_t *o)
{
    size_t n = out_cap - *o;

    if (n > len)
        n = len;
    memcpy(out + *o, piece, n);
    *o += n;
    memcpy(ds->carry, piece + n, len - n);
    ds->carry_len = (uint8_t)(len - n);
}

static void emit_line_end(struct dot_stream *ds, char *out, size_t out_cap, size_t *o)
{
    emit_piece(ds, "\r\n", 2, out, out_cap, o);
    ds->unstuffed_octets += 2;
    ds->at_line_start = true;
    if (ds->line_before_limit)
        ds->line_before_limit = false;
    else if (ds->limit_active && ds->lines_left > 0)
        ds->lines_left--;
}

/* A CR that no LF follows: one octet of the line, not its end. */
static void emit_bare_cr(struct dot_stream *ds, char *out, size_t out_cap, size_t *o)
{
    emit_piece(ds, "\r", 1, out, out_cap, o);
    ds->unstuffed_octets++;
    ds->at_line_start = false;
}

/* Copies the longest prefix of in[0..len) made of whole lines that pass
 * through unchanged: each ends in CRLF, holds no other CR, no LF and (when
 * NULs are replaced) no NUL, and, if it starts a line, does not start with
 * '.'. The first line may be the rest of a line begun in an earlier call.
 * Called with no CR pending; len is at most the room left in out. Returns
 * the bytes copied, 0 when the input does not start with such a line. */
static size_t copy_clean_lines(struct dot_stream *ds, const char *in, size_t len, char *out)
{
    bool line_start = ds->at_line_start;
    size_t pos = 0;
    uint32_t lines = 0;
    const uint32_t uncounted = ds->line_before_limit ? 1 : 0;

    while (pos < len) {
        if (line_start && in[pos] == '.')
            break;
        if (ds->limit_active && lines >= uncounted && lines - uncounted == ds->lines_left)
            break;
        size_t end = pos + find_special(in + pos, len - pos, ds->nul);
        /* Clean only if the first special byte is a CR and an LF follows. */
        if (end + 1 >= len || in[end] != '\r' || in[end + 1] != '\n')
            break;
        pos = end + 2;
        lines++;
        line_start = true;
    }
    if (pos == 0)
        return 0;
    memcpy(out, in, pos);
    ds->unstuffed_octets += pos;
    ds->at_line_start = true;
    ds->line_before_limit = false;
    if (ds->limit_active)
        ds->lines_left -= lines - uncounted;
    return pos;
}

size_t dot_stream_feed(struct dot_stream *ds, const char *in, size_t in_len,
                       char *out, size_t out_cap, size_t *out_len)
{
    size_t i = 0, o = 0;

    if (!flush_carry(ds, out, out_cap, &o)) {
        *out_len = o;
        return 0;
    }
    while (i < in_len && o < out_cap) {
        if (dot_stream_limit_reached(ds)) {
            /* TOP: the rest of the message is fetched but not sent. */
            i = in_len;
            break;
        }
        if (!ds->pending_cr) {
            size_t room = out_cap - o;
            size_t n = copy_clean_lines(ds, in + i, in_len - i < room ? in_len - i : room, out + o);
            i += n;
            o += n;
            if (n > 0)
                continue;
        }

        char c = in[i];
        if (ds->pending_cr) {
            ds->pending_cr = false;
            if (c == '\n') {
                i++;
                emit_line_end(ds, out, out_cap, &o);
            } else {
                /* The CR was not a line ending: it is message text, sent as
                 * stored. c is looked at again on the next round. */
                emit_bare_cr(ds, out, out_cap, &o);
            }
            continue;
        }
        if (c == '\r') {
            /* Only the next byte tells whether this CR ends the line. */
            ds->pending_cr = true;
            i++;
            continue;
        }
        if (c == '\n') {
            i++;
            emit_line_end(ds, out, out_cap, &o);
            continue;
        }

        if (ds->at_line_start) {
            ds->at_line_start = false;
            if (c == '.') {
                /* The stuffing dot; the line itself, its own dot first,
                 * goes through the fast path like any other. */
                out[o++] = '.';
                continue;
            }
        }
        if (c == '\0' && ds->nul == DOT_STREAM_NUL_REPLACE) {
            out[o++] = NUL_SUBSTITUTE;
            ds->unstuffed_octets++;
            i++;
            continue;
        }

        /* in[i] is ordinary here: the run has at least one byte. */
        size_t room = out_cap - o;
        size_t end = in_len - i < room ? in_len : i + room;
        size_t j = i + 1 + find_special(in + i + 1, end - i - 1, ds->nul);
        memcpy(out + o, in + i, j - i);
        o += j - i;
        ds->unstuffed_octets += j - i;
        i = j;
    }
    *out_len = o;
    return i;
}

bool dot_stream_finish(struct dot_stream *ds, char *out, size_t out_cap, size_t *out_len)
{
    size_t o = 0;

    if (flush_carry(ds, out, out_cap, &o) && ds->pending_cr && o < out_cap) {
        /* The message ends in a bare CR: it stays, and the line still needs
         * its CRLF ("\r\r\n", as Dovecot's own POP3 sends it). */
        ds->pending_cr = false;
        emit_bare_cr(ds, out, out_cap, &o);
    }
    if (ds->carry_len == 0 && !ds->pending_cr && !ds->finished && o < out_cap) {
        if (!ds->at_line_start) {
            /* A final partial line still counts as a line: LIST sizes include
             * this CRLF, and TOP's limit had room for it. */
            emit_line_end(ds, out, out_cap, &o);
        }
        if (ds->carry_len == 0 && o < out_cap) {
            emit_piece(ds, ".\r\n", 3, out, out_cap, &o);
            ds->finished = true;
        }
    }
    *out_len = o;
    return ds->finished && ds->carry_len == 0;
}
