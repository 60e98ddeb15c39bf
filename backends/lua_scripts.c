/* lua_scripts.c: see lua_scripts.h. The scripts below are the only code that
 * writes device state, the lock and the migration marker; each runs
 * atomically inside Redis. Their callers and reply readers: device_state.c,
 * uidl_store.c, auth_throttle.c. */
#include "lua_scripts.h"

#include <stddef.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- compact id lists (shared by state load and commit) ------------------
 * read, got:<device> and hide:<device> are id lists: the ids in the order
 * they were added, each once, as records (translate/id_list.h):
 *   0x00 + n (LEB128 varint) + n 8-byte big-endian ids
 *   0x01 + n (LEB128 varint)          n more ids, each one more than the one
 *                                     before (same high 32 bits)
 * UID-based ids are UIDVALIDITY << 32 | UID (login_name.h) and a device
 * retrieves in UID order, so what it fetched in one go is one run of a few
 * bytes; ids that do not follow each other (EMAILID or X-GM-MSGID ids, hashed;
 * UIDs with gaps) cost 8 bytes each. rtime:<device> says
 * when the got ids were first retrieved, as runs over got's order:
 * "n@t,n@t,..." (the next n ids at t, epoch seconds rounded up to the hour,
 * 0 = not recorded), a few bytes per commit instead of a sorted-set entry per
 * id; no key when no time is known. An empty list is no key. Lua numbers are
 * doubles, exact to 2^53: an id is handled as two 32-bit halves. */
