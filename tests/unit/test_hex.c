/* Unit tests for translate/hex.c: every octet value, and the NUL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hex.h"

static void test_every_octet_in_lower_case(void **state)
{
    (void)state;
    unsigned char in[256];
    for (unsigned i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)i;
    char out[HEX_LEN(sizeof in) + 1];
    memset(out, 'x', sizeof out);
    hex_encode(in, sizeof in, out);
    assert_int_equal(strlen(out), HEX_LEN(sizeof in));
    for (unsigned i = 0; i < sizeof in; i++) {
        char want[3];
        snprintf(want, sizeof want, "%02x", i);
        assert_memory_equal(out + 2 * i, want, 2);
    }
}

static void test_empty_input_gives_empty_string(void **state)
{
    (void)state;
    char out[1] = { 'x' };
    hex_encode((const unsigned char *)"", 0, out);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_octet_in_lower_case),
        cmocka_unit_test(test_empty_input_gives_empty_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
