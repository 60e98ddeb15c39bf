/* legacy_pop3: see legacy_pop3.h for the contract.
 *
 * Shape: one fixed conversation, a step at a time, driven by the events that
 * translate/pop3_reply frames out of the byte stream. The connection is the
 * one under the IMAP client too (io/upstream_conn.h): its stream, TLS,
 * timers, deferred free and zero-delay completion, with the completion rules
 * stated there (an outcome known inside legacy_pop3_fetch() is reported from
 * the loop).
 *
 * Messages are kept in an array indexed by message number - 1 (STAT gives
 * the count before UIDL), their UIDLs in one growing pool of octets.
 */
#include "legacy_pop3.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "array_grow.h"
#include "header_hash.h"
#include "message_id.h"
#include "pop3_reply.h"
#include "uidl_file.h"
#include "upstream_conn.h"

/* "TOP 4294967295 0\r\n" and the NUL. */
#define TOP_COMMAND_MAX 24

enum step {
    STEP_TCP,          /* TCP connect and, with implicit TLS, the handshake */
    STEP_TLS,          /* the handshake after STLS */
    STEP_GREETING,
    STEP_CAPA,
    STEP_STLS,
    STEP_USER,
    STEP_PASS,
    STEP_STAT,
    STEP_UIDL,
    STEP_LIST,
    STEP_TOP,
    STEP_QUIT,
    STEP_FINISHED,
};

enum {
    CAPA_STLS       = 1u << 0,
    CAPA_PIPELINING = 1u << 1,
    CAPA_TOP        = 1u << 2,
    CAPA_USER       = 1u << 3,
};

enum entry_state {
    ENTRY_NONE = 0,    /* UIDL has not named the message */
    ENTRY_UIDL,        /* a valid UIDL */
    ENTRY_BAD,         /* an invalid UIDL, or named twice */
    ENTRY_DUPLICATE,   /* its UIDL is also another message's */
};

/* One message, indexed by message number - 1: 12 octets. */
struct entry {
    uint32_t uidl_off;         /* into uidl_pool */
    uint32_t size;
    uint8_t uidl_len;
    uint8_t state;             /* enum entry_state */
    uint8_t has_size;          /* LIST gave a valid size */
};
_Static_assert(sizeof(struct entry) == 12, "the header states 12 octets per message");

struct legacy_pop3 {
    struct upstream_conn conn;      /* stream, TLS, timers, deferred free, last error */
    uint32_t max_messages;
    char *user;                     /* freed once USER is sent */
    char *pass;                     /* wiped and freed once PASS is sent */
    legacy_pop3_item_cb *item;
    legacy_pop3_done_cb *done;
    void *arg;

    struct pop3_reply_reader reader;

    enum step step;
    unsigned caps;
    bool capa_ok;                   /* CAPA answered +OK (its list is authoritative) */

    struct entry *entries;          /* stats.messages of them */
    char *uidl_pool;
    size_t pool_len, pool_cap;

    /* TOP phase: message indices (0-based) of the next command to send and
     * of the next reply to read; in_flight commands between them. */
    uint32_t top_send, top_recv;
    unsigned in_flight, window;
    char *header;                   /* LEGACY_POP3_HEADER_MAX octets while TOPs run */
    size_t header_len;
    bool header_overflow;
    bool top_ok;                    /* the current TOP reply was +OK */
    /* The header hash of the current TOP reply, fed as it arrives, so a
     * header past LEGACY_POP3_HEADER_MAX still gets one. */
    struct header_hash hasher;
    bool hasher_ready;

    struct legacy_pop3_stats stats;
};

static struct legacy_pop3 *fetch_of(struct upstream_conn *u)
{
    return UPSTREAM_CONN_OWNER(u, struct legacy_pop3, conn);
}

const char *legacy_pop3_result_name(enum legacy_pop3_result r)
{
    static const char *const names[] = {
        [LEGACY_POP3_OK] = "ok",
        [LEGACY_POP3_AUTH_FAILED] = "auth-failed",
        [LEGACY_POP3_UNAVAILABLE] = "unavailable",
        [LEGACY_POP3_IO_ERROR] = "io-error",
        [LEGACY_POP3_TLS_VERIFY_ERROR] = "tls-verify-error",
        [LEGACY_POP3_TIMEOUT] = "timeout",
        [LEGACY_POP3_PROTOCOL_ERROR] = "protocol-error",
        [LEGACY_POP3_INVALID_ARGUMENT] = "invalid-argument",
        [LEGACY_POP3_TOO_MANY_MESSAGES] = "too-many-messages",
    };
    if ((size_t)r < sizeof names / sizeof names[0] && names[r])
        return names[r];
    return "unknown";
}

