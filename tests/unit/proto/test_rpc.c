/* Tests for src/proto/rpc.h: every request and reply round-trips, and every
 * truncated or corrupted frame is refused instead of read out of bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "proto/rpc.h"

static rpc_bytes B(const char *s)
{
    rpc_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

static void assert_bytes(rpc_bytes b, const char *s)
{
    assert_int_equal(b.len, strlen(s));
    if (b.len)
        assert_memory_equal(b.p, s, b.len);
}

/* Every strict prefix of a frame must be refused (never read past it). */
static void assert_prefixes_refused(const buf *f)
{
    rpc_request q;
    rpc_reply r;
    for (size_t n = 0; n < f->len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, f->data, n);
        assert_int_equal(rpc_decode_request(copy, n, &q), CAIRN_ERR_PROTO);
        assert_int_equal(rpc_decode_reply(copy, n, RPC_GET, &r),
                         CAIRN_ERR_PROTO);
        free(copy);
    }
}

static void test_put_round_trip(void **state)
{
    (void)state;
    buf f = BUF_INIT;
    rpc_request q = {.type = RPC_PUT, .id = 77, .range_id = 5, .epoch = 3};
    q.key = B("alpha");
    q.value = B("value-1");
    q.cond = RPC_COND_IFSEQ;
    q.cond_seq = seq_make(123456789, 7, 2);
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    assert_int_equal(rpc_frame_len(f.data, f.len), (long)f.len);
    assert_int_equal(rpc_frame_len(f.data, f.len - 1), 0);
    assert_int_equal(rpc_frame_type(f.data), RPC_PUT);

    rpc_request d;
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), 0);
    assert_int_equal(d.type, RPC_PUT);
    assert_int_equal(d.id, 77);
    assert_int_equal(d.range_id, 5);
    assert_int_equal(d.epoch, 3);
    assert_bytes(d.key, "alpha");
    assert_bytes(d.value, "value-1");
    assert_int_equal(d.cond, RPC_COND_IFSEQ);
    assert_int_equal(seq_cmp(&d.cond_seq, &q.cond_seq), 0);
    assert_prefixes_refused(&f);
    buf_free(&f);
}

static void test_scan_and_get_requests(void **state)
{
    (void)state;
    buf f = BUF_INIT;
    rpc_request q = {.type = RPC_SCAN, .id = 1, .range_id = 9, .epoch = 1};
    q.key = B("a");
    q.end = B("");
    q.limit = 100;
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    size_t first = f.len;
    rpc_request g = {.type = RPC_GET, .id = 2, .range_id = 9, .epoch = 1};
    g.key = B("k");
    assert_int_equal(rpc_encode_request(&f, &g), 0);

    rpc_request d;
    assert_int_equal(rpc_frame_len(f.data, f.len), (long)first);
    assert_int_equal(rpc_decode_request(f.data, first, &d), 0);
    assert_int_equal(d.type, RPC_SCAN);
    assert_bytes(d.key, "a");
    assert_int_equal(d.end.len, 0);
    assert_int_equal(d.limit, 100);
    assert_int_equal(rpc_decode_request(f.data + first, f.len - first, &d), 0);
    assert_int_equal(d.type, RPC_GET);
    assert_int_equal(d.id, 2);
    assert_bytes(d.key, "k");
    buf_free(&f);
}

static void test_create_replica_with_peers(void **state)
{
    (void)state;
    buf f = BUF_INIT;
    rpc_request q = {.type = RPC_CREATE_REPLICA, .id = 3, .range_id = 12,
                     .epoch = 1, .table_id = 4, .engine = 2,
                     .bootstrap = true, .n_peers = 3};
    q.key = B("");
    q.end = B("m");
    const char *addrs[] = {"127.0.0.1:7001", "127.0.0.1:7002",
                           "127.0.0.1:7003"};
    for (unsigned i = 0; i < 3; i++) {
        q.peers[i].id = i + 1;
        q.peers[i].addr = B(addrs[i]);
    }
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    rpc_request d;
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), 0);
    assert_int_equal(d.table_id, 4);
    assert_int_equal(d.engine, 2);
    assert_true(d.bootstrap);
    assert_bytes(d.end, "m");
    assert_int_equal(d.n_peers, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(d.peers[i].id, i + 1);
        assert_bytes(d.peers[i].addr, addrs[i]);
    }
    assert_prefixes_refused(&f);

    q.n_peers = RPC_MAX_PEERS + 1;
    size_t before = f.len;
    assert_int_equal(rpc_encode_request(&f, &q), CAIRN_ERR_INVALID);
    assert_int_equal(f.len, before); /* nothing half-written */
    buf_free(&f);
}

