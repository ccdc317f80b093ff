/*
 * node_dispatch.c - a node's RPC requests: data requests go to their
 * replica after the routing checks, admin requests to the registry or the
 * replica; every answer is written to the connection's reply buffer
 * (node_int.h).
 */
#include "node_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/limits.h"

#define SCAN_LIMIT_DEFAULT 1000
#define SCAN_LIMIT_MAX 100000

/* A request waiting for its replica. */
typedef struct op {
    conn *c;
    uint64_t id;
    rpc_type type;
    replica *r;
    buf key, end;
    uint32_t limit;
    uint64_t range_id; /* drop, admin: the range of the request */
    uint64_t epoch;    /* reads: checked again when served */
    uint32_t copies, landed, skipped; /* COPY: outstanding, landed, not */
    uint64_t copy_bytes;              /* COPY: keys and values offered */
    bool issuing;            /* COPY: records still being queued */
    int copy_err;            /* COPY: the first failure */
} op;

/* ---- replies ---------------------------------------------------------- */

static void reply_error(conn *c, uint64_t id, int status, const char *msg)
{
    rpc_reply_error(&c->out, id, status, msg ? msg : cairn_err_message(status));
}

/* NOT_LEADER with the leader this replica knows; with none known (an
 * election is running, or no majority is reachable to elect one) the clear
 * answer is NOQUORUM. */
static void reply_not_leader(conn *c, uint64_t id, replica *r)
{
    uint64_t lid = 0;
    const char *addr = NULL;
    if (r)
        replica_leader(r, &lid, &addr);
    if (lid == 0) {
        rpc_reply_error(&c->out, id, CAIRN_ERR_NO_QUORUM,
                        "no leader: election in progress or no majority of "
                        "replicas reachable");
        return;
    }
    if (lid == c->n->opts->id) { /* still leader, but handing over */
        rpc_reply_error(&c->out, id, CAIRN_ERR_TRYAGAIN,
                        "leadership transfer in progress");
        return;
    }
    rpc_reply_not_leader(&c->out, id, lid, addr ? addr : "");
}

static void reply_status(conn *c, uint64_t id, int status, replica *r,
                         const char *msg)
{
    if (status == CAIRN_ERR_NOT_LEADER)
        reply_not_leader(c, id, r);
    else
        reply_error(c, id, status, msg);
}

/* ---- ops -------------------------------------------------------------- */

static op *op_new(conn *c, const rpc_request *q, replica *r)
{
    op *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->c = c;
    o->id = q->id;
    o->type = q->type;
    o->r = r;
    o->limit = q->limit;
    o->range_id = q->range_id;
    o->epoch = q->epoch;
    if (buf_append(&o->key, q->key.p, q->key.len) != 0 ||
        buf_append(&o->end, q->end.p, q->end.len) != 0) {
        buf_free(&o->key);
        free(o);
        return NULL;
    }
    node_conn_ref(c);
    return o;
}

/* Finish an op: flush its reply (if the connection is still open). */
static void op_done(op *o)
{
    conn *c = o->c;
    buf_free(&o->key);
    buf_free(&o->end);
    free(o);
    if (!c->closing)
        node_conn_flush(c);
    node_conn_unref(c);
}

/* ---- data requests ---------------------------------------------------- */

static void write_done(void *arg, int status, const seq *s)
{
    op *o = arg;
    if (!o->c->closing) {
        if (status == 0)
            rpc_reply_seq(&o->c->out, o->id, s);
        else
            reply_status(o->c, o->id, status, o->r, NULL);
    }
    op_done(o);
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
    reply_error(o->c, o->id, CAIRN_ERR_CORRUPT,
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
        reply_error(o->c, o->id, rc, NULL);
    buf_free(&rec);
}

static int cmp_bytes(const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return an < bn ? -1 : an > bn;
}

/* Clamp the requested [start, end) to the range's bounds. */
static void scan_bounds(const range_meta *m, op *o, buf *start, buf *end)
{
    const buf *rs = &m->start, *re = &m->end;
    if (cmp_bytes(o->key.data, o->key.len, rs->data, rs->len) < 0)
        buf_append(start, rs->data, rs->len);
    else
        buf_append(start, o->key.data, o->key.len);
    if (o->end.len == 0 ||
        (re->len && cmp_bytes(o->end.data, o->end.len, re->data, re->len) > 0))
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
            reply_error(o->c, o->id, rc, NULL);
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
            reply_error(o->c, o->id, status, "the range changed (split) "
                        "while the read waited");
        else if (status != 0)
            reply_status(o->c, o->id, status, o->r, NULL);
        else if (o->type == RPC_GET)
            serve_get(o);
        else
            serve_scan(o);
    }
    op_done(o);
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
        reply_error(c, q->id,
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
        reply_error(c, q->id, q->epoch < epoch ? CAIRN_ERR_STALE_EPOCH
                                               : CAIRN_ERR_TRYAGAIN, msg);
        return NULL;
    }
    if (q->type == RPC_SCAN || q->type == RPC_SCAN_RECORDS ||
        q->type == RPC_COPY) /* no one key to check */
        return r;
    int rc = replica_check_key(r, q->key.p, q->key.len);
    if (rc != 0) {
        reply_error(c, q->id, rc, NULL);
        return NULL;
    }
    return r;
}

