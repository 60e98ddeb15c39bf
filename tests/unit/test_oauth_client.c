/* Tests for backends/oauth_provider.c and backends/oauth_client.c: the
 * provider presets, the request bodies of every grant, the classification
 * of token endpoint answers, and the grants against a token endpoint on
 * 127.0.0.1 (loopback_http.h) that checks what it receives: a refresh with
 * rotation and a revoked one, client credentials, a jwt-bearer assertion
 * whose RS256 signature the endpoint verifies, an endpoint that is down, and
 * the device flow through authorization_pending and slow_down (the gap after
 * slow_down is measured on the server's side), access_denied and expiry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <ev.h>
#include <jansson.h>

#include "base64.h"
#include "loopback_http.h"
#include "oauth_client.h"
#include "sasl_plain.h"

/* ---- the token endpoint --------------------------------------------------------- */

static EVP_PKEY *rsa_key;
static pthread_mutex_t ep_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *device_script[8];   /* answers to successive polls */
static unsigned polls;
static double poll_at[8];
static long device_expires = 30;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The value of name in a form body, still percent-encoded, or NULL. */
static bool field(const char *body, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = body; p != NULL; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            const char *v = p + n + 1;
            size_t len = strcspn(v, "&");
            if (len >= cap)
                return false;
            memcpy(out, v, len);
            out[len] = '\0';
            return true;
        }
    }
    return false;
}

static void send_json(struct conn *c, int status, const char *json)
{
    send_body(c, status, json, strlen(json), true);
}

static const char TOKEN_OK[] = "{\"access_token\":\"at-1\",\"token_type\":\"Bearer\",\"expires_in\":3600,"
                               "\"refresh_token\":\"rt-rotated\",\"scope\":\"s\"}";

/* The assertion's signature, checked with the public half of rsa_key, and
 * its sub claim. */
