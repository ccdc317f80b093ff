/* Tests for src/meta/meta.h against a real etcd (etcd_fixture.h). Each
 * test works under its own prefix, so they share one etcd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "meta/etcd_fixture.h"
#include "meta/meta.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static meta *open_meta(void **state, const char *prefix)
{
    meta *m;
    assert_int_equal(meta_open(&m, ((etcd_fixture *)*state)->client, prefix), 0);
    return m;
}

/* Register nodes 1..n as live under one long lease; returns the lease. */
static int64_t add_nodes(meta *m, int n)
{
    int64_t lease;
    assert_int_equal(etcd_lease_grant(meta_etcd(m), 60, &lease), 0);
    for (int i = 0; i < n; i++) {
        uint64_t id;
        char addr[32];
        assert_int_equal(meta_alloc_ids(m, META_ID_NODE, 1, &id), 0);
        snprintf(addr, sizeof addr, "127.0.0.1:%d", 7000 + (int)id);
        assert_int_equal(meta_node_register(m, id, addr, 1000, lease), 0);
    }
    return lease;
}

static void test_open_rules(void **state)
{
    etcd *c = ((etcd_fixture *)*state)->client;
    meta *m;
    assert_int_equal(meta_open(&m, c, "nodash"), CAIRN_ERR_INVALID);
    assert_int_equal(meta_open(&m, c, "/trailing/"), CAIRN_ERR_INVALID);
    assert_int_equal(meta_open(&m, c, NULL), 0);
    assert_string_equal(meta_prefix(m), "/cairn");
    meta_close(m);
}

typedef struct alloc_arg {
    meta *m;
    uint64_t ids[100];
} alloc_arg;

static void *alloc_thread(void *p)
{
    alloc_arg *a = p;
    for (int i = 0; i < 50; i++) {
        uint64_t first;
        if (meta_alloc_ids(a->m, META_ID_RANGE, 2, &first) != 0)
            return NULL;
        a->ids[2 * i] = first;
        a->ids[2 * i + 1] = first + 1;
    }
    return p;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Two threads allocate at once: every id is handed out exactly once. */
static void test_id_allocation_concurrent(void **state)
{
    meta *m = open_meta(state, "/t-ids");
    alloc_arg a = {.m = m}, b = {.m = m};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, alloc_thread, &a);
    pthread_create(&tb, NULL, alloc_thread, &b);
    void *ra, *rb;
    pthread_join(ta, &ra);
    pthread_join(tb, &rb);
    assert_non_null(ra);
    assert_non_null(rb);
    uint64_t all[200];
    memcpy(all, a.ids, sizeof a.ids);
    memcpy(all + 100, b.ids, sizeof b.ids);
    qsort(all, 200, sizeof all[0], cmp_u64);
    for (int i = 0; i < 200; i++)
        assert_int_equal(all[i], (uint64_t)i + 1); /* 1..200, no gap, no dup */
    uint64_t next;
    assert_int_equal(meta_alloc_ids(m, META_ID_NODE, 1, &next), 0);
    assert_int_equal(next, 1); /* counters are per kind */
    assert_int_equal(meta_alloc_ids(m, META_ID_NODE, 0, &next), CAIRN_ERR_INVALID);
    meta_close(m);
}

