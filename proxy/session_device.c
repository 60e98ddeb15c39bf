/* session_device.c: the session's side of per-device state (docs/design.md
 * "Devices", "Views", "Commit"): the device lock from login to the end of the
 * session, loading the device's state and applying its view at login, and the
 * atomic Redis step of QUIT. The Redis work itself is in backends/device_state.c. */
#include "session_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "hash64.h"
#include "hex.h"
#include "log.h"
#include "metrics.h"
#include "view.h"

static struct device_session *dev(struct session *s)
{
    return &s->device;
}

/* Wall-clock milliseconds: lock and session expiry are compared across nodes. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void continue_with_next(struct session *s)
{
    void (*next)(struct session *) = s->device.next;
    s->device.next = NULL;
    next(s);
}

/* ---- lock --------------------------------------------------------------- */

static void on_lock_refreshed(enum device_result r, void *arg)
{
    struct session *s = arg;
    dev(s)->refresh = NULL;
    if (r == DEVICE_LOCK_LOST && dev(s)->lock_held) {
        dev(s)->lock_held = false;
        dev(s)->lock_lost = true;
        log_event(LOG_LEVEL_WARN, s->id, "lock-lost", "user", dev(s)->login.user,
                  "device", dev(s)->login.device, LOG_END);
    }
}

static void on_refresh_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    struct session *s = w->data;
    if (!dev(s)->lock_held || dev(s)->refresh)
        return;
    dev(s)->refresh = device_lock_refresh(s->gw->redis, dev(s)->keys, dev(s)->lock_token,
                                          s->cfg->lock_ttl * 1000, wall_ms(), on_lock_refreshed, s);
}

void session_device_init(struct session *s)
{
    ev_timer_init(&dev(s)->refresh_timer, on_refresh_timer, 0., 0.);
    dev(s)->refresh_timer.data = s;
}

/* A random lock token, so only this session can refresh or release the lock. */
static bool make_token(char out[DEVICE_TOKEN_MAX])
{
    unsigned char raw[16];
    _Static_assert(HEX_LEN(sizeof raw) < DEVICE_TOKEN_MAX, "lock token fits");
    if (RAND_bytes(raw, sizeof raw) != 1)
        return false;
    hex_encode(raw, sizeof raw, out);
    return true;
}

static void on_lock_acquired(enum device_result r, const struct device_legacy_check *legacy, void *arg)
{
    struct session *s = arg;
    dev(s)->request = NULL;
    if (r == DEVICE_IN_USE) {
        login_fail(s, "-ERR [IN-USE] This device is already in a session; "
                                     "log in as user#otherdevice to use another.", "in-use", false);
        return;
    }
    if (r == DEVICE_TOO_MANY_SESSIONS) {
        login_fail(s, "-ERR [IN-USE] Too many sessions for this user; "
                                     "close one and try again.", "max-sessions", false);
        return;
    }
    if (r == DEVICE_LOGIN_DELAY) {
        login_fail(s, "-ERR [LOGIN-DELAY] Logged in too recently; try again later.",
                                  "login-delay", false);
        return;
    }
    if (r != DEVICE_OK) {
        login_fail(s, "-ERR [SYS/TEMP] Device state unavailable, try again later.",
                                  "redis", false);
        return;
    }
    dev(s)->lock_held = true;
    dev(s)->legacy = *legacy;
    double every = s->cfg->lock_ttl / 3.0;
    ev_timer_set(&dev(s)->refresh_timer, every, every);
    ev_timer_start(s->gw->loop, &dev(s)->refresh_timer);
    login_step_done(s);
}

void session_device_lock(struct session *s)
{
    struct device_session *d = dev(s);
    if (!d->keys)
        d->keys = malloc(sizeof *d->keys);
    if (!d->keys) {
        on_lock_acquired(DEVICE_UNAVAILABLE, NULL, s);
        return;
    }
    device_keys_init(d->keys, d->login.state_user, d->login.device);
    struct device_limits limits = { .now_ms = wall_ms(), .max_sessions = s->mapping->max_sessions_per_user,
                                    .login_delay = s->mapping->login_delay };
    if (make_token(d->lock_token))
        d->request = device_lock_acquire(s->gw->redis, d->keys, d->login.state_user, d->lock_token,
                                         s->cfg->lock_ttl * 1000, &limits, on_lock_acquired, s);
    if (!d->request)
        on_lock_acquired(DEVICE_UNAVAILABLE, NULL, s);
}

