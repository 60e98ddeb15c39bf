/* oauth_store.c: see oauth_store.h. */
#include "oauth_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "redis_keys.h"
#include "redis_script.h"

struct store_call {
    oauth_store_cb *cb;
    void *arg;
    struct oauth_stored *out;
    bool *flag;
};

static struct store_call *call_new(oauth_store_cb *cb, void *arg)
{
    struct store_call *c = calloc(1, sizeof *c);
    if (c) {
        c->cb = cb;
        c->arg = arg;
    }
    return c;
}

static void call_finish(struct store_call *c, bool ok)
{
    oauth_store_cb *cb = c->cb;
    void *arg = c->arg;
    free(c);
    cb(ok, arg);
}

static void release_call(void *arg)
{
    free(arg);
}

static struct redis_request *started(struct redis_request *req, struct store_call *c)
{
    if (!req) {
        free(c);
        return NULL;
    }
    redis_request_on_cancel(req, release_call);
    return req;
}

/* A bulk string of the reply into dst (cap bytes): false if absent (nil)
 * or too long; a wrong type is a failure (*bad). */
static bool copy_field(const redisReply *e, char *dst, size_t cap, bool *bad)
{
    dst[0] = '\0';
    if (e->type == REDIS_REPLY_NIL)
        return false;
    if (e->type != REDIS_REPLY_STRING || e->len >= cap) {
        *bad = true;
        return false;
    }
    memcpy(dst, e->str, e->len);
    dst[e->len] = '\0';
    return true;
}

static void on_load(const redisReply *r, const char *error, void *arg)
{
    (void)error;
    struct store_call *c = arg;
    struct oauth_stored *o = c->out;
    bool bad = !r || r->type != REDIS_REPLY_ARRAY || r->elements != 7;
    if (!bad) {
        char at_exp[24];
        o->has_record = copy_field(r->element[0], o->record, sizeof o->record, &bad);
        o->has_rt = copy_field(r->element[1], o->rt, sizeof o->rt, &bad);
        copy_field(r->element[2], o->rt_gen, sizeof o->rt_gen, &bad);
        o->has_at = copy_field(r->element[3], o->at, sizeof o->at, &bad);
        copy_field(r->element[4], at_exp, sizeof at_exp, &bad);
        o->at_exp = strtoll(at_exp, NULL, 10);
        copy_field(r->element[5], o->status, sizeof o->status, &bad);
        copy_field(r->element[6], o->reason, sizeof o->reason, &bad);
    }
    call_finish(c, !bad);
}

struct redis_request *oauth_store_load(struct redis_store *r, const char *user, const char *device,
                                       struct oauth_stored *out, oauth_store_cb *cb, void *arg)
{
    struct store_call *c = call_new(cb, arg);
    if (!c)
        return NULL;
    c->out = out;
    char apw[REDIS_KEY_MAX], oauth[REDIS_KEY_MAX];
    redis_key(apw, REDIS_KEY_APP_PASSWORD, user, NULL);
    redis_key(oauth, REDIS_KEY_OAUTH, user, NULL);
    const char *keys[OAUTH_LOAD_KEYS] = { [OAUTH_LOAD_KEY_APW] = apw, [OAUTH_LOAD_KEY_OAUTH] = oauth };
    const char *args[OAUTH_LOAD_ARGS] = { [OAUTH_LOAD_ARG_DEVICE] = device };
    return started(redis_script_call(r, LUA_OAUTH_LOAD, keys, args, NULL, 0, on_load, c), c);
}

static void on_lock(const redisReply *r, const char *error, void *arg)
{
    (void)error;
    struct store_call *c = arg;
    bool ok = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_NIL);
    *c->flag = ok && r->type == REDIS_REPLY_STATUS;
    call_finish(c, ok);
}

struct redis_request *oauth_store_lock(struct redis_store *r, const char *user, const char *token,
                                       unsigned ttl_ms, bool *taken, oauth_store_cb *cb, void *arg)
{
    struct store_call *c = call_new(cb, arg);
    if (!c)
        return NULL;
    c->flag = taken;
    *taken = false;
    char key[REDIS_KEY_MAX], px[16];
    redis_key(key, REDIS_KEY_OAUTH_LOCK, user, NULL);
    snprintf(px, sizeof px, "%u", ttl_ms);
    const char *argv[] = { "SET", key, token, "NX", "PX", px };
    return started(redis_store_command(r, on_lock, c, 6, argv, NULL), c);
}

