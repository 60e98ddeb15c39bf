/* id_list: the format of the device state's id lists in Redis (read,
 * got:<device>, hide:<device>; translate/redis_keys.h). Pure. The Lua
 * scripts in backends/lua_scripts.c write and read them; this side reads
 * them for popgate-admin and the tests.
 *
 * A list is a sequence of records, the ids in the order they were added:
 *   0x00, then 8 bytes: one id, big-endian;
 *   0x01, then n as a LEB128 varint (1 to 5 bytes): n more ids, each one more
 *        than the one before within the same high 32 bits.
 * A UID-based id is UIDVALIDITY << 32 | UID (login_name.h), so mail a device
 * retrieved in UID order costs one run: 9 bytes plus 1 to 5, whatever its
 * length. A hashed id (EMAILID, X-GM-MSGID) costs 9 bytes.
 */
#ifndef POPGATE_ID_LIST_H
#define POPGATE_ID_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { ID_LIST_ONE = 0, ID_LIST_RUN = 1 };
#define ID_LIST_ONE_BYTES 9
#define ID_LIST_VARINT_MAX 5  /* a run is at most 2^32 - 1 ids */

/* How many ids list holds. False for a malformed list (an unknown record, a
 * cut one, a run first or past the 32-bit boundary): *count is then
 * untouched. */
bool id_list_count(const void *list, size_t len, uint64_t *count);

/* Calls each(id, arg) for every id in order; false as id_list_count, after
 * the ids before the fault. */
bool id_list_each(const void *list, size_t len, void (*each)(uint64_t id, void *arg), void *arg);

#endif
