/*
 * migrate.c - requests on a range being moved (DESIGN.md "Split and
 * move"; MISSION.md "Live split / migration flow").
 *
 * While a move copies a range into its new group, etcd names the new
 * group (the destination) as the owner, MIGRATING from the old one (the
 * source): the source is fenced - it takes no writes, so what it holds is
 * final - and every new write goes to the destination, whose clock is past
 * everything the source holds, so a new write always wins against a copy
 * of an older one. A key's value is the record with the higher sequencer
 * of the two groups, tombstones included (a delete on the destination
 * hides the source's value). So:
 *  - a read (GET) reads the key's record in both (SCAN_RECORDS of [k,
 *    k\0), tombstones included) and answers the higher;
 *  - a scan page reads both pages and merges them by key, the higher
 *    sequencer winning, up to where both pages are complete (the smaller
 *    last key of a page that stopped early); tombstones are dropped after
 *    the merge; a page left empty that way is read again from there on;
 *  - a conditional write (IFSEQ, IFABSENT) must see the same merged
 *    state: the source's record of its key is first copied into the
 *    destination (COPY: it lands only if newer - exactly the copy the move
 *    makes anyway), and only then is the write sent, to the destination,
 *    where its condition meets max(source, destination) of the key;
 *  - an unconditional write needs nothing: it goes to the destination.
 * The reads are children of the request's op, bound for one group each
 * (rop.mig); the op waits for them, then finishes with what they say, as
 * a node would have answered. A child bound for the source of a range
 * that is no longer moving (the copy ended: the destination holds
 * everything) answers "nothing there".
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/key.h"
#include "router/router_int.h"

enum { PH_GET, PH_SCAN, PH_COND_READ, PH_COND_COPY };
enum { DEST, SOURCE };

struct rmig {
    int phase;
    struct rop *kids[2]; /* alive children: [DEST], [SOURCE] */
    int pending;
    int status[2];
    rpc_bytes msg;       /* a failed child's message (in `why`) */
    char why[160];
    buf page[2];         /* their SCAN_RECORDS entries, copied */
    bool more[2];
    uint32_t count[2];
    buf start, end;      /* the children's interval */
    buf items;           /* PH_COND_COPY: the record to copy */
    buf out;             /* the answer's entries or value */
};

static void kid_done(struct rop *kid, int status, const rpc_reply *rep);
static void phase_done(struct rop *op);

/* A child of `op` bound for group `which`, reading [st->start, st->end). */
static struct rop *kid_new(struct rop *op, int which, rpc_type type)
{
    struct rmig *st = op->mig_state;
    struct rop *k = router_op_new(op->r, NULL, type, op->table_id, kid_done);
    if (k == NULL)
        return NULL;
    k->deadline = op->deadline;
    k->mig = which == DEST ? ROUTER_MIG_DEST : ROUTER_MIG_SOURCE;
    k->mig_parent = op;
    k->key = st->start.data;
    k->key_len = st->start.len;
    k->end = st->end.data;
    k->end_len = st->end.len;
    k->limit = type == RPC_SCAN_RECORDS && op->type == RPC_SCAN ? op->limit
                                                                 : 1;
    st->kids[which] = k;
    st->pending++;
    return k;
}

static int set_buf(buf *b, const uint8_t *p, size_t n)
{
    buf_reset(b);
    return b->data == NULL && n == 0 ? buf_reserve(b, 1) : buf_append(b, p, n);
}

/* [key, key\0): exactly the key. */
static int set_point(struct rmig *st, const uint8_t *key, size_t len)
{
    int rc = set_buf(&st->start, key, len);
    if (rc == 0)
        rc = set_buf(&st->end, key, len);
    return rc ? rc : buf_append_u8(&st->end, 0);
}

/* Start the children of the current phase. */
static int launch(struct rop *op)
{
    struct rmig *st = op->mig_state;
    st->pending = 0;
    st->status[DEST] = st->status[SOURCE] = 0;
    st->why[0] = '\0';
    if (st->phase == PH_COND_COPY) {
        struct rop *k = kid_new(op, DEST, RPC_COPY);
        if (k == NULL)
            return CAIRN_ERR_NOMEM;
        k->items = st->items.data;
        k->items_len = st->items.len;
        k->count = 1;
        router_op_start(k);
        return 0;
    }
    bool both = st->phase != PH_COND_READ;
    struct rop *d = both ? kid_new(op, DEST, RPC_SCAN_RECORDS) : NULL;
    struct rop *s = kid_new(op, SOURCE, RPC_SCAN_RECORDS);
    if ((both && d == NULL) || s == NULL)
        return CAIRN_ERR_NOMEM;
    /* started last: a child may finish at once (a source no longer
     * moving), which must not end the phase before both are out */
    st->pending++;
    if (d)
        router_op_start(d);
    router_op_start(s);
    if (--st->pending == 0) /* both answered already */
        phase_done(op);
    return 0;
}

