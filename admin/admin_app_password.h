/* admin_app_password: what `popgate-admin app-password` and `oauth` share:
 * the user's mapping with auth = oauth2, an app password read from stdin,
 * the user's data key unlocked by one, and a new device's record stored.
 *
 * The data key (token_envelope.h) exists only wrapped, once per device, by
 * that device's app password (app_password.h): to give a second device a
 * password, or to store a new refresh token for a user who has devices,
 * popgate-admin needs one of the existing passwords (README.md "Microsoft
 * 365 and Google Workspace", "What is stored where"). */
#ifndef POPGATE_ADMIN_APP_PASSWORD_H
#define POPGATE_ADMIN_APP_PASSWORD_H

#include <stdbool.h>
#include <stdint.h>

#include "admin.h"
#include "app_password.h"
#include "mapping.h"

/* USER's mapping, when it has auth = oauth2; NULL after reporting. */
const struct mapping *admin_oauth_mapping(struct admin *a, const char *user, const char *group);

/* One line from stdin (a prompt on stderr, echo off, when it is a
 * terminal) into buf (APP_PASSWORD_TYPED_MAX + 1): false at end of input
 * or for an empty line. */
bool admin_read_app_password(const char *prompt, char *buf);

/* How many devices of user have an app password; -1 after a Redis error. */
long admin_app_password_count(struct admin *a, const char *user);

/* The user's data key from an app password of any of the user's devices
 * (read from stdin with the prompt). ADMIN_OK, or the status after
 * reporting (ADMIN_USAGE: no such password). Slow: one Argon2id per device
 * tried. */
int admin_unlock_data_key(struct admin *a, const char *user, uint8_t data_key[ENVELOPE_KEY_LEN]);

/* Issues device's app password for data_key; text gets it (shown once),
 * record the string to store under the device in the apw hash. */
int admin_issue_app_password(const char *user, const char *device, const uint8_t data_key[ENVELOPE_KEY_LEN],
                             char text[APP_PASSWORD_TEXT_MAX], char record[APP_PASSWORD_RECORD_MAX]);

/* "app password for USER#DEVICE (shown once, store it in the device now):"
 * and the password, on a->out. */
void admin_show_app_password(struct admin *a, const char *user, const char *device, const char *text);

#endif
