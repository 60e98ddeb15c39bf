/* admin_device.c: `popgate-admin device`, a user's devices and their state
 * (its dev, got, hide and lock keys: translate/redis_keys.h, device_state.h).
 *
 * A device exists while any of its dev, got or hide keys does. The user's
 * read set (mail retrieved by any device) is the user's, not a device's: no
 * command here touches it. popgate acts on a mark-all request (the dev hash's
 * mark_all field) at that device's next login.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "admin_user.h"
#include "admin_output.h"
#include "id_list.h"

/* Long enough for every dev hash field popgate writes (an address, a view
 * name, decimal numbers); a longer foreign value is cut, not overrun. */
#define FIELD_MAX 128

struct device_args {
    char user[LOGIN_USER_MAX + 1];
    const char *device;
    struct device_keys keys;
};

static int parse_device_args(int argc, char **argv, struct device_args *d)
{
    if (argc != 3)
        return admin_usage_error("device", "device %s needs USER and DEVICE", argv[0]);
    if (!admin_user_parse(argv[1], d->user))
        return admin_bad_user("device");
    if (!device_name_valid(argv[2], strlen(argv[2])))
        return admin_usage_error("device", "invalid device name (1 to 32 of A-Z a-z 0-9 . _ -)");
    d->device = argv[2];
    device_keys_init(&d->keys, d->user, d->device);
    return ADMIN_OK;
}

/* A command with an integer answer (EXISTS, DEL, SCARD, STRLEN, HSET); false after
 * reporting. */
static bool command_u64(struct admin *a, int argc, const char **argv, unsigned long long *out)
{
    redisReply *r = admin_command(a, argc, argv, NULL);
    if (!r)
        return false;
    bool ok = admin_reply_u64(r, out);
    freeReplyObject(r);
    if (!ok)
        admin_error("redis: %s: unexpected reply", argv[0]);
    return ok;
}

/* How many ids an id list holds (translate/id_list.h), or a set of 16-hex
 * ids as the previous release wrote it (popgate converts it at the device's
 * next login); 0 when absent. */
static bool id_count(struct admin *a, const char *key, unsigned long long *out)
{
    const char *type_cmd[] = { "TYPE", key };
    redisReply *r = admin_command(a, 2, type_cmd, NULL);
    if (!r)
        return false;
    bool is_set = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "set") == 0;
    freeReplyObject(r);
    if (is_set) {
        const char *scard[] = { "SCARD", key };
        return command_u64(a, 2, scard, out);
    }
    const char *get[] = { "GET", key };
    r = admin_command(a, 2, get, NULL);
    if (!r)
        return false;
    uint64_t n = 0;
    bool ok = r->type == REDIS_REPLY_NIL || (r->type == REDIS_REPLY_STRING && id_list_count(r->str, r->len, &n));
    freeReplyObject(r);
    if (!ok)
        admin_error("redis: %s: not an id list", key);
    *out = n;
    return ok;
}

static void not_found(const struct device_args *d)
{
    admin_error("user %s has no device %s", d->user, d->device);
}

/* ---- list ----------------------------------------------------------------- */

struct device_row {
    char first_seen[FIELD_MAX];   /* ISO 8601, or as stored; empty when absent */
    char last_seen[FIELD_MAX];
    char last_addr[FIELD_MAX];
    char view[FIELD_MAX];
    unsigned long long retrieved, got, hidden;
    bool in_session, mark_all;
};

/* A time field as ISO 8601 UTC; a value that is not Unix seconds is shown as
 * it is stored. */
static void time_field(const struct admin_field *f, size_t n, const char *name, char out[FIELD_MAX])
{
    _Static_assert(FIELD_MAX >= ISO_TIME_MAX, "an ISO time fits a field");
    char raw[FIELD_MAX];
    if (!admin_field_get(f, n, name, raw, sizeof raw))
        out[0] = '\0';
    else if (!iso_time_from_text(raw, out))
        memcpy(out, raw, FIELD_MAX);
}

static bool read_device(struct admin *a, const char *user, const char *device, struct device_row *row)
{
    struct device_keys k = { .read = "" };  /* filled by device_keys_init; zeroed for cppcheck */
    device_keys_init(&k, user, device);
    memset(row, 0, sizeof *row);

    const char *hgetall[] = { "HGETALL", k.dev };
    redisReply *r = admin_command(a, 2, hgetall, NULL);
    if (!r)
        return false;
    struct admin_field *f;
    size_t n;
    if (!admin_hash_fields(r, &f, &n)) {
        freeReplyObject(r);
        return false;
    }
    char value[FIELD_MAX];
    time_field(f, n, "first_seen", row->first_seen);
    time_field(f, n, "last_seen", row->last_seen);
    admin_field_get(f, n, "last_addr", row->last_addr, sizeof row->last_addr);
    admin_field_get(f, n, "view", row->view, sizeof row->view);
    if (admin_field_get(f, n, "retrieved", value, sizeof value))
        row->retrieved = strtoull(value, NULL, 10);
    row->mark_all = admin_field_get(f, n, "mark_all", value, sizeof value) && strcmp(value, "0") != 0;
    free(f);
    freeReplyObject(r);

    unsigned long long locked = 0;
    const char *exists_lock[] = { "EXISTS", k.lock };
    if (!id_count(a, k.got, &row->got) || !id_count(a, k.hide, &row->hidden) ||
        !command_u64(a, 2, exists_lock, &locked))
        return false;
    row->in_session = locked > 0;
    return true;
}

