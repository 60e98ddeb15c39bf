/* redis_keys.c: see redis_keys.h. */
#include "redis_keys.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum key_shape {
    USER_KEY,     /* pg1:{<user>}:<name> */
    DEVICE_KEY,   /* pg1:{<user>}:<name>:<device> */
    NAMED_KEY,    /* pg1:<name>:<subject> */
    TAGGED_KEY,   /* pg1:<name>:{<subject>}: a node-wide key placed by its
                   * subject's hash tag in a Redis Cluster */
};

static const struct {
    const char *name;
    enum key_shape shape;
} keys[REDIS_KEYS] = {
    [REDIS_KEY_READ] = { "read", USER_KEY },
    [REDIS_KEY_GOT] = { "got", DEVICE_KEY },
    [REDIS_KEY_HIDE] = { "hide", DEVICE_KEY },
    [REDIS_KEY_DEV] = { "dev", DEVICE_KEY },
    [REDIS_KEY_LOCK] = { "lock", DEVICE_KEY },
    [REDIS_KEY_SESSIONS] = { "sessions", USER_KEY },
    [REDIS_KEY_DELAY] = { "delay", DEVICE_KEY },
    [REDIS_KEY_RTIME] = { "rtime", DEVICE_KEY },
    [REDIS_KEY_SIZE] = { "size", USER_KEY },
    [REDIS_KEY_LEGACY] = { "legacy", USER_KEY },
    [REDIS_KEY_AUTHFAIL] = { "authfail", USER_KEY },
    [REDIS_KEY_AUTHFAIL_ADDR] = { "authfail:addr", TAGGED_KEY },
    [REDIS_KEY_BACKOFF] = { "backoff", USER_KEY },
    [REDIS_KEY_MAP] = { "map", NAMED_KEY },
    [REDIS_KEY_UIDL] = { "uidl", USER_KEY },
    [REDIS_KEY_NODE] = { "node", NAMED_KEY },
    [REDIS_KEY_APP_PASSWORD] = { "apw", USER_KEY },
    [REDIS_KEY_OAUTH] = { "oauth", USER_KEY },
    [REDIS_KEY_OAUTH_LOCK] = { "oauthlock", USER_KEY },
};

/* snprintf's answer as a length, 0 (out emptied) when it was cut. */
static size_t fitted(char *out, int n)
{
    if (n < 0 || n >= REDIS_KEY_MAX) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

/* The key with tail as its last part (the device, or the subject of a named
 * key); tail "" gives the prefix. */
static size_t build(char *out, enum redis_key k, const char *subject, const char *tail)
{
    if ((unsigned)k >= REDIS_KEYS) {
        out[0] = '\0';
        return 0;
    }
    const char *name = keys[k].name;
    switch (keys[k].shape) {
    case USER_KEY:
        return fitted(out, snprintf(out, REDIS_KEY_MAX, REDIS_KEY_VERSION ":{%s}:%s", subject, name));
    case DEVICE_KEY:
        return fitted(out, snprintf(out, REDIS_KEY_MAX, REDIS_KEY_VERSION ":{%s}:%s:%s", subject, name, tail));
    case NAMED_KEY:
        return fitted(out, snprintf(out, REDIS_KEY_MAX, REDIS_KEY_VERSION ":%s:%s", name, tail));
    case TAGGED_KEY:
        return fitted(out, snprintf(out, REDIS_KEY_MAX, REDIS_KEY_VERSION ":%s:{%s%s", name, tail,
                                    tail[0] ? "}" : ""));
    }
    out[0] = '\0';
    return 0;
}

size_t redis_key(char *out, enum redis_key k, const char *subject, const char *device)
{
    bool named = (unsigned)k < REDIS_KEYS && (keys[k].shape == NAMED_KEY || keys[k].shape == TAGGED_KEY);
    return build(out, k, subject, named ? subject : device ? device : "");
}

size_t redis_key_prefix(char *out, enum redis_key k, const char *subject)
{
    return build(out, k, subject ? subject : "", "");
}

size_t redis_key_pattern(char *out, enum redis_key k, const char *subject)
{
    char prefix[REDIS_KEY_MAX];
    size_t len = redis_key_prefix(prefix, k, subject);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (strchr("*?[]\\", prefix[i]))
            out[n++] = '\\';
        out[n++] = prefix[i];
    }
    if (len == 0) {
        out[0] = '\0';
        return 0;
    }
    out[n++] = '*';
    out[n] = '\0';
    return n;
}

size_t redis_key_all_users_pattern(char *out, enum redis_key k)
{
    if ((unsigned)k >= REDIS_KEYS || keys[k].shape != USER_KEY) {
        out[0] = '\0';
        return 0;
    }
    return fitted(out, snprintf(out, REDIS_KEY_MAX, REDIS_KEY_VERSION ":{*}:%s", keys[k].name));
}

bool redis_key_user_of(const char *key, size_t len, enum redis_key k, char *user)
{
    static const char head[] = REDIS_KEY_VERSION ":{";
    if ((unsigned)k >= REDIS_KEYS || keys[k].shape != USER_KEY)
        return false;
    size_t name_len = strlen(keys[k].name);
    size_t fixed = sizeof head - 1 + 2 + name_len;   /* "}:" before the name */
    if (len <= fixed || len - fixed > LOGIN_USER_MAX || memcmp(key, head, sizeof head - 1) != 0)
        return false;
    const char *tail = key + len - name_len - 2;
    if (memcmp(tail, "}:", 2) != 0 || memcmp(tail + 2, keys[k].name, name_len) != 0)
        return false;
    size_t user_len = len - fixed;
    memcpy(user, key + sizeof head - 1, user_len);
    user[user_len] = '\0';
    return true;
}
