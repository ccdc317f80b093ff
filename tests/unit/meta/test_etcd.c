/* Tests for src/meta/etcd.h against a real etcd (etcd_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "meta/etcd.h"
#include "meta/etcd_fixture.h"
#include "meta/etcd_http.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static etcd *client(void **state) { return ((etcd_fixture *)*state)->client; }

static void test_put_get_range_delete(void **state)
{
    etcd *c = client(state);
    int64_t rev = 0;
    const uint8_t bin[] = {0, 0xff, 'x', 0};
    assert_int_equal(etcd_put(c, "/t1/a", 5, bin, sizeof bin, 0, &rev), 0);
    assert_true(rev > 0);
    assert_int_equal(etcd_put(c, "/t1/b", 5, "2", 1, 0, NULL), 0);
    assert_int_equal(etcd_put(c, "/t2/x", 5, "3", 1, 0, NULL), 0);
    etcd_kv kv;
    int64_t srev;
    assert_int_equal(etcd_get(c, "/t1/a", 5, 0, &kv, &srev), 0);
    assert_int_equal(kv.value_len, sizeof bin);
    assert_memory_equal(kv.value, bin, sizeof bin);
    assert_int_equal(kv.mod_revision, rev);
    assert_true(srev >= rev + 2);
    etcd_kv_free(&kv);
    assert_int_equal(etcd_get(c, "/t1/zz", 6, 0, &kv, NULL), CAIRN_ERR_NOT_FOUND);

    uint8_t end[8];
    size_t end_len = etcd_prefix_end("/t1/", 4, end);
    etcd_range_result r;
    assert_int_equal(etcd_range(c, "/t1/", 4, end, end_len, 0, 0, &r), 0);
    assert_int_equal(r.count, 2);
    assert_memory_equal(r.kvs[1].key, "/t1/b", 5);
    etcd_range_free(&r);
    /* an old revision still shows the old state */
    assert_int_equal(etcd_range(c, "/t1/", 4, end, end_len, rev, 0, &r), 0);
    assert_int_equal(r.count, 1);
    etcd_range_free(&r);
    assert_int_equal(etcd_range(c, "/t1/", 4, end, end_len, 0, 1, &r), 0);
    assert_int_equal(r.count, 1);
    assert_true(r.more);
    etcd_range_free(&r);

    int64_t deleted = 0;
    assert_int_equal(etcd_delete(c, "/t1/", 4, end, end_len, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(etcd_get(c, "/t1/a", 5, 0, &kv, NULL), CAIRN_ERR_NOT_FOUND);
}

/* Two writers read the same revision; the compare lets exactly one win. */
static void test_txn_compare_conflict(void **state)
{
    etcd *c = client(state);
    assert_int_equal(etcd_put(c, "/cas", 4, "v0", 2, 0, NULL), 0);
    etcd_kv kv;
    assert_int_equal(etcd_get(c, "/cas", 4, 0, &kv, NULL), 0);
    int64_t read_rev = kv.mod_revision;
    etcd_kv_free(&kv);

    int won = 0;
    for (int writer = 0; writer < 2; writer++) {
        etcd_txn *t = etcd_txn_new();
        assert_int_equal(etcd_txn_cmp(t, "/cas", 4, ETCD_CMP_MOD,
                                      ETCD_CMP_EQUAL, read_rev), 0);
        assert_int_equal(etcd_txn_put(t, true, "/cas", 4, writer ? "w1" : "w0",
                                      2, 0), 0);
        assert_int_equal(etcd_txn_get(t, false, "/cas", 4, NULL, 0), 0);
        etcd_txn_result r;
        assert_int_equal(etcd_txn_commit(c, t, &r), 0);
        if (r.succeeded) {
            won++;
            assert_int_equal(r.n_gets, 0);
        } else {
            /* the loser sees the winner's value in its failure branch */
            assert_int_equal(r.n_gets, 1);
            assert_memory_equal(r.gets[0].kvs[0].value, "w0", 2);
        }
        etcd_txn_result_free(&r);
        etcd_txn_free(t);
    }
    assert_int_equal(won, 1);

    /* create-if-absent: version == 0 */
    etcd_txn *t = etcd_txn_new();
    etcd_txn_cmp(t, "/cas", 4, ETCD_CMP_VERSION, ETCD_CMP_EQUAL, 0);
    etcd_txn_put(t, true, "/cas", 4, "new", 3, 0);
    etcd_txn_result r;
    assert_int_equal(etcd_txn_commit(c, t, &r), 0);
    assert_false(r.succeeded);
    etcd_txn_result_free(&r);
    etcd_txn_free(t);
    /* value compare */
    t = etcd_txn_new();
    etcd_txn_cmp_value(t, "/cas", 4, ETCD_CMP_EQUAL, "w0", 2);
    etcd_txn_put(t, true, "/cas2", 5, "ok", 2, 0);
    assert_int_equal(etcd_txn_commit(c, t, &r), 0);
    assert_true(r.succeeded);
    etcd_txn_result_free(&r);
    etcd_txn_free(t);
}

/* etcd refuses a transaction of more than 128 operations (its default
 * --max-txn-ops): the error says so in etcd's own words, and the next
 * successful call clears it. */
static void test_txn_error_names_its_cause(void **state)
{
    etcd *c = client(state);
    etcd_txn *t = etcd_txn_new();
    char key[32];
    for (int i = 0; i < 129; i++) {
        int n = snprintf(key, sizeof key, "/many/%03d", i);
        assert_int_equal(etcd_txn_put(t, true, key, (size_t)n, "v", 1, 0), 0);
    }
    etcd_txn_result r = {0};
    assert_int_equal(etcd_txn_commit(c, t, &r), CAIRN_ERR_META);
    assert_non_null(strstr(etcd_last_error(), "too many operations in txn"));
    assert_non_null(strstr(etcd_last_error(), etcd_endpoint(c, 0)));
    etcd_txn_free(t);
    assert_int_equal(etcd_put(c, "/many/ok", 8, "v", 1, 0, NULL), 0);
    assert_string_equal(etcd_last_error(), "");
}

static void test_lease_expiry_and_revoke(void **state)
{
    etcd *c = client(state);
    int64_t lease, ttl;
    assert_int_equal(etcd_lease_grant(c, 1, &lease), 0);
    assert_int_equal(etcd_put(c, "/live/1", 7, "", 0, lease, NULL), 0);
    assert_int_equal(etcd_lease_keepalive(c, lease, &ttl), 0);
    assert_true(ttl >= 1);
    etcd_kv kv;
    assert_int_equal(etcd_get(c, "/live/1", 7, 0, &kv, NULL), 0);
    assert_int_equal(kv.lease, lease);
    etcd_kv_free(&kv);
    /* no more keepalives: the key must go (etcd's minimum TTL is a few
     * seconds, so allow up to 8 s) */
    int64_t deadline = now_ms() + 8000;
    int rc;
    while ((rc = etcd_get(c, "/live/1", 7, 0, &kv, NULL)) == 0 &&
           now_ms() < deadline) {
        etcd_kv_free(&kv);
        usleep(100 * 1000);
    }
    assert_int_equal(rc, CAIRN_ERR_NOT_FOUND);
    assert_int_equal(etcd_lease_keepalive(c, lease, NULL), CAIRN_ERR_NOT_FOUND);

    assert_int_equal(etcd_lease_grant(c, 60, &lease), 0);
    assert_int_equal(etcd_put(c, "/live/2", 7, "", 0, lease, NULL), 0);
    assert_int_equal(etcd_lease_revoke(c, lease), 0);
    assert_int_equal(etcd_get(c, "/live/2", 7, 0, &kv, NULL), CAIRN_ERR_NOT_FOUND);
    assert_int_equal(etcd_lease_revoke(c, lease), CAIRN_ERR_NOT_FOUND);
}

/* What a watch delivered, collected for the test thread. */
typedef struct seen {
    pthread_mutex_t mu;
    int64_t revs[64];
    int types[64];
    char keys[64][16];
    int n;
    int connected, disconnected, compacted;
    int64_t compact_rev;
} seen;

static void on_watch(void *arg, const etcd_watch_msg *m)
{
    seen *s = arg;
    pthread_mutex_lock(&s->mu);
    if (m->kind == ETCD_WATCH_CONNECTED)
        s->connected++;
    if (m->kind == ETCD_WATCH_DISCONNECTED)
        s->disconnected++;
    if (m->kind == ETCD_WATCH_COMPACTED) {
        s->compacted++;
        s->compact_rev = m->revision;
    }
    for (size_t i = 0; i < m->n_events && s->n < 64; i++) {
        s->revs[s->n] = m->events[i].kv.mod_revision;
        s->types[s->n] = m->events[i].type;
        snprintf(s->keys[s->n], 16, "%.*s", (int)m->events[i].kv.key_len,
                 (char *)m->events[i].kv.key);
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
}

/* Wait until *field >= want (under the lock), 10 s at most. */
static int wait_count(seen *s, const int *field, int want)
{
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int v = *field;
        pthread_mutex_unlock(&s->mu);
        if (v >= want)
            return v;
        if (now_ms() > deadline)
            return v;
        usleep(10 * 1000);
    }
}

static void test_watch_events_and_restart(void **state)
{
    etcd_fixture *f = *state;
    etcd *c = f->client;
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    int64_t rev1;
    assert_int_equal(etcd_put(c, "/w/a", 4, "1", 1, 0, &rev1), 0);
    uint8_t end[4];
    size_t end_len = etcd_prefix_end("/w/", 3, end);
    etcd_watch *w;
    /* from rev1: the existing change is replayed first */
    assert_int_equal(etcd_watch_start(c, "/w/", 3, end, end_len, rev1,
                                      on_watch, &s, &w), 0);
    assert_int_equal(etcd_put(c, "/w/b", 4, "2", 1, 0, NULL), 0);
    assert_int_equal(etcd_delete(c, "/w/a", 4, NULL, 0, NULL), 0);
    assert_int_equal(etcd_put(c, "/other", 6, "x", 1, 0, NULL), 0);
    assert_int_equal(wait_count(&s, &s.n, 3), 3);
    assert_string_equal(s.keys[0], "/w/a");
    assert_int_equal(s.revs[0], rev1);
    assert_string_equal(s.keys[1], "/w/b");
    assert_int_equal(s.types[2], ETCD_EVENT_DELETE);
    assert_true(s.revs[1] < s.revs[2]);

    /* kill -9 etcd: the watch notices, reconnects when etcd is back, and
     * delivers what happened after its last revision, once */
    etcd_server_kill(f->server, 1);
    assert_int_equal(wait_count(&s, &s.disconnected, 1), 1);
    assert_int_equal(etcd_server_restart(f->server, 20000), 0);
    assert_int_equal(etcd_put(c, "/w/c", 4, "3", 1, 0, NULL), 0);
    assert_int_equal(wait_count(&s, &s.n, 4), 4);
    assert_string_equal(s.keys[3], "/w/c");
    assert_true(s.revs[3] > s.revs[2]);
    assert_true(wait_count(&s, &s.connected, 2) >= 2);
    etcd_watch_stop(w);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.n, 4); /* nothing repeated */
    assert_int_equal(s.compacted, 0);
    pthread_mutex_unlock(&s.mu);
}

