/* Unit tests for translate/imap_quote: quoted strings, LOGIN literals, refusal
 * of CR/LF/NUL, and the SASL PLAIN initial response. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "imap_quote.h"

#define S(lit) lit, (sizeof(lit) - 1)

static void test_astring_form(void **state)
{
    (void)state;
    assert_int_equal(imap_astring_form(S("alice")), IMAP_ASTRING_QUOTED);
    assert_int_equal(imap_astring_form(S("")), IMAP_ASTRING_QUOTED);
    assert_int_equal(imap_astring_form(S("p\"w\\d {5} ( ) % *")), IMAP_ASTRING_QUOTED);
    assert_int_equal(imap_astring_form(S("j\xc3\xb6rg")), IMAP_ASTRING_LITERAL);
    assert_int_equal(imap_astring_form(S("tab\there")), IMAP_ASTRING_LITERAL);
    assert_int_equal(imap_astring_form(S("del\x7f")), IMAP_ASTRING_LITERAL);
    assert_int_equal(imap_astring_form(S("a\rb")), IMAP_ASTRING_INVALID);
    assert_int_equal(imap_astring_form(S("a\nb")), IMAP_ASTRING_INVALID);
    assert_int_equal(imap_astring_form(S("a\0b")), IMAP_ASTRING_INVALID);
    /* CR anywhere wins over 8-bit earlier in the string. */
    assert_int_equal(imap_astring_form(S("\xff\r")), IMAP_ASTRING_INVALID);
}

static void test_append_quoted(void **state)
{
    (void)state;
    char out[32];
    size_t pos = 0;
    assert_true(imap_append_quoted(out, sizeof out, &pos, S("INBOX")));
    assert_true(imap_append_quoted(out, sizeof out, &pos, S("a\"b\\c")));
    assert_true(imap_append_quoted(out, sizeof out, &pos, S("")));
    assert_int_equal(pos, 7 + 9 + 2);
    assert_memory_equal(out, "\"INBOX\"\"a\\\"b\\\\c\"\"\"", pos);

    /* Does not fit: nothing written, position kept. */
    char tiny[6];
    memset(tiny, 'x', sizeof tiny);
    pos = 0;
    assert_false(imap_append_quoted(tiny, sizeof tiny, &pos, S("INBOX")));
    assert_int_equal(pos, 0);
    assert_int_equal(tiny[0], 'x');
    /* Exactly fits. */
    assert_true(imap_append_quoted(tiny, sizeof tiny, &pos, S("INBO")));
    assert_int_equal(pos, 6);

    /* 8-bit or forbidden: refused, nothing written. */
    pos = 0;
    assert_false(imap_append_quoted(out, sizeof out, &pos, S("caf\xc3\xa9")));
    assert_false(imap_append_quoted(out, sizeof out, &pos, S("a\r\n")));
    assert_int_equal(pos, 0);
}

/* Segment i of a login command as a string. */
static void expect_segment(const struct imap_login_command *cmd, unsigned i, const char *want,
                           size_t want_len)
{
    size_t start = i == 0 ? 0 : cmd->seg_end[i - 1];
    size_t len = cmd->seg_end[i] - start;
    assert_int_equal(len, want_len);
    assert_memory_equal(cmd->buf + start, want, len);
}

static void test_login_quoted(void **state)
{
    (void)state;
    struct imap_login_command cmd;
    assert_int_equal(imap_login_command(&cmd, "A0001", S("alice@example.org"),
                                        S("p\"w\\d{5}")), IMAP_QUOTE_OK);
    assert_int_equal(cmd.nsegs, 1);
    expect_segment(&cmd, 0, S("A0001 LOGIN \"alice@example.org\" \"p\\\"w\\\\d{5}\"\r\n"));

    assert_int_equal(imap_login_command(&cmd, "A2", S(""), S("")), IMAP_QUOTE_OK);
    assert_int_equal(cmd.nsegs, 1);
    expect_segment(&cmd, 0, S("A2 LOGIN \"\" \"\"\r\n"));

    /* A password that looks like a literal marker stays quoted text. */
    assert_int_equal(imap_login_command(&cmd, "A3", S("bob"), S("{5}")), IMAP_QUOTE_OK);
    expect_segment(&cmd, 0, S("A3 LOGIN \"bob\" \"{5}\"\r\n"));
}

