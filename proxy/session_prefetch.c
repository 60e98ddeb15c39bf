/* session_prefetch.c: RETR of small messages fetches the next ones with it
 * (issue 17; README "Prefetch").
 *
 * A client that retrieves message n of a folder of small messages will most
 * likely ask for n+1, n+2, ... next. Waiting for one UID FETCH per message
 * costs the upstream server two to three times the CPU of one UID FETCH of
 * many (bench/results.md), so a RETR of a small message asks for it and the
 * next small messages of its folder in one `UID FETCH <set> (UID
 * BODY.PEEK[])` (translate/prefetch_plan.h chooses them) and holds their
 * bodies; the RETRs that follow are served from memory with no upstream
 * command.
 *
 * Bounds: the bodies held are at most [server] prefetch_kb KiB (the buffer
 * is allocated at that size when a batch starts, and shrunk to the bodies
 * that came once the batch has arrived), plus a table of
 * PREFETCH_MESSAGES_MAX slots (about 2.5 KiB). A message listed above a
 * quarter of the budget is never asked for; a literal that arrives longer
 * than what is left of the buffer (a listed size that was off) streams past
 * unkept, and that message is later fetched on its own as before. Nothing is
 * allocated while no batch is held: the buffer is freed once the client has
 * been served the last message held, when it RETRs a message outside the
 * batch (it left the sequence; a message of the batch whose body did not
 * come is fetched alone and keeps the batch), on failure, and when the
 * session ends.
 *
 * Nothing here changes anything upstream or in Redis: BODY.PEEK sets no
 * \Seen, and a message counts as retrieved only when a RETR sends it
 * (session_transaction.c's finish_transfer), held or not. Each body is
 * attributed to its UID only when its FETCH response ends (the server may
 * put UID after the literal and answer in any order); a UID the server sends
 * no body for is simply not held, and its RETR fetches it alone, with
 * exactly the expunged handling a single fetch has always had.
 */
#include "session_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "prefetch_plan.h"

struct prefetch_slot {
    uint32_t msgnum;
    uint32_t uid;
    uint32_t offset;         /* of the body in buf */
    uint32_t len;
    bool held;               /* the server sent its body and it fit */
};

struct session_prefetch {
    char *buf;               /* cap octets: [server] prefetch_kb KiB */
    size_t cap;
    size_t used;
    enum { LITERAL_NONE, LITERAL_KEEP, LITERAL_SKIP } literal;
    size_t literal_start;    /* where the literal being kept began in buf */
    uint32_t last_held;      /* highest message number held: serving it ends the batch */
    uint32_t n_slots;
    struct prefetch_slot slots[PREFETCH_MESSAGES_MAX];
};

void session_prefetch_release(struct session *s)
{
    struct session_prefetch *p = s->prefetch;
    if (!p)
        return;
    free(p->buf);
    free(p);
    s->prefetch = NULL;
}

static uint64_t budget_of(const struct session *s)
{
    return (uint64_t)s->cfg->prefetch_kb * 1024;
}

/* Was msgnum asked for in the batch held (whether its body came or not)? */
static bool asked(const struct session_prefetch *p, uint32_t msgnum)
{
    for (uint32_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].msgnum == msgnum)
            return true;
    return false;
}

bool session_prefetch_plan(struct session *s, uint32_t msgnum)
{
    /* A message of the batch that is not held (no body came for it, or it
     * did not fit) is fetched alone; the client is still in the sequence
     * and the batch stays. Any other message: the client left it. */
    if (s->prefetch && asked(s->prefetch, msgnum))
        return false;
    session_prefetch_release(s);
    uint64_t budget = budget_of(s);
    if (budget == 0)
        return false;
    struct prefetch_batch batch;
    /* One message alone gains nothing over the streaming fetch. */
    if (prefetch_plan(&s->drop, msgnum, budget, budget / 4, &batch) < 2)
        return false;
    struct session_prefetch *p = calloc(1, sizeof *p);
    char *buf = p ? malloc(budget) : NULL;
    if (!buf) {
        free(p);
        return false;  /* no memory: the message streams as it always did */
    }
    p->buf = buf;
    p->cap = budget;
    p->n_slots = batch.count;
    for (uint32_t i = 0; i < batch.count; i++)
        p->slots[i] = (struct prefetch_slot){ .msgnum = batch.msgnums[i],
                                              .uid = maildrop_get(&s->drop, batch.msgnums[i])->uid };
    s->prefetch = p;
    return true;
}

