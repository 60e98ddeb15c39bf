/* Unit tests for translate/uidl_file: the legacy UIDL import file of
 * `popgate-admin uidl import`, and the stored "<uidl> <size>" value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "uidl_file.h"

static void parse_text(const char *text, struct uidl_file *f)
{
    assert_true(uidl_file_parse(text, strlen(text), f));
}

static void assert_entry(const struct uidl_file_entry *e, const char *uidl, uint32_t size, const char *msgid,
                         size_t line)
{
    assert_int_equal(e->uidl_len, strlen(uidl));
    assert_memory_equal(e->uidl, uidl, e->uidl_len);
    assert_int_equal(e->size, size);
    if (msgid) {
        assert_int_equal(e->msgid_len, strlen(msgid));
        assert_memory_equal(e->msgid, msgid, e->msgid_len);
    } else {
        assert_null(e->msgid);
        assert_int_equal(e->msgid_len, 0);
    }
    assert_int_equal(e->line, line);
}

static void test_well_formed_file(void **state)
{
    (void)state;
    struct uidl_file f;
    parse_text("# exported from the old server\n"
               "\n"
               "UID1-1234 1200 <a@example.org>\r\n"
               "   \t  \n"
               "  # indented comment\n"
               "UID2-1234\t\t345\t<b.c@example.org>  \n"
               "000000010000abcd 0 -\n"
               "UID3 99 <last@x>", &f);
    assert_int_equal(f.n_errors, 0);
    assert_int_equal(f.n_entries, 4);
    assert_entry(&f.entries[0], "UID1-1234", 1200, "<a@example.org>", 3);
    assert_entry(&f.entries[1], "UID2-1234", 345, "<b.c@example.org>", 6);
    assert_entry(&f.entries[2], "000000010000abcd", 0, NULL, 7);
    assert_entry(&f.entries[3], "UID3", 99, "<last@x>", 8);
    /* The entry without a Message-ID cannot be matched. */
    assert_int_equal(f.n_matchable, 3);
    assert_false(uidl_file_entry_matchable(&f.entries[2]));
    assert_true(uidl_file_entry_matchable(&f.entries[0]));
    uidl_file_free(&f);
    assert_null(f.entries);
    assert_int_equal(f.n_entries, 0);
}

static void test_empty_and_comment_only(void **state)
{
    (void)state;
    struct uidl_file f;
    assert_true(uidl_file_parse(NULL, 0, &f));
    assert_int_equal(f.n_entries, 0);
    assert_int_equal(f.n_errors, 0);
    uidl_file_free(&f);
    parse_text("#\n# nothing\n\n\r\n", &f);
    assert_int_equal(f.n_entries, 0);
    assert_int_equal(f.n_errors, 0);
    uidl_file_free(&f);
}

struct bad_line {
    const char *line;
    enum uidl_file_problem problem;
};

static void test_each_malformed_line(void **state)
{
    (void)state;
    char uidl71[80], id999[1010];
    memset(uidl71, 'u', 71);
    strcpy(uidl71 + 71, " 1 -");
    id999[0] = '<';
    memset(id999 + 1, 'i', 997);
    strcpy(id999 + 998, ">");
    char line999[1100];
    snprintf(line999, sizeof line999, "u 1 %s", id999);

    const struct bad_line cases[] = {
        { "onlyone", UIDL_FILE_FIELD_COUNT },
        { "two 12", UIDL_FILE_FIELD_COUNT },
        { "a 1 - <x@y> extra", UIDL_FILE_FIELD_COUNT },
        /* Four fields: the third is the header hash. */
        { "a 1 <x @y>", UIDL_FILE_BAD_HASH },
        { "a 1 0123456789abcdef0123456789ABCDEF <x@y>", UIDL_FILE_BAD_HASH },
        { "a 1 0123456789abcdef0123456789abcde <x@y>", UIDL_FILE_BAD_HASH },
        { "a 1 - %", UIDL_FILE_BAD_MSGID },
        { "a 1 - x%4", UIDL_FILE_BAD_MSGID },
        { "a 1 - %zz", UIDL_FILE_BAD_MSGID },
        { "a 1 - %20x", UIDL_FILE_BAD_MSGID },
        { "a 1 - x%09", UIDL_FILE_BAD_MSGID },
        { uidl71, UIDL_FILE_UIDL_TOO_LONG },
        { "caf\xc3\xa9 1 <x@y>", UIDL_FILE_UIDL_BAD_CHAR },
        { "a\x01 1 <x@y>", UIDL_FILE_UIDL_BAD_CHAR },
        { "a\rb 1 <x@y>", UIDL_FILE_UIDL_BAD_CHAR },
        { "a -1 <x@y>", UIDL_FILE_BAD_SIZE },
        { "a +1 <x@y>", UIDL_FILE_BAD_SIZE },
        { "a 12k <x@y>", UIDL_FILE_BAD_SIZE },
        { "a 4294967296 <x@y>", UIDL_FILE_BAD_SIZE },
        { "a 99999999999999999999999 <x@y>", UIDL_FILE_BAD_SIZE },
        { "a 1 x@y", UIDL_FILE_BAD_MSGID },
        { "a 1 <x@y", UIDL_FILE_BAD_MSGID },
        { "a 1 x@y>", UIDL_FILE_BAD_MSGID },
        { "a 1 <>", UIDL_FILE_BAD_MSGID },
        { "a 1 <a<b>", UIDL_FILE_BAD_MSGID },
        { "a 1 <a>b>", UIDL_FILE_BAD_MSGID },
        { "a 1 <\xc3\xa9@y>", UIDL_FILE_BAD_MSGID },
        { "a 1 --", UIDL_FILE_BAD_MSGID },
        { line999, UIDL_FILE_MSGID_TOO_LONG },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* The bad line is line 2, between two good ones: only it is reported. */
        char text[1200];
        snprintf(text, sizeof text, "good1 10 <g1@x>\n%s\ngood2 20 <g2@x>\n", cases[i].line);
        struct uidl_file f;
        parse_text(text, &f);
        assert_int_equal(f.n_errors, 1);
        assert_int_equal(f.errors[0].line, 2);
        assert_int_equal(f.errors[0].problem, cases[i].problem);
        assert_int_equal(f.errors[0].other_line, 0);
        assert_int_equal(f.n_entries, 2);
        uidl_file_free(&f);
    }
}

