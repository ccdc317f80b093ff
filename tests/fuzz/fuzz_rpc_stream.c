/*
 * fuzz_rpc_stream.c - libFuzzer target for the cairn RPC decoders (src/proto/rpc.h):
 * what a node parses from a connection (the handshake, then request
 * frames) and what a router parses from a node (reply frames and the
 * entries of a scan reply). A node faces anyone who can connect to its
 * port; this is its first line of defence.
 *
 * Input: byte 0 picks the side: even = node side (handshake + requests),
 * odd = router side (replies; bits 1.. pick the request type the replies
 * answer, since a reply body is not self-describing); byte 1 seeds the
 * chunk sizes; the rest is the byte stream. It is fed in chunks of
 * exact-size heap copies (feed.h), and each complete frame is decoded from
 * its own exact-size copy, so AddressSanitizer flags any read past a frame.
 *
 * Invariants:
 *   - rpc_hello_parse and rpc_frame_len never claim more bytes than they
 *     were given; a frame is at least a header, at most RPC_FRAME_MAX;
 *   - every string of a decoded request or reply lies inside its frame;
 *     a request has at most RPC_MAX_PEERS peers, a reply a status <= 0;
 *   - re-encoding a decoded request (rpc_encode_request) gives a frame of
 *     the same length that decodes to the same request - byte for byte the
 *     same frame, except that any non-zero bootstrap flag reads as 1;
 *   - scan entries iterate to the end of the scan bytes or stop with
 *     CAIRN_ERR_PROTO, each entry inside them, positions increasing;
 *   - the outcome is the same whether the stream arrives at once or in
 *     chunks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/rpc.h"

#include "feed.h"

static const rpc_type reply_types[] = {
    RPC_PING,           RPC_PUT,         RPC_DEL,
    RPC_GET,            RPC_SCAN,        RPC_CREATE_REPLICA,
    RPC_ADD_REPLICA,    RPC_REMOVE_REPLICA, RPC_TRANSFER_LEADER,
    RPC_METRICS,        RPC_DROP_REPLICA, RPC_SPLIT_RANGE,
    RPC_CATCH_UP,       RPC_BUMP_EPOCH,
};

typedef struct trace {
    uint64_t hash;
    size_t frames;
    int final_rc;
} trace;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static void mix_u64(uint64_t *h, uint64_t v) { mix(h, &v, sizeof v); }

static void inside(rpc_bytes b, const uint8_t *frame, size_t len)
{
    CHECK(b.len == 0 || (b.p >= frame && b.p + b.len <= frame + len));
}

static void mix_bytes(uint64_t *h, rpc_bytes b)
{
    mix_u64(h, b.len);
    if (b.len)
        mix(h, b.p, b.len);
}

static int same_bytes(rpc_bytes a, rpc_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void check_same_request(const rpc_request *a, const rpc_request *b)
{
    CHECK(a->type == b->type && a->id == b->id);
    CHECK(a->range_id == b->range_id && a->epoch == b->epoch);
    CHECK(same_bytes(a->key, b->key) && same_bytes(a->value, b->value));
    CHECK(same_bytes(a->end, b->end) && same_bytes(a->addr, b->addr));
    CHECK(a->cond == b->cond);
    CHECK(memcmp(a->cond_seq.bytes, b->cond_seq.bytes, SEQ_LEN) == 0);
    CHECK(a->limit == b->limit && a->table_id == b->table_id);
    CHECK(a->engine == b->engine && a->bootstrap == b->bootstrap);
    CHECK(a->node_id == b->node_id && a->n_peers == b->n_peers);
    for (unsigned i = 0; i < a->n_peers; i++) {
        CHECK(a->peers[i].id == b->peers[i].id);
        CHECK(same_bytes(a->peers[i].addr, b->peers[i].addr));
    }
}

/* One request frame, decoded from its own exact-size copy. */
static void node_frame(const uint8_t *frame, size_t len, trace *t)
{
    rpc_request q;
    int rc = rpc_decode_request(frame, len, &q);
    mix_u64(&t->hash, (uint64_t)(int64_t)rc);
    if (rc != 0) {
        CHECK(rc == CAIRN_ERR_PROTO);
        return;
    }
    CHECK(rpc_frame_type(frame) == q.type);
    inside(q.key, frame, len);
    inside(q.value, frame, len);
    inside(q.end, frame, len);
    inside(q.addr, frame, len);
    CHECK(q.n_peers <= RPC_MAX_PEERS);
    for (unsigned i = 0; i < q.n_peers; i++)
        inside(q.peers[i].addr, frame, len);
    mix_u64(&t->hash, q.type);
    mix_u64(&t->hash, q.id);
    mix_u64(&t->hash, q.range_id);
    mix_bytes(&t->hash, q.key);
    mix_bytes(&t->hash, q.value);

    buf out = BUF_INIT;
    CHECK(rpc_encode_request(&out, &q) == 0);
    CHECK(out.len == len);
    if (q.type != RPC_CREATE_REPLICA)
        CHECK(memcmp(out.data, frame, len) == 0);
    rpc_request again;
    CHECK(rpc_decode_request(out.data, out.len, &again) == 0);
    check_same_request(&q, &again);
    buf_free(&out);
}

