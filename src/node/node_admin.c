/*
 * node_admin.c - a node's admin requests (node_op.h): replicas created,
 * membership and leadership changes, epochs, fences and floors, splits,
 * catch-ups, metrics, drops.
 */
#include "node_op.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/limits.h"

/* ---- admin requests --------------------------------------------------- */

/* The replica may be closing (a drop, or the node stopping) when its admin
 * requests are answered: only a replica still in the registry is asked for
 * its leader. */
static void admin_done(void *arg, int status, const char *msg)
{
    op *o = arg;
    if (!o->c->closing) {
        replica *live = node_find_range(o->c->n, o->range_id);
        if (status == 0)
            rpc_reply_text(&o->c->out, o->id, msg, strlen(msg));
        else if (live == o->r)
            node_reply_status(o->c, o->id, status, o->r, msg);
        else
            node_reply_error(o->c, o->id, status, msg);
    }
    node_op_done(o);
}

static int meta_from_request(const rpc_request *q, range_meta *m)
{
    memset(m, 0, sizeof *m);
    m->range_id = q->range_id;
    m->table_id = q->table_id;
    m->engine = (engine_kind)q->engine;
    m->epoch = q->epoch;
    if (q->range_id == 0 || q->n_peers == 0 ||
        (m->engine != ENGINE_BTREE && m->engine != ENGINE_LSM))
        return CAIRN_ERR_INVALID;
    if (buf_append(&m->start, q->key.p, q->key.len) != 0 ||
        buf_append(&m->end, q->end.p, q->end.len) != 0)
        return CAIRN_ERR_NOMEM;
    m->n_peers = q->n_peers;
    for (unsigned i = 0; i < q->n_peers; i++) {
        if (q->peers[i].addr.len >= sizeof m->peers[i].addr ||
            q->peers[i].id == 0)
            return CAIRN_ERR_INVALID;
        m->peers[i].id = q->peers[i].id;
        memcpy(m->peers[i].addr, q->peers[i].addr.p, q->peers[i].addr.len);
        m->peers[i].addr[q->peers[i].addr.len] = '\0';
    }
    return 0;
}

/* A reply held until the Raft log is durable. */
typedef struct held_reply {
    conn *c;
    buf reply;
} held_reply;

static void durable_reply(void *arg, int status)
{
    held_reply *h = arg;
    conn *c = h->c;
    (void)status; /* a log write failure stops the node (raftlog.h) */
    if (!c->closing && buf_append(&c->out, h->reply.data, h->reply.len) == 0)
        node_conn_flush(c);
    buf_free(&h->reply);
    free(h);
    node_conn_unref(c);
}

/* Move the reply written to c->out since `mark` out, and send it once
 * everything the new replicas wrote to the Raft log is durable: "created"
 * then means a restart finds them with their bootstrap. Replies may pass
 * each other (they carry their request id). */
static void reply_when_durable(conn *c, size_t mark)
{
    held_reply *h = calloc(1, sizeof *h);
    if (h == NULL ||
        buf_append(&h->reply, c->out.data + mark, c->out.len - mark) != 0 ||
        node_when_durable(c->n, durable_reply, h) != 0) {
        if (h)
            buf_free(&h->reply);
        free(h);
        return; /* out of memory: answer at once, durable soon anyway */
    }
    c->out.len = mark;
    h->c = c;
    node_conn_ref(c);
}

void node_handle_create(conn *c, const rpc_request *q)
{
    range_meta m;
    char err[256] = "";
    size_t mark = c->out.len;
    int rc = meta_from_request(q, &m);
    if (rc == 0)
        rc = node_create_replica(c->n, &m, q->bootstrap, err);
    range_meta_free(&m);
    if (rc == 0) {
        rpc_reply_text(&c->out, q->id, "created", 7);
        reply_when_durable(c, mark);
    } else {
        node_reply_error(c, q->id, rc, err[0] ? err : NULL);
    }
}

