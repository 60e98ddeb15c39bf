/* oauth_client: the token endpoint's grants, on top of http_client.
 *
 * Grants (RFC 6749 unless said):
 * - refresh_token (section 6): a stored refresh token -> an access token, and
 *   a new refresh token when the provider rotates it (Microsoft does on most
 *   refreshes; the caller must store it, re-encrypted, before the old one is
 *   lost);
 * - client_credentials (section 4.4): Microsoft's IMAP.AccessAsApp, scope
 *   https://outlook.office365.com/.default;
 * - jwt-bearer (RFC 7523 section 2.1, grant_type
 *   urn:ietf:params:oauth:grant-type:jwt-bearer): an RS256 assertion
 *   (jwt_assertion.h) naming the user as sub; Google service accounts;
 * - device authorization (RFC 8628): oauth_device_start, then
 *   oauth_device_poll every interval seconds; authorization_pending -> wait,
 *   slow_down -> interval += 5 s (section 3.5), expired_token and
 *   access_denied end it.
 *
 * Every answer is classified (oauth_classify):
 *   OAUTH_OK           an access token (and maybe a rotated refresh token);
 *   OAUTH_PENDING      device polling only: ask again later (slow_down says
 *                      whether to add 5 s to the interval);
 *   OAUTH_REFUSED      the grant is refused: re-authorisation is needed
 *                      (invalid_grant: revoked, expired or consent withdrawn,
 *                      or with jwt_bearer a user Google does not know;
 *                      access_denied, expired_token);
 *   OAUTH_MISCONFIGURED the provider refuses the client itself
 *                      (invalid_client, unauthorized_client: with Google's
 *                      jwt_bearer, delegation not granted for the scope;
 *                      invalid_scope, unsupported_grant_type,
 *                      invalid_request, other 4xx): the administrator must
 *                      fix the app registration or the config; no user
 *                      action helps;
 *   OAUTH_TEMPORARY    no usable answer: connection refused, timeout, TLS,
 *                      HTTP 5xx or 429, temporarily_unavailable /
 *                      server_error, a 200 whose body is not a token response.
 * For a POP3 login: OK -> log in upstream; REFUSED, MISCONFIGURED -> -ERR
 * [AUTH] (REFUSED counts as popgate_oauth_reauth_needed); TEMPORARY -> -ERR
 * [SYS/TEMP].
 *
 * `reason` is a short printable text for logs and popgate-admin: the
 * provider's error code, its description cut to OAUTH_REASON_MAX, or the
 * transport error and HTTP status. It never holds a token, secret, device
 * code or assertion.
 *
 * Lifetime (async calls): the call returns a handle or NULL (nothing sent,
 * no callback: out of memory or the request could not be built, e.g. a
 * refresh token over its bound). done runs exactly once, from the loop,
 * unless oauth_call_cancel() came first; the handle is freed after done
 * returns. The identity and strings passed in are copied into the request
 * body at once: they need not outlive the call. The tokens in a result are
 * valid during done only; the result is wiped after it. */
#ifndef POPGATE_OAUTH_CLIENT_H
#define POPGATE_OAUTH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "form_encode.h"
#include "http_client.h"
#include "jwt_assertion.h"
#include "oauth_json.h"
#include "oauth_provider.h"

#define OAUTH_REASON_MAX 200
/* RFC 8628 section 3.5: slow_down adds 5 seconds to the polling interval. */
#define OAUTH_SLOW_DOWN_STEP 5

enum oauth_outcome {
    OAUTH_OK,
    OAUTH_PENDING,
    OAUTH_REFUSED,
    OAUTH_MISCONFIGURED,
    OAUTH_TEMPORARY,
};

const char *oauth_outcome_name(enum oauth_outcome o);   /* "ok", "pending", "refused", ... */

/* Who popgate is at the provider: one per mapping, built when the config is
 * loaded. Secrets (client_secret, the JWT key) come from root-only files. */
struct oauth_identity {
    const struct oauth_provider *provider;
    const char *client_id;                  /* required, except for jwt_bearer */
    const char *client_secret;              /* NULL: a public client (device grant) */
    const struct jwt_signing_key *jwt_key;  /* jwt_bearer only; its client_email is iss */
};

