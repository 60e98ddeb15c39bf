/* lua_scripts.c: see lua_scripts.h. The scripts below are the only code that
 * writes device state, the lock and the migration marker; each runs
 * atomically inside Redis. Their callers and reply readers: device_state.c,
 * uidl_store.c, auth_throttle.c. */
#include "lua_scripts.h"

#include <stddef.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- compact id lists (shared by state load and commit) ------------------
 * read, got:<device> and hide:<device> are strings of 8-byte big-endian ids
 * (device_state.h DEVICE_ID_BYTES), each id once, in the order they were
 * added. rtime:<device> says when the got ids were first retrieved, as runs
 * over got's order: "n@t,n@t,..." (the next n ids at t, epoch seconds
 * rounded up to the hour, 0 = not recorded), so EXPIRE costs a few bytes per
 * commit instead of a sorted-set entry per id; no key when no time is known.
 * An empty list is no key. The previous release's keys (sets of 16-hex ids,
 * a sorted set of times) are converted here, atomically, the first time a
 * load or commit touches them (migrate_*); ids the old sets held that were
 * not 16 hex digits were never ids popgate wrote, and are dropped. */
#define ID_LISTS_LUA \
    "local function hex_id(h)\n" \
    "  return (string.gsub(h, '%x%x', function(b) return string.char(tonumber(b, 16)) end))\n" \
    "end\n" \
    "local function valid_hex(h) return #h == 16 and not string.find(h, '[^0-9a-f]') end\n" \
    "local function key_type(key) return redis.call('TYPE', key)['ok'] end\n" \
    "local function get_list(key)\n" \
    "  local v = redis.call('GET', key)\n" \
    "  return v or ''\n" \
    "end\n" \
    "local function id_set(list)\n" \
    "  local set = {}\n" \
    "  for i = 1, #list, 8 do set[string.sub(list, i, i + 7)] = true end\n" \
    "  return set\n" \
    "end\n" \
    "local function id_count(list) return math.floor(#list / 8) end\n" \
    "local function put(key, value)\n" \
    "  if #value == 0 then redis.call('DEL', key) else redis.call('SET', key, value, 'KEEPTTL') end\n" \
    "end\n" \
    "local function stamp_of(t) return math.ceil(t / 3600) * 3600 end\n" \
    "local function add_run(runs, t, n)\n" \
    "  local last = runs[#runs]\n" \
    "  if last and last.t == t then last.n = last.n + n else runs[#runs + 1] = {n = n, t = t} end\n" \
    "end\n" \
    "local function runs_text(runs)\n" \
    "  local parts, timed = {}, false\n" \
    "  for i, r in ipairs(runs) do\n" \
    "    parts[i] = string.format('%d@%d', r.n, r.t)\n" \
    "    if r.t > 0 then timed = true end\n" \
    "  end\n" \
    "  return timed and table.concat(parts, ',') or ''\n" \
    "end\n" \
    "local function write_list(key, ids, ttl)\n" \
    "  redis.call('DEL', key)\n" \
    "  put(key, ids)\n" \
    "  if #ids > 0 and ttl > 0 then redis.call('PEXPIRE', key, ttl) end\n" \
    "end\n" \
    "local function migrate_set(key)\n" \
    "  if key_type(key) ~= 'set' then return end\n" \
    "  local ids = {}\n" \
    "  for _, h in ipairs(redis.call('SMEMBERS', key)) do\n" \
    "    if valid_hex(h) then ids[#ids + 1] = hex_id(h) end\n" \
    "  end\n" \
    "  write_list(key, table.concat(ids), redis.call('PTTL', key))\n" \
    "end\n" \
    "local function migrate_got(got_key, rtime_key)\n" \
    "  local got_is_set, rtime_is_zset = key_type(got_key) == 'set', key_type(rtime_key) == 'zset'\n" \
    "  if not got_is_set and not rtime_is_zset then return end\n" \
    "  local at = {}\n" \
    "  if rtime_is_zset then\n" \
    "    local z = redis.call('ZRANGE', rtime_key, 0, -1, 'WITHSCORES')\n" \
    "    for i = 1, #z, 2 do at[z[i]] = stamp_of(tonumber(z[i + 1])) end\n" \
    "    redis.call('DEL', rtime_key)\n" \
    "  end\n" \
    "  if not got_is_set then return end\n" \
    "  local hexes = {}\n" \
    "  for _, h in ipairs(redis.call('SMEMBERS', got_key)) do\n" \
    "    if valid_hex(h) then hexes[#hexes + 1] = h end\n" \
    "  end\n" \
    "  table.sort(hexes, function(a, b)\n" \
    "    local ta, tb = at[a] or 0, at[b] or 0\n" \
    "    if ta ~= tb then return ta < tb end\n" \
    "    return a < b\n" \
    "  end)\n" \
    "  local ids, runs = {}, {}\n" \
    "  for i, h in ipairs(hexes) do ids[i] = hex_id(h); add_run(runs, at[h] or 0, 1) end\n" \
    "  local ttl = redis.call('PTTL', got_key)\n" \
    "  write_list(got_key, table.concat(ids), ttl)\n" \
    "  write_list(rtime_key, runs_text(runs), ttl)\n" \
    "end\n" \
    "local function read_got(got_key, rtime_key)\n" \
    "  local list, at, runs, pos = get_list(got_key), {}, {}, 1\n" \
    "  for n, t in string.gmatch(get_list(rtime_key), '(%d+)@(%d+)') do\n" \
    "    n, t = tonumber(n), tonumber(t)\n" \
    "    local k = math.min(n, id_count(list) - (pos - 1) / 8)\n" \
    "    if k > 0 then add_run(runs, t, k) end\n" \
    "    for _ = 1, k do at[string.sub(list, pos, pos + 7)] = t; pos = pos + 8 end\n" \
    "  end\n" \
    "  local rest = 0\n" \
    "  while pos + 7 <= #list do at[string.sub(list, pos, pos + 7)] = 0; pos = pos + 8; rest = rest + 1 end\n" \
    "  if rest > 0 then add_run(runs, 0, rest) end\n" \
    "  return at, list, runs\n" \
    "end\n"

