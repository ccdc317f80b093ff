/*
 * split.c - a range splits in two (DESIGN.md "Split and move").
 *
 * A split is one Raft command, applied at the same log position on every
 * replica: everything before it in the log lands in the range as it was,
 * everything after sees the two halves. Applying it writes, in one atomic
 * index-store batch: the range's records from the split key up copied
 * under the new range id (tombstones included, sequencers kept), the same
 * interval deleted from the range, both metas with the next epoch and the
 * range's applied index. Then the new range's replica opens on this node,
 * bootstrapped with the range's voters as its group: every replica applies
 * the same entry at the same position, so every one bootstraps the same
 * group, and its election proceeds as soon as a majority of them applied
 * the split.
 *
 * Ops proposed before the split but ordered after it in the log may name
 * keys that are no longer in the range: they are refused as they apply
 * (KEY_OUT_OF_RANGE, entry_applier_set_bounds), never written under the
 * wrong range. Reads check the epoch again when served (node_dispatch.c).
 *
 * The copy costs the size of the upper half, on the loop, once per
 * replica; splitting keeps ranges small (the controller splits them at
 * --split-bytes), which bounds it.
 */
#include "replica_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

static void hex(const void *p, size_t n, char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = p;
    size_t i = 0;
    for (; i < n && 2 * i + 2 < cap; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * i] = '\0';
}

/* Whether `key` splits the range in two non-empty halves' worth of bounds:
 * strictly above the start, strictly below the end. */
static bool inside(const range_meta *m, const void *key, size_t len)
{
    return len > 0 && range_meta_contains(m, key, len) &&
           !(len == m->start.len &&
             (len == 0 || memcmp(key, m->start.data, len) == 0));
}

typedef struct split_args {
    uint64_t new_range;
    const buf *key;
} split_args;

static int build_split(buf *e, uint64_t nonce, uint64_t id, uint64_t epoch,
                       void *arg)
{
    split_args *s = arg;
    return entry_put_split(e, nonce, id, s->new_range, epoch, s->key->data,
                           s->key->len);
}

int replica_split(replica *r, const void *key, size_t key_len,
                  uint64_t new_range, rep_admin_cb cb, void *arg)
{
    if (r->closing)
        return CAIRN_ERR_SHUTDOWN;
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    if (new_range == 0 || new_range == r->range_id ||
        (r->meta.flags & RANGE_META_FROZEN))
        return CAIRN_ERR_INVALID;
    /* Not before this leader's first barrier: every entry of earlier terms
     * must have applied, so that the epoch it picks is above theirs. */
    if (r->ready_term != r->raft.current_term) {
        replica_schedule_flush(r); /* starts the barrier if none ran */
        return CAIRN_ERR_TRYAGAIN;
    }
    quiesce_touch(r);
    buf k = BUF_INIT;
    int rc = 0;
    if (key_len > 0) {
        rc = buf_append(&k, key, key_len);
    } else { /* the median by bytes, from the store (engine.h) */
        fsm_flush(r);
        rc = engine_split_key(r->eng, r->range_id, &k);
    }
    if (rc == 0 && !inside(&r->meta, k.data, k.len))
        rc = CAIRN_ERR_KEY_OUT_OF_RANGE;
    admin_req *a = rc == 0 ? admin_new(r, 0, cb, arg) : NULL;
    if (rc == 0 && a == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc != 0) {
        buf_free(&k);
        return rc;
    }
    char h[2 * 256 + 1];
    hex(k.data, k.len, h, sizeof h);
    snprintf(a->text, sizeof a->text, "split at %s into range %llu", h,
             (unsigned long long)new_range);
    a->entry_is_change = true;
    split_args sa = {new_range, &k};
    admin_propose(a, a->text, build_split, &sa);
    buf_free(&k);
    return 0;
}

/* The new range's meta: the upper half, the next epoch, and this range's
 * voters as the group it bootstraps. */
static int child_meta(replica *r, const uint8_t *key, size_t key_len,
                      uint64_t new_range, uint64_t epoch, range_meta *c)
{
    memset(c, 0, sizeof *c);
    c->range_id = new_range;
    c->table_id = r->meta.table_id;
    c->engine = r->meta.engine;
    c->epoch = epoch;
    c->flags = RANGE_META_BOOTSTRAP;
    if (buf_append(&c->start, key, key_len) != 0 ||
        buf_append(&c->end, r->meta.end.data, r->meta.end.len) != 0)
        return CAIRN_ERR_NOMEM;
    const struct raft_configuration *conf = &r->raft.configuration;
    for (unsigned i = 0; i < conf->n && c->n_peers < RANGE_MAX_PEERS; i++) {
        if (conf->servers[i].role != RAFT_VOTER)
            continue;
        range_peer *p = &c->peers[c->n_peers++];
        p->id = conf->servers[i].id;
        snprintf(p->addr, sizeof p->addr, "%s", conf->servers[i].address);
    }
    return 0;
}

