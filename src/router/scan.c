/*
 * scan.c - KV.SCAN: one page of [start, end) in key order, across ranges.
 *
 * A page is a series of SCAN RPCs, each to the leader of the range holding
 * the current key (linearizable per range), clipped to that range's end.
 * The page stops at LIMIT entries or ROUTER_SCAN_PAGE_BYTES of keys and
 * values, whichever comes first. One entry more than the page is read: its
 * key is the next cursor (an inclusive start), so a cursor always names a
 * key that existed, and the last page is the one whose cursor is empty.
 * When a node stops early (its byte budget), the next RPC starts again at
 * the last key seen and skips it.
 *
 * The page is held in memory until it is complete, bounded by the limits
 * above (RESP puts the cursor and the count first, so nothing can be
 * written earlier), once: it becomes the reply in place.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "router/router_int.h"

struct rscan {
    uint64_t table_id;
    buf cur;        /* where the next RPC starts (inclusive; empty = -inf) */
    buf skip;       /* a key already returned, skipped if seen again */
    uint32_t count; /* entries in the page */
    size_t bytes;
    buf entries;    /* RESP bulk key, bulk value, ... */
    buf cursor;     /* text of the next cursor, empty at the end */
};

void router_scan_free(struct rreq *q)
{
    struct rscan *s = q->scan;
    if (s == NULL)
        return;
    buf_free(&s->cur);
    buf_free(&s->skip);
    buf_free(&s->entries);
    buf_free(&s->cursor);
    free(s);
    q->scan = NULL;
}

/* The page becomes the reply in place: the header (cursor, entry count) is
 * slid in front of the entries, so a page is never held twice. */
static void scan_reply(struct router *r, struct rreq *q)
{
    struct rscan *s = q->scan;
    buf head = BUF_INIT;
    int rc = resp_write_array(&head, 2);
    if (rc == 0)
        rc = resp_write_bulk(&head, s->cursor.data, s->cursor.len);
    if (rc == 0)
        rc = resp_write_array(&head, (size_t)s->count * 2);
    if (rc == 0)
        rc = buf_reserve(&s->entries, head.len);
    if (rc == 0) {
        memmove(s->entries.data + head.len, s->entries.data,
                s->entries.len);
        memcpy(s->entries.data, head.data, head.len);
        s->entries.len += head.len;
        buf_free(&q->out);
        q->out = s->entries;
        s->entries = (buf)BUF_INIT;
    } else {
        router_reply_status(q, CAIRN_ERR_NOMEM, NULL);
    }
    buf_free(&head);
    router_scan_free(q);
    router_req_finish(q);
}

static void scan_fail(struct router *r, struct rreq *q, int status,
                      const char *msg)
{
    router_scan_free(q);
    router_reply_status(q, status, msg);
    r->stat_errors++;
    router_req_finish(q);
}

static void scan_done(struct rop *op, int status, const rpc_reply *rep);

static bool key_at_or_past_end(const struct rreq *q, const uint8_t *k,
                               size_t len)
{
    const router_arg *end = &q->cmd.end;
    return end->len > 0 && key_cmp(k, len, end->p, end->len) >= 0;
}

/* Send the next RPC of the page. */
static void scan_step(struct router *r, struct rreq *q)
{
    struct rscan *s = q->scan;
    struct rop *op = router_op_new(r, q, RPC_SCAN, s->table_id, scan_done);
    if (op == NULL) {
        scan_fail(r, q, CAIRN_ERR_NOMEM, NULL);
        return;
    }
    op->key = s->cur.data;
    op->key_len = s->cur.len;
    op->end = q->cmd.end.p;
    op->end_len = q->cmd.end.len;
    /* The rest of the page, one more for the cursor, one more for a key
     * that is skipped. */
    op->limit = q->cmd.limit - s->count + 1 + (s->skip.len > 0);
    router_op_start(op);
}

static int set_buf(buf *b, const uint8_t *p, size_t n)
{
    buf_reset(b);
    return buf_append(b, p, n);
}

