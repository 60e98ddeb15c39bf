/* admin_oauth.c: `popgate-admin oauth authorize|status|revoke`, a user's
 * OAuth grant for mappings with auth = oauth2 (the oauth hash:
 * translate/redis_keys.h; README.md "Microsoft 365 and Google Workspace").
 *
 * authorize runs the device authorization grant (RFC 8628) from the
 * terminal: it prints the verification URL and the code on stderr, polls
 * the token endpoint as the provider asks (interval, slow_down), and stores
 * the refresh token sealed under the user's data key. That key is new for a
 * user without app passwords (then DEVICE is required and gets the first
 * one); otherwise one of the user's app passwords, read from stdin, unlocks
 * it, so every device keeps working.
 *
 * Nothing here prints or stores a token in the clear; errors carry the
 * provider's error code (oauth_client.h's reason). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "admin.h"
#include "admin_app_password.h"
#include "admin_output.h"
#include "admin_user.h"
#include "base64.h"
#include "config.h"
#include "oauth_client.h"
#include "oauth_store.h"
#include "redis_keys.h"
#include "sasl_plain.h"
#include "token_envelope.h"

/* How long one request to the provider may take (the device flow itself
 * lasts as long as the provider's expires_in). */
#define ADMIN_OAUTH_TIMEOUT_MS 30000
#define FIELD_MAX 256

/* Seal text under the data key for user, base64 into out (cap). */
static bool seal_b64(const uint8_t key[ENVELOPE_KEY_LEN], const char *purpose, const char *user, const char *text,
                     size_t len, char *out, size_t cap)
{
    size_t raw_cap = ENVELOPE_SEALED_LEN(len), raw_len = 0;
    uint8_t *raw = malloc(raw_cap);
    bool ok = raw && envelope_seal(key, purpose, user, (const uint8_t *)text, len, raw, raw_cap, &raw_len) ==
                         ENVELOPE_OK &&
              base64_encode(raw, raw_len, out, cap);
    if (raw) {
        OPENSSL_cleanse(raw, raw_cap);
        free(raw);
    }
    return ok;
}

/* ---- authorize ------------------------------------------------------------ */

struct show_arg {
    const char *user;
};

/* On stderr, at once: stdout is the command's result, written at the end. */
static void show_code(const struct oauth_device_response *dev, void *arg)
{
    const struct show_arg *sa = arg;
    /* The user name as typed, the address and code as the provider sent
     * them: shown through text_write, like every other value. */
    fputs("To authorise popgate for ", stderr);
    text_write(stderr, sa->user, strlen(sa->user));
    fputs(", sign in as that user at\n  ", stderr);
    text_write(stderr, dev->verification_uri, strlen(dev->verification_uri));
    fputs("\nand enter the code\n  ", stderr);
    text_write(stderr, dev->user_code, strlen(dev->user_code));
    fputc('\n', stderr);
    if (dev->verification_uri_complete[0]) {
        fputs("(or open ", stderr);
        text_write(stderr, dev->verification_uri_complete, strlen(dev->verification_uri_complete));
        fputs(")\n", stderr);
    }
    fprintf(stderr, "The code expires in %ld minutes. Waiting...\n", (dev->expires_in + 59) / 60);
    fflush(stderr);
}

