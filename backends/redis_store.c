/* redis_store.c: see redis_store.h. */
#include "redis_store.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>

#include "log.h"
#include "redis_cluster.h"
#include "redis_cluster_map.h"
#include "redis_script.h"
#include "redis_sentinel.h"

struct redis_request {
    struct redis_store *store;
    redis_reply_cb *cb;
    void *arg;
    void (*release)(void *arg);  /* on cancel: the callback will not free arg */
    ev_timer deadline;
    bool finished;           /* callback delivered or cancelled */
    bool in_hiredis;         /* hiredis holds it and will call on_reply once */
    bool in_reply;           /* its callback runs for a reply: redis_request_then may send */
    bool resent;             /* sent again from on_reply: hiredis holds it anew */
    char *command;           /* formatted: a script call's, sent again after NOSCRIPT; in
                              * a cluster every command's, sent again after a redirect */
    size_t command_len;
    bool is_script;
    enum lua_script_id script;
    bool reloaded;           /* NOSCRIPT handled once: a second one is an error */
    redisAsyncContext *ac;   /* where it was sent (while in_hiredis) */
    int slot;                /* cluster: its key's slot, -1 for none */
    unsigned redirects, retries;
    ev_timer retry;          /* cluster: TRYAGAIN's pause */
    struct redis_request *prev, *next;
};

struct redis_store {
    struct ev_loop *loop;
    struct redis_store_config cfg;
    redisAsyncContext *ac;
    bool connected;
    double backoff;
    ev_timer reconnect_timer;
    ev_timer connect_deadline;
    struct redis_request *requests;  /* every live request */
    struct redis_sentinel *sentinel; /* NULL without [redis] sentinels */
    struct redis_cluster *cluster;   /* NULL without [redis] cluster */
    char current[REDIS_ADDRESS_MAX]; /* the address connected to */
};

static void connect_now(struct redis_store *store);

/* ---- address ------------------------------------------------------------ */

bool redis_split_address(const char *address, char *ip, size_t ip_cap, int *port)
{
    const char *colon;
    const char *host = address;
    size_t host_len;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (!close || close[1] != ':')
            return false;
        host = address + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (!colon)
            return false;
        host_len = (size_t)(colon - address);
    }
    if (host_len == 0 || host_len >= ip_cap)
        return false;
    memcpy(ip, host, host_len);
    ip[host_len] = '\0';
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1)
        return false;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535)
        return false;
    *port = (int)p;
    return true;
}

bool redis_store_address_valid(const char *address)
{
    if (address[0] == '/')
        return strlen(address) < REDIS_ADDRESS_MAX;
    char ip[64];
    int port;
    return redis_split_address(address, ip, sizeof ip, &port);
}

/* ---- requests ----------------------------------------------------------- */

static void request_unlink(struct redis_request *req)
{
    struct redis_store *store = req->store;
    if (req->prev)
        req->prev->next = req->next;
    else
        store->requests = req->next;
    if (req->next)
        req->next->prev = req->prev;
}

static void request_free(struct redis_request *req)
{
    ev_timer_stop(req->store->loop, &req->deadline);
    ev_timer_stop(req->store->loop, &req->retry);
    request_unlink(req);
    redisFreeCommand(req->command);
    free(req);
}

static void request_finish(struct redis_request *req, const redisReply *reply, const char *error)
{
    if (req->finished)
        return;
    req->finished = true;
    ev_timer_stop(req->store->loop, &req->deadline);
    req->cb(reply, error, req->arg);
}

/* Drop the connection now, failing everything in flight; reconnect later. */
static void drop_connection(struct redis_store *store, const char *why);

static void on_request_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct redis_request *req = w->data;
    struct redis_store *store = req->store;
    if (!req->in_hiredis) {
        /* Never sent (the store was disconnected when it was made), or
         * waiting to retry after TRYAGAIN until its time ran out. */
        request_finish(req, NULL, req->retries ? "timeout" : "redis unavailable");
        request_free(req);
        return;
    }
    request_finish(req, NULL, "timeout");
    if (store->cluster)
        redis_cluster_drop(store->cluster, req->ac, "command timeout");
    else
        drop_connection(store, "command timeout");
}

