/* Unit tests for translate/message_id: the Message-ID of a header, in the
 * form the legacy UIDL import stores (uidl_file.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "message_id.h"
#include "uidl_file.h"

/* The Message-ID of header (a C string), or "" when there is none. */
static const char *extract(const char *header)
{
    static char out[UIDL_MSGID_MAX + 1];
    memset(out, 'x', sizeof out);
    size_t n = message_id_extract(header, strlen(header), out);
    assert_int_equal(strlen(out), n);
    return out;
}

static void test_plain_field(void **state)
{
    (void)state;
    assert_string_equal(extract("Message-ID: <a1.b2@example.org>\r\n\r\n"), "<a1.b2@example.org>");
    /* What Dovecot answers to BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]. */
    assert_string_equal(extract("Message-ID: <20260131.1@mx>\r\n\r\n"), "<20260131.1@mx>");
    assert_string_equal(extract("Message-ID:<tight@x>\r\n"), "<tight@x>");
    assert_string_equal(extract("Message-ID: \t <blanks@x> \t \r\n\r\n"), "<blanks@x>");
}

static void test_line_ends(void **state)
{
    (void)state;
    assert_string_equal(extract("Message-ID: <lf@x>\n\n"), "<lf@x>");
    assert_string_equal(extract("Message-ID: <no-end@x>"), "<no-end@x>");
    assert_string_equal(extract("Subject: s\nMessage-ID: <mixed@x>\r\nFrom: f\n\n"), "<mixed@x>");
    /* A CR that does not end a line is an ordinary byte of the key. */
    assert_string_equal(extract("Message-ID: <cr@x>\r"), "<cr@x>\r");
    assert_string_equal(extract("Message-ID: <c\rr@x>\r\n"), "<c\rr@x>");
    assert_string_equal(extract("Message-ID: <cr@x>\r\r\n"), "<cr@x>\r");
}

static void test_field_name(void **state)
{
    (void)state;
    assert_string_equal(extract("message-id: <lower@x>\r\n"), "<lower@x>");
    assert_string_equal(extract("MESSAGE-ID: <upper@x>\r\n"), "<upper@x>");
    assert_string_equal(extract("Message-Id: <mixed@x>\r\n"), "<mixed@x>");
    /* RFC 5322 4.5.3: blanks before the colon. */
    assert_string_equal(extract("Message-ID \t: <obs@x>\r\n"), "<obs@x>");
    /* Other fields, however alike, are not it. */
    assert_string_equal(extract("Message-IDs: <a@x>\r\n"), "");
    assert_string_equal(extract("X-Message-ID: <a@x>\r\n"), "");
    assert_string_equal(extract("Resent-Message-ID: <a@x>\r\n"), "");
    assert_string_equal(extract("In-Reply-To: <a@x>\r\nReferences: <b@x>\r\n"), "");
    assert_string_equal(extract("Message-ID <a@x>\r\n"), "");
    assert_string_equal(extract("Message - ID: <a@x>\r\n"), "");
}

static void test_among_other_fields(void **state)
{
    (void)state;
    const char *h = "Return-Path: <bounce@x>\r\n"
                    "Received: from a (a [192.0.2.1])\r\n"
                    "\tby b with ESMTP id 1234; Sat, 31 Jan 2026 10:00:00 +0000\r\n"
                    "From: Alice <alice@example.org>\r\n"
                    "Message-ID: <CAFoo+bar=baz@mail.example.org>\r\n"
                    "Subject: hello\r\n"
                    "\r\n"
                    "Body text\r\n";
    assert_string_equal(extract(h), "<CAFoo+bar=baz@mail.example.org>");
}

static void test_header_ends_at_blank_line(void **state)
{
    (void)state;
    assert_string_equal(extract("Subject: s\r\n\r\nMessage-ID: <body@x>\r\n"), "");
    assert_string_equal(extract("\r\nMessage-ID: <body@x>\r\n"), "");
    assert_string_equal(extract(""), "");
    /* A second Message-ID in the body does not make the header's ambiguous. */
    assert_string_equal(extract("Message-ID: <hdr@x>\r\n\r\nMessage-ID: <body@x>\r\n"), "<hdr@x>");
    assert_string_equal(extract("Message-ID: <hdr@x>\n\nMessage-ID: <body@x>\n"), "<hdr@x>");
}

static void test_folded(void **state)
{
    (void)state;
    assert_string_equal(extract("Message-ID:\r\n <folded@x>\r\n\r\n"), "<folded@x>");
    assert_string_equal(extract("Message-ID:\n\t<folded-lf@x>\n"), "<folded-lf@x>");
    assert_string_equal(extract("Message-ID:\r\n \r\n <blank-line@x>\r\n"), "<blank-line@x>");
    /* Unfolding keeps the blanks after the line end. */
    assert_string_equal(extract("Message-ID: <a\r\n b@x>\r\n"), "<a b@x>");
    assert_string_equal(extract("Message-ID: (a\r\n comment) <f@x>\r\n\r\n"), "(a comment) <f@x>");
    /* A continuation of another field is not a field of its own. */
    assert_string_equal(extract("Subject: s\r\n Message-ID: <cont@x>\r\n\r\n"), "");
    assert_string_equal(extract(" Message-ID: <first-line@x>\r\n"), "");
}

