/* admin_app_password.c: `popgate-admin app-password add|list|revoke`, a
 * device's password for mappings with auth = oauth2 (its apw hash:
 * translate/redis_keys.h; the record: app_password.h), and the helpers
 * admin_oauth.c shares (admin_app_password.h).
 *
 * A password is shown once, as text: --json is refused for add, since a
 * JSON document is what scripts keep, and no secret goes into one. */
#include "admin_app_password.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "admin_output.h"
#include "admin_user.h"
#include "config.h"
#include "redis_keys.h"

const struct mapping *admin_oauth_mapping(struct admin *a, const char *user, const char *group)
{
    const struct mapping *m = config_find_mapping(a->config, user);
    if (!m || m->auth != MAPPING_AUTH_OAUTH2) {
        admin_error("%s: the mapping of %s does not have auth = oauth2 (see popgate.conf(5))", group, user);
        return NULL;
    }
    return m;
}

bool admin_read_app_password(const char *prompt, char *buf)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios saved, quiet;
    bool echo_off = false;
    if (tty) {
        fputs(prompt, stderr);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &saved) == 0) {
            quiet = saved;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
        }
    }
    bool got = fgets(buf, APP_PASSWORD_TYPED_MAX + 1, stdin) != NULL;
    if (echo_off) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }
    if (!got) {
        buf[0] = '\0';
        return false;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] != '\0';
}

long admin_app_password_count(struct admin *a, const char *user)
{
    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_APP_PASSWORD, user, NULL);
    const char *argv[] = { "HLEN", key };
    redisReply *r = admin_command(a, 2, argv, NULL);
    if (!r)
        return -1;
    unsigned long long n = 0;
    bool ok = admin_reply_u64(r, &n);
    freeReplyObject(r);
    return ok ? (long)n : -1;
}

int admin_unlock_data_key(struct admin *a, const char *user, uint8_t data_key[ENVELOPE_KEY_LEN])
{
    char typed[APP_PASSWORD_TYPED_MAX + 1];
    char prompt[LOGIN_USER_MAX + 96];
    snprintf(prompt, sizeof prompt, "An app password of one of %s's devices: ", user);
    if (!admin_read_app_password(prompt, typed)) {
        admin_error("%s has app passwords: give one of them on stdin (popgate-admin(8))", user);
        return ADMIN_USAGE;
    }
    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_APP_PASSWORD, user, NULL);
    const char *argv[] = { "HGETALL", key };
    redisReply *r = admin_command(a, 2, argv, NULL);
    if (!r) {
        OPENSSL_cleanse(typed, sizeof typed);
        return ADMIN_UNAVAILABLE;
    }
    struct admin_field *f = NULL;
    size_t n = 0;
    int status = admin_hash_fields(r, &f, &n) ? ADMIN_USAGE : ADMIN_UNAVAILABLE;
    for (size_t i = 0; i < n && status == ADMIN_USAGE; i++) {
        char device[DEVICE_NAME_MAX + 1];
        struct app_password_record rec;
        if (f[i].name_len > DEVICE_NAME_MAX ||
            app_password_record_parse(f[i].value, f[i].value_len, &rec) != APP_PASSWORD_OK)
            continue;
        memcpy(device, f[i].name, f[i].name_len);
        device[f[i].name_len] = '\0';
        if (app_password_check(&rec, user, device, typed, strlen(typed), data_key) == APP_PASSWORD_OK)
            status = ADMIN_OK;
    }
    free(f);
    freeReplyObject(r);
    OPENSSL_cleanse(typed, sizeof typed);
    if (status == ADMIN_USAGE)
        admin_error("that is not an app password of any of %s's devices", user);
    return status;
}

