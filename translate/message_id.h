/* message_id: a message's Message-ID, read from its header in the form the
 * legacy UIDL import stores it (uidl_file.h), so an upstream message and an
 * imported line meet in one lookup of the Redis hash pg1:{user}:uidl.
 * Pure: no I/O, no allocation.
 *
 * The header is an RFC 5322 header block, e.g. what IMAP returns for
 * BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] or BODY.PEEK[HEADER]:
 * - lines end with CRLF or a bare LF; a CR not before an LF is an ordinary
 *   byte; the header ends at the first empty line, or at the end of the input
 *   (the last line needs no line end);
 * - a field is a line "name *WSP : value" (the WSP of RFC 5322's obsolete
 *   syntax is accepted), continued by the lines that begin with SP or HTAB;
 *   unfolding removes the line ends and keeps the blanks; lines that are no
 *   field are ignored with their continuations;
 * - the field name "Message-ID" matches ASCII case-insensitively.
 *
 * The value must be [CFWS] "<" id ">" [CFWS]: blanks and comments (nested
 * parentheses, backslash quoting) around it are dropped; id is one or more
 * octets of 0x21..0x7E other than '<' and '>', compared as they are (no case
 * folding, no blanks or comments inside the brackets). That is exactly what
 * an import file's third field may hold, and RFC 5322's msg-id without its
 * obsolete forms; a tool writing the import file from the old server must
 * take the same value (a trimmed "<...>" with nothing else).
 */
#ifndef POPGATE_MESSAGE_ID_H
#define POPGATE_MESSAGE_ID_H

#include <stddef.h>

#include "uidl_file.h"

/* Writes the Message-ID, angle brackets included and NUL-terminated, into out
 * and returns its length (3..UIDL_MSGID_MAX). Returns 0, with out[0] = '\0',
 * when the header has no Message-ID field, has two or more (whatever their
 * values), or its value is malformed or longer than UIDL_MSGID_MAX: such a
 * message cannot be matched by Message-ID. Reads every byte of the header at
 * most a constant number of times; NUL bytes are ordinary (invalid) bytes. */
size_t message_id_extract(const char *header, size_t len, char out[UIDL_MSGID_MAX + 1]);

#endif