static void test_table_lifecycle(void **state)
{
    meta *m = open_meta(state, "/t-life");
    int64_t lease = add_nodes(m, 4);
    meta_table_spec spec = {.name = "users", .engine = META_ENGINE_LSM,
                            .replicas = 3};
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    assert_int_equal(t.id, 1);
    assert_int_equal(t.state, META_TABLE_CREATING);
    assert_int_equal(meta_table_create(m, &spec, NULL), CAIRN_ERR_EXISTS);

    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    const meta_range *r;
    /* creating: not routable yet */
    assert_int_equal(meta_map_route(map, "users", "k", 1, &r), CAIRN_ERR_NO_TABLE);
    size_t n;
    r = meta_map_ranges(map, t.id, &n);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].start_len, 0);
    assert_int_equal(r[0].end_len, 0);
    assert_int_equal(r[0].epoch, 1);
    assert_int_equal(r[0].n_replicas, 3);
    assert_true(r[0].replicas[0] != r[0].replicas[1] &&
                r[0].replicas[1] != r[0].replicas[2] &&
                r[0].replicas[0] != r[0].replicas[2]);
    meta_map_release(map);

    assert_int_equal(meta_table_set_ready(m, "users", t.id + 1), CAIRN_ERR_NO_TABLE);
    assert_int_equal(meta_table_abandon(m, "users", t.id + 1), CAIRN_ERR_NO_TABLE);
    assert_int_equal(meta_table_set_ready(m, "users", t.id), 0);
    assert_int_equal(meta_table_set_ready(m, "users", t.id), CAIRN_ERR_CONDITION);
    /* a finished create is not rolled back */
    assert_int_equal(meta_table_abandon(m, "users", t.id), CAIRN_ERR_CONDITION);
    assert_int_equal(meta_load(m, &map), 0);
    assert_int_equal(meta_map_route(map, "users", "k", 1, &r), 0);
    uint64_t range_id = r->id;
    meta_map_release(map);
    assert_int_equal(meta_leader_set(m, range_id, 2, 1), 0);

    /* a ready table cannot be deleted without being dropped first */
    assert_int_equal(meta_table_delete(m, "users", t.id), CAIRN_ERR_CONDITION);
    meta_table dropped;
    assert_int_equal(meta_table_drop(m, "users", &dropped), 0);
    assert_int_equal(dropped.state, META_TABLE_DROPPING);
    assert_int_equal(meta_table_drop(m, "users", NULL), CAIRN_ERR_NO_TABLE);
    assert_int_equal(meta_load(m, &map), 0);
    assert_int_equal(meta_map_route(map, "users", "k", 1, &r), CAIRN_ERR_NO_TABLE);
    meta_map_release(map);
    /* the name stays taken until the metadata is gone */
    assert_int_equal(meta_table_create(m, &spec, NULL), CAIRN_ERR_EXISTS);
    assert_int_equal(meta_table_delete(m, "users", t.id), 0);
    assert_int_equal(meta_table_get(m, "users", &t), CAIRN_ERR_NO_TABLE);
    assert_int_equal(meta_load(m, &map), 0);
    assert_int_equal(meta_map_table_count(map), 0);
    meta_map_ranges(map, dropped.id, &n);
    assert_int_equal(n, 0);
    assert_null(meta_map_leader(map, range_id));
    meta_map_release(map);

    /* recreated: a new table id and new range ids, never reused */
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    assert_int_equal(t.id, 2);
    assert_int_equal(meta_load(m, &map), 0);
    r = meta_map_ranges(map, t.id, &n);
    assert_int_equal(n, 1);
    assert_true(r[0].id > range_id);
    meta_map_release(map);
    assert_int_equal(meta_table_drop(m, "nope", NULL), CAIRN_ERR_NO_TABLE);
    assert_int_equal(meta_table_get(m, "bad name", &t), CAIRN_ERR_INVALID);
    etcd_lease_revoke(meta_etcd(m), lease);
    meta_close(m);
}

static void test_create_rules_and_placement(void **state)
{
    meta *m = open_meta(state, "/t-place");
    meta_table_spec spec = {.name = "t", .replicas = 3};
    /* no live nodes yet */
    assert_int_equal(meta_table_create(m, &spec, NULL), CAIRN_ERR_TRYAGAIN);
    int64_t lease = add_nodes(m, 5);
    const char *bad_names[] = {"", "a b", "x/y", "caf\xc3\xa9"};
    for (size_t i = 0; i < 4; i++) {
        spec.name = bad_names[i];
        assert_int_equal(meta_table_create(m, &spec, NULL), CAIRN_ERR_INVALID);
    }
    spec.name = "t";
    spec.replicas = 2;
    assert_int_equal(meta_table_create(m, &spec, NULL), CAIRN_ERR_INVALID);
    spec.replicas = 3;
    const uint8_t *unsorted[] = {(const uint8_t *)"m", (const uint8_t *)"c"};
    size_t lens[] = {1, 1};
    spec.splits = unsorted;
    spec.split_lens = lens;
    spec.n_splits = 2;
    assert_int_equal(meta_table_create(m, &spec, NULL), CAIRN_ERR_INVALID);

    /* pre-split into 4 ranges; 4 ranges x 3 replicas over 5 nodes */
    const uint8_t *splits[] = {(const uint8_t *)"c", (const uint8_t *)"m",
                               (const uint8_t *)"t"};
    size_t slens[] = {1, 1, 1};
    spec.splits = splits;
    spec.split_lens = slens;
    spec.n_splits = 3;
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    assert_int_equal(meta_table_set_ready(m, "t", t.id), 0);
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    size_t n;
    const meta_range *r = meta_map_ranges(map, t.id, &n);
    assert_int_equal(n, 4);
    int per_node[6] = {0};
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < r[i].n_replicas; k++)
            per_node[r[i].replicas[k]]++;
    for (int id = 1; id <= 5; id++) /* 12 replicas over 5 nodes: 2 or 3 */
        assert_true(per_node[id] >= 2 && per_node[id] <= 3);
    const meta_range *hit;
    assert_int_equal(meta_map_route(map, "t", "b", 1, &hit), 0);
    assert_ptr_equal(hit, &r[0]);
    assert_int_equal(meta_map_route(map, "t", "m", 1, &hit), 0);
    assert_ptr_equal(hit, &r[2]);
    assert_int_equal(meta_map_route(map, "t", "zz", 2, &hit), 0);
    assert_ptr_equal(hit, &r[3]);
    meta_map_release(map);

    /* replication 5 on 5 nodes works; a dead node is not chosen */
    spec.name = "five";
    spec.replicas = 5;
    spec.n_splits = 0;
    assert_int_equal(meta_table_create(m, &spec, NULL), 0);
    etcd_lease_revoke(meta_etcd(m), lease); /* every node gone */
    spec.name = "six";
    spec.replicas = 1;
    assert_int_equal(meta_table_create(m, &spec, NULL), CAIRN_ERR_TRYAGAIN);
    meta_close(m);
}

