/*
 * replica.c - a range replica: open and close, client writes and reads,
 * the leader's identity (replica.h; the other files: replica_int.h).
 */
#include "replica_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/grow.h"
#include "../common/limits.h"

/* ---- small helpers ---------------------------------------------------- */

static int wvec_push(wvec *v, const waiter *w)
{
    if (grow_array((void **)&v->v, v->n, &v->cap, sizeof *v->v, 16) != 0)
        return CAIRN_ERR_NOMEM;
    v->v[v->n++] = *w;
    return 0;
}

static void wvec_swap(wvec *a, wvec *b)
{
    wvec t = *a;
    *a = *b;
    *b = t;
}

static void flush_cb(uv_check_t *h);

void replica_schedule_flush(replica *r)
{
    if (!r->closing && !uv_is_active((uv_handle_t *)&r->flush))
        uv_check_start(&r->flush, flush_cb);
}

/* The callbacks may queue new requests on the replica, so work on a
 * private copy. */
void replica_fail_waiters(wvec *v, int status)
{
    wvec mine = *v;
    memset(v, 0, sizeof *v);
    for (size_t i = 0; i < mine.n; i++) {
        if (mine.v[i].wcb)
            mine.v[i].wcb(mine.v[i].arg, status, NULL);
        else
            mine.v[i].rcb(mine.v[i].arg, status);
    }
    free(mine.v);
}

int replica_map_raft_err(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOTLEADER:
        return CAIRN_ERR_NOT_LEADER;
    case RAFT_LEADERSHIPLOST:
        return CAIRN_ERR_TIMEOUT;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return CAIRN_ERR_SHUTDOWN;
    case RAFT_NOMEM:
        return CAIRN_ERR_NOMEM;
    case RAFT_BUSY:
    case RAFT_CANTCHANGE:
        return CAIRN_ERR_BUSY;
    case RAFT_BADID:
    case RAFT_NOTFOUND:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
        return CAIRN_ERR_INVALID;
    default:
        return CAIRN_ERR_IO;
    }
}

/* ---- proposals -------------------------------------------------------- */

proposal *replica_find_proposal(replica *r, uint64_t nonce, uint64_t id)
{
    if (nonce != r->env->nonce)
        return NULL;
    for (proposal *x = r->props; x; x = x->next)
        if (x->id == id)
            return x;
    return NULL;
}

