/* device_state.c: see device_state.h. The Lua scripts it calls, the only
 * code that writes device state, are in lua_scripts.c. */
#include "device_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_script.h"

void device_keys_init(struct device_keys *k, const char *state_user, const char *device)
{
    redis_key(k->read, REDIS_KEY_READ, state_user, NULL);
    redis_key(k->got, REDIS_KEY_GOT, state_user, device);
    redis_key(k->hide, REDIS_KEY_HIDE, state_user, device);
    redis_key(k->dev, REDIS_KEY_DEV, state_user, device);
    redis_key(k->lock, REDIS_KEY_LOCK, state_user, device);
    redis_key(k->sessions, REDIS_KEY_SESSIONS, state_user, NULL);
    redis_key(k->delay, REDIS_KEY_DELAY, state_user, device);
    redis_key(k->rtime, REDIS_KEY_RTIME, state_user, device);
    redis_key(k->size, REDIS_KEY_SIZE, state_user, NULL);
}

void device_id_format(uint64_t id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = DEVICE_ID_HEX - 1; i >= 0; i--) {
        out[i] = hex[id & 0xf];
        id >>= 4;
    }
}

void device_id_pack(uint64_t id, char *out)
{
    for (int i = DEVICE_ID_BYTES - 1; i >= 0; i--) {
        out[i] = (char)(unsigned char)(id & 0xff);
        id >>= 8;
    }
}

/* One callback shape for the calls whose answer is a device_result. */
struct result_call {
    device_done_cb *done;
    void *arg;
    enum device_result (*interpret)(const redisReply *r);
};

static enum device_result interpret_acquire(const redisReply *r)
{
    static const struct { const char *text; enum device_result result; } answers[] = {
        { "OK", DEVICE_OK }, { "IN-USE", DEVICE_IN_USE }, { "LOGIN-DELAY", DEVICE_LOGIN_DELAY },
        { "TOO-MANY", DEVICE_TOO_MANY_SESSIONS },
    };
    if (r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_STRING)
        return DEVICE_UNAVAILABLE;
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
        if (strcmp(r->str, answers[i].text) == 0)
            return answers[i].result;
    return DEVICE_UNAVAILABLE;
}

static enum device_result interpret_refresh(const redisReply *r)
{
    if (r->type != REDIS_REPLY_INTEGER)
        return DEVICE_UNAVAILABLE;
    return r->integer == 1 ? DEVICE_OK : DEVICE_LOCK_LOST;
}

static enum device_result interpret_commit(const redisReply *r)
{
    /* A Lua string comes back as a bulk string, redis.status_reply as a status. */
    bool is_text = r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING;
    return is_text && strcmp(r->str, "OK") == 0 ? DEVICE_OK : DEVICE_UNAVAILABLE;
}

/* A reply as a device_result; a failure is logged, unless it is the
 * commit's LOCKLOST (an expected outcome). */
static enum device_result result_of(const redisReply *r, const char *error,
                                    enum device_result (*interpret)(const redisReply *))
{
    if (r)
        return interpret(r);
    if (error && strncmp(error, "LOCKLOST", 8) == 0)
        return DEVICE_LOCK_LOST;
    if (error)
        log_event(LOG_LEVEL_WARN, NULL, "redis-error", "error", error, LOG_END);
    return DEVICE_UNAVAILABLE;
}

static void on_result_reply(const redisReply *r, const char *error, void *arg)
{
    struct result_call call = *(struct result_call *)arg;
    free(arg);
    call.done(result_of(r, error, call.interpret), call.arg);
}

static struct redis_request *result_script(struct redis_store *store, device_done_cb *done, void *arg,
                                           enum device_result (*interpret)(const redisReply *),
                                           enum lua_script_id script, const char *const *keys,
                                           const char *const *args, const size_t *arg_lens)
{
    struct result_call *call = malloc(sizeof *call);
    if (!call)
        return NULL;
    *call = (struct result_call){ done, arg, interpret };
    struct redis_request *req = redis_script_call(store, script, keys, args, arg_lens, 0, on_result_reply, call);
    if (!req)
        free(call);
    else
        redis_request_on_cancel(req, free);
    return req;
}

