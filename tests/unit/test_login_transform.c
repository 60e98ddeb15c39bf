/* Unit tests for translate/login_transform: the user name a mapping sends
 * upstream (keep, strip-domain, add-domain, template). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "login_transform.h"

static const char *apply(const char *spec, const char *login)
{
    static char out[LOGIN_USER_MAX + 1];
    struct login_transform t;
    assert_true(login_transform_parse(spec, &t));
    return login_transform_apply(&t, login, out) ? out : NULL;
}

static void test_keep_and_strip(void **state)
{
    (void)state;
    assert_string_equal(apply("keep", "Carol@Example.org"), "Carol@Example.org");
    assert_string_equal(apply("strip-domain", "carol@example.org"), "carol");
    /* The domain is after the last '@': a local part may hold one, quoted. */
    assert_string_equal(apply("strip-domain", "a@b@example.org"), "a@b");
    assert_string_equal(apply("strip-domain", "carol"), "carol");
    assert_null(apply("strip-domain", "@example.org"));
}

static void test_add_domain(void **state)
{
    (void)state;
    assert_string_equal(apply("add-domain example.com", "carol"), "carol@example.com");
    /* A login that names its domain keeps it. */
    assert_string_equal(apply("add-domain example.com", "carol@other.org"), "carol@other.org");
    assert_string_equal(apply("ADD-DOMAIN   example.com", "x"), "x@example.com");
}

static void test_template(void **state)
{
    (void)state;
    assert_string_equal(apply("template %n@new.example", "carol@old.example"), "carol@new.example");
    assert_string_equal(apply("template %d/%n", "carol@old.example"), "old.example/carol");
    assert_string_equal(apply("template %u%%x", "carol"), "carol%x");
    assert_string_equal(apply("template pre-%n", "carol"), "pre-carol");
}

static void test_result_bounded(void **state)
{
    (void)state;
    char login[LOGIN_USER_MAX + 1];
    memset(login, 'a', LOGIN_USER_MAX);
    login[LOGIN_USER_MAX] = '\0';
    assert_non_null(apply("keep", login));
    assert_null(apply("add-domain example.com", login));
    assert_null(apply("template %u%u", login));
    login[LOGIN_USER_MAX - 5] = '\0';
    assert_string_equal(apply("template %u.x", login) + LOGIN_USER_MAX - 5, ".x");
}

static void test_refused_specs(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "drop", "keep extra", "strip-domain x", "add-domain", "add-domain bad_domain!",
        "add-domain a b", "template", "template %x@y", "template fixed@example.org",
        "template %d.only", "template %n@new example", "template %",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct login_transform t = { .kind = LOGIN_TEMPLATE, .arg = "untouched" };
        assert_false(login_transform_parse(bad[i], &t));
        assert_string_equal(t.arg, "untouched");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_and_strip),
        cmocka_unit_test(test_add_domain),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_result_bounded),
        cmocka_unit_test(test_refused_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
