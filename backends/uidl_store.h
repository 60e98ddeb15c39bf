/* uidl_store: a user's legacy UIDLs in Redis (docs/design.md "UIDL", migration).
 *
 * Keys (translate/redis_keys.h; one user's share a slot, so a script may
 * touch both):
 *   REDIS_KEY_UIDL    hash: Message-ID (with its angle brackets) ->
 *                     "<uidl> <size>" (uidl_file.h; written by
 *                     `popgate-admin uidl import` or uidl_store_save)
 *   REDIS_KEY_LEGACY  the lazy migration's marker: set, in the same atomic
 *                     step as the hash fields, once a migration finished
 * user is the Redis identity (login_name.h state_user).
 *
 * Lifetime: lookup returns its own handle (it is several pipelined
 * requests); save and check return their redis_request, as device_state
 * does. A handle is valid until its callback runs, which happens exactly once
 * and never from inside the call, or until it is cancelled, after which the
 * callback never runs. A NULL return means out of memory (or invalid
 * arguments, said below): the callback will not run. Cancel when the session
 * goes away first.
 */
#ifndef POPGATE_UIDL_STORE_H
#define POPGATE_UIDL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device_state.h"
#include "redis_store.h"
#include "uidl_file.h"

/* Fields per HMGET: Redis answers each batch without holding other clients
 * up for long, and one reply stays under ~100 KiB. */
#define UIDL_STORE_BATCH 1000
/* Entries one uidl_store_save may write: its script runs atomically inside
 * Redis, which serves no one else meanwhile (~50 ms at this size). A larger
 * migration calls save several times, the marker only on the last call. */
#define UIDL_STORE_SAVE_MAX 100000

enum uidl_store_result {
    UIDL_STORE_OK,
    UIDL_STORE_UNAVAILABLE,  /* Redis down, timeout, or an unexpected reply */
};

/* ---- lookup: HMGET in batches -------------------------------------------- */

/* values[i] is the stored value of ids[i] (not NUL-terminated, lens[i]
 * octets), NULL when the hash has no such field. A value longer than
 * UIDL_VALUE_MAX cannot be a stored value: it comes as "" (length 0), present
 * but malformed. All n values, or none (r != UIDL_STORE_OK: values NULL). The
 * arrays and values are valid during the call only. */
typedef void uidl_lookup_cb(enum uidl_store_result r, const char *const *values, const size_t *lens,
                            size_t n, void *arg);

struct uidl_lookup;

/* HMGET of the user's uidl hash for the n ids (ids[i], lens[i] octets), in
 * batches of UIDL_STORE_BATCH fields, all sent at once (pipelined). The ids
 * are copied into the outgoing buffer before this returns. Memory until the
 * callback: 24 bytes per id plus the values' octets (at most UIDL_VALUE_MAX
 * each), and 32 bytes per batch. n == 0 answers OK with no values, after
 * one HLEN (so the answer still comes from the loop, never from inside the
 * call). NULL when memory runs out. */
struct uidl_lookup *uidl_store_lookup(struct redis_store *store, const char *state_user,
                                      const char *const *ids, const size_t *lens, size_t n,
                                      uidl_lookup_cb *done, void *arg);
void uidl_lookup_cancel(struct uidl_lookup *l);

/* ---- save: the lazy migration's result ------------------------------------ */

/* One field of the hash (uidl_file.h "Storage"): its name (a Message-ID
 * key, 1..UIDL_MSGID_MAX octets, or a header-hash or size field), and
 * either the legacy UIDL (1..UIDL_MAX octets of 0x21..0x7E) and the size
 * the old server listed, stored as "<uidl> <size>", or, when value is not
 * NULL, that value (1..UIDL_VALUE_MAX octets) as it is. */
struct uidl_store_entry {
    const char *field;
    size_t field_len;
    const char *uidl;
    size_t uidl_len;
    uint32_t size;
    const char *value;
    size_t value_len;
};

/* written: how many fields were new (a field already in the hash, e.g. from
 * an administrator's import, is kept as it is). */
typedef void uidl_save_cb(enum uidl_store_result r, uint64_t written, void *arg);

/* One script call, atomic: every entry's field is set unless the hash already has
 * it (HSETNX), and then, when marker_value is not NULL, the marker key is set
 * to it. A failed or interrupted save writes nothing, so a half-written
 * migration never carries the marker. UIDL_STORE_UNAVAILABLE after the
 * script ran (a lost reply) is possible: saving again is harmless. The
 * caller leaves out keys that are not unique (uidl_keys_assign; of a
 * repeated one the first entry would win). Memory during the call: 32 bytes
 * per entry plus its value. NULL, sending nothing, when an entry is
 * malformed, n is above UIDL_STORE_SAVE_MAX, n is 0 without a marker, or
 * memory runs out. */
struct redis_request *uidl_store_save(struct redis_store *store, const char *state_user,
                                      const struct uidl_store_entry *entries, size_t n,
                                      const char *marker_value, uidl_save_cb *done, void *arg);

/* The login's check (is there anything, did the lazy import run) is read
 * by the device lock's script in the same round trip: device_lock_acquire()
 * (device_state.h). */

#endif
