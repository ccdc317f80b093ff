/*
 * fuzz_rpc.c - libFuzzer target for the cairn RPC decoders (proto/rpc.h),
 * above all the variable-length ones a node and a router read from the
 * network: CREATE_REPLICAS requests (many creations in one frame) and
 * their replies (a list of failures), and scan replies.
 *
 * Input: byte 0 picks the request type a reply is decoded for, the rest
 * is one frame (its length field is patched to the input's length, so
 * that the decoders see whole frames). Each decode gets an exact-size
 * heap copy (ASan flags any over-read). Invariants:
 *   - an accepted CREATE_REPLICAS request yields exactly `count`
 *     creations, and re-encoding them (rpc_create_batch_add) and the
 *     request gives a frame that decodes to the same creations;
 *   - any other accepted request re-encodes to a frame that decodes to
 *     the same type and id;
 *   - an accepted CREATE_REPLICAS reply yields exactly n_failed failures,
 *     each with a negative status and a message within RPC_CREATE_MSG_MAX;
 *   - every scan entry of an accepted scan reply lies inside the frame.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/rpc.h"

#include "feed.h"

static bool same_bytes(rpc_bytes a, rpc_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool same_creation(const rpc_request *a, const rpc_request *b)
{
    if (a->range_id != b->range_id || a->epoch != b->epoch ||
        a->table_id != b->table_id || a->engine != b->engine ||
        a->bootstrap != b->bootstrap || a->n_peers != b->n_peers ||
        !same_bytes(a->key, b->key) || !same_bytes(a->end, b->end))
        return false;
    for (unsigned i = 0; i < a->n_peers; i++)
        if (a->peers[i].id != b->peers[i].id ||
            !same_bytes(a->peers[i].addr, b->peers[i].addr))
            return false;
    return true;
}

/* Re-encode an accepted CREATE_REPLICAS request, creation by creation. */
static void check_creates(const rpc_request *q)
{
    rpc_create_batch b = RPC_CREATE_BATCH_INIT;
    rpc_request one;
    size_t pos = 0;
    uint32_t n = 0;
    int rc;
    while ((rc = rpc_create_next(q, &pos, &one)) == 1) {
        CHECK(one.type == RPC_CREATE_REPLICA && one.id == q->id);
        CHECK(rpc_create_batch_add(&b, &one) == 0);
        n++;
    }
    CHECK(rc == 0 && n == q->count && pos == q->items.len);
    rpc_request again, d;
    rpc_create_batch_request(&b, q->id, &again);
    buf f = BUF_INIT;
    CHECK(rpc_encode_request(&f, &again) == 0);
    CHECK(rpc_decode_request(f.data, f.len, &d) == 0);
    CHECK(d.type == RPC_CREATE_REPLICAS && d.count == q->count);
    size_t p1 = 0, p2 = 0;
    rpc_request x, y;
    while (rpc_create_next(q, &p1, &x) == 1) {
        CHECK(rpc_create_next(&d, &p2, &y) == 1);
        CHECK(same_creation(&x, &y));
    }
    buf_free(&f);
    rpc_create_batch_free(&b);
}

static void check_request(const uint8_t *p, size_t n)
{
    rpc_request q;
    if (rpc_decode_request(p, n, &q) != 0)
        return;
    if (q.type == RPC_CREATE_REPLICAS) {
        check_creates(&q);
        return;
    }
    buf f = BUF_INIT;
    rpc_request d;
    CHECK(rpc_encode_request(&f, &q) == 0);
    CHECK(rpc_decode_request(f.data, f.len, &d) == 0);
    CHECK(d.type == q.type && d.id == q.id);
    buf_free(&f);
}

static void check_reply(const uint8_t *p, size_t n, rpc_type for_type)
{
    rpc_reply r;
    if (rpc_decode_reply(p, n, for_type, &r) != 0)
        return;
    size_t pos = 0;
    if (r.failed.len || r.n_failed) {
        rpc_create_failure e;
        uint32_t k = 0;
        int rc;
        while ((rc = rpc_create_failure_next(&r, &pos, &e)) == 1) {
            CHECK(e.status < 0 && e.message.len <= RPC_CREATE_MSG_MAX);
            k++;
        }
        CHECK(rc == 0 && k == r.n_failed);
    }
    if (r.scan.len) {
        rpc_scan_entry e;
        while (rpc_scan_next(&r, &pos, &e) == 1)
            CHECK(e.key.p >= p && e.key.p + e.key.len <= p + n &&
                  e.value.p >= p && e.value.p + e.value.len <= p + n);
    }
}

/* The handshake parser on the raw input: never reads past it, and what
 * it accepts is consistent (a secret only with its flag, within bounds). */
static void check_hello(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    CHECK(p != NULL);
    memcpy(p, data, size);
    rpc_hello h;
    int used = rpc_hello_parse(p, size, &h);
    CHECK(used <= (int)size);
    if (used > 0) {
        CHECK(h.kind == RPC_CONN_CLIENT || h.kind == RPC_CONN_LINK);
        CHECK(h.secret_len <= RPC_SECRET_MAX);
        CHECK(h.has_secret == (h.secret_len > 0));
    }
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_hello(data, size);
    static const rpc_type kinds[] = {RPC_PUT, RPC_GET, RPC_SCAN, RPC_METRICS,
                                     RPC_CREATE_REPLICA, RPC_CREATE_REPLICAS};
    if (size < 1 + RPC_HEADER_LEN || size - 1 > RPC_FRAME_MAX)
        return 0;
    rpc_type for_type = kinds[data[0] % 6];
    size_t n = size - 1;
    uint8_t *p = malloc(n);
    CHECK(p != NULL);
    memcpy(p, data + 1, n);
    be_put_u32(p, (uint32_t)(n - 4));
    check_request(p, n);
    check_reply(p, n, for_type);
    free(p);
    return 0;
}
