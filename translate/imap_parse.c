/* imap_parse: IMAP response framing, tokens and the responses the gateway reads. */
#include "imap_parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- reader ------------------------------------------------------------- */

void imap_reader_init(struct imap_reader *r)
{
    memset(r, 0, sizeof *r);
    r->state = IMAP_READER_TEXT;
}

void imap_reader_deinit(struct imap_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
    r->state = IMAP_READER_FAILED;
    r->error = "reader closed";
}

static size_t reader_fail(struct imap_reader *r, struct imap_read_event *ev,
                          const char *msg, size_t consumed)
{
    r->state = IMAP_READER_FAILED;
    r->error = msg;
    ev->status = IMAP_READ_ERROR;
    ev->error = msg;
    return consumed;
}

/* Make room for n more octets, never beyond IMAP_LINE_MAX. */
static bool reader_reserve(struct imap_reader *r, size_t n)
{
    if (n > IMAP_LINE_MAX - r->len)
        return false;
    size_t need = r->len + n;
    if (need <= r->cap)
        return true;
    size_t cap = r->cap ? r->cap : IMAP_LINE_INITIAL;
    while (cap < need)
        cap *= 2;
    if (cap > IMAP_LINE_MAX)
        cap = IMAP_LINE_MAX;
    char *nb = realloc(r->buf, cap);
    if (nb == NULL)
        return false;
    r->buf = nb;
    r->cap = cap;
    return true;
}

/* If the collected text ends with "{N}" or "~{N}", return true with N and the
 * marker's offset. Anything else ending in "}" is left for the tokenizer to
 * judge. */
static bool ends_with_literal(const struct imap_reader *r, uint64_t *n,
                              bool *literal8, size_t *marker)
{
    if (r->len < 3 || r->len - r->segment_start < 3 || r->buf[r->len - 1] != '}')
        return false;
    size_t i = r->len - 1;
    uint64_t v = 0, mul = 1;
    size_t digits = 0;
    while (i > 0 && r->buf[i - 1] >= '0' && r->buf[i - 1] <= '9') {
        i--;
        digits++;
        /* 19 digits hold any value up to IMAP_LITERAL_MAX without overflow. */
        if (digits > 19)
            return false;
        v += (uint64_t)(r->buf[i] - '0') * mul;
        if (digits < 19)
            mul *= 10;
    }
    if (digits == 0 || i <= r->segment_start || r->buf[i - 1] != '{' || v > IMAP_LITERAL_MAX)
        return false;
    i--;
    *literal8 = (i > 0 && r->buf[i - 1] == '~');
    if (*literal8)
        i--;
    *n = v;
    *marker = i;
    return true;
}

static void reader_reset_line(struct imap_reader *r)
{
    r->len = 0;
    r->segment_start = 0;
    r->line_done = false;
    if (r->cap > IMAP_LINE_KEEP) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
}

/* Copy literal bytes into the line, escaped as inside a quoted string. Room
 * was reserved for the worst case when absorbing began. */
static void absorb_bytes(struct imap_reader *r, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"' || p[i] == '\\')
            r->buf[r->len++] = '\\';
        r->buf[r->len++] = p[i];
    }
}

