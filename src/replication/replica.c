/*
 * replica.c - a range replica: libraft + the index-store state machine
 * (replica.h).
 */
#include "replica.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <raft.h>
#include <raft/uv.h>

#include "../common/err.h"
#include "../common/grow.h"
#include "../common/limits.h"

#define LAG_RING 1024 /* (index, time) of recent proposals, for lag seconds */

typedef struct waiter {
    rep_write_cb wcb;
    rep_read_cb rcb;
    void *arg;
    /* queued write: op fields, key and value at offsets into r->stage */
    uint8_t kind, cond;
    seq cond_seq;
    size_t off, key_len, value_len;
} waiter;

typedef struct wvec {
    waiter *v;
    size_t n, cap;
} wvec;

typedef struct admin_req {
    struct raft_change change;
    struct raft_transfer transfer;
    replica *r;
    uint64_t id;
    rep_admin_cb cb;
    void *arg;
    const char *what;  /* the change, for the reply */
    bool has_poll;     /* `poll` is initialised: closed before the free */
    uv_timer_t poll;   /* add: waits for the standby to catch up */
    uint64_t deadline_ms;
    struct admin_req *next, *prev; /* the replica's pending admin requests */
} admin_req;

/* A proposed entry: client writes (n waiters), or the epoch entry of a
 * membership change (`admin`). */
typedef struct proposal {
    struct raft_apply req;
    replica *r;
    uint64_t id;
    size_t n;
    waiter *w;
    entry_result *res;
    admin_req *admin;
    uint64_t epoch; /* the epoch entry's result */
    struct proposal *next, *prev;
} proposal;

struct replica {
    rep_env *env;
    range_meta meta;
    uint64_t range_id;
    engine *eng;
    entry_applier *applier; /* committed entries not yet written */
    engine_view *snap_view;  /* pinned by a snapshot being encoded */
    uint64_t snap_index;
    int async_jobs;     /* snapshot encodings running on worker threads */
    bool raft_gone;     /* libraft closed: jobs must not call back into it */
    unsigned appends;   /* raft_uv disk appends in flight */
    int (*uv_append)(struct raft_io *, struct raft_io_append *,
                     const struct raft_entry[], unsigned, raft_io_append_cb);
    bool free_pending;  /* freed when the last job ends */
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    bool raft_inited, io_inited;
    char dir[PATH_MAX];
    uint64_t applied; /* the index store's applied index for this range */

    uv_check_t flush; /* group commit: runs once per loop iteration */
    wvec writes;      /* queued writes */
    buf stage;        /* their keys and values */
    wvec reads;       /* queued reads */
    wvec reading;     /* reads waiting for the barrier in flight */
    struct raft_barrier barrier;
    bool barrier_busy;
    raft_term barrier_term;
    raft_term ready_term; /* a barrier of this term has committed */
    proposal *props;      /* proposals in flight */
    admin_req *admins;    /* admin requests not answered yet */
    uint64_t next_prop;

    uint64_t size_bytes, size_keys;
    uint64_t size_checked_ms;
    struct { raft_index index; uint64_t ms; } lag[LAG_RING];
    unsigned lag_pos;
    uint64_t n_writes, n_entries, n_reads, n_barriers, n_snapshots;

    bool closing;
    void (*close_cb)(void *);
    void *close_arg;
};

void rep_options_default(rep_options *o)
{
    o->election_ms = 1000;
    o->heartbeat_ms = 100;
    o->snapshot_threshold = 4096;
    o->snapshot_trailing = 1024;
    o->segment_size = 8u << 20;
    o->snapshot_cap = 64u << 20;
    o->entry_max = 1u << 20;
}

static uint64_t now_ms(replica *r) { return uv_now(r->env->loop); }

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

static void schedule_flush(replica *r)
{
    if (!r->closing && !uv_is_active((uv_handle_t *)&r->flush))
        uv_check_start(&r->flush, flush_cb);
}

/* Fail every waiter of `v` with `status` and empty it. The callbacks may
 * queue new requests on the replica, so work on a private copy. */
static void fail_waiters(wvec *v, int status)
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

static int map_raft_err(int rv)
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

static void lag_note(replica *r, raft_index index)
{
    r->lag[r->lag_pos % LAG_RING].index = index;
    r->lag[r->lag_pos % LAG_RING].ms = now_ms(r);
    r->lag_pos++;
}

/* ---- the state machine ------------------------------------------------ */

static proposal *find_proposal(replica *r, uint64_t nonce, uint64_t id)
{
    if (nonce != r->env->nonce)
        return NULL;
    for (proposal *x = r->props; x; x = x->next)
        if (x->id == id)
            return x;
    return NULL;
}

/* Entries at or below the stored applied index were applied before a
 * restart: only their sequencers are observed again (seq.h rule 4). */
