/* redis_sentinel.c: see redis_sentinel.h. */
#include "redis_sentinel.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>

#include "log.h"
#include "redis_store.h"

struct redis_sentinel {
    struct ev_loop *loop;
    char sentinels[REDIS_SENTINELS_MAX][REDIS_ADDRESS_MAX];
    unsigned n;
    char master_name[128];
    double timeout;
    redis_sentinel_switch_cb *on_switch;
    void *switch_arg;

    /* query */
    redisAsyncContext *query;
    unsigned next;                 /* sentinel to ask next */
    unsigned tried;                /* sentinels asked for this query */
    redis_sentinel_master_cb *query_cb;
    void *query_arg;
    ev_timer query_deadline;

    /* watch */
    redisAsyncContext *watch;
    unsigned watch_index;
    ev_timer watch_retry;
};

static void ask_next(struct redis_sentinel *s);
static void start_watch(struct redis_sentinel *s);

static redisAsyncContext *connect_to(struct redis_sentinel *s, const char *address)
{
    char ip[64];
    int port;
    if (!redis_split_address(address, ip, sizeof ip, &port))
        return NULL;
    redisAsyncContext *ac = redisAsyncConnect(ip, port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    redisLibevAttach(s->loop, ac);
    return ac;
}

/* ---- query -------------------------------------------------------------- */

static void query_done(struct redis_sentinel *s, const char *address)
{
    ev_timer_stop(s->loop, &s->query_deadline);
    redis_sentinel_master_cb *cb = s->query_cb;
    s->query_cb = NULL;
    if (cb)
        cb(address, s->query_arg);
}

static void drop_query(struct redis_sentinel *s)
{
    redisAsyncContext *ac = s->query;
    s->query = NULL;
    if (ac)
        redisAsyncFree(ac);
}

static void on_master_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis_sentinel *s = privdata;
    const redisReply *r = reply;
    if (s->query != ac)
        return;  /* a superseded query */
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
        char address[REDIS_ADDRESS_MAX];
        bool v6 = strchr(r->element[0]->str, ':') != NULL;
        snprintf(address, sizeof address, v6 ? "[%s]:%s" : "%s:%s", r->element[0]->str, r->element[1]->str);
        /* Freed from the loop: hiredis is inside this context's callback. */
        s->query = NULL;
        redisAsyncDisconnect(ac);
        query_done(s, address);
        return;
    }
    s->query = NULL;
    redisAsyncDisconnect(ac);
    ask_next(s);
}

static void on_query_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct redis_sentinel *s = ac->data;
    if (s->query == ac) {
        s->query = NULL;
        ask_next(s);
    }
}

static void on_query_connect(const redisAsyncContext *ac, int status)
{
    struct redis_sentinel *s = ac->data;
    if (status != REDIS_OK && s->query == ac) {
        s->query = NULL;  /* hiredis frees it */
        ask_next(s);
    }
}

static void on_query_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct redis_sentinel *s = w->data;
    drop_query(s);
    ask_next(s);
}

static void ask_next(struct redis_sentinel *s)
{
    while (s->tried < s->n) {
        const char *address = s->sentinels[s->next % s->n];
        s->next++;
        s->tried++;
        redisAsyncContext *ac = connect_to(s, address);
        if (!ac)
            continue;
        s->query = ac;
        redisAsyncSetConnectCallback(ac, on_query_connect);
        redisAsyncSetDisconnectCallback(ac, on_query_disconnect);
        const char *argv[] = { "SENTINEL", "get-master-addr-by-name", s->master_name };
        redisAsyncCommandArgv(ac, on_master_reply, s, 3, argv, NULL);
        ev_timer_stop(s->loop, &s->query_deadline);
        ev_timer_set(&s->query_deadline, s->timeout, 0.);
        ev_timer_start(s->loop, &s->query_deadline);
        return;
    }
    log_event(LOG_LEVEL_WARN, NULL, "sentinel-no-master", "master", s->master_name, LOG_END);
    query_done(s, NULL);
}

void redis_sentinel_query(struct redis_sentinel *s, redis_sentinel_master_cb *cb, void *arg)
{
    drop_query(s);
    s->query_cb = cb;
    s->query_arg = arg;
    s->tried = 0;
    ask_next(s);
}

/* ---- watch -------------------------------------------------------------- */

static void schedule_watch(struct redis_sentinel *s)
{
    if (!ev_is_active(&s->watch_retry)) {
        ev_timer_set(&s->watch_retry, 1., 0.);
        ev_timer_start(s->loop, &s->watch_retry);
    }
}

static void on_switch_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct redis_sentinel *s = privdata;
    const redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[2]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0)
        return;
    /* "<master-name> <old-ip> <old-port> <new-ip> <new-port>" */
    const char *text = r->element[2]->str;
    size_t name_len = strlen(s->master_name);
    if (strncmp(text, s->master_name, name_len) != 0 || text[name_len] != ' ')
        return;
    log_event(LOG_LEVEL_WARN, NULL, "sentinel-switch-master", "event", text, LOG_END);
    s->on_switch(s->switch_arg);
}

static void on_watch_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct redis_sentinel *s = ac->data;
    if (s->watch == ac) {
        s->watch = NULL;
        schedule_watch(s);
    }
}

static void on_watch_connect(const redisAsyncContext *ac, int status)
{
    struct redis_sentinel *s = ac->data;
    if (status != REDIS_OK && s->watch == ac) {
        s->watch = NULL;
        schedule_watch(s);
    }
}

static void start_watch(struct redis_sentinel *s)
{
    const char *address = s->sentinels[s->watch_index++ % s->n];
    redisAsyncContext *ac = connect_to(s, address);
    if (!ac) {
        schedule_watch(s);
        return;
    }
    s->watch = ac;
    redisAsyncSetConnectCallback(ac, on_watch_connect);
    redisAsyncSetDisconnectCallback(ac, on_watch_disconnect);
    const char *argv[] = { "SUBSCRIBE", "+switch-master" };
    redisAsyncCommandArgv(ac, on_switch_message, s, 2, argv, NULL);
}

static void on_watch_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    start_watch(w->data);
}

struct redis_sentinel *redis_sentinel_new(struct ev_loop *loop, const char *const *sentinels, unsigned n,
                                          const char *master_name, double timeout,
                                          redis_sentinel_switch_cb *on_switch, void *arg)
{
    if (n == 0 || n > REDIS_SENTINELS_MAX)
        return NULL;
    struct redis_sentinel *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->n = n;
    for (unsigned i = 0; i < n; i++)
        snprintf(s->sentinels[i], sizeof s->sentinels[i], "%s", sentinels[i]);
    snprintf(s->master_name, sizeof s->master_name, "%s", master_name);
    s->timeout = timeout;
    s->on_switch = on_switch;
    s->switch_arg = arg;
    ev_timer_init(&s->query_deadline, on_query_deadline, 0., 0.);
    s->query_deadline.data = s;
    ev_timer_init(&s->watch_retry, on_watch_retry, 0., 0.);
    s->watch_retry.data = s;
    start_watch(s);
    return s;
}

void redis_sentinel_free(struct redis_sentinel *s)
{
    if (!s)
        return;
    ev_timer_stop(s->loop, &s->query_deadline);
    ev_timer_stop(s->loop, &s->watch_retry);
    s->query_cb = NULL;
    drop_query(s);
    redisAsyncContext *watch = s->watch;
    s->watch = NULL;
    if (watch)
        redisAsyncFree(watch);
    free(s);
}
