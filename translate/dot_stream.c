/* POP3 multi-line encoder (CRLF normalisation, dot-stuffing); the contract is
 * in dot_stream.h. On the RETR hot path: ordinary bytes are found with a
 * table-driven scan and copied in runs, so a 50 MB message costs a few memcpy
 * calls per line, not a call per byte. */
#include "dot_stream.h"

#include <string.h>

/* Bytes that end a run of ordinary bytes. '.' is not among them: it matters
 * only at the start of a line, which the main loop handles before a run. */
static const bool special_nul_replace[256] = { ['\0'] = true, ['\r'] = true, ['\n'] = true };
static const bool special_nul_pass[256] = { ['\r'] = true, ['\n'] = true };

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
}

bool dot_stream_limit_reached(const struct dot_stream *ds)
{
    return ds->limit_active && ds->lines_left == 0;
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
    if (ds->limit_active && ds->lines_left > 0)
        ds->lines_left--;
}

size_t dot_stream_feed(struct dot_stream *ds, const char *in, size_t in_len,
                       char *out, size_t out_cap, size_t *out_len)
{
    const bool *special = ds->nul == DOT_STREAM_NUL_PASS ? special_nul_pass : special_nul_replace;
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

        char c = in[i];
        if (c == '\n' || c == '\r') {
            bool lf_after_cr = c == '\n' && ds->pending_cr;
            /* A CR ends its line at once (so a TOP limit can be reached
             * without waiting for the next byte); an LF right after it is
             * the same line ending. */
            ds->pending_cr = c == '\r';
            i++;
            if (!lf_after_cr)
                emit_line_end(ds, out, out_cap, &o);
            continue;
        }
        ds->pending_cr = false;

        if (ds->at_line_start) {
            ds->at_line_start = false;
            if (c == '.') {
                out[o++] = '.';
                if (o == out_cap)
                    break;
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
        size_t j = i + 1;
        while (j < end && !special[(unsigned char)in[j]])
            j++;
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

    if (flush_carry(ds, out, out_cap, &o) && !ds->finished && o < out_cap) {
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
