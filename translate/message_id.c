/* message_id.c: see message_id.h. Two passes: find the one Message-ID field
 * in the raw header, then copy its value with the line ends left out, so
 * nothing is copied but the result. */
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

size_t message_id_extract(const char *header, size_t len, char out[UIDL_MSGID_MAX + 1])
{
    const char *p = header, *end = header + len;
    const char *value = NULL;   /* the field's first line, after the colon */

    out[0] = '\0';
    while (p < end) {
        const char *after;
        const char *le = line_end(p, end, &after);
        if (le == p)
            break;  /* the empty line that ends the header */
        const char *v;
        if (!blank(*p) && message_id_field(p, le, &v)) {
            if (value)
                return 0;  /* two Message-IDs: which one the other server saw is unknown */
            value = v;
        }
        p = after;
    }
    if (!value)
        return 0;

    /* Copy the unfolded value: its first line, then each continuation line
     * without its line end; leading blanks are not copied, and n_kept marks
     * the end of the last non-blank octet, so trailing blanks fall off. */
    size_t n = 0, n_kept = 0;
    p = value;
    for (bool first = true;; first = false) {
        const char *after;
        const char *le = line_end(p, end, &after);
        if (!first && (p == le || !blank(*p)))
            break;  /* not a continuation line: the field ended */
        for (; p < le; p++) {
            if (n == 0 && blank(*p))
                continue;
            if (n == UIDL_MSGID_MAX) {
                /* Full: only blanks may follow (they would be trimmed). */
                if (!blank(*p)) {
                    out[0] = '\0';
                    return 0;
                }
                continue;
            }
            out[n++] = *p;
            if (!blank(*p))
                n_kept = n;
        }
        p = after;
        if (p >= end)
            break;
    }
    out[n_kept] = '\0';
    return n_kept;
}