void replica_prop_unlink(replica *r, proposal *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        r->props = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

void replica_prop_free(proposal *p)
{
    free(p->w);
    free(p->res);
    free(p);
}

/* The answer to a client whose entry libraft failed after accepting it.
 * raft_apply returned 0, so the entry is in this leader's log and may
 * already be on followers: whatever libraft reports (leadership lost, or
 * this leader's own disk append failing - libraft then fails the entry
 * here while followers may still commit it), the outcome is unknown, which
 * is TIMEOUT, never an error that would let the client assume nothing
 * happened (ARCHITECTURE.md, "Write path"). A replica closing answers
 * SHUTDOWN, which the router also reports as an unknown outcome for a
 * write. Answers that prove nothing was proposed (NOT_LEADER, BUSY, ...)
 * come only from raft_apply itself, in propose(). */
static int applied_status(int status)
{
    if (status == 0)
        return 0;
    if (status == RAFT_SHUTDOWN || status == RAFT_CANCELED)
        return CAIRN_ERR_SHUTDOWN;
    return CAIRN_ERR_TIMEOUT;
}

void replica_applied_cb(struct raft_apply *req, int status, void *result)
{
    proposal *p = req->data;
    replica *r = p->r;
    int st = applied_status(status);
    (void)result;
    replica_prop_unlink(r, p);
    if (p->admin) {
        membership_epoch_done(p, st);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (st != 0)
            p->w[i].wcb(p->w[i].arg, st, NULL);
        else
            p->w[i].wcb(p->w[i].arg, p->res[i].status, &p->res[i].seq);
    }
    replica_prop_free(p);
}

/* Encode writes [from, to) of `q` (keys and values in `stage`) as one
 * entry and propose it. */
static void propose(replica *r, const wvec *q, const buf *stage, size_t from,
                    size_t to, size_t bytes)
{
    proposal *p = calloc(1, sizeof *p);
    size_t n = to - from;
    buf e = BUF_INIT;
    int rc = CAIRN_ERR_NOMEM;
    if (p)
        p->w = malloc(n * sizeof *p->w), p->res = calloc(n, sizeof *p->res);
    if (p && p->w && p->res && buf_reserve(&e, bytes) == 0) {
        p->r = r;
        p->n = n;
        p->id = ++r->next_prop;
        rc = entry_put_header(&e, r->env->nonce, p->id, (uint32_t)n);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const waiter *w = &q->v[from + i];
            entry_op op = {.kind = w->kind, .cond = w->cond,
                           .cond_seq = w->cond_seq,
                           /* a copied record keeps its own */
                           .seq = w->cond == ENTRY_COND_IFNEWER
                                      ? w->cond_seq
                                      : seq_next(r->env->clock),
                           .key = stage->data + w->off,
                           .key_len = w->key_len,
                           .value = stage->data + w->off + w->key_len,
                           .value_len = w->value_len};
            p->w[i] = *w;
            rc = entry_put_op(&e, &op);
        }
    }
    if (rc == 0)
        rc = entry_pad(&e);
    struct raft_buffer rb = {NULL, e.len};
    if (rc == 0 && (rb.base = raft_malloc(e.len)) == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0) {
        memcpy(rb.base, e.data, e.len);
        p->req.data = p;
        p->next = r->props;
        if (r->props)
            r->props->prev = p;
        r->props = p;
        int rv = raft_apply(&r->raft, &p->req, &rb, 1, replica_applied_cb);
        if (rv != 0) {
            raft_free(rb.base);
            replica_prop_unlink(r, p);
            rc = replica_map_raft_err(rv);
        } else {
            r->n_entries++;
            r->n_writes += n;
            metrics_note_proposal(r, raft_last_index(&r->raft));
        }
    }
    buf_free(&e);
    if (rc != 0) {
        for (size_t i = from; i < to; i++)
            q->v[i].wcb(q->v[i].arg, rc, NULL);
        if (p)
            replica_prop_free(p);
    }
}

/* Pack the queued writes into entries of at most entry_max bytes each.
 * Callbacks may queue new writes: they go to a fresh queue. */
static void propose_writes(replica *r)
{
    wvec q = r->writes;
    buf stage = r->stage;
    size_t from = 0, bytes = ENTRY_HEADER_LEN;
    memset(&r->writes, 0, sizeof r->writes);
    memset(&r->stage, 0, sizeof r->stage);
    for (size_t i = 0; i < q.n; i++) {
        size_t sz = entry_op_size(q.v[i].key_len, q.v[i].value_len);
        if (i > from && bytes + sz > r->env->opts.entry_max) {
            propose(r, &q, &stage, from, i, bytes);
            from = i;
            bytes = ENTRY_HEADER_LEN;
        }
        bytes += sz;
    }
    if (q.n > from)
        propose(r, &q, &stage, from, q.n, bytes);
    free(q.v);
    buf_free(&stage);
}

/* ---- barriers (reads, and a new leader's first entry) ---------------- */

static void barrier_cb(struct raft_barrier *req, int status)
{
    replica *r = req->data;
    r->barrier_busy = false;
    r->n_barriers++;
    fsm_flush(r); /* the reads below must see every applied entry */
    if (status == 0 && r->raft.state == RAFT_LEADER &&
        r->raft.current_term == r->barrier_term) {
        r->ready_term = r->barrier_term;
        wvec mine = r->reading;
        memset(&r->reading, 0, sizeof r->reading);
        r->n_reads += mine.n;
        for (size_t i = 0; i < mine.n; i++)
            mine.v[i].rcb(mine.v[i].arg, 0);
        free(mine.v);
    } else {
        replica_fail_waiters(&r->reading, r->closing ? CAIRN_ERR_SHUTDOWN
                                                     : CAIRN_ERR_NOT_LEADER);
    }
    if (r->reads.n || r->writes.n)
        replica_schedule_flush(r);
}

