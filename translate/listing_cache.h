/* listing_cache: the upstream folder listings this node has seen, so that a
 * repeated login on a mailbox that did not change lists nothing again
 * (issue 16, "logins that cost what changed"). Pure: no I/O.
 *
 * What is kept, per user (upstream host, port and login name) and folder:
 * the folder's UIDVALIDITY, HIGHESTMODSEQ (RFC 7162 CONDSTORE) and UIDNEXT
 * as the SELECT that preceded the listing reported them, the stable-id
 * scheme, and the listing itself as 24-octet records. Whether a cached
 * listing may be served is the caller's decision (proxy/session_listing.c):
 * the same UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT and message count, else the
 * changes since HIGHESTMODSEQ are fetched and merged (listing_build.h).
 *
 * Bounds: at most max_user_bytes per user, every folder of that user and the
 * bookkeeping counted; at most max_bytes in total, the least recently used
 * users evicted first. A listing that alone exceeds the per-user bound is not
 * kept. Both bounds 0: the cache keeps nothing.
 *
 * Ownership: the cache owns copies of everything put in it. A pointer that
 * listing_cache_get() returns stays valid until the next call that changes
 * the cache (put, forget, set_limits, deinit).
 */
#ifndef POPGATE_LISTING_CACHE_H
#define POPGATE_LISTING_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Flags of a record: the upstream flags the view reads, and where its state
 * id came from. */
enum {
    LISTING_SEEN = 1,        /* \Seen upstream: the unread view hides it */
    LISTING_DELETED = 2,     /* \Deleted upstream (webmail's delete) */
    LISTING_STABLE_ID = 4,   /* state_id is an EMAILID's or X-GM-MSGID's, the same
                                in every folder */
};

/* One message of a folder listing. 24 octets. */
struct listing_record {
    uint64_t state_id;       /* its id in device state before any folder tag */
    uint32_t uid;
    uint32_t size;           /* RFC822.SIZE */
    uint32_t internaldate;
    uint8_t flags;
};

/* What the SELECT said of the folder when the listing was taken. */
struct listing_meta {
    uint32_t uidvalidity;
    uint32_t uidnext;        /* at least the last record's UID + 1 */
    uint64_t highestmodseq;  /* nonzero: only folders with mod-sequences are kept */
    uint8_t id_scheme;       /* imap_stable_ids at the time: a change is a miss */
    bool has_dates;          /* the records hold INTERNALDATE (else 0) */
};

struct listing_cache_folder {
    char *name;              /* owned */
    struct listing_meta meta;
    struct listing_record *records;  /* owned, count of them, UIDs ascending */
    uint32_t count;
};

/* A user's folders in the mapping's limit (MAPPING_MAX_FOLDERS). */
#define LISTING_CACHE_FOLDERS 8

struct listing_cache_user;

struct listing_cache {
    size_t max_bytes;
    size_t max_user_bytes;
    size_t bytes;                      /* every user's, bookkeeping included */
    struct listing_cache_user **buckets;
    size_t n_buckets;                  /* a power of two, or 0 */
    size_t n_users;
    struct listing_cache_user *lru_first;  /* most recently used */
    struct listing_cache_user *lru_last;
};

void listing_cache_init(struct listing_cache *c, size_t max_bytes, size_t max_user_bytes);
/* New bounds (a configuration reload): users are evicted until they hold. */
void listing_cache_set_limits(struct listing_cache *c, size_t max_bytes, size_t max_user_bytes);
void listing_cache_deinit(struct listing_cache *c);

/* The user's cached listing of folder, or NULL. The user becomes the most
 * recently used. user is any byte string (user_len octets). */
const struct listing_cache_folder *listing_cache_get(struct listing_cache *c, const char *user,
                                                     size_t user_len, const char *folder);
/* Keeps a copy of a folder's listing, replacing the one kept before. False,
 * and nothing kept for that folder, when it does not fit the per-user bound
 * or memory runs out. May evict other users to stay within max_bytes. */
bool listing_cache_put(struct listing_cache *c, const char *user, size_t user_len, const char *folder,
                       const struct listing_meta *meta, const struct listing_record *records,
                       uint32_t count);
/* Drops what is kept of a folder (a listing found to be wrong). */
void listing_cache_forget(struct listing_cache *c, const char *user, size_t user_len, const char *folder);

#endif