static void observe_only(replica *r, const void *p, size_t len)
{
    entry_reader er;
    entry_op op;
    if (entry_parse(p, len, &er) != 0)
        return;
    while (entry_next(&er, &op) == 1)
        seq_observe(r->env->clock, &op.seq);
}

/* The index store refused a committed entry: continuing would let this
 * replica diverge. Stop; a restart replays from the store's applied index. */
static void apply_failed(replica *r, uint64_t index, int rc)
{
    fprintf(stderr,
            "cairn node: range %llu: applying entries up to %llu failed: %s;"
            " stopping\n",
            (unsigned long long)r->range_id, (unsigned long long)index,
            cairn_err_message(rc));
    abort();
}

/* Write the applied-but-pending entries: before anything reads the store
 * (reads, snapshots, metrics) and once per loop iteration. */
static void apply_flush(replica *r)
{
    int rc = entry_applier_flush(r->applier);
    if (rc != 0)
        apply_failed(r, r->applied, rc);
}

/* An epoch entry: the range's epoch goes up by one, in the meta blob
 * written with the applied index. Every replica applies the same entries
 * to the same state, so all agree on the epoch (DESIGN.md: a membership
 * change bumps the epoch). */
static void apply_epoch(replica *r, uint64_t index, uint64_t nonce,
                        uint64_t id)
{
    buf blob = BUF_INIT;
    r->meta.epoch++;
    int rc = range_meta_encode(&r->meta, &blob);
    if (rc == 0)
        rc = entry_applier_add_meta(r->applier, index, blob.data, blob.len);
    buf_free(&blob);
    if (rc != 0)
        apply_failed(r, index, rc);
    proposal *prop = find_proposal(r, nonce, id);
    if (prop)
        prop->epoch = r->meta.epoch;
    schedule_flush(r);
    r->applied = index;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *b,
                     void **result)
{
    replica *r = fsm->data;
    uint64_t index = r->raft.last_applied + 1;
    uint64_t nonce, id;
    *result = NULL;
    if (index <= r->applied) {
        observe_only(r, b->base, b->len);
        return 0;
    }
    if (entry_is_epoch(b->base, b->len, &nonce, &id)) {
        apply_epoch(r, index, nonce, id);
        return 0;
    }
    entry_reader er;
    proposal *prop = entry_parse(b->base, b->len, &er) == 0
                         ? find_proposal(r, er.nonce, er.proposal)
                         : NULL;
    int rc = entry_applier_add(r->applier, index, b->base, b->len,
                               prop ? prop->res : NULL, r->env->clock);
    if (rc != 0)
        apply_failed(r, index, rc);
    schedule_flush(r); /* the batch is written once per loop iteration */
    r->applied = index;
    return 0;
}

/* Snapshots use libraft's version-3 state machine: fsm_snapshot runs on
 * the loop and pins a view of the store at exactly libraft's last applied
 * index; fsm_snapshot_async encodes it on a libuv worker thread (encoding a
 * range near the cap on the loop would stall every range of the node);
 * fsm_snapshot_finalize, back on the loop, frees it all. Engine reads from
 * another thread are allowed while the loop writes (engine.h). */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    replica *r = fsm->data;
    /* During replay the store can be ahead of libraft; a snapshot labelled
     * with libraft's index must hold exactly that state. Try later. */
    if (r->applied > r->raft.last_applied || r->snap_view != NULL)
        return RAFT_BUSY;
    apply_flush(r);
    /* the snapshot lets libraft drop the log below it: the store must hold
     * everything up to here durably first */
    if (engine_sync(r->eng) != 0 ||
        engine_view_open(r->eng, &r->snap_view) != 0)
        return RAFT_IOERR;
    r->snap_index = r->raft.last_applied;
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_snapshot_async(struct raft_fsm *fsm,
                              struct raft_buffer *bufs[], unsigned *n_bufs)
{
    replica *r = fsm->data;
    buf out = BUF_INIT;
    int rc = snapshot_encode(r->eng, r->snap_view, r->range_id, r->snap_index,
                             r->env->opts.snapshot_cap, &out);
    struct raft_buffer *rb = rc == 0 ? malloc(sizeof *rb) : NULL;
    if (rb == NULL) {
        if (rc == CAIRN_ERR_SNAPSHOT_TOOBIG)
            fprintf(stderr, "cairn node: range %llu is larger than the "
                    "snapshot cap (%zu bytes): log not compacted\n",
                    (unsigned long long)r->range_id,
                    r->env->opts.snapshot_cap);
        buf_free(&out);
        return rc == CAIRN_ERR_SNAPSHOT_TOOBIG ? RAFT_TOOBIG : RAFT_NOMEM;
    }
    rb->base = out.data; /* freed by fsm_snapshot_finalize */
    rb->len = out.len;
    *bufs = rb;
    *n_bufs = 1;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
                                 struct raft_buffer *bufs[], unsigned *n_bufs)
{
    replica *r = fsm->data;
    if (*bufs) {
        for (unsigned i = 0; i < *n_bufs; i++)
            free((*bufs)[i].base);
        free(*bufs);
        r->n_snapshots++;
    }
    *bufs = NULL;
    *n_bufs = 0;
    if (r->snap_view) {
        engine_view_close(r->snap_view);
        r->snap_view = NULL;
    }
    return 0;
}

