/* Tests for src/controller/ against a real etcd (meta/etcd_fixture.h):
 * the election hands over, an abandoned create is finished when its ranges
 * have leaders and rolled back when they do not, a drop waits for every
 * node that may hold a replica and is then finished. Each
 * test works under its own prefix. Nodes are registered at an address
 * where nothing listens, so every node RPC fails fast, as with a dead
 * node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "controller/controller.h"
#include "meta/etcd_fixture.h"
#include "meta/meta.h"

#define DEADLINE_MS 15000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static meta *open_meta(void **state, const char *prefix)
{
    meta *m;
    assert_int_equal(meta_open(&m, ((etcd_fixture *)*state)->client, prefix),
                     0);
    return m;
}

static controller *start(void **state, const char *prefix, const char *name)
{
    controller_config cfg = {.etcd = etcd_server_url(
                                 ((etcd_fixture *)*state)->server),
                             .prefix = prefix, .name = name,
                             .lease_ttl_s = 2, .interval_ms = 100,
                             .create_timeout_ms = 300};
    controller *c;
    assert_int_equal(controller_start(&cfg, &c), 0);
    return c;
}

/* One live node (id from the counter) on a dead address. */
static uint64_t add_node(meta *m)
{
    int64_t lease;
    uint64_t id;
    assert_int_equal(etcd_lease_grant(meta_etcd(m), 60, &lease), 0);
    assert_int_equal(meta_alloc_ids(m, META_ID_NODE, 1, &id), 0);
    assert_int_equal(meta_node_register(m, id, "127.0.0.1:1", 1000, lease), 0);
    return id;
}

/* What an operator does for a node gone forever: delete its record
 * (schema: P/nodes/<16 hex digits>). */
static void decommission(meta *m, const char *prefix, uint64_t id)
{
    char key[128];
    int n = snprintf(key, sizeof key, "%s/nodes/%016llx", prefix,
                     (unsigned long long)id);
    assert_int_equal(etcd_delete(meta_etcd(m), key, (size_t)n, NULL, 0, NULL),
                     0);
}

/* The table stays in `want` for `ms` (checked every 50 ms). */
static void stays_table(meta *m, const char *name, int want, int ms)
{
    int64_t until = now_ms() + ms;
    while (now_ms() < until) {
        meta_table t;
        assert_int_equal(meta_table_get(m, name, &t), 0);
        assert_int_equal(t.state, want);
        pause_ms(50);
    }
}

static meta_table create_table(meta *m, const char *name, int n_splits)
{
    static const uint8_t *const splits[] = {(const uint8_t *)"m"};
    static const size_t lens[] = {1};
    meta_table_spec spec = {.name = name, .engine = META_ENGINE_BTREE,
                            .replicas = 1, .splits = splits,
                            .split_lens = lens, .n_splits = (size_t)n_splits};
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    assert_int_equal(t.state, META_TABLE_CREATING);
    return t;
}

/* Wait until table `name` is in `want` (-1: gone). */
static void wait_table(meta *m, const char *name, int want)
{
    int64_t until = now_ms() + DEADLINE_MS;
    for (;;) {
        meta_table t;
        int rc = meta_table_get(m, name, &t);
        if ((want < 0 && rc == CAIRN_ERR_NO_TABLE) ||
            (want >= 0 && rc == 0 && (int)t.state == want))
            return;
        assert_true(now_ms() < until);
        pause_ms(50);
    }
}

/* Until range `id` has no leader record. */
static void wait_no_leader(meta *m, uint64_t id)
{
    int64_t until = now_ms() + DEADLINE_MS;
    for (;;) {
        meta_leader l;
        int rc = meta_leader_get(m, id, &l);
        if (rc == CAIRN_ERR_NOT_FOUND)
            return;
        assert_true(rc == 0 && now_ms() < until);
        pause_ms(50);
    }
}

static void wait_active(controller *c, bool want)
{
    int64_t until = now_ms() + DEADLINE_MS;
    while (controller_is_active(c) != want) {
        assert_true(now_ms() < until);
        pause_ms(20);
    }
}

static void test_election_hands_over(void **state)
{
    meta *m = open_meta(state, "/ctl-election");
    controller *a = start(state, "/ctl-election", "a");
    wait_active(a, true);
    controller *b = start(state, "/ctl-election", "b");
    pause_ms(500); /* b campaigns and must lose while a holds the lease */
    assert_false(controller_is_active(b));
    char name[32];
    assert_int_equal(meta_election_leader(m, name, sizeof name), 0);
    assert_string_equal(name, "a");
    controller_stop(a); /* resigns: b takes over without waiting the TTL */
    wait_active(b, true);
    assert_int_equal(meta_election_leader(m, name, sizeof name), 0);
    assert_string_equal(name, "b");
    controller_stop(b);
    meta_close(m);
}

/* Every range led: the create had succeeded, only READY was missing. */
static void test_create_finished(void **state)
{
    meta *m = open_meta(state, "/ctl-finish");
    add_node(m);
    meta_table t = create_table(m, "t", 1);
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    size_t n = 0;
    const meta_range *rs = meta_map_ranges(map, t.id, &n);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(meta_leader_set(m, rs[i].id, rs[i].replicas[0], 1), 0);
    meta_map_release(map);
    controller *c = start(state, "/ctl-finish", "c");
    wait_table(m, "t", META_TABLE_READY);
    controller_stop(c);
    meta_close(m);
}

/* No leader ever (the node is dead): retried, then rolled back - never
 * left half visible - and the metadata deleted once the node that may
 * hold a replica is decommissioned. */
