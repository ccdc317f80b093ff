/* Tests for the last step of the router's TABLE.CREATE (tables.c,
 * router_table_mark_ready) against a real etcd (meta/etcd_fixture.h):
 * a table the controller already marked READY is success - the router
 * must not roll it back - while a dropped or replaced table is not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "meta/etcd_fixture.h"
#include "meta/meta.h"
#include "router/router_int.h"

static meta *open_meta(void **state, const char *prefix)
{
    meta *m;
    assert_int_equal(meta_open(&m, ((etcd_fixture *)*state)->client, prefix),
                     0);
    return m;
}

/* A CREATING table `name` on one live node. */
static meta_table creating(meta *m, const char *name)
{
    int64_t lease;
    uint64_t id;
    assert_int_equal(etcd_lease_grant(meta_etcd(m), 60, &lease), 0);
    assert_int_equal(meta_alloc_ids(m, META_ID_NODE, 1, &id), 0);
    assert_int_equal(meta_node_register(m, id, "127.0.0.1:1", 1000, lease), 0);
    meta_table_spec spec = {.name = name, .engine = META_ENGINE_BTREE,
                            .replicas = 1};
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    return t;
}

static int state_of(meta *m, const char *name)
{
    meta_table t;
    assert_int_equal(meta_table_get(m, name, &t), 0);
    return (int)t.state;
}

static void test_marks_ready(void **state)
{
    meta *m = open_meta(state, "/rt-ready");
    meta_table t = creating(m, "t");
    assert_int_equal(router_table_mark_ready(m, "t", t.id), 0);
    assert_int_equal(state_of(m, "t"), META_TABLE_READY);
    meta_close(m);
}

/* The controller finished the create first: success, table untouched. */
static void test_already_ready_is_success(void **state)
{
    meta *m = open_meta(state, "/rt-race");
    meta_table t = creating(m, "t");
    assert_int_equal(meta_table_set_ready(m, "t", t.id), 0); /* controller */
    assert_int_equal(router_table_mark_ready(m, "t", t.id), 0);
    assert_int_equal(state_of(m, "t"), META_TABLE_READY);
    meta_close(m);
}

/* Rolled back meanwhile, or the name now belongs to another table: the
 * create failed. */
static void test_dropped_or_replaced_fails(void **state)
{
    meta *m = open_meta(state, "/rt-gone");
    meta_table t = creating(m, "t");
    assert_int_equal(meta_table_drop(m, "t", NULL), 0);
    assert_int_equal(router_table_mark_ready(m, "t", t.id),
                     CAIRN_ERR_CONDITION);
    assert_int_equal(state_of(m, "t"), META_TABLE_DROPPING);
    meta_table u = creating(m, "u");
    assert_int_equal(meta_table_set_ready(m, "u", u.id), 0);
    assert_int_equal(router_table_mark_ready(m, "u", u.id + 1),
                     CAIRN_ERR_NO_TABLE);
    meta_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marks_ready),
        cmocka_unit_test(test_already_ready_is_success),
        cmocka_unit_test(test_dropped_or_replaced_fails),
    };
    return cmocka_run_group_tests(tests, etcd_fixture_setup,
                                  etcd_fixture_teardown);
}