/* Whatever the syntax, the value as sent is the key: comments and all. */
static void test_any_syntax(void **state)
{
    (void)state;
    assert_string_equal(extract("Message-ID: (before) <c@x> (after)\r\n"), "(before) <c@x> (after)");
    assert_string_equal(extract("Message-ID: a@x\r\n"), "a@x");
    assert_string_equal(extract("Message-ID: <>\r\n"), "<>");
    assert_string_equal(extract("Message-ID: <a<b@x>\r\n"), "<a<b@x>");
    assert_string_equal(extract("Message-ID: <\xc3\xa9@x>\r\n"), "<\xc3\xa9@x>");
    /* Seen in the SpamAssassin public corpus. */
    assert_string_equal(extract("Message-Id: PM20008:14:54 AM\r\n\r\n"), "PM20008:14:54 AM");
    assert_string_equal(extract("Message-Id: <4TGX9R3Y3.01O79.\"Super Signal\"<service@thezs.com>>\r\n"),
                        "<4TGX9R3Y3.01O79.\"Super Signal\"<service@thezs.com>>");
    assert_string_equal(
        extract("Message-ID: <00003dc678b8$00001100$0000354c@C:\\Documents and "
                "Settings\\Administrator\\Desktop\\Send\\domains2.txt>\r\n"),
        "<00003dc678b8$00001100$0000354c@C:\\Documents and Settings\\Administrator\\Desktop\\Send\\domains2.txt>");
}

static void test_two_fields(void **state)
{
    (void)state;
    assert_string_equal(extract("Message-ID: <a@x>\r\nMessage-ID: <b@x>\r\n\r\n"), "");
    assert_string_equal(extract("Message-ID: <same@x>\r\nmessage-id: <same@x>\r\n"), "");
    assert_string_equal(extract("Message-ID: <a@x>\r\nSubject: s\r\nMessage-ID: broken\r\n"), "");
    assert_string_equal(extract("Message-ID:\r\nMessage-ID: <a@x>\r\n"), "");
}

static void test_missing_values(void **state)
{
    (void)state;
    static const char *const missing[] = {
        "Message-ID:\r\n",
        "Message-ID:   \r\n",
        "Message-ID: \t\r\n \r\n\t\r\n",
        "Message-ID:",
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        char out[UIDL_MSGID_MAX + 1] = "junk";
        assert_int_equal(message_id_extract(missing[i], strlen(missing[i]), out), 0);
        assert_string_equal(out, "");
    }
    /* A NUL is an ordinary byte, kept. */
    static const char nul_in_id[] = "Message-ID: <a\0b@x>\r\n";
    char out[UIDL_MSGID_MAX + 1];
    assert_int_equal(message_id_extract(nul_in_id, sizeof nul_in_id - 1, out), 7);
    assert_memory_equal(out, "<a\0b@x>", 7);
    static const char nul_elsewhere[] = "Subject: a\0b\r\nMessage-ID: <ok@x>\r\n";
    assert_int_equal(message_id_extract(nul_elsewhere, sizeof nul_elsewhere - 1, out), 6);
    assert_string_equal(out, "<ok@x>");
}

static void test_length_bound(void **state)
{
    (void)state;
    char header[2048], out[UIDL_MSGID_MAX + 1];
    /* The bound is on the trimmed value: blanks around do not count. */
    for (size_t total = UIDL_MSGID_MAX - 1; total <= UIDL_MSGID_MAX + 1; total++) {
        size_t n = (size_t)snprintf(header, sizeof header, "Message-ID:  \t <");
        memset(header + n, 'a', total - 2);
        n += total - 2;
        n += (size_t)snprintf(header + n, sizeof header - n, ">  \t \r\n\r\n");
        size_t got = message_id_extract(header, n, out);
        if (total <= UIDL_MSGID_MAX) {
            assert_int_equal(got, total);
            assert_int_equal(out[0], '<');
            assert_int_equal(out[total - 1], '>');
            assert_int_equal(out[total], '\0');
        } else {
            assert_int_equal(got, 0);
        }
    }
}

/* Every key found goes through the import file (%XX-encoded) and comes back
 * the same: the same bytes meet in the Redis hash. */
static void test_import_file_round_trip(void **state)
{
    (void)state;
    static const char *const headers[] = {
        "Message-ID: <a@x>\r\n",
        "Message-ID: (c) <!#$%&'*+-/=?^_`{|}~.\"()[]:;,@\\x> (d)\r\n",
        "message-id:\r\n\t<folded.id@host.example>\r\n",
        "Message-Id: PM20008:14:54 AM\r\n",
        "Message-ID: -\r\n",
        "Message-ID: 100%\x01\xff\r\n",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char out[UIDL_MSGID_MAX + 1], enc[3 * UIDL_MSGID_MAX + 1], line[3 * UIDL_MSGID_MAX + 64];
        size_t n = message_id_extract(headers[i], strlen(headers[i]), out);
        assert_true(n > 0);
        assert_true(uidl_msgid_encode(out, n, enc, sizeof enc) > 0);
        snprintf(line, sizeof line, "UID%zu 100 - %s\n", i, enc);
        struct uidl_file f;
        assert_true(uidl_file_parse(line, strlen(line), &f));
        assert_int_equal(f.n_errors, 0);
        assert_int_equal(f.n_matchable, 1);
        assert_int_equal(f.entries[0].key, UIDL_KEY_MESSAGE_ID);
        assert_int_equal(f.entries[0].msgid_len, n);
        assert_memory_equal(f.entries[0].msgid, out, n);
        uidl_file_free(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_field),
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_field_name),
        cmocka_unit_test(test_among_other_fields),
        cmocka_unit_test(test_header_ends_at_blank_line),
        cmocka_unit_test(test_folded),
        cmocka_unit_test(test_any_syntax),
        cmocka_unit_test(test_two_fields),
        cmocka_unit_test(test_missing_values),
        cmocka_unit_test(test_length_bound),
        cmocka_unit_test(test_import_file_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
