/* login_name.c: see login_name.h. */
#include "login_name.h"

#include "hash64.h"

#include <string.h>

bool device_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > DEVICE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        /* ASCII only, whatever the locale: a device name lands in Redis keys. */
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

bool login_name_parse(const char *login, size_t len, char separator, struct login_name *out)
{
    const char *sep = NULL;
    for (size_t i = len; i > 0; i--) {
        if (login[i - 1] == separator) {
            sep = login + i - 1;
            break;
        }
    }
    size_t user_len = sep ? (size_t)(sep - login) : len;
    const char *device = sep ? sep + 1 : DEVICE_DEFAULT;
    size_t device_len = sep ? len - user_len - 1 : strlen(DEVICE_DEFAULT);
    if (user_len == 0 || user_len > LOGIN_USER_MAX || !device_name_valid(device, device_len))
        return false;
    memcpy(out->user, login, user_len);
    out->user[user_len] = '\0';
    for (size_t i = 0; i < user_len; i++)
        out->state_user[i] = login[i] >= 'A' && login[i] <= 'Z' ? (char)(login[i] - 'A' + 'a') : login[i];
    out->state_user[user_len] = '\0';
    memcpy(out->device, device, device_len);
    out->device[device_len] = '\0';
    return true;
}

uint64_t message_state_id(const char *emailid, size_t emailid_len, uint32_t uidvalidity, uint32_t uid)
{
    if (emailid && emailid_len > 0)
        return hash64(hash64(HASH64_SEED, "E", 1), emailid, emailid_len);
    return (uint64_t)uidvalidity << 32 | uid;
}

uint64_t message_state_id_hashed_uid(uint32_t uidvalidity, uint32_t uid)
{
    unsigned char raw[8];
    for (int i = 0; i < 4; i++) {
        raw[i] = (unsigned char)(uidvalidity >> (8 * i));
        raw[4 + i] = (unsigned char)(uid >> (8 * i));
    }
    return hash64(hash64(HASH64_SEED, "U", 1), raw, sizeof raw);
}

uint64_t message_state_id_x_gm(uint64_t x_gm_msgid)
{
    unsigned char raw[8];
    for (int i = 0; i < 8; i++)
        raw[i] = (unsigned char)(x_gm_msgid >> (8 * i));
    return hash64(hash64(HASH64_SEED, "G", 1), raw, sizeof raw);
}