static void test_leader_term_compare(void **state)
{
    meta *m = open_meta(state, "/t-lead");
    meta_leader l;
    assert_int_equal(meta_leader_get(m, 5, &l), CAIRN_ERR_NOT_FOUND);
    assert_int_equal(meta_leader_set(m, 5, 1, 3), 0);
    assert_int_equal(meta_leader_set(m, 5, 1, 3), 0); /* idempotent */
    assert_int_equal(meta_leader_set(m, 5, 2, 3), CAIRN_ERR_CONDITION);
    assert_int_equal(meta_leader_set(m, 5, 2, 2), CAIRN_ERR_CONDITION);
    assert_int_equal(meta_leader_set(m, 5, 2, 4), 0);
    /* the old leader of term 3 comes back late: it must not overwrite */
    assert_int_equal(meta_leader_set(m, 5, 1, 3), CAIRN_ERR_CONDITION);
    assert_int_equal(meta_leader_get(m, 5, &l), 0);
    assert_int_equal(l.node_id, 2);
    assert_int_equal(l.term, 4);
    meta_close(m);
}

static void test_range_epoch_compare(void **state)
{
    meta *m = open_meta(state, "/t-epoch");
    int64_t lease = add_nodes(m, 4);
    meta_table_spec spec = {.name = "t", .replicas = 3};
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    size_t n;
    const meta_range *cur = meta_map_ranges(map, t.id, &n);
    meta_range a, b;
    /* two controllers read the same range */
    assert_int_equal(meta_range_get(m, t.id, cur[0].id, &a), 0);
    assert_int_equal(meta_range_get(m, t.id, cur[0].id, &b), 0);
    meta_map_release(map);
    uint64_t nodes_a[] = {1, 2, 4}, nodes_b[] = {1, 3, 4};
    assert_int_equal(meta_range_set_replicas(m, &a, nodes_a, 3), 0);
    assert_int_equal(meta_range_set_replicas(m, &b, nodes_b, 3), CAIRN_ERR_CONDITION);
    meta_range now;
    assert_int_equal(meta_range_get(m, t.id, a.id, &now), 0);
    assert_int_equal(now.epoch, 2);
    assert_int_equal(now.replicas[1], 2);
    meta_range same = now;
    assert_int_equal(meta_range_update(m, &now, &same), CAIRN_ERR_STALE_EPOCH);
    assert_int_equal(meta_range_get(m, t.id, 999, &b), CAIRN_ERR_RANGE_NOT_FOUND);
    meta_range_clear(&a);
    meta_range_clear(&b);
    meta_range_clear(&now);
    etcd_lease_revoke(meta_etcd(m), lease);
    meta_close(m);
}

/* A move's records (meta_relocation) and its switch: the source's record
 * replaced by the destination's in one compare-and-swap, then the marker
 * cleared at the same epoch. */
static void test_relocation_switch_and_end(void **state)
{
    meta *m = open_meta(state, "/t-reloc");
    int64_t lease = add_nodes(m, 4);
    meta_table_spec spec = {.name = "t", .replicas = 3};
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    size_t n;
    uint64_t src_id = meta_map_ranges(map, t.id, &n)[0].id;
    meta_map_release(map);
    meta_relocation r = {.range_id = src_id, .table_id = t.id,
                         .nodes = {2, 3, 4}, .n_nodes = 3, .by = "test"};
    assert_int_equal(meta_relocation_start(m, &r), 0);
    assert_int_equal(meta_relocation_start(m, &r), CAIRN_ERR_EXISTS);
    meta_relocation got;
    assert_int_equal(meta_relocation_get(m, src_id, &got), 0);
    assert_int_equal(got.step, META_RELOC_CREATE);
    assert_int_equal(got.n_nodes, 3);
    got.step = META_RELOC_FENCE;
    got.dest = 77;
    assert_int_equal(meta_relocation_put(m, &got, got.mod_revision), 0);
    assert_int_equal(meta_relocation_put(m, &got, got.mod_revision),
                     CAIRN_ERR_CONDITION); /* as read: no longer */

    meta_range src, dest;
    assert_int_equal(meta_range_get(m, t.id, src_id, &src), 0);
    assert_int_equal(meta_range_copy(&dest, &src), 0);
    dest.id = 77;
    dest.epoch = 2;
    dest.state = META_RANGE_MIGRATING;
    dest.from = src_id;
    dest.from_epoch = src.epoch + 1;
    memcpy(dest.from_replicas, src.replicas, sizeof src.replicas);
    dest.n_from = src.n_replicas;
    dest.n_replicas = 3;
    dest.replicas[0] = 2, dest.replicas[1] = 3, dest.replicas[2] = 4;
    meta_range other = dest;
    other.from = 999; /* not this source */
    assert_int_equal(meta_range_switch(m, &src, &other), CAIRN_ERR_INVALID);
    assert_int_equal(meta_range_switch(m, &src, &dest), 0);
    assert_int_equal(meta_range_switch(m, &src, &dest), CAIRN_ERR_CONDITION);
    meta_range now;
    assert_int_equal(meta_range_get(m, t.id, src_id, &now),
                     CAIRN_ERR_RANGE_NOT_FOUND);
    assert_int_equal(meta_range_get(m, t.id, 77, &now), 0);
    assert_int_equal(now.state, META_RANGE_MIGRATING);
    assert_int_equal(now.from_epoch, src.epoch + 1);
    assert_int_equal(now.n_from, src.n_replicas);
    /* the table's ranges still cover the key space: routing finds 77 */
    assert_int_equal(meta_load(m, &map), 0);
    assert_true(meta_map_ranges_cover(map, t.id));
    assert_non_null(meta_map_relocation(map, src_id));
    assert_int_equal(meta_map_relocation_count(map), 1);
    meta_map_release(map);
    assert_int_equal(meta_range_end_migration(m, &now), 0);
    assert_int_equal(meta_range_end_migration(m, &now), CAIRN_ERR_CONDITION);
    meta_range_clear(&now);
    assert_int_equal(meta_range_get(m, t.id, 77, &now), 0);
    assert_int_equal(now.state, META_RANGE_NORMAL);
    assert_int_equal(now.epoch, 2);
    assert_int_equal(now.n_from, 0);
    assert_int_equal(meta_relocation_get(m, src_id, &got), 0);
    assert_int_equal(meta_relocation_delete(m, src_id, got.mod_revision), 0);
    assert_int_equal(meta_relocation_get(m, src_id, &got),
                     CAIRN_ERR_NOT_FOUND);
    meta_range_clear(&now);
    meta_range_clear(&src);
    meta_range_clear(&dest);
    etcd_lease_revoke(meta_etcd(m), lease);
    meta_close(m);
}

