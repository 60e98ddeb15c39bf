/* session_legacy.c: serving an old POP3 server's UIDLs (README.md
 * "Migrating from a POP3 server"), so a client moved to popgate downloads
 * nothing again.
 *
 * At login, the device lock's script also reads how many legacy UIDLs the
 * user has (pg1:{user}:uidl, from `popgate-admin uidl import` or an earlier
 * lazy import) and whether a lazy import ran (pg1:{user}:legacy): no round
 * trip of its own.
 * - If the mapping names a legacy_pop3 server and no import ran, popgate logs
 *   in there with the user's credentials, reads UIDL, LIST and the Message-IDs
 *   (TOP n 0) and stores them with the marker, atomically. The login waits at
 *   most legacy_timeout; past it the login fails with [SYS/TEMP] while the
 *   import goes on by itself, so the client's next try finds it done. A
 *   legacy server that refuses the credentials is recorded as done with none:
 *   the user did not exist there. Any other failure fails the login
 *   ([SYS/TEMP]): serving popgate's own UIDLs would make every migrated
 *   client download the whole mailbox again.
 * - If the user has legacy UIDLs, the first folder's Message-IDs are fetched
 *   after its listing and looked up; matches follow translate/legacy_uidl.h. */
#include "session_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "legacy_pop3.h"
#include "log.h"
#include "header_hash.h"
#include "message_id.h"
#include "uidl_store.h"

/* ---- lazy import from the legacy POP3 server ---------------------------- */

/* One import. It outlives the session that started it when the session gave
 * up waiting (or ended): then it finishes and frees itself. Memory: the
 * items and their strings, bounded by the legacy client's max_messages. */
struct legacy_job {
    struct session *session;         /* NULL once detached */
    struct redis_store *redis;
    char state_user[LOGIN_USER_MAX + 1];
    char log_user[LOGIN_USER_MAX + 1];
    struct legacy_pop3 *fetch;
    struct redis_request *save;
    struct uidl_file_entry *items;   /* every message handed out */
    size_t n_items, cap_items;
    char **strings;                  /* one allocation per item: uidl then msgid */
    bool out_of_memory;
};

static void job_free(struct legacy_job *j)
{
    legacy_pop3_free(j->fetch);
    for (size_t i = 0; i < j->n_items; i++)
        free(j->strings[i]);
    free(j->strings);
    free(j->items);
    free(j);
}

static void on_item(const char *uidl, size_t uidl_len, uint32_t size, const char *msgid, size_t msgid_len,
                    const char *hash, void *arg)
{
    struct legacy_job *j = arg;
    if (j->n_items == j->cap_items) {
        size_t cap = j->cap_items ? j->cap_items * 2 : 64;
        struct uidl_file_entry *e = realloc(j->items, cap * sizeof *e);
        char **s = e ? realloc(j->strings, cap * sizeof *s) : NULL;
        if (e)
            j->items = e;
        if (!s) {
            j->out_of_memory = true;
            return;
        }
        j->strings = s;
        j->cap_items = cap;
    }
    char *copy = malloc(uidl_len + msgid_len + 1);
    if (!copy) {
        j->out_of_memory = true;
        return;
    }
    memcpy(copy, uidl, uidl_len);
    if (msgid_len)
        memcpy(copy + uidl_len, msgid, msgid_len);
    j->strings[j->n_items] = copy;
    struct uidl_file_entry *e = &j->items[j->n_items++];
    *e = (struct uidl_file_entry){ .uidl = copy, .uidl_len = uidl_len, .size = size,
                                   .msgid = msgid_len ? copy + uidl_len : NULL, .msgid_len = msgid_len,
                                   .line = j->n_items, .has_hash = hash != NULL };
    if (hash)
        memcpy(e->hash, hash, UIDL_HASH_HEX_LEN + 1);
}

/* The fields to store: each item under its key (uidl_keys_assign, the rule
 * `popgate-admin uidl import` follows too), and a size marker per size of a
 * header-hash key. Fields that are not Message-IDs are written into pool
 * (UIDL_HASH_FIELD_MAX + 1 octets per item). */
