/* pop3_status: the lines popgate sends a POP3 client outside message text
 * (status lines, CAPA and listing lines), framed with their CRLF under RFC
 * 2449's bound. Pure: no I/O.
 *
 * A line that does not fit is refused whole, never cut: a cut status line
 * would tell the client something else than was meant, and a dropped one
 * would leave it waiting. The caller treats a refusal as its own bug and
 * ends the session loudly (proxy/session.c). */
#ifndef POPGATE_POP3_STATUS_H
#define POPGATE_POP3_STATUS_H

#include <stdarg.h>
#include <stddef.h>

/* RFC 2449 section 4: "Responses may be up to 512 characters long,
 * including the terminating CRLF." */
#define POP3_STATUS_LINE_MAX 512

/* text and CRLF into out; the octets written, or 0 when text is longer than
 * POP3_STATUS_LINE_MAX - 2 (out is then unchanged). */
size_t pop3_status_line(char out[POP3_STATUS_LINE_MAX], const char *text);
/* The same for a formatted text (vsnprintf). */
size_t pop3_status_vformat(char out[POP3_STATUS_LINE_MAX], const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