static void test_node_keeper(void **state)
{
    meta *m = open_meta(state, "/t-keep");
    uint64_t id;
    assert_int_equal(meta_alloc_ids(m, META_ID_NODE, 1, &id), 0);
    meta_node_keeper *k;
    /* TTL 2 s, kept alive every ~0.7 s: stays live across 3 s */
    assert_int_equal(meta_node_keeper_start(m, id, "127.0.0.1:7100", 5, 2, &k), 0);
    assert_int_equal(meta_node_keeper_wait(k, 5000), 0);
    sleep(3); /* longer than the TTL: only keepalives keep it */
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    assert_true(meta_map_node(map, id)->live);
    assert_string_equal(meta_map_node(map, id)->addr, "127.0.0.1:7100");
    meta_map_release(map);

    /* the lease is lost (as after a long etcd outage): the keeper grants
     * a new one and registers again */
    char key[64];
    snprintf(key, sizeof key, "/t-keep/live/%016llx", (unsigned long long)id);
    etcd_kv kv;
    assert_int_equal(etcd_get(meta_etcd(m), key, strlen(key), 0, &kv, NULL), 0);
    int64_t old_lease = kv.lease;
    etcd_kv_free(&kv);
    assert_int_equal(etcd_lease_revoke(meta_etcd(m), old_lease), 0);
    int64_t deadline = now_ms() + 5000;
    int64_t new_lease = 0;
    while (now_ms() < deadline && new_lease == 0) {
        if (etcd_get(meta_etcd(m), key, strlen(key), 0, &kv, NULL) == 0) {
            new_lease = kv.lease;
            etcd_kv_free(&kv);
        } else {
            usleep(20 * 1000);
        }
    }
    assert_true(new_lease != 0 && new_lease != old_lease);
    meta_node_keeper_stop(k, true); /* revoke: gone at once */
    assert_int_equal(meta_load(m, &map), 0);
    assert_false(meta_map_node(map, id)->live);
    assert_non_null(meta_map_node(map, id)); /* the record stays */
    meta_map_release(map);

    /* a node that dies (no revoke, no keepalive): its liveness key goes
     * when the lease expires */
    assert_int_equal(meta_node_keeper_start(m, id, "127.0.0.1:7100", 5, 2, &k), 0);
    assert_int_equal(meta_node_keeper_wait(k, 5000), 0);
    meta_node_keeper_stop(k, false);
    deadline = now_ms() + 10000;
    bool live = true;
    while (live && now_ms() < deadline) {
        assert_int_equal(meta_load(m, &map), 0);
        live = meta_map_node(map, id)->live;
        meta_map_release(map);
        if (live)
            usleep(100 * 1000);
    }
    assert_false(live);
    meta_close(m);
}

typedef struct changes {
    atomic_int count;
} changes;

static void on_change(void *arg, int64_t rev)
{
    (void)rev;
    atomic_fetch_add(&((changes *)arg)->count, 1);
}