static size_t build_fields(struct legacy_job *j, struct uidl_store_entry *out, char *pool)
{
    size_t n = 0;
    for (size_t i = 0; i < j->n_items; i++) {
        const struct uidl_file_entry *e = &j->items[i];
        struct uidl_store_entry *f = &out[n];
        *f = (struct uidl_store_entry){ .uidl = e->uidl, .uidl_len = e->uidl_len, .size = e->size };
        if (e->key == UIDL_KEY_MESSAGE_ID) {
            f->field = e->msgid;
            f->field_len = e->msgid_len;
        } else if (e->key == UIDL_KEY_HEADER_HASH) {
            char *field = pool + i * (UIDL_HASH_FIELD_MAX + 1);
            f->field = field;
            f->field_len = uidl_hash_field(e->size, e->hash, field);
        } else {
            continue;
        }
        n++;
    }
    /* Size markers: duplicates are harmless (HSETNX), but cheap to avoid
     * when equal sizes follow each other; others are written twice. */
    size_t n_keys = n;
    for (size_t i = 0; i < j->n_items; i++) {
        const struct uidl_file_entry *e = &j->items[i];
        if (e->key != UIDL_KEY_HEADER_HASH)
            continue;
        bool seen = false;
        for (size_t k = n_keys; k < n && !seen; k++)
            seen = out[k].size == e->size;
        if (seen)
            continue;
        char *field = pool + (j->n_items + (n - n_keys)) * (UIDL_HASH_FIELD_MAX + 1);
        out[n] = (struct uidl_store_entry){ .field = field, .field_len = uidl_size_field(e->size, field),
                                            .size = e->size, .value = "1", .value_len = 1 };
        n++;
    }
    return n;
}

static void legacy_login_continue(struct session *s, bool ok, uint64_t stored);

static void on_saved(enum uidl_store_result r, uint64_t written, void *arg)
{
    struct legacy_job *j = arg;
    j->save = NULL;
    log_event(r == UIDL_STORE_OK ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, j->session ? j->session->id : NULL,
              "legacy-import", "user", j->log_user, "result", r == UIDL_STORE_OK ? "stored" : "redis-failed",
              "uidls", LOG_U64(written), LOG_END);
    struct session *s = j->session;
    if (s)
        s->legacy_job = NULL;
    job_free(j);
    if (s)
        legacy_login_continue(s, r == UIDL_STORE_OK, written);
}

static void on_fetched(struct legacy_pop3 *p, enum legacy_pop3_result r, void *arg)
{
    struct legacy_job *j = arg;
    const struct legacy_pop3_stats *st = legacy_pop3_stats(p);
    struct uidl_key_stats keys = { 0 };
    bool ok = r == LEGACY_POP3_OK && !j->out_of_memory && uidl_keys_assign(j->items, j->n_items, &keys);
    log_event(r == LEGACY_POP3_OK ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, j->session ? j->session->id : NULL,
              "legacy-fetch", "user", j->log_user, "result", legacy_pop3_result_name(r),
              "messages", LOG_U64(st->messages), "by_message_id", LOG_U64(keys.by_message_id),
              "by_header_hash", LOG_U64(keys.by_header_hash), "no_key", LOG_U64(keys.no_key),
              "same_message_id", LOG_U64(keys.same_message_id),
              "same_header_hash", LOG_U64(keys.same_header_hash),
              "error", *legacy_pop3_last_error(p) ? legacy_pop3_last_error(p) : NULL, LOG_END);
    legacy_pop3_free(p);
    j->fetch = NULL;
    /* Refused credentials: the user had no mailbox there. Record that, so
     * the old server is never asked again. */
    bool done = ok || r == LEGACY_POP3_AUTH_FAILED;
    if (!done) {
        struct session *s = j->session;
        if (s)
            s->legacy_job = NULL;
        job_free(j);
        if (s)
            legacy_login_continue(s, false, 0);
        return;
    }
    size_t cap = 2 * j->n_items;
    struct uidl_store_entry *fields = malloc((cap ? cap : 1) * sizeof *fields);
    char *pool = malloc((cap ? cap : 1) * (UIDL_HASH_FIELD_MAX + 1));
    size_t n = 0;
    if (!fields || !pool) {
        free(fields);
        free(pool);
        on_saved(UIDL_STORE_UNAVAILABLE, 0, j);
        return;
    }
    if (ok)
        n = build_fields(j, fields, pool);
    char marker[64];
    snprintf(marker, sizeof marker, "%s %lld %zu", ok ? "imported" : "no-account", (long long)time(NULL), n);
    j->save = uidl_store_save(j->redis, j->state_user, fields, n, marker, on_saved, j);
    free(fields);
    free(pool);
    if (!j->save)
        on_saved(UIDL_STORE_UNAVAILABLE, 0, j);
}

static void on_legacy_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct session *s = w->data;
    struct legacy_job *j = s->legacy_job;
    log_event(LOG_LEVEL_WARN, s->id, "legacy-wait", "user", s->device.login.user, "result", "timeout",
              LOG_END);
    /* The import goes on without the session. */
    j->session = NULL;
    s->legacy_job = NULL;
    legacy_login_continue(s, false, 0);
}

