/* oauth_client.c: see oauth_client.h. */
#include "oauth_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "safe_text.h"

#define GRANT_REFRESH     "refresh_token"
#define GRANT_CLIENT      "client_credentials"
#define GRANT_JWT_BEARER  "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define GRANT_DEVICE_CODE "urn:ietf:params:oauth:grant-type:device_code"
/* Between polls after a temporary failure (RFC 8628 3.5: back off). */
#define DEVICE_BACKOFF_MAX 60

const char *oauth_outcome_name(enum oauth_outcome o)
{
    switch (o) {
    case OAUTH_OK: return "ok";
    case OAUTH_PENDING: return "pending";
    case OAUTH_REFUSED: return "refused";
    case OAUTH_MISCONFIGURED: return "misconfigured";
    case OAUTH_TEMPORARY: return "temporary";
    }
    return "unknown";
}

static void set_reason(char *err, const char *text)
{
    snprintf(err, OAUTH_REASON_MAX + 1, "%s", text);
}

/* ---- request bodies ----------------------------------------------------------- */

static bool start_form(struct form_body *f, const struct oauth_identity *id, const char *grant, bool need_client,
                       char *err)
{
    form_init(f);
    if (id->provider == NULL || id->provider->token_url[0] == '\0') {
        set_reason(err, "no token endpoint configured");
        return false;
    }
    if (need_client && (id->client_id == NULL || id->client_id[0] == '\0')) {
        set_reason(err, "oauth2_client_id is required");
        return false;
    }
    if (grant != NULL)
        form_add(f, "grant_type", grant);
    return true;
}

/* client_id, and client_secret when there is one (a confidential client;
 * Google's device flow needs it too). */
static void add_client(struct form_body *f, const struct oauth_identity *id)
{
    form_add(f, "client_id", id->client_id);
    if (id->client_secret != NULL && id->client_secret[0] != '\0')
        form_add(f, "client_secret", id->client_secret);
}

static bool finish_form(struct form_body *f, char *err)
{
    if (form_ok(f))
        return true;
    form_wipe(f);
    set_reason(err, "request too large for a token endpoint body");
    return false;
}

bool oauth_form_refresh(struct form_body *f, const struct oauth_identity *id, const char *refresh_token, char *err)
{
    if (!start_form(f, id, GRANT_REFRESH, true, err))
        return false;
    if (refresh_token == NULL || refresh_token[0] == '\0') {
        set_reason(err, "no refresh token stored");
        return false;
    }
    form_add(f, "refresh_token", refresh_token);
    add_client(f, id);
    /* Microsoft's v2.0 endpoint asks for the scope again on a refresh;
     * Google's refresh takes none. */
    if (id->provider->kind != OAUTH_PROVIDER_GOOGLE && id->provider->user_scope[0] != '\0')
        form_add(f, "scope", id->provider->user_scope);
    return finish_form(f, err);
}

bool oauth_form_client_credentials(struct form_body *f, const struct oauth_identity *id, char *err)
{
    if (!start_form(f, id, GRANT_CLIENT, true, err))
        return false;
    if (id->client_secret == NULL || id->client_secret[0] == '\0') {
        set_reason(err, "client_credentials needs oauth2_client_secret_file");
        return false;
    }
    add_client(f, id);
    form_add(f, "scope", id->provider->app_scope);
    return finish_form(f, err);
}