static void on_literal_start(uint64_t literal_len, void *arg)
{
    struct session *s = arg;
    struct session_prefetch *p = s->prefetch;
    if (p && literal_len <= p->cap - p->used) {
        p->literal = LITERAL_KEEP;
        p->literal_start = p->used;
    } else if (p) {
        p->literal = LITERAL_SKIP;
    }
}

static size_t on_literal_data(const char *data, size_t len, void *arg)
{
    struct session *s = arg;
    struct session_prefetch *p = s->prefetch;
    /* The announced length fit: the bytes of the literal do too. */
    if (p && p->literal == LITERAL_KEEP && len <= p->cap - p->used) {
        memcpy(p->buf + p->used, data, len);
        p->used += len;
    }
    return len;
}

static void on_body_end(uint32_t uid, void *arg)
{
    struct session *s = arg;
    struct session_prefetch *p = s->prefetch;
    if (!p)
        return;
    bool keep = p->literal == LITERAL_KEEP;
    p->literal = LITERAL_NONE;
    if (!keep)
        return;
    for (uint32_t i = 0; i < p->n_slots; i++) {
        struct prefetch_slot *slot = &p->slots[i];
        if (slot->uid != uid || slot->held)
            continue;
        slot->held = true;
        slot->offset = (uint32_t)p->literal_start;
        slot->len = (uint32_t)(p->used - p->literal_start);
        if (slot->msgnum > p->last_held)
            p->last_held = slot->msgnum;
        return;
    }
    p->used = p->literal_start;  /* a UID not asked for (or twice): not kept */
}

static const struct imap_body_sink prefetch_sink = {
    .section_start = on_literal_start,
    .data = on_literal_data,
};

void session_prefetch_fetch(struct session *s, imap_done_cb *done)
{
    struct session_prefetch *p = s->prefetch;
    struct prefetch_batch batch = { .count = p->n_slots };
    for (uint32_t i = 0; i < p->n_slots; i++)
        batch.msgnums[i] = p->slots[i].msgnum;
    char uidset[PREFETCH_UIDSET_CAP];
    prefetch_uidset(&s->drop, &batch, uidset);
    imap_fetch_bodies(s->imap, uidset, &prefetch_sink, on_body_end, done, s);
}

void session_prefetch_done(struct session *s, enum imap_result r)
{
    struct session_prefetch *p = s->prefetch;
    if (!p)
        return;
    uint32_t held = 0;
    for (uint32_t i = 0; i < p->n_slots; i++)
        held += p->slots[i].held;
    log_event(LOG_LEVEL_DEBUG, s->id, "prefetch", "msg", LOG_U64(p->slots[0].msgnum),
              "asked", LOG_U64(p->n_slots), "held", LOG_U64(held), "octets", LOG_U64(p->used),
              "upstream", imap_result_name(r), LOG_END);
    if (r != IMAP_RESULT_OK) {
        session_prefetch_release(s);
        return;
    }
    /* Held until the client has read on: only the bodies that came. */
    char *shrunk = realloc(p->buf, p->used ? p->used : 1);
    if (shrunk) {
        p->buf = shrunk;
        p->cap = p->used;
    }
}

bool session_prefetch_body(const struct session *s, uint32_t msgnum, const char **body, size_t *len)
{
    const struct session_prefetch *p = s->prefetch;
    if (!p)
        return false;
    for (uint32_t i = 0; i < p->n_slots; i++) {
        const struct prefetch_slot *slot = &p->slots[i];
        if (slot->msgnum == msgnum && slot->held) {
            *body = p->buf + slot->offset;
            *len = slot->len;
            return true;
        }
    }
    return false;
}

void session_prefetch_served(struct session *s, uint32_t msgnum)
{
    if (s->prefetch && msgnum >= s->prefetch->last_held)
        session_prefetch_release(s);
}
