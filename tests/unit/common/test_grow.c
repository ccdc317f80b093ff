/* Tests for src/common/grow.h: room for one more, doubling from `first`,
 * contents kept, and an impossible size refused without touching the
 * array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/grow.h"

static void test_doubles_and_keeps(void **state)
{
    (void)state;
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    for (uint64_t i = 0; i < 100; i++) {
        assert_int_equal(grow_array((void **)&v, n, &cap, sizeof *v, 4), 0);
        assert_true(cap > n);
        v[n++] = i * 3;
    }
    assert_int_equal(cap, 128); /* 4, 8, ..., 128 */
    for (uint64_t i = 0; i < 100; i++)
        assert_int_equal(v[i], i * 3);
    size_t before = cap; /* room left: nothing moves */
    uint64_t *same = v;
    assert_int_equal(grow_array((void **)&v, n, &cap, sizeof *v, 4), 0);
    assert_ptr_equal(v, same);
    assert_int_equal(cap, before);
    free(v);
}

static void test_overflow_refused(void **state)
{
    (void)state;
    char *v = malloc(8);
    size_t cap = SIZE_MAX / 2 + 1;
    assert_non_null(v);
    assert_int_equal(grow_array((void **)&v, cap, &cap, 2, 8),
                     CAIRN_ERR_NOMEM);
    assert_int_equal(cap, SIZE_MAX / 2 + 1);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_and_keeps),
        cmocka_unit_test(test_overflow_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
