/* session_listing.c: the login's select and listing steps, once per folder,
 * with the node's listing cache (translate/listing_cache.h), so that a login
 * costs what changed upstream rather than a listing of every message.
 *
 * Where the server has CONDSTORE (RFC 7162; Dovecot and Cyrus do), SELECT
 * reports HIGHESTMODSEQ, which grows with every flag change, expunge and
 * delivery. After the SELECT, with the folder's cached listing:
 *
 *   same UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT, and EXISTS = cached count
 *       -> the cached listing is the folder: nothing is fetched;
 *   same UIDVALIDITY and a higher HIGHESTMODSEQ
 *       -> UID FETCH 1:* (...) (CHANGEDSINCE cached) lists the messages
 *          whose flags changed and the new ones, merged into a copy of the
 *          cached listing (listing_build.h); if the result does not hold
 *          exactly EXISTS messages (something was expunged), or holds a UID
 *          it cannot place, the folder is listed in full instead;
 *   anything else (no cache, another UIDVALIDITY, another stable-id scheme,
 *   a cache without INTERNALDATE for a view with a date window, a
 *   HIGHESTMODSEQ that went down, [NOMODSEQ], no CONDSTORE)
 *       -> the full listing, as without a cache.
 *
 * Why this is never wrong: every change that matters to a maildrop raises
 * HIGHESTMODSEQ (flags, \Seen and \Deleted included, set by any client) or
 * shows in UIDVALIDITY, UIDNEXT or EXISTS; CHANGEDSINCE reports every message
 * whose flags changed and every new one; an expunge lowers the count, which
 * the merged listing must match. The SELECT's figures are stored with the
 * listing, so a change that lands while the listing is fetched is seen by the
 * next login as a change.
 *
 * The cache is the node's own: behind a load balancer each node learns a
 * user's folders at its first login there (a full listing) and keeps them
 * up to date by itself; nodes never serve each other's listings, so nothing
 * has to be invalidated across nodes. Keyed by upstream address, port and
 * upstream login name, so two POP3 logins of one upstream account share it,
 * and read only after the upstream accepted the user's credentials.
 */
#include "session_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash64.h"
#include "listing_build.h"
#include "log.h"

/* "host:port", NUL, the upstream login name. */
#define LISTING_KEY_MAX (MAPPING_HOST_MAX + 8 + LOGIN_USER_MAX + 1)

enum listing_source { SOURCE_CACHE, SOURCE_CHANGED, SOURCE_FULL };
static const char *const source_names[] = {
    [SOURCE_CACHE] = "cache", [SOURCE_CHANGED] = "changed", [SOURCE_FULL] = "full",
};

/* One login's listing work; allocated at the first SELECT, freed when the
 * last folder is in the maildrop or the login ends. */
struct folder_listing {
    char key[LISTING_KEY_MAX];
    size_t key_len;               /* 0: no cache for this login */
    enum listing_source source;
    struct listing_meta selected; /* what the SELECT said */
    uint64_t since;               /* SOURCE_CHANGED: the cached HIGHESTMODSEQ */
    struct listing_build build;
    /* The listing sent right behind the SELECT (imap_select_listing), chosen
     * before the SELECT said which one the folder needs; PIPED_NONE once its
     * reply arrived, or when nothing was sent behind the SELECT. */
    enum { PIPED_NONE, PIPED_FULL, PIPED_CHANGED } piped;
    uint64_t piped_since;         /* PIPED_CHANGED: the HIGHESTMODSEQ cached when it was sent */
    bool piped_used;              /* its items are the folder's listing */
};

void session_listing_release(struct session *s)
{
    if (!s->folder_listing)
        return;
    listing_build_free(&s->folder_listing->build);
    free(s->folder_listing);
    s->folder_listing = NULL;
}

static const char *folder_name(const struct session *s)
{
    return s->mapping->folders[s->login.folder];
}

/* The cache key, or key_len 0 when the cache is off or the name does not fit. */
static void make_key(struct session *s, struct folder_listing *l)
{
    char upstream_user[LOGIN_USER_MAX + 1];
    l->key_len = 0;
    if (s->cfg->listing_cache_mb == 0 ||
        !login_transform_apply(&s->mapping->login, s->device.login.user, upstream_user))
        return;
    int n = snprintf(l->key, sizeof l->key, "%s:%u", s->mapping->imap.host, s->mapping->imap.port);
    size_t ulen = strlen(upstream_user);
    if (n < 0 || (size_t)n + 1 + ulen > sizeof l->key)
        return;
    memcpy(l->key + n + 1, upstream_user, ulen);
    l->key_len = (size_t)n + 1 + ulen;
}

