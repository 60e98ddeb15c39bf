/* oauth_provider.c: see oauth_provider.h. */
#include "oauth_provider.h"

#include <stdio.h>
#include <string.h>

#define MS_LOGIN       "https://login.microsoftonline.com/"
#define MS_USER_SCOPE  "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
#define MS_APP_SCOPE   "https://outlook.office365.com/.default"
#define MS_IMAP_HOST   "outlook.office365.com"
#define GOOGLE_TOKEN   "https://oauth2.googleapis.com/token"
#define GOOGLE_DEVICE  "https://oauth2.googleapis.com/device/code"
#define GOOGLE_SCOPE   "https://mail.google.com/"
#define GOOGLE_IMAP    "imap.gmail.com"
#define IMAPS_PORT     993

static const char *const kind_names[] = {
    [OAUTH_PROVIDER_MICROSOFT365] = "microsoft365",
    [OAUTH_PROVIDER_GOOGLE] = "google",
    [OAUTH_PROVIDER_GENERIC] = "generic",
};

static const char *const grant_names[] = {
    [OAUTH_GRANT_DEVICE] = "device",
    [OAUTH_GRANT_CLIENT_CREDENTIALS] = "client_credentials",
    [OAUTH_GRANT_JWT_BEARER] = "jwt_bearer",
};

bool oauth_provider_kind_parse(const char *name, enum oauth_provider_kind *out)
{
    for (size_t i = 0; i < sizeof kind_names / sizeof *kind_names; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (enum oauth_provider_kind)i;
            return true;
        }
    }
    return false;
}

const char *oauth_provider_kind_name(enum oauth_provider_kind kind)
{
    return (unsigned)kind < sizeof kind_names / sizeof *kind_names ? kind_names[kind] : "unknown";
}

bool oauth_grant_parse(const char *name, enum oauth_grant *out)
{
    for (size_t i = 0; i < sizeof grant_names / sizeof *grant_names; i++) {
        if (strcmp(name, grant_names[i]) == 0) {
            *out = (enum oauth_grant)i;
            return true;
        }
    }
    return false;
}

const char *oauth_grant_name(enum oauth_grant grant)
{
    return (unsigned)grant < sizeof grant_names / sizeof *grant_names ? grant_names[grant] : "unknown";
}

static bool tenant_valid(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > OAUTH_PROVIDER_TENANT_MAX)
        return false;
    return strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

/* https:// anywhere; http:// only to loopback, where the tests run their
 * authorization server. No spaces or control octets. */
static bool url_valid(const char *url)
{
    size_t n = strlen(url);
    if (n == 0 || n > OAUTH_PROVIDER_URL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return false;
    if (strncmp(url, "https://", 8) == 0)
        return n > 8;
    static const char *const loopback[] = { "http://127.", "http://localhost:", "http://localhost/",
                                            "http://[::1]" };
    for (size_t i = 0; i < sizeof loopback / sizeof *loopback; i++)
        if (strncmp(url, loopback[i], strlen(loopback[i])) == 0)
            return true;
    return false;
}

static bool copy(char *dst, size_t cap, const char *src)
{
    int n = snprintf(dst, cap, "%s", src ? src : "");
    return n >= 0 && (size_t)n < cap;
}

bool oauth_provider_init(struct oauth_provider *out, enum oauth_provider_kind kind, const char *tenant,
                         const char *token_url, const char *device_url, const char *scope, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    switch (kind) {
    case OAUTH_PROVIDER_MICROSOFT365:
        if (!tenant_valid(tenant)) {
            snprintf(err, errlen, "microsoft365 needs oauth2_tenant: a tenant id or domain (letters, digits, '.', '-')");
            return false;
        }
        snprintf(out->token_url, sizeof out->token_url, MS_LOGIN "%s/oauth2/v2.0/token", tenant);
        snprintf(out->device_url, sizeof out->device_url, MS_LOGIN "%s/oauth2/v2.0/devicecode", tenant);
        copy(out->user_scope, sizeof out->user_scope, MS_USER_SCOPE);
        copy(out->app_scope, sizeof out->app_scope, MS_APP_SCOPE);
        copy(out->imap_host, sizeof out->imap_host, MS_IMAP_HOST);
        out->imap_port = IMAPS_PORT;
        return true;
    case OAUTH_PROVIDER_GOOGLE:
        copy(out->token_url, sizeof out->token_url, GOOGLE_TOKEN);
        copy(out->device_url, sizeof out->device_url, GOOGLE_DEVICE);
        copy(out->user_scope, sizeof out->user_scope, GOOGLE_SCOPE);
        copy(out->app_scope, sizeof out->app_scope, GOOGLE_SCOPE);
        copy(out->imap_host, sizeof out->imap_host, GOOGLE_IMAP);
        out->imap_port = IMAPS_PORT;
        return true;
    case OAUTH_PROVIDER_GENERIC:
        if (token_url == NULL || !url_valid(token_url)) {
            snprintf(err, errlen, "generic needs oauth2_token_url: an https:// URL (http:// only to loopback)");
            return false;
        }
        if (device_url != NULL && device_url[0] != '\0' && !url_valid(device_url)) {
            snprintf(err, errlen, "oauth2_device_url must be an https:// URL (http:// only to loopback)");
            return false;
        }
        if (scope == NULL || scope[0] == '\0' || strlen(scope) > OAUTH_PROVIDER_SCOPE_MAX) {
            snprintf(err, errlen, "generic needs oauth2_scope (at most %d octets)", OAUTH_PROVIDER_SCOPE_MAX);
            return false;
        }
        copy(out->token_url, sizeof out->token_url, token_url);
        copy(out->device_url, sizeof out->device_url, device_url);
        copy(out->user_scope, sizeof out->user_scope, scope);
        copy(out->app_scope, sizeof out->app_scope, scope);
        return true;
    }
    snprintf(err, errlen, "unknown oauth2_provider");
    return false;
}

bool oauth_provider_supports(const struct oauth_provider *p, enum oauth_grant grant)
{
    switch (grant) {
    case OAUTH_GRANT_DEVICE: return p->device_url[0] != '\0';
    case OAUTH_GRANT_CLIENT_CREDENTIALS: return p->kind != OAUTH_PROVIDER_GOOGLE;
    case OAUTH_GRANT_JWT_BEARER: return p->kind != OAUTH_PROVIDER_MICROSOFT365;
    }
    return false;
}
