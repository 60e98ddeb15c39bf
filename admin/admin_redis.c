/* admin_redis.c: popgate-admin's Redis connection and the reply helpers of
 * admin.h. Blocking hiredis calls, each bounded by [redis] timeout. */
#include "admin.h"
#include "admin_cluster.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* Keys a SCAN call asks for per round trip: a hint to Redis, not a limit. */
#define SCAN_COUNT "1000"

static struct timeval timeout_tv(double seconds)
{
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    return tv;
}

/* A connected context with the command timeout set, or NULL with the reason
 * in err. */
static redisContext *connect_to(const char *address, double timeout, char *err, size_t err_len)
{
    struct timeval tv = timeout_tv(timeout);
    redisContext *c;
    if (address[0] == '/') {
        c = redisConnectUnixWithTimeout(address, tv);
    } else {
        char ip[INET6_ADDRSTRLEN];
        int port;
        if (!redis_split_address(address, ip, sizeof ip, &port)) {
            snprintf(err, err_len, "not an IP:port address");
            return NULL;
        }
        c = redisConnectWithTimeout(ip, port, tv);
    }
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, err_len, "%s", c->errstr[0] ? c->errstr : "cannot set the timeout");
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Asks each sentinel in turn, as popgate does, for the master's address. */
static bool sentinel_master(const struct redis_store_config *cfg, char *address, size_t cap)
{
    for (unsigned i = 0; i < cfg->n_sentinels; i++) {
        char err[128];
        redisContext *c = connect_to(cfg->sentinels[i], cfg->timeout, err, sizeof err);
        if (!c) {
            admin_error("sentinel %s: %s", cfg->sentinels[i], err);
            continue;
        }
        const char *argv[] = { "SENTINEL", "get-master-addr-by-name", cfg->master_name };
        redisReply *r = redisCommandArgv(c, 3, argv, NULL);
        bool found = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                     r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING;
        if (found) {
            const char *ip = r->element[0]->str;
            int n = snprintf(address, cap, strchr(ip, ':') ? "[%s]:%s" : "%s:%s", ip, r->element[1]->str);
            found = n > 0 && (size_t)n < cap && redis_store_address_valid(address);
        }
        if (!found)
            admin_error("sentinel %s: %s", cfg->sentinels[i],
                        !r ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "does not know the master");
        if (r)
            freeReplyObject(r);
        redisFree(c);
        if (found)
            return true;
    }
    admin_error("no sentinel named the master %s", cfg->master_name);
    return false;
}

/* A sentinel's answer may lag a failover: writing to a demoted master would
 * fail with READONLY, so say plainly what happened instead. */
static bool is_master(struct admin *a, const char *address)
{
    const char *argv[] = { "ROLE" };
    redisReply *r = admin_command(a, 1, argv, NULL);
    if (!r)
        return false;
    bool master = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                  r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
    freeReplyObject(r);
    if (!master)
        admin_error("redis %s: not the master (a failover may be under way)", address);
    return master;
}

int admin_connect(struct admin *a)
{
    char err[512];
    a->config = config_load(a->config_path, err, sizeof err);
    if (!a->config) {
        admin_error("%s: %s", a->config_path, err);
        /* The default path failed: most likely -c was forgotten (the demo's
         * and any non-packaged popgate's configuration live elsewhere). */
        if (strcmp(a->config_path, ADMIN_DEFAULT_CONFIG) == 0)
            admin_error("name popgate's configuration file with -c FILE");
        return ADMIN_USAGE;
    }
    const struct redis_store_config *cfg = &a->config->redis;
    if (cfg->n_cluster > 0)
        return admin_cluster_connect(a);
    char address[REDIS_ADDRESS_MAX];
    if (cfg->n_sentinels > 0) {
        if (!sentinel_master(cfg, address, sizeof address))
            return ADMIN_UNAVAILABLE;
    } else {
        snprintf(address, sizeof address, "%s", cfg->address);
    }

    a->redis = connect_to(address, cfg->timeout, err, sizeof err);
    if (!a->redis) {
        admin_error("redis %s: %s", address, err);
        return ADMIN_UNAVAILABLE;
    }
    if (cfg->password[0]) {
        const char *argv[] = { "AUTH", cfg->password };
        redisReply *r = admin_command(a, 2, argv, NULL);
        if (!r)
            return ADMIN_UNAVAILABLE;
        freeReplyObject(r);
    }
    if (cfg->database != 0) {
        char db[16];
        snprintf(db, sizeof db, "%u", cfg->database);
        const char *argv[] = { "SELECT", db };
        redisReply *r = admin_command(a, 2, argv, NULL);
        if (!r)
            return ADMIN_UNAVAILABLE;
        freeReplyObject(r);
    }
    if (cfg->n_sentinels > 0 && !is_master(a, address))
        return ADMIN_UNAVAILABLE;
    return ADMIN_OK;
}

