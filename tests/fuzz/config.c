/* Fuzz target: the configuration loader (proxy/config.h).
 *
 * The input is written to a temporary file and loaded with config_load(). It
 * must never crash or leak, a loaded config must satisfy the invariants the
 * rest of the program relies on, and a failure must come with a message that
 * does not repeat the Redis password.
 *
 * config_load() reads files named in the config (certificates, CA file) and
 * resolves the upstream host. A fuzz run must not send a DNS query or block,
 * so a first pass over the same file with the same libinih sees every value
 * config_load() will see, and the input is skipped unless every upstream host
 * is a numeric loopback address (which getaddrinfo() answers without a query)
 * and every file named is absent or a small regular file (not a device, FIFO
 * or /proc file that could block or never end).
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "config_value.h"
#include "fuzz_input.h"
#include "login_name.h"

/* Larger files are not certificates; OpenSSL would read them to the end. */
#define SAFE_FILE_MAX (1024 * 1024)

/* The input goes to a file that is unlinked as soon as it is made and read
 * back through /proc/self/fd: a crash (abort() skips atexit handlers) leaves
 * no file behind. */
static char config_path[64];   /* "/proc/self/fd/" and a file descriptor */
static int config_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char tmpl[PATH_MAX];   /* the mkstemp() template */
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    int n = snprintf(tmpl, sizeof tmpl, "%s/popgate-fuzz-config-XXXXXX", dir);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof tmpl);
    config_fd = mkstemp(tmpl);
    FUZZ_CHECK(config_fd >= 0 && unlink(tmpl) == 0);
    n = snprintf(config_path, sizeof config_path, "/proc/self/fd/%d", config_fd);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof config_path);
    return 0;
}

struct scan {
    bool unsafe;
    /* Every section, key and value except Redis passwords, '\n'-separated,
     * and the Redis passwords, NUL-separated: for the secrecy check. */
    struct fuzz_log others;
    struct fuzz_log passwords;
};