struct acquire_call {
    device_lock_cb *done;
    void *arg;
};

static void on_acquire_reply(const redisReply *r, const char *error, void *arg)
{
    struct acquire_call call = *(struct acquire_call *)arg;
    free(arg);
    if (r && r->type == REDIS_REPLY_ARRAY) {
        struct device_legacy_check legacy = { 0 };
        bool ok = r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
                  strcmp(r->element[0]->str, "OK") == 0 && r->element[1]->type == REDIS_REPLY_INTEGER &&
                  r->element[1]->integer >= 0 &&
                  (r->element[2]->type == REDIS_REPLY_STRING || r->element[2]->type == REDIS_REPLY_NIL);
        if (ok) {
            legacy.entries = (uint64_t)r->element[1]->integer;
            legacy.imported = r->element[2]->type == REDIS_REPLY_STRING;
        }
        call.done(ok ? DEVICE_OK : DEVICE_UNAVAILABLE, &legacy, call.arg);
        return;
    }
    enum device_result res = result_of(r, error, interpret_acquire);
    /* "OK" alone is not what this script answers. */
    call.done(res == DEVICE_OK ? DEVICE_UNAVAILABLE : res, NULL, call.arg);
}

struct redis_request *device_lock_acquire(struct redis_store *store, const struct device_keys *k,
                                          const char *state_user, const char *token, uint32_t ttl_ms,
                                          const struct device_limits *lim, device_lock_cb *done, void *arg)
{
    char uidl_key[REDIS_KEY_MAX], legacy_key[REDIS_KEY_MAX];
    if (redis_key(uidl_key, REDIS_KEY_UIDL, state_user, NULL) == 0 ||
        redis_key(legacy_key, REDIS_KEY_LEGACY, state_user, NULL) == 0)
        return NULL;
    char ttl[16], now[24], max[16], delay[24];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    snprintf(now, sizeof now, "%" PRId64, lim->now_ms);
    snprintf(max, sizeof max, "%u", lim->max_sessions);
    snprintf(delay, sizeof delay, "%" PRIu64, (uint64_t)lim->login_delay * 1000);
    const char *keys[LOCK_ACQUIRE_KEYS] = {
        [LOCK_ACQUIRE_KEY_LOCK] = k->lock, [LOCK_ACQUIRE_KEY_SESSIONS] = k->sessions,
        [LOCK_ACQUIRE_KEY_DELAY] = k->delay, [LOCK_ACQUIRE_KEY_UIDL] = uidl_key,
        [LOCK_ACQUIRE_KEY_LEGACY] = legacy_key,
    };
    const char *args[LOCK_ACQUIRE_ARGS] = {
        [LOCK_ACQUIRE_ARG_TOKEN] = token, [LOCK_ACQUIRE_ARG_TTL] = ttl, [LOCK_ACQUIRE_ARG_NOW] = now,
        [LOCK_ACQUIRE_ARG_MAX_SESSIONS] = max, [LOCK_ACQUIRE_ARG_LOGIN_DELAY] = delay,
    };
    struct acquire_call *call = malloc(sizeof *call);
    if (!call)
        return NULL;
    *call = (struct acquire_call){ done, arg };
    struct redis_request *req = redis_script_call(store, LUA_LOCK_ACQUIRE, keys, args, NULL, 0, on_acquire_reply, call);
    if (!req)
        free(call);
    else
        redis_request_on_cancel(req, free);
    return req;
}

