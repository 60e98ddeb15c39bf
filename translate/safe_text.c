/* safe_text.c: see safe_text.h. */
#include "safe_text.h"

#include <string.h>

void safe_text_copy(char *out, size_t cap, const char *prefix, const char *text, size_t len)
{
    size_t n = 0, plen = strlen(prefix);
    for (size_t i = 0; i < plen && n + 1 < cap; i++)
        out[n++] = prefix[i];
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char ch = (unsigned char)text[i];
        out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    out[n] = '\0';
}
