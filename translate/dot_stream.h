/* dot_stream: turns raw message bytes into the POP3 multi-line form (RFC 1939).
 * Pure and restartable: fed in any split, it produces byte-identical output.
 *
 * Output rules (README "What RETR sends"): the message goes out as the
 * upstream stores it, but in the POP3 form:
 * - a line ends in CRLF or in a bare LF, which becomes CRLF; a bare CR (one no
 *   LF follows, as in the CR CR LF lines Courier serves) is message text and
 *   passes unchanged: rewriting it corrupts headers and breaks signatures,
 *   and no native POP3 server does it;
 * - a line starting with '.' gets one more '.' (dot-stuffing);
 * - NUL bytes are passed or replaced by 0x80 (DOT_STREAM_NUL_REPLACE, the default,
 *   the same byte Dovecot's IMAP BODY[] uses);
 * - dot_stream_finish() adds a final CRLF if the message did not end with one
 *   (a message ending in a bare CR keeps it: "\r\r\n", as Dovecot sends it),
 *   then the terminating ".\r\n".
 * - optional line limit for TOP: after dot_stream_limit_lines(n), at most n more
 *   lines are emitted (a line ends in CRLF or LF; a final partial line counts as
 *   a line) and the rest of the
 *   input is consumed and dropped; dot_stream_limit_reached() tells when the
 *   caller can stop fetching.
 *
 * It counts the octets of the normalised message before stuffing
 * (unstuffed_octets), the figure LIST must report, so the gateway can learn the
 * exact size of a message the first time it streams it.
 */
#ifndef POPGATE_DOT_STREAM_H
#define POPGATE_DOT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dot_stream_nul { DOT_STREAM_NUL_REPLACE = 0, DOT_STREAM_NUL_PASS };

struct dot_stream {
    enum dot_stream_nul nul;
    bool at_line_start;
    bool pending_cr;           /* a CR consumed but not yet sent: an LF after it makes it a line end */
    bool limit_active;
    bool line_before_limit;    /* the open line began before the TOP limit was set: it does not count */
    bool finished;
    uint32_t lines_left;       /* with limit_active */
    uint64_t unstuffed_octets; /* normalised octets emitted, excluding stuffing dots and the final ".\r\n" */
    /* Bytes produced but not yet copied out because the output was full: the
     * tail of one "\r\n" or ".\r\n" piece, at most 2 bytes, so any output
     * size >= 1 makes progress. */
    char carry[4];
    uint8_t carry_len;
};

void dot_stream_init(struct dot_stream *ds, enum dot_stream_nul nul);

/* Consume input into out (capacity out_cap >= 1). Returns bytes of input
 * consumed; *out_len gets bytes written. Stops when input is used up or out is
 * full; each call with input left consumes or writes at least one byte. Once
 * the TOP limit is reached all input is consumed and nothing more written. Not
 * to be called after dot_stream_finish(). */
size_t dot_stream_feed(struct dot_stream *ds, const char *in, size_t in_len,
                       char *out, size_t out_cap, size_t *out_len);

/* Start counting lines for TOP from here: lines that begin after this point
 * count; a line still open here (a header ending in a lone CR) is finished
 * without counting. */
void dot_stream_limit_lines(struct dot_stream *ds, uint32_t lines);
bool dot_stream_limit_reached(const struct dot_stream *ds);

/* What dot_stream_finish() can still have to write: a carried "\r\n" tail (2)
 * then ".\r\n" (3), or a held-back bare CR (1), the missing final "\r\n" and
 * ".\r\n" (a carry and a held CR never come together). */
#define DOT_STREAM_FINISH_MAX 6

/* Emit the missing final CRLF and ".\r\n". Returns true once all of it has
 * been written; call again with more room while it returns false. With
 * out_cap >= DOT_STREAM_FINISH_MAX one call always completes. */
bool dot_stream_finish(struct dot_stream *ds, char *out, size_t out_cap, size_t *out_len);

#endif