static bool assertion_valid(const char *jwt, const char *want_sub)
{
    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d2 == NULL)
        return false;
    char tmp[4096];
    unsigned char sig[512], claims[2048];
    size_t n = 0;
    for (const char *p = d2 + 1; *p; p++)
        tmp[n++] = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    while (n % 4)
        tmp[n++] = '=';
    long slen = base64_decode_strict(tmp, n, sig, sizeof sig);
    n = 0;
    for (const char *p = d1 + 1; p < d2; p++)
        tmp[n++] = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    while (n % 4)
        tmp[n++] = '=';
    long clen = base64_decode_strict(tmp, n, claims, sizeof claims);
    if (slen <= 0 || clen <= 0)
        return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, rsa_key) == 1 &&
              EVP_DigestVerify(md, sig, (size_t)slen, (const unsigned char *)jwt, (size_t)(d2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    json_t *c = json_loadb((const char *)claims, (size_t)clen, 0, NULL);
    ok = ok && json_is_string(json_object_get(c, "sub")) &&
         strcmp(json_string_value(json_object_get(c, "sub")), want_sub) == 0;
    json_decref(c);
    return ok;
}

static void loopback_handler(struct conn *c, const char *req, const char *body)
{
    char grant[128] = "", v[4096] = "";
    field(body, "grant_type", grant, sizeof grant);
    if (strncmp(req, "POST /devicecode ", 17) == 0) {
        if (!field(body, "client_id", v, sizeof v) || strcmp(v, "cid") != 0 || field(body, "client_secret", v, sizeof v)) {
            send_json(c, 400, "{\"error\":\"invalid_client\"}");
            return;
        }
        char json[512];
        snprintf(json, sizeof json,
                 "{\"device_code\":\"dc-1\",\"user_code\":\"WDJB-MJHT\",\"verification_uri\":\"https://example.com/device\","
                 "\"expires_in\":%ld,\"interval\":1}",
                 device_expires);
        send_json(c, 200, json);
    } else if (strncmp(req, "POST /down ", 11) == 0) {
        send_body(c, 503, "<html>down</html>", 17, true);
    } else if (strncmp(req, "POST /token ", 12) != 0) {
        send_json(c, 404, "{}");
    } else if (strcmp(grant, "refresh_token") == 0) {
        field(body, "refresh_token", v, sizeof v);
        if (strcmp(v, "rt-good") == 0)
            send_json(c, 200, TOKEN_OK);
        else
            send_json(c, 400, "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS50173: revoked\"}");
    } else if (strcmp(grant, "client_credentials") == 0) {
        bool ok = field(body, "client_secret", v, sizeof v) && strcmp(v, "s3cret") == 0;
        send_json(c, ok ? 200 : 401, ok ? TOKEN_OK : "{\"error\":\"invalid_client\"}");
    } else if (strcmp(grant, "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") == 0) {
        bool ok = field(body, "assertion", v, sizeof v) && assertion_valid(v, "alice@example.org");
        send_json(c, ok ? 200 : 400, ok ? TOKEN_OK : "{\"error\":\"invalid_grant\",\"error_description\":\"bad JWT\"}");
    } else if (strcmp(grant, "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code") == 0) {
        pthread_mutex_lock(&ep_mu);
        unsigned i = polls < 8 ? polls : 7;
        poll_at[i] = now_s();
        polls++;
        const char *answer = device_script[i] ? device_script[i] : "authorization_pending";
        pthread_mutex_unlock(&ep_mu);
        if (strcmp(answer, "ok") == 0) {
            send_json(c, 200, TOKEN_OK);
        } else {
            char json[128];
            snprintf(json, sizeof json, "{\"error\":\"%s\"}", answer);
            send_json(c, 400, json);
        }
    } else {
        send_json(c, 400, "{\"error\":\"unsupported_grant_type\"}");
    }
}

static struct server endpoint;
static struct oauth_provider provider;
static struct ev_loop *loop;
static struct http_client *http;

static int setup(void **state)
{
    (void)state;
    assert_true(http_client_global_init());
    rsa_key = EVP_RSA_gen(2048);
    server_start(&endpoint, NULL);
    char token_url[64], device_url[64], err[OAUTH_PROVIDER_ERROR_MAX];
    snprintf(token_url, sizeof token_url, "http://127.0.0.1:%d/token", endpoint.port);
    snprintf(device_url, sizeof device_url, "http://127.0.0.1:%d/devicecode", endpoint.port);
    assert_true(oauth_provider_init(&provider, OAUTH_PROVIDER_GENERIC, NULL, token_url, device_url, "imap offline",
                                    err, sizeof err));
    loop = ev_loop_new(EVFLAG_AUTO);
    http = http_client_new(loop, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    http_client_free(http);
    ev_loop_destroy(loop);
    server_stop(&endpoint);
    EVP_PKEY_free(rsa_key);
    return 0;
}

/* ---- presets and bodies ----------------------------------------------------------- */

static void test_provider_presets(void **state)
{
    (void)state;
    struct oauth_provider p;
    char err[OAUTH_PROVIDER_ERROR_MAX];
    assert_true(oauth_provider_init(&p, OAUTH_PROVIDER_MICROSOFT365, "contoso.onmicrosoft.com", NULL, NULL, NULL, err,
                                    sizeof err));
    assert_string_equal(p.token_url, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    assert_string_equal(p.device_url,
                        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode");
    assert_string_equal(p.user_scope, "https://outlook.office.com/IMAP.AccessAsUser.All offline_access");
    assert_string_equal(p.app_scope, "https://outlook.office365.com/.default");
    assert_string_equal(p.imap_host, "outlook.office365.com");
    assert_int_equal(p.imap_port, 993);
    assert_true(oauth_provider_supports(&p, OAUTH_GRANT_DEVICE));
    assert_true(oauth_provider_supports(&p, OAUTH_GRANT_CLIENT_CREDENTIALS));
    assert_false(oauth_provider_supports(&p, OAUTH_GRANT_JWT_BEARER));
    assert_false(oauth_provider_init(&p, OAUTH_PROVIDER_MICROSOFT365, NULL, NULL, NULL, NULL, err, sizeof err));
    assert_false(oauth_provider_init(&p, OAUTH_PROVIDER_MICROSOFT365, "a/b", NULL, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "oauth2_tenant"));

    assert_true(oauth_provider_init(&p, OAUTH_PROVIDER_GOOGLE, NULL, NULL, NULL, NULL, err, sizeof err));
    assert_string_equal(p.token_url, "https://oauth2.googleapis.com/token");
    assert_string_equal(p.device_url, "https://oauth2.googleapis.com/device/code");
    assert_string_equal(p.app_scope, "https://mail.google.com/");
    assert_string_equal(p.imap_host, "imap.gmail.com");
    assert_false(oauth_provider_supports(&p, OAUTH_GRANT_CLIENT_CREDENTIALS));
    assert_true(oauth_provider_supports(&p, OAUTH_GRANT_JWT_BEARER));

    /* generic: https anywhere, http only to loopback. */
    assert_true(oauth_provider_init(&p, OAUTH_PROVIDER_GENERIC, NULL, "https://idp.example/token", "", "s", err,
                                    sizeof err));
    assert_false(oauth_provider_supports(&p, OAUTH_GRANT_DEVICE));
    assert_false(oauth_provider_init(&p, OAUTH_PROVIDER_GENERIC, NULL, "http://idp.example/token", NULL, "s", err,
                                     sizeof err));
    assert_false(oauth_provider_init(&p, OAUTH_PROVIDER_GENERIC, NULL, "https://a b", NULL, "s", err, sizeof err));
    assert_false(oauth_provider_init(&p, OAUTH_PROVIDER_GENERIC, NULL, "https://idp/t", NULL, "", err, sizeof err));
    assert_true(oauth_provider_init(&p, OAUTH_PROVIDER_GENERIC, NULL, "http://[::1]:8080/t", NULL, "s", err,
                                    sizeof err));

    enum oauth_provider_kind k;
    enum oauth_grant g;
    assert_true(oauth_provider_kind_parse("microsoft365", &k) && k == OAUTH_PROVIDER_MICROSOFT365);
    assert_false(oauth_provider_kind_parse("office", &k));
    assert_true(oauth_grant_parse("jwt_bearer", &g) && g == OAUTH_GRANT_JWT_BEARER);
    assert_string_equal(oauth_grant_name(OAUTH_GRANT_CLIENT_CREDENTIALS), "client_credentials");
    assert_string_equal(oauth_provider_kind_name(OAUTH_PROVIDER_GOOGLE), "google");
}

static void test_request_bodies(void **state)
{
    (void)state;
    static struct form_body f;
    char err[OAUTH_REASON_MAX + 1];
    struct oauth_provider ms, google;
    assert_true(oauth_provider_init(&ms, OAUTH_PROVIDER_MICROSOFT365, "common", NULL, NULL, NULL, err, sizeof err));
    assert_true(oauth_provider_init(&google, OAUTH_PROVIDER_GOOGLE, NULL, NULL, NULL, NULL, err, sizeof err));
    struct oauth_identity id = { .provider = &ms, .client_id = "cid" };

    assert_true(oauth_form_refresh(&f, &id, "rt/1", err));
    assert_string_equal(f.buf, "grant_type=refresh_token&refresh_token=rt%2F1&client_id=cid&scope=https%3A%2F%2F"
                               "outlook.office.com%2FIMAP.AccessAsUser.All%20offline_access");
    id.provider = &google;
    id.client_secret = "gs";
    assert_true(oauth_form_refresh(&f, &id, "rt", err));
    assert_string_equal(f.buf, "grant_type=refresh_token&refresh_token=rt&client_id=cid&client_secret=gs");
    assert_false(oauth_form_refresh(&f, &id, "", err));
    assert_string_equal(err, "no refresh token stored");

    id.provider = &ms;
    id.client_secret = NULL;
    assert_false(oauth_form_client_credentials(&f, &id, err));
    assert_non_null(strstr(err, "client_secret"));
    id.client_secret = "s&c";
    assert_true(oauth_form_client_credentials(&f, &id, err));
    assert_string_equal(f.buf, "grant_type=client_credentials&client_id=cid&client_secret=s%26c&scope=https%3A%2F%2F"
                               "outlook.office365.com%2F.default");

    assert_true(oauth_form_device_start(&f, &id, err));
    assert_string_equal(f.buf, "client_id=cid&scope=https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All%20"
                               "offline_access");   /* no secret in the device request */
    assert_true(oauth_form_device_poll(&f, &id, "dc", err));
    assert_string_equal(f.buf, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=dc&"
                               "client_id=cid&client_secret=s%26c");

    id.client_id = NULL;
    assert_false(oauth_form_refresh(&f, &id, "rt", err));
    assert_string_equal(err, "oauth2_client_id is required");
    /* jwt_bearer without a key. */
    id.provider = &google;
    assert_false(oauth_form_jwt_bearer(&f, &id, "alice@example.org", 1000, err));
    form_wipe(&f);
}

/* ---- classification -------------------------------------------------------------- */

static struct oauth_token_response parsed;

static enum oauth_outcome classify(enum http_result res, long status, const char *body, struct oauth_result *r)
{
    struct http_response resp = {
        .result = res, .status = status, .body = body, .body_len = strlen(body), .error = res == HTTP_OK ? "" : "x",
    };
    oauth_classify(&resp, &parsed, r);
    return r->outcome;
}

static void test_classification(void **state)
{
    (void)state;
    struct oauth_result r;
    assert_int_equal(classify(HTTP_OK, 200, TOKEN_OK, &r), OAUTH_OK);
    assert_string_equal(r.access_token, "at-1");
    assert_int_equal(r.access_token_len, 4);
    assert_string_equal(r.refresh_token, "rt-rotated");
    assert_int_equal(r.expires_in, 3600);
    assert_null(strstr(r.reason, "at-1"));
    assert_int_equal(classify(HTTP_OK, 200, "{\"access_token\":\"a\",\"token_type\":\"Bearer\"}", &r), OAUTH_OK);
    assert_null(r.refresh_token);   /* not rotated */

    static const struct {
        const char *body;
        long status;
        enum http_result res;
        enum oauth_outcome want;
    } cases[] = {
        { "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70008: expired\"}", 400, HTTP_OK, OAUTH_REFUSED },
        { "{\"error\":\"access_denied\"}", 400, HTTP_OK, OAUTH_REFUSED },
        { "{\"error\":\"expired_token\"}", 400, HTTP_OK, OAUTH_REFUSED },
        { "{\"error\":\"authorization_declined\"}", 400, HTTP_OK, OAUTH_REFUSED },
        { "{\"error\":\"bad_verification_code\"}", 400, HTTP_OK, OAUTH_REFUSED },
        { "{\"error\":\"authorization_pending\"}", 400, HTTP_OK, OAUTH_PENDING },
        { "{\"error\":\"slow_down\"}", 400, HTTP_OK, OAUTH_PENDING },
        { "{\"error\":\"invalid_client\"}", 401, HTTP_OK, OAUTH_MISCONFIGURED },
        { "{\"error\":\"invalid_scope\"}", 400, HTTP_OK, OAUTH_MISCONFIGURED },
        { "{\"error\":\"something_new\"}", 400, HTTP_OK, OAUTH_MISCONFIGURED },
        { "{\"error\":\"something_new\"}", 503, HTTP_OK, OAUTH_TEMPORARY },
        { "{\"error\":\"temporarily_unavailable\"}", 400, HTTP_OK, OAUTH_TEMPORARY },
        { "<html>oops</html>", 500, HTTP_OK, OAUTH_TEMPORARY },
        { "", 429, HTTP_OK, OAUTH_TEMPORARY },
        { "<html>captive portal</html>", 200, HTTP_OK, OAUTH_TEMPORARY },
        { "not found", 404, HTTP_OK, OAUTH_MISCONFIGURED },
        { "", 0, HTTP_ERR_CONNECT, OAUTH_TEMPORARY },
        { "", 0, HTTP_ERR_TIMEOUT, OAUTH_TEMPORARY },
        { "", 0, HTTP_ERR_TLS, OAUTH_TEMPORARY },
        { "", 0, HTTP_ERR_TOO_LARGE, OAUTH_TEMPORARY },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(classify(cases[i].res, cases[i].status, cases[i].body, &r), cases[i].want);
        assert_null(r.access_token);
        assert_true(r.reason[0] != '\0');
    }
    classify(HTTP_OK, 400, "{\"error\":\"slow_down\"}", &r);
    assert_true(r.slow_down);
    classify(HTTP_OK, 400, "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70008: expired\"}", &r);
    assert_string_equal(r.reason, "invalid_grant: AADSTS70008: expired");
    assert_false(r.slow_down);
    assert_string_equal(oauth_outcome_name(OAUTH_REFUSED), "refused");
}

/* ---- async grants against the endpoint ------------------------------------------------ */

struct got {
    bool called;
    enum oauth_outcome outcome;
    char access[64];
    char refresh[64];
    char reason[OAUTH_REASON_MAX + 1];
};

static void on_result(const struct oauth_result *r, void *arg)
{
    struct got *g = arg;
    g->called = true;
    g->outcome = r->outcome;
    snprintf(g->access, sizeof g->access, "%s", r->access_token ? r->access_token : "");
    snprintf(g->refresh, sizeof g->refresh, "%s", r->refresh_token ? r->refresh_token : "");
    snprintf(g->reason, sizeof g->reason, "%s", r->reason);
    ev_break(loop, EVBREAK_ONE);
}

static void wait_for(struct oauth_call *call, struct got *g)
{
    assert_non_null(call);
    assert_false(g->called);
    loopback_run(loop);
    assert_true(g->called);
}

static void test_async_grants(void **state)
{
    (void)state;
    struct oauth_identity id = { .provider = &provider, .client_id = "cid" };
    struct got g = { 0 };
    wait_for(oauth_refresh(http, &id, "rt-good", 5000, on_result, &g), &g);
    assert_int_equal(g.outcome, OAUTH_OK);
    assert_string_equal(g.access, "at-1");
    assert_string_equal(g.refresh, "rt-rotated");

    memset(&g, 0, sizeof g);
    wait_for(oauth_refresh(http, &id, "rt-revoked", 5000, on_result, &g), &g);
    assert_int_equal(g.outcome, OAUTH_REFUSED);
    assert_string_equal(g.reason, "invalid_grant: AADSTS50173: revoked");
    assert_null(strstr(g.reason, "rt-revoked"));

    memset(&g, 0, sizeof g);
    id.client_secret = "s3cret";
    wait_for(oauth_client_credentials(http, &id, 5000, on_result, &g), &g);
    assert_int_equal(g.outcome, OAUTH_OK);
    memset(&g, 0, sizeof g);
    id.client_secret = "wrong";
    wait_for(oauth_client_credentials(http, &id, 5000, on_result, &g), &g);
    assert_int_equal(g.outcome, OAUTH_MISCONFIGURED);
    assert_null(strstr(g.reason, "wrong"));

    /* jwt-bearer: the endpoint verifies the signature with the public key. */
    struct jwt_signing_key key = { .pkey = rsa_key };
    snprintf(key.client_email, sizeof key.client_email, "svc@p.iam.gserviceaccount.com");
    struct oauth_identity sa = { .provider = &provider, .jwt_key = &key };
    memset(&g, 0, sizeof g);
    wait_for(oauth_jwt_bearer(http, &sa, "alice@example.org", time(NULL), 5000, on_result, &g), &g);
    assert_int_equal(g.outcome, OAUTH_OK);
    memset(&g, 0, sizeof g);
    wait_for(oauth_jwt_bearer(http, &sa, "mallory@example.org", time(NULL), 5000, on_result, &g), &g);
    assert_int_equal(g.outcome, OAUTH_REFUSED);

    /* The endpoint down (503 page), or nobody listening: temporary. */
    struct oauth_provider down = provider;
    snprintf(down.token_url, sizeof down.token_url, "http://127.0.0.1:%d/down", endpoint.port);
    struct oauth_identity did = { .provider = &down, .client_id = "cid" };
    memset(&g, 0, sizeof g);
    wait_for(oauth_refresh(http, &did, "rt-good", 5000, on_result, &g), &g);
    assert_int_equal(g.outcome, OAUTH_TEMPORARY);
    assert_string_equal(g.reason, "token endpoint answered HTTP 503");
    snprintf(down.token_url, sizeof down.token_url, "http://127.0.0.1:1/token");
    memset(&g, 0, sizeof g);
    wait_for(oauth_refresh(http, &did, "rt-good", 5000, on_result, &g), &g);
    assert_int_equal(g.outcome, OAUTH_TEMPORARY);
    assert_non_null(strstr(g.reason, "token endpoint connect"));

    /* Cancel: no callback. */
    memset(&g, 0, sizeof g);
    struct oauth_call *call = oauth_refresh(http, &id, "rt-good", 5000, on_result, &g);
    assert_non_null(call);
    oauth_call_cancel(call);
    assert_int_equal(http_client_active(http), 0);
    assert_false(g.called);
    /* A request that cannot be built gives NULL and no callback. */
    assert_null(oauth_refresh(http, &id, "", 5000, on_result, &g));
    assert_false(g.called);
}

/* ---- the device flow, blocking ------------------------------------------------------ */

static unsigned shown;

static void show(const struct oauth_device_response *dev, void *arg)
{
    (void)arg;
    shown++;
    assert_string_equal(dev->user_code, "WDJB-MJHT");
    assert_string_equal(dev->verification_uri, "https://example.com/device");
}

static void script(const char *a, const char *b, const char *c)
{
    pthread_mutex_lock(&ep_mu);
    memset(device_script, 0, sizeof device_script);
    device_script[0] = a;
    device_script[1] = b;
    device_script[2] = c;
    polls = 0;
    pthread_mutex_unlock(&ep_mu);
}

static void test_device_flow(void **state)
{
    (void)state;
    struct oauth_identity id = { .provider = &provider, .client_id = "cid" };
    struct oauth_token_response tok;
    struct oauth_result r;

    script("authorization_pending", "slow_down", "ok");
    shown = 0;
    oauth_device_authorize_blocking(NULL, &id, 5000, show, NULL, &tok, &r);
    assert_int_equal(shown, 1);
    assert_int_equal(r.outcome, OAUTH_OK);
    assert_string_equal(r.access_token, "at-1");
    assert_string_equal(r.refresh_token, "rt-rotated");
    assert_int_equal(polls, 3);
    /* interval 1 s, then 1 + 5 s after slow_down (RFC 8628 3.5). */
    double gap1 = poll_at[1] - poll_at[0], gap2 = poll_at[2] - poll_at[1];
    print_message("      poll gaps: %.2f s, then %.2f s after slow_down\n", gap1, gap2);
    assert_true(gap1 >= 0.9 && gap1 < 3.0);
    assert_true(gap2 >= 5.9 && gap2 < 9.0);
    oauth_token_response_wipe(&tok);

    script("access_denied", NULL, NULL);
    oauth_device_authorize_blocking(NULL, &id, 5000, show, NULL, &tok, &r);
    assert_int_equal(r.outcome, OAUTH_REFUSED);
    assert_string_equal(r.reason, "access_denied");

    /* Never approved: the code expires. */
    device_expires = 2;
    script(NULL, NULL, NULL);
    oauth_device_authorize_blocking(NULL, &id, 5000, show, NULL, &tok, &r);
    device_expires = 30;
    assert_int_equal(r.outcome, OAUTH_REFUSED);
    assert_non_null(strstr(r.reason, "expired_token"));
    assert_null(r.access_token);

    /* A client the device endpoint refuses. */
    id.client_id = "other";
    struct oauth_device_response dev;
    char reason[OAUTH_REASON_MAX + 1];
    assert_int_equal(oauth_device_start_blocking(NULL, &id, 5000, &dev, reason), OAUTH_MISCONFIGURED);
    assert_string_equal(reason, "invalid_client");
    assert_string_equal(dev.device_code, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_presets),
        cmocka_unit_test(test_request_bodies),
        cmocka_unit_test(test_classification),
        cmocka_unit_test(test_async_grants),
        cmocka_unit_test(test_device_flow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
