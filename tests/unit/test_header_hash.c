/* Unit tests for translate/header_hash: which differences between two
 * copies of a header change its hash and which do not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "header_hash.h"

static void hash_of(const char *h, size_t len, char out[HEADER_HASH_HEX_LEN + 1])
{
    assert_true(header_hash_of(h, len, out));
    assert_int_equal(strlen(out), HEADER_HASH_HEX_LEN);
}

static void assert_same(const char *a, const char *b)
{
    char x[HEADER_HASH_HEX_LEN + 1], y[HEADER_HASH_HEX_LEN + 1];
    hash_of(a, strlen(a), x);
    hash_of(b, strlen(b), y);
    if (strcmp(x, y) != 0)
        fail_msg("should hash alike:\n%s\n---\n%s", a, b);
}

static void assert_differ(const char *a, const char *b)
{
    char x[HEADER_HASH_HEX_LEN + 1], y[HEADER_HASH_HEX_LEN + 1];
    hash_of(a, strlen(a), x);
    hash_of(b, strlen(b), y);
    if (strcmp(x, y) == 0)
        fail_msg("should hash differently:\n%s\n---\n%s", a, b);
}

#define BASE "From: a@x\r\nSubject: hello\r\nMessage-ID: <m@x>\r\n"

static void test_line_ends_and_blanks(void **state)
{
    (void)state;
    assert_same(BASE "\r\n", "From: a@x\nSubject: hello\nMessage-ID: <m@x>\n\n");
    assert_same(BASE "\r\n", BASE);                       /* no blank line at the end */
    assert_same(BASE "\r\nbody\r\n", BASE "\r\nother body\r\n");
    assert_same(BASE, "From:a@x\r\nSubject:  hel lo\t\r\nMessage-ID: <m@x>\r\n");
    /* Folds count as sent (both servers send the same ones). */
    assert_differ(BASE, "From: a@x\r\nSubject:\r\n hello\r\nMessage-ID: <m@x>\r\n");
    /* A continuation of blanks only is dropped (Zimbra), a folded one kept. */
    assert_same(BASE, "From: a@x\r\n \r\nSubject: hello\r\nMessage-ID: <m@x>\r\n");
    assert_differ(BASE, "From: a@x\r\nSubject: hello\r\n there\r\nMessage-ID: <m@x>\r\n");
    assert_differ(BASE, "From: a@x\r\nSubject: hullo\r\nMessage-ID: <m@x>\r\n");
    assert_differ(BASE, "From: a@x\r\nMessage-ID: <m@x>\r\nSubject: hello\r\n");
}

static void test_skipped_and_kept_fields(void **state)
{
    (void)state;
    assert_same(BASE, "Return-Path: <b@y>\r\n" BASE);
    assert_same(BASE, "X-UIDL: 123\r\nstatus: RO\r\nX-Keywords: $x\r\n" BASE "Content-Length: 5\r\n");
    assert_same(BASE, "Return-Path : <b@y>\r\n  continued\r\n" BASE);
    /* Received and Delivered-To tell deliveries apart: kept. */
    assert_differ(BASE, "Received: from a by b; Mon, 1 Jan 2026 00:00:00 +0000\r\n" BASE);
    assert_differ(BASE, "Delivered-To: u@x\r\n" BASE);
    /* Lines that are no field, with their continuations, are left out. */
    assert_same(BASE, "From a@x Mon Jan  1 00:00:00 2026\r\n  cont\r\n" BASE);
    assert_same(BASE, " leading continuation\r\n" BASE);
    assert_same(BASE, "Bad Name: x\r\n" BASE);
    assert_same(BASE, ": no name\r\n" BASE);
}

static void test_end_of_header(void **state)
{
    (void)state;
    assert_same(BASE, BASE "\r\nX-After: blank line\r\n");
    /* A line of CRs only ends it too (Dovecot's CR CR LF rule). */
    assert_same(BASE, BASE "\r\r\nX-After: cr cr lf\r\n");
    assert_same(BASE, BASE "\r\r\r\nX-After: more crs\r\n");
}

static void test_octets_servers_replace(void **state)
{
    (void)state;
    /* NUL, 8-bit and control octets and '?' become one '?' per run. */
    static const char a[] = "Subject: caf\xc3\xa9 x\r\n";
    static const char b[] = "Subject: caf? x\r\n";
    static const char c[] = "Subject: caf\0\0 x\r\n";
    char x[HEADER_HASH_HEX_LEN + 1], y[HEADER_HASH_HEX_LEN + 1], z[HEADER_HASH_HEX_LEN + 1];
    hash_of(a, sizeof a - 1, x);
    hash_of(b, sizeof b - 1, y);
    hash_of(c, sizeof c - 1, z);
    assert_string_equal(x, y);
    assert_string_equal(x, z);
    assert_differ("Subject: caf? x\r\n", "Subject: caf?x? x\r\n");
    /* A CR inside a line is such an octet; one before the LF is not. */
    assert_same("Subject: a\rb\r\n", "Subject: a?b\r\n");
    assert_same("Subject: ab\r\r\n", "Subject: ab?\r\n");
}

/* Split anywhere, fed in pieces: the same digest as one piece. */
static void test_pieces(void **state)
{
    (void)state;
    static const char h[] = "Return-Path: <b@y>\r\nReceived: from a\r\n\tby b\r\n"
                            "Subject: caf\xc3\xa9 ?? x\r\r\nX-Long-Name-Here : v\r\n \r\n"
                            "From a@x no colon\r\nMessage-ID: <m@x>\r\r\n\r\nbody\r\n";
    char whole[HEADER_HASH_HEX_LEN + 1];
    hash_of(h, sizeof h - 1, whole);
    struct header_hash hh;
    assert_true(header_hash_init(&hh));
    for (size_t step = 1; step <= 9; step++) {
        assert_true(header_hash_reset(&hh));
        for (size_t off = 0; off < sizeof h - 1; off += step)
            header_hash_feed(&hh, h + off, sizeof h - 1 - off < step ? sizeof h - 1 - off : step);
        assert_true(header_hash_ended(&hh));
        char got[HEADER_HASH_HEX_LEN + 1];
        assert_true(header_hash_final(&hh, got));
        assert_string_equal(got, whole);
    }
    header_hash_free(&hh);
}

static void test_long_names(void **state)
{
    (void)state;
    char a[700], b[700];
    /* A name of HEADER_HASH_NAME_MAX octets is a field; one more is not. */
    for (size_t len = HEADER_HASH_NAME_MAX; len <= HEADER_HASH_NAME_MAX + 1; len++) {
        memset(a, 'N', len);
        snprintf(a + len, sizeof a - len, ": v\r\n" BASE);
        snprintf(b, sizeof b, "%s", BASE);
        if (len == HEADER_HASH_NAME_MAX)
            assert_differ(a, b);
        else
            assert_same(a, b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_ends_and_blanks),
        cmocka_unit_test(test_skipped_and_kept_fields),
        cmocka_unit_test(test_end_of_header),
        cmocka_unit_test(test_octets_servers_replace),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_long_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
