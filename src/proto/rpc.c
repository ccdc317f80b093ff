/*
 * rpc.c - encoding and decoding of cairn RPC frames (rpc.h).
 */
#include "rpc.h"

#include <string.h>

#include "../common/err.h"
#include "../common/limits.h"

/* ---- a bounds-checked reader ---------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t len;
    size_t pos;
    bool bad;
} rd;

static bool rd_need(rd *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint8_t rd_u8(rd *r)
{
    if (!rd_need(r, 1))
        return 0;
    return r->p[r->pos++];
}

static uint32_t rd_u32(rd *r)
{
    if (!rd_need(r, 4))
        return 0;
    uint32_t v = be_get_u32(r->p + r->pos);
    r->pos += 4;
    return v;
}

static uint64_t rd_u64(rd *r)
{
    if (!rd_need(r, 8))
        return 0;
    uint64_t v = be_get_u64(r->p + r->pos);
    r->pos += 8;
    return v;
}

static rpc_bytes rd_str(rd *r)
{
    rpc_bytes b = {NULL, 0};
    uint32_t n = rd_u32(r);
    if (!rd_need(r, n))
        return b;
    b.p = r->p + r->pos;
    b.len = n;
    r->pos += n;
    return b;
}

static seq rd_seq(rd *r)
{
    seq s = seq_zero();
    if (!rd_need(r, SEQ_LEN))
        return s;
    memcpy(s.bytes, r->p + r->pos, SEQ_LEN);
    r->pos += SEQ_LEN;
    return s;
}

/* ---- writers -------------------------------------------------------- */

static int wr_str(buf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX)
        return CAIRN_ERR_INVALID;
    int rc = buf_append_u32(b, (uint32_t)n);
    if (rc == 0 && n > 0)
        rc = buf_append(b, p, n);
    return rc;
}

static int wr_bytes(buf *b, rpc_bytes x) { return wr_str(b, x.p, x.len); }

/* Start a frame: placeholder length, type, id. Returns the frame offset. */
static int frame_begin(buf *b, rpc_type type, uint64_t id, size_t *mark)
{
    *mark = b->len;
    int rc = buf_append_u32(b, 0);
    if (rc == 0)
        rc = buf_append_u8(b, (uint8_t)type);
    if (rc == 0)
        rc = buf_append_u64(b, id);
    return rc;
}

/* Patch the length; on failure drop the partial frame so `b` is unchanged. */
static int frame_end(buf *b, size_t mark, int rc)
{
    if (rc == 0 && b->len - mark > RPC_FRAME_MAX)
        rc = CAIRN_ERR_TOOBIG;
    if (rc != 0) {
        b->len = mark;
        return rc;
    }
    be_put_u32(b->data + mark, (uint32_t)(b->len - mark - 4));
    return 0;
}

/* ---- handshake ------------------------------------------------------ */

/* The secret's flag on the kind byte, and the secret at the end: see
 * rpc.h. Both come from the process's secret (secret.c). */
static uint8_t hello_kind(int kind)
{
    return (uint8_t)(kind | (rpc_secret_required() ? RPC_HELLO_SECRET : 0));
}

int rpc_secret_append_(buf *out); /* secret.c */

int rpc_hello_client(buf *out)
{
    size_t mark = out->len;
    int rc = buf_append(out, RPC_MAGIC, RPC_MAGIC_LEN);
    if (rc == 0)
        rc = buf_append_u8(out, hello_kind(RPC_CONN_CLIENT));
    if (rc == 0)
        rc = rpc_secret_append_(out);
    if (rc != 0)
        out->len = mark;
    return rc;
}

