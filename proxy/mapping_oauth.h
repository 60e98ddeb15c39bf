/* mapping_oauth: a mapping's upstream login with OAuth 2.0 (auth = oauth2):
 * the provider, the grant, the client and its secret or key, parsed from the
 * mapping's oauth2_* keys and checked at load (popgate -t). README.md
 * "Microsoft 365 and Google Workspace" is the manual.
 *
 * Providers fill what they document: microsoft365 the Entra ID v2.0
 * endpoints of oauth2_tenant and the IMAP scopes, google its token, device
 * and revocation endpoints and https://mail.google.com/; generic takes
 * oauth2_token_url (and oauth2_device_url for the device grant, optional
 * oauth2_revoke_url) and oauth2_scope. Every oauth2_*_url and oauth2_scope
 * may also be set with a provider (tests point them at a loopback server).
 *
 * Secrets: oauth2_client_secret_file and oauth2_key_file (a Google
 * service-account JSON key or a PEM private key) are read once at load; each must be a regular file of root (or of popgate's own user)
 * readable by nobody else (mode 0600 or 0400), as ssh refuses a key others
 * can read. The secret and the key live in the struct (the config's memory)
 * and are wiped when it is released. No error text quotes them.
 *
 * Lifetime: inside a struct mapping (mapping.h). */
#ifndef POPGATE_MAPPING_OAUTH_H
#define POPGATE_MAPPING_OAUTH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "jwt_assertion.h"
#include "oauth_client.h"
#include "oauth_provider.h"

#define OAUTH_SETTING_MAX 512          /* a URL, a client id, a scope list */
#define OAUTH_TENANT_MAX 128
#define OAUTH_SECRET_MAX 1024          /* a client secret (Entra: 40 octets) */

enum mapping_auth { MAPPING_AUTH_PASSWORD = 0, MAPPING_AUTH_OAUTH2 };

struct oauth_settings {
    bool provider_set;
    enum oauth_provider_kind provider_kind;
    enum oauth_grant grant;
    char client_id[OAUTH_SETTING_MAX];
    char client_secret_file[PATH_MAX];
    char key_file[PATH_MAX];
    char tenant[OAUTH_TENANT_MAX];
    char token_url[OAUTH_SETTING_MAX];
    char device_url[OAUTH_SETTING_MAX];
    char revoke_url[OAUTH_SETTING_MAX];   /* "" = the provider has none (Microsoft) */
    char scope[OAUTH_SETTING_MAX];
    /* Filled by oauth_settings_finish(): the endpoints and scopes in use. */
    struct oauth_provider provider;
    char client_secret[OAUTH_SECRET_MAX]; /* "" = a public client */
    struct jwt_signing_key jwt_key;       /* jwt_bearer only; pkey owned */
    struct oauth_identity identity;       /* what oauth_client takes; points into this struct */
};

/* One oauth2_* key (without checks that need the others). False for an
 * unknown key or an invalid value. */
bool oauth_settings_set(struct oauth_settings *o, const char *key, const char *value);

/* After every key: the provider's endpoints and scope where not set, the
 * combination checked (a grant the provider does not offer, a missing
 * client id, secret or key), URLs https (plain http only to a loopback
 * address, for tests), the secret and key files read. `what` names the
 * section for the error ("[mapping m365]"). False with a reason in err. */
bool oauth_settings_finish(struct oauth_settings *o, const char *what, char *err, size_t err_len);

/* Wipes the secret and frees the key (the identity is unusable after). */
void oauth_settings_release(struct oauth_settings *o);

/* The scope a grant asks for: the user scope (device, refresh) or the app
 * scope (client_credentials, jwt_bearer). */
const char *oauth_settings_scope(const struct oauth_settings *o);

/* Reads a secret file that only its owner (root or this process's user)
 * can read: into buf (cap bytes, NUL-terminated, one trailing newline
 * dropped). False with a reason that names the file but never its content. */
bool oauth_read_secret_file(const char *path, char *buf, size_t cap, size_t *len, char *err, size_t err_len);

#endif
