/* imap_client_bodies: imap_fetch_bodies(), several whole bodies in one
 * UID FETCH (see imap_client.h for the contract).
 *
 * The server may send the FETCH responses in any order and put UID before
 * or after the BODY[] literal, so a literal cannot be attributed when it
 * begins: its bytes stream to the caller's sink as they arrive, and the
 * UID is handed over when the response's line ends (body_end). Only the
 * first BODY[] literal of a response counts; any other literal is dropped
 * as for every operation.
 */
#include "imap_client_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* UID sets longer than this are refused (a prefetch batch is far shorter). */
#define IMAP_BODIES_UIDSET_MAX 4096

void imap_fetch_bodies(struct imap_client *c, const char *uidset, const struct imap_body_sink *sink,
                       imap_body_end_cb *body_end, imap_done_cb *done, void *arg)
{
    if (!imap_op_begin(c, OP_BODIES, done, arg))
        return;
    size_t n = strlen(uidset);
    if (n == 0 || n > IMAP_BODIES_UIDSET_MAX || strspn(uidset, "0123456789,:") != n) {
        imap_api_invalid(c, "bad UID set for FETCH");
        return;
    }
    c->sink = *sink;
    c->body_end = body_end;
    c->bodies_literal = false;
    c->body_streaming = false;
    char cmd[IMAP_BODIES_UIDSET_MAX + 64];
    snprintf(cmd, sizeof cmd, "UID FETCH %s (UID BODY.PEEK[])", uidset);
    imap_api_send(c, cmd);
}

bool imap_bodies_literal_start(struct imap_client *c, const char *line, size_t len, uint64_t literal_len)
{
    if (c->bodies_literal)
        return false;
    struct imap_response r;
    struct imap_fetch_attrs a;
    const char *err;
    if (!imap_response_parse(line, len, &r, &err) || r.type != IMAP_RESP_UNTAGGED || !r.has_number ||
        !imap_resp_name_is(&r, "FETCH") || !imap_fetch_parse(r.data, r.data_len, true, &a, &err))
        return false;
    /* "BODY[]" exactly: not a section, not a partial range. */
    if (a.literal_item_len != 6 || strncasecmp(a.literal_item, "BODY[]", 6) != 0)
        return false;
    c->bodies_literal = true;
    c->body_left = literal_len;
    c->body_streaming = literal_len > 0;
    if (c->sink.section_start)
        c->sink.section_start(literal_len, c->arg);
    return true;
}

void imap_bodies_fetch_end(struct imap_client *c, const struct imap_fetch_attrs *a)
{
    if (!c->bodies_literal)
        return;  /* no body in this one: a flag change, or a body as NIL or "" */
    c->bodies_literal = false;
    if (c->body_end)
        c->body_end((a->present & IMAP_FETCH_HAS_UID) ? a->uid : 0, c->arg);
}
