/* config.c: see config.h. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

#include "login_name.h"
#include "tls_context.h"

struct parse_state {
    struct config *c;
    char *err;
    size_t err_len;
    bool failed;
};

static bool parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "on")) {
        *out = true;
        return true;
    }
    if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "off")) {
        *out = false;
        return true;
    }
    return false;
}

static bool parse_uint(const char *v, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < min || n > max)
        return false;
    *out = (unsigned)n;
    return true;
}

/* Seconds, fractions allowed: "0.5", "60". */
static bool parse_seconds(const char *v, double max, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < 0 || d > max)
        return false;
    *out = d;
    return true;
}

static bool copy_string(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return false;
    memcpy(dst, v, n + 1);
    return true;
}

/* "127.0.0.1:110", "[::1]:110", "*:110" (all IPv4), "[::]:110". Numeric only:
 * a listener must not depend on DNS. */
static bool parse_listen(const char *v, bool implicit_tls, struct listen_spec *out)
{
    char host[CONFIG_NAME_MAX];
    const char *port;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || close[1] != ':' || (size_t)(close - v - 1) >= sizeof host)
            return false;
        memcpy(host, v + 1, (size_t)(close - v - 1));
        host[close - v - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(v, ':');
        if (!colon || (size_t)(colon - v) >= sizeof host)
            return false;
        memcpy(host, v, (size_t)(colon - v));
        host[colon - v] = '\0';
        port = colon + 1;
        if (!strcmp(host, "*"))
            strcpy(host, "0.0.0.0");
    }
    unsigned portnum;
    if (!parse_uint(port, 1, 65535, &portnum))
        return false;
    memset(out, 0, sizeof *out);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)portnum);
        out->addrlen = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)portnum);
        out->addrlen = sizeof *a6;
    } else {
        return false;
    }
    out->implicit_tls = implicit_tls;
    copy_string(out->text, sizeof out->text, v);
    return true;
}

static bool set_server(struct config *c, const char *key, const char *v)
{
    if (!strcmp(key, "listen") || !strcmp(key, "listen_tls")) {
        if (c->n_listeners >= CONFIG_MAX_LISTENERS)
            return false;
        return parse_listen(v, !strcmp(key, "listen_tls"), &c->listeners[c->n_listeners++]);
    }
    if (!strcmp(key, "tls_cert"))
        return copy_string(c->tls_cert, sizeof c->tls_cert, v);
    if (!strcmp(key, "tls_key"))
        return copy_string(c->tls_key, sizeof c->tls_key, v);
    if (!strcmp(key, "allow_plaintext_auth"))
        return parse_bool(v, &c->allow_plaintext_auth);
    if (!strcmp(key, "max_connections"))
        return parse_uint(v, 1, 10000000, &c->max_connections);
    if (!strcmp(key, "preauth_timeout"))
        return parse_seconds(v, 86400, &c->preauth_timeout) && c->preauth_timeout > 0;
    if (!strcmp(key, "idle_timeout"))
        return parse_seconds(v, 86400, &c->idle_timeout) && c->idle_timeout > 0;
    if (!strcmp(key, "shutdown_timeout"))
        return parse_seconds(v, 86400, &c->shutdown_timeout);
    if (!strcmp(key, "max_bad_commands"))
        return parse_uint(v, 1, 1000, &c->max_bad_commands);
    if (!strcmp(key, "auth_failure_delay"))
        return parse_seconds(v, 60, &c->auth_failure_delay);
    if (!strcmp(key, "max_connections_per_addr"))
        return parse_uint(v, 0, 10000000, &c->max_connections_per_addr);
    if (!strcmp(key, "max_auth_failures_per_user"))
        return parse_uint(v, 0, 1000000, &c->auth_throttle.max_per_user);
    if (!strcmp(key, "max_auth_failures_per_addr"))
        return parse_uint(v, 0, 1000000, &c->auth_throttle.max_per_addr);
    if (!strcmp(key, "auth_failure_window"))
        return view_parse_duration(v, &c->auth_throttle.window) && c->auth_throttle.window > 0;
    if (!strcmp(key, "proxy_trusted")) {
        char err[128];
        return proxy_cidr_list_parse(v, c->proxy_trusted, CONFIG_MAX_TRUSTED, &c->n_proxy_trusted, err,
                                     sizeof err);
    }
    if (!strcmp(key, "user"))
        return copy_string(c->run_user, sizeof c->run_user, v);
    if (!strcmp(key, "group"))
        return copy_string(c->run_group, sizeof c->run_group, v);
    if (!strcmp(key, "nul_bytes")) {
        if (!strcmp(v, "replace"))
            c->nul_bytes = DOT_STREAM_NUL_REPLACE;
        else if (!strcmp(v, "pass"))
            c->nul_bytes = DOT_STREAM_NUL_PASS;
        else
            return false;
        return true;
    }
    if (!strcmp(key, "log_level")) {
        int level = log_level_parse(v);
        if (level < 0)
            return false;
        c->log_level = (enum log_level)level;
        return true;
    }
    return false;
}