#define ID_LISTS_LUA \
    "local function key_type(key) return redis.call('TYPE', key)['ok'] end\n" \
    "local function low32(s, at)\n" \
    "  local a, b, c, d = string.byte(s, at + 4, at + 7)\n" \
    "  return ((a * 256 + b) * 256 + c) * 256 + d\n" \
    "end\n" \
    "local function with_low32(high, v)\n" \
    "  return high .. string.char(math.floor(v / 16777216) % 256, math.floor(v / 65536) % 256,\n" \
    "                             math.floor(v / 256) % 256, v % 256)\n" \
    "end\n" \
    "local function read_varint(list, pos)\n" \
    "  local v, scale, byte = 0, 1, 128\n" \
    "  while byte >= 128 do\n" \
    "    byte = string.byte(list, pos) or error('id list: cut varint')\n" \
    "    v, scale, pos = v + (byte % 128) * scale, scale * 128, pos + 1\n" \
    "  end\n" \
    "  return v, pos\n" \
    "end\n" \
    "local function varint(v)\n" \
    "  local out = {}\n" \
    "  repeat\n" \
    "    local byte = v % 128\n" \
    "    v = math.floor(v / 128)\n" \
    "    if v > 0 then byte = byte + 128 end\n" \
    "    out[#out + 1] = string.char(byte)\n" \
    "  until v == 0\n" \
    "  return table.concat(out)\n" \
    "end\n" \
    "local function walk(list, on_group, on_run)\n" \
    "  local pos, count, high, low, last = 1, 0, nil, nil, nil\n" \
    "  while pos <= #list do\n" \
    "    local start, tag, n = pos, string.byte(list, pos), nil\n" \
    "    n, pos = read_varint(list, pos + 1)\n" \
    "    if n < 1 then error('id list: empty record') end\n" \
    "    if tag == 0 and pos + 8 * n - 1 <= #list then\n" \
    "      if on_group then on_group(pos, n, count) end\n" \
    "      local at = pos + 8 * (n - 1)\n" \
    "      high, low = string.sub(list, at, at + 3), low32(list, at)\n" \
    "      last = {start = start, tag = 0, n = n, body = pos}\n" \
    "      pos = pos + 8 * n\n" \
    "    elseif tag == 1 and high and low + n <= 4294967295 then\n" \
    "      if on_run then on_run(high, low + 1, low + n, count) end\n" \
    "      low = low + n\n" \
    "      last = {start = start, tag = 1, n = n}\n" \
    "    else\n" \
    "      error('id list: bad record')\n" \
    "    end\n" \
    "    count = count + n\n" \
    "  end\n" \
    "  return count, high, low, last\n" \
    "end\n" \
    "local function members(list)\n" \
    "  local m = {ids = {}, ranges = {}}\n" \
    "  m.count = walk(list, function(pos, n, before)\n" \
    "    for k = 0, n - 1 do m.ids[string.sub(list, pos + 8 * k, pos + 8 * k + 7)] = before + k + 1 end\n" \
    "  end, function(high, first, last, before)\n" \
    "    local r = m.ranges[high]\n" \
    "    if not r then r = {}; m.ranges[high] = r end\n" \
    "    r[#r + 1] = {first, last, before + 1}\n" \
    "  end)\n" \
    "  for _, r in pairs(m.ranges) do table.sort(r, function(a, b) return a[1] < b[1] end) end\n" \
    "  return m\n" \
    "end\n" \
    "local function position(m, id)\n" \
    "  local at = m.ids[id]\n" \
    "  if at then return at end\n" \
    "  local r = m.ranges[string.sub(id, 1, 4)]\n" \
    "  if not r then return nil end\n" \
    "  local low, lo, hi = low32(id, 1), 1, #r\n" \
    "  while lo <= hi do\n" \
    "    local mid = math.floor((lo + hi) / 2)\n" \
    "    if low < r[mid][1] then hi = mid - 1\n" \
    "    elseif low > r[mid][2] then lo = mid + 1\n" \
    "    else return r[mid][3] + low - r[mid][1] end\n" \
    "  end\n" \
    "  return nil\n" \
    "end\n" \
    "local function decode(list)\n" \
    "  local ids = {}\n" \
    "  walk(list, function(pos, n)\n" \
    "    for k = 0, n - 1 do ids[#ids + 1] = string.sub(list, pos + 8 * k, pos + 8 * k + 7) end\n" \
    "  end, function(high, first, last)\n" \
    "    for v = first, last do ids[#ids + 1] = with_low32(high, v) end\n" \
    "  end)\n" \
    "  return ids\n" \
    "end\n" \
    "local function encoder(list)\n" \
    "  local e = {parts = {}, group = {}, group_n = 0, run = 0, high = nil, low = -2}\n" \
    "  if #list > 0 then\n" \
    "    local _, high, low, last = walk(list)\n" \
    "    e.high, e.low = high, low\n" \
    "    e.parts[1] = string.sub(list, 1, last.start - 1)\n" \
    "    if last.tag == 0 then\n" \
    "      e.group[1], e.group_n = string.sub(list, last.body, last.body + 8 * last.n - 1), last.n\n" \
    "    else\n" \
    "      e.run = last.n\n" \
    "    end\n" \
    "  end\n" \
    "  return e\n" \
    "end\n" \
    "local function flush(e)\n" \
    "  if e.group_n > 0 then\n" \
    "    e.parts[#e.parts + 1] = '\\0' .. varint(e.group_n) .. table.concat(e.group)\n" \
    "    e.group, e.group_n = {}, 0\n" \
    "  end\n" \
    "  if e.run > 0 then\n" \
    "    e.parts[#e.parts + 1] = '\\1' .. varint(e.run)\n" \
    "    e.run = 0\n" \
    "  end\n" \
    "end\n" \
    "local function push(e, id)\n" \
    "  local h, l = string.sub(id, 1, 4), low32(id, 1)\n" \
    "  if h == e.high and l == e.low + 1 then\n" \
    "    if e.group_n > 0 then flush(e) end\n" \
    "    e.run = e.run + 1\n" \
    "  else\n" \
    "    if e.run > 0 then flush(e) end\n" \
    "    e.group[#e.group + 1] = id\n" \
    "    e.group_n = e.group_n + 1\n" \
    "  end\n" \
    "  e.high, e.low = h, l\n" \
    "end\n" \
    "local function appended(list, ids)\n" \
    "  local e = encoder(list)\n" \
    "  for _, id in ipairs(ids) do push(e, id) end\n" \
    "  flush(e)\n" \
    "  return table.concat(e.parts)\n" \
    "end\n" \
    "local function put(key, value)\n" \
    "  if #value == 0 then redis.call('DEL', key) else redis.call('SET', key, value, 'KEEPTTL') end\n" \
    "end\n" \
    "local function stamp_of(t) return math.ceil(t / 3600) * 3600 end\n" \
    "local function add_run(runs, t, n)\n" \
    "  local last = runs[#runs]\n" \
    "  if last and last.t == t then last.n = last.n + n else runs[#runs + 1] = {n = n, t = t} end\n" \
    "end\n" \
    "local function read_runs(rtime_key, count)\n" \
    "  local runs, covered = {}, 0\n" \
    "  for n, t in string.gmatch(redis.call('GET', rtime_key) or '', '(%d+)@(%d+)') do\n" \
    "    local k = math.min(tonumber(n), count - covered)\n" \
    "    if k > 0 then add_run(runs, tonumber(t), k) end\n" \
    "    covered = covered + math.max(k, 0)\n" \
    "  end\n" \
    "  if covered < count then add_run(runs, 0, count - covered) end\n" \
    "  return runs\n" \
    "end\n" \
    "local function runs_text(runs)\n" \
    "  local parts, timed = {}, false\n" \
    "  for i, r in ipairs(runs) do\n" \
    "    parts[i] = string.format('%d@%d', r.n, r.t)\n" \
    "    if r.t > 0 then timed = true end\n" \
    "  end\n" \
    "  return timed and table.concat(parts, ',') or ''\n" \
    "end\n" \
    "local function old_format(read_key, got_key, hide_key, rtime_key)\n" \
    "  return key_type(read_key) == 'set' or key_type(got_key) == 'set' or key_type(hide_key) == 'set' or\n" \
    "         key_type(rtime_key) == 'zset'\n" \
    "end\n"

