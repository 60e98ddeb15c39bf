/* admin_map.c: `popgate-admin map`, a user's policy overrides in the hash
 * pg1:map:<user>. popgate reads the hash at the user's next login and applies
 * each field over the [policy] section with view_policy_set(), so that is what
 * validates a value here: a value popgate would refuse is never stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "admin_user.h"
#include "admin_output.h"
#include "view.h"

struct policy_key {
    const char *name;      /* the [policy] key, as stored */
    const char *expected;  /* for the error message */
};

static const struct policy_key policy_keys[] = {
    { "view", "unread, new or all" },
    { "since", "a date YYYY-MM-DD" },
    { "from_first_login", "yes or no" },
    { "max_age", "a duration such as 30d (suffix s, m, h, d or w; 0 is off)" },
    { "max_messages", "a number up to 4294967295 (0 is off)" },
    { "on_retr", "seen or keep" },
    { "on_dele", "hide, trash or expunge" },
    { "mapping", "the NAME of a [mapping NAME] section in the config" },
};
#define N_POLICY_KEYS (sizeof policy_keys / sizeof policy_keys[0])
#define KEY_LIST "view, since, from_first_login, max_age, max_messages, on_retr, on_dele, mapping"
/* Not a [policy] key: routes the user to a named mapping of the config. */
#define MAPPING_KEY "mapping"

/* Keys match as view_policy_set() matches them: ignoring ASCII case. */
static const struct policy_key *find_key(const char *name, size_t len)
{
    for (size_t i = 0; i < N_POLICY_KEYS; i++)
        if (strlen(policy_keys[i].name) == len && strncasecmp(policy_keys[i].name, name, len) == 0)
            return &policy_keys[i];
    return NULL;
}

static void json_settings(struct json_writer *w, const struct admin_field *f, size_t n)
{
    json_object_begin(w);
    for (size_t i = 0; i < n; i++) {
        /* Field names are this file's policy keys, or what someone else wrote:
         * keep them as they are, NUL bytes included. */
        char name[64];
        size_t len = f[i].name_len < sizeof name - 1 ? f[i].name_len : sizeof name - 1;
        memcpy(name, f[i].name, len);
        name[len] = '\0';
        json_key(w, name);
        json_string(w, f[i].value, f[i].value_len);
    }
    json_object_end(w);
}

static void text_settings(FILE *out, const struct admin_field *f, size_t n, const char *sep, const char *end)
{
    for (size_t i = 0; i < n; i++) {
        text_write(out, f[i].name, f[i].name_len);
        fputc('=', out);
        text_write(out, f[i].value, f[i].value_len);
        fputs(i + 1 < n ? sep : end, out);
    }
}