static int oauth_authorize(struct admin *a, int argc, char **argv)
{
    if (argc != 2 && argc != 3)
        return admin_usage_error("oauth", "oauth authorize needs USER and optionally DEVICE");
    char user[LOGIN_USER_MAX + 1];
    if (!admin_user_parse(argv[1], user))
        return admin_bad_user("oauth");
    const char *device = argc == 3 ? argv[2] : NULL;
    if (device && !device_name_valid(device, strlen(device)))
        return admin_usage_error("oauth", "invalid device name (1 to 32 of A-Z a-z 0-9 . _ -)");
    if (a->json && device)
        return admin_usage_error("oauth", "oauth authorize with DEVICE shows an app password once, as text: "
                                          "no --json");
    int status = admin_connect(a);
    if (status != ADMIN_OK)
        return status;
    const struct mapping *m = admin_oauth_mapping(a, user, "oauth");
    if (!m)
        return ADMIN_USAGE;
    if (m->oauth.grant != OAUTH_GRANT_DEVICE) {
        admin_error("oauth: the mapping of %s uses oauth2_grant = %s: no per-user consent; issue app passwords "
                    "with popgate-admin app-password add", user, oauth_grant_name(m->oauth.grant));
        return ADMIN_USAGE;
    }
    long existing = admin_app_password_count(a, user);
    if (existing < 0)
        return ADMIN_UNAVAILABLE;
    if (existing == 0 && !device) {
        admin_error("oauth: %s has no app password yet: name the DEVICE that gets the first one", user);
        return ADMIN_USAGE;
    }
    uint8_t data_key[ENVELOPE_KEY_LEN];
    status = existing > 0 ? admin_unlock_data_key(a, user, data_key)
                          : envelope_new_key(data_key) == ENVELOPE_OK ? ADMIN_OK : ADMIN_UNAVAILABLE;
    if (status != ADMIN_OK)
        return status;

    struct oauth_token_response *tok = calloc(1, sizeof *tok);
    struct oauth_result r = { .outcome = OAUTH_TEMPORARY };
    char *rt = malloc(OAUTH_STORED_RT_MAX);
    char *at = malloc(OAUTH_STORED_AT_MAX);
    if (!tok || !rt || !at) {
        admin_error("out of memory");
        status = ADMIN_UNAVAILABLE;
    } else {
        struct show_arg sa = { user };
        struct http_client_options http = { .user_agent = "popgate-admin" };
        oauth_device_authorize_blocking(&http, &m->oauth.identity, ADMIN_OAUTH_TIMEOUT_MS, show_code, &sa, tok, &r);
        if (r.outcome != OAUTH_OK) {
            admin_error("oauth: %s: the provider answered %s%s%s", user, oauth_outcome_name(r.outcome),
                        r.reason[0] ? ": " : "", r.reason);
            status = r.outcome == OAUTH_TEMPORARY ? ADMIN_UNAVAILABLE : ADMIN_USAGE;
        } else if (!r.refresh_token || r.refresh_token_len == 0) {
            admin_error("oauth: %s: the provider issued no refresh token (is offline_access in oauth2_scope?)",
                        user);
            status = ADMIN_USAGE;
        } else if (!seal_b64(data_key, ENVELOPE_PURPOSE_REFRESH_TOKEN, user, r.refresh_token, r.refresh_token_len,
                             rt, OAUTH_STORED_RT_MAX) ||
                   !seal_b64(data_key, ENVELOPE_PURPOSE_ACCESS_TOKEN, user, r.access_token, r.access_token_len,
                             at, OAUTH_STORED_AT_MAX)) {
            admin_error("oauth: cannot seal the tokens");
            status = ADMIN_UNAVAILABLE;
        }
    }
    char text[APP_PASSWORD_TEXT_MAX] = "", record[APP_PASSWORD_RECORD_MAX] = "";
    bool new_device = false;
    if (status == ADMIN_OK && device) {
        /* A device that has a password keeps it. */
        char key[REDIS_KEY_MAX];
        redis_key(key, REDIS_KEY_APP_PASSWORD, user, NULL);
        const char *argv_ex[] = { "HEXISTS", key, device };
        redisReply *x = admin_command(a, 3, argv_ex, NULL);
        unsigned long long has = 0;
        if (!x)
            status = ADMIN_UNAVAILABLE;
        else {
            admin_reply_u64(x, &has);
            freeReplyObject(x);
        }
        new_device = status == ADMIN_OK && !has;
        if (new_device)
            status = admin_issue_app_password(user, device, data_key, text, record);
    }
    if (status == ADMIN_OK) {
        /* One transaction: the new refresh token with a new generation (a
         * login refreshing with the old one then does not overwrite it),
         * the access token, and the first device's password. */
        char oauth[REDIS_KEY_MAX], apw[REDIS_KEY_MAX], now[24], exp[24];
        redis_key(oauth, REDIS_KEY_OAUTH, user, NULL);
        redis_key(apw, REDIS_KEY_APP_PASSWORD, user, NULL);
        time_t t = time(NULL);
        long life = r.expires_in > 0 ? r.expires_in : 300;
        snprintf(now, sizeof now, "%lld", (long long)t);
        snprintf(exp, sizeof exp, "%lld", (long long)(t + life - (life >= 120 ? 60 : life / 2)));
        const char *multi[] = { "MULTI" };
        const char *hset[] = { "HSET", oauth, "rt", rt, "at", at, "at_exp", exp, "status", "ok", "reason", "",
                               "authorized_at", now };
        const char *incr[] = { "HINCRBY", oauth, "rt_gen", "1" };
        const char *setpw[] = { "HSET", apw, device ? device : "", record };
        const char *exec[] = { "EXEC" };
        redisReply *x;
        bool ok = (x = admin_command(a, 1, multi, NULL)) != NULL;
        freeReplyObject(x);
        ok = ok && (x = admin_command(a, sizeof hset / sizeof hset[0], hset, NULL)) != NULL;
        if (ok)
            freeReplyObject(x);
        ok = ok && (x = admin_command(a, 4, incr, NULL)) != NULL;
        if (ok)
            freeReplyObject(x);
        if (ok && new_device) {
            ok = (x = admin_command(a, 4, setpw, NULL)) != NULL;
            if (ok)
                freeReplyObject(x);
        }
        ok = ok && (x = admin_command(a, 1, exec, NULL)) != NULL;
        if (ok) {
            ok = x->type == REDIS_REPLY_ARRAY;
            freeReplyObject(x);
        }
        status = ok ? ADMIN_OK : ADMIN_UNAVAILABLE;
    }
    if (status == ADMIN_OK) {
        if (a->json) {
            struct json_writer w;
            json_init(&w, a->out);
            json_object_begin(&w);
            json_key(&w, "user");
            json_cstring(&w, user);
            json_key(&w, "authorized");
            json_bool(&w, true);
            json_object_end(&w);
            json_finish(&w);
        } else {
            fputs("authorised ", a->out);
            text_write(a->out, user, strlen(user));
            fputc('\n', a->out);
            if (new_device)
                admin_show_app_password(a, user, device, text);
        }
    }
    OPENSSL_cleanse(data_key, sizeof data_key);
    OPENSSL_cleanse(text, sizeof text);
    OPENSSL_cleanse(record, sizeof record);
    if (tok) {
        oauth_token_response_wipe(tok);
        free(tok);
    }
    if (rt) {
        OPENSSL_cleanse(rt, OAUTH_STORED_RT_MAX);
        free(rt);
    }
    if (at) {
        OPENSSL_cleanse(at, OAUTH_STORED_AT_MAX);
        free(at);
    }
    return status;
}