bool oauth_form_jwt_bearer(struct form_body *f, const struct oauth_identity *id, const char *sub, time_t now,
                           char *err)
{
    if (!start_form(f, id, GRANT_JWT_BEARER, false, err))
        return false;
    if (id->jwt_key == NULL || id->jwt_key->pkey == NULL) {
        set_reason(err, "jwt_bearer needs a private key (oauth2_key_file)");
        return false;
    }
    /* A service-account key names its issuer; a bare PEM key is the
     * client's own, so its client_id is the issuer (RFC 7523 3). */
    const char *iss = id->jwt_key->client_email[0] != '\0' ? id->jwt_key->client_email : id->client_id;
    if (iss == NULL || iss[0] == '\0' || sub == NULL || sub[0] == '\0') {
        set_reason(err, "jwt_bearer needs an issuer (service-account client_email or oauth2_client_id) and a user");
        return false;
    }
    struct jwt_claims claims = {
        .iss = iss,
        .sub = sub,
        .scope = id->provider->app_scope,
        .aud = id->provider->token_url,
        .iat = now,
        .lifetime = JWT_LIFETIME_DEFAULT,
    };
    char *jwt = malloc(JWT_ASSERTION_MAX);
    char jerr[OAUTH_REASON_MAX + 1];
    bool ok = jwt != NULL && jwt_assertion_sign(id->jwt_key, &claims, jwt, JWT_ASSERTION_MAX, jerr, sizeof jerr);
    if (ok)
        form_add(f, "assertion", jwt);
    else
        set_reason(err, jwt ? jerr : "out of memory");
    if (jwt != NULL) {
        OPENSSL_cleanse(jwt, JWT_ASSERTION_MAX);
        free(jwt);
    }
    return ok && finish_form(f, err);
}

bool oauth_form_device_start(struct form_body *f, const struct oauth_identity *id, char *err)
{
    if (!start_form(f, id, NULL, true, err))
        return false;
    if (id->provider->device_url[0] == '\0') {
        set_reason(err, "this provider has no device authorization endpoint (oauth2_device_url)");
        return false;
    }
    /* The device authorization request carries no secret (RFC 8628 3.1). */
    form_add(f, "client_id", id->client_id);
    form_add(f, "scope", id->provider->user_scope);
    return finish_form(f, err);
}

bool oauth_form_device_poll(struct form_body *f, const struct oauth_identity *id, const char *device_code, char *err)
{
    if (!start_form(f, id, GRANT_DEVICE_CODE, true, err))
        return false;
    form_add(f, "device_code", device_code);
    add_client(f, id);
    return finish_form(f, err);
}

/* ---- classification ------------------------------------------------------------ */

struct error_class {
    const char *code;
    enum oauth_outcome outcome;
};

/* RFC 6749 5.2 and RFC 8628 3.5 codes, with Microsoft's device-flow names
 * for the same outcomes (identity platform docs: authorization_declined is
 * the user saying no, bad_verification_code a device code it does not know,
 * so a new consent is what helps). Unknown codes are MISCONFIGURED on a
 * 4xx (nothing the user can do) and TEMPORARY on a 5xx. */
static const struct error_class error_classes[] = {
    { "authorization_pending", OAUTH_PENDING },
    { "slow_down", OAUTH_PENDING },
    { "invalid_grant", OAUTH_REFUSED },
    { "access_denied", OAUTH_REFUSED },
    { "expired_token", OAUTH_REFUSED },
    { "authorization_declined", OAUTH_REFUSED },
    { "bad_verification_code", OAUTH_REFUSED },
    { "invalid_client", OAUTH_MISCONFIGURED },
    { "unauthorized_client", OAUTH_MISCONFIGURED },
    { "invalid_scope", OAUTH_MISCONFIGURED },
    { "unsupported_grant_type", OAUTH_MISCONFIGURED },
    { "invalid_request", OAUTH_MISCONFIGURED },
    { "temporarily_unavailable", OAUTH_TEMPORARY },
    { "server_error", OAUTH_TEMPORARY },
};

static enum oauth_outcome class_of(const char *code, long status)
{
    for (size_t i = 0; i < sizeof error_classes / sizeof *error_classes; i++)
        if (strcmp(code, error_classes[i].code) == 0)
            return error_classes[i].outcome;
    return status >= 500 ? OAUTH_TEMPORARY : OAUTH_MISCONFIGURED;
}

/* "<code>: <description>" for an OAuth error, cut to the reason. */
static void error_reason(char *reason, const char *code, const char *description)
{
    char prefix[OAUTH_ERROR_MAX + 3];
    snprintf(prefix, sizeof prefix, description[0] != '\0' ? "%s: " : "%s", code);
    safe_text_copy(reason, OAUTH_REASON_MAX + 1, prefix, description, strlen(description));
}