/* ---- select --------------------------------------------------------------- */

/* INTERNALDATE only for a view with a date window: on a Maildir the server
 * stat()s every message for it, most of its time in a large listing. */
static bool needs_dates(const struct view_policy *p)
{
    return p->since != 0 || p->max_age != 0 || p->from_first_login;
}

/* Which listing the folder needs, now that the SELECT said where it stands. */
static void choose_source(struct session *s, struct folder_listing *l)
{
    l->source = SOURCE_FULL;
    listing_build_reset(&l->build);
    if (l->key_len == 0 || l->selected.highestmodseq == 0 || l->selected.uidnext == 0)
        return;
    const struct listing_cache_folder *f =
        listing_cache_get(&s->gw->listing_cache, l->key, l->key_len, folder_name(s));
    if (!f || f->meta.uidvalidity != l->selected.uidvalidity ||
        f->meta.id_scheme != l->selected.id_scheme || (l->selected.has_dates && !f->meta.has_dates) ||
        f->meta.highestmodseq > l->selected.highestmodseq)
        return;
    if (!listing_build_start_from(&l->build, f->records, f->count))
        return;
    if (f->meta.highestmodseq == l->selected.highestmodseq && f->meta.uidnext == l->selected.uidnext &&
        f->count == imap_client_exists(s->imap)) {
        l->source = SOURCE_CACHE;
        return;
    }
    l->source = SOURCE_CHANGED;
    l->since = f->meta.highestmodseq;
}

/* ---- select with the listing behind it -----------------------------------
 *
 * Where the server is known to take it (imap_client_pipelines_select), the
 * listing goes out with the SELECT, guessed from the cache as it stands: the
 * changes since the cached HIGHESTMODSEQ where the folder has a usable cache
 * entry, the full listing otherwise. The SELECT's answer then decides as
 * above (choose_source), and the guess is used only where it is what that
 * decision asks for (a full listing always is, except that an unchanged
 * cache wins); otherwise its items are dropped and the listing the folder
 * needs is fetched after it, as without pipelining. So the cache's rules are
 * the same either way, and a folder whose UIDVALIDITY changed is listed in
 * full. */

static void on_selected(struct imap_client *c, enum imap_result r, void *arg);
static void on_listing_item(const struct imap_listing_item *item, void *arg);
static void on_full_listing(struct imap_client *c, enum imap_result r, void *arg);
static void on_changed_listing(struct imap_client *c, enum imap_result r, void *arg);

static void guess_listing(struct session *s, struct folder_listing *l)
{
    l->piped = PIPED_FULL;
    l->piped_since = 0;
    l->piped_used = false;
    if (l->key_len == 0 || !(imap_client_caps(s->imap) & IMAP_CAP_CONDSTORE))
        return;
    const struct listing_cache_folder *f =
        listing_cache_get(&s->gw->listing_cache, l->key, l->key_len, folder_name(s));
    if (!f || f->meta.highestmodseq == 0 || f->meta.id_scheme != (uint8_t)imap_client_stable_ids(s->imap) ||
        (needs_dates(&s->policy) && !f->meta.has_dates))
        return;
    l->piped = PIPED_CHANGED;
    l->piped_since = f->meta.highestmodseq;
}

/* After choose_source: is the listing already under way the one it chose? */
static void match_piped(struct folder_listing *l)
{
    if (l->piped == PIPED_FULL && l->source != SOURCE_CACHE) {
        l->source = SOURCE_FULL;
        listing_build_reset(&l->build);
        l->piped_used = true;
    } else if (l->piped == PIPED_CHANGED) {
        l->piped_used = l->source == SOURCE_CHANGED && l->since == l->piped_since;
    }
}

static void on_piped_item(const struct imap_listing_item *item, void *arg)
{
    struct session *s = arg;
    if (s->folder_listing->piped_used)
        on_listing_item(item, arg);
}

/* The pipelined listing's reply; or, while the login is still at its select
 * step, the SELECT's failure. */