/* ---- status --------------------------------------------------------------- */

struct status_row {
    char status[FIELD_MAX];       /* ok, reauth-needed, not-authorised */
    char reason[FIELD_MAX];
    char authorized_at[FIELD_MAX];
    char refreshed_at[FIELD_MAX];
    char access_until[FIELD_MAX];
    unsigned long long refreshes;
    long devices;
    const char *grant;
};

static void time_of(const struct admin_field *f, size_t n, const char *name, char out[FIELD_MAX])
{
    char raw[FIELD_MAX];
    if (!admin_field_get(f, n, name, raw, sizeof raw) || !iso_time_from_text(raw, out))
        out[0] = '\0';
}

static bool read_status(struct admin *a, const char *user, struct status_row *row)
{
    memset(row, 0, sizeof *row);
    const struct mapping *m = config_find_mapping(a->config, user);
    row->grant = m && m->auth == MAPPING_AUTH_OAUTH2 ? oauth_grant_name(m->oauth.grant) : "none";
    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_OAUTH, user, NULL);
    const char *argv[] = { "HGETALL", key };
    redisReply *r = admin_command(a, 2, argv, NULL);
    if (!r)
        return false;
    struct admin_field *f;
    size_t n;
    if (!admin_hash_fields(r, &f, &n)) {
        freeReplyObject(r);
        return false;
    }
    char value[FIELD_MAX];
    /* Only these fields: rt and at are sealed tokens, never printed. */
    if (!admin_field_get(f, n, "status", row->status, sizeof row->status) || !row->status[0])
        snprintf(row->status, sizeof row->status, "%s", n ? "ok" : "not-authorised");
    admin_field_get(f, n, "reason", row->reason, sizeof row->reason);
    time_of(f, n, "authorized_at", row->authorized_at);
    time_of(f, n, "refreshed_at", row->refreshed_at);
    time_of(f, n, "at_exp", row->access_until);
    if (admin_field_get(f, n, "refreshes", value, sizeof value))
        row->refreshes = strtoull(value, NULL, 10);
    free(f);
    freeReplyObject(r);
    row->devices = admin_app_password_count(a, user);
    return row->devices >= 0;
}

static void status_json(struct json_writer *w, const char *user, const struct status_row *row)
{
    json_object_begin(w);
    json_key(w, "user");
    json_cstring(w, user);
    json_key(w, "grant");
    json_cstring(w, row->grant);
    const char *texts[] = { "status", row->status, "reason", row->reason, "authorized_at", row->authorized_at,
                            "refreshed_at", row->refreshed_at, "access_token_until", row->access_until };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i += 2) {
        json_key(w, texts[i]);
        if (texts[i + 1][0])
            json_cstring(w, texts[i + 1]);
        else
            json_null(w);
    }
    json_key(w, "refreshes");
    json_u64(w, row->refreshes);
    json_key(w, "app_passwords");
    json_u64(w, (uint64_t)row->devices);
    json_object_end(w);
}