/* ---- error text ----------------------------------------------------------- */

static void set_error_span(struct legacy_pop3 *p, const char *prefix, const char *s, size_t len)
{
    upstream_conn_set_error_span(&p->conn, prefix, s, len);
}

static void set_error(struct legacy_pop3 *p, const char *msg)
{
    upstream_conn_set_error(&p->conn, msg);
}

/* ---- lifetime --------------------------------------------------------------- */

static void wipe_credentials(struct legacy_pop3 *p)
{
    upstream_secret_free(&p->pass);
    free(p->user);
    p->user = NULL;
}

/* Everything but the object itself and its counters: the fetch is over. */
static void release(struct legacy_pop3 *p)
{
    upstream_conn_timers_stop(&p->conn);
    upstream_conn_close(&p->conn);
    wipe_credentials(p);
    free(p->entries);
    p->entries = NULL;
    free(p->uidl_pool);
    p->uidl_pool = NULL;
    free(p->header);
    p->header = NULL;
    if (p->hasher_ready)
        header_hash_free(&p->hasher);
    p->hasher_ready = false;
}

/* Is the fetch still going (not finished, not being freed)? */
static bool live(const struct legacy_pop3 *p)
{
    return p->step != STEP_FINISHED && !upstream_conn_freeing(&p->conn);
}

static void finish(struct legacy_pop3 *p, enum legacy_pop3_result r)
{
    if (p->step == STEP_FINISHED)
        return;
    p->step = STEP_FINISHED;
    release(p);
    legacy_pop3_done_cb *done = p->done;
    p->done = NULL;
    p->item = NULL;
    if (done && !upstream_conn_freeing(&p->conn))
        done(p, r, p->arg);
}

static void fail(struct legacy_pop3 *p, enum legacy_pop3_result r, const char *msg)
{
    if (msg)
        set_error(p, msg);
    finish(p, r);
}

/* Complete from the loop, not from inside legacy_pop3_fetch(). */
static void finish_soon(struct legacy_pop3 *p, enum legacy_pop3_result r, const char *msg)
{
    set_error(p, msg);
    upstream_conn_finish_soon(&p->conn, (int)r);
}

void legacy_pop3_free(struct legacy_pop3 *p)
{
    if (p == NULL)
        return;
    p->item = NULL;
    p->done = NULL;
    upstream_conn_free(&p->conn);
}

const struct legacy_pop3_stats *legacy_pop3_stats(const struct legacy_pop3 *p)
{
    return &p->stats;
}

const char *legacy_pop3_last_error(const struct legacy_pop3 *p)
{
    return upstream_conn_last_error(&p->conn);
}

/* ---- sending ---------------------------------------------------------------- */

/* Writes one command line; on failure the fetch fails (from network input:
 * callers are inside an event). */
static bool send_line(struct legacy_pop3 *p, const char *line, size_t len)
{
    if (!net_stream_write(upstream_conn_stream(&p->conn), line, len)) {
        fail(p, LEGACY_POP3_IO_ERROR, "write to legacy server failed");
        return false;
    }
    return true;
}

static bool send_command(struct legacy_pop3 *p, const char *cmd, enum step next,
                         enum pop3_reply_expect expect)
{
    pop3_reply_expect(&p->reader, expect);
    p->step = next;
    return send_line(p, cmd, strlen(cmd));
}

/* "<verb> <arg>\r\n", wiped afterwards (the argument may be the password). */
static bool send_with_arg(struct legacy_pop3 *p, const char *verb, const char *arg,
                          enum step next)
{
    char line[8 + LEGACY_POP3_CREDENTIAL_MAX + 2];
    int n = snprintf(line, sizeof line, "%s %s\r\n", verb, arg);
    pop3_reply_expect(&p->reader, POP3_EXPECT_SINGLE);
    p->step = next;
    bool ok = n > 0 && (size_t)n < sizeof line && send_line(p, line, (size_t)n);
    upstream_wipe(line, sizeof line);
    return ok;
}

/* ---- connect, TLS, capabilities ---------------------------------------------- */