bool router_migrate_take(struct rop *op, const router_range *rg)
{
    bool read = op->type == RPC_GET || op->type == RPC_SCAN;
    bool cond = (op->type == RPC_PUT || op->type == RPC_DEL) &&
                op->cond != RPC_COND_NONE && !op->mig_copied;
    if (!read && !cond)
        return false;
    struct rmig *st = calloc(1, sizeof *st);
    int rc = st ? 0 : CAIRN_ERR_NOMEM;
    op->mig_state = st;
    if (rc == 0 && op->type == RPC_SCAN) {
        st->phase = PH_SCAN;
        rc = set_buf(&st->start, op->key, op->key_len);
        /* to the end asked for, or the range's, whichever comes first */
        const uint8_t *e = op->end;
        size_t en = op->end_len;
        if (rg->end_len > 0 &&
            (en == 0 || key_cmp(rg->end, rg->end_len, e, en) < 0))
            e = rg->end, en = rg->end_len;
        if (rc == 0)
            rc = set_buf(&st->end, e, en);
    } else if (rc == 0) {
        st->phase = read ? PH_GET : PH_COND_READ;
        rc = set_point(st, op->key, op->key_len);
    }
    if (rc == 0)
        rc = launch(op);
    if (rc != 0) {
        router_migrate_drop(op);
        router_op_finish(op, rc, &(rpc_reply){.status = rc});
    }
    return true;
}

/* ---- what the children found ---------------------------------------- */

/* The first record of a page if it is `key`'s. */
static bool point_record(const buf *page, const uint8_t *key, size_t len,
                         rpc_record *out)
{
    size_t pos = 0;
    return rpc_record_next((rpc_bytes){page->data, page->len}, &pos, out) ==
               1 &&
           out->key.len == len && memcmp(out->key.p, key, len) == 0;
}

static int seq_order(const seq *a, const seq *b)
{
    return memcmp(a->bytes, b->bytes, SEQ_LEN);
}

static void finish_get(struct rop *op, struct rmig *st)
{
    rpc_record r[2];
    bool has[2];
    for (int i = 0; i < 2; i++)
        has[i] = point_record(&st->page[i], op->key, op->key_len, &r[i]);
    int w = !has[DEST]     ? SOURCE
            : !has[SOURCE] ? DEST
            : seq_order(&r[SOURCE].seq, &r[DEST].seq) > 0 ? SOURCE
                                                           : DEST;
    rpc_reply rep = {0};
    if (!has[w] || r[w].tombstone) {
        rep.status = CAIRN_ERR_NOT_FOUND;
        rep.message = (rpc_bytes){(const uint8_t *)"not found", 9};
        router_op_finish(op, CAIRN_ERR_NOT_FOUND, &rep);
        return;
    }
    rep.seq = r[w].seq;
    rep.value = r[w].value;
    router_op_finish(op, 0, &rep);
}

/* A page stopped early (at the node's byte budget or its limit). */
static bool page_full(const struct rmig *st, int i, uint32_t limit)
{
    return st->more[i] || st->count[i] >= limit;
}

/* The last key of page `i` (it has one: it is full). */
static rpc_bytes last_key(const buf *page)
{
    size_t pos = 0;
    rpc_record r;
    rpc_bytes k = {NULL, 0};
    while (rpc_record_next((rpc_bytes){page->data, page->len}, &pos, &r) == 1)
        k = r.key;
    return k;
}

/* Merge both pages into st->out, the higher sequencer winning, up to
 * `cut` (inclusive; len 0 and p NULL: no cut). Returns the entries. */
static uint32_t merge(struct rmig *st, rpc_bytes cut)
{
    rpc_bytes pg[2] = {{st->page[0].data, st->page[0].len},
                       {st->page[1].data, st->page[1].len}};
    size_t pos[2] = {0, 0};
    rpc_record r[2];
    bool has[2];
    uint32_t n = 0;
    buf_reset(&st->out);
    for (int i = 0; i < 2; i++)
        has[i] = rpc_record_next(pg[i], &pos[i], &r[i]) == 1;
    while (has[0] || has[1]) {
        int c = !has[1]   ? -1
                : !has[0] ? 1
                          : key_cmp(r[0].key.p, r[0].key.len, r[1].key.p,
                                    r[1].key.len);
        const rpc_record *w = c < 0 ? &r[0] : c > 0 ? &r[1]
                              : seq_order(&r[1].seq, &r[0].seq) > 0
                                  ? &r[1]
                                  : &r[0];
        if (cut.p && key_cmp(w->key.p, w->key.len, cut.p, cut.len) > 0)
            break;
        if (!w->tombstone &&
            rpc_reply_scan_add(&st->out, w->key.p, w->key.len, &w->seq,
                               w->value.p, w->value.len) == 0)
            n++;
        for (int i = 0; i < 2; i++)
            if (has[i] && (c == 0 || (i == 0) == (c < 0)))
                has[i] = rpc_record_next(pg[i], &pos[i], &r[i]) == 1;
    }
    return n;
}