static entry_applier *new_applier(replica *r, uint64_t applied)
{
    entry_batcher *b = r->env->batchers[engine_get_kind(r->eng)];
    return b ? entry_applier_new_shared(b, r->range_id, applied)
             : entry_applier_new(r->eng, r->range_id, applied);
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *b)
{
    replica *r = fsm->data;
    uint64_t index;
    int rc = snapshot_index(b->base, b->len, &index);
    if (rc != 0)
        return RAFT_CORRUPT;
    apply_flush(r);
    if (index > r->applied) {
        rc = snapshot_restore(r->eng, r->range_id, b->base, b->len,
                              r->env->clock);
        if (rc != 0) {
            fprintf(stderr, "cairn node: range %llu: restoring snapshot "
                    "%llu failed: %s\n", (unsigned long long)r->range_id,
                    (unsigned long long)index, cairn_err_message(rc));
            return RAFT_IOERR;
        }
        r->applied = index;
        entry_applier *fresh = new_applier(r, index);
        if (fresh == NULL)
            return RAFT_NOMEM;
        entry_applier_free(r->applier);
        r->applier = fresh;
        buf meta = BUF_INIT;
        if (engine_get_meta(r->eng, NULL, r->range_id, &meta) == 0)
            range_meta_decode(meta.data, meta.len, &r->meta);
        buf_free(&meta);
    } else {
        /* the store is newer: keep it, but observe what the snapshot holds
         * (the log before it is gone; seq.h rule 4) */
        snapshot_observe(b->base, b->len, r->env->clock);
    }
    raft_free(b->base);
    return 0;
}

/* ---- proposals -------------------------------------------------------- */

static void prop_unlink(replica *r, proposal *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        r->props = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void prop_free(proposal *p)
{
    free(p->w);
    free(p->res);
    free(p);
}

static void epoch_done(proposal *p, int st);

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

static void applied_cb(struct raft_apply *req, int status, void *result)
{
    proposal *p = req->data;
    replica *r = p->r;
    int st = applied_status(status);
    prop_unlink(r, p);
    if (p->admin) {
        epoch_done(p, st);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (st != 0)
            p->w[i].wcb(p->w[i].arg, st, NULL);
        else
            p->w[i].wcb(p->w[i].arg, p->res[i].status, &p->res[i].seq);
    }
    prop_free(p);
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
                           .seq = seq_next(r->env->clock),
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
        int rv = raft_apply(&r->raft, &p->req, &rb, 1, applied_cb);
        if (rv != 0) {
            raft_free(rb.base);
            prop_unlink(r, p);
            rc = map_raft_err(rv);
        } else {
            r->n_entries++;
            r->n_writes += n;
            lag_note(r, raft_last_index(&r->raft));
        }
    }
    buf_free(&e);
    if (rc != 0) {
        for (size_t i = from; i < to; i++)
            q->v[i].wcb(q->v[i].arg, rc, NULL);
        if (p)
            prop_free(p);
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
    apply_flush(r); /* the reads below must see every applied entry */
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
        fail_waiters(&r->reading, r->closing ? CAIRN_ERR_SHUTDOWN
                                             : CAIRN_ERR_NOT_LEADER);
    }
    if (r->reads.n || r->writes.n)
        schedule_flush(r);
}

static void start_barrier(replica *r)
{
    wvec_swap(&r->reads, &r->reading);
    r->barrier.data = r;
    r->barrier_term = r->raft.current_term;
    int rv = raft_barrier(&r->raft, &r->barrier, barrier_cb);
    if (rv != 0) {
        fail_waiters(&r->reading, map_raft_err(rv) == CAIRN_ERR_TIMEOUT
                                      ? CAIRN_ERR_NOT_LEADER
                                      : map_raft_err(rv));
        return;
    }
    r->barrier_busy = true;
    lag_note(r, raft_last_index(&r->raft));
}

static void refresh_size(replica *r)
{
    uint64_t now = now_ms(r);
    if (now - r->size_checked_ms < 1000 && r->size_checked_ms != 0)
        return;
    r->size_checked_ms = now;
    engine_range_stats(r->eng, r->range_id, &r->size_bytes, &r->size_keys);
}

