/* session_commit.c: QUIT and the UPDATE state (RFC 1939 section 6, docs/design.md
 * "Dispositions" and "Commit").
 *
 * Nothing changes before QUIT. QUIT first checks that Redis is reachable and
 * the device lock still ours, then walks a table of upstream steps (each an
 * idempotent IMAP command over a bounded UID set, chosen by on_retr and
 * on_dele), then makes the one atomic Redis step. +OK only when all of it
 * succeeded; otherwise -ERR [SYS/TEMP], and the client keeps its messages.
 * Only for failures a retry can change (connection, timeout, [UNAVAILABLE]):
 * an upstream that refuses a step (tagged NO or BAD: no such trash folder,
 * over quota, a read-only mailbox) refuses it at every QUIT, so the step is
 * given up instead, logged once, and the rest commits. Deleted messages it
 * could not remove are hidden from the device (as on_dele = hide), so they
 * are not offered again at every poll.
 * Never plain EXPUNGE or CLOSE: they would also remove messages other clients
 * marked \Deleted; UID EXPUNGE touches only our UIDs. */
#include "session_internal.h"

#include <stdlib.h>

#include "log.h"
#include "reply_code.h"
#include "view.h"

enum commit_action { COMMIT_STORE, COMMIT_UID_EXPUNGE, COMMIT_FIND_TRASH, COMMIT_MOVE, COMMIT_COPY };

struct commit_step {
    const char *name;
    enum commit_action action;
    const char *flags;                       /* for COMMIT_STORE */
    uint8_t with, without;                   /* which maildrop entries the step covers */
    bool (*applies)(const struct session *s);
};

static bool retr_seen_dele_hide(const struct session *s)
{
    return s->policy.on_retr == ON_RETR_SEEN && s->policy.on_dele == ON_DELE_HIDE;
}

static bool retr_seen_dele_removes(const struct session *s)
{
    return s->policy.on_retr == ON_RETR_SEEN && s->policy.on_dele != ON_DELE_HIDE;
}

static bool has_cap(const struct session *s, unsigned cap)
{
    return (imap_client_caps(s->imap) & cap) != 0;
}

static bool dele_trash(const struct session *s)
{
    return s->policy.on_dele == ON_DELE_TRASH;
}

static bool dele_trash_move(const struct session *s)
{
    return dele_trash(s) && has_cap(s, IMAP_CAP_MOVE);
}

static bool dele_trash_copy(const struct session *s)
{
    return dele_trash(s) && !has_cap(s, IMAP_CAP_MOVE);
}

/* Without UIDPLUS there is no safe expunge: \Deleted stays set (docs/design.md). */
static bool dele_trash_copy_expunge(const struct session *s)
{
    return dele_trash_copy(s) && has_cap(s, IMAP_CAP_UIDPLUS);
}

static bool dele_expunge(const struct session *s)
{
    return s->policy.on_dele == ON_DELE_EXPUNGE;
}

static bool dele_expunge_uidplus(const struct session *s)
{
    return dele_expunge(s) && has_cap(s, IMAP_CAP_UIDPLUS);
}

/* Deleted here, still upstream, and not already given up on. */
#define DELETED_HERE MAILDROP_DELETED, MAILDROP_GONE | MAILDROP_HIDDEN_INSTEAD

static const struct commit_step commit_steps[] = {
    { "seen", COMMIT_STORE, "\\Seen", MAILDROP_RETRIEVED, MAILDROP_GONE, retr_seen_dele_hide },
    { "seen", COMMIT_STORE, "\\Seen", MAILDROP_RETRIEVED, MAILDROP_DELETED | MAILDROP_GONE,
      retr_seen_dele_removes },
    { "find-trash", COMMIT_FIND_TRASH, NULL, DELETED_HERE, dele_trash },
    { "move-to-trash", COMMIT_MOVE, NULL, DELETED_HERE, dele_trash_move },
    { "copy-to-trash", COMMIT_COPY, NULL, DELETED_HERE, dele_trash_copy },
    { "delete-copied", COMMIT_STORE, "\\Deleted", DELETED_HERE, dele_trash_copy },
    { "expunge-copied", COMMIT_UID_EXPUNGE, NULL, DELETED_HERE, dele_trash_copy_expunge },
    { "delete", COMMIT_STORE, "\\Deleted", DELETED_HERE, dele_expunge },
    { "expunge", COMMIT_UID_EXPUNGE, NULL, DELETED_HERE, dele_expunge_uidplus },
};
#define COMMIT_STEP_COUNT (int)(sizeof commit_steps / sizeof commit_steps[0])

