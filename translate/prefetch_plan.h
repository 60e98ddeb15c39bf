/* prefetch_plan: which messages one batched UID FETCH asks for when a POP3
 * client retrieves message n (issue 17). Pure: no I/O.
 *
 * Dovecot spends 137-147 us of CPU on a UID FETCH of one message that the
 * client waits for, 78-97 us on a pipelined one and 47-61 us per message in
 * one UID FETCH of many (bench/results.md): the cheapest way to fetch many
 * small messages is one command with a UID set, not pipelined commands.
 *
 * A batch is message n, which must be small, and the messages after it in
 * maildrop order, the order a client retrieving sequentially asks next:
 *   - only messages of n's folder (one SELECT serves the batch);
 *   - deleted (DELE) and vanished (expunged upstream) messages are skipped;
 *   - it ends before the first message above message_max octets: a large
 *     message is never held, it streams as it always did;
 *   - the listed sizes add up to at most `budget` octets, and there are at
 *     most PREFETCH_MESSAGES_MAX messages.
 * Listed sizes may be off (an Exchange estimate, two octets short without a
 * final newline): the plan only chooses; the session holds a body only if
 * its literal still fits the budget when it arrives.
 */
#ifndef POPGATE_PREFETCH_PLAN_H
#define POPGATE_PREFETCH_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "maildrop.h"

/* Most messages in one batch: bounds the session's slot table and the UID
 * set (PREFETCH_UIDSET_CAP always holds PREFETCH_MESSAGES_MAX 10-digit UIDs
 * with their commas). */
#define PREFETCH_MESSAGES_MAX 128
#define PREFETCH_UIDSET_CAP (PREFETCH_MESSAGES_MAX * 11 + 1)

struct prefetch_batch {
    uint32_t count;
    uint32_t msgnums[PREFETCH_MESSAGES_MAX];  /* ascending */
    uint64_t octets;                          /* their listed sizes, added */
};

/* Fills *out with the batch for message msgnum (1-based) and returns its
 * count: 0 when msgnum is out of range, deleted, vanished or above
 * message_max (then it streams on its own), else at least 1 (msgnum
 * itself). */
uint32_t prefetch_plan(const struct maildrop *m, uint32_t msgnum, uint64_t budget, uint64_t message_max,
                       struct prefetch_batch *out);

/* The batch's UIDs as an IMAP UID set, runs of consecutive UIDs merged
 * ("3:5,9"); only UIDs that are in the batch, so no message outside it is
 * sent. Writes a NUL-terminated string into out (PREFETCH_UIDSET_CAP octets)
 * and returns its length. */
size_t prefetch_uidset(const struct maildrop *m, const struct prefetch_batch *b,
                       char out[PREFETCH_UIDSET_CAP]);

#endif
