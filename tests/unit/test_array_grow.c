/* Unit tests for translate/array_grow.c: doubling, the bound, and nothing
 * changed on refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "array_grow.h"

static void test_doubles_from_first(void **state)
{
    (void)state;
    int *a = NULL;
    size_t cap = 0;
    assert_true(array_reserve((void **)&a, &cap, 0, 1, sizeof *a, 4, 100));
    assert_int_equal(cap, 4);
    assert_true(array_reserve((void **)&a, &cap, 4, 1, sizeof *a, 4, 100));
    assert_int_equal(cap, 8);
    assert_true(array_reserve((void **)&a, &cap, 8, 20, sizeof *a, 4, 100));
    assert_int_equal(cap, 32);
    for (int i = 0; i < 28; i++)
        a[i] = i;   /* ASan: the room is really there */
    free(a);
}

static void test_bound_is_kept(void **state)
{
    (void)state;
    char *p = NULL;
    size_t cap = 0;
    assert_true(array_reserve((void **)&p, &cap, 0, 60, 1, 64, 100));
    assert_int_equal(cap, 64);
    /* Doubling would pass the bound: capped at it. */
    assert_true(array_reserve((void **)&p, &cap, 64, 30, 1, 64, 100));
    assert_int_equal(cap, 100);
    char *before = p;
    assert_false(array_reserve((void **)&p, &cap, 100, 1, 1, 64, 100));
    assert_ptr_equal(p, before);
    assert_int_equal(cap, 100);
    assert_false(array_reserve((void **)&p, &cap, 50, SIZE_MAX, 1, 64, SIZE_MAX));
    free(p);
}

static void test_element_size_overflow_refused(void **state)
{
    (void)state;
    void *p = NULL;
    size_t cap = 0;
    assert_false(array_reserve(&p, &cap, 0, SIZE_MAX / 2, 16, 64, SIZE_MAX));
    assert_null(p);
    assert_int_equal(cap, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_from_first),
        cmocka_unit_test(test_bound_is_kept),
        cmocka_unit_test(test_element_size_overflow_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
