/* reply_code: how an upstream or local condition is told to the POP3 client,
 * with the RFC 2449 / RFC 3206 response codes of docs/design.md's table. Pure.
 *
 * Provider answers (README "Hosted providers"): a throttle ([THROTTLED],
 * [LIMIT], Office 365's "Request is throttled") is [SYS/TEMP] wherever it
 * comes, [INUSE] at login is [IN-USE], [OVERQUOTA] at QUIT is permanent. */
#ifndef POPGATE_REPLY_CODE_H
#define POPGATE_REPLY_CODE_H

#include <stdbool.h>
#include <stdint.h>

#include "imap_result.h"

struct pop3_error_reply {
    const char *line;      /* full reply line without CRLF, e.g. "-ERR [AUTH] Authentication failed." */
    bool delayed;          /* sent only after the auth-failure delay */
    const char *reason;    /* short token for logs and metrics */
    bool permanent;        /* retrying cannot change it (never [SYS/TEMP]) */
};

/* The reply for a failed login step (connect, login, select, listing). */
struct pop3_error_reply reply_for_login_failure(enum imap_result r);

/* A login refused without contacting the upstream, because it asked for a
 * backoff on this user a moment ago. */
struct pop3_error_reply reply_for_upstream_backoff(void);

/* How long to back off after a throttle answer, in ms: the server's
 * suggestion (0 = none: default_s) up to max_s; at least 1 s, since a POP3
 * client polls no faster. max_s 0 turns the backoff off (0). */
uint32_t upstream_backoff_ms(uint32_t suggested_ms, uint32_t default_s, uint32_t max_s);

/* RETR or TOP could not start (the upstream answered r before any byte). */
struct pop3_error_reply reply_for_fetch_failure(enum imap_result r);

/* An upstream step of QUIT failed with r: [SYS/TEMP] unless retrying cannot
 * help ([OVERQUOTA] on the copy to Trash: permanent, [SYS/PERM]). */
struct pop3_error_reply reply_for_commit_failure(enum imap_result r);

#endif