struct redis_request *device_lock_refresh(struct redis_store *store, const struct device_keys *k,
                                          const char *token, uint32_t ttl_ms, int64_t now_ms,
                                          device_done_cb *done, void *arg)
{
    char ttl[16], now[24];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    snprintf(now, sizeof now, "%" PRId64, now_ms);
    const char *keys[LOCK_REFRESH_KEYS] = {
        [LOCK_REFRESH_KEY_LOCK] = k->lock, [LOCK_REFRESH_KEY_SESSIONS] = k->sessions,
    };
    const char *args[LOCK_REFRESH_ARGS] = {
        [LOCK_REFRESH_ARG_TOKEN] = token, [LOCK_REFRESH_ARG_TTL] = ttl, [LOCK_REFRESH_ARG_NOW] = now,
    };
    return result_script(store, done, arg, interpret_refresh, LUA_LOCK_REFRESH, keys, args, NULL);
}

void device_lock_release(struct redis_store *store, const struct device_keys *k, const char *token)
{
    const char *keys[LOCK_RELEASE_KEYS] = {
        [LOCK_RELEASE_KEY_LOCK] = k->lock, [LOCK_RELEASE_KEY_SESSIONS] = k->sessions,
    };
    const char *args[LOCK_RELEASE_ARGS] = { [LOCK_RELEASE_ARG_TOKEN] = token };
    /* If this is lost, the lock's PX expiry frees the device anyway. */
    redis_script_send(store, LUA_LOCK_RELEASE, keys, args, NULL, 0);
}

/* ---- load --------------------------------------------------------------- */

/* What a load needs to send itself again, with old_ids, when the script
 * answers MIGRATE (it met the previous release's keys). */
struct load_call {
    device_load_cb *done;
    void *arg;
    struct redis_request *req;
    const char *keys[STATE_LOAD_KEYS];
    const char *args[STATE_LOAD_ARGS];
    size_t lens[STATE_LOAD_ARGS];
    char now_s[24], ttl_s[24], expire_s[24];
    const char *old_ids;
    size_t old_len;
};

static bool reply_u64(const redisReply *r, uint64_t *out)
{
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
        *out = (uint64_t)r->integer;
        return true;
    }
    if (r->type == REDIS_REPLY_STRING) {
        char *end;
        unsigned long long v = strtoull(r->str, &end, 10);
        if (end != r->str && *end == '\0') {
            *out = v;
            return true;
        }
    }
    return false;
}

/* EVALSHA again on the same handle, now with the old ids. */
static bool load_again_with_old_ids(struct load_call *call, redis_reply_cb *cb)
{
    const char *sha1 = redis_script_sha1(LUA_STATE_LOAD);
    if (!sha1 || !call->old_ids || call->args[STATE_LOAD_ARG_OLD_IDS] == call->old_ids)
        return false;
    call->args[STATE_LOAD_ARG_OLD_IDS] = call->old_ids;
    call->lens[STATE_LOAD_ARG_OLD_IDS] = call->old_len;
    enum { FIXED = 3, ARGC = FIXED + STATE_LOAD_KEYS + STATE_LOAD_ARGS };
    char n_keys[16];
    snprintf(n_keys, sizeof n_keys, "%d", STATE_LOAD_KEYS);
    const char *argv[ARGC] = { "EVALSHA", sha1, n_keys };
    size_t lens[ARGC] = { 7, strlen(sha1), strlen(n_keys) };
    for (int i = 0; i < STATE_LOAD_KEYS; i++) {
        argv[FIXED + i] = call->keys[i];
        lens[FIXED + i] = strlen(call->keys[i]);
    }
    for (int i = 0; i < STATE_LOAD_ARGS; i++) {
        argv[FIXED + STATE_LOAD_KEYS + i] = call->args[i];
        lens[FIXED + STATE_LOAD_KEYS + i] = call->lens[i];
    }
    return redis_request_then(call->req, cb, call, ARGC, argv, lens);
}

