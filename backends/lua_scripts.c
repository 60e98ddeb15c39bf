/* lua_scripts.c: see lua_scripts.h. The scripts below are the only code that
 * writes device state, the lock and the migration marker; each runs
 * atomically inside Redis. Their callers and reply readers: device_state.c,
 * uidl_store.c, auth_throttle.c. */
#include "lua_scripts.h"

#include <stddef.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- state load ------------------------------------------------------------
 * Returns {bits, first_seen, uidvalidity, idscheme, #read, #got, #hide,
 * mark_all, {index, size, ...}, #size}; registers a new device (first_seen,
 * expiring after ttl) and changes nothing else. An id this device first
 * retrieved at or before expire_before (> 0: EXPIRE) reads as hidden. */
static const char *const state_load_keys[STATE_LOAD_KEYS] = {
    [STATE_LOAD_KEY_READ] = "read_key", [STATE_LOAD_KEY_GOT] = "got_key",
    [STATE_LOAD_KEY_HIDE] = "hide_key", [STATE_LOAD_KEY_DEV] = "dev_key",
    [STATE_LOAD_KEY_RTIME] = "rtime_key", [STATE_LOAD_KEY_SIZE] = "size_key",
};
static const char *const state_load_args[STATE_LOAD_ARGS] = {
    [STATE_LOAD_ARG_IDS] = "ids", [STATE_LOAD_ARG_NOW] = "now", [STATE_LOAD_ARG_TTL] = "ttl",
    [STATE_LOAD_ARG_EXPIRE_BEFORE] = "expire_before",
};
static const char state_load_body[] =
    "local expire_at = tonumber(expire_before)\n"
    "local out, n = {}, 0\n"
    "local sizes = {}\n"
    "local has_sizes = redis.call('EXISTS', size_key) == 1\n"
    "for i = 1, #ids, 16 do\n"
    "  local id = string.sub(ids, i, i + 15)\n"
    "  local b = 48\n"
    "  if redis.call('SISMEMBER', read_key, id) == 1 then b = b + 1 end\n"
    "  if redis.call('SISMEMBER', got_key, id) == 1 then b = b + 2 end\n"
    "  if redis.call('SISMEMBER', hide_key, id) == 1 then b = b + 4\n"
    "  elseif expire_at > 0 then\n"
    "    local at = redis.call('ZSCORE', rtime_key, id)\n"
    "    if at and tonumber(at) <= expire_at then b = b + 4 end\n"
    "  end\n"
    "  n = n + 1\n"
    "  out[n] = string.char(b)\n"
    "  if has_sizes then\n"
    "    local size = redis.call('HGET', size_key, id)\n"
    "    if size then sizes[#sizes + 1] = n; sizes[#sizes + 1] = tonumber(size) end\n"
    "  end\n"
    "end\n"
    "if redis.call('HSETNX', dev_key, 'first_seen', now) == 1 then\n"
    "  redis.call('PEXPIRE', dev_key, ttl)\n"
    "end\n"
    "local dev = redis.call('HMGET', dev_key, 'first_seen', 'uidvalidity', 'idscheme', 'mark_all')\n"
    "return {table.concat(out), dev[1] or '0', dev[2] or '0', dev[3] or '',\n"
    "        redis.call('SCARD', read_key), redis.call('SCARD', got_key), redis.call('SCARD', hide_key),\n"
    "        dev[4] or '0', sizes, redis.call('HLEN', size_key)}\n";

/* ---- state commit ----------------------------------------------------------
 * Fails with LOCKLOST unless token still holds the lock. Lua's unpack() has a
 * stack limit of a few thousand values: SADD/SREM go in batches of 1000. A
 * non-empty all_ids prunes every id not in it from the sets and hashes. */
