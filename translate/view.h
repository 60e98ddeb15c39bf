/* view: which upstream messages a device's maildrop holds, and what RETR and
 * DELE do to them upstream (docs/design.md "Views" and "Dispositions"). Pure: no I/O.
 *
 * The caller loads the per-message state from Redis and the device's first
 * login time, and passes them in with the clock; this file only decides. A
 * struct view_policy is a plain value (no pointers, nothing to free): copy the
 * global one and apply a mapping's overrides with view_policy_set().
 */
#ifndef POPGATE_VIEW_H
#define POPGATE_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "maildrop.h"

enum view_kind {
    VIEW_UNREAD = 0,  /* not \Seen upstream, not retrieved by any device of the user */
    VIEW_NEW,         /* not retrieved by this device */
    VIEW_ALL,         /* every message: classic leave-on-server */
    VIEW_KIND_COUNT
};
/* Config spelling of each kind; view_policy_set() parses with it. */
extern const char *const view_kind_names[VIEW_KIND_COUNT];

enum on_retr_action {
    ON_RETR_SEEN = 0,  /* set \Seen upstream at QUIT */
    ON_RETR_KEEP,      /* leave upstream flags alone */
    ON_RETR_COUNT
};
extern const char *const on_retr_names[ON_RETR_COUNT];

enum on_dele_action {
    ON_DELE_HIDE = 0,  /* only this device stops seeing it; nothing upstream */
    ON_DELE_TRASH,     /* move to the \Trash special-use folder */
    ON_DELE_EXPUNGE,   /* \Deleted + UID EXPUNGE of that UID only */
    ON_DELE_COUNT
};
extern const char *const on_dele_names[ON_DELE_COUNT];

struct view_policy {
    enum view_kind kind;            /* default unread */
    int64_t since;                  /* only mail with internaldate >= since (epoch s); 0 = no bound */
    bool from_first_login;          /* only mail that arrived at or after the device's first login */
    uint32_t max_age;               /* seconds; 0 = no bound */
    uint32_t max_messages;          /* newest N of what remains; 0 = no bound */
    enum on_retr_action on_retr;
    enum on_dele_action on_dele;
};

/* Per-message state from Redis, one byte per maildrop entry. */
enum {
    VIEW_STATE_READ = 1,    /* retrieved by any device of this user */
    VIEW_STATE_GOT = 2,     /* retrieved by this device */
    VIEW_STATE_HIDDEN = 4,  /* this device deleted it with on_dele = hide */
};

/* unread, no windows, on_retr = seen, on_dele = hide (docs/design.md defaults). */
void view_policy_defaults(struct view_policy *p);

/* Applies one config key:
 *   view             unread | new | all
 *   since            YYYY-MM-DD (exactly that shape, a real calendar date,
 *                    year 1970..9999), meaning 00:00:00 UTC of that day
 *   from_first_login yes | no (also true/false, on/off, 1/0, as other booleans)
 *   max_age          a duration as view_parse_duration() reads it; 0 = off
 *   max_messages     decimal 0..4294967295; 0 = off
 *   on_retr          seen | keep
 *   on_dele          hide | trash | expunge
 * Key and word values match ASCII case-insensitively. Returns false for an
 * unknown key or an invalid value, and then *p is unchanged. */
bool view_policy_set(struct view_policy *p, const char *key, const char *value);

/* Duration in seconds, for max_age and other config keys (device_ttl, lock
 * ttl): decimal digits, optionally one suffix s, m, h, d or w (lower case);
 * no sign, no spaces. False, leaving *seconds unchanged, when the text is empty,
 * malformed or the result exceeds UINT32_MAX seconds. */
bool view_parse_duration(const char *s, uint32_t *seconds);

/* Is the message in the device's view?
 * Kind: unread shows it when neither MAILDROP_SEEN_UPSTREAM (entry_flags) nor
 * VIEW_STATE_READ is set, and treats VIEW_STATE_GOT as read too (this device
 * is one of the user's devices); new shows it when VIEW_STATE_GOT is not set;
 * all shows it. VIEW_STATE_HIDDEN is never shown.
 * Windows, all inclusive of their bound: internaldate >= since (when since is
 * not 0), >= now - max_age (when max_age is not 0), >= device_first_seen (when
 * from_first_login and device_first_seen is not 0, 0 meaning unknown).
 * max_messages is not applied here: it depends on the whole maildrop. */
bool view_includes(const struct view_policy *p, uint8_t entry_flags, uint32_t internaldate, uint8_t state,
                   int64_t now, int64_t device_first_seen);

/* Filters a freshly built snapshot in place, keeping mailbox order: entries not
 * in the view are removed, then only the newest max_messages (the last ones in
 * mailbox order) are kept. state has m->count bytes, state[i] belonging to
 * m->entries[i] before filtering; it is only read. m keeps its allocation.
 * Returns the number kept, which is also m->count afterwards. */
uint32_t view_filter_maildrop(struct maildrop *m, const uint8_t *state, const struct view_policy *p,
                              int64_t now, int64_t device_first_seen);

/* Names from the tables above for logs and admin output; "unknown" for a value
 * out of range. The returned strings are static. */
const char *view_kind_name(enum view_kind k);
const char *view_on_retr_name(enum on_retr_action a);
const char *view_on_dele_name(enum on_dele_action a);

#endif
