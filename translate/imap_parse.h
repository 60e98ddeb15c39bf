/* imap_parse: reading IMAP4rev1 server responses (RFC 3501, RFC 3516). Pure: no I/O.
 *
 * Three layers, like hiredis read.c (bytes in, events out):
 *
 * - imap_reader frames the byte stream, fed in any split. A response is text up
 *   to CRLF that may embed literals "{N}\r\n" and literal8 "~{N}\r\n". The text
 *   is collected in a buffer of at most IMAP_LINE_MAX octets; literal bytes are
 *   never collected unless the consumer asks for it: they are handed out in
 *   chunks straight from the caller's input, and the consumer may take fewer
 *   bytes than offered (backpressure). In the collected line a literal that was
 *   handed out stays as its marker "{N}" / "~{N}"; a literal the consumer
 *   absorbed (imap_reader_absorb_literal) appears as an equivalent quoted
 *   string, so the tokenizer sees a string either way.
 *
 * - imap_tokenizer splits one collected line into tokens: atoms (tags, "*",
 *   "+", numbers, NIL, flags like \Seen, fetch items like BODY[HEADER]<0>),
 *   quoted strings, literal markers, parentheses and the brackets of response
 *   codes.
 *
 * - imap_response_parse(), imap_fetch_parse() and imap_list_parse() read the
 *   responses a POP3 gateway needs: tagged and untagged status with response
 *   code, "* n KEYWORD" data, continuations, FETCH attributes in any order
 *   (INTERNALDATE through imap_parse_date_time()) and LIST entries.
 *
 * Lines end with CRLF; a bare LF is accepted too (lenient), a bare CR or a NUL
 * in the text is a protocol error. Once the reader reports an error it stays
 * in error: IMAP has no way to find the next response boundary after garbage.
 */
#ifndef POPGATE_IMAP_PARSE_H
#define POPGATE_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest response text kept, CRLF and literal contents excluded, literal
 * markers and absorbed literals included. A CAPABILITY or listing line is well
 * under 1 KiB; 64 KiB leaves room for long flag lists and absorbed names. */
#define IMAP_LINE_MAX (64 * 1024)
/* The line buffer starts this small and grows by doubling up to IMAP_LINE_MAX;
 * a buffer that grew beyond IMAP_LINE_KEEP is released after its line, so an
 * idle connection holds at most IMAP_LINE_KEEP octets. */
#define IMAP_LINE_INITIAL 512
#define IMAP_LINE_KEEP    (4 * 1024)
/* Literal lengths above this are refused (RFC 3501 number64 range). */
#define IMAP_LITERAL_MAX  ((uint64_t)INT64_MAX)

enum imap_read_status {
    IMAP_READ_AGAIN,          /* all input consumed, no event yet */
    IMAP_READ_LINE,           /* a complete response: line/line_len */
    IMAP_READ_LITERAL_START,  /* a literal follows: text so far (ending in its
                                 marker) in line/line_len, literal_len, literal8 */
    IMAP_READ_LITERAL_DATA,   /* data/data_len: literal bytes at the start of the
                                 caller's input, NOT consumed yet (see below) */
    IMAP_READ_ERROR,          /* protocol error: error holds a static message */
};

struct imap_read_event {
    enum imap_read_status status;
    const char *line;         /* LINE, LITERAL_START: valid until the next feed */
    size_t line_len;
    uint64_t literal_len;     /* LITERAL_START */
    bool literal8;            /* LITERAL_START: "~{N}" */
    const char *data;         /* LITERAL_DATA: points into the fed input */
    size_t data_len;          /* LITERAL_DATA: > 0, at most the literal's rest */
    const char *error;        /* ERROR */
};

enum imap_reader_state { IMAP_READER_TEXT, IMAP_READER_LITERAL, IMAP_READER_FAILED };

struct imap_reader {
    enum imap_reader_state state;
    char *buf;                /* heap, cap octets, NULL while empty and idle */
    size_t len;
    size_t cap;               /* <= IMAP_LINE_MAX */
    size_t marker_start;      /* offset of the current literal's marker in buf */
    size_t segment_start;     /* offset where the text after the last literal began */
    uint64_t literal_left;    /* octets of the current literal not yet consumed */
    bool absorbing;           /* copying the current literal into buf, quoted */
    bool pending_cr;          /* text ended in CR, LF expected next */
    bool line_done;           /* buf holds a reported line; reset at next feed */
    const char *error;
};

void imap_reader_init(struct imap_reader *r);
void imap_reader_deinit(struct imap_reader *r);

/* Consume input up to the next event. Returns the number of bytes consumed and
 * fills *ev. Call again with the rest of the input until it returns
 * IMAP_READ_AGAIN (everything consumed) or the consumer stops.
 *
 * On IMAP_READ_LITERAL_DATA nothing has been consumed: the consumer takes
 * k <= ev->data_len bytes with imap_reader_literal_take(r, k) and advances its
 * input by k. Taking fewer than offered is how it applies backpressure: it
 * keeps the rest of its input and feeds it again later. */
