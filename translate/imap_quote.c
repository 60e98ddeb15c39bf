/* imap_quote: quoted strings, LOGIN literals and SASL PLAIN for IMAP commands. */
#include "imap_quote.h"

#include <string.h>

enum imap_astring_form imap_astring_form(const char *s, size_t len)
{
    enum imap_astring_form form = IMAP_ASTRING_QUOTED;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\0' || ch == '\r' || ch == '\n')
            return IMAP_ASTRING_INVALID;
        if (ch < 0x20 || ch >= 0x7f)
            form = IMAP_ASTRING_LITERAL;
    }
    return form;
}

bool imap_append_quoted(char *out, size_t cap, size_t *pos, const char *s, size_t len)
{
    if (imap_astring_form(s, len) != IMAP_ASTRING_QUOTED)
        return false;
    size_t need = 2;
    for (size_t i = 0; i < len; i++)
        need += (s[i] == '"' || s[i] == '\\') ? 2 : 1;
    if (*pos > cap || need > cap - *pos)
        return false;
    char *o = out + *pos;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *o++ = '\\';
        *o++ = s[i];
    }
    *o++ = '"';
    *pos += need;
    return true;
}

/* Room is guaranteed by IMAP_LOGIN_CMD_MAX for every input that passed the
 * length checks, so these appends cannot fail. */
static void put(struct imap_login_command *cmd, size_t *pos, const char *s, size_t len)
{
    memcpy(cmd->buf + *pos, s, len);
    *pos += len;
}

static void put_literal_header(struct imap_login_command *cmd, size_t *pos, size_t len)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + len % 10);
        len /= 10;
    } while (len > 0);
    cmd->buf[(*pos)++] = '{';
    while (n > 0)
        cmd->buf[(*pos)++] = digits[--n];
    put(cmd, pos, "}\r\n", 3);
}

/* Append one argument; a literal ends the current segment after its header. */
static void put_argument(struct imap_login_command *cmd, size_t *pos, const char *s, size_t len,
                         enum imap_astring_form form)
{
    if (form == IMAP_ASTRING_QUOTED) {
        imap_append_quoted(cmd->buf, sizeof cmd->buf, pos, s, len);
        return;
    }
    put_literal_header(cmd, pos, len);
    cmd->seg_end[cmd->nsegs++] = *pos;
    put(cmd, pos, s, len);
}

static bool valid_tag(const char *tag)
{
    size_t n = strlen(tag);
    if (n == 0 || n > IMAP_TAG_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)tag[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]+", ch) != NULL)
            return false;
    }
    return true;
}

enum imap_quote_status imap_login_command(struct imap_login_command *cmd, const char *tag,
                                          const char *user, size_t user_len,
                                          const char *pass, size_t pass_len)
{
    memset(cmd, 0, sizeof *cmd);
    enum imap_astring_form uf = imap_astring_form(user, user_len);
    enum imap_astring_form pf = imap_astring_form(pass, pass_len);
    if (uf == IMAP_ASTRING_INVALID || pf == IMAP_ASTRING_INVALID)
        return IMAP_QUOTE_FORBIDDEN_OCTET;
    if (user_len > IMAP_CREDENTIAL_MAX || pass_len > IMAP_CREDENTIAL_MAX || !valid_tag(tag))
        return IMAP_QUOTE_TOO_LONG;

    size_t pos = 0;
    put(cmd, &pos, tag, strlen(tag));
    put(cmd, &pos, " LOGIN ", 7);
    put_argument(cmd, &pos, user, user_len, uf);
    put(cmd, &pos, " ", 1);
    put_argument(cmd, &pos, pass, pass_len, pf);
    put(cmd, &pos, "\r\n", 2);
    cmd->seg_end[cmd->nsegs++] = pos;
    return IMAP_QUOTE_OK;
}

void imap_login_command_wipe(struct imap_login_command *cmd)
{
    explicit_bzero(cmd, sizeof *cmd);
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encode the concatenation of the pieces without building it first, so the
 * plaintext credentials are not copied anywhere. */
#define SASL_PIECES 4

struct piece_reader {
    const char *p[SASL_PIECES];
    size_t len[SASL_PIECES];
    unsigned idx;
    size_t off;
};

static bool next_octet(struct piece_reader *pr, unsigned char *out)
{
    while (pr->idx < SASL_PIECES && pr->off >= pr->len[pr->idx]) {
        pr->idx++;
        pr->off = 0;
    }
    if (pr->idx >= SASL_PIECES)
        return false;
    *out = (unsigned char)pr->p[pr->idx][pr->off++];
    return true;
}

enum imap_quote_status imap_sasl_plain(char *out, size_t cap, const char *user, size_t user_len,
                                       const char *pass, size_t pass_len)
{
    if (imap_astring_form(user, user_len) == IMAP_ASTRING_INVALID ||
        imap_astring_form(pass, pass_len) == IMAP_ASTRING_INVALID)
        return IMAP_QUOTE_FORBIDDEN_OCTET;
    if (user_len > IMAP_CREDENTIAL_MAX || pass_len > IMAP_CREDENTIAL_MAX ||
        cap < IMAP_BASE64_LEN(2 + user_len + pass_len) + 1)
        return IMAP_QUOTE_TOO_LONG;

    /* authzid (empty) NUL authcid NUL password */
    static const char nul = '\0';
    struct piece_reader pr = {
        .p = { &nul, user, &nul, pass },
        .len = { 1, user_len, 1, pass_len },
    };
    size_t o = 0;
    unsigned char b[3];
    size_t n;
    do {
        n = 0;
        while (n < 3 && next_octet(&pr, &b[n]))
            n++;
        if (n == 0)
            break;
        out[o++] = b64chars[b[0] >> 2];
        out[o++] = b64chars[((b[0] & 0x03) << 4) | (n > 1 ? b[1] >> 4 : 0)];
        out[o++] = n > 1 ? b64chars[((b[1] & 0x0f) << 2) | (n > 2 ? b[2] >> 6 : 0)] : '=';
        out[o++] = n > 2 ? b64chars[b[2] & 0x3f] : '=';
    } while (n == 3);
    out[o] = '\0';
    explicit_bzero(b, sizeof b);
    return IMAP_QUOTE_OK;
}
