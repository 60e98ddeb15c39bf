/* oauth_json.c: see oauth_json.h. */
#include "oauth_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "safe_text.h"

/* Ten years: longer than any token or device code lives; a larger value is
 * an error, not a number to do arithmetic with. */
#define OAUTH_SECONDS_MAX (10L * 366 * 24 * 3600)
#define OAUTH_INTERVAL_MAX 3600
#define OAUTH_INTERVAL_DEFAULT 5

/* ---- the wiping allocator --------------------------------------------------
 * jansson copies every string it parses, tokens included, into blocks of its
 * own and frees them with json_decref. Each block carries its size in front,
 * so the free function can wipe it first. The header is 16 octets to keep
 * max_align_t alignment. jansson allocates with these two functions only (it
 * has no realloc hook). */
#define WIPE_HEADER 16

static void *wiping_malloc(size_t size)
{
    if (size > SIZE_MAX - WIPE_HEADER)
        return NULL;
    unsigned char *p = malloc(size + WIPE_HEADER);
    if (p == NULL)
        return NULL;
    memcpy(p, &size, sizeof size);
    return p + WIPE_HEADER;
}

static void wiping_free(void *ptr)
{
    if (ptr == NULL)
        return;
    unsigned char *p = (unsigned char *)ptr - WIPE_HEADER;
    size_t size;
    memcpy(&size, p, sizeof size);
    OPENSSL_cleanse(p, size + WIPE_HEADER);
    free(p);
}

/* Installed before main: jansson must never free with one allocator what it
 * got from the other, which a switch while objects are alive would do. Every
 * program that links this file gets it from its first instruction. */
__attribute__((constructor)) static void install_wiping_allocator(void)
{
    json_set_alloc_funcs(wiping_malloc, wiping_free);
}

void oauth_json_use_wiping_allocator(void)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    if (m != wiping_malloc)
        json_set_alloc_funcs(wiping_malloc, wiping_free);
}

void oauth_json_free(void *p)
{
    wiping_free(p);
}

const char *oauth_json_status_text(enum oauth_json_status s)
{
    switch (s) {
    case OAUTH_JSON_OK: return "ok";
    case OAUTH_JSON_MALFORMED: return "malformed JSON response";
    case OAUTH_JSON_MISSING: return "response lacks a required field";
    case OAUTH_JSON_TOO_LONG: return "response field over its bound";
    case OAUTH_JSON_BAD_VALUE: return "response field with an invalid value";
    }
    return "unknown";
}

/* ---- value syntaxes ------------------------------------------------------- */
typedef bool (*syntax_fn)(const char *s, size_t len);

bool oauth_bearer_token_valid(const char *t, size_t len)
{
    size_t i = 0;
    for (; i < len; i++) {
        char c = t[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
        if (!ok)
            break;
    }
    if (i == 0)
        return false;
    for (; i < len; i++)
        if (t[i] != '=')
            return false;
    return true;
}

/* RFC 6749 appendix A: VSCHAR = %x20-7E (refresh_token, device_code). */
static bool syntax_vschar(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* Printed on a terminal or used as an error code: visible ASCII, no space
 * (RFC 6749 A.7 error is NQSCHAR minus '"' and '\'; close enough and
 * stricter). */
static bool syntax_visible(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* A user code may hold a space or a dash by design ("ABCD-EFGH"); Microsoft
 * and Google use letters and digits. */
static bool syntax_user_code(const char *s, size_t len)
{
    return syntax_vschar(s, len);
}

/* ---- field copies ---------------------------------------------------------- */

/* A string field that must be exact: copied whole or refused. Absent leaves
 * out "" and returns MISSING (the caller decides whether that matters). */
static enum oauth_json_status get_exact(json_t *obj, const char *name, char *out, size_t max, syntax_fn syntax)
{
    out[0] = '\0';
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v))
        return OAUTH_JSON_MISSING;
    if (!json_is_string(v))
        return OAUTH_JSON_MALFORMED;
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len > max)
        return OAUTH_JSON_TOO_LONG;
    if (!syntax(s, len))
        return OAUTH_JSON_BAD_VALUE;
    memcpy(out, s, len);
    out[len] = '\0';
    return OAUTH_JSON_OK;
}

/* Free text (error_description, scope): made printable and cut to cap - 1
 * (at most OAUTH_ERROR_TEXT_MAX + 1). */
static enum oauth_json_status get_text(json_t *obj, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v))
        return OAUTH_JSON_OK;
    if (!json_is_string(v))
        return OAUTH_JSON_MALFORMED;
    /* Microsoft's descriptions are lines joined by CR LF ("...\r\nTrace ID:
     * ..."): white space becomes a space, other control octets '?'. */
    char spaced[OAUTH_ERROR_TEXT_MAX + 1];
    const char *text = json_string_value(v);
    size_t len = json_string_length(v);
    if (len > sizeof spaced)
        len = sizeof spaced;
    for (size_t i = 0; i < len; i++)
        spaced[i] = (text[i] == '\r' || text[i] == '\n' || text[i] == '\t') ? ' ' : text[i];
    safe_text_copy(out, cap, "", spaced, len);
    return OAUTH_JSON_OK;
}

