/* admin_stats.c: `popgate-admin stats`. Every running popgate node publishes
 * its counters every 5 s into the hash pg1:node:<node> (node, started,
 * updated, sessions_active, sessions_total, logins_ok, logins_failed; times in
 * Unix seconds), which expires 30 s after the node stops; this lists the
 * nodes that are there and adds their counters up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "admin_user.h"
#include "admin_output.h"

/* A node name is "host:pid"; longer foreign values are cut, not overrun. */
#define NODE_NAME_MAX 256

enum { C_ACTIVE, C_TOTAL, C_OK, C_FAILED, N_COUNTERS };
static const char *const counter_fields[N_COUNTERS] = { "sessions_active", "sessions_total", "logins_ok",
                                                        "logins_failed" };

struct node_row {
    char node[NODE_NAME_MAX];
    char started[ISO_TIME_MAX];   /* empty when absent or not a time */
    char updated[ISO_TIME_MAX];
    unsigned long long counter[N_COUNTERS];
};

static unsigned long long field_u64(const struct admin_field *f, size_t n, const char *name)
{
    char buf[32];
    if (!admin_field_get(f, n, name, buf, sizeof buf) || buf[0] < '0' || buf[0] > '9')
        return 0;
    return strtoull(buf, NULL, 10);
}

/* False after reporting; *present false when the key expired since the SCAN. */
static bool read_node(struct admin *a, const char *key, struct node_row *row, bool *present)
{
    const char *cmd[] = { "HGETALL", key };
    redisReply *r = admin_command(a, 2, cmd, NULL);
    if (!r)
        return false;
    struct admin_field *f;
    size_t n;
    if (!admin_hash_fields(r, &f, &n)) {
        freeReplyObject(r);
        return false;
    }
    memset(row, 0, sizeof *row);
    *present = n > 0;
    if (!admin_field_get(f, n, "node", row->node, sizeof row->node)) {
        /* The key matched the SCAN pattern: it starts with the prefix. */
        char prefix[REDIS_KEY_MAX];
        snprintf(row->node, sizeof row->node, "%s", key + redis_key_prefix(prefix, REDIS_KEY_NODE, NULL));
    }
    char raw[32];
    if (!admin_field_get(f, n, "started", raw, sizeof raw) || !iso_time_from_text(raw, row->started))
        row->started[0] = '\0';
    if (!admin_field_get(f, n, "updated", raw, sizeof raw) || !iso_time_from_text(raw, row->updated))
        row->updated[0] = '\0';
    for (int c = 0; c < N_COUNTERS; c++)
        row->counter[c] = field_u64(f, n, counter_fields[c]);
    free(f);
    freeReplyObject(r);
    return true;
}

static void json_counters(struct json_writer *w, const unsigned long long *counter)
{
    for (int c = 0; c < N_COUNTERS; c++) {
        json_key(w, counter_fields[c]);
        json_u64(w, counter[c]);
    }
}

static bool table_counters(struct text_table *t, const char *a, const char *b, const char *c,
                           const unsigned long long *counter)
{
    bool ok = table_add(t, a) && table_add(t, b) && table_add(t, c);
    for (int i = 0; ok && i < N_COUNTERS; i++) {
        char num[24];
        snprintf(num, sizeof num, "%llu", counter[i]);
        ok = table_add(t, num);
    }
    return ok;
}

int admin_stats_main(struct admin *a, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return admin_usage_error("stats", "stats takes no arguments");
    int status = admin_connect(a);
    if (status != ADMIN_OK)
        return status;
    char pattern[REDIS_KEY_PATTERN_MAX];
    redis_key_pattern(pattern, REDIS_KEY_NODE, NULL);
    struct admin_keys keys;
    if (!admin_scan(a, pattern, &keys))
        return ADMIN_UNAVAILABLE;

    struct node_row *rows = keys.n ? calloc(keys.n, sizeof *rows) : NULL;
    if (keys.n && !rows) {
        admin_error("out of memory");
        admin_keys_free(&keys);
        return ADMIN_UNAVAILABLE;
    }
    size_t n_rows = 0;
    unsigned long long total[N_COUNTERS] = { 0 };
    for (size_t i = 0; i < keys.n; i++) {
        bool present;
        if (!read_node(a, keys.keys[i], &rows[n_rows], &present)) {
            status = ADMIN_UNAVAILABLE;
            break;
        }
        if (!present)
            continue;
        for (int c = 0; c < N_COUNTERS; c++)
            total[c] += rows[n_rows].counter[c];
        n_rows++;
    }

    if (status == ADMIN_OK && a->json) {
        struct json_writer w;
        json_init(&w, a->out);
        json_object_begin(&w);
        json_key(&w, "nodes");
        json_array_begin(&w);
        for (size_t i = 0; i < n_rows; i++) {
            json_object_begin(&w);
            json_key(&w, "node");
            json_cstring(&w, rows[i].node);
            json_key(&w, "started");
            if (rows[i].started[0])
                json_cstring(&w, rows[i].started);
            else
                json_null(&w);
            json_key(&w, "updated");
            if (rows[i].updated[0])
                json_cstring(&w, rows[i].updated);
            else
                json_null(&w);
            json_counters(&w, rows[i].counter);
            json_object_end(&w);
        }
        json_array_end(&w);
        json_key(&w, "totals");
        json_object_begin(&w);
        json_key(&w, "nodes");
        json_u64(&w, n_rows);
        json_counters(&w, total);
        json_object_end(&w);
        json_object_end(&w);
        json_finish(&w);
    } else if (status == ADMIN_OK && n_rows == 0) {
        fputs("no popgate node has published statistics in the last 30 seconds\n", a->out);
    } else if (status == ADMIN_OK) {
        struct text_table t;
        table_init(&t, 3 + N_COUNTERS);
        bool ok = table_add(&t, "NODE") && table_add(&t, "STARTED") && table_add(&t, "UPDATED") &&
                  table_add(&t, "ACTIVE") && table_add(&t, "SESSIONS") && table_add(&t, "LOGINS_OK") &&
                  table_add(&t, "LOGINS_FAILED");
        for (size_t i = 0; ok && i < n_rows; i++)
            ok = table_counters(&t, rows[i].node, rows[i].started[0] ? rows[i].started : "-",
                                rows[i].updated[0] ? rows[i].updated : "-", rows[i].counter);
        char nodes[32];
        snprintf(nodes, sizeof nodes, "%zu node%s", n_rows, n_rows == 1 ? "" : "s");
        ok = ok && table_counters(&t, "total", nodes, "", total);
        if (ok) {
            table_print(&t, a->out);
        } else {
            admin_error("out of memory");
            status = ADMIN_UNAVAILABLE;
        }
        table_free(&t);
    }
    free(rows);
    admin_keys_free(&keys);
    return status;
}
