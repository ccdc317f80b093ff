/* Tests for the metadata layout and the in-memory map (src/meta/schema.h,
 * meta.h's meta_map_*): no etcd needed - events are built by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "meta/map_internal.h"
#include "meta/schema.h"

static void test_table_names(void **state)
{
    (void)state;
    char max[CAIRN_TABLE_NAME_MAX + 2];
    memset(max, 'a', sizeof max);
    max[CAIRN_TABLE_NAME_MAX] = '\0';
    assert_int_equal(meta_table_name_check(max), 0);
    max[CAIRN_TABLE_NAME_MAX] = 'a';
    max[CAIRN_TABLE_NAME_MAX + 1] = '\0';
    assert_int_equal(meta_table_name_check(max), CAIRN_ERR_INVALID);
    assert_int_equal(meta_table_name_check("users_v2.archive-1"), 0);
    assert_int_equal(meta_table_name_check(""), CAIRN_ERR_INVALID);
    assert_int_equal(meta_table_name_check("a/b"), CAIRN_ERR_INVALID);
    assert_int_equal(meta_table_name_check("a b"), CAIRN_ERR_INVALID);
    assert_int_equal(meta_table_name_check("caf\xc3\xa9"), CAIRN_ERR_INVALID);
}

static void test_keys_build_and_parse(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    meta_key k;
    assert_int_equal(meta_key_range(&b, "/c", 0x1f, 0xabc), 0);
    assert_string_equal((char *)b.data,
                        "/c/ranges/000000000000001f/0000000000000abc");
    assert_int_equal(meta_key_parse("/c", b.data, b.len, &k), 0);
    assert_int_equal(k.kind, META_KEY_RANGE);
    assert_int_equal(k.a, 0x1f);
    assert_int_equal(k.b, 0xabc);

    meta_key_table(&b, "/c", "t.1");
    assert_int_equal(meta_key_parse("/c", b.data, b.len, &k), 0);
    assert_int_equal(k.kind, META_KEY_TABLE);
    assert_string_equal(k.name, "t.1");
    meta_key_leader(&b, "/c", 7);
    meta_key_parse("/c", b.data, b.len, &k);
    assert_int_equal(k.kind, META_KEY_LEADER);
    meta_key_live(&b, "/c", 7);
    meta_key_parse("/c", b.data, b.len, &k);
    assert_int_equal(k.kind, META_KEY_LIVE);
    assert_int_equal(k.a, 7);
    meta_key_relocation(&b, "/c", 0x2a);
    assert_string_equal((char *)b.data, "/c/relocations/000000000000002a");
    meta_key_parse("/c", b.data, b.len, &k);
    assert_int_equal(k.kind, META_KEY_RELOCATION);
    assert_int_equal(k.a, 0x2a);
    meta_key_id(&b, "/c", META_ID_RANGE);
    assert_string_equal((char *)b.data, "/c/ids/range");
    meta_key_parse("/c", b.data, b.len, &k);
    assert_int_equal(k.kind, META_KEY_ID);
    assert_int_equal(k.a, META_ID_RANGE);

    /* another cluster's prefix, or junk under ours */
    assert_int_equal(meta_key_parse("/c", (const uint8_t *)"/cx/tables/a", 12, &k),
                     CAIRN_ERR_INVALID);
    assert_int_equal(meta_key_parse("/c", (const uint8_t *)"/c/ranges/12", 12, &k), 0);
    assert_int_equal(k.kind, META_KEY_OTHER);
    assert_int_equal(meta_key_parse("/c", (const uint8_t *)"/c/nodes/000000000000000G", 25, &k), 0);
    assert_int_equal(k.kind, META_KEY_OTHER);
    buf_free(&b);
}

