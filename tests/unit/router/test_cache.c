/* Tests for src/router/cache.h: key -> range lookup, gaps, leader hints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "router/cache.h"

static router_range mk(uint64_t id, const char *start, const char *end)
{
    router_range r;
    memset(&r, 0, sizeof r);
    r.id = id;
    r.epoch = id * 10;
    r.start = (uint8_t *)start;
    r.start_len = strlen(start);
    r.end = (uint8_t *)end;
    r.end_len = strlen(end);
    r.nreplicas = 1;
    r.replicas[0] = 1;
    r.leader = 1;
    return r;
}

static const router_range *look(const router_table *t, const char *k)
{
    return router_cache_lookup(t, (const uint8_t *)k, strlen(k));
}

static router_cache *three_ranges(void)
{
    router_cache *c = router_cache_new(42);
    assert_non_null(c);
    assert_int_equal(router_cache_add_table(c, "t", 5, 0, 3,
                                            ROUTER_TABLE_READY),
                     0);
    /* Added out of order on purpose: seal sorts. */
    router_range r = mk(12, "m", "");
    assert_int_equal(router_cache_add_range(c, 5, &r), 0);
    r = mk(10, "", "c");
    assert_int_equal(router_cache_add_range(c, 5, &r), 0);
    r = mk(11, "c", "m");
    assert_int_equal(router_cache_add_range(c, 5, &r), 0);
    router_cache_seal(c);
    return c;
}

static void test_lookup(void **state)
{
    (void)state;
    router_cache *c = three_ranges();
    const router_table *t = router_cache_table(c, (const uint8_t *)"t", 1);
    assert_non_null(t);
    assert_int_equal(router_cache_revision(c), 42);
    assert_int_equal(look(t, "")->id, 10);
    assert_int_equal(look(t, "a")->id, 10);
    assert_int_equal(look(t, "bzzz")->id, 10);
    assert_int_equal(look(t, "c")->id, 11);
    assert_int_equal(look(t, "c\x01")->id, 11);
    assert_int_equal(look(t, "lzz")->id, 11);
    assert_int_equal(look(t, "m")->id, 12);
    assert_int_equal(look(t, "\xff\xff")->id, 12);
    const router_range *r = look(t, "a");
    r = router_cache_next(t, r);
    assert_int_equal(r->id, 11);
    r = router_cache_next(t, r);
    assert_int_equal(r->id, 12);
    assert_null(router_cache_next(t, r));
    assert_ptr_equal(router_cache_table_by_id(c, 5), t);
    assert_null(router_cache_table(c, (const uint8_t *)"u", 1));
    router_cache_free(c);
}

static void test_gap_is_not_routed(void **state)
{
    (void)state;
    router_cache *c = router_cache_new(1);
    assert_int_equal(router_cache_add_table(c, "g", 1, 0, 1,
                                            ROUTER_TABLE_READY),
                     0);
    router_range r = mk(1, "", "c");
    assert_int_equal(router_cache_add_range(c, 1, &r), 0);
    r = mk(2, "f", "");
    assert_int_equal(router_cache_add_range(c, 1, &r), 0);
    router_cache_seal(c);
    const router_table *t = router_cache_table_by_id(c, 1);
    assert_null(look(t, "d"));
    assert_int_equal(look(t, "f")->id, 2);
    assert_null(router_cache_next(t, look(t, "a")));
    router_cache_free(c);
}

static void test_duplicates_and_leaders(void **state)
{
    (void)state;
    router_cache *c = three_ranges();
    assert_int_equal(router_cache_add_table(c, "t", 6, 0, 3,
                                            ROUTER_TABLE_READY),
                     CAIRN_ERR_EXISTS);
    assert_int_equal(router_cache_add_table(c, "u", 5, 0, 3,
                                            ROUTER_TABLE_READY),
                     CAIRN_ERR_EXISTS);
    router_range r = mk(99, "a", "b");
    assert_int_equal(router_cache_add_range(c, 77, &r), CAIRN_ERR_INVALID);
    r = mk(11, "a", "b");
    assert_int_equal(router_cache_add_range(c, 5, &r), CAIRN_ERR_EXISTS);

    router_cache_set_leader(c, 11, 3, 7);
    assert_int_equal(router_cache_range(c, 11)->leader, 3);
    router_cache_set_leader(c, 11, 2, 6); /* older term: ignored */
    assert_int_equal(router_cache_range(c, 11)->leader, 3);
    router_cache_set_leader(c, 11, 2, 0); /* a hint without a term */
    assert_int_equal(router_cache_range(c, 11)->leader, 2);
    router_cache_set_leader(c, 999, 2, 0); /* unknown range: no effect */

    assert_int_equal(router_cache_add_node(c, 3, "127.0.0.1:7003"), 0);
    assert_string_equal(router_cache_node_addr(c, 3), "127.0.0.1:7003");
    assert_int_equal(router_cache_add_node(c, 3, "127.0.0.1:7004"), 0);
    assert_string_equal(router_cache_node_addr(c, 3), "127.0.0.1:7004");
    assert_null(router_cache_node_addr(c, 4));
    router_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_gap_is_not_routed),
        cmocka_unit_test(test_duplicates_and_leaders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
