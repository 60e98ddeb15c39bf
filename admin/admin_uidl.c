/* admin_uidl.c: `popgate-admin uidl`, the legacy UIDLs of a user migrated
 * from an old POP3 server, in the hash pg1:{user}:uidl (Message-ID ->
 * "<uidl> <size>"). popgate serves the legacy UIDL for the upstream message
 * with that Message-ID, so a migrated client downloads nothing again.
 *
 * Import is all or nothing: the whole file is checked first (uidl_file.h),
 * every bad line reported, and only a clean file is stored, replacing what
 * was there in one MULTI/EXEC.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "admin_cluster.h"
#include "admin_user.h"
#include "admin_output.h"
#include "uidl_file.h"

/* Bound on the file read into memory: ~2 million lines of a typical
 * export, far more than any one mailbox. */
#define IMPORT_MAX_BYTES ((size_t)256 << 20)
/* Field/value pairs per HSET, so no single command is huge. */
#define HSET_BATCH 1000

/* The whole file, or NULL after reporting why not. "-" is stdin. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        admin_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    bool ok = buf != NULL;
    while (ok) {
        if (n == cap) {
            if (cap >= IMPORT_MAX_BYTES) {
                admin_error("%s: larger than %zu MiB", path, IMPORT_MAX_BYTES >> 20);
                ok = false;
                break;
            }
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                ok = false;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                admin_error("%s: %s", path, strerror(errno));
                ok = false;
            }
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (!ok) {
        if (!buf)
            admin_error("out of memory");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void report_errors(const char *name, const struct uidl_file *f)
{
    for (size_t i = 0; i < f->n_errors; i++) {
        const struct uidl_file_error *e = &f->errors[i];
        if (e->problem == UIDL_FILE_DUPLICATE_UIDL)
            fprintf(stderr, "%s:%zu: %s (first on line %zu)\n", name, e->line, uidl_file_problem_text(e->problem),
                    e->other_line);
        else
            fprintf(stderr, "%s:%zu: %s\n", name, e->line, uidl_file_problem_text(e->problem));
    }
    fprintf(stderr, ADMIN_PROG ": %s: %zu bad line%s, nothing stored\n", name, f->n_errors,
            f->n_errors == 1 ? "" : "s");
}

/* Queues MULTI, DEL, the HSETs and EXEC, then reads every reply: the EXEC
 * reply says whether the transaction ran. False with why it failed in
 * failure (failure_cap octets), or with failure empty after reporting. */