static void test_records_roundtrip(void **state)
{
    (void)state;
    meta_table t = {.id = 9, .engine = META_ENGINE_LSM, .replicas = 5,
                    .state = META_TABLE_DROPPING}, t2 = {0};
    char *s = meta_table_encode(&t);
    assert_int_equal(meta_table_decode((uint8_t *)s, strlen(s), &t2), 0);
    assert_int_equal(t2.id, 9);
    assert_int_equal(t2.engine, META_ENGINE_LSM);
    assert_int_equal(t2.replicas, 5);
    assert_int_equal(t2.state, META_TABLE_DROPPING);
    free(s);

    /* binary bounds survive: NUL, 0xff, quote */
    uint8_t start[] = {0, 0xff, '"'}, end[] = {1};
    meta_range r = {.id = 3, .table_id = 9, .start = start, .start_len = 3,
                    .end = end, .end_len = 1, .epoch = 4,
                    .replicas = {1, 2, 3}, .n_replicas = 3,
                    .state = META_RANGE_MIGRATING, .from = 2}, r2;
    s = meta_range_encode(&r);
    assert_non_null(strstr(s, "\"start\":\"00ff22\""));
    assert_int_equal(meta_range_decode((uint8_t *)s, strlen(s), &r2), 0);
    assert_int_equal(r2.start_len, 3);
    assert_memory_equal(r2.start, start, 3);
    assert_int_equal(r2.end_len, 1);
    assert_int_equal(r2.epoch, 4);
    assert_int_equal(r2.n_replicas, 3);
    assert_int_equal(r2.replicas[2], 3);
    assert_int_equal(r2.state, META_RANGE_MIGRATING);
    assert_int_equal(r2.from, 2);
    assert_int_equal(r2.n_from, 0);
    meta_range_clear(&r2);
    free(s);
    /* a migrating range names its source's fenced epoch and replicas */
    r.from_epoch = 5;
    r.from_replicas[0] = 4, r.from_replicas[1] = 6;
    r.n_from = 2;
    s = meta_range_encode(&r);
    assert_int_equal(meta_range_decode((uint8_t *)s, strlen(s), &r2), 0);
    assert_int_equal(r2.from_epoch, 5);
    assert_int_equal(r2.n_from, 2);
    assert_int_equal(r2.from_replicas[1], 6);
    meta_range_clear(&r2);
    free(s);

    meta_relocation rl = {.range_id = 3, .table_id = 9, .dest = 12,
                          .nodes = {4, 5, 6}, .n_nodes = 3,
                          .src_nodes = {1, 2, 3}, .n_src = 3,
                          .step = META_RELOC_COPY, .fence_epoch = 7,
                          .fence_seq = "00ff", .copied_keys = 10,
                          .copied_bytes = 2000, .since = 123,
                          .copy_ms = 45, .by = "c1"},
                    rl2;
    s = meta_relocation_encode(&rl);
    assert_non_null(strstr(s, "\"step\":\"copy\""));
    assert_int_equal(meta_relocation_decode((uint8_t *)s, strlen(s), &rl2),
                     0);
    assert_int_equal(rl2.dest, 12);
    assert_int_equal(rl2.n_nodes, 3);
    assert_int_equal(rl2.nodes[2], 6);
    assert_int_equal(rl2.src_nodes[0], 1);
    assert_int_equal(rl2.step, META_RELOC_COPY);
    assert_int_equal(rl2.fence_epoch, 7);
    assert_string_equal(rl2.fence_seq, "00ff");
    assert_int_equal(rl2.copied_bytes, 2000);
    assert_string_equal(rl2.by, "c1");
    free(s);
    rl.n_nodes = 0; /* a move to no node is no record */
    s = meta_relocation_encode(&rl);
    assert_int_equal(meta_relocation_decode((uint8_t *)s, strlen(s), &rl2),
                     CAIRN_ERR_CORRUPT);
    free(s);

    const char *bad[] = {
        "{\"id\":1,\"table\":1,\"start\":\"0\",\"end\":\"\",\"epoch\":1,"
        "\"replicas\":[],\"state\":\"normal\",\"from\":0}",
        "{\"id\":1,\"table\":1,\"start\":\"02\",\"end\":\"01\",\"epoch\":1,"
        "\"replicas\":[],\"state\":\"normal\",\"from\":0}",
        "{\"id\":1,\"table\":1,\"start\":\"\",\"end\":\"\",\"epoch\":-1,"
        "\"replicas\":[],\"state\":\"normal\",\"from\":0}",
        "[1]", "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(meta_range_decode((const uint8_t *)bad[i],
                                           strlen(bad[i]), &r2),
                         CAIRN_ERR_CORRUPT);

    uint64_t c;
    assert_int_equal(meta_counter_decode((const uint8_t *)"1234", 4, &c), 0);
    assert_int_equal(c, 1234);
    assert_int_equal(meta_counter_decode((const uint8_t *)"12a", 3, &c),
                     CAIRN_ERR_CORRUPT);
}

