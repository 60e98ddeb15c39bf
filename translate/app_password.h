/* app_password: the per-device passwords of `auth = oauth2` mappings, and
 * the one slow derivation a login does with one.
 *
 * An app password is APP_PASSWORD_RAW_LEN (20) random octets = 160 bits,
 * shown as lower-case RFC 4648 base32 in groups of four joined by '-':
 *     "abcd-efgh-ijkl-mnop-qrst-uvwx-yz23-4567"   (39 characters)
 * base32's alphabet has no 0/O, 1/l/I or 8/B pairs to confuse when typing it
 * into a scanner's panel. Typed input is read case-blind, with or without
 * the '-' and spaces.
 *
 * Derivation (app_password_derive), once per login, on a worker thread
 * (work_pool.h), never on the event loop:
 *     Argon2id(password octets, per-device 16-octet random salt) -> 64 octets
 *     verifier = SHA-256(first 32), stored;
 *     KEK      = last 32, never stored: it unwraps the user's data key
 *                (token_envelope.h envelope_unwrap_key).
 * So Redis holds neither the password nor anything that opens the tokens
 * without it. Parameters (APP_PASSWORD_ARGON2_*): t = 2 passes over m = 19
 * MiB, one lane: OWASP's first Argon2id setting (2023). Measured with
 * Debian 12's libargon2 (its portable build) in a release build: about 41 ms
 * of CPU per derivation (thread CPU time, so the figure does not depend on
 * the load of the shared test machine). The password has 160 random bits, so
 * the work factor is not what protects it against guessing; it is what the
 * issue asks (a slow salted hash) at a cost a busy gateway can pay per login:
 * 25 logins/s cost about one core, and each worker thread holds 19 MiB while
 * it derives. The parameters are stored in each record, so raising them
 * later keeps old records valid.
 *
 * Record: what Redis keeps per device, as one printable string:
 *     "v1$<t>$<m KiB>$<lanes>$<salt b64>$<verifier b64>$<wrapped key b64>"
 * The wrapped key is the user's data key sealed under this device's KEK.
 *
 * Secrets: the password, the 64 derived octets and the KEK; every function
 * here wipes its own copies (OPENSSL_cleanse); the caller wipes its buffers.
 * Compare verifiers only with app_password_verifier_equal (constant time). */
#ifndef POPGATE_APP_PASSWORD_H
#define POPGATE_APP_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "token_envelope.h"

#define APP_PASSWORD_RAW_LEN      20
#define APP_PASSWORD_TEXT_LEN     39                          /* 32 base32 + 7 '-' */
#define APP_PASSWORD_TEXT_MAX     (APP_PASSWORD_TEXT_LEN + 1) /* with the NUL */
#define APP_PASSWORD_TYPED_MAX    128                         /* longest typed form read */
#define APP_PASSWORD_SALT_LEN     16
#define APP_PASSWORD_VERIFIER_LEN 32
#define APP_PASSWORD_KEK_LEN      ENVELOPE_KEY_LEN

#define APP_PASSWORD_ARGON2_T     2
#define APP_PASSWORD_ARGON2_M_KIB (19 * 1024)
#define APP_PASSWORD_ARGON2_LANES 1
/* Bounds a stored record may ask for (a tampered record must not make a login
 * allocate gigabytes or loop for minutes). */
#define APP_PASSWORD_ARGON2_T_MAX     10
#define APP_PASSWORD_ARGON2_M_KIB_MAX (256 * 1024)
#define APP_PASSWORD_ARGON2_LANES_MAX 4

/* Longest record string, with the NUL. */
#define APP_PASSWORD_RECORD_MAX 256

struct app_password_record {
    uint32_t t_cost;
    uint32_t m_cost_kib;
    uint32_t lanes;
    uint8_t salt[APP_PASSWORD_SALT_LEN];
    uint8_t verifier[APP_PASSWORD_VERIFIER_LEN];
    uint8_t wrapped_key[ENVELOPE_WRAPPED_KEY_LEN];
};

enum app_password_status {
    APP_PASSWORD_OK,
    APP_PASSWORD_WRONG,        /* not this device's password (or not an app password's shape) */
    APP_PASSWORD_BAD_RECORD,   /* the stored record does not parse or its parameters are out of bounds */
    APP_PASSWORD_CRYPTO_ERROR, /* Argon2, OpenSSL or the random generator failed */
};

const char *app_password_status_text(enum app_password_status s);

/* A new random password, NUL-terminated, in the grouped form above. */
bool app_password_generate(char out[APP_PASSWORD_TEXT_MAX]);

/* Typed text -> the 20 octets. False if it is not 32 base32 characters once
 * '-' and spaces are dropped (then raw is wiped). */
bool app_password_decode(const char *typed, size_t len, uint8_t raw[APP_PASSWORD_RAW_LEN]);

/* The slow step: Argon2id with the record's parameters and salt. Thread-safe,
 * no I/O; allocates m_cost_kib KiB for its duration. */
enum app_password_status app_password_derive(const struct app_password_record *rec,
                                             const uint8_t raw[APP_PASSWORD_RAW_LEN],
                                             uint8_t verifier[APP_PASSWORD_VERIFIER_LEN],
                                             uint8_t kek[APP_PASSWORD_KEK_LEN]);

bool app_password_verifier_equal(const uint8_t a[APP_PASSWORD_VERIFIER_LEN],
                                 const uint8_t b[APP_PASSWORD_VERIFIER_LEN]);

/* Issue a device's password (popgate-admin app-password add): generate it,
 * a salt, derive with the default parameters, wrap data_key under the KEK for
 * (user, device). text gets the password to show once; rec the record to
 * store. Slow (one derivation). */
enum app_password_status app_password_issue(const char *user, const char *device,
                                            const uint8_t data_key[ENVELOPE_KEY_LEN],
                                            char text[APP_PASSWORD_TEXT_MAX],
                                            struct app_password_record *rec);

/* A login: decode typed, derive, compare, unwrap. APP_PASSWORD_OK gives the
 * user's data key; anything else leaves data_key zero. Slow: run it on a
 * worker thread. A typed text that is not an app password's shape is
 * APP_PASSWORD_WRONG at once, without the derivation (its shape is no
 * secret; the session's failed-login delay applies either way). */
enum app_password_status app_password_check(const struct app_password_record *rec, const char *user,
                                            const char *device, const char *typed, size_t typed_len,
                                            uint8_t data_key[ENVELOPE_KEY_LEN]);

/* The record as a NUL-terminated string (out capacity APP_PASSWORD_RECORD_MAX)
 * and back. Parsing checks every field and the parameter bounds. */
bool app_password_record_format(const struct app_password_record *rec, char *out, size_t cap);
enum app_password_status app_password_record_parse(const char *text, size_t len,
                                                   struct app_password_record *rec);

#endif
