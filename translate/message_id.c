/* message_id.c: see message_id.h. Two passes: find the one Message-ID field
 * in the raw header, then read its value through a cursor that unfolds it on
 * the fly, so nothing is copied but the result. */
#include "message_id.h"

#include <stdbool.h>
#include <string.h>

#define FIELD_NAME "Message-ID"
#define FIELD_NAME_LEN (sizeof FIELD_NAME - 1)

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The line starting at p: returns where its content ends (before CRLF or
 * LF, or at end) and sets *next to the start of the following line. */
static const char *line_end(const char *p, const char *end, const char **next)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    if (!lf) {
        *next = end;
        return end;
    }
    *next = lf + 1;
    return lf > p && lf[-1] == '\r' ? lf - 1 : lf;
}

/* ASCII only, whatever the locale. */
static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Is the line [p, le) a Message-ID field? Then *value is just past its colon. */
static bool message_id_field(const char *p, const char *le, const char **value)
{
    if ((size_t)(le - p) < FIELD_NAME_LEN + 1)
        return false;
    for (size_t i = 0; i < FIELD_NAME_LEN; i++)
        if (lower(p[i]) != lower(FIELD_NAME[i]))
            return false;
    p += FIELD_NAME_LEN;
    while (p < le && blank(*p))
        p++;
    if (p == le || *p != ':')
        return false;
    *value = p + 1;
    return true;
}

/* A field value with its line ends removed: each LF, and a CR just before
 * it, is skipped. Inside a field every line end is followed by a blank. */
struct cursor {
    const char *p;
    const char *end;
};

static void skip_line_ends(struct cursor *c)
{
    while (c->p < c->end) {
        if (*c->p == '\n')
            c->p++;
        else if (*c->p == '\r' && c->end - c->p > 1 && c->p[1] == '\n')
            c->p += 2;
        else
            break;
    }
}

/* The next unfolded byte, or -1 at the end. */
static int peek(struct cursor *c)
{
    skip_line_ends(c);
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

static int next(struct cursor *c)
{
    int ch = peek(c);
    if (ch >= 0)
        c->p++;
    return ch;
}

/* CFWS: blanks and comments. A comment nests and may quote any byte with a
 * backslash. False for a comment that does not end. */
static bool skip_cfws(struct cursor *c)
{
    for (;;) {
        int ch = peek(c);
        if (ch == ' ' || ch == '\t') {
            c->p++;
            continue;
        }
        if (ch != '(')
            return true;
        c->p++;
        size_t depth = 1;
        while (depth > 0) {
            ch = next(c);
            if (ch < 0)
                return false;
            if (ch == '\\') {
                if (next(c) < 0)
                    return false;
            } else if (ch == '(') {
                depth++;
            } else if (ch == ')') {
                depth--;
            }
        }
    }
}

static size_t parse_value(struct cursor *c, char out[UIDL_MSGID_MAX + 1])
{
    if (!skip_cfws(c) || next(c) != '<')
        return 0;
    size_t n = 0;
    out[n++] = '<';
    for (;;) {
        int ch = next(c);
        if (ch == '>')
            break;
        if (ch < 0x21 || ch > 0x7e || ch == '<' || n + 1 >= UIDL_MSGID_MAX)
            return 0;
        out[n++] = (char)ch;
    }
    if (n == 1)
        return 0;
    out[n++] = '>';
    if (!skip_cfws(c) || peek(c) >= 0)
        return 0;
    out[n] = '\0';
    return n;
}

size_t message_id_extract(const char *header, size_t len, char out[UIDL_MSGID_MAX + 1])
{
    const char *p = header, *end = header + len;
    struct cursor value = { NULL, NULL };
    bool found = false;

    out[0] = '\0';
    while (p < end) {
        const char *after;
        const char *le = line_end(p, end, &after);
        if (le == p)
            break;  /* the empty line that ends the header */
        const char *v;
        if (blank(*p) || !message_id_field(p, le, &v)) {
            p = after;
            continue;
        }
        if (found)
            return 0;  /* two Message-IDs: which one the old server saw is unknown */
        found = true;
        value.p = v;
        value.end = le;
        p = after;
        while (p < end && blank(*p)) {
            value.end = line_end(p, end, &after);
            p = after;
        }
    }
    if (!found)
        return 0;
    size_t n = parse_value(&value, out);
    if (n == 0)
        out[0] = '\0';
    return n;
}