static bool store_once(struct admin *a, const char *key, const struct uidl_file *f, char *failure_out,
                       size_t failure_cap)
{
    failure_out[0] = '\0';
    /* A value per stored entry and a field per header-hash key and its size
     * marker (uidl_file.h "Storage"). */
    size_t n_hash = f->keys.by_header_hash;
    char (*values)[UIDL_VALUE_MAX + 1] = malloc((f->n_matchable ? f->n_matchable : 1) * sizeof *values);
    char (*hfields)[UIDL_HASH_FIELD_MAX + 1] = malloc((2 * n_hash + 1) * sizeof *hfields);
    const char **argv = malloc((2 + 2 * HSET_BATCH) * sizeof *argv);
    size_t *argvlen = malloc((2 + 2 * HSET_BATCH) * sizeof *argvlen);
    if (!values || !hfields || !argv || !argvlen) {
        admin_error("out of memory");
        free(values);
        free(hfields);
        free(argv);
        free(argvlen);
        return false;
    }

    size_t queued = 0;
    const char *multi[] = { "MULTI" };
    const char *del[] = { "DEL", key };
    bool ok = redisAppendCommandArgv(a->redis, 1, multi, NULL) == REDIS_OK &&
              redisAppendCommandArgv(a->redis, 2, del, NULL) == REDIS_OK;
    queued += 2;
    size_t next = 0, stored = 0, hashes = 0, sizes_next = 0;
    while (ok && (next < f->n_entries || sizes_next < f->n_entries)) {
        int argc = 0;
        argv[argc] = "HSET";
        argvlen[argc++] = 4;
        argv[argc] = key;
        argvlen[argc++] = strlen(key);
        for (; next < f->n_entries && argc < 2 + 2 * HSET_BATCH; next++) {
            const struct uidl_file_entry *e = &f->entries[next];
            if (!uidl_file_entry_matchable(e))
                continue;
            if (e->key == UIDL_KEY_MESSAGE_ID) {
                argv[argc] = e->msgid;
                argvlen[argc++] = e->msgid_len;
            } else {
                argv[argc] = hfields[hashes];
                argvlen[argc++] = uidl_hash_field(e->size, e->hash, hfields[hashes]);
                hashes++;
            }
            argv[argc] = values[stored];
            argvlen[argc++] = uidl_value_format(e, values[stored], sizeof values[stored]);
            stored++;
        }
        /* Then a size marker per header-hash key (a repeated size is set
         * twice: harmless). */
        for (; next == f->n_entries && sizes_next < f->n_entries && argc < 2 + 2 * HSET_BATCH; sizes_next++) {
            const struct uidl_file_entry *e = &f->entries[sizes_next];
            if (e->key != UIDL_KEY_HEADER_HASH)
                continue;
            argv[argc] = hfields[hashes];
            argvlen[argc++] = uidl_size_field(e->size, hfields[hashes]);
            hashes++;
            argv[argc] = "1";
            argvlen[argc++] = 1;
        }
        if (argc > 2) {
            ok = redisAppendCommandArgv(a->redis, argc, argv, argvlen) == REDIS_OK;
            queued++;
        }
    }
    const char *exec[] = { "EXEC" };
    ok = ok && redisAppendCommandArgv(a->redis, 1, exec, NULL) == REDIS_OK;
    queued++;

    /* Every queued reply must be read, even after a failure, to find EXEC's. */
    const char *failure = NULL;
    char failure_text[256] = "";
    for (size_t i = 0; ok && i < queued; i++) {
        redisReply *r = NULL;
        if (redisGetReply(a->redis, (void **)&r) != REDIS_OK || !r) {
            failure = a->redis->errstr[0] ? a->redis->errstr : "no reply";
            ok = false;
            break;
        }
        bool last = i + 1 == queued;
        if (r->type == REDIS_REPLY_ERROR && !failure_text[0])
            snprintf(failure_text, sizeof failure_text, "%s", r->str);
        else if (last && r->type != REDIS_REPLY_ARRAY && !failure_text[0])
            snprintf(failure_text, sizeof failure_text, "EXEC: transaction not run");
        else if (last)
            for (size_t k = 0; k < r->elements && !failure_text[0]; k++)
                if (r->element[k]->type == REDIS_REPLY_ERROR)
                    snprintf(failure_text, sizeof failure_text, "%s", r->element[k]->str);
        freeReplyObject(r);
    }
    if (ok && failure_text[0]) {
        failure = failure_text;
        ok = false;
    }
    if (!ok)
        snprintf(failure_out, failure_cap, "%s", failure ? failure : a->redis->errstr);
    free(values);
    free(hfields);
    free(argv);
    free(argvlen);
    return ok;
}

/* One transaction on one key: in a cluster, on the master serving it, sent
 * again whole when the cluster refused it for a slot on the move. False
 * after reporting. */
static bool store(struct admin *a, const char *key, const struct uidl_file *f)
{
    char failure[256];
    unsigned tries = 0;
    do {
        if (a->cluster && !admin_cluster_route(a, key, strlen(key)))
            return false;
        if (store_once(a, key, f, failure, sizeof failure))
            return true;
    } while (failure[0] && a->cluster && admin_cluster_again(a, failure, &tries));
    if (failure[0])
        admin_error("redis: %s", failure);
    return false;
}