/* Whether a reply on ac may be followed by another command on it. */
static bool ac_live(const struct redis_store *store, const redisAsyncContext *ac)
{
    return store->cluster ? redis_cluster_live(ac) : store->ac == ac;
}

static void on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    enum lua_script_id id = (enum lua_script_id)(uintptr_t)privdata;
    const redisReply *r = reply;
    /* Nothing to say when the connection is going (a wrong password is
     * reported once, by on_setup_reply). */
    if (!r || (ac->c.flags & REDIS_DISCONNECTING))
        return;
    const char *sha1 = redis_script_sha1(id);
    if (r->type == REDIS_REPLY_STRING && sha1 && strcmp(r->str, sha1) == 0)
        return;
    log_event(LOG_LEVEL_ERROR, NULL, "redis-script-load-failed", "script", lua_script(id)->name, "error",
              r->type == REDIS_REPLY_ERROR ? r->str : "unexpected SHA1", LOG_END);
}

static bool load_script(redisAsyncContext *ac, enum lua_script_id id)
{
    const char *source = redis_script_source(id);
    const char *argv[] = { "SCRIPT", "LOAD", source };
    return source && redisAsyncCommandArgv(ac, on_script_loaded, (void *)(uintptr_t)id, 3, argv, NULL) == REDIS_OK;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Redis answered NOSCRIPT: its script cache was flushed, or it restarted or
 * failed over under this connection. Loads the script and sends the call
 * again, once, behind it; the caller sees only the second answer. */
static bool reload_and_resend(redisAsyncContext *ac, struct redis_request *req)
{
    struct redis_store *store = req->store;
    if (!req->is_script || req->reloaded || req->finished || !ac_live(store, ac))
        return false;
    req->reloaded = true;
    log_event(LOG_LEVEL_WARN, NULL, "redis-script-reload", "script", lua_script(req->script)->name, LOG_END);
    return load_script(ac, req->script) &&
           redisAsyncFormattedCommand(ac, on_reply, req, req->command, req->command_len) == REDIS_OK;
}

/* ---- cluster redirects -------------------------------------------------- */

static bool send_to(struct redis_request *req, redisAsyncContext *ac, bool asking)
{
    if (!ac)
        return false;
    if (asking && redisAsyncCommand(ac, NULL, NULL, "ASKING") != REDIS_OK)
        return false;
    if (redisAsyncFormattedCommand(ac, on_reply, req, req->command, req->command_len) != REDIS_OK)
        return false;
    if (ac != req->ac)
        req->reloaded = false;  /* another node may lack the script too */
    req->ac = ac;
    req->in_hiredis = true;
    return true;
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct redis_request *req = w->data;
    if (send_to(req, redis_cluster_route(req->store->cluster, req->slot), false))
        return;
    request_finish(req, NULL, "redis unavailable");
    request_free(req);
}

/* MOVED, ASK, TRYAGAIN or CLUSTERDOWN on a cluster: sends the command where
 * it belongs (now, or after a pause), and true; false to hand the error to
 * the caller (not a redirect, too many, or a command not kept). */
static bool follow_redirect(redisAsyncContext *ac, struct redis_request *req, const redisReply *r)
{
    struct redis_store *store = req->store;
    if (!store->cluster || !req->command || req->finished || !redis_cluster_live(ac))
        return false;
    struct cluster_redirect to;
    bool redirect = cluster_redirect_parse(r->str, r->len, &to);
    if (redirect && ++req->redirects <= REDIS_CLUSTER_REDIRECTS_MAX) {
        /* MOVED changes the map (once per slot and node): worth a line.
         * ASK comes for every command during a migration: debug only. */
        log_event(to.kind == CLUSTER_REDIRECT_MOVED ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, NULL,
                  to.kind == CLUSTER_REDIRECT_MOVED ? "redis-cluster-moved" : "redis-cluster-ask",
                  "slot", LOG_U64(to.slot), "address", to.address, LOG_END);
        if (to.kind == CLUSTER_REDIRECT_MOVED) {
            redis_cluster_moved(store->cluster, to.slot, to.address);
            return send_to(req, redis_cluster_route(store->cluster, (int)to.slot), false);
        }
        return send_to(req, redis_cluster_node(store->cluster, to.address), true);
    }
    /* A multi-key script while its slot migrates, a cluster that lost a
     * master and has not promoted its replica yet, or nodes sending the
     * command back and forth (MOVED both ways while the end of a migration
     * reaches one node before the other): wait a little. */
    bool again = redirect || !strncmp(r->str, "TRYAGAIN", 8) || !strncmp(r->str, "CLUSTERDOWN", 11);
    if (!again || ++req->retries > REDIS_CLUSTER_RETRIES_MAX) {
        if (redirect)
            log_event(LOG_LEVEL_WARN, NULL, "redis-cluster-redirects", "error", r->str, LOG_END);
        return false;
    }
    log_event(LOG_LEVEL_DEBUG, NULL, "redis-cluster-retry", "error", r->str, LOG_END);
    /* Each retry starts from the slot's owner again: a migrating slot sends
     * it on with ASK to a target that may answer TRYAGAIN, every time until
     * the keys have moved, so redirects are counted per try. */
    req->redirects = 0;
    req->in_hiredis = false;
    ev_timer_set(&req->retry, REDIS_CLUSTER_RETRY_DELAY, 0.);
    ev_timer_start(store->loop, &req->retry);
    return true;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis_request *req = privdata;
    const redisReply *r = reply;
    bool is_error = r && r->type == REDIS_REPLY_ERROR;
    if (is_error && strncmp(r->str, "NOSCRIPT", 8) == 0 && reload_and_resend(ac, req))
        return;
    if (is_error && follow_redirect(ac, req, r))
        return;
    bool demoted = is_error && strncmp(r->str, "READONLY", 8) == 0;
    struct redis_store *store = req->store;
    req->in_reply = r && !is_error && ac_live(store, ac);
    req->resent = false;
    if (!r)
        request_finish(req, NULL, "redis unavailable");
    else if (is_error)
        request_finish(req, NULL, r->str);
    else
        request_finish(req, r, NULL);
    req->in_reply = false;
    if (!req->resent)
        request_free(req);
    /* Our master became a replica (failover): find the new one. */
    if (demoted && store->sentinel && !store->cluster && store->ac == ac)
        redisAsyncDisconnect(ac);
}

static struct redis_request *request_new(struct redis_store *store, redis_reply_cb *cb, void *arg)
{
    struct redis_request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->store = store;
    req->cb = cb;
    req->arg = arg;
    req->next = store->requests;
    if (store->requests)
        store->requests->prev = req;
    store->requests = req;
    ev_timer_init(&req->deadline, on_request_deadline, store->cfg.timeout, 0.);
    req->deadline.data = req;
    ev_timer_init(&req->retry, on_retry, 0., 0.);
    req->retry.data = req;
    req->slot = -1;
    return req;
}

/* Arms the deadline; a request that could not be sent fails from the loop,
 * not inside the caller's call. */
static void request_start(struct redis_request *req, bool sent)
{
    req->in_hiredis = sent;
    if (sent && !req->store->cluster)
        req->ac = req->store->ac;
    if (!sent)
        ev_timer_set(&req->deadline, 0., 0.);
    ev_timer_start(req->store->loop, &req->deadline);
}

enum { SLOT_NONE = -1, SLOT_CROSS = -2 };

static size_t arg_len(const char **argv, const size_t *argvlen, int i)
{
    return argvlen ? argvlen[i] : strlen(argv[i]);
}

/* The slot a command's keys hash to: a script's keys (SLOT_CROSS when they
 * do not share one), else its first argument's (every other command popgate
 * sends names one key there); SLOT_NONE for a command without one. */
static int command_slot(int argc, const char **argv, const size_t *argvlen)
{
    if (argc < 2)
        return SLOT_NONE;
    if (strcasecmp(argv[0], "EVALSHA") && strcasecmp(argv[0], "EVAL"))
        return (int)cluster_key_slot(argv[1], arg_len(argv, argvlen, 1));
    long n_keys = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    if (n_keys < 1 || n_keys > argc - 3)
        return SLOT_NONE;
    int slot = (int)cluster_key_slot(argv[3], arg_len(argv, argvlen, 3));
    for (int i = 4; i < 3 + n_keys; i++)
        if ((int)cluster_key_slot(argv[i], arg_len(argv, argvlen, i)) != slot)
            return SLOT_CROSS;
    return slot;
}

/* Every command goes out here. In a cluster it is kept formatted, to be
 * sent again after a redirect; a script call is kept in any mode, for
 * NOSCRIPT. */
static struct redis_request *submit(struct redis_store *store, redis_reply_cb *cb, void *arg, int argc,
                                    const char **argv, const size_t *argvlen, bool is_script,
                                    enum lua_script_id script)
{
    int slot = command_slot(argc, argv, argvlen);
    if (slot == SLOT_CROSS) {
        /* A script must see all its keys on one node; in a cluster it would
         * fail with CROSSSLOT, so it fails here, in every mode, where a
         * test on one Redis sees it too. */
        log_event(LOG_LEVEL_ERROR, NULL, "redis-cross-slot", "script",
                  is_script ? lua_script(script)->name : argv[0], LOG_END);
        return NULL;
    }
    char *command = NULL;
    int len = 0;
    if (is_script || store->cluster) {
        len = redisFormatCommandArgv(&command, argc, argv, argvlen);
        if (len < 0)
            return NULL;
    }
    struct redis_request *req = request_new(store, cb, arg);
    if (!req) {
        redisFreeCommand(command);
        return NULL;
    }
    req->command = command;
    req->command_len = (size_t)len;
    req->is_script = is_script;
    req->script = script;
    req->slot = slot;
    bool sent;
    if (store->cluster)
        sent = send_to(req, redis_cluster_route(store->cluster, slot), false);
    else if (command)
        sent = store->connected &&
               redisAsyncFormattedCommand(store->ac, on_reply, req, command, (size_t)len) == REDIS_OK;
    else
        sent = store->connected && redisAsyncCommandArgv(store->ac, on_reply, req, argc, argv, argvlen) == REDIS_OK;
    request_start(req, sent);
    return req;
}

struct redis_request *redis_store_command(struct redis_store *store, redis_reply_cb *cb, void *arg,
                                          int argc, const char **argv, const size_t *argvlen)
{
    return submit(store, cb, arg, argc, argv, argvlen, false, 0);
}

struct redis_request *redis_store_script(struct redis_store *store, enum lua_script_id script, redis_reply_cb *cb,
                                         void *arg, int argc, const char **argv, const size_t *argvlen)
{
    return submit(store, cb, arg, argc, argv, argvlen, true, script);
}

bool redis_request_then(struct redis_request *req, redis_reply_cb *cb, void *arg, int argc, const char **argv,
                        const size_t *argvlen)
{
    struct redis_store *store = req->store;
    /* On the same connection: in a cluster, WAIT must reach the master
     * that ran the command before it. */
    if (!req->in_reply || req->resent || (!store->cluster && !store->connected) || !ac_live(store, req->ac) ||
        redisAsyncCommandArgv(req->ac, on_reply, req, argc, argv, argvlen) != REDIS_OK)
        return false;
    redisFreeCommand(req->command);
    req->command = NULL;
    req->is_script = false;
    req->reloaded = false;
    req->resent = true;
    req->finished = false;
    req->cb = cb;
    req->arg = arg;
    ev_timer_set(&req->deadline, store->cfg.timeout, 0.);
    ev_timer_start(store->loop, &req->deadline);
    return true;
}

static void ignore_reply(const redisReply *r, const char *error, void *arg)
{
    (void)r; (void)error; (void)arg;
}

void redis_store_send(struct redis_store *store, int argc, const char **argv, const size_t *argvlen)
{
    redis_store_command(store, ignore_reply, NULL, argc, argv, argvlen);
}

void redis_request_on_cancel(struct redis_request *req, void (*release)(void *arg))
{
    req->release = release;
}

void redis_request_cancel(struct redis_request *req)
{
    if (!req)
        return;
    req->finished = true;
    ev_timer_stop(req->store->loop, &req->deadline);
    if (req->release)
        req->release(req->arg);
    if (!req->in_hiredis)
        request_free(req);
    /* else hiredis still holds it: on_reply frees it without a callback. */
}

/* ---- connection --------------------------------------------------------- */

static void schedule_reconnect(struct redis_store *store)
{
    if (ev_is_active(&store->reconnect_timer))
        return;
    ev_timer_set(&store->reconnect_timer, store->backoff, 0.);
    ev_timer_start(store->loop, &store->reconnect_timer);
    store->backoff = store->backoff * 2 > REDIS_BACKOFF_MAX ? REDIS_BACKOFF_MAX : store->backoff * 2;
}

static void drop_connection(struct redis_store *store, const char *why)
{
    redisAsyncContext *ac = store->ac;
    if (!ac)
        return;
    log_event(LOG_LEVEL_WARN, NULL, "redis-disconnect", "reason", why, LOG_END);
    store->ac = NULL;
    store->connected = false;
    ev_timer_stop(store->loop, &store->connect_deadline);
    /* Runs every pending reply callback with NULL, now. */
    redisAsyncFree(ac);
    schedule_reconnect(store);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis_store *store = privdata;
    const redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        /* Password or database wrong: nothing will work; say so, and retry
         * slowly in case the operator fixes Redis rather than our config. */
        log_event(LOG_LEVEL_ERROR, NULL, "redis-setup-failed", "error", r->str, LOG_END);
        store->backoff = REDIS_BACKOFF_MAX;
        redisAsyncDisconnect(ac);
    }
}

