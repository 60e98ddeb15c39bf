/* auth_throttle.c: see auth_throttle.h. */
#include "auth_throttle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_keys.h"
#include "redis_script.h"

/* Two commands in one round trip: the user's counter and backoff (one
 * script: the user's slot) and the address's counter (another slot). */
struct auth_throttle_check {
    struct redis_request *user_req, *addr_req;
    int pending;
    bool blocked, backoff, failed;
    uint32_t max_user, max_addr;
    auth_throttle_cb *cb;
    void *arg;
};

/* A counter reply: nil (no failures) or a number. */
static bool over_limit(const redisReply *r, uint32_t max)
{
    if (max == 0 || r->type != REDIS_REPLY_STRING)
        return false;
    return strtoull(r->str, NULL, 10) >= max;
}

static void finish_one(struct auth_throttle_check *c)
{
    if (--c->pending > 0)
        return;
    enum auth_throttle_verdict v = c->failed    ? AUTH_THROTTLE_UNAVAILABLE
                                   : c->blocked ? AUTH_THROTTLE_BLOCK
                                   : c->backoff ? AUTH_THROTTLE_BACKOFF
                                                : AUTH_THROTTLE_ALLOW;
    auth_throttle_cb *cb = c->cb;
    void *arg = c->arg;
    free(c);
    cb(v, arg);
}

/* {counter or nil, PTTL of the backoff}: PTTL -2 no key, -1 no expiry
 * (never set by us; counts), else ms left. */
static void on_user_state(const redisReply *r, const char *error, void *arg)
{
    (void)error;
    struct auth_throttle_check *c = arg;
    c->user_req = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[1]->type != REDIS_REPLY_INTEGER) {
        c->failed = true;
    } else {
        if (over_limit(r->element[0], c->max_user))
            c->blocked = true;
        if (r->element[1]->integer > 0 || r->element[1]->integer == -1)
            c->backoff = true;
    }
    finish_one(c);
}

static void on_addr_count(const redisReply *r, const char *error, void *arg)
{
    (void)error;
    struct auth_throttle_check *c = arg;
    c->addr_req = NULL;
    if (!r)
        c->failed = true;
    else if (over_limit(r, c->max_addr))
        c->blocked = true;
    finish_one(c);
}

struct auth_throttle_check *auth_throttle_check(struct redis_store *store, const char *state_user,
                                                const char *addr, const struct auth_throttle_limits *l,
                                                auth_throttle_cb *cb, void *arg)
{
    struct auth_throttle_check *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = (struct auth_throttle_check){ .pending = 2, .max_user = l->max_per_user,
                                       .max_addr = l->max_per_addr, .cb = cb, .arg = arg };
    char ukey[REDIS_KEY_MAX], akey[REDIS_KEY_MAX], bkey[REDIS_KEY_MAX];
    redis_key(ukey, REDIS_KEY_AUTHFAIL, state_user, NULL);
    redis_key(akey, REDIS_KEY_AUTHFAIL_ADDR, addr, NULL);
    redis_key(bkey, REDIS_KEY_BACKOFF, state_user, NULL);
    const char *ukeys[THROTTLE_READ_KEYS] = {
        [THROTTLE_READ_KEY_COUNTER] = ukey, [THROTTLE_READ_KEY_BACKOFF] = bkey,
    };
    const char *aargv[] = { "GET", akey };
    c->user_req = redis_script_call(store, LUA_THROTTLE_READ, ukeys, NULL, NULL, 0, on_user_state, c);
    c->addr_req = redis_store_command(store, on_addr_count, c, 2, aargv, NULL);
    if (!c->user_req || !c->addr_req) {
        redis_request_cancel(c->user_req);
        redis_request_cancel(c->addr_req);
        free(c);
        return NULL;
    }
    return c;
}

void auth_throttle_cancel(struct auth_throttle_check *c)
{
    if (!c)
        return;
    redis_request_cancel(c->user_req);
    redis_request_cancel(c->addr_req);
    free(c);
}

void auth_throttle_record_failure(struct redis_store *store, const char *state_user, const char *addr,
                                  uint32_t window)
{
    char ukey[REDIS_KEY_MAX], akey[REDIS_KEY_MAX], win[16];
    redis_key(ukey, REDIS_KEY_AUTHFAIL, state_user, NULL);
    redis_key(akey, REDIS_KEY_AUTHFAIL_ADDR, addr, NULL);
    snprintf(win, sizeof win, "%" PRIu32, window);
    const char *args[COUNTER_INCR_ARGS] = { [COUNTER_INCR_ARG_WINDOW] = win };
    const char *ukeys[COUNTER_INCR_KEYS] = { [COUNTER_INCR_KEY_COUNTER] = ukey };
    const char *akeys[COUNTER_INCR_KEYS] = { [COUNTER_INCR_KEY_COUNTER] = akey };
    redis_script_send(store, LUA_COUNTER_INCR, ukeys, args, NULL, 0);
    redis_script_send(store, LUA_COUNTER_INCR, akeys, args, NULL, 0);
}

void auth_throttle_record_backoff(struct redis_store *store, const char *state_user, uint32_t ms)
{
    if (ms == 0)
        return;
    char key[REDIS_KEY_MAX], px[16];
    redis_key(key, REDIS_KEY_BACKOFF, state_user, NULL);
    snprintf(px, sizeof px, "%" PRIu32, ms);
    const char *argv[] = { "SET", key, "1", "PX", px };
    redis_store_send(store, 5, argv, NULL);
}