static void on_save(const redisReply *r, const char *error, void *arg)
{
    (void)error;
    struct store_call *c = arg;
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    *c->flag = ok && r->integer == 1;
    call_finish(c, ok);
}

struct redis_request *oauth_store_save(struct redis_store *r, const char *user, const char *gen, const char *rt,
                                       const char *at, int64_t at_exp, const char *lock_token, bool need_rt,
                                       bool *saved, oauth_store_cb *cb, void *arg)
{
    struct store_call *c = call_new(cb, arg);
    if (!c)
        return NULL;
    c->flag = saved;
    *saved = false;
    char oauth[REDIS_KEY_MAX], lock[REDIS_KEY_MAX], exp[24], now[24];
    redis_key(oauth, REDIS_KEY_OAUTH, user, NULL);
    redis_key(lock, REDIS_KEY_OAUTH_LOCK, user, NULL);
    snprintf(exp, sizeof exp, "%" PRId64, at_exp);
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    const char *keys[OAUTH_SAVE_KEYS] = { [OAUTH_SAVE_KEY_OAUTH] = oauth, [OAUTH_SAVE_KEY_LOCK] = lock };
    const char *args[OAUTH_SAVE_ARGS] = {
        [OAUTH_SAVE_ARG_GEN] = gen, [OAUTH_SAVE_ARG_RT] = rt, [OAUTH_SAVE_ARG_AT] = at,
        [OAUTH_SAVE_ARG_AT_EXP] = exp, [OAUTH_SAVE_ARG_NOW] = now, [OAUTH_SAVE_ARG_LOCK_TOKEN] = lock_token,
        [OAUTH_SAVE_ARG_NEED_RT] = need_rt ? "1" : "0",
    };
    return started(redis_script_call(r, LUA_OAUTH_SAVE, keys, args, NULL, 0, on_save, c), c);
}

void oauth_store_mark_reauth(struct redis_store *r, const char *user, const char *gen, const char *reason,
                             const char *lock_token)
{
    char oauth[REDIS_KEY_MAX], lock[REDIS_KEY_MAX], now[24];
    redis_key(oauth, REDIS_KEY_OAUTH, user, NULL);
    redis_key(lock, REDIS_KEY_OAUTH_LOCK, user, NULL);
    snprintf(now, sizeof now, "%lld", (long long)time(NULL));
    const char *keys[OAUTH_REAUTH_KEYS] = { [OAUTH_REAUTH_KEY_OAUTH] = oauth, [OAUTH_REAUTH_KEY_LOCK] = lock };
    const char *args[OAUTH_REAUTH_ARGS] = {
        [OAUTH_REAUTH_ARG_GEN] = gen, [OAUTH_REAUTH_ARG_REASON] = reason, [OAUTH_REAUTH_ARG_NOW] = now,
        [OAUTH_REAUTH_ARG_LOCK_TOKEN] = lock_token,
    };
    redis_script_send(r, LUA_OAUTH_REAUTH, keys, args, NULL, 0);
}

void oauth_store_unlock(struct redis_store *r, const char *user, const char *lock_token)
{
    /* A save with nothing to save releases the lock as the scripts do:
     * only the holder's token deletes it. */
    char oauth[REDIS_KEY_MAX], lock[REDIS_KEY_MAX];
    redis_key(oauth, REDIS_KEY_OAUTH, user, NULL);
    redis_key(lock, REDIS_KEY_OAUTH_LOCK, user, NULL);
    const char *keys[OAUTH_REAUTH_KEYS] = { [OAUTH_REAUTH_KEY_OAUTH] = oauth, [OAUTH_REAUTH_KEY_LOCK] = lock };
    /* gen "-" never equals a stored generation: only the lock is touched. */
    const char *args[OAUTH_REAUTH_ARGS] = {
        [OAUTH_REAUTH_ARG_GEN] = "-", [OAUTH_REAUTH_ARG_REASON] = "", [OAUTH_REAUTH_ARG_NOW] = "0",
        [OAUTH_REAUTH_ARG_LOCK_TOKEN] = lock_token,
    };
    redis_script_send(r, LUA_OAUTH_REAUTH, keys, args, NULL, 0);
}

void oauth_store_drop_access(struct redis_store *r, const char *user)
{
    char oauth[REDIS_KEY_MAX];
    redis_key(oauth, REDIS_KEY_OAUTH, user, NULL);
    const char *argv[] = { "HDEL", oauth, "at", "at_exp" };
    redis_store_send(r, 4, argv, NULL);
}