/* Copy the range's records from `key` up under `new_range` and delete
 * them here, in `b`. */
static int move_upper(replica *r, engine_batch *b, const uint8_t *key,
                      size_t key_len, uint64_t new_range)
{
    engine_iter *it;
    engine_entry en;
    int rc = engine_iter_open(r->eng, NULL, r->range_id, key, key_len,
                              r->meta.end.data, r->meta.end.len, 0,
                              ENGINE_ITER_TOMBSTONES, &it);
    if (rc != 0)
        return rc;
    while ((rc = engine_iter_next(it, &en)) == 1) {
        rc = en.tombstone
                 ? engine_batch_tombstone(b, new_range, en.key, en.key_len,
                                          &en.seq)
                 : engine_batch_put(b, new_range, en.key, en.key_len,
                                    &en.seq, en.value, en.value_len);
        if (rc != 0)
            break;
    }
    engine_iter_close(it);
    if (rc == 0)
        rc = engine_batch_delete_interval(b, r->range_id, key, key_len,
                                          r->meta.end.data, r->meta.end.len);
    return rc;
}

static int write_split(replica *r, uint64_t index, const uint8_t *key,
                       size_t key_len, const range_meta *child)
{
    range_meta left = r->meta;
    buf lblob = BUF_INIT, cblob = BUF_INIT;
    engine_batch *b = engine_batch_new();
    left.epoch = child->epoch;
    left.end = (buf){(uint8_t *)key, key_len, key_len};
    int rc = b ? move_upper(r, b, key, key_len, child->range_id)
               : CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = range_meta_encode(&left, &lblob);
    if (rc == 0)
        rc = range_meta_encode(child, &cblob);
    if (rc == 0)
        rc = engine_batch_set_meta(b, r->range_id, lblob.data, lblob.len);
    if (rc == 0)
        rc = engine_batch_set_applied(b, r->range_id, index);
    if (rc == 0)
        rc = engine_batch_set_meta(b, child->range_id, cblob.data, cblob.len);
    if (rc == 0) /* its group's first entry, the bootstrap configuration */
        rc = engine_batch_set_applied(b, child->range_id, 1);
    if (rc == 0)
        rc = engine_write(r->eng, b);
    if (b)
        engine_batch_free(b);
    buf_free(&lblob);
    buf_free(&cblob);
    return rc;
}

void split_apply(replica *r, uint64_t index, uint64_t nonce, uint64_t id,
                 uint64_t new_range, uint64_t epoch, const uint8_t *key,
                 size_t key_len)
{
    proposal *prop = replica_find_proposal(r, nonce, id);
    /* every entry before this one is in the store, with its index */
    fsm_flush(r);
    /* a fence applied before it: the range is final, it never splits */
    bool ok = !(r->meta.flags & RANGE_META_FROZEN) &&
              inside(&r->meta, key, key_len) && new_range != 0 &&
              new_range != r->range_id;
    range_meta child = {0};
    if (epoch == 0) /* as for epoch entries (fsm.c): carried exactly */
        epoch = r->meta.epoch + 1;
    int rc = ok ? child_meta(r, key, key_len, new_range, epoch, &child) : 0;
    if (rc == 0 && ok)
        rc = write_split(r, index, key, key_len, &child);
    else if (rc == 0) /* refused: only the applied index moves */
        rc = entry_applier_add_noop(r->applier, index);
    if (rc != 0) {
        fprintf(stderr, "cairn node: range %llu: applying split entry %llu "
                "failed: %s; stopping\n", (unsigned long long)r->range_id,
                (unsigned long long)index, cairn_err_message(rc));
        abort(); /* continuing would diverge; a restart replays it */
    }
    if (ok) {
        /* the applier's batch must carry the new index and bounds */
        entry_applier *fresh = fsm_new_applier(r, index);
        if (fresh == NULL)
            abort();
        entry_applier_free(r->applier);
        r->applier = fresh;
        r->meta.epoch = epoch;
        buf_reset(&r->meta.end);
        if (buf_append(&r->meta.end, key, key_len) != 0)
            abort();
        r->size_checked_ms = 0; /* half the size now */
        load_forget(r);         /* and part of the load */
        if (r->env->added)
            r->env->added(r->env->added_arg, r->eng, &child);
    }
    r->applied = index;
    if (prop) {
        prop->epoch = r->meta.epoch;
        prop->status = ok ? 0 : CAIRN_ERR_INVALID;
    }
    range_meta_free(&child);
}
