/*
 * reconcile_split.c - splits (issue 10, "Split"): ranges larger than
 * --split-bytes are split at their median by bytes, and splits that the
 * replicas applied but etcd does not show yet are recorded.
 *
 * Recording. A split is applied by the range's Raft group first, then
 * written to etcd (meta/split.c); a router or controller that dies in
 * between leaves a new range on the nodes that etcd does not know, and
 * its parent in etcd with the old end and epoch. The parent's replicas
 * then refuse everything at the old epoch (STALE_EPOCH), so routers wait,
 * refreshing - until this pass records it: a range that the nodes report,
 * whose table is READY, unknown to etcd, is recorded when its leader says
 * it covers [K, E) and the etcd range holding K ends at E while its own
 * leader says it now ends at K. Nested splits are recorded one level per
 * pass, outermost first (the inner child's parent must be recorded before
 * it). The replicas' state is the truth; etcd only catches up, with a
 * compare-and-swap on the parent as read.
 *
 * Size. Every poll reports each leader's range size (observe.c). A range
 * above --split-bytes, known to etcd at its leader's epoch (no split of it
 * pending), with no task on it, is split (meta_split: the leader picks the
 * key), at most SPLITS_PER_PASS per pass and once per range per
 * SPLIT_AGAIN_MS.
 *
 * Load. Every poll also reports the requests each leader served; a range
 * above --split-qps (2,500 a second, CockroachDB's default) in every poll
 * for --split-qps-seconds (10) is split at its load key - the median of
 * the keys its leader sampled (replication/load.c), which it offers only
 * when no single key carries most of the load: a hot key is never split
 * around, since no split would divide its load.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "controller/controller_int.h"
#include "meta/replica_rpc.h"

#define SPLITS_PER_PASS 4
#define RECORDS_PER_PASS 16
#define SPLIT_AGAIN_MS 10000
#define SPLIT_TIMEOUT_MS 10000

/* A leader's requests at the last poll, and since when it is hot. */
typedef struct heat {
    uint64_t ops, at_ms, hot_since_ms;
} heat;

typedef struct split_state {
    u64map last; /* range id -> (void *)(uintptr_t) monotonic ms of its
                    last split attempt */
    u64map heat; /* range id -> heat */
    uint64_t obs_ms; /* the observation last looked at */
} split_state;

static void *split_init(ctl *c)
{
    (void)c;
    return calloc(1, sizeof(split_state));
}

static void split_fini(void *state)
{
    split_state *s = state;
    if (s) {
        size_t it = 0;
        uint64_t id;
        void *v;
        while (u64map_next(&s->heat, &it, &id, &v))
            free(v);
        u64map_free(&s->heat);
        u64map_free(&s->last);
    }
    free(s);
}

/* ---- what a range's leader says about it -------------------------------- */

typedef struct bounds {
    buf start, end;
    uint64_t epoch;
} bounds;

static int unhex(const char *h, buf *out)
{
    buf_reset(out);
    size_t n = strlen(h);
    if (n % 2)
        return CAIRN_ERR_PROTO;
    for (size_t i = 0; i < n; i += 2) {
        unsigned v;
        if (sscanf(h + i, "%2x", &v) != 1 || buf_append_u8(out, (uint8_t)v))
            return CAIRN_ERR_PROTO;
    }
    return 0;
}

/* METRICS of range `range` on node `node`: its bounds and epoch. */
static int ask_bounds(const meta_map *map, uint64_t node, uint64_t range,
                      bounds *b)
{
    const meta_node *nd = meta_map_node(map, node);
    if (nd == NULL)
        return CAIRN_ERR_NOT_FOUND;
    rpc_request req;
    memset(&req, 0, sizeof req);
    req.type = RPC_METRICS;
    req.id = 1;
    req.range_id = range;
    buf text = BUF_INIT;
    int rc = rpc_sync_status(nd->addr, &req, CTL_RPC_TIMEOUT_MS, &text);
    cJSON *j = rc == 0 ? cJSON_ParseWithLength((const char *)text.data,
                                               text.len)
                       : NULL;
    const cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "start") : NULL;
    const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "end") : NULL;
    const cJSON *ep = j ? cJSON_GetObjectItemCaseSensitive(j, "epoch") : NULL;
    if (rc == 0 && (!cJSON_IsString(s) || !cJSON_IsString(e) ||
                    !cJSON_IsNumber(ep)))
        rc = CAIRN_ERR_PROTO;
    if (rc == 0)
        rc = unhex(s->valuestring, &b->start);
    if (rc == 0)
        rc = unhex(e->valuestring, &b->end);
    if (rc == 0)
        b->epoch = (uint64_t)ep->valuedouble;
    cJSON_Delete(j);
    buf_free(&text);
    return rc;
}

static bool same(const uint8_t *a, size_t an, const buf *b)
{
    return an == b->len && (an == 0 || memcmp(a, b->data, an) == 0);
}