/* One creation of a batch, differing per index. */
static rpc_request creation(unsigned i, const char *start, const char *end)
{
    static const char *addrs[] = {"127.0.0.1:7001", "127.0.0.1:7002",
                                  "10.0.0.3:7003"};
    rpc_request q = {.type = RPC_CREATE_REPLICA, .range_id = 100 + i,
                     .epoch = 1 + i, .table_id = 9, .engine = (uint8_t)(1 + i % 2),
                     .bootstrap = i % 2 == 0, .n_peers = 1 + i % 3};
    q.key = B(start);
    q.end = B(end);
    for (unsigned k = 0; k < q.n_peers; k++) {
        q.peers[k].id = k + 1;
        q.peers[k].addr = B(addrs[k]);
    }
    return q;
}

static void assert_same_creation(const rpc_request *d, const rpc_request *q)
{
    assert_int_equal(d->type, RPC_CREATE_REPLICA);
    assert_int_equal(d->range_id, q->range_id);
    assert_int_equal(d->epoch, q->epoch);
    assert_int_equal(d->table_id, q->table_id);
    assert_int_equal(d->engine, q->engine);
    assert_int_equal(d->bootstrap, q->bootstrap);
    assert_int_equal(d->key.len, q->key.len);
    assert_int_equal(d->end.len, q->end.len);
    if (q->key.len)
        assert_memory_equal(d->key.p, q->key.p, q->key.len);
    if (q->end.len)
        assert_memory_equal(d->end.p, q->end.p, q->end.len);
    assert_int_equal(d->n_peers, q->n_peers);
    for (unsigned k = 0; k < q->n_peers; k++) {
        assert_int_equal(d->peers[k].id, q->peers[k].id);
        assert_int_equal(d->peers[k].addr.len, q->peers[k].addr.len);
        assert_memory_equal(d->peers[k].addr.p, q->peers[k].addr.p,
                            q->peers[k].addr.len);
    }
}

/* Many creations in one frame round-trip in order, each as the
 * CREATE_REPLICA request it stands for; a frame whose count disagrees
 * with its creations, or with a malformed creation, is refused whole. */
static void test_create_replicas_batch(void **state)
{
    (void)state;
    const char *bounds[] = {"", "g", "p", ""};
    rpc_request items[3];
    rpc_create_batch b = RPC_CREATE_BATCH_INIT;
    for (unsigned i = 0; i < 3; i++) {
        items[i] = creation(i, bounds[i], bounds[i + 1]);
        assert_int_equal(rpc_create_batch_add(&b, &items[i]), 0);
    }
    rpc_request q;
    rpc_create_batch_request(&b, 42, &q);
    buf f = BUF_INIT;
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    assert_int_equal(rpc_frame_type(f.data), RPC_CREATE_REPLICAS);
    rpc_request d, one;
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), 0);
    assert_int_equal(d.type, RPC_CREATE_REPLICAS);
    assert_int_equal(d.id, 42);
    assert_int_equal(d.count, 3);
    size_t pos = 0;
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(rpc_create_next(&d, &pos, &one), 1);
        assert_int_equal(one.id, 42);
        assert_same_creation(&one, &items[i]);
    }
    assert_int_equal(rpc_create_next(&d, &pos, &one), 0);
    assert_prefixes_refused(&f);

    /* the count says 4, 2 or 3 while 3 are there */
    size_t at = RPC_HEADER_LEN;
    for (uint32_t bad = 2; bad <= 4; bad += 2) {
        be_put_u32(f.data + at, bad);
        assert_int_equal(rpc_decode_request(f.data, f.len, &d),
                         CAIRN_ERR_PROTO);
    }
    be_put_u32(f.data + at, 3);
    f.data[f.len - 17] ^= 0xff; /* the last peer address's length */
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), CAIRN_ERR_PROTO);

    /* an empty batch is a valid (useless) request */
    rpc_create_batch_reset(&b);
    rpc_create_batch_request(&b, 1, &q);
    buf_reset(&f);
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), 0);
    assert_int_equal(d.count, 0);
    pos = 0;
    assert_int_equal(rpc_create_next(&d, &pos, &one), 0);

    /* too many peers: refused, the batch unchanged */
    rpc_request wide = creation(0, "", "");
    wide.n_peers = RPC_MAX_PEERS + 1;
    assert_int_equal(rpc_create_batch_add(&b, &wide), CAIRN_ERR_INVALID);
    assert_int_equal(b.count, 0);
    assert_int_equal(b.items.len, 0);
    rpc_create_batch_free(&b);
    buf_free(&f);
}

