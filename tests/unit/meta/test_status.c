/* Tests for the controller's records in the map (meta.h, "health, drains,
 * moves"), node zones, and the status document (meta/status.h): no etcd
 * needed - events are built by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/err.h"
#include "meta/map_internal.h"
#include "meta/schema.h"
#include "meta/status.h"

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

static void test_records_roundtrip(void **state)
{
    (void)state;
    meta_health h = {.node_id = 3, .state = META_NODE_DEAD, .since = 1700,
                     .replicas_lost = 8, .bytes = 12345, .lag_entries = 7,
                     .lag_seconds = 1.5, .n_lagging = 2, .updated = 1800};
    strcpy(h.reason, "no lease, not answering");
    h.lagging[0] = 11;
    h.lagging[1] = 12;
    char *s = meta_health_encode(&h);
    meta_health back;
    assert_int_equal(meta_health_decode((uint8_t *)s, strlen(s), &back), 0);
    assert_int_equal(back.state, META_NODE_DEAD);
    assert_int_equal(back.since, 1700);
    assert_string_equal(back.reason, h.reason);
    assert_int_equal(back.replicas_lost, 8);
    assert_int_equal(back.n_lagging, 2);
    assert_int_equal(back.lagging[1], 12);
    assert_true(back.lag_seconds == 1.5);
    free(s);

    meta_move mv = {.range_id = 9, .table_id = 2, .kind = META_MOVE_DRAIN,
                    .add = 4, .remove = 1, .since = 99};
    strcpy(mv.by, "c0");
    s = meta_move_encode(&mv);
    meta_move mb;
    assert_int_equal(meta_move_decode((uint8_t *)s, strlen(s), &mb), 0);
    assert_int_equal(mb.kind, META_MOVE_DRAIN);
    assert_int_equal(mb.add, 4);
    assert_int_equal(mb.remove, 1);
    assert_string_equal(mb.by, "c0");
    free(s);

    const char *bad = "{\"state\":\"zombie\"}";
    assert_int_equal(meta_health_decode((uint8_t *)bad, strlen(bad), &back),
                     CAIRN_ERR_CORRUPT);

    /* Zones: kept when given, absent from the record when not (older
     * readers never see the field). */
    meta_node nd = {.id = 1, .capacity = 5};
    strcpy(nd.addr, "h:1");
    s = meta_node_encode(&nd);
    assert_null(strstr(s, "zone"));
    free(s);
    strcpy(nd.zone, "rack-2");
    s = meta_node_encode(&nd);
    meta_node nb = {0};
    assert_int_equal(meta_node_decode((uint8_t *)s, strlen(s), &nb), 0);
    assert_string_equal(nb.zone, "rack-2");
    free(s);
}

static void test_keys(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    meta_key k;
    assert_int_equal(meta_key_health(&b, "/c", 5), 0);
    assert_int_equal(meta_key_parse("/c", b.data, b.len, &k), 0);
    assert_int_equal(k.kind, META_KEY_HEALTH);
    assert_int_equal(k.a, 5);
    assert_int_equal(meta_key_move(&b, "/c", 0x1a), 0);
    assert_string_equal((char *)b.data, "/c/moves/000000000000001a");
    assert_int_equal(meta_key_parse("/c", b.data, b.len, &k), 0);
    assert_int_equal(k.kind, META_KEY_MOVE);
    assert_int_equal(meta_key_balance(&b, "/c"), 0);
    assert_int_equal(meta_key_parse("/c", b.data, b.len, &k), 0);
    assert_int_equal(k.kind, META_KEY_BALANCE);
    assert_int_equal(meta_key_drain(&b, "/c", 2), 0);
    assert_int_equal(meta_key_parse("/c", b.data, b.len, &k), 0);
    assert_int_equal(k.kind, META_KEY_DRAIN);
    buf_free(&b);
}

#define RANGE(id, start, end, reps, epoch)                                    \
    "{\"id\":" #id ",\"table\":1,\"start\":\"" start "\",\"end\":\"" end     \
    "\",\"epoch\":" #epoch ",\"replicas\":" reps                              \
    ",\"state\":\"normal\",\"from\":0}"

