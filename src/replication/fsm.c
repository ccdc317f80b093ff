/*
 * fsm.c - a replica's state machine: committed entries applied to the
 * range's part of the index store; snapshots taken, sent, installed and
 * restored (replica_int.h).
 *
 * A snapshot here is the index store itself (raftio.h): taking one syncs
 * the store and records metadata; sending one encodes the range as the
 * store holds it at that moment; installing one writes the received data
 * into the store, durably, before the log forgets the entries it covers.
 */
#include "replica_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

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

void fsm_flush(replica *r)
{
    int rc = entry_applier_flush(r->applier);
    if (rc != 0)
        apply_failed(r, r->applied, rc);
}

entry_applier *fsm_new_applier(replica *r, uint64_t applied)
{
    entry_batcher *b = r->env->batchers[engine_get_kind(r->eng)];
    entry_applier *a = b ? entry_applier_new_shared(b, r->range_id, applied)
                         : entry_applier_new(r->eng, r->range_id, applied);
    if (a) /* ops outside the range as it is when they apply are refused */
        entry_applier_set_bounds(a, &r->meta);
    return a;
}

/* An epoch entry: the range's epoch becomes the one the entry carries
 * (or goes up by one, for an entry without), in the meta blob written with
 * the applied index. Every replica applies the same entries, so all agree
 * on the epoch (DESIGN.md: a membership change bumps the epoch) - also one
 * that joined later, was created with whatever epoch the metadata had, and
 * replays the log from its start. */
static void apply_epoch(replica *r, uint64_t index, uint64_t nonce,
                        uint64_t id, uint64_t epoch, uint8_t flags,
                        const seq *floor)
{
    buf blob = BUF_INIT;
    /* The carried epoch, exactly (old entries without one: one more): the
     * log defines the range's epochs, so a replica that joined with a
     * guess replays its way to the group's. Carried epochs grow along the
     * log: a leader proposes them only once every entry of earlier terms
     * applied (a membership change commits first; a split waits for the
     * leader's first barrier), above every one it proposed itself. */
    r->meta.epoch = epoch ? epoch : r->meta.epoch + 1;
    if (flags & ENTRY_EPOCH_FREEZE) /* the applier refuses every op now */
        r->meta.flags |= RANGE_META_FROZEN;
    if ((flags & ENTRY_EPOCH_FLOOR) &&
        (!(r->meta.flags & RANGE_META_FLOOR) ||
         seq_cmp(floor, &r->meta.floor) > 0)) {
        r->meta.flags |= RANGE_META_FLOOR; /* kept: observed on every open */
        r->meta.floor = *floor;
    }
    if (flags & ENTRY_EPOCH_FLOOR)
        seq_observe(r->env->clock, floor);
    int rc = range_meta_encode(&r->meta, &blob);
    if (rc == 0)
        rc = entry_applier_add_meta(r->applier, index, blob.data, blob.len);
    buf_free(&blob);
    if (rc != 0)
        apply_failed(r, index, rc);
    proposal *prop = replica_find_proposal(r, nonce, id);
    if (prop)
        prop->epoch = r->meta.epoch;
    replica_schedule_flush(r);
    r->applied = index;
}

/* Snapshot by bytes too (rep_options.snapshot_bytes): from a running
 * mean of entry sizes, the counts libraft goes by are lowered so that the
 * log since the last snapshot holds about snapshot_bytes, and the tail
 * kept after it about a quarter of that (at least 16 entries). libraft
 * keeps the log in memory too: this bounds both. libraft checks them after each
 * apply, so a change takes effect at once. */
static void size_snapshots(replica *r, size_t len)
{
    const rep_options *o = &r->env->opts;
    if (catchup_pending(r) || o->snapshot_bytes == 0)
        return;
    r->entry_bytes = r->entry_bytes ? (r->entry_bytes * 15 + len) / 16 : len;
    uint64_t per = r->entry_bytes ? r->entry_bytes : 1;
    uint64_t every = o->snapshot_bytes / per, keep = every / 4;
    every = every < 16 ? 16 : every > o->snapshot_threshold
                                  ? o->snapshot_threshold : every;
    /* a follower a few big entries behind still catches up from the log,
     * not by a whole-range snapshot */
    keep = keep < 16 ? 16 : keep > o->snapshot_trailing ? o->snapshot_trailing
                                                         : keep;
    if (every != r->snap_every) {
        r->snap_every = (unsigned)every;
        raft_set_snapshot_threshold(&r->raft, r->snap_every);
    }
    if (keep != r->snap_keep) {
        r->snap_keep = (unsigned)keep;
        raft_set_snapshot_trailing(&r->raft, r->snap_keep);
    }
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *b,
                     void **result)
{
    replica *r = fsm->data;
    uint64_t index = r->raft.last_applied + 1;
    uint64_t nonce, id, epoch;
    uint8_t flags;
    seq floor;
    *result = NULL;
    size_snapshots(r, b->len);
    if (index <= r->applied) {
        observe_only(r, b->base, b->len);
        return 0;
    }
    if (entry_is_epoch(b->base, b->len, &nonce, &id, &epoch, &flags,
                       &floor)) {
        apply_epoch(r, index, nonce, id, epoch, flags, &floor);
        return 0;
    }
    uint64_t new_range;
    const uint8_t *key;
    size_t key_len;
    if (entry_is_split(b->base, b->len, &nonce, &id, &new_range, &epoch,
                       &key, &key_len)) {
        split_apply(r, index, nonce, id, new_range, epoch, key, key_len);
        return 0;
    }
    entry_reader er;
    proposal *prop = entry_parse(b->base, b->len, &er) == 0
                         ? replica_find_proposal(r, er.nonce, er.proposal)
                         : NULL;
    int rc = entry_applier_add(r->applier, index, b->base, b->len,
                               prop ? prop->res : NULL, r->env->clock);
    if (rc != 0)
        apply_failed(r, index, rc);
    replica_schedule_flush(r); /* the batch is written once per iteration */
    r->applied = index;
    return 0;
}