static void flush_cb(uv_check_t *h)
{
    replica *r = h->data;
    uv_check_stop(h);
    apply_flush(r);
    if (r->closing)
        return;
    if (r->raft.state != RAFT_LEADER) {
        fail_waiters(&r->writes, CAIRN_ERR_NOT_LEADER);
        buf_reset(&r->stage);
        fail_waiters(&r->reads, CAIRN_ERR_NOT_LEADER);
        return;
    }
    bool ready = r->ready_term == r->raft.current_term;
    if (!r->barrier_busy && (r->reads.n || (r->writes.n && !ready)))
        start_barrier(r);
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
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    if (value_len > CAIRN_VALUE_MAX)
        return CAIRN_ERR_TOOBIG;
    if (kind == ENTRY_OP_PUT) {
        /* the store's count, re-read every second, plus what was accepted
         * since (an upper bound: an overwrite may not grow the range) */
        refresh_size(r);
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
    schedule_flush(r);
    return 0;
}

int replica_read(replica *r, rep_read_cb cb, void *arg)
{
    if (r->closing)
        return CAIRN_ERR_SHUTDOWN;
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    waiter w = {.rcb = cb, .arg = arg};
    int rc = wvec_push(&r->reads, &w);
    if (rc == 0)
        schedule_flush(r);
    return rc;
}

const range_meta *replica_meta(const replica *r) { return &r->meta; }
engine *replica_engine(const replica *r) { return r->eng; }

/* ---- membership and leadership ---------------------------------------- */

static admin_req *admin_new(replica *r, uint64_t id, rep_admin_cb cb,
                            void *arg)
{
    admin_req *a = calloc(1, sizeof *a);
    if (a) {
        a->r = r;
        a->id = id;
        a->cb = cb;
        a->arg = arg;
        a->change.data = a;
        a->transfer.data = a;
        a->next = r->admins;
        if (r->admins)
            r->admins->prev = a;
        r->admins = a;
    }
    return a;
}

static void admin_unlink(admin_req *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        a->r->admins = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->next = a->prev = NULL;
}

/* Free a request libraft never accepted. */
static void admin_discard(admin_req *a)
{
    admin_unlink(a);
    free(a);
}

static void admin_free_cb(uv_handle_t *h) { free(h->data); }

/* Answer an admin request and free it. */
static void admin_finish(admin_req *a, int status, const char *msg)
{
    admin_unlink(a);
    a->cb(a->arg, status, msg);
    if (a->has_poll) {
        a->poll.data = a;
        uv_close((uv_handle_t *)&a->poll, admin_free_cb);
    } else {
        free(a);
    }
}

static void admin_done(admin_req *a, int rv, const char *what)
{
    char msg[300];
    if (rv != 0)
        snprintf(msg, sizeof msg, "%s: %s", what, raft_strerror(rv));
    else
        snprintf(msg, sizeof msg, "%s: done", what);
    admin_finish(a, map_raft_err(rv), msg);
}

/* The membership change committed: propose the epoch entry that bumps the
 * range's epoch on every replica; the request is answered once it applied,
 * with the new epoch (the caller records it in the metadata). */
static void epoch_done(proposal *p, int st)
{
    admin_req *a = p->admin;
    char msg[300];
    if (st == 0)
        snprintf(msg, sizeof msg, "%s: done, epoch %llu", a->what,
                 (unsigned long long)p->epoch);
    else
        snprintf(msg, sizeof msg, "%s: done, but the epoch entry failed: %s",
                 a->what, cairn_err_message(st));
    prop_free(p);
    admin_finish(a, st, msg);
}

static void membership_changed(admin_req *a, const char *what)
{
    replica *r = a->r;
    proposal *p = calloc(1, sizeof *p);
    buf e = BUF_INIT;
    struct raft_buffer rb = {NULL, 0};
    int rc = CAIRN_ERR_NOMEM;
    a->what = what;
    if (p) {
        p->r = r;
        p->admin = a;
        p->id = ++r->next_prop;
        rc = entry_put_epoch(&e, r->env->nonce, p->id);
    }
    if (rc == 0 && (rb.base = raft_malloc(e.len)) == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0) {
        memcpy(rb.base, e.data, e.len);
        rb.len = e.len;
        p->req.data = p;
        p->next = r->props;
        if (r->props)
            r->props->prev = p;
        r->props = p;
        int rv = raft_apply(&r->raft, &p->req, &rb, 1, applied_cb);
        if (rv != 0) {
            raft_free(rb.base);
            prop_unlink(r, p);
            rc = map_raft_err(rv);
        }
    }
    buf_free(&e);
    if (rc != 0) {
        if (p == NULL) {
            admin_finish(a, rc, "out of memory");
            return;
        }
        epoch_done(p, rc);
    }
}

static void promoted_cb(struct raft_change *req, int status)
{
    admin_req *a = req->data;
    char msg[128];
    if (status == 0) {
        membership_changed(a, "promote to voter");
        return;
    }
    snprintf(msg, sizeof msg, "promote to voter: %s", raft_strerror(status));
    admin_finish(a, map_raft_err(status), msg);
}

/* Whether standby `id` has every entry the leader had committed. */
static bool caught_up(replica *r, uint64_t id)
{
    if (r->raft.state != RAFT_LEADER)
        return false;
    for (unsigned i = 0; i < r->raft.configuration.n; i++)
        if (r->raft.configuration.servers[i].id == id)
            return r->raft.leader_state.progress[i].match_index >=
                   r->raft.commit_index;
    return false;
}

/* The standby is promoted only once it holds the committed log, so that a
 * slow newcomer never counts in a quorum it cannot serve. */
static void poll_catch_up(uv_timer_t *t)
{
    admin_req *a = t->data;
    replica *r = a->r;
    int rv = 0;
    if (r->closing || r->raft.state != RAFT_LEADER)
        rv = RAFT_NOTLEADER;
    else if (!caught_up(r, a->id) && now_ms(r) < a->deadline_ms)
        return; /* keep polling */
    else if (!caught_up(r, a->id))
        rv = RAFT_BUSY;
    else
        rv = raft_assign(&r->raft, &a->change, a->id, RAFT_VOTER,
                         promoted_cb);
    uv_timer_stop(t);
    if (rv != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "promote to voter: %s%s", raft_strerror(rv),
                 rv == RAFT_BUSY ? " (standby did not catch up in 60 s)" : "");
        admin_finish(a, map_raft_err(rv), msg);
    }
}

