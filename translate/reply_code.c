/* reply_code.c: see reply_code.h. */
#include "reply_code.h"

struct pop3_error_reply reply_for_login_failure(enum imap_result r)
{
    switch (r) {
    case IMAP_RESULT_AUTH_FAILED:
    case IMAP_RESULT_INVALID_ARGUMENT:
        return (struct pop3_error_reply){ "-ERR [AUTH] Authentication failed.", true, "auth" };
    case IMAP_RESULT_EXPIRED:
        return (struct pop3_error_reply){ "-ERR [SYS/PERM] Account is not available.", true, "expired" };
    case IMAP_RESULT_OK:
    case IMAP_RESULT_NO:
    case IMAP_RESULT_BAD:
    case IMAP_RESULT_UNAVAILABLE:
    case IMAP_RESULT_IO_ERROR:
    case IMAP_RESULT_TLS_VERIFY_ERROR:
    case IMAP_RESULT_TIMEOUT:
    case IMAP_RESULT_PROTOCOL_ERROR:
        break;
    }
    return (struct pop3_error_reply){ "-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.",
                                      false, "upstream" };
}
