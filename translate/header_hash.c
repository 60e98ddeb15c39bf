/* header_hash.c: see header_hash.h. A byte state machine over the header
 * (line start, field name, value, continuation, skipped line, end), so a
 * header split anywhere hashes the same as one piece. deploy/migration/
 * pop3-uidl-export has the same definition in Python; the import path and
 * the lazy path must give the same digest for the same header. */
#include "header_hash.h"

#include <string.h>

#include <openssl/evp.h>

#include "hex.h"

enum {
    S_LINE_START = 0,
    S_NAME,       /* a line that is no continuation, up to its ':' */
    S_VALUE,      /* the rest of a kept field's first line */
    S_CONT,       /* a continuation line of a kept field */
    S_SKIP,       /* a line left out, up to its LF */
    S_END,        /* the header ended */
};

/* Dovecot's hdr_hash_skip_headers. */
static const char *const skipped_fields[] = {
    "Content-Length", "Return-Path", "Status", "X-IMAP", "X-IMAPbase", "X-Keywords",
    "X-Message-Flag", "X-Status", "X-UID", "X-UIDL", "X-Yahoo-Newman-Property",
};

static bool blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

static void flush(struct header_hash *h)
{
    if (h->out_len && !h->failed && EVP_DigestUpdate(h->md, h->out, h->out_len) != 1)
        h->failed = true;
    h->out_len = 0;
}

static void put(struct header_hash *h, uint8_t c)
{
    if (h->out_len == sizeof h->out)
        flush(h);
    h->out[h->out_len++] = c;
}

/* One octet of a kept line, normalised. */
static void emit(struct header_hash *h, uint8_t c)
{
    if (blank(c))
        return;
    if (c < 0x20 || c >= 0x7f || c == '?') {
        if (!h->in_run)
            put(h, '?');
        h->in_run = true;
        return;
    }
    put(h, c);
    h->in_run = false;
}

static void end_line(struct header_hash *h, bool hashed)
{
    h->cr_pending = false;
    if (hashed)
        put(h, '\n');
    h->in_run = false;
    h->state = S_LINE_START;
}

/* The name part [0, name_len) ended at its ':': is the field kept? */
static bool name_kept(const struct header_hash *h)
{
    size_t n = h->name_len;
    while (n > 0 && blank(h->name[n - 1]))
        n--;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (h->name[i] < 0x21 || h->name[i] > 0x7e)
            return false;
    for (size_t k = 0; k < sizeof skipped_fields / sizeof skipped_fields[0]; k++) {
        if (strlen(skipped_fields[k]) != n)
            continue;
        size_t i = 0;
        while (i < n && lower(h->name[i]) == lower((uint8_t)skipped_fields[k][i]))
            i++;
        if (i == n)
            return false;
    }
    return true;
}

/* A CR inside a kept line: it ends the line only if an LF follows. */
static void value_octet(struct header_hash *h, uint8_t c)
{
    if (h->cr_pending) {
        emit(h, '\r');
        h->cr_pending = false;
        h->line_hashed = true;
    }
    if (c == '\r') {
        h->cr_pending = true;
        return;
    }
    emit(h, c);
    if (!blank(c))
        h->line_hashed = true;
}

static void step(struct header_hash *h, uint8_t c)
{
    switch (h->state) {
    case S_LINE_START:
        h->in_run = false;
        if (c == '\n') {
            h->state = S_END;
        } else if (blank(c)) {
            h->line_hashed = false;
            h->cr_pending = false;
            h->state = h->keep_field ? S_CONT : S_SKIP;
        } else {
            h->keep_field = false;
            h->name[0] = c;
            h->name_len = 1;
            h->only_cr = c == '\r';
            h->state = S_NAME;
        }
        return;
    case S_NAME:
        if (c == ':') {
            h->keep_field = name_kept(h);
            if (!h->keep_field) {
                h->state = S_SKIP;
                return;
            }
            for (size_t i = 0; i < h->name_len; i++)
                emit(h, h->name[i]);
            emit(h, ':');
            h->cr_pending = false;
            h->state = S_VALUE;
        } else if (c == '\n') {
            /* No colon: no field, or a line of CRs only, which ends it. */
            h->state = h->only_cr ? S_END : S_LINE_START;
        } else if (h->name_len == HEADER_HASH_NAME_MAX) {
            h->state = S_SKIP;
        } else {
            h->name[h->name_len++] = c;
            h->only_cr = h->only_cr && c == '\r';
        }
        return;
    case S_VALUE:
    case S_CONT:
        if (c == '\n')
            end_line(h, h->state == S_VALUE || h->line_hashed);
        else
            value_octet(h, c);
        return;
    case S_SKIP:
        if (c == '\n')
            h->state = S_LINE_START;
        return;
    default:
        return;
    }
}

bool header_hash_reset(struct header_hash *h)
{
    void *md = h->md;
    memset(h, 0, sizeof *h);
    h->md = md;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        h->failed = true;
    return !h->failed;
}

bool header_hash_init(struct header_hash *h)
{
    memset(h, 0, sizeof *h);
    h->md = EVP_MD_CTX_new();
    if (!h->md)
        return false;
    if (!header_hash_reset(h)) {
        header_hash_free(h);
        return false;
    }
    return true;
}

void header_hash_feed(struct header_hash *h, const char *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    for (size_t i = 0; i < len && h->state != S_END; i++) {
        /* Most octets of a skipped line need no look: jump to its LF. */
        if (h->state == S_SKIP) {
            const uint8_t *lf = memchr(p + i, '\n', len - i);
            if (!lf)
                return;
            i = (size_t)(lf - p);
        }
        step(h, p[i]);
    }
}

bool header_hash_ended(const struct header_hash *h)
{
    return h->state == S_END;
}

bool header_hash_final(struct header_hash *h, char out[HEADER_HASH_HEX_LEN + 1])
{
    /* A last line without LF counts as if it had one. */
    if (h->state == S_VALUE || h->state == S_CONT)
        end_line(h, h->state == S_VALUE || h->line_hashed);
    h->state = S_END;
    flush(h);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    out[0] = '\0';
    if (h->failed || EVP_DigestFinal_ex(h->md, md, &md_len) != 1 || md_len < HEADER_HASH_LEN) {
        h->failed = true;
        return false;
    }
    hex_encode(md, HEADER_HASH_LEN, out);
    return true;
}

void header_hash_free(struct header_hash *h)
{
    EVP_MD_CTX_free(h->md);
    h->md = NULL;
}

bool header_hash_of(const char *header, size_t len, char out[HEADER_HASH_HEX_LEN + 1])
{
    struct header_hash h;
    if (!header_hash_init(&h))
        return false;
    header_hash_feed(&h, header, len);
    bool ok = header_hash_final(&h, out);
    header_hash_free(&h);
    return ok;
}
