/* sasl_oauth: the SASL initial responses that log in with an OAuth 2.0
 * access token, and the server's error challenge. Pure: no I/O.
 *
 * - XOAUTH2 (Google's and Microsoft's documented format):
 *     base64("user=" U ^A "auth=Bearer " T ^A ^A)
 * - OAUTHBEARER (RFC 7628 section 3.1), with the GS2 header of RFC 5801:
 *     base64("n,a=" U' "," ^A "host=" H ^A "port=" P ^A "auth=Bearer " T ^A ^A)
 *   where U' is the user as a saslname ("," written "=2C", "=" as "=3D").
 *
 * What is refused rather than sent (SASL_OAUTH_INVALID):
 * - a token outside RFC 6750's b64token syntax (ALPHA DIGIT - . _ ~ + / then
 *   '=' padding only): every token a provider issues fits it, and it keeps ^A,
 *   NUL, CR and LF (the bytes a forged field or an IMAP injection would need)
 *   out of the response;
 * - a user or host with a control octet (0x00-0x1f, 0x7f); a port of 0.
 *
 * The response holds the token: the caller wipes the buffer after sending it
 * (explicit_bzero / OPENSSL_cleanse). Inputs are read in place, never copied
 * elsewhere; the only copy is the output. Responses are one IMAP line
 * (AUTHENTICATE with SASL-IR, RFC 4959): SASL_OAUTH_RESPONSE_MAX is about 11
 * KiB, far below Dovecot's 64 KiB imap_max_line_length.
 *
 * On failure the server sends a continuation "+ <base64 JSON>" (RFC 7628
 * section 3.2.2; Google and Microsoft send the same for XOAUTH2). The client
 * must answer it (SASL_OAUTH_ERROR_REPLY_*) and then gets the tagged NO.
 * sasl_oauth_error_parse() turns the challenge into short printable fields for
 * a log line: status, schemes and scope. The challenge carries no secret. */
#ifndef POPGATE_SASL_OAUTH_H
#define POPGATE_SASL_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "base64.h"

/* Bounds of the inputs, in octets. Microsoft's access tokens (JWTs) run to
 * 2-4 KB, Google's to a few hundred bytes; OAUTH_ACCESS_TOKEN_MAX in
 * oauth_json.h is the same bound. */
#define SASL_OAUTH_USER_MAX  255   /* LOGIN_USER_MAX */
#define SASL_OAUTH_HOST_MAX  255
#define SASL_OAUTH_TOKEN_MAX 8192

/* Longest decoded response: OAUTHBEARER with a user made only of ',' and '='
 * (three octets each), the longest host, a five-digit port, the longest
 * token, and the fixed text. */
#define SASL_OAUTH_RAW_MAX \
    (3 * SASL_OAUTH_USER_MAX + SASL_OAUTH_HOST_MAX + SASL_OAUTH_TOKEN_MAX + 64)
/* The base64 response plus its NUL: what `out` must hold for any input. */
#define SASL_OAUTH_RESPONSE_MAX (BASE64_LEN(SASL_OAUTH_RAW_MAX) + 1)

/* What the client sends after an error challenge, without CRLF: an empty
 * line for XOAUTH2 (Google's and Microsoft's documentation), base64 of a
 * single ^A for OAUTHBEARER (RFC 7628 section 3.2.3). */
#define SASL_OAUTH_ERROR_REPLY_XOAUTH2     ""
#define SASL_OAUTH_ERROR_REPLY_OAUTHBEARER "AQ=="

enum sasl_oauth_mech {
    SASL_MECH_XOAUTH2,
    SASL_MECH_OAUTHBEARER,
};

/* "XOAUTH2" / "OAUTHBEARER", the names in an IMAP CAPABILITY's AUTH=. */
const char *sasl_oauth_mech_name(enum sasl_oauth_mech mech);

enum sasl_oauth_status {
    SASL_OAUTH_OK,
    SASL_OAUTH_INVALID,   /* a forbidden octet in user/host/token, empty user/token, port 0 */
    SASL_OAUTH_TOO_LONG,  /* an input over its bound, or out too small */
};

/* Write the NUL-terminated base64 XOAUTH2 initial response into out
 * (capacity cap). On any failure nothing of the token is left in out
 * (out[0] = '\0' when cap > 0). */
enum sasl_oauth_status sasl_xoauth2_response(char *out, size_t cap, const char *user, size_t user_len,
                                             const char *token, size_t token_len);

/* The same for OAUTHBEARER; host and port are the IMAP server's, as RFC 7628
 * asks (the server may check them). host is a NUL-terminated string. */
enum sasl_oauth_status sasl_oauthbearer_response(char *out, size_t cap, const char *user, size_t user_len,
                                                 const char *host, unsigned port, const char *token,
                                                 size_t token_len);

/* Both, by mechanism; port and host are ignored for XOAUTH2. */
enum sasl_oauth_status sasl_oauth_response(enum sasl_oauth_mech mech, char *out, size_t cap,
                                           const char *user, size_t user_len, const char *host,
                                           unsigned port, const char *token, size_t token_len);

/* The error challenge, decoded, each field printable ASCII (other octets
 * become '?') and cut to its array. Absent fields are "". */
#define SASL_OAUTH_CHALLENGE_MAX 4096   /* base64 octets accepted */
struct sasl_oauth_error {
    char status[64];    /* an HTTP status ("401") or an error code ("invalid_token") */
    char schemes[64];   /* "bearer" */
    char scope[256];
};

/* Decode a challenge (the text after "+ "). Returns false if it is not
 * strict base64 of a JSON object, or longer than SASL_OAUTH_CHALLENGE_MAX;
 * out is then all "". */
bool sasl_oauth_error_parse(const char *b64, size_t len, struct sasl_oauth_error *out);

#endif