static void start_barrier(replica *r)
{
    wvec_swap(&r->reads, &r->reading);
    r->barrier.data = r;
    r->barrier_term = r->raft.current_term;
    int rv = raft_barrier(&r->raft, &r->barrier, barrier_cb);
    if (rv != 0) {
        int rc = replica_map_raft_err(rv);
        replica_fail_waiters(&r->reading, rc == CAIRN_ERR_TIMEOUT
                                              ? CAIRN_ERR_NOT_LEADER
                                              : rc);
        return;
    }
    r->barrier_busy = true;
    metrics_note_proposal(r, raft_last_index(&r->raft));
}

static void flush_cb(uv_check_t *h)
{
    replica *r = h->data;
    uv_check_stop(h);
    fsm_flush(r);
    if (r->closing)
        return;
    if (r->raft.state != RAFT_LEADER) {
        replica_fail_waiters(&r->writes, CAIRN_ERR_NOT_LEADER);
        buf_reset(&r->stage);
        replica_fail_waiters(&r->reads, CAIRN_ERR_NOT_LEADER);
        readindex_check(r);
        return;
    }
    bool ready = r->ready_term == r->raft.current_term;
    /* not ready: this leader's first entry of its term (a barrier) has not
     * committed - start one: waiting reads and writes, and a split
     * (split.c), need it. Once ready, reads go by ReadIndex rounds
     * (readindex.c): no log write. */
    if (!r->barrier_busy && !ready)
        start_barrier(r);
    readindex_check(r);
    if (ready && r->reads.n && !r->ri_busy)
        readindex_start(r);
    if (r->writes.n && ready)
        propose_writes(r);
}

/* ---- public: requests ------------------------------------------------- */

void replica_leader(replica *r, uint64_t *id, const char **address)
{
    raft_id lid = 0;
    const char *addr = NULL;
    raft_leader(&r->raft, &lid, &addr);
    *id = lid;
    *address = addr;
}

int replica_check_key(const replica *r, const void *key, size_t len)
{
    if (len < CAIRN_KEY_MIN)
        return CAIRN_ERR_KEY_EMPTY;
    if (len > CAIRN_KEY_MAX)
        return CAIRN_ERR_KEY_TOOBIG;
    if (!range_meta_contains(&r->meta, key, len))
        return CAIRN_ERR_KEY_OUT_OF_RANGE;
    return 0;
}

int replica_write(replica *r, int kind, const void *key, size_t key_len,
                  const void *value, size_t value_len, int cond,
                  const seq *cond_seq, rep_write_cb cb, void *arg)
{
    if (r->closing)
        return CAIRN_ERR_SHUTDOWN;
    if (r->raft.state != RAFT_LEADER || r->handing_over)
        return CAIRN_ERR_NOT_LEADER;
    if (value_len > CAIRN_VALUE_MAX)
        return CAIRN_ERR_TOOBIG;
    if (r->meta.flags & RANGE_META_FROZEN) /* fenced: the keys moved */
        return CAIRN_ERR_KEY_OUT_OF_RANGE;
    if (diskguard_full(r->env->disk))
        return CAIRN_ERR_NOSPACE; /* deletes too: a tombstone is data */
    if (kind == ENTRY_OP_PUT) {
        /* The store's size as last read plus what was accepted since: an
         * upper bound (an overwrite may not grow the range). Only when it
         * passes the cap is the store asked again (at most once a second:
         * a size is a scan for RocksDB), so a busy range far from the cap
         * never pays for it. */
        if (r->size_checked_ms == 0 ||
            r->size_bytes > r->env->opts.snapshot_cap)
            metrics_refresh_size(r);
        if (r->size_bytes > r->env->opts.snapshot_cap)
            return CAIRN_ERR_SNAPSHOT_TOOBIG;
        r->size_bytes += key_len + value_len;
    }
    waiter w = {.wcb = cb, .arg = arg, .kind = (uint8_t)kind,
                .cond = (uint8_t)cond, .off = r->stage.len,
                .key_len = key_len, .value_len = value_len};
    w.cond_seq = cond_seq ? *cond_seq : seq_zero();
    if (buf_append(&r->stage, key, key_len) != 0 ||
        buf_append(&r->stage, value, value_len) != 0 ||
        wvec_push(&r->writes, &w) != 0) {
        r->stage.len = w.off;
        return CAIRN_ERR_NOMEM;
    }
    quiesce_touch(r);
    replica_schedule_flush(r);
    return 0;
}