size_t imap_reader_feed(struct imap_reader *r, const char *data, size_t len,
                        struct imap_read_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (r->state == IMAP_READER_FAILED)
        return reader_fail(r, ev, r->error, 0);
    if (r->line_done)
        reader_reset_line(r);

    size_t i = 0;
    while (i < len || (r->state == IMAP_READER_LITERAL && r->literal_left == 0)) {
        if (r->state == IMAP_READER_LITERAL) {
            if (r->literal_left == 0) {
                if (r->absorbing)
                    r->buf[r->len++] = '"';
                r->absorbing = false;
                r->state = IMAP_READER_TEXT;
                /* A handed-out literal leaves its "{N}" at the end of buf:
                 * only text read after it may announce the next literal. */
                r->segment_start = r->len;
                continue;
            }
            size_t n = len - i;
            if ((uint64_t)n > r->literal_left)
                n = (size_t)r->literal_left;
            if (r->absorbing) {
                absorb_bytes(r, data + i, n);
                r->literal_left -= n;
                i += n;
                continue;
            }
            ev->status = IMAP_READ_LITERAL_DATA;
            ev->data = data + i;
            ev->data_len = n;
            return i;
        }

        char ch = data[i++];
        if (r->pending_cr && ch != '\n')
            return reader_fail(r, ev, "bare CR in response", i);
        if (ch == '\r') {
            r->pending_cr = true;
            continue;
        }
        if (ch == '\0')
            return reader_fail(r, ev, "NUL in response", i);
        if (ch != '\n') {
            if (!reader_reserve(r, 1))
                return reader_fail(r, ev, "response line too long", i);
            r->buf[r->len++] = ch;
            continue;
        }

        r->pending_cr = false;
        uint64_t n;
        bool literal8;
        size_t marker;
        if (ends_with_literal(r, &n, &literal8, &marker)) {
            r->state = IMAP_READER_LITERAL;
            r->literal_left = n;
            r->marker_start = marker;
            ev->status = IMAP_READ_LITERAL_START;
            ev->line = r->buf;
            ev->line_len = r->len;
            ev->literal_len = n;
            ev->literal8 = literal8;
            return i;
        }
        r->line_done = true;
        ev->status = IMAP_READ_LINE;
        /* An empty line has no buffer yet; hand out a valid pointer anyway. */
        ev->line = r->buf ? r->buf : "";
        ev->line_len = r->len;
        return i;
    }
    ev->status = IMAP_READ_AGAIN;
    return i;
}

void imap_reader_literal_take(struct imap_reader *r, size_t n)
{
    if (r->state != IMAP_READER_LITERAL || r->absorbing)
        return;
    if ((uint64_t)n > r->literal_left)
        n = (size_t)r->literal_left;
    r->literal_left -= n;
}

bool imap_reader_absorb_literal(struct imap_reader *r)
{
    if (r->state != IMAP_READER_LITERAL || r->absorbing)
        return false;
    /* The marker goes; the literal comes back as '"' + escaped bytes + '"',
     * each byte at most doubled. */
    size_t base = r->marker_start;
    if (r->literal_left > (uint64_t)(IMAP_LINE_MAX - base - 2) / 2)
        return false;
    size_t worst = 2 + 2 * (size_t)r->literal_left;
    size_t kept = r->len;
    r->len = base;
    if (!reader_reserve(r, worst)) {
        r->len = kept;
        return false;
    }
    r->buf[r->len++] = '"';
    r->absorbing = true;
    return true;
}

/* ---- tokenizer ---------------------------------------------------------- */

void imap_tokenizer_init(struct imap_tokenizer *t, const char *line, size_t len)
{
    t->p = line;
    t->end = line + len;
    t->error = NULL;
}

static enum imap_token_type tok_fail(struct imap_tokenizer *t, struct imap_token *tok,
                                     const char *msg)
{
    t->error = msg;
    t->p = t->end;
    tok->type = IMAP_TOK_ERROR;
    return IMAP_TOK_ERROR;
}

/* Characters that end an atom. '[' does not: it opens a section inside the
 * atom ("BODY[HEADER]"). ']' does, so "[UIDVALIDITY 3]" ends after "3". */
static bool atom_char(unsigned char ch)
{
    if (ch <= 0x20 || ch >= 0x7f)
        return false;
    return ch != '(' && ch != ')' && ch != '{' && ch != '"' && ch != ']';
}

/* Scan a quoted string whose opening quote is at *pp; on success *pp points
 * past the closing quote. */
static bool scan_quoted(const char **pp, const char *end)
{
    const char *p = *pp + 1;
    while (p < end) {
        if (*p == '"') {
            *pp = p + 1;
            return true;
        }
        if (*p == '\\') {
            if (p + 1 >= end || (p[1] != '\\' && p[1] != '"'))
                return false;
            p++;
        }
        p++;
    }
    return false;
}

enum imap_token_type imap_next_token(struct imap_tokenizer *t, struct imap_token *tok)
{
    memset(tok, 0, sizeof *tok);
    if (t->error != NULL) {
        tok->type = IMAP_TOK_ERROR;
        return IMAP_TOK_ERROR;
    }
    while (t->p < t->end && *t->p == ' ')
        t->p++;
    if (t->p >= t->end) {
        tok->type = IMAP_TOK_END;
        return IMAP_TOK_END;
    }