static int map_set(struct admin *a, int argc, char **argv)
{
    if (argc < 3)
        return admin_usage_error("map", "map set needs USER and at least one KEY=VALUE");
    char user[LOGIN_USER_MAX + 1];
    if (!admin_user_parse(argv[1], user))
        return admin_bad_user("map");

    const char *cmd[2 + 2 * N_POLICY_KEYS];
    char key[REDIS_KEY_MAX];
    int n = 0;
    cmd[n++] = "HSET";
    redis_key(key, REDIS_KEY_MAP, user, NULL);
    cmd[n++] = key;
    struct view_policy scratch;
    view_policy_defaults(&scratch);
    bool given[N_POLICY_KEYS] = { false };
    const char *mapping_value = NULL;
    for (int i = 2; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i])
            return admin_usage_error("map", "expected KEY=VALUE, not %s", argv[i]);
        const struct policy_key *k = find_key(argv[i], (size_t)(eq - argv[i]));
        if (!k) {
            admin_error("unknown key %.*s (keys: " KEY_LIST ")", (int)(eq - argv[i]), argv[i]);
            return ADMIN_USAGE;
        }
        size_t idx = (size_t)(k - policy_keys);
        if (given[idx]) {
            admin_error("%s given twice", k->name);
            return ADMIN_USAGE;
        }
        given[idx] = true;
        if (!strcmp(k->name, MAPPING_KEY))
            mapping_value = eq + 1;
        else if (!view_policy_set(&scratch, k->name, eq + 1)) {
            admin_error("%s: invalid value \"%s\" (expected %s)", k->name, eq + 1, k->expected);
            return ADMIN_USAGE;
        }
        cmd[n++] = k->name;
        cmd[n++] = eq + 1;
    }

    int status = admin_connect(a);
    if (status != ADMIN_OK)
        return status;
    /* The config is loaded now: a mapping popgate does not know is refused. */
    if (mapping_value && (!mapping_value[0] || !config_mapping_named(a->config, mapping_value))) {
        admin_error("mapping: no [mapping %s] section in %s", mapping_value, a->config_path);
        return ADMIN_USAGE;
    }
    redisReply *r = admin_command(a, n, cmd, NULL);
    if (!r)
        return ADMIN_UNAVAILABLE;
    freeReplyObject(r);

    if (a->json) {
        struct json_writer w;
        json_init(&w, a->out);
        json_object_begin(&w);
        json_key(&w, "user");
        json_cstring(&w, user);
        json_key(&w, "set");
        json_object_begin(&w);
        for (int i = 2; i < n; i += 2) {
            json_key(&w, cmd[i]);
            json_cstring(&w, cmd[i + 1]);
        }
        json_object_end(&w);
        json_object_end(&w);
        json_finish(&w);
    } else {
        text_write(a->out, user, strlen(user));
        fputs(":", a->out);
        for (int i = 2; i < n; i += 2) {
            fprintf(a->out, " %s=", cmd[i]);
            text_write(a->out, cmd[i + 1], strlen(cmd[i + 1]));
        }
        fputs(" (popgate applies it at the user's next login)\n", a->out);
    }
    return ADMIN_OK;
}

/* HGETALL of a map key, sorted; *fields NULL and *n 0 when it is empty. */
static bool read_map(struct admin *a, const char *key, redisReply **reply, struct admin_field **fields,
                     size_t *n)
{
    const char *cmd[] = { "HGETALL", key };
    *reply = admin_command(a, 2, cmd, NULL);
    if (!*reply)
        return false;
    if (!admin_hash_fields(*reply, fields, n)) {
        freeReplyObject(*reply);
        *reply = NULL;
        return false;
    }
    return true;
}

static int map_get(struct admin *a, int argc, char **argv)
{
    char user[LOGIN_USER_MAX + 1], key[REDIS_KEY_MAX];
    int status = admin_begin_user_command(a, argc, argv, "map", user);
    if (status != ADMIN_OK)
        return status;
    redis_key(key, REDIS_KEY_MAP, user, NULL);
    redisReply *r;
    struct admin_field *f;
    size_t n;
    if (!read_map(a, key, &r, &f, &n))
        return ADMIN_UNAVAILABLE;
    if (n == 0) {
        admin_error("no overrides for user %s", user);
        status = ADMIN_NOT_FOUND;
    } else if (a->json) {
        struct json_writer w;
        json_init(&w, a->out);
        json_object_begin(&w);
        json_key(&w, "user");
        json_cstring(&w, user);
        json_key(&w, "settings");
        json_settings(&w, f, n);
        json_object_end(&w);
        json_finish(&w);
    } else {
        text_settings(a->out, f, n, "\n", "\n");
    }
    free(f);
    freeReplyObject(r);
    return status;
}