void admin_close(struct admin *a)
{
    admin_cluster_close(a);
    if (a->redis)
        redisFree(a->redis);
    a->redis = NULL;
    config_unref(a->config);
    a->config = NULL;
}

redisReply *admin_command(struct admin *a, int argc, const char **argv, const size_t *argvlen)
{
    redisReply *r = a->cluster ? admin_cluster_command(a, argc, argv, argvlen)
                               : redisCommandArgv(a->redis, argc, argv, argvlen);
    if (!r && a->cluster)
        return NULL;  /* reported */
    if (!r) {
        admin_error("redis: %s", a->redis->errstr[0] ? a->redis->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        admin_error("redis: %s: %s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

bool admin_reply_u64(const redisReply *r, unsigned long long *out)
{
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
        *out = (unsigned long long)r->integer;
        return true;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->str[0] < '0' || r->str[0] > '9')
        return false;
    char *end;
    unsigned long long v = strtoull(r->str, &end, 10);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

static int compare_keys(const void *pa, const void *pb)
{
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

static bool keys_add(struct admin_keys *k, size_t *cap, const redisReply *key)
{
    if (key->type != REDIS_REPLY_STRING || memchr(key->str, '\0', key->len))
        return true;
    if (k->n == *cap) {
        size_t new_cap = *cap ? *cap * 2 : 64;
        char **keys = realloc(k->keys, new_cap * sizeof *keys);
        if (!keys)
            return false;
        k->keys = keys;
        *cap = new_cap;
    }
    k->keys[k->n] = strdup(key->str);
    if (!k->keys[k->n])
        return false;
    k->n++;
    return true;
}

/* One server's keys: SCAN until its cursor comes back to 0. */
static bool scan_one(struct admin *a, const char *pattern, struct admin_keys *out, size_t *cap)
{
    char cursor[32] = "0";
    do {
        const char *argv[] = { "SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT };
        redisReply *r = admin_command(a, 6, argv, NULL);
        if (!r) {
            admin_keys_free(out);
            return false;
        }
        bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                  r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len < sizeof cursor &&
                  r->element[1]->type == REDIS_REPLY_ARRAY;
        if (ok) {
            memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
            for (size_t i = 0; ok && i < r->element[1]->elements; i++)
                ok = keys_add(out, cap, r->element[1]->element[i]);
        }
        freeReplyObject(r);
        if (!ok) {
            admin_error("redis: SCAN: unexpected reply or out of memory");
            admin_keys_free(out);
            return false;
        }
    } while (strcmp(cursor, "0") != 0);
    return true;
}

bool admin_scan(struct admin *a, const char *pattern, struct admin_keys *out)
{
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    if (!a->cluster) {
        if (!scan_one(a, pattern, out, &cap))
            return false;
    } else {
        /* Each master holds its own slots' keys. */
        for (unsigned i = 0; i < admin_cluster_masters(a); i++)
            if (!admin_cluster_use(a, i) || !scan_one(a, pattern, out, &cap)) {
                admin_keys_free(out);
                return false;
            }
    }

    /* SCAN may return a key more than once. */
    if (out->n > 1)
        qsort(out->keys, out->n, sizeof *out->keys, compare_keys);
    size_t kept = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (kept > 0 && strcmp(out->keys[kept - 1], out->keys[i]) == 0)
            free(out->keys[i]);
        else
            out->keys[kept++] = out->keys[i];
    }
    out->n = kept;
    return true;
}

void admin_keys_free(struct admin_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
    memset(k, 0, sizeof *k);
}

static int compare_fields(const void *pa, const void *pb)
{
    const struct admin_field *a = pa, *b = pb;
    int c = memcmp(a->name, b->name, a->name_len < b->name_len ? a->name_len : b->name_len);
    if (c != 0)
        return c;
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

bool admin_hash_fields(const redisReply *r, struct admin_field **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        admin_error("redis: HGETALL: unexpected reply");
        return false;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) {
            admin_error("redis: HGETALL: unexpected reply");
            return false;
        }
    }
    if (r->elements == 0)
        return true;
    struct admin_field *f = malloc(r->elements / 2 * sizeof *f);
    if (!f) {
        admin_error("out of memory");
        return false;
    }
    for (size_t i = 0; i < r->elements / 2; i++)
        f[i] = (struct admin_field){ r->element[2 * i]->str, r->element[2 * i]->len,
                                     r->element[2 * i + 1]->str, r->element[2 * i + 1]->len };
    *n = r->elements / 2;
    qsort(f, *n, sizeof *f, compare_fields);
    *out = f;
    return true;
}

const char *admin_field_get(const struct admin_field *f, size_t n, const char *name, char *buf, size_t cap)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (f[i].name_len == name_len && memcmp(f[i].name, name, name_len) == 0) {
            size_t len = f[i].value_len < cap - 1 ? f[i].value_len : cap - 1;
            memcpy(buf, f[i].value, len);
            buf[len] = '\0';
            return buf;
        }
    }
    return NULL;
}
