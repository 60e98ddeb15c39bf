/* admin_user: the user names popgate-admin accepts, and the Redis identity
 * each names.
 *
 * A user's keys (translate/redis_keys.h) are named by the user's Redis
 * identity: the name folded to lower case exactly as popgate folds a login
 * (login_name.h), so `popgate-admin device list Alice` finds what alice's
 * sessions wrote. Keys are built by redis_key(), the function popgate itself
 * uses, and device keys by device_keys_init (backends/device_state.h).
 */
#ifndef POPGATE_ADMIN_USER_H
#define POPGATE_ADMIN_USER_H

#include <stdbool.h>

#include "device_state.h"
#include "login_name.h"
#include "redis_keys.h"

/* USER as typed: 1..LOGIN_USER_MAX bytes, none of them a control character
 * or a space (no POP3 login holds one). state_user receives the Redis
 * identity (LOGIN_USER_MAX + 1 bytes). False for anything else. */
bool admin_user_parse(const char *user, char *state_user);

#endif