/* ---- state load ------------------------------------------------------------
 * Returns {bits, first_seen, uidvalidity, idscheme, #read, #got, #hide,
 * mark_all, {index, size, ...}, #size}; registers a new device (first_seen,
 * expiring after ttl), converts the previous release's keys, and changes
 * nothing else. An id this device first retrieved at or before
 * expire_before (> 0: EXPIRE) reads as hidden. Each list becomes a Lua table
 * once: O(stored + listed), a few ms for 50,000 messages. */
static const char *const state_load_keys[STATE_LOAD_KEYS] = {
    [STATE_LOAD_KEY_READ] = "read_key", [STATE_LOAD_KEY_GOT] = "got_key",
    [STATE_LOAD_KEY_HIDE] = "hide_key", [STATE_LOAD_KEY_DEV] = "dev_key",
    [STATE_LOAD_KEY_RTIME] = "rtime_key", [STATE_LOAD_KEY_SIZE] = "size_key",
};
static const char *const state_load_args[STATE_LOAD_ARGS] = {
    [STATE_LOAD_ARG_IDS] = "ids", [STATE_LOAD_ARG_NOW] = "now", [STATE_LOAD_ARG_TTL] = "ttl",
    [STATE_LOAD_ARG_EXPIRE_BEFORE] = "expire_before",
};
static const char state_load_body[] = ID_LISTS_LUA
    "migrate_set(read_key)\n"
    "migrate_set(hide_key)\n"
    "migrate_got(got_key, rtime_key)\n"
    "local expire_at = tonumber(expire_before)\n"
    "local read_list, hide_list = get_list(read_key), get_list(hide_key)\n"
    "local read_set, hide_set = id_set(read_list), id_set(hide_list)\n"
    "local got_at, got_list = read_got(got_key, rtime_key)\n"
    "local size_of, n_sizes = {}, redis.call('HLEN', size_key)\n"
    "if n_sizes > 0 then\n"
    "  local kv = redis.call('HGETALL', size_key)\n"
    "  for i = 1, #kv, 2 do\n"
    "    if valid_hex(kv[i]) then size_of[hex_id(kv[i])] = tonumber(kv[i + 1]) end\n"
    "  end\n"
    "end\n"
    "local out, sizes, n = {}, {}, 0\n"
    "for i = 1, #ids, 8 do\n"
    "  local id = string.sub(ids, i, i + 7)\n"
    "  local b = 48\n"
    "  local at = got_at[id]\n"
    "  if read_set[id] then b = b + 1 end\n"
    "  if at then b = b + 2 end\n"
    "  if hide_set[id] or (expire_at > 0 and at and at > 0 and at <= expire_at) then b = b + 4 end\n"
    "  n = n + 1\n"
    "  out[n] = string.char(b)\n"
    "  local size = size_of[id]\n"
    "  if size then sizes[#sizes + 1] = n; sizes[#sizes + 1] = size end\n"
    "end\n"
    "if redis.call('HSETNX', dev_key, 'first_seen', now) == 1 then\n"
    "  redis.call('PEXPIRE', dev_key, ttl)\n"
    "end\n"
    "local dev = redis.call('HMGET', dev_key, 'first_seen', 'uidvalidity', 'idscheme', 'mark_all')\n"
    "return {table.concat(out), dev[1] or '0', dev[2] or '0', dev[3] or '',\n"
    "        id_count(read_list), id_count(got_list), id_count(hide_list),\n"
    "        dev[4] or '0', sizes, n_sizes}\n";