/* Four nodes: 1 and 2 live, 3 dead (its replacement half done), 4 live
 * and draining; table t (RF 3) with three ranges: 10 healthy, 11 on the
 * dead node, 12 with a lagging replica and no leader. */
static meta_map *cluster_map(void)
{
    meta_map *m;
    assert_int_equal(meta_map_new("/c", &m), 0);
    put_event(m, "/c/tables/t",
              "{\"id\":1,\"engine\":\"btree\",\"replicas\":3,\"state\":\"ready\"}", 2);
    put_event(m, "/c/ranges/0000000000000001/000000000000000a",
              RANGE(10, "", "67", "[1,2,4]", 3), 3);
    put_event(m, "/c/ranges/0000000000000001/000000000000000b",
              RANGE(11, "67", "70", "[1,2,3]", 4), 4);
    put_event(m, "/c/ranges/0000000000000001/000000000000000c",
              RANGE(12, "70", "", "[1,2,4]", 2), 5);
    const char *nodes[] = {"/c/nodes/0000000000000001",
                           "/c/nodes/0000000000000002",
                           "/c/nodes/0000000000000003",
                           "/c/nodes/0000000000000004"};
    put_event(m, nodes[0], "{\"addr\":\"h:1\",\"capacity\":9,\"zone\":\"a\"}", 6);
    put_event(m, nodes[1], "{\"addr\":\"h:2\",\"capacity\":9,\"zone\":\"b\"}", 7);
    put_event(m, nodes[2], "{\"addr\":\"h:3\",\"capacity\":9}", 8);
    put_event(m, nodes[3], "{\"addr\":\"h:4\",\"capacity\":9}", 9);
    put_event(m, "/c/live/0000000000000001", "", 10);
    put_event(m, "/c/live/0000000000000002", "", 11);
    put_event(m, "/c/live/0000000000000004", "", 12);
    put_event(m, "/c/health/0000000000000003",
              "{\"state\":\"dead\",\"since\":1000,\"reason\":\"no lease\","
              "\"replicas_lost\":2,\"bytes\":0,\"lag_entries\":0,"
              "\"lag_seconds\":0,\"lagging\":[],\"updated\":1000}", 13);
    put_event(m, "/c/health/0000000000000002",
              "{\"state\":\"live\",\"since\":900,\"reason\":\"\","
              "\"replicas_lost\":0,\"bytes\":4096,\"lag_entries\":500,"
              "\"lag_seconds\":2.5,\"lagging\":[12],\"updated\":1000}", 14);
    put_event(m, "/c/drain/0000000000000004",
              "{\"since\":1100,\"replicas\":4}", 15);
    put_event(m, "/c/moves/000000000000000b",
              "{\"range\":11,\"table\":1,\"kind\":\"replace\",\"add\":4,"
              "\"remove\":3,\"since\":1200,\"by\":\"c0\"}", 16);
    put_event(m, "/c/balance", "{\"since\":1300,\"total\":6,\"done\":2}", 17);
    put_event(m, "/c/relocations/000000000000000a",
              "{\"range\":10,\"table\":1,\"dest\":30,\"nodes\":[1,2,4],"
              "\"src_nodes\":[1,2,3],\"step\":\"copy\",\"fence_epoch\":3,"
              "\"fence_seq\":\"00\",\"dest_epoch\":2,\"copied_keys\":50,"
              "\"copied_bytes\":5000,\"since\":1400,\"copy_ms\":500,"
              "\"by\":\"c0\"}", 17);
    put_event(m, "/c/leaders/000000000000000a", "{\"node\":1,\"term\":3}", 18);
    put_event(m, "/c/leaders/000000000000000b", "{\"node\":4,\"term\":3}", 19);
    return m;
}

