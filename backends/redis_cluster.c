/* redis_cluster.c: see redis_cluster.h. */
#include "redis_cluster.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>

#include "log.h"
#include "redis_cluster_map.h"
#include "redis_script.h"

/* Seeds plus every master a map may name. */
#define CLUSTER_LINKS_MAX (REDIS_SENTINEL_SLOTS + CLUSTER_NODES_MAX)

struct cluster_link {
    struct redis_cluster *cluster;
    char address[CLUSTER_ADDRESS_MAX];
    redisAsyncContext *ac;
    bool connected;
    ev_tstamp retry_at;      /* no new connection before this */
    double backoff;          /* the next pause after a failure: doubles to REDIS_BACKOFF_MAX */
    ev_timer connect_deadline;
};

struct redis_cluster {
    struct ev_loop *loop;
    const struct redis_store_config *cfg;
    struct cluster_link links[CLUSTER_LINKS_MAX];
    unsigned n_links;
    struct cluster_map map, scratch;
    struct cluster_link *node_link[CLUSTER_NODES_MAX];  /* map.nodes[i]'s connection */
    bool have_map;
    bool refreshing;         /* a CLUSTER NODES is in flight, on refresh_link */
    struct cluster_link *refresh_link;
    ev_tstamp last_refresh;
    ev_timer refresh_timer;
    ev_timer refresh_deadline;  /* a node that stalls is not waited for forever */
};

static void schedule_refresh(struct redis_cluster *c);

/* ---- connections -------------------------------------------------------- */

static void on_link_setup(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    const redisReply *r = reply;
    struct cluster_link *l = ac->data;
    if (r && r->type == REDIS_REPLY_ERROR && l && l->ac == ac) {
        log_event(LOG_LEVEL_ERROR, NULL, "redis-setup-failed", "address", l->address, "error", r->str, LOG_END);
        redisAsyncDisconnect(ac);
    }
}

static void on_link_script(redisAsyncContext *ac, void *reply, void *privdata)
{
    const redisReply *r = reply;
    enum lua_script_id id = (enum lua_script_id)(uintptr_t)privdata;
    const char *sha1 = redis_script_sha1(id);
    if (!r || (ac->c.flags & REDIS_DISCONNECTING))
        return;
    if (r->type == REDIS_REPLY_STRING && sha1 && strcmp(r->str, sha1) == 0)
        return;
    log_event(LOG_LEVEL_ERROR, NULL, "redis-script-load-failed", "script", lua_script(id)->name, "error",
              r->type == REDIS_REPLY_ERROR ? r->str : "unexpected SHA1", LOG_END);
}

static void link_failed(struct cluster_link *l)
{
    l->ac = NULL;
    l->connected = false;
    ev_timer_stop(l->cluster->loop, &l->connect_deadline);
    l->retry_at = ev_now(l->cluster->loop) + l->backoff;
    l->backoff = l->backoff * 2 > REDIS_BACKOFF_MAX ? REDIS_BACKOFF_MAX : l->backoff * 2;
    schedule_refresh(l->cluster);
}

static void on_link_connect(const redisAsyncContext *ac, int status)
{
    struct cluster_link *l = ac->data;
    if (l->ac != ac)
        return;
    ev_timer_stop(l->cluster->loop, &l->connect_deadline);
    if (status != REDIS_OK) {
        log_event(LOG_LEVEL_WARN, NULL, "redis-connect-failed", "address", l->address, "error", ac->errstr, LOG_END);
        link_failed(l);  /* hiredis frees the context after this callback */
        return;
    }
    l->connected = true;
    l->backoff = CLUSTER_RETRY_AFTER;
    log_event(LOG_LEVEL_INFO, NULL, "redis-connected", "address", l->address, "via", "cluster", LOG_END);
    if (!l->cluster->have_map)
        schedule_refresh(l->cluster);
}

static void on_link_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct cluster_link *l = ac->data;
    if (l->ac != ac)
        return;  /* dropped by us */
    log_event(LOG_LEVEL_WARN, NULL, "redis-disconnect", "address", l->address, "reason",
              ac->err ? ac->errstr : "closed", LOG_END);
    link_failed(l);
}

/* Drops l's connection now: the retry pause is set first, so a callback
 * that hiredis runs (with NULL) while freeing it cannot start a new one
 * under our feet. */
static void link_drop(struct cluster_link *l)
{
    redisAsyncContext *ac = l->ac;
    link_failed(l);
    if (ac)
        redisAsyncFree(ac);  /* runs every pending reply callback with NULL, now */
}

/* At the end only: no pause, no refresh. */
static void free_link_ac(struct cluster_link *l)
{
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->connected = false;
    ev_timer_stop(l->cluster->loop, &l->connect_deadline);
    if (ac)
        redisAsyncFree(ac);  /* runs every pending reply callback with NULL, now */
}

