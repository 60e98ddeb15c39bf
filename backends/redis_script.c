/* redis_script.c: see redis_script.h. */
#include "redis_script.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "hex.h"

struct built_script {
    bool tried;        /* built, or failed to: not tried again */
    char *source;      /* NULL when building failed */
    char sha1[REDIS_SCRIPT_SHA1_HEX + 1];
};

static struct built_script built[LUA_SCRIPTS];

/* A bounded text being written; ok turns false, for good, on overflow. */
struct text {
    char *p;
    size_t len, cap;
    bool ok;
};

__attribute__((format(printf, 2, 3)))
static void append(struct text *t, const char *fmt, ...)
{
    if (!t->ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= t->cap - t->len)
        t->ok = false;
    else
        t->len += (size_t)n;
}

/* A Lua local's name as lua_scripts.c writes them: [a-z_][a-z0-9_]*. */
static bool lua_name_valid(const char *name)
{
    if (!name || !name[0] || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return false;
    return true;
}

/* "local a, b = KEYS[1], KEYS[2]\n"; nothing for no names. */
static void name_line(struct text *t, const char *table, const char *const *names, unsigned n)
{
    if (n == 0)
        return;
    append(t, "local ");
    for (unsigned i = 0; i < n; i++) {
        if (!lua_name_valid(names[i]))
            t->ok = false;
        append(t, "%s%s", i ? ", " : "", t->ok ? names[i] : "");
    }
    append(t, " =");
    for (unsigned i = 0; i < n; i++)
        append(t, "%s %s[%u]", i ? "," : "", table, i + 1);
    append(t, "\n");
}

static size_t names_size(const char *const *names, unsigned n)
{
    size_t size = 0;
    for (unsigned i = 0; i < n; i++)
        size += (names[i] ? strlen(names[i]) : 0) + sizeof ", KEYS[4294967295], ";
    return size;
}

static bool build(const struct lua_script *s, struct built_script *b)
{
    size_t cap = sizeof "local first_extra = 4294967295\n" + 2 * sizeof "local  =\n" +
                 names_size(s->keys, s->n_keys) + names_size(s->args, s->n_args) + strlen(s->body) + 1;
    struct text t = { malloc(cap), 0, cap, true };
    if (!t.p)
        return false;
    name_line(&t, "KEYS", s->keys, s->n_keys);
    name_line(&t, "ARGV", s->args, s->n_args);
    if (s->extra_args)
        append(&t, "local first_extra = %u\n", s->n_args + 1);
    append(&t, "%s", s->body);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (!t.ok || !EVP_Digest(t.p, t.len, md, &md_len, EVP_sha1(), NULL) || md_len * 2 != REDIS_SCRIPT_SHA1_HEX) {
        free(t.p);
        return false;
    }
    hex_encode(md, md_len, b->sha1);
    b->source = t.p;
    return true;
}

static const struct built_script *built_script(enum lua_script_id id)
{
    const struct lua_script *s = lua_script(id);
    if (!s)
        return NULL;
    struct built_script *b = &built[id];
    if (!b->tried) {
        b->tried = true;
        build(s, b);
    }
    return b->source ? b : NULL;
}

const char *redis_script_source(enum lua_script_id id)
{
    const struct built_script *b = built_script(id);
    return b ? b->source : NULL;
}

const char *redis_script_sha1(enum lua_script_id id)
{
    const struct built_script *b = built_script(id);
    return b ? b->sha1 : NULL;
}

struct redis_request *redis_script_call(struct redis_store *store, enum lua_script_id id,
                                        const char *const *keys, const char *const *args,
                                        const size_t *arg_lens, size_t n_extra, redis_reply_cb *cb, void *arg)
{
    const struct lua_script *s = lua_script(id);
    const char *sha1 = redis_script_sha1(id);
    if (!s || !sha1 || (n_extra > 0 && !s->extra_args))
        return NULL;
    enum { FIXED = 3 };  /* EVALSHA <sha1> <number of keys> */
    size_t n_args = s->n_args + n_extra;
    if (n_args > (size_t)INT_MAX - FIXED - s->n_keys)
        return NULL;
    size_t argc = FIXED + s->n_keys + n_args;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *argvlen = malloc(argc * sizeof *argvlen);
    struct redis_request *req = NULL;
    if (argv && argvlen) {
        char n_keys[16];
        snprintf(n_keys, sizeof n_keys, "%u", s->n_keys);
        const char *fixed[FIXED] = { "EVALSHA", sha1, n_keys };
        for (size_t i = 0; i < FIXED; i++) {
            argv[i] = fixed[i];
            argvlen[i] = strlen(fixed[i]);
        }
        for (size_t i = 0; i < s->n_keys; i++) {
            argv[FIXED + i] = keys[i];
            argvlen[FIXED + i] = strlen(keys[i]);
        }
        for (size_t i = 0; i < n_args; i++) {
            argv[FIXED + s->n_keys + i] = args[i];
            argvlen[FIXED + s->n_keys + i] = arg_lens ? arg_lens[i] : strlen(args[i]);
        }
        req = redis_store_script(store, id, cb, arg, (int)argc, argv, argvlen);
    }
    free(argv);
    free(argvlen);
    return req;
}

static void ignore_reply(const redisReply *r, const char *error, void *arg)
{
    (void)r; (void)error; (void)arg;
}

void redis_script_send(struct redis_store *store, enum lua_script_id id, const char *const *keys,
                       const char *const *args, const size_t *arg_lens, size_t n_extra)
{
    redis_script_call(store, id, keys, args, arg_lens, n_extra, ignore_reply, NULL);
}