static void on_role(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis_store *store = privdata;
    const redisReply *r = reply;
    if (!r || store->ac != ac)
        return;
    bool master = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                  r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
    if (!master) {
        log_event(LOG_LEVEL_WARN, NULL, "redis-not-master", "address", store->current, LOG_END);
        redisAsyncDisconnect(ac);
        return;
    }
    store->connected = true;
    store->backoff = REDIS_BACKOFF_MIN;
    log_event(LOG_LEVEL_INFO, NULL, "redis-connected", "address", store->current, "via", "sentinel", LOG_END);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_store *store = ac->data;
    ev_timer_stop(store->loop, &store->connect_deadline);
    if (status != REDIS_OK) {
        log_event(LOG_LEVEL_WARN, NULL, "redis-connect-failed", "address", store->current,
                  "error", ac->errstr, LOG_END);
        store->ac = NULL;  /* hiredis frees the context after this callback */
        store->connected = false;
        schedule_reconnect(store);
        return;
    }
    if (store->sentinel) {
        /* A sentinel's answer can lag a failover: trust only ROLE. */
        const char *argv[] = { "ROLE" };
        redisAsyncCommandArgv(store->ac, on_role, store, 1, argv, NULL);
        return;
    }
    store->connected = true;
    store->backoff = REDIS_BACKOFF_MIN;
    log_event(LOG_LEVEL_INFO, NULL, "redis-connected", "address", store->current, LOG_END);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_store *store = ac->data;
    (void)status;
    if (store->ac != ac)
        return;  /* we dropped it ourselves */
    log_event(LOG_LEVEL_WARN, NULL, "redis-disconnect", "reason",
              ac->err ? ac->errstr : "closed", LOG_END);
    store->ac = NULL;
    store->connected = false;
    schedule_reconnect(store);
}