static bool set_upstream(struct config *c, const char *key, const char *v)
{
    if (!strcmp(key, "host"))
        return copy_string(c->upstream_host, sizeof c->upstream_host, v);
    if (!strcmp(key, "port"))
        return parse_uint(v, 1, 65535, &c->upstream_port);
    if (!strcmp(key, "tls")) {
        if (!strcmp(v, "implicit"))
            c->upstream.tls = IMAP_TLS_IMPLICIT;
        else if (!strcmp(v, "starttls"))
            c->upstream.tls = IMAP_TLS_STARTTLS;
        else if (!strcmp(v, "none"))
            c->upstream.tls = IMAP_TLS_NONE;
        else
            return false;
        return true;
    }
    if (!strcmp(key, "ca_file"))
        return copy_string(c->upstream_ca_file, sizeof c->upstream_ca_file, v);
    if (!strcmp(key, "verify"))
        return parse_bool(v, &c->upstream_verify);
    if (!strcmp(key, "verify_name"))
        return copy_string(c->upstream_verify_name, sizeof c->upstream_verify_name, v);
    if (!strcmp(key, "connect_timeout"))
        return parse_seconds(v, 3600, &c->upstream.connect_timeout) && c->upstream.connect_timeout > 0;
    if (!strcmp(key, "command_timeout"))
        return parse_seconds(v, 3600, &c->upstream.command_timeout) && c->upstream.command_timeout > 0;
    if (!strcmp(key, "mailbox"))
        return copy_string(c->mailbox, sizeof c->mailbox, v) && v[0] != '\0';
    return false;
}

/* "10.0.0.1:26379, 10.0.0.2:26379": numeric addresses, comma-separated. */
static bool parse_sentinels(struct redis_store_config *r, const char *v)
{
    r->n_sentinels = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", ");
        if (r->n_sentinels >= REDIS_SENTINEL_SLOTS || len >= sizeof r->sentinels[0])
            return false;
        memcpy(r->sentinels[r->n_sentinels], p, len);
        r->sentinels[r->n_sentinels][len] = '\0';
        if (r->sentinels[r->n_sentinels][0] == '/' || !redis_store_address_valid(r->sentinels[r->n_sentinels]))
            return false;
        r->n_sentinels++;
        p += len;
    }
    return r->n_sentinels > 0;
}

static bool set_redis(struct config *c, const char *key, const char *v)
{
    if (!strcmp(key, "address"))
        return copy_string(c->redis.address, sizeof c->redis.address, v) && redis_store_address_valid(v);
    if (!strcmp(key, "password"))
        return copy_string(c->redis.password, sizeof c->redis.password, v);
    if (!strcmp(key, "database"))
        return parse_uint(v, 0, 1000000, &c->redis.database);
    if (!strcmp(key, "timeout"))
        return parse_seconds(v, 600, &c->redis.timeout) && c->redis.timeout > 0;
    if (!strcmp(key, "sentinels"))
        return parse_sentinels(&c->redis, v);
    if (!strcmp(key, "master_name"))
        return copy_string(c->redis.master_name, sizeof c->redis.master_name, v) && v[0];
    if (!strcmp(key, "replicas_ack"))
        return parse_uint(v, 0, 100, &c->redis.replicas_ack);
    if (!strcmp(key, "wait_timeout"))
        return parse_seconds(v, 60, &c->redis.wait_timeout) && c->redis.wait_timeout > 0;
    return false;
}