void oauth_classify(const struct http_response *resp, struct oauth_token_response *parsed, struct oauth_result *out)
{
    memset(out, 0, sizeof *out);
    out->expires_in = -1;
    out->http_status = resp->status;
    oauth_token_response_wipe(parsed);
    if (resp->result != HTTP_OK) {
        out->outcome = OAUTH_TEMPORARY;
        snprintf(out->reason, sizeof out->reason, "token endpoint %s: %s", http_result_name(resp->result),
                 resp->error);
        return;
    }
    enum oauth_json_status st = oauth_token_response_parse(resp->body, resp->body_len, parsed);
    if (st == OAUTH_JSON_OK && parsed->is_error) {
        out->outcome = class_of(parsed->error, resp->status);
        out->slow_down = strcmp(parsed->error, "slow_down") == 0;
        error_reason(out->reason, parsed->error, parsed->error_description);
        return;
    }
    if (resp->status == 429 || resp->status >= 500) {
        out->outcome = OAUTH_TEMPORARY;
        snprintf(out->reason, sizeof out->reason, "token endpoint answered HTTP %ld", resp->status);
        return;
    }
    if (resp->status != 200) {
        out->outcome = OAUTH_MISCONFIGURED;
        snprintf(out->reason, sizeof out->reason, "token endpoint answered HTTP %ld without an OAuth error",
                 resp->status);
        return;
    }
    if (st != OAUTH_JSON_OK) {
        /* A 200 that is not a token response: a proxy's page, a cut body.
         * Nothing says the grant is bad; try again later. */
        out->outcome = OAUTH_TEMPORARY;
        snprintf(out->reason, sizeof out->reason, "token endpoint answered 200 with a %s",
                 oauth_json_status_text(st));
        return;
    }
    out->outcome = OAUTH_OK;
    out->access_token = parsed->access_token;
    out->access_token_len = strlen(parsed->access_token);
    out->expires_in = parsed->expires_in;
    if (parsed->refresh_token[0] != '\0') {
        out->refresh_token = parsed->refresh_token;
        out->refresh_token_len = strlen(parsed->refresh_token);
    }
    out->scope = parsed->scope;
    set_reason(out->reason, "ok");
}

/* ---- async ---------------------------------------------------------------------- */

struct oauth_call {
    struct http_request *req;
    oauth_done_fn done;
    void *arg;
};

static void call_done(const struct http_response *resp, void *arg)
{
    struct oauth_call *c = arg;
    struct oauth_token_response *parsed = malloc(sizeof *parsed);
    struct oauth_result r;
    if (parsed == NULL) {
        memset(&r, 0, sizeof r);
        r.outcome = OAUTH_TEMPORARY;
        r.expires_in = -1;
        set_reason(r.reason, "out of memory");
        c->done(&r, c->arg);
    } else {
        oauth_classify(resp, parsed, &r);
        c->done(&r, c->arg);
        oauth_token_response_wipe(parsed);
        free(parsed);
    }
    OPENSSL_cleanse(&r, sizeof r);
    free(c);
}

/* Send f if it was built; f (NULL when out of memory) is wiped and freed
 * here whatever happens. */
static struct oauth_call *send_built(struct http_client *http, const char *url, struct form_body *f, bool built,
                                     unsigned timeout_ms, oauth_done_fn done, void *arg)
{
    struct oauth_call *c = NULL;
    if (f != NULL && built && (c = calloc(1, sizeof *c)) != NULL) {
        c->done = done;
        c->arg = arg;
        c->req = http_post_form(http, url, f->buf, f->len, timeout_ms, call_done, c);
        if (c->req == NULL) {
            free(c);
            c = NULL;
        }
    }
    if (f != NULL) {
        form_wipe(f);
        free(f);
    }
    return c;
}

/* The reason a body could not be built is not reported: the async callers
 * check their inputs when the config is loaded, and NULL means "not sent". */
struct oauth_call *oauth_refresh(struct http_client *http, const struct oauth_identity *id,
                                 const char *refresh_token, unsigned timeout_ms, oauth_done_fn done, void *arg)
{
    char err[OAUTH_REASON_MAX + 1];
    struct form_body *f = malloc(sizeof *f);
    return send_built(http, id->provider->token_url, f, f && oauth_form_refresh(f, id, refresh_token, err),
                      timeout_ms, done, arg);
}