static void commit_next(struct session *s);

static void commit_failed_with(struct session *s, const char *step, const char *reason, const char *reply)
{
    log_event(LOG_LEVEL_WARN, s->id, "commit", "user", s->device.login.user,
              "device", s->device.login.device, "result", "failed", "step", step, "reason", reason,
              "upstream_error", s->imap ? imap_client_last_error(s->imap) : NULL, LOG_END);
    s->busy = false;
    session_close(s, reply, "commit-failed");
}

void session_commit_failed(struct session *s, const char *step, const char *reason)
{
    commit_failed_with(s, step, reason, reply_for_commit_failure(IMAP_RESULT_IO_ERROR).line);
}

/* An upstream step failed in a way a retry can change. */
static void upstream_step_failed(struct session *s, const char *step, enum imap_result r)
{
    commit_failed_with(s, step, imap_result_name(r), reply_for_commit_failure(r).line);
}

static void commit_finished(struct session *s)
{
    uint32_t hidden = s->commit->hidden_instead;
    log_event(LOG_LEVEL_INFO, s->id, "commit", "user", s->device.login.user,
              "device", s->device.login.device, "result", "ok", "retr", LOG_U64(s->retr_count),
              "hidden_instead", hidden ? LOG_U64(hidden) : NULL, LOG_END);
    /* LOGOUT is a courtesy; the commit is already durable upstream and in Redis. */
    imap_client_free(s->imap);
    s->imap = NULL;
    s->busy = false;
    session_close(s, hidden ? "+OK Logging out; deleted mail the server would not remove is hidden "
                              "from this device instead."
                            : "+OK Logging out.", "quit");
}

/* A failure retrying cannot change: the upstream answered, and said no
 * (over quota included: the user, not a retry, has to make room). */
static bool permanent_refusal(enum imap_result r)
{
    return r == IMAP_RESULT_NO || r == IMAP_RESULT_BAD || reply_for_commit_failure(r).permanent;
}

/* The folder's deleted messages stay upstream; the device stops seeing them. */
static void hide_deleted_instead(struct session *s, uint8_t folder)
{
    for (uint32_t i = 1; i <= s->drop.count; i++) {
        struct maildrop_entry *e = maildrop_get(&s->drop, i);
        if (e->folder == folder && (e->flags & MAILDROP_DELETED) &&
            !(e->flags & (MAILDROP_GONE | MAILDROP_HIDDEN_INSTEAD))) {
            e->flags |= MAILDROP_HIDDEN_INSTEAD;
            s->commit->hidden_instead++;
        }
    }
}

static void skip_step(struct session *s)
{
    s->commit->step++;
    s->commit->cursor = 0;
}

static void on_commit_step_done(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    const struct commit_step *step = &commit_steps[s->commit->step];
    if (r != IMAP_RESULT_OK && !permanent_refusal(r)) {
        upstream_step_failed(s, step->name, r);
        return;
    }
    if (r != IMAP_RESULT_OK) {
        log_event(LOG_LEVEL_WARN, s->id, "commit-step-refused", "user", s->device.login.user,
                  "step", step->name, "folder", s->mapping->folders[s->commit->folder],
                  "upstream_error", imap_client_last_error(s->imap), LOG_END);
        if (step->action == COMMIT_MOVE || step->action == COMMIT_COPY)
            session_trash_warn_once(s, "the server refused to put mail into the trash folder");
        if (step->with == MAILDROP_DELETED)
            hide_deleted_instead(s, s->commit->folder);
        skip_step(s);
    }
    commit_next(s);
}

static void on_trash_resolved(struct session *s, enum imap_result r)
{
    if (s->state == SESSION_CLOSING)
        return;
    if (r != IMAP_RESULT_OK) {
        upstream_step_failed(s, "find-trash", r);
        return;
    }
    if (!session_trash_name(s))
        hide_deleted_instead(s, s->commit->folder);
    skip_step(s);
    commit_next(s);
}

static void run_step(struct session *s);