static void start_tls(struct legacy_pop3 *p)
{
    p->step = STEP_TLS;
    upstream_conn_start_tls(&p->conn);
}

/* ---- the connection's events (upstream_conn_ops) ------------------------------ */

static enum legacy_pop3_result result_of(enum upstream_error err)
{
    static const enum legacy_pop3_result results[] = {
        [UPSTREAM_ERR_IO] = LEGACY_POP3_IO_ERROR,
        [UPSTREAM_ERR_TIMEOUT] = LEGACY_POP3_TIMEOUT,
        [UPSTREAM_ERR_TLS_VERIFY] = LEGACY_POP3_TLS_VERIFY_ERROR,
    };
    return results[err];
}

static size_t on_read(struct upstream_conn *u, const char *data, size_t len);

static void connected(struct upstream_conn *u)
{
    fetch_of(u)->step = STEP_GREETING;
}

static void upgraded(struct upstream_conn *u)
{
    struct legacy_pop3 *p = fetch_of(u);
    /* RFC 2595 4: what CAPA said before STLS is void. */
    p->caps = 0;
    p->capa_ok = false;
    send_command(p, "CAPA\r\n", STEP_CAPA, POP3_EXPECT_LINES);
}

/* Connect, a handshake or the stream failed. Once QUIT is sent everything
 * was read: how the server hangs up does not matter. */
static void lost(struct upstream_conn *u, enum upstream_error err, const char *why)
{
    struct legacy_pop3 *p = fetch_of(u);
    if (p->step == STEP_QUIT)
        finish(p, LEGACY_POP3_OK);
    else
        fail(p, result_of(err), why);
}

static void timed_out(struct upstream_conn *u, bool connecting)
{
    struct legacy_pop3 *p = fetch_of(u);
    if (p->step == STEP_QUIT)
        finish(p, LEGACY_POP3_OK);
    else
        fail(p, LEGACY_POP3_TIMEOUT, connecting ? "connect to legacy server timed out"
                                                : "legacy server reply timed out");
}

static void soon_finish(struct upstream_conn *u, int result)
{
    finish(fetch_of(u), (enum legacy_pop3_result)result);
}

static void destroy(struct upstream_conn *u)
{
    struct legacy_pop3 *p = fetch_of(u);
    release(p);
    upstream_conn_deinit(&p->conn);
    free(p);
}

static const struct upstream_conn_ops conn_ops = {
    .read = on_read,
    .connected = connected,
    .upgraded = upgraded,
    .failed = lost,
    .closed = lost,
    .timed_out = timed_out,
    .finish = soon_finish,
    .destroy = destroy,
};

static bool credential_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= LEGACY_POP3_CREDENTIAL_MAX && strpbrk(s, "\r\n") == NULL;
}

struct legacy_pop3 *legacy_pop3_fetch(struct ev_loop *loop, const struct legacy_pop3_server *srv,
                                      const char *user, const char *pass,
                                      legacy_pop3_item_cb *item, legacy_pop3_done_cb *done,
                                      void *arg)
{
    struct legacy_pop3 *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    if (!upstream_conn_init(&p->conn, loop, &srv->endpoint, "legacy server", &conn_ops)) {
        free(p);
        return NULL;
    }
    p->max_messages = srv->max_messages ? srv->max_messages : LEGACY_POP3_MAX_MESSAGES_DEFAULT;
    p->item = item;
    p->done = done;
    p->arg = arg;
    p->step = STEP_TCP;
    pop3_reply_reader_init(&p->reader);

    if (!credential_ok(user) || !credential_ok(pass)) {
        finish_soon(p, LEGACY_POP3_INVALID_ARGUMENT,
                    "credentials empty, too long, or with CR or LF");
        return p;
    }
    p->user = strdup(user);
    p->pass = strdup(pass);
    if (p->user == NULL || p->pass == NULL) {
        destroy(&p->conn);
        return NULL;
    }
    switch (upstream_conn_connect(&p->conn)) {
    case UPSTREAM_CONNECT_STARTED:
        break;
    case UPSTREAM_CONNECT_NO_TLS_CONTEXT:
        finish_soon(p, LEGACY_POP3_INVALID_ARGUMENT, "TLS requested without a TLS context");
        break;
    case UPSTREAM_CONNECT_NO_SOCKET:
        finish_soon(p, LEGACY_POP3_IO_ERROR, "cannot create a socket for the legacy server");
        break;
    }
    return p;
}