static void finish_scan(struct rop *op, struct rmig *st)
{
    uint32_t limit = op->limit;
    bool full[2] = {page_full(st, 0, limit), page_full(st, 1, limit)};
    rpc_bytes cut = {NULL, 0};
    for (int i = 0; i < 2; i++) {
        if (!full[i])
            continue;
        rpc_bytes k = last_key(&st->page[i]);
        if (cut.p == NULL || key_cmp(k.p, k.len, cut.p, cut.len) < 0)
            cut = k;
    }
    uint32_t n = merge(st, cut);
    if (n == 0 && cut.p != NULL) {
        /* only tombstones up to the cut: read on from just after it */
        buf next = BUF_INIT;
        int rc = buf_append(&next, cut.p, cut.len);
        if (rc == 0)
            rc = buf_append_u8(&next, 0);
        if (rc == 0)
            rc = set_buf(&st->start, next.data, next.len);
        buf_free(&next);
        if (rc == 0)
            rc = launch(op);
        if (rc != 0)
            router_op_finish(op, rc, &(rpc_reply){.status = rc});
        return;
    }
    rpc_reply rep = {0};
    rep.scan_count = n;
    rep.scan_more = cut.p != NULL;
    rep.scan = (rpc_bytes){st->out.data, st->out.len};
    router_op_finish(op, 0, &rep);
}

/* The conditional write: copy the source's record, then send it. */
static void cond_next(struct rop *op, struct rmig *st)
{
    rpc_record rec;
    if (st->phase == PH_COND_READ &&
        point_record(&st->page[SOURCE], op->key, op->key_len, &rec)) {
        buf_reset(&st->items);
        int rc = rpc_record_put(&st->items, rec.key.p, rec.key.len, &rec.seq,
                                rec.tombstone, rec.value.p, rec.value.len);
        st->phase = PH_COND_COPY;
        if (rc == 0)
            rc = launch(op);
        if (rc != 0)
            router_op_finish(op, rc, &(rpc_reply){.status = rc});
        return;
    }
    /* nothing to copy, or copied: the write goes on, to the destination */
    router_migrate_drop(op);
    op->mig_copied = true;
    router_op_start(op);
}

static void phase_done(struct rop *op)
{
    struct rmig *st = op->mig_state;
    for (int i = 0; i < 2; i++)
        if (st->status[i] != 0) {
            rpc_reply rep = {.status = st->status[i], .message = st->msg};
            router_op_finish(op, st->status[i], &rep);
            return;
        }
    if (st->phase == PH_GET)
        finish_get(op, st);
    else if (st->phase == PH_SCAN)
        finish_scan(op, st);
    else
        cond_next(op, st);
}

static void keep_page(struct rmig *st, int i, const rpc_reply *rep)
{
    if (set_buf(&st->page[i], rep->scan.p, rep->scan.len) != 0) {
        st->status[i] = CAIRN_ERR_NOMEM;
        return;
    }
    st->more[i] = rep->scan_more;
    st->count[i] = rep->scan_count;
}

static void kid_done(struct rop *kid, int status, const rpc_reply *rep)
{
    struct rop *op = kid->mig_parent;
    if (op == NULL || op->mig_state == NULL)
        return; /* the parent is gone */
    struct rmig *st = op->mig_state;
    int i = kid->mig == ROUTER_MIG_DEST ? DEST : SOURCE;
    st->kids[i] = NULL;
    if (status == 0 && kid->type == RPC_SCAN_RECORDS) {
        keep_page(st, i, rep);
    } else if (status != 0) {
        st->status[i] = status;
        size_t n = rep && rep->message.len < sizeof st->why
                       ? rep->message.len
                       : 0;
        if (n)
            memcpy(st->why, rep->message.p, n);
        st->why[n] = '\0';
        st->msg = (rpc_bytes){(const uint8_t *)st->why, n};
    }
    if (--st->pending == 0)
        phase_done(op);
}

void router_migrate_source_done(struct rop *op)
{
    rpc_reply rep = {0}; /* an empty page: nothing there */
    rep.scan = (rpc_bytes){(const uint8_t *)"", 0};
    router_op_finish(op, 0, &rep);
}

void router_migrate_drop(struct rop *op)
{
    struct rmig *st = op->mig_state;
    if (st == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        struct rop *k = st->kids[i];
        if (k == NULL)
            continue;
        /* dead: the ticker frees it, it never calls back */
        if (k->pr.conn)
            router_pool_detach(&k->pr);
        k->mig_parent = NULL;
        k->dead = true;
        k->retry_at = 0;
    }
    for (int i = 0; i < 2; i++)
        buf_free(&st->page[i]);
    buf_free(&st->start);
    buf_free(&st->end);
    buf_free(&st->items);
    buf_free(&st->out);
    free(st);
    op->mig_state = NULL;
}