static void test_watch_reports_compaction(void **state)
{
    etcd *c = client(state);
    int64_t rev1, rev2;
    assert_int_equal(etcd_put(c, "/k/a", 4, "1", 1, 0, &rev1), 0);
    assert_int_equal(etcd_put(c, "/k/a", 4, "2", 1, 0, &rev2), 0);
    /* compaction is not in this client's interface: use the gateway */
    char body[64];
    snprintf(body, sizeof body, "{\"revision\":\"%lld\"}", (long long)rev2);
    cJSON *ans = NULL;
    assert_int_equal(etcd_http_call(c, "/v3/kv/compaction", body, true, &ans), 0);
    cJSON_Delete(ans);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    etcd_watch *w;
    assert_int_equal(etcd_watch_start(c, "/k/a", 4, NULL, 0, rev1, on_watch,
                                      &s, &w), 0);
    assert_int_equal(wait_count(&s, &s.compacted, 1), 1);
    assert_int_equal(s.compact_rev, rev2);
    etcd_watch_stop(w);
}

/* A dead first endpoint: calls and watches fail over to the live one. */
static void test_failover_to_next_endpoint(void **state)
{
    etcd_fixture *f = *state;
    char eps[128];
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d,%s",
             etcd_server_free_port(), etcd_server_url(f->server));
    etcd *c;
    assert_int_equal(etcd_open(&c, eps, 1000), 0);
    assert_int_equal(etcd_endpoint_count(c), 2);
    assert_int_equal(etcd_put(c, "/fo", 3, "1", 1, 0, NULL), 0);
    etcd_kv kv;
    assert_int_equal(etcd_get(c, "/fo", 3, 0, &kv, NULL), 0);
    etcd_kv_free(&kv);
    etcd_close(c);

    /* nothing reachable: an error, within the timeouts */
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d", etcd_server_free_port());
    assert_int_equal(etcd_open(&c, eps, 300), 0);
    int64_t t0 = now_ms();
    assert_int_equal(etcd_get(c, "/fo", 3, 0, &kv, NULL), CAIRN_ERR_META);
    assert_true(now_ms() - t0 < 2000);
    /* the error names the endpoint and why it failed */
    assert_non_null(strstr(etcd_last_error(), eps));
    assert_non_null(strstr(etcd_last_error(), "connect"));
    etcd_close(c);
    assert_int_equal(etcd_open(&c, "", 300), CAIRN_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_range_delete),
        cmocka_unit_test(test_txn_compare_conflict),
        cmocka_unit_test(test_txn_error_names_its_cause),
        cmocka_unit_test(test_lease_expiry_and_revoke),
        cmocka_unit_test(test_watch_events_and_restart),
        cmocka_unit_test(test_watch_reports_compaction),
        cmocka_unit_test(test_failover_to_next_endpoint),
    };
    return cmocka_run_group_tests(tests, etcd_fixture_setup,
                                  etcd_fixture_teardown);
}