void session_device_release(struct session *s)
{
    struct device_session *d = dev(s);
    redis_request_cancel(d->request);
    redis_request_cancel(d->refresh);
    d->request = d->refresh = NULL;
    ev_timer_stop(s->gw->loop, &d->refresh_timer);
    if (d->lock_held)
        device_lock_release(s->gw->redis, d->keys, d->lock_token);
    d->lock_held = false;
    free(d->all_ids);
    d->all_ids = NULL;
    d->all_ids_len = 0;
    free(d->old_ids);
    d->old_ids = NULL;
    free(d->keys);
    d->keys = NULL;
}

/* ---- load and view ------------------------------------------------------ */

/* The packed ids of the entries having `with` and none of `without`
 * (DEVICE_ID_BYTES each, device_state.h). */
static char *collect_ids(const struct maildrop *m, uint8_t with, uint8_t without, size_t *len)
{
    char *ids = malloc((size_t)m->count * DEVICE_ID_BYTES + 1);
    if (!ids)
        return NULL;
    size_t n = 0;
    for (uint32_t i = 0; i < m->count; i++) {
        const struct maildrop_entry *e = &m->entries[i];
        if ((e->flags & with) == with && !(e->flags & without)) {
            device_id_pack(e->state_id, ids + n);
            n += DEVICE_ID_BYTES;
        }
    }
    ids[n] = '\0';
    *len = n;
    return ids;
}

/* Every entry's id as releases before the compact state formed it (their
 * UID-based ids were hashed), aligned with collect_ids(m, 0, 0): what the
 * load script needs to convert state those releases wrote. */
static char *collect_old_ids(const struct maildrop *m, size_t *len)
{
    char *ids = malloc((size_t)m->count * DEVICE_ID_BYTES + 1);
    if (!ids)
        return NULL;
    for (uint32_t i = 0; i < m->count; i++) {
        const struct maildrop_entry *e = &m->entries[i];
        uint64_t id = e->state_id;
        if (e->flags & MAILDROP_ID_FROM_UID) {
            id = message_state_id_hashed_uid(m->folder_uidvalidity[e->folder], e->uid);
            if (e->folder > 0) {
                uint32_t tag = m->folder_tag[e->folder];
                id = hash64(id, &tag, sizeof tag);  /* as session_login.c tags every folder but the first */
            }
        }
        device_id_pack(id, ids + (size_t)i * DEVICE_ID_BYTES);
    }
    *len = (size_t)m->count * DEVICE_ID_BYTES;
    ids[*len] = '\0';
    return ids;
}

/* The id scheme as stored in the device hash (idscheme, under 8 octets). */
static const char *ids_scheme_name(enum imap_stable_ids ids)
{
    return ids == IMAP_IDS_EMAILID ? "emailid" : ids == IMAP_IDS_X_GM_MSGID ? "gmmsgid" : "uid";
}