static const char *const state_commit_keys[STATE_COMMIT_KEYS] = {
    [STATE_COMMIT_KEY_READ] = "read_key", [STATE_COMMIT_KEY_GOT] = "got_key",
    [STATE_COMMIT_KEY_HIDE] = "hide_key", [STATE_COMMIT_KEY_DEV] = "dev_key",
    [STATE_COMMIT_KEY_LOCK] = "lock_key", [STATE_COMMIT_KEY_RTIME] = "rtime_key",
    [STATE_COMMIT_KEY_SIZE] = "size_key",
};
static const char *const state_commit_args[STATE_COMMIT_ARGS] = {
    [STATE_COMMIT_ARG_TOKEN] = "token", [STATE_COMMIT_ARG_NOW] = "now", [STATE_COMMIT_ARG_ADDR] = "addr",
    [STATE_COMMIT_ARG_TTL] = "ttl", [STATE_COMMIT_ARG_VIEW] = "view",
    [STATE_COMMIT_ARG_UIDVALIDITY] = "uidvalidity", [STATE_COMMIT_ARG_IDSCHEME] = "idscheme",
    [STATE_COMMIT_ARG_GOT_IDS] = "got_ids", [STATE_COMMIT_ARG_HIDDEN_IDS] = "hidden_ids",
    [STATE_COMMIT_ARG_ALL_IDS] = "all_ids", [STATE_COMMIT_ARG_RETRIEVED] = "retrieved",
    [STATE_COMMIT_ARG_CLEAR_MARK_ALL] = "clear_mark_all", [STATE_COMMIT_ARG_RECORD_RTIME] = "record_rtime",
};
static const char state_commit_body[] =
    "if redis.call('GET', lock_key) ~= token then return redis.error_reply('LOCKLOST') end\n"
    "local function each_batch(list, fn)\n"
    "  local batch = {}\n"
    "  for i = 1, #list, 16 do\n"
    "    batch[#batch + 1] = string.sub(list, i, i + 15)\n"
    "    if #batch == 1000 then fn(batch); batch = {} end\n"
    "  end\n"
    "  if #batch > 0 then fn(batch) end\n"
    "end\n"
    "local function remove_stale(current, key, members, remove)\n"
    "  local stale = {}\n"
    "  for _, id in ipairs(members) do\n"
    "    if not current[id] then stale[#stale + 1] = id end\n"
    "    if #stale == 1000 then redis.call(remove, key, unpack(stale)); stale = {} end\n"
    "  end\n"
    "  if #stale > 0 then redis.call(remove, key, unpack(stale)) end\n"
    "end\n"
    "each_batch(got_ids, function(b) redis.call('SADD', got_key, unpack(b)); redis.call('SADD', read_key, unpack(b)) end)\n"
    "each_batch(hidden_ids, function(b) redis.call('SADD', hide_key, unpack(b)) end)\n"
    "if record_rtime == '1' then\n"
    "  each_batch(got_ids, function(b)\n"
    "    local scored = {}\n"
    "    for _, id in ipairs(b) do scored[#scored + 1] = now; scored[#scored + 1] = id end\n"
    "    redis.call('ZADD', rtime_key, 'NX', unpack(scored))\n"
    "  end)\n"
    "end\n"
    "if #all_ids > 0 then\n"
    "  local current = {}\n"
    "  for i = 1, #all_ids, 16 do current[string.sub(all_ids, i, i + 15)] = true end\n"
    "  for _, key in ipairs({read_key, got_key, hide_key}) do remove_stale(current, key, redis.call('SMEMBERS', key), 'SREM') end\n"
    "  remove_stale(current, rtime_key, redis.call('ZRANGE', rtime_key, 0, -1), 'ZREM')\n"
    "  remove_stale(current, size_key, redis.call('HKEYS', size_key), 'HDEL')\n"
    "end\n"
    "redis.call('HSETNX', dev_key, 'first_seen', now)\n"
    "redis.call('HSET', dev_key, 'last_seen', now, 'last_addr', addr, 'view', view,\n"
    "           'uidvalidity', uidvalidity, 'idscheme', idscheme)\n"
    "redis.call('HINCRBY', dev_key, 'retrieved', retrieved)\n"
    "if clear_mark_all == '1' then redis.call('HDEL', dev_key, 'mark_all') end\n"
    "for _, key in ipairs({read_key, got_key, hide_key, dev_key, rtime_key, size_key}) do\n"
    "  redis.call('PEXPIRE', key, ttl)\n"
    "end\n"
    "return 'OK'\n";