static void on_piped_listing(struct imap_client *c, enum imap_result r, void *arg)
{
    struct session *s = arg;
    struct folder_listing *l = s->folder_listing;
    if (s->login.step == LOGIN_SELECT) {
        s->selected_folder = -1;  /* no mailbox is selected after a failed SELECT */
        login_fail_upstream(s, r);
        return;
    }
    l->piped = PIPED_NONE;
    if (l->piped_used) {
        if (l->source == SOURCE_FULL)
            on_full_listing(c, r, s);
        else
            on_changed_listing(c, r, s);
        return;
    }
    if (r != IMAP_RESULT_OK && r != IMAP_RESULT_NO && r != IMAP_RESULT_BAD) {
        login_fail_upstream(s, r);
        return;
    }
    session_listing_fetch(s);
}

static void select_with_listing(struct session *s)
{
    struct folder_listing *l = s->folder_listing;
    guess_listing(s, l);
    s->selected_folder = s->login.folder;
    imap_select_listing(s->imap, folder_name(s), l->piped_since, needs_dates(&s->policy), on_selected,
                        on_piped_item, on_piped_listing, s);
}

static void on_selected(struct imap_client *c, enum imap_result r, void *arg)
{
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        login_fail_upstream(s, r);
        return;
    }
    uint32_t uidvalidity = imap_client_uidvalidity(c);
    if (s->login.folder == 0) {
        maildrop_free(&s->drop);
        maildrop_init(&s->drop, uidvalidity);
        /* By capability, not by what the listing held: an empty mailbox
         * must not store a scheme that the next login calls changed. */
        s->device.ids = imap_client_stable_ids(c);
    } else if (!maildrop_add_folder(&s->drop, uidvalidity, maildrop_folder_tag(folder_name(s)))) {
        login_fail_upstream(s, IMAP_RESULT_INVALID_ARGUMENT);
        return;
    }
    struct folder_listing *l = s->folder_listing;
    l->selected = (struct listing_meta){
        .uidvalidity = uidvalidity,
        .uidnext = imap_client_uidnext(c),
        .highestmodseq = imap_client_highestmodseq(c),
        .id_scheme = (uint8_t)imap_client_stable_ids(c),
        .has_dates = needs_dates(&s->policy),
    };
    choose_source(s, l);
    match_piped(l);
    login_step_done(s);
}

void session_listing_select(struct session *s)
{
    if (!s->folder_listing) {
        s->folder_listing = calloc(1, sizeof *s->folder_listing);
        if (!s->folder_listing) {
            login_fail(s, "-ERR [SYS/TEMP] Out of resources.", "resources", false);
            return;
        }
        listing_build_init(&s->folder_listing->build);
        make_key(s, s->folder_listing);
    }
    if (imap_client_pipelines_select(s->imap) && s->selected_folder != s->login.folder) {
        select_with_listing(s);
        return;
    }
    s->folder_listing->piped = PIPED_NONE;
    session_select_folder(s, s->login.folder, on_selected);
}

/* ---- listing -------------------------------------------------------------- */

static void on_listing_item(const struct imap_listing_item *item, void *arg)
{
    struct session *s = arg;
    struct folder_listing *l = s->folder_listing;
    struct listing_record rec = {
        .uid = item->uid, .size = item->size, .internaldate = item->internaldate,
        .flags = (uint8_t)((item->seen ? LISTING_SEEN : 0) | (item->deleted ? LISTING_DELETED : 0)),
    };
    if (item->x_gm_msgid) {
        rec.state_id = message_state_id_x_gm(item->x_gm_msgid);
        rec.flags |= LISTING_STABLE_ID;
    } else {
        rec.state_id = message_state_id(item->emailid, item->emailid_len, l->selected.uidvalidity, item->uid);
        if (item->emailid)
            rec.flags |= LISTING_STABLE_ID;
    }
    listing_build_apply(&l->build, &rec);
}

/* The folder's records into the maildrop. Beyond MAILDROP_MAX_MESSAGES the
 * maildrop shows the oldest ones only. */