    const char *start = t->p;
    unsigned char ch = (unsigned char)*start;
    tok->p = start;
    switch (ch) {
    case '(': t->p++; tok->len = 1; return tok->type = IMAP_TOK_LPAREN;
    case ')': t->p++; tok->len = 1; return tok->type = IMAP_TOK_RPAREN;
    case '[': t->p++; tok->len = 1; return tok->type = IMAP_TOK_LBRACKET;
    case ']': t->p++; tok->len = 1; return tok->type = IMAP_TOK_RBRACKET;
    case '"': {
        const char *p = start;
        if (!scan_quoted(&p, t->end))
            return tok_fail(t, tok, "unterminated or badly escaped quoted string");
        tok->p = start + 1;
        tok->len = (size_t)(p - start) - 2;
        t->p = p;
        return tok->type = IMAP_TOK_QUOTED;
    }
    default:
        break;
    }

    if (ch == '{' || (ch == '~' && start + 1 < t->end && start[1] == '{')) {
        const char *p = start + (ch == '~' ? 2 : 1);
        uint64_t v = 0;
        const char *digits = p;
        while (p < t->end && *p >= '0' && *p <= '9') {
            unsigned d = (unsigned)(*p - '0');
            if (v > (IMAP_LITERAL_MAX - d) / 10)
                return tok_fail(t, tok, "literal length out of range");
            v = v * 10 + d;
            p++;
        }
        if (p == digits || p >= t->end || *p != '}')
            return tok_fail(t, tok, "malformed literal marker");
        p++;
        tok->literal_len = v;
        tok->literal8 = (ch == '~');
        tok->len = (size_t)(p - start);
        t->p = p;
        return tok->type = IMAP_TOK_LITERAL;
    }

    if (!atom_char(ch))
        return tok_fail(t, tok, "unexpected character");
    const char *p = start;
    while (p < t->end) {
        if (*p == '[') {
            /* A section may hold spaces, parentheses and quoted header names. */
            p++;
            while (p < t->end && *p != ']') {
                if (*p == '"') {
                    if (!scan_quoted(&p, t->end))
                        return tok_fail(t, tok, "bad quoted string in section");
                    continue;
                }
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                    return tok_fail(t, tok, "unexpected character in section");
                p++;
            }
            if (p >= t->end)
                return tok_fail(t, tok, "unterminated section");
            p++;
            continue;
        }
        if (!atom_char((unsigned char)*p))
            break;
        p++;
    }
    tok->len = (size_t)(p - start);
    t->p = p;
    return tok->type = IMAP_TOK_ATOM;
}

bool imap_token_is(const struct imap_token *tok, const char *word)
{
    size_t n = strlen(word);
    return tok->type == IMAP_TOK_ATOM && tok->len == n && strncasecmp(tok->p, word, n) == 0;
}