/* The previous release's keys: sets of 16-hex ids (UID-based ones hashed)
 * and a sorted set of retrieval times. Converted by the load script, in the
 * same atomic step, the first time it meets them: new_of maps the old form
 * of every listed id to its new one; an id not listed keeps its old form (an
 * EMAILID id is the same in both; a UID one no longer listed is pruned with
 * the next commit, as any id no longer upstream). The size hash's fields
 * follow. Lists are sorted by id, got by time first, so UID runs form. */
#define MIGRATE_LUA \
    "local function hex_id(h)\n" \
    "  return (string.gsub(h, '%x%x', function(b) return string.char(tonumber(b, 16)) end))\n" \
    "end\n" \
    "local function id_hex(id)\n" \
    "  return (string.gsub(id, '.', function(c) return string.format('%02x', string.byte(c)) end))\n" \
    "end\n" \
    "local function valid_hex(h) return #h == 16 and not string.find(h, '[^0-9a-f]') end\n" \
    "local function converted(key, new_of)\n" \
    "  local ids = {}\n" \
    "  for _, h in ipairs(redis.call('SMEMBERS', key)) do\n" \
    "    if valid_hex(h) then\n" \
    "      local old = hex_id(h)\n" \
    "      ids[#ids + 1] = {old = h, id = new_of[old] or old}\n" \
    "    end\n" \
    "  end\n" \
    "  return ids\n" \
    "end\n" \
    "local function write_converted(key, entries, ttl)\n" \
    "  local ids = {}\n" \
    "  for i, e in ipairs(entries) do ids[i] = e.id end\n" \
    "  redis.call('DEL', key)\n" \
    "  put(key, appended('', ids))\n" \
    "  if #ids > 0 and ttl > 0 then redis.call('PEXPIRE', key, ttl) end\n" \
    "end\n" \
    "local function migrate_set(key, new_of)\n" \
    "  if key_type(key) ~= 'set' then return end\n" \
    "  local entries = converted(key, new_of)\n" \
    "  table.sort(entries, function(a, b) return a.id < b.id end)\n" \
    "  write_converted(key, entries, redis.call('PTTL', key))\n" \
    "end\n" \
    "local function migrate_got(got_key, rtime_key, new_of)\n" \
    "  local at = {}\n" \
    "  if key_type(rtime_key) == 'zset' then\n" \
    "    local z = redis.call('ZRANGE', rtime_key, 0, -1, 'WITHSCORES')\n" \
    "    for i = 1, #z, 2 do at[z[i]] = stamp_of(tonumber(z[i + 1])) end\n" \
    "    redis.call('DEL', rtime_key)\n" \
    "  end\n" \
    "  if key_type(got_key) ~= 'set' then return end\n" \
    "  local ttl = redis.call('PTTL', got_key)\n" \
    "  local entries = converted(got_key, new_of)\n" \
    "  for _, e in ipairs(entries) do e.t = at[e.old] or 0 end\n" \
    "  table.sort(entries, function(a, b)\n" \
    "    if a.t ~= b.t then return a.t < b.t end\n" \
    "    return a.id < b.id\n" \
    "  end)\n" \
    "  local runs = {}\n" \
    "  for _, e in ipairs(entries) do add_run(runs, e.t, 1) end\n" \
    "  write_converted(got_key, entries, ttl)\n" \
    "  put(rtime_key, runs_text(runs))\n" \
    "  if #entries > 0 and ttl > 0 then redis.call('PEXPIRE', rtime_key, ttl) end\n" \
    "end\n" \
    "local function migrate_sizes(size_key, new_of)\n" \
    "  local kv = redis.call('HGETALL', size_key)\n" \
    "  for i = 1, #kv, 2 do\n" \
    "    local new = valid_hex(kv[i]) and new_of[hex_id(kv[i])]\n" \
    "    if new and id_hex(new) ~= kv[i] then\n" \
    "      redis.call('HDEL', size_key, kv[i])\n" \
    "      redis.call('HSET', size_key, id_hex(new), kv[i + 1])\n" \
    "    end\n" \
    "  end\n" \
    "end\n"

