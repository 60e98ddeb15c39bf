/* form_encode: an application/x-www-form-urlencoded body (the token
 * endpoint's request format, RFC 6749 appendix B), built into a fixed
 * buffer. Pure: no I/O.
 *
 * Bytes other than ALPHA DIGIT - . _ ~ are percent-encoded (space as %20,
 * which every server accepts for '+'). The body usually holds secrets
 * (client_secret, refresh_token, device_code, an assertion): wipe it with
 * form_wipe(). A field that does not fit sets the overflow flag and leaves
 * the body as it was before that field; form_ok() tells at the end. */
#ifndef POPGATE_FORM_ENCODE_H
#define POPGATE_FORM_ENCODE_H

#include <stdbool.h>
#include <stddef.h>

/* Largest body: a refresh token or an assertion, percent-encoded, with the
 * other fields. */
#define FORM_BODY_MAX (32 * 1024)

struct form_body {
    char buf[FORM_BODY_MAX + 1];   /* NUL-terminated */
    size_t len;
    bool overflow;
};

void form_init(struct form_body *f);
/* Append "name=value" (joined to earlier fields with '&'). value is
 * NUL-terminated; form_add_n takes a length. */
void form_add(struct form_body *f, const char *name, const char *value);
void form_add_n(struct form_body *f, const char *name, const char *value, size_t len);
bool form_ok(const struct form_body *f);
void form_wipe(struct form_body *f);

#endif