static bool parse_u32(const char *p, size_t len, uint32_t *out)
{
    if (len == 0)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        uint32_t d = (uint32_t)(p[i] - '0');
        if (v > (UINT32_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool imap_token_u32(const struct imap_token *tok, uint32_t *out)
{
    return tok->type == IMAP_TOK_ATOM && parse_u32(tok->p, tok->len, out);
}

size_t imap_token_copy(const struct imap_token *tok, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < tok->len; i++) {
        char ch = tok->p[i];
        if (tok->type == IMAP_TOK_QUOTED && ch == '\\' && i + 1 < tok->len)
            ch = tok->p[++i];
        if (n + 1 < cap)
            out[n] = ch;
        n++;
    }
    out[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* ---- responses ---------------------------------------------------------- */

static bool span_is(const char *p, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len == n && strncasecmp(p, word, n) == 0;
}

bool imap_resp_name_is(const struct imap_response *r, const char *word)
{
    return span_is(r->name, r->name_len, word);
}

bool imap_resp_code_is(const struct imap_response *r, const char *word)
{
    return r->code != NULL && span_is(r->code, r->code_len, word);
}

/* Case-insensitive search for needle in a span that is not NUL-terminated. */
static const char *span_find(const char *p, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (strncasecmp(p + i, needle, n) == 0)
            return p + i;
    return NULL;
}

bool imap_response_throttled(const struct imap_response *r, uint32_t *backoff_ms)
{
    static const char suggested[] = "Suggested Backoff Time:";
    *backoff_ms = 0;
    if (r->status != IMAP_STATUS_NO && r->status != IMAP_STATUS_BAD && r->status != IMAP_STATUS_BYE)
        return false;
    if (imap_resp_code_is(r, "THROTTLED") || imap_resp_code_is(r, "LIMIT") ||
        span_find(r->text, r->text_len, "[THROTTLED]"))
        return true;
    if (!span_find(r->text, r->text_len, "Request is throttled"))
        return false;
    const char *p = span_find(r->text, r->text_len, suggested);
    if (p) {
        const char *end = r->text + r->text_len;
        p += sizeof suggested - 1;
        while (p < end && *p == ' ')
            p++;
        uint64_t v = 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            if ((v = v * 10 + (uint64_t)(*p - '0')) > UINT32_MAX)
                v = UINT32_MAX;
        *backoff_ms = (uint32_t)v;
    }
    return true;
}

/* Length of the word at p: up to a space or the end. */
static size_t word_len(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && *q != ' ')
        q++;
    return (size_t)(q - p);
}

/* resp-text: ["[" code [SP args] "]" SP] text */
static bool parse_resp_text(const char *p, const char *end, struct imap_response *r,
                            const char **error)
{
    if (p < end && *p == '[') {
        p++;
        const char *code = p;
        while (p < end && *p != ' ' && *p != ']') {
            if (!atom_char((unsigned char)*p)) {
                *error = "bad response code";
                return false;
            }
            p++;
        }
        if (p == code) {
            *error = "empty response code";
            return false;
        }
        r->code = code;
        r->code_len = (size_t)(p - code);
        if (p < end && *p == ' ') {
            p++;
            const char *args = p;
            const char *close = memchr(p, ']', (size_t)(end - p));
            if (close == NULL) {
                *error = "unterminated response code";
                return false;
            }
            r->code_args = args;
            r->code_args_len = (size_t)(close - args);
            p = close;
        }
        if (p >= end || *p != ']') {
            *error = "unterminated response code";
            return false;
        }
        p++;
        if (p < end && *p == ' ')
            p++;
    }
    r->text = p;
    r->text_len = (size_t)(end - p);
    return true;
}

static enum imap_resp_status status_of(const char *p, size_t len)
{
    if (span_is(p, len, "OK"))      return IMAP_STATUS_OK;
    if (span_is(p, len, "NO"))      return IMAP_STATUS_NO;
    if (span_is(p, len, "BAD"))     return IMAP_STATUS_BAD;
    if (span_is(p, len, "PREAUTH")) return IMAP_STATUS_PREAUTH;
    if (span_is(p, len, "BYE"))     return IMAP_STATUS_BYE;
    return IMAP_STATUS_NONE;
}

static bool valid_keyword(const char *p, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!atom_char((unsigned char)p[i]) || p[i] == '[')
            return false;
    return true;
}

bool imap_response_parse(const char *line, size_t len, struct imap_response *r,
                         const char **error)
{
    memset(r, 0, sizeof *r);
    const char *p = line, *end = line + len;
    *error = NULL;

    if (len == 0) {
        *error = "empty response line";
        return false;
    }
    if (*p == '+') {
        r->type = IMAP_RESP_CONTINUATION;
        p++;
        if (p < end && *p == ' ')
            p++;
        r->text = p;
        r->text_len = (size_t)(end - p);
        return true;
    }

    if (*p == '*') {
        r->type = IMAP_RESP_UNTAGGED;
        p++;
    } else {
        r->type = IMAP_RESP_TAGGED;
        const char *tag = p;
        while (p < end && atom_char((unsigned char)*p) && *p != '+' && *p != '[')
            p++;
        if (p == tag) {
            *error = "response does not start with a tag, '*' or '+'";
            return false;
        }
        r->tag = tag;
        r->tag_len = (size_t)(p - tag);
    }
    if (p >= end || *p != ' ') {
        *error = "missing space after tag";
        return false;
    }
    p++;

    size_t wl = word_len(p, end);
    uint32_t num;
    if (r->type == IMAP_RESP_UNTAGGED && parse_u32(p, wl, &num)) {
        r->has_number = true;
        r->number = num;
        p += wl;
        if (p >= end || *p != ' ') {
            *error = "missing keyword after message number";
            return false;
        }
        p++;
        wl = word_len(p, end);
    }
    if (!valid_keyword(p, wl)) {
        *error = "missing or malformed response keyword";
        return false;
    }
    r->name = p;
    r->name_len = wl;
    r->status = r->has_number ? IMAP_STATUS_NONE : status_of(p, wl);
    p += wl;
    if (p < end)
        p++;  /* the space after the keyword */

    if (r->type == IMAP_RESP_TAGGED) {
        if (r->status != IMAP_STATUS_OK && r->status != IMAP_STATUS_NO &&
            r->status != IMAP_STATUS_BAD) {
            *error = "tagged response is not OK, NO or BAD";
            return false;
        }
        return parse_resp_text(p, end, r, error);
    }
    if (r->status != IMAP_STATUS_NONE)
        return parse_resp_text(p, end, r, error);
    r->data = p;
    r->data_len = (size_t)(end - p);
    return true;
}

/* ---- date-time ---------------------------------------------------------- */

/* n ASCII digits at p, or false. n is at most 4 here, so no overflow. */
static bool parse_digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

static bool leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil), exact for every 4-digit year. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool imap_parse_date_time(const char *p, size_t len, int64_t *out)
{
    static const char months[12][4] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    };
    static const int month_days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    /* "dd-Mon-yyyy hh:mm:ss +zzzz": separators at fixed offsets. */
    if (len != IMAP_DATE_TIME_LEN || p[2] != '-' || p[6] != '-' || p[11] != ' ' ||
        p[14] != ':' || p[17] != ':' || p[20] != ' ' || (p[21] != '+' && p[21] != '-'))
        return false;
    int day, month = -1, year, hour, min, sec, zh, zm;
    /* date-day-fixed = (SP DIGIT) / 2DIGIT */
    if (p[0] == ' ') {
        if (!parse_digits(p + 1, 1, &day))
            return false;
    } else if (!parse_digits(p, 2, &day)) {
        return false;
    }
    for (int i = 0; i < 12; i++)
        if (strncasecmp(p + 3, months[i], 3) == 0)
            month = i;
    if (month < 0 || !parse_digits(p + 7, 4, &year) || !parse_digits(p + 12, 2, &hour) ||
        !parse_digits(p + 15, 2, &min) || !parse_digits(p + 18, 2, &sec) ||
        !parse_digits(p + 22, 2, &zh) || !parse_digits(p + 24, 2, &zm))
        return false;
    int mdays = month_days[month] + (month == 1 && leap_year(year));
    if (day < 1 || day > mdays || hour > 23 || min > 59 || sec > 60 || zh > 23 || zm > 59)
        return false;

    int64_t t = days_from_civil(year, month + 1, day) * 86400 +
                (int64_t)hour * 3600 + min * 60 + sec;
    /* Local time = UTC + zone, so UTC = local time - zone. */
    int64_t zone = (int64_t)zh * 3600 + zm * 60;
    *out = p[21] == '+' ? t - zone : t + zone;
    return true;
}

