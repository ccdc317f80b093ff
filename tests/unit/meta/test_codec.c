/* Tests for the etcd gateway encodings (src/meta/b64.h, etcd_json.h):
 * no etcd needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "meta/b64.h"
#include "meta/etcd_json.h"

static void check_roundtrip(const char *plain, size_t n, const char *enc)
{
    buf b = BUF_INIT;
    assert_int_equal(meta_b64_encode(&b, plain, n), 0);
    assert_int_equal(b.len, strlen(enc));
    assert_int_equal(b.len, meta_b64_encoded_len(n));
    assert_string_equal((char *)b.data, enc);
    uint8_t *d;
    size_t dn;
    assert_int_equal(meta_b64_decode(enc, strlen(enc), &d, &dn), 0);
    assert_int_equal(dn, n);
    assert_memory_equal(d, plain, n);
    assert_int_equal(d[dn], 0);
    free(d);
    buf_free(&b);
}

/* RFC 4648 section 10 test vectors. */
static void test_b64_rfc_vectors(void **state)
{
    (void)state;
    check_roundtrip("", 0, "");
    check_roundtrip("f", 1, "Zg==");
    check_roundtrip("fo", 2, "Zm8=");
    check_roundtrip("foo", 3, "Zm9v");
    check_roundtrip("foob", 4, "Zm9vYg==");
    check_roundtrip("fooba", 5, "Zm9vYmE=");
    check_roundtrip("foobar", 6, "Zm9vYmFy");
    check_roundtrip("\0\xff\xfe", 3, "AP/+");
}

static void test_b64_all_bytes_roundtrip(void **state)
{
    (void)state;
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t n = 0; n <= 256; n += 17) {
        buf b = BUF_INIT;
        assert_int_equal(meta_b64_encode(&b, all + (256 - n), n), 0);
        uint8_t *d;
        size_t dn;
        assert_int_equal(meta_b64_decode((char *)b.data, b.len, &d, &dn), 0);
        assert_int_equal(dn, n);
        assert_memory_equal(d, all + (256 - n), n);
        free(d);
        buf_free(&b);
    }
}

static void test_b64_rejects_garbage(void **state)
{
    (void)state;
    uint8_t *d;
    size_t dn;
    assert_int_equal(meta_b64_decode("Zm9v!", 5, &d, &dn), CAIRN_ERR_CORRUPT);
    assert_int_equal(meta_b64_decode("Z", 1, &d, &dn), CAIRN_ERR_CORRUPT);
    assert_int_equal(meta_b64_decode("Zh==", 4, &d, &dn), CAIRN_ERR_CORRUPT);
    assert_int_equal(meta_b64_decode("Zm 9", 4, &d, &dn), CAIRN_ERR_CORRUPT);
    /* unpadded input is accepted */
    assert_int_equal(meta_b64_decode("Zm8", 3, &d, &dn), 0);
    assert_int_equal(dn, 2);
    free(d);
}

static void test_json_kv_and_ints(void **state)
{
    (void)state;
    const char *js = "{\"key\":\"YQ==\",\"create_revision\":\"2\","
                     "\"mod_revision\":\"9007199254740993\",\"version\":3,"
                     "\"value\":\"MQ==\"}";
    cJSON *o = cJSON_Parse(js);
    etcd_kv kv;
    assert_int_equal(etcd_json_kv(o, &kv), 0);
    assert_int_equal(kv.key_len, 1);
    assert_memory_equal(kv.key, "a", 1);
    assert_string_equal((char *)kv.value, "1");
    assert_int_equal(kv.create_revision, 2);
    /* int64 as strings: beyond double precision survives */
    assert_true(kv.mod_revision == 9007199254740993LL);
    assert_int_equal(kv.version, 3);
    assert_int_equal(kv.lease, 0);
    etcd_kv_free(&kv);
    cJSON_Delete(o);

    /* a deleted key's event carries no value */
    o = cJSON_Parse("{\"key\":\"YQ==\",\"mod_revision\":\"4\"}");
    assert_int_equal(etcd_json_kv(o, &kv), 0);
    assert_int_equal(kv.value_len, 0);
    etcd_kv_free(&kv);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"key\":\"@@\"}");
    assert_int_equal(etcd_json_kv(o, &kv), CAIRN_ERR_CORRUPT);
    cJSON_Delete(o);
}

