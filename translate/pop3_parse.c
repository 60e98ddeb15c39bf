/* POP3 command line reader and parser; the contract is in pop3_parse.h. */
#include "pop3_parse.h"

#include <string.h>

/* Drops the line being read; its bytes may be a password's. */
static void reader_start_line(struct pop3_line_reader *r)
{
    explicit_bzero(r->buf, r->len);
    r->len = 0;
    r->skipping = false;
    r->invalid = false;
    r->pending_cr = false;
}

void pop3_line_reader_init(struct pop3_line_reader *r)
{
    explicit_bzero(r, sizeof *r);
    r->limit = POP3_LINE_MAX;
}

void pop3_line_reader_deinit(struct pop3_line_reader *r)
{
    explicit_bzero(r, sizeof *r);
}

void pop3_line_reader_forget_line(struct pop3_line_reader *r)
{
    explicit_bzero(r->buf, r->reported);
    r->reported = 0;
}

void pop3_line_reader_allow_long_line(struct pop3_line_reader *r)
{
    r->limit = POP3_SASL_LINE_MAX;
}

/* A line has been reported to the caller: whatever it was, the raised limit
 * applied to it only. */
static void reader_line_reported(struct pop3_line_reader *r)
{
    r->limit = POP3_LINE_MAX;
}

/* Appends one content byte; false when the line has passed the limit, after
 * which the reader skips to the LF. buf holds at most limit (<= POP3_SASL_LINE_MAX)
 * content bytes plus the NUL added on READY. */
static bool reader_append(struct pop3_line_reader *r, char c)
{
    if (r->len >= r->limit) {
        reader_start_line(r);
        r->skipping = true;
        reader_line_reported(r);
        return false;
    }
    if (c == '\0')
        r->invalid = true;
    r->buf[r->len++] = c;
    return true;
}

size_t pop3_line_reader_feed(struct pop3_line_reader *r, const char *data, size_t len,
                             enum pop3_line_status *status, const char **line, size_t *line_len)
{
    size_t i = 0;

    *line = NULL;
    *line_len = 0;
    pop3_line_reader_forget_line(r);
    while (i < len) {
        if (r->skipping) {
            const char *lf = memchr(data + i, '\n', len - i);
            if (lf == NULL) {
                i = len;
                break;
            }
            i = (size_t)(lf - data) + 1;
            reader_start_line(r);
            continue;
        }

        char c = data[i++];
        if (c == '\n') {
            bool invalid = r->invalid;
            size_t n = r->len;
            if (invalid) {
                reader_start_line(r);
                reader_line_reported(r);
                *status = POP3_LINE_INVALID;
                return i;
            }
            /* Handed out: wiped when forgotten, not here. */
            r->len = 0;
            reader_start_line(r);
            reader_line_reported(r);
            r->buf[n] = '\0';
            r->reported = n + 1;
            *line = r->buf;
            *line_len = n;
            *status = POP3_LINE_READY;
            return i;
        }
        if (r->pending_cr) {
            r->pending_cr = false;
            if (!reader_append(r, '\r')) {
                *status = POP3_LINE_TOO_LONG;
                return i;
            }
        }
        if (c == '\r') {
            r->pending_cr = true;
            continue;
        }
        if (!reader_append(r, c)) {
            *status = POP3_LINE_TOO_LONG;
            return i;
        }
    }
    *status = POP3_LINE_AGAIN;
    return i;
}

struct verb_entry {
    const char *name;
    size_t len;
};

/* Indexed by enum pop3_verb; upper case, as the names are sent and logged. */
#define VERB(name) { name, sizeof(name) - 1 }
static const struct verb_entry verb_table[POP3_VERB_COUNT] = {
    [POP3_UNKNOWN] = VERB("UNKNOWN"),
    [POP3_USER] = VERB("USER"),
    [POP3_PASS] = VERB("PASS"),
    [POP3_AUTH] = VERB("AUTH"),
    [POP3_APOP] = VERB("APOP"),
    [POP3_CAPA] = VERB("CAPA"),
    [POP3_STLS] = VERB("STLS"),
    [POP3_QUIT] = VERB("QUIT"),
    [POP3_STAT] = VERB("STAT"),
    [POP3_LIST] = VERB("LIST"),
    [POP3_UIDL] = VERB("UIDL"),
    [POP3_RETR] = VERB("RETR"),
    [POP3_TOP] = VERB("TOP"),
    [POP3_DELE] = VERB("DELE"),
    [POP3_RSET] = VERB("RSET"),
    [POP3_NOOP] = VERB("NOOP"),
};
#undef VERB

const char *pop3_verb_name(enum pop3_verb v)
{
    if ((unsigned)v >= POP3_VERB_COUNT)
        v = POP3_UNKNOWN;
    return verb_table[v].name;
}

/* ASCII only: toupper() would depend on the locale. */
static char ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static enum pop3_verb verb_lookup(const char *s, size_t len)
{
    for (unsigned v = POP3_UNKNOWN + 1; v < POP3_VERB_COUNT; v++) {
        const struct verb_entry *e = &verb_table[v];
        if (e->len != len)
            continue;
        size_t i = 0;
        while (i < len && ascii_upper(s[i]) == e->name[i])
            i++;
        if (i == len)
            return (enum pop3_verb)v;
    }
    return POP3_UNKNOWN;
}

void pop3_command_parse(char *line, struct pop3_command *cmd)
{
    char *args = strchr(line, ' ');

    memset(cmd, 0, sizeof(*cmd));
    cmd->rest = "";
    if (args == NULL) {
        cmd->verb = verb_lookup(line, strlen(line));
        return;
    }
    cmd->verb = verb_lookup(line, (size_t)(args - line));
    *args++ = '\0';

    if (cmd->verb == POP3_PASS) {
        cmd->rest = args;
        if (*args != '\0') {
            cmd->argc = 1;
            cmd->argv[0] = args;
            cmd->argv_len[0] = strlen(args);
        }
        return;
    }

    char *p = args;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        char *start = p;
        while (*p != ' ' && *p != '\0')
            p++;
        if (cmd->argc == POP3_MAX_ARGS) {
            cmd->too_many_args = true;
            break;
        }
        cmd->argv[cmd->argc] = start;
        cmd->argv_len[cmd->argc] = (size_t)(p - start);
        cmd->argc++;
        if (*p == '\0')
            break;
        *p++ = '\0';
    }
}

/* Digits only, at least one; false on anything else. Saturates at UINT32_MAX
 * and says so through *overflow, so each caller picks its own rule. */
static bool parse_digits(const char *s, uint32_t *out, bool *overflow)
{
    uint32_t v = 0;

    *overflow = false;
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        uint32_t d = (uint32_t)(*s - '0');
        if (v > (UINT32_MAX - d) / 10) {
            *overflow = true;
            v = UINT32_MAX;
        } else {
            v = v * 10 + d;
        }
    }
    *out = v;
    return true;
}

bool pop3_parse_msgnum(const char *s, uint32_t max, uint32_t *out)
{
    uint32_t v;
    bool overflow;

    if (!parse_digits(s, &v, &overflow) || overflow || v == 0 || v > max)
        return false;
    *out = v;
    return true;
}

bool pop3_parse_count(const char *s, uint32_t *out)
{
    bool overflow;

    return parse_digits(s, out, &overflow);
}