static void json_row(struct json_writer *w, const char *device, const struct device_row *row)
{
    json_object_begin(w);
    json_key(w, "device");
    json_cstring(w, device);
    const char *texts[] = { "first_seen", row->first_seen, "last_seen", row->last_seen,
                            "last_addr", row->last_addr, "view", row->view };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i += 2) {
        json_key(w, texts[i]);
        if (texts[i + 1][0])
            json_cstring(w, texts[i + 1]);
        else
            json_null(w);
    }
    json_key(w, "retrieved");
    json_u64(w, row->retrieved);
    json_key(w, "got");
    json_u64(w, row->got);
    json_key(w, "hidden");
    json_u64(w, row->hidden);
    json_key(w, "in_session");
    json_bool(w, row->in_session);
    json_key(w, "mark_all_pending");
    json_bool(w, row->mark_all);
    json_object_end(w);
}

static bool table_row(struct text_table *t, const char *device, const struct device_row *row)
{
    char retrieved[24], got[24], hidden[24];
    snprintf(retrieved, sizeof retrieved, "%llu", row->retrieved);
    snprintf(got, sizeof got, "%llu", row->got);
    snprintf(hidden, sizeof hidden, "%llu", row->hidden);
    const char *state = row->in_session && row->mark_all ? "in-session,mark-all"
                        : row->in_session              ? "in-session"
                        : row->mark_all                ? "mark-all"
                                                       : "-";
    const char *cells[] = { device, row->first_seen[0] ? row->first_seen : "-",
                            row->last_seen[0] ? row->last_seen : "-", row->last_addr[0] ? row->last_addr : "-",
                            retrieved, row->view[0] ? row->view : "-", got, hidden, state };
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        if (!table_add(t, cells[i]))
            return false;
    return true;
}

static int device_list(struct admin *a, int argc, char **argv)
{
    char user[LOGIN_USER_MAX + 1];
    int status = admin_begin_user_command(a, argc, argv, "device", user);
    if (status != ADMIN_OK)
        return status;

    char prefix[REDIS_KEY_MAX], pattern[REDIS_KEY_PATTERN_MAX];
    size_t prefix_len = redis_key_prefix(prefix, REDIS_KEY_DEV, user);
    redis_key_pattern(pattern, REDIS_KEY_DEV, user);
    struct admin_keys keys;
    if (!admin_scan(a, pattern, &keys))
        return ADMIN_UNAVAILABLE;

    struct json_writer w;
    struct text_table t;
    static const char *const header[] = { "DEVICE", "FIRST_SEEN", "LAST_SEEN", "LAST_ADDR", "RETRIEVED",
                                          "VIEW", "GOT", "HIDDEN", "STATE" };
    table_init(&t, sizeof header / sizeof header[0]);
    bool table_ok = true;
    for (size_t i = 0; i < sizeof header / sizeof header[0]; i++)
        table_ok = table_ok && table_add(&t, header[i]);
    json_init(&w, a->out);
    if (a->json) {
        json_object_begin(&w);
        json_key(&w, "user");
        json_cstring(&w, user);
        json_key(&w, "devices");
        json_array_begin(&w);
    }

    size_t shown = 0;
    for (size_t i = 0; i < keys.n && status == ADMIN_OK; i++) {
        const char *device = keys.keys[i] + prefix_len;
        /* A key another program wrote under the user's tag. */
        if (!device_name_valid(device, strlen(device)))
            continue;
        struct device_row row;
        if (!read_device(a, user, device, &row)) {
            status = ADMIN_UNAVAILABLE;
            break;
        }
        if (a->json)
            json_row(&w, device, &row);
        else
            table_ok = table_ok && table_row(&t, device, &row);
        shown++;
    }
    if (status == ADMIN_OK && !table_ok) {
        admin_error("out of memory");
        status = ADMIN_UNAVAILABLE;
    }
    if (status == ADMIN_OK && shown == 0) {
        admin_error("user %s has no devices", user);
        status = ADMIN_NOT_FOUND;
    }
    if (status == ADMIN_OK && a->json) {
        json_array_end(&w);
        json_object_end(&w);
        json_finish(&w);
    } else if (status == ADMIN_OK) {
        table_print(&t, a->out);
    }
    table_free(&t);
    admin_keys_free(&keys);
    return status;
}

/* ---- reset, mark-all, forget ---------------------------------------------- */