static void report_stored(struct admin *a, const char *user, const char *name, const struct uidl_file *f)
{
    size_t unmatched = f->n_entries - f->n_matchable;
    if (a->json) {
        struct json_writer w;
        json_init(&w, a->out);
        json_object_begin(&w);
        json_key(&w, "user");
        json_cstring(&w, user);
        json_key(&w, "entries");
        json_u64(&w, f->n_entries);
        json_key(&w, "stored");
        json_u64(&w, f->n_matchable);
        json_key(&w, "by_message_id");
        json_u64(&w, f->keys.by_message_id);
        json_key(&w, "by_header_hash");
        json_u64(&w, f->keys.by_header_hash);
        json_key(&w, "unmatched");
        json_array_begin(&w);
        for (size_t i = 0; i < f->n_entries; i++) {
            const struct uidl_file_entry *e = &f->entries[i];
            if (uidl_file_entry_matchable(e))
                continue;
            json_object_begin(&w);
            json_key(&w, "line");
            json_u64(&w, e->line);
            json_key(&w, "uidl");
            json_string(&w, e->uidl, e->uidl_len);
            json_key(&w, "message_id");
            if (e->msgid_len)
                json_string(&w, e->msgid, e->msgid_len);
            else
                json_null(&w);
            json_key(&w, "reason");
            json_cstring(&w, e->has_hash ? "duplicate header hash and size"
                             : e->msgid_len ? "duplicate message-id" : "no message-id and no header hash");
            if (e->has_hash || e->msgid_len) {
                json_key(&w, "other_line");
                json_u64(&w, e->has_hash ? e->same_hash_line : e->same_msgid_line);
            }
            json_object_end(&w);
        }
        json_array_end(&w);
        json_object_end(&w);
        json_finish(&w);
        return;
    }
    text_write(a->out, user, strlen(user));
    fprintf(a->out, ": %zu legacy UIDL%s stored (%zu by Message-ID, %zu by header hash)\n", f->n_matchable,
            f->n_matchable == 1 ? "" : "s", f->keys.by_message_id, f->keys.by_header_hash);
    if (unmatched == 0)
        return;
    fprintf(a->out, "%zu cannot be matched (a client downloads those messages again):\n", unmatched);
    for (size_t i = 0; i < f->n_entries; i++) {
        const struct uidl_file_entry *e = &f->entries[i];
        if (uidl_file_entry_matchable(e))
            continue;
        fprintf(a->out, "  %s:%zu: uidl %.*s: ", name, e->line, (int)e->uidl_len, e->uidl);
        if (e->has_hash)
            fprintf(a->out, "same header hash and size as line %zu\n", e->same_hash_line);
        else if (e->msgid_len)
            fprintf(a->out, "same Message-ID as line %zu, no header hash\n", e->same_msgid_line);
        else
            fputs("no Message-ID, no header hash\n", a->out);
    }
}

static int uidl_import(struct admin *a, int argc, char **argv)
{
    if (argc != 3)
        return admin_usage_error("uidl", "uidl import needs USER and FILE");
    char user[LOGIN_USER_MAX + 1], key[REDIS_KEY_MAX];
    if (!admin_user_parse(argv[1], user))
        return admin_bad_user("uidl");
    redis_key(key, REDIS_KEY_UIDL, user, NULL);
    const char *path = argv[2];
    const char *name = strcmp(path, "-") == 0 ? "stdin" : path;

    size_t len;
    char *data = read_file(path, &len);
    if (!data)
        return ADMIN_USAGE;
    struct uidl_file f;
    if (!uidl_file_parse(data, len, &f)) {
        admin_error("out of memory");
        free(data);
        return ADMIN_USAGE;
    }
    int status = ADMIN_OK;
    if (f.n_errors > 0) {
        report_errors(name, &f);
        status = ADMIN_USAGE;
    } else if (f.n_entries == 0) {
        admin_error("%s: no entries, nothing stored", name);
        status = ADMIN_USAGE;
    }
    if (status == ADMIN_OK)
        status = admin_connect(a);
    if (status == ADMIN_OK)
        status = store(a, key, &f) ? ADMIN_OK : ADMIN_UNAVAILABLE;
    if (status == ADMIN_OK)
        report_stored(a, user, name, &f);
    uidl_file_free(&f);
    free(data);
    return status;
}