/* ---- the device lock -------------------------------------------------------
 * Checked with taking it: the user's session count (a sorted set of lock
 * tokens scored by when each expires, so a node that died leaves nothing
 * behind) and the device's LOGIN-DELAY marker. */
static const char *const lock_acquire_keys[LOCK_ACQUIRE_KEYS] = {
    [LOCK_ACQUIRE_KEY_LOCK] = "lock_key", [LOCK_ACQUIRE_KEY_SESSIONS] = "sessions_key",
    [LOCK_ACQUIRE_KEY_DELAY] = "delay_key",
};
static const char *const lock_acquire_args[LOCK_ACQUIRE_ARGS] = {
    [LOCK_ACQUIRE_ARG_TOKEN] = "token", [LOCK_ACQUIRE_ARG_TTL] = "ttl", [LOCK_ACQUIRE_ARG_NOW] = "now",
    [LOCK_ACQUIRE_ARG_MAX_SESSIONS] = "max_sessions", [LOCK_ACQUIRE_ARG_LOGIN_DELAY] = "login_delay",
};
static const char lock_acquire_body[] =
    "if redis.call('EXISTS', lock_key) == 1 then return 'IN-USE' end\n"
    "local now_ms, ttl_ms = tonumber(now), tonumber(ttl)\n"
    "if tonumber(login_delay) > 0 and redis.call('EXISTS', delay_key) == 1 then return 'LOGIN-DELAY' end\n"
    "redis.call('ZREMRANGEBYSCORE', sessions_key, '-inf', now_ms)\n"
    "if tonumber(max_sessions) > 0 and redis.call('ZCARD', sessions_key) >= tonumber(max_sessions) then\n"
    "  return 'TOO-MANY'\n"
    "end\n"
    "redis.call('SET', lock_key, token, 'PX', ttl_ms)\n"
    "redis.call('ZADD', sessions_key, now_ms + ttl_ms, token)\n"
    "redis.call('PEXPIRE', sessions_key, ttl_ms)\n"
    "if tonumber(login_delay) > 0 then redis.call('SET', delay_key, '1', 'PX', login_delay) end\n"
    "return 'OK'\n";

static const char *const lock_refresh_keys[LOCK_REFRESH_KEYS] = {
    [LOCK_REFRESH_KEY_LOCK] = "lock_key", [LOCK_REFRESH_KEY_SESSIONS] = "sessions_key",
};
static const char *const lock_refresh_args[LOCK_REFRESH_ARGS] = {
    [LOCK_REFRESH_ARG_TOKEN] = "token", [LOCK_REFRESH_ARG_TTL] = "ttl", [LOCK_REFRESH_ARG_NOW] = "now",
};
static const char lock_refresh_body[] =
    "if redis.call('GET', lock_key) == token then\n"
    "  redis.call('ZADD', sessions_key, 'XX', tonumber(now) + tonumber(ttl), token)\n"
    "  redis.call('PEXPIRE', sessions_key, ttl)\n"
    "  return redis.call('PEXPIRE', lock_key, ttl)\n"
    "end\n"
    "return 0\n";

static const char *const lock_release_keys[LOCK_RELEASE_KEYS] = {
    [LOCK_RELEASE_KEY_LOCK] = "lock_key", [LOCK_RELEASE_KEY_SESSIONS] = "sessions_key",
};
static const char *const lock_release_args[LOCK_RELEASE_ARGS] = {
    [LOCK_RELEASE_ARG_TOKEN] = "token",
};
static const char lock_release_body[] =
    "redis.call('ZREM', sessions_key, token)\n"
    "if redis.call('GET', lock_key) == token then return redis.call('DEL', lock_key) end\n"
    "return 0\n";

/* ---- legacy UIDLs ------------------------------------------------------------
 * HSETNX per field keeps what an administrator imported. A script that has
 * written once is not stopped by maxmemory any more (Redis checks at its
 * first write only), so it either writes nothing or runs to the end. */
