/* Unit tests for translate/pop3_status: every line the gateway sends a client
 * outside message text is framed whole, up to RFC 2449's 512 octets with
 * CRLF, and a longer one is refused whole (never cut, never sent as part). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pop3_status.h"

static size_t format(char out[POP3_STATUS_LINE_MAX], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = pop3_status_vformat(out, fmt, ap);
    va_end(ap);
    return n;
}

static void test_line_gets_crlf(void **state)
{
    (void)state;
    char out[POP3_STATUS_LINE_MAX];
    assert_int_equal(pop3_status_line(out, "+OK Logged in."), 16);
    assert_memory_equal(out, "+OK Logged in.\r\n", 16);
    assert_int_equal(pop3_status_line(out, ""), 2);
    assert_memory_equal(out, "\r\n", 2);
}

static void test_longest_line_fits(void **state)
{
    (void)state;
    char text[POP3_STATUS_LINE_MAX - 1];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    char out[POP3_STATUS_LINE_MAX];
    assert_int_equal(pop3_status_line(out, text), POP3_STATUS_LINE_MAX);
    assert_memory_equal(out + POP3_STATUS_LINE_MAX - 2, "\r\n", 2);
    assert_int_equal(format(out, "%s", text), POP3_STATUS_LINE_MAX);
    assert_memory_equal(out, text, sizeof text - 1);
}

/* One octet over: refused, and nothing written (the caller then closes the
 * session loudly instead of sending a cut line or none). */
static void test_one_over_is_refused_whole(void **state)
{
    (void)state;
    char text[POP3_STATUS_LINE_MAX];
    memset(text, 'y', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    char out[POP3_STATUS_LINE_MAX];
    memset(out, '#', sizeof out);
    assert_int_equal(pop3_status_line(out, text), 0);
    assert_int_equal(format(out, "+OK %s", text + 4), 0);
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], '#');
}

static void test_formatted_numbers(void **state)
{
    (void)state;
    char out[POP3_STATUS_LINE_MAX];
    size_t n = format(out, "+OK %u messages (%llu octets)", 4294967295u, 18446744073709551615ull);
    const char want[] = "+OK 4294967295 messages (18446744073709551615 octets)\r\n";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(out, want, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_gets_crlf),
        cmocka_unit_test(test_longest_line_fits),
        cmocka_unit_test(test_one_over_is_refused_whole),
        cmocka_unit_test(test_formatted_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