/* Wait until the cache shows table `name` in `state` (-1 = absent). */
static bool cache_wait(meta_cache *c, const char *name, int state)
{
    int64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        meta_map *map = meta_cache_acquire(c);
        const meta_table *t = meta_map_table(map, name);
        bool ok = state < 0 ? t == NULL : t && (int)t->state == state;
        meta_map_release(map);
        if (ok)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

static void test_cache_follows_changes(void **state)
{
    meta *m = open_meta(state, "/t-cache");
    int64_t lease = add_nodes(m, 1);
    changes ch = {0};
    meta_cache *c;
    assert_int_equal(meta_cache_start(m, on_change, &ch, &c), 0);
    meta_map *before = meta_cache_acquire(c);
    meta_table_spec spec = {.name = "t", .replicas = 1};
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    assert_true(cache_wait(c, "t", META_TABLE_CREATING));
    assert_int_equal(meta_table_set_ready(m, "t", t.id), 0);
    assert_true(cache_wait(c, "t", META_TABLE_READY));
    meta_map *map = meta_cache_acquire(c);
    const meta_range *r;
    assert_int_equal(meta_map_route(map, "t", "key", 3, &r), 0);
    meta_map_release(map);
    /* an old snapshot stays valid and unchanged while held */
    assert_null(meta_map_table(before, "t"));
    meta_map_release(before);
    assert_int_equal(meta_table_drop(m, "t", NULL), 0);
    assert_true(cache_wait(c, "t", META_TABLE_DROPPING));
    assert_int_equal(meta_table_delete(m, "t", t.id), 0);
    assert_true(cache_wait(c, "t", -1));
    assert_true(atomic_load(&ch.count) >= 4);
    assert_int_equal(meta_cache_refresh(c), 0);
    meta_cache_stop(c);
    etcd_lease_revoke(meta_etcd(m), lease);
    meta_close(m);
}

static void test_backup_restore(void **state)
{
    meta *m = open_meta(state, "/t-bak");
    int64_t lease = add_nodes(m, 3);
    meta_table_spec spec = {.name = "t", .replicas = 3};
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    assert_int_equal(meta_table_set_ready(m, "t", t.id), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/meta.backup", ((etcd_fixture *)*state)->dir);
    size_t n_saved, n_loaded;
    assert_int_equal(meta_backup(m, path, &n_saved), 0);
    /* 3 nodes + node counter + table + table/range counters + 1 range */
    assert_int_equal(n_saved, 8);

    meta *dst = open_meta(state, "/t-bak-restored");
    assert_int_equal(meta_restore(dst, path, &n_loaded), 0);
    assert_int_equal(n_loaded, n_saved);
    assert_int_equal(meta_restore(dst, path, NULL), CAIRN_ERR_EXISTS);
    meta_map *a, *b;
    assert_int_equal(meta_load(m, &a), 0);
    assert_int_equal(meta_load(dst, &b), 0);
    assert_int_equal(meta_map_table(b, "t")->id, t.id);
    assert_int_equal(meta_map_table(b, "t")->state, META_TABLE_READY);
    size_t na, nb;
    const meta_range *ra = meta_map_ranges(a, t.id, &na);
    const meta_range *rb = meta_map_ranges(b, t.id, &nb);
    assert_int_equal(na, nb);
    assert_int_equal(ra[0].id, rb[0].id);
    assert_memory_equal(ra[0].replicas, rb[0].replicas, sizeof ra[0].replicas);
    assert_int_equal(meta_map_node_count(b), 3);
    assert_false(meta_map_node_at(b, 0)->live); /* liveness is not restored */
    meta_map_release(a);
    meta_map_release(b);
    /* the counters came back: ids are not reused after a restore */
    uint64_t id;
    assert_int_equal(meta_alloc_ids(dst, META_ID_TABLE, 1, &id), 0);
    assert_int_equal(id, t.id + 1);

    /* a truncated backup is refused before anything is written */
    FILE *f = fopen(path, "r+");
    assert_int_equal(ftruncate(fileno(f), 60), 0);
    fclose(f);
    meta *third = open_meta(state, "/t-bak-third");
    assert_int_equal(meta_restore(third, path, NULL), CAIRN_ERR_CORRUPT);
    meta_map *c;
    assert_int_equal(meta_load(third, &c), 0);
    assert_int_equal(meta_map_table_count(c), 0);
    meta_map_release(c);
    meta_close(third);
    meta_close(dst);
    etcd_lease_revoke(meta_etcd(m), lease);
    meta_close(m);
}

/* Wait until exactly one of a, b leads; returns it (NULL on timeout). */
static meta_election *one_leader(meta_election *a, meta_election *b)
{
    int64_t deadline = now_ms() + 8000;
    while (now_ms() < deadline) {
        bool la = a && meta_election_is_leader(a);
        bool lb = b && meta_election_is_leader(b);
        assert_false(la && lb); /* never two at once */
        if (la || lb)
            return la ? a : b;
        usleep(10 * 1000);
    }
    return NULL;
}

static void test_controller_election(void **state)
{
    meta *m = open_meta(state, "/t-elect");
    meta_election *a, *b;
    char name[64];
    assert_int_equal(meta_election_leader(m, name, sizeof name), CAIRN_ERR_NOT_FOUND);
    assert_int_equal(meta_election_start(m, "ctl-a", 2, &a), 0);
    assert_int_equal(meta_election_wait(a, 5000), 0);
    assert_int_equal(meta_election_start(m, "ctl-b", 2, &b), 0);
    /* b waits while a keeps its lease alive (longer than the TTL) */
    for (int64_t end = now_ms() + 2500; now_ms() < end;) {
        assert_ptr_equal(one_leader(a, b), a);
        usleep(50 * 1000);
    }
    assert_int_equal(meta_election_leader(m, name, sizeof name), 0);
    assert_string_equal(name, "ctl-a");
    /* a resigns: b takes over */
    meta_election_stop(a);
    assert_ptr_equal(one_leader(NULL, b), b);
    assert_int_equal(meta_election_leader(m, name, sizeof name), 0);
    assert_string_equal(name, "ctl-b");
    meta_election_stop(b);
    meta_close(m);
}

/* More keys than one load page (1000): the load pages through them, all
 * at one revision. Written 125 per transaction to stay quick. */
static void test_load_pages(void **state)
{
    meta *m = open_meta(state, "/t-pages");
    uint64_t id = 1;
    for (int batch = 0; batch < 9; batch++) {
        etcd_txn *t = etcd_txn_new();
        for (int i = 0; i < 125; i++, id++) {
            char key[64], val[64];
            snprintf(key, sizeof key, "/t-pages/nodes/%016llx", (unsigned long long)id);
            snprintf(val, sizeof val, "{\"addr\":\"n%llu:1\",\"capacity\":1}",
                     (unsigned long long)id);
            assert_int_equal(etcd_txn_put(t, true, key, strlen(key), val,
                                          strlen(val), 0), 0);
        }
        etcd_txn_result r;
        assert_int_equal(etcd_txn_commit(meta_etcd(m), t, &r), 0);
        assert_true(r.succeeded);
        etcd_txn_result_free(&r);
        etcd_txn_free(t);
    }
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    assert_int_equal(meta_map_node_count(map), 1125);
    for (size_t i = 0; i < 1125; i++)
        assert_int_equal(meta_map_node_at(map, i)->id, i + 1);
    assert_int_equal(meta_map_skipped(map), 0);
    meta_map_release(map);
    meta_close(m);
}

typedef struct create_arg {
    meta *m;
    const char *name;
    int rc;
    meta_table t;
} create_arg;

static void *create_thread(void *p)
{
    create_arg *a = p;
    meta_table_spec spec = {.name = a->name, .replicas = 1};
    a->rc = meta_table_create(a->m, &spec, &a->t);
    return NULL;
}

static void race_creates(create_arg *a, create_arg *b)
{
    pthread_t ta, tb;
    pthread_create(&ta, NULL, create_thread, a);
    pthread_create(&tb, NULL, create_thread, b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
}

/* Two controllers create at once: the same name -> exactly one wins;
 * different names -> both win, with distinct table and range ids (the
 * counters' compares make one retry). */
static void test_concurrent_creates(void **state)
{
    meta *m = open_meta(state, "/t-race");
    int64_t lease = add_nodes(m, 1);
    for (int round = 0; round < 3; round++) {
        char name[16];
        snprintf(name, sizeof name, "same%d", round);
        create_arg a = {.m = m, .name = name}, b = {.m = m, .name = name};
        race_creates(&a, &b);
        assert_true((a.rc == 0 && b.rc == CAIRN_ERR_EXISTS) ||
                    (b.rc == 0 && a.rc == CAIRN_ERR_EXISTS));
    }
    create_arg a = {.m = m, .name = "left"}, b = {.m = m, .name = "right"};
    race_creates(&a, &b);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_true(a.t.id != b.t.id);
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    size_t na, nb;
    const meta_range *ra = meta_map_ranges(map, a.t.id, &na);
    const meta_range *rb = meta_map_ranges(map, b.t.id, &nb);
    assert_int_equal(na, 1);
    assert_int_equal(nb, 1);
    assert_true(ra[0].id != rb[0].id);
    assert_int_equal(meta_map_table_count(map), 5);
    meta_map_release(map);
    etcd_lease_revoke(meta_etcd(m), lease);
    meta_close(m);
}

/* n split keys "k00000", "k00001", ... (the caller frees with free_splits). */
typedef struct splits {
    uint8_t **keys;
    size_t *lens;
    size_t n;
} splits;

static splits make_splits(size_t n)
{
    splits s = {calloc(n + 1, sizeof(uint8_t *)), calloc(n + 1, sizeof(size_t)),
                n};
    for (size_t i = 0; i < n; i++) {
        s.keys[i] = malloc(8);
        s.lens[i] = (size_t)snprintf((char *)s.keys[i], 8, "k%05zu", i);
    }
    return s;
}

static void free_splits(splits *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->keys[i]);
    free(s->keys);
    free(s->lens);
}

static meta_table_spec split_spec(const char *name, const splits *s)
{
    meta_table_spec spec = {.name = name, .engine = META_ENGINE_BTREE,
                            .replicas = 3,
                            .splits = (const uint8_t *const *)s->keys,
                            .split_lens = s->lens, .n_splits = s->n};
    return spec;
}

/* The documented limit, 1,024 split keys (1,025 ranges), is more than one
 * etcd transaction holds (128 operations): the table is written in
 * several under its CREATING marker, whole, with consecutive range ids
 * and every range placed. One key more is refused before anything is
 * written. Leader records for all of them go in batches; deleting the
 * table removes every range and leader. */
static void test_create_1025_ranges(void **state)
{
    meta *m = open_meta(state, "/t-big");
    int64_t lease = add_nodes(m, 3);
    splits sp = make_splits(META_SPLITS_MAX + 1);
    meta_table_spec spec = split_spec("big", &sp);
    assert_int_equal(meta_table_create(m, &spec, NULL), CAIRN_ERR_INVALID);
    spec.n_splits = META_SPLITS_MAX;
    meta_table t;
    int64_t t0 = now_ms();
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    print_message("create of %d ranges: %lld ms\n", META_SPLITS_MAX + 1,
                  (long long)(now_ms() - t0));
    assert_int_equal(t.state, META_TABLE_CREATING);
    meta_map *map;
    assert_int_equal(meta_load(m, &map), 0);
    size_t n = 0;
    const meta_range *r = meta_map_ranges(map, t.id, &n);
    assert_int_equal(n, META_SPLITS_MAX + 1);
    assert_true(meta_map_ranges_cover(map, t.id));
    assert_int_equal(meta_map_table(map, "big")->state, META_TABLE_CREATING);
    const meta_range *hit;
    assert_int_equal(meta_map_route(map, "big", "k00500", 6, &hit),
                     CAIRN_ERR_NO_TABLE); /* CREATING: never routed */
    meta_leader *ls = calloc(n, sizeof *ls);
    int *st = calloc(n, sizeof *st);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r[i].id, r[0].id + i);
        assert_int_equal(r[i].n_replicas, 3);
        assert_int_equal(r[i].epoch, 1);
        ls[i] = (meta_leader){.range_id = r[i].id, .node_id = r[i].replicas[0],
                              .term = 2};
    }
    assert_int_equal(r[1].start_len, 6);
    assert_memory_equal(r[1].start, "k00000", 6);
    uint64_t first = r[0].id, last = r[n - 1].id;
    meta_map_release(map);

    assert_int_equal(meta_leader_set_many(m, ls, n, st), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(st[i], 0);
    meta_leader *got;
    size_t n_got;
    assert_int_equal(meta_leaders_read(m, first, last, &got, &n_got), 0);
    assert_int_equal(n_got, n);
    assert_int_equal(got[n - 1].range_id, last);
    assert_int_equal(got[n - 1].term, 2);
    free(got);
    assert_int_equal(meta_table_set_ready(m, "big", t.id), 0);
    assert_int_equal(meta_table_drop(m, "big", NULL), 0);
    assert_int_equal(meta_table_delete(m, "big", t.id), 0);
    assert_int_equal(meta_load(m, &map), 0);
    assert_int_equal(meta_map_table_count(map), 0);
    meta_map_ranges(map, t.id, &n);
    assert_int_equal(n, 0);
    assert_null(meta_map_leader(map, first));
    assert_null(meta_map_leader(map, last));
    meta_map_release(map);
    free(ls);
    free(st);
    free_splits(&sp);
    etcd_lease_revoke(meta_etcd(m), lease);
    meta_close(m);
}

typedef struct dropper {
    meta *m;
    atomic_bool stop;
    int dropped_at; /* 1 once the drop landed */
} dropper;

static void *drop_thread(void *arg)
{
    dropper *d = arg;
    while (!atomic_load(&d->stop)) {
        if (meta_table_drop(d->m, "racy", NULL) == 0) {
            d->dropped_at = 1;
            break;
        }
    }
    return NULL;
}

/* A drop that lands while a big table's ranges are still being written:
 * no range is written after it (each later transaction compares the
 * table record), and the create says CONDITION and takes its table back
 * out - or, if the drop came after the last range, the create succeeded
 * and the table is simply DROPPING. Either way no range is newer than
 * the table record. */
static void test_create_races_a_drop(void **state)
{
    meta *m = open_meta(state, "/t-racydrop");
    int64_t lease = add_nodes(m, 3);
    splits sp = make_splits(META_SPLITS_MAX);
    meta_table_spec spec = split_spec("racy", &sp);
    for (int round = 0; round < 3; round++) {
        dropper d = {.m = m};
        pthread_t th;
        pthread_create(&th, NULL, drop_thread, &d);
        meta_table t;
        int rc = meta_table_create(m, &spec, &t);
        atomic_store(&d.stop, true);
        pthread_join(th, NULL);
        assert_true(rc == 0 || rc == CAIRN_ERR_CONDITION);
        meta_map *map;
        assert_int_equal(meta_load(m, &map), 0);
        const meta_table *now = meta_map_table(map, "racy");
        size_t n = 0;
        const meta_range *r = meta_map_ranges(map, t.id, &n);
        if (rc == CAIRN_ERR_CONDITION) {
            assert_null(now); /* taken back out */
            assert_int_equal(n, 0);
        } else if (now) {
            assert_int_equal(n, META_SPLITS_MAX + 1);
            for (size_t i = 0; i < n; i++)
                assert_true(r[i].mod_revision < now->mod_revision ||
                            !d.dropped_at);
        }
        print_message("round %d: create %s, drop %s\n", round,
                      rc == 0 ? "won" : "refused",
                      d.dropped_at ? "landed" : "never landed");
        if (now)
            assert_int_equal(meta_table_delete(m, "racy", now->id), 0);
        meta_map_release(map);
    }
    free_splits(&sp);
    etcd_lease_revoke(meta_etcd(m), lease);
    meta_close(m);
}

/* The batch form of the leader record keeps meta_leader_set's rule per
 * record, across more records than one transaction holds. */
static void test_leader_set_many(void **state)
{
    meta *m = open_meta(state, "/t-leadmany");
    enum { N = 250 };
    meta_leader ls[N];
    int st[N];
    for (int i = 0; i < N; i++)
        ls[i] = (meta_leader){.range_id = 1000 + (uint64_t)i, .node_id = 1,
                              .term = 5};
    assert_int_equal(meta_leader_set_many(m, ls, N, st), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(st[i], 0);
    assert_int_equal(meta_leader_set_many(m, ls, N, st), 0); /* idempotent */
    for (int i = 0; i < N; i++)
        assert_int_equal(st[i], 0);
    /* mixed: an older term, the same term by another node, a newer term,
     * a new range, and one range twice */
    meta_leader mix[5] = {{.range_id = 1000, .node_id = 2, .term = 4},
                          {.range_id = 1001, .node_id = 2, .term = 5},
                          {.range_id = 1002, .node_id = 2, .term = 6},
                          {.range_id = 7, .node_id = 3, .term = 1},
                          {.range_id = 1002, .node_id = 3, .term = 9}};
    int ms[5];
    assert_int_equal(meta_leader_set_many(m, mix, 5, ms), 0);
    assert_int_equal(ms[0], CAIRN_ERR_CONDITION);
    assert_int_equal(ms[1], CAIRN_ERR_CONDITION);
    assert_int_equal(ms[2], 0);
    assert_int_equal(ms[3], 0);
    assert_int_equal(ms[4], CAIRN_ERR_INVALID);
    meta_leader l;
    assert_int_equal(meta_leader_get(m, 1000, &l), 0);
    assert_int_equal(l.node_id, 1);
    assert_int_equal(l.term, 5);
    assert_int_equal(meta_leader_get(m, 1002, &l), 0);
    assert_int_equal(l.node_id, 2);
    assert_int_equal(l.term, 6);
    assert_int_equal(meta_leader_get(m, 7, &l), 0);
    assert_int_equal(l.node_id, 3);
    meta_leader *got;
    size_t n;
    assert_int_equal(meta_leaders_read(m, 1100, 1199, &got, &n), 0);
    assert_int_equal(n, 100);
    assert_int_equal(got[0].range_id, 1100);
    assert_int_equal(got[99].range_id, 1199);
    free(got);
    assert_int_equal(meta_leaders_read(m, 5000, 6000, &got, &n), 0);
    assert_int_equal(n, 0);
    free(got);
    meta_close(m);
}

/* etcd goes away for longer than the node's TTL and comes back: the node
 * is registered and live again without anyone restarting it. */
static void test_keeper_survives_etcd_outage(void **state)
{
    etcd_fixture *f = *state;
    meta *m = open_meta(state, "/t-outage");
    uint64_t id;
    assert_int_equal(meta_alloc_ids(m, META_ID_NODE, 1, &id), 0);
    meta_node_keeper *k;
    assert_int_equal(meta_node_keeper_start(m, id, "127.0.0.1:7200", 1, 2, &k), 0);
    assert_int_equal(meta_node_keeper_wait(k, 5000), 0);
    etcd_server_kill(f->server, 1);
    sleep(3); /* the outage: longer than the 2 s TTL */
    assert_int_equal(etcd_server_restart(f->server, 20000), 0);
    int64_t deadline = now_ms() + 10000;
    bool live = false;
    while (!live && now_ms() < deadline) {
        meta_map *map;
        if (meta_load(m, &map) == 0) {
            const meta_node *nd = meta_map_node(map, id);
            live = nd && nd->live;
            meta_map_release(map);
        }
        if (!live)
            usleep(50 * 1000);
    }
    assert_true(live);
    assert_int_equal(meta_node_keeper_wait(k, 5000), 0);
    meta_node_keeper_stop(k, true);
    meta_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_rules),
        cmocka_unit_test(test_id_allocation_concurrent),
        cmocka_unit_test(test_table_lifecycle),
        cmocka_unit_test(test_create_rules_and_placement),
        cmocka_unit_test(test_leader_term_compare),
        cmocka_unit_test(test_range_epoch_compare),
        cmocka_unit_test(test_relocation_switch_and_end),
        cmocka_unit_test(test_node_keeper),
        cmocka_unit_test(test_cache_follows_changes),
        cmocka_unit_test(test_backup_restore),
        cmocka_unit_test(test_controller_election),
        cmocka_unit_test(test_load_pages),
        cmocka_unit_test(test_concurrent_creates),
        cmocka_unit_test(test_create_1025_ranges),
        cmocka_unit_test(test_create_races_a_drop),
        cmocka_unit_test(test_leader_set_many),
        cmocka_unit_test(test_keeper_survives_etcd_outage),
    };
    return cmocka_run_group_tests(tests, etcd_fixture_setup,
                                  etcd_fixture_teardown);
}
