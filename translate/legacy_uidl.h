/* legacy_uidl: serving the UIDLs of an old POP3 server, imported per user
 * into the Redis hash pg1:{user}:uidl (Message-ID -> "<uidl> <size>", see
 * uidl_file.h), instead of popgate's own, so a migrated client downloads
 * nothing again (docs/design.md "UIDL"). Pure: no I/O.
 *
 * Two pieces:
 * - struct legacy_match decides, once at login, which upstream message gets
 *   which legacy UIDL. It is fed incrementally: the Message-IDs one message
 *   at a time as IMAP returns them, then the stored values of the ids it asks
 *   for, in batches (one HMGET each). It holds the only copy of the ids: the
 *   batches are pointers into it. Freed once the session has its table.
 * - struct legacy_uidl, the session's side table message number -> legacy
 *   UIDL, kept for the whole session and searched by UIDL and UIDL n.
 *
 * The rule (nothing is guessed; what is not matched gets popgate's own UIDL,
 * and the counts in struct legacy_match_stats say why):
 * 1. the upstream message has a Message-ID (message_id.h) that no other
 *    upstream message has: two upstream messages with one Message-ID, and
 *    neither gets a legacy UIDL;
 * 2. the hash has a value for it that uidl_value_parse() reads (the stored
 *    size is not compared: the old server counted differently);
 * 3. no other upstream message would get the same legacy UIDL: a UIDL is
 *    unique in a maildrop, so on a repeat neither keeps it. This is checked
 *    across every upstream message fed, a superset of any maildrop.
 * The import already keeps Message-IDs that are ambiguous on the old server
 * out of the hash, so a match is unique in both mailboxes.
 *
 * Use at login:
 *   legacy_match_init, then legacy_match_add per message as IMAP returns
 *   them (imap_fetch_message_ids); legacy_match_prepare gives the number of
 *   ids to look up; legacy_match_lookup_ids lends them (all, or a batch)
 *   for uidl_store_lookup; legacy_match_set_values takes the values back
 *   (whole, or batch by batch in any order); legacy_match_resolve;
 *   legacy_match_build into the session's legacy_uidl once the maildrop is
 *   final (filtered by the view); legacy_match_free.
 * A false return from any step means: serve no legacy UIDL this session
 * (legacy_match_free, log it); the match is never half right.
 */
#ifndef POPGATE_LEGACY_UIDL_H
#define POPGATE_LEGACY_UIDL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maildrop.h"
#include "uidl_file.h"

/* ---- the session's table ------------------------------------------------ */

/* Memory: 12 bytes per entry plus the UIDL's own octets (1..UIDL_MAX), with
 * geometric growth (at most twice that), for at most MAILDROP_MAX_MESSAGES
 * entries: one per maildrop message that has a legacy UIDL. */
struct legacy_uidl_entry {
    uint32_t msgnum;
    uint32_t off;       /* into chars */
    uint8_t len;        /* 1..UIDL_MAX */
};

struct legacy_uidl {
    struct legacy_uidl_entry *entries;  /* ascending msgnum; owned */
    uint32_t count;
    uint32_t cap;
    char *chars;                        /* the UIDLs, back to back, no NULs; owned */
    size_t chars_len;
    size_t chars_cap;
};

void legacy_uidl_init(struct legacy_uidl *t);
/* Adds msgnum -> uidl (copied). msgnum must be greater than every msgnum
 * added before; uidl 1..UIDL_MAX octets of 0x21..0x7E. False, changing
 * nothing, otherwise, past MAILDROP_MAX_MESSAGES entries, or out of memory. */
bool legacy_uidl_add(struct legacy_uidl *t, uint32_t msgnum, const char *uidl, size_t len);
/* The legacy UIDL of msgnum (not NUL-terminated, *len octets), or NULL when
 * it has none. Binary search. Valid until the next add or free. */
const char *legacy_uidl_find(const struct legacy_uidl *t, uint32_t msgnum, size_t *len);
/* Releases everything; t is empty (as after init) afterwards. */
void legacy_uidl_free(struct legacy_uidl *t);

/* A legacy UIDL that equals popgate's own UIDL of another message in drop
 * (an old Dovecot with the same UIDL format can give one) would make two
 * messages share a UIDL: such legacy UIDLs are removed from t, so their
 * messages get popgate's own (the client downloads them once more; nothing
 * is hidden). *dropped says how many. Memory: 16 bytes and 1 byte per entry,
 * while it runs. False, t unchanged, when memory runs out. */
bool legacy_uidl_drop_collisions(struct legacy_uidl *t, const struct maildrop *drop, size_t *dropped);

