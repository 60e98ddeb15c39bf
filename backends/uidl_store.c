/* uidl_store.c: see uidl_store.h. The scripts it calls (lua_scripts.c) are
 * the only code of popgate that writes or reads the migration marker. */
#include "uidl_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_keys.h"
#include "redis_script.h"

static void log_failure(const char *what, const char *error)
{
    log_event(LOG_LEVEL_WARN, NULL, "redis-error", "op", what, "error", error ? error : "unexpected reply",
              LOG_END);
}

/* ---- lookup ------------------------------------------------------------- */

struct lookup_batch {
    struct uidl_lookup *l;
    struct redis_request *req;  /* NULL once its callback ran */
    size_t first;
    size_t n;
};

struct uidl_lookup {
    uidl_lookup_cb *done;
    void *arg;
    size_t n;
    struct lookup_batch *batches;
    size_t n_batches;
    size_t pending;             /* batches still waiting for their reply */
    bool in_callback;           /* cancel from inside done is a no-op */
    /* Values as they arrive: offs[i] into pool, SIZE_MAX when absent. */
    size_t *offs;
    size_t *lens;
    char *pool;
    size_t pool_len, pool_cap;
};

static void lookup_free(struct uidl_lookup *l)
{
    free(l->batches);
    free(l->offs);
    free(l->lens);
    free(l->pool);
    free(l);
}

/* Cancels every batch still in flight (their callbacks never run). */
static void lookup_cancel_batches(struct uidl_lookup *l)
{
    for (size_t b = 0; b < l->n_batches; b++) {
        redis_request_cancel(l->batches[b].req);
        l->batches[b].req = NULL;
    }
}

static void lookup_deliver(struct uidl_lookup *l, bool ok)
{
    const char **values = NULL;
    if (ok) {
        values = malloc((l->n ? l->n : 1) * sizeof *values);
        ok = values != NULL;
    }
    for (size_t i = 0; ok && i < l->n; i++)
        values[i] = l->offs[i] == SIZE_MAX ? NULL : l->pool + l->offs[i];
    l->in_callback = true;
    if (ok)
        l->done(UIDL_STORE_OK, values, l->lens, l->n, l->arg);
    else
        l->done(UIDL_STORE_UNAVAILABLE, NULL, NULL, l->n, l->arg);
    free(values);
    lookup_free(l);
}

/* Copies one batch's values; false on a reply of the wrong shape. */
static bool lookup_take(struct uidl_lookup *l, const struct lookup_batch *b, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != b->n)
        return false;
    for (size_t i = 0; i < b->n; i++) {
        const redisReply *v = r->element[i];
        size_t k = b->first + i;
        if (v->type == REDIS_REPLY_NIL) {
            l->offs[k] = SIZE_MAX;
            l->lens[k] = 0;
            continue;
        }
        if (v->type != REDIS_REPLY_STRING)
            return false;
        size_t len = v->len <= UIDL_VALUE_MAX ? v->len : 0;
        if (len > l->pool_cap - l->pool_len) {
            size_t cap = l->pool_cap ? l->pool_cap * 2 : 4096;
            while (cap - l->pool_len < len)
                cap *= 2;
            char *p = realloc(l->pool, cap);
            if (!p)
                return false;
            l->pool = p;
            l->pool_cap = cap;
        }
        memcpy(l->pool + l->pool_len, v->str, len);
        l->offs[k] = l->pool_len;
        l->lens[k] = len;
        l->pool_len += len;
    }
    return true;
}

static void on_lookup_batch(const redisReply *r, const char *error, void *arg)
{
    struct lookup_batch *b = arg;
    struct uidl_lookup *l = b->l;
    b->req = NULL;
    l->pending--;
    bool ok = r != NULL && lookup_take(l, b, r);
    if (!ok) {
        log_failure("uidl-lookup", error);
        lookup_cancel_batches(l);
        lookup_deliver(l, false);
        return;
    }
    if (l->pending == 0)
        lookup_deliver(l, true);
}

/* No ids: one HLEN stands in, so the answer still comes from the loop. */
static void on_lookup_empty(const redisReply *r, const char *error, void *arg)
{
    struct lookup_batch *b = arg;
    struct uidl_lookup *l = b->l;
    b->req = NULL;
    l->pending--;
    bool ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
    if (!ok)
        log_failure("uidl-lookup", error);
    lookup_deliver(l, ok);
}

struct uidl_lookup *uidl_store_lookup(struct redis_store *store, const char *state_user,
                                      const char *const *ids, const size_t *lens, size_t n,
                                      uidl_lookup_cb *done, void *arg)
{
    struct uidl_lookup *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->done = done;
    l->arg = arg;
    l->n = n;
    l->n_batches = n ? (n + UIDL_STORE_BATCH - 1) / UIDL_STORE_BATCH : 1;
    l->batches = calloc(l->n_batches, sizeof *l->batches);
    l->offs = malloc((n ? n : 1) * sizeof *l->offs);
    l->lens = calloc(n ? n : 1, sizeof *l->lens);
    const char **argv = malloc((2 + UIDL_STORE_BATCH) * sizeof *argv);
    size_t *argvlen = malloc((2 + UIDL_STORE_BATCH) * sizeof *argvlen);
    if (!l->batches || !l->offs || !l->lens || !argv || !argvlen) {
        free(argv);
        free(argvlen);
        lookup_free(l);
        return NULL;
    }

    char key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_UIDL, state_user, NULL);
    bool ok = true;
    for (size_t b = 0; ok && b < l->n_batches; b++) {
        struct lookup_batch *batch = &l->batches[b];
        batch->l = l;
        batch->first = b * UIDL_STORE_BATCH;
        batch->n = n - batch->first < UIDL_STORE_BATCH ? n - batch->first : UIDL_STORE_BATCH;
        argv[0] = n ? "HMGET" : "HLEN";
        argvlen[0] = strlen(argv[0]);
        argv[1] = key;
        argvlen[1] = strlen(key);
        for (size_t i = 0; i < batch->n; i++) {
            argv[2 + i] = ids[batch->first + i];
            argvlen[2 + i] = lens[batch->first + i];
        }
        batch->req = redis_store_command(store, n ? on_lookup_batch : on_lookup_empty, batch,
                                         (int)(2 + batch->n), argv, argvlen);
        ok = batch->req != NULL;
        l->pending += ok;
    }
    free(argv);
    free(argvlen);
    if (!ok) {
        lookup_cancel_batches(l);
        lookup_free(l);
        return NULL;
    }
    return l;
}

