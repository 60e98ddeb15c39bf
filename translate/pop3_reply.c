/* POP3 reply reader and listing parsers; the contract is in pop3_reply.h. */
#include "pop3_reply.h"

#include <string.h>

/* Held back at ".\r" when the byte after the CR was not LF: a byte of data. */
static const char held_cr[] = "\r";

static void line_start(struct pop3_reply_reader *r)
{
    r->len = 0;
    r->skipping = false;
    r->pending_cr = false;
}

void pop3_reply_reader_init(struct pop3_reply_reader *r)
{
    r->expect = POP3_EXPECT_SINGLE;
    r->mode = POP3_MODE_STATUS;
    r->stream = POP3_STREAM_LINE_START;
    line_start(r);
    r->buf[0] = '\0';
}

void pop3_reply_expect(struct pop3_reply_reader *r, enum pop3_reply_expect e)
{
    r->expect = e;
}

bool pop3_reply_in_multiline(const struct pop3_reply_reader *r)
{
    return r->mode != POP3_MODE_STATUS;
}

static char ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* Does line start with word (upper case) followed by its end or a space? */
static bool status_word(const char *line, size_t len, const char *word, size_t *text_at)
{
    size_t n = strlen(word);
    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_upper(line[i]) != word[i])
            return false;
    if (len == n) {
        *text_at = n;
        return true;
    }
    if (line[n] != ' ')
        return false;
    *text_at = n + 1;
    return true;
}

static void set_event(struct pop3_reply_event *ev, enum pop3_reply_event_type t,
                      const char *text, size_t len)
{
    ev->type = t;
    ev->text = text;
    ev->len = len;
}

/* A complete line of r->len octets is in buf (STATUS or LINES mode). */
static void line_complete(struct pop3_reply_reader *r, struct pop3_reply_event *ev)
{
    size_t n = r->len;
    line_start(r);
    r->buf[n] = '\0';
    if (r->mode == POP3_MODE_LINES) {
        if (n == 1 && r->buf[0] == '.') {
            r->mode = POP3_MODE_STATUS;
            set_event(ev, POP3_REPLY_END, NULL, 0);
            return;
        }
        if (n > 0 && r->buf[0] == '.')
            set_event(ev, POP3_REPLY_LINE, r->buf + 1, n - 1);
        else
            set_event(ev, POP3_REPLY_LINE, r->buf, n);
        return;
    }
    size_t at;
    if (status_word(r->buf, n, "+OK", &at)) {
        set_event(ev, POP3_REPLY_OK, r->buf + at, n - at);
        if (r->expect == POP3_EXPECT_LINES) {
            r->mode = POP3_MODE_LINES;
        } else if (r->expect == POP3_EXPECT_STREAM) {
            r->mode = POP3_MODE_STREAM;
            r->stream = POP3_STREAM_LINE_START;
        }
        return;
    }
    if (status_word(r->buf, n, "-ERR", &at)) {
        set_event(ev, POP3_REPLY_ERR, r->buf + at, n - at);
        return;
    }
    set_event(ev, POP3_REPLY_BAD_STATUS, r->buf, n);
}

/* Appends one byte; false when the line passes the bound (it is then skipped). */
static bool line_append(struct pop3_reply_reader *r, char c)
{
    if (r->len >= POP3_REPLY_LINE_MAX) {
        line_start(r);
        r->skipping = true;
        return false;
    }
    r->buf[r->len++] = c;
    return true;
}

static size_t feed_line(struct pop3_reply_reader *r, const char *data, size_t len,
                        struct pop3_reply_event *ev)
{
    size_t i = 0;
    while (i < len) {
        if (r->skipping) {
            const char *lf = memchr(data + i, '\n', len - i);
            if (lf == NULL)
                return len;
            i = (size_t)(lf - data) + 1;
            line_start(r);
            continue;
        }
        char c = data[i++];
        if (c == '\n') {
            line_complete(r, ev);
            return i;
        }
        if (r->pending_cr) {
            r->pending_cr = false;
            if (!line_append(r, '\r')) {
                set_event(ev, POP3_REPLY_TOO_LONG, NULL, 0);
                return i;
            }
        }
        if (c == '\r') {
            r->pending_cr = true;
            continue;
        }
        if (!line_append(r, c)) {
            set_event(ev, POP3_REPLY_TOO_LONG, NULL, 0);
            return i;
        }
    }
    return i;
}

/* STREAM mode: one DATA span (or END). A span runs from the current byte to
 * the end of the last whole line in the input that is not followed by a '.'
 * (which has to be removed), or to the end of the input. */
