/* login_name: splits a POP3 login into the upstream user and the device.
 * Pure. "alice#phone" -> user "alice", device "phone"; "alice@example.org#desk"
 * -> "alice@example.org", "desk"; no separator -> device "default".
 * The split is at the LAST separator, so a user name may itself contain one.
 * Device names are [A-Za-z0-9._-]{1,32} (docs/design.md): anything else is refused,
 * so a device name is always safe inside a Redis key and a log line. */
#ifndef POPGATE_LOGIN_NAME_H
#define POPGATE_LOGIN_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVICE_NAME_MAX 32
#define DEVICE_DEFAULT "default"
#define LOGIN_USER_MAX 255

struct login_name {
    char user[LOGIN_USER_MAX + 1];        /* what the upstream server gets */
    char device[DEVICE_NAME_MAX + 1];
    char state_user[LOGIN_USER_MAX + 1];  /* user folded to lower case: the Redis identity */
};

bool device_name_valid(const char *name, size_t len);

/* separator: one character, e.g. '#'. False (out untouched) for an empty user,
 * an empty or invalid device, or a user longer than LOGIN_USER_MAX. */
bool login_name_parse(const char *login, size_t len, char separator, struct login_name *out);

/* A message's id in device state: from its EMAILID (RFC 8474) when the server
 * has one, which survives a UIDVALIDITY change (hashed); else UIDVALIDITY in
 * the high and UID in the low 32 bits, so consecutive UIDs are consecutive
 * ids and device state stores a run of them in a few bytes (lua_scripts.c). */
uint64_t message_state_id(const char *emailid, size_t emailid_len, uint32_t uidvalidity, uint32_t uid);
/* The id releases before the compact state gave a message without EMAILID
 * (a hash of UIDVALIDITY and UID): only to convert state they stored. */
uint64_t message_state_id_hashed_uid(uint32_t uidvalidity, uint32_t uid);
/* The same from Gmail's X-GM-MSGID, which also survives a UIDVALIDITY change
 * and is one id in every label. Hashed apart from EMAILIDs and UIDs. */
uint64_t message_state_id_x_gm(uint64_t x_gm_msgid);

#endif
