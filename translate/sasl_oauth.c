/* sasl_oauth.c: see sasl_oauth.h. */
#include "sasl_oauth.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "oauth_json.h"
#include "safe_text.h"
#include "sasl_plain.h"

const char *sasl_oauth_mech_name(enum sasl_oauth_mech mech)
{
    return mech == SASL_MECH_OAUTHBEARER ? "OAUTHBEARER" : "XOAUTH2";
}

static bool has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

struct raw {
    char buf[SASL_OAUTH_RAW_MAX];
    size_t len;
};

/* Callers checked every bound first, so these never run past buf. */
static void raw_put(struct raw *r, const char *s, size_t len)
{
    memcpy(r->buf + r->len, s, len);
    r->len += len;
}

static void raw_puts(struct raw *r, const char *s)
{
    raw_put(r, s, strlen(s));
}

static enum sasl_oauth_status finish(struct raw *r, char *out, size_t cap)
{
    bool ok = base64_encode((const unsigned char *)r->buf, r->len, out, cap);
    OPENSSL_cleanse(r, sizeof *r);
    return ok ? SASL_OAUTH_OK : SASL_OAUTH_TOO_LONG;
}

static enum sasl_oauth_status check_common(char *out, size_t cap, const char *user, size_t user_len,
                                           const char *token, size_t token_len)
{
    if (cap > 0)
        out[0] = '\0';
    if (user_len > SASL_OAUTH_USER_MAX || token_len > SASL_OAUTH_TOKEN_MAX)
        return SASL_OAUTH_TOO_LONG;
    if (user_len == 0 || has_control(user, user_len) || !oauth_bearer_token_valid(token, token_len))
        return SASL_OAUTH_INVALID;
    return SASL_OAUTH_OK;
}

enum sasl_oauth_status sasl_xoauth2_response(char *out, size_t cap, const char *user, size_t user_len,
                                             const char *token, size_t token_len)
{
    enum sasl_oauth_status st = check_common(out, cap, user, user_len, token, token_len);
    if (st != SASL_OAUTH_OK)
        return st;
    struct raw r = { .len = 0 };
    raw_puts(&r, "user=");
    raw_put(&r, user, user_len);
    raw_puts(&r, "\001auth=Bearer ");
    raw_put(&r, token, token_len);
    raw_puts(&r, "\001\001");
    return finish(&r, out, cap);
}

enum sasl_oauth_status sasl_oauthbearer_response(char *out, size_t cap, const char *user, size_t user_len,
                                                 const char *host, unsigned port, const char *token,
                                                 size_t token_len)
{
    enum sasl_oauth_status st = check_common(out, cap, user, user_len, token, token_len);
    if (st != SASL_OAUTH_OK)
        return st;
    size_t host_len = strlen(host);
    if (host_len > SASL_OAUTH_HOST_MAX)
        return SASL_OAUTH_TOO_LONG;
    if (host_len == 0 || has_control(host, host_len) || port == 0 || port > 65535)
        return SASL_OAUTH_INVALID;

    struct raw r = { .len = 0 };
    raw_puts(&r, "n,a=");
    /* RFC 5801 saslname: ',' and '=' escaped. */
    for (size_t i = 0; i < user_len; i++) {
        if (user[i] == ',')
            raw_puts(&r, "=2C");
        else if (user[i] == '=')
            raw_puts(&r, "=3D");
        else
            raw_put(&r, user + i, 1);
    }
    raw_puts(&r, ",\001host=");
    raw_put(&r, host, host_len);
    char portbuf[16];
    int n = snprintf(portbuf, sizeof portbuf, "\001port=%u", port);
    raw_put(&r, portbuf, (size_t)n);
    raw_puts(&r, "\001auth=Bearer ");
    raw_put(&r, token, token_len);
    raw_puts(&r, "\001\001");
    return finish(&r, out, cap);
}

enum sasl_oauth_status sasl_oauth_response(enum sasl_oauth_mech mech, char *out, size_t cap,
                                           const char *user, size_t user_len, const char *host,
                                           unsigned port, const char *token, size_t token_len)
{
    if (mech == SASL_MECH_OAUTHBEARER)
        return sasl_oauthbearer_response(out, cap, user, user_len, host, port, token, token_len);
    return sasl_xoauth2_response(out, cap, user, user_len, token, token_len);
}

/* A field of the challenge as printable text: a string as it is, a number
 * in decimal (Google has sent "status":400 as well as "400"). */
static void challenge_field(json_t *obj, const char *name, char *out, size_t cap)
{
    json_t *v = json_object_get(obj, name);
    if (json_is_string(v)) {
        safe_text_copy(out, cap, "", json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    }
}

bool sasl_oauth_error_parse(const char *b64, size_t len, struct sasl_oauth_error *out)
{
    memset(out, 0, sizeof *out);
    if (len > SASL_OAUTH_CHALLENGE_MAX)
        return false;
    unsigned char buf[SASL_OAUTH_CHALLENGE_MAX / 4 * 3];
    long n = base64_decode_strict(b64, len, buf, sizeof buf);
    if (n <= 0)
        return false;
    oauth_json_use_wiping_allocator();
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return false;
    }
    challenge_field(root, "status", out->status, sizeof out->status);
    challenge_field(root, "schemes", out->schemes, sizeof out->schemes);
    challenge_field(root, "scope", out->scope, sizeof out->scope);
    json_decref(root);
    return true;
}