size_t imap_reader_feed(struct imap_reader *r, const char *data, size_t len,
                        struct imap_read_event *ev);
void imap_reader_literal_take(struct imap_reader *r, size_t n);

/* Right after IMAP_READ_LITERAL_START: collect this literal into the line as a
 * quoted string (with \ and " escaped; its other bytes, even CR, LF or NUL,
 * are kept as they are) instead of handing it out as LITERAL_DATA. Returns
 * false, changing nothing, when the worst-case escaped size would not fit in
 * IMAP_LINE_MAX; the literal is then handed out as usual. */
bool imap_reader_absorb_literal(struct imap_reader *r);

/* ---- tokens ------------------------------------------------------------- */

enum imap_token_type {
    IMAP_TOK_END,       /* no more tokens */
    IMAP_TOK_ATOM,      /* p/len: the atom, including [...] sections and <...> */
    IMAP_TOK_QUOTED,    /* p/len: the contents between the quotes, still escaped */
    IMAP_TOK_LITERAL,   /* a literal marker: literal_len, literal8 (contents not in the line) */
    IMAP_TOK_LPAREN,
    IMAP_TOK_RPAREN,
    IMAP_TOK_LBRACKET,  /* "[" opening a response code */
    IMAP_TOK_RBRACKET,
    IMAP_TOK_ERROR,     /* malformed input; the tokenizer's error says why */
};

struct imap_token {
    enum imap_token_type type;
    const char *p;
    size_t len;
    uint64_t literal_len;
    bool literal8;
};

struct imap_tokenizer {
    const char *p;
    const char *end;
    const char *error;  /* static message after IMAP_TOK_ERROR */
};

/* The tokenizer points into line; it must outlive the tokens. */
void imap_tokenizer_init(struct imap_tokenizer *t, const char *line, size_t len);
/* Tokens are separated by spaces (runs of spaces are accepted). After
 * IMAP_TOK_END or IMAP_TOK_ERROR every later call returns the same. */
enum imap_token_type imap_next_token(struct imap_tokenizer *t, struct imap_token *tok);

/* Case-insensitive comparison of an atom with word. */
bool imap_token_is(const struct imap_token *tok, const char *word);
/* An atom of ASCII digits without overflow (0 allowed). */
bool imap_token_u32(const struct imap_token *tok, uint32_t *out);
/* Copy an atom's or quoted string's value (escapes removed) into out, NUL
 * terminated and truncated to cap - 1 octets (cap >= 1). Returns the full
 * value length, so a result >= cap means truncation. */
size_t imap_token_copy(const struct imap_token *tok, char *out, size_t cap);

/* ---- responses ---------------------------------------------------------- */

enum imap_resp_type {
    IMAP_RESP_TAGGED,
    IMAP_RESP_UNTAGGED,
    IMAP_RESP_CONTINUATION,
};

enum imap_resp_status {
    IMAP_STATUS_NONE,       /* untagged data: "* 3 EXISTS", "* CAPABILITY ..." */
    IMAP_STATUS_OK,
    IMAP_STATUS_NO,
    IMAP_STATUS_BAD,
    IMAP_STATUS_PREAUTH,    /* untagged only */
    IMAP_STATUS_BYE,        /* untagged only */
};

/* All pointers point into the parsed line; empty spans have length 0. */
struct imap_response {
    enum imap_resp_type type;
    const char *tag;            /* tagged: the tag */
    size_t tag_len;
    enum imap_resp_status status;
    bool has_number;            /* "* 12 EXISTS": number = 12 */
    uint32_t number;
    const char *name;           /* the status word or the data keyword */
    size_t name_len;
    const char *code;           /* response code atom, e.g. "UIDVALIDITY" */
    size_t code_len;
    const char *code_args;      /* text after the code atom up to "]" */
    size_t code_args_len;
    const char *text;           /* human-readable text, or a continuation's text */
    size_t text_len;
    const char *data;           /* untagged data after the keyword (tokenize it) */
    size_t data_len;
};

/* Parse the framing of one response. On failure returns false and *error
 * holds a static message. The data of untagged responses is not validated
 * here: tokenize it (or use imap_fetch_parse). */
bool imap_response_parse(const char *line, size_t len, struct imap_response *r,
                         const char **error);
bool imap_resp_name_is(const struct imap_response *r, const char *word);
bool imap_resp_code_is(const struct imap_response *r, const char *word);
/* The one number a response code carries: "[UIDNEXT 4392]",
 * "[HIGHESTMODSEQ 715194045007]" (RFC 7162, up to 63 bits). False when the
 * response has no code, or its argument is not a single number from 1 to
 * UINT64_MAX. */
