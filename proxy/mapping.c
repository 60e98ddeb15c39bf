/* mapping.c: see mapping.h. */
#include "mapping.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_value.h"
#include "imap_quote.h"
#include "tls_context.h"

void mapping_defaults(struct mapping *m)
{
    memset(m, 0, sizeof *m);
    m->imap.tls = UPSTREAM_TLS_STARTTLS;
    m->imap.verify = true;
    m->upstream.connect_timeout = 10;
    m->upstream.command_timeout = 60;
    m->login.kind = LOGIN_KEEP;
    strcpy(m->folders[0], "INBOX");
    m->n_folders = 1;
    m->legacy.tls = UPSTREAM_TLS_NONE;
    m->legacy.verify = true;
    m->legacy_timeout = 10;
    view_policy_defaults(&m->policy);
}

static bool parse_tls(const char *v, enum upstream_tls *out)
{
    static const struct { const char *name; enum upstream_tls mode; } modes[] = {
        { "implicit", UPSTREAM_TLS_IMPLICIT }, { "starttls", UPSTREAM_TLS_STARTTLS }, { "none", UPSTREAM_TLS_NONE },
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (!strcmp(v, modes[i].name)) {
            *out = modes[i].mode;
            return true;
        }
    return false;
}

/* "INBOX, Archive/2025": comma-separated; blanks around names are dropped. A
 * mailbox name with a comma cannot be listed (rare; say so in the README). */
static bool parse_folders(struct mapping *m, const char *v)
{
    char folders[MAPPING_MAX_FOLDERS][MAPPING_FOLDER_MAX];
    unsigned n = 0;
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed > 0 && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == 0 || trimmed >= MAPPING_FOLDER_MAX || n == MAPPING_MAX_FOLDERS)
            return false;
        for (unsigned i = 0; i < n; i++)
            if (strlen(folders[i]) == trimmed && !memcmp(folders[i], p, trimmed))
                return false;   /* the same folder twice would list its mail twice */
        memcpy(folders[n], p, trimmed);
        folders[n++][trimmed] = '\0';
        if (!p[len])
            break;
        p += len + 1;
    }
    memcpy(m->folders, folders, sizeof folders);
    m->n_folders = n;
    return true;
}

/* A folder name popgate can send (a quoted string: no CR, LF or NUL). */
static bool parse_trash_folder(struct mapping *m, const char *v)
{
    char quoted[2 * MAPPING_FOLDER_MAX + 3];
    size_t pos = 0, len = strlen(v);
    if (len >= MAPPING_FOLDER_MAX || !imap_append_quoted(quoted, sizeof quoted, &pos, v, len))
        return false;
    memcpy(m->trash_folder, v, len + 1);
    return true;
}

static bool parse_exact_sizes(struct mapping *m, const char *v)
{
    static const struct { const char *name; enum mapping_exact_sizes mode; } modes[] = {
        { "auto", EXACT_SIZES_AUTO }, { "no", EXACT_SIZES_NO }, { "yes", EXACT_SIZES_YES },
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (!strcmp(v, modes[i].name)) {
            m->exact_sizes = modes[i].mode;
            return true;
        }
    return false;
}

static bool parse_expire(struct mapping *m, const char *v)
{
    if (!strcasecmp(v, "never")) {
        m->expire = EXPIRE_NEVER;
        return true;
    }
    /* Days, as RFC 2449 counts them; "30d" reads the same as "30". */
    char digits[16];
    size_t len = strlen(v);
    if (len > 1 && v[len - 1] == 'd')
        len--;
    unsigned days;
    if (len == 0 || len >= sizeof digits)
        return false;
    memcpy(digits, v, len);
    digits[len] = '\0';
    if (!config_parse_uint(digits, 0, 36500, &days))
        return false;
    m->expire = EXPIRE_DAYS;
    m->expire_days = days;
    return true;
}

static bool set_endpoint(struct mapping_endpoint *e, const char *key, const char *v)
{
    if (!strcmp(key, "tls"))
        return parse_tls(v, &e->tls);
    if (!strcmp(key, "ca_file"))
        return config_copy_string(e->ca_file, sizeof e->ca_file, v);
    if (!strcmp(key, "verify"))
        return config_parse_bool(v, &e->verify);
    if (!strcmp(key, "verify_name"))
        return config_copy_string(e->verify_name, sizeof e->verify_name, v);
    return false;
}

bool mapping_set_upstream(struct mapping *m, const char *key, const char *v)
{
    if (!strcmp(key, "host"))
        return config_copy_string(m->imap.host, sizeof m->imap.host, v) && v[0];
    if (!strcmp(key, "port"))
        return config_parse_uint(v, 1, 65535, &m->imap.port);
    if (set_endpoint(&m->imap, key, v))
        return true;
    if (!strcmp(key, "connect_timeout"))
        return config_parse_seconds(v, 3600, &m->upstream.connect_timeout) && m->upstream.connect_timeout > 0;
    if (!strcmp(key, "command_timeout"))
        return config_parse_seconds(v, 3600, &m->upstream.command_timeout) && m->upstream.command_timeout > 0;
    if (!strcmp(key, "mailbox") || !strcmp(key, "folders"))
        return parse_folders(m, v);
    if (!strcmp(key, "login"))
        return login_transform_parse(v, &m->login);
    if (!strcmp(key, "trash_folder"))
        return parse_trash_folder(m, v);
    if (!strcmp(key, "exact_sizes"))
        return parse_exact_sizes(m, v);
    if (!strcmp(key, "legacy_pop3")) {
        m->has_legacy = config_parse_host_port(v, m->legacy.host, sizeof m->legacy.host, &m->legacy.port);
        return m->has_legacy;
    }
    if (!strcmp(key, "auth")) {
        if (!strcmp(v, "password") || !strcmp(v, "oauth2")) {
            m->auth = v[0] == 'o' ? MAPPING_AUTH_OAUTH2 : MAPPING_AUTH_PASSWORD;
            return true;
        }
        return false;
    }
    if (!strncmp(key, "oauth2_", 7))
        return oauth_settings_set(&m->oauth, key, v);
    if (!strcmp(key, "legacy_timeout"))
        return config_parse_seconds(v, 600, &m->legacy_timeout) && m->legacy_timeout > 0;
    if (!strncmp(key, "legacy_", 7))
        return set_endpoint(&m->legacy, key + 7, v);
    return false;
}

bool mapping_set_policy(struct mapping *m, const char *key, const char *v)
{
    if (!strcmp(key, "max_sessions_per_user"))
        return config_parse_uint(v, 0, 100000, &m->max_sessions_per_user);
    if (!strcmp(key, "login_delay"))
        return view_parse_duration(v, &m->login_delay);
    if (!strcmp(key, "expire"))
        return parse_expire(m, v);
    return view_policy_set(&m->policy, key, v);
}

bool mapping_set(struct mapping *m, const char *key, const char *v)
{
    return mapping_set_upstream(m, key, v) || mapping_set_policy(m, key, v);
}

/* Resolve the endpoint once, here; sessions only ever use the address. */
static bool finish_endpoint(struct mapping_endpoint *e, const struct mapping_endpoint *share,
                            const char *what, char *err, size_t err_len)
{
    if (!e->verify_name[0])
        config_copy_string(e->verify_name, sizeof e->verify_name, e->host);
    char port[8];
    snprintf(port, sizeof port, "%u", e->port);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(e->host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, err_len, "%s host %s: %s", what, e->host, gai_strerror(rc));
        return false;
    }
    memcpy(&e->addr, res->ai_addr, res->ai_addrlen);
    e->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (e->tls == UPSTREAM_TLS_NONE)
        return true;
    /* Mappings that verify the same way share one context: loading a CA file
     * for each of 100 mappings would cost memory for nothing. */
    if (share && share->tls_ctx && share->verify == e->verify && !strcmp(share->ca_file, e->ca_file) &&
        SSL_CTX_up_ref(share->tls_ctx) == 1) {
        e->tls_ctx = share->tls_ctx;
        return true;
    }
    e->tls_ctx = tls_client_context_new(e->verify, e->ca_file, err, err_len);
    return e->tls_ctx != NULL;
}

