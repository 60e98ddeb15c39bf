/* form_encode.c: see form_encode.h. */
#include "form_encode.h"

#include <string.h>

#include <openssl/crypto.h>

void form_init(struct form_body *f)
{
    f->len = 0;
    f->overflow = false;
    f->buf[0] = '\0';
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static bool put_encoded(struct form_body *f, size_t *pos, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = unreserved(c) ? 1 : 3;
        if (FORM_BODY_MAX - *pos < need)
            return false;
        if (need == 1) {
            f->buf[(*pos)++] = (char)c;
        } else {
            f->buf[(*pos)++] = '%';
            f->buf[(*pos)++] = hex[c >> 4];
            f->buf[(*pos)++] = hex[c & 0x0f];
        }
    }
    return true;
}

void form_add_n(struct form_body *f, const char *name, const char *value, size_t len)
{
    if (f->overflow)
        return;
    size_t pos = f->len;
    bool ok = true;
    if (pos > 0) {
        ok = pos < FORM_BODY_MAX;
        if (ok)
            f->buf[pos++] = '&';
    }
    ok = ok && put_encoded(f, &pos, name, strlen(name));
    if (ok && pos < FORM_BODY_MAX)
        f->buf[pos++] = '=';
    else
        ok = false;
    ok = ok && put_encoded(f, &pos, value, len);
    if (!ok) {
        /* Leave the body as it was before this field: no half secret. */
        OPENSSL_cleanse(f->buf + f->len, FORM_BODY_MAX + 1 - f->len);
        f->overflow = true;
        return;
    }
    f->len = pos;
    f->buf[pos] = '\0';
}

void form_add(struct form_body *f, const char *name, const char *value)
{
    form_add_n(f, name, value, strlen(value));
}

bool form_ok(const struct form_body *f)
{
    return !f->overflow;
}

void form_wipe(struct form_body *f)
{
    OPENSSL_cleanse(f, sizeof *f);
}