static void start_import(struct session *s)
{
    const struct mapping *m = s->mapping;
    struct legacy_job *j = calloc(1, sizeof *j);
    if (!j) {
        legacy_login_continue(s, false, 0);
        return;
    }
    j->session = s;
    j->redis = s->gw->redis;
    memcpy(j->state_user, s->device.login.state_user, sizeof j->state_user);
    memcpy(j->log_user, s->device.login.user, sizeof j->log_user);
    struct legacy_pop3_server srv = { .endpoint = {
        .addrlen = m->legacy.addrlen, .tls = m->legacy.tls, .tls_ctx = m->legacy.tls_ctx,
        .verify_name = m->legacy.verify_name, .connect_timeout = m->upstream.connect_timeout,
        .command_timeout = m->upstream.command_timeout,
    } };
    memcpy(&srv.endpoint.addr, &m->legacy.addr, sizeof srv.endpoint.addr);
    s->legacy_job = j;
    /* The legacy server knows the user by the name they typed. */
    j->fetch = legacy_pop3_fetch(s->gw->loop, &srv, s->device.login.user, s->password, on_item, on_fetched, j);
    session_wipe_password(s);
    if (!j->fetch) {
        s->legacy_job = NULL;
        job_free(j);
        legacy_login_continue(s, false, 0);
        return;
    }
    ev_timer_set(&s->legacy_timer, m->legacy_timeout, 0.);
    ev_timer_start(s->gw->loop, &s->legacy_timer);
}

/* ---- at login ------------------------------------------------------------ */

static void legacy_login_continue(struct session *s, bool ok, uint64_t stored)
{
    ev_timer_stop(s->gw->loop, &s->legacy_timer);
    session_wipe_password(s);
    if (!ok) {
        login_fail(s, "-ERR [SYS/TEMP] Your mailbox is being moved; try again in a minute.",
                                  "legacy-migration", false);
        return;
    }
    s->legacy_stored = stored;
    login_step_done(s);
}


void session_legacy_init(struct session *s)
{
    ev_timer_init(&s->legacy_timer, on_legacy_timeout, 0., 0.);
    s->legacy_timer.data = s;
}

/* What the device lock's script read (session_device.c): a mapping with a
 * legacy server whose import never ran imports now; otherwise the stored
 * legacy UIDLs, if any, are matched after the first folder's listing. */
void session_legacy_prepare(struct session *s)
{
    if (s->mapping->has_legacy && !s->device.legacy.imported) {
        start_import(s);
        return;
    }
    legacy_login_continue(s, true, s->device.legacy.entries);
}

/* ---- matching ------------------------------------------------------------ */

static void on_message_id(uint32_t uid, const char *msgid, size_t msgid_len, void *arg)
{
    struct session *s = arg;
    if (s->legacy_match && !legacy_match_add(s->legacy_match, uid, msgid, msgid_len)) {
        /* Too big to match: serve popgate's own UIDLs, never a partial match. */
        legacy_match_free(s->legacy_match);
        free(s->legacy_match);
        s->legacy_match = NULL;
    }
}

static void give_up_matching(struct session *s, const char *why)
{
    log_event(LOG_LEVEL_WARN, s->id, "legacy-uidl", "user", s->device.login.user, "result", why, LOG_END);
    legacy_match_free(s->legacy_match);
    free(s->legacy_match);
    s->legacy_match = NULL;
}

/* ---- the header-hash stage (translate/legacy_uidl.h rule 2) -------------- */

/* The upstream headers being hashed, one UID FETCH BODY.PEEK[HEADER] at a
 * time (only the messages of a size the store marks: few), each streamed
 * through the hasher, never held. */
struct legacy_hashing {
    struct header_hash hasher;
    const uint32_t *uids;            /* owned by the match */
    size_t n, next;
    bool found;
};

static void hashing_free(struct session *s)
{
    if (!s->legacy_hashing)
        return;
    header_hash_free(&s->legacy_hashing->hasher);
    free(s->legacy_hashing);
    s->legacy_hashing = NULL;
}

static void finish_matching(struct session *s)
{
    struct legacy_match_stats st;
    hashing_free(s);
    if (!legacy_match_resolve(s->legacy_match, &st)) {
        give_up_matching(s, "out-of-memory");
        login_step_done(s);
        return;
    }
    /* What matched by which key, per login. */
    log_event(LOG_LEVEL_INFO, s->id, "legacy-uidl", "user", s->device.login.user, "messages",
              LOG_U64(st.messages), "matched", LOG_U64(st.matched),
              "by_message_id", LOG_U64(st.matched_message_id), "by_header_hash",
              LOG_U64(st.matched_header_hash), "no_message_id", LOG_U64(st.no_message_id),
              "same_message_id", LOG_U64(st.same_message_id), "not_stored", LOG_U64(st.not_stored),
              "same_uidl", LOG_U64(st.same_uidl), "hashed", LOG_U64(st.hashed),
              "same_header_hash", LOG_U64(st.same_header_hash), LOG_END);
    login_step_done(s);
}

