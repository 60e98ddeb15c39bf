/* session_legacy.c: serving an old POP3 server's UIDLs (README.md
 * "Migrating from a POP3 server"), so a client moved to popgate downloads
 * nothing again.
 *
 * At login, after the device lock: one round trip reads how many legacy
 * UIDLs the user has (pg1:{user}:uidl, from `popgate-admin uidl import` or an
 * earlier lazy import) and whether a lazy import ran (pg1:{user}:legacy).
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
#include "message_id.h"
#include "uidl_store.h"

/* ---- lazy import from the legacy POP3 server ---------------------------- */

/* One import. It outlives the session that started it when the session gave
 * up waiting (or ended): then it finishes and frees itself. Memory: the
 * entries and their strings, bounded by the legacy client's max_messages. */
struct legacy_job {
    struct session *session;         /* NULL once detached */
    struct redis_store *redis;
    char state_user[LOGIN_USER_MAX + 1];
    char log_user[LOGIN_USER_MAX + 1];
    struct legacy_pop3 *fetch;
    struct redis_request *save;
    struct uidl_store_entry *entries;
    size_t n_entries, cap_entries;
    char **strings;                  /* one allocation per entry: uidl then msgid */
};

static void job_free(struct legacy_job *j)
{
    legacy_pop3_free(j->fetch);
    for (size_t i = 0; i < j->n_entries; i++)
        free(j->strings[i]);
    free(j->strings);
    free(j->entries);
    free(j);
}

static void on_item(const char *uidl, size_t uidl_len, uint32_t size, const char *msgid, size_t msgid_len,
                    void *arg)
{
    struct legacy_job *j = arg;
    /* Only a message with a Message-ID can ever be matched. */
    if (msgid_len == 0)
        return;
    if (j->n_entries == j->cap_entries) {
        size_t cap = j->cap_entries ? j->cap_entries * 2 : 64;
        struct uidl_store_entry *e = realloc(j->entries, cap * sizeof *e);
        char **s = e ? realloc(j->strings, cap * sizeof *s) : NULL;
        if (e)
            j->entries = e;
        if (!s)
            return;
        j->strings = s;
        j->cap_entries = cap;
    }
    char *copy = malloc(uidl_len + msgid_len);
    if (!copy)
        return;
    memcpy(copy, uidl, uidl_len);
    memcpy(copy + uidl_len, msgid, msgid_len);
    j->strings[j->n_entries] = copy;
    j->entries[j->n_entries++] = (struct uidl_store_entry){
        .msgid = copy + uidl_len, .msgid_len = msgid_len, .uidl = copy, .uidl_len = uidl_len, .size = size };
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
    log_event(r == LEGACY_POP3_OK ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, j->session ? j->session->id : NULL,
              "legacy-fetch", "user", j->log_user, "result", legacy_pop3_result_name(r),
              "messages", LOG_U64(st->messages), "with_msgid", LOG_U64(j->n_entries),
              "error", *legacy_pop3_last_error(p) ? legacy_pop3_last_error(p) : NULL, LOG_END);
    legacy_pop3_free(p);
    j->fetch = NULL;
    /* Refused credentials: the user had no mailbox there. Record that, so
     * the old server is never asked again. */
    bool done = r == LEGACY_POP3_OK || r == LEGACY_POP3_AUTH_FAILED;
    if (!done) {
        struct session *s = j->session;
        if (s)
            s->legacy_job = NULL;
        job_free(j);
        if (s)
            legacy_login_continue(s, false, 0);
        return;
    }
    char marker[64];
    snprintf(marker, sizeof marker, "%s %lld %zu", r == LEGACY_POP3_OK ? "imported" : "no-account",
             (long long)time(NULL), r == LEGACY_POP3_OK ? j->n_entries : (size_t)0);
    size_t n = r == LEGACY_POP3_OK ? j->n_entries : 0;
    j->save = uidl_store_save(j->redis, j->state_user, j->entries, n, marker, on_saved, j);
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
    struct legacy_pop3_server srv = {
        .addrlen = m->legacy.addrlen, .tls = m->legacy.tls, .tls_ctx = m->legacy.tls_ctx,
        .verify_name = m->legacy.verify_name, .connect_timeout = m->upstream.connect_timeout,
        .command_timeout = m->upstream.command_timeout,
    };
    memcpy(&srv.addr, &m->legacy.addr, sizeof srv.addr);
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
        session_login_failed_with(s, "-ERR [SYS/TEMP] Your mailbox is being moved; try again in a minute.",
                                  "legacy-migration", false);
        return;
    }
    s->legacy_stored = stored;
    void (*next)(struct session *) = s->device.next;
    s->device.next = NULL;
    next(s);
}