/* ---- FETCH -------------------------------------------------------------- */

/* Skip one value whose first token is tok: a single token or a parenthesised
 * list, nested to any depth (depth is bounded by the line length). */
static bool skip_value(struct imap_tokenizer *t, const struct imap_token *first)
{
    if (first->type == IMAP_TOK_ATOM || first->type == IMAP_TOK_QUOTED ||
        first->type == IMAP_TOK_LITERAL)
        return true;
    if (first->type != IMAP_TOK_LPAREN)
        return false;
    size_t depth = 1;
    struct imap_token tok;
    while (depth > 0) {
        switch (imap_next_token(t, &tok)) {
        case IMAP_TOK_LPAREN: depth++; break;
        case IMAP_TOK_RPAREN: depth--; break;
        case IMAP_TOK_ATOM: case IMAP_TOK_QUOTED: case IMAP_TOK_LITERAL: break;
        default: return false;
        }
    }
    return true;
}

static bool parse_flags(struct imap_tokenizer *t, struct imap_fetch_attrs *a)
{
    struct imap_token tok;
    if (imap_next_token(t, &tok) != IMAP_TOK_LPAREN)
        return false;
    a->seen = a->deleted = false;
    for (;;) {
        enum imap_token_type ty = imap_next_token(t, &tok);
        if (ty == IMAP_TOK_RPAREN)
            break;
        if (ty != IMAP_TOK_ATOM)
            return false;
        if (imap_token_is(&tok, "\\Seen"))
            a->seen = true;
        else if (imap_token_is(&tok, "\\Deleted"))
            a->deleted = true;
    }
    a->present |= IMAP_FETCH_HAS_FLAGS;
    return true;
}