static bool status_table_row(struct text_table *t, const char *user, const struct status_row *row)
{
    char refreshes[24], devices[24];
    snprintf(refreshes, sizeof refreshes, "%llu", row->refreshes);
    snprintf(devices, sizeof devices, "%ld", row->devices);
    const char *cells[] = { user, row->grant, row->status, row->reason[0] ? row->reason : "-",
                            row->authorized_at[0] ? row->authorized_at : "-",
                            row->refreshed_at[0] ? row->refreshed_at : "-",
                            row->access_until[0] ? row->access_until : "-", refreshes, devices };
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        if (!table_add(t, cells[i]))
            return false;
    return true;
}

static int oauth_status(struct admin *a, int argc, char **argv)
{
    if (argc > 2)
        return admin_usage_error("oauth", "oauth status takes at most one USER");
    char one[LOGIN_USER_MAX + 1];
    if (argc == 2 && !admin_user_parse(argv[1], one))
        return admin_bad_user("oauth");
    int status = admin_connect(a);
    if (status != ADMIN_OK)
        return status;
    struct admin_keys keys = { 0 };
    char **users;
    size_t n_users;
    char *single[1] = { one };
    if (argc == 2) {
        users = single;
        n_users = 1;
    } else {
        char pattern[REDIS_KEY_MAX];
        redis_key_all_users_pattern(pattern, REDIS_KEY_OAUTH);
        if (!admin_scan(a, pattern, &keys))
            return ADMIN_UNAVAILABLE;
        /* In place: a user is shorter than the key that holds it. */
        size_t kept = 0;
        for (size_t i = 0; i < keys.n; i++) {
            char user[LOGIN_USER_MAX + 1];
            if (redis_key_user_of(keys.keys[i], strlen(keys.keys[i]), REDIS_KEY_OAUTH, user)) {
                memmove(keys.keys[i], user, strlen(user) + 1);
                keys.keys[kept++] = keys.keys[i];
            } else {
                free(keys.keys[i]);
            }
        }
        keys.n = kept;
        users = keys.keys;
        n_users = kept;
    }
    struct json_writer w;
    struct text_table t;
    static const char *const header[] = { "USER", "GRANT", "STATUS", "REASON", "AUTHORIZED", "REFRESHED",
                                          "ACCESS_UNTIL", "REFRESHES", "APP_PASSWORDS" };
    table_init(&t, sizeof header / sizeof header[0]);
    bool table_ok = true;
    for (size_t i = 0; i < sizeof header / sizeof header[0]; i++)
        table_ok = table_ok && table_add(&t, header[i]);
    json_init(&w, a->out);
    if (a->json) {
        json_object_begin(&w);
        json_key(&w, "users");
        json_array_begin(&w);
    }
    for (size_t i = 0; i < n_users && status == ADMIN_OK; i++) {
        struct status_row row;
        if (!read_status(a, users[i], &row)) {
            status = ADMIN_UNAVAILABLE;
            break;
        }
        if (a->json)
            status_json(&w, users[i], &row);
        else
            table_ok = table_ok && status_table_row(&t, users[i], &row);
    }
    if (status == ADMIN_OK) {
        if (a->json) {
            json_array_end(&w);
            json_object_end(&w);
            json_finish(&w);
        } else if (!table_ok) {
            admin_error("out of memory");
            status = ADMIN_UNAVAILABLE;
        } else {
            table_print(&t, a->out);
        }
    }
    table_free(&t);
    admin_keys_free(&keys);
    return status;
}

/* ---- revoke --------------------------------------------------------------- */

/* RFC 7009: the refresh token, opened with a data key an app password from
 * stdin unlocks. False (reported) when the provider or the input failed. */