/* Taking a snapshot lets the log drop the entries below it, so the store
 * must hold them durably first; the snapshot itself carries no data. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    replica *r = fsm->data;
    fsm_flush(r);
    if (engine_sync(r->eng) != 0)
        return RAFT_IOERR;
    r->n_snapshots++;
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
                                 struct raft_buffer *bufs[], unsigned *n_bufs)
{
    (void)fsm;
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/* Write snapshot data into the store (durably) if it is newer than what
 * the store holds; else only observe its sequencers (seq.h rule 4). */
static int install_data(replica *r, const void *p, size_t len)
{
    uint64_t index;
    if (snapshot_index(p, len, &index) != 0)
        return CAIRN_ERR_CORRUPT;
    fsm_flush(r);
    if (index <= r->applied)
        return snapshot_observe(p, len, r->env->clock);
    int rc = snapshot_restore(r->eng, r->range_id, p, len, r->env->clock);
    if (rc == 0)
        rc = engine_sync(r->eng);
    if (rc != 0) {
        fprintf(stderr, "cairn node: range %llu: installing snapshot %llu "
                "failed: %s\n", (unsigned long long)r->range_id,
                (unsigned long long)index, cairn_err_message(rc));
        return rc;
    }
    entry_applier *fresh = fsm_new_applier(r, index);
    if (fresh == NULL)
        return CAIRN_ERR_NOMEM;
    entry_applier_free(r->applier);
    r->applier = fresh;
    r->applied = index;
    buf meta = BUF_INIT;
    if (engine_get_meta(r->eng, NULL, r->range_id, &meta) == 0)
        range_meta_decode(meta.data, meta.len, &r->meta);
    buf_free(&meta);
    if (r->meta.flags & RANGE_META_FLOOR) /* a move's destination */
        seq_observe(r->env->clock, &r->meta.floor);
    return 0;
}

static int hook_install(void *owner, const struct raft_buffer *data)
{
    replica *r = owner;
    int rc = install_data(r, data->base, data->len);
    if (rc == 0)
        r->n_installed++;
    return rc;
}

/* libraft restores a snapshot at start (the marker of raftio.c: the data
 * is the store, which must not be behind the snapshot - else the store
 * lost data the log no longer has, and the replica must not serve) and
 * after an install (already written into the store by hook_install). */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *b)
{
    replica *r = fsm->data;
    int rv = 0;
    if (b->len == 16 && memcmp(b->base, "CSNM", 4) == 0) {
        uint64_t index = be_get_u64((const uint8_t *)b->base + 8);
        if (index > r->applied) {
            fprintf(stderr, "cairn node: range %llu: CORRUPT: the index "
                    "store is at entry %llu but the Raft log was compacted "
                    "to %llu; not serving this replica\n",
                    (unsigned long long)r->range_id,
                    (unsigned long long)r->applied,
                    (unsigned long long)index);
            rv = RAFT_CORRUPT;
        }
    } else if (install_data(r, b->base, b->len) != 0) {
        rv = RAFT_IOERR;
    }
    if (rv == 0)
        raft_free(b->base);
    return rv;
}

/* ---- snapshot data for a follower ------------------------------------- */

typedef struct snap_job {
    engine_view *view;
    uint64_t applied;
} snap_job;

static void *hook_snap_begin(void *owner)
{
    replica *r = owner;
    snap_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    fsm_flush(r);
    if (engine_view_open(r->eng, &j->view) != 0) {
        free(j);
        return NULL;
    }
    if (engine_applied_index(r->eng, j->view, r->range_id, &j->applied) != 0) {
        engine_view_close(j->view);
        free(j);
        return NULL;
    }
    return j;
}

/* On a worker thread: engine reads from another thread are allowed while
 * the loop writes (engine.h). */
static int hook_snap_encode(void *owner, void *h, struct raft_buffer *out)
{
    replica *r = owner;
    snap_job *j = h;
    buf b = BUF_INIT;
    int rc = snapshot_encode(r->eng, j->view, r->range_id, j->applied,
                             r->env->opts.snapshot_cap, &b);
    if (rc != 0) {
        if (rc == CAIRN_ERR_SNAPSHOT_TOOBIG)
            fprintf(stderr, "cairn node: range %llu is larger than the "
                    "snapshot cap (%zu bytes): cannot send it\n",
                    (unsigned long long)r->range_id,
                    r->env->opts.snapshot_cap);
        buf_free(&b);
        return rc == CAIRN_ERR_SNAPSHOT_TOOBIG ? RAFT_TOOBIG : RAFT_NOMEM;
    }
    out->base = b.data; /* malloc'd: libraft frees it with raft_free */
    out->len = b.len;
    return 0;
}

static void hook_snap_end(void *owner, void *h)
{
    snap_job *j = h;
    (void)owner;
    engine_view_close(j->view);
    free(j);
}

void fsm_hooks(rio_hooks *h)
{
    h->install = hook_install;
    h->snap_begin = hook_snap_begin;
    h->snap_encode = hook_snap_encode;
    h->snap_end = hook_snap_end;
}

void fsm_init(replica *r)
{
    r->fsm.version = 3;
    r->fsm.data = r;
    r->fsm.apply = fsm_apply;
    r->fsm.snapshot = fsm_snapshot;
    r->fsm.snapshot_async = NULL; /* nothing to encode: see above */
    r->fsm.snapshot_finalize = fsm_snapshot_finalize;
    r->fsm.restore = fsm_restore;
}
