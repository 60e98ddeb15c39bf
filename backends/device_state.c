/* device_state.c: see device_state.h. The Lua scripts below are the only code
 * that writes device state; each runs atomically inside Redis. */
#include "device_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define KEY_PREFIX "pg1"

/* Lua's unpack() has a stack limit of a few thousand values: SADD/SREM go in
 * batches of 1000. Ids are fixed-width (16 hex digits), concatenated. */
static const char load_script[] =
    "local ids = ARGV[1]\n"
    "local expire_before = tonumber(ARGV[4])\n"
    "local out, n = {}, 0\n"
    "local sizes = {}\n"
    "local has_sizes = redis.call('EXISTS', KEYS[6]) == 1\n"
    "for i = 1, #ids, 16 do\n"
    "  local id = string.sub(ids, i, i + 15)\n"
    "  local b = 48\n"
    "  if redis.call('SISMEMBER', KEYS[1], id) == 1 then b = b + 1 end\n"
    "  if redis.call('SISMEMBER', KEYS[2], id) == 1 then b = b + 2 end\n"
    "  if redis.call('SISMEMBER', KEYS[3], id) == 1 then b = b + 4\n"
    "  elseif expire_before > 0 then\n"
    "    local at = redis.call('ZSCORE', KEYS[5], id)\n"
    "    if at and tonumber(at) <= expire_before then b = b + 4 end\n"
    "  end\n"
    "  n = n + 1\n"
    "  out[n] = string.char(b)\n"
    "  if has_sizes then\n"
    "    local size = redis.call('HGET', KEYS[6], id)\n"
    "    if size then sizes[#sizes + 1] = n; sizes[#sizes + 1] = tonumber(size) end\n"
    "  end\n"
    "end\n"
    "if redis.call('HSETNX', KEYS[4], 'first_seen', ARGV[2]) == 1 then\n"
    "  redis.call('PEXPIRE', KEYS[4], ARGV[3])\n"
    "end\n"
    "local dev = redis.call('HMGET', KEYS[4], 'first_seen', 'uidvalidity', 'idscheme', 'mark_all')\n"
    "return {table.concat(out), dev[1] or '0', dev[2] or '0', dev[3] or '',\n"
    "        redis.call('SCARD', KEYS[1]), redis.call('SCARD', KEYS[2]), redis.call('SCARD', KEYS[3]),\n"
    "        dev[4] or '0', sizes, redis.call('HLEN', KEYS[6])}\n";

static const char commit_script[] =
    "if redis.call('GET', KEYS[5]) ~= ARGV[1] then return redis.error_reply('LOCKLOST') end\n"
    "local function each_batch(ids, fn)\n"
    "  local batch = {}\n"
    "  for i = 1, #ids, 16 do\n"
    "    batch[#batch + 1] = string.sub(ids, i, i + 15)\n"
    "    if #batch == 1000 then fn(batch); batch = {} end\n"
    "  end\n"
    "  if #batch > 0 then fn(batch) end\n"
    "end\n"
    "each_batch(ARGV[8], function(b) redis.call('SADD', KEYS[2], unpack(b)); redis.call('SADD', KEYS[1], unpack(b)) end)\n"
    "each_batch(ARGV[9], function(b) redis.call('SADD', KEYS[3], unpack(b)) end)\n"
    "if ARGV[13] == '1' then\n"
    "  each_batch(ARGV[8], function(b)\n"
    "    local args = {}\n"
    "    for _, id in ipairs(b) do args[#args + 1] = ARGV[2]; args[#args + 1] = id end\n"
    "    redis.call('ZADD', KEYS[6], 'NX', unpack(args))\n"
    "  end)\n"
    "end\n"
    "if #ARGV[10] > 0 then\n"
    "  local current = {}\n"
    "  for i = 1, #ARGV[10], 16 do current[string.sub(ARGV[10], i, i + 15)] = true end\n"
    "  for k = 1, 3 do\n"
    "    local stale = {}\n"
    "    for _, id in ipairs(redis.call('SMEMBERS', KEYS[k])) do\n"
    "      if not current[id] then stale[#stale + 1] = id end\n"
    "      if #stale == 1000 then redis.call('SREM', KEYS[k], unpack(stale)); stale = {} end\n"
    "    end\n"
    "    if #stale > 0 then redis.call('SREM', KEYS[k], unpack(stale)) end\n"
    "  end\n"
    "  local stale = {}\n"
    "  for _, id in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do\n"
    "    if not current[id] then stale[#stale + 1] = id end\n"
    "    if #stale == 1000 then redis.call('ZREM', KEYS[6], unpack(stale)); stale = {} end\n"
    "  end\n"
    "  if #stale > 0 then redis.call('ZREM', KEYS[6], unpack(stale)) end\n"
    "  stale = {}\n"
    "  for _, id in ipairs(redis.call('HKEYS', KEYS[7])) do\n"
    "    if not current[id] then stale[#stale + 1] = id end\n"
    "    if #stale == 1000 then redis.call('HDEL', KEYS[7], unpack(stale)); stale = {} end\n"
    "  end\n"
    "  if #stale > 0 then redis.call('HDEL', KEYS[7], unpack(stale)) end\n"
    "end\n"
    "redis.call('HSETNX', KEYS[4], 'first_seen', ARGV[2])\n"
    "redis.call('HSET', KEYS[4], 'last_seen', ARGV[2], 'last_addr', ARGV[3], 'view', ARGV[5],\n"
    "           'uidvalidity', ARGV[6], 'idscheme', ARGV[7])\n"
    "redis.call('HINCRBY', KEYS[4], 'retrieved', ARGV[11])\n"
    "if ARGV[12] == '1' then redis.call('HDEL', KEYS[4], 'mark_all') end\n"
    "for k = 1, 4 do redis.call('PEXPIRE', KEYS[k], ARGV[4]) end\n"
    "redis.call('PEXPIRE', KEYS[6], ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[7], ARGV[4])\n"
    "return 'OK'\n";