int admin_issue_app_password(const char *user, const char *device, const uint8_t data_key[ENVELOPE_KEY_LEN],
                             char text[APP_PASSWORD_TEXT_MAX], char record[APP_PASSWORD_RECORD_MAX])
{
    struct app_password_record rec;
    enum app_password_status st = app_password_issue(user, device, data_key, text, &rec);
    bool ok = st == APP_PASSWORD_OK && app_password_record_format(&rec, record, APP_PASSWORD_RECORD_MAX);
    OPENSSL_cleanse(&rec, sizeof rec);
    if (!ok) {
        OPENSSL_cleanse(text, APP_PASSWORD_TEXT_MAX);
        admin_error("cannot issue an app password: %s", app_password_status_text(st));
        return ADMIN_UNAVAILABLE;
    }
    return ADMIN_OK;
}

void admin_show_app_password(struct admin *a, const char *user, const char *device, const char *text)
{
    fputs("app password for ", a->out);
    text_write(a->out, user, strlen(user));
    fputc('#', a->out);
    text_write(a->out, device, strlen(device));
    fprintf(a->out, " (shown once: enter it in the device now):\n%s\n", text);
}

/* ---- add ------------------------------------------------------------------ */

static int parse_user_device(int argc, char **argv, char *user, const char **device)
{
    if (argc != 3)
        return admin_usage_error("app-password", "app-password %s needs USER and DEVICE", argv[0]);
    if (!admin_user_parse(argv[1], user))
        return admin_bad_user("app-password");
    if (!device_name_valid(argv[2], strlen(argv[2])))
        return admin_usage_error("app-password", "invalid device name (1 to 32 of A-Z a-z 0-9 . _ -)");
    *device = argv[2];
    return ADMIN_OK;
}

static int app_password_add(struct admin *a, int argc, char **argv)
{
    char user[LOGIN_USER_MAX + 1];
    const char *device = NULL;
    int status = parse_user_device(argc, argv, user, &device);
    if (status != ADMIN_OK)
        return status;
    if (a->json)
        return admin_usage_error("app-password", "app-password add shows the password once, as text: no --json");
    if ((status = admin_connect(a)) != ADMIN_OK)
        return status;
    const struct mapping *m = admin_oauth_mapping(a, user, "app-password");
    if (!m)
        return ADMIN_USAGE;
    long existing = admin_app_password_count(a, user);
    if (existing < 0)
        return ADMIN_UNAVAILABLE;
    uint8_t data_key[ENVELOPE_KEY_LEN];
    if (existing > 0) {
        status = admin_unlock_data_key(a, user, data_key);
    } else if (m->oauth.grant == OAUTH_GRANT_DEVICE) {
        /* The first device's password comes with the consent: the data key
         * must seal the refresh token the consent gives. */
        admin_error("%s has no app password yet: run popgate-admin oauth authorize %s %s", user, user, device);
        return ADMIN_USAGE;
    } else {
        status = envelope_new_key(data_key) == ENVELOPE_OK ? ADMIN_OK : ADMIN_UNAVAILABLE;
    }
    char text[APP_PASSWORD_TEXT_MAX], record[APP_PASSWORD_RECORD_MAX];
    if (status == ADMIN_OK)
        status = admin_issue_app_password(user, device, data_key, text, record);
    OPENSSL_cleanse(data_key, sizeof data_key);
    if (status != ADMIN_OK)
        return status;
    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_APP_PASSWORD, user, NULL);
    const char *argv_set[] = { "HSETNX", key, device, record };
    redisReply *r = admin_command(a, 4, argv_set, NULL);
    unsigned long long added = 0;
    if (r) {
        admin_reply_u64(r, &added);
        freeReplyObject(r);
    }
    if (!r) {
        status = ADMIN_UNAVAILABLE;
    } else if (!added) {
        admin_error("%s#%s has an app password already: revoke it first", user, device);
        status = ADMIN_USAGE;
    } else {
        admin_show_app_password(a, user, device, text);
    }
    OPENSSL_cleanse(text, sizeof text);
    return status;
}

/* ---- list ----------------------------------------------------------------- */

