/* admin_output.c: see admin_output.h. */
#include "admin_output.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- JSON ---------------------------------------------------------------- */

void json_init(struct json_writer *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
}

/* Before any value: a comma after a sibling, nothing after a key. */
static void before_value(struct json_writer *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth > 0 && w->depth <= JSON_DEPTH_MAX) {
        if (w->has_items[w->depth - 1])
            fputc(',', w->f);
        w->has_items[w->depth - 1] = true;
    }
}

static void open_container(struct json_writer *w, char c)
{
    before_value(w);
    fputc(c, w->f);
    /* Deeper nesting than the writer tracks is a programming error: the
     * commas inside it are then left out, nothing is written out of bounds. */
    if (w->depth < JSON_DEPTH_MAX)
        w->has_items[w->depth] = false;
    w->depth++;
}

static void close_container(struct json_writer *w, char c)
{
    if (w->depth > 0)
        w->depth--;
    fputc(c, w->f);
}

void json_object_begin(struct json_writer *w)
{
    open_container(w, '{');
}

void json_object_end(struct json_writer *w)
{
    close_container(w, '}');
}

void json_array_begin(struct json_writer *w)
{
    open_container(w, '[');
}

void json_array_end(struct json_writer *w)
{
    close_container(w, ']');
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void write_escaped(FILE *f, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else if (c >= 0x80) {
            size_t n = utf8_sequence(s + i, len - i);
            if (n == 0) {
                fprintf(f, "\\u%04x", c);
                i++;
            } else {
                fwrite(s + i, 1, n, f);
                i += n;
            }
            continue;
        } else {
            fputc(c, f);
        }
        i++;
    }
    fputc('"', f);
}

void json_key(struct json_writer *w, const char *key)
{
    before_value(w);
    write_escaped(w->f, key, strlen(key));
    fputc(':', w->f);
    w->after_key = true;
}

void json_string(struct json_writer *w, const char *s, size_t len)
{
    before_value(w);
    write_escaped(w->f, s, len);
}

void json_cstring(struct json_writer *w, const char *s)
{
    json_string(w, s, strlen(s));
}

void json_u64(struct json_writer *w, uint64_t v)
{
    before_value(w);
    fprintf(w->f, "%llu", (unsigned long long)v);
}

void json_bool(struct json_writer *w, bool v)
{
    before_value(w);
    fputs(v ? "true" : "false", w->f);
}

void json_null(struct json_writer *w)
{
    before_value(w);
    fputs("null", w->f);
}

void json_finish(struct json_writer *w)
{
    fputc('\n', w->f);
}

/* ---- text ---------------------------------------------------------------- */

void text_write(FILE *f, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80) {
            fputc(s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i], f);
            i++;
            continue;
        }
        /* C1 controls (U+0080..U+009F) act on some terminals as ESC does. */
        size_t n = utf8_sequence(s + i, len - i);
        if (n == 0 || (n == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0)) {
            fputc('?', f);
            i++;
        } else {
            fwrite(s + i, 1, n, f);
            i += n;
        }
    }
}

bool iso_time_from_text(const char *epoch, char *out)
{
    char *end;
    if (epoch[0] < '0' || epoch[0] > '9')
        return false;
    long long v = strtoll(epoch, &end, 10);
    if (*end != '\0')
        return false;
    time_t t = (time_t)v;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return false;
    return strftime(out, ISO_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0;
}

void table_init(struct text_table *t, size_t n_cols)
{
    memset(t, 0, sizeof *t);
    t->n_cols = n_cols < 1 ? 1 : n_cols > TABLE_COLS_MAX ? TABLE_COLS_MAX : n_cols;
}

bool table_add(struct text_table *t, const char *cell)
{
    if (t->n_cells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        char **cells = realloc(t->cells, cap * sizeof *cells);
        if (!cells)
            return false;
        t->cells = cells;
        t->cap = cap;
    }
    char *copy = strdup(cell);
    if (!copy)
        return false;
    t->cells[t->n_cells++] = copy;
    return true;
}

/* Characters on screen: UTF-8 continuation bytes take no column. */
static size_t columns(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

void table_print(const struct text_table *t, FILE *f)
{
    size_t width[TABLE_COLS_MAX] = { 0 };
    for (size_t i = 0; i < t->n_cells; i++) {
        size_t w = columns(t->cells[i]);
        if (w > width[i % t->n_cols])
            width[i % t->n_cols] = w;
    }
    for (size_t i = 0; i < t->n_cells; i++) {
        size_t col = i % t->n_cols;
        text_write(f, t->cells[i], strlen(t->cells[i]));
        if (col + 1 == t->n_cols || i + 1 == t->n_cells)
            fputc('\n', f);
        else
            fprintf(f, "%*s", (int)(width[col] - columns(t->cells[i]) + 2), "");
    }
}

void table_free(struct text_table *t)
{
    for (size_t i = 0; i < t->n_cells; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}