static bool parse_fail(const char **error, const char *msg)
{
    *error = msg;
    return false;
}

/* objectid = 1*255(ALPHA / DIGIT / "_" / "-") (RFC 8474) */
static bool valid_objectid(const char *p, size_t len)
{
    if (len == 0 || len > IMAP_OBJECTID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* "EMAILID" SP "(" objectid ")": the name is read, the rest follows. */
static bool parse_emailid(struct imap_tokenizer *t, struct imap_fetch_attrs *a)
{
    struct imap_token tok, id;
    if (imap_next_token(t, &tok) != IMAP_TOK_LPAREN || imap_next_token(t, &id) != IMAP_TOK_ATOM ||
        !valid_objectid(id.p, id.len) || imap_next_token(t, &tok) != IMAP_TOK_RPAREN)
        return false;
    a->emailid = id.p;
    a->emailid_len = id.len;
    a->present |= IMAP_FETCH_HAS_EMAILID;
    return true;
}

/* X-GM-MSGID's value: 1 to 20 digits, non-zero, at most UINT64_MAX. */
static bool parse_u64(const struct imap_token *tok, uint64_t *out)
{
    if (tok->type != IMAP_TOK_ATOM || tok->len == 0 || tok->len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < tok->len; i++) {
        char ch = tok->p[i];
        if (ch < '0' || ch > '9')
            return false;
        uint64_t d = (uint64_t)(ch - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return v != 0;
}

bool imap_resp_code_number(const struct imap_response *r, uint64_t *out)
{
    struct imap_tokenizer t;
    struct imap_token tok, rest;
    /* A code without arguments has no code_args span at all (NULL). */
    if (r->code == NULL || r->code_args == NULL || r->code_args_len == 0)
        return false;
    imap_tokenizer_init(&t, r->code_args, r->code_args_len);
    return imap_next_token(&t, &tok) == IMAP_TOK_ATOM && parse_u64(&tok, out) &&
           imap_next_token(&t, &rest) == IMAP_TOK_END;
}

bool imap_fetch_parse(const char *data, size_t len, bool partial,
                      struct imap_fetch_attrs *a, const char **error)
{
    memset(a, 0, sizeof *a);
    *error = NULL;
    struct imap_tokenizer t;
    struct imap_token tok, name;
    imap_tokenizer_init(&t, data, len);
    if (imap_next_token(&t, &tok) != IMAP_TOK_LPAREN)
        return parse_fail(error, "FETCH data does not start with '('");

    for (;;) {
        enum imap_token_type ty = imap_next_token(&t, &name);
        if (ty == IMAP_TOK_RPAREN)
            break;
        if (ty != IMAP_TOK_ATOM)
            return parse_fail(error, t.error ? t.error : "FETCH item name expected");
        if (imap_token_is(&name, "FLAGS")) {
            if (!parse_flags(&t, a))
                return parse_fail(error, "malformed FLAGS");
            continue;
        }
        if (imap_token_is(&name, "EMAILID")) {
            if (!parse_emailid(&t, a))
                return parse_fail(error, "malformed EMAILID");
            continue;
        }
        ty = imap_next_token(&t, &tok);
        if (imap_token_is(&name, "UID")) {
            if (!imap_token_u32(&tok, &a->uid) || a->uid == 0)
                return parse_fail(error, "malformed UID");
            a->present |= IMAP_FETCH_HAS_UID;
        } else if (imap_token_is(&name, "RFC822.SIZE")) {
            if (!imap_token_u32(&tok, &a->size))
                return parse_fail(error, "malformed RFC822.SIZE");
            a->present |= IMAP_FETCH_HAS_SIZE;
        } else if (imap_token_is(&name, "INTERNALDATE")) {
            /* A date-time holds no '\\' or '"', so the still-escaped
             * contents are the value; an escape fails the strict parse. */
            if (ty != IMAP_TOK_QUOTED || !imap_parse_date_time(tok.p, tok.len, &a->internaldate))
                return parse_fail(error, "malformed INTERNALDATE");
            a->present |= IMAP_FETCH_HAS_INTERNALDATE;
        } else if (imap_token_is(&name, "X-GM-MSGID")) {
            if (!parse_u64(&tok, &a->x_gm_msgid))
                return parse_fail(error, "malformed X-GM-MSGID");
            a->present |= IMAP_FETCH_HAS_X_GM_MSGID;
        } else if (ty == IMAP_TOK_LITERAL && partial) {
            struct imap_tokenizer after = t;
            struct imap_token next;
            if (imap_next_token(&after, &next) == IMAP_TOK_END) {
                a->literal_item = name.p;
                a->literal_item_len = name.len;
                return true;
            }
        } else if (!skip_value(&t, &tok)) {
            return parse_fail(error, t.error ? t.error : "malformed FETCH item value");
        }
    }
    if (partial)
        return parse_fail(error, "FETCH text does not end with a literal");
    if (imap_next_token(&t, &tok) != IMAP_TOK_END)
        return parse_fail(error, "garbage after FETCH data");
    return true;
}

/* ---- LIST --------------------------------------------------------------- */

/* ASTRING-CHAR: an atom character or "]" (RFC 3501 resp-specials). */
static bool astring_char(unsigned char ch)
{
    return atom_char(ch) || ch == ']';
}

bool imap_list_parse(const char *data, size_t len, struct imap_list_entry *e,
                     const char **error)
{
    memset(e, 0, sizeof *e);
    *error = NULL;
    struct imap_tokenizer t;
    struct imap_token tok;
    imap_tokenizer_init(&t, data, len);

    if (imap_next_token(&t, &tok) != IMAP_TOK_LPAREN)
        return parse_fail(error, "LIST data does not start with '('");
    e->attrs = t.p;
    for (;;) {
        const char *before = t.p;
        enum imap_token_type ty = imap_next_token(&t, &tok);
        if (ty == IMAP_TOK_RPAREN) {
            e->attrs_len = (size_t)(before - e->attrs);
            break;
        }
        if (ty != IMAP_TOK_ATOM)
            return parse_fail(error, t.error ? t.error : "malformed LIST attributes");
    }

    enum imap_token_type ty = imap_next_token(&t, &tok);
    if (ty == IMAP_TOK_QUOTED) {
        char delim[2];
        if (imap_token_copy(&tok, delim, sizeof delim) != 1)
            return parse_fail(error, "LIST delimiter is not one character");
        e->delimiter = delim[0];
    } else if (!imap_token_is(&tok, "NIL")) {
        return parse_fail(error, t.error ? t.error : "malformed LIST delimiter");
    }

    /* The tokenizer would end an atom at "]", which a mailbox name may
     * hold, so an unquoted name is scanned here. */
    while (t.p < t.end && *t.p == ' ')
        t.p++;
    if (t.p < t.end && astring_char((unsigned char)*t.p) && *t.p != '{' &&
        !(*t.p == '~' && t.p + 1 < t.end && t.p[1] == '{')) {
        const char *start = t.p;
        while (t.p < t.end && astring_char((unsigned char)*t.p))
            t.p++;
        e->name.type = IMAP_TOK_ATOM;
        e->name.p = start;
        e->name.len = (size_t)(t.p - start);
    } else {
        ty = imap_next_token(&t, &e->name);
        if (ty != IMAP_TOK_QUOTED && ty != IMAP_TOK_LITERAL)
            return parse_fail(error, t.error ? t.error : "LIST mailbox name expected");
    }

    /* RFC 5258 extended data, e.g. ("CHILDINFO" ("SUBSCRIBED")). */
    ty = imap_next_token(&t, &tok);
    if (ty == IMAP_TOK_LPAREN) {
        if (!skip_value(&t, &tok))
            return parse_fail(error, t.error ? t.error : "malformed LIST extended data");
        ty = imap_next_token(&t, &tok);
    }
    if (ty != IMAP_TOK_END)
        return parse_fail(error, t.error ? t.error : "garbage after LIST data");
    return true;
}

bool imap_list_has_attr(const struct imap_list_entry *e, const char *attr)
{
    struct imap_tokenizer t;
    struct imap_token tok;
    imap_tokenizer_init(&t, e->attrs, e->attrs_len);
    while (imap_next_token(&t, &tok) == IMAP_TOK_ATOM)
        if (imap_token_is(&tok, attr))
            return true;
    return false;
}