struct oauth_call *oauth_client_credentials(struct http_client *http, const struct oauth_identity *id,
                                            unsigned timeout_ms, oauth_done_fn done, void *arg)
{
    char err[OAUTH_REASON_MAX + 1];
    struct form_body *f = malloc(sizeof *f);
    return send_built(http, id->provider->token_url, f, f && oauth_form_client_credentials(f, id, err), timeout_ms,
                      done, arg);
}

struct oauth_call *oauth_jwt_bearer(struct http_client *http, const struct oauth_identity *id, const char *sub,
                                    time_t now, unsigned timeout_ms, oauth_done_fn done, void *arg)
{
    char err[OAUTH_REASON_MAX + 1];
    struct form_body *f = malloc(sizeof *f);
    return send_built(http, id->provider->token_url, f, f && oauth_form_jwt_bearer(f, id, sub, now, err),
                      timeout_ms, done, arg);
}

struct oauth_call *oauth_device_poll(struct http_client *http, const struct oauth_identity *id,
                                     const char *device_code, unsigned timeout_ms, oauth_done_fn done, void *arg)
{
    char err[OAUTH_REASON_MAX + 1];
    struct form_body *f = malloc(sizeof *f);
    return send_built(http, id->provider->token_url, f, f && oauth_form_device_poll(f, id, device_code, err),
                      timeout_ms, done, arg);
}

void oauth_call_cancel(struct oauth_call *c)
{
    if (c == NULL)
        return;
    http_request_cancel(c->req);
    free(c);
}

/* ---- blocking (popgate-admin) ------------------------------------------------------ */

/* POST body to url, blocking; resp->body points into *buf (heap, wiped and
 * freed by the caller with free_body). */
static void post_blocking(const struct http_client_options *http, const char *url, const struct form_body *body,
                          unsigned timeout_ms, char **buf, char *err, struct http_response *resp)
{
    *buf = malloc(HTTP_CLIENT_BODY_MAX + 1);
    if (*buf == NULL) {
        memset(resp, 0, sizeof *resp);
        resp->result = HTTP_ERR_OTHER;
        resp->body = "";
        snprintf(err, HTTP_CLIENT_ERROR_MAX, "out of memory");
        resp->error = err;
        return;
    }
    http_post_form_blocking(http, url, body->buf, body->len, timeout_ms, *buf, HTTP_CLIENT_BODY_MAX + 1, err, resp);
}

static void free_body(char *buf)
{
    if (buf != NULL) {
        OPENSSL_cleanse(buf, HTTP_CLIENT_BODY_MAX + 1);
        free(buf);
    }
}

void oauth_token_request_blocking(const struct http_client_options *http, const struct oauth_identity *id,
                                  const struct form_body *body, unsigned timeout_ms,
                                  struct oauth_token_response *tok, struct oauth_result *r)
{
    char *buf = NULL;
    char err[HTTP_CLIENT_ERROR_MAX];
    struct http_response resp;
    post_blocking(http, id->provider->token_url, body, timeout_ms, &buf, err, &resp);
    oauth_classify(&resp, tok, r);
    free_body(buf);
}

/* A device authorization answer that arrived (any status). */
static enum oauth_outcome classify_device(const struct http_response *resp, struct oauth_device_response *dev,
                                          char *reason)
{
    enum oauth_json_status st = oauth_device_response_parse(resp->body, resp->body_len, dev);
    if (st == OAUTH_JSON_OK && dev->is_error) {
        error_reason(reason, dev->error, dev->error_description);
        return class_of(dev->error, resp->status);
    }
    if (resp->status == 429 || resp->status >= 500) {
        snprintf(reason, OAUTH_REASON_MAX + 1, "device endpoint answered HTTP %ld", resp->status);
        return OAUTH_TEMPORARY;
    }
    if (resp->status != 200) {
        snprintf(reason, OAUTH_REASON_MAX + 1, "device endpoint answered HTTP %ld", resp->status);
        return OAUTH_MISCONFIGURED;
    }
    if (st != OAUTH_JSON_OK) {
        snprintf(reason, OAUTH_REASON_MAX + 1, "device endpoint answered 200 with a %s", oauth_json_status_text(st));
        return OAUTH_TEMPORARY;
    }
    set_reason(reason, "ok");
    return OAUTH_OK;
}