static void on_load_reply(const redisReply *r, const char *error, void *arg)
{
    bool migrate = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
                   strcmp(r->str, "MIGRATE") == 0;
    if (migrate && load_again_with_old_ids(arg, on_load_reply))
        return;
    struct load_call call = *(struct load_call *)arg;
    if (!r && error)
        log_event(LOG_LEVEL_WARN, NULL, "redis-error", "error", error, LOG_END);
    free(arg);
    struct device_load_result res = { .result = DEVICE_UNAVAILABLE };
    uint64_t first_seen, uidvalidity;
    uint64_t mark_all = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 10 && reply_u64(r->element[7], &mark_all) &&
        r->element[8]->type == REDIS_REPLY_ARRAY && r->element[8]->elements % 2 == 0 &&
        reply_u64(r->element[9], &res.stored_sizes) &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[3]->type == REDIS_REPLY_STRING &&
        reply_u64(r->element[1], &first_seen) && reply_u64(r->element[2], &uidvalidity) &&
        uidvalidity <= UINT32_MAX && reply_u64(r->element[4], &res.stored_read) &&
        reply_u64(r->element[5], &res.stored_got) && reply_u64(r->element[6], &res.stored_hide)) {
        res.result = DEVICE_OK;
        res.bits = r->element[0]->str;
        res.nbits = r->element[0]->len;
        res.first_seen = (int64_t)first_seen;
        res.uidvalidity = (uint32_t)uidvalidity;
        res.mark_all = mark_all != 0;
        snprintf(res.ids_scheme, sizeof res.ids_scheme, "%s", r->element[3]->str);
        res.sizes = r->element[8]->element;
        res.n_sizes = r->element[8]->elements / 2;
    }
    call.done(&res, call.arg);
}

struct redis_request *device_state_load(struct redis_store *store, const struct device_keys *k,
                                        const char *ids, size_t ids_len, const char *old_ids, size_t old_len,
                                        int64_t now, uint64_t ttl_ms, int64_t expire_before,
                                        device_load_cb *done, void *arg)
{
    struct load_call *call = malloc(sizeof *call);
    if (!call)
        return NULL;
    *call = (struct load_call){ .done = done, .arg = arg, .old_ids = old_ids, .old_len = old_len };
    snprintf(call->now_s, sizeof call->now_s, "%" PRId64, now);
    snprintf(call->ttl_s, sizeof call->ttl_s, "%" PRIu64, ttl_ms);
    snprintf(call->expire_s, sizeof call->expire_s, "%" PRId64, expire_before);
    const char *keys[STATE_LOAD_KEYS] = {
        [STATE_LOAD_KEY_READ] = k->read, [STATE_LOAD_KEY_GOT] = k->got, [STATE_LOAD_KEY_HIDE] = k->hide,
        [STATE_LOAD_KEY_DEV] = k->dev, [STATE_LOAD_KEY_RTIME] = k->rtime, [STATE_LOAD_KEY_SIZE] = k->size,
    };
    /* The old ids go only when the script asks for them: once per device. */
    const char *args[STATE_LOAD_ARGS] = {
        [STATE_LOAD_ARG_IDS] = ids, [STATE_LOAD_ARG_NOW] = call->now_s, [STATE_LOAD_ARG_TTL] = call->ttl_s,
        [STATE_LOAD_ARG_EXPIRE_BEFORE] = call->expire_s, [STATE_LOAD_ARG_OLD_IDS] = "",
    };
    memcpy(call->keys, keys, sizeof keys);
    memcpy(call->args, args, sizeof args);
    for (int i = 0; i < STATE_LOAD_ARGS; i++)  /* the id lists need not end in NUL */
        call->lens[i] = i == STATE_LOAD_ARG_IDS ? ids_len : strlen(args[i]);
    call->req = redis_script_call(store, LUA_STATE_LOAD, call->keys, call->args, call->lens, 0, on_load_reply,
                                  call);
    if (!call->req)
        free(call);
    else
        redis_request_on_cancel(call->req, free);
    return call->req;
}

/* ---- commit ------------------------------------------------------------- */