/* One classified answer. The pointers are into the parsed response. */
struct oauth_result {
    enum oauth_outcome outcome;
    bool slow_down;                  /* OAUTH_PENDING after "slow_down" */
    const char *access_token;        /* OAUTH_OK: the token (secret) */
    size_t access_token_len;
    long expires_in;                 /* OAUTH_OK: seconds, -1 when not given */
    const char *refresh_token;       /* OAUTH_OK: a rotated refresh token (secret), or NULL */
    size_t refresh_token_len;
    const char *scope;               /* OAUTH_OK: granted scope, "" when not given */
    long http_status;                /* 0 when no response */
    char reason[OAUTH_REASON_MAX + 1];
};

/* ---- request bodies (shared by the async and the blocking calls) ---------
 * Each fills f (form_init'ed here) and returns false, with a reason in err
 * (OAUTH_REASON_MAX + 1), when an input is missing or the body would not fit.
 * f then holds secrets: form_wipe() it. */
bool oauth_form_refresh(struct form_body *f, const struct oauth_identity *id, const char *refresh_token,
                        char *err);
bool oauth_form_client_credentials(struct form_body *f, const struct oauth_identity *id, char *err);
/* sub = the user (the mailbox address) to act for; now = the iat. */
bool oauth_form_jwt_bearer(struct form_body *f, const struct oauth_identity *id, const char *sub, time_t now,
                           char *err);
bool oauth_form_device_start(struct form_body *f, const struct oauth_identity *id, char *err);
bool oauth_form_device_poll(struct form_body *f, const struct oauth_identity *id, const char *device_code,
                            char *err);

/* Classify a token endpoint answer: resp from http_client, parsed filled by
 * this function from resp's body (the caller wipes it after using out). */
void oauth_classify(const struct http_response *resp, struct oauth_token_response *parsed,
                    struct oauth_result *out);

/* ---- async, on the daemon's loop -------------------------------------------- */
typedef void (*oauth_done_fn)(const struct oauth_result *r, void *arg);
struct oauth_call;

struct oauth_call *oauth_refresh(struct http_client *http, const struct oauth_identity *id,
                                 const char *refresh_token, unsigned timeout_ms, oauth_done_fn done, void *arg);
struct oauth_call *oauth_client_credentials(struct http_client *http, const struct oauth_identity *id,
                                            unsigned timeout_ms, oauth_done_fn done, void *arg);
struct oauth_call *oauth_jwt_bearer(struct http_client *http, const struct oauth_identity *id, const char *sub,
                                    time_t now, unsigned timeout_ms, oauth_done_fn done, void *arg);
struct oauth_call *oauth_device_poll(struct http_client *http, const struct oauth_identity *id,
                                     const char *device_code, unsigned timeout_ms, oauth_done_fn done, void *arg);
void oauth_call_cancel(struct oauth_call *c);

/* ---- blocking, for popgate-admin only ----------------------------------------- */

/* Device authorization request. OAUTH_OK fills dev (wipe it: device_code is a
 * secret); anything else gives a reason. */
enum oauth_outcome oauth_device_start_blocking(const struct http_client_options *http,
                                               const struct oauth_identity *id, unsigned timeout_ms,
                                               struct oauth_device_response *dev,
                                               char reason[OAUTH_REASON_MAX + 1]);

/* One token request, blocking: body from an oauth_form_* function. tok holds
 * the parsed answer that r points into; the caller wipes it. */
void oauth_token_request_blocking(const struct http_client_options *http, const struct oauth_identity *id,
                                  const struct form_body *body, unsigned timeout_ms,
                                  struct oauth_token_response *tok, struct oauth_result *r);

/* The whole device flow: start, call show(dev) once (print the verification
 * URI and user code), then poll every interval (slow_down adds 5 s) until an
 * outcome other than PENDING or dev->expires_in passes (then OAUTH_REFUSED,
 * "expired_token"). r points into tok; the caller wipes tok. */
typedef void (*oauth_device_show_fn)(const struct oauth_device_response *dev, void *arg);
void oauth_device_authorize_blocking(const struct http_client_options *http, const struct oauth_identity *id,
                                     unsigned timeout_ms, oauth_device_show_fn show, void *arg,
                                     struct oauth_token_response *tok, struct oauth_result *r);

#endif