/* One stored entry, checked by writing it as an import line and parsing that:
 * export prints only what import takes back. line is that line. */
struct exported {
    const char *uidl;
    size_t uidl_len;
    uint32_t size;
    char *line;                     /* owned */
    size_t line_len;
    const char *msgid;              /* the field, for a Message-ID key */
    size_t msgid_len;
    const char *hash;               /* the hex, for a header-hash key */
};

/* " size N" markers are no entries: import writes them again. */
static bool is_size_marker(const struct admin_field *field)
{
    return field->name_len > 6 && memcmp(field->name, " size ", 6) == 0;
}

static bool check_entry(const struct admin_field *field, struct exported *out)
{
    size_t uidl_len;
    uint32_t size;
    if (!uidl_value_parse(field->value, field->value_len, &uidl_len, &size))
        return false;
    if (field->name_len > UIDL_MSGID_MAX)
        return false;
    size_t cap = UIDL_VALUE_MAX + 2 + UIDL_HASH_HEX_LEN + 3 * UIDL_MSGID_MAX + 2;
    char *line = malloc(cap);
    if (!line)
        return false;
    int n;
    static const char hdr[] = " hdr ";
    size_t hdr_len = sizeof hdr - 1;
    if (field->name_len > hdr_len && memcmp(field->name, hdr, hdr_len) == 0) {
        const char *sp = memchr(field->name + hdr_len, ' ', field->name_len - hdr_len);
        if (!sp) {
            free(line);
            return false;
        }
        n = snprintf(line, cap, "%.*s %.*s -", (int)field->value_len, field->value,
                     (int)(field->name + field->name_len - sp - 1), sp + 1);
    } else {
        n = snprintf(line, cap, "%.*s - ", (int)field->value_len, field->value);
        if (n > 0)
            n += (int)uidl_msgid_encode(field->name, field->name_len, line + n, cap - (size_t)n);
    }
    struct uidl_file f;
    bool ok = n > 0 && (size_t)n < cap && uidl_file_parse(line, (size_t)n, &f);
    if (ok) {
        const struct uidl_file_entry *e = f.n_entries == 1 ? &f.entries[0] : NULL;
        ok = f.n_errors == 0 && e && (e->has_hash ? e->size == size : e->msgid_len == field->name_len);
        uidl_file_free(&f);
    }
    if (!ok) {
        free(line);
        return false;
    }
    bool by_hash = field->name[0] == ' ';
    *out = (struct exported){ field->value, uidl_len, size, line, (size_t)n,
                              by_hash ? NULL : field->name, by_hash ? 0 : field->name_len,
                              by_hash ? field->name + field->name_len - UIDL_HASH_HEX_LEN : NULL };
    return true;
}

static int by_uidl(const void *pa, const void *pb)
{
    const struct exported *a = pa, *b = pb;
    int c = memcmp(a->uidl, b->uidl, a->uidl_len < b->uidl_len ? a->uidl_len : b->uidl_len);
    return c ? c : (a->uidl_len > b->uidl_len) - (a->uidl_len < b->uidl_len);
}