static void standby_cb(struct raft_change *req, int status)
{
    admin_req *a = req->data;
    if (status != 0) {
        admin_done(a, status, "assign standby");
        return;
    }
    a->deadline_ms = now_ms(a->r) + 60000;
    uv_timer_init(a->r->env->loop, &a->poll);
    a->has_poll = true;
    a->poll.data = a;
    uv_timer_start(&a->poll, poll_catch_up, 50, 50);
}

static void added_cb(struct raft_change *req, int status)
{
    admin_req *a = req->data;
    if (status != 0) {
        admin_done(a, status, "add");
        return;
    }
    int rv = raft_assign(&a->r->raft, &a->change, a->id, RAFT_STANDBY,
                         standby_cb);
    if (rv != 0)
        admin_done(a, rv, "assign standby");
}

int replica_add(replica *r, uint64_t id, const char *address,
                rep_admin_cb cb, void *arg)
{
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    admin_req *a = admin_new(r, id, cb, arg);
    if (a == NULL)
        return CAIRN_ERR_NOMEM;
    int rv = raft_add(&r->raft, &a->change, id, address, added_cb);
    if (rv != 0) {
        admin_discard(a);
        return map_raft_err(rv);
    }
    return 0;
}

static void removed_cb(struct raft_change *req, int status)
{
    if (status == 0)
        membership_changed(req->data, "remove");
    else
        admin_done(req->data, status, "remove");
}

int replica_remove(replica *r, uint64_t id, rep_admin_cb cb, void *arg)
{
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    admin_req *a = admin_new(r, id, cb, arg);
    if (a == NULL)
        return CAIRN_ERR_NOMEM;
    int rv = raft_remove(&r->raft, &a->change, id, removed_cb);
    if (rv != 0) {
        admin_discard(a);
        return map_raft_err(rv);
    }
    return 0;
}

static void transferred_cb(struct raft_transfer *req)
{
    admin_req *a = req->data;
    raft_id lid = 0;
    const char *addr = NULL;
    raft_leader(&a->r->raft, &lid, &addr);
    bool ok = a->id ? lid == a->id : (lid != 0 && lid != a->r->raft.id);
    char msg[128];
    snprintf(msg, sizeof msg, "leader is now %llu", (unsigned long long)lid);
    admin_finish(a, ok ? 0 : CAIRN_ERR_TIMEOUT, msg);
}

int replica_transfer(replica *r, uint64_t id, rep_admin_cb cb, void *arg)
{
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    admin_req *a = admin_new(r, id, cb, arg);
    if (a == NULL)
        return CAIRN_ERR_NOMEM;
    int rv = raft_transfer(&r->raft, &a->transfer, id, transferred_cb);
    if (rv != 0) {
        admin_discard(a);
        return map_raft_err(rv);
    }
    return 0;
}

/* ---- metrics ---------------------------------------------------------- */

static const char *role_name(int state)
{
    switch (state) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_FOLLOWER:
        return "follower";
    default:
        return "unavailable";
    }
}

/* Seconds since the oldest entry above `match` was proposed (0 if none). */
static double lag_seconds(replica *r, raft_index match)
{
    uint64_t oldest = 0;
    unsigned n = r->lag_pos < LAG_RING ? r->lag_pos : LAG_RING;
    for (unsigned i = 0; i < n; i++) {
        unsigned k = (r->lag_pos - 1 - i) % LAG_RING;
        if (r->lag[k].index <= match)
            break;
        oldest = r->lag[k].ms;
    }
    return oldest ? (double)(now_ms(r) - oldest) / 1000.0 : 0.0;
}