static void test_login_literals(void **state)
{
    (void)state;
    struct imap_login_command cmd;

    /* 8-bit user: synchronizing literal, the rest after the continuation. */
    assert_int_equal(imap_login_command(&cmd, "A1", S("j\xc3\xb6rg"), S("pw")), IMAP_QUOTE_OK);
    assert_int_equal(cmd.nsegs, 2);
    expect_segment(&cmd, 0, S("A1 LOGIN {5}\r\n"));
    expect_segment(&cmd, 1, S("j\xc3\xb6rg \"pw\"\r\n"));

    /* 8-bit password (Latin-1), bytes sent unchanged, quotes unescaped. */
    assert_int_equal(imap_login_command(&cmd, "A1", S("alice"), S("p\xe4\"s")), IMAP_QUOTE_OK);
    assert_int_equal(cmd.nsegs, 2);
    expect_segment(&cmd, 0, S("A1 LOGIN \"alice\" {4}\r\n"));
    expect_segment(&cmd, 1, S("p\xe4\"s\r\n"));

    /* Both: three segments; an empty 8-bit-free string never needs one. */
    assert_int_equal(imap_login_command(&cmd, "A1", S("\xc3\xa9"), S("tab\t")), IMAP_QUOTE_OK);
    assert_int_equal(cmd.nsegs, 3);
    expect_segment(&cmd, 0, S("A1 LOGIN {2}\r\n"));
    expect_segment(&cmd, 1, S("\xc3\xa9 {4}\r\n"));
    expect_segment(&cmd, 2, S("tab\t\r\n"));

    /* Never the non-synchronizing LITERAL+ form. */
    assert_null(memchr(cmd.buf, '+', cmd.seg_end[2]));
}

static void test_login_refuses_cr_lf_nul(void **state)
{
    (void)state;
    struct imap_login_command cmd;
    static const char *const bad[] = { "a\rb", "a\nb", "a\r\nA2 DELETE INBOX" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(imap_login_command(&cmd, "A1", bad[i], strlen(bad[i]), S("pw")),
                         IMAP_QUOTE_FORBIDDEN_OCTET);
        assert_int_equal(imap_login_command(&cmd, "A1", S("alice"), bad[i], strlen(bad[i])),
                         IMAP_QUOTE_FORBIDDEN_OCTET);
    }
    assert_int_equal(imap_login_command(&cmd, "A1", S("al\0ice"), S("pw")),
                     IMAP_QUOTE_FORBIDDEN_OCTET);
    assert_int_equal(imap_login_command(&cmd, "A1", S("alice"), S("p\0w")),
                     IMAP_QUOTE_FORBIDDEN_OCTET);
    /* Even where the rest would need a literal. */
    assert_int_equal(imap_login_command(&cmd, "A1", S("\xc3\xa9\n"), S("pw")),
                     IMAP_QUOTE_FORBIDDEN_OCTET);
    assert_int_equal(cmd.nsegs, 0);
}

static void test_login_bounds(void **state)
{
    (void)state;
    struct imap_login_command cmd;
    char worst[IMAP_CREDENTIAL_MAX + 1];

    /* Maximal credentials that double in size when quoted still fit. */
    memset(worst, '"', sizeof worst);
    assert_int_equal(imap_login_command(&cmd, "A123456789012345", worst, IMAP_CREDENTIAL_MAX,
                                        worst, IMAP_CREDENTIAL_MAX), IMAP_QUOTE_OK);
    assert_int_equal(cmd.nsegs, 1);
    assert_true(cmd.seg_end[0] <= sizeof cmd.buf);
    assert_memory_equal(cmd.buf + cmd.seg_end[0] - 2, "\r\n", 2);

    /* Maximal literals fit too. */
    memset(worst, '\xff', sizeof worst);
    assert_int_equal(imap_login_command(&cmd, "A1", worst, IMAP_CREDENTIAL_MAX,
                                        worst, IMAP_CREDENTIAL_MAX), IMAP_QUOTE_OK);
    assert_int_equal(cmd.nsegs, 3);
    expect_segment(&cmd, 0, S("A1 LOGIN {1024}\r\n"));

    assert_int_equal(imap_login_command(&cmd, "A1", worst, IMAP_CREDENTIAL_MAX + 1, S("pw")),
                     IMAP_QUOTE_TOO_LONG);
    assert_int_equal(imap_login_command(&cmd, "A1", S("alice"), worst, IMAP_CREDENTIAL_MAX + 1),
                     IMAP_QUOTE_TOO_LONG);
    assert_int_equal(imap_login_command(&cmd, "A12345678901234567", S("a"), S("b")),
                     IMAP_QUOTE_TOO_LONG);
    assert_int_equal(imap_login_command(&cmd, "", S("a"), S("b")), IMAP_QUOTE_TOO_LONG);
    assert_int_equal(imap_login_command(&cmd, "A 1", S("a"), S("b")), IMAP_QUOTE_TOO_LONG);
}

