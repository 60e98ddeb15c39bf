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

#include "config_value.h"
#include "login_name.h"
#include "tls_context.h"

/* A [mapping NAME] section's lines are kept as written until the whole file
 * is read: a mapping inherits from [upstream] and [policy], which may come
 * later in the file. */
struct mapping_line {
    size_t mapping;                  /* index into config.mappings */
    char *key, *value;
};

struct parse_state {
    struct config *c;
    char *err;
    size_t err_len;
    bool failed;
    struct mapping_line *lines;
    size_t n_lines;
};

#define MAPPING_SECTION "mapping "
#define CONFIG_MAX_MAPPINGS 10000
#define CONFIG_MAX_INDEX 1000000     /* users and domains listed, all mappings */

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
    if (!config_parse_uint(port, 1, 65535, &portnum))
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
    config_copy_string(out->text, sizeof out->text, v);
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
        return config_copy_string(c->tls_cert, sizeof c->tls_cert, v);
    if (!strcmp(key, "tls_key"))
        return config_copy_string(c->tls_key, sizeof c->tls_key, v);
    if (!strcmp(key, "allow_plaintext_auth"))
        return config_parse_bool(v, &c->allow_plaintext_auth);
    if (!strcmp(key, "max_connections"))
        return config_parse_uint(v, 1, 10000000, &c->max_connections);
    if (!strcmp(key, "preauth_timeout"))
        return config_parse_seconds(v, 86400, &c->preauth_timeout) && c->preauth_timeout > 0;
    if (!strcmp(key, "idle_timeout"))
        return config_parse_seconds(v, 86400, &c->idle_timeout) && c->idle_timeout > 0;
    if (!strcmp(key, "shutdown_timeout"))
        return config_parse_seconds(v, 86400, &c->shutdown_timeout);
    if (!strcmp(key, "max_bad_commands"))
        return config_parse_uint(v, 1, 1000, &c->max_bad_commands);
    if (!strcmp(key, "listing_cache_mb"))
        return config_parse_uint(v, 0, 1024 * 1024, &c->listing_cache_mb);
    if (!strcmp(key, "listing_cache_user_mb"))
        return config_parse_uint(v, 1, 1024 * 1024, &c->listing_cache_user_mb);
    if (!strcmp(key, "prefetch_kb"))
        return config_parse_uint(v, 0, CONFIG_PREFETCH_KB_MAX, &c->prefetch_kb);
    if (!strcmp(key, "auth_failure_delay"))
        return config_parse_seconds(v, 60, &c->auth_failure_delay);
    if (!strcmp(key, "max_connections_per_addr"))
        return config_parse_uint(v, 0, 10000000, &c->max_connections_per_addr);
    if (!strcmp(key, "max_auth_failures_per_user"))
        return config_parse_uint(v, 0, 1000000, &c->auth_throttle.max_per_user);
    if (!strcmp(key, "max_auth_failures_per_addr"))
        return config_parse_uint(v, 0, 1000000, &c->auth_throttle.max_per_addr);
    if (!strcmp(key, "auth_failure_window"))
        return view_parse_duration(v, &c->auth_throttle.window) && c->auth_throttle.window > 0;
    if (!strcmp(key, "upstream_backoff"))
        return view_parse_duration(v, &c->upstream_backoff) && c->upstream_backoff <= 86400;
    if (!strcmp(key, "upstream_backoff_max"))
        return view_parse_duration(v, &c->upstream_backoff_max) && c->upstream_backoff_max <= 86400;
    if (!strcmp(key, "proxy_trusted")) {
        char err[128];
        return proxy_cidr_list_parse(v, c->proxy_trusted, CONFIG_MAX_TRUSTED, &c->n_proxy_trusted, err,
                                     sizeof err);
    }
    if (!strcmp(key, "user"))
        return config_copy_string(c->run_user, sizeof c->run_user, v);
    if (!strcmp(key, "group"))
        return config_copy_string(c->run_group, sizeof c->run_group, v);
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