/* ---- a map built from hand-made events ---------------------------------- */

static void put_event(meta_map *m, const char *key, const char *value,
                      int64_t rev)
{
    etcd_event ev = {ETCD_EVENT_PUT,
                     {(uint8_t *)key, strlen(key), (uint8_t *)value,
                      strlen(value), rev, rev, 1, 0}};
    assert_int_equal(meta_map_apply(m, &ev, 1), 0);
}

static void del_event(meta_map *m, const char *key, int64_t rev)
{
    etcd_event ev = {ETCD_EVENT_DELETE,
                     {(uint8_t *)key, strlen(key), NULL, 0, 0, rev, 0, 0}};
    assert_int_equal(meta_map_apply(m, &ev, 1), 0);
}

/* Table "t" (id 1) split at "g" and "p" - ranges 10, 11, 12 - put in
 * scrambled order; plus a dropping table "old" (id 2). */
static meta_map *sample_map(void)
{
    meta_map *m;
    assert_int_equal(meta_map_new("/c", &m), 0);
    put_event(m, "/c/tables/t",
              "{\"id\":1,\"engine\":\"btree\",\"replicas\":3,\"state\":\"ready\"}", 2);
    put_event(m, "/c/ranges/0000000000000001/000000000000000c",
              "{\"id\":12,\"table\":1,\"start\":\"70\",\"end\":\"\",\"epoch\":1,"
              "\"replicas\":[1,2,3],\"state\":\"normal\",\"from\":0}", 3);
    put_event(m, "/c/ranges/0000000000000001/000000000000000a",
              "{\"id\":10,\"table\":1,\"start\":\"\",\"end\":\"67\",\"epoch\":1,"
              "\"replicas\":[1,2,3],\"state\":\"normal\",\"from\":0}", 4);
    put_event(m, "/c/ranges/0000000000000001/000000000000000b",
              "{\"id\":11,\"table\":1,\"start\":\"67\",\"end\":\"70\",\"epoch\":1,"
              "\"replicas\":[1,2,3],\"state\":\"normal\",\"from\":0}", 5);
    put_event(m, "/c/tables/old",
              "{\"id\":2,\"engine\":\"lsm\",\"replicas\":1,\"state\":\"dropping\"}", 6);
    put_event(m, "/c/ranges/0000000000000002/000000000000000d",
              "{\"id\":13,\"table\":2,\"start\":\"\",\"end\":\"\",\"epoch\":1,"
              "\"replicas\":[1],\"state\":\"normal\",\"from\":0}", 7);
    put_event(m, "/c/nodes/0000000000000001",
              "{\"addr\":\"127.0.0.1:7001\",\"capacity\":1000}", 8);
    put_event(m, "/c/live/0000000000000001", "", 9);
    put_event(m, "/c/leaders/000000000000000b", "{\"node\":2,\"term\":7}", 10);
    put_event(m, "/other/tables/x", "{}", 11); /* not ours: ignored */
    return m;
}

static uint64_t route_id(const meta_map *m, const char *table, const char *key)
{
    const meta_range *r;
    int rc = meta_map_route(m, table, key, strlen(key), &r);
    return rc == 0 ? r->id : 0;
}