bool mapping_finish(struct mapping *m, const struct mapping *share, char *err, size_t err_len)
{
    char what[MAPPING_NAME_MAX + 16] = "[upstream]";
    if (m->name[0])
        snprintf(what, sizeof what, "[mapping %s]", m->name);
    if (!m->imap.host[0]) {
        snprintf(err, err_len, "%s host is required", what);
        return false;
    }
    if (m->imap.port == 0)
        m->imap.port = m->imap.tls == UPSTREAM_TLS_IMPLICIT ? 993 : 143;
    if (m->auth == MAPPING_AUTH_OAUTH2) {
        if (m->has_legacy) {
            /* The lazy import logs in to the old server with the client's
             * password, which is an app password here. */
            snprintf(err, err_len, "%s auth = oauth2 cannot be combined with legacy_pop3", what);
            return false;
        }
        if (!oauth_settings_finish(&m->oauth, what, err, err_len))
            return false;
    }
    if (!finish_endpoint(&m->imap, share ? &share->imap : NULL, what, err, err_len)) {
        mapping_release(m);
        return false;
    }
    if (m->has_legacy) {
        char legacy_what[sizeof what + 16];
        snprintf(legacy_what, sizeof legacy_what, "%s legacy_pop3", what);
        if (!finish_endpoint(&m->legacy, share && share->has_legacy ? &share->legacy : NULL, legacy_what,
                             err, err_len)) {
            mapping_release(m);
            return false;
        }
    }
    m->upstream.addr = m->imap.addr;
    m->upstream.addrlen = m->imap.addrlen;
    m->upstream.tls = m->imap.tls;
    m->upstream.tls_ctx = m->imap.tls_ctx;
    m->upstream.verify_name = m->imap.verify_name;
    return true;
}

void mapping_release(struct mapping *m)
{
    oauth_settings_release(&m->oauth);
    SSL_CTX_free(m->imap.tls_ctx);
    SSL_CTX_free(m->legacy.tls_ctx);
    m->imap.tls_ctx = m->legacy.tls_ctx = NULL;
    m->upstream.tls_ctx = NULL;
}

bool mapping_capa_login_delay(const struct mapping *m, char *out, size_t cap)
{
    if (m->login_delay == 0)
        return false;
    snprintf(out, cap, "LOGIN-DELAY %u", (unsigned)m->login_delay);
    return true;
}

bool mapping_capa_expire(const struct mapping *m, char *out, size_t cap)
{
    if (m->expire == EXPIRE_UNSET)
        return false;
    if (m->expire == EXPIRE_NEVER)
        snprintf(out, cap, "EXPIRE NEVER");
    else
        snprintf(out, cap, "EXPIRE %u", (unsigned)m->expire_days);
    return true;
}
