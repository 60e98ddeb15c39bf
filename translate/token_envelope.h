/* token_envelope: secrets sealed for storage in Redis (AES-256-GCM).
 *
 * Pure computation on the caller's buffers, with OpenSSL (libcrypto); the
 * only input from outside is RAND_bytes() for keys and nonces. It sits in
 * translate/ because it does no I/O a test would have to set up.
 *
 * Keys
 * - A per-user data key (ENVELOPE_KEY_LEN random octets) seals that user's
 *   refresh and access tokens.
 * - The data key itself is stored only wrapped: sealed under a key-encryption
 *   key (KEK), once per device with an app password (the KEK comes from
 *   app_password_derive), or under the key named by the config for the app
 *   grants.
 *
 * Byte format of a sealed value (binary; base64_encode it for text):
 *     version (1 octet, ENVELOPE_VERSION) || nonce (12, random) ||
 *     ciphertext (as long as the plaintext) || GCM tag (16)
 * A random 96-bit nonce per seal: with at most a few million seals per key
 * (one per token refresh) the collision chance stays far below NIST's 2^-32.
 *
 * Associated data binds a sealed value to what it is for and whose it is, so
 * a value copied to another user's key, or from the refresh-token field into
 * the access-token field, fails to open:
 *     "popgate-envelope" || version || purpose || 0x00 || user [|| 0x00 || device]
 *
 * Errors: every failure leaves nothing of the plaintext in out (wiped).
 * ENVELOPE_AUTH_FAILED does not say why (wrong key, tampered, other user or
 * purpose): GCM cannot tell, and neither should a log line. */
#ifndef POPGATE_TOKEN_ENVELOPE_H
#define POPGATE_TOKEN_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_VERSION   1
#define ENVELOPE_KEY_LEN   32
#define ENVELOPE_NONCE_LEN 12
#define ENVELOPE_TAG_LEN   16
#define ENVELOPE_OVERHEAD  (1 + ENVELOPE_NONCE_LEN + ENVELOPE_TAG_LEN)
#define ENVELOPE_SEALED_LEN(n) ((n) + ENVELOPE_OVERHEAD)
/* Largest plaintext: a token (OAUTH_ACCESS_TOKEN_MAX is 8192) with room. */
#define ENVELOPE_PLAIN_MAX 16384
/* A wrapped data key. */
#define ENVELOPE_WRAPPED_KEY_LEN ENVELOPE_SEALED_LEN(ENVELOPE_KEY_LEN)

/* Purposes (the field a value is stored in). */
#define ENVELOPE_PURPOSE_REFRESH_TOKEN "refresh_token"
#define ENVELOPE_PURPOSE_ACCESS_TOKEN  "access_token"
#define ENVELOPE_PURPOSE_DATA_KEY      "data_key"

enum envelope_status {
    ENVELOPE_OK,
    ENVELOPE_TOO_LONG,      /* plaintext over ENVELOPE_PLAIN_MAX, or out too small */
    ENVELOPE_MALFORMED,     /* shorter than ENVELOPE_OVERHEAD, or an unknown version */
    ENVELOPE_AUTH_FAILED,   /* wrong key, altered bytes, another user/purpose/device */
    ENVELOPE_CRYPTO_ERROR,  /* OpenSSL or its random generator failed */
};

const char *envelope_status_text(enum envelope_status s);

/* A fresh random key (data key or KEK). */
enum envelope_status envelope_new_key(uint8_t key[ENVELOPE_KEY_LEN]);

/* Seal plain[0..len) for (purpose, user) into out (capacity cap, at least
 * ENVELOPE_SEALED_LEN(len)); *out_len gets ENVELOPE_SEALED_LEN(len).
 * purpose and user are NUL-terminated; user is the state identity
 * (login_name's state_user). */
enum envelope_status envelope_seal(const uint8_t key[ENVELOPE_KEY_LEN], const char *purpose, const char *user,
                                   const uint8_t *plain, size_t len, uint8_t *out, size_t cap,
                                   size_t *out_len);

/* Open sealed[0..len) into out (capacity cap, len - ENVELOPE_OVERHEAD is
 * enough); *out_len gets the plaintext length (0 on failure). */
enum envelope_status envelope_open(const uint8_t key[ENVELOPE_KEY_LEN], const char *purpose, const char *user,
                                   const uint8_t *sealed, size_t len, uint8_t *out, size_t cap,
                                   size_t *out_len);

/* Wrap a data key under a KEK for (user, device): the associated data names
 * the device, so one device's wrapped key cannot stand in for another's.
 * device may be NULL (or "") for the app grants' single wrap. */
enum envelope_status envelope_wrap_key(const uint8_t kek[ENVELOPE_KEY_LEN], const char *user, const char *device,
                                       const uint8_t data_key[ENVELOPE_KEY_LEN],
                                       uint8_t out[ENVELOPE_WRAPPED_KEY_LEN]);
enum envelope_status envelope_unwrap_key(const uint8_t kek[ENVELOPE_KEY_LEN], const char *user, const char *device,
                                         const uint8_t wrapped[ENVELOPE_WRAPPED_KEY_LEN],
                                         uint8_t data_key[ENVELOPE_KEY_LEN]);

#endif
