/* uidl_file: the legacy UIDL list an administrator imports with
 * `popgate-admin uidl import USER FILE`, and the stored form of one entry.
 * Pure: no I/O; the caller reads the file and writes Redis.
 *
 * File format, one message a line:
 *     <uidl> <size> <message-id>
 *   uidl        1..UIDL_MAX characters of 0x21..0x7E (RFC 1939's UIDL alphabet)
 *   size        decimal octets, 0..UINT32_MAX (what the old server's LIST said)
 *   message-id  the Message-ID header's value with its angle brackets: '<', one
 *               or more characters of 0x21..0x7E other than '<' and '>', '>',
 *               at most UIDL_MSGID_MAX in all; or "-" when the message has none
 * Fields are separated by spaces or tabs; leading and trailing blanks and a
 * final CR are ignored. A line whose first non-blank character is '#' is a
 * comment (so a UIDL cannot begin with '#'); blank lines are skipped. The last
 * line needs no LF.
 *
 * A UIDL may appear once only: a second line with the same UIDL is an error
 * (an old server's UIDLs are unique in a maildrop, so the file is wrong).
 * Two lines with the same Message-ID are not an error, but neither can be
 * matched to an upstream message by it: both are marked ambiguous.
 *
 * Storage (Redis hash pg1:{user}:uidl): field = message-id, value =
 * "<uidl> <size>" (one space); uidl_value_parse() reads a value back.
 */
#ifndef POPGATE_UIDL_FILE_H
#define POPGATE_UIDL_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UIDL_MAX 70             /* RFC 1939 */
#define UIDL_MSGID_MAX 998      /* RFC 5322's line limit bounds a header value */
/* "<uidl> <size>": the longest stored value, without a terminator. */
#define UIDL_VALUE_MAX (UIDL_MAX + 1 + 10)

enum uidl_file_problem {
    UIDL_FILE_FIELD_COUNT = 0,  /* not exactly three fields */
    UIDL_FILE_UIDL_TOO_LONG,
    UIDL_FILE_UIDL_BAD_CHAR,
    UIDL_FILE_BAD_SIZE,
    UIDL_FILE_BAD_MSGID,
    UIDL_FILE_MSGID_TOO_LONG,
    UIDL_FILE_DUPLICATE_UIDL,   /* other_line: where the UIDL first appeared */
    UIDL_FILE_PROBLEM_COUNT
};

struct uidl_file_error {
    size_t line;                /* 1-based */
    enum uidl_file_problem problem;
    size_t other_line;          /* UIDL_FILE_DUPLICATE_UIDL only, else 0 */
};

/* One well-formed line. The pointers point into the parsed buffer: valid as
 * long as that buffer is. */
struct uidl_file_entry {
    const char *uidl;
    size_t uidl_len;            /* 1..UIDL_MAX */
    const char *msgid;          /* NULL when the file said "-" */
    size_t msgid_len;           /* 0 when the file said "-", else 3..UIDL_MSGID_MAX */
    uint32_t size;
    size_t line;
    /* Another line has the same Message-ID; same_msgid_line is the first such
     * other line, 0 when the Message-ID is unique. */
    size_t same_msgid_line;
};

/* Result of a parse. Owns the two arrays (uidl_file_free), not the text. */
struct uidl_file {
    struct uidl_file_entry *entries;  /* in file order */
    size_t n_entries;
    struct uidl_file_error *errors;   /* sorted by line; a line has at most one */
    size_t n_errors;
    size_t n_matchable;               /* entries with a Message-ID no other entry has */
};

/* Parses len bytes (NUL bytes are ordinary bytes: they make a field invalid).
 * Every malformed line is reported, not only the first. When n_errors is not
 * 0 the file must not be used: entries then holds only the lines that were
 * well-formed on their own. Returns false only when memory ran out (out is
 * then empty and needs no freeing). */
bool uidl_file_parse(const char *data, size_t len, struct uidl_file *out);
void uidl_file_free(struct uidl_file *f);

/* Can this entry be stored (and then matched upstream by Message-ID)? */
bool uidl_file_entry_matchable(const struct uidl_file_entry *e);

/* Why a line was refused, for "FILE:LINE: reason" messages. Static text. */
const char *uidl_file_problem_text(enum uidl_file_problem p);

/* Writes the stored value "<uidl> <size>" of e into out (cap >= UIDL_VALUE_MAX
 * + 1 always suffices) and returns its length, or 0 if it does not fit. */
size_t uidl_value_format(const struct uidl_file_entry *e, char *out, size_t cap);

/* Reads a stored value back: the UIDL is value[0 .. *uidl_len). False when the
 * value does not have the exact stored form. */
bool uidl_value_parse(const char *value, size_t len, size_t *uidl_len, uint32_t *size);

#endif