static void test_limits_accepted(void **state)
{
    (void)state;
    char text[1200];
    char uidl70[71];
    memset(uidl70, '!', 70);
    uidl70[70] = '\0';
    char id998[999];
    id998[0] = '<';
    memset(id998 + 1, '~', 996);
    id998[997] = '>';
    id998[998] = '\0';
    snprintf(text, sizeof text, "%s 4294967295 %s\n~ 0 <a>\n", uidl70, id998);
    struct uidl_file f;
    parse_text(text, &f);
    assert_int_equal(f.n_errors, 0);
    assert_int_equal(f.n_entries, 2);
    assert_entry(&f.entries[0], uidl70, 4294967295u, id998, 1);
    assert_entry(&f.entries[1], "~", 0, "<a>", 2);
    uidl_file_free(&f);
}

static void test_nul_byte_is_not_a_terminator(void **state)
{
    (void)state;
    static const char text[] = "ok 1 <a@b>\nbad\0x 2 <c@d>\nok2 3 <e@f>\n";
    struct uidl_file f;
    assert_true(uidl_file_parse(text, sizeof text - 1, &f));
    assert_int_equal(f.n_errors, 1);
    assert_int_equal(f.errors[0].line, 2);
    assert_int_equal(f.errors[0].problem, UIDL_FILE_UIDL_BAD_CHAR);
    assert_int_equal(f.n_entries, 2);
    uidl_file_free(&f);
}

static void test_every_error_reported_in_line_order(void **state)
{
    (void)state;
    struct uidl_file f;
    parse_text("dup 1 <a@x>\n"       /* 1 */
               "bad size <b@x>\n"    /* 2 */
               "ok 2 <c@x>\n"        /* 3 */
               "dup 3 <d@x>\n"       /* 4: duplicate of line 1 */
               "x\n"                 /* 5 */
               "dup 4 -\n",          /* 6: duplicate of line 1 */
               &f);
    assert_int_equal(f.n_errors, 4);
    assert_int_equal(f.errors[0].line, 2);
    assert_int_equal(f.errors[0].problem, UIDL_FILE_BAD_SIZE);
    assert_int_equal(f.errors[1].line, 4);
    assert_int_equal(f.errors[1].problem, UIDL_FILE_DUPLICATE_UIDL);
    assert_int_equal(f.errors[1].other_line, 1);
    assert_int_equal(f.errors[2].line, 5);
    assert_int_equal(f.errors[2].problem, UIDL_FILE_FIELD_COUNT);
    assert_int_equal(f.errors[3].line, 6);
    assert_int_equal(f.errors[3].problem, UIDL_FILE_DUPLICATE_UIDL);
    assert_int_equal(f.errors[3].other_line, 1);
    uidl_file_free(&f);
}

static void test_uidls_differing_in_case_are_distinct(void **state)
{
    (void)state;
    struct uidl_file f;
    parse_text("abc 1 <a@x>\nABC 1 <b@x>\nab 1 <c@x>\n", &f);
    assert_int_equal(f.n_errors, 0);
    assert_int_equal(f.n_entries, 3);
    uidl_file_free(&f);
}