/* A batch is full at RPC_CREATE_BATCH_MAX creations or at RPC_FRAME_MAX
 * bytes, whichever comes first: the creation that does not fit is
 * refused with TOOBIG and the batch stays a valid frame. */
static void test_create_replicas_batch_limits(void **state)
{
    (void)state;
    rpc_create_batch b = RPC_CREATE_BATCH_INIT;
    rpc_request one = creation(1, "a", "b");
    for (unsigned i = 0; i < RPC_CREATE_BATCH_MAX; i++)
        assert_int_equal(rpc_create_batch_add(&b, &one), 0);
    size_t len = b.items.len;
    assert_int_equal(rpc_create_batch_add(&b, &one), CAIRN_ERR_TOOBIG);
    assert_int_equal(b.count, RPC_CREATE_BATCH_MAX);
    assert_int_equal(b.items.len, len);
    rpc_request q;
    rpc_create_batch_request(&b, 7, &q);
    buf f = BUF_INIT;
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    rpc_request d;
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), 0);
    assert_int_equal(d.count, RPC_CREATE_BATCH_MAX);

    /* large bounds: the frame's bytes are the limit */
    size_t big = 64 * 1024;
    char *k = malloc(big + 1);
    memset(k, 'x', big);
    k[big] = '\0';
    rpc_create_batch_reset(&b);
    rpc_request wide = creation(2, k, "");
    wide.end = (rpc_bytes){(const uint8_t *)k, big};
    unsigned n = 0;
    int rc;
    while ((rc = rpc_create_batch_add(&b, &wide)) == 0)
        n++;
    assert_int_equal(rc, CAIRN_ERR_TOOBIG);
    assert_true(n > 100 && n < RPC_CREATE_BATCH_MAX);
    rpc_create_batch_request(&b, 8, &q);
    buf_reset(&f);
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    assert_true(f.len <= RPC_FRAME_MAX);
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), 0);
    assert_int_equal(d.count, n);
    free(k);
    rpc_create_batch_free(&b);
    buf_free(&f);
}

/* The reply lists the creations that failed, each with its own status
 * and message (cut at RPC_CREATE_MSG_MAX); none failed is an empty list. */
