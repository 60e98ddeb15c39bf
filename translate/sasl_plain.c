/* sasl_plain.c: see sasl_plain.h. */
#include "sasl_plain.h"

#include <stdbool.h>
#include <string.h>

static int base64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

long base64_decode_strict(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len % 4 != 0)
        return -1;
    size_t pad = 0;
    if (len > 0 && in[len - 1] == '=')
        pad = in[len - 2] == '=' ? 2 : 1;
    size_t n = len / 4 * 3 - pad;
    if (n > cap)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        unsigned long group = 0;
        for (size_t at = i; at < i + 4; at++) {
            int v = base64_value(in[at]);
            /* '=' only as the last one or two characters. */
            if (v < 0 && (in[at] != '=' || at < len - pad))
                return -1;
            group = group << 6 | (unsigned long)(v < 0 ? 0 : v);
        }
        const unsigned char bytes[3] = { (unsigned char)(group >> 16), (unsigned char)(group >> 8),
                                         (unsigned char)group };
        for (size_t k = 0, o = i / 4 * 3; k < 3 && o + k < n; k++)
            out[o + k] = bytes[k];
    }
    return (long)n;
}

enum sasl_plain_result sasl_plain_parse(const char *b64, size_t b64_len, unsigned char *buf, size_t cap,
                                        size_t *decoded_len, struct sasl_plain *out)
{
    *decoded_len = 0;
    long n = base64_decode_strict(b64, b64_len, buf, cap);
    if (n <= 0)
        return SASL_PLAIN_MALFORMED;
    *decoded_len = (size_t)n;
    const unsigned char *end = buf + n;
    const unsigned char *nul1 = memchr(buf, '\0', (size_t)n);
    const unsigned char *nul2 = nul1 ? memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1)) : NULL;
    if (!nul2)
        return SASL_PLAIN_MALFORMED;
    size_t authzid_len = (size_t)(nul1 - buf);
    out->authcid = (const char *)nul1 + 1;
    out->authcid_len = (size_t)(nul2 - nul1 - 1);
    out->passwd = (const char *)nul2 + 1;
    out->passwd_len = (size_t)(end - nul2 - 1);
    /* The gateway cannot act for another user: authzid empty or the same. */
    bool other_user = authzid_len > 0 &&
                      (authzid_len != out->authcid_len || memcmp(buf, out->authcid, authzid_len) != 0);
    if (other_user || memchr(out->passwd, '\0', out->passwd_len))
        return SASL_PLAIN_REFUSED;
    return SASL_PLAIN_OK;
}