static size_t feed_stream(struct pop3_reply_reader *r, const char *data, size_t len,
                          struct pop3_reply_event *ev)
{
    size_t i = 0;
    while (i < len) {
        char c = data[i];
        switch (r->stream) {
        case POP3_STREAM_LINE_START:
            if (c == '.') {
                r->stream = POP3_STREAM_DOT;
                i++;
            } else {
                r->stream = POP3_STREAM_MID_LINE;
            }
            break;
        case POP3_STREAM_DOT:
            if (c == '\r') {
                r->stream = POP3_STREAM_DOT_CR;
                i++;
                break;
            }
            if (c == '\n') {
                r->mode = POP3_MODE_STATUS;
                r->stream = POP3_STREAM_LINE_START;
                set_event(ev, POP3_REPLY_END, NULL, 0);
                return i + 1;
            }
            /* The stuffing dot is dropped; the line goes on from c. */
            r->stream = POP3_STREAM_MID_LINE;
            break;
        case POP3_STREAM_DOT_CR:
            if (c == '\n') {
                r->mode = POP3_MODE_STATUS;
                r->stream = POP3_STREAM_LINE_START;
                set_event(ev, POP3_REPLY_END, NULL, 0);
                return i + 1;
            }
            /* ".\r" and more: a line "\r..." whose dot was removed. */
            r->stream = POP3_STREAM_MID_LINE;
            set_event(ev, POP3_REPLY_DATA, held_cr, 1);
            return i;
        case POP3_STREAM_MID_LINE: {
            size_t start = i;
            for (;;) {
                const char *lf = memchr(data + i, '\n', len - i);
                if (lf == NULL) {
                    i = len;
                    break;
                }
                i = (size_t)(lf - data) + 1;
                if (i == len || data[i] == '.') {
                    r->stream = POP3_STREAM_LINE_START;
                    break;
                }
            }
            set_event(ev, POP3_REPLY_DATA, data + start, i - start);
            return i;
        }
        }
    }
    return i;
}

size_t pop3_reply_feed(struct pop3_reply_reader *r, const char *data, size_t len,
                       struct pop3_reply_event *ev)
{
    set_event(ev, POP3_REPLY_AGAIN, NULL, 0);
    if (r->mode == POP3_MODE_STREAM)
        return feed_stream(r, data, len, ev);
    return feed_line(r, data, len, ev);
}

bool pop3_reply_has_code(const char *text, size_t len, const char *code)
{
    size_t n = strlen(code);
    if (len < n + 2 || text[0] != '[')
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_upper(text[1 + i]) != ascii_upper(code[i]))
            return false;
    return text[1 + n] == ']' || text[1 + n] == '/';
}

bool pop3_uidl_valid(const char *s, size_t len)
{
    if (len < 1 || len > POP3_UIDL_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* Digits at line[*pos..] up to a space or the end, as a uint32 no greater
 * than max; advances *pos past them. */
static bool parse_u32(const char *line, size_t len, size_t *pos, uint32_t *out)
{
    size_t i = *pos;
    uint64_t v = 0;
    if (i >= len || line[i] < '0' || line[i] > '9')
        return false;
    while (i < len && line[i] >= '0' && line[i] <= '9') {
        v = v * 10 + (uint64_t)(line[i] - '0');
        if (v > UINT32_MAX)
            return false;
        i++;
    }
    if (i < len && line[i] != ' ')
        return false;
    *pos = i;
    *out = (uint32_t)v;
    return true;
}

static size_t skip_spaces(const char *line, size_t len, size_t i)
{
    while (i < len && line[i] == ' ')
        i++;
    return i;
}

/* The line without trailing spaces and tabs. */
static size_t trimmed_len(const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    return len;
}

static bool parse_msgnum(const char *line, size_t len, size_t *pos, uint32_t *msgnum)
{
    uint32_t n;
    if (!parse_u32(line, len, pos, &n) || n == 0)
        return false;
    *msgnum = n;
    return true;
}

enum pop3_listing_result pop3_parse_uidl_line(const char *line, size_t len, uint32_t *msgnum,
                                              const char **uidl, size_t *uidl_len)
{
    size_t i = 0;
    len = trimmed_len(line, len);
    if (!parse_msgnum(line, len, &i, msgnum))
        return POP3_LISTING_MALFORMED;
    i = skip_spaces(line, len, i);
    if (!pop3_uidl_valid(line + i, len - i))
        return POP3_LISTING_BAD_VALUE;
    *uidl = line + i;
    *uidl_len = len - i;
    return POP3_LISTING_OK;
}

enum pop3_listing_result pop3_parse_list_line(const char *line, size_t len, uint32_t *msgnum,
                                              uint32_t *size)
{
    size_t i = 0;
    len = trimmed_len(line, len);
    if (!parse_msgnum(line, len, &i, msgnum))
        return POP3_LISTING_MALFORMED;
    i = skip_spaces(line, len, i);
    uint32_t v;
    if (!parse_u32(line, len, &i, &v))
        return POP3_LISTING_BAD_VALUE;
    *size = v;
    return POP3_LISTING_OK;
}

bool pop3_parse_stat(const char *text, size_t len, uint32_t *count)
{
    size_t i = 0;
    uint32_t n;
    len = trimmed_len(text, len);
    if (!parse_u32(text, len, &i, &n) || i == len)
        return false;
    i = skip_spaces(text, len, i);
    size_t digits = i;
    while (i < len && text[i] >= '0' && text[i] <= '9')
        i++;
    if (i == digits || (i < len && text[i] != ' '))
        return false;
    *count = n;
    return true;
}
