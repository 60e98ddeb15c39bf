/* dot_stream: turns raw message bytes into the POP3 multi-line form (RFC 1939).
 * Pure and restartable: fed in any split, it produces byte-identical output.
 *
 * Output rules (see DESIGN.md "LIST size and RETR bytes"):
 * - every line ending becomes CRLF: CRLF stays, a bare LF becomes CRLF, a bare
 *   CR (not followed by LF) becomes CRLF;
 * - a line starting with '.' gets one more '.' (dot-stuffing);
 * - NUL bytes are passed or replaced by 0x80 (DOT_STREAM_NUL_REPLACE, the default,
 *   the same byte Dovecot's IMAP BODY[] uses);
 * - dot_stream_finish() adds a final CRLF if the message did not end with one,
 *   then the terminating ".\r\n".
 * - optional line limit for TOP: after dot_stream_limit_lines(n), at most n more
 *   lines are emitted (a final partial line counts as a line) and the rest of the
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
    bool pending_cr;           /* saw CR, waiting to know if LF follows */
    bool limit_active;
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

/* Start counting lines for TOP from here. Call at a line boundary. */
void dot_stream_limit_lines(struct dot_stream *ds, uint32_t lines);
bool dot_stream_limit_reached(const struct dot_stream *ds);

/* What dot_stream_finish() can still have to write: a carried "\r\n" tail (2)
 * then ".\r\n" (3), or the missing final "\r\n" then ".\r\n". */
#define DOT_STREAM_FINISH_MAX 5

/* Emit the missing final CRLF and ".\r\n". Returns true once all of it has
 * been written; call again with more room while it returns false. With
 * out_cap >= DOT_STREAM_FINISH_MAX one call always completes. */
bool dot_stream_finish(struct dot_stream *ds, char *out, size_t out_cap, size_t *out_len);

#endif