/* The creations of one CREATE_REPLICAS request, decoded. */
typedef struct create_set {
    range_meta *ms;
    uint64_t *ids; /* range id of each creation, even an invalid one */
    int *statuses;
    char (*errs)[256];
    bool *boot;
    size_t n;
} create_set;

static void create_set_free(create_set *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        range_meta_free(&cs->ms[i]);
    free(cs->ms);
    free(cs->ids);
    free(cs->statuses);
    free(cs->errs);
    free(cs->boot);
}

static int create_set_decode(const rpc_request *q, create_set *cs)
{
    size_t cap = q->count ? q->count : 1;
    memset(cs, 0, sizeof *cs);
    cs->ms = calloc(cap, sizeof *cs->ms);
    cs->ids = calloc(cap, sizeof *cs->ids);
    cs->statuses = calloc(cap, sizeof *cs->statuses);
    cs->errs = calloc(cap, sizeof *cs->errs);
    cs->boot = calloc(cap, sizeof *cs->boot);
    if (!cs->ms || !cs->ids || !cs->statuses || !cs->errs || !cs->boot)
        return CAIRN_ERR_NOMEM;
    rpc_request one;
    size_t pos = 0;
    int rc;
    while (cs->n < cap && (rc = rpc_create_next(q, &pos, &one)) == 1) {
        size_t i = cs->n++;
        cs->ids[i] = one.range_id;
        cs->boot[i] = one.bootstrap;
        cs->statuses[i] = meta_from_request(&one, &cs->ms[i]);
        if (cs->statuses[i] == CAIRN_ERR_NOMEM)
            return CAIRN_ERR_NOMEM;
        if (cs->statuses[i] != 0)
            snprintf(cs->errs[i], sizeof cs->errs[i], "range %" PRIu64
                     ": invalid creation (range id 0, no peers, an unknown "
                     "engine or a bad peer)", one.range_id);
    }
    return 0; /* rpc_decode_request checked every creation */
}

/* Create the replicas whose boot flag is `boot` (the registry takes one
 * flag per call; a batch may mix them). */
static void create_some(node *n, create_set *cs, bool boot)
{
    size_t k = 0;
    range_meta *ms = malloc((cs->n ? cs->n : 1) * sizeof *ms);
    size_t *at = malloc((cs->n ? cs->n : 1) * sizeof *at);
    int *st = malloc((cs->n ? cs->n : 1) * sizeof *st);
    char (*errs)[256] = malloc((cs->n ? cs->n : 1) * sizeof *errs);
    if (ms && at && st && errs) {
        for (size_t i = 0; i < cs->n; i++)
            if (cs->statuses[i] == 0 && cs->boot[i] == boot) {
                ms[k] = cs->ms[i]; /* shallow: the registry copies */
                at[k++] = i;
            }
        int rc = k ? node_create_replicas(n, ms, k, boot, st, errs) : 0;
        for (size_t j = 0; j < k; j++) {
            cs->statuses[at[j]] = rc ? rc : st[j];
            memcpy(cs->errs[at[j]], errs[j], sizeof errs[j]);
        }
    } else {
        for (size_t i = 0; i < cs->n; i++)
            if (cs->statuses[i] == 0 && cs->boot[i] == boot)
                cs->statuses[i] = CAIRN_ERR_NOMEM;
    }
    free(ms);
    free(at);
    free(st);
    free(errs);
}

/* CREATE_REPLICAS: every creation of the frame at once (the registry
 * stores all their metas with one sync per index store), then one reply
 * listing those that did not succeed. */