/* One matching stage's Redis lookup: nothing to ask ends the matching;
 * a request that cannot be sent answers done as Redis being down would. */
static void lookup_match_fields(struct session *s, const char *const *fields, const size_t *lens, size_t n,
                                uidl_lookup_cb *done)
{
    if (n == 0) {
        finish_matching(s);
        return;
    }
    s->legacy_lookup = uidl_store_lookup(s->gw->redis, s->device.login.state_user, fields, lens, n, done, s);
    if (!s->legacy_lookup)
        done(UIDL_STORE_UNAVAILABLE, NULL, NULL, 0, s);
}

static void lookup_failed(struct session *s)
{
    /* Without the values the old UIDLs cannot be served: refuse the login
     * rather than let the client download everything again. */
    hashing_free(s);
    give_up_matching(s, "redis-failed");
    login_fail(s, "-ERR [SYS/TEMP] Device state unavailable, try again later.", "redis",
                              false);
}

static void on_hash_values(enum uidl_store_result r, const char *const *values, const size_t *lens, size_t n,
                           void *arg)
{
    struct session *s = arg;
    s->legacy_lookup = NULL;
    if (r != UIDL_STORE_OK) {
        lookup_failed(s);
        return;
    }
    if (!legacy_match_set_hash_values(s->legacy_match, values, lens, n)) {
        give_up_matching(s, "out-of-memory");
        hashing_free(s);
        login_step_done(s);
        return;
    }
    finish_matching(s);
}

static void hash_next(struct session *s);

static void on_header_start(uint64_t literal_len, void *arg)
{
    (void)literal_len;
    struct session *s = arg;
    s->legacy_hashing->found = true;
}

static size_t on_header_data(const char *data, size_t len, void *arg)
{
    struct session *s = arg;
    header_hash_feed(&s->legacy_hashing->hasher, data, len);
    return len;
}

static void on_header_fetched(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    struct legacy_hashing *h = s->legacy_hashing;
    if (r != IMAP_RESULT_OK) {
        hashing_free(s);
        give_up_matching(s, "fetch-failed");
        login_fail(s, "-ERR [SYS/TEMP] Mail server connection lost.", "upstream", false);
        return;
    }
    char hex[HEADER_HASH_HEX_LEN + 1];
    /* An expunged message has no header: it is simply not matched by hash. */
    if (h->found && header_hash_final(&h->hasher, hex))
        legacy_match_set_hash(s->legacy_match, h->uids[h->next], hex);
    h->next++;
    if (!header_hash_reset(&h->hasher)) {
        hashing_free(s);
        give_up_matching(s, "out-of-memory");
        login_step_done(s);
        return;
    }
    hash_next(s);
}

static void hash_next(struct session *s)
{
    struct legacy_hashing *h = s->legacy_hashing;
    if (h->next < h->n) {
        static const struct imap_body_sink sink = { on_header_start, on_header_data };
        h->found = false;
        imap_fetch_body(s->imap, h->uids[h->next], "HEADER", 0, 0, &sink, &h->found, on_header_fetched, s);
        return;
    }
    const char *const *fields;
    const size_t *lens;
    size_t n;
    if (!legacy_match_hash_fields(s->legacy_match, &fields, &lens, &n)) {
        hashing_free(s);
        give_up_matching(s, "out-of-memory");
        login_step_done(s);
        return;
    }
    lookup_match_fields(s, fields, lens, n, on_hash_values);
}

static void on_size_values(enum uidl_store_result r, const char *const *values, const size_t *lens, size_t n,
                           void *arg)
{
    (void)lens;
    struct session *s = arg;
    s->legacy_lookup = NULL;
    if (r != UIDL_STORE_OK) {
        lookup_failed(s);
        return;
    }
    uint32_t *uids;
    size_t n_uids;
    if (!legacy_match_set_size_values(s->legacy_match, values, n, &uids, &n_uids)) {
        give_up_matching(s, "out-of-memory");
        login_step_done(s);
        return;
    }
    if (n_uids == 0) {
        finish_matching(s);
        return;
    }
    s->legacy_hashing = calloc(1, sizeof *s->legacy_hashing);
    if (!s->legacy_hashing || !header_hash_init(&s->legacy_hashing->hasher)) {
        free(s->legacy_hashing);
        s->legacy_hashing = NULL;
        give_up_matching(s, "out-of-memory");
        login_step_done(s);
        return;
    }
    s->legacy_hashing->uids = uids;
    s->legacy_hashing->n = n_uids;
    hash_next(s);
}