static int map_del(struct admin *a, int argc, char **argv)
{
    if (argc < 2)
        return admin_usage_error("map", "map del needs USER");
    char user[LOGIN_USER_MAX + 1], key[REDIS_KEY_MAX];
    if (!admin_user_parse(argv[1], user))
        return admin_bad_user("map");
    redis_key(key, REDIS_KEY_MAP, user, NULL);

    const char *cmd[2 + N_POLICY_KEYS];
    int n = 0;
    cmd[n++] = "HDEL";
    cmd[n++] = key;
    bool given[N_POLICY_KEYS] = { false };
    for (int i = 2; i < argc; i++) {
        const struct policy_key *k = find_key(argv[i], strlen(argv[i]));
        if (!k) {
            admin_error("unknown key %s (keys: " KEY_LIST ")", argv[i]);
            return ADMIN_USAGE;
        }
        if (!given[k - policy_keys])
            cmd[n++] = k->name;
        given[k - policy_keys] = true;
    }

    int status = admin_connect(a);
    if (status != ADMIN_OK)
        return status;
    /* Without keys: the whole hash, its size first for the report. */
    unsigned long long removed = 0;
    if (n == 2) {
        const char *hlen[] = { "HLEN", key };
        redisReply *r = admin_command(a, 2, hlen, NULL);
        if (!r)
            return ADMIN_UNAVAILABLE;
        bool ok = admin_reply_u64(r, &removed);
        freeReplyObject(r);
        if (!ok) {
            admin_error("redis: HLEN: unexpected reply");
            return ADMIN_UNAVAILABLE;
        }
        if (removed > 0) {
            const char *del[] = { "DEL", key };
            r = admin_command(a, 2, del, NULL);
            if (!r)
                return ADMIN_UNAVAILABLE;
            freeReplyObject(r);
        }
    } else {
        redisReply *r = admin_command(a, n, cmd, NULL);
        if (!r)
            return ADMIN_UNAVAILABLE;
        bool ok = admin_reply_u64(r, &removed);
        freeReplyObject(r);
        if (!ok) {
            admin_error("redis: HDEL: unexpected reply");
            return ADMIN_UNAVAILABLE;
        }
    }
    if (removed == 0) {
        admin_error(n == 2 ? "no overrides for user %s" : "user %s has none of those overrides", user);
        return ADMIN_NOT_FOUND;
    }
    if (a->json) {
        struct json_writer w;
        json_init(&w, a->out);
        json_object_begin(&w);
        json_key(&w, "user");
        json_cstring(&w, user);
        json_key(&w, "removed");
        json_u64(&w, removed);
        json_object_end(&w);
        json_finish(&w);
    } else {
        text_write(a->out, user, strlen(user));
        fprintf(a->out, ": %llu override%s removed\n", removed, removed == 1 ? "" : "s");
    }
    return ADMIN_OK;
}

static int map_list(struct admin *a, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return admin_usage_error("map", "map list takes no arguments");
    int status = admin_connect(a);
    if (status != ADMIN_OK)
        return status;
    char pattern[REDIS_KEY_PATTERN_MAX];
    redis_key_pattern(pattern, REDIS_KEY_MAP, NULL);
    char prefix[REDIS_KEY_MAX];
    size_t prefix_len = redis_key_prefix(prefix, REDIS_KEY_MAP, NULL);
    struct admin_keys keys;
    if (!admin_scan(a, pattern, &keys))
        return ADMIN_UNAVAILABLE;

    struct json_writer w;
    if (a->json) {
        json_init(&w, a->out);
        json_object_begin(&w);
        json_key(&w, "maps");
        json_array_begin(&w);
    }
    for (size_t i = 0; i < keys.n && status == ADMIN_OK; i++) {
        const char *user = keys.keys[i] + prefix_len;
        redisReply *r;
        struct admin_field *f;
        size_t n;
        if (!read_map(a, keys.keys[i], &r, &f, &n)) {
            status = ADMIN_UNAVAILABLE;
            break;
        }
        /* Gone since the SCAN (map del ran meanwhile): nothing to show. */
        if (n > 0 && a->json) {
            json_object_begin(&w);
            json_key(&w, "user");
            json_cstring(&w, user);
            json_key(&w, "settings");
            json_settings(&w, f, n);
            json_object_end(&w);
        } else if (n > 0) {
            text_write(a->out, user, strlen(user));
            fputs(": ", a->out);
            text_settings(a->out, f, n, " ", "\n");
        }
        free(f);
        freeReplyObject(r);
    }
    if (a->json && status == ADMIN_OK) {
        json_array_end(&w);
        json_object_end(&w);
        json_finish(&w);
    }
    admin_keys_free(&keys);
    return status;
}

static const struct admin_subcommand map_commands[] = {
    { "set", map_set },
    { "get", map_get },
    { "del", map_del },
    { "list", map_list },
};

int admin_map_main(struct admin *a, int argc, char **argv)
{
    return admin_dispatch(a, "map", map_commands, sizeof map_commands / sizeof map_commands[0],
                          argc, argv);
}
