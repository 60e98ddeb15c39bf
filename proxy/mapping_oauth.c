/* mapping_oauth.c: see mapping_oauth.h. */
#include "mapping_oauth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config_value.h"

/* A value that goes into a form body or a URL as it is: printable ASCII,
 * no blanks inside (a scope list's single spaces excepted). */
static bool printable(const char *v, bool spaces)
{
    if (!v[0])
        return false;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x21 || *p > 0x7e) {
            if (!(spaces && *p == ' '))
                return false;
        }
    return true;
}

static bool set_printable(char *dst, size_t cap, const char *v, bool spaces)
{
    return printable(v, spaces) && config_copy_string(dst, cap, v);
}

bool oauth_settings_set(struct oauth_settings *o, const char *key, const char *v)
{
    if (!strcmp(key, "oauth2_provider"))
        return (o->provider_set = oauth_provider_kind_parse(v, &o->provider_kind));
    if (!strcmp(key, "oauth2_grant"))
        return oauth_grant_parse(v, &o->grant);
    if (!strcmp(key, "oauth2_client_id"))
        return set_printable(o->client_id, sizeof o->client_id, v, false);
    if (!strcmp(key, "oauth2_client_secret_file"))
        return v[0] == '/' && config_copy_string(o->client_secret_file, sizeof o->client_secret_file, v);
    if (!strcmp(key, "oauth2_key_file"))
        return v[0] == '/' && config_copy_string(o->key_file, sizeof o->key_file, v);
    if (!strcmp(key, "oauth2_tenant")) {
        /* A GUID or a domain: it becomes a path segment of the endpoint. */
        if (strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != strlen(v))
            return false;
        return set_printable(o->tenant, sizeof o->tenant, v, false);
    }
    if (!strcmp(key, "oauth2_token_url"))
        return set_printable(o->token_url, sizeof o->token_url, v, false);
    if (!strcmp(key, "oauth2_device_url"))
        return set_printable(o->device_url, sizeof o->device_url, v, false);
    if (!strcmp(key, "oauth2_revoke_url"))
        return set_printable(o->revoke_url, sizeof o->revoke_url, v, false);
    if (!strcmp(key, "oauth2_scope"))
        return set_printable(o->scope, sizeof o->scope, v, true);
    return false;
}

/* https, or http to a loopback address (the tests' authorization server),
 * as oauth_provider_init checks the token and device URLs. */
static bool url_allowed(const char *url)
{
    if (!strncmp(url, "https://", 8))
        return url[8] != '\0';
    static const char *const loopback[] = { "http://127.", "http://[::1]", "http://localhost:",
                                            "http://localhost/" };
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++)
        if (!strncmp(url, loopback[i], strlen(loopback[i])))
            return true;
    return false;
}

static bool override(char *dst, size_t cap, const char *value)
{
    return !value[0] || snprintf(dst, cap, "%s", value) < (int)cap;
}

/* The provider's documented endpoints and scopes (oauth_provider.h), the
 * config's URLs and scope over them, and the combination checked. */
static bool fill_provider(struct oauth_settings *o, const char *what, char *err, size_t err_len)
{
    if (!o->provider_set) {
        snprintf(err, err_len, "%s auth = oauth2 needs oauth2_provider (microsoft365, google or generic)", what);
        return false;
    }
    const char *tenant = o->tenant[0] ? o->tenant : "organizations";
    if (o->provider_kind == OAUTH_PROVIDER_MICROSOFT365 && o->grant == OAUTH_GRANT_CLIENT_CREDENTIALS &&
        (!o->tenant[0] || !strcmp(o->tenant, "organizations") || !strcmp(o->tenant, "common"))) {
        /* "organizations" names no tenant whose admin consented. */
        snprintf(err, err_len, "%s oauth2_grant = client_credentials needs oauth2_tenant "
                 "(the tenant id or its domain)", what);
        return false;
    }
    char perr[256];
    if (!oauth_provider_init(&o->provider, o->provider_kind, tenant, o->token_url, o->device_url, o->scope, perr,
                             sizeof perr)) {
        snprintf(err, err_len, "%s %s", what, perr);
        return false;
    }
    if (!override(o->provider.token_url, sizeof o->provider.token_url, o->token_url) ||
        !override(o->provider.device_url, sizeof o->provider.device_url, o->device_url) ||
        !override(o->provider.user_scope, sizeof o->provider.user_scope, o->scope) ||
        !override(o->provider.app_scope, sizeof o->provider.app_scope, o->scope)) {
        snprintf(err, err_len, "%s an oauth2_*_url or oauth2_scope is too long", what);
        return false;
    }
    if (o->provider_kind == OAUTH_PROVIDER_GOOGLE && !o->revoke_url[0])
        snprintf(o->revoke_url, sizeof o->revoke_url, "%s", "https://oauth2.googleapis.com/revoke");
    if (!oauth_provider_supports(&o->provider, o->grant)) {
        snprintf(err, err_len, "%s oauth2_provider = %s does not offer oauth2_grant = %s%s", what,
                 oauth_provider_kind_name(o->provider_kind), oauth_grant_name(o->grant),
                 o->grant == OAUTH_GRANT_DEVICE ? " (set oauth2_device_url)" : "");
        return false;
    }
    return true;
}