bool imap_resp_code_number(const struct imap_response *r, uint64_t *out);

/* Is a NO, BAD or BYE the server telling the client to slow down? Gmail
 * answers "[THROTTLED]" (as the response code or at the end of the text),
 * Yahoo "NO [LIMIT]", Office 365 "NO|BAD Request is throttled. Suggested
 * Backoff Time: N milliseconds". *backoff_ms is N when the server suggests a
 * time (clamped to UINT32_MAX), else 0. An OK is never a throttle: the
 * command was done, only slowly (Gmail's "OK Success [THROTTLED]"). */
bool imap_response_throttled(const struct imap_response *r, uint32_t *backoff_ms);

/* Parse an RFC 3501 date-time, the contents of an INTERNALDATE quoted string
 * without its quotes: "dd-Mon-yyyy hh:mm:ss +zzzz", the day either two digits
 * or a space and one digit (" 3-Feb-2026"), exactly IMAP_DATE_TIME_LEN octets.
 * Strict: the month name (any case), the day within that month, hours 0-23,
 * minutes 0-59, seconds 0-60 (a leap second counts as the next second) and a
 * zone of at most +-23:59 are checked. *out is the instant in seconds since
 * the epoch, UTC, with the zone applied; negative before 1970. */
#define IMAP_DATE_TIME_LEN 26
bool imap_parse_date_time(const char *p, size_t len, int64_t *out);

/* Longest RFC 8474 object id (EMAILID, THREADID, MAILBOXID). */
#define IMAP_OBJECTID_MAX 255

/* FETCH data items the gateway reads; others are skipped whatever their shape. */
enum {
    IMAP_FETCH_HAS_UID          = 1u << 0,
    IMAP_FETCH_HAS_SIZE         = 1u << 1,
    IMAP_FETCH_HAS_FLAGS        = 1u << 2,
    IMAP_FETCH_HAS_INTERNALDATE = 1u << 3,
    IMAP_FETCH_HAS_EMAILID      = 1u << 4,
    IMAP_FETCH_HAS_X_GM_MSGID   = 1u << 5,
};

struct imap_fetch_attrs {
    unsigned present;           /* IMAP_FETCH_HAS_* */
    uint32_t uid;
    uint32_t size;              /* RFC822.SIZE */
    bool seen;                  /* FLAGS contains \Seen */
    bool deleted;               /* FLAGS contains \Deleted */
    int64_t internaldate;       /* INTERNALDATE, see imap_parse_date_time() */
    const char *emailid;        /* EMAILID (RFC 8474) object id, pointing into */
    size_t emailid_len;         /* data; 1 to IMAP_OBJECTID_MAX octets */
    uint64_t x_gm_msgid;        /* Gmail's X-GM-MSGID (X-GM-EXT-1): a non-zero
                                   unsigned 64-bit decimal number */
    /* Partial parse only: the item whose value is the literal that ends the
     * text (e.g. "BODY[]<0>"), pointing into data. */
    const char *literal_item;
    size_t literal_item_len;
};

/* Parse the data of "* n FETCH <data>" (imap_response.data). With partial
 * false the list must be complete: "(" items ")". With partial true the text
 * is what imap_reader reported at IMAP_READ_LITERAL_START: it must end with a
 * literal marker that is an item's value, and literal_item names that item.
 * Items may come in any order. Returns false with *error on malformed data. */
bool imap_fetch_parse(const char *data, size_t len, bool partial,
                      struct imap_fetch_attrs *a, const char **error);

/* ---- LIST --------------------------------------------------------------- */

/* One "* LIST" response (RFC 3501 7.2.2, RFC 6154, RFC 5258). Pointers point
 * into the parsed data. */
struct imap_list_entry {
    const char *attrs;          /* inside the attribute parentheses: atoms like */
    size_t attrs_len;           /* \HasNoChildren \Trash (imap_list_has_attr) */
    char delimiter;             /* hierarchy delimiter; '\0' for NIL */
    /* The mailbox name: IMAP_TOK_ATOM or IMAP_TOK_QUOTED (read it with
     * imap_token_copy), or IMAP_TOK_LITERAL when it came as a literal that
     * was not absorbed into the line, so its value is unknown. */
    struct imap_token name;
};

/* Parse the data of "* LIST <data>" (imap_response.data):
 * "(" [attributes] ")" SP (quoted-char / NIL) SP mailbox [SP extended-data].
 * A mailbox atom may hold "]" (astring). Returns false with *error on
 * malformed data. */
bool imap_list_parse(const char *data, size_t len, struct imap_list_entry *e,
                     const char **error);
/* Case-insensitive: does the entry carry the attribute, e.g. "\\Trash"? */
bool imap_list_has_attr(const struct imap_list_entry *e, const char *attr);

#endif