static void on_link_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct cluster_link *l = w->data;
    if (!l->ac || l->connected)
        return;
    log_event(LOG_LEVEL_WARN, NULL, "redis-connect-failed", "address", l->address, "error", "timeout", LOG_END);
    link_drop(l);
}

static bool link_connect(struct cluster_link *l)
{
    struct redis_cluster *c = l->cluster;
    char ip[64];
    int port;
    if (!redis_split_address(l->address, ip, sizeof ip, &port))
        return false;
    redisAsyncContext *ac = redisAsyncConnect(ip, port);
    if (!ac || ac->err) {
        log_event(LOG_LEVEL_WARN, NULL, "redis-connect-failed", "address", l->address,
                  "error", ac ? ac->errstr : "out of memory", LOG_END);
        if (ac)
            redisAsyncFree(ac);
        l->retry_at = ev_now(c->loop) + l->backoff;
        return false;
    }
    ac->data = l;
    l->ac = ac;
    redisLibevAttach(c->loop, ac);
    redisAsyncSetConnectCallback(ac, on_link_connect);
    redisAsyncSetDisconnectCallback(ac, on_link_disconnect);
    if (c->cfg->password[0]) {
        const char *argv[] = { "AUTH", c->cfg->password };
        redisAsyncCommandArgv(ac, on_link_setup, NULL, 2, argv, NULL);
    }
    /* Before any call: a script call is then one EVALSHA on every node. */
    for (int id = 0; id < LUA_SCRIPTS; id++) {
        const char *source = redis_script_source((enum lua_script_id)id);
        if (source) {
            const char *argv[] = { "SCRIPT", "LOAD", source };
            redisAsyncCommandArgv(ac, on_link_script, (void *)(uintptr_t)id, 3, argv, NULL);
        }
    }
    ev_timer_set(&l->connect_deadline, c->cfg->timeout, 0.);
    ev_timer_start(c->loop, &l->connect_deadline);
    return true;
}

/* The link for address, added (not connected) when new; NULL when full. */
static struct cluster_link *link_for(struct redis_cluster *c, const char *address)
{
    for (unsigned i = 0; i < c->n_links; i++)
        if (!strcmp(c->links[i].address, address))
            return &c->links[i];
    if (c->n_links >= CLUSTER_LINKS_MAX || strlen(address) >= CLUSTER_ADDRESS_MAX)
        return NULL;
    struct cluster_link *l = &c->links[c->n_links++];
    l->cluster = c;
    snprintf(l->address, sizeof l->address, "%s", address);
    l->backoff = CLUSTER_RETRY_AFTER;
    ev_timer_init(&l->connect_deadline, on_link_deadline, 0., 0.);
    l->connect_deadline.data = l;
    return l;
}

/* Up or connecting, or connecting now unless in its retry pause. */
static redisAsyncContext *link_context(struct cluster_link *l)
{
    if (!l)
        return NULL;
    if (!l->ac && ev_now(l->cluster->loop) >= l->retry_at)
        link_connect(l);
    return l->ac;
}

/* ---- the slot map ------------------------------------------------------- */

static bool install_map(struct redis_cluster *c, const char *text, size_t len)
{
    if (!cluster_nodes_parse(text, len, &c->scratch))
        return false;
    struct cluster_link *links[CLUSTER_NODES_MAX] = { 0 };
    for (unsigned i = 0; i < c->scratch.n_nodes; i++)
        if (!(links[i] = link_for(c, c->scratch.nodes[i])))
            return false;
    c->map = c->scratch;
    memcpy(c->node_link, links, c->map.n_nodes * sizeof links[0]);
    bool first = !c->have_map;
    c->have_map = true;
    /* Every master up front, so the first session's commands wait for no
     * connection and the scripts are loaded everywhere. */
    for (unsigned i = 0; i < c->map.n_nodes; i++)
        link_context(c->node_link[i]);
    if (first)
        log_event(LOG_LEVEL_INFO, NULL, "redis-cluster-map", "masters", LOG_U64(c->map.n_nodes), "slots",
                  LOG_U64(cluster_map_covered(&c->map)), LOG_END);
    return true;
}