static void test_duplicate_message_ids_are_ambiguous(void **state)
{
    (void)state;
    struct uidl_file f;
    parse_text("u1 1 <same@x>\n"
               "u2 2 <other@x>\n"
               "u3 3 <same@x>\n"
               "u4 4 -\n"
               "u5 5 <same@x>\n"
               "u6 6 <SAME@x>\n"
               "u7 7 -\n", &f);
    assert_int_equal(f.n_errors, 0);
    assert_int_equal(f.n_entries, 7);
    assert_int_equal(f.entries[0].same_msgid_line, 3);
    assert_int_equal(f.entries[2].same_msgid_line, 1);
    assert_int_equal(f.entries[4].same_msgid_line, 1);
    /* Message-IDs compare byte for byte, and "-" is never a duplicate. */
    assert_int_equal(f.entries[1].same_msgid_line, 0);
    assert_int_equal(f.entries[5].same_msgid_line, 0);
    assert_int_equal(f.entries[3].same_msgid_line, 0);
    assert_int_equal(f.entries[6].same_msgid_line, 0);
    assert_int_equal(f.n_matchable, 2);
    assert_false(uidl_file_entry_matchable(&f.entries[0]));
    assert_true(uidl_file_entry_matchable(&f.entries[1]));
    assert_true(uidl_file_entry_matchable(&f.entries[5]));
    uidl_file_free(&f);
}

static void test_many_lines(void **state)
{
    (void)state;
    /* Enough to grow the arrays several times; every tenth line is bad. */
    enum { LINES = 5000 };
    size_t cap = (size_t)LINES * 40;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = 0;
    for (int i = 1; i <= LINES; i++) {
        if (i % 10 == 0)
            len += (size_t)snprintf(text + len, cap - len, "bad%d\n", i);
        else
            len += (size_t)snprintf(text + len, cap - len, "U%d %d <m%d@x>\n", i, i, i);
    }
    struct uidl_file f;
    assert_true(uidl_file_parse(text, len, &f));
    assert_int_equal(f.n_entries, LINES - LINES / 10);
    assert_int_equal(f.n_errors, LINES / 10);
    assert_int_equal(f.n_matchable, LINES - LINES / 10);
    for (size_t i = 0; i < f.n_errors; i++)
        assert_int_equal(f.errors[i].line, (i + 1) * 10);
    uidl_file_free(&f);
    free(text);
}

static void test_value_round_trip(void **state)
{
    (void)state;
    struct uidl_file f;
    parse_text("000000010000abcd 4294967295 <a@x>\n", &f);
    char value[UIDL_VALUE_MAX + 1];
    size_t n = uidl_value_format(&f.entries[0], value, sizeof value);
    assert_int_equal(n, strlen("000000010000abcd 4294967295"));
    assert_string_equal(value, "000000010000abcd 4294967295");
    size_t uidl_len = 0;
    uint32_t size = 0;
    assert_true(uidl_value_parse(value, n, &uidl_len, &size));
    assert_int_equal(uidl_len, 16);
    assert_int_equal(size, 4294967295u);
    /* Too small a buffer is refused, not cut. */
    assert_int_equal(uidl_value_format(&f.entries[0], value, 10), 0);
    uidl_file_free(&f);
}

static void test_value_parse_refuses_other_forms(void **state)
{
    (void)state;
    const char *bad[] = { "", "abc", "abc ", " 12", "abc 12 x", "abc -1", "abc 4294967296", "a\x01 1",
                          "abc  12" };
    size_t uidl_len = 99;
    uint32_t size = 99;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(uidl_value_parse(bad[i], strlen(bad[i]), &uidl_len, &size));
        assert_int_equal(uidl_len, 99);
        assert_int_equal(size, 99);
    }
    char long_uidl[UIDL_MAX + 8];
    memset(long_uidl, 'x', UIDL_MAX + 1);
    strcpy(long_uidl + UIDL_MAX + 1, " 5");
    assert_false(uidl_value_parse(long_uidl, strlen(long_uidl), &uidl_len, &size));
    assert_true(uidl_value_parse(long_uidl + 1, strlen(long_uidl + 1), &uidl_len, &size));
    assert_int_equal(uidl_len, UIDL_MAX);
    assert_int_equal(size, 5);
}

static void test_problem_texts(void **state)
{
    (void)state;
    for (int p = 0; p < UIDL_FILE_PROBLEM_COUNT; p++) {
        const char *t = uidl_file_problem_text((enum uidl_file_problem)p);
        assert_non_null(t);
        assert_true(strlen(t) > 5);
        assert_string_not_equal(t, "unknown problem");
    }
    assert_string_equal(uidl_file_problem_text(UIDL_FILE_PROBLEM_COUNT), "unknown problem");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed_file),
        cmocka_unit_test(test_empty_and_comment_only),
        cmocka_unit_test(test_each_malformed_line),
        cmocka_unit_test(test_limits_accepted),
        cmocka_unit_test(test_nul_byte_is_not_a_terminator),
        cmocka_unit_test(test_every_error_reported_in_line_order),
        cmocka_unit_test(test_uidls_differing_in_case_are_distinct),
        cmocka_unit_test(test_duplicate_message_ids_are_ambiguous),
        cmocka_unit_test(test_many_lines),
        cmocka_unit_test(test_value_round_trip),
        cmocka_unit_test(test_value_parse_refuses_other_forms),
        cmocka_unit_test(test_problem_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