static void test_create_replicas_reply(void **state)
{
    (void)state;
    buf f = BUF_INIT;
    size_t mark;
    char longmsg[400];
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    assert_int_equal(buf_append_str(&f, "before"), 0);
    assert_int_equal(rpc_reply_create_begin(&f, 5, &mark), 0);
    assert_int_equal(rpc_reply_create_add(&f, 101, CAIRN_ERR_TRYAGAIN,
                                          "range 101 is being dropped"), 0);
    assert_int_equal(rpc_reply_create_add(&f, 102, CAIRN_ERR_EXISTS, NULL), 0);
    assert_int_equal(rpc_reply_create_add(&f, 103, CAIRN_ERR_IO, longmsg), 0);
    assert_int_equal(rpc_reply_create_add(&f, 104, 0, "ok"),
                     CAIRN_ERR_INVALID);
    rpc_reply_create_end(&f, mark, 3);
    rpc_reply r;
    const uint8_t *p = f.data + mark;
    size_t n = f.len - mark;
    assert_int_equal(rpc_frame_len(p, n), (long)n);
    assert_int_equal(rpc_decode_reply(p, n, RPC_CREATE_REPLICAS, &r), 0);
    assert_int_equal(r.id, 5);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n_failed, 3);
    size_t pos = 0;
    rpc_create_failure e;
    assert_int_equal(rpc_create_failure_next(&r, &pos, &e), 1);
    assert_int_equal(e.range_id, 101);
    assert_int_equal(e.status, CAIRN_ERR_TRYAGAIN);
    assert_bytes(e.message, "range 101 is being dropped");
    assert_int_equal(rpc_create_failure_next(&r, &pos, &e), 1);
    assert_int_equal(e.status, CAIRN_ERR_EXISTS);
    assert_bytes(e.message, cairn_err_message(CAIRN_ERR_EXISTS));
    assert_int_equal(rpc_create_failure_next(&r, &pos, &e), 1);
    assert_int_equal(e.range_id, 103);
    assert_int_equal(e.message.len, RPC_CREATE_MSG_MAX);
    assert_int_equal(rpc_create_failure_next(&r, &pos, &e), 0);
    /* a count that disagrees with the list is refused */
    uint8_t *copy = malloc(n);
    memcpy(copy, p, n);
    be_put_u32(copy + RPC_HEADER_LEN + 8, 2);
    assert_int_equal(rpc_decode_reply(copy, n, RPC_CREATE_REPLICAS, &r),
                     CAIRN_ERR_PROTO);
    free(copy);

    buf_reset(&f);
    assert_int_equal(rpc_reply_create_begin(&f, 6, &mark), 0);
    rpc_reply_create_end(&f, mark, 0);
    assert_int_equal(rpc_decode_reply(f.data, f.len, RPC_CREATE_REPLICAS, &r),
                     0);
    assert_int_equal(r.n_failed, 0);
    pos = 0;
    assert_int_equal(rpc_create_failure_next(&r, &pos, &e), 0);
    /* an error reply: none attempted */
    buf_reset(&f);
    assert_int_equal(rpc_reply_error(&f, 7, CAIRN_ERR_NOMEM, "no memory"), 0);
    assert_int_equal(rpc_decode_reply(f.data, f.len, RPC_CREATE_REPLICAS, &r),
                     0);
    assert_int_equal(r.status, CAIRN_ERR_NOMEM);
    buf_free(&f);
}

/* Encode `q` into `f` and decode it back (the result points into `f`). */
static rpc_request roundtrip(buf *f, const rpc_request *q)
{
    rpc_request d;
    buf_reset(f);
    assert_int_equal(rpc_encode_request(f, q), 0);
    assert_int_equal(rpc_decode_request(f->data, f->len, &d), 0);
    assert_int_equal(d.type, q->type);
    return d;
}

static void test_admin_requests(void **state)
{
    (void)state;
    buf f = BUF_INIT;
    rpc_request q = {.type = RPC_ADD_REPLICA, .id = 4, .range_id = 8,
                     .node_id = 6, .epoch = 9};
    q.addr = B("127.0.0.1:9000");
    rpc_request d = roundtrip(&f, &q);
    assert_int_equal(d.node_id, 6);
    assert_int_equal(d.epoch, 9);
    assert_bytes(d.addr, "127.0.0.1:9000");
    rpc_request m = {.type = RPC_METRICS, .id = 5, .range_id = 0};
    roundtrip(&f, &m);
    rpc_request x = {.type = RPC_DROP_REPLICA, .id = 6, .range_id = 12};
    assert_int_equal(roundtrip(&f, &x).range_id, 12);
    rpc_request u = {.type = RPC_CATCH_UP, .id = 7, .range_id = 13,
                     .node_id = 3};
    d = roundtrip(&f, &u);
    assert_int_equal(d.range_id, 13);
    assert_int_equal(d.node_id, 3);
    rpc_request e = {.type = RPC_BUMP_EPOCH, .id = 8, .range_id = 14,
                     .epoch = 21};
    d = roundtrip(&f, &e);
    assert_int_equal(d.range_id, 14);
    assert_int_equal(d.epoch, 21);
    rpc_request n = {.type = RPC_FENCE, .id = 9, .range_id = 15, .epoch = 22};
    d = roundtrip(&f, &n);
    assert_int_equal(d.type, RPC_FENCE);
    assert_int_equal(d.range_id, 15);
    assert_int_equal(d.epoch, 22);
    rpc_request fl = {.type = RPC_FLOOR, .id = 10, .range_id = 16, .epoch = 2,
                      .cond_seq = seq_make(77, 1, 2)};
    d = roundtrip(&f, &fl);
    assert_int_equal(d.range_id, 16);
    assert_int_equal(d.epoch, 2);
    assert_int_equal(seq_time(&d.cond_seq), 77);
    buf_free(&f);
}