/* ---- matching at login -------------------------------------------------- */

/* Total Message-ID octets one match holds. ~800,000 messages with typical
 * 80-octet ids; a larger mailbox gets no legacy UIDLs (add returns false). */
#define LEGACY_MATCH_IDS_MAX ((size_t)64 << 20)

/* Why each upstream message got a legacy UIDL or not; every message is
 * counted in exactly one of these. */
struct legacy_match_stats {
    size_t messages;         /* upstream messages fed */
    size_t no_message_id;    /* none, or malformed (message_id.h) */
    size_t same_message_id;  /* another upstream message has the same one */
    size_t not_stored;       /* the hash has no value for it (or none was fed) */
    size_t bad_value;        /* the stored value does not parse */
    size_t same_uidl;        /* another message would get the same legacy UIDL */
    size_t matched;          /* gets a legacy UIDL */
};

struct legacy_match_msg {
    uint32_t uid;
    uint32_t id_off;         /* into ids, when id_len > 0 */
    uint32_t uidl_off;       /* into uidls, when uidl_len > 0 */
    uint16_t id_len;         /* 0: no usable Message-ID */
    uint8_t uidl_len;        /* 0: no legacy UIDL */
    uint8_t outcome;         /* private: which stats counter it falls in */
};

/* Memory: 16 bytes per message (msgs) + its Message-ID's octets (ids, at most
 * LEGACY_MATCH_IDS_MAX) + 4 bytes per looked-up id (lookup) + the legacy UIDLs
 * found (uidls, at most UIDL_MAX each), with geometric growth; prepare and
 * resolve briefly take 16 bytes per message more to sort. At most
 * MAILDROP_MAX_MESSAGES messages. The fields are private. */
struct legacy_match {
    struct legacy_match_msg *msgs;  /* ascending uid */
    size_t count, cap;
    char *ids;
    size_t ids_len, ids_cap;
    char *uidls;
    size_t uidls_len, uidls_cap;
    uint32_t *lookup;               /* indexes into msgs, ascending */
    size_t n_lookup;
    bool prepared, resolved;
};

void legacy_match_init(struct legacy_match *m);
/* One upstream message: its UID (greater than the last one added: IMAP
 * mailbox order) and its Message-ID as message_id_extract() gave it, or len 0
 * (msgid may then be NULL) when it has none. The id is copied. False,
 * changing nothing, on a UID out of order, an id longer than UIDL_MSGID_MAX,
 * after prepare, past MAILDROP_MAX_MESSAGES messages or LEGACY_MATCH_IDS_MAX
 * octets of ids, or out of memory. */
bool legacy_match_add(struct legacy_match *m, uint32_t uid, const char *msgid, size_t len);
/* All messages are in: marks the Message-IDs that repeat and sets *n_lookup
 * to the number of ids to look up (those present and unique), numbered 0 ..
 * *n_lookup - 1 in mailbox order. False only when memory runs out. */
bool legacy_match_prepare(struct legacy_match *m, size_t *n_lookup);
/* Lookup ids first .. first + n - 1 (within *n_lookup): ids[i] points into
 * m (valid until legacy_match_free), lens[i] is its length. */
void legacy_match_lookup_ids(const struct legacy_match *m, size_t first, size_t n, const char **ids,
                             size_t *lens);
/* The stored values of lookup ids first .. first + n - 1, as HMGET returned
 * them: values[i] NULL when the hash has no such field. Values are read, not
 * kept. A range may be fed once. False on a range outside the lookup ids or
 * fed before, after resolve, or out of memory. */
bool legacy_match_set_values(struct legacy_match *m, size_t first, const char *const *values,
                             const size_t *lens, size_t n);
/* Applies rule 3 and counts the outcomes into *stats. Ids never given a value
 * count as not stored. False only when memory runs out (or before prepare). */
bool legacy_match_resolve(struct legacy_match *m, struct legacy_match_stats *stats);
/* After resolve: the legacy UIDL of the message with this UID (not
 * NUL-terminated, *len octets), or NULL. Binary search. */
const char *legacy_match_uidl(const struct legacy_match *m, uint32_t uid, size_t *len);
/* After resolve: adds to t (empty, freshly initialised) every message of the
 * maildrop's first folder (the one matched) that has a legacy UIDL, under its
 * message number. False (t then
 * holds part of them: free it) out of memory. */
bool legacy_match_build(const struct legacy_match *m, const struct maildrop *drop, struct legacy_uidl *t);
/* Releases everything; m is empty (as after init) afterwards. */
void legacy_match_free(struct legacy_match *m);

#endif
