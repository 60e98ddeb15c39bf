/* admin_cluster.c: see admin_cluster.h. */
#include "admin_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "admin.h"
#include "redis_cluster_map.h"

/* Seeds and masters share the connection table. */
#define LINKS_MAX (REDIS_SENTINEL_SLOTS + CLUSTER_NODES_MAX)

struct admin_cluster {
    struct cluster_map map;
    char addresses[LINKS_MAX][CLUSTER_ADDRESS_MAX];
    redisContext *links[LINKS_MAX];
    unsigned n_links;
};

static redisContext *link_connect(struct admin *a, const char *address)
{
    const struct redis_store_config *cfg = &a->config->redis;
    char ip[64];
    int port;
    if (!redis_split_address(address, ip, sizeof ip, &port)) {
        admin_error("redis %s: not an IP:port address", address);
        return NULL;
    }
    struct timeval tv = { (time_t)cfg->timeout, (suseconds_t)((cfg->timeout - (double)(time_t)cfg->timeout) * 1e6) };
    redisContext *c = redisConnectWithTimeout(ip, port, tv);
    if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        admin_error("redis %s: %s", address, c && c->errstr[0] ? c->errstr : "cannot connect");
        if (c)
            redisFree(c);
        return NULL;
    }
    if (cfg->password[0]) {
        const char *argv[] = { "AUTH", cfg->password };
        redisReply *r = redisCommandArgv(c, 2, argv, NULL);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        if (!ok)
            admin_error("redis %s: AUTH: %s", address, r ? r->str : c->errstr);
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* The connection to address, made when first needed. */
static redisContext *link_for(struct admin *a, const char *address)
{
    struct admin_cluster *cl = a->cluster;
    for (unsigned i = 0; i < cl->n_links; i++)
        if (!strcmp(cl->addresses[i], address))
            return cl->links[i] ? cl->links[i] : (cl->links[i] = link_connect(a, address));
    if (cl->n_links >= LINKS_MAX || strlen(address) >= CLUSTER_ADDRESS_MAX) {
        admin_error("redis: too many cluster nodes");
        return NULL;
    }
    snprintf(cl->addresses[cl->n_links], CLUSTER_ADDRESS_MAX, "%s", address);
    cl->links[cl->n_links] = link_connect(a, address);
    return cl->links[cl->n_links++];
}

static bool read_map(struct admin *a, redisContext *c)
{
    const char *argv[] = { "CLUSTER", "NODES" };
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    bool ok = r && r->type == REDIS_REPLY_STRING && cluster_nodes_parse(r->str, r->len, &a->cluster->map);
    if (!ok)
        admin_error("redis: CLUSTER NODES: %s", !r ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str
                                                                : "unreadable slot map");
    if (r)
        freeReplyObject(r);
    return ok;
}

int admin_cluster_connect(struct admin *a)
{
    const struct redis_store_config *cfg = &a->config->redis;
    a->cluster = calloc(1, sizeof *a->cluster);
    if (!a->cluster) {
        admin_error("out of memory");
        return ADMIN_UNAVAILABLE;
    }
    for (unsigned i = 0; i < cfg->n_cluster; i++) {
        char seed[CLUSTER_ADDRESS_MAX];
        if (!cluster_address_canonical(cfg->cluster[i], strlen(cfg->cluster[i]), seed))
            continue;
        redisContext *c = link_for(a, seed);
        if (c && read_map(a, c)) {
            a->redis = c;
            return ADMIN_OK;
        }
    }
    admin_error("no cluster seed gave the slot map");
    return ADMIN_UNAVAILABLE;
}

void admin_cluster_close(struct admin *a)
{
    if (!a->cluster)
        return;
    for (unsigned i = 0; i < a->cluster->n_links; i++)
        if (a->cluster->links[i])
            redisFree(a->cluster->links[i]);
    free(a->cluster);
    a->cluster = NULL;
    a->redis = NULL;
}

static redisContext *node_for_slot(struct admin *a, unsigned slot)
{
    unsigned node = a->cluster->map.owner[slot];
    if (node == CLUSTER_NO_NODE) {
        admin_error("redis: no master serves slot %u", slot);
        return NULL;
    }
    return link_for(a, a->cluster->map.nodes[node]);
}

bool admin_cluster_route(struct admin *a, const char *key, size_t len)
{
    redisContext *c = node_for_slot(a, cluster_key_slot(key, len));
    if (c)
        a->redis = c;
    return c != NULL;
}

/* TRYAGAIN: a multi-key command met its slot half moved; CLUSTERDOWN: a
 * master is lost and its replica not promoted yet. Both pass, so the admin
 * waits and sends again, as the daemon does (redis_store.c). */
static bool cluster_busy(const char *err)
{
    return !strncmp(err, "TRYAGAIN", 8) || !strncmp(err, "CLUSTERDOWN", 11);
}

/* Sent again for at least the [redis] timeout, and as often as the daemon
 * would: one command of a person who waits, not one of many sessions. */
static unsigned retries_max(const struct admin *a)
{
    double n = a->config->redis.timeout / REDIS_CLUSTER_RETRY_DELAY;
    return n > REDIS_CLUSTER_RETRIES_MAX ? (unsigned)n : REDIS_CLUSTER_RETRIES_MAX;
}

static void retry_pause(void)
{
    const struct timespec pause = { 0, (long)(REDIS_CLUSTER_RETRY_DELAY * 1e9) };
    nanosleep(&pause, NULL);
}

/* MOVED: the slot's new master, for the commands that follow. */
static void learn_moved(struct admin *a, const struct cluster_redirect *to)
{
    unsigned node = cluster_map_node(&a->cluster->map, to->address);
    if (node != CLUSTER_NO_NODE)
        a->cluster->map.owner[to->slot] = (uint16_t)node;
}

redisReply *admin_cluster_command(struct admin *a, int argc, const char **argv, const size_t *argvlen)
{
    bool keyed = argc > 1 && strcasecmp(argv[0], "SCAN") != 0;
    unsigned slot = keyed ? cluster_key_slot(argv[1], argvlen ? argvlen[1] : strlen(argv[1])) : 0;
    char last[128] = "";
    unsigned max = retries_max(a);
    for (unsigned tries = 0; tries <= max; tries++) {
        if (tries > 0)
            retry_pause();
        /* Every try starts at the slot's master: a migrating slot sends the
         * command on with ASK to a target that may answer TRYAGAIN, every
         * time until the keys have moved. */
        redisContext *c = keyed ? node_for_slot(a, slot) : a->redis;
        bool asking = false;
        for (unsigned redirects = 0; redirects <= REDIS_CLUSTER_REDIRECTS_MAX; redirects++) {
            if (!c)
                return NULL;  /* reported */
            if (asking) {
                redisReply *r = redisCommand(c, "ASKING");
                if (r)
                    freeReplyObject(r);
            }
            redisReply *r = redisCommandArgv(c, argc, argv, argvlen);
            if (!r) {
                admin_error("redis: %s", c->errstr[0] ? c->errstr : "no reply");
                return NULL;
            }
            struct cluster_redirect to;
            bool error = r->type == REDIS_REPLY_ERROR;
            bool redirect = error && cluster_redirect_parse(r->str, r->len, &to);
            if (!redirect && !(error && cluster_busy(r->str))) {
                a->redis = c;
                return r;
            }
            snprintf(last, sizeof last, "%s", r->str);
            freeReplyObject(r);
            if (!redirect)
                break;  /* busy: the next try, after a pause */
            asking = to.kind == CLUSTER_REDIRECT_ASK;
            if (!asking)
                learn_moved(a, &to);
            c = link_for(a, to.address);
        }
        /* Out of redirects: nodes sending the command back and forth while
         * the end of a migration reaches one before the other; a pause. */
    }
    admin_error("redis: %s: %s (still, after %u tries)", argv[0], last, max + 1);
    return NULL;
}

bool admin_cluster_again(struct admin *a, const char *err, unsigned *tries)
{
    struct cluster_redirect to;
    bool redirect = cluster_redirect_parse(err, strlen(err), &to);
    if ((!redirect && !cluster_busy(err)) || ++*tries > retries_max(a))
        return false;
    if (redirect && to.kind == CLUSTER_REDIRECT_MOVED)
        learn_moved(a, &to);
    else
        retry_pause();  /* ASK too: a transaction goes to the owner once the keys have moved */
    return true;
}

unsigned admin_cluster_masters(const struct admin *a)
{
    return a->cluster->map.n_nodes;
}

bool admin_cluster_use(struct admin *a, unsigned i)
{
    redisContext *c = link_for(a, a->cluster->map.nodes[i]);
    if (c)
        a->redis = c;
    return c != NULL;
}