static const char *const uidl_save_keys[UIDL_SAVE_KEYS] = {
    [UIDL_SAVE_KEY_UIDL] = "uidl_key", [UIDL_SAVE_KEY_MARKER] = "marker_key",
};
static const char *const uidl_save_args[UIDL_SAVE_ARGS] = {
    [UIDL_SAVE_ARG_SET_MARKER] = "set_marker", [UIDL_SAVE_ARG_MARKER] = "marker",
};
static const char uidl_save_body[] =
    "local written = 0\n"
    "for i = first_extra, #ARGV, 2 do\n"
    "  written = written + redis.call('HSETNX', uidl_key, ARGV[i], ARGV[i + 1])\n"
    "end\n"
    "if set_marker == '1' then redis.call('SET', marker_key, marker) end\n"
    "return written\n";

/* A missing marker is Lua false, which comes back as a nil element. */
static const char *const uidl_check_keys[UIDL_CHECK_KEYS] = {
    [UIDL_CHECK_KEY_UIDL] = "uidl_key", [UIDL_CHECK_KEY_MARKER] = "marker_key",
};
static const char uidl_check_body[] =
    "return {redis.call('HLEN', uidl_key), redis.call('GET', marker_key)}\n";

/* ---- failed-login counters ------------------------------------------------- */
static const char *const counter_incr_keys[COUNTER_INCR_KEYS] = {
    [COUNTER_INCR_KEY_COUNTER] = "counter_key",
};
static const char *const counter_incr_args[COUNTER_INCR_ARGS] = {
    [COUNTER_INCR_ARG_WINDOW] = "window",
};
static const char counter_incr_body[] =
    "local n = redis.call('INCR', counter_key)\n"
    "if n == 1 then redis.call('EXPIRE', counter_key, window) end\n"
    "return n\n";

/* ---- OAuth tokens (oauth_store.c) ------------------------------------------
 * The refresh token is replaced only by the holder of the generation it
 * read (rt_gen): two nodes refreshing at once (the lock expired, or the
 * provider was slow) cannot overwrite a newer rotation with an older one,
 * and an `oauth authorize` or `oauth revoke` meanwhile (which change or drop
 * rt_gen) wins over a refresh that started before it. The lock is released
 * only by its holder (compare-and-delete). */
static const char *const oauth_load_keys[OAUTH_LOAD_KEYS] = {
    [OAUTH_LOAD_KEY_APW] = "apw_key", [OAUTH_LOAD_KEY_OAUTH] = "oauth_key",
};
static const char *const oauth_load_args[OAUTH_LOAD_ARGS] = {
    [OAUTH_LOAD_ARG_DEVICE] = "device",
};
static const char oauth_load_body[] =
    "local t = redis.call('HMGET', oauth_key, 'rt', 'rt_gen', 'at', 'at_exp', 'status', 'reason')\n"
    "return {redis.call('HGET', apw_key, device), t[1], t[2] or '0', t[3], t[4] or '0', t[5] or '', t[6] or ''}\n";

static const char *const oauth_save_keys[OAUTH_SAVE_KEYS] = {
    [OAUTH_SAVE_KEY_OAUTH] = "oauth_key", [OAUTH_SAVE_KEY_LOCK] = "lock_key",
};
static const char *const oauth_save_args[OAUTH_SAVE_ARGS] = {
    [OAUTH_SAVE_ARG_GEN] = "gen", [OAUTH_SAVE_ARG_RT] = "rt", [OAUTH_SAVE_ARG_AT] = "at",
    [OAUTH_SAVE_ARG_AT_EXP] = "at_exp", [OAUTH_SAVE_ARG_NOW] = "now",
    [OAUTH_SAVE_ARG_LOCK_TOKEN] = "lock_token", [OAUTH_SAVE_ARG_NEED_RT] = "need_rt",
};
static const char oauth_save_body[] =
    "local saved = 0\n"
    "local cur = redis.call('HGET', oauth_key, 'rt_gen') or '0'\n"
    "if need_rt == '0' or (cur == gen and redis.call('HEXISTS', oauth_key, 'rt') == 1) then\n"
    "  if rt ~= '' then\n"
    "    redis.call('HSET', oauth_key, 'rt', rt, 'rt_gen', tostring(tonumber(cur) + 1))\n"
    "  end\n"
    "  redis.call('HSET', oauth_key, 'at', at, 'at_exp', at_exp, 'status', 'ok', 'reason', '',\n"
    "             'refreshed_at', now)\n"
    "  redis.call('HINCRBY', oauth_key, 'refreshes', 1)\n"
    "  saved = 1\n"
    "end\n"
    "if lock_token ~= '' and redis.call('GET', lock_key) == lock_token then redis.call('DEL', lock_key) end\n"
    "return saved\n";