void replica_note_copy(replica *r, uint64_t records, uint64_t bytes)
{
    r->n_copied += records;
    r->copy_bytes += bytes;
}

void replica_note_load(replica *r, const void *key, size_t len)
{
    if (r->raft.state == RAFT_LEADER && len > 0)
        load_note(r, key, len);
}

int replica_read(replica *r, rep_read_cb cb, void *arg)
{
    if (r->closing)
        return CAIRN_ERR_SHUTDOWN;
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    waiter w = {.rcb = cb, .arg = arg};
    int rc = wvec_push(&r->reads, &w);
    if (rc == 0) {
        quiesce_touch(r);
        replica_schedule_flush(r);
    }
    return rc;
}

const range_meta *replica_meta(const replica *r) { return &r->meta; }
engine *replica_engine(const replica *r) { return r->eng; }

/* ---- open and close --------------------------------------------------- */

static int copy_meta(range_meta *dst, const range_meta *src)
{
    *dst = *src;
    memset(&dst->start, 0, sizeof dst->start);
    memset(&dst->end, 0, sizeof dst->end);
    if (buf_append(&dst->start, src->start.data, src->start.len) != 0 ||
        buf_append(&dst->end, src->end.data, src->end.len) != 0)
        return CAIRN_ERR_NOMEM;
    return 0;
}

static void free_replica(replica *r)
{
    range_meta_free(&r->meta);
    entry_applier_free(r->applier);
    rio_free(r->io);
    free(r->writes.v);
    free(r->reads.v);
    free(r->reading.v);
    free(r->ri_reading.v);
    free(r->lag);
    load_forget(r);
    buf_free(&r->stage);
    free(r);
}

static void flush_closed(uv_handle_t *h)
{
    replica *r = h->data;
    void (*cb)(void *) = r->close_cb;
    void *arg = r->close_arg;
    free_replica(r);
    if (cb)
        cb(arg);
}

/* libraft has closed (its I/O had no operation left): nothing of libraft
 * will call back any more. */
static void raft_closed(struct raft *raft)
{
    replica *r = raft->data;
    /* Whatever libraft did not answer cannot be answered any more. */
    while (r->props) {
        proposal *p = r->props;
        replica_prop_unlink(r, p);
        if (p->admin) {
            membership_epoch_done(p, CAIRN_ERR_SHUTDOWN);
            continue;
        }
        for (size_t i = 0; i < p->n; i++)
            p->w[i].wcb(p->w[i].arg, CAIRN_ERR_SHUTDOWN, NULL);
        replica_prop_free(p);
    }
    replica_fail_waiters(&r->reading, CAIRN_ERR_SHUTDOWN);
    readindex_fail(r, CAIRN_ERR_SHUTDOWN);
    /* libraft answers the changes it holds when it closes; whatever is
     * left (nothing, unless libraft dropped one) is answered here, since
     * libraft no longer references it. */
    while (r->admins)
        admin_finish(r->admins, CAIRN_ERR_SHUTDOWN, "replica closed");
    fsm_flush(r);
    uv_close((uv_handle_t *)&r->flush, flush_closed);
}

void replica_close(replica *r, void (*cb)(void *arg), void *arg)
{
    r->closing = true;
    r->close_cb = cb;
    r->close_arg = arg;
    uv_check_stop(&r->flush);
    replica_fail_waiters(&r->writes, CAIRN_ERR_SHUTDOWN);
    replica_fail_waiters(&r->reads, CAIRN_ERR_SHUTDOWN);
    membership_stop_polls(r);
    if (r->raft_inited) {
        raft_close(&r->raft, raft_closed);
    } else {
        uv_close((uv_handle_t *)&r->flush, flush_closed);
    }
}

#define REPLICA_SNAPSHOT_TIMEOUT_MS 8000

static int set_err(char *err, int rc, const char *fmt, const char *detail)
{
    if (err)
        snprintf(err, 256, fmt, detail);
    return rc;
}