/* One CAPA line: the capability name is its first word. */
static void read_capa_line(struct legacy_pop3 *p, const char *line, size_t len)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
        { "STLS", CAPA_STLS },
        { "PIPELINING", CAPA_PIPELINING },
        { "TOP", CAPA_TOP },
        { "USER", CAPA_USER },
    };
    size_t word = 0;
    while (word < len && line[word] != ' ')
        word++;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == word && strncasecmp(line, names[i].name, word) == 0)
            p->caps |= names[i].bit;
}

/* CAPA is over (+OK and its list, or -ERR): STLS next, or the login. */
static void capabilities_known(struct legacy_pop3 *p)
{
    if (upstream_conn_needs_starttls(&p->conn)) {
        if (!(p->caps & CAPA_STLS)) {
            /* Carrying on in plaintext would expose the password. */
            fail(p, LEGACY_POP3_PROTOCOL_ERROR, "legacy server does not offer STLS");
            return;
        }
        send_command(p, "STLS\r\n", STEP_STLS, POP3_EXPECT_SINGLE);
        return;
    }
    upstream_conn_await_reply(&p->conn);
    if (send_with_arg(p, "USER", p->user, STEP_USER)) {
        free(p->user);
        p->user = NULL;
    }
}

/* -ERR to USER or PASS. RFC 3206 codes tell a busy or broken server from a
 * wrong password; a server whose CAPA did not offer USER may be refusing
 * plaintext login, which is no verdict on the password either. */
static void login_refused(struct legacy_pop3 *p, const char *text, size_t len)
{
    set_error_span(p, "-ERR ", text, len);
    if (pop3_reply_has_code(text, len, "IN-USE") || pop3_reply_has_code(text, len, "LOGIN-DELAY") ||
        pop3_reply_has_code(text, len, "SYS") || (p->capa_ok && !(p->caps & CAPA_USER)))
        finish(p, LEGACY_POP3_UNAVAILABLE);
    else
        finish(p, LEGACY_POP3_AUTH_FAILED);
}

/* ---- listings ---------------------------------------------------------------- */

static void read_stat(struct legacy_pop3 *p, const char *text, size_t len)
{
    uint32_t count;
    if (!pop3_parse_stat(text, len, &count)) {
        set_error_span(p, "malformed STAT reply: ", text, len);
        finish(p, LEGACY_POP3_PROTOCOL_ERROR);
        return;
    }
    p->stats.messages = count;
    if (count > p->max_messages) {
        set_error(p, "legacy maildrop has more messages than max_messages");
        finish(p, LEGACY_POP3_TOO_MANY_MESSAGES);
        return;
    }
    if (count == 0) {
        send_command(p, "QUIT\r\n", STEP_QUIT, POP3_EXPECT_SINGLE);
        return;
    }
    p->entries = calloc(count, sizeof *p->entries);
    if (p->entries == NULL) {
        fail(p, LEGACY_POP3_IO_ERROR, "out of memory for the legacy listing");
        return;
    }
    send_command(p, "UIDL\r\n", STEP_UIDL, POP3_EXPECT_LINES);
}

static bool pool_add(struct legacy_pop3 *p, const char *s, size_t len, uint32_t *off)
{
    /* Offsets are 32 bits. */
    if (!array_reserve((void **)&p->uidl_pool, &p->pool_cap, p->pool_len, len, 1, 4096, UINT32_MAX))
        return false;
    memcpy(p->uidl_pool + p->pool_len, s, len);
    *off = (uint32_t)p->pool_len;
    p->pool_len += len;
    return true;
}

static void read_uidl_line(struct legacy_pop3 *p, const char *line, size_t len)
{
    uint32_t n;
    const char *uidl;
    size_t ulen;
    enum pop3_listing_result res = pop3_parse_uidl_line(line, len, &n, &uidl, &ulen);
    if (res == POP3_LISTING_MALFORMED) {
        set_error_span(p, "malformed UIDL line: ", line, len);
        finish(p, LEGACY_POP3_PROTOCOL_ERROR);
        return;
    }
    /* Numbers beyond STAT's count name no message of this session. */
    if (n > p->stats.messages)
        return;
    struct entry *e = &p->entries[n - 1];
    if (res != POP3_LISTING_OK || e->state != ENTRY_NONE) {
        e->state = ENTRY_BAD;
        return;
    }
    if (!pool_add(p, uidl, ulen, &e->uidl_off)) {
        fail(p, LEGACY_POP3_IO_ERROR, "out of memory for the legacy listing");
        return;
    }
    e->uidl_len = (uint8_t)ulen;
    e->state = ENTRY_UIDL;
}