/* The commit script, then (when replicas must acknowledge) WAIT on the same
 * connection: a QUIT answers +OK only when its state would survive a
 * failover to one of those replicas. WAIT goes once the script answered, on
 * the same handle (redis_request_then): a script sent again after NOSCRIPT is
 * still the write it waits for. */
struct commit_call {
    device_done_cb *done;
    void *arg;
    unsigned replicas;
    double wait_timeout;
    struct redis_request *req;
};

static void commit_finish(struct commit_call *call, enum device_result result)
{
    device_done_cb *done = call->done;
    void *done_arg = call->arg;
    free(call);
    done(result, done_arg);
}

static void on_commit_wait(const redisReply *r, const char *error, void *arg)
{
    struct commit_call *call = arg;
    enum device_result result = DEVICE_OK;
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < (long long)call->replicas) {
        log_event(LOG_LEVEL_WARN, NULL, "redis-wait", "error", error ? error : "too few replicas acknowledged",
                  LOG_END);
        result = DEVICE_UNAVAILABLE;
    }
    commit_finish(call, result);
}

static void on_commit_reply(const redisReply *r, const char *error, void *arg)
{
    struct commit_call *call = arg;
    enum device_result result = result_of(r, error, interpret_commit);
    if (result == DEVICE_OK && call->replicas > 0) {
        char n[16], ms[24];
        snprintf(n, sizeof n, "%u", call->replicas);
        snprintf(ms, sizeof ms, "%.0f", call->wait_timeout * 1000);
        const char *wargv[] = { "WAIT", n, ms };
        if (redis_request_then(call->req, on_commit_wait, call, 3, wargv, NULL))
            return;
        log_event(LOG_LEVEL_WARN, NULL, "redis-wait", "error", "redis unavailable", LOG_END);
        result = DEVICE_UNAVAILABLE;
    }
    commit_finish(call, result);
}

struct redis_request *device_state_commit(struct redis_store *store, const struct device_keys *k,
                                          const struct device_commit *c, device_done_cb *done, void *arg)
{
    char now_s[24], ttl_s[24], uv_s[16], retrieved_s[16];
    snprintf(now_s, sizeof now_s, "%" PRId64, c->now);
    snprintf(ttl_s, sizeof ttl_s, "%" PRIu64, c->ttl_ms);
    snprintf(uv_s, sizeof uv_s, "%" PRIu32, c->uidvalidity);
    snprintf(retrieved_s, sizeof retrieved_s, "%" PRIu32, c->retrieved);
    const char *keys[STATE_COMMIT_KEYS] = {
        [STATE_COMMIT_KEY_READ] = k->read, [STATE_COMMIT_KEY_GOT] = k->got, [STATE_COMMIT_KEY_HIDE] = k->hide,
        [STATE_COMMIT_KEY_DEV] = k->dev, [STATE_COMMIT_KEY_LOCK] = k->lock, [STATE_COMMIT_KEY_RTIME] = k->rtime,
        [STATE_COMMIT_KEY_SIZE] = k->size, [STATE_COMMIT_KEY_SESSIONS] = k->sessions,
    };
    const char *args[STATE_COMMIT_ARGS] = {
        [STATE_COMMIT_ARG_TOKEN] = c->token, [STATE_COMMIT_ARG_NOW] = now_s, [STATE_COMMIT_ARG_ADDR] = c->addr,
        [STATE_COMMIT_ARG_TTL] = ttl_s, [STATE_COMMIT_ARG_VIEW] = c->view,
        [STATE_COMMIT_ARG_UIDVALIDITY] = uv_s, [STATE_COMMIT_ARG_IDSCHEME] = c->ids_scheme,
        [STATE_COMMIT_ARG_GOT_IDS] = c->got_ids ? c->got_ids : "",
        [STATE_COMMIT_ARG_HIDDEN_IDS] = c->hidden_ids ? c->hidden_ids : "",
        [STATE_COMMIT_ARG_ALL_IDS] = c->all_ids ? c->all_ids : "",
        [STATE_COMMIT_ARG_RETRIEVED] = retrieved_s,
        [STATE_COMMIT_ARG_CLEAR_MARK_ALL] = c->clear_mark_all ? "1" : "0",
        [STATE_COMMIT_ARG_RECORD_RTIME] = c->record_retrieval_time ? "1" : "0",
    };
    size_t lens[STATE_COMMIT_ARGS];
    /* The id lists need not end in NUL. */
    for (int i = 0; i < STATE_COMMIT_ARGS; i++) {
        bool id_list = i == STATE_COMMIT_ARG_GOT_IDS || i == STATE_COMMIT_ARG_HIDDEN_IDS ||
                       i == STATE_COMMIT_ARG_ALL_IDS;
        lens[i] = id_list ? 0 : strlen(args[i]);
    }
    lens[STATE_COMMIT_ARG_GOT_IDS] = c->got_ids ? c->got_len : 0;
    lens[STATE_COMMIT_ARG_HIDDEN_IDS] = c->hidden_ids ? c->hidden_len : 0;
    lens[STATE_COMMIT_ARG_ALL_IDS] = c->all_ids ? c->all_len : 0;

    struct commit_call *call = malloc(sizeof *call);
    if (!call)
        return NULL;
    const struct redis_store_config *cfg = redis_store_config(store);
    *call = (struct commit_call){ .done = done, .arg = arg, .replicas = cfg->replicas_ack,
                                  .wait_timeout = cfg->wait_timeout };
    call->req = redis_script_call(store, LUA_STATE_COMMIT, keys, args, lens, 0, on_commit_reply, call);
    if (!call->req) {
        free(call);
        return NULL;
    }
    redis_request_on_cancel(call->req, free);
    return call->req;
}

