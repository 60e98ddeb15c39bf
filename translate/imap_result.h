/* imap_result: how an IMAP operation ended, as the gateway tells it apart.
 * The IMAP client (backends/imap_client.h) reports these; the reply-code
 * table (reply_code.h) turns them into POP3 replies. Pure: no I/O. */
#ifndef POPGATE_IMAP_RESULT_H
#define POPGATE_IMAP_RESULT_H

enum imap_result {
    IMAP_RESULT_OK = 0,
    IMAP_RESULT_NO,                /* tagged NO without a more specific code */
    IMAP_RESULT_BAD,
    IMAP_RESULT_AUTH_FAILED,       /* NO [AUTHENTICATIONFAILED] or plain NO to LOGIN */
    IMAP_RESULT_UNAVAILABLE,       /* NO [UNAVAILABLE], BYE at greeting, ... */
    IMAP_RESULT_EXPIRED,           /* NO [EXPIRED] */
    IMAP_RESULT_IO_ERROR,          /* connect refused, reset, EOF, TLS failure */
    IMAP_RESULT_TLS_VERIFY_ERROR,  /* certificate did not verify or name mismatch */
    IMAP_RESULT_TIMEOUT,
    IMAP_RESULT_PROTOCOL_ERROR,    /* garbage, over-long line, literal overrun */
    IMAP_RESULT_INVALID_ARGUMENT,  /* e.g. credentials with CR, LF or NUL */
    IMAP_RESULT_THROTTLED,         /* the server asks us to slow down: [THROTTLED],
                                      [LIMIT], Office 365's "Request is throttled"
                                      (in a NO, a BAD or a BYE) */
    IMAP_RESULT_IN_USE,            /* NO [INUSE]: someone else holds the mailbox */
    IMAP_RESULT_OVERQUOTA,         /* NO [OVERQUOTA]: the target is over its quota */
};
const char *imap_result_name(enum imap_result r);

#endif
