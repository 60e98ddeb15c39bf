/* Unit tests for translate/reply_code: which POP3 reply (RFC 2449 / 3206
 * response code) each upstream outcome becomes, and the backoff after a
 * provider's throttle answer (README "Hosted providers"). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "reply_code.h"

static void assert_prefix(const char *line, const char *prefix)
{
    if (strncmp(line, prefix, strlen(prefix)) != 0)
        fail_msg("'%s' does not start with '%s'", line, prefix);
}

static void test_login_failures(void **state)
{
    (void)state;
    struct pop3_error_reply r = reply_for_login_failure(IMAP_RESULT_AUTH_FAILED);
    assert_prefix(r.line, "-ERR [AUTH] ");
    assert_true(r.delayed);
    r = reply_for_login_failure(IMAP_RESULT_EXPIRED);
    assert_prefix(r.line, "-ERR [SYS/PERM] ");
    assert_true(r.permanent);
    /* Throttles ([THROTTLED], [LIMIT], "Request is throttled"): temporary,
     * and not a wrong password, so no auth-failure delay. */
    r = reply_for_login_failure(IMAP_RESULT_THROTTLED);
    assert_prefix(r.line, "-ERR [SYS/TEMP] ");
    assert_false(r.delayed);
    assert_false(r.permanent);
    assert_string_equal(r.reason, "upstream-throttled");
    /* [INUSE]: the mailbox is held elsewhere, as our own device lock says. */
    r = reply_for_login_failure(IMAP_RESULT_IN_USE);
    assert_prefix(r.line, "-ERR [IN-USE] ");
    assert_false(r.delayed);
    /* [UNAVAILABLE], [OVERQUOTA] and the connection faults: temporary. */
    static const enum imap_result temp[] = {
        IMAP_RESULT_UNAVAILABLE, IMAP_RESULT_OVERQUOTA, IMAP_RESULT_IO_ERROR, IMAP_RESULT_TIMEOUT,
        IMAP_RESULT_PROTOCOL_ERROR, IMAP_RESULT_TLS_VERIFY_ERROR, IMAP_RESULT_NO, IMAP_RESULT_BAD,
    };
    for (size_t i = 0; i < sizeof temp / sizeof temp[0]; i++) {
        r = reply_for_login_failure(temp[i]);
        assert_prefix(r.line, "-ERR [SYS/TEMP] ");
        assert_false(r.delayed);
        assert_false(r.permanent);
    }
    r = reply_for_upstream_backoff();
    assert_prefix(r.line, "-ERR [SYS/TEMP] ");
    assert_false(r.delayed);
    assert_string_equal(r.reason, "upstream-backoff");
}

static void test_fetch_and_commit_failures(void **state)
{
    (void)state;
    struct pop3_error_reply t = reply_for_fetch_failure(IMAP_RESULT_THROTTLED);
    struct pop3_error_reply n = reply_for_fetch_failure(IMAP_RESULT_NO);
    assert_prefix(t.line, "-ERR [SYS/TEMP] ");
    assert_prefix(n.line, "-ERR [SYS/TEMP] ");
    assert_string_not_equal(t.line, n.line);
    /* [OVERQUOTA] on the copy to Trash: retrying cannot help. */
    struct pop3_error_reply q = reply_for_commit_failure(IMAP_RESULT_OVERQUOTA);
    assert_prefix(q.line, "-ERR [SYS/PERM] ");
    assert_true(q.permanent);
    static const enum imap_result temp[] = {
        IMAP_RESULT_THROTTLED, IMAP_RESULT_NO, IMAP_RESULT_IO_ERROR, IMAP_RESULT_TIMEOUT,
        IMAP_RESULT_IN_USE, IMAP_RESULT_UNAVAILABLE,
    };
    for (size_t i = 0; i < sizeof temp / sizeof temp[0]; i++) {
        struct pop3_error_reply r = reply_for_commit_failure(temp[i]);
        assert_prefix(r.line, "-ERR [SYS/TEMP] ");
        assert_false(r.permanent);
    }
}

static void test_backoff_length(void **state)
{
    (void)state;
    /* The server's suggestion, in ms, up to the cap. */
    assert_int_equal(upstream_backoff_ms(299609, 60, 900), 299609);
    assert_int_equal(upstream_backoff_ms(299609, 60, 120), 120000);
    assert_int_equal(upstream_backoff_ms(UINT32_MAX, 60, 86400), 86400000);
    /* None suggested: the default. */
    assert_int_equal(upstream_backoff_ms(0, 60, 900), 60000);
    assert_int_equal(upstream_backoff_ms(0, 6000, 900), 900000);
    /* At least a second; a POP3 client polls no faster. */
    assert_int_equal(upstream_backoff_ms(5, 60, 900), 1000);
    /* Off: no cap, or no default and no suggestion. */
    assert_int_equal(upstream_backoff_ms(299609, 60, 0), 0);
    assert_int_equal(upstream_backoff_ms(0, 0, 900), 0);
    assert_int_equal(upstream_backoff_ms(1500, 0, 900), 1500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_failures),
        cmocka_unit_test(test_fetch_and_commit_failures),
        cmocka_unit_test(test_backoff_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