static int uidl_export(struct admin *a, int argc, char **argv)
{
    char user[LOGIN_USER_MAX + 1], key[REDIS_KEY_MAX];
    int status = admin_begin_user_command(a, argc, argv, "uidl", user);
    if (status != ADMIN_OK)
        return status;
    redis_key(key, REDIS_KEY_UIDL, user, NULL);

    const char *cmd[] = { "HGETALL", key };
    redisReply *r = admin_command(a, 2, cmd, NULL);
    if (!r)
        return ADMIN_UNAVAILABLE;
    struct admin_field *fields;
    size_t n;
    if (!admin_hash_fields(r, &fields, &n)) {
        freeReplyObject(r);
        return ADMIN_UNAVAILABLE;
    }
    struct exported *rows = n ? malloc(n * sizeof *rows) : NULL;
    if (n == 0) {
        admin_error("no legacy UIDLs stored for user %s", user);
        status = ADMIN_NOT_FOUND;
    } else if (!rows) {
        admin_error("out of memory");
        status = ADMIN_UNAVAILABLE;
    }
    size_t kept = 0;
    for (size_t i = 0; status == ADMIN_OK && i < n; i++) {
        if (is_size_marker(&fields[i]))
            continue;
        if (check_entry(&fields[i], &rows[kept]))
            kept++;
        else
            admin_error("skipping a malformed entry in %s (field of %zu bytes)", key, fields[i].name_len);
    }
    if (status == ADMIN_OK) {
        qsort(rows, kept, sizeof *rows, by_uidl);
        struct json_writer w;
        json_init(&w, a->out);
        if (a->json) {
            json_object_begin(&w);
            json_key(&w, "user");
            json_cstring(&w, user);
            json_key(&w, "entries");
            json_array_begin(&w);
        }
        for (size_t i = 0; i < kept; i++) {
            if (a->json) {
                json_object_begin(&w);
                json_key(&w, "uidl");
                json_string(&w, rows[i].uidl, rows[i].uidl_len);
                json_key(&w, "size");
                json_u64(&w, rows[i].size);
                json_key(&w, "message_id");
                if (rows[i].msgid)
                    json_string(&w, rows[i].msgid, rows[i].msgid_len);
                else
                    json_null(&w);
                json_key(&w, "header_hash");
                if (rows[i].hash)
                    json_string(&w, rows[i].hash, UIDL_HASH_HEX_LEN);
                else
                    json_null(&w);
                json_object_end(&w);
            } else {
                fprintf(a->out, "%.*s\n", (int)rows[i].line_len, rows[i].line);
            }
        }
        if (a->json) {
            json_array_end(&w);
            json_object_end(&w);
            json_finish(&w);
        }
    }
    for (size_t i = 0; i < kept; i++)
        free(rows[i].line);
    free(rows);
    free(fields);
    freeReplyObject(r);
    return status;
}

static int uidl_del(struct admin *a, int argc, char **argv)
{
    char user[LOGIN_USER_MAX + 1], key[REDIS_KEY_MAX];
    int status = admin_begin_user_command(a, argc, argv, "uidl", user);
    if (status != ADMIN_OK)
        return status;
    redis_key(key, REDIS_KEY_UIDL, user, NULL);

    const char *hlen[] = { "HLEN", key };
    redisReply *r = admin_command(a, 2, hlen, NULL);
    if (!r)
        return ADMIN_UNAVAILABLE;
    unsigned long long entries = 0;
    bool ok = admin_reply_u64(r, &entries);
    freeReplyObject(r);
    if (!ok) {
        admin_error("redis: HLEN: unexpected reply");
        return ADMIN_UNAVAILABLE;
    }
    if (entries == 0) {
        admin_error("no legacy UIDLs stored for user %s", user);
        return ADMIN_NOT_FOUND;
    }
    const char *del[] = { "DEL", key };
    r = admin_command(a, 2, del, NULL);
    if (!r)
        return ADMIN_UNAVAILABLE;
    freeReplyObject(r);
    if (a->json) {
        struct json_writer w;
        json_init(&w, a->out);
        json_object_begin(&w);
        json_key(&w, "user");
        json_cstring(&w, user);
        json_key(&w, "removed");
        json_u64(&w, entries);
        json_object_end(&w);
        json_finish(&w);
    } else {
        text_write(a->out, user, strlen(user));
        fprintf(a->out, ": %llu legacy UIDL%s removed\n", entries, entries == 1 ? "" : "s");
    }
    return ADMIN_OK;
}

static const struct admin_subcommand uidl_commands[] = {
    { "import", uidl_import },
    { "export", uidl_export },
    { "del", uidl_del },
};

int admin_uidl_main(struct admin *a, int argc, char **argv)
{
    return admin_dispatch(a, "uidl", uidl_commands, sizeof uidl_commands / sizeof uidl_commands[0],
                          argc, argv);
}
