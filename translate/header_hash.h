/* header_hash: the key that matches a legacy POP3 server's message to the
 * upstream copy when the Message-ID cannot (none, or not unique): a hash of
 * the header block, after Dovecot's pop3-migration plugin
 * (src/plugins/pop3-migration/pop3-migration-plugin.c and
 * src/lib-mail/message-header-hash.c, version 4), plus the size
 * (translate/legacy_uidl.h). Pure: no I/O. Fed in pieces of any size, so a
 * header is streamed through it and never held whole: the state is a few
 * dozen octets and a SHA-256 context.
 *
 * Input: the header as the server sends it (POP3 TOP n 0 dot-unstuffed, or
 * IMAP BODY[HEADER]); whatever follows its end is ignored.
 * - Lines end with LF; a CR just before the LF (or just before the end of
 *   the input) is removed: CRLF and LF stores hash alike.
 * - The header ends at the first line that is empty or holds only CRs
 *   (some servers end the header at CR CR LF, others do not: Dovecot stops
 *   there on both sides), or at the end of the input.
 * - A field is a line whose part before its first ':' has at most
 *   HEADER_HASH_NAME_MAX octets and, without its trailing SP and HTAB, is a
 *   non-empty run of 0x21..0x7E; continuation lines (first octet SP or HTAB)
 *   belong to the field above. Left out with their continuations: lines
 *   that are no field (a server's BODY[HEADER] drops them, its TOP keeps
 *   them), continuations before the first line, and the fields that differ
 *   between a POP3 and an IMAP copy of one message, by name, ASCII
 *   case-insensitively: Content-Length, Return-Path, Status, X-IMAP,
 *   X-IMAPbase, X-Keywords, X-Message-Flag, X-Status, X-UID, X-UIDL,
 *   X-Yahoo-Newman-Property (Dovecot's list). Also left out: a continuation
 *   line of blanks only (Zimbra drops it).
 * - Received, Delivered-To and every other field are kept: a migration copies
 *   the messages, so they are the same on both sides, and they are what tells
 *   two deliveries of the same message apart. (A copy made by delivering the
 *   mail again would add a Return-Path, which is left out, and Received lines,
 *   which make it another message: it then downloads again, it is never
 *   confused with another.)
 * - Each line kept is hashed without its SP and HTAB octets, with every run
 *   of octets below 0x20, at or above 0x7F, or '?' replaced by one '?'
 *   (servers replace NUL, 8-bit and control octets differently), then LF.
 * Digest: the first HEADER_HASH_LEN octets of SHA-256 over that.
 */
#ifndef POPGATE_HEADER_HASH_H
#define POPGATE_HEADER_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Octets of the digest kept: 128 bits, so chance collisions never happen. */
#define HEADER_HASH_LEN 16
/* The digest in lower-case hex. */
#define HEADER_HASH_HEX_LEN (2 * HEADER_HASH_LEN)
/* A field name is read up to its ':' in this many octets; a longer one makes
 * the line no field. Real names are under 80. */
#define HEADER_HASH_NAME_MAX 256

struct header_hash {
    void *md;                             /* EVP_MD_CTX, owned */
    uint8_t name[HEADER_HASH_NAME_MAX];   /* the current line up to its ':' */
    uint16_t name_len;
    uint8_t state;                        /* private */
    bool keep_field;                      /* the current field is hashed */
    bool in_run;                          /* the last octet hashed was a '?' of a run */
    bool cr_pending;                      /* a CR not yet known to end the line */
    bool line_hashed;                     /* a continuation line with a non-blank */
    bool only_cr;                         /* the line so far is all CRs */
    bool failed;                          /* out of memory in the digest */
    uint8_t out_len;
    uint8_t out[128];                     /* normalised octets not yet digested */
};

/* False when memory runs out (h then needs no free). */
bool header_hash_init(struct header_hash *h);
/* Starts again for another header (the context is reused). */
bool header_hash_reset(struct header_hash *h);
void header_hash_feed(struct header_hash *h, const char *data, size_t len);
/* True once the end of the header was seen: the rest is ignored. */
bool header_hash_ended(const struct header_hash *h);
/* The digest of everything fed since init or reset, in hex, NUL-terminated.
 * False when the digest failed. */
bool header_hash_final(struct header_hash *h, char out[HEADER_HASH_HEX_LEN + 1]);
void header_hash_free(struct header_hash *h);

/* One call: the hex digest of a whole header. */
bool header_hash_of(const char *header, size_t len, char out[HEADER_HASH_HEX_LEN + 1]);

#endif
