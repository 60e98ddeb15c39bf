/* id_list: the format of the device state's id lists in Redis (read,
 * got:<device>, hide:<device>; translate/redis_keys.h). Pure. The Lua
 * scripts in backends/lua_scripts.c write and read them; this side reads
 * them for popgate-admin and the tests.
 *
 * A list is a sequence of records, the ids in the order they were added:
 *   0x00, n as a LEB128 varint, then n ids of 8 bytes each, big-endian;
 *   0x01, n as a LEB128 varint: n more ids, each one more than the one
 *        before within the same high 32 bits.
 * n is 1 to ID_LIST_RUN_MAX (a varint of 1 to 5 bytes). A UID-based id is
 * UIDVALIDITY << 32 | UID (login_name.h), so mail a device retrieved in UID
 * order costs one run record of 2 to 6 bytes, whatever its length; ids that
 * do not follow each other (hashed EMAILID or X-GM-MSGID ids, UIDs with
 * gaps) cost 8 bytes each plus a few per group.
 */
#ifndef POPGATE_ID_LIST_H
#define POPGATE_ID_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { ID_LIST_IDS = 0, ID_LIST_RUN = 1 };
#define ID_LIST_ID_BYTES 8
#define ID_LIST_VARINT_MAX 5
#define ID_LIST_RUN_MAX 0xffffffffULL

/* How many ids list holds. False for a malformed list (an unknown record, a
 * cut one, a run first or past the 32-bit boundary): *count is then
 * untouched. */
bool id_list_count(const void *list, size_t len, uint64_t *count);

/* Calls each(id, arg) for every id in order; false as id_list_count, after
 * the ids before the fault. */
bool id_list_each(const void *list, size_t len, void (*each)(uint64_t id, void *arg), void *arg);

#endif