static void test_map_holds_the_records(void **state)
{
    (void)state;
    meta_map *m = cluster_map();
    assert_int_equal(meta_map_skipped(m), 0);
    assert_non_null(meta_map_health(m, 3));
    assert_int_equal(meta_map_health(m, 3)->state, META_NODE_DEAD);
    assert_null(meta_map_health(m, 1));
    assert_non_null(meta_map_drain(m, 4));
    assert_null(meta_map_drain(m, 1));
    assert_int_equal(meta_map_move_count(m), 1);
    assert_int_equal(meta_map_move(m, 11)->add, 4);
    assert_int_equal(meta_map_relocation_count(m), 1);
    assert_int_equal(meta_map_relocation(m, 10)->dest, 30);
    assert_int_equal(meta_map_relocation(m, 10)->step, META_RELOC_COPY);
    assert_int_equal(meta_map_balance(m)->total, 6);
    assert_string_equal(meta_map_node(m, 1)->zone, "a");
    assert_string_equal(meta_map_node(m, 3)->zone, "");

    meta_map *c;
    assert_int_equal(meta_map_clone(m, &c), 0);
    del_event(m, "/c/moves/000000000000000b", 20);
    del_event(m, "/c/drain/0000000000000004", 21);
    del_event(m, "/c/balance", 22);
    assert_int_equal(meta_map_move_count(m), 0);
    assert_null(meta_map_drain(m, 4));
    assert_null(meta_map_balance(m));
    /* the clone kept its own copies */
    assert_int_equal(meta_map_move_count(c), 1);
    assert_non_null(meta_map_drain(c, 4));
    assert_non_null(meta_map_balance(c));
    meta_map_release(c);
    meta_map_release(m);
}

static const cJSON *item(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_non_null(v);
    return v;
}

static double num(const cJSON *o, const char *k)
{
    return item(o, k)->valuedouble;
}

static const cJSON *find_by(const cJSON *arr, const char *k, double v)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        if (num(x, k) == v)
            return x;
    }
    fail_msg("no element with %s = %g", k, v);
    return NULL;
}

static bool has_str(const cJSON *arr, const char *s)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        if (strcmp(x->valuestring, s) == 0)
            return true;
    }
    return false;
}

