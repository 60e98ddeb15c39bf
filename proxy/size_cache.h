/* size_cache: exact POP3 sizes learned while streaming messages.
 *
 * IMAP RFC822.SIZE can differ from what RETR sends (no final newline: the
 * gateway adds CRLF; bare CR: becomes CRLF). The first RETR of such a message
 * measures the exact size; later sessions on this node report it in LIST.
 * A fixed-size, direct-mapped table (SIZE_CACHE_SLOTS entries, 16 bytes each):
 * a collision evicts, which only means one more approximate LIST. */
#ifndef POPGATE_SIZE_CACHE_H
#define POPGATE_SIZE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#define SIZE_CACHE_SLOTS 65536

/* Key a message by who and where: user and mailbox names plus UIDVALIDITY/UID. */
uint64_t size_cache_key(const char *user, const char *mailbox, uint32_t uidvalidity, uint32_t uid);
void size_cache_store(uint64_t key, uint32_t exact_size);
bool size_cache_lookup(uint64_t key, uint32_t *exact_size);

#endif
