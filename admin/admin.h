/* admin: what the commands of popgate-admin share: the run's options, its
 * Redis connection, error reporting and the exit statuses.
 *
 * popgate-admin is a short-lived command-line program, not part of the event
 * loop, so it talks to Redis with hiredis's blocking API. It reads popgate's
 * own configuration file (config_load) for the [redis] settings, so it uses
 * the same server, password, database, timeout and Sentinel master as popgate.
 *
 * Every command checks all of its arguments before it connects: a usage error
 * or bad input exits ADMIN_USAGE with nothing written.
 */
#ifndef POPGATE_ADMIN_H
#define POPGATE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <hiredis/hiredis.h>

#include "config.h"

#define ADMIN_PROG "popgate-admin"
#define ADMIN_DEFAULT_CONFIG "/etc/popgate/popgate.conf"

/* Exit statuses (popgate-admin(8) documents them). */
enum admin_exit {
    ADMIN_OK = 0,
    ADMIN_USAGE = 1,        /* usage error or bad input: nothing was written */
    ADMIN_NOT_FOUND = 2,    /* the user, device or entry named has no keys */
    ADMIN_UNAVAILABLE = 3,  /* Redis unreachable, or it answered with an error */
};

struct admin {
    const char *config_path;
    bool json;              /* --json: one JSON document on stdout */
    bool new_device;        /* --new: device mark-all for a device not seen yet */
    /* Commands print here, never to stdout: main copies it to stdout only when
     * the command succeeded, so a failure never leaves half a document. */
    FILE *out;
    struct config *config;  /* loaded by admin_connect, released by admin_close */
    redisContext *redis;    /* likewise; in a cluster, the node last used */
    struct admin_cluster *cluster;  /* NULL without [redis] cluster (admin_cluster.h) */
};

/* "popgate-admin: <message>" on stderr. */
void admin_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports a usage error with the command group's synopsis (admin_usage) and
 * returns ADMIN_USAGE. */
int admin_usage_error(const char *group, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The usage error for a USER argument admin_user_parse() refused. */
int admin_bad_user(const char *group);

/* The opening of a subcommand that takes exactly one USER (argv[1]): checks
 * the arguments, parses the user into user[LOGIN_USER_MAX + 1] and connects.
 * ADMIN_OK, or the status to return (the error is reported). */
int admin_begin_user_command(struct admin *a, int argc, char **argv, const char *group, char *user);

/* A command group's subcommands ("map set", "device list", ...). */
struct admin_subcommand {
    const char *name;
    int (*run)(struct admin *a, int argc, char **argv);
};
/* Runs the subcommand argv[0] names, or reports a usage error. */
int admin_dispatch(struct admin *a, const char *group, const struct admin_subcommand *table, size_t n,
                   int argc, char **argv);

/* Prints the synopsis of one command group ("map", "device", "uidl", "stats"),
 * or of all of them when group is NULL or unknown. */
void admin_usage(FILE *f, const char *group);

/* Loads the configuration and connects to Redis (AUTH, SELECT, the Sentinel
 * master). Returns ADMIN_OK, or the exit status after reporting why not:
 * ADMIN_USAGE for a configuration that does not load, ADMIN_UNAVAILABLE for
 * Redis. */
int admin_connect(struct admin *a);
void admin_close(struct admin *a);

/* One command. argvlen may be NULL (lengths by strlen). Returns the reply, to
 * be freed with freeReplyObject, or NULL after reporting a connection failure,
 * a timeout or an error reply: the caller then exits ADMIN_UNAVAILABLE. */
redisReply *admin_command(struct admin *a, int argc, const char **argv, const size_t *argvlen);

/* An integer reply's value, or the value of a decimal bulk string; false for
 * anything else. */
bool admin_reply_u64(const redisReply *r, unsigned long long *out);

/* Every key matching pattern (SCAN MATCH, so the server is never blocked),
 * sorted by bytes, each once. */
struct admin_keys {
    char **keys;   /* NUL-terminated; a key holding a NUL byte is left out */
    size_t n;
};
/* False after reporting the failure (exit ADMIN_UNAVAILABLE). */
bool admin_scan(struct admin *a, const char *pattern, struct admin_keys *out);
void admin_keys_free(struct admin_keys *k);

/* The field/value pairs of an HGETALL reply, sorted by field. The pointers
 * point into the reply: valid as long as it is. */
struct admin_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
/* *out is malloc'ed (free it); false when the reply is not a hash's pairs or
 * memory ran out, after reporting it. *n is 0 for a missing key. */
bool admin_hash_fields(const redisReply *r, struct admin_field **out, size_t *n);
/* The value of a field, NUL-terminated into buf (cap bytes, cut to fit), or
 * NULL when the field is absent. */
const char *admin_field_get(const struct admin_field *f, size_t n, const char *name, char *buf, size_t cap);

/* The command groups; argv[0] is the subcommand ("set", "list", ...). */
int admin_map_main(struct admin *a, int argc, char **argv);
int admin_device_main(struct admin *a, int argc, char **argv);
int admin_uidl_main(struct admin *a, int argc, char **argv);
int admin_stats_main(struct admin *a, int argc, char **argv);
int admin_oauth_main(struct admin *a, int argc, char **argv);
int admin_app_password_main(struct admin *a, int argc, char **argv);

#endif