/* "10.0.0.1:26379, 10.0.0.2:26379": numeric addresses, comma-separated
 * (sentinels, cluster seeds). */
static bool parse_address_list(char list[REDIS_SENTINEL_SLOTS][REDIS_ADDRESS_MAX], unsigned *n, const char *v)
{
    *n = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", ");
        if (*n >= REDIS_SENTINEL_SLOTS || len >= REDIS_ADDRESS_MAX)
            return false;
        memcpy(list[*n], p, len);
        list[*n][len] = '\0';
        if (list[*n][0] == '/' || !redis_store_address_valid(list[*n]))
            return false;
        (*n)++;
        p += len;
    }
    return *n > 0;
}

static bool set_redis(struct config *c, const char *key, const char *v)
{
    if (!strcmp(key, "address"))
        return config_copy_string(c->redis.address, sizeof c->redis.address, v) && redis_store_address_valid(v) &&
               (c->redis.address_set = true);
    if (!strcmp(key, "password"))
        return config_copy_string(c->redis.password, sizeof c->redis.password, v);
    if (!strcmp(key, "database"))
        return config_parse_uint(v, 0, 1000000, &c->redis.database);
    if (!strcmp(key, "timeout"))
        return config_parse_seconds(v, 600, &c->redis.timeout) && c->redis.timeout > 0;
    if (!strcmp(key, "sentinels"))
        return parse_address_list(c->redis.sentinels, &c->redis.n_sentinels, v);
    if (!strcmp(key, "cluster"))
        return parse_address_list(c->redis.cluster, &c->redis.n_cluster, v);
    if (!strcmp(key, "master_name"))
        return config_copy_string(c->redis.master_name, sizeof c->redis.master_name, v) && v[0];
    if (!strcmp(key, "replicas_ack"))
        return config_parse_uint(v, 0, 100, &c->redis.replicas_ack);
    if (!strcmp(key, "wait_timeout"))
        return config_parse_seconds(v, 60, &c->redis.wait_timeout) && c->redis.wait_timeout > 0;
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

/* The mapping named by a section, added on its first line. */
static bool find_or_add_mapping(struct config *c, const char *name, size_t *index)
{
    for (size_t i = 1; i < c->n_mappings; i++)
        if (!strcmp(c->mappings[i].name, name)) {
            *index = i;
            return true;
        }
    size_t len = strlen(name);
    if (len == 0 || len >= MAPPING_NAME_MAX || c->n_mappings >= CONFIG_MAX_MAPPINGS)
        return false;
    struct mapping *grown = realloc(c->mappings, (c->n_mappings + 1) * sizeof *grown);
    if (!grown)
        return false;
    c->mappings = grown;
    mapping_defaults(&c->mappings[c->n_mappings]);
    memcpy(c->mappings[c->n_mappings].name, name, len + 1);
    *index = c->n_mappings++;
    return true;
}

/* users = a@x.org, b@x.org / domains = x.org: appends to the index. Names
 * are single words of printable ASCII. */
static bool add_index_entries(struct mapping_index **list, size_t *n, size_t mapping, const char *v)
{
    const char *p = v;
    bool any = false;
    for (;;) {
        p += strspn(p, " \t,");
        if (!*p)
            return any;
        size_t len = strcspn(p, " \t,");
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
                return false;
        if (len > LOGIN_USER_MAX || *n >= CONFIG_MAX_INDEX)
            return false;
        struct mapping_index *grown = realloc(*list, (*n + 1) * sizeof *grown);
        if (!grown)
            return false;
        *list = grown;
        grown[*n].name = strndup(p, len);
        if (!grown[*n].name)
            return false;
        grown[*n].mapping = mapping;
        (*n)++;
        any = true;
        p += len;
    }
}

static bool set_mapping_line(struct parse_state *st, const char *name, const char *key, const char *value)
{
    struct config *c = st->c;
    size_t index;
    if (!find_or_add_mapping(c, name, &index))
        return false;
    if (!strcmp(key, "users"))
        return add_index_entries(&c->users, &c->n_users, index, value);
    if (!strcmp(key, "domains"))
        return add_index_entries(&c->domains, &c->n_domains, index, value);
    /* Checked now, against a scratch mapping, so an error names its line. */
    struct mapping *scratch = malloc(sizeof *scratch);
    bool ok = scratch != NULL;
    if (ok) {
        mapping_defaults(scratch);
        ok = mapping_set(scratch, key, value);
        free(scratch);
    }
    struct mapping_line *grown = ok ? realloc(st->lines, (st->n_lines + 1) * sizeof *grown) : NULL;
    if (!grown)
        return false;
    st->lines = grown;
    grown[st->n_lines] = (struct mapping_line){ index, strdup(key), strdup(value) };
    st->n_lines++;
    return grown[st->n_lines - 1].key && grown[st->n_lines - 1].value;
}

static int on_ini_entry(void *user, const char *section, const char *key, const char *value)
{
    struct parse_state *st = user;
    bool ok;
    if (!strncmp(section, MAPPING_SECTION, strlen(MAPPING_SECTION)))
        ok = set_mapping_line(st, section + strlen(MAPPING_SECTION), key, value);
    else if (!strcmp(section, "server"))
        ok = set_server(st->c, key, value);
    else if (!strcmp(section, "upstream"))
        ok = mapping_set_upstream(&st->c->mappings[0], key, value);
    else if (!strcmp(section, "redis"))
        ok = set_redis(st->c, key, value);
    else if (!strcmp(section, "state"))
        ok = set_state(st->c, key, value);
    else if (!strcmp(section, "metrics"))
        ok = !strcmp(key, "listen") && config_copy_string(st->c->metrics_listen, sizeof st->c->metrics_listen, value);
    else if (!strcmp(section, "policy"))
        ok = mapping_set_policy(&st->c->mappings[0], key, value);
    else
        ok = false;
    if (!ok && !st->failed && !strcmp(section, "server") && !strcmp(key, "prefetch_kb")) {
        snprintf(st->err, st->err_len, "[server] prefetch_kb: a whole number of KiB from 0 (off) to %u",
                 CONFIG_PREFETCH_KB_MAX);
        st->failed = true;
    }
    if (!ok && !st->failed) {
        /* The value is not echoed: a misplaced line could hold a secret. */
        snprintf(st->err, st->err_len, "[%s] %s: unknown key or invalid value", section, key);
        st->failed = true;
    }
    return ok;
}

static bool set_defaults(struct config *c)
{
    c->refs = 1;
    c->allow_plaintext_auth = false;
    c->max_connections = 1000;
    c->preauth_timeout = 60;
    c->idle_timeout = 600;
    c->shutdown_timeout = 30;
    c->max_bad_commands = 10;
    c->listing_cache_mb = 64;
    c->listing_cache_user_mb = 8;
    c->prefetch_kb = 64;
    c->auth_failure_delay = 2;
    c->max_connections_per_addr = 50;
    c->auth_throttle = (struct auth_throttle_limits){ .max_per_user = 10, .max_per_addr = 50,
                                                      .window = 15 * 60 };
    c->upstream_backoff = 60;
    c->upstream_backoff_max = 15 * 60;
    c->nul_bytes = DOT_STREAM_NUL_REPLACE;
    c->log_level = LOG_LEVEL_INFO;
    strcpy(c->redis.address, "127.0.0.1:6379");
    c->redis.timeout = 2;
    strcpy(c->redis.master_name, "mymaster");
    c->redis.wait_timeout = 1;
    c->device_separator = '#';
    c->device_ttl = 180 * 86400;
    c->lock_ttl = 60;
    c->uidvalidity_policy = UIDVALIDITY_MARK_ALL_DOWNLOADED;
    c->mappings = malloc(sizeof *c->mappings);
    if (!c->mappings)
        return false;
    mapping_defaults(&c->mappings[0]);
    c->n_mappings = 1;
    return true;
}

static int index_order(const void *a, const void *b)
{
    return strcasecmp(((const struct mapping_index *)a)->name, ((const struct mapping_index *)b)->name);
}

/* Sorts the index; a name listed by two mappings is an error. */
static bool sort_index(const struct config *c, struct mapping_index *list, size_t n, const char *what,
                       char *err, size_t err_len)
{
    if (n < 2)
        return true;
    qsort(list, n, sizeof *list, index_order);
    for (size_t i = 1; i < n; i++)
        if (!strcasecmp(list[i - 1].name, list[i].name) && list[i - 1].mapping != list[i].mapping) {
            snprintf(err, err_len, "%s %s is in both [mapping %s] and [mapping %s]", what, list[i].name,
                     c->mappings[list[i - 1].mapping].name, c->mappings[list[i].mapping].name);
            return false;
        }
    return true;
}

/* Every named mapping: [upstream] and [policy] as written, then its own lines. */
static bool build_mappings(struct config *c, const struct parse_state *st, char *err, size_t err_len)
{
    for (size_t i = 1; i < c->n_mappings; i++) {
        struct mapping *m = &c->mappings[i];
        char name[MAPPING_NAME_MAX];
        memcpy(name, m->name, sizeof name);
        *m = c->mappings[0];
        memcpy(m->name, name, sizeof name);
        bool listed = false;
        for (size_t k = 0; k < c->n_users && !listed; k++)
            listed = c->users[k].mapping == i;
        for (size_t k = 0; k < c->n_domains && !listed; k++)
            listed = c->domains[k].mapping == i;
        if (!listed) {
            snprintf(err, err_len, "[mapping %s] needs users = or domains =", name);
            return false;
        }
    }
    for (size_t i = 0; i < st->n_lines; i++)
        mapping_set(&c->mappings[st->lines[i].mapping], st->lines[i].key, st->lines[i].value);
    if (!sort_index(c, c->users, c->n_users, "user", err, err_len) ||
        !sort_index(c, c->domains, c->n_domains, "domain", err, err_len))
        return false;
    for (size_t i = 0; i < c->n_mappings; i++)
        if (!mapping_finish(&c->mappings[i], i > 0 ? &c->mappings[0] : NULL, err, err_len)) {
            /* Only finished mappings hold TLS contexts: release those. */
            c->n_finished = i;
            return false;
        }
    c->n_finished = c->n_mappings;
    return true;
}

/* RFC 2449 section 6: before login, the smallest value any user may have,
 * tagged USER when users differ; after login, the user's own. */
static void set_preauth_capa(struct config *c)
{
    bool any_delay = false, any_expire = false, delay_differs = false, expire_differs = false;
    const struct mapping *min_delay = &c->mappings[0], *min_expire = &c->mappings[0];
    for (size_t i = 0; i < c->n_mappings; i++) {
        const struct mapping *m = &c->mappings[i];
        any_delay |= m->login_delay > 0;
        any_expire |= m->expire != EXPIRE_UNSET;
        delay_differs |= m->login_delay != c->mappings[0].login_delay;
        expire_differs |= m->expire != c->mappings[0].expire || m->expire_days != c->mappings[0].expire_days;
        if (m->login_delay < min_delay->login_delay)
            min_delay = m;
        if (m->expire == EXPIRE_DAYS && (min_expire->expire != EXPIRE_DAYS || m->expire_days < min_expire->expire_days))
            min_expire = m;
    }
    if (any_delay) {
        snprintf(c->capa_login_delay, sizeof c->capa_login_delay, "LOGIN-DELAY %u%s",
                 (unsigned)min_delay->login_delay, delay_differs ? " USER" : "");
    }
    if (any_expire) {
        if (min_expire->expire == EXPIRE_DAYS)
            snprintf(c->capa_expire, sizeof c->capa_expire, "EXPIRE %u%s", (unsigned)min_expire->expire_days,
                     expire_differs ? " USER" : "");
        else
            snprintf(c->capa_expire, sizeof c->capa_expire, "EXPIRE NEVER%s", expire_differs ? " USER" : "");
    }
}

const struct mapping *config_mapping_named(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->n_mappings; i++)
        if (!strcmp(c->mappings[i].name, name))
            return &c->mappings[i];
    return NULL;
}

