/* reply_code.c: see reply_code.h. */
#include "reply_code.h"

static const struct pop3_error_reply throttled = {
    "-ERR [SYS/TEMP] The mail server is limiting access to this mailbox; try again later.", false,
    "upstream-throttled", false
};

struct pop3_error_reply reply_for_login_failure(enum imap_result r)
{
    switch (r) {
    case IMAP_RESULT_AUTH_FAILED:
    case IMAP_RESULT_INVALID_ARGUMENT:
        return (struct pop3_error_reply){ "-ERR [AUTH] Authentication failed.", true, "auth", false };
    case IMAP_RESULT_EXPIRED:
        return (struct pop3_error_reply){ "-ERR [SYS/PERM] Account is not available.", true, "expired", true };
    case IMAP_RESULT_THROTTLED:
        return throttled;
    case IMAP_RESULT_IN_USE:
        /* RFC 2449 8.1.2: another session holds the maildrop, as for our own device lock. */
        return (struct pop3_error_reply){ "-ERR [IN-USE] The mailbox is in use by another session.", false,
                                          "upstream-in-use", false };
    case IMAP_RESULT_OK:
    case IMAP_RESULT_NO:
    case IMAP_RESULT_BAD:
    case IMAP_RESULT_UNAVAILABLE:
    case IMAP_RESULT_IO_ERROR:
    case IMAP_RESULT_TLS_VERIFY_ERROR:
    case IMAP_RESULT_TIMEOUT:
    case IMAP_RESULT_PROTOCOL_ERROR:
    case IMAP_RESULT_OVERQUOTA:
        break;
    }
    return (struct pop3_error_reply){ "-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.",
                                      false, "upstream", false };
}

struct pop3_error_reply reply_for_upstream_backoff(void)
{
    return (struct pop3_error_reply){
        "-ERR [SYS/TEMP] The mail server asked to slow down for this mailbox; try again later.", false,
        "upstream-backoff", false
    };
}

struct pop3_error_reply reply_for_fetch_failure(enum imap_result r)
{
    if (r == IMAP_RESULT_THROTTLED)
        return throttled;
    return (struct pop3_error_reply){ "-ERR [SYS/TEMP] Message could not be read.", false, "fetch", false };
}

struct pop3_error_reply reply_for_commit_failure(enum imap_result r)
{
    if (r == IMAP_RESULT_OVERQUOTA)
        return (struct pop3_error_reply){
            "-ERR [SYS/PERM] The mail server's quota is exhausted; deleted messages cannot be moved.", false,
            "overquota", true
        };
    if (r == IMAP_RESULT_THROTTLED)
        return (struct pop3_error_reply){
            "-ERR [SYS/TEMP] The mail server is limiting access; nothing was removed, try again later.", false,
            "upstream-throttled", false
        };
    return (struct pop3_error_reply){
        "-ERR [SYS/TEMP] Could not save the session's changes; nothing was removed, try again later.", false,
        "commit-failed", false
    };
}

uint32_t upstream_backoff_ms(uint32_t suggested_ms, uint32_t default_s, uint32_t max_s)
{
    uint64_t cap = (uint64_t)max_s * 1000;
    uint64_t ms = suggested_ms ? suggested_ms : (uint64_t)default_s * 1000;
    if (cap == 0 || ms == 0)
        return 0;
    if (ms < 1000)
        ms = 1000;
    return (uint32_t)(ms < cap ? ms : cap);
}
