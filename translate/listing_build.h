/* listing_build: one folder's listing as a login assembles it, from nothing
 * (a full listing) or from a cached listing plus the messages that changed
 * since its HIGHESTMODSEQ (UID FETCH ... (CHANGEDSINCE m), RFC 7162). Pure.
 *
 * Records stay in ascending UID order. A changed message the build holds is
 * replaced (its flags changed); one above every UID held is new and is
 * appended. Anything else (a UID below the highest held that the build does
 * not have) cannot come from a correct cache: the build is marked
 * inconsistent and the caller lists the folder in full instead. Expunged
 * messages are not reported by CHANGEDSINCE: the caller compares the count
 * with EXISTS.
 *
 * Memory: the records array grows geometrically up to LISTING_BUILD_MAX
 * records (24 octets each, 48 MB at the bound, as the maildrop's); beyond it
 * further records are dropped and the build is marked truncated.
 */
#ifndef POPGATE_LISTING_BUILD_H
#define POPGATE_LISTING_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "listing_cache.h"

/* The maildrop's bound (MAILDROP_MAX_MESSAGES): more could not be shown. */
#define LISTING_BUILD_MAX 2000000u

struct listing_build {
    struct listing_record *records;   /* owned */
    uint32_t count;
    uint32_t cap;
    uint32_t replaced;                /* changed messages merged over cached ones */
    uint32_t appended;                /* messages added */
    bool inconsistent;
    bool truncated;                   /* LISTING_BUILD_MAX reached, or memory ran out */
};

void listing_build_init(struct listing_build *b);
/* Starts from a cached listing (a copy). False when memory runs out. */
bool listing_build_start_from(struct listing_build *b, const struct listing_record *records, uint32_t count);
/* Merges one message of a listing as described above. */
void listing_build_apply(struct listing_build *b, const struct listing_record *item);
/* Empties the build (a full listing follows); keeps the allocation. */
void listing_build_reset(struct listing_build *b);
void listing_build_free(struct listing_build *b);

#endif
