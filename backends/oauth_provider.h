/* oauth_provider: where a provider's token endpoints are and which scopes
 * and IMAP host go with them (`oauth2_provider` in a mapping).
 *
 * Presets, from the providers' published documentation:
 * - microsoft365 (Microsoft identity platform v2.0):
 *     token  https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token
 *     device https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode
 *     delegated scope (device, refresh):
 *            "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
 *            (offline_access is what makes Microsoft issue a refresh token)
 *     app scope (client_credentials, IMAP.AccessAsApp consented by the
 *            tenant admin): "https://outlook.office365.com/.default"
 *     IMAP   outlook.office365.com:993
 *   {tenant} is required (a tenant id or domain; "organizations" works for
 *   the device grant, the app grant needs the real tenant).
 * - google:
 *     token  https://oauth2.googleapis.com/token
 *     device https://oauth2.googleapis.com/device/code
 *     scope  "https://mail.google.com/" (both)
 *     IMAP   imap.gmail.com:993
 *   Google's device flow accepts only a short list of scopes, and its
 *   documentation does not list https://mail.google.com/ among them: with
 *   Google the supported grant is jwt_bearer (a service account with
 *   domain-wide delegation). The device preset is kept for generic use of the
 *   endpoint; Google answers invalid_scope, which oauth_client classifies as
 *   refused with that code in the reason.
 * - generic: every URL and scope comes from the config (oauth2_token_url,
 *   oauth2_device_url, oauth2_scope); the IMAP host is the mapping's.
 *
 * Plain data, no I/O: filled once when the config is loaded. */
#ifndef POPGATE_OAUTH_PROVIDER_H
#define POPGATE_OAUTH_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#define OAUTH_PROVIDER_URL_MAX    512
#define OAUTH_PROVIDER_SCOPE_MAX  512
#define OAUTH_PROVIDER_HOST_MAX   255
#define OAUTH_PROVIDER_TENANT_MAX 128
#define OAUTH_PROVIDER_ERROR_MAX  160

enum oauth_provider_kind {
    OAUTH_PROVIDER_MICROSOFT365,
    OAUTH_PROVIDER_GOOGLE,
    OAUTH_PROVIDER_GENERIC,
};

enum oauth_grant {
    OAUTH_GRANT_DEVICE,              /* per-user consent, then refresh_token grants */
    OAUTH_GRANT_CLIENT_CREDENTIALS,  /* Microsoft IMAP.AccessAsApp */
    OAUTH_GRANT_JWT_BEARER,          /* RFC 7523, Google service accounts */
};

struct oauth_provider {
    enum oauth_provider_kind kind;
    char token_url[OAUTH_PROVIDER_URL_MAX + 1];
    char device_url[OAUTH_PROVIDER_URL_MAX + 1];          /* "" when the provider has none */
    char user_scope[OAUTH_PROVIDER_SCOPE_MAX + 1];        /* device and refresh grants */
    char app_scope[OAUTH_PROVIDER_SCOPE_MAX + 1];         /* client_credentials, jwt_bearer */
    char imap_host[OAUTH_PROVIDER_HOST_MAX + 1];          /* "" for generic */
    unsigned imap_port;                                   /* 993; 0 for generic */
};

/* "microsoft365" / "google" / "generic" and back. */
bool oauth_provider_kind_parse(const char *name, enum oauth_provider_kind *out);
const char *oauth_provider_kind_name(enum oauth_provider_kind kind);
bool oauth_grant_parse(const char *name, enum oauth_grant *out);   /* "device" ... "jwt_bearer" */
const char *oauth_grant_name(enum oauth_grant grant);

/* Fill out from a preset. tenant is required for microsoft365 (letters,
 * digits, '.', '-'), ignored otherwise. For generic, token_url, device_url
 * and scope come from the config (device_url may be NULL or ""; scope is used
 * for both grants); URLs must be https:// (http:// only to 127.0.0.0/8,
 * localhost or [::1], for tests). False with a reason in err (no secret ever
 * goes into these values). */
bool oauth_provider_init(struct oauth_provider *out, enum oauth_provider_kind kind, const char *tenant,
                         const char *token_url, const char *device_url, const char *scope, char *err,
                         size_t errlen);

/* Whether the provider supports the grant (Google has no client_credentials
 * for mail; a device grant needs a device_url). */
bool oauth_provider_supports(const struct oauth_provider *p, enum oauth_grant grant);

#endif