static void test_login_wipe(void **state)
{
    (void)state;
    struct imap_login_command cmd;
    assert_int_equal(imap_login_command(&cmd, "A1", S("alice"), S("hunter2")), IMAP_QUOTE_OK);
    assert_non_null(memmem(cmd.buf, cmd.seg_end[0], "hunter2", 7));
    imap_login_command_wipe(&cmd);
    assert_null(memmem(cmd.buf, sizeof cmd.buf, "hunter2", 7));
    assert_int_equal(cmd.nsegs, 0);
}

static void expect_sasl(const char *user, size_t ulen, const char *pass, size_t plen,
                        const char *want)
{
    char out[IMAP_SASL_PLAIN_MAX];
    memset(out, 'x', sizeof out);
    assert_int_equal(imap_sasl_plain(out, sizeof out, user, ulen, pass, plen), IMAP_QUOTE_OK);
    assert_string_equal(out, want);
}

static void test_sasl_plain(void **state)
{
    (void)state;
    /* Reference values from Python's base64.b64encode(b"\0" + user + b"\0" + pass). */
    expect_sasl(S("alice"), S("secret"), "AGFsaWNlAHNlY3JldA==");
    expect_sasl(S(""), S(""), "AAA=");
    expect_sasl(S("a"), S(""), "AGEA");
    expect_sasl(S("ab"), S("c"), "AGFiAGM=");
    expect_sasl(S("j\xc3\xb6rg"), S("p\"w{5}\\"), "AGrDtnJnAHAid3s1fVw=");
}

static void test_sasl_plain_refusals(void **state)
{
    (void)state;
    char out[IMAP_SASL_PLAIN_MAX];
    assert_int_equal(imap_sasl_plain(out, sizeof out, S("a\rb"), S("pw")),
                     IMAP_QUOTE_FORBIDDEN_OCTET);
    assert_int_equal(imap_sasl_plain(out, sizeof out, S("alice"), S("p\nw")),
                     IMAP_QUOTE_FORBIDDEN_OCTET);
    /* A NUL in the user name would shift the fields of the PLAIN message. */
    assert_int_equal(imap_sasl_plain(out, sizeof out, S("admin\0alice"), S("pw")),
                     IMAP_QUOTE_FORBIDDEN_OCTET);

    char big[IMAP_CREDENTIAL_MAX + 1];
    memset(big, 'z', sizeof big);
    assert_int_equal(imap_sasl_plain(out, sizeof out, big, sizeof big, S("pw")),
                     IMAP_QUOTE_TOO_LONG);
    /* The maximum fits the stated buffer exactly. */
    assert_int_equal(imap_sasl_plain(out, sizeof out, big, IMAP_CREDENTIAL_MAX,
                                     big, IMAP_CREDENTIAL_MAX), IMAP_QUOTE_OK);
    assert_int_equal(strlen(out), IMAP_SASL_PLAIN_MAX - 1);

    /* "\0alice\0secret" needs 20 characters and a NUL. */
    char small[21];
    assert_int_equal(imap_sasl_plain(small, 20, S("alice"), S("secret")), IMAP_QUOTE_TOO_LONG);
    assert_int_equal(imap_sasl_plain(small, 21, S("alice"), S("secret")), IMAP_QUOTE_OK);
    assert_string_equal(small, "AGFsaWNlAHNlY3JldA==");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_astring_form),
        cmocka_unit_test(test_append_quoted),
        cmocka_unit_test(test_login_quoted),
        cmocka_unit_test(test_login_literals),
        cmocka_unit_test(test_login_refuses_cr_lf_nul),
        cmocka_unit_test(test_login_bounds),
        cmocka_unit_test(test_login_wipe),
        cmocka_unit_test(test_sasl_plain),
        cmocka_unit_test(test_sasl_plain_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
