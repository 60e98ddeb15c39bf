/* message_id: a message's Message-ID as the key that matches a legacy POP3
 * server's message to the upstream copy (translate/legacy_uidl.h). Pure: no
 * I/O, no allocation.
 *
 * The key is the header's value as both servers send it, whatever its
 * syntax: real mailers write Message-IDs RFC 5322 forbids ("PM20008:14:54
 * AM", "<4TGX9R3Y3.01O79."Super Signal"<service@thezs.com>>", ids with
 * spaces and backslashes), and both servers hand those bytes out unchanged,
 * so comparing them byte for byte is exact where parsing them is guesswork.
 *
 * The header is an RFC 5322 header block, e.g. what IMAP returns for
 * BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] or POP3 for TOP n 0:
 * - lines end with LF; a CR just before the LF belongs to the line end; any
 *   other CR is an ordinary byte; the header ends at the first empty line or
 *   at the end of the input (the last line needs no line end);
 * - a field is a line "name *WSP : value" (the WSP of RFC 5322's obsolete
 *   syntax is accepted), continued by the lines that begin with SP or HTAB;
 *   lines that are no field are ignored with their continuations;
 * - the field name "Message-ID" matches ASCII case-insensitively.
 * The key is the value unfolded (its line ends removed, the blanks after
 * them kept) with the SP and HTAB at either end removed; every other octet,
 * NUL and 8-bit octets included, is kept as it is.
 */
#ifndef POPGATE_MESSAGE_ID_H
#define POPGATE_MESSAGE_ID_H

#include <stddef.h>

#include "uidl_file.h"

/* Writes the key into out, NUL-terminated (it may hold NULs of its own: use
 * the length), and returns its length, 1..UIDL_MSGID_MAX. Returns 0, with
 * out[0] = '\0', when the message has no usable Message-ID: no such field,
 * two or more (which one the other server used is unknown), an empty value,
 * or one longer than UIDL_MSGID_MAX (998 octets, RFC 5322's line limit)
 * after trimming. Reads every byte of the header at most a constant number
 * of times. */
size_t message_id_extract(const char *header, size_t len, char out[UIDL_MSGID_MAX + 1]);

#endif
