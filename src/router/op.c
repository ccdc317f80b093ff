/*
 * op.c - one routed RPC: find the range and its leader, send, and decide
 * what a rejection means (DESIGN.md, "cairn router"; issue 4):
 *  - NOT_LEADER with a hint: remember the hint and go there at once;
 *  - NO_QUORUM, CORRUPT (a replica refusing its corrupt copy): forget
 *    that leader, ask around after a backoff;
 *  - STALE_EPOCH, RANGE_NOT_FOUND, KEY_OUT_OF_RANGE, TRYAGAIN, no range in
 *    the cache, no address, a connection that failed before the request
 *    was sent: re-read the metadata and retry after a backoff that doubles
 *    from ROUTER_BACKOFF_MIN_MS up to ROUTER_BACKOFF_MAX_MS - or as soon as
 *    a newer view arrives, whichever comes first;
 *  - the deadline passes: -TRYAGAIN naming the last reason, except that a
 *    write already handed to the socket is -TIMEOUT (outcome unknown) - it
 *    is never re-sent, since it may have been applied. A write still queued
 *    on its connection is -TRYAGAIN: finishing it detaches it, which drops
 *    its frame (pool.c), so its bytes never leave the router;
 *  - a request in flight to a node that the view no longer names as the
 *    range's leader (a hung old leader: paused, cut off) is not waited on
 *    until the deadline: see abandon_stale;
 *  - writes of one client keep their order (DESIGN.md): see must_wait.
 * Every op ends in exactly one call of op->done.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "router/router_int.h"

static void op_attempt(struct rop *op);
static void forget_leader(struct rop *op);
static void op_replied(struct rop *op, const rpc_reply *rep);
static void op_conn_failed(struct rop *op, int err);

static void ticker_cb(uv_timer_t *t)
{
    router_op_tick(t->data);
}

static void ticker_ensure(struct router *r)
{
    if (r->ticking || r->stopping)
        return;
    r->ticking = true;
    uv_timer_start(&r->ticker, ticker_cb, ROUTER_TICK_MS, ROUTER_TICK_MS);
}

static bool is_write_cmd(router_cmd_kind kind)
{
    return kind == RCMD_SET || kind == RCMD_DEL || kind == RCMD_MSET ||
           kind == RCMD_KV_PUT || kind == RCMD_KV_DEL;
}

/* Every op of a client's write command (a delete's probe read included:
 * it decides whether the tombstone is written) joins the client's ordered
 * list, in the order the ops are created. */
static void order_join(struct rop *op)
{
    struct rclient *c = op->req != NULL ? op->req->c : NULL;
    if (c == NULL || !is_write_cmd(op->req->cmd.kind))
        return;
    op->wc = c;
    op->wnext = NULL;
    op->wprev = c->wtail;
    if (c->wtail)
        c->wtail->wnext = op;
    else
        c->whead = op;
    c->wtail = op;
}

static void order_leave(struct rop *op)
{
    struct rclient *c = op->wc;
    if (c == NULL)
        return;
    if (op->wprev)
        op->wprev->wnext = op->wnext;
    else
        c->whead = op->wnext;
    if (op->wnext)
        op->wnext->wprev = op->wprev;
    else
        c->wtail = op->wprev;
    op->wc = NULL;
    op->wnext = op->wprev = NULL;
}

void router_op_take_place(struct rop *op, struct rop *probe)
{
    struct rclient *c = probe->wc;
    if (c == NULL || op->wc != c)
        return;
    order_leave(op);
    op->wc = c;
    op->wnext = probe;
    op->wprev = probe->wprev;
    if (probe->wprev)
        probe->wprev->wnext = op;
    else
        c->whead = op;
    probe->wprev = op;
}

struct rop *router_op_new(struct router *r, struct rreq *q, rpc_type type,
                          uint64_t table_id, rop_done_fn done)
{
    struct rop *op = calloc(1, sizeof *op);
    if (op == NULL)
        return NULL;
    op->r = r;
    op->req = q;
    op->type = type;
    op->table_id = table_id;
    op->done = done;
    op->is_write = type == RPC_PUT || type == RPC_DEL;
    op->deadline = router_now(r) + (uint64_t)r->cfg.deadline_ms;
    /* Oldest first: the ticker retries ops due at the same time in the
     * order they were made. */
    op->prev = r->ops_tail;
    if (r->ops_tail)
        r->ops_tail->next = op;
    else
        r->ops = op;
    r->ops_tail = op;
    r->nops++;
    if (q)
        q->pending++;
    order_join(op);
    ticker_ensure(r);
    return op;
}