void uidl_lookup_cancel(struct uidl_lookup *l)
{
    if (!l || l->in_callback)
        return;
    lookup_cancel_batches(l);
    lookup_free(l);
}

/* ---- save --------------------------------------------------------------- */

static bool visible_span(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x21 || p[i] > 0x7e)
            return false;
    return true;
}

/* The forms uidl_file_parse accepts, so export and import read it back. */
static bool entry_valid(const struct uidl_store_entry *e)
{
    if (e->field_len == 0 || e->field_len > UIDL_MSGID_MAX)
        return false;
    if (e->value)
        return e->value_len > 0 && e->value_len <= UIDL_VALUE_MAX;
    return e->uidl_len > 0 && e->uidl_len <= UIDL_MAX && visible_span(e->uidl, e->uidl_len);
}

struct save_call {
    uidl_save_cb *done;
    void *arg;
};

static void on_save_reply(const redisReply *r, const char *error, void *arg)
{
    struct save_call call = *(struct save_call *)arg;
    free(arg);
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
        log_failure("uidl-save", error);
        call.done(UIDL_STORE_UNAVAILABLE, 0, call.arg);
        return;
    }
    call.done(UIDL_STORE_OK, (uint64_t)r->integer, call.arg);
}

/* Builds the script's arguments (values formatted into pool) and sends it;
 * args and lens have room for UIDL_SAVE_ARGS + 2 * n. */
static struct redis_request *send_save(struct redis_store *store, const char *state_user,
                                       const struct uidl_store_entry *entries, size_t n,
                                       const char *marker_value, struct save_call *call,
                                       const char **args, size_t *lens, char *pool, size_t pool_cap)
{
    char key[REDIS_KEY_MAX], marker_key[REDIS_KEY_MAX];
    redis_key(key, REDIS_KEY_UIDL, state_user, NULL);
    redis_key(marker_key, REDIS_KEY_LEGACY, state_user, NULL);
    const char *keys[UIDL_SAVE_KEYS] = { [UIDL_SAVE_KEY_UIDL] = key, [UIDL_SAVE_KEY_MARKER] = marker_key };
    args[UIDL_SAVE_ARG_SET_MARKER] = marker_value ? "1" : "0";
    args[UIDL_SAVE_ARG_MARKER] = marker_value ? marker_value : "";
    for (size_t i = 0; i < UIDL_SAVE_ARGS; i++)
        lens[i] = strlen(args[i]);
    /* Then the field/value pairs. */
    const char **pair = args + UIDL_SAVE_ARGS;
    size_t *pair_len = lens + UIDL_SAVE_ARGS;
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const struct uidl_store_entry *e = &entries[i];
        size_t vlen;
        if (e->value) {
            memcpy(pool + used, e->value, e->value_len);
            vlen = e->value_len;
        } else {
            struct uidl_file_entry fe = { .uidl = e->uidl, .uidl_len = e->uidl_len, .size = e->size };
            vlen = uidl_value_format(&fe, pool + used, pool_cap - used);
        }
        pair[2 * i] = e->field;
        pair_len[2 * i] = e->field_len;
        pair[2 * i + 1] = pool + used;
        pair_len[2 * i + 1] = vlen;
        used += vlen;
    }
    return redis_script_call(store, LUA_UIDL_SAVE, keys, args, lens, 2 * n, on_save_reply, call);
}

struct redis_request *uidl_store_save(struct redis_store *store, const char *state_user,
                                      const struct uidl_store_entry *entries, size_t n,
                                      const char *marker_value, uidl_save_cb *done, void *arg)
{
    if ((n == 0 && !marker_value) || n > UIDL_STORE_SAVE_MAX)
        return NULL;
    /* Each value "<uidl> <size>" is at most uidl_len + 11 octets; one NUL ends the last. */
    size_t pool_cap = 1;
    for (size_t i = 0; i < n; i++) {
        if (!entry_valid(&entries[i]))
            return NULL;
        pool_cap += entries[i].value ? entries[i].value_len : entries[i].uidl_len + 1 + 10;
    }
    size_t argc = UIDL_SAVE_ARGS + 2 * n;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *argvlen = malloc(argc * sizeof *argvlen);
    char *pool = malloc(pool_cap);
    struct save_call *call = malloc(sizeof *call);
    struct redis_request *req = NULL;
    if (argv && argvlen && pool && call) {
        *call = (struct save_call){ done, arg };
        req = send_save(store, state_user, entries, n, marker_value, call, argv, argvlen, pool, pool_cap);
    }
    if (!req)
        free(call);
    free(argv);
    free(argvlen);
    free(pool);
    return req;
}
