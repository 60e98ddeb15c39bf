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
 * 1. by Message-ID: the upstream message has a Message-ID key (message_id.h)
 *    that no other upstream message has, and the hash has a value for it
 *    that uidl_value_parse() reads (the stored size is not compared: the old
 *    server may count differently);
 * 2. else by header hash: the upstream message's header hash
 *    (header_hash.h) and RFC822.SIZE form a key (uidl_hash_field) that no
 *    other upstream message has, and the hash has a value for that key. The
 *    size is part of the key, so both servers must agree on it (Dovecot,
 *    and servers that count CRLF line ends, do); where they do not, nothing
 *    matches by hash and the message downloads again. Only upstream messages
 *    of a size the store marks (uidl_size_field) are hashed, all of them,
 *    so the key's uniqueness is checked among every message that could
 *    share it;
 * 3. no other upstream message would get the same legacy UIDL: a UIDL is
 *    unique in a maildrop, so on a repeat neither keeps it. This is checked
 *    across every upstream message fed, a superset of any maildrop.
 * The import stores a legacy message under one key only, unique among the
 * old server's messages (uidl_keys_assign in uidl_file.h), so a match is
 * unique in both mailboxes.
 *
 * Use at login:
 *   legacy_match_init, then legacy_match_add per message as IMAP returns
 *   them (imap_fetch_message_ids); legacy_match_prepare gives the number of
 *   ids to look up; legacy_match_lookup_ids lends them (all, or a batch)
 *   for uidl_store_lookup; legacy_match_set_values takes the values back
 *   (whole, or batch by batch in any order); legacy_match_resolve;
 *   then the header-hash stage (optional: skipping it leaves rule 2 out):
 *   legacy_match_set_size per message (the listing's RFC822.SIZE);
 *   legacy_match_size_fields lends the size markers to look up;
 *   legacy_match_set_size_values takes them back and says which UIDs to
 *   hash; legacy_match_set_hash per such UID (header_hash_final's hex);
 *   legacy_match_hash_fields lends the header-hash keys to look up;
 *   legacy_match_set_hash_values takes them back. Then
 *   legacy_match_resolve; legacy_match_build into the session's legacy_uidl
 *   once the maildrop is final (filtered by the view); legacy_match_free.
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
    /* Not matched, by why its Message-ID could not match (the header hash
     * did not match either): */
    size_t no_message_id;    /* none, or unusable (message_id.h) */
    size_t same_message_id;  /* another upstream message has the same one */
    size_t not_stored;       /* the hash has no value for it (or none was fed) */
    size_t bad_value;        /* the stored value does not parse */
    size_t same_uidl;        /* another message would get the same legacy UIDL */
    size_t matched;          /* gets a legacy UIDL: the two below */
    size_t matched_message_id;
    size_t matched_header_hash;
    /* Of the unmatched, how the header-hash stage saw them: */
    size_t hashed;           /* upstream messages hashed (all, matched or not) */
    size_t same_header_hash; /* another upstream message has the same key */
};

struct legacy_match_msg {
    uint32_t uid;
    uint32_t id_off;         /* into ids, when id_len > 0 */
    uint32_t uidl_off;       /* into uidls, when uidl_len > 0 */
    uint32_t size;           /* RFC822.SIZE, when has_size */
    uint16_t id_len;         /* 0: no usable Message-ID */
    uint8_t uidl_len;        /* 0: no legacy UIDL */
    uint8_t outcome;         /* private: which stats counter it falls in */
    uint8_t has_size;
    uint8_t by_hash;         /* the legacy UIDL came from the header hash */
};

/* A message to hash, and then its key's field (private). */
struct legacy_match_hashed {
    uint32_t msg;            /* index into msgs */
    uint8_t state;           /* 0 to hash, 1 hashed, 2 repeated key, 3 to look up */
    char hex[UIDL_HASH_HEX_LEN + 1];
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
    /* The header-hash stage: at most 16 + 40 + 8 bytes per message more. */
    uint32_t *sizes;                /* distinct sizes asked about */
    size_t n_sizes;
    char *fields;                   /* the fields lent out, back to back */
    const char **field_ptrs;
    size_t *field_lens;
    struct legacy_match_hashed *hashed;  /* ascending msg */
    uint32_t *hash_uids;            /* their UIDs, lent out */
    size_t n_hashed;
    uint32_t *hash_lookup;          /* indexes into hashed */
    size_t n_hash_lookup;
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
/* The listing's size of the message with this UID. False for a UID not fed. */
bool legacy_match_set_size(struct legacy_match *m, uint32_t uid, uint32_t size);
/* After every Message-ID value is in: the size markers to look up, one per
 * distinct size of a message not matched by Message-ID (*n of them, maybe
 * 0: then the stage is over). The arrays belong to m, valid until the next
 * call of this stage. False when memory runs out. */
bool legacy_match_size_fields(struct legacy_match *m, const char *const **fields, const size_t **lens,
                              size_t *n);
/* The size markers' values (NULL: absent), in the order lent. Then *uids
 * (ascending, *n of them, owned by m) are the messages to hash: every
 * message of a size the store has. False out of memory or out of order. */
bool legacy_match_set_size_values(struct legacy_match *m, const char *const *values, size_t n,
                                  uint32_t **uids, size_t *n_uids);
/* The header hash of one of those UIDs (HEADER_HASH_HEX_LEN hex digits).
 * A UID never given a hash is not matched by it. False for a UID not asked for. */
bool legacy_match_set_hash(struct legacy_match *m, uint32_t uid, const char *hex);
/* The header-hash keys to look up: of the messages hashed and not matched
 * by Message-ID, those whose key no other hashed message has. Like
 * legacy_match_size_fields. */
bool legacy_match_hash_fields(struct legacy_match *m, const char *const **fields, const size_t **lens,
                              size_t *n);
/* Their values (NULL: absent), in the order lent. False out of memory. */
bool legacy_match_set_hash_values(struct legacy_match *m, const char *const *values, const size_t *lens,
                                  size_t n);
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
