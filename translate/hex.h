/* hex: octets as lower-case hexadecimal (digests, SHA1 script names, random
 * tokens). Pure: no I/O. */
#ifndef POPGATE_HEX_H
#define POPGATE_HEX_H

#include <stddef.h>

/* Length of the hex form of n octets, without the NUL. */
#define HEX_LEN(n) (2 * (n))

/* Write in[0..len) as 2 * len lower-case hex digits and a NUL into out,
 * which holds at least HEX_LEN(len) + 1 octets. */
void hex_encode(const unsigned char *in, size_t len, char *out);

#endif
