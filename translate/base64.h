/* base64: encoding octets as base64 (RFC 4648 section 4, with padding) and
 * base64url (section 5, without padding, as JWTs use it). Pure: no I/O.
 *
 * Decoding is base64_decode_strict() in sasl_plain.h. imap_quote.c keeps its
 * own encoder that reads the SASL PLAIN pieces in place, so the plaintext
 * credentials are never copied into one buffer.
 *
 * Output is NUL-terminated into the caller's buffer; the caller wipes it when
 * the input was secret. */
#ifndef POPGATE_BASE64_H
#define POPGATE_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the padded base64 of n octets, without the NUL. */
#define BASE64_LEN(n) ((((n) + 2) / 3) * 4)
/* Length of the unpadded base64url of n octets, without the NUL. */
#define BASE64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 == 0 ? 0 : (n) % 3 + 1))

/* Encode in[0..len) into out (capacity cap, at least BASE64_LEN(len) + 1).
 * Returns false, with out[0] = '\0' when cap > 0, if it would not fit. */
bool base64_encode(const unsigned char *in, size_t len, char *out, size_t cap);

/* The same in the URL-safe alphabet ('-', '_'), without '=' padding; cap at
 * least BASE64URL_LEN(len) + 1. */
bool base64url_encode(const unsigned char *in, size_t len, char *out, size_t cap);

#endif
