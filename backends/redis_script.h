/* redis_script: calling the Lua scripts of lua_scripts.h by their SHA1.
 *
 * Each script's full source is a preamble naming its KEYS and ARGV
 * (`local lock_key, sessions_key = KEYS[1], KEYS[2]`, the same for ARGV,
 * and `local first_extra = N` when more arguments may follow), then its body;
 * built once, with its SHA1, on first use. redis_store loads every script
 * (SCRIPT LOAD) on each connection before any other command, so a call is one
 * EVALSHA: the script's text crosses the network once per connection, not on
 * every call. If Redis answers NOSCRIPT all the same (SCRIPT FLUSH, a restart
 * or failover the connection did not see), redis_store loads the script again
 * and sends the call once more, on the same request handle.
 */
#ifndef POPGATE_REDIS_SCRIPT_H
#define POPGATE_REDIS_SCRIPT_H

#include <stddef.h>

#include "lua_scripts.h"
#include "redis_store.h"

#define REDIS_SCRIPT_SHA1_HEX 40

/* The full source (NUL-terminated) and its SHA1 in lower-case hex; NULL for
 * an id out of range, a script with an unnamed position, or when memory runs
 * out. Both live until the process exits. */
const char *redis_script_source(enum lua_script_id id);
const char *redis_script_sha1(enum lua_script_id id);

/* Runs script id: keys holds its n_keys keys by its KEY positions, args its
 * n_args values by its ARG positions, then n_extra more (only a script with
 * extra_args). arg_lens gives each arg's length (binary values), or is NULL
 * when all are NUL-terminated. Returns the pending request as
 * redis_store_command does; NULL (and no callback) for a wrong count or when
 * memory runs out. The arguments are copied before this returns. */
struct redis_request *redis_script_call(struct redis_store *store, enum lua_script_id id,
                                        const char *const *keys, const char *const *args,
                                        const size_t *arg_lens, size_t n_extra, redis_reply_cb *cb, void *arg);
/* The same, fire and forget (redis_store_send). */
void redis_script_send(struct redis_store *store, enum lua_script_id id, const char *const *keys,
                       const char *const *args, const size_t *arg_lens, size_t n_extra);

#endif