static bool revoke_at_provider(struct admin *a, const struct mapping *m, const char *user, bool *called)
{
    *called = false;
    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_OAUTH, user, NULL);
    const char *argv[] = { "HGET", key, "rt" };
    redisReply *r = admin_command(a, 3, argv, NULL);
    if (!r)
        return false;
    bool has_rt = r->type == REDIS_REPLY_STRING;
    if (!has_rt) {
        freeReplyObject(r);
        return true;
    }
    uint8_t data_key[ENVELOPE_KEY_LEN];
    if (admin_unlock_data_key(a, user, data_key) != ADMIN_OK) {
        freeReplyObject(r);
        return false;
    }
    size_t raw_cap = r->len / 4 * 3 + 3, plain_len = 0;
    uint8_t *raw = malloc(raw_cap);
    char *plain = malloc(OAUTH_REFRESH_TOKEN_MAX + 1);
    long raw_len = raw ? base64_decode_strict(r->str, r->len, raw, raw_cap) : -1;
    bool ok = plain && raw_len > 0 &&
              envelope_open(data_key, ENVELOPE_PURPOSE_REFRESH_TOKEN, user, raw, (size_t)raw_len, (uint8_t *)plain,
                            OAUTH_REFRESH_TOKEN_MAX, &plain_len) == ENVELOPE_OK;
    freeReplyObject(r);
    OPENSSL_cleanse(data_key, sizeof data_key);
    struct form_body *f = malloc(sizeof *f);
    char *buf = malloc(HTTP_CLIENT_BODY_MAX + 1);
    if (ok && f && buf) {
        form_init(f);
        form_add_n(f, "token", plain, plain_len);
        form_add(f, "token_type_hint", "refresh_token");
        form_add(f, "client_id", m->oauth.client_id);
        if (m->oauth.client_secret[0])
            form_add(f, "client_secret", m->oauth.client_secret);
        char err[HTTP_CLIENT_ERROR_MAX];
        struct http_response resp;
        struct http_client_options http = { .user_agent = "popgate-admin" };
        http_post_form_blocking(&http, m->oauth.revoke_url, f->buf, f->len, ADMIN_OAUTH_TIMEOUT_MS, buf,
                                HTTP_CLIENT_BODY_MAX + 1, err, &resp);
        /* RFC 7009 2.2: 200 also for a token already invalid. */
        *called = resp.result == HTTP_OK && resp.status == 200;
        if (!*called)
            admin_error("oauth revoke: the provider's revocation endpoint answered %s %ld%s%s",
                        http_result_name(resp.result), resp.status, resp.error[0] ? ": " : "", resp.error);
        form_wipe(f);
        OPENSSL_cleanse(buf, HTTP_CLIENT_BODY_MAX + 1);
    } else if (!ok) {
        admin_error("oauth revoke: the stored refresh token does not open with that app password");
    }
    if (plain) {
        OPENSSL_cleanse(plain, OAUTH_REFRESH_TOKEN_MAX + 1);
        free(plain);
    }
    if (raw) {
        OPENSSL_cleanse(raw, raw_cap);
        free(raw);
    }
    free(f);
    free(buf);
    return ok && *called;
}

static int oauth_revoke(struct admin *a, int argc, char **argv)
{
    char user[LOGIN_USER_MAX + 1];
    int status = admin_begin_user_command(a, argc, argv, "oauth", user);
    if (status != ADMIN_OK)
        return status;
    const struct mapping *m = config_find_mapping(a->config, user);
    bool called = false;
    /* The provider first (it needs the stored token); a failure there still
     * forgets the tokens here, and says so. */
    bool provider_ok = true;
    if (m && m->auth == MAPPING_AUTH_OAUTH2 && m->oauth.revoke_url[0] && admin_app_password_count(a, user) > 0)
        provider_ok = revoke_at_provider(a, m, user, &called);
    char oauth[REDIS_KEY_MAX], lock[REDIS_KEY_MAX];
    redis_key(oauth, REDIS_KEY_OAUTH, user, NULL);
    redis_key(lock, REDIS_KEY_OAUTH_LOCK, user, NULL);
    const char *del[] = { "DEL", oauth, lock };
    redisReply *r = admin_command(a, 3, del, NULL);
    if (!r)
        return ADMIN_UNAVAILABLE;
    unsigned long long removed = 0;
    admin_reply_u64(r, &removed);
    freeReplyObject(r);
    if (a->json) {
        struct json_writer w;
        json_init(&w, a->out);
        json_object_begin(&w);
        json_key(&w, "user");
        json_cstring(&w, user);
        json_key(&w, "forgotten");
        json_bool(&w, removed > 0);
        json_key(&w, "provider_revoked");
        json_bool(&w, called);
        json_object_end(&w);
        json_finish(&w);
    } else {
        fprintf(a->out, "%s ", removed ? "forgot" : "no stored tokens for");
        text_write(a->out, user, strlen(user));
        fprintf(a->out, "'s tokens%s\n",
                called ? "; the provider revoked the grant" : provider_ok ? "" : "; the provider was not told");
    }
    return removed ? ADMIN_OK : ADMIN_NOT_FOUND;
}

int admin_oauth_main(struct admin *a, int argc, char **argv)
{
    static const struct admin_subcommand table[] = {
        { "authorize", oauth_authorize },
        { "status", oauth_status },
        { "revoke", oauth_revoke },
    };
    return admin_dispatch(a, "oauth", table, sizeof table / sizeof table[0], argc, argv);
}