static void fill_maildrop(struct session *s, const struct listing_build *b)
{
    uint8_t folder = (uint8_t)(s->drop.n_folders - 1);
    uint32_t tag = s->drop.folder_tag[folder];
    for (uint32_t i = 0; i < b->count; i++) {
        const struct listing_record *r = &b->records[i];
        /* RFC822.SIZE until the device state says the exact size (Redis). */
        if (!maildrop_append(&s->drop, r->uid, r->size))
            return;
        struct maildrop_entry *e = maildrop_get(&s->drop, s->drop.count);
        e->internaldate = r->internaldate;
        e->state_id = r->state_id;
        if (!(r->flags & LISTING_STABLE_ID))
            e->flags |= MAILDROP_ID_FROM_UID;
        /* UID and UIDVALIDITY may repeat across folders; EMAILIDs and
         * X-GM-MSGIDs do not (Gmail's id is the same in every label). */
        if (folder > 0 && !(r->flags & LISTING_STABLE_ID))
            e->state_id = hash64(e->state_id, &tag, sizeof tag);
        if (r->flags & LISTING_SEEN)
            e->flags |= MAILDROP_SEEN_UPSTREAM;
    }
}

/* The folder's listing is complete: kept for the next login when it is
 * whole and matches EXISTS, put in the maildrop, and the login goes on. */
static void finish_folder(struct session *s)
{
    struct folder_listing *l = s->folder_listing;
    struct listing_build *b = &l->build;
    uint32_t exists = imap_client_exists(s->imap);
    bool kept = l->source == SOURCE_CACHE;
    if (!kept && l->key_len > 0 && l->selected.highestmodseq != 0 && l->selected.uidnext != 0 &&
        !b->truncated && !b->inconsistent && b->count == exists) {
        struct listing_meta meta = l->selected;
        if (b->count > 0 && b->records[b->count - 1].uid >= meta.uidnext)
            meta.uidnext = b->records[b->count - 1].uid + 1;   /* 0 after UID 2^32-1: never matches */
        kept = meta.uidnext != 0 && listing_cache_put(&s->gw->listing_cache, l->key, l->key_len, folder_name(s), &meta,
                                 b->records, b->count);
    }
    log_event(LOG_LEVEL_INFO, s->id, "listing", "user", s->device.login.user, "folder", folder_name(s),
              "source", source_names[l->source], "messages", LOG_U64(b->count),
              "changed", LOG_U64(b->replaced), "new", LOG_U64(b->appended),
              "cached", kept ? "yes" : "no", LOG_END);
    fill_maildrop(s, b);
    if ((unsigned)s->login.folder + 1 >= s->mapping->n_folders)
        session_listing_release(s);
    else
        listing_build_reset(b);
    login_step_done(s);
}

static void on_full_listing(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        login_fail_upstream(s, r);
        return;
    }
    finish_folder(s);
}

static void list_in_full(struct session *s)
{
    s->folder_listing->source = SOURCE_FULL;
    listing_build_reset(&s->folder_listing->build);
    imap_fetch_listing(s->imap, s->folder_listing->selected.has_dates, on_listing_item,
                       on_full_listing, s);
}

static void on_changed_listing(struct imap_client *c, enum imap_result r, void *arg)
{
    struct session *s = arg;
    struct folder_listing *l = s->folder_listing;
    if (r != IMAP_RESULT_OK && r != IMAP_RESULT_NO && r != IMAP_RESULT_BAD) {
        login_fail_upstream(s, r);
        return;
    }
    /* A server that refuses CHANGEDSINCE, or a merge that does not add up
     * to the folder (expunges, a UID the cache never had): list it all. */
    if (r != IMAP_RESULT_OK || l->build.inconsistent || l->build.truncated ||
        l->build.count != imap_client_exists(c)) {
        log_event(LOG_LEVEL_DEBUG, s->id, "listing-cache-stale", "folder", folder_name(s),
                  "result", imap_result_name(r), "merged", LOG_U64(l->build.count),
                  "exists", LOG_U64(imap_client_exists(c)), LOG_END);
        listing_cache_forget(&s->gw->listing_cache, l->key, l->key_len, folder_name(s));
        list_in_full(s);
        return;
    }
    finish_folder(s);
}

void session_listing_fetch(struct session *s)
{
    struct folder_listing *l = s->folder_listing;
    if (l->piped != PIPED_NONE)
        return;   /* on_piped_listing goes on when its reply is in */
    switch (l->source) {
    case SOURCE_CACHE:
        finish_folder(s);
        return;
    case SOURCE_CHANGED:
        imap_fetch_listing_changed(s->imap, l->since, l->selected.has_dates, on_listing_item,
                                   on_changed_listing, s);
        return;
    case SOURCE_FULL:
        list_in_full(s);
        return;
    }
}