const char *oauth_settings_scope(const struct oauth_settings *o)
{
    return o->grant == OAUTH_GRANT_DEVICE ? o->provider.user_scope : o->provider.app_scope;
}

bool oauth_read_secret_file(const char *path, char *buf, size_t cap, size_t *len, char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    bool ok = false;
    if (fstat(fd, &st) != 0)
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(err, err_len, "%s: not a regular file", path);
    else if (st.st_uid != 0 && st.st_uid != geteuid())
        snprintf(err, err_len, "%s: must belong to root or to popgate's user", path);
    else if (st.st_mode & 077)
        snprintf(err, err_len, "%s: readable by others (mode %03o): chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
    else if ((size_t)st.st_size >= cap)
        snprintf(err, err_len, "%s: larger than %zu bytes", path, cap - 1);
    else
        ok = true;
    size_t n = 0;
    while (ok && n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, err_len, "%s: %s", path, strerror(errno));
            ok = false;
        }
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (ok && n + 1 >= cap) {
        snprintf(err, err_len, "%s: larger than %zu bytes", path, cap - 1);
        ok = false;
    }
    while (ok && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (ok && n == 0) {
        snprintf(err, err_len, "%s: empty", path);
        ok = false;
    }
    if (!ok) {
        OPENSSL_cleanse(buf, cap);
        return false;
    }
    buf[n] = '\0';
    *len = n;
    return true;
}

bool oauth_settings_finish(struct oauth_settings *o, const char *what, char *err, size_t err_len)
{
    if (!fill_provider(o, what, err, err_len))
        return false;
    if (!o->client_id[0] && o->grant != OAUTH_GRANT_JWT_BEARER) {
        snprintf(err, err_len, "%s auth = oauth2 needs oauth2_client_id", what);
        return false;
    }
    const struct { const char *key; const char *url; bool needed; } urls[] = {
        { "oauth2_token_url", o->provider.token_url, true },
        { "oauth2_device_url", o->provider.device_url, o->grant == OAUTH_GRANT_DEVICE },
        { "oauth2_revoke_url", o->revoke_url, false },
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++)
        if ((urls[i].needed || urls[i].url[0]) && !url_allowed(urls[i].url)) {
            snprintf(err, err_len, "%s %s must be an https URL (http only to a loopback address)", what,
                     urls[i].key);
            return false;
        }
    if (o->grant == OAUTH_GRANT_CLIENT_CREDENTIALS && !o->client_secret_file[0]) {
        snprintf(err, err_len, "%s oauth2_grant = client_credentials needs oauth2_client_secret_file", what);
        return false;
    }
    if (o->grant == OAUTH_GRANT_JWT_BEARER && !o->key_file[0]) {
        snprintf(err, err_len, "%s oauth2_grant = jwt_bearer needs oauth2_key_file (the service account's "
                 "private key, PEM)", what);
        return false;
    }
    char ferr[PATH_MAX + 96];
    size_t len;
    if (o->client_secret_file[0] &&
        !oauth_read_secret_file(o->client_secret_file, o->client_secret, sizeof o->client_secret, &len, ferr,
                                sizeof ferr)) {
        snprintf(err, err_len, "%s oauth2_client_secret_file %s", what, ferr);
        return false;
    }
    if (o->grant == OAUTH_GRANT_JWT_BEARER) {
        char *pem = malloc(JWT_KEY_FILE_MAX);
        bool ok = pem && oauth_read_secret_file(o->key_file, pem, JWT_KEY_FILE_MAX, &len, ferr, sizeof ferr);
        if (ok && !jwt_signing_key_load(pem, len, &o->jwt_key, ferr, sizeof ferr)) {
            ok = false;
        }
        if (pem) {
            OPENSSL_cleanse(pem, JWT_KEY_FILE_MAX);
            free(pem);
        }
        if (!ok) {
            snprintf(err, err_len, "%s oauth2_key_file %s: %s", what, o->key_file, pem ? ferr : "out of memory");
            oauth_settings_release(o);
            return false;
        }
        /* A PEM key names no service account: the client id does. */
        if (!o->jwt_key.client_email[0])
            snprintf(o->jwt_key.client_email, sizeof o->jwt_key.client_email, "%s", o->client_id);
        if (!o->jwt_key.client_email[0]) {
            snprintf(err, err_len, "%s oauth2_key_file %s is a PEM key: set oauth2_client_id to the service "
                     "account's email", what, o->key_file);
            oauth_settings_release(o);
            return false;
        }
    }
    o->identity = (struct oauth_identity){
        .provider = &o->provider,
        .client_id = o->client_id,
        .client_secret = o->client_secret[0] ? o->client_secret : NULL,
        .jwt_key = o->grant == OAUTH_GRANT_JWT_BEARER ? &o->jwt_key : NULL,
    };
    return true;
}

void oauth_settings_release(struct oauth_settings *o)
{
    OPENSSL_cleanse(o->client_secret, sizeof o->client_secret);
    if (o->jwt_key.pkey)
        jwt_signing_key_free(&o->jwt_key);
    o->jwt_key.pkey = NULL;
    o->identity.jwt_key = NULL;
}
