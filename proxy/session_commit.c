/* session_commit.c: QUIT and the UPDATE state (RFC 1939 section 6).
 *
 * Nothing changes upstream before QUIT. QUIT walks a table of steps, each an
 * idempotent IMAP command over the UID set of the messages it concerns, sent
 * in bounded chunks: \Seen for retrieved messages, \Deleted and UID EXPUNGE
 * for deleted ones. Never plain EXPUNGE or CLOSE: they would also remove
 * messages other clients marked \Deleted. +OK only after every step
 * succeeded; otherwise -ERR [SYS/TEMP], and the client keeps its messages. */
#include "session_internal.h"

#include "log.h"

enum commit_action { COMMIT_STORE, COMMIT_UID_EXPUNGE };

struct commit_step {
    const char *name;
    enum commit_action action;
    const char *flags;       /* for COMMIT_STORE */
    uint8_t with, without;   /* which maildrop entries the step covers */
};

static const struct commit_step commit_steps[] = {
    { "seen", COMMIT_STORE, "\\Seen", MAILDROP_RETRIEVED, MAILDROP_DELETED | MAILDROP_GONE },
    { "delete", COMMIT_STORE, "\\Deleted", MAILDROP_DELETED, MAILDROP_GONE },
    { "expunge", COMMIT_UID_EXPUNGE, NULL, MAILDROP_DELETED, MAILDROP_GONE },
};
#define COMMIT_STEP_COUNT (int)(sizeof commit_steps / sizeof commit_steps[0])

static void commit_next(struct session *s);

static void commit_finished(struct session *s)
{
    log_event(LOG_LEVEL_INFO, s->id, "commit", "user", s->user, "result", "ok",
              "retr", LOG_U64(s->retr_count), NULL);
    /* LOGOUT is a courtesy; the commit is already durable upstream. */
    imap_client_free(s->imap);
    s->imap = NULL;
    s->busy = false;
    session_close(s, "+OK Logging out.", "quit");
}

static void on_commit_step_done(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        log_event(LOG_LEVEL_WARN, s->id, "commit", "user", s->user, "result", "failed",
                  "step", commit_steps[s->commit.step].name, "upstream", imap_result_name(r),
                  "upstream_error", imap_client_last_error(s->imap), NULL);
        s->busy = false;
        session_close(s, "-ERR [SYS/TEMP] Could not apply changes; no messages were removed.",
                      "commit-failed");
        return;
    }
    commit_next(s);
}

static void commit_next(struct session *s)
{
    struct commit_progress *p = &s->commit;
    while (p->step < COMMIT_STEP_COUNT) {
        const struct commit_step *step = &commit_steps[p->step];
        bool can_expunge = imap_client_caps(s->imap) & IMAP_CAP_UIDPLUS;
        size_t len = 0;
        /* Without UIDPLUS there is no safe expunge: \Deleted stays set (DESIGN.md). */
        if (step->action != COMMIT_UID_EXPUNGE || can_expunge)
            len = maildrop_uidset(&s->drop, step->with, step->without, &p->cursor, p->uidset,
                                  sizeof p->uidset);
        if (len == 0) {
            p->step++;
            p->cursor = 0;
            continue;
        }
        if (step->action == COMMIT_STORE)
            imap_store_add_flags(s->imap, p->uidset, step->flags, on_commit_step_done, s);
        else
            imap_uid_expunge(s->imap, p->uidset, on_commit_step_done, s);
        return;
    }
    commit_finished(s);
}

void session_cmd_quit(struct session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    if (s->state != SESSION_TRANSACTION) {
        session_close(s, "+OK Logging out.", "quit");
        return;
    }
    s->busy = true;
    session_set_state(s, SESSION_UPDATE);
    s->commit = (struct commit_progress){ .step = 0, .cursor = 0 };
    commit_next(s);
}