static void handle_data(conn *c, const rpc_request *q)
{
    replica *r = route(c, q);
    if (r == NULL)
        return;
    op *o = op_new(c, q, r);
    if (o == NULL) {
        reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
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
        reply_status(c, q->id, rc, r, NULL);
        op_done(o);
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
            reply_status(o->c, o->id, o->copy_err, o->r, NULL);
        else
            rpc_reply_text(&o->c->out, o->id, msg, strlen(msg));
    }
    op_done(o);
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

static void handle_copy(conn *c, const rpc_request *q)
{
    replica *r = route(c, q);
    op *o = r ? op_new(c, q, r) : NULL;
    if (r && o == NULL)
        reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
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
            reply_status(o->c, o->id, status, o->r, msg);
        else
            reply_error(o->c, o->id, status, msg);
    }
    op_done(o);
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

static void handle_create(conn *c, const rpc_request *q)
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
        reply_error(c, q->id, rc, err[0] ? err : NULL);
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
static void handle_create_many(conn *c, const rpc_request *q)
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
        reply_error(c, q->id, rc, NULL);
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

static void handle_metrics(conn *c, const rpc_request *q)
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
        reply_error(c, q->id, rc, NULL);
    buf_free(&j);
}

/* The replica an admin request names, or NULL once RANGE_NOT_FOUND is
 * answered. */
static replica *admin_range(conn *c, const rpc_request *q)
{
    replica *r = node_find_range(c->n, q->range_id);
    if (r == NULL)
        reply_error(c, q->id, CAIRN_ERR_RANGE_NOT_FOUND, NULL);
    return r;
}

static void handle_membership(conn *c, const rpc_request *q)
{
    replica *r = admin_range(c, q);
    if (r == NULL)
        return;
    op *o = op_new(c, q, r);
    char addr[RPC_ADDR_MAX + 1];
    if (o == NULL || q->addr.len > RPC_ADDR_MAX) {
        reply_error(c, q->id, o ? CAIRN_ERR_INVALID : CAIRN_ERR_NOMEM, NULL);
        if (o)
            op_done(o);
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
        reply_status(c, q->id, rc, r, NULL);
        op_done(o);
    }
}

static void dropped(void *arg, int status)
{
    op *o = arg;
    if (!o->c->closing) {
        if (status == 0)
            rpc_reply_text(&o->c->out, o->id, "dropped", 7);
        else
            reply_error(o->c, o->id, status, NULL);
    }
    op_done(o);
}

/* Delete this node's replica of a range (after the leader removed it from
 * the group, or to clean up a replica that never joined). */
static void handle_drop(conn *c, const rpc_request *q)
{
    op *o = op_new(c, q, NULL);
    if (o == NULL) {
        reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
        return;
    }
    int rc = node_drop_replica(c->n, q->range_id, dropped, o);
    if (rc != 0) {
        reply_error(c, q->id, rc,
                    rc == CAIRN_ERR_TRYAGAIN ? "being dropped" : NULL);
        op_done(o);
    }
}

/* Split a range (replica.h): on its leader, at the request's epoch. */
static void handle_split(conn *c, const rpc_request *q)
{
    replica *r = admin_range(c, q);
    if (r == NULL)
        return;
    if (q->epoch != replica_meta(r)->epoch) {
        char msg[128];
        snprintf(msg, sizeof msg, "epoch %" PRIu64 ", range is at %" PRIu64,
                 q->epoch, replica_meta(r)->epoch);
        reply_error(c, q->id, CAIRN_ERR_STALE_EPOCH, msg);
        return;
    }
    op *o = op_new(c, q, r);
    if (o == NULL) {
        reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
        return;
    }
    int rc = replica_split(r, q->key.p, q->key.len, q->new_range,
                           admin_done, o);
    if (rc != 0) {
        reply_status(c, q->id, rc, r, NULL);
        op_done(o);
    }
}

/* Give a lagging follower a snapshot (replica.h), answered at once. */
static void handle_catch_up(conn *c, const rpc_request *q)
{
    replica *r = admin_range(c, q);
    if (r == NULL)
        return;
    char msg[160];
    int rc = replica_catch_up(r, q->node_id, msg, sizeof msg);
    if (rc == 0)
        rpc_reply_text(&c->out, q->id, msg, strlen(msg));
    else
        reply_status(c, q->id, rc, r, msg);
}

void node_dispatch(conn *c, const rpc_request *q)
{
    if ((unsigned)q->type < RPC_TYPE_MAX_)
        c->n->rpc_in[q->type]++;
    switch (q->type) {
    case RPC_PING:
        rpc_reply_ok(&c->out, q->id);
        break;
    case RPC_PUT:
    case RPC_DEL:
    case RPC_GET:
    case RPC_SCAN:
    case RPC_SCAN_RECORDS:
        handle_data(c, q);
        break;
    case RPC_COPY:
        handle_copy(c, q);
        break;
    case RPC_CREATE_REPLICA:
        handle_create(c, q);
        break;
    case RPC_CREATE_REPLICAS:
        handle_create_many(c, q);
        break;
    case RPC_METRICS:
        handle_metrics(c, q);
        break;
    case RPC_DROP_REPLICA:
        handle_drop(c, q);
        break;
    case RPC_SPLIT_RANGE:
        handle_split(c, q);
        break;
    case RPC_CATCH_UP:
        handle_catch_up(c, q);
        break;
    default:
        handle_membership(c, q);
        break;
    }
}