static bool set_state(struct config *c, const char *key, const char *v)
{
    if (!strcmp(key, "device_separator")) {
        /* Printable, and not a character a device name may hold. */
        if (strlen(v) != 1 || v[0] <= ' ' || v[0] > '~' || device_name_valid(v, 1))
            return false;
        c->device_separator = v[0];
        return true;
    }
    if (!strcmp(key, "device_ttl"))
        return view_parse_duration(v, &c->device_ttl) && c->device_ttl > 0;
    if (!strcmp(key, "lock_ttl"))
        return view_parse_duration(v, &c->lock_ttl) && c->lock_ttl >= 3;
    if (!strcmp(key, "uidvalidity_policy")) {
        if (!strcmp(v, "mark-all-downloaded"))
            c->uidvalidity_policy = UIDVALIDITY_MARK_ALL_DOWNLOADED;
        else if (!strcmp(v, "redownload"))
            c->uidvalidity_policy = UIDVALIDITY_REDOWNLOAD;
        else
            return false;
        return true;
    }
    return false;
}

static int on_ini_entry(void *user, const char *section, const char *key, const char *value)
{
    struct parse_state *st = user;
    bool ok;
    if (!strcmp(section, "server"))
        ok = set_server(st->c, key, value);
    else if (!strcmp(section, "upstream"))
        ok = set_upstream(st->c, key, value);
    else if (!strcmp(section, "redis"))
        ok = set_redis(st->c, key, value);
    else if (!strcmp(section, "state"))
        ok = set_state(st->c, key, value);
    else if (!strcmp(section, "metrics"))
        ok = !strcmp(key, "listen") && copy_string(st->c->metrics_listen, sizeof st->c->metrics_listen, value);
    else if (!strcmp(section, "policy"))
        ok = view_policy_set(&st->c->policy, key, value);
    else
        ok = false;
    if (!ok && !st->failed) {
        /* The value is not echoed: a misplaced line could hold a secret. */
        snprintf(st->err, st->err_len, "[%s] %s: unknown key or invalid value", section, key);
        st->failed = true;
    }
    return ok;
}

static void set_defaults(struct config *c)
{
    c->refs = 1;
    c->allow_plaintext_auth = false;
    c->max_connections = 1000;
    c->preauth_timeout = 60;
    c->idle_timeout = 600;
    c->shutdown_timeout = 30;
    c->max_bad_commands = 10;
    c->auth_failure_delay = 2;
    c->max_connections_per_addr = 50;
    c->auth_throttle = (struct auth_throttle_limits){ .max_per_user = 10, .max_per_addr = 50,
                                                      .window = 15 * 60 };
    c->nul_bytes = DOT_STREAM_NUL_REPLACE;
    c->log_level = LOG_LEVEL_INFO;
    c->upstream_port = 0;
    c->upstream.tls = IMAP_TLS_STARTTLS;
    c->upstream_verify = true;
    c->upstream.connect_timeout = 10;
    c->upstream.command_timeout = 60;
    strcpy(c->mailbox, "INBOX");
    strcpy(c->redis.address, "127.0.0.1:6379");
    c->redis.timeout = 2;
    strcpy(c->redis.master_name, "mymaster");
    c->redis.wait_timeout = 1;
    c->device_separator = '#';
    c->device_ttl = 180 * 86400;
    c->lock_ttl = 60;
    c->uidvalidity_policy = UIDVALIDITY_MARK_ALL_DOWNLOADED;
    view_policy_defaults(&c->policy);
}

/* Resolve the upstream once, here; sessions only ever use the address. */
static bool resolve_upstream(struct config *c, char *err, size_t err_len)
{
    char port[8];
    snprintf(port, sizeof port, "%u", c->upstream_port);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(c->upstream_host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, err_len, "[upstream] host %s: %s", c->upstream_host, gai_strerror(rc));
        return false;
    }
    memcpy(&c->upstream.addr, res->ai_addr, res->ai_addrlen);
    c->upstream.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

