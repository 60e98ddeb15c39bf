/* imap_quote: encoding client arguments for IMAP commands. Pure: no I/O.
 *
 * - Quoted strings for astring arguments (mailbox names, LOGIN user and
 *   password): printable ASCII goes inside double quotes with \ and "
 *   escaped. Every argument is quoted, never sent as a bare atom, so no byte of
 *   it can be mistaken for syntax ("{5}" in a password stays text).
 * - Literals for LOGIN arguments that a quoted string cannot carry (8-bit bytes
 *   and control characters other than CR, LF, NUL). Only synchronizing
 *   literals "{N}" are produced, never LITERAL+ "{N+}": LOGIN is the fallback
 *   for servers without AUTH=PLAIN, an 8-bit credential there is rare, and a
 *   synchronizing literal is valid on every IMAP server, whatever its
 *   LITERAL+ / LITERAL- limits. The cost is one round trip per literal.
 * - CR, LF and NUL cannot be sent in any form (a literal could carry CR and LF,
 *   but no server accepts them in credentials, and they are the bytes an
 *   injection would use): they are refused.
 * - SASL PLAIN (RFC 4616) initial response: base64("" NUL user NUL pass), the
 *   authorization identity left empty so the server derives it.
 *
 * Buffers are caller-provided; every output has a stated maximum below.
 */
#ifndef POPGATE_IMAP_QUOTE_H
#define POPGATE_IMAP_QUOTE_H

#include <stdbool.h>
#include <stddef.h>

/* Longest user name or password accepted, in octets. A POP3 AUTH PLAIN line
 * carries at most 1024 octets of base64 (POP3_SASL_LINE_MAX), that is 768
 * decoded octets for both together, so this is never the binding limit. */
#define IMAP_CREDENTIAL_MAX 1024

/* Longest quoted string: every octet escaped, plus the two quotes. */
#define IMAP_QUOTED_MAX(n) (2 * (n) + 2)

enum imap_astring_form {
    IMAP_ASTRING_QUOTED,   /* printable ASCII only (0x20..0x7e) */
    IMAP_ASTRING_LITERAL,  /* has 8-bit or control octets, but no CR, LF, NUL */
    IMAP_ASTRING_INVALID,  /* has CR, LF or NUL */
};

enum imap_astring_form imap_astring_form(const char *s, size_t len);

/* Append s as a quoted string to out (capacity cap) at *pos, advancing *pos.
 * Returns false, writing nothing, if s is not IMAP_ASTRING_QUOTED or does not
 * fit. */
bool imap_append_quoted(char *out, size_t cap, size_t *pos, const char *s, size_t len);

/* A LOGIN command cut where a synchronizing literal makes the client wait for
 * the server's "+" continuation: send segment 0, then one more segment after
 * each continuation. A tag, two literal headers and two worst-case quoted
 * credentials fit in IMAP_LOGIN_CMD_MAX. Holds the password: wipe it. */
#define IMAP_TAG_MAX        16
#define IMAP_LOGIN_SEGMENTS 3
#define IMAP_LOGIN_CMD_MAX  (IMAP_TAG_MAX + 16 + 2 * (IMAP_QUOTED_MAX(IMAP_CREDENTIAL_MAX) + 16))

struct imap_login_command {
    char buf[IMAP_LOGIN_CMD_MAX];
    size_t seg_end[IMAP_LOGIN_SEGMENTS];  /* segment i is buf[seg_end[i-1] .. seg_end[i]) */
    unsigned nsegs;                       /* 1..3 */
};

enum imap_quote_status {
    IMAP_QUOTE_OK,
    IMAP_QUOTE_FORBIDDEN_OCTET,  /* CR, LF or NUL in an argument */
    IMAP_QUOTE_TOO_LONG,         /* argument over IMAP_CREDENTIAL_MAX, output buffer too small,
                                    or tag not an atom of 1..IMAP_TAG_MAX octets */
};

/* Build "<tag> LOGIN <user> <pass>\r\n", each argument quoted or a literal.
 * tag is an atom of at most IMAP_TAG_MAX octets. */
enum imap_quote_status imap_login_command(struct imap_login_command *cmd, const char *tag,
                                          const char *user, size_t user_len,
                                          const char *pass, size_t pass_len);
void imap_login_command_wipe(struct imap_login_command *cmd);

/* Base64 of n octets, without the terminating NUL. */
#define IMAP_BASE64_LEN(n) ((((n) + 2) / 3) * 4)
/* SASL PLAIN response for two maximal credentials, plus a NUL. */
#define IMAP_SASL_PLAIN_MAX (IMAP_BASE64_LEN(2 + 2 * IMAP_CREDENTIAL_MAX) + 1)

/* Write the NUL-terminated SASL PLAIN response into out (capacity cap;
 * IMAP_SASL_PLAIN_MAX covers every accepted input, a smaller cap that does
 * not fit gives IMAP_QUOTE_TOO_LONG). */
enum imap_quote_status imap_sasl_plain(char *out, size_t cap, const char *user, size_t user_len,
                                       const char *pass, size_t pass_len);

#endif