/* ---- per-user policy override ------------------------------------------- */

struct override_call {
    device_override_cb *done;
    void *arg;
};

static void on_override_reply(const redisReply *r, const char *error, void *arg)
{
    struct override_call call = *(struct override_call *)arg;
    free(arg);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        if (error)
            log_event(LOG_LEVEL_WARN, NULL, "redis-error", "error", error, LOG_END);
        call.done(DEVICE_UNAVAILABLE, NULL, 0, call.arg);
        return;
    }
    call.done(DEVICE_OK, (const redisReply *const *)r->element, r->elements / 2, call.arg);
}

struct redis_request *device_override_load(struct redis_store *store, const char *state_user,
                                           device_override_cb *done, void *arg)
{
    struct override_call *call = malloc(sizeof *call);
    if (!call)
        return NULL;
    *call = (struct override_call){ done, arg };
    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_MAP, state_user, NULL);
    const char *argv[] = { "HGETALL", key };
    struct redis_request *req = redis_store_command(store, on_override_reply, call, 2, argv, NULL);
    if (!req)
        free(call);
    else
        redis_request_on_cancel(req, free);
    return req;
}

/* ---- exact sizes -------------------------------------------------------- */

void device_size_store(struct redis_store *store, const struct device_keys *k, uint64_t id, uint32_t size,
                       uint64_t ttl_ms)
{
    char field[DEVICE_ID_HEX + 1], size_s[16], ttl_s[24];
    device_id_format(id, field);
    field[DEVICE_ID_HEX] = '\0';
    snprintf(size_s, sizeof size_s, "%" PRIu32, size);
    snprintf(ttl_s, sizeof ttl_s, "%" PRIu64, ttl_ms);
    /* A size is a fact about the message, not a change of state: written as
     * soon as it is known, whether or not the session reaches QUIT. If this
     * is lost, the next RETR measures again. */
    const char *hset[] = { "HSET", k->size, field, size_s };
    const char *expire[] = { "PEXPIRE", k->size, ttl_s };
    redis_store_send(store, 4, hset, NULL);
    redis_store_send(store, 3, expire, NULL);
}