static bool finish(struct config *c, char *err, size_t err_len)
{
    if (c->n_listeners == 0) {
        snprintf(err, err_len, "[server] needs at least one listen or listen_tls");
        return false;
    }
    if (!c->upstream_host[0]) {
        snprintf(err, err_len, "[upstream] host is required");
        return false;
    }
    if (c->upstream_port == 0)
        c->upstream_port = c->upstream.tls == IMAP_TLS_IMPLICIT ? 993 : 143;
    if (!c->upstream_verify_name[0])
        copy_string(c->upstream_verify_name, sizeof c->upstream_verify_name, c->upstream_host);
    c->upstream.verify_name = c->upstream_verify_name;

    bool wants_tls = false;
    for (unsigned i = 0; i < c->n_listeners; i++)
        wants_tls |= c->listeners[i].implicit_tls;
    if (c->tls_cert[0] || c->tls_key[0]) {
        if (!c->tls_cert[0] || !c->tls_key[0]) {
            snprintf(err, err_len, "[server] tls_cert and tls_key go together");
            return false;
        }
        c->server_tls = tls_server_context_new(c->tls_cert, c->tls_key, err, err_len);
        if (!c->server_tls)
            return false;
    } else if (wants_tls) {
        snprintf(err, err_len, "[server] listen_tls needs tls_cert and tls_key");
        return false;
    }
    if (c->upstream.tls != IMAP_TLS_NONE) {
        c->upstream.tls_ctx = tls_client_context_new(c->upstream_verify, c->upstream_ca_file,
                                                     err, err_len);
        if (!c->upstream.tls_ctx)
            return false;
    }
    return resolve_upstream(c, err, err_len);
}

struct config *config_load(const char *path, char *err, size_t err_len)
{
    struct config *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    set_defaults(c);
    struct parse_state st = { .c = c, .err = err, .err_len = err_len };
    int rc = ini_parse(path, on_ini_entry, &st);
    if (rc != 0) {
        if (rc < 0) {
            snprintf(err, err_len, "cannot read: %s", strerror(errno));
        } else if (!st.failed) {
            snprintf(err, err_len, "line %d: syntax error", rc);
        } else {
            /* libinih reports the line of the first failing entry. */
            char detail[256];
            snprintf(detail, sizeof detail, "%s", err);
            snprintf(err, err_len, "line %d: %s", rc, detail);
        }
        config_unref(c);
        return NULL;
    }
    if (!finish(c, err, err_len)) {
        config_unref(c);
        return NULL;
    }
    return c;
}

struct config *config_ref(struct config *c)
{
    c->refs++;
    return c;
}

void config_unref(struct config *c)
{
    if (!c || --c->refs > 0)
        return;
    SSL_CTX_free(c->server_tls);
    SSL_CTX_free(c->upstream.tls_ctx);
    OPENSSL_cleanse(c->redis.password, sizeof c->redis.password);
    free(c);
}

unsigned config_warnings(const struct config *c, void (*warn)(const char *msg, void *arg), void *arg)
{
    unsigned n = 0;
    if (c->allow_plaintext_auth) {
        warn("[server] allow_plaintext_auth = yes: passwords may cross the network unencrypted", arg);
        n++;
    }
    if (!c->server_tls) {
        warn("[server] no tls_cert/tls_key: clients cannot use STLS or POP3S", arg);
        n++;
    }
    if (!c->run_user[0] && geteuid() == 0) {
        warn("[server] no user: popgate keeps running as root after binding its ports", arg);
        n++;
    }
    if (c->auth_throttle.max_per_user == 0 || c->auth_throttle.max_per_addr == 0) {
        warn("[server] max_auth_failures_per_user/addr = 0: password guessing is not throttled", arg);
        n++;
    }
    if (c->upstream.tls == IMAP_TLS_NONE) {
        warn("[upstream] tls = none: user passwords go to the IMAP server unencrypted", arg);
        n++;
    } else if (!c->upstream_verify) {
        warn("[upstream] verify = no: the IMAP server's certificate is not checked", arg);
        n++;
    }
    return n;
}