static void on_state_loaded(const struct device_load_result *res, void *arg)
{
    struct session *s = arg;
    struct device_session *d = dev(s);
    d->request = NULL;
    free(d->old_ids);
    d->old_ids = NULL;
    uint32_t count = s->drop.count;
    metrics_observe(METRIC_REDIS_LATENCY, ev_now(s->gw->loop) - d->request_started);
    if (res->result != DEVICE_OK)
        metrics_counter_add(METRIC_REDIS_ERRORS_TOTAL, NULL, 1);
    uint8_t *state = res->result == DEVICE_OK && res->nbits == count ? malloc(count + 1) : NULL;
    if (!state) {
        login_fail(s, "-ERR [SYS/TEMP] Device state unavailable, try again later.",
                                  "redis", false);
        return;
    }
    /* Sizes measured before, by any node: before the view drops entries, so
     * the indexes still match the ids sent. */
    for (size_t i = 0; i < res->n_sizes; i++) {
        const redisReply *idx = res->sizes[2 * i], *size = res->sizes[2 * i + 1];
        if (idx->type != REDIS_REPLY_INTEGER || size->type != REDIS_REPLY_INTEGER || idx->integer < 1 ||
            idx->integer > (long long)count || size->integer < 0 || size->integer > UINT32_MAX)
            continue;
        struct maildrop_entry *e = &s->drop.entries[idx->integer - 1];
        e->size = (uint32_t)size->integer;
        e->flags |= MAILDROP_SIZE_EXACT;
    }
    uint64_t n_read = 0, n_got = 0, n_hide = 0;
    for (uint32_t i = 0; i < count; i++) {
        state[i] = (uint8_t)(res->bits[i] - '0') & (VIEW_STATE_READ | VIEW_STATE_GOT | VIEW_STATE_HIDDEN);
        n_read += !!(state[i] & VIEW_STATE_READ);
        n_got += !!(state[i] & VIEW_STATE_GOT);
        n_hide += !!(state[i] & VIEW_STATE_HIDDEN);
    }
    /* Ids that do not follow the message across a UIDVALIDITY change, or
     * ids of another scheme than the stored ones (a server that gained
     * OBJECTID, a Gmail device from before X-GM-MSGID): apply the configured
     * policy instead of a silent re-download storm. A device with nothing
     * stored has nothing to carry over. */
    const char *scheme = ids_scheme_name(d->ids);
    bool stored = res->stored_read > 0 || res->stored_got > 0 || res->stored_hide > 0;
    bool scheme_changed = stored && res->ids_scheme[0] != '\0' && strcmp(res->ids_scheme, scheme) != 0;
    bool uidvalidity_changed = d->ids == IMAP_IDS_NONE && res->uidvalidity != 0 &&
                               res->uidvalidity != s->drop.uidvalidity;
    if (scheme_changed || uidvalidity_changed) {
        log_event(LOG_LEVEL_WARN, s->id, scheme_changed ? "ids-scheme-changed" : "uidvalidity-changed",
                  "user", d->login.user, "device", d->login.device,
                  "old", scheme_changed ? res->ids_scheme : NULL,
                  "new", scheme_changed ? scheme : NULL,
                  "old_uidvalidity", LOG_U64(res->uidvalidity),
                  "new_uidvalidity", LOG_U64(s->drop.uidvalidity),
                  "policy", s->cfg->uidvalidity_policy == UIDVALIDITY_MARK_ALL_DOWNLOADED
                                ? "mark-all-downloaded" : "redownload", LOG_END);
        if (s->cfg->uidvalidity_policy == UIDVALIDITY_MARK_ALL_DOWNLOADED) {
            d->mark_all_downloaded = true;
            for (uint32_t i = 0; i < count; i++)
                state[i] |= VIEW_STATE_READ | VIEW_STATE_GOT;
        }
    }
    if (res->mark_all) {
        /* popgate-admin device mark-all: a new phone starts from now. */
        d->mark_all_downloaded = true;
        d->mark_all_requested = true;
        for (uint32_t i = 0; i < count; i++)
            state[i] |= VIEW_STATE_READ | VIEW_STATE_GOT;
    }
    bool stale = res->stored_read > n_read || res->stored_got > n_got || res->stored_hide > n_hide ||
                 res->stored_sizes > res->n_sizes;
    if (!stale && !d->mark_all_downloaded) {
        free(d->all_ids);
        d->all_ids = NULL;
        d->all_ids_len = 0;
    }
    int64_t now = (int64_t)time(NULL);
    uint32_t shown = view_filter_maildrop(&s->drop, state, &s->policy, now, res->first_seen);
    free(state);
    log_event(LOG_LEVEL_INFO, s->id, "view", "user", d->login.user, "device", d->login.device,
              "view", view_kind_name(s->policy.kind), "upstream", LOG_U64(count),
              "shown", LOG_U64(shown), "prune", stale ? "yes" : "no", LOG_END);
    login_step_done(s);
}

/* EXPIRE n (n > 0): what this device retrieved n days ago or earlier is no
 * longer in its maildrop. 0 = nothing expires this way. */
static int64_t expire_before(const struct session *s)
{
    const struct mapping *m = s->mapping;
    if (m->expire != EXPIRE_DAYS || m->expire_days == 0)
        return 0;
    return (int64_t)time(NULL) - (int64_t)m->expire_days * 86400;
}