static bool loopback_host(const char *v)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (v[0] == '\0')
        return true;
    if (inet_pton(AF_INET, v, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, v, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static bool safe_file(const char *path)
{
    struct stat st;

    if (path[0] == '\0' || stat(path, &st) != 0)
        return true;
    return S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= SAFE_FILE_MAX;
}

static int scan_entry(void *user, const char *section, const char *key, const char *value)
{
    struct scan *s = user;

    /* [upstream] and every [mapping NAME] name hosts popgate resolves. */
    bool names_hosts = !strcmp(section, "upstream") || !strncmp(section, "mapping ", 8);
    if (names_hosts && !strcmp(key, "host") && !loopback_host(value))
        s->unsafe = true;
    if (names_hosts && !strcmp(key, "legacy_pop3")) {
        char host[256];
        unsigned port;
        s->unsafe |= config_parse_host_port(value, host, sizeof host, &port) && !loopback_host(host);
    }
    if ((!strcmp(section, "server") && (!strcmp(key, "tls_cert") || !strcmp(key, "tls_key"))) ||
        (names_hosts && (!strcmp(key, "ca_file") || !strcmp(key, "legacy_ca_file"))))
        s->unsafe |= !safe_file(value);

    fuzz_log_put(&s->others, section, strlen(section));
    fuzz_log_put(&s->others, "\n", 1);
    fuzz_log_put(&s->others, key, strlen(key));
    fuzz_log_put(&s->others, "\n", 1);
    if (!strcmp(section, "redis") && !strcmp(key, "password")) {
        fuzz_log_put(&s->passwords, value, strlen(value) + 1);
    } else {
        fuzz_log_put(&s->others, value, strlen(value));
        fuzz_log_put(&s->others, "\n", 1);
    }
    return 1;
}

/* A password that cannot turn up in an error message by coincidence: long,
 * holding a character no fixed message, OpenSSL or resolver text has, and
 * not part of any other section, key or value (which messages may echo). */
static bool distinctive_secret(const char *pw, const struct fuzz_log *others)
{
    size_t n = strlen(pw);
    return n >= 8 && strpbrk(pw, "!$^*~|<>?`") != NULL &&
           (others->len == 0 || memmem(others->p, others->len, pw, n) == NULL);
}

static void count_warning(const char *msg, void *arg)
{
    FUZZ_CHECK(msg != NULL && msg[0] != '\0');
    (*(unsigned *)arg)++;
}

static void check_config(const struct config *c)
{
    FUZZ_CHECK(c->refs == 1);
    FUZZ_CHECK(c->n_listeners >= 1 && c->n_listeners <= CONFIG_MAX_LISTENERS);
    for (unsigned i = 0; i < c->n_listeners; i++) {
        const struct listen_spec *l = &c->listeners[i];
        FUZZ_CHECK(l->addrlen == sizeof(struct sockaddr_in) || l->addrlen == sizeof(struct sockaddr_in6));
        FUZZ_CHECK(memchr(l->text, '\0', sizeof l->text) != NULL);
        if (l->implicit_tls)
            FUZZ_CHECK(c->server_tls != NULL);
    }
    FUZZ_CHECK(c->n_mappings >= 1 && c->n_finished == c->n_mappings && c->mappings[0].name[0] == '\0');
    /* Cluster seeds stand alone, and each is a numeric address. */
    FUZZ_CHECK(c->redis.n_cluster <= REDIS_SENTINEL_SLOTS);
    if (c->redis.n_cluster > 0)
        FUZZ_CHECK(!c->redis.address_set && c->redis.n_sentinels == 0 && c->redis.database == 0);
    for (unsigned i = 0; i < c->redis.n_cluster; i++)
        FUZZ_CHECK(c->redis.cluster[i][0] != '/' && redis_store_address_valid(c->redis.cluster[i]));
    for (size_t i = 0; i < c->n_mappings; i++) {
        const struct mapping *m = &c->mappings[i];
        FUZZ_CHECK(m->imap.host[0] != '\0' && memchr(m->imap.host, '\0', sizeof m->imap.host));
        FUZZ_CHECK(m->imap.port >= 1 && m->imap.port <= 65535);
        FUZZ_CHECK(m->upstream.addrlen > 0 && m->upstream.addrlen <= sizeof m->upstream.addr);
        FUZZ_CHECK(m->upstream.verify_name == m->imap.verify_name && m->imap.verify_name[0] != '\0');
        FUZZ_CHECK((m->upstream.tls == UPSTREAM_TLS_NONE) == (m->upstream.tls_ctx == NULL));
        FUZZ_CHECK(m->n_folders >= 1 && m->n_folders <= MAPPING_MAX_FOLDERS);
        for (unsigned f = 0; f < m->n_folders; f++)
            FUZZ_CHECK(m->folders[f][0] != '\0' && memchr(m->folders[f], '\0', sizeof m->folders[f]));
        FUZZ_CHECK((unsigned)m->policy.kind < VIEW_KIND_COUNT);
        FUZZ_CHECK((unsigned)m->policy.on_retr < ON_RETR_COUNT);
        FUZZ_CHECK((unsigned)m->policy.on_dele < ON_DELE_COUNT);
        FUZZ_CHECK(config_mapping_named(c, m->name) == m);
    }
    /* Every listed user and domain leads to its mapping. */
    for (size_t i = 0; i < c->n_users; i++)
        FUZZ_CHECK(c->users[i].mapping < c->n_mappings &&
                   config_find_mapping(c, c->users[i].name) == &c->mappings[c->users[i].mapping]);
    FUZZ_CHECK(c->preauth_timeout > 0 && c->idle_timeout > 0);
    FUZZ_CHECK(c->max_connections >= 1 && c->max_bad_commands >= 1);
    /* Logins are split at the separator: it must never be part of a device. */
    FUZZ_CHECK(c->device_separator > ' ' && c->device_separator <= '~');
    FUZZ_CHECK(!device_name_valid(&c->device_separator, 1));
    FUZZ_CHECK(c->device_ttl > 0 && c->lock_ttl >= 3);

    unsigned warnings = 0;
    FUZZ_CHECK(config_warnings(c, count_warning, &warnings) == warnings);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(config_fd, 0) == 0);
    FUZZ_CHECK(pwrite(config_fd, data, size, 0) == (ssize_t)size);

    struct scan scan = { 0 };
    (void)ini_parse(config_path, scan_entry, &scan);
    if (scan.unsafe)
        goto out;

    char err[512];   /* as the daemon's: room for "line N: [section] key: reason" */
    memset(err, 0x55, sizeof err);
    struct config *c = config_load(config_path, err, sizeof err);
    if (c != NULL) {
        check_config(c);
        FUZZ_CHECK(config_ref(c) == c && c->refs == 2);
        config_unref(c);
        config_unref(c);
        goto out;
    }
    size_t err_len = strnlen(err, sizeof err);
    FUZZ_CHECK(err_len > 0 && err_len < sizeof err);
    for (size_t off = 0; off < scan.passwords.len;) {
        const char *pw = (const char *)scan.passwords.p + off;
        if (distinctive_secret(pw, &scan.others))
            FUZZ_CHECK(strstr(err, pw) == NULL);
        off += strlen(pw) + 1;
    }
out:
    fuzz_log_free(&scan.others);
    fuzz_log_free(&scan.passwords);
    return 0;
}