/* ---- state load ------------------------------------------------------------
 * Returns {bits, first_seen, uidvalidity, idscheme, #read, #got, #hide,
 * mark_all, {index, size, ...}, #size}; registers a new device (first_seen,
 * expiring after ttl), converts the previous release's keys, and changes
 * nothing else. An id this device first retrieved at or before
 * expire_before (> 0: EXPIRE) reads as hidden. Each list becomes a Lua table
 * once: O(stored + listed). Meeting the previous release's keys without
 * old_ids (the listing's ids in that release's form, aligned with ids), it
 * returns 'MIGRATE' having changed nothing, and the caller sends them. */
static const char *const state_load_keys[STATE_LOAD_KEYS] = {
    [STATE_LOAD_KEY_READ] = "read_key", [STATE_LOAD_KEY_GOT] = "got_key",
    [STATE_LOAD_KEY_HIDE] = "hide_key", [STATE_LOAD_KEY_DEV] = "dev_key",
    [STATE_LOAD_KEY_RTIME] = "rtime_key", [STATE_LOAD_KEY_SIZE] = "size_key",
};
static const char *const state_load_args[STATE_LOAD_ARGS] = {
    [STATE_LOAD_ARG_IDS] = "ids", [STATE_LOAD_ARG_NOW] = "now", [STATE_LOAD_ARG_TTL] = "ttl",
    [STATE_LOAD_ARG_EXPIRE_BEFORE] = "expire_before", [STATE_LOAD_ARG_OLD_IDS] = "old_ids",
};
static const char state_load_body[] = ID_LISTS_LUA MIGRATE_LUA
    "if old_format(read_key, got_key, hide_key, rtime_key) then\n"
    "  if #old_ids ~= #ids then return 'MIGRATE' end\n"
    "  local new_of = {}\n"
    "  for i = 1, #ids, 8 do new_of[string.sub(old_ids, i, i + 7)] = string.sub(ids, i, i + 7) end\n"
    "  migrate_set(read_key, new_of)\n"
    "  migrate_set(hide_key, new_of)\n"
    "  migrate_got(got_key, rtime_key, new_of)\n"
    "  migrate_sizes(size_key, new_of)\n"
    "end\n"
    "local expire_at = tonumber(expire_before)\n"
    "local read_m = members(redis.call('GET', read_key) or '')\n"
    "local got_m = members(redis.call('GET', got_key) or '')\n"
    "local hide_m = members(redis.call('GET', hide_key) or '')\n"
    "local ends, times = {}, {}\n"
    "if expire_at > 0 then\n"
    "  for _, r in ipairs(read_runs(rtime_key, got_m.count)) do\n"
    "    ends[#ends + 1] = (ends[#ends] or 0) + r.n\n"
    "    times[#times + 1] = r.t\n"
    "  end\n"
    "end\n"
    "local function time_at(pos)\n"
    "  local lo, hi = 1, #ends\n"
    "  while lo < hi do\n"
    "    local mid = math.floor((lo + hi) / 2)\n"
    "    if ends[mid] < pos then lo = mid + 1 else hi = mid end\n"
    "  end\n"
    "  return times[lo] or 0\n"
    "end\n"
    "local size_of, n_sizes = {}, redis.call('HLEN', size_key)\n"
    "if n_sizes > 0 then\n"
    "  local kv = redis.call('HGETALL', size_key)\n"
    "  for i = 1, #kv, 2 do\n"
    "    if #kv[i] == 16 then size_of[kv[i]] = tonumber(kv[i + 1]) end\n"
    "  end\n"
    "end\n"
    "local out, sizes, n = {}, {}, 0\n"
    /* A device with nothing stored yet (its first session): every id's bits
     * are 48, without a table lookup per id. */
    "if read_m.count + got_m.count + hide_m.count + n_sizes == 0 then\n"
    "  out[1], n = string.rep('0', #ids / 8), #ids / 8\n"
    "end\n"
    "for i = 1, n == 0 and #ids or 0, 8 do\n"
    "  local id = string.sub(ids, i, i + 7)\n"
    "  local b = 48\n"
    "  local at = position(got_m, id)\n"
    "  if position(read_m, id) then b = b + 1 end\n"
    "  if at then b = b + 2 end\n"
    "  if position(hide_m, id) then\n"
    "    b = b + 4\n"
    "  elseif expire_at > 0 and at then\n"
    "    local t = time_at(at)\n"
    "    if t > 0 and t <= expire_at then b = b + 4 end\n"
    "  end\n"
    "  n = n + 1\n"
    "  out[n] = string.char(b)\n"
    "  if n_sizes > 0 then\n"
    "    local size = size_of[string.format('%02x%02x%02x%02x%02x%02x%02x%02x', string.byte(id, 1, 8))]\n"
    "    if size then sizes[#sizes + 1] = n; sizes[#sizes + 1] = size end\n"
    "  end\n"
    "end\n"
    "if redis.call('HSETNX', dev_key, 'first_seen', now) == 1 then\n"
    "  redis.call('PEXPIRE', dev_key, ttl)\n"
    "end\n"
    "local dev = redis.call('HMGET', dev_key, 'first_seen', 'uidvalidity', 'idscheme', 'mark_all')\n"
    "return {table.concat(out), dev[1] or '0', dev[2] or '0', dev[3] or '',\n"
    "        read_m.count, got_m.count, hide_m.count, dev[4] or '0', sizes, n_sizes}\n";