static void test_bad_frames_refused(void **state)
{
    (void)state;
    uint8_t tiny[4] = {0, 0, 0, 2}; /* length below the header */
    assert_int_equal(rpc_frame_len(tiny, 4), CAIRN_ERR_PROTO);
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(rpc_frame_len(huge, 4), CAIRN_ERR_PROTO);

    buf f = BUF_INIT;
    rpc_request q = {.type = RPC_GET, .id = 1, .range_id = 1};
    q.key = B("k");
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    rpc_request d;
    f.data[4] = 99; /* unknown type */
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), CAIRN_ERR_PROTO);
    f.data[4] = RPC_GET;
    f.data[f.len - 4] = 0xff; /* key length past the end (last 4+1 bytes) */
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), CAIRN_ERR_PROTO);
    buf_free(&f);

    /* Trailing garbage after a valid body is refused too. */
    buf g = BUF_INIT;
    rpc_request p = {.type = RPC_PING, .id = 9};
    assert_int_equal(rpc_encode_request(&g, &p), 0);
    assert_int_equal(buf_append_u8(&g, 0), 0);
    be_put_u32(g.data, (uint32_t)(g.len - 4));
    assert_int_equal(rpc_decode_request(g.data, g.len, &d), CAIRN_ERR_PROTO);
    buf_free(&g);
}

/* Random bytes never crash the decoders (run under ASan in CI). */
static void test_random_bytes(void **state)
{
    (void)state;
    uint8_t frame[64];
    unsigned s = 12345;
    for (int i = 0; i < 20000; i++) {
        size_t n = RPC_HEADER_LEN + (size_t)(i % 40);
        for (size_t j = 0; j < n; j++) {
            s = s * 1103515245u + 12345u;
            frame[j] = (uint8_t)(s >> 16);
        }
        be_put_u32(frame, (uint32_t)(n - 4));
        frame[4] = (uint8_t)(i % RPC_TYPE_MAX_);
        rpc_request q;
        rpc_reply r;
        static const rpc_type kinds[] = {RPC_PING, RPC_PUT, RPC_DEL, RPC_GET,
                                         RPC_SCAN, RPC_METRICS,
                                         RPC_CREATE_REPLICAS};
        rpc_type k = kinds[i % 7];
        if (rpc_decode_request(frame, n, &q) == 0 &&
            q.type == RPC_CREATE_REPLICAS) {
            size_t pos = 0;
            rpc_request one;
            uint32_t seen = 0;
            while (rpc_create_next(&q, &pos, &one) == 1)
                seen++;
            assert_int_equal(seen, q.count);
        }
        if (rpc_decode_reply(frame, n, k, &r) == 0 && r.scan.len) {
            size_t pos = 0;
            rpc_scan_entry e;
            while (rpc_scan_next(&r, &pos, &e) == 1)
                ;
        }
        if (rpc_decode_reply(frame, n, k, &r) == 0 && r.failed.len) {
            size_t pos = 0;
            rpc_create_failure e;
            uint32_t seen = 0;
            while (rpc_create_failure_next(&r, &pos, &e) == 1)
                seen++;
            assert_int_equal(seen, r.n_failed);
        }
    }
}