/* Seconds: a JSON integer or a string of 1-10 digits. Absent gives -1. */
static enum oauth_json_status get_seconds(json_t *obj, const char *name, long *out)
{
    *out = -1;
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v))
        return OAUTH_JSON_OK;
    long long value;
    if (json_is_integer(v)) {
        value = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 0 || len > 10 || strspn(s, "0123456789") != len)
            return OAUTH_JSON_BAD_VALUE;
        value = strtoll(s, NULL, 10);
    } else {
        return OAUTH_JSON_MALFORMED;
    }
    if (value < 0 || value > OAUTH_SECONDS_MAX)
        return OAUTH_JSON_BAD_VALUE;
    *out = (long)value;
    return OAUTH_JSON_OK;
}

static json_t *load_object(const char *body, size_t len, enum oauth_json_status *st)
{
    if (len > OAUTH_JSON_BODY_MAX) {
        *st = OAUTH_JSON_TOO_LONG;
        return NULL;
    }
    oauth_json_use_wiping_allocator();
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        *st = OAUTH_JSON_MALFORMED;
        return NULL;
    }
    *st = OAUTH_JSON_OK;
    return root;
}

/* The error half (RFC 6749 5.2), shared by both responses. */
static enum oauth_json_status get_error(json_t *root, char *error, char *description)
{
    enum oauth_json_status st = get_exact(root, "error", error, OAUTH_ERROR_MAX, syntax_visible);
    if (st != OAUTH_JSON_OK)
        return st;
    return get_text(root, "error_description", description, OAUTH_ERROR_TEXT_MAX + 1);
}

#define RETURN_IF(st)                  \
    do {                               \
        if ((st) != OAUTH_JSON_OK)     \
            return (st);               \
    } while (0)

static enum oauth_json_status token_fields(json_t *root, struct oauth_token_response *out)
{
    if (json_object_get(root, "error") != NULL) {
        out->is_error = true;
        return get_error(root, out->error, out->error_description);
    }
    enum oauth_json_status st = get_exact(root, "access_token", out->access_token, OAUTH_ACCESS_TOKEN_MAX,
                                          oauth_bearer_token_valid);
    RETURN_IF(st);
    st = get_exact(root, "token_type", out->token_type, OAUTH_TOKEN_TYPE_MAX, syntax_visible);
    RETURN_IF(st);
    if (strcasecmp(out->token_type, "bearer") != 0)
        return OAUTH_JSON_BAD_VALUE;
    st = get_exact(root, "refresh_token", out->refresh_token, OAUTH_REFRESH_TOKEN_MAX, syntax_vschar);
    if (st != OAUTH_JSON_MISSING)
        RETURN_IF(st);
    st = get_text(root, "scope", out->scope, OAUTH_SCOPE_MAX + 1);
    RETURN_IF(st);
    return get_seconds(root, "expires_in", &out->expires_in);
}

enum oauth_json_status oauth_token_response_parse(const char *body, size_t len, struct oauth_token_response *out)
{
    oauth_token_response_wipe(out);
    enum oauth_json_status st;
    json_t *root = load_object(body, len, &st);
    if (root == NULL)
        return st;
    st = token_fields(root, out);
    json_decref(root);
    if (st != OAUTH_JSON_OK)
        oauth_token_response_wipe(out);
    return st;
}

void oauth_token_response_wipe(struct oauth_token_response *r)
{
    OPENSSL_cleanse(r, sizeof *r);
    r->expires_in = -1;
}

static enum oauth_json_status device_fields(json_t *root, struct oauth_device_response *out)
{
    if (json_object_get(root, "error") != NULL) {
        out->is_error = true;
        return get_error(root, out->error, out->error_description);
    }
    enum oauth_json_status st = get_exact(root, "device_code", out->device_code, OAUTH_DEVICE_CODE_MAX,
                                          syntax_vschar);
    RETURN_IF(st);
    st = get_exact(root, "user_code", out->user_code, OAUTH_USER_CODE_MAX, syntax_user_code);
    RETURN_IF(st);
    /* RFC 8628 says verification_uri; Google's endpoint says verification_url. */
    st = get_exact(root, "verification_uri", out->verification_uri, OAUTH_URI_MAX, syntax_visible);
    if (st == OAUTH_JSON_MISSING)
        st = get_exact(root, "verification_url", out->verification_uri, OAUTH_URI_MAX, syntax_visible);
    RETURN_IF(st);
    st = get_exact(root, "verification_uri_complete", out->verification_uri_complete, OAUTH_URI_MAX,
                   syntax_visible);
    if (st != OAUTH_JSON_MISSING)
        RETURN_IF(st);
    st = get_seconds(root, "expires_in", &out->expires_in);
    RETURN_IF(st);
    if (out->expires_in < 0)
        return OAUTH_JSON_MISSING;
    if (out->expires_in == 0)
        return OAUTH_JSON_BAD_VALUE;
    st = get_seconds(root, "interval", &out->interval);
    RETURN_IF(st);
    if (out->interval < 0)
        out->interval = OAUTH_INTERVAL_DEFAULT;
    else if (out->interval == 0 || out->interval > OAUTH_INTERVAL_MAX)
        return OAUTH_JSON_BAD_VALUE;
    return OAUTH_JSON_OK;
}

enum oauth_json_status oauth_device_response_parse(const char *body, size_t len, struct oauth_device_response *out)
{
    oauth_device_response_wipe(out);
    enum oauth_json_status st;
    json_t *root = load_object(body, len, &st);
    if (root == NULL)
        return st;
    st = device_fields(root, out);
    json_decref(root);
    if (st != OAUTH_JSON_OK)
        oauth_device_response_wipe(out);
    return st;
}

void oauth_device_response_wipe(struct oauth_device_response *r)
{
    OPENSSL_cleanse(r, sizeof *r);
    r->expires_in = -1;
    r->interval = -1;
}
