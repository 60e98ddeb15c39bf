/* session_trash.c: where on_dele = trash puts deleted mail.
 *
 * The mapping's trash_folder when set, else the mailbox carrying the \Trash
 * special-use attribute (RFC 6154), looked up once per session, at the first
 * DELE that needs it. A server without one (Courier has no SPECIAL-USE, a
 * Dovecot without special-use folders) is a permanent condition: retrying
 * cannot change it, so it is answered at DELE time with [SYS/PERM] and
 * logged once per session with what to configure, and it never makes QUIT
 * fail (DESIGN: a permanent upstream condition never fails every QUIT, or
 * retrieved mail would be offered again at every poll). */
#include "session_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

void session_trash_warn_once(struct session *s, const char *problem)
{
    if (s->trash_warned)
        return;
    s->trash_warned = true;
    log_event(LOG_LEVEL_WARN, s->id, "trash-unavailable", "user", s->device.login.user,
              "problem", problem, "trash_folder", s->mapping->trash_folder[0] ? s->mapping->trash_folder : NULL,
              "upstream_error", s->imap ? imap_client_last_error(s->imap) : NULL,
              "fix", "set trash_folder = NAME of an existing folder in the mapping, or on_dele = hide or expunge",
              LOG_END);
}

static void on_trash_found(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    void (*next)(struct session *s, enum imap_result r) = s->trash_next;
    s->trash_next = NULL;
    if (r == IMAP_RESULT_OK) {
        s->trash_state = TRASH_FOUND;
    } else if (r == IMAP_RESULT_NO || r == IMAP_RESULT_BAD) {
        /* No mailbox has \Trash (or its name does not fit our bound). */
        s->trash_state = TRASH_MISSING;
        session_trash_warn_once(s, "no \\Trash special-use mailbox upstream");
    }
    /* A known answer, found or missing, is OK; only a failed lookup is not. */
    next(s, s->trash_state != TRASH_UNKNOWN ? IMAP_RESULT_OK : r);
}

void session_trash_resolve(struct session *s, void (*next)(struct session *s, enum imap_result r))
{
    if (s->trash_state != TRASH_UNKNOWN) {
        next(s, IMAP_RESULT_OK);
        return;
    }
    if (!s->trash) {
        s->trash = malloc(MAPPING_FOLDER_MAX);
        if (!s->trash) {
            next(s, IMAP_RESULT_IO_ERROR);
            return;
        }
        s->trash[0] = '\0';
    }
    if (s->mapping->trash_folder[0]) {
        /* The administrator named it: trusted until a MOVE says otherwise. */
        memcpy(s->trash, s->mapping->trash_folder, strlen(s->mapping->trash_folder) + 1);
        s->trash_state = TRASH_FOUND;
        next(s, IMAP_RESULT_OK);
        return;
    }
    s->trash_next = next;
    imap_find_special_use(s->imap, "\\Trash", s->trash, MAPPING_FOLDER_MAX, on_trash_found, s);
}

const char *session_trash_name(const struct session *s)
{
    return s->trash_state == TRASH_FOUND ? s->trash : NULL;
}

void session_trash_release(struct session *s)
{
    free(s->trash);
    s->trash = NULL;
}