/* ---- state commit ----------------------------------------------------------
 * Fails with LOCKLOST unless token still holds the lock, and with OLDFORMAT
 * if an older popgate wrote its kind of keys since this session's load.
 * New ids are appended; a list is rewritten only when it changed (a commit
 * that adds nothing writes no list). A non-empty all_ids prunes every id not
 * in it from the lists and the size hash. Lua's unpack() has a stack limit of
 * a few thousand values: HDEL goes in batches of 1000. Committed, the session
 * is over: the lock is released in the same step (as lock-release), saving
 * QUIT a round trip. */
static const char *const state_commit_keys[STATE_COMMIT_KEYS] = {
    [STATE_COMMIT_KEY_READ] = "read_key", [STATE_COMMIT_KEY_GOT] = "got_key",
    [STATE_COMMIT_KEY_HIDE] = "hide_key", [STATE_COMMIT_KEY_DEV] = "dev_key",
    [STATE_COMMIT_KEY_LOCK] = "lock_key", [STATE_COMMIT_KEY_RTIME] = "rtime_key",
    [STATE_COMMIT_KEY_SIZE] = "size_key", [STATE_COMMIT_KEY_SESSIONS] = "sessions_key",
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
    "if old_format(read_key, got_key, hide_key, rtime_key) then\n"
    "  return redis.error_reply('OLDFORMAT device state written by an older popgate since the login')\n"
    "end\n"
    "local function new_ids(m, arg, seen)\n"
    "  local added = {}\n"
    "  for i = 1, #arg, 8 do\n"
    "    local id = string.sub(arg, i, i + 7)\n"
    "    if not seen[id] and not position(m, id) then seen[id] = true; added[#added + 1] = id end\n"
    "  end\n"
    "  return added\n"
    "end\n"
    "local function keep_current(ids, current)\n"
    "  local kept = {}\n"
    "  for _, id in ipairs(ids) do\n"
    "    if current[id] then kept[#kept + 1] = id end\n"
    "  end\n"
    "  return kept\n"
    "end\n"
    "local function keep_current_runs(ids, runs, current)\n"
    "  local kept, kept_runs, pos = {}, {}, 0\n"
    "  for _, r in ipairs(runs) do\n"
    "    local k = 0\n"
    "    for i = pos + 1, pos + r.n do\n"
    "      if current[ids[i]] then kept[#kept + 1] = ids[i]; k = k + 1 end\n"
    "    end\n"
    "    pos = pos + r.n\n"
    "    if k > 0 then add_run(kept_runs, r.t, k) end\n"
    "  end\n"
    "  return kept, kept_runs\n"
    "end\n"
    "local lists = {read = redis.call('GET', read_key) or '', got = redis.call('GET', got_key) or '',\n"
    "               hide = redis.call('GET', hide_key) or ''}\n"
    "local got_m = members(lists.got)\n"
    "local runs = read_runs(rtime_key, got_m.count)\n"
    "local added = {read = new_ids(members(lists.read), got_ids, {}), got = new_ids(got_m, got_ids, {}),\n"
    "               hide = new_ids(members(lists.hide), hidden_ids, {})}\n"
    "local changed = {}\n"
    "for name, ids in pairs(added) do\n"
    "  if #ids > 0 then lists[name] = appended(lists[name], ids); changed[name] = true end\n"
    "end\n"
    "if #added.got > 0 then add_run(runs, record_rtime == '1' and stamp_of(tonumber(now)) or 0, #added.got) end\n"
    "if #all_ids > 0 then\n"
    "  local current = {}\n"
    "  for i = 1, #all_ids, 8 do current[string.sub(all_ids, i, i + 7)] = true end\n"
    "  for _, name in ipairs({'read', 'hide'}) do\n"
    "    local ids = decode(lists[name])\n"
    "    local kept = keep_current(ids, current)\n"
    "    if #kept ~= #ids then lists[name] = appended('', kept); changed[name] = true end\n"
    "  end\n"
    "  local got_all = decode(lists.got)\n"
    "  local kept, kept_runs = keep_current_runs(got_all, runs, current)\n"
    "  if #kept ~= #got_all then lists.got, runs, changed.got = appended('', kept), kept_runs, true end\n"
    "  local listed = {}\n"
    "  for id in pairs(current) do\n"
    "    listed[string.format('%02x%02x%02x%02x%02x%02x%02x%02x', string.byte(id, 1, 8))] = true\n"
    "  end\n"
    "  local stale = {}\n"
    "  for _, field in ipairs(redis.call('HKEYS', size_key)) do\n"
    "    if not listed[field] then stale[#stale + 1] = field end\n"
    "    if #stale == 1000 then redis.call('HDEL', size_key, unpack(stale)); stale = {} end\n"
    "  end\n"
    "  if #stale > 0 then redis.call('HDEL', size_key, unpack(stale)) end\n"
    "end\n"
    "if changed.read then put(read_key, lists.read) end\n"
    "if changed.hide then put(hide_key, lists.hide) end\n"
    "if changed.got then\n"
    "  put(got_key, lists.got)\n"
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
    "redis.call('ZREM', sessions_key, token)\n"
    "redis.call('DEL', lock_key)\n"
    "return 'OK'\n";

/* ---- the device lock -------------------------------------------------------
 * Checked with taking it: the user's session count (a sorted set of lock
 * tokens scored by when each expires, so a node that died leaves nothing
 * behind) and the device's LOGIN-DELAY marker. Taken, it also answers the
 * login's next question, the legacy check (how many legacy UIDLs are
 * stored, and the lazy import's marker: a missing one is Lua false, which
 * comes back as a nil element), saving that step its own round trip. */
static const char *const lock_acquire_keys[LOCK_ACQUIRE_KEYS] = {
    [LOCK_ACQUIRE_KEY_LOCK] = "lock_key", [LOCK_ACQUIRE_KEY_SESSIONS] = "sessions_key",
    [LOCK_ACQUIRE_KEY_DELAY] = "delay_key", [LOCK_ACQUIRE_KEY_UIDL] = "uidl_key",
    [LOCK_ACQUIRE_KEY_LEGACY] = "legacy_key",
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
    "return {'OK', redis.call('HLEN', uidl_key), redis.call('GET', legacy_key)}\n";

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

/* The two throttle keys of the user's slot, read in one command (the
 * address's counter lives in another slot: a GET of its own). */
static const char *const throttle_read_keys[THROTTLE_READ_KEYS] = {
    [THROTTLE_READ_KEY_COUNTER] = "counter_key", [THROTTLE_READ_KEY_BACKOFF] = "backoff_key",
};
static const char throttle_read_body[] =
    "return {redis.call('GET', counter_key), redis.call('PTTL', backoff_key)}\n";

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
    SCRIPT(LUA_COUNTER_INCR, "counter-incr", counter_incr_keys, counter_incr_args, false, counter_incr_body),
    [LUA_THROTTLE_READ] = { "throttle-read", throttle_read_keys, COUNT(throttle_read_keys), NULL, 0, false,
                            throttle_read_body },
    SCRIPT(LUA_OAUTH_LOAD, "oauth-load", oauth_load_keys, oauth_load_args, false, oauth_load_body),
    SCRIPT(LUA_OAUTH_SAVE, "oauth-save", oauth_save_keys, oauth_save_args, false, oauth_save_body),
    SCRIPT(LUA_OAUTH_REAUTH, "oauth-reauth", oauth_reauth_keys, oauth_reauth_args, false, oauth_reauth_body),
};

const struct lua_script *lua_script(enum lua_script_id id)
{
    return (unsigned)id < LUA_SCRIPTS ? &scripts[id] : NULL;
}