static void on_nodes(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct redis_cluster *c = privdata;
    const redisReply *r = reply;
    c->refreshing = false;
    ev_timer_stop(c->loop, &c->refresh_deadline);
    if (!r)
        return;  /* the connection went: its failure schedules another */
    if (r->type != REDIS_REPLY_STRING || !install_map(c, r->str, r->len)) {
        log_event(LOG_LEVEL_WARN, NULL, "redis-cluster-map-failed", "error",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unreadable CLUSTER NODES", LOG_END);
        schedule_refresh(c);
    }
}

static void refresh_now(struct redis_cluster *c)
{
    if (c->refreshing)
        return;
    /* Any node that is up knows the whole map; a connecting one will do
     * (the command waits for it), and a seed when nothing else is known. */
    struct cluster_link *best = NULL;
    for (unsigned i = 0; i < c->n_links && !(best && best->connected); i++) {
        struct cluster_link *l = &c->links[i];
        if (l->connected || (!best && l->ac))
            best = l;
    }
    for (unsigned i = 0; !best && i < c->n_links; i++)
        if (link_context(&c->links[i]))
            best = &c->links[i];
    c->last_refresh = ev_now(c->loop);
    const char *argv[] = { "CLUSTER", "NODES" };
    if (best && redisAsyncCommandArgv(best->ac, on_nodes, c, 2, argv, NULL) == REDIS_OK) {
        c->refreshing = true;
        c->refresh_link = best;
        ev_timer_set(&c->refresh_deadline, c->cfg->timeout, 0.);
        ev_timer_start(c->loop, &c->refresh_deadline);
    } else {
        schedule_refresh(c);
    }
}

/* CLUSTER NODES unanswered within the timeout: that node is not trusted with
 * more (as a command that misses its deadline); dropping it runs on_nodes
 * with NULL, and the failure asks another node. */
static void on_refresh_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct redis_cluster *c = w->data;
    struct cluster_link *l = c->refresh_link;
    if (!c->refreshing || !l->ac)
        return;
    log_event(LOG_LEVEL_WARN, NULL, "redis-disconnect", "address", l->address, "reason", "CLUSTER NODES timeout",
              LOG_END);
    link_drop(l);
}

static void on_refresh_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    refresh_now(w->data);
}

static void schedule_refresh(struct redis_cluster *c)
{
    if (c->refreshing || ev_is_active(&c->refresh_timer))
        return;
    double wait = c->last_refresh + CLUSTER_REFRESH_MIN - ev_now(c->loop);
    ev_timer_set(&c->refresh_timer, wait > 0 ? wait : 0., 0.);
    ev_timer_start(c->loop, &c->refresh_timer);
}

/* ---- interface ---------------------------------------------------------- */

struct redis_cluster *redis_cluster_new(struct ev_loop *loop, const struct redis_store_config *cfg)
{
    struct redis_cluster *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->cfg = cfg;
    cluster_map_clear(&c->map);
    ev_timer_init(&c->refresh_timer, on_refresh_timer, 0., 0.);
    c->refresh_timer.data = c;
    ev_timer_init(&c->refresh_deadline, on_refresh_deadline, 0., 0.);
    c->refresh_deadline.data = c;
    c->last_refresh = ev_now(loop) - CLUSTER_REFRESH_MIN;
    for (unsigned i = 0; i < cfg->n_cluster; i++) {
        char canonical[CLUSTER_ADDRESS_MAX];
        struct cluster_link *l = NULL;
        if (cluster_address_canonical(cfg->cluster[i], strlen(cfg->cluster[i]), canonical))
            l = link_for(c, canonical);
        if (l)
            link_connect(l);
    }
    return c;
}

void redis_cluster_free(struct redis_cluster *c)
{
    if (!c)
        return;
    ev_timer_stop(c->loop, &c->refresh_timer);
    ev_timer_stop(c->loop, &c->refresh_deadline);
    for (unsigned i = 0; i < c->n_links; i++)
        free_link_ac(&c->links[i]);
    free(c);
}

redisAsyncContext *redis_cluster_route(struct redis_cluster *c, int slot)
{
    if (slot < 0) {
        for (unsigned i = 0; i < c->n_links; i++)
            if (c->links[i].connected)
                return c->links[i].ac;
        return NULL;
    }
    unsigned node = c->map.owner[slot];
    if (node == CLUSTER_NO_NODE) {
        schedule_refresh(c);
        return NULL;
    }
    return link_context(c->node_link[node]);
}

redisAsyncContext *redis_cluster_node(struct redis_cluster *c, const char *address)
{
    return link_context(link_for(c, address));
}

void redis_cluster_moved(struct redis_cluster *c, unsigned slot, const char *address)
{
    unsigned node = cluster_map_node(&c->map, address);
    struct cluster_link *l = node == CLUSTER_NO_NODE ? NULL : link_for(c, address);
    if (l && slot < CLUSTER_SLOTS) {
        c->node_link[node] = l;
        c->map.owner[slot] = (uint16_t)node;
    }
    schedule_refresh(c);
}

bool redis_cluster_live(const redisAsyncContext *ac)
{
    const struct cluster_link *l = ac->data;
    return l && l->ac == ac && l->connected && !(ac->c.flags & REDIS_DISCONNECTING);
}

void redis_cluster_drop(struct redis_cluster *c, redisAsyncContext *ac, const char *why)
{
    (void)c;
    struct cluster_link *l = ac->data;
    if (!l || l->ac != ac)
        return;
    log_event(LOG_LEVEL_WARN, NULL, "redis-disconnect", "address", l->address, "reason", why, LOG_END);
    link_drop(l);
}

bool redis_cluster_ready(const struct redis_cluster *c)
{
    if (!c->have_map || cluster_map_covered(&c->map) != CLUSTER_SLOTS)
        return false;
    for (unsigned i = 0; i < c->n_links; i++)
        if (c->links[i].connected)
            return true;
    return false;
}
