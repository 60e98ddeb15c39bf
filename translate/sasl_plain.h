/* sasl_plain: the AUTH PLAIN response (RFC 4616 inside RFC 5034), decoded.
 *
 * The client sends base64 of "[authzid] NUL authcid NUL passwd". Decoding is
 * strict (RFC 4648 alphabet, length a multiple of 4, '=' only at the end),
 * so a malformed response is refused rather than guessed at. Pure: no I/O.
 *
 * The decoded message, password included, is written into the caller's
 * buffer; the struct points into it. The caller wipes that buffer. */
#ifndef POPGATE_SASL_PLAIN_H
#define POPGATE_SASL_PLAIN_H

#include <stddef.h>

enum sasl_plain_result {
    SASL_PLAIN_OK,
    SASL_PLAIN_MALFORMED,     /* not base64, too long, or fewer than two NULs */
    SASL_PLAIN_REFUSED,       /* authzid names another user, or NUL in the password */
};

struct sasl_plain {
    const char *authcid;
    size_t authcid_len;
    const char *passwd;
    size_t passwd_len;
};

/* Strict base64 decoding of in[0..len) into out (capacity cap). Returns the
 * decoded length, or -1 on invalid input or when it would not fit. */
long base64_decode_strict(const char *in, size_t len, unsigned char *out, size_t cap);

/* Decodes b64 into buf (capacity cap) and splits it. *decoded_len gets the
 * bytes written to buf (to wipe), whatever the result. */
enum sasl_plain_result sasl_plain_parse(const char *b64, size_t b64_len, unsigned char *buf, size_t cap,
                                        size_t *decoded_len, struct sasl_plain *out);

#endif
