/* safe_text: a server's text made fit for a log line. Pure.
 * Upstream error text (an IMAP NO, a POP3 -ERR) is untrusted: it keeps
 * printable ASCII, anything else becomes '?', and it is cut to the buffer. */
#ifndef POPGATE_SAFE_TEXT_H
#define POPGATE_SAFE_TEXT_H

#include <stddef.h>

/* Writes prefix then len bytes of text into out (cap >= 1 bytes, always
 * NUL-terminated). */
void safe_text_copy(char *out, size_t cap, const char *prefix, const char *text, size_t len);

#endif