/* The lock, and the limits checked with it: the user's session count (a
 * sorted set of lock tokens scored by when each expires, so a node that died
 * leaves nothing behind) and the device's LOGIN-DELAY marker. */
static const char acquire_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 'IN-USE' end\n"
    "local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[2])\n"
    "if tonumber(ARGV[5]) > 0 and redis.call('EXISTS', KEYS[3]) == 1 then return 'LOGIN-DELAY' end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
    "if tonumber(ARGV[4]) > 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then\n"
    "  return 'TOO-MANY'\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)\n"
    "redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])\n"
    "redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[3], '1', 'PX', ARGV[5]) end\n"
    "return 'OK'\n";

static const char refresh_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('ZADD', KEYS[2], 'XX', tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[1])\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 0\n";

static const char release_script[] =
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

void device_keys_init(struct device_keys *k, const char *state_user, const char *device)
{
    snprintf(k->read, sizeof k->read, KEY_PREFIX ":{%s}:read", state_user);
    snprintf(k->got, sizeof k->got, KEY_PREFIX ":{%s}:got:%s", state_user, device);
    snprintf(k->hide, sizeof k->hide, KEY_PREFIX ":{%s}:hide:%s", state_user, device);
    snprintf(k->dev, sizeof k->dev, KEY_PREFIX ":{%s}:dev:%s", state_user, device);
    snprintf(k->lock, sizeof k->lock, KEY_PREFIX ":{%s}:lock:%s", state_user, device);
    snprintf(k->sessions, sizeof k->sessions, KEY_PREFIX ":{%s}:sessions", state_user);
    snprintf(k->delay, sizeof k->delay, KEY_PREFIX ":{%s}:delay:%s", state_user, device);
    snprintf(k->rtime, sizeof k->rtime, KEY_PREFIX ":{%s}:rtime:%s", state_user, device);
    snprintf(k->size, sizeof k->size, KEY_PREFIX ":{%s}:size", state_user);
}

