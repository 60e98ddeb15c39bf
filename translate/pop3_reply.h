/* pop3_reply: reading a POP3 server's replies (RFC 1939, 2449), the client side
 * of what translate/pop3_parse.h is for the server side. Pure: no I/O.
 *
 * pop3_reply_reader frames a server's byte stream, fed in arbitrary splits,
 * into events, one per call of pop3_reply_feed():
 * - a status line: "+OK" or "-ERR", then the text after one space;
 * - for a multi-line response (after +OK to a command that has one), either
 *   each line, dot-unstuffed and without its line end (LINES mode, for CAPA,
 *   UIDL, LIST), or the unstuffed bytes as they arrive, line ends kept (STREAM
 *   mode, for TOP and RETR, whose lines have no useful bound);
 * - the end of the multi-line response (the line "."), after which the next
 *   status line is read.
 * The reader does not know which command a reply answers: the caller says
 * with pop3_reply_expect() whether a +OK opens a multi-line response. The
 * setting stays until changed, so a run of pipelined replies of one kind
 * needs it once; a caller changes it between events, before the next
 * status line is fed.
 *
 * Lines end with LF; a CR just before it is dropped (servers send CRLF; a
 * bare LF is accepted). Any other CR is a byte of the line. Status lines and
 * LINES-mode lines hold at most POP3_REPLY_LINE_MAX octets without the line
 * end: RFC 2449 bounds a response line at 512 octets with CRLF; twice that
 * leaves room for servers that overrun it. A longer line is reported once as
 * POP3_REPLY_TOO_LONG and skipped up to its LF. NUL bytes are ordinary bytes
 * (the line length is reported; the listing parsers below refuse them).
 *
 * Dot-unstuffing (RFC 1939 3): in a multi-line response a line that starts
 * with '.' loses that '.'; the line that is exactly "." ends the response.
 */
#ifndef POPGATE_POP3_REPLY_H
#define POPGATE_POP3_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POP3_REPLY_LINE_MAX 1024
/* RFC 1939: a unique-id is 1 to 70 characters in 0x21..0x7E. */
#define POP3_UIDL_MAX 70

/* What a +OK opens. */
enum pop3_reply_expect {
    POP3_EXPECT_SINGLE = 0,     /* a single-line reply (USER, PASS, STLS, QUIT) */
    POP3_EXPECT_LINES,          /* multi-line, reported line by line */
    POP3_EXPECT_STREAM,         /* multi-line, reported as data spans */
};

enum pop3_reply_event_type {
    POP3_REPLY_AGAIN = 0,       /* all input consumed, nothing complete */
    POP3_REPLY_OK,              /* status "+OK"; text = what follows "+OK " */
    POP3_REPLY_ERR,             /* status "-ERR"; text = what follows "-ERR " */
    POP3_REPLY_BAD_STATUS,      /* a status line that is neither; text = the line */
    POP3_REPLY_LINE,            /* LINES mode: one unstuffed line, without line end */
    POP3_REPLY_DATA,            /* STREAM mode: unstuffed bytes, line ends as sent */
    POP3_REPLY_END,             /* the "." line: the multi-line response is over */
    POP3_REPLY_TOO_LONG,        /* a status or LINES-mode line passed the bound */
};

struct pop3_reply_event {
    enum pop3_reply_event_type type;
    /* OK, ERR, BAD_STATUS, LINE: the text, NUL-terminated inside the reader
     * (it may also hold NULs of its own: use len). DATA: a span of the input
     * passed in, or of static storage (a CR the reader held back). Valid
     * until the next call. NULL and 0 for the other events. */
    const char *text;
    size_t len;
};

enum pop3_reply_mode {
    POP3_MODE_STATUS,           /* reading a status line */
    POP3_MODE_LINES,            /* inside a multi-line response, line by line */
    POP3_MODE_STREAM,           /* inside a multi-line response, as data */
};

struct pop3_reply_reader {
    enum pop3_reply_expect expect;
    enum pop3_reply_mode mode;
    /* Line framing (STATUS and LINES modes). */
    size_t len;
    bool skipping;              /* discarding an over-long line to its LF */
    bool pending_cr;            /* a CR was read; the next byte says if it ends the line */
    /* STREAM mode: where the current line stands. */
    enum { POP3_STREAM_LINE_START, POP3_STREAM_MID_LINE, POP3_STREAM_DOT,
           POP3_STREAM_DOT_CR } stream;
    char buf[POP3_REPLY_LINE_MAX + 1];  /* +1 for the NUL */
};

void pop3_reply_reader_init(struct pop3_reply_reader *r);
void pop3_reply_expect(struct pop3_reply_reader *r, enum pop3_reply_expect e);
/* True between a +OK that opened a multi-line response and its END. */
bool pop3_reply_in_multiline(const struct pop3_reply_reader *r);

/* Consumes input up to the end of at most one event and returns how many
 * bytes it took; ev says what happened. AGAIN means all len bytes were
 * consumed without completing an event. Every call with len > 0 consumes at
 * least one byte or reports an event. */
size_t pop3_reply_feed(struct pop3_reply_reader *r, const char *data, size_t len,
                       struct pop3_reply_event *ev);

/* A response code at the start of a status text (RFC 2449 8): "[IN-USE] ...".
 * Case-insensitive; "SYS" matches "[SYS/TEMP]" too (a code's hierarchy). */
bool pop3_reply_has_code(const char *text, size_t len, const char *code);

/* One line of a UIDL listing: "<msgnum> <unique-id>", fields separated by
 * one or more spaces, trailing spaces and tabs ignored. */
enum pop3_listing_result {
    POP3_LISTING_OK = 0,
    POP3_LISTING_BAD_VALUE,     /* message number fine, the UIDL or size is not */
    POP3_LISTING_MALFORMED,     /* no usable message number */
};
/* msgnum: ASCII digits, 1..UINT32_MAX, no sign, no overflow. uidl:
 * 1..POP3_UIDL_MAX octets of 0x21..0x7E, pointing into line. On BAD_VALUE
 * *msgnum is set and *uidl is not. */
enum pop3_listing_result pop3_parse_uidl_line(const char *line, size_t len, uint32_t *msgnum,
                                              const char **uidl, size_t *uidl_len);
/* One line of a LIST listing: "<msgnum> <octets>", then anything after a
 * space (RFC 1939 7 leaves what follows the size to the server). octets:
 * ASCII digits, 0..UINT32_MAX. On BAD_VALUE *msgnum is set and *size is not. */
enum pop3_listing_result pop3_parse_list_line(const char *line, size_t len, uint32_t *msgnum,
                                              uint32_t *size);

/* The text of a +OK to STAT: "<count> <octets>" (RFC 1939 5), then anything
 * after a space. count: ASCII digits, 0..UINT32_MAX; octets: ASCII digits of
 * any size (a maildrop may hold more than 4 GiB), not returned. */
bool pop3_parse_stat(const char *text, size_t len, uint32_t *count);

/* Is s[0..len) a valid unique-id? */
bool pop3_uidl_valid(const char *s, size_t len);

#endif
