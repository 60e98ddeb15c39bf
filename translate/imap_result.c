/* imap_result.c: see imap_result.h. */
#include "imap_result.h"

#include <stddef.h>

const char *imap_result_name(enum imap_result r)
{
    static const char *const names[] = {
        [IMAP_RESULT_OK] = "ok",
        [IMAP_RESULT_NO] = "no",
        [IMAP_RESULT_BAD] = "bad",
        [IMAP_RESULT_AUTH_FAILED] = "auth-failed",
        [IMAP_RESULT_UNAVAILABLE] = "unavailable",
        [IMAP_RESULT_EXPIRED] = "expired",
        [IMAP_RESULT_IO_ERROR] = "io-error",
        [IMAP_RESULT_TLS_VERIFY_ERROR] = "tls-verify-error",
        [IMAP_RESULT_TIMEOUT] = "timeout",
        [IMAP_RESULT_PROTOCOL_ERROR] = "protocol-error",
        [IMAP_RESULT_INVALID_ARGUMENT] = "invalid-argument",
        [IMAP_RESULT_THROTTLED] = "throttled",
        [IMAP_RESULT_IN_USE] = "in-use",
        [IMAP_RESULT_OVERQUOTA] = "overquota",
    };
    if ((size_t)r < sizeof names / sizeof names[0] && names[r])
        return names[r];
    return "unknown";
}
