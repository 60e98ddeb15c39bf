/* config: the INI configuration file (libinih), validated and resolved.
 *
 * A struct config is immutable once loaded and reference counted: a SIGHUP
 * reload builds a new one for new sessions while running sessions keep the one
 * they started with (config_ref / config_unref). Upstream host names are
 * resolved here, at load time, so no session ever calls a blocking resolver.
 * See README.md "Configuration reference" for every key. */
#ifndef POPGATE_CONFIG_H
#define POPGATE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "auth_throttle.h"
#include "dot_stream.h"
#include "imap_client.h"
#include "log.h"
#include "mapping.h"
#include "proxy_protocol.h"
#include "redis_store.h"
#include "view.h"

#define CONFIG_MAX_LISTENERS 16
#define CONFIG_NAME_MAX 256      /* host names, mailbox names */
#define CONFIG_MAX_TRUSTED 32    /* proxy_trusted networks */
#define CONFIG_PREFETCH_KB_MAX 4096  /* [server] prefetch_kb: 4 MiB per session at most */

struct listen_spec {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool implicit_tls;
    char text[CONFIG_NAME_MAX];  /* as written, for logs */
};

/* What to do when UIDVALIDITY changed and message ids are not EMAILIDs. */
enum uidvalidity_policy { UIDVALIDITY_MARK_ALL_DOWNLOADED = 0, UIDVALIDITY_REDOWNLOAD };

/* One entry of a mapping's users = or domains = list. */
struct mapping_index {
    char *name;                      /* owned */
    size_t mapping;                  /* index into config.mappings */
};

struct config {
    int refs;

    /* [server] */
    struct listen_spec listeners[CONFIG_MAX_LISTENERS];
    unsigned n_listeners;
    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    bool allow_plaintext_auth;
    unsigned max_connections;
    double preauth_timeout;
    double idle_timeout;
    double shutdown_timeout;
    unsigned max_bad_commands;
    double auth_failure_delay;
    unsigned max_connections_per_addr;   /* 0 = no cap */
    struct auth_throttle_limits auth_throttle;
    /* After a throttle answer ([THROTTLED], [LIMIT], "Request is throttled"):
     * how long the user's logins are refused without contacting the upstream,
     * when the server suggests no time, and the cap on a suggested one.
     * Seconds; upstream_backoff_max 0 turns the backoff off. */
    uint32_t upstream_backoff;
    uint32_t upstream_backoff_max;
    /* The node's cache of upstream folder listings (translate/listing_cache.h):
     * MiB in total and per user; 0 in total turns it off. */
    unsigned listing_cache_mb;
    unsigned listing_cache_user_mb;
    /* RETR of small messages: the next small messages of the folder are
     * fetched with it in one UID FETCH and held for the session, at most
     * this many KiB (proxy/session_prefetch.c); 0 turns it off. A message
     * above a quarter of it is never prefetched. */
    unsigned prefetch_kb;
    char run_user[CONFIG_NAME_MAX];      /* drop privileges to it after binding; empty = stay */
    char run_group[CONFIG_NAME_MAX];
    /* Networks whose connections start with a PROXY protocol header (HAProxy). */
    struct proxy_cidr proxy_trusted[CONFIG_MAX_TRUSTED];
    size_t n_proxy_trusted;

    /* [metrics] */
    char metrics_listen[CONFIG_NAME_MAX];   /* "127.0.0.1:9110"; empty = off */
    enum dot_stream_nul nul_bytes;
    enum log_level log_level;

    /* [upstream] and [policy] are mappings[0], the default; each [mapping
     * NAME] section is one more (mapping.h). */
    struct mapping *mappings;
    size_t n_mappings;
    size_t n_finished;               /* mappings holding TLS contexts (config_unref) */
    struct mapping_index *users;     /* exact logins, sorted for bsearch */
    size_t n_users;
    struct mapping_index *domains;   /* domains, sorted for bsearch */
    size_t n_domains;
    /* CAPA before login: the smallest value any mapping has, and " USER"
     * when mappings differ (RFC 2449 section 6); "" = not advertised. */
    char capa_login_delay[40];
    char capa_expire[40];

    /* [redis] */
    struct redis_store_config redis;

    /* [state] */
    char device_separator;
    uint32_t device_ttl;             /* seconds */
    uint32_t lock_ttl;               /* seconds */
    enum uidvalidity_policy uidvalidity_policy;

    SSL_CTX *server_tls;             /* NULL when no certificate is configured */
};

/* Load, validate and resolve. NULL on error, with "file:line: reason" in err.
 * The result has one reference. */
struct config *config_load(const char *path, char *err, size_t err_len);

struct config *config_ref(struct config *c);

/* The mapping for a login (without its #device suffix): exact user, then
 * domain, then the default. Never NULL. */
const struct mapping *config_find_mapping(const struct config *c, const char *user);
/* A mapping by section name ("" is the default); NULL when there is none. */
const struct mapping *config_mapping_named(const struct config *c, const char *name);
void config_unref(struct config *c);

/* Settings that work but weaken security, one line each, for `popgate -t`.
 * Returns the number of warnings written through the callback. */
unsigned config_warnings(const struct config *c, void (*warn)(const char *msg, void *arg), void *arg);

#endif
