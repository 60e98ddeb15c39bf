/* jwt_assertion: the signed JWT of the jwt-bearer grant (RFC 7523 section
 * 2.1), as Google's service accounts with domain-wide delegation use it.
 *
 *   header  {"alg":"RS256","typ":"JWT"[,"kid":<private_key_id>]}
 *   claims  {"iss":<client email>,"sub":<user>,"scope":<scope>,
 *            "aud":<token URL>,"iat":<now>,"exp":<now + lifetime>}
 *   JWT     base64url(header) "." base64url(claims) "." base64url(RS256 sig)
 *
 * Pure computation with OpenSSL on keys held in memory; reading the key file
 * is the caller's (popgate reads it when the config is loaded, as root-only
 * files are). The private key is a secret: the EVP_PKEY belongs to the
 * caller (EVP_PKEY_free). Error texts name what was wrong, never key bytes.
 * The assertion itself is a credential for an hour: wipe it after use. */
#ifndef POPGATE_JWT_ASSERTION_H
#define POPGATE_JWT_ASSERTION_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

/* Largest key file read (a service-account JSON is ~2.3 KB). */
#define JWT_KEY_FILE_MAX   (64 * 1024)
#define JWT_CLAIM_MAX      1024   /* each of iss, sub, scope, aud, kid */
/* Longest assertion, with its NUL: claims at their bounds, escaped, and a
 * 4096-bit signature. */
#define JWT_ASSERTION_MAX  8192
/* Google's limit, and RFC 7523's advice: an assertion lives an hour at most. */
#define JWT_LIFETIME_DEFAULT 3600

struct jwt_signing_key {
    EVP_PKEY *pkey;               /* an RSA private key of >= 2048 bits */
    char client_email[JWT_CLAIM_MAX + 1];  /* from a service-account JSON; "" from a PEM */
    char key_id[JWT_CLAIM_MAX + 1];        /* private_key_id, "" when absent */
};

/* Load a key from the bytes of a file: a Google service-account JSON key
 * ({"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----...",
 * "client_email":...,"private_key_id":...}) or a PEM private key. On failure
 * returns false with a short reason in err (cap errlen), key zeroed. */
bool jwt_signing_key_load(const char *data, size_t len, struct jwt_signing_key *key, char *err, size_t errlen);
void jwt_signing_key_free(struct jwt_signing_key *key);

struct jwt_claims {
    const char *iss;     /* the service account's client_email */
    const char *sub;     /* the user to act for */
    const char *scope;   /* space-separated; NULL or "" to leave the claim out */
    const char *aud;     /* the token endpoint URL */
    time_t iat;
    unsigned lifetime;   /* seconds; 0 means JWT_LIFETIME_DEFAULT; at most 3600 */
};

/* Build and sign; NUL-terminated into out (capacity cap). False on a claim
 * over JWT_CLAIM_MAX, an output that does not fit, or a signing failure; a
 * short reason in err. */
bool jwt_assertion_sign(const struct jwt_signing_key *key, const struct jwt_claims *claims, char *out,
                        size_t cap, char *err, size_t errlen);

#endif