static void op_unlink(struct rop *op)
{
    struct router *r = op->r;
    r->nops--;
    if (op->prev)
        op->prev->next = op->next;
    else
        r->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        r->ops_tail = op->prev;
}

static void op_finish(struct rop *op, int status, const rpc_reply *rep)
{
    router_op_finish(op, status, rep);
}

void router_op_finish(struct rop *op, int status, const rpc_reply *rep)
{
    if (op->pr.conn)
        router_pool_detach(&op->pr);
    op_unlink(op);
    if (op->req)
        op->req->pending--;
    if (status == CAIRN_ERR_TIMEOUT)
        op->r->stat_timeouts++;
    op->done(op, status, rep);
    /* Left only now: a delete's tombstone, made by done, takes its probe's
     * place in the client's order. */
    order_leave(op);
    router_migrate_drop(op); /* after done: `rep` may point into its state */
    free(op->rend);
    free(op);
}

/* Finish with an error and a message of our own. */
static void op_fail(struct rop *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void op_fail(struct rop *op, int status, const char *fmt, ...)
{
    rpc_reply rep;
    memset(&rep, 0, sizeof rep);
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rep.status = status;
    rep.message.p = (const uint8_t *)msg;
    rep.message.len = strlen(msg);
    op_finish(op, status, &rep);
}

static void give_up(struct rop *op)
{
    op_fail(op, CAIRN_ERR_TRYAGAIN, "no answer within %d ms (last: %s %s)",
            op->r->cfg.deadline_ms, cairn_err_word(op->last_err),
            op->last_msg);
}

/* Remember why, maybe refresh, and try again after a backoff - or give up
 * if the deadline would pass first. */
static void retry_later(struct rop *op, int err, const char *msg,
                        bool refresh)
{
    struct router *r = op->r;
    op->last_err = err;
    snprintf(op->last_msg, sizeof op->last_msg, "%s", msg);
    if (refresh) {
        router_view_refresh(r);
        op->view_rev = router_cache_revision(r->cache);
    }
    uint64_t wait = ROUTER_BACKOFF_MIN_MS;
    for (int i = 0; i < op->attempts && wait < ROUTER_BACKOFF_MAX_MS; i++)
        wait *= 2;
    if (wait > ROUTER_BACKOFF_MAX_MS)
        wait = ROUTER_BACKOFF_MAX_MS;
    op->attempts++;
    r->stat_retries++;
    router_metrics_retry(r, err);
    uint64_t now = router_now(r);
    if (now + wait >= op->deadline) {
        give_up(op);
        return;
    }
    op->retry_at = now + wait;
    ticker_ensure(r);
}

/* Which replica to try: the known leader, else each replica in turn (a
 * follower answers NOT_LEADER with the leader it knows). */
static uint64_t pick_node(const router_range *rg, int attempts)
{
    if (rg->leader != 0)
        return rg->leader;
    if (rg->nreplicas == 0)
        return 0;
    return rg->replicas[(size_t)attempts % (size_t)rg->nreplicas];
}

/* A scan RPC reads up to the end of its range; the page goes on from
 * there (scan.c), so the op keeps its own copy of that end. */
static int note_range_end(struct rop *op, const router_range *rg)
{
    free(op->rend);
    op->rend = NULL;
    op->rend_len = rg->end_len;
    if (rg->end_len == 0)
        return 0;
    op->rend = malloc(rg->end_len);
    if (op->rend == NULL)
        return CAIRN_ERR_NOMEM;
    memcpy(op->rend, rg->end, rg->end_len);
    return 0;
}

/* Writes of one client keep their order (DESIGN.md): an ordered op waits
 * while an earlier one of its client is not yet on its way - waiting to
 * retry, not yet routed, a delete's probe whose tombstone is not decided,
 * queued unsent on another connection than `target` (frames of one
 * connection leave in order), or already refused once (it may be refused
 * again and re-sent: the client's writes go one by one until it is
 * answered) - or while an earlier write command still has keys to start (a
 * fan-out beyond its window). A first attempt handed to the socket counts
 * as on its way, so pipelining is unaffected until a node refuses; but a
 * delete's probe reads what the earlier writes left, so it waits until
 * they are answered. The keys of one DEL are deleted independently. */
static bool must_wait(const struct rop *op, const struct nconn *target)
{
    if (op->wc == NULL)
        return false;
    for (const struct rop *e = op->wc->whead; e != NULL && e != op;
         e = e->wnext) {
        if (e->req == op->req && op->req->cmd.kind == RCMD_DEL)
            continue;
        bool going = op->is_write && e->is_write && e->attempts == 0 &&
                     e->pr.conn != NULL &&
                     (e->pr.sent || e->pr.conn == target);
        if (!going)
            return true;
    }
    for (const struct rreq *p = op->wc->head; p != NULL && p != op->req;
         p = p->next)
        if (!p->done &&
            (p->cmd.kind == RCMD_MSET || p->cmd.kind == RCMD_DEL) &&
            p->first_err == 0 && p->fan_next < p->cmd.nargs)
            return true;
    return false;
}

/* Not yet: look again at the next tick, or give up at the deadline
 * (nothing was sent). */
static void wait_turn(struct rop *op)
{
    struct router *r = op->r;
    uint64_t now = router_now(r);
    if (now >= op->deadline) {
        give_up(op);
        return;
    }
    if (op->last_err == 0) {
        op->last_err = CAIRN_ERR_TRYAGAIN;
        snprintf(op->last_msg, sizeof op->last_msg, "%s",
                 "an earlier write of the connection was not sent");
    }
    op->retry_at = now + 1;
    ticker_ensure(r);
}

/* The RPC request of an attempt (request id `id`). */
static void fill_request(const struct rop *op, uint64_t id, rpc_request *req)
{
    memset(req, 0, sizeof *req);
    req->type = op->type;
    req->id = id;
    req->range_id = op->range_id;
    req->epoch = op->epoch;
    req->key.p = op->key;
    req->key.len = op->key_len;
    req->value.p = op->value;
    req->value.len = op->value_len;
    req->end.p = op->end;
    req->end.len = op->end_len;
    /* A scan stops at the end of the range it is sent to. */
    if (op->type == RPC_SCAN && op->rend_len > 0 &&
        (op->end_len == 0 || key_cmp(op->rend, op->rend_len, op->end,
                                            op->end_len) < 0)) {
        req->end.p = op->rend;
        req->end.len = op->rend_len;
    }
    req->cond = op->cond;
    req->cond_seq = op->cond_seq;
    req->limit = op->limit;
    req->items = (rpc_bytes){op->items, op->items_len};
    req->count = op->count;
}


/* The pool's callbacks (pool_req, router_int.h): the rop around it. */
static struct rop *op_of(pool_req *pr)
{
    return (struct rop *)((char *)pr - offsetof(struct rop, pr));
}

static void pool_replied(pool_req *pr, const rpc_reply *rep)
{
    op_replied(op_of(pr), rep);
}

static void pool_failed(pool_req *pr, int err)
{
    op_conn_failed(op_of(pr), err);
}

static void op_attempt(struct rop *op)
{
    struct router *r = op->r;
    const router_table *t = router_cache_table_by_id(r->cache, op->table_id);
    if (t == NULL || t->state != ROUTER_TABLE_READY) {
        op_fail(op, CAIRN_ERR_NO_TABLE, "table was dropped");
        return;
    }
    const router_range *rg = router_cache_lookup(t, op->key, op->key_len);
    if (rg == NULL) {
        retry_later(op, CAIRN_ERR_RANGE_NOT_FOUND, "no range holds the key",
                    true);
        return;
    }
    if (op->mig == ROUTER_MIG_SOURCE) { /* by id: no key leads there */
        if (!rg->migrating) {
            router_migrate_source_done(op);
            return;
        }
        rg = router_cache_range(r->cache, rg->migrating_from);
        if (rg == NULL) {
            retry_later(op, CAIRN_ERR_RANGE_NOT_FOUND,
                        "the moving range's source is not in the view", true);
            return;
        }
    }
    uint64_t node = pick_node(rg, op->attempts);
    const char *addr = router_cache_node_addr(r->cache, node);
    if (addr == NULL) {
        retry_later(op, CAIRN_ERR_TRYAGAIN, "no known replica address",
                    true);
        return;
    }
    if (must_wait(op, router_pool_find(r, addr))) {
        wait_turn(op);
        return;
    }
    if (op->type == RPC_SCAN && note_range_end(op, rg) != 0) {
        op_fail(op, CAIRN_ERR_NOMEM, "out of memory");
        return;
    }
    if (op->mig == ROUTER_MIG_NONE && rg->migrating &&
        router_migrate_take(op, rg))
        return;
    op->range_id = rg->id;
    op->epoch = rg->epoch;
    op->node_id = node;
    op->sent_ms = router_now(r);
    rpc_request req;
    fill_request(op, ++r->next_rpc_id, &req);
    op->pr.on_reply = pool_replied;
    op->pr.on_failed = pool_failed;
    int rc = router_pool_send(r, addr, &op->pr, &req);
    if (rc != 0) {
        forget_leader(op);
        retry_later(op, rc, "cannot reach the node", true);
    }
}

void router_op_start(struct rop *op)
{
    op_attempt(op);
}

void router_op_cancel_req(struct router *r, struct rreq *q)
{
    for (struct rop *op = r->ops; op != NULL; op = op->next) {
        if (op->req != q || op->dead)
            continue;
        if (op->pr.conn)
            router_pool_detach(&op->pr);
        order_leave(op);
        router_migrate_drop(op);
        op->dead = true;
        op->req = NULL;
        op->retry_at = 0;
    }
}

static void follow_hint(struct rop *op, const rpc_reply *rep)
{
    struct router *r = op->r;
    char msg[96];
    snprintf(msg, sizeof msg, "node %llu is not the leader",
             (unsigned long long)op->node_id);
    if (rep->leader_id != 0 && rep->leader_addr.len > 0 &&
        rep->leader_addr.len <= ROUTER_ADDR_MAX) {
        char addr[ROUTER_ADDR_MAX + 1];
        memcpy(addr, rep->leader_addr.p, rep->leader_addr.len);
        addr[rep->leader_addr.len] = '\0';
        router_cache_add_node(r->cache, rep->leader_id, addr);
    }
    router_range *rg = router_cache_range(r->cache, op->range_id);
    /* Hints that keep bouncing (two nodes each naming the other during an
     * election) fall back to the backoff below. */
    if (rep->leader_id != 0 && rep->leader_id != op->node_id &&
        op->attempts < 8) {
        if (rg)
            router_cache_set_leader(r->cache, op->range_id, rep->leader_id,
                                    0);
        op->last_err = CAIRN_ERR_NOT_LEADER;
        snprintf(op->last_msg, sizeof op->last_msg, "%s", msg);
        op->attempts++;
        r->stat_retries++;
        router_metrics_retry(r, CAIRN_ERR_NOT_LEADER);
        op_attempt(op); /* the hint is fresher than anything we have */
        return;
    }
    /* No hint (an election is running): ask around after a backoff. */
    if (rg && rg->leader == op->node_id)
        rg->leader = 0;
    retry_later(op, CAIRN_ERR_NOT_LEADER, msg, true);
}

static void node_msg(char *msg, size_t cap, const struct rop *op,
                     const rpc_reply *rep)
{
    snprintf(msg, cap, "node %llu: %.*s", (unsigned long long)op->node_id,
             (int)(rep->message.len < 60 ? rep->message.len : 60),
             (const char *)rep->message.p);
}

/* What a node's answer means for the op (the node's contract: rejections
 * below are given before a write is proposed to Raft, so nothing was
 * applied; a proposal whose fate is unknown is answered TIMEOUT). */
static void op_replied(struct rop *op, const rpc_reply *rep)
{
    char msg[96];
    switch (rep->status) {
    case CAIRN_ERR_NOT_LEADER:
        follow_hint(op, rep);
        return;
    case CAIRN_ERR_NO_QUORUM:
    case CAIRN_ERR_CORRUPT:
        /* No leader known there (an election), or a replica that refuses
         * its corrupt copy (it served and applied nothing): ask around
         * after a backoff - or, if no majority comes back, TRYAGAIN at the
         * deadline. */
        forget_leader(op);
        node_msg(msg, sizeof msg, op, rep);
        retry_later(op, rep->status, msg, true);
        return;
    case CAIRN_ERR_SHUTDOWN:
        /* The replica closed; a write it had proposed may still commit. */
        if (op->is_write) {
            op_fail(op, CAIRN_ERR_TIMEOUT,
                    "node %llu shut down before confirming the write; "
                    "outcome unknown",
                    (unsigned long long)op->node_id);
            return;
        }
        forget_leader(op);
        node_msg(msg, sizeof msg, op, rep);
        retry_later(op, rep->status, msg, true);
        return;
    case CAIRN_ERR_STALE_EPOCH:
    case CAIRN_ERR_RANGE_NOT_FOUND:
    case CAIRN_ERR_KEY_OUT_OF_RANGE:
    case CAIRN_ERR_TRYAGAIN:
        /* The node refused before doing anything: safe to retry. */
        node_msg(msg, sizeof msg, op, rep);
        retry_later(op, rep->status, msg, true);
        return;
    default:
        op_finish(op, rep->status, rep);
    }
}

/* A node that cannot be reached is no longer trusted as the leader: the
 * next attempts go round the replicas, whose NOT_LEADER hints name the new
 * one once it is elected. */
static void forget_leader(struct rop *op)
{
    router_range *rg = router_cache_range(op->r->cache, op->range_id);
    if (rg != NULL && rg->leader == op->node_id)
        rg->leader = 0;
}

static void op_conn_failed(struct rop *op, int err)
{
    forget_leader(op);
    if (op->pr.sent && op->is_write) {
        op_fail(op, CAIRN_ERR_TIMEOUT,
                "connection to node %llu lost after the write was sent; "
                "outcome unknown",
                (unsigned long long)op->node_id);
        return;
    }
    if (err == CAIRN_ERR_NOAUTH) {
        char msg[96];
        snprintf(msg, sizeof msg, "node %llu refused the connection (cluster "
                 "secret)", (unsigned long long)op->node_id);
        retry_later(op, err, msg, true);
        return;
    }
    retry_later(op, err, "connection to the node failed", true);
}

/* A leader that hangs (SIGSTOP, a partition that leaves its sockets
 * open) holds every request sent to it until the deadline, though its
 * successor is elected within an election timeout and recorded in etcd,
 * which the view follows. So once the view names another leader for the
 * range, an op in flight to the old one long enough that a live leader
 * would have answered is given up on there: a read (or a write still
 * queued, unsent) is routed again - repeating a read is harmless; a write
 * that was sent ends TIMEOUT, outcome unknown, as at the deadline but
 * sooner, so that the client can decide. Returns whether it acted. */
static bool abandon_stale(struct rop *op, uint64_t now)
{
    if (op->pr.conn == NULL)
        return false;
    bool sent_write = op->pr.sent && op->is_write;
    uint64_t after = sent_write ? ROUTER_ABANDON_WRITE_MS
                                : ROUTER_ABANDON_READ_MS;
    if (now - op->sent_ms < after)
        return false;
    const router_range *rg = router_cache_range(op->r->cache, op->range_id);
    if (rg == NULL || rg->leader == 0 || rg->leader == op->node_id)
        return false;
    if (sent_write) {
        op_fail(op, CAIRN_ERR_TIMEOUT,
                "write sent to node %llu, which no longer leads the range "
                "(node %llu does), not answered within %d ms; outcome "
                "unknown", (unsigned long long)op->node_id,
                (unsigned long long)rg->leader, ROUTER_ABANDON_WRITE_MS);
        return true;
    }
    router_pool_detach(&op->pr);
    op->last_err = CAIRN_ERR_NOT_LEADER;
    snprintf(op->last_msg, sizeof op->last_msg,
             "node %llu did not answer and no longer leads",
             (unsigned long long)op->node_id);
    op->attempts++;
    op->r->stat_retries++;
    router_metrics_retry(op->r, CAIRN_ERR_NOT_LEADER);
    op_attempt(op);
    return true;
}

void router_op_tick(struct router *r)
{
    uint64_t now = router_now(r);
    struct rop *op = r->ops;
    while (op != NULL) {
        struct rop *next = op->next;
        if (op->dead) {
            op_unlink(op);
            free(op->rend);
            free(op);
        } else if (op->retry_at != 0 &&
                   (op->retry_at <= now ||
                    (op->view_rev != 0 &&
                     router_cache_revision(r->cache) > op->view_rev))) {
            /* due, or the view it waited for arrived (a split, a move's
             * switch): a backoff grown during the change would otherwise
             * hold it up to ROUTER_BACKOFF_MAX_MS after */
            op->retry_at = 0;
            op->view_rev = 0;
            op_attempt(op);
        } else if (now < op->deadline && abandon_stale(op, now)) {
            /* routed again, or finished */
        } else if (now >= op->deadline) {
            if (op->pr.conn)
                forget_leader(op); /* it did not answer in time */
            if (op->pr.conn && op->pr.sent && op->is_write)
                op_fail(op, CAIRN_ERR_TIMEOUT,
                        "write sent to node %llu not answered within %d "
                        "ms; outcome unknown",
                        (unsigned long long)op->node_id,
                        r->cfg.deadline_ms);
            else
                give_up(op);
        }
        op = next;
    }
    if (r->ops == NULL && r->ticking) {
        r->ticking = false;
        uv_timer_stop(&r->ticker);
    }
}

void router_op_free_all(struct router *r)
{
    /* first every parent's state, while its children are all alive */
    for (struct rop *op = r->ops; op != NULL; op = op->next)
        router_migrate_drop(op);
    while (r->ops != NULL) {
        struct rop *op = r->ops;
        if (op->pr.conn)
            router_pool_detach(&op->pr);
        order_leave(op);
        op_unlink(op);
        free(op->rend);
        free(op);
    }
}
