/* mapping: where a user's mail lives and how the gateway treats it.
 *
 * The config's [upstream] and [policy] sections are the default mapping;
 * each [mapping NAME] section is another, chosen for the users and domains it
 * lists (users = ..., domains = ...) and inheriting every key it does not set
 * from [upstream] and [policy]. A user's Redis override may name a mapping
 * (`popgate-admin map set USER mapping=NAME`). Matching, most specific first:
 * the override, the exact user (login without its #device suffix, ASCII
 * case-insensitive), the domain after the last '@' (case-insensitive), the
 * default. See README.md "Mappings".
 *
 * Mappings live inside a struct config and share its lifetime (config_unref
 * frees them); a session holds its config, so its mapping stays valid across a
 * SIGHUP reload. */
#ifndef POPGATE_MAPPING_H
#define POPGATE_MAPPING_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "imap_client.h"
#include "login_transform.h"
#include "mapping_oauth.h"
#include "view.h"

#define MAPPING_NAME_MAX 64
#define MAPPING_HOST_MAX 256
#define MAPPING_MAX_FOLDERS 8          /* folders forming one maildrop */
#define MAPPING_FOLDER_MAX 200         /* one IMAP mailbox name, bytes */

/* EXPIRE (RFC 2449 section 6.7): how long a device keeps seeing a message it
 * retrieved. Not advertised unless configured. */
enum mapping_expire { EXPIRE_UNSET = 0, EXPIRE_NEVER, EXPIRE_DAYS };

/* Whether RFC822.SIZE can be trusted for LIST (README "IMAP servers"). */
enum mapping_exact_sizes {
    EXACT_SIZES_AUTO = 0,  /* measure where the server is known to estimate (Exchange) */
    EXACT_SIZES_NO,        /* trust RFC822.SIZE; correct it after the first RETR */
    EXACT_SIZES_YES,       /* measure every message once before it is first listed */
};

/* One TCP/TLS endpoint, resolved at config load (never in a session). */
struct mapping_endpoint {
    char host[MAPPING_HOST_MAX];
    unsigned port;                     /* 0 until set or defaulted */
    enum upstream_tls tls;
    char ca_file[PATH_MAX];
    bool verify;
    char verify_name[MAPPING_HOST_MAX];   /* "" = host */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    SSL_CTX *tls_ctx;                  /* owned; NULL with tls = none */
};

struct mapping {
    char name[MAPPING_NAME_MAX];       /* "" for the default mapping */

    /* upstream IMAP */
    struct mapping_endpoint imap;
    struct upstream_endpoint upstream; /* what imap_client_new() takes; points into imap */
    struct login_transform login;
    char folders[MAPPING_MAX_FOLDERS][MAPPING_FOLDER_MAX];
    unsigned n_folders;
    char trash_folder[MAPPING_FOLDER_MAX];   /* on_dele = trash goes here; "" = the \Trash special use */
    enum mapping_exact_sizes exact_sizes;

    /* how popgate logs in upstream: the client's password, or an OAuth 2.0
     * access token (the client then logs in with an app password) */
    enum mapping_auth auth;
    struct oauth_settings oauth;

    /* the legacy POP3 server of a lazy migration (legacy_pop3 = host:port) */
    bool has_legacy;
    struct mapping_endpoint legacy;
    double legacy_timeout;             /* how long a login waits for it, seconds */

    /* policy and limits */
    struct view_policy policy;
    unsigned max_sessions_per_user;    /* 0 = no cap */
    uint32_t login_delay;              /* seconds between a device's logins; 0 = off */
    enum mapping_expire expire;
    uint32_t expire_days;              /* EXPIRE_DAYS: 0 = removed at the QUIT that retrieved it */
};

/* [upstream] and [policy] defaults (docs/design.md "Limits and defaults"). */
void mapping_defaults(struct mapping *m);

/* Applies one key of [upstream], of [policy], or of either (a [mapping]
 * section takes both). False for an unknown key or an invalid value; a key
 * that fails may have changed nothing but its own field. */
bool mapping_set_upstream(struct mapping *m, const char *key, const char *value);
bool mapping_set_policy(struct mapping *m, const char *key, const char *value);
bool mapping_set(struct mapping *m, const char *key, const char *value);

/* After every key: fills defaults that depend on others (port from tls,
 * verify_name from host), checks the mapping is complete, resolves host names
 * (blocking: config load only) and builds TLS contexts. `share` is a finished
 * mapping whose TLS context may be reused when the settings are the same
 * (NULL: none). False with a reason in err. */
bool mapping_finish(struct mapping *m, const struct mapping *share, char *err, size_t err_len);

/* Releases what mapping_finish() built. */
void mapping_release(struct mapping *m);

/* The CAPA line values: "LOGIN-DELAY 900", "EXPIRE 30" / "EXPIRE NEVER".
 * Write into out (cap bytes); false when the mapping does not advertise it. */
bool mapping_capa_login_delay(const struct mapping *m, char *out, size_t cap);
bool mapping_capa_expire(const struct mapping *m, char *out, size_t cap);

#endif