static void test_status_document(void **state)
{
    (void)state;
    meta_map *m = cluster_map();
    buf out = BUF_INIT;
    meta_status_opts o = {.now_ms = 5000, .controller = "c0"};
    assert_int_equal(meta_status_json(m, &o, &out), 0);
    cJSON *j = cJSON_ParseWithLength((const char *)out.data, out.len);
    assert_non_null(j);
    assert_int_equal(num(j, "version"), META_STATUS_VERSION);
    assert_int_equal(num(j, "time"), 5000);
    assert_string_equal(item(j, "controller")->valuestring, "c0");
    const cJSON *sum = item(j, "summary");
    assert_int_equal(num(sum, "nodes"), 4);
    assert_int_equal(num(sum, "live"), 3); /* 1, 4 (no record) and 2 */
    assert_int_equal(num(sum, "dead"), 1);
    assert_int_equal(num(sum, "draining"), 1);
    assert_int_equal(num(sum, "ranges"), 3);
    assert_int_equal(num(sum, "replicas"), 9);
    assert_int_equal(num(sum, "moves"), 1);

    const cJSON *nodes = item(j, "nodes");
    const cJSON *n1 = find_by(nodes, "id", 1), *n3 = find_by(nodes, "id", 3);
    assert_int_equal(num(n1, "replicas"), 3);
    assert_int_equal(num(n1, "leaders"), 1);
    assert_string_equal(item(n1, "zone")->valuestring, "a");
    assert_true(cJSON_IsNull(item(n1, "since"))); /* no health record */
    assert_string_equal(item(n3, "state")->valuestring, "dead");
    assert_int_equal(num(n3, "replicas"), 1);
    assert_true(cJSON_IsFalse(item(n3, "lease")));
    const cJSON *n2 = find_by(nodes, "id", 2);
    assert_int_equal(num(n2, "bytes"), 4096);
    assert_true(num(n2, "lag_seconds") == 2.5);
    assert_true(cJSON_IsTrue(item(find_by(nodes, "id", 4), "draining")));

    /* 10 is healthy; 11 is on the dead node; 12 lags and has no leader */
    const cJSON *bad = item(j, "unhealthy");
    assert_int_equal(cJSON_GetArraySize(bad), 2);
    const cJSON *r11 = find_by(bad, "range", 11), *r12 = find_by(bad, "range", 12);
    assert_true(has_str(item(r11, "problems"), "under-replicated"));
    assert_true(has_str(item(r11, "problems"), "on-dead-node"));
    assert_false(has_str(item(r11, "problems"), "no-leader"));
    assert_int_equal(num(r11, "healthy"), 2);
    assert_int_equal(num(r11, "want"), 3);
    assert_true(has_str(item(r12, "problems"), "lagging"));
    assert_true(has_str(item(r12, "problems"), "no-leader"));
    assert_true(cJSON_IsNull(item(r12, "leader")));
    assert_int_equal(num(sum, "unhealthy_ranges"), 2);

    /* Operations: the dead node's replacement (1 of 2 replicas left), the
     * drain (2 replicas + 1 leader left of 4), the rebalancing. */
    const cJSON *ops = item(j, "operations");
    assert_int_equal(cJSON_GetArraySize(ops), 3);
    const cJSON *x;
    int seen = 0;
    cJSON_ArrayForEach(x, ops)
    {
        const char *kind = item(x, "kind")->valuestring;
        if (strcmp(kind, "replace") == 0) {
            assert_int_equal(num(x, "node"), 3);
            assert_int_equal(num(x, "done"), 1);
            assert_int_equal(num(x, "total"), 2);
            /* 1 and 2 hold range 11 already, 4 drains: nowhere to go */
            assert_memory_equal(item(x, "detail")->valuestring, "stuck", 5);
            seen |= 1;
        } else if (strcmp(kind, "drain") == 0) {
            assert_int_equal(num(x, "node"), 4);
            assert_int_equal(num(x, "total"), 4);
            assert_int_equal(num(x, "done"), 1);
            assert_memory_equal(item(x, "detail")->valuestring, "stuck", 5);
            seen |= 2;
        } else {
            assert_string_equal(kind, "rebalance");
            assert_true(cJSON_IsNull(item(x, "node")));
            assert_true(num(x, "progress") > 0.33 && num(x, "progress") < 0.34);
            seen |= 4;
        }
    }
    assert_int_equal(seen, 7);
    const cJSON *mv = item(j, "moves")->child;
    assert_non_null(mv);
    assert_int_equal(num(mv, "range"), 11);
    assert_string_equal(item(mv, "table")->valuestring, "t");
    assert_string_equal(item(mv, "kind")->valuestring, "replace");
    const cJSON *rl = item(j, "relocations")->child;
    assert_non_null(rl);
    assert_int_equal(num(rl, "range"), 10);
    assert_int_equal(num(rl, "dest"), 30);
    assert_string_equal(item(rl, "step")->valuestring, "copy");
    assert_int_equal(num(rl, "bytes_per_sec"), 10000);
    assert_int_equal(cJSON_GetArraySize(item(rl, "to")), 3);
    cJSON_Delete(j);
    buf_free(&out);
    meta_map_release(m);
}

static void test_status_of_an_empty_cluster(void **state)
{
    (void)state;
    meta_map *m;
    assert_int_equal(meta_map_new("/c", &m), 0);
    buf out = BUF_INIT;
    meta_status_opts o = {.now_ms = 1};
    assert_int_equal(meta_status_json(m, &o, &out), 0);
    cJSON *j = cJSON_ParseWithLength((const char *)out.data, out.len);
    assert_non_null(j);
    assert_true(cJSON_IsNull(item(j, "controller")));
    assert_int_equal(cJSON_GetArraySize(item(j, "nodes")), 0);
    assert_int_equal(cJSON_GetArraySize(item(j, "operations")), 0);
    cJSON_Delete(j);
    buf_free(&out);
    meta_map_release(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_roundtrip),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_map_holds_the_records),
        cmocka_unit_test(test_status_document),
        cmocka_unit_test(test_status_of_an_empty_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