/* The Message-IDs are matched: ask which sizes have header-hash keys. */
static void start_hash_stage(struct session *s)
{
    for (uint32_t i = 0; i < s->drop.count; i++)
        if (s->drop.entries[i].folder == 0)
            legacy_match_set_size(s->legacy_match, s->drop.entries[i].uid, s->drop.entries[i].size);
    const char *const *fields;
    const size_t *lens;
    size_t n;
    if (!legacy_match_size_fields(s->legacy_match, &fields, &lens, &n)) {
        give_up_matching(s, "out-of-memory");
        login_step_done(s);
        return;
    }
    lookup_match_fields(s, fields, lens, n, on_size_values);
}

static void on_values(enum uidl_store_result r, const char *const *values, const size_t *lens, size_t n,
                      void *arg)
{
    struct session *s = arg;
    s->legacy_lookup = NULL;
    free(s->legacy_ids);
    s->legacy_ids = NULL;
    if (r != UIDL_STORE_OK) {
        lookup_failed(s);
        return;
    }
    if (!legacy_match_set_values(s->legacy_match, 0, values, lens, n)) {
        give_up_matching(s, "out-of-memory");
        login_step_done(s);
        return;
    }
    start_hash_stage(s);
}

static void on_message_ids(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    size_t n = 0;
    if (r != IMAP_RESULT_OK) {
        give_up_matching(s, "fetch-failed");
        login_fail(s, "-ERR [SYS/TEMP] Mail server connection lost.", "upstream", false);
        return;
    }
    if (!s->legacy_match || !legacy_match_prepare(s->legacy_match, &n)) {
        give_up_matching(s, "too-big");
        login_step_done(s);
        return;
    }
    if (n == 0) {
        start_hash_stage(s);
        return;
    }
    /* One array of pointers into the match for the lookup's life. */
    s->legacy_ids = malloc(n * (sizeof(const char *) + sizeof(size_t)));
    if (!s->legacy_ids) {
        give_up_matching(s, "out-of-memory");
        login_step_done(s);
        return;
    }
    const char **ids = (const char **)s->legacy_ids;
    size_t *lens = (size_t *)(ids + n);
    legacy_match_lookup_ids(s->legacy_match, 0, n, ids, lens);
    s->legacy_lookup = uidl_store_lookup(s->gw->redis, s->device.login.state_user, ids, lens, n, on_values, s);
    if (!s->legacy_lookup)
        on_values(UIDL_STORE_UNAVAILABLE, NULL, NULL, 0, s);
}

void session_legacy_match(struct session *s)
{
    if (s->legacy_stored == 0) {
        login_step_done(s);
        return;
    }
    s->legacy_match = malloc(sizeof *s->legacy_match);
    if (!s->legacy_match) {
        login_step_done(s);
        return;
    }
    legacy_match_init(s->legacy_match);
    imap_fetch_message_ids(s->imap, on_message_id, on_message_ids, s);
}

void session_legacy_build(struct session *s)
{
    if (!s->legacy_match)
        return;
    size_t dropped = 0;
    if (!legacy_match_build(s->legacy_match, &s->drop, &s->legacy_uidls) ||
        !legacy_uidl_drop_collisions(&s->legacy_uidls, &s->drop, &dropped))
        legacy_uidl_free(&s->legacy_uidls);
    if (dropped > 0)
        log_event(LOG_LEVEL_WARN, s->id, "legacy-uidl", "user", s->device.login.user,
                  "dropped_same_as_own_uidl", LOG_U64(dropped), LOG_END);
    legacy_match_free(s->legacy_match);
    free(s->legacy_match);
    s->legacy_match = NULL;
}

void session_legacy_release(struct session *s)
{
    ev_timer_stop(s->gw->loop, &s->legacy_timer);
    if (s->legacy_job) {
        s->legacy_job->session = NULL;   /* it finishes by itself */
        s->legacy_job = NULL;
    }
    uidl_lookup_cancel(s->legacy_lookup);
    s->legacy_lookup = NULL;
    hashing_free(s);
    free(s->legacy_ids);
    s->legacy_ids = NULL;
    if (s->legacy_match) {
        legacy_match_free(s->legacy_match);
        free(s->legacy_match);
        s->legacy_match = NULL;
    }
    legacy_uidl_free(&s->legacy_uidls);
}
