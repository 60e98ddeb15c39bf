/* base64.c: see base64.h. */
#include "base64.h"

static const char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static bool encode(const unsigned char *in, size_t len, char *out, size_t cap, const char *alphabet, bool pad)
{
    size_t need = pad ? BASE64_LEN(len) : BASE64URL_LEN(len);
    if (cap == 0)
        return false;
    if (need >= cap) {
        out[0] = '\0';
        return false;
    }
    size_t o = 0, i = 0;
    for (; len - i >= 3; i += 3) {
        unsigned long group = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[(group >> 18) & 0x3f];
        out[o++] = alphabet[(group >> 12) & 0x3f];
        out[o++] = alphabet[(group >> 6) & 0x3f];
        out[o++] = alphabet[group & 0x3f];
    }
    /* One or two octets left: two or three characters, then padding. */
    if (i < len) {
        bool two = len - i == 2;
        unsigned long group = (unsigned long)in[i] << 16 | (two ? (unsigned long)in[i + 1] << 8 : 0);
        out[o++] = alphabet[(group >> 18) & 0x3f];
        out[o++] = alphabet[(group >> 12) & 0x3f];
        if (two)
            out[o++] = alphabet[(group >> 6) & 0x3f];
        if (pad) {
            if (!two)
                out[o++] = '=';
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return true;
}

bool base64_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
    return encode(in, len, out, cap, std_alphabet, true);
}

bool base64url_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
    return encode(in, len, out, cap, url_alphabet, false);
}
