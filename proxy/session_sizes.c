/* session_sizes.c: exact sizes for servers whose RFC822.SIZE is an estimate.
 *
 * LIST and STAT must report what RETR will send. Most servers' RFC822.SIZE
 * is exact (popgate corrects the rare message without a final newline after
 * its first RETR); Exchange reports estimates unless an administrator turned
 * on ImapEnableExactRFC822Size per mailbox. With exact_sizes = yes (or auto
 * against Exchange), every message of the device's maildrop whose size no
 * node has measured yet is measured at login, before it can appear in LIST
 * or STAT: streamed through the same dot_stream RETR uses (counting, not
 * keeping: a 4 KiB buffer whatever the message size), one message at a time
 * on the session's one upstream connection, and the size stored in Redis, so
 * each message is measured once, ever, by whichever node sees it first. */
#include "session_internal.h"

#include <inttypes.h>

#include "log.h"

static bool wants_exact_sizes(const struct session *s)
{
    switch (s->mapping->exact_sizes) {
    case EXACT_SIZES_YES:
        return true;
    case EXACT_SIZES_NO:
        return false;
    case EXACT_SIZES_AUTO:
        break;
    }
    return imap_client_sizes_estimated(s->imap);
}

static void measure_next(struct session *s);

static size_t on_measure_data(const char *data, size_t len, void *arg)
{
    struct session *s = arg;
    char sink[4096];  /* output is counted, then dropped */
    size_t used = 0;
    while (used < len) {
        size_t out_len;
        used += dot_stream_feed(&s->xfer.ds, data + used, len - used, sink, sizeof sink, &out_len);
    }
    return len;
}

static void on_measure_start(uint64_t literal_len, void *arg)
{
    (void)literal_len;
    (void)arg;
}

static const struct imap_body_sink measure_sink = {
    .section_start = on_measure_start,
    .data = on_measure_data,
};

static void on_measured(struct imap_client *c, enum imap_result r, void *arg)
{
    (void)c;
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        login_fail(s, "-ERR [SYS/TEMP] Mail server did not answer; try again later.",
                                  "measure-sizes", false);
        return;
    }
    struct maildrop_entry *e = maildrop_get(&s->drop, s->measure_next);
    if (s->xfer.found) {
        char tail[DOT_STREAM_FINISH_MAX];
        size_t tail_len;
        dot_stream_finish(&s->xfer.ds, tail, sizeof tail, &tail_len);
        uint64_t exact = s->xfer.ds.unstuffed_octets;
        if (exact <= UINT32_MAX) {
            if (exact != e->size)
                log_event(LOG_LEVEL_DEBUG, s->id, "size-measured", "uid", LOG_U64(e->uid),
                          "listed", LOG_U64(e->size), "exact", LOG_U64(exact), LOG_END);
            e->size = (uint32_t)exact;
            e->flags |= MAILDROP_SIZE_EXACT;
            session_device_store_size(s, e);
            s->measured++;
        }
    }
    /* A message expunged meanwhile keeps its listed size; RETR will say so. */
    s->measure_next++;
    measure_next(s);
}

static void on_measure_folder_selected(struct imap_client *c, enum imap_result r, void *arg)
{
    struct session *s = arg;
    if (r != IMAP_RESULT_OK) {
        on_measured(c, r, s);
        return;
    }
    const struct maildrop_entry *e = maildrop_get(&s->drop, s->measure_next);
    dot_stream_init(&s->xfer.ds, s->cfg->nul_bytes);
    s->xfer.found = false;
    imap_fetch_body(s->imap, e->uid, "", 0, 0, &measure_sink, &s->xfer.found, on_measured, s);
}

static void measure_next(struct session *s)
{
    while (s->measure_next <= s->drop.count &&
           (maildrop_get(&s->drop, s->measure_next)->flags & MAILDROP_SIZE_EXACT))
        s->measure_next++;
    if (s->measure_next > s->drop.count) {
        if (s->measured > 0)
            log_event(LOG_LEVEL_INFO, s->id, "sizes-measured", "user", s->device.login.user,
                      "messages", LOG_U64(s->measured), LOG_END);
        login_step_done(s);
        return;
    }
    session_select_folder(s, maildrop_get(&s->drop, s->measure_next)->folder, on_measure_folder_selected);
}

void session_measure_sizes(struct session *s)
{
    if (!wants_exact_sizes(s)) {
        login_step_done(s);
        return;
    }
    s->measure_next = 1;
    s->measured = 0;
    measure_next(s);
}