static int uidl_compare(const void *a, const void *b, void *arg)
{
    const struct legacy_pop3 *p = arg;
    const struct entry *x = &p->entries[*(const uint32_t *)a];
    const struct entry *y = &p->entries[*(const uint32_t *)b];
    size_t n = x->uidl_len < y->uidl_len ? x->uidl_len : y->uidl_len;
    int c = memcmp(p->uidl_pool + x->uidl_off, p->uidl_pool + y->uidl_off, n);
    if (c != 0)
        return c;
    return (int)x->uidl_len - (int)y->uidl_len;
}

/* Marks every message whose UIDL another message also has. */
static bool mark_duplicate_uidls(struct legacy_pop3 *p)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < p->stats.messages; i++)
        if (p->entries[i].state == ENTRY_UIDL)
            count++;
    if (count < 2)
        return true;
    uint32_t *order = malloc((size_t)count * sizeof *order);
    if (order == NULL)
        return false;
    count = 0;
    for (uint32_t i = 0; i < p->stats.messages; i++)
        if (p->entries[i].state == ENTRY_UIDL)
            order[count++] = i;
    qsort_r(order, count, sizeof *order, uidl_compare, p);
    for (uint32_t i = 1; i < count; i++) {
        if (uidl_compare(&order[i - 1], &order[i], p) == 0) {
            p->entries[order[i - 1]].state = ENTRY_DUPLICATE;
            p->entries[order[i]].state = ENTRY_DUPLICATE;
        }
    }
    free(order);
    return true;
}

static void read_list_line(struct legacy_pop3 *p, const char *line, size_t len)
{
    uint32_t n, size;
    enum pop3_listing_result res = pop3_parse_list_line(line, len, &n, &size);
    if (res == POP3_LISTING_MALFORMED) {
        set_error_span(p, "malformed LIST line: ", line, len);
        finish(p, LEGACY_POP3_PROTOCOL_ERROR);
        return;
    }
    if (n > p->stats.messages)
        return;
    struct entry *e = &p->entries[n - 1];
    if (res != POP3_LISTING_OK) {
        e->has_size = false;
        return;
    }
    e->size = size;
    e->has_size = true;
}

static bool usable(const struct entry *e)
{
    return e->state == ENTRY_UIDL && e->has_size;
}

/* The next usable message at or after index i; stats.messages if none. */
static uint32_t next_usable(const struct legacy_pop3 *p, uint32_t i)
{
    while (i < p->stats.messages && !usable(&p->entries[i]))
        i++;
    return i;
}

static void count_skipped(struct legacy_pop3 *p)
{
    for (uint32_t i = 0; i < p->stats.messages; i++) {
        const struct entry *e = &p->entries[i];
        if (e->state == ENTRY_DUPLICATE)
            p->stats.duplicate_uidl++;
        else if (e->state != ENTRY_UIDL)
            p->stats.bad_uidl++;
        else if (!e->has_size)
            p->stats.no_size++;
    }
}

/* Hands message i out. Returns false if the fetch stopped meanwhile (the
 * callback freed it). */
static bool deliver(struct legacy_pop3 *p, uint32_t i, const char *msgid, size_t msgid_len,
                    const char *hash)
{
    const struct entry *e = &p->entries[i];
    char uidl[UIDL_MAX + 1];
    memcpy(uidl, p->uidl_pool + e->uidl_off, e->uidl_len);
    uidl[e->uidl_len] = '\0';
    p->stats.delivered++;
    if (msgid_len == 0)
        p->stats.without_msgid++;
    if (p->item)
        p->item(uidl, e->uidl_len, e->size, msgid_len ? msgid : NULL, msgid_len, hash, p->arg);
    return live(p);
}

static void send_quit(struct legacy_pop3 *p)
{
    free(p->header);
    p->header = NULL;
    send_command(p, "QUIT\r\n", STEP_QUIT, POP3_EXPECT_SINGLE);
}