/* ---- recording splits etcd does not show -------------------------------- */

/* Child range `child` (its leader reported by `cl`): record it if its
 * parent in etcd is the one that split. true if it wrote. */
static bool record_one(ctl *c, const meta_map *map, const ctl_replica *cl)
{
    bounds cb = {BUF_INIT, BUF_INIT, 0}, pb = {BUF_INIT, BUF_INIT, 0};
    bool wrote = false;
    const meta_range *p = NULL;
    const ctl_replica *pl = NULL;
    if (ask_bounds(map, cl->node, cl->range, &cb) != 0 || cb.start.len == 0)
        goto out;
    p = meta_map_range_for(map, cl->table, cb.start.data, cb.start.len);
    if (p == NULL || !same(p->end, p->end_len, &cb.end) ||
        ctl_task_busy(c, p->id))
        goto out; /* not its parent (yet): an outer split first */
    pl = ctl_obs_leader(ctl_observed(c), p->id);
    if (pl == NULL || ask_bounds(map, pl->node, p->id, &pb) != 0 ||
        !same(cb.start.data, cb.start.len, &pb.end) ||
        !same(p->start, p->start_len, &pb.start) || pb.epoch <= p->epoch ||
        cb.epoch <= p->epoch)
        goto out;
    int rc = ctl_active(c) ? meta_range_split(ctl_meta(c), p, cb.start.data,
                                              cb.start.len, cl->range,
                                              pb.epoch, cb.epoch)
                           : CAIRN_ERR_SHUTDOWN;
    wrote = rc == 0;
    if (rc == 0)
        ctl_log(c, "range %" PRIu64 " split into range %" PRIu64
                " (applied by its replicas, now recorded): epochs %" PRIu64
                " and %" PRIu64, p->id, cl->range, pb.epoch, cb.epoch);
    else if (rc != CAIRN_ERR_CONDITION && rc != CAIRN_ERR_SHUTDOWN)
        ctl_log(c, "range %" PRIu64 ": cannot record its split into %" PRIu64
                ": %s", p->id, cl->range, cairn_err_message(rc));
out:
    buf_free(&cb.start);
    buf_free(&cb.end);
    buf_free(&pb.start);
    buf_free(&pb.end);
    return wrote;
}

static void record_splits(ctl *c, const meta_map *map, const ctl_obs *o)
{
    int done = 0;
    for (size_t i = 0; i < o->n && done < RECORDS_PER_PASS; i++) {
        const ctl_node_obs *n = &o->nodes[i];
        for (size_t k = 0; k < n->n && done < RECORDS_PER_PASS; k++) {
            const ctl_replica *r = &n->replicas[k];
            const meta_table *t = meta_map_table_by_id(map, r->table);
            if (r->role != CTL_LEADER || ctl_range(c, r->range) != NULL ||
                t == NULL || t->state != META_TABLE_READY ||
                ctl_relocating(map, r->range)) /* a move's new group */
                continue;
            done += record_one(c, map, r);
        }
    }
}

/* ---- splitting large ranges --------------------------------------------- */

static void split_large(ctl *c, split_state *s, const meta_map *map,
                        const ctl_obs *o)
{
    uint64_t limit = ctl_config(c)->split_bytes, now = ctl_now_ms();
    int done = 0;
    for (size_t i = 0; i < o->n && done < SPLITS_PER_PASS; i++) {
        const ctl_node_obs *n = &o->nodes[i];
        for (size_t k = 0; k < n->n && done < SPLITS_PER_PASS; k++) {
            const ctl_replica *r = &n->replicas[k];
            const meta_range *rg = ctl_range(c, r->range);
            if (r->role != CTL_LEADER || r->bytes <= limit || rg == NULL ||
                rg->epoch != r->epoch || rg->state != META_RANGE_NORMAL ||
                ctl_task_busy(c, rg->id) || ctl_relocating(map, rg->id) ||
                !ctl_active(c))
                continue;
            uintptr_t last = (uintptr_t)u64map_get(&s->last, rg->id);
            if (last && now - last < SPLIT_AGAIN_MS)
                continue;
            u64map_put(&s->last, rg->id, (void *)(uintptr_t)(now | 1));
            uint64_t id = 0;
            char err[512] = "";
            buf key = BUF_INIT;
            int rc = meta_split(ctl_meta(c), map, rg, NULL, 0,
                                SPLIT_TIMEOUT_MS, &id, &key, err, sizeof err);
            if (rc == 0)
                ctl_log(c, "range %" PRIu64 " (%" PRIu64 " bytes, over "
                        "--split-bytes %" PRIu64 ") split into range %" PRIu64,
                        rg->id, r->bytes, limit, id);
            else
                ctl_log(c, "range %" PRIu64 ": size split: %s", rg->id, err);
            buf_free(&key);
            done++;
        }
    }
}