/* One reply frame, decoded from its own exact-size copy. */
static void router_frame(const uint8_t *frame, size_t len, rpc_type for_type,
                         trace *t)
{
    rpc_reply r;
    int rc = rpc_decode_reply(frame, len, for_type, &r);
    mix_u64(&t->hash, (uint64_t)(int64_t)rc);
    if (rc != 0) {
        CHECK(rc == CAIRN_ERR_PROTO);
        return;
    }
    CHECK(r.status <= 0);
    inside(r.message, frame, len);
    inside(r.leader_addr, frame, len);
    inside(r.value, frame, len);
    inside(r.scan, frame, len);
    mix_u64(&t->hash, r.id);
    mix_u64(&t->hash, (uint64_t)(int64_t)r.status);
    mix_bytes(&t->hash, r.message);
    mix_bytes(&t->hash, r.value);
    if (for_type != RPC_SCAN || r.status != 0)
        return;
    size_t pos = 0, n = 0;
    for (;;) {
        rpc_scan_entry e;
        size_t before = pos;
        rc = rpc_scan_next(&r, &pos, &e);
        if (rc == 0) {
            CHECK(pos >= r.scan.len);
            break;
        }
        if (rc < 0) {
            CHECK(rc == CAIRN_ERR_PROTO && pos == before);
            break;
        }
        CHECK(rc == 1 && pos > before && pos <= r.scan.len);
        inside(e.key, r.scan.p, r.scan.len);
        inside(e.value, r.scan.p, r.scan.len);
        mix_bytes(&t->hash, e.key);
        n++;
        CHECK(n <= r.scan.len);
    }
    mix_u64(&t->hash, n);
}

static void run(const uint8_t *in, size_t n, int router_side,
                rpc_type for_type, unsigned seed, trace *t)
{
    memset(t, 0, sizeof *t);
    t->hash = 0xcbf29ce484222325ull;
    feed f;
    feed_init(&f, in, n, seed);
    const uint8_t *copy;
    size_t len;
    int need_more = 1, hello_done = router_side, rc = 0;
    /* the first window: nothing received yet */
    f.avail = 0;
    while (feed_next(&f, need_more, &copy, &len)) {
        need_more = 0;
        if (!hello_done) {
            rpc_hello h;
            rc = rpc_hello_parse(copy, len, &h);
            if (rc == 0) {
                need_more = 1;
                continue;
            }
            if (rc < 0) {
                CHECK(rc == CAIRN_ERR_PROTO);
                break;
            }
            CHECK((size_t)rc <= len);
            CHECK(h.kind == RPC_CONN_CLIENT || h.kind == RPC_CONN_LINK);
            CHECK(strlen(h.addr) <= RPC_ADDR_MAX);
            mix(&t->hash, &h, sizeof h);
            feed_consume(&f, (size_t)rc);
            hello_done = 1;
            if (h.kind == RPC_CONN_LINK) {
                rc = 0; /* the rest is a node link's frames (net.c) */
                break;
            }
            continue;
        }
        long fl = rpc_frame_len(copy, len);
        if (fl == 0) {
            need_more = 1;
            continue;
        }
        if (fl < 0) {
            CHECK(fl == CAIRN_ERR_PROTO);
            rc = (int)fl;
            break;
        }
        CHECK((size_t)fl <= len && fl >= RPC_HEADER_LEN &&
              (unsigned long)fl <= RPC_FRAME_MAX);
        uint8_t *frame = malloc((size_t)fl);
        CHECK(frame != NULL);
        memcpy(frame, copy, (size_t)fl);
        if (router_side)
            router_frame(frame, (size_t)fl, for_type, t);
        else
            node_frame(frame, (size_t)fl, t);
        free(frame);
        t->frames++;
        feed_consume(&f, (size_t)fl);
    }
    t->final_rc = rc;
    feed_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int router_side = data[0] & 1;
    rpc_type for_type = reply_types[(data[0] >> 1) %
                                    (sizeof reply_types / sizeof *reply_types)];
    trace whole, chunked;
    run(data + 2, size - 2, router_side, for_type, 0, &whole);
    run(data + 2, size - 2, router_side, for_type, data[1] | 1u, &chunked);
    CHECK(whole.frames == chunked.frames);
    CHECK(whole.hash == chunked.hash);
    CHECK(whole.final_rc == chunked.final_rc);
    return 0;
}
