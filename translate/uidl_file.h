/* uidl_file: the legacy UIDL list an administrator imports with
 * `popgate-admin uidl import USER FILE`, and the stored form of one entry.
 * Pure: no I/O; the caller reads the file and writes Redis.
 *
 * File format, one message a line:
 *     <uidl> <size> <header-hash> <message-id>
 *   uidl        1..UIDL_MAX characters of 0x21..0x7E (RFC 1939's UIDL alphabet)
 *   size        decimal octets, 0..UINT32_MAX (what the old server's LIST said)
 *   header-hash the header's hash (translate/header_hash.h): HEADER_HASH_HEX_LEN
 *               lower-case hex digits, or "-" when the tool had none
 *   message-id  the Message-ID key (translate/message_id.h), each octet outside
 *               0x21..0x7E and each '%' written %XX (two hex digits), at most
 *               UIDL_MSGID_MAX octets decoded; "-" when the message has none
 *               (a key that is "-" itself is written %2D)
 * The earlier three-field form "<uidl> <size> <message-id>", message-id as
 * "<...>" of 0x21..0x7E without '<' or '>' inside (no encoding) or "-", is
 * still read: such a line has no header hash.
 * Fields are separated by spaces or tabs; leading and trailing blanks and a
 * final CR are ignored. A line whose first non-blank character is '#' is a
 * comment (so a UIDL cannot begin with '#'); blank lines are skipped. The last
 * line needs no LF.
 *
 * A UIDL may appear once only: a second line with the same UIDL is an error
 * (an old server's UIDLs are unique in a maildrop, so the file is wrong).
 *
 * Which key a legacy message is stored under (uidl_keys_assign, the one rule
 * for the import file and the lazy legacy_pop3 import alike):
 * 1. its Message-ID, when it has one that no other legacy message has;
 * 2. else its header hash and size, when it has a hash and no other legacy
 *    message has the same hash and size;
 * 3. else none: it cannot be matched (reported, never guessed).
 *
 * Storage (Redis hash pg1:{user}:uidl), field -> value:
 *   the Message-ID key (never empty, never starts with SP or HTAB: it is
 *   trimmed)                                    -> "<uidl> <size>"
 *   " hdr <size> <hex hash>"  (uidl_hash_field) -> "<uidl> <size>"
 *   " size <size>"            (uidl_size_field) -> "1", once per size that a
 *       header-hash field has, so a login hashes only the upstream messages
 *       of those sizes
 * The leading space keeps the two kinds of field apart from every Message-ID.
 * uidl_value_parse() reads a value back.
 */
#ifndef POPGATE_UIDL_FILE_H
#define POPGATE_UIDL_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UIDL_MAX 70             /* RFC 1939 */
#define UIDL_MSGID_MAX 998      /* RFC 5322's line limit bounds a header value */
#define UIDL_HASH_HEX_LEN 32    /* = HEADER_HASH_HEX_LEN (checked in uidl_file.c) */
/* " hdr <size> <hex>" and " size <size>", without a terminator. */
#define UIDL_HASH_FIELD_MAX (5 + 10 + 1 + UIDL_HASH_HEX_LEN)
#define UIDL_SIZE_FIELD_MAX (6 + 10)
/* "<uidl> <size>": the longest stored value, without a terminator. */
#define UIDL_VALUE_MAX (UIDL_MAX + 1 + 10)

enum uidl_file_problem {
    UIDL_FILE_FIELD_COUNT = 0,  /* not exactly three fields */
    UIDL_FILE_UIDL_TOO_LONG,
    UIDL_FILE_UIDL_BAD_CHAR,
    UIDL_FILE_BAD_SIZE,
    UIDL_FILE_BAD_MSGID,
    UIDL_FILE_BAD_HASH,
    UIDL_FILE_MSGID_TOO_LONG,
    UIDL_FILE_DUPLICATE_UIDL,   /* other_line: where the UIDL first appeared */
    UIDL_FILE_PROBLEM_COUNT
};

struct uidl_file_error {
    size_t line;                /* 1-based */
    enum uidl_file_problem problem;
    size_t other_line;          /* UIDL_FILE_DUPLICATE_UIDL only, else 0 */
};

/* Under which key a legacy message is stored (see above). */
enum uidl_key {
    UIDL_KEY_NONE = 0,
    UIDL_KEY_MESSAGE_ID,
    UIDL_KEY_HEADER_HASH,
};

/* One well-formed line. uidl points into the parsed buffer (valid as long as
 * that buffer is), msgid into the result's own pool. */
struct uidl_file_entry {
    const char *uidl;
    size_t uidl_len;            /* 1..UIDL_MAX */
    const char *msgid;          /* NULL when the message has none */
    size_t msgid_len;           /* 0 when none, else 1..UIDL_MSGID_MAX */
    uint32_t size;
    bool has_hash;
    char hash[UIDL_HASH_HEX_LEN + 1];  /* lower-case hex, NUL-terminated */
    size_t line;
    /* Set by uidl_keys_assign: the first other entry (its line, or index + 1
     * outside a file) with the same Message-ID, or the same hash and size;
     * 0 when there is none. */
    size_t same_msgid_line;
    size_t same_hash_line;
    enum uidl_key key;
};

struct uidl_key_stats {
    size_t by_message_id;
    size_t by_header_hash;
    size_t no_key;              /* neither a Message-ID nor a hash */
    size_t same_message_id;     /* of the rest: a repeated Message-ID, no usable hash */
    size_t same_header_hash;    /* the hash and size repeat too */
};

/* Rule 1-3 above over entries[0..n): sets key, same_msgid_line and
 * same_hash_line of each (line must be set: the file's line, or any
 * distinct positive number). Memory: n pointers while it runs. False when
 * memory runs out. */
bool uidl_keys_assign(struct uidl_file_entry *entries, size_t n, struct uidl_key_stats *stats);

/* The Redis field of an entry stored under its header hash, and the size
 * marker (see above); each returns the length written (no terminator
 * needed, one is added when there is room). */
size_t uidl_hash_field(uint32_t size, const char *hex, char out[UIDL_HASH_FIELD_MAX + 1]);
size_t uidl_size_field(uint32_t size, char out[UIDL_SIZE_FIELD_MAX + 1]);

/* Writes the message-id field of a file line for key (len octets; NULL or 0:
 * "-") into out (cap >= 3 * UIDL_MSGID_MAX + 1 always suffices) and returns
 * its length. */
size_t uidl_msgid_encode(const char *key, size_t len, char *out, size_t cap);

/* Result of a parse. Owns the two arrays (uidl_file_free), not the text. */
struct uidl_file {
    struct uidl_file_entry *entries;  /* in file order */
    size_t n_entries;
    struct uidl_file_error *errors;   /* sorted by line; a line has at most one */
    size_t n_errors;
    size_t n_matchable;               /* entries with a key (uidl_keys_assign) */
    struct uidl_key_stats keys;
    char *pool;                       /* decoded Message-IDs; owned */
};

/* Parses len bytes (NUL bytes are ordinary bytes: they make a field invalid).
 * Every malformed line is reported, not only the first. When n_errors is not
 * 0 the file must not be used: entries then holds only the lines that were
 * well-formed on their own. Returns false only when memory ran out (out is
 * then empty and needs no freeing). */
bool uidl_file_parse(const char *data, size_t len, struct uidl_file *out);
void uidl_file_free(struct uidl_file *f);

/* Can this entry be stored (and then matched upstream by its key)? */
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