static const char *const oauth_reauth_keys[OAUTH_REAUTH_KEYS] = {
    [OAUTH_REAUTH_KEY_OAUTH] = "oauth_key", [OAUTH_REAUTH_KEY_LOCK] = "lock_key",
};
static const char *const oauth_reauth_args[OAUTH_REAUTH_ARGS] = {
    [OAUTH_REAUTH_ARG_GEN] = "gen", [OAUTH_REAUTH_ARG_REASON] = "reason", [OAUTH_REAUTH_ARG_NOW] = "now",
    [OAUTH_REAUTH_ARG_LOCK_TOKEN] = "lock_token",
};
static const char oauth_reauth_body[] =
    "local marked = 0\n"
    "if (redis.call('HGET', oauth_key, 'rt_gen') or '0') == gen then\n"
    "  redis.call('HSET', oauth_key, 'status', 'reauth-needed', 'reason', reason, 'status_at', now)\n"
    "  redis.call('HDEL', oauth_key, 'at', 'at_exp')\n"
    "  marked = 1\n"
    "end\n"
    "if lock_token ~= '' and redis.call('GET', lock_key) == lock_token then redis.call('DEL', lock_key) end\n"
    "return marked\n";

/* ---- the table ---------------------------------------------------------------- */

#define SCRIPT(id_, name_, keys_, args_, extra_, body_) \
    [id_] = { name_, keys_, COUNT(keys_), args_, COUNT(args_), extra_, body_ }

static const struct lua_script scripts[LUA_SCRIPTS] = {
    SCRIPT(LUA_STATE_LOAD, "state-load", state_load_keys, state_load_args, false, state_load_body),
    SCRIPT(LUA_STATE_COMMIT, "state-commit", state_commit_keys, state_commit_args, false, state_commit_body),
    SCRIPT(LUA_LOCK_ACQUIRE, "lock-acquire", lock_acquire_keys, lock_acquire_args, false, lock_acquire_body),
    SCRIPT(LUA_LOCK_REFRESH, "lock-refresh", lock_refresh_keys, lock_refresh_args, false, lock_refresh_body),
    SCRIPT(LUA_LOCK_RELEASE, "lock-release", lock_release_keys, lock_release_args, false, lock_release_body),
    SCRIPT(LUA_UIDL_SAVE, "uidl-save", uidl_save_keys, uidl_save_args, true, uidl_save_body),
    [LUA_UIDL_CHECK] = { "uidl-check", uidl_check_keys, COUNT(uidl_check_keys), NULL, 0, false, uidl_check_body },
    SCRIPT(LUA_COUNTER_INCR, "counter-incr", counter_incr_keys, counter_incr_args, false, counter_incr_body),
    SCRIPT(LUA_OAUTH_LOAD, "oauth-load", oauth_load_keys, oauth_load_args, false, oauth_load_body),
    SCRIPT(LUA_OAUTH_SAVE, "oauth-save", oauth_save_keys, oauth_save_args, false, oauth_save_body),
    SCRIPT(LUA_OAUTH_REAUTH, "oauth-reauth", oauth_reauth_keys, oauth_reauth_args, false, oauth_reauth_body),
};

const struct lua_script *lua_script(enum lua_script_id id)
{
    return (unsigned)id < LUA_SCRIPTS ? &scripts[id] : NULL;
}