static void test_map_lookups(void **state)
{
    (void)state;
    meta_map *m = sample_map();
    assert_int_equal(meta_map_revision(m), 11);
    assert_int_equal(meta_map_skipped(m), 0);
    assert_int_equal(meta_map_table_count(m), 2);
    assert_string_equal(meta_map_table_at(m, 0)->name, "old"); /* by name */
    size_t n;
    const meta_range *rs = meta_map_ranges(m, 1, &n);
    assert_int_equal(n, 3);
    assert_int_equal(rs[0].id, 10);
    assert_int_equal(rs[1].id, 11);
    assert_int_equal(rs[2].id, 12);
    /* boundaries: start inclusive, end exclusive */
    assert_int_equal(route_id(m, "t", "\x01"), 10);
    assert_int_equal(route_id(m, "t", "f\xff\xff"), 10);
    assert_int_equal(route_id(m, "t", "g"), 11);
    assert_int_equal(route_id(m, "t", "o"), 11);
    assert_int_equal(route_id(m, "t", "p"), 12);
    assert_int_equal(route_id(m, "t", "\xff\xff\xff"), 12);
    const meta_range *r;
    /* a dropping table is invisible; an unknown one too */
    assert_int_equal(meta_map_route(m, "old", "a", 1, &r), CAIRN_ERR_NO_TABLE);
    assert_int_equal(meta_map_route(m, "nope", "a", 1, &r), CAIRN_ERR_NO_TABLE);
    assert_non_null(meta_map_table(m, "old"));
    assert_int_equal(meta_map_table_by_id(m, 2)->state, META_TABLE_DROPPING);
    assert_int_equal(meta_map_range(m, 13)->table_id, 2);
    assert_int_equal(meta_map_leader(m, 11)->term, 7);
    assert_null(meta_map_leader(m, 10));
    assert_true(meta_map_node(m, 1)->live);
    assert_string_equal(meta_map_node(m, 1)->addr, "127.0.0.1:7001");

    /* a gap: range 11 removed -> keys in [g, p) route nowhere */
    del_event(m, "/c/ranges/0000000000000001/000000000000000b", 12);
    assert_int_equal(meta_map_route(m, "t", "h", 1, &r), CAIRN_ERR_RANGE_NOT_FOUND);
    assert_int_equal(route_id(m, "t", "p"), 12);
    /* liveness goes with its key */
    del_event(m, "/c/live/0000000000000001", 13);
    assert_false(meta_map_node(m, 1)->live);
    meta_map_release(m);
}

static void test_map_updates_and_clone(void **state)
{
    (void)state;
    meta_map *m = sample_map(), *c;
    assert_int_equal(meta_map_clone(m, &c), 0);
    /* split range 12 [p, +inf) into [p, x) and a new 14 [x, +inf) */
    put_event(c, "/c/ranges/0000000000000001/000000000000000c",
              "{\"id\":12,\"table\":1,\"start\":\"70\",\"end\":\"78\",\"epoch\":2,"
              "\"replicas\":[1,2,3],\"state\":\"normal\",\"from\":0}", 20);
    put_event(c, "/c/ranges/0000000000000001/000000000000000e",
              "{\"id\":14,\"table\":1,\"start\":\"78\",\"end\":\"\",\"epoch\":1,"
              "\"replicas\":[1,2,3],\"state\":\"migrating\",\"from\":12}", 20);
    assert_int_equal(route_id(c, "t", "q"), 12);
    assert_int_equal(route_id(c, "t", "y"), 14);
    assert_int_equal(meta_map_range(c, 14)->from, 12);
    /* the original is untouched */
    assert_int_equal(route_id(m, "t", "y"), 12);
    /* a malformed value is skipped, not fatal */
    put_event(c, "/c/ranges/0000000000000001/000000000000000f", "{bad", 21);
    assert_int_equal(meta_map_skipped(c), 1);
    assert_int_equal(meta_map_revision(c), 21);
    /* a table dropped: invisible at once */
    put_event(c, "/c/tables/t",
              "{\"id\":1,\"engine\":\"btree\",\"replicas\":3,\"state\":\"dropping\"}", 22);
    assert_int_equal(route_id(c, "t", "a"), 0);
    del_event(c, "/c/tables/t", 23);
    assert_null(meta_map_table(c, "t"));
    put_event(c, "/c/ids/table", "41", 24);
    assert_int_equal(c->ids[META_ID_TABLE], 41);
    assert_int_equal(c->ids_rev[META_ID_TABLE], 24);
    meta_map_release(c);
    meta_map_release(m);
}

static void test_range_contains(void **state)
{
    (void)state;
    meta_range all = {0};
    assert_true(meta_range_contains(&all, "\x00", 1));
    assert_true(meta_range_contains(&all, "\xff\xff", 2));
    uint8_t s[] = {'b'}, e[] = {'b', 0};
    meta_range one = {.start = s, .start_len = 1, .end = e, .end_len = 2};
    assert_true(meta_range_contains(&one, "b", 1));
    assert_false(meta_range_contains(&one, "b\0", 2));
    assert_false(meta_range_contains(&one, "a\xff", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_names),
        cmocka_unit_test(test_keys_build_and_parse),
        cmocka_unit_test(test_records_roundtrip),
        cmocka_unit_test(test_map_lookups),
        cmocka_unit_test(test_map_updates_and_clone),
        cmocka_unit_test(test_range_contains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