static void on_connect_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct redis_store *store = w->data;
    redisAsyncContext *ac = store->ac;
    if (!ac || store->connected)
        return;
    log_event(LOG_LEVEL_WARN, NULL, "redis-connect-failed", "address", store->current,
              "error", "timeout", LOG_END);
    store->ac = NULL;
    redisAsyncFree(ac);
    schedule_reconnect(store);
}

static void on_reconnect_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    connect_now(w->data);
}

static void connect_to(struct redis_store *store, const char *address)
{
    snprintf(store->current, sizeof store->current, "%s", address);
    redisAsyncContext *ac;
    if (address[0] == '/') {
        ac = redisAsyncConnectUnix(address);
    } else {
        char ip[64];
        int port;
        if (!redis_split_address(address, ip, sizeof ip, &port))
            return;  /* checked at config load */
        ac = redisAsyncConnect(ip, port);
    }
    if (!ac || ac->err) {
        log_event(LOG_LEVEL_WARN, NULL, "redis-connect-failed", "address", address,
                  "error", ac ? ac->errstr : "out of memory", LOG_END);
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(store);
        return;
    }
    ac->data = store;
    store->ac = ac;
    redisLibevAttach(store->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (store->cfg.password[0]) {
        const char *argv[] = { "AUTH", store->cfg.password };
        redisAsyncCommandArgv(ac, on_setup_reply, store, 2, argv, NULL);
    }
    if (store->cfg.database) {
        char db[16];
        snprintf(db, sizeof db, "%u", store->cfg.database);
        const char *argv[] = { "SELECT", db };
        redisAsyncCommandArgv(ac, on_setup_reply, store, 2, argv, NULL);
    }
    /* Before any call: a script call is then one EVALSHA. */
    for (int id = 0; id < LUA_SCRIPTS; id++)
        load_script(ac, (enum lua_script_id)id);
    ev_timer_set(&store->connect_deadline, store->cfg.timeout, 0.);
    ev_timer_start(store->loop, &store->connect_deadline);
}

static void on_master_found(const char *address, void *arg)
{
    struct redis_store *store = arg;
    if (!address) {
        schedule_reconnect(store);
        return;
    }
    connect_to(store, address);
}

static void connect_now(struct redis_store *store)
{
    if (store->sentinel)
        redis_sentinel_query(store->sentinel, on_master_found, store);
    else
        connect_to(store, store->cfg.address);
}

static void on_failover(void *arg)
{
    drop_connection(arg, "sentinel +switch-master");
}

struct redis_store *redis_store_new(struct ev_loop *loop, const struct redis_store_config *cfg)
{
    struct redis_store *store = calloc(1, sizeof *store);
    if (!store)
        return NULL;
    store->loop = loop;
    store->cfg = *cfg;
    store->backoff = REDIS_BACKOFF_MIN;
    ev_timer_init(&store->reconnect_timer, on_reconnect_timer, 0., 0.);
    store->reconnect_timer.data = store;
    ev_timer_init(&store->connect_deadline, on_connect_deadline, 0., 0.);
    store->connect_deadline.data = store;
    if (cfg->n_sentinels > 0) {
        const char *list[REDIS_SENTINEL_SLOTS];
        for (unsigned i = 0; i < cfg->n_sentinels; i++)
            list[i] = cfg->sentinels[i];
        store->sentinel = redis_sentinel_new(loop, list, cfg->n_sentinels, cfg->master_name,
                                             cfg->timeout, on_failover, store);
        if (!store->sentinel) {
            free(store);
            return NULL;
        }
    }
    if (cfg->n_cluster > 0) {
        store->cluster = redis_cluster_new(loop, &store->cfg);
        if (!store->cluster) {
            free(store);
            return NULL;
        }
        return store;
    }
    connect_now(store);
    return store;
}

const struct redis_store_config *redis_store_config(const struct redis_store *store)
{
    return &store->cfg;
}

bool redis_store_connected(const struct redis_store *store)
{
    return store->cluster ? redis_cluster_ready(store->cluster) : store->connected;
}

unsigned redis_store_pending(const struct redis_store *store)
{
    unsigned n = 0;
    for (const struct redis_request *r = store->requests; r; r = r->next)
        n++;
    return n;
}

void redis_store_free(struct redis_store *store)
{
    if (!store)
        return;
    ev_timer_stop(store->loop, &store->reconnect_timer);
    ev_timer_stop(store->loop, &store->connect_deadline);
    redis_sentinel_free(store->sentinel);
    redis_cluster_free(store->cluster);
    store->cluster = NULL;
    redisAsyncContext *ac = store->ac;
    store->ac = NULL;
    store->connected = false;
    if (ac)
        redisAsyncFree(ac);
    /* What hiredis never held is still waiting on its zero timer. */
    while (store->requests) {
        struct redis_request *req = store->requests;
        if (!req->finished)
            request_finish(req, NULL, "redis unavailable");
        request_free(req);
    }
    explicit_bzero(store->cfg.password, sizeof store->cfg.password);
    free(store);
}