/* got and hidden: what reset forgot (only reset reports them). */
static void json_result(struct admin *a, const struct device_args *d, const char *action,
                        unsigned long long got, unsigned long long hidden)
{
    struct json_writer w;
    json_init(&w, a->out);
    json_object_begin(&w);
    json_key(&w, "user");
    json_cstring(&w, d->user);
    json_key(&w, "device");
    json_cstring(&w, d->device);
    json_key(&w, "action");
    json_cstring(&w, action);
    if (strcmp(action, "reset") == 0) {
        json_key(&w, "got_forgotten");
        json_u64(&w, got);
        json_key(&w, "hidden_forgotten");
        json_u64(&w, hidden);
    }
    json_object_end(&w);
    json_finish(&w);
}

static int device_reset(struct admin *a, int argc, char **argv)
{
    struct device_args d;
    int status = parse_device_args(argc, argv, &d);
    if (status != ADMIN_OK)
        return status;
    status = admin_connect(a);
    if (status != ADMIN_OK)
        return status;

    unsigned long long exists, got, hidden, deleted;
    const char *exists_cmd[] = { "EXISTS", d.keys.dev, d.keys.got, d.keys.hide };
    if (!command_u64(a, 4, exists_cmd, &exists))
        return ADMIN_UNAVAILABLE;
    if (exists == 0) {
        not_found(&d);
        return ADMIN_NOT_FOUND;
    }
    const char *del[] = { "DEL", d.keys.got, d.keys.hide, d.keys.rtime };
    if (!id_count(a, d.keys.got, &got) || !id_count(a, d.keys.hide, &hidden) ||
        !command_u64(a, 4, del, &deleted))
        return ADMIN_UNAVAILABLE;
    if (a->json) {
        json_result(a, &d, "reset", got, hidden);
    } else {
        text_write(a->out, d.user, strlen(d.user));
        fprintf(a->out, " device %s: reset, %llu downloaded and %llu hidden forgotten\n", d.device, got, hidden);
    }
    return ADMIN_OK;
}

static int device_mark_all(struct admin *a, int argc, char **argv)
{
    struct device_args d;
    int status = parse_device_args(argc, argv, &d);
    if (status != ADMIN_OK)
        return status;
    status = admin_connect(a);
    if (status != ADMIN_OK)
        return status;

    unsigned long long exists, unused;
    const char *exists_cmd[] = { "EXISTS", d.keys.dev };
    if (!command_u64(a, 2, exists_cmd, &exists))
        return ADMIN_UNAVAILABLE;
    if (exists == 0 && !a->new_device) {
        admin_error("user %s has no device %s (--new prepares a device that has not logged in yet)", d.user,
                    d.device);
        return ADMIN_NOT_FOUND;
    }
    const char *hset[] = { "HSET", d.keys.dev, "mark_all", "1" };
    if (!command_u64(a, 4, hset, &unused))
        return ADMIN_UNAVAILABLE;
    if (exists == 0) {
        /* As every device key does: gone device_ttl later if the device never
         * logs in. */
        char ttl[16];
        snprintf(ttl, sizeof ttl, "%u", (unsigned)a->config->device_ttl);
        const char *expire[] = { "EXPIRE", d.keys.dev, ttl };
        if (!command_u64(a, 3, expire, &unused))
            return ADMIN_UNAVAILABLE;
    }
    if (a->json) {
        json_result(a, &d, "mark-all", 0, 0);
    } else {
        text_write(a->out, d.user, strlen(d.user));
        fprintf(a->out, " device %s: all mail is recorded as downloaded at its next login\n", d.device);
    }
    return ADMIN_OK;
}

static int device_forget(struct admin *a, int argc, char **argv)
{
    struct device_args d;
    int status = parse_device_args(argc, argv, &d);
    if (status != ADMIN_OK)
        return status;
    status = admin_connect(a);
    if (status != ADMIN_OK)
        return status;

    unsigned long long deleted;
    const char *del[] = { "DEL", d.keys.dev, d.keys.got, d.keys.hide, d.keys.rtime, d.keys.delay };
    if (!command_u64(a, 6, del, &deleted))
        return ADMIN_UNAVAILABLE;
    if (deleted == 0) {
        not_found(&d);
        return ADMIN_NOT_FOUND;
    }
    if (a->json) {
        json_result(a, &d, "forget", 0, 0);
    } else {
        text_write(a->out, d.user, strlen(d.user));
        fprintf(a->out, " device %s: forgotten; its next login starts as a new device\n", d.device);
    }
    return ADMIN_OK;
}

static const struct admin_subcommand device_commands[] = {
    { "list", device_list },
    { "reset", device_reset },
    { "mark-all", device_mark_all },
    { "forget", device_forget },
};

int admin_device_main(struct admin *a, int argc, char **argv)
{
    return admin_dispatch(a, "device", device_commands, sizeof device_commands / sizeof device_commands[0],
                          argc, argv);
}
