/* Fuzz target: the two keys that match a legacy POP3 server's message to its
 * upstream copy, read from header bytes as a server sends them:
 * - the Message-ID key (translate/message_id.h). A reference reader written
 *   from the header's contract in another shape (unfold every field into a
 *   buffer first, then pick the one Message-ID) must give the same bytes.
 *   The key must not change when another field is put in front of the input
 *   or a blank line and another Message-ID behind it, must come back
 *   unchanged from a header that holds only it, and must pass through an
 *   import file line (%XX-encoded, translate/uidl_file.h) unchanged;
 * - the header hash (translate/header_hash.h): fed in pieces split at
 *   input-derived points it gives the digest of one piece, and nothing after
 *   the header's end changes it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "header_hash.h"
#include "message_id.h"
#include "uidl_file.h"

static bool ref_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char ref_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* The key by the contract: lines up to the first empty one; a field's text
 * is its first line and its continuation lines, line ends removed. */
static size_t ref_extract(const char *in, size_t len, char *out)
{
    char *value = malloc(len + 1);
    FUZZ_CHECK(value != NULL);
    size_t vlen = 0, fields = 0, pos = 0;
    bool in_field = false;
    while (pos < len) {
        const char *line = in + pos;
        const char *lf = memchr(line, '\n', len - pos);
        size_t n = lf ? (size_t)(lf - line) : len - pos;
        pos += n + (lf != NULL);
        if (lf && n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0)
            break;
        if (ref_blank(line[0])) {
            if (in_field) {
                memcpy(value + vlen, line, n);
                vlen += n;
            }
            continue;
        }
        in_field = false;
        static const char name[] = "message-id";
        size_t k = 0;
        while (k < n && k < sizeof name - 1 && ref_lower(line[k]) == name[k])
            k++;
        if (k != sizeof name - 1)
            continue;
        while (k < n && ref_blank(line[k]))
            k++;
        if (k == n || line[k] != ':')
            continue;
        fields++;
        in_field = true;
        vlen = n - k - 1;
        memcpy(value, line + k + 1, vlen);
    }
    size_t start = 0, end = vlen;
    while (start < end && ref_blank(value[start]))
        start++;
    while (end > start && ref_blank(value[end - 1]))
        end--;
    size_t result = fields == 1 && end - start <= UIDL_MSGID_MAX ? end - start : 0;
    memcpy(out, value + start, result);
    out[result] = '\0';
    free(value);
    return result;
}

static size_t extract_joined(const char *a, size_t alen, const char *b, size_t blen, const char *c, size_t clen,
                             char *out)
{
    char *buf = malloc(alen + blen + clen + 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, a, alen);
    memcpy(buf + alen, b, blen);
    memcpy(buf + alen + blen, c, clen);
    size_t n = message_id_extract(buf, alen + blen + clen, out);
    free(buf);
    return n;
}

static void check_message_id(const char *in, size_t size)
{
    char got[UIDL_MSGID_MAX + 1], want[UIDL_MSGID_MAX + 1], again[UIDL_MSGID_MAX + 1];
    memset(got, 'x', sizeof got);
    size_t n = message_id_extract(in, size, got);
    FUZZ_CHECK(n <= UIDL_MSGID_MAX && got[n] == '\0');
    FUZZ_CHECK(n == 0 || (!ref_blank(got[0]) && !ref_blank(got[n - 1]) && !memchr(got, '\n', n)));
    size_t ref = ref_extract(in, size, want);
    FUZZ_CHECK(n == ref && memcmp(got, want, n) == 0);

    static const char before[] = "X-Other: Message-ID: <no@x>\r\n";
    static const char after[] = "\r\n\r\nMessage-ID: <after@x>\r\n";
    FUZZ_CHECK(extract_joined(before, sizeof before - 1, in, size, "", 0, again) == n &&
               memcmp(again, got, n) == 0);
    FUZZ_CHECK(extract_joined("", 0, in, size, after, sizeof after - 1, again) == n &&
               memcmp(again, got, n) == 0);
    if (n == 0)
        return;

    static const char field[] = "Message-ID: ";
    FUZZ_CHECK(extract_joined(field, sizeof field - 1, got, n, "\r\n\r\n", 4, again) == n &&
               memcmp(again, got, n) == 0);

    static char line[3 * UIDL_MSGID_MAX + 16];
    memcpy(line, "UID 1 - ", 8);
    size_t enc = uidl_msgid_encode(got, n, line + 8, sizeof line - 8);
    FUZZ_CHECK(enc > 0);
    struct uidl_file f;
    FUZZ_CHECK(uidl_file_parse(line, 8 + enc, &f));
    FUZZ_CHECK(f.n_errors == 0 && f.n_matchable == 1 && f.entries[0].key == UIDL_KEY_MESSAGE_ID);
    FUZZ_CHECK(f.entries[0].msgid_len == n && memcmp(f.entries[0].msgid, got, n) == 0);
    uidl_file_free(&f);
}

static void check_header_hash(const uint8_t *data, size_t size)
{
    char whole[HEADER_HASH_HEX_LEN + 1], pieces[HEADER_HASH_HEX_LEN + 1], more[HEADER_HASH_HEX_LEN + 1];
    FUZZ_CHECK(header_hash_of((const char *)data, size, whole));
    FUZZ_CHECK(strlen(whole) == HEADER_HASH_HEX_LEN);

    struct header_hash h;
    FUZZ_CHECK(header_hash_init(&h));
    struct fuzz_rng r;
    fuzz_rng_init(&r, fuzz_hash(data, size));
    for (size_t off = 0; off < size;) {
        size_t n = fuzz_chunk_len(&r, size - off);
        header_hash_feed(&h, (const char *)data + off, n);
        off += n;
    }
    bool ended = header_hash_ended(&h);
    FUZZ_CHECK(header_hash_final(&h, pieces));
    FUZZ_CHECK(strcmp(whole, pieces) == 0);
    /* Once the header ended, what follows is ignored. */
    if (ended) {
        FUZZ_CHECK(header_hash_reset(&h));
        header_hash_feed(&h, (const char *)data, size);
        header_hash_feed(&h, "X-More: field\r\n", 15);
        FUZZ_CHECK(header_hash_final(&h, more));
        FUZZ_CHECK(strcmp(whole, more) == 0);
    }
    header_hash_free(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_message_id((const char *)data, size);
    check_header_hash(data, size);
    return 0;
}