enum oauth_outcome oauth_device_start_blocking(const struct http_client_options *http,
                                               const struct oauth_identity *id, unsigned timeout_ms,
                                               struct oauth_device_response *dev,
                                               char reason[OAUTH_REASON_MAX + 1])
{
    oauth_device_response_wipe(dev);
    struct form_body *f = malloc(sizeof *f);
    if (f == NULL) {
        set_reason(reason, "out of memory");
        return OAUTH_TEMPORARY;
    }
    if (!oauth_form_device_start(f, id, reason)) {
        form_wipe(f);
        free(f);
        return OAUTH_MISCONFIGURED;
    }
    char *buf = NULL;
    char err[HTTP_CLIENT_ERROR_MAX];
    struct http_response resp;
    post_blocking(http, id->provider->device_url, f, timeout_ms, &buf, err, &resp);
    form_wipe(f);
    free(f);

    enum oauth_outcome out;
    if (resp.result != HTTP_OK) {
        out = OAUTH_TEMPORARY;
        snprintf(reason, OAUTH_REASON_MAX + 1, "device endpoint %s: %s", http_result_name(resp.result), resp.error);
    } else {
        out = classify_device(&resp, dev, reason);
    }
    free_body(buf);
    if (out != OAUTH_OK)
        oauth_device_response_wipe(dev);
    return out;
}

static void sleep_seconds(long s)
{
    struct timespec ts = { .tv_sec = s, .tv_nsec = 0 };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

void oauth_device_authorize_blocking(const struct http_client_options *http, const struct oauth_identity *id,
                                     unsigned timeout_ms, oauth_device_show_fn show, void *arg,
                                     struct oauth_token_response *tok, struct oauth_result *r)
{
    memset(r, 0, sizeof *r);
    r->expires_in = -1;
    oauth_token_response_wipe(tok);
    struct oauth_device_response *dev = malloc(sizeof *dev);
    struct form_body *f = malloc(sizeof *f);
    if (dev == NULL || f == NULL) {
        r->outcome = OAUTH_TEMPORARY;
        set_reason(r->reason, "out of memory");
        free(dev);
        free(f);
        return;
    }
    r->outcome = oauth_device_start_blocking(http, id, timeout_ms, dev, r->reason);
    if (r->outcome == OAUTH_OK) {
        show(dev, arg);
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        long interval = dev->interval, backoff = 0;
        for (;;) {
            sleep_seconds(interval + backoff);
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec >= dev->expires_in) {
                oauth_token_response_wipe(tok);
                memset(r, 0, sizeof *r);
                r->outcome = OAUTH_REFUSED;
                r->expires_in = -1;
                set_reason(r->reason, "expired_token: the code was not entered in time");
                break;
            }
            if (!oauth_form_device_poll(f, id, dev->device_code, r->reason)) {
                r->outcome = OAUTH_MISCONFIGURED;
                break;
            }
            oauth_token_request_blocking(http, id, f, timeout_ms, tok, r);
            form_wipe(f);
            if (r->outcome == OAUTH_PENDING) {
                if (r->slow_down)
                    interval += OAUTH_SLOW_DOWN_STEP;
                backoff = 0;
                continue;
            }
            if (r->outcome == OAUTH_TEMPORARY) {
                /* RFC 8628 3.5: back off on a connection problem, but keep
                 * polling until the code expires. */
                backoff = backoff ? (backoff * 2 > DEVICE_BACKOFF_MAX ? DEVICE_BACKOFF_MAX : backoff * 2) : interval;
                continue;
            }
            break;
        }
    }
    oauth_device_response_wipe(dev);
    free(dev);
    form_wipe(f);
    free(f);
}