static void test_replies(void **state)
{
    (void)state;
    buf f = BUF_INIT;
    rpc_reply r;
    seq s = seq_make(1000, 1, 3);

    assert_int_equal(rpc_reply_seq(&f, 10, &s), 0);
    assert_int_equal(rpc_decode_reply(f.data, f.len, RPC_PUT, &r), 0);
    assert_int_equal(r.id, 10);
    assert_int_equal(r.status, 0);
    assert_int_equal(seq_cmp(&r.seq, &s), 0);
    buf_reset(&f);

    assert_int_equal(rpc_reply_value(&f, 11, &s, "v", 1), 0);
    assert_int_equal(rpc_decode_reply(f.data, f.len, RPC_GET, &r), 0);
    assert_bytes(r.value, "v");
    assert_prefixes_refused(&f);
    buf_reset(&f);

    assert_int_equal(rpc_reply_not_leader(&f, 12, 2, "127.0.0.1:7002"), 0);
    assert_int_equal(rpc_decode_reply(f.data, f.len, RPC_GET, &r), 0);
    assert_int_equal(r.status, CAIRN_ERR_NOT_LEADER);
    assert_int_equal(r.leader_id, 2);
    assert_bytes(r.leader_addr, "127.0.0.1:7002");
    buf_reset(&f);

    assert_int_equal(rpc_reply_error(&f, 13, CAIRN_ERR_STALE_EPOCH,
                                     "epoch 3, range is at 4"), 0);
    assert_int_equal(rpc_decode_reply(f.data, f.len, RPC_PUT, &r), 0);
    assert_int_equal(r.status, CAIRN_ERR_STALE_EPOCH);
    assert_bytes(r.message, "epoch 3, range is at 4");
    assert_int_equal(rpc_reply_error(&f, 1, 0, "x"), CAIRN_ERR_INVALID);
    buf_reset(&f);

    assert_int_equal(rpc_reply_text(&f, 14, "{\"a\":1}", 7), 0);
    assert_int_equal(rpc_decode_reply(f.data, f.len, RPC_METRICS, &r), 0);
    assert_bytes(r.value, "{\"a\":1}");
    buf_free(&f);
}

static void test_scan_reply(void **state)
{
    (void)state;
    buf f = BUF_INIT;
    assert_int_equal(buf_append_str(&f, "prefix"), 0); /* mark is not 0 */
    size_t mark;
    assert_int_equal(rpc_reply_scan_begin(&f, 20, &mark), 0);
    char key[16];
    for (int i = 0; i < 5; i++) {
        seq s = seq_make(100 + (uint64_t)i, 0, 1);
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(
            rpc_reply_scan_add(&f, key, strlen(key), &s, "val", 3), 0);
    }
    rpc_reply_scan_end(&f, mark, 5, true);

    rpc_reply r;
    assert_int_equal(rpc_frame_len(f.data + mark, f.len - mark),
                     (long)(f.len - mark));
    assert_int_equal(rpc_decode_reply(f.data + mark, f.len - mark, RPC_SCAN,
                                      &r), 0);
    assert_int_equal(r.id, 20);
    assert_int_equal(r.scan_count, 5);
    assert_true(r.scan_more);
    size_t pos = 0;
    rpc_scan_entry e;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rpc_scan_next(&r, &pos, &e), 1);
        snprintf(key, sizeof key, "k%d", i);
        assert_bytes(e.key, key);
        assert_bytes(e.value, "val");
        assert_int_equal(seq_time(&e.seq), 100 + (uint64_t)i);
    }
    assert_int_equal(rpc_scan_next(&r, &pos, &e), 0);
    buf_free(&f);
}

/* Records (a move's SCAN_RECORDS entries and COPY items): tombstones
 * round-trip; a COPY whose records are malformed, too many or too few for
 * its count, or break the key and value limits, is refused whole. */