static int metrics_followers(replica *r, buf *out)
{
    int rc = buf_append_str(out, ",\"followers\":[");
    raft_index last = raft_last_index(&r->raft);
    for (unsigned i = 0, n = 0; rc == 0 && i < r->raft.configuration.n; i++) {
        const struct raft_server *s = &r->raft.configuration.servers[i];
        if (s->id == r->raft.id)
            continue;
        raft_index match = r->raft.state == RAFT_LEADER
                               ? r->raft.leader_state.progress[i].match_index
                               : 0;
        rc = buf_appendf(out,
                         "%s{\"id\":%llu,\"address\":\"%s\",\"role\":\"%s\","
                         "\"match_index\":%llu,\"lag_entries\":%llu,"
                         "\"lag_seconds\":%.3f}",
                         n++ ? "," : "", (unsigned long long)s->id,
                         s->address,
                         s->role == RAFT_VOTER     ? "voter"
                         : s->role == RAFT_STANDBY ? "standby"
                                                   : "spare",
                         (unsigned long long)match,
                         (unsigned long long)(last > match ? last - match : 0),
                         lag_seconds(r, match));
    }
    return rc ? rc : buf_append_str(out, "]");
}

/* FNV-1a over every record of the range (tombstones included): equal on
 * two replicas at the same applied index iff their data is identical. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int replica_digest(replica *r, uint64_t *out)
{
    engine_iter *it;
    engine_entry en;
    uint64_t h = 0xcbf29ce484222325ull;
    apply_flush(r);
    int rc = engine_iter_open(r->eng, NULL, r->range_id, NULL, 0, NULL, 0, 0,
                              ENGINE_ITER_TOMBSTONES, &it);
    if (rc != 0)
        return rc;
    while ((rc = engine_iter_next(it, &en)) == 1) {
        uint8_t lens[9];
        be_put_u32(lens, (uint32_t)en.key_len);
        be_put_u32(lens + 4, (uint32_t)en.value_len);
        lens[8] = en.tombstone;
        h = fnv(h, lens, sizeof lens);
        h = fnv(h, en.key, en.key_len);
        h = fnv(h, en.seq.bytes, SEQ_LEN);
        h = fnv(h, en.value, en.value_len);
    }
    engine_iter_close(it);
    *out = h;
    return rc;
}

int replica_metrics(replica *r, buf *out)
{
    struct raft_log *log = &r->raft.log;
    size_t n_log = log->back >= log->front ? log->back - log->front
                                           : log->size - log->front + log->back;
    uint64_t log_bytes = 0;
    for (size_t i = 0; i < n_log; i++)
        log_bytes += log->entries[(log->front + i) % log->size].buf.len;
    uint64_t lid;
    const char *laddr;
    replica_leader(r, &lid, &laddr);
    apply_flush(r);
    r->size_checked_ms = 0;
    refresh_size(r);
    int rc = buf_appendf(
        out,
        "{\"range\":%llu,\"table\":%llu,\"engine\":\"%s\",\"epoch\":%llu,"
        "\"role\":\"%s\",\"term\":%llu,\"leader\":%llu,"
        "\"commit_index\":%llu,\"applied_index\":%llu,"
        "\"store_applied_index\":%llu,\"last_index\":%llu,"
        "\"snapshot_index\":%llu,\"log_entries\":%zu,\"log_bytes\":%llu,"
        "\"range_bytes\":%llu,\"range_keys\":%llu,\"writes\":%llu,"
        "\"entries\":%llu,\"reads\":%llu,\"barriers\":%llu,"
        "\"snapshots\":%llu",
        (unsigned long long)r->range_id,
        (unsigned long long)r->meta.table_id, engine_kind_name(r->meta.engine),
        (unsigned long long)r->meta.epoch, role_name(r->raft.state),
        (unsigned long long)r->raft.current_term, (unsigned long long)lid,
        (unsigned long long)r->raft.commit_index,
        (unsigned long long)r->raft.last_applied,
        (unsigned long long)r->applied,
        (unsigned long long)raft_last_index(&r->raft),
        (unsigned long long)log->snapshot.last_index, n_log,
        (unsigned long long)log_bytes, (unsigned long long)r->size_bytes,
        (unsigned long long)r->size_keys, (unsigned long long)r->n_writes,
        (unsigned long long)r->n_entries, (unsigned long long)r->n_reads,
        (unsigned long long)r->n_barriers, (unsigned long long)r->n_snapshots);
    if (rc == 0)
        rc = metrics_followers(r, out);
    return rc ? rc : buf_append_str(out, "}");
}

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
    if (r->snap_view)
        engine_view_close(r->snap_view);
    range_meta_free(&r->meta);
    entry_applier_free(r->applier);
    free(r->writes.v);
    free(r->reads.v);
    free(r->reading.v);
    buf_free(&r->stage);
    free(r);
}

static void flush_closed(uv_handle_t *h)
{
    replica *r = h->data;
    if (r->async_jobs > 0) { /* async_job_done frees it */
        r->free_pending = true;
        return;
    }
    void (*cb)(void *) = r->close_cb;
    void *arg = r->close_arg;
    free_replica(r);
    if (cb)
        cb(arg);
}