static void on_checked(enum uidl_store_result r, uint64_t entries, const char *marker, size_t marker_len,
                       void *arg)
{
    struct session *s = arg;
    s->device.request = NULL;
    if (r != UIDL_STORE_OK) {
        session_login_failed_with(s, "-ERR [SYS/TEMP] Device state unavailable, try again later.",
                                  "redis", false);
        return;
    }
    (void)marker;
    if (s->mapping->has_legacy && marker_len == 0) {
        start_import(s);
        return;
    }
    legacy_login_continue(s, true, entries);
}

void session_legacy_init(struct session *s)
{
    ev_timer_init(&s->legacy_timer, on_legacy_timeout, 0., 0.);
    s->legacy_timer.data = s;
}

void session_legacy_prepare(struct session *s, void (*next)(struct session *s))
{
    s->device.next = next;
    s->device.request = uidl_store_check(s->gw->redis, s->device.login.state_user, on_checked, s);
    if (!s->device.request)
        on_checked(UIDL_STORE_UNAVAILABLE, 0, NULL, 0, s);
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

static void legacy_match_done(struct session *s)
{
    void (*next)(struct session *) = s->legacy_next;
    s->legacy_next = NULL;
    next(s);
}

static void give_up_matching(struct session *s, const char *why)
{
    log_event(LOG_LEVEL_WARN, s->id, "legacy-uidl", "user", s->device.login.user, "result", why, LOG_END);
    legacy_match_free(s->legacy_match);
    free(s->legacy_match);
    s->legacy_match = NULL;
}

static void on_values(enum uidl_store_result r, const char *const *values, const size_t *lens, size_t n,
                      void *arg)
{
    struct session *s = arg;
    s->legacy_lookup = NULL;
    free(s->legacy_ids);
    s->legacy_ids = NULL;
    struct legacy_match_stats st = { 0 };
    if (r != UIDL_STORE_OK) {
        /* Without the values the old UIDLs cannot be served: refuse the
         * login rather than let the client download everything again. */
        give_up_matching(s, "redis-failed");
        session_login_failed_with(s, "-ERR [SYS/TEMP] Device state unavailable, try again later.",
                                  "redis", false);
        return;
    }
    if (!legacy_match_set_values(s->legacy_match, 0, values, lens, n) ||
        !legacy_match_resolve(s->legacy_match, &st)) {
        give_up_matching(s, "out-of-memory");
        legacy_match_done(s);
        return;
    }
    log_event(LOG_LEVEL_INFO, s->id, "legacy-uidl", "user", s->device.login.user, "messages",
              LOG_U64(st.messages), "matched", LOG_U64(st.matched), "no_message_id", LOG_U64(st.no_message_id),
              "same_message_id", LOG_U64(st.same_message_id), "not_stored", LOG_U64(st.not_stored),
              "same_uidl", LOG_U64(st.same_uidl), LOG_END);
    legacy_match_done(s);
}

static void on_message_ids(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    size_t n = 0;
    if (r != IMAP_RESULT_OK) {
        give_up_matching(s, "fetch-failed");
        session_login_failed_with(s, "-ERR [SYS/TEMP] Mail server connection lost.", "upstream", false);
        return;
    }
    if (!s->legacy_match || !legacy_match_prepare(s->legacy_match, &n)) {
        give_up_matching(s, "too-big");
        legacy_match_done(s);
        return;
    }
    if (n == 0) {
        struct legacy_match_stats st;
        legacy_match_resolve(s->legacy_match, &st);
        legacy_match_done(s);
        return;
    }
    /* One array of pointers into the match for the lookup's life. */
    s->legacy_ids = malloc(n * (sizeof(const char *) + sizeof(size_t)));
    if (!s->legacy_ids) {
        give_up_matching(s, "out-of-memory");
        legacy_match_done(s);
        return;
    }
    const char **ids = (const char **)s->legacy_ids;
    size_t *lens = (size_t *)(ids + n);
    legacy_match_lookup_ids(s->legacy_match, 0, n, ids, lens);
    s->legacy_lookup = uidl_store_lookup(s->gw->redis, s->device.login.state_user, ids, lens, n, on_values, s);
    if (!s->legacy_lookup)
        on_values(UIDL_STORE_UNAVAILABLE, NULL, NULL, 0, s);
}

void session_legacy_match(struct session *s, void (*next)(struct session *s))
{
    if (s->legacy_stored == 0 || s->selected_folder != 0) {
        next(s);
        return;
    }
    s->legacy_next = next;
    s->legacy_match = malloc(sizeof *s->legacy_match);
    if (!s->legacy_match) {
        next(s);
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
    free(s->legacy_ids);
    s->legacy_ids = NULL;
    if (s->legacy_match) {
        legacy_match_free(s->legacy_match);
        free(s->legacy_match);
        s->legacy_match = NULL;
    }
    legacy_uidl_free(&s->legacy_uidls);
}
