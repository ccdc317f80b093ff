/* Tests for src/common/u64map.h: put/get/replace/delete against a model
 * under random churn (backward-shift deletion must keep every other key
 * findable), growth, iteration, and the reserved id 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/u64map.h"

#define MODEL 4096

static void *val_of(uint64_t k) { return (void *)(uintptr_t)(k * 2 + 1); }

static void test_churn_matches_model(void **state)
{
    (void)state;
    u64map m = U64MAP_INIT;
    static void *model[MODEL];
    size_t live = 0;
    srand(7);
    for (int step = 0; step < 200000; step++) {
        /* keys 1..MODEL-1, many consecutive: the common case for ids */
        uint64_t k = 1 + (uint64_t)rand() % (MODEL - 1);
        if (rand() % 3) {
            void *v = (void *)(uintptr_t)(k * 2 + 1 + (uint64_t)step * 2 * MODEL);
            live += model[k] == NULL;
            model[k] = v;
            assert_int_equal(u64map_put(&m, k, v), 0);
        } else {
            assert_ptr_equal(u64map_del(&m, k), model[k]);
            live -= model[k] != NULL;
            model[k] = NULL;
        }
        assert_int_equal(m.n, live);
        if (step % 5000 == 0)
            for (uint64_t j = 1; j < MODEL; j++)
                assert_ptr_equal(u64map_get(&m, j), model[j]);
    }
    u64map_free(&m);
}

static void test_iterate_and_large_ids(void **state)
{
    (void)state;
    u64map m = U64MAP_INIT;
    uint64_t ids[] = {1, UINT64_MAX, 1ull << 63, 12345, 16, 32, 48};
    size_t n = sizeof ids / sizeof ids[0];
    for (size_t i = 0; i < n; i++)
        assert_int_equal(u64map_put(&m, ids[i], val_of(ids[i])), 0);
    size_t it = 0, seen = 0;
    uint64_t k;
    void *v;
    while (u64map_next(&m, &it, &k, &v)) {
        assert_ptr_equal(v, val_of(k));
        seen++;
    }
    assert_int_equal(seen, n);
    assert_ptr_equal(u64map_get(&m, UINT64_MAX), val_of(UINT64_MAX));
    assert_null(u64map_get(&m, 2));
    u64map_free(&m);
}

static void test_reserved_and_empty(void **state)
{
    (void)state;
    u64map m = U64MAP_INIT;
    assert_null(u64map_get(&m, 5));
    assert_null(u64map_del(&m, 5));
    assert_int_equal(u64map_put(&m, 0, val_of(0)), CAIRN_ERR_INVALID);
    assert_int_equal(u64map_put(&m, 3, NULL), CAIRN_ERR_INVALID);
    assert_int_equal(m.n, 0);
    u64map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_churn_matches_model),
        cmocka_unit_test(test_iterate_and_large_ids),
        cmocka_unit_test(test_reserved_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