static void raft_closed(struct raft *raft)
{
    replica *r = raft->data;
    r->raft_gone = true;
    /* Whatever libraft did not answer cannot be answered any more. */
    while (r->props) {
        proposal *p = r->props;
        prop_unlink(r, p);
        if (p->admin) {
            epoch_done(p, CAIRN_ERR_SHUTDOWN);
            continue;
        }
        for (size_t i = 0; i < p->n; i++)
            p->w[i].wcb(p->w[i].arg, CAIRN_ERR_SHUTDOWN, NULL);
        prop_free(p);
    }
    fail_waiters(&r->reading, CAIRN_ERR_SHUTDOWN);
    /* libraft answers the changes it holds when it closes; whatever is
     * left (nothing, unless libraft dropped one) is answered here, since
     * libraft no longer references it. */
    while (r->admins)
        admin_finish(r->admins, CAIRN_ERR_SHUTDOWN, "replica closed");
    apply_flush(r);
    raft_uv_close(&r->io);
    rep_transport_release(&r->transport);
    uv_close((uv_handle_t *)&r->flush, flush_closed);
}

/* An add waiting for its standby to catch up is known to no one but its
 * timer, which would otherwise fire into the freed replica. */
static void stop_catch_up_polls(replica *r)
{
    admin_req *a = r->admins, *next;
    for (; a; a = next) {
        next = a->next;
        if (a->has_poll && uv_is_active((uv_handle_t *)&a->poll)) {
            uv_timer_stop(&a->poll);
            admin_finish(a, CAIRN_ERR_SHUTDOWN,
                         "promote to voter: replica closed");
        }
    }
}

void replica_close(replica *r, void (*cb)(void *arg), void *arg)
{
    r->closing = true;
    r->close_cb = cb;
    r->close_arg = arg;
    uv_check_stop(&r->flush);
    fail_waiters(&r->writes, CAIRN_ERR_SHUTDOWN);
    fail_waiters(&r->reads, CAIRN_ERR_SHUTDOWN);
    stop_catch_up_polls(r);
    raft_close(&r->raft, raft_closed);
}

/* raft_uv in libraft 0.15 is a version-1 raft_io without async_work, which
 * version-3 snapshots need: provide it on libuv's thread pool. raft_uv does
 * not know these jobs, so the replica outlives libraft until they end. */
static void free_replica(replica *r);

typedef struct async_job {
    uv_work_t work;
    struct raft_io_async_work *req;
    replica *r;
    int status;
} async_job;

static void async_job_run(uv_work_t *w)
{
    async_job *j = w->data;
    j->status = j->req->work(j->req);
}

static void async_job_done(uv_work_t *w, int status)
{
    async_job *j = w->data;
    replica *r = j->r;
    r->async_jobs--;
    if (!r->raft_gone)
        j->req->cb(j->req, status == 0 ? j->status : RAFT_CANCELED);
    free(j);
    if (r->free_pending && r->async_jobs == 0) {
        void (*cb)(void *) = r->close_cb;
        void *arg = r->close_arg;
        free_replica(r);
        if (cb)
            cb(arg);
    }
}

static int io_async_work(struct raft_io *io, struct raft_io_async_work *req,
                         raft_io_async_work_cb cb)
{
    replica *r = (replica *)((char *)io - offsetof(replica, io));
    async_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return RAFT_NOMEM;
    req->cb = cb;
    j->req = req;
    j->r = r;
    j->work.data = j;
    if (uv_queue_work(r->env->loop, &j->work, async_job_run,
                      async_job_done) != 0) {
        free(j);
        return RAFT_IOERR;
    }
    r->async_jobs++;
    return 0;
}

/* libraft 0.15 closes twice. raft_uv fires its close callback (libraft's,
 * which ends in raft_closed: everything is freed) when the last pending
 * close it counts finishes. It does not count the closing of a log
 * segment's writer, and that writer's close callback checks again: if
 * everything else had closed before, it fires the close callback a second
 * time, into freed memory (fixed upstream after 0.15: canonical/raft#341,
 * cowsql/raft#45). It crashed the unit tests under load. raft_uv's close
 * also waits for our transport to report itself closed, so the transport
 * reports only after every writer has closed:
 *  - a writer closed by raft_close itself (the open segment) is closing
 *    before the transport starts reporting, and the transport reports one
 *    loop iteration after every handle closing by then (transport.c);
 *  - a writer is also closed when the write in flight at raft_close ends,
 *    so the transport is held while appends are in flight: the last one
 *    ends before its segment's writer starts closing.
 * A writer's second check then finds the transport open and returns. */