/* ---- state commit ----------------------------------------------------------
 * Fails with LOCKLOST unless token still holds the lock. New ids are
 * appended; a list is rewritten only when it changed (a commit that adds
 * nothing writes no list). A non-empty all_ids prunes every id not in it from
 * the lists and the size hash. Lua's unpack() has a stack limit of a few
 * thousand values: HDEL goes in batches of 1000. */
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
static const char state_commit_body[] = ID_LISTS_LUA
    "if redis.call('GET', lock_key) ~= token then return redis.error_reply('LOCKLOST') end\n"
    "migrate_set(read_key)\n"
    "migrate_set(hide_key)\n"
    "migrate_got(got_key, rtime_key)\n"
    "local function append_new(list, set, ids, value)\n"
    "  local added = {}\n"
    "  for i = 1, #ids, 8 do\n"
    "    local id = string.sub(ids, i, i + 7)\n"
    "    if not set[id] then set[id] = value; added[#added + 1] = id end\n"
    "  end\n"
    "  return list .. table.concat(added), #added\n"
    "end\n"
    "local function keep_current(list, current)\n"
    "  local kept = {}\n"
    "  for i = 1, #list, 8 do\n"
    "    local id = string.sub(list, i, i + 7)\n"
    "    if current[id] then kept[#kept + 1] = id end\n"
    "  end\n"
    "  return table.concat(kept)\n"
    "end\n"
    "local function keep_current_runs(list, runs, current)\n"
    "  local kept, kept_runs, pos = {}, {}, 1\n"
    "  for _, r in ipairs(runs) do\n"
    "    local k = 0\n"
    "    for _ = 1, r.n do\n"
    "      local id = string.sub(list, pos, pos + 7)\n"
    "      if current[id] then kept[#kept + 1] = id; k = k + 1 end\n"
    "      pos = pos + 8\n"
    "    end\n"
    "    if k > 0 then add_run(kept_runs, r.t, k) end\n"
    "  end\n"
    "  return table.concat(kept), kept_runs\n"
    "end\n"
    "local read_list, hide_list = get_list(read_key), get_list(hide_key)\n"
    "local read_set, hide_set = id_set(read_list), id_set(hide_list)\n"
    "local got_at, got_list, runs = read_got(got_key, rtime_key)\n"
    "local stamp = record_rtime == '1' and stamp_of(tonumber(now)) or 0\n"
    "local n_read, n_got, n_hide\n"
    "read_list, n_read = append_new(read_list, read_set, got_ids, true)\n"
    "got_list, n_got = append_new(got_list, got_at, got_ids, stamp)\n"
    "hide_list, n_hide = append_new(hide_list, hide_set, hidden_ids, true)\n"
    "if n_got > 0 then add_run(runs, stamp, n_got) end\n"
    "local read_changed, got_changed, hide_changed = n_read > 0, n_got > 0, n_hide > 0\n"
    "if #all_ids > 0 then\n"
    "  local current = id_set(all_ids)\n"
    "  local before = {#read_list, #got_list, #hide_list}\n"
    "  read_list = keep_current(read_list, current)\n"
    "  hide_list = keep_current(hide_list, current)\n"
    "  got_list, runs = keep_current_runs(got_list, runs, current)\n"
    "  read_changed = read_changed or #read_list ~= before[1]\n"
    "  got_changed = got_changed or #got_list ~= before[2]\n"
    "  hide_changed = hide_changed or #hide_list ~= before[3]\n"
    "  local stale = {}\n"
    "  for _, field in ipairs(redis.call('HKEYS', size_key)) do\n"
    "    if not (valid_hex(field) and current[hex_id(field)]) then stale[#stale + 1] = field end\n"
    "    if #stale == 1000 then redis.call('HDEL', size_key, unpack(stale)); stale = {} end\n"
    "  end\n"
    "  if #stale > 0 then redis.call('HDEL', size_key, unpack(stale)) end\n"
    "end\n"
    "if read_changed then put(read_key, read_list) end\n"
    "if hide_changed then put(hide_key, hide_list) end\n"
    "if got_changed then\n"
    "  put(got_key, got_list)\n"
    "  put(rtime_key, runs_text(runs))\n"
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
};

const struct lua_script *lua_script(enum lua_script_id id)
{
    return (unsigned)id < LUA_SCRIPTS ? &scripts[id] : NULL;
}