static const struct mapping *index_lookup(const struct config *c, const struct mapping_index *list, size_t n,
                                          const char *name)
{
    if (n == 0)
        return NULL;
    struct mapping_index key = { .name = (char *)name };
    const struct mapping_index *hit = bsearch(&key, list, n, sizeof *list, index_order);
    return hit ? &c->mappings[hit->mapping] : NULL;
}

const struct mapping *config_find_mapping(const struct config *c, const char *user)
{
    const struct mapping *m = index_lookup(c, c->users, c->n_users, user);
    const char *at = strrchr(user, '@');
    if (!m && at)
        m = index_lookup(c, c->domains, c->n_domains, at + 1);
    return m ? m : &c->mappings[0];
}

static bool finish(struct config *c, const struct parse_state *st, char *err, size_t err_len)
{
    if (c->n_listeners == 0) {
        snprintf(err, err_len, "[server] needs at least one listen or listen_tls");
        return false;
    }

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
    if (c->redis.n_cluster > 0) {
        const char *other = c->redis.address_set ? "address" : c->redis.n_sentinels ? "sentinels"
                          : c->redis.database ? "database" : NULL;
        if (other) {
            snprintf(err, err_len, "[redis] cluster excludes %s%s", other,
                     !strcmp(other, "database") ? " (a Redis Cluster has only database 0)"
                                                 : ": the nodes come from the cluster");
            return false;
        }
    }
    if (!build_mappings(c, st, err, err_len))
        return false;
    set_preauth_capa(c);
    return true;
}