static void test_json_txn_request(void **state)
{
    (void)state;
    etcd_txn *t = etcd_txn_new();
    assert_non_null(t);
    assert_int_equal(etcd_txn_cmp(t, "a", 1, ETCD_CMP_MOD, ETCD_CMP_EQUAL, 7), 0);
    assert_int_equal(etcd_txn_cmp_value(t, "b", 1, ETCD_CMP_LESS, "x", 1), 0);
    assert_int_equal(etcd_txn_cmp(t, "a", 1, ETCD_CMP_VALUE, ETCD_CMP_EQUAL, 1),
                     CAIRN_ERR_INVALID);
    assert_int_equal(etcd_txn_put(t, true, "a", 1, "v", 1, 42), 0);
    assert_int_equal(etcd_txn_delete(t, true, "p", 1, "q", 1), 0);
    assert_int_equal(etcd_txn_get(t, false, "a", 1, NULL, 0), 0);
    char *s = etcd_txn_json(t);
    assert_string_equal(
        s, "{\"compare\":[{\"result\":\"EQUAL\",\"target\":\"MOD\",\"key\":"
           "\"YQ==\",\"mod_revision\":\"7\"},{\"result\":\"LESS\",\"target\":"
           "\"VALUE\",\"key\":\"Yg==\",\"value\":\"eA==\"}],\"success\":[{"
           "\"request_put\":{\"key\":\"YQ==\",\"value\":\"dg==\",\"lease\":"
           "\"42\"}},{\"request_delete_range\":{\"key\":\"cA==\",\"range_end\":"
           "\"cQ==\"}}],\"failure\":[{\"request_range\":{\"key\":\"YQ==\"}}]}");
    free(s);
    etcd_txn_free(t);
}

static void test_json_txn_response(void **state)
{
    (void)state;
    /* as etcd 3.4 answers a failed txn: "succeeded" omitted */
    cJSON *o = cJSON_Parse(
        "{\"header\":{\"revision\":\"2\"},\"responses\":[{\"response_range\":"
        "{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"YQ==\","
        "\"mod_revision\":\"2\",\"value\":\"MQ==\"}],\"count\":\"1\"}}]}");
    etcd_txn_result r;
    assert_int_equal(etcd_json_txn_result(o, &r), 0);
    assert_false(r.succeeded);
    assert_int_equal(r.revision, 2);
    assert_int_equal(r.n_gets, 1);
    assert_int_equal(r.gets[0].count, 1);
    assert_int_equal(r.gets[0].kvs[0].mod_revision, 2);
    etcd_txn_result_free(&r);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"header\":{\"revision\":\"3\"},\"succeeded\":true,"
                    "\"responses\":[{\"response_put\":{}}]}");
    assert_int_equal(etcd_json_txn_result(o, &r), 0);
    assert_true(r.succeeded);
    assert_int_equal(r.n_gets, 0);
    etcd_txn_result_free(&r);
    cJSON_Delete(o);
}

static void test_stream_splitting(void **state)
{
    (void)state;
    const char *s = " {\"a\":\"}{\\\"\"}\n{\"b\":{\"c\":1}}{\"d\"";
    size_t len = strlen(s);
    size_t n1 = etcd_json_stream_next(s, len);
    assert_int_equal(n1, strlen(" {\"a\":\"}{\\\"\"}"));
    size_t n2 = etcd_json_stream_next(s + n1, len - n1);
    assert_int_equal(n2, strlen("\n{\"b\":{\"c\":1}}"));
    assert_int_equal(etcd_json_stream_next(s + n1 + n2, len - n1 - n2), 0);
    assert_int_equal(etcd_json_stream_next("", 0), 0);
}

static void test_watch_messages(void **state)
{
    (void)state;
    etcd_json_watch w;
    cJSON *o = cJSON_Parse(
        "{\"result\":{\"header\":{\"revision\":\"4\"},\"events\":[{\"kv\":{"
        "\"key\":\"YQ==\",\"mod_revision\":\"2\",\"value\":\"MQ==\"}},{"
        "\"type\":\"DELETE\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"4\"}"
        "}]}}");
    assert_int_equal(etcd_json_watch_parse(o, &w), 0);
    assert_int_equal(w.header_revision, 4);
    assert_int_equal(w.n_events, 2);
    assert_int_equal(w.events[0].type, ETCD_EVENT_PUT);
    assert_int_equal(w.events[1].type, ETCD_EVENT_DELETE);
    assert_int_equal(w.events[1].kv.mod_revision, 4);
    etcd_json_watch_free(&w);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"result\":{\"header\":{},\"canceled\":true,"
                    "\"compact_revision\":\"3\"}}");
    assert_int_equal(etcd_json_watch_parse(o, &w), 0);
    assert_true(w.canceled);
    assert_int_equal(w.compact_revision, 3);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"error\":{\"grpc_code\":14,\"message\":\"no leader\"}}");
    assert_int_equal(etcd_json_watch_parse(o, &w), 0);
    assert_string_equal(w.error, "no leader");
    cJSON_Delete(o);
}

static void test_prefix_end(void **state)
{
    (void)state;
    uint8_t out[8];
    assert_int_equal(etcd_prefix_end("/a/", 3, out), 3);
    assert_memory_equal(out, "/a0", 3);
    assert_int_equal(etcd_prefix_end("a\xff\xff", 3, out), 1);
    assert_memory_equal(out, "b", 1);
    assert_int_equal(etcd_prefix_end("\xff", 1, out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_rfc_vectors),
        cmocka_unit_test(test_b64_all_bytes_roundtrip),
        cmocka_unit_test(test_b64_rejects_garbage),
        cmocka_unit_test(test_json_kv_and_ints),
        cmocka_unit_test(test_json_txn_request),
        cmocka_unit_test(test_json_txn_response),
        cmocka_unit_test(test_stream_splitting),
        cmocka_unit_test(test_watch_messages),
        cmocka_unit_test(test_prefix_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
