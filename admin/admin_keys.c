/* admin_keys.c: see admin_keys.h. */
#include "admin_keys.h"

#include "uidl_store.h"

#include <stdio.h>
#include <string.h>

bool admin_user_parse(const char *user, char *state_user)
{
    size_t len = strlen(user);
    if (len == 0 || len > LOGIN_USER_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)user[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    /* With a space as the separator, which the user name cannot hold, the
     * whole name is the user: login_name_parse then only folds it, the same
     * way it folds every login. */
    struct login_name name;
    if (!login_name_parse(user, len, ' ', &name))
        return false;
    memcpy(state_user, name.state_user, len + 1);
    return true;
}

void admin_map_key(const char *state_user, char *out)
{
    snprintf(out, ADMIN_KEY_MAX, ADMIN_MAP_PREFIX "%s", state_user);
}

void admin_uidl_key(const char *state_user, char *out)
{
    /* popgate reads the same key: one definition, in backends/uidl_store.c. */
    uidl_store_key(state_user, out);
}

void admin_prefix_pattern(const char *prefix, char *out)
{
    size_t n = 0;
    for (size_t i = 0; prefix[i] && n + 4 <= ADMIN_PATTERN_MAX && i < ADMIN_KEY_MAX; i++) {
        if (strchr("*?[]\\", prefix[i]))
            out[n++] = '\\';
        out[n++] = prefix[i];
    }
    out[n++] = '*';
    out[n] = '\0';
}
