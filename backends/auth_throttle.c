/* auth_throttle.c: see auth_throttle.h. */
#include "auth_throttle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "login_name.h"

#define KEY_MAX (32 + LOGIN_USER_MAX)

static const char incr_script[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
    "return n\n";

struct auth_throttle_check {
    struct redis_request *user_req, *addr_req, *backoff_req;
    int pending;
    bool blocked, backoff, failed;
    uint32_t max_user, max_addr;
    auth_throttle_cb *cb;
    void *arg;
};

static void user_key(char *out, const char *state_user)
{
    snprintf(out, KEY_MAX, "pg1:{%s}:authfail", state_user);
}

static void backoff_key(char *out, const char *state_user)
{
    snprintf(out, KEY_MAX, "pg1:{%s}:backoff", state_user);
}

static void addr_key(char *out, const char *addr)
{
    snprintf(out, KEY_MAX, "pg1:authfail:addr:%s", addr);
}

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

static void on_user_count(const redisReply *r, const char *error, void *arg)
{
    (void)error;
    struct auth_throttle_check *c = arg;
    c->user_req = NULL;
    if (!r)
        c->failed = true;
    else if (over_limit(r, c->max_user))
        c->blocked = true;
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

/* PTTL: -2 no key, -1 no expiry (never set by us; counts), else ms left. */
static void on_backoff_ttl(const redisReply *r, const char *error, void *arg)
{
    (void)error;
    struct auth_throttle_check *c = arg;
    c->backoff_req = NULL;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        c->failed = true;
    else if (r->integer > 0 || r->integer == -1)
        c->backoff = true;
    finish_one(c);
}

struct auth_throttle_check *auth_throttle_check(struct redis_store *store, const char *state_user,
                                                const char *addr, const struct auth_throttle_limits *l,
                                                auth_throttle_cb *cb, void *arg)
{
    struct auth_throttle_check *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = (struct auth_throttle_check){ .pending = 3, .max_user = l->max_per_user,
                                       .max_addr = l->max_per_addr, .cb = cb, .arg = arg };
    char ukey[KEY_MAX], akey[KEY_MAX], bkey[KEY_MAX];
    user_key(ukey, state_user);
    addr_key(akey, addr);
    backoff_key(bkey, state_user);
    const char *uargv[] = { "GET", ukey };
    const char *aargv[] = { "GET", akey };
    const char *bargv[] = { "PTTL", bkey };
    c->user_req = redis_store_command(store, on_user_count, c, 2, uargv, NULL);
    c->addr_req = redis_store_command(store, on_addr_count, c, 2, aargv, NULL);
    c->backoff_req = redis_store_command(store, on_backoff_ttl, c, 2, bargv, NULL);
    if (!c->user_req || !c->addr_req || !c->backoff_req) {
        redis_request_cancel(c->user_req);
        redis_request_cancel(c->addr_req);
        redis_request_cancel(c->backoff_req);
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
    redis_request_cancel(c->backoff_req);
    free(c);
}

void auth_throttle_record_failure(struct redis_store *store, const char *state_user, const char *addr,
                                  uint32_t window)
{
    char ukey[KEY_MAX], akey[KEY_MAX], win[16];
    user_key(ukey, state_user);
    addr_key(akey, addr);
    snprintf(win, sizeof win, "%" PRIu32, window);
    const char *uargv[] = { "EVAL", incr_script, "1", ukey, win };
    const char *aargv[] = { "EVAL", incr_script, "1", akey, win };
    redis_store_send(store, 5, uargv, NULL);
    redis_store_send(store, 5, aargv, NULL);
}

void auth_throttle_record_backoff(struct redis_store *store, const char *state_user, uint32_t ms)
{
    if (ms == 0)
        return;
    char key[KEY_MAX], px[16];
    backoff_key(key, state_user);
    snprintf(px, sizeof px, "%" PRIu32, ms);
    const char *argv[] = { "SET", key, "1", "PX", px };
    redis_store_send(store, 5, argv, NULL);
}