static void test_copy_records(void **state)
{
    (void)state;
    buf items = BUF_INIT, f = BUF_INIT;
    seq s1 = seq_make(5, 0, 1), s2 = seq_make(6, 0, 2);
    assert_int_equal(rpc_record_put(&items, "a", 1, &s1, false, "va", 2), 0);
    assert_int_equal(rpc_record_put(&items, "b", 1, &s2, true, "x", 1), 0);
    rpc_request q = {.type = RPC_COPY, .id = 3, .range_id = 9, .epoch = 4,
                     .count = 2, .items = {items.data, items.len}};
    rpc_request d = roundtrip(&f, &q);
    assert_int_equal(d.range_id, 9);
    assert_int_equal(d.epoch, 4);
    assert_int_equal(d.count, 2);
    size_t pos = 0;
    rpc_record r;
    assert_int_equal(rpc_record_next(d.items, &pos, &r), 1);
    assert_bytes(r.key, "a");
    assert_bytes(r.value, "va");
    assert_false(r.tombstone);
    assert_int_equal(seq_time(&r.seq), 5);
    assert_int_equal(rpc_record_next(d.items, &pos, &r), 1);
    assert_bytes(r.key, "b");
    assert_true(r.tombstone);
    assert_int_equal(r.value.len, 0); /* a tombstone carries no value */
    assert_int_equal(rpc_record_next(d.items, &pos, &r), 0);
    /* the count must match */
    q.count = 3;
    buf_reset(&f);
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), CAIRN_ERR_PROTO);
    /* every cut of the items is refused */
    q.count = 2;
    for (size_t n = 1; n < items.len; n++) {
        q.items.len = n;
        buf_reset(&f);
        assert_int_equal(rpc_encode_request(&f, &q), 0);
        assert_int_not_equal(rpc_decode_request(f.data, f.len, &d), 0);
    }
    /* an empty key is refused */
    buf_reset(&items);
    assert_int_equal(rpc_record_put(&items, "", 0, &s1, false, "v", 1), 0);
    q.count = 1;
    q.items = (rpc_bytes){items.data, items.len};
    buf_reset(&f);
    assert_int_equal(rpc_encode_request(&f, &q), 0);
    assert_int_equal(rpc_decode_request(f.data, f.len, &d), CAIRN_ERR_PROTO);
    /* a SCAN_RECORDS request is a SCAN's shape */
    rpc_request sr = {.type = RPC_SCAN_RECORDS, .id = 4, .range_id = 2,
                      .epoch = 3, .key = {(const uint8_t *)"a", 1},
                      .end = {(const uint8_t *)"z", 1}, .limit = 50};
    d = roundtrip(&f, &sr);
    assert_bytes(d.key, "a");
    assert_bytes(d.end, "z");
    assert_int_equal(d.limit, 50);
    buf_free(&items);
    buf_free(&f);
}

static void test_handshakes(void **state)
{
    (void)state;
    buf f = BUF_INIT;
    rpc_hello h;
    assert_int_equal(rpc_hello_client(&f), 0);
    assert_int_equal(rpc_hello_parse(f.data, 3, &h), 0);
    assert_int_equal(rpc_hello_parse(f.data, f.len, &h), 5);
    assert_int_equal(h.kind, RPC_CONN_CLIENT);
    buf_reset(&f);

    assert_int_equal(rpc_hello_link(&f, 42, 3, "127.0.0.1:7003"), 0);
    for (size_t n = 0; n < f.len; n++)
        assert_int_equal(rpc_hello_parse(f.data, n, &h), 0);
    assert_int_equal(rpc_hello_parse(f.data, f.len, &h), (int)f.len);
    assert_int_equal(h.kind, RPC_CONN_LINK);
    assert_int_equal(h.incarnation, 42);
    assert_int_equal(h.from_id, 3);
    assert_string_equal(h.addr, "127.0.0.1:7003");

    f.data[4] = 2; /* the per-range Raft connection of older nodes */
    assert_int_equal(rpc_hello_parse(f.data, f.len, &h), CAIRN_ERR_PROTO);
    f.data[0] = 'X';
    assert_int_equal(rpc_hello_parse(f.data, f.len, &h), CAIRN_ERR_PROTO);
    assert_int_equal(rpc_hello_parse((const uint8_t *)"GET ", 4, &h),
                     CAIRN_ERR_PROTO);
    buf_free(&f);
}

