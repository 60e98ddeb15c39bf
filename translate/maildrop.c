/* Session maildrop snapshot; the contract is in maildrop.h. */
#include "maildrop.h"

#include "array_grow.h"
#include "hash64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation: a typical POP3 maildrop holds a few dozen messages. */
#define MAILDROP_INITIAL_CAP 64

void maildrop_init(struct maildrop *m, uint32_t uidvalidity)
{
    m->uidvalidity = uidvalidity;
    m->count = 0;
    m->cap = 0;
    m->entries = NULL;
    m->n_folders = 1;
    m->folder_uidvalidity[0] = uidvalidity;
    m->folder_tag[0] = 0;
}

/* A 64-bit hash folded to 32 nonzero bits. */
static uint32_t fold32(uint64_t h)
{
    return (uint32_t)(h ^ (h >> 32)) | 1;
}

bool maildrop_add_folder(struct maildrop *m, uint32_t uidvalidity, uint32_t tag)
{
    if (m->n_folders >= MAILDROP_MAX_FOLDERS || tag == 0)
        return false;
    m->folder_uidvalidity[m->n_folders] = uidvalidity;
    m->folder_tag[m->n_folders] = tag;
    m->n_folders++;
    uint64_t h = HASH64_SEED;
    for (unsigned f = 0; f < m->n_folders; f++) {
        uint32_t words[2] = { m->folder_uidvalidity[f], m->folder_tag[f] };
        h = hash64(h, words, sizeof words);
    }
    m->uidvalidity = fold32(h);
    return true;
}

uint32_t maildrop_folder_tag(const char *name)
{
    return fold32(hash64(HASH64_SEED, name, strlen(name)));
}

bool maildrop_append(struct maildrop *m, uint32_t uid, uint32_t size)
{
    if (m->count >= MAILDROP_MAX_MESSAGES)
        return false;
    size_t cap = m->cap;
    if (!array_reserve((void **)&m->entries, &cap, m->count, 1, sizeof *m->entries, MAILDROP_INITIAL_CAP,
                       MAILDROP_MAX_MESSAGES))
        return false;
    m->cap = (uint32_t)cap;
    m->entries[m->count++] = (struct maildrop_entry){ .uid = uid, .size = size, .flags = 0,
                                                      .folder = (uint8_t)(m->n_folders - 1) };
    return true;
}

void maildrop_free(struct maildrop *m)
{
    free(m->entries);
    maildrop_init(m, m->uidvalidity);
}

struct maildrop_entry *maildrop_get(struct maildrop *m, uint32_t msgnum)
{
    if (msgnum == 0 || msgnum > m->count)
        return NULL;
    return &m->entries[msgnum - 1];
}

void maildrop_stat(const struct maildrop *m, uint32_t *count, uint64_t *octets)
{
    uint32_t n = 0;
    uint64_t total = 0;

    for (uint32_t i = 0; i < m->count; i++) {
        if (m->entries[i].flags & MAILDROP_DELETED)
            continue;
        n++;
        total += m->entries[i].size;
    }
    *count = n;
    *octets = total;
}

void maildrop_rset(struct maildrop *m)
{
    for (uint32_t i = 0; i < m->count; i++)
        m->entries[i].flags &= (uint8_t)~MAILDROP_DELETED;
}

size_t maildrop_format_uidl(uint32_t uid, uint32_t uidvalidity, char out[MAILDROP_UIDL_MAX + 1])
{
    int n = snprintf(out, MAILDROP_UIDL_MAX + 1, "%08x%08x", (unsigned)uid, (unsigned)uidvalidity);
    return n < 0 ? 0 : (size_t)n;
}

size_t maildrop_uidl(const struct maildrop *m, const struct maildrop_entry *e, char out[MAILDROP_UIDL_MAX + 1])
{
    uint32_t uidvalidity = e->folder < m->n_folders ? m->folder_uidvalidity[e->folder] : m->uidvalidity;
    if (e->folder == 0)
        return maildrop_format_uidl(e->uid, uidvalidity, out);
    int n = snprintf(out, MAILDROP_UIDL_MAX + 1, "%08x%08x-%08x", (unsigned)e->uid, (unsigned)uidvalidity,
                     (unsigned)m->folder_tag[e->folder]);
    return n < 0 ? 0 : (size_t)n;
}

static bool entry_matches(const struct maildrop_entry *e, uint8_t folder, uint8_t flags, uint8_t without)
{
    return e->folder == folder && (e->flags & flags) == flags && (e->flags & without) == 0;
}

size_t maildrop_uidset(const struct maildrop *m, uint8_t folder, uint8_t flags, uint8_t without,
                       uint32_t *cursor, char *out, size_t out_cap)
{
    size_t len = 0;
    uint32_t i = *cursor;

    if (out_cap == 0)
        return 0;
    out[0] = '\0';
    while (i < m->count) {
        if (!entry_matches(&m->entries[i], folder, flags, without)) {
            i++;
            continue;
        }
        /* A range covers consecutive UIDs only: a UID missing from the
         * snapshot between two matches must not be touched upstream. */
        uint32_t first = m->entries[i].uid, last = first, next = i + 1;
        while (next < m->count && last != UINT32_MAX && m->entries[next].uid == last + 1 &&
               entry_matches(&m->entries[next], folder, flags, without)) {
            last++;
            next++;
        }

        char piece[MAILDROP_UIDSET_MIN_CAP + 1];   /* ",4294967295:4294967295" */
        int n = first == last
            ? snprintf(piece, sizeof(piece), "%s%u", len > 0 ? "," : "", (unsigned)first)
            : snprintf(piece, sizeof(piece), "%s%u:%u", len > 0 ? "," : "", (unsigned)first, (unsigned)last);
        if (n < 0 || len + (size_t)n >= out_cap)
            break;
        memcpy(out + len, piece, (size_t)n + 1);
        len += (size_t)n;
        i = next;
    }
    *cursor = i;
    return len;
}
