/* pop3_parse: the POP3 command parser (RFC 1939, 2449, 2595, 5034). Pure: no I/O.
 *
 * Two layers, like nginx's ngx_mail_parse.c:
 * - pop3_line_reader splits an input byte stream into command lines, whatever
 *   the split of the input. A line longer than POP3_LINE_MAX octets is reported
 *   once as POP3_LINE_TOO_LONG and skipped up to its LF; memory stays bounded.
 * - pop3_command_parse() turns one line into a verb and its arguments.
 *
 * Lines end with LF; a CR before it is dropped, a CR anywhere else is kept as a
 * byte of the line. A NUL byte inside a line makes the line invalid
 * (POP3_LINE_INVALID, reported at its LF), since no POP3 argument may carry one.
 */
#ifndef POPGATE_POP3_PARSE_H
#define POPGATE_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 2449: 255 octets per command line including CRLF. We accept 255 octets of
 * content excluding CRLF; SASL continuation lines may be longer (see below). */
#define POP3_LINE_MAX 255
/* AUTH PLAIN continuation lines carry base64 of user+pass (RFC 5034 allows more
 * than 255 octets for them). */
#define POP3_SASL_LINE_MAX 1024

enum pop3_line_status {
    POP3_LINE_AGAIN,     /* all input consumed, no complete line yet */
    POP3_LINE_READY,     /* *line / *len hold one line without CR/LF */
    POP3_LINE_TOO_LONG,  /* a line exceeded the limit; it is being skipped */
    POP3_LINE_INVALID,   /* a complete line contained a NUL byte */
};

struct pop3_line_reader {
    size_t limit;                       /* current limit, <= POP3_SASL_LINE_MAX */
    size_t len;
    bool skipping;                      /* discarding an over-long line to its LF */
    bool invalid;                       /* the line being read contains NUL */
    /* A CR was read and is not yet in buf: only the next byte tells whether it
     * ends the line (LF follows) or is a byte of it, and so whether it counts
     * against the limit. */
    bool pending_cr;
    /* Octets of buf (line and NUL) handed out with the last READY line: a
     * PASS or AUTH line holds a password, so they are wiped as soon as the
     * caller is done with the line (pop3_line_reader_forget_line, or at the
     * next feed at the latest). */
    size_t reported;
    char buf[POP3_SASL_LINE_MAX + 1];   /* +1 for a terminating NUL */
};

/* Secrets pass through the reader, so every byte it drops is wiped
 * (explicit_bzero): a discarded invalid or over-long line, the reported line
 * once forgotten, and everything at deinit. */
void pop3_line_reader_init(struct pop3_line_reader *r);
/* Wipes everything, the partial line included (the connection ends). */
void pop3_line_reader_deinit(struct pop3_line_reader *r);
/* The caller is done with the line of the last READY: wipe it now. */
void pop3_line_reader_forget_line(struct pop3_line_reader *r);
/* Raise the limit for the next line (AUTH continuation); reset to POP3_LINE_MAX
 * automatically after each line reported (READY, INVALID or TOO_LONG). */
void pop3_line_reader_allow_long_line(struct pop3_line_reader *r);

/* Consume input up to and including the end of at most one line. Returns the
 * number of bytes consumed; *status says what happened. On POP3_LINE_READY,
 * *line points into the reader (NUL-terminated, valid until the next call or
 * pop3_line_reader_forget_line, which wipe it);
 * otherwise *line is NULL. POP3_LINE_TOO_LONG is returned as soon as the
 * limit is passed, once per line; the rest of that line up to its LF is then
 * consumed silently by later calls, and the next line is read normally.
 * POP3_LINE_AGAIN means all of data was consumed. */
size_t pop3_line_reader_feed(struct pop3_line_reader *r, const char *data, size_t len,
                             enum pop3_line_status *status, const char **line, size_t *line_len);

enum pop3_verb {
    POP3_UNKNOWN = 0,
    POP3_USER, POP3_PASS, POP3_AUTH, POP3_APOP, POP3_CAPA, POP3_STLS, POP3_QUIT,
    POP3_STAT, POP3_LIST, POP3_UIDL, POP3_RETR, POP3_TOP, POP3_DELE, POP3_RSET, POP3_NOOP,
    POP3_VERB_COUNT
};
const char *pop3_verb_name(enum pop3_verb v);

#define POP3_MAX_ARGS 2

struct pop3_command {
    enum pop3_verb verb;
    unsigned argc;                      /* 0..POP3_MAX_ARGS, or more seen: too_many_args */
    bool too_many_args;
    const char *argv[POP3_MAX_ARGS];    /* point into the line passed in */
    size_t argv_len[POP3_MAX_ARGS];
    /* PASS only: everything after the verb and one space, spaces inside and at
     * the end kept (passwords may hold spaces, as Dovecot and most servers
     * accept). A PASS line is therefore not split into arguments: argv[0] is
     * rest and argc is 1, or 0 when rest is empty. For every other verb rest
     * is the empty string, since splitting has put NULs into that text. */
    const char *rest;
};

/* Parse one line (as produced by the reader; it is modified in place: the space
 * after the verb and argument separators become NUL). The verb is everything
 * before the first space, matched case-insensitively; arguments are separated
 * by single or multiple spaces. All pointers in *cmd point into line. */
void pop3_command_parse(char *line, struct pop3_command *cmd);

/* Strict message-number parse (Dovecot's rule): only ASCII digits, no sign, no
 * leading '+', no overflow (LIST 4294967297 is an error, not 1), value in
 * 1..max. Returns false otherwise. */
bool pop3_parse_msgnum(const char *s, uint32_t max, uint32_t *out);
/* Non-negative line count for TOP: digits only, saturates at UINT32_MAX. */
bool pop3_parse_count(const char *s, uint32_t *out);

#endif