static void test_handshakes_with_secret(void **state)
{
    (void)state;
    buf f = BUF_INIT;
    rpc_hello h;
    /* No secret here: a handshake with one is accepted (rolling out). */
    assert_int_equal(rpc_secret_set("s3cret", 6), 0);
    assert_int_equal(rpc_hello_client(&f), 0);
    assert_int_equal(f.len, 5 + 2 + 6);
    assert_int_equal(f.data[4], RPC_CONN_CLIENT | RPC_HELLO_SECRET);
    for (size_t n = 0; n < f.len; n++)
        assert_int_equal(rpc_hello_parse(f.data, n, &h), 0);
    assert_int_equal(rpc_hello_parse(f.data, f.len, &h), (int)f.len);
    assert_int_equal(h.kind, RPC_CONN_CLIENT);
    assert_true(h.has_secret);
    assert_int_equal(rpc_secret_check(&h), 0);

    /* A node with another secret refuses it; without any, too. */
    assert_int_equal(rpc_secret_set("s3creT", 6), 0);
    assert_int_equal(rpc_secret_check(&h), CAIRN_ERR_INVALID);
    assert_int_equal(rpc_secret_set("s3cret!", 7), 0);
    assert_int_equal(rpc_secret_check(&h), CAIRN_ERR_INVALID);
    buf_reset(&f);
    assert_int_equal(rpc_secret_set(NULL, 0), 0);
    assert_int_equal(rpc_hello_client(&f), 0);
    assert_int_equal(rpc_hello_parse(f.data, f.len, &h), 5);
    assert_false(h.has_secret);
    assert_int_equal(rpc_secret_check(&h), 0); /* none required */
    assert_int_equal(rpc_secret_set("x", 1), 0);
    assert_int_equal(rpc_secret_check(&h), CAIRN_ERR_PROTO);

    /* A link carries it after its address. */
    buf_reset(&f);
    assert_int_equal(rpc_hello_link(&f, 7, 2, "10.0.0.2:7000"), 0);
    for (size_t n = 0; n < f.len; n++)
        assert_int_equal(rpc_hello_parse(f.data, n, &h), 0);
    assert_int_equal(rpc_hello_parse(f.data, f.len, &h), (int)f.len);
    assert_int_equal(h.kind, RPC_CONN_LINK);
    assert_string_equal(h.addr, "10.0.0.2:7000");
    assert_int_equal(rpc_secret_check(&h), 0);
    /* A zero or oversized secret length is malformed. */
    f.data[f.len - 3] = 0;
    f.data[f.len - 2] = 0;
    assert_int_equal(rpc_hello_parse(f.data, f.len, &h), CAIRN_ERR_PROTO);
    f.data[f.len - 3] = 0x7f;
    assert_int_equal(rpc_hello_parse(f.data, f.len, &h), CAIRN_ERR_PROTO);
    assert_int_equal(rpc_secret_set(NULL, 0), 0);
    buf_free(&f);
}

static void test_secret_file(void **state)
{
    (void)state;
    char path[] = "/tmp/cairn-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc\n", 4), 4);
    close(fd);
    char err[256], warn[256];
    assert_int_equal(rpc_secret_load(path, err, sizeof err, warn, sizeof warn),
                     0);
    assert_string_equal(warn, ""); /* mkstemp makes it 0600 */
    rpc_hello h = {.has_secret = true, .secret_len = 3};
    memcpy(h.secret, "abc", 3);
    assert_int_equal(rpc_secret_check(&h), 0);
    chmod(path, 0644);
    assert_int_equal(rpc_secret_load(path, err, sizeof err, warn, sizeof warn),
                     0);
    assert_non_null(strstr(warn, "chmod 600"));
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    assert_int_equal(rpc_secret_load(path, err, sizeof err, warn, sizeof warn),
                     CAIRN_ERR_INVALID);
    unlink(path);
    assert_int_equal(rpc_secret_load(path, err, sizeof err, warn, sizeof warn),
                     CAIRN_ERR_IO);
    assert_int_equal(rpc_secret_set(NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_round_trip),
        cmocka_unit_test(test_scan_and_get_requests),
        cmocka_unit_test(test_create_replica_with_peers),
        cmocka_unit_test(test_create_replicas_batch),
        cmocka_unit_test(test_create_replicas_batch_limits),
        cmocka_unit_test(test_create_replicas_reply),
        cmocka_unit_test(test_admin_requests),
        cmocka_unit_test(test_bad_frames_refused),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_scan_reply),
        cmocka_unit_test(test_copy_records),
        cmocka_unit_test(test_handshakes),
        cmocka_unit_test(test_handshakes_with_secret),
        cmocka_unit_test(test_secret_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