static int by_string(const void *x, const void *y)
{
    const redisReply *a = *(const redisReply *const *)x, *b = *(const redisReply *const *)y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int app_password_list(struct admin *a, int argc, char **argv)
{
    char user[LOGIN_USER_MAX + 1];
    int status = admin_begin_user_command(a, argc, argv, "app-password", user);
    if (status != ADMIN_OK)
        return status;
    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_APP_PASSWORD, user, NULL);
    const char *argv_keys[] = { "HKEYS", key };
    redisReply *r = admin_command(a, 2, argv_keys, NULL);
    if (!r)
        return ADMIN_UNAVAILABLE;
    bool strings = r->type == REDIS_REPLY_ARRAY;
    for (size_t i = 0; strings && i < r->elements; i++)
        strings = r->element[i]->type == REDIS_REPLY_STRING;
    if (!strings) {
        freeReplyObject(r);
        admin_error("redis: HKEYS: unexpected reply");
        return ADMIN_UNAVAILABLE;
    }
    /* Sorted, as every list popgate-admin prints. */
    qsort(r->element, r->elements, sizeof r->element[0], by_string);
    struct json_writer w;
    json_init(&w, a->out);
    if (a->json) {
        json_object_begin(&w);
        json_key(&w, "user");
        json_cstring(&w, user);
        json_key(&w, "devices");
        json_array_begin(&w);
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (a->json) {
            json_string(&w, e->str, e->len);
        } else {
            text_write(a->out, e->str, e->len);
            fputc('\n', a->out);
        }
    }
    if (a->json) {
        json_array_end(&w);
        json_object_end(&w);
        json_finish(&w);
    }
    size_t n = r->elements;
    freeReplyObject(r);
    if (n == 0 && !a->json) {
        admin_error("%s has no app passwords", user);
        return ADMIN_NOT_FOUND;
    }
    return ADMIN_OK;
}

/* ---- revoke --------------------------------------------------------------- */

static int app_password_revoke(struct admin *a, int argc, char **argv)
{
    char user[LOGIN_USER_MAX + 1];
    const char *device = NULL;
    int status = parse_user_device(argc, argv, user, &device);
    if (status != ADMIN_OK || (status = admin_connect(a)) != ADMIN_OK)
        return status;
    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_APP_PASSWORD, user, NULL);
    const char *argv_del[] = { "HDEL", key, device };
    redisReply *r = admin_command(a, 3, argv_del, NULL);
    if (!r)
        return ADMIN_UNAVAILABLE;
    unsigned long long removed = 0;
    admin_reply_u64(r, &removed);
    freeReplyObject(r);
    if (!removed) {
        admin_error("%s#%s has no app password", user, device);
        return ADMIN_NOT_FOUND;
    }
    long left = admin_app_password_count(a, user);
    if (left < 0)
        return ADMIN_UNAVAILABLE;
    if (left == 0) {
        /* Nothing can open the sealed tokens now: drop them, so status
         * shows the user as not authorised instead of failing obscurely. */
        char oauth[REDIS_KEY_MAX];
        redis_key(oauth, REDIS_KEY_OAUTH, user, NULL);
        const char *argv_drop[] = { "DEL", oauth };
        if (!(r = admin_command(a, 2, argv_drop, NULL)))
            return ADMIN_UNAVAILABLE;
        freeReplyObject(r);
    }
    if (a->json) {
        struct json_writer w;
        json_init(&w, a->out);
        json_object_begin(&w);
        json_key(&w, "user");
        json_cstring(&w, user);
        json_key(&w, "device");
        json_cstring(&w, device);
        json_key(&w, "revoked");
        json_bool(&w, true);
        json_key(&w, "tokens_forgotten");
        json_bool(&w, left == 0);
        json_object_end(&w);
        json_finish(&w);
    } else {
        fprintf(a->out, "revoked the app password of %s#%s%s\n", user, device,
                left == 0 ? "; it was the last one: the stored tokens are forgotten too" : "");
    }
    return ADMIN_OK;
}

int admin_app_password_main(struct admin *a, int argc, char **argv)
{
    static const struct admin_subcommand table[] = {
        { "add", app_password_add },
        { "list", app_password_list },
        { "revoke", app_password_revoke },
    };
    return admin_dispatch(a, "app-password", table, sizeof table / sizeof table[0], argc, argv);
}