static void free_lines(struct parse_state *st)
{
    for (size_t i = 0; i < st->n_lines; i++) {
        free(st->lines[i].key);
        if (st->lines[i].value)
            explicit_bzero(st->lines[i].value, strlen(st->lines[i].value));
        free(st->lines[i].value);
    }
    free(st->lines);
}

struct config *config_load(const char *path, char *err, size_t err_len)
{
    struct config *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    struct parse_state st = { .c = c, .err = err, .err_len = err_len };
    if (!set_defaults(c)) {
        snprintf(err, err_len, "out of memory");
        config_unref(c);
        return NULL;
    }
    int rc = ini_parse(path, on_ini_entry, &st);
    bool finished = rc == 0 && finish(c, &st, err, err_len);
    free_lines(&st);
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
    if (!finished) {
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
    for (size_t i = 0; i < c->n_finished; i++)
        mapping_release(&c->mappings[i]);
    free(c->mappings);
    for (size_t i = 0; i < c->n_users; i++)
        free(c->users[i].name);
    free(c->users);
    for (size_t i = 0; i < c->n_domains; i++)
        free(c->domains[i].name);
    free(c->domains);
    explicit_bzero(c->redis.password, sizeof c->redis.password);
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
    for (size_t i = 0; i < c->n_mappings; i++) {
        const struct mapping *m = &c->mappings[i];
        char where[MAPPING_NAME_MAX + 16] = "[upstream]";
        char msg[MAPPING_NAME_MAX + 128];
        if (m->name[0])
            snprintf(where, sizeof where, "[mapping %s]", m->name);
        const char *problem = NULL;
        if (m->imap.tls == UPSTREAM_TLS_NONE)
            problem = "tls = none: user passwords go to the IMAP server unencrypted";
        else if (!m->imap.verify)
            problem = "verify = no: the IMAP server's certificate is not checked";
        if (problem) {
            snprintf(msg, sizeof msg, "%s %s", where, problem);
            warn(msg, arg);
            n++;
        }
        if (m->has_legacy && m->legacy.tls == UPSTREAM_TLS_NONE) {
            snprintf(msg, sizeof msg, "%s legacy_tls = none: user passwords go to the legacy POP3 server "
                     "unencrypted", where);
            warn(msg, arg);
            n++;
        }
    }
    return n;
}