void node_handle_create_many(conn *c, const rpc_request *q)
{
    create_set cs;
    int rc = create_set_decode(q, &cs);
    if (rc == 0) {
        create_some(c->n, &cs, true);
        create_some(c->n, &cs, false);
    }
    size_t mark = c->out.len;
    uint32_t failed = 0;
    if (rc == 0)
        rc = rpc_reply_create_begin(&c->out, q->id, &mark);
    for (size_t i = 0; rc == 0 && i < cs.n; i++) {
        if (cs.statuses[i] == 0)
            continue;
        rc = rpc_reply_create_add(&c->out, cs.ids[i], cs.statuses[i],
                                  cs.errs[i][0] ? cs.errs[i] : NULL);
        failed++;
    }
    if (rc == 0) {
        rpc_reply_create_end(&c->out, mark, failed);
        reply_when_durable(c, mark);
    } else {
        c->out.len = mark; /* drop a reply begun, answer the error */
        node_reply_error(c, q->id, rc, NULL);
    }
    create_set_free(&cs);
}

/* One range's metrics plus its digest. A failed append (out of memory)
 * must not trim a byte of an empty buffer, hence the checks. */
static int metrics_one(replica *r, buf *j)
{
    uint64_t digest = 0;
    int rc = replica_metrics(r, j);
    if (rc == 0)
        rc = replica_digest(r, &digest);
    if (rc == 0 && j->len > 0) {
        j->len--; /* reopen the object to add the digest */
        rc = buf_appendf(j, ",\"digest\":\"%016" PRIx64 "\"}", digest);
    }
    return rc;
}

typedef struct metrics_walk {
    buf *j;
    bool first;
    uint64_t size_age_ms; /* 0: read every range's size now */
    int rc;
} metrics_walk;

static void metrics_visit(void *arg, replica *r)
{
    metrics_walk *w = arg;
    if (w->rc == 0 && !w->first)
        w->rc = buf_append_str(w->j, ",");
    w->first = false;
    if (w->rc == 0)
        w->rc = replica_metrics_aged(r, w->j, w->size_age_ms);
}

/* The ranges with records in the node's Raft log: what a drop must
 * leave behind is visible without looking into the log's files. */
static int metrics_logged(node *n, buf *j)
{
    uint64_t *ids = NULL;
    size_t count = 0;
    int rc = raftlog_list_ranges(n->env.log, &ids, &count);
    if (rc == 0)
        rc = buf_append_str(j, ",\"logged_ranges\":[");
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = buf_appendf(j, "%s%" PRIu64, i ? "," : "", ids[i]);
    free(ids);
    return rc ? rc : buf_append_str(j, "]");
}

static int metrics_all(node *n, buf *j, uint64_t size_age_ms)
{
    metrics_walk w = {j, true, size_age_ms, 0};
    w.rc = buf_appendf(j, "{\"node\":%" PRIu64 ",\"address\":\"%s\","
                       "\"replication\":", n->opts->id, n->address);
    if (w.rc == 0)
        w.rc = rep_env_metrics(&n->env, j);
    if (w.rc == 0)
        w.rc = metrics_logged(n, j);
    if (w.rc == 0)
        w.rc = node_corrupt_json(n, j);
    if (w.rc == 0)
        w.rc = buf_append_str(j, ",\"ranges\":[");
    if (w.rc == 0)
        node_each_replica(n, metrics_visit, &w);
    return w.rc ? w.rc : buf_append_str(j, "]}");
}

void node_handle_metrics(conn *c, const rpc_request *q)
{
    buf j = BUF_INIT;
    int rc;
    if (q->range_id == RPC_METRICS_POLL) {
        rc = metrics_all(c->n, &j, RPC_METRICS_POLL_AGE_MS);
    } else if (q->range_id) {
        replica *r = node_find_range(c->n, q->range_id);
        rc = r ? metrics_one(r, &j) : CAIRN_ERR_RANGE_NOT_FOUND;
    } else {
        rc = metrics_all(c->n, &j, 0);
    }
    if (rc == 0)
        rpc_reply_text(&c->out, q->id, (const char *)j.data, j.len);
    else
        node_reply_error(c, q->id, rc, NULL);
    buf_free(&j);
}

/* The replica an admin request names, or NULL once RANGE_NOT_FOUND is
 * answered. */
static replica *admin_range(conn *c, const rpc_request *q)
{
    replica *r = node_find_range(c->n, q->range_id);
    if (r == NULL)
        node_reply_error(c, q->id, CAIRN_ERR_RANGE_NOT_FOUND, NULL);
    return r;
}