void session_device_load(struct session *s)
{
    struct device_session *d = dev(s);
    d->all_ids = collect_ids(&s->drop, 0, 0, &d->all_ids_len);
    d->old_ids = collect_old_ids(&s->drop, &d->old_ids_len);
    d->request_started = ev_now(s->gw->loop);
    if (d->all_ids && d->old_ids)
        d->request = device_state_load(s->gw->redis, d->keys, d->all_ids, d->all_ids_len, d->old_ids,
                                       d->old_ids_len, (int64_t)time(NULL),
                                       (uint64_t)s->cfg->device_ttl * 1000, expire_before(s),
                                       on_state_loaded, s);
    if (!d->request) {
        struct device_load_result failed = { .result = DEVICE_UNAVAILABLE };
        on_state_loaded(&failed, s);
    }
}

void session_device_store_size(struct session *s, const struct maildrop_entry *e)
{
    struct device_session *d = dev(s);
    if (d->keys)
        device_size_store(s->gw->redis, d->keys, e->state_id, e->size, (uint64_t)s->cfg->device_ttl * 1000);
}

/* ---- QUIT --------------------------------------------------------------- */

static void on_precheck(enum device_result r, void *arg)
{
    struct session *s = arg;
    dev(s)->request = NULL;
    if (r != DEVICE_OK) {
        session_commit_failed(s, "precheck", r == DEVICE_LOCK_LOST ? "lock-lost" : "redis");
        return;
    }
    continue_with_next(s);
}

void session_device_precheck(struct session *s, void (*next)(struct session *s))
{
    struct device_session *d = dev(s);
    if (!d->lock_held) {
        session_commit_failed(s, "precheck", "lock-lost");
        return;
    }
    d->next = next;
    d->request = device_lock_refresh(s->gw->redis, d->keys, d->lock_token, s->cfg->lock_ttl * 1000,
                                     wall_ms(), on_precheck, s);
    if (!d->request)
        on_precheck(DEVICE_UNAVAILABLE, s);
}

static void on_committed(enum device_result r, void *arg)
{
    struct session *s = arg;
    dev(s)->request = NULL;
    metrics_observe(METRIC_REDIS_LATENCY, ev_now(s->gw->loop) - dev(s)->request_started);
    if (r != DEVICE_OK) {
        metrics_counter_add(METRIC_REDIS_ERRORS_TOTAL, NULL, 1);
        session_commit_failed(s, "redis", r == DEVICE_LOCK_LOST ? "lock-lost" : "redis");
        return;
    }
    /* The commit released the lock (device_state_commit). */
    dev(s)->lock_held = false;
    ev_timer_stop(s->gw->loop, &dev(s)->refresh_timer);
    continue_with_next(s);
}

void session_device_commit(struct session *s, void (*next)(struct session *s))
{
    struct device_session *d = dev(s);
    size_t got_len = 0, hidden_len = 0;
    char *got = d->mark_all_downloaded ? NULL : collect_ids(&s->drop, MAILDROP_RETRIEVED, MAILDROP_GONE, &got_len);
    /* on_dele = hide hides what was deleted; the other dispositions hide what
     * the upstream refused to remove (session_commit.c). */
    uint8_t hide_flag = s->policy.on_dele == ON_DELE_HIDE ? MAILDROP_DELETED : MAILDROP_HIDDEN_INSTEAD;
    char *hidden = collect_ids(&s->drop, hide_flag, MAILDROP_GONE, &hidden_len);
    bool ok = (got || d->mark_all_downloaded) && hidden;
    struct device_commit c = {
        .token = d->lock_token,
        .now = (int64_t)time(NULL),
        .addr = s->peer,
        .ttl_ms = (uint64_t)s->cfg->device_ttl * 1000,
        .view = view_kind_name(s->policy.kind),
        .uidvalidity = s->drop.uidvalidity,
        .ids_scheme = ids_scheme_name(d->ids),
        .got_ids = d->mark_all_downloaded ? d->all_ids : got,
        .got_len = d->mark_all_downloaded ? d->all_ids_len : got_len,
        .hidden_ids = hidden,
        .hidden_len = hidden_len,
        .all_ids = d->all_ids,
        .all_len = d->all_ids_len,
        .retrieved = s->retr_count,
        .clear_mark_all = d->mark_all_requested,
        .record_retrieval_time = s->mapping->expire == EXPIRE_DAYS && s->mapping->expire_days > 0,
    };
    d->next = next;
    d->request_started = ev_now(s->gw->loop);
    if (ok)
        d->request = device_state_commit(s->gw->redis, d->keys, &c, on_committed, s);
    free(got);
    free(hidden);
    if (!d->request)
        on_committed(DEVICE_UNAVAILABLE, s);
}
