/*
 * node_data.c - a node's data requests (node_op.h): PUT, DEL, GET, SCAN
 * and SCAN_RECORDS go to their replica after the routing checks (the
 * range, its epoch, the key); COPY lands a move's records.
 */
#include "node_op.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/key.h"
#include "../common/limits.h"

#define SCAN_LIMIT_DEFAULT 1000
#define SCAN_LIMIT_MAX 100000

/* ---- data requests ---------------------------------------------------- */

static void write_done(void *arg, int status, const seq *s)
{
    op *o = arg;
    if (!o->c->closing) {
        if (status == 0)
            rpc_reply_seq(&o->c->out, o->id, s);
        else
            node_reply_status(o->c, o->id, status, o->r, NULL);
    }
    node_op_done(o);
}

/* A read found the range's stored data corrupt: the node refuses the
 * range from now on (node_found_corrupt), and this read is refused too -
 * nothing wrong is ever served. The router then asks another replica. */
static void read_corrupt(op *o)
{
    char why[96];
    snprintf(why, sizeof why, "a %s failed a checksum on this replica",
             o->type == RPC_GET ? "read" : "scan");
    node_found_corrupt(o->c->n, replica_meta(o->r)->range_id, why);
    node_reply_error(o->c, o->id, CAIRN_ERR_CORRUPT,
                "the range's data is corrupt on this node; it is refused "
                "here until rebuilt");
}

static void serve_get(op *o)
{
    seq s;
    bool tomb = false;
    buf rec = BUF_INIT;
    const uint8_t *v = NULL;
    size_t n = 0;
    const range_meta *m = replica_meta(o->r);
    int rc = engine_get_ref(replica_engine(o->r), NULL, m->range_id,
                            o->key.data, o->key.len, &s, &tomb, &rec, &v, &n);
    if (rc == 0 && tomb)
        rc = CAIRN_ERR_NOT_FOUND;
    if (rc == 0)
        rpc_reply_value(&o->c->out, o->id, &s, v, n);
    else if (rc == CAIRN_ERR_CORRUPT)
        read_corrupt(o);
    else
        node_reply_error(o->c, o->id, rc, NULL);
    buf_free(&rec);
}

/* Clamp the requested [start, end) to the range's bounds. */
static void scan_bounds(const range_meta *m, op *o, buf *start, buf *end)
{
    const buf *rs = &m->start, *re = &m->end;
    if (key_cmp(o->key.data, o->key.len, rs->data, rs->len) < 0)
        buf_append(start, rs->data, rs->len);
    else
        buf_append(start, o->key.data, o->key.len);
    if (o->end.len == 0 ||
        (re->len && key_cmp(o->end.data, o->end.len, re->data, re->len) > 0))
        buf_append(end, re->data, re->len);
    else
        buf_append(end, o->end.data, o->end.len);
}

static void serve_scan(op *o)
{
    const range_meta *m = replica_meta(o->r);
    buf start = BUF_INIT, end = BUF_INIT;
    engine_iter *it = NULL;
    size_t mark;
    uint32_t limit = o->limit ? o->limit : SCAN_LIMIT_DEFAULT, count = 0;
    if (limit > SCAN_LIMIT_MAX)
        limit = SCAN_LIMIT_MAX;
    scan_bounds(m, o, &start, &end);
    bool records = o->type == RPC_SCAN_RECORDS; /* a move's copy */
    int rc = engine_iter_open(replica_engine(o->r), NULL, m->range_id,
                              start.data, start.len, end.data, end.len,
                              limit, records ? ENGINE_ITER_TOMBSTONES : 0,
                              &it);
    bool more = false;
    if (rc == 0)
        rc = rpc_reply_scan_begin(&o->c->out, o->id, &mark);
    engine_entry en;
    while (rc == 0 && (rc = engine_iter_next(it, &en)) == 1) {
        if (o->c->out.len - mark > RPC_SCAN_BYTES) {
            more = true;
            rc = 0;
            break;
        }
        rc = records ? rpc_record_put(&o->c->out, en.key, en.key_len,
                                      &en.seq, en.tombstone, en.value,
                                      en.value_len)
                     : rpc_reply_scan_add(&o->c->out, en.key, en.key_len,
                                          &en.seq, en.value, en.value_len);
        count++;
    }
    if (rc == 0) {
        rpc_reply_scan_end(&o->c->out, mark, count, more);
    } else {
        if (it)
            o->c->out.len = mark;
        if (rc == CAIRN_ERR_CORRUPT)
            read_corrupt(o);
        else
            node_reply_error(o->c, o->id, rc, NULL);
    }
    if (it)
        engine_iter_close(it);
    buf_free(&start);
    buf_free(&end);
}

static void read_done(void *arg, int status)
{
    op *o = arg;
    /* A split may have applied between the read's arrival and now: keys
     * from its split key up are no longer here. The epoch tells. */
    if (status == 0 && replica_meta(o->r)->epoch > o->epoch)
        status = CAIRN_ERR_STALE_EPOCH;
    if (!o->c->closing) {
        if (status == CAIRN_ERR_STALE_EPOCH)
            node_reply_error(o->c, o->id, status, "the range changed (split) "
                        "while the read waited");
        else if (status != 0)
            node_reply_status(o->c, o->id, status, o->r, NULL);
        else if (o->type == RPC_GET)
            serve_get(o);
        else
            serve_scan(o);
    }
    node_op_done(o);
}