void node_handle_membership(conn *c, const rpc_request *q)
{
    replica *r = admin_range(c, q);
    if (r == NULL)
        return;
    op *o = node_op_new(c, q, r);
    char addr[RPC_ADDR_MAX + 1];
    if (o == NULL || q->addr.len > RPC_ADDR_MAX) {
        node_reply_error(c, q->id, o ? CAIRN_ERR_INVALID : CAIRN_ERR_NOMEM, NULL);
        if (o)
            node_op_done(o);
        return;
    }
    if (q->addr.len)
        memcpy(addr, q->addr.p, q->addr.len);
    addr[q->addr.len] = '\0';
    int rc;
    if (q->type == RPC_ADD_REPLICA || q->type == RPC_REMOVE_REPLICA)
        replica_epoch_floor(r, q->epoch);
    if (q->type == RPC_ADD_REPLICA)
        rc = replica_add(r, q->node_id, addr, admin_done, o);
    else if (q->type == RPC_REMOVE_REPLICA)
        rc = replica_remove(r, q->node_id, admin_done, o);
    else if (q->type == RPC_BUMP_EPOCH)
        rc = replica_bump_epoch(r, q->epoch, admin_done, o);
    else if (q->type == RPC_FENCE)
        rc = replica_fence(r, q->epoch, admin_done, o);
    else if (q->type == RPC_FLOOR)
        rc = replica_set_floor(r, q->epoch, &q->cond_seq, admin_done, o);
    else
        rc = replica_transfer(r, q->node_id, admin_done, o);
    if (rc != 0) {
        node_reply_status(c, q->id, rc, r, NULL);
        node_op_done(o);
    }
}

static void dropped(void *arg, int status)
{
    op *o = arg;
    if (!o->c->closing) {
        if (status == 0)
            rpc_reply_text(&o->c->out, o->id, "dropped", 7);
        else
            node_reply_error(o->c, o->id, status, NULL);
    }
    node_op_done(o);
}

/* Delete this node's replica of a range (after the leader removed it from
 * the group, or to clean up a replica that never joined). */
void node_handle_drop(conn *c, const rpc_request *q)
{
    op *o = node_op_new(c, q, NULL);
    if (o == NULL) {
        node_reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
        return;
    }
    int rc = node_drop_replica(c->n, q->range_id, dropped, o);
    if (rc != 0) {
        node_reply_error(c, q->id, rc,
                    rc == CAIRN_ERR_TRYAGAIN ? "being dropped" : NULL);
        node_op_done(o);
    }
}

/* Split a range (replica.h): on its leader, at the request's epoch. */
void node_handle_split(conn *c, const rpc_request *q)
{
    replica *r = admin_range(c, q);
    if (r == NULL)
        return;
    if (q->epoch != replica_meta(r)->epoch) {
        char msg[128];
        snprintf(msg, sizeof msg, "epoch %" PRIu64 ", range is at %" PRIu64,
                 q->epoch, replica_meta(r)->epoch);
        node_reply_error(c, q->id, CAIRN_ERR_STALE_EPOCH, msg);
        return;
    }
    op *o = node_op_new(c, q, r);
    if (o == NULL) {
        node_reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
        return;
    }
    int rc = replica_split(r, q->key.p, q->key.len, q->new_range,
                           admin_done, o);
    if (rc != 0) {
        node_reply_status(c, q->id, rc, r, NULL);
        node_op_done(o);
    }
}

/* Give a lagging follower a snapshot (replica.h), answered at once. */
void node_handle_catch_up(conn *c, const rpc_request *q)
{
    replica *r = admin_range(c, q);
    if (r == NULL)
        return;
    char msg[160];
    int rc = replica_catch_up(r, q->node_id, msg, sizeof msg);
    if (rc == 0)
        rpc_reply_text(&c->out, q->id, msg, strlen(msg));
    else
        node_reply_status(c, q->id, rc, r, msg);
}