/* Keeps up to window TOP commands in flight; QUIT when all replies are in. */
static void send_tops(struct legacy_pop3 *p)
{
    if (p->top_recv >= p->stats.messages) {
        send_quit(p);
        return;
    }
    if (p->in_flight >= p->window || p->top_send >= p->stats.messages)
        return;
    net_stream_cork(upstream_conn_stream(&p->conn));
    while (p->in_flight < p->window && p->top_send < p->stats.messages) {
        char cmd[TOP_COMMAND_MAX];
        int n = snprintf(cmd, sizeof cmd, "TOP %u 0\r\n", (unsigned)p->top_send + 1);
        if (!send_line(p, cmd, (size_t)n))
            return;
        p->in_flight++;
        p->top_send = next_usable(p, p->top_send + 1);
    }
    net_stream_uncork(upstream_conn_stream(&p->conn));
}

/* UIDL and LIST are in: hand out what needs no TOP, or start the TOPs. */
static void listings_done(struct legacy_pop3 *p)
{
    count_skipped(p);
    if (p->capa_ok && !(p->caps & CAPA_TOP)) {
        for (uint32_t i = next_usable(p, 0); i < p->stats.messages; i = next_usable(p, i + 1))
            if (!deliver(p, i, NULL, 0, NULL))
                return;
        send_quit(p);
        return;
    }
    p->header = malloc(LEGACY_POP3_HEADER_MAX);
    p->hasher_ready = p->header && header_hash_init(&p->hasher);
    if (!p->hasher_ready) {
        fail(p, LEGACY_POP3_IO_ERROR, "out of memory for a message header");
        return;
    }
    p->window = (p->caps & CAPA_PIPELINING) ? LEGACY_POP3_TOP_WINDOW : 1;
    p->top_send = p->top_recv = next_usable(p, 0);
    p->in_flight = 0;
    pop3_reply_expect(&p->reader, POP3_EXPECT_STREAM);
    p->step = STEP_TOP;
    send_tops(p);
}

static void top_data(struct legacy_pop3 *p, const char *data, size_t len)
{
    header_hash_feed(&p->hasher, data, len);
    if (p->header_overflow)
        return;
    if (len > LEGACY_POP3_HEADER_MAX - p->header_len) {
        p->header_overflow = true;
        return;
    }
    memcpy(p->header + p->header_len, data, len);
    p->header_len += len;
}

/* The reply to the TOP of message top_recv is complete. */
static void top_done(struct legacy_pop3 *p)
{
    char msgid[UIDL_MSGID_MAX + 1];
    size_t msgid_len = 0;
    char hash[HEADER_HASH_HEX_LEN + 1];
    bool hashed = p->top_ok && header_hash_final(&p->hasher, hash);
    if (!header_hash_reset(&p->hasher)) {
        fail(p, LEGACY_POP3_IO_ERROR, "out of memory for a header hash");
        return;
    }
    if (!p->top_ok)
        p->stats.top_failed++;
    else if (p->header_overflow)
        p->stats.header_too_long++;
    else
        msgid_len = message_id_extract(p->header, p->header_len, msgid);
    if (msgid_len > UIDL_MSGID_MAX)
        msgid_len = 0;
    msgid[msgid_len] = '\0';
    uint32_t i = p->top_recv;
    p->in_flight--;
    p->top_recv = next_usable(p, i + 1);
    p->header_len = 0;
    p->header_overflow = false;
    if (!deliver(p, i, msgid, msgid_len, hashed ? hash : NULL))
        return;
    send_tops(p);
}

/* ---- replies ------------------------------------------------------------------ */

