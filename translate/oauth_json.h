/* oauth_json: the JSON bodies of an OAuth 2.0 token endpoint and device
 * authorization endpoint, parsed into bounded fields. Pure: no I/O.
 *
 * JSON library: jansson (Debian libjansson-dev), chosen over json-c because
 * - json_loadb() takes a length, so a body is parsed where it lies, without a
 *   NUL-terminated copy;
 * - it is strict by default (RFC 8259): invalid UTF-8, NUL inside strings
 *   and trailing bytes are errors, and JSON_REJECT_DUPLICATES refuses an
 *   object that names a field twice (a second "access_token" cannot sneak in);
 * - json_set_alloc_funcs() lets popgate wipe every block jansson frees, so
 *   the copies it makes of tokens do not linger in freed heap (see
 *   oauth_json_use_wiping_allocator);
 * - nesting is bounded by the library (2048 levels), and popgate bounds the
 *   input (OAUTH_JSON_BODY_MAX) before parsing.
 *
 * Bounds: every field is copied into a fixed array of the result struct; a
 * field over its bound is an error for tokens and codes (a cut token is
 * useless) and is cut for free text (error_description, scope). Free text is
 * made printable ASCII (safe_text.h) because it goes to logs.
 *
 * Secrets: access_token, refresh_token and device_code are secrets. The
 * result structs hold them: wipe them with the *_wipe functions. No function
 * here writes a secret into an error text; the status says what was wrong.
 *
 * Thread use: call from one thread (the event loop's or popgate-admin's). */
#ifndef POPGATE_OAUTH_JSON_H
#define POPGATE_OAUTH_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Longest body accepted, the same bound as HTTP_CLIENT_BODY_MAX. */
#define OAUTH_JSON_BODY_MAX (64 * 1024)

/* Field bounds, in octets, without the NUL. Microsoft's access tokens are
 * JWTs of 1.5-4 KB (more with many group claims), Google's are ~200 octets;
 * refresh tokens are opaque, Microsoft's ~1.5 KB. */
#define OAUTH_ACCESS_TOKEN_MAX   8192
#define OAUTH_REFRESH_TOKEN_MAX  4096
#define OAUTH_TOKEN_TYPE_MAX     32
#define OAUTH_SCOPE_MAX          1024
#define OAUTH_ERROR_MAX          64     /* RFC 6749 error codes are short ASCII words */
#define OAUTH_ERROR_TEXT_MAX     512    /* error_description: cut, not refused */
#define OAUTH_DEVICE_CODE_MAX    1024
#define OAUTH_USER_CODE_MAX      64
#define OAUTH_URI_MAX            1024

enum oauth_json_status {
    OAUTH_JSON_OK,
    OAUTH_JSON_MALFORMED,  /* not JSON, not one object, a duplicate name, or a field of the wrong type */
    OAUTH_JSON_MISSING,    /* a required field is absent (access_token / error / device_code ...) */
    OAUTH_JSON_TOO_LONG,   /* body over OAUTH_JSON_BODY_MAX, or a token/code over its bound */
    OAUTH_JSON_BAD_VALUE,  /* a token outside its syntax (RFC 6749 appendix A), a negative number */
};

/* RFC 6750 section 2.1 b64token, what a Bearer token is made of:
 * 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". Every access
 * token popgate accepts has this form, which keeps ^A, NUL, CR and LF out of
 * the SASL responses built from it. */
bool oauth_bearer_token_valid(const char *t, size_t len);

/* A short fixed description of a status for error texts ("malformed JSON"). */
const char *oauth_json_status_text(enum oauth_json_status s);

/* A token endpoint answer (RFC 6749 section 5.1 success, 5.2 error). */
struct oauth_token_response {
    bool is_error;                                  /* "error" present: 5.2, else 5.1 */
    /* Success (5.1). access_token is checked against RFC 6750's b64token,
     * since it goes into a SASL response; refresh_token against VSCHAR. */
    char access_token[OAUTH_ACCESS_TOKEN_MAX + 1];   /* secret */
    char token_type[OAUTH_TOKEN_TYPE_MAX + 1];       /* "Bearer" (required, compared case-blind) */
    char refresh_token[OAUTH_REFRESH_TOKEN_MAX + 1]; /* secret; "" when the server did not rotate it */
    char scope[OAUTH_SCOPE_MAX + 1];                 /* "" when absent */
    long expires_in;                                 /* seconds; -1 when absent */
    /* Error (5.2): error is required, description optional and cut. */
    char error[OAUTH_ERROR_MAX + 1];
    char error_description[OAUTH_ERROR_TEXT_MAX + 1];
};

/* Parse body[0..len). On OAUTH_JSON_OK either is_error is false and
 * access_token / token_type are set, or is_error is true and error is set.
 * On any other status out is wiped (all zero, expires_in -1). A success whose
 * token_type is not "Bearer" is OAUTH_JSON_BAD_VALUE. expires_in may be a
 * JSON number or a string of digits (Microsoft's older endpoints send
 * "3599"); more than 10 years is OAUTH_JSON_BAD_VALUE. */
enum oauth_json_status oauth_token_response_parse(const char *body, size_t len, struct oauth_token_response *out);
void oauth_token_response_wipe(struct oauth_token_response *r);

/* A device authorization answer (RFC 8628 section 3.2), or an error in the
 * form of RFC 6749 section 5.2 (an unknown client, a refused scope). */
struct oauth_device_response {
    bool is_error;
    char device_code[OAUTH_DEVICE_CODE_MAX + 1];        /* secret: polls with it get the tokens */
    char user_code[OAUTH_USER_CODE_MAX + 1];            /* shown to the user */
    char verification_uri[OAUTH_URI_MAX + 1];           /* Google calls it verification_url: both accepted */
    char verification_uri_complete[OAUTH_URI_MAX + 1];  /* "" when absent */
    long expires_in;                                    /* seconds, required, > 0 */
    long interval;                                      /* seconds; 5 when absent (RFC 8628 3.2) */
    char error[OAUTH_ERROR_MAX + 1];
    char error_description[OAUTH_ERROR_TEXT_MAX + 1];
};

/* Parse body[0..len). Success needs device_code, user_code, verification_uri
 * (or _url) and expires_in; the URIs must be visible ASCII without spaces,
 * user_code printable ASCII (both are printed to a terminal); interval is
 * 1..3600. Other statuses as above (wiped, expires_in and interval -1). */
enum oauth_json_status oauth_device_response_parse(const char *body, size_t len, struct oauth_device_response *out);
void oauth_device_response_wipe(struct oauth_device_response *r);

/* jansson's allocation functions in popgate wipe each block before freeing
 * it; they are installed before main() in every program that links this
 * file. Idempotent. Consequence for other users of jansson: memory jansson
 * hands out (json_dumps) is not plain malloc memory; free it with
 * oauth_json_free(), or use json_dumpb() into a buffer of your own. */
void oauth_json_use_wiping_allocator(void);
void oauth_json_free(void *p);

#endif