typedef struct append_req {
    struct raft_io_append req;   /* what raft_uv sees */
    struct raft_io_append *orig; /* libraft's request */
    raft_io_append_cb cb;
    replica *r;
} append_req;

static void append_done(struct raft_io_append *req, int status)
{
    append_req *a = req->data;
    replica *r = a->r;
    a->cb(a->orig, status);
    free(a);
    if (--r->appends == 0)
        rep_transport_hold_close(&r->transport, false);
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n,
                     raft_io_append_cb cb)
{
    replica *r = (replica *)((char *)io - offsetof(replica, io));
    append_req *a = calloc(1, sizeof *a);
    if (a == NULL)
        return RAFT_NOMEM;
    a->req.data = a;
    a->orig = req;
    a->cb = cb;
    a->r = r;
    req->cb = cb;
    if (r->appends++ == 0)
        rep_transport_hold_close(&r->transport, true);
    int rv = r->uv_append(io, &a->req, entries, n, append_done);
    if (rv != 0) {
        free(a);
        if (--r->appends == 0)
            rep_transport_hold_close(&r->transport, false);
    }
    return rv;
}

static int set_err(char *err, int rc, const char *fmt, const char *detail)
{
    if (err)
        snprintf(err, 256, fmt, detail);
    return rc;
}

static int init_raft(replica *r, char *err)
{
    rep_env *env = r->env;
    int rv = rep_transport_init(&r->transport, env->hub, r->range_id);
    if (rv != 0)
        return set_err(err, CAIRN_ERR_NOMEM, "%s", "out of memory");
    rv = raft_uv_init(&r->io, env->loop, r->dir, &r->transport);
    if (rv != 0) {
        set_err(err, CAIRN_ERR_IO, "raft log: %.200s", r->io.errmsg);
        rep_transport_release(&r->transport);
        return CAIRN_ERR_IO;
    }
    r->io_inited = true;
    raft_uv_set_segment_size(&r->io, env->opts.segment_size);
    raft_uv_set_connect_retry_delay(&r->io, 100);
    raft_uv_set_snapshot_compression(&r->io, false);
    r->uv_append = r->io.append;
    r->io.append = io_append;
    if (r->io.version < 2) {
        r->io.version = 2;
        r->io.async_work = io_async_work;
    }
    r->fsm.version = 3;
    r->fsm.data = r;
    r->fsm.apply = fsm_apply;
    r->fsm.snapshot = fsm_snapshot;
    r->fsm.snapshot_async = fsm_snapshot_async;
    r->fsm.snapshot_finalize = fsm_snapshot_finalize;
    r->fsm.restore = fsm_restore;
    rv = raft_init(&r->raft, &r->io, &r->fsm, env->node_id, env->address);
    if (rv != 0) {
        set_err(err, CAIRN_ERR_IO, "raft: %.200s", raft_errmsg(&r->raft));
        raft_uv_close(&r->io);
        rep_transport_release(&r->transport);
        return CAIRN_ERR_IO;
    }
    r->raft_inited = true;
    r->raft.data = r;
    raft_set_election_timeout(&r->raft, env->opts.election_ms);
    raft_set_heartbeat_timeout(&r->raft, env->opts.heartbeat_ms);
    raft_set_snapshot_threshold(&r->raft, env->opts.snapshot_threshold);
    raft_set_snapshot_trailing(&r->raft, env->opts.snapshot_trailing);
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
        return set_err(err, CAIRN_ERR_IO, "bootstrap: %.200s",
                       raft_errmsg(&r->raft));
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
    int rc = engine_applied_index(eng, NULL, r->range_id, &r->applied);
    if (rc == 0 &&
        (r->applier = new_applier(r, r->applied)) == NULL)
        rc = CAIRN_ERR_NOMEM;
    snprintf(r->dir, sizeof r->dir, "%s/raft/%llu", env->dir,
             (unsigned long long)r->range_id);
    if (rc == 0 && mkdir(r->dir, 0755) != 0 && errno != EEXIST)
        rc = set_err(err, CAIRN_ERR_IO, "mkdir %.200s failed", r->dir);
    if (rc == 0)
        rc = init_raft(r, err);
    if (rc != 0) {
        free_replica(r);
        return rc;
    }
    uv_check_init(env->loop, &r->flush);
    r->flush.data = r;
    rc = boot ? bootstrap(r, err) : 0;
    if (rc == 0 && raft_start(&r->raft) != 0)
        rc = set_err(err, CAIRN_ERR_CORRUPT, "raft start: %.200s",
                     raft_errmsg(&r->raft));
    if (rc != 0) {
        replica_close(r, NULL, NULL); /* frees it asynchronously */
        return rc;
    }
    *out = r;
    return 0;
}