static void handle_status(struct legacy_pop3 *p, const struct pop3_reply_event *ev)
{
    bool ok = ev->type == POP3_REPLY_OK;
    switch (p->step) {
    case STEP_GREETING:
        if (!ok) {
            set_error_span(p, "greeting: ", ev->text, ev->len);
            finish(p, LEGACY_POP3_UNAVAILABLE);
            return;
        }
        send_command(p, "CAPA\r\n", STEP_CAPA, POP3_EXPECT_LINES);
        return;
    case STEP_CAPA:
        /* +OK: the list follows, up to END. */
        p->capa_ok = ok;
        if (!ok)
            capabilities_known(p);
        return;
    case STEP_STLS:
        if (!ok) {
            set_error_span(p, "STLS refused: ", ev->text, ev->len);
            finish(p, LEGACY_POP3_UNAVAILABLE);
            return;
        }
        start_tls(p);
        return;
    case STEP_USER:
        if (!ok) {
            login_refused(p, ev->text, ev->len);
            return;
        }
        send_with_arg(p, "PASS", p->pass, STEP_PASS);
        wipe_credentials(p);
        return;
    case STEP_PASS:
        if (!ok) {
            login_refused(p, ev->text, ev->len);
            return;
        }
        send_command(p, "STAT\r\n", STEP_STAT, POP3_EXPECT_SINGLE);
        return;
    case STEP_STAT:
        if (!ok) {
            set_error_span(p, "STAT refused: ", ev->text, ev->len);
            finish(p, LEGACY_POP3_PROTOCOL_ERROR);
            return;
        }
        read_stat(p, ev->text, ev->len);
        return;
    case STEP_UIDL:
    case STEP_LIST:
        if (!ok) {
            set_error_span(p, p->step == STEP_UIDL ? "UIDL refused: " : "LIST refused: ",
                           ev->text, ev->len);
            finish(p, LEGACY_POP3_PROTOCOL_ERROR);
        }
        return;
    case STEP_TOP:
        if (p->in_flight == 0) {
            fail(p, LEGACY_POP3_PROTOCOL_ERROR, "reply from the legacy server to no command");
            return;
        }
        p->top_ok = ok;
        if (!ok)
            top_done(p);
        return;
    case STEP_QUIT:
        finish(p, LEGACY_POP3_OK);
        return;
    default:
        fail(p, LEGACY_POP3_PROTOCOL_ERROR, "reply from the legacy server to no command");
        return;
    }
}

static void handle_end(struct legacy_pop3 *p)
{
    switch (p->step) {
    case STEP_CAPA:
        capabilities_known(p);
        return;
    case STEP_UIDL:
        if (!mark_duplicate_uidls(p)) {
            fail(p, LEGACY_POP3_IO_ERROR, "out of memory for the legacy listing");
            return;
        }
        send_command(p, "LIST\r\n", STEP_LIST, POP3_EXPECT_LINES);
        return;
    case STEP_LIST:
        listings_done(p);
        return;
    case STEP_TOP:
        top_done(p);
        return;
    default:
        fail(p, LEGACY_POP3_PROTOCOL_ERROR, "multi-line reply where none was expected");
        return;
    }
}

static void handle_event(struct legacy_pop3 *p, const struct pop3_reply_event *ev)
{
    switch (ev->type) {
    case POP3_REPLY_OK:
    case POP3_REPLY_ERR:
        handle_status(p, ev);
        return;
    case POP3_REPLY_BAD_STATUS:
        set_error_span(p, p->step == STEP_GREETING ? "not a POP3 greeting: "
                                                   : "not a POP3 status line: ",
                       ev->text, ev->len);
        finish(p, LEGACY_POP3_PROTOCOL_ERROR);
        return;
    case POP3_REPLY_TOO_LONG:
        fail(p, LEGACY_POP3_PROTOCOL_ERROR, "over-long line from the legacy server");
        return;
    case POP3_REPLY_LINE:
        if (p->step == STEP_CAPA)
            read_capa_line(p, ev->text, ev->len);
        else if (p->step == STEP_UIDL)
            read_uidl_line(p, ev->text, ev->len);
        else if (p->step == STEP_LIST)
            read_list_line(p, ev->text, ev->len);
        return;
    case POP3_REPLY_DATA:
        top_data(p, ev->text, ev->len);
        return;
    case POP3_REPLY_END:
        handle_end(p);
        return;
    case POP3_REPLY_AGAIN:
        return;
    }
}

static size_t on_read(struct upstream_conn *u, const char *data, size_t len)
{
    struct legacy_pop3 *p = fetch_of(u);
    size_t off = 0;
    while (live(p) && off < len) {
        if (p->step == STEP_TCP || p->step == STEP_TLS) {
            /* Bytes after the +OK to STLS were sent before TLS: an attacker's
             * injection (CVE-2011-0411 style). */
            fail(p, LEGACY_POP3_PROTOCOL_ERROR, "plaintext data after the STLS reply");
            break;
        }
        struct pop3_reply_event ev;
        off += pop3_reply_feed(&p->reader, data + off, len - off, &ev);
        handle_event(p, &ev);
    }
    return len;
}
