/* admin_user.c: see admin_user.h. */
#include "admin_user.h"

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