int rpc_hello_link(buf *out, uint64_t incarnation, uint64_t from_id,
                   const char *addr)
{
    size_t n = strlen(addr), mark = out->len;
    if (n > RPC_ADDR_MAX)
        return CAIRN_ERR_INVALID;
    int rc = buf_append(out, RPC_MAGIC, RPC_MAGIC_LEN);
    if (rc == 0)
        rc = buf_append_u8(out, hello_kind(RPC_CONN_LINK));
    if (rc == 0)
        rc = buf_append_u64(out, incarnation);
    if (rc == 0)
        rc = buf_append_u64(out, from_id);
    if (rc == 0)
        rc = buf_append_u16(out, (uint16_t)n);
    if (rc == 0)
        rc = buf_append(out, addr, n);
    if (rc == 0)
        rc = rpc_secret_append_(out);
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* The secret at `at`, if the kind byte says there is one: the bytes used
 * in total, 0 if more are needed, CAIRN_ERR_PROTO if malformed. */
static int parse_secret(const uint8_t *p, size_t len, size_t at,
                        rpc_hello *out)
{
    if (!out->has_secret)
        return (int)at;
    if (len < at + 2)
        return 0;
    size_t n = be_get_u16(p + at);
    if (n == 0 || n > RPC_SECRET_MAX)
        return CAIRN_ERR_PROTO;
    if (len < at + 2 + n)
        return 0;
    memcpy(out->secret, p + at + 2, n);
    out->secret_len = n;
    return (int)(at + 2 + n);
}

int rpc_hello_parse(const uint8_t *p, size_t len, rpc_hello *out)
{
    size_t cmp = len < RPC_MAGIC_LEN ? len : RPC_MAGIC_LEN;
    if (memcmp(p, RPC_MAGIC, cmp) != 0)
        return CAIRN_ERR_PROTO;
    if (len < RPC_MAGIC_LEN + 1)
        return 0;
    memset(out, 0, sizeof *out);
    out->kind = p[RPC_MAGIC_LEN] & ~RPC_HELLO_SECRET;
    out->has_secret = (p[RPC_MAGIC_LEN] & RPC_HELLO_SECRET) != 0;
    if (out->kind == RPC_CONN_CLIENT)
        return parse_secret(p, len, RPC_MAGIC_LEN + 1, out);
    if (out->kind != RPC_CONN_LINK)
        return CAIRN_ERR_PROTO;
    const size_t fixed = RPC_MAGIC_LEN + 1 + 8 + 8 + 2;
    if (len < fixed)
        return 0;
    out->incarnation = be_get_u64(p + 5);
    out->from_id = be_get_u64(p + 13);
    size_t n = be_get_u16(p + 21);
    if (n == 0 || n > RPC_ADDR_MAX)
        return CAIRN_ERR_PROTO;
    if (len < fixed + n)
        return 0;
    memcpy(out->addr, p + fixed, n);
    out->addr[n] = '\0';
    return parse_secret(p, len, fixed + n, out);
}

/* ---- frames --------------------------------------------------------- */

long rpc_frame_len(const uint8_t *p, size_t len)
{
    if (len < 4)
        return 0;
    uint64_t n = (uint64_t)be_get_u32(p) + 4;
    if (n < RPC_HEADER_LEN || n > RPC_FRAME_MAX)
        return CAIRN_ERR_PROTO;
    return len < n ? 0 : (long)n;
}

rpc_type rpc_frame_type(const uint8_t *p) { return (rpc_type)p[4]; }

static int encode_peers(buf *b, const rpc_request *q)
{
    if (q->n_peers > RPC_MAX_PEERS)
        return CAIRN_ERR_INVALID;
    int rc = buf_append_u8(b, (uint8_t)q->n_peers);
    for (unsigned i = 0; rc == 0 && i < q->n_peers; i++) {
        rc = buf_append_u64(b, q->peers[i].id);
        if (rc == 0)
            rc = wr_bytes(b, q->peers[i].addr);
    }
    return rc;
}

/* The fields of one replica creation: a CREATE_REPLICA body, and each
 * creation of a CREATE_REPLICAS body. */
static int encode_create(buf *b, const rpc_request *q)
{
    int rc = buf_append_u64(b, q->range_id);
    if (rc == 0)
        rc = buf_append_u64(b, q->epoch);
    if (rc == 0)
        rc = wr_bytes(b, q->key);
    if (rc == 0)
        rc = wr_bytes(b, q->end);
    if (rc == 0)
        rc = buf_append_u64(b, q->table_id);
    if (rc == 0)
        rc = buf_append_u8(b, q->engine);
    if (rc == 0)
        rc = buf_append_u8(b, q->bootstrap ? 1 : 0);
    if (rc == 0)
        rc = encode_peers(b, q);
    return rc;
}

static int encode_body(buf *b, const rpc_request *q)
{
    int rc = 0;
    switch (q->type) {
    case RPC_PING:
        return 0;
    case RPC_CREATE_REPLICA:
        return encode_create(b, q);
    case RPC_CREATE_REPLICAS:
        if (q->count > RPC_CREATE_BATCH_MAX)
            return CAIRN_ERR_INVALID;
        rc = buf_append_u32(b, q->count);
        if (rc == 0 && q->items.len > 0)
            rc = buf_append(b, q->items.p, q->items.len);
        return rc;
    case RPC_PUT:
    case RPC_DEL:
    case RPC_GET:
    case RPC_SCAN:
    case RPC_SCAN_RECORDS:
        rc = buf_append_u64(b, q->range_id);
        if (rc == 0)
            rc = buf_append_u64(b, q->epoch);
        if (rc == 0)
            rc = wr_bytes(b, q->key);
        break;
    case RPC_COPY:
        rc = buf_append_u64(b, q->range_id);
        if (rc == 0)
            rc = buf_append_u64(b, q->epoch);
        if (rc == 0)
            rc = buf_append_u32(b, q->count);
        if (rc == 0 && q->items.len > 0)
            rc = buf_append(b, q->items.p, q->items.len);
        return rc;
    case RPC_ADD_REPLICA:
    case RPC_REMOVE_REPLICA:
    case RPC_TRANSFER_LEADER:
    case RPC_CATCH_UP:
        rc = buf_append_u64(b, q->range_id);
        if (rc == 0)
            rc = buf_append_u64(b, q->node_id);
        if (rc == 0 && q->type == RPC_ADD_REPLICA)
            rc = wr_bytes(b, q->addr);
        if (rc == 0 && q->type != RPC_TRANSFER_LEADER &&
            q->type != RPC_CATCH_UP)
            rc = buf_append_u64(b, q->epoch);
        return rc;
    case RPC_BUMP_EPOCH:
    case RPC_FENCE:
    case RPC_FLOOR:
        rc = buf_append_u64(b, q->range_id);
        if (rc == 0)
            rc = buf_append_u64(b, q->epoch);
        if (rc == 0 && q->type == RPC_FLOOR)
            rc = buf_append(b, q->cond_seq.bytes, SEQ_LEN);
        return rc;
    case RPC_METRICS:
    case RPC_DROP_REPLICA:
        return buf_append_u64(b, q->range_id);
    case RPC_SPLIT_RANGE:
        rc = buf_append_u64(b, q->range_id);
        if (rc == 0)
            rc = buf_append_u64(b, q->epoch);
        if (rc == 0)
            rc = buf_append_u64(b, q->new_range);
        return rc ? rc : wr_bytes(b, q->key);
    default:
        return CAIRN_ERR_INVALID;
    }
    if (rc != 0)
        return rc;
    switch (q->type) {
    case RPC_PUT:
        rc = wr_bytes(b, q->value);
        if (rc == 0)
            rc = buf_append_u8(b, (uint8_t)q->cond);
        if (rc == 0)
            rc = buf_append(b, q->cond_seq.bytes, SEQ_LEN);
        break;
    case RPC_SCAN:
    case RPC_SCAN_RECORDS:
        rc = wr_bytes(b, q->end);
        if (rc == 0)
            rc = buf_append_u32(b, q->limit);
        break;
    default:
        break;
    }
    return rc;
}

int rpc_encode_request(buf *out, const rpc_request *req)
{
    size_t mark;
    if (req->type == RPC_REPLY || req->type >= RPC_TYPE_MAX_)
        return CAIRN_ERR_INVALID;
    int rc = frame_begin(out, req->type, req->id, &mark);
    if (rc == 0)
        rc = encode_body(out, req);
    return frame_end(out, mark, rc);
}

static void decode_peers(rd *r, rpc_request *q)
{
    q->n_peers = rd_u8(r);
    if (q->n_peers > RPC_MAX_PEERS) {
        r->bad = true;
        return;
    }
    for (unsigned i = 0; i < q->n_peers && !r->bad; i++) {
        q->peers[i].id = rd_u64(r);
        q->peers[i].addr = rd_str(r);
    }
}

static void decode_create(rd *r, rpc_request *q)
{
    q->range_id = rd_u64(r);
    q->epoch = rd_u64(r);
    q->key = rd_str(r);
    q->end = rd_str(r);
    q->table_id = rd_u64(r);
    q->engine = rd_u8(r);
    q->bootstrap = rd_u8(r) != 0;
    decode_peers(r, q);
}

/* The creations of a CREATE_REPLICAS body: `count` of them, exactly
 * filling the rest of the frame, each well formed - checked here once, so
 * that rpc_create_next never fails on an accepted request. */
static void decode_creates(rd *r, rpc_request *q)
{
    q->count = rd_u32(r);
    if (r->bad || q->count > RPC_CREATE_BATCH_MAX) {
        r->bad = true;
        return;
    }
    q->items = (rpc_bytes){r->p + r->pos, r->len - r->pos};
    rd items = {q->items.p, q->items.len, 0, false};
    for (uint32_t i = 0; i < q->count && !items.bad; i++) {
        rpc_request one;
        decode_create(&items, &one);
    }
    if (items.bad || items.pos != items.len)
        r->bad = true;
    r->pos = r->len;
}

/* COPY: every record is checked here (bounds, key and value limits), so
 * that rpc_record_next never fails on an accepted request. */
static void decode_copy(rd *r, rpc_request *q)
{
    q->range_id = rd_u64(r);
    q->epoch = rd_u64(r);
    q->count = rd_u32(r);
    if (r->bad)
        return;
    q->items = (rpc_bytes){r->p + r->pos, r->len - r->pos};
    size_t pos = 0;
    rpc_record rec;
    uint32_t n = 0;
    int rc;
    while ((rc = rpc_record_next(q->items, &pos, &rec)) == 1) {
        if (rec.key.len < CAIRN_KEY_MIN || rec.key.len > CAIRN_KEY_MAX ||
            rec.value.len > CAIRN_VALUE_MAX)
            break;
        n++;
    }
    if (rc != 0 || n != q->count)
        r->bad = true;
    r->pos = r->len;
}

static void decode_body(rd *r, rpc_request *q)
{
    switch (q->type) {
    case RPC_PING:
        return;
    case RPC_CREATE_REPLICA:
        decode_create(r, q);
        return;
    case RPC_CREATE_REPLICAS:
        decode_creates(r, q);
        return;
    case RPC_ADD_REPLICA:
    case RPC_REMOVE_REPLICA:
    case RPC_TRANSFER_LEADER:
    case RPC_CATCH_UP:
        q->range_id = rd_u64(r);
        q->node_id = rd_u64(r);
        if (q->type == RPC_ADD_REPLICA)
            q->addr = rd_str(r);
        if (q->type != RPC_TRANSFER_LEADER && q->type != RPC_CATCH_UP)
            q->epoch = rd_u64(r);
        return;
    case RPC_BUMP_EPOCH:
    case RPC_FENCE:
    case RPC_FLOOR:
        q->range_id = rd_u64(r);
        q->epoch = rd_u64(r);
        if (q->type == RPC_FLOOR)
            q->cond_seq = rd_seq(r);
        return;
    case RPC_METRICS:
    case RPC_DROP_REPLICA:
        q->range_id = rd_u64(r);
        return;
    case RPC_SPLIT_RANGE:
        q->range_id = rd_u64(r);
        q->epoch = rd_u64(r);
        q->new_range = rd_u64(r);
        q->key = rd_str(r);
        return;
    case RPC_COPY:
        decode_copy(r, q);
        return;
    default:
        break;
    }
    q->range_id = rd_u64(r);
    q->epoch = rd_u64(r);
    q->key = rd_str(r);
    if (q->type == RPC_PUT) {
        q->value = rd_str(r);
        q->cond = (rpc_cond)rd_u8(r);
        q->cond_seq = rd_seq(r);
        if (q->cond > RPC_COND_IFABSENT)
            r->bad = true;
    } else if (q->type == RPC_SCAN || q->type == RPC_SCAN_RECORDS) {
        q->end = rd_str(r);
        q->limit = rd_u32(r);
    }
}

static bool type_is_request(unsigned t)
{
    return (t >= RPC_PING && t <= RPC_SCAN) ||
           (t >= RPC_CREATE_REPLICA && t < RPC_TYPE_MAX_);
}

int rpc_decode_request(const uint8_t *p, size_t len, rpc_request *out)
{
    memset(out, 0, sizeof *out);
    if (len < RPC_HEADER_LEN || be_get_u32(p) + 4ull != len)
        return CAIRN_ERR_PROTO;
    if (!type_is_request(p[4]))
        return CAIRN_ERR_PROTO;
    out->type = (rpc_type)p[4];
    out->id = be_get_u64(p + 5);
    rd r = {p, len, RPC_HEADER_LEN, false};
    decode_body(&r, out);
    if (r.bad || r.pos != len)
        return CAIRN_ERR_PROTO;
    return 0;
}

/* ---- replies -------------------------------------------------------- */

static int reply_begin(buf *b, uint64_t id, int status, const char *msg,
                       size_t *mark)
{
    int rc = frame_begin(b, RPC_REPLY, id, mark);
    if (rc == 0)
        rc = buf_append_u32(b, (uint32_t)status);
    if (rc == 0)
        rc = wr_str(b, msg, msg ? strlen(msg) : 0);
    return rc;
}

int rpc_reply_error(buf *out, uint64_t id, int status, const char *message)
{
    size_t mark;
    if (status == 0 || status == CAIRN_ERR_NOT_LEADER)
        return CAIRN_ERR_INVALID;
    int rc = reply_begin(out, id, status, message, &mark);
    return frame_end(out, mark, rc);
}

int rpc_reply_not_leader(buf *out, uint64_t id, uint64_t leader_id,
                         const char *leader_addr)
{
    size_t mark;
    int rc = reply_begin(out, id, CAIRN_ERR_NOT_LEADER,
                         cairn_err_message(CAIRN_ERR_NOT_LEADER), &mark);
    if (rc == 0)
        rc = buf_append_u64(out, leader_id);
    if (rc == 0)
        rc = wr_str(out, leader_addr, leader_addr ? strlen(leader_addr) : 0);
    return frame_end(out, mark, rc);
}

int rpc_reply_text(buf *out, uint64_t id, const char *text, size_t len)
{
    size_t mark;
    int rc = reply_begin(out, id, 0, NULL, &mark);
    if (rc == 0)
        rc = wr_str(out, text, len);
    return frame_end(out, mark, rc);
}

int rpc_reply_ok(buf *out, uint64_t id) { return rpc_reply_text(out, id, "", 0); }

int rpc_reply_seq(buf *out, uint64_t id, const seq *s)
{
    size_t mark;
    int rc = reply_begin(out, id, 0, NULL, &mark);
    if (rc == 0)
        rc = buf_append(out, s->bytes, SEQ_LEN);
    return frame_end(out, mark, rc);
}

int rpc_reply_value(buf *out, uint64_t id, const seq *s, const void *value,
                    size_t value_len)
{
    size_t mark;
    int rc = reply_begin(out, id, 0, NULL, &mark);
    if (rc == 0)
        rc = buf_append(out, s->bytes, SEQ_LEN);
    if (rc == 0)
        rc = wr_str(out, value, value_len);
    return frame_end(out, mark, rc);
}

int rpc_reply_scan_begin(buf *out, uint64_t id, size_t *mark)
{
    int rc = reply_begin(out, id, 0, NULL, mark);
    if (rc == 0)
        rc = buf_append_u32(out, 0); /* count, patched by _end */
    if (rc == 0)
        rc = buf_append_u8(out, 0); /* more, patched by _end */
    if (rc != 0)
        out->len = *mark;
    return rc;
}

int rpc_reply_scan_add(buf *out, const void *key, size_t key_len,
                       const seq *s, const void *value, size_t value_len)
{
    size_t mark = out->len;
    int rc = wr_str(out, key, key_len);
    if (rc == 0)
        rc = buf_append(out, s->bytes, SEQ_LEN);
    if (rc == 0)
        rc = wr_str(out, value, value_len);
    if (rc != 0)
        out->len = mark;
    return rc;
}

void rpc_reply_scan_end(buf *out, size_t mark, uint32_t count, bool more)
{
    /* header 13, status 4, empty message 4, then count and more */
    size_t at = mark + RPC_HEADER_LEN + 4 + 4;
    be_put_u32(out->data + at, count);
    out->data[at + 4] = more ? 1 : 0;
    be_put_u32(out->data + mark, (uint32_t)(out->len - mark - 4));
}

static void decode_failure(rd *r, rpc_create_failure *f)
{
    f->range_id = rd_u64(r);
    f->status = (int)rd_u32(r);
    f->message = rd_str(r);
    /* a failure has a cairn error: negative, never 0 */
    if (f->status >= 0 || f->message.len > RPC_CREATE_MSG_MAX)
        r->bad = true;
}

/* The failures of a CREATE_REPLICAS reply, checked once (as the
 * creations of a request are). */
static void decode_failures(rd *r, rpc_reply *out)
{
    out->n_failed = rd_u32(r);
    if (r->bad || out->n_failed > RPC_CREATE_BATCH_MAX) {
        r->bad = true;
        return;
    }
    out->failed = (rpc_bytes){r->p + r->pos, r->len - r->pos};
    rd f = {out->failed.p, out->failed.len, 0, false};
    for (uint32_t i = 0; i < out->n_failed && !f.bad; i++) {
        rpc_create_failure one;
        decode_failure(&f, &one);
    }
    if (f.bad || f.pos != f.len)
        r->bad = true;
    r->pos = r->len;
}

static void decode_ok_body(rd *r, rpc_type for_type, rpc_reply *out)
{
    switch (for_type) {
    case RPC_PUT:
    case RPC_DEL:
        out->seq = rd_seq(r);
        break;
    case RPC_GET:
        out->seq = rd_seq(r);
        out->value = rd_str(r);
        break;
    case RPC_SCAN:
    case RPC_SCAN_RECORDS:
        out->scan_count = rd_u32(r);
        out->scan_more = rd_u8(r) != 0;
        if (!r->bad) {
            out->scan.p = r->p + r->pos;
            out->scan.len = r->len - r->pos;
            r->pos = r->len;
        }
        break;
    case RPC_CREATE_REPLICAS:
        decode_failures(r, out);
        break;
    default:
        out->value = rd_str(r);
        break;
    }
}

int rpc_decode_reply(const uint8_t *p, size_t len, rpc_type for_type,
                     rpc_reply *out)
{
    memset(out, 0, sizeof *out);
    if (len < RPC_HEADER_LEN || be_get_u32(p) + 4ull != len ||
        p[4] != RPC_REPLY)
        return CAIRN_ERR_PROTO;
    out->id = be_get_u64(p + 5);
    rd r = {p, len, RPC_HEADER_LEN, false};
    out->status = (int)rd_u32(&r);
    out->message = rd_str(&r);
    if (!r.bad && out->status == CAIRN_ERR_NOT_LEADER) {
        out->leader_id = rd_u64(&r);
        out->leader_addr = rd_str(&r);
    } else if (!r.bad && out->status == 0) {
        decode_ok_body(&r, for_type, out);
    }
    if (r.bad || r.pos != len || out->status > 0)
        return CAIRN_ERR_PROTO;
    return 0;
}

int rpc_scan_next(const rpc_reply *reply, size_t *pos, rpc_scan_entry *out)
{
    if (*pos >= reply->scan.len)
        return 0;
    rd r = {reply->scan.p, reply->scan.len, *pos, false};
    out->key = rd_str(&r);
    out->seq = rd_seq(&r);
    out->value = rd_str(&r);
    if (r.bad)
        return CAIRN_ERR_PROTO;
    *pos = r.pos;
    return 1;
}

/* ---- records (SCAN_RECORDS, COPY) ------------------------------------- */

int rpc_record_put(buf *out, const void *key, size_t key_len, const seq *s,
                   bool tombstone, const void *value, size_t value_len)
{
    size_t mark = out->len;
    int rc = wr_str(out, key, key_len);
    if (rc == 0)
        rc = buf_append(out, s->bytes, SEQ_LEN);
    if (rc == 0)
        rc = buf_append_u8(out, tombstone ? 1 : 0);
    if (rc == 0)
        rc = wr_str(out, value, tombstone ? 0 : value_len);
    if (rc != 0)
        out->len = mark;
    return rc;
}

int rpc_record_next(rpc_bytes items, size_t *pos, rpc_record *out)
{
    if (*pos >= items.len)
        return 0;
    rd r = {items.p, items.len, *pos, false};
    out->key = rd_str(&r);
    out->seq = rd_seq(&r);
    uint8_t flags = rd_u8(&r);
    out->tombstone = (flags & 1) != 0;
    out->value = rd_str(&r);
    if (r.bad || flags > 1 || (out->tombstone && out->value.len))
        return CAIRN_ERR_PROTO;
    *pos = r.pos;
    return 1;
}

/* ---- CREATE_REPLICAS -------------------------------------------------- */

int rpc_create_batch_add(rpc_create_batch *b, const rpc_request *item)
{
    /* the frame around the items: header and count */
    const size_t around = RPC_HEADER_LEN + 4;
    size_t mark = b->items.len;
    if (b->count >= RPC_CREATE_BATCH_MAX)
        return CAIRN_ERR_TOOBIG;
    int rc = encode_create(&b->items, item);
    if (rc == 0 && around + b->items.len > RPC_FRAME_MAX)
        rc = mark == 0 ? CAIRN_ERR_INVALID : CAIRN_ERR_TOOBIG;
    if (rc != 0) {
        b->items.len = mark;
        return rc;
    }
    b->count++;
    return 0;
}

void rpc_create_batch_request(const rpc_create_batch *b, uint64_t id,
                              rpc_request *req)
{
    memset(req, 0, sizeof *req);
    req->type = RPC_CREATE_REPLICAS;
    req->id = id;
    req->count = b->count;
    req->items = (rpc_bytes){b->items.data, b->items.len};
}

void rpc_create_batch_reset(rpc_create_batch *b)
{
    buf_reset(&b->items);
    b->count = 0;
}

void rpc_create_batch_free(rpc_create_batch *b)
{
    buf_free(&b->items);
    b->count = 0;
}

int rpc_create_next(const rpc_request *batch, size_t *pos, rpc_request *item)
{
    if (*pos >= batch->items.len)
        return 0;
    rd r = {batch->items.p, batch->items.len, *pos, false};
    memset(item, 0, sizeof *item);
    item->type = RPC_CREATE_REPLICA;
    item->id = batch->id;
    decode_create(&r, item);
    if (r.bad)
        return CAIRN_ERR_PROTO;
    *pos = r.pos;
    return 1;
}

int rpc_reply_create_begin(buf *out, uint64_t id, size_t *mark)
{
    int rc = reply_begin(out, id, 0, NULL, mark);
    if (rc == 0)
        rc = buf_append_u32(out, 0); /* failures, patched by _end */
    if (rc != 0)
        out->len = *mark;
    return rc;
}

int rpc_reply_create_add(buf *out, uint64_t range_id, int status,
                         const char *message)
{
    if (status >= 0)
        return CAIRN_ERR_INVALID;
    if (message == NULL)
        message = cairn_err_message(status);
    size_t n = strlen(message), mark = out->len;
    int rc = buf_append_u64(out, range_id);
    if (rc == 0)
        rc = buf_append_u32(out, (uint32_t)status);
    if (rc == 0)
        rc = wr_str(out, message, n < RPC_CREATE_MSG_MAX ? n
                                                         : RPC_CREATE_MSG_MAX);
    if (rc != 0)
        out->len = mark;
    return rc;
}

void rpc_reply_create_end(buf *out, size_t mark, uint32_t n_failed)
{
    /* header 13, status 4, empty message 4, then the count */
    be_put_u32(out->data + mark + RPC_HEADER_LEN + 4 + 4, n_failed);
    be_put_u32(out->data + mark, (uint32_t)(out->len - mark - 4));
}

int rpc_create_failure_next(const rpc_reply *r, size_t *pos,
                            rpc_create_failure *out)
{
    if (*pos >= r->failed.len)
        return 0;
    rd x = {r->failed.p, r->failed.len, *pos, false};
    decode_failure(&x, out);
    if (x.bad)
        return CAIRN_ERR_PROTO;
    *pos = x.pos;
    return 1;
}