static void on_folder_selected(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        upstream_step_failed(s, "select", r);
        return;
    }
    run_step(s);
}

/* The steps run folder by folder (UID sets belong to one mailbox); a folder
 * with nothing to change is never selected. */
static void commit_next(struct session *s)
{
    struct commit_progress *p = s->commit;
    while (p->folder < s->drop.n_folders) {
        if (p->step == COMMIT_STEP_COUNT) {
            p->folder++;
            p->step = 0;
            p->cursor = 0;
            continue;
        }
        const struct commit_step *step = &commit_steps[p->step];
        size_t len = 0;
        if (step->applies(s))
            len = maildrop_uidset(&s->drop, p->folder, step->with, step->without, &p->cursor, p->uidset,
                                  sizeof p->uidset);
        if (len > 0 && step->action == COMMIT_FIND_TRASH && s->trash_state != TRASH_UNKNOWN) {
            /* Known since a DELE: no lookup; without a trash, hide instead. */
            if (!session_trash_name(s))
                hide_deleted_instead(s, p->folder);
            len = 0;
        }
        if (len == 0) {
            p->step++;
            p->cursor = 0;
            continue;
        }
        session_select_folder(s, p->folder, on_folder_selected);
        return;
    }
    session_device_commit(s, commit_finished);
}

static void run_step(struct session *s)
{
    struct commit_progress *p = s->commit;
    const struct commit_step *step = &commit_steps[p->step];
    switch (step->action) {
    case COMMIT_STORE:
        imap_store_add_flags(s->imap, p->uidset, step->flags, on_commit_step_done, s);
        break;
    case COMMIT_UID_EXPUNGE:
        imap_uid_expunge(s->imap, p->uidset, on_commit_step_done, s);
        break;
    case COMMIT_FIND_TRASH:
        /* Runs once, only when there is something to put there. */
        session_trash_resolve(s, on_trash_resolved);
        break;
    case COMMIT_MOVE:
        imap_uid_move(s->imap, p->uidset, session_trash_name(s), on_commit_step_done, s);
        break;
    case COMMIT_COPY:
        imap_uid_copy(s->imap, p->uidset, session_trash_name(s), on_commit_step_done, s);
        break;
    }
}

static void begin_upstream_steps(struct session *s)
{
    commit_next(s);
}

/* Does any step of the table apply to any message? A session that only
 * looked (STAT, LIST, UIDL), or whose changes are Redis's alone (on_retr =
 * keep, on_dele = hide), changes nothing upstream. */
static bool has_upstream_steps(const struct session *s)
{
    for (int k = 0; k < COMMIT_STEP_COUNT; k++) {
        const struct commit_step *step = &commit_steps[k];
        if (!step->applies(s))
            continue;
        for (uint32_t i = 0; i < s->drop.count; i++) {
            uint8_t f = s->drop.entries[i].flags;
            if ((f & step->with) == step->with && !(f & step->without))
                return true;
        }
    }
    return false;
}

void session_cmd_quit(struct session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    if (s->state != SESSION_TRANSACTION) {
        session_close(s, "+OK Logging out.", "quit");
        return;
    }
    s->commit = calloc(1, sizeof *s->commit);
    if (!s->commit) {
        session_close(s, "-ERR [SYS/TEMP] Out of resources; nothing was removed.", "commit-failed");
        return;
    }
    /* EXPIRE 0 (RFC 2449 6.7): what was retrieved is deleted at QUIT, by the
     * mapping's on_dele. */
    if (s->mapping->expire == EXPIRE_DAYS && s->mapping->expire_days == 0)
        for (uint32_t i = 1; i <= s->drop.count; i++)
            if (maildrop_get(&s->drop, i)->flags & MAILDROP_RETRIEVED)
                maildrop_get(&s->drop, i)->flags |= MAILDROP_DELETED;
    s->busy = true;
    session_set_state(s, SESSION_UPDATE);
    /* The precheck (lock still ours, Redis up) guards upstream changes that
     * a failed commit would leave behind; without any, the commit's own
     * lock check is enough, and QUIT saves that round trip. */
    if (has_upstream_steps(s))
        session_device_precheck(s, begin_upstream_steps);
    else if (!s->device.lock_held)
        session_commit_failed(s, "precheck", "lock-lost");
    else
        session_device_commit(s, commit_finished);
}