static void test_create_rolled_back(void **state)
{
    meta *m = open_meta(state, "/ctl-rollback");
    uint64_t node = add_node(m);
    create_table(m, "t", 0);
    controller *c = start(state, "/ctl-rollback", "c");
    wait_table(m, "t", META_TABLE_DROPPING);
    decommission(m, "/ctl-rollback", node);
    wait_table(m, "t", -1);
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    assert_int_equal(meta_map_table_count(map), 0);
    meta_map_release(map);
    controller_stop(c);
    meta_close(m);
}

/* A big create interrupted while its ranges were being written (etcd
 * takes them in several transactions): the ranges present all have
 * leaders, yet the table must never be marked READY with a hole in its
 * key space. It is rolled back, and its metadata - every range written,
 * every leader record - deleted once its node is decommissioned. */
static void test_partial_create_rolled_back(void **state)
{
    enum { SPLITS = 300, MISSING = 50 };
    meta *m = open_meta(state, "/ctl-partial");
    uint64_t node = add_node(m);
    uint8_t *keys[SPLITS];
    size_t lens[SPLITS];
    for (int i = 0; i < SPLITS; i++) {
        keys[i] = malloc(8);
        lens[i] = (size_t)snprintf((char *)keys[i], 8, "k%04d", i);
    }
    meta_table_spec spec = {.name = "t", .engine = META_ENGINE_BTREE,
                            .replicas = 1,
                            .splits = (const uint8_t *const *)keys,
                            .split_lens = lens, .n_splits = SPLITS};
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    size_t n = 0;
    const meta_range *rs = meta_map_ranges(map, t.id, &n);
    assert_int_equal(n, SPLITS + 1);
    meta_leader ls[SPLITS + 1];
    int st[SPLITS + 1];
    for (size_t i = 0; i < n; i++)
        ls[i] = (meta_leader){.range_id = rs[i].id, .node_id = node,
                              .term = 1};
    assert_int_equal(meta_leader_set_many(m, ls, n, st), 0);
    /* the last transactions never happened: their ranges are missing */
    char from[128], to[128];
    int fl = snprintf(from, sizeof from, "/ctl-partial/ranges/%016llx/%016llx",
                      (unsigned long long)t.id,
                      (unsigned long long)rs[n - MISSING].id);
    int tl = snprintf(to, sizeof to, "/ctl-partial/ranges/%016llx0",
                      (unsigned long long)t.id);
    meta_map_release(map);
    int64_t deleted = 0;
    assert_int_equal(etcd_delete(meta_etcd(m), from, (size_t)fl, to,
                                 (size_t)tl, &deleted), 0);
    assert_int_equal(deleted, MISSING);
    assert_int_equal(meta_load(m, &map), 0);
    assert_false(meta_map_ranges_cover(map, t.id));
    meta_map_release(map);

    controller *c = start(state, "/ctl-partial", "c");
    wait_table(m, "t", META_TABLE_DROPPING); /* READY would never get here */
    decommission(m, "/ctl-partial", node);
    wait_table(m, "t", -1);
    assert_int_equal(meta_load(m, &map), 0);
    meta_map_ranges(map, t.id, &n);
    assert_int_equal(n, 0);
    meta_map_release(map);
    /* the leader records go after the table (meta_table_delete) */
    wait_no_leader(m, ls[0].range_id);
    wait_no_leader(m, ls[SPLITS - MISSING].range_id);
    controller_stop(c);
    for (int i = 0; i < SPLITS; i++)
        free(keys[i]);
    meta_close(m);
}

/* A drop never deletes the metadata while a replica may remain on a known
 * node (here live but not answering): the table stays DROPPING, and goes
 * once the node is decommissioned. (Deletion on real nodes:
 * tests/cluster/test_drop.py.) */
static void test_drop_finished(void **state)
{
    meta *m = open_meta(state, "/ctl-drop");
    uint64_t node = add_node(m);
    meta_table t = create_table(m, "t", 1);
    assert_int_equal(meta_table_set_ready(m, "t", t.id), 0);
    assert_int_equal(meta_table_drop(m, "t", NULL), 0);
    controller *c = start(state, "/ctl-drop", "c");
    wait_active(c, true);
    stays_table(m, "t", META_TABLE_DROPPING, 1000); /* ten passes */
    decommission(m, "/ctl-drop", node);
    wait_table(m, "t", -1);
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    size_t n = 1;
    meta_map_ranges(map, t.id, &n);
    assert_int_equal(n, 0);
    meta_map_release(map);
    controller_stop(c);
    meta_close(m);
}

/* A standby does nothing: a CREATING table stays as it is. */
static void test_standby_writes_nothing(void **state)
{
    meta *m = open_meta(state, "/ctl-standby");
    add_node(m);
    int64_t lease;
    assert_int_equal(etcd_lease_grant(meta_etcd(m), 60, &lease), 0);
    const char *key = "/ctl-standby/controller";
    assert_int_equal(etcd_put(meta_etcd(m), key, strlen(key), "other", 5,
                              lease, NULL), 0);
    create_table(m, "t", 0);
    controller *c = start(state, "/ctl-standby", "c");
    pause_ms(1500); /* five create timeouts */
    assert_false(controller_is_active(c));
    meta_table t;
    assert_int_equal(meta_table_get(m, "t", &t), 0);
    assert_int_equal(t.state, META_TABLE_CREATING);
    controller_stop(c);
    etcd_lease_revoke(meta_etcd(m), lease);
    meta_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_election_hands_over),
        cmocka_unit_test(test_create_finished),
        cmocka_unit_test(test_create_rolled_back),
        cmocka_unit_test(test_partial_create_rolled_back),
        cmocka_unit_test(test_drop_finished),
        cmocka_unit_test(test_standby_writes_nothing),
    };
    return cmocka_run_group_tests(tests, etcd_fixture_setup,
                                  etcd_fixture_teardown);
}