/* The load key a range's leader offers (METRICS of that range). */
static int ask_load_key(const meta_map *map, uint64_t node, uint64_t range,
                        buf *key)
{
    const meta_node *nd = meta_map_node(map, node);
    if (nd == NULL)
        return CAIRN_ERR_NOT_FOUND;
    rpc_request req;
    memset(&req, 0, sizeof req);
    req.type = RPC_METRICS;
    req.id = 1;
    req.range_id = range;
    buf text = BUF_INIT;
    int rc = rpc_sync_status(nd->addr, &req, CTL_RPC_TIMEOUT_MS, &text);
    cJSON *j = rc == 0 ? cJSON_ParseWithLength((const char *)text.data,
                                               text.len)
                       : NULL;
    const cJSON *k = j ? cJSON_GetObjectItemCaseSensitive(j, "load_key")
                       : NULL;
    if (rc == 0)
        rc = cJSON_IsString(k) && k->valuestring[0]
                 ? unhex(k->valuestring, key)
                 : CAIRN_ERR_NOT_FOUND;
    cJSON_Delete(j);
    buf_free(&text);
    return rc;
}

/* Whether leader `r` has been above --split-qps in every poll for
 * --split-qps-seconds (its rate from the previous poll's count). */
static bool hot(ctl *c, split_state *s, const ctl_replica *r, uint64_t now)
{
    heat *h = u64map_get(&s->heat, r->range);
    if (h == NULL) {
        if ((h = calloc(1, sizeof *h)) == NULL ||
            u64map_put(&s->heat, r->range, h) != 0) {
            free(h);
            return false;
        }
        *h = (heat){r->ops, now, 0};
        return false;
    }
    double secs = (double)(now - h->at_ms) / 1000.0;
    double qps = secs > 0 && r->ops >= h->ops ? (r->ops - h->ops) / secs : 0;
    h->ops = r->ops;
    h->at_ms = now;
    if (qps < ctl_config(c)->split_qps) {
        h->hot_since_ms = 0;
        return false;
    }
    if (h->hot_since_ms == 0)
        h->hot_since_ms = now;
    return now - h->hot_since_ms >=
           (uint64_t)ctl_config(c)->split_qps_seconds * 1000;
}

static void split_hot(ctl *c, split_state *s, const meta_map *map,
                      const ctl_obs *o)
{
    if (o->taken_ms == s->obs_ms)
        return; /* rates need a new observation */
    s->obs_ms = o->taken_ms;
    int done = 0;
    for (size_t i = 0; i < o->n; i++) {
        const ctl_node_obs *n = &o->nodes[i];
        for (size_t k = 0; k < n->n; k++) {
            const ctl_replica *r = &n->replicas[k];
            if (r->role != CTL_LEADER)
                continue;
            const meta_range *rg = ctl_range(c, r->range);
            if (!hot(c, s, r, o->taken_ms) || !r->load_key || rg == NULL ||
                rg->epoch != r->epoch || rg->state != META_RANGE_NORMAL ||
                ctl_task_busy(c, rg->id) || ctl_relocating(map, rg->id) ||
                !ctl_active(c) ||
                done >= SPLITS_PER_PASS)
                continue;
            uintptr_t last = (uintptr_t)u64map_get(&s->last, rg->id);
            if (last && o->taken_ms - last < SPLIT_AGAIN_MS)
                continue;
            u64map_put(&s->last, rg->id, (void *)(uintptr_t)(o->taken_ms | 1));
            buf key = BUF_INIT;
            uint64_t id = 0;
            char err[512] = "";
            int rc = ask_load_key(map, r->node, rg->id, &key);
            if (rc == 0)
                rc = meta_split(ctl_meta(c), map, rg, key.data, key.len,
                                SPLIT_TIMEOUT_MS, &id, NULL, err, sizeof err);
            if (rc == 0)
                ctl_log(c, "range %" PRIu64 " (hot: over --split-qps %d for "
                        "%d s) split at its load median into range %" PRIu64,
                        rg->id, ctl_config(c)->split_qps,
                        ctl_config(c)->split_qps_seconds, id);
            else if (err[0])
                ctl_log(c, "range %" PRIu64 ": load split: %s", rg->id, err);
            buf_free(&key);
            done++;
        }
    }
}

static void split_run(ctl *c, void *state, const meta_map *map)
{
    const ctl_obs *o = ctl_observed(c);
    if (o == NULL)
        return;
    record_splits(c, map, o);
    if (ctl_config(c)->split_bytes > 0)
        split_large(c, state, map, o);
    if (ctl_config(c)->split_qps > 0)
        split_hot(c, state, map, o);
}

const ctl_reconciler ctl_reconcile_split = {
    .name = "split",
    .init = split_init,
    .fini = split_fini,
    .run = split_run,
};
