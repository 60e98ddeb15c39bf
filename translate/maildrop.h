/* maildrop: one session's snapshot of its POP3 maildrop. Pure: no I/O.
 *
 * Message numbers are fixed for the session (RFC 1939): message n is entries[n-1]
 * for the whole session, whatever happens upstream. An entry is 24 bytes
 * (a 2,000,000-message mailbox fits in 48 MB); its flags record what the
 * session did to it, applied upstream only at QUIT.
 *
 * Ownership: struct maildrop is owned by the session; maildrop_free() releases
 * entries. Pointers returned by maildrop_get() stay valid until the next
 * maildrop_append() or maildrop_free(), since append may move the array.
 */
#ifndef POPGATE_MAILDROP_H
#define POPGATE_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    MAILDROP_DELETED = 1,    /* DELE in this session; cleared by RSET */
    MAILDROP_GONE = 2,       /* expunged upstream mid-session: -ERR for it */
    MAILDROP_RETRIEVED = 4,  /* RETR sent it whole */
    MAILDROP_SIZE_EXACT = 8, /* size is the streamed octet count, not RFC822.SIZE */
    MAILDROP_SEEN_UPSTREAM = 16, /* \Seen was set upstream at login */
    MAILDROP_HIDDEN_INSTEAD = 32, /* deleted, but on_dele could not remove it upstream
                                     (a permanent condition): hidden from the device */
    MAILDROP_ID_FROM_UID = 64, /* state_id comes from UIDVALIDITY and UID, not a
                                  server's stable id (EMAILID, X-GM-MSGID) */
};

struct maildrop_entry {
    uint64_t state_id;       /* the message's id in device state (see device_state.h) */
    uint32_t uid;
    uint32_t size;           /* octets LIST reports */
    uint32_t internaldate;   /* arrival time, seconds since the epoch */
    uint8_t flags;
    uint8_t folder;          /* index of the upstream folder holding it */
};

/* A maildrop may gather several upstream folders (a mapping's folders =):
 * their messages follow each other, folder by folder. */
#define MAILDROP_MAX_FOLDERS 8

struct maildrop {
    /* The maildrop's identity in device state: the folder's UIDVALIDITY for
     * one folder; with several, a hash of every folder's, so a change in any
     * of them is seen as a change. */
    uint32_t uidvalidity;
    uint32_t count;
    uint32_t cap;
    struct maildrop_entry *entries;  /* count used of cap allocated; owned */
    uint8_t n_folders;
    uint32_t folder_uidvalidity[MAILDROP_MAX_FOLDERS];
    /* Tells folders apart in UIDLs: 0 for the first folder, whose UIDLs are
     * Dovecot's; a hash of the folder's name for the others. */
    uint32_t folder_tag[MAILDROP_MAX_FOLDERS];
};

/* Bound on the snapshot, so one huge mailbox cannot take the node's memory. */
#define MAILDROP_MAX_MESSAGES 2000000
/* RFC 1939: a unique-id is 1 to 70 characters. */
#define MAILDROP_UIDL_MAX 70
/* Smallest out_cap for maildrop_uidset(): one range "4294967295:4294967295"
 * and its NUL always fit, so every call with something left makes progress. */
#define MAILDROP_UIDSET_MIN_CAP 22

/* An empty maildrop of one folder with this UIDVALIDITY. */
void maildrop_init(struct maildrop *m, uint32_t uidvalidity);

/* Starts the next folder: later appends belong to it. tag must be nonzero
 * (the folder's name hashed). False when MAILDROP_MAX_FOLDERS are in use. */
bool maildrop_add_folder(struct maildrop *m, uint32_t uidvalidity, uint32_t tag);

/* The tag of a folder by name: nonzero, the same on every node and restart. */
uint32_t maildrop_folder_tag(const char *name);
/* Adds message count+1. UIDs must be appended in ascending order (IMAP
 * mailbox order); maildrop_uidset() relies on it only to merge ranges, never
 * for correctness. Grows geometrically; false, changing nothing, when the
 * snapshot already holds MAILDROP_MAX_MESSAGES or memory runs out. */
bool maildrop_append(struct maildrop *m, uint32_t uid, uint32_t size);
/* Releases the entries; m is empty (as after init) afterwards. */
void maildrop_free(struct maildrop *m);
/* msgnum is 1-based; NULL when out of range. */
struct maildrop_entry *maildrop_get(struct maildrop *m, uint32_t msgnum);
/* Messages and octets not marked DELETED (RFC 1939 STAT). */
void maildrop_stat(const struct maildrop *m, uint32_t *count, uint64_t *octets);
/* Clears DELETED everywhere (RFC 1939 RSET). */
void maildrop_rset(struct maildrop *m);
/* Dovecot's UIDL with pop3_uidl_format = %08Xu%08Xv: UID then UIDVALIDITY,
 * 8 hex digits each. Dovecot's %X prints lower-case hex (checked against its
 * POP3 server by tests/integration/test_differential.py), so we do too.
 * Writes a NUL-terminated string; returns its length. */
size_t maildrop_format_uidl(uint32_t uid, uint32_t uidvalidity, char out[MAILDROP_UIDL_MAX + 1]);

/* The UIDL of an entry: maildrop_format_uidl() with its folder's UIDVALIDITY,
 * then "-" and the folder's tag in 8 hex digits for every folder but the
 * first, so two folders never give two messages one UIDL. */
size_t maildrop_uidl(const struct maildrop *m, const struct maildrop_entry *e, char out[MAILDROP_UIDL_MAX + 1]);
/* Builds an IMAP UID set ("3,7,9:12", ranges merged) of the entries of one
 * folder having all
 * bits of `flags` and none of `without`, starting at entry index *cursor
 * (0-based; start with 0). Writes at most out_cap - 1 characters and a NUL,
 * stopping before a UID or range that would not fit, and advances *cursor past
 * what it wrote, so a caller can send several bounded commands by calling again
 * until it returns 0 (nothing left). out_cap must be at least
 * MAILDROP_UIDSET_MIN_CAP. */
size_t maildrop_uidset(const struct maildrop *m, uint8_t folder, uint8_t flags, uint8_t without,
                       uint32_t *cursor, char *out, size_t out_cap);

#endif