static int init_raft(replica *r, char *err)
{
    rep_env *env = r->env;
    rio_hooks hooks = {.after_tick = quiesce_after_tick,
                       .woke = quiesce_woke,
                       .control = readindex_control};
    fsm_hooks(&hooks);
    r->io = rio_new(env, r->range_id, &hooks, r);
    if (r->io == NULL)
        return set_err(err, CAIRN_ERR_NOMEM, "%s", "out of memory");
    fsm_init(r);
    int rv = raft_init(&r->raft, rio_io(r->io), &r->fsm, env->node_id,
                       env->address);
    if (rv != 0)
        return set_err(err, CAIRN_ERR_IO, "raft: %.200s",
                       raft_errmsg(&r->raft));
    r->raft_inited = true;
    r->raft.data = r;
    raft_set_election_timeout(&r->raft, env->opts.election_ms);
    raft_set_heartbeat_timeout(&r->raft, env->opts.heartbeat_ms);
    raft_set_snapshot_threshold(&r->raft, env->opts.snapshot_threshold);
    raft_set_snapshot_trailing(&r->raft, env->opts.snapshot_trailing);
    /* A snapshot the follower dropped (its disk full, its link cut) is
     * sent again only after this; libraft's 30 s default held a follower
     * back that long once its disk had room again. Ranges are split at
     * 64 MiB, which sends and installs well within it. */
    raft_set_install_snapshot_timeout(&r->raft, REPLICA_SNAPSHOT_TIMEOUT_MS);
    raft_set_pre_vote(&r->raft, true);
    return 0;
}

static int bootstrap(replica *r, char *err)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rv = 0;
    for (unsigned i = 0; rv == 0 && i < r->meta.n_peers; i++)
        rv = raft_configuration_add(&conf, r->meta.peers[i].id,
                                    r->meta.peers[i].addr, RAFT_VOTER);
    if (rv == 0)
        rv = raft_bootstrap(&r->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) /* CANTBOOTSTRAP: has state */
        return set_err(err, rv == RAFT_CORRUPT ? CAIRN_ERR_CORRUPT
                                               : CAIRN_ERR_IO,
                       "bootstrap: %.200s",
                       raft_errmsg(&r->raft)[0] ? raft_errmsg(&r->raft)
                                                : raft_strerror(rv));
    return 0;
}

int replica_open(rep_env *env, engine *eng, const range_meta *meta,
                 bool boot, replica **out, char *err)
{
    replica *r = calloc(1, sizeof *r);
    if (r == NULL || copy_meta(&r->meta, meta) != 0) {
        if (r)
            free_replica(r);
        return set_err(err, CAIRN_ERR_NOMEM, "%s", "out of memory");
    }
    r->env = env;
    r->eng = eng;
    r->range_id = meta->range_id;
    /* a move's destination: its writes stay above what it copies, also
     * after a restart whose log no longer holds the floor's entry */
    if (meta->flags & RANGE_META_FLOOR)
        seq_observe(env->clock, &meta->floor);
    int rc = engine_applied_index(eng, NULL, r->range_id, &r->applied);
    if (rc == 0 && (r->applier = fsm_new_applier(r, r->applied)) == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc != 0) {
        free_replica(r);
        return set_err(err, rc, "%s", cairn_err_message(rc));
    }
    uv_check_init(env->loop, &r->flush);
    r->flush.data = r;
    rc = init_raft(r, err);
    if (rc == 0 && boot)
        rc = bootstrap(r, err);
    if (rc == 0 && raft_start(&r->raft) != 0)
        rc = set_err(err, CAIRN_ERR_CORRUPT, "raft start: %.200s",
                     raft_errmsg(&r->raft));
    if (rc != 0) {
        replica_close(r, NULL, NULL); /* frees it asynchronously */
        return rc;
    }
    /* A new group's first voter campaigns at its first tick rather than
     * after a whole election timeout: a table's ranges get leaders in one
     * round, spread over the nodes as the placement orders their peers. */
    if (boot && r->meta.n_peers > 0 && r->meta.peers[0].id == env->node_id)
        rio_expire_election(r->io, true);
    *out = r;
    rep_env_deliver_early(env, meta->range_id);
    return 0;
}
