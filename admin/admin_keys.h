/* admin_keys: the Redis key names popgate-admin reads and writes (README.md,
 * "Devices and their state in Redis"), and the user names it accepts.
 *
 * A user's keys are named by the user's Redis identity: the name folded to
 * lower case exactly as popgate folds a login (login_name.h), so
 * `popgate-admin device list Alice` finds what alice's sessions wrote. Device
 * keys come from device_keys_init (backends/device_state.h), the function
 * popgate itself uses.
 */
#ifndef POPGATE_ADMIN_KEYS_H
#define POPGATE_ADMIN_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "device_state.h"
#include "login_name.h"

/* Bound of every key built here: the longest is a device key. */
#define ADMIN_KEY_MAX DEVICE_KEY_MAX
/* A SCAN pattern: each byte of a key escaped, plus the '*'. */
#define ADMIN_PATTERN_MAX (2 * ADMIN_KEY_MAX + 2)

#define ADMIN_MAP_PREFIX "pg1:map:"
#define ADMIN_NODE_PREFIX "pg1:node:"

/* USER as typed: 1..LOGIN_USER_MAX bytes, none of them a control character
 * or a space (no POP3 login holds one). state_user receives the Redis
 * identity (LOGIN_USER_MAX + 1 bytes). False for anything else. */
bool admin_user_parse(const char *user, char *state_user);

/* pg1:map:<user>: the user's policy override (out: ADMIN_KEY_MAX bytes). */
void admin_map_key(const char *state_user, char *out);
/* pg1:{<user>}:uidl: legacy UIDLs by Message-ID (out: ADMIN_KEY_MAX bytes). */
void admin_uidl_key(const char *state_user, char *out);

/* A SCAN MATCH pattern matching every key that starts with prefix: the glob
 * characters * ? [ ] \ of prefix are escaped (out: ADMIN_PATTERN_MAX bytes;
 * prefix at most ADMIN_KEY_MAX bytes). */
void admin_prefix_pattern(const char *prefix, char *out);

#endif