void device_id_format(uint64_t id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = DEVICE_ID_HEX - 1; i >= 0; i--) {
        out[i] = hex[id & 0xf];
        id >>= 4;
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

static void on_result_reply(const redisReply *r, const char *error, void *arg)
{
    struct result_call call = *(struct result_call *)arg;
    free(arg);
    enum device_result result;
    if (!r && error && strncmp(error, "LOCKLOST", 8) != 0)
        log_event(LOG_LEVEL_WARN, NULL, "redis-error", "error", error, LOG_END);
    if (r)
        result = call.interpret(r);
    else
        result = error && strncmp(error, "LOCKLOST", 8) == 0 ? DEVICE_LOCK_LOST : DEVICE_UNAVAILABLE;
    call.done(result, call.arg);
}

static struct redis_request *result_command(struct redis_store *store, device_done_cb *done, void *arg,
                                            enum device_result (*interpret)(const redisReply *),
                                            int argc, const char **argv, const size_t *argvlen)
{
    struct result_call *call = malloc(sizeof *call);
    if (!call)
        return NULL;
    *call = (struct result_call){ done, arg, interpret };
    struct redis_request *req = redis_store_command(store, on_result_reply, call, argc, argv, argvlen);
    if (!req)
        free(call);
    else
        redis_request_on_cancel(req, free);
    return req;
}

struct redis_request *device_lock_acquire(struct redis_store *store, const struct device_keys *k,
                                          const char *token, uint32_t ttl_ms, const struct device_limits *lim,
                                          device_done_cb *done, void *arg)
{
    char ttl[16], now[24], max[16], delay[16];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    snprintf(now, sizeof now, "%" PRId64, lim->now_ms);
    snprintf(max, sizeof max, "%u", lim->max_sessions);
    snprintf(delay, sizeof delay, "%" PRIu64, (uint64_t)lim->login_delay * 1000);
    const char *argv[] = { "EVAL", acquire_script, "3", k->lock, k->sessions, k->delay,
                           token, ttl, now, max, delay };
    return result_command(store, done, arg, interpret_acquire, 11, argv, NULL);
}

struct redis_request *device_lock_refresh(struct redis_store *store, const struct device_keys *k,
                                          const char *token, uint32_t ttl_ms, int64_t now_ms,
                                          device_done_cb *done, void *arg)
{
    char ttl[16], now[24];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    snprintf(now, sizeof now, "%" PRId64, now_ms);
    const char *argv[] = { "EVAL", refresh_script, "2", k->lock, k->sessions, token, ttl, now };
    return result_command(store, done, arg, interpret_refresh, 8, argv, NULL);
}

void device_lock_release(struct redis_store *store, const struct device_keys *k, const char *token)
{
    const char *argv[] = { "EVAL", release_script, "2", k->lock, k->sessions, token };
    /* If this is lost, the lock's PX expiry frees the device anyway. */
    redis_store_send(store, 6, argv, NULL);
}

/* ---- load --------------------------------------------------------------- */

struct load_call {
    device_load_cb *done;
    void *arg;
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

static void on_load_reply(const redisReply *r, const char *error, void *arg)
{
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
                                        const char *ids, size_t ids_len, int64_t now, uint64_t ttl_ms,
                                        int64_t expire_before, device_load_cb *done, void *arg)
{
    struct load_call *call = malloc(sizeof *call);
    if (!call)
        return NULL;
    *call = (struct load_call){ done, arg };
    char now_s[24], ttl_s[24], expire_s[24];
    snprintf(now_s, sizeof now_s, "%" PRId64, now);
    snprintf(ttl_s, sizeof ttl_s, "%" PRIu64, ttl_ms);
    snprintf(expire_s, sizeof expire_s, "%" PRId64, expire_before);
    const char *argv[] = { "EVAL", load_script, "6", k->read, k->got, k->hide, k->dev, k->rtime, k->size,
                           ids, now_s, ttl_s, expire_s };
    enum { ARGC = sizeof argv / sizeof argv[0], IDS = 9 };
    size_t argvlen[ARGC];
    for (int i = 0; i < ARGC; i++)
        argvlen[i] = i == IDS ? ids_len : strlen(argv[i]);  /* ids need not end in NUL */
    struct redis_request *req = redis_store_command(store, on_load_reply, call, ARGC, argv, argvlen);
    if (!req)
        free(call);
    else
        redis_request_on_cancel(req, free);
    return req;
}

/* ---- commit ------------------------------------------------------------- */

/* The commit script, then (when replicas must acknowledge) WAIT on the same
 * connection: a QUIT answers +OK only when its state would survive a
 * failover to one of those replicas. */
struct commit_call {
    device_done_cb *done;
    void *arg;
    enum device_result eval_result;
    unsigned replicas;
    struct redis_request *eval_req;  /* until the EVAL answered */
};

static void on_commit_wait(const redisReply *r, const char *error, void *arg)
{
    struct commit_call *call = arg;
    enum device_result result = call->eval_result;
    if (result == DEVICE_OK && (!r || r->type != REDIS_REPLY_INTEGER || r->integer < (long long)call->replicas)) {
        log_event(LOG_LEVEL_WARN, NULL, "redis-wait", "error", error ? error : "too few replicas acknowledged",
                  LOG_END);
        result = DEVICE_UNAVAILABLE;
    }
    device_done_cb *done = call->done;
    void *done_arg = call->arg;
    free(call);
    done(result, done_arg);
}

static void on_commit_eval(enum device_result r, void *arg)
{
    struct commit_call *call = arg;
    call->eval_result = r;
    call->eval_req = NULL;
}

/* The session went away with the WAIT pending: its callback, which frees
 * call, will not run; nor may the EVAL's, which writes into it. */
static void on_commit_abandoned(void *arg)
{
    struct commit_call *call = arg;
    redis_request_cancel(call->eval_req);
    free(call);
}

struct redis_request *device_state_commit(struct redis_store *store, const struct device_keys *k,
                                          const struct device_commit *c, device_done_cb *done, void *arg)
{
    char now_s[24], ttl_s[24], uv_s[16], retrieved_s[16];
    snprintf(now_s, sizeof now_s, "%" PRId64, c->now);
    snprintf(ttl_s, sizeof ttl_s, "%" PRIu64, c->ttl_ms);
    snprintf(uv_s, sizeof uv_s, "%" PRIu32, c->uidvalidity);
    snprintf(retrieved_s, sizeof retrieved_s, "%" PRIu32, c->retrieved);
    const char *argv[] = {
        "EVAL", commit_script, "7", k->read, k->got, k->hide, k->dev, k->lock, k->rtime, k->size,
        c->token, now_s, c->addr, ttl_s, c->view, uv_s, c->ids_scheme,
        c->got_ids ? c->got_ids : "", c->hidden_ids ? c->hidden_ids : "",
        c->all_ids ? c->all_ids : "", retrieved_s, c->clear_mark_all ? "1" : "0",
        c->record_retrieval_time ? "1" : "0",
    };
    enum { ARGC = sizeof argv / sizeof argv[0] };
    enum { GOT = 17, HIDDEN, ALL };  /* argv positions of the id lists */
    size_t argvlen[ARGC];
    for (int i = 0; i < ARGC; i++)
        argvlen[i] = i >= GOT && i <= ALL ? 0 : strlen(argv[i]);  /* ids need not end in NUL */
    argvlen[GOT] = c->got_ids ? c->got_len : 0;
    argvlen[HIDDEN] = c->hidden_ids ? c->hidden_len : 0;
    argvlen[ALL] = c->all_ids ? c->all_len : 0;
    const struct redis_store_config *cfg = redis_store_config(store);
    if (cfg->replicas_ack == 0)
        return result_command(store, done, arg, interpret_commit, ARGC, argv, argvlen);

    struct commit_call *call = calloc(1, sizeof *call);
    if (!call)
        return NULL;
    *call = (struct commit_call){ .done = done, .arg = arg, .eval_result = DEVICE_UNAVAILABLE,
                                  .replicas = cfg->replicas_ack };
    struct redis_request *eval = result_command(store, on_commit_eval, call, interpret_commit, ARGC, argv,
                                                argvlen);
    char n[16], ms[24];
    snprintf(n, sizeof n, "%u", cfg->replicas_ack);
    snprintf(ms, sizeof ms, "%.0f", cfg->wait_timeout * 1000);
    const char *wargv[] = { "WAIT", n, ms };
    struct redis_request *wait = eval ? redis_store_command(store, on_commit_wait, call, 3, wargv, NULL) : NULL;
    if (!wait) {
        redis_request_cancel(eval);
        free(call);
        return NULL;
    }
    call->eval_req = eval;
    redis_request_on_cancel(wait, on_commit_abandoned);
    return wait;
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
    char key[DEVICE_KEY_MAX];
    snprintf(key, sizeof key, KEY_PREFIX ":map:%s", state_user);
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