/* Take one entry; false when the page is full (then the cursor is set). */
static bool scan_take(struct rscan *s, const struct rreq *q,
                      const rpc_scan_entry *e)
{
    if (s->count >= q->cmd.limit || s->bytes >= ROUTER_SCAN_PAGE_BYTES) {
        router_cursor_encode(s->table_id, e->key.p, e->key.len, &s->cursor);
        return false;
    }
    resp_write_bulk(&s->entries, e->key.p, e->key.len);
    resp_write_bulk(&s->entries, e->value.p, e->value.len);
    s->count++;
    s->bytes += e->key.len + e->value.len;
    set_buf(&s->skip, e->key.p, e->key.len);
    return true;
}

/* Take the entries of one node reply. Returns 1 if the page filled up (the
 * cursor is set), 0 if not, or CAIRN_ERR_PROTO. *seen = entries read. */
static int take_entries(struct rscan *s, const struct rreq *q,
                        const rpc_reply *rep, uint32_t *seen)
{
    buf resumed = s->skip; /* the key this RPC started at, if resuming */
    s->skip = (buf)BUF_INIT;
    size_t pos = 0;
    rpc_scan_entry e;
    int rc, full = 0;
    *seen = 0;
    while (!full && (rc = rpc_scan_next(rep, &pos, &e)) == 1) {
        if (++*seen == 1 && resumed.len > 0 &&
            key_cmp(e.key.p, e.key.len, resumed.data, resumed.len) == 0)
            continue; /* returned by the previous RPC */
        full = !scan_take(s, q, &e);
    }
    if (s->skip.len == 0) { /* nothing new taken: still resume there */
        buf_free(&s->skip);
        s->skip = resumed;
    } else {
        buf_free(&resumed);
    }
    return full ? 1 : rc < 0 ? CAIRN_ERR_PROTO : 0;
}

static void scan_done(struct rop *op, int status, const rpc_reply *rep)
{
    struct rreq *q = op->req;
    struct router *r = op->r;
    if (q == NULL)
        return;
    struct rscan *s = q->scan;
    if (status != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "%.*s",
                 (int)(rep->message.len < 159 ? rep->message.len : 159),
                 (const char *)rep->message.p);
        scan_fail(r, q, status, msg);
        return;
    }
    uint32_t seen;
    int rc = take_entries(s, q, rep, &seen);
    if (rc < 0) {
        scan_fail(r, q, rc, "malformed scan reply from node");
    } else if (rc == 1) {
        scan_reply(r, q);
    } else if (rep->scan_more || seen >= op->limit) {
        /* The node stopped early: resume at the last key, skipping it. */
        set_buf(&s->cur, s->skip.data, s->skip.len);
        scan_step(r, q);
    } else if (op->rend_len == 0 ||
               key_at_or_past_end(q, op->rend, op->rend_len)) {
        scan_reply(r, q); /* the end of the interval: empty cursor */
    } else {
        /* This range is done up to its end: on to the next one. */
        set_buf(&s->cur, op->rend, op->rend_len);
        buf_reset(&s->skip);
        scan_step(r, q);
    }
}

void router_scan_start(struct router *r, struct rreq *q,
                       const router_table *t)
{
    struct rscan *s = calloc(1, sizeof *s);
    if (s == NULL) {
        router_reply_status(q, CAIRN_ERR_NOMEM, NULL);
        router_req_finish(q);
        return;
    }
    q->scan = s;
    s->table_id = t->id;
    if (q->cmd.has_cursor && q->cmd.cursor.table_id != t->id) {
        scan_fail(r, q, CAIRN_ERR_INVALID,
                  "scan cursor belongs to another table");
        return;
    }
    const uint8_t *from = q->cmd.has_cursor ? q->cmd.cursor.key
                                            : q->cmd.start.p;
    size_t from_len = q->cmd.has_cursor ? q->cmd.cursor.key_len
                                        : q->cmd.start.len;
    if (set_buf(&s->cur, from, from_len) != 0) {
        scan_fail(r, q, CAIRN_ERR_NOMEM, NULL);
        return;
    }
    if (from_len > 0 && key_at_or_past_end(q, from, from_len)) {
        scan_reply(r, q); /* empty interval */
        return;
    }
    scan_step(r, q);
}
