/* Fuzz target: the Message-ID of a header (translate/message_id.h), read from
 * what an IMAP server returns for BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)].
 *
 * A reference reader written from the header's contract, in another shape
 * (unfold the fields into a buffer first, then parse the value with a
 * recursive descent), must give the same result byte for byte. Every id
 * found must be one the import file takes as a matchable entry (uidl_file.h),
 * must come back unchanged from a header that holds only it, and the result
 * must not change when another field is put in front of the input or a blank
 * line and another Message-ID behind it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
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

/* Index after the comment that opens at s[i], or SIZE_MAX if it never ends. */
static size_t ref_comment(const char *s, size_t n, size_t i)
{
    i++;
    while (i < n) {
        if (s[i] == '\\') {
            if (i + 1 >= n)
                return SIZE_MAX;
            i += 2;
        } else if (s[i] == '(') {
            i = ref_comment(s, n, i);
            if (i == SIZE_MAX)
                return SIZE_MAX;
        } else if (s[i] == ')') {
            return i + 1;
        } else {
            i++;
        }
    }
    return SIZE_MAX;
}

static size_t ref_cfws(const char *s, size_t n, size_t i)
{
    for (;;) {
        while (i < n && ref_blank(s[i]))
            i++;
        if (i >= n || s[i] != '(')
            return i;
        i = ref_comment(s, n, i);
        if (i == SIZE_MAX)
            return SIZE_MAX;
    }
}

/* The unfolded value of the one Message-ID field, then "[CFWS] <id> [CFWS]". */
static size_t ref_extract(const char *d, size_t len, char *out)
{
    char *value = malloc(len + 1);
    FUZZ_CHECK(value != NULL);
    size_t vlen = 0, pos = 0;
    int fields = 0;
    bool in_field = false;
    while (pos < len) {
        const char *lf = memchr(d + pos, '\n', len - pos);
        size_t end = lf ? (size_t)(lf - d) : len;
        size_t next = lf ? end + 1 : len;
        if (lf && end > pos && d[end - 1] == '\r')
            end--;
        const char *line = d + pos;
        size_t n = end - pos;
        pos = next;
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
        const char *colon = memchr(line, ':', n);
        if (!colon)
            continue;
        size_t name_len = (size_t)(colon - line);
        while (name_len > 0 && ref_blank(line[name_len - 1]))
            name_len--;
        static const char name[] = "message-id";
        bool is_it = name_len == sizeof name - 1;
        for (size_t i = 0; is_it && i < name_len; i++)
            is_it = ref_lower(line[i]) == name[i];
        if (!is_it)
            continue;
        fields++;
        in_field = true;
        vlen = (size_t)(line + n - colon - 1);
        memcpy(value, colon + 1, vlen);
    }

    size_t result = 0;
    if (fields == 1) {
        size_t i = ref_cfws(value, vlen, 0);
        if (i != SIZE_MAX && i < vlen && value[i] == '<') {
            const char *gt = memchr(value + i, '>', vlen - i);
            size_t id_len = gt ? (size_t)(gt - (value + i)) + 1 : 0;
            bool ok = id_len >= 3 && id_len <= UIDL_MSGID_MAX;
            for (size_t k = 1; ok && k + 1 < id_len; k++)
                ok = value[i + k] > ' ' && value[i + k] < 0x7f && value[i + k] != '<';
            if (ok && ref_cfws(value, vlen, i + id_len) == vlen) {
                memcpy(out, value + i, id_len);
                result = id_len;
            }
        }
    }
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char got[UIDL_MSGID_MAX + 1], want[UIDL_MSGID_MAX + 1], again[UIDL_MSGID_MAX + 1];
    memset(got, 'x', sizeof got);
    size_t n = message_id_extract(in, size, got);
    FUZZ_CHECK(n <= UIDL_MSGID_MAX && got[n] == '\0' && strlen(got) == n);
    FUZZ_CHECK(n == 0 || n >= 3);
    size_t ref = ref_extract(in, size, want);
    FUZZ_CHECK(n == ref && memcmp(got, want, n) == 0);

    static const char before[] = "X-Other: Message-ID: <no@x>\r\n";
    static const char after[] = "\r\n\r\nMessage-ID: <after@x>\r\n";
    FUZZ_CHECK(extract_joined(before, sizeof before - 1, in, size, "", 0, again) == n &&
               memcmp(again, got, n) == 0);
    FUZZ_CHECK(extract_joined("", 0, in, size, after, sizeof after - 1, again) == n &&
               memcmp(again, got, n) == 0);
    if (n == 0)
        return 0;

    static const char field[] = "Message-ID: ";
    FUZZ_CHECK(extract_joined(field, sizeof field - 1, got, n, "\r\n\r\n", 4, again) == n &&
               memcmp(again, got, n) == 0);

    char line[UIDL_MSGID_MAX + 16];
    memcpy(line, "UID 1 ", 6);
    memcpy(line + 6, got, n);
    struct uidl_file f;
    if (uidl_file_parse(line, 6 + n, &f)) {
        FUZZ_CHECK(f.n_errors == 0 && f.n_matchable == 1);
        FUZZ_CHECK(f.entries[0].msgid_len == n && memcmp(f.entries[0].msgid, got, n) == 0);
        uidl_file_free(&f);
    }
    return 0;
}
