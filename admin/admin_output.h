/* admin_output: how popgate-admin prints, for people (aligned text) and for
 * scripts (--json). Values come from Redis and may hold any bytes: text output
 * shows control characters (C0, DEL, C1) and bytes that are not valid UTF-8 as
 * '?', so a stored value cannot drive the terminal; JSON escapes control
 * characters, and writes a byte that is not part of valid UTF-8 as the code
 * point of the same value (\u00XX), so the output is always valid JSON.
 */
#ifndef POPGATE_ADMIN_OUTPUT_H
#define POPGATE_ADMIN_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- JSON ---------------------------------------------------------------- */

#define JSON_DEPTH_MAX 8   /* the deepest document popgate-admin writes is 4 */

/* Writes one compact JSON document to f, commas placed by the writer. A
 * plain value with no pointers; nothing to free. */
struct json_writer {
    FILE *f;
    unsigned depth;
    bool has_items[JSON_DEPTH_MAX];  /* per open container: a comma is due */
    bool after_key;                  /* the next value belongs to a key */
};

void json_init(struct json_writer *w, FILE *f);
void json_object_begin(struct json_writer *w);
void json_object_end(struct json_writer *w);
void json_array_begin(struct json_writer *w);
void json_array_end(struct json_writer *w);
void json_key(struct json_writer *w, const char *key);
void json_string(struct json_writer *w, const char *s, size_t len);
void json_cstring(struct json_writer *w, const char *s);
void json_u64(struct json_writer *w, uint64_t v);
void json_bool(struct json_writer *w, bool v);
void json_null(struct json_writer *w);
/* Ends the document with a newline. */
void json_finish(struct json_writer *w);

/* ---- text ---------------------------------------------------------------- */

/* s[0..len), with what cannot be shown safely as '?' (see above). */
void text_write(FILE *f, const char *s, size_t len);

/* "2026-01-31T12:00:00Z" from decimal Unix seconds; false (out untouched) for
 * anything else. out must hold ISO_TIME_MAX bytes. */
#define ISO_TIME_MAX 32
bool iso_time_from_text(const char *epoch, char *out);

/* A table printed with aligned columns, two spaces apart. Owns copies of its
 * cells; table_print sanitises them as text_write does. */
#define TABLE_COLS_MAX 12   /* the widest table popgate-admin prints has 10 */

struct text_table {
    size_t n_cols;    /* 1..TABLE_COLS_MAX */
    size_t n_cells;
    size_t cap;
    char **cells;   /* row-major */
};

void table_init(struct text_table *t, size_t n_cols);
/* Appends one cell (rows fill left to right); false when memory ran out. */
bool table_add(struct text_table *t, const char *cell);
void table_print(const struct text_table *t, FILE *f);
void table_free(struct text_table *t);

#endif