/* The checks every data request passes first (node.h). */
static replica *route(conn *c, const rpc_request *q)
{
    replica *r = node_find_range(c->n, q->range_id);
    char msg[128];
    if (r == NULL) {
        slot *s = node_find_slot(c->n, q->range_id);
        bool corrupt = s && s->corrupt;
        snprintf(msg, sizeof msg, "range %" PRIu64 " is %s here", q->range_id,
                 corrupt ? "corrupt (refused until rebuilt)" : "not hosted");
        node_reply_error(c, q->id,
                    corrupt ? CAIRN_ERR_CORRUPT : CAIRN_ERR_RANGE_NOT_FOUND,
                    msg);
        return NULL;
    }
    /* Only the range's current epoch is served (DESIGN.md). Older: the
     * sender's routing is stale. Newer: the metadata records only epochs
     * a leader applied, so this replica has not applied that change yet
     * (a new leader still applying its log); it soon will, and the
     * sender retries. */
    uint64_t epoch = replica_meta(r)->epoch;
    if (q->epoch != epoch) {
        snprintf(msg, sizeof msg, "epoch %" PRIu64 ", range is at %" PRIu64
                 "%s", q->epoch, epoch,
                 q->epoch > epoch ? " here (a change not applied here yet)"
                                  : "");
        node_reply_error(c, q->id, q->epoch < epoch ? CAIRN_ERR_STALE_EPOCH
                                               : CAIRN_ERR_TRYAGAIN, msg);
        return NULL;
    }
    if (q->type == RPC_SCAN || q->type == RPC_SCAN_RECORDS ||
        q->type == RPC_COPY) /* no one key to check */
        return r;
    int rc = replica_check_key(r, q->key.p, q->key.len);
    if (rc != 0) {
        node_reply_error(c, q->id, rc, NULL);
        return NULL;
    }
    return r;
}

void node_handle_data(conn *c, const rpc_request *q)
{
    replica *r = route(c, q);
    if (r == NULL)
        return;
    op *o = node_op_new(c, q, r);
    if (o == NULL) {
        node_reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
        return;
    }
    replica_note_load(r, q->key.p, q->key.len);
    int rc;
    if (q->type == RPC_PUT)
        rc = replica_write(r, ENTRY_OP_PUT, q->key.p, q->key.len, q->value.p,
                           q->value.len, q->cond, &q->cond_seq, write_done, o);
    else if (q->type == RPC_DEL)
        rc = replica_write(r, ENTRY_OP_DEL, q->key.p, q->key.len, NULL, 0,
                           ENTRY_COND_NONE, NULL, write_done, o);
    else
        rc = replica_read(r, read_done, o);
    if (rc != 0) {
        node_reply_status(c, q->id, rc, r, NULL);
        node_op_done(o);
    }
}

/* COPY: every record queued as an IFNEWER write (replica_write), answered
 * "copied N of M" once the last one applied, or with the first failure
 * other than "already held as new or newer" (CAIRN_ERR_CONDITION). */
static void copy_finish(op *o)
{
    if (node_find_range(o->c->n, o->range_id) == o->r)
        replica_note_copy(o->r, o->landed, o->copy_bytes);
    if (!o->c->closing) {
        char msg[64];
        snprintf(msg, sizeof msg, "copied %u of %u", o->landed,
                 o->landed + o->skipped);
        if (o->copy_err)
            node_reply_status(o->c, o->id, o->copy_err, o->r, NULL);
        else
            rpc_reply_text(&o->c->out, o->id, msg, strlen(msg));
    }
    node_op_done(o);
}

static void copy_done(void *arg, int status, const seq *s)
{
    op *o = arg;
    (void)s;
    if (status == 0)
        o->landed++;
    else if (status == CAIRN_ERR_CONDITION)
        o->skipped++;
    else if (o->copy_err == 0)
        o->copy_err = status;
    if (--o->copies == 0 && !o->issuing)
        copy_finish(o);
}

void node_handle_copy(conn *c, const rpc_request *q)
{
    replica *r = route(c, q);
    op *o = r ? node_op_new(c, q, r) : NULL;
    if (r && o == NULL)
        node_reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
    if (o == NULL)
        return;
    o->issuing = true;
    size_t pos = 0;
    rpc_record rec;
    while (o->copy_err == 0 && rpc_record_next(q->items, &pos, &rec) == 1) {
        int rc = replica_check_key(r, rec.key.p, rec.key.len);
        if (rc == 0)
            rc = replica_write(r, rec.tombstone ? ENTRY_OP_DEL : ENTRY_OP_PUT,
                               rec.key.p, rec.key.len, rec.value.p,
                               rec.value.len, ENTRY_COND_IFNEWER, &rec.seq,
                               copy_done, o);
        if (rc == 0) {
            o->copies++;
            o->copy_bytes += rec.key.len + rec.value.len;
        } else {
            o->copy_err = rc;
        }
    }
    o->issuing = false;
    if (o->copies == 0)
        copy_finish(o);
}

