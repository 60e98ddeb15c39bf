/* reply_code: how an upstream or local condition is told to the POP3 client,
 * with the RFC 2449 / RFC 3206 response codes of DESIGN.md's table. Pure. */
#ifndef POPGATE_REPLY_CODE_H
#define POPGATE_REPLY_CODE_H

#include "imap_client.h"

struct pop3_error_reply {
    const char *line;      /* full reply line without CRLF, e.g. "-ERR [AUTH] Authentication failed." */
    bool delayed;          /* sent only after the auth-failure delay */
    const char *reason;    /* short token for logs and metrics */
};

/* The reply for a failed login step (connect, login, select, listing). */
struct pop3_error_reply reply_for_login_failure(enum imap_result r);

#endif
