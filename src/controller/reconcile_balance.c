/*
 * reconcile_balance.c - even load (issue 9, "Balance"): leaders spread
 * over the usable nodes, and replicas spread onto a node that joined.
 *
 * Leaders. A leader on a node that is not usable (draining, or suspect
 * but still leading) is handed to a voter on a usable node; then, while
 * one usable node leads two or more ranges more than another, one of its
 * ranges with a caught-up voter on a less loaded node is handed over
 * (TRANSFER_LEADER: the old leader refuses new writes with TRYAGAIN while
 * handing over, which the router retries; nothing is lost). At most
 * --transfer-rate transfers run at once, and the next are planned on an
 * observation taken after they finished.
 *
 * Replicas. While a usable node holds two or more replicas fewer than
 * another, one replica moves from the fullest to the emptiest (add there,
 * then remove here: never fewer replicas than the factor), a range that
 * does not already have a replica there and whose other replicas are not
 * in the new node's zone; among those, the one whose bytes bring the two
 * nodes' bytes closest. At most --rebalance-rate moves start per minute,
 * two at a time, and none while a range is under-replicated, being
 * repaired or drained. The plan and its progress are recorded in
 * P/balance for `cairn status`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "controller/controller_int.h"

#define BALANCE_CONCURRENT 2
/* A follower this far behind would make a transfer wait for it. */
#define TRANSFER_MAX_LAG 64

typedef struct balance_state {
    uint64_t next_move_ms;
} balance_state;

static void *balance_init(ctl *c)
{
    return calloc(1, sizeof(balance_state));
}

typedef struct load {
    uint64_t id;
    const char *zone;
    int64_t leaders, replicas;
    uint64_t bytes;
} load;

static load *find(load *v, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].id == id)
            return &v[i];
    return NULL;
}

/* The usable nodes with their counts (NULL when out of memory). */
static load *loads(ctl *c, const meta_map *map, size_t *n_out)
{
    size_t n = meta_map_node_count(map), k = 0;
    load *v = calloc(n ? n : 1, sizeof *v);
    if (v == NULL)
        return NULL;
    const ctl_obs *o = ctl_observed(c);
    for (size_t i = 0; i < n; i++) {
        const meta_node *nd = meta_map_node_at(map, i);
        if (!ctl_node_usable(c, nd->id))
            continue;
        const ctl_health *h = ctl_node_health(c, nd->id);
        const ctl_node_obs *ob = ctl_obs_node(o, nd->id);
        v[k++] = (load){.id = nd->id, .zone = nd->zone,
                        .replicas = (int64_t)h->replicas + ctl_task_delta(c, nd->id),
                        .bytes = ob ? ob->bytes : 0};
    }
    size_t i = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&o->leaders, &i, &key, &val)) {
        load *l = find(v, k, ((const ctl_replica *)val)->node);
        if (l && ctl_range(c, key))
            l->leaders++;
    }
    *n_out = k;
    return v;
}

/* ---- leaders ------------------------------------------------------------ */

/* The usable, caught-up voter of `l`'s range with the fewest leaders
 * (below `below`), or NULL. */
static load *best_follower(load *v, size_t n, const ctl_replica *l,
                           int64_t below)
{
    load *best = NULL;
    for (int i = 0; i < l->n_followers; i++) {
        const ctl_follower *f = &l->followers[i];
        load *x = f->role == CTL_VOTER && f->lag_entries <= TRANSFER_MAX_LAG
                      ? find(v, n, f->id)
                      : NULL;
        if (x && x->leaders < below && (!best || x->leaders < best->leaders))
            best = x;
    }
    return best;
}

static void balance_leaders(ctl *c, const meta_map *map, load *v, size_t n)
{
    const controller_config *cfg = ctl_config(c);
    const ctl_obs *o = ctl_observed(c);
    if (cfg->transfer_rate < 0 || n == 0 ||
        ctl_task_count(c, CTL_TASK_LEADER) > 0 ||
        o->taken_ms <= ctl_task_last_done(c, CTL_TASK_LEADER))
        return;
    int budget = cfg->transfer_rate;
    /* Leaders on nodes that should not lead: off them first. */
    size_t i = 0;
    uint64_t key;
    void *val;
    while (budget > 0 && u64map_next(&o->leaders, &i, &key, &val)) {
        const ctl_replica *l = val;
        if (ctl_range(c, key) == NULL || find(v, n, l->node) ||
            ctl_task_busy(c, key))
            continue;
        const ctl_health *h = ctl_node_health(c, l->node);
        if (h == NULL || !h->answered)
            continue; /* not reachable: its followers elect on their own */
        load *to = best_follower(v, n, l, INT64_MAX);
        if (to && ctl_transfer_start(c, map, key, l->node, to->id) == 0) {
            to->leaders++;
            budget--;
        }
    }
    /* Then even them out. */
    while (budget > 0) {
        load *src = NULL;
        for (size_t k = 0; k < n; k++)
            if (!src || v[k].leaders > src->leaders)
                src = &v[k];
        bool moved = false;
        i = 0;
        while (!moved && u64map_next(&o->leaders, &i, &key, &val)) {
            const ctl_replica *l = val;
            if (l->node != src->id || ctl_range(c, key) == NULL ||
                ctl_task_busy(c, key))
                continue;
            load *to = best_follower(v, n, l, src->leaders - 1);
            if (to && ctl_transfer_start(c, map, key, src->id, to->id) == 0) {
                src->leaders--;
                to->leaders++;
                moved = true;
            }
        }
        if (!moved)
            break;
        budget--;
    }
}

/* ---- replicas ----------------------------------------------------------- */

static bool on(const meta_range *rg, uint64_t id)
{
    for (int i = 0; i < rg->n_replicas; i++)
        if (rg->replicas[i] == id)
            return true;
    return false;
}

/* Whether a replica of `rg` may go from src to dst without two of its
 * replicas sharing dst's zone (when zones are given). */
static bool zone_ok(const meta_map *map, const meta_range *rg, uint64_t src,
                    const char *dst_zone)
{
    if (dst_zone == NULL || dst_zone[0] == '\0')
        return true;
    for (int i = 0; i < rg->n_replicas; i++) {
        const meta_node *m = meta_map_node(map, rg->replicas[i]);
        if (rg->replicas[i] != src && m && strcmp(m->zone, dst_zone) == 0)
            return false;
    }
    return true;
}

/* The range to move from src to dst: the one whose bytes bring the two
 * closest, the ones src does not lead first. */
static const meta_range *pick(ctl *c, const meta_map *map, const load *src,
                              const load *dst)
{
    const meta_range *best = NULL;
    int64_t best_gap = 0;
    bool best_leads = true;
    int64_t gap = (int64_t)src->bytes - (int64_t)dst->bytes;
    const ctl_obs *o = ctl_observed(c);
    for (size_t i = 0; i < meta_map_table_count(map); i++) {
        const meta_table *t = meta_map_table_at(map, i);
        if (t->state != META_TABLE_READY)
            continue;
        size_t n = 0;
        const meta_range *rs = meta_map_ranges(map, t->id, &n);
        for (size_t k = 0; k < n; k++) {
            const meta_range *rg = &rs[k];
            if (rg->state != META_RANGE_NORMAL || !on(rg, src->id) ||
                on(rg, dst->id) || rg->n_replicas != t->replicas ||
                meta_map_move(map, rg->id) || ctl_task_busy(c, rg->id) ||
                ctl_relocating(map, rg->id) ||
                !zone_ok(map, rg, src->id, dst->zone))
                continue;
            const ctl_replica *l = ctl_obs_leader(o, rg->id);
            if (l == NULL)
                continue;
            bool leads = l->node == src->id;
            int64_t after = gap - 2 * (int64_t)l->bytes;
            int64_t g = after < 0 ? -after : after;
            if (!best || (best_leads && !leads) ||
                (best_leads == leads && g < best_gap)) {
                best = rg;
                best_gap = g;
                best_leads = leads;
            }
        }
    }
    return best;
}

/* Keep P/balance saying how far the rebalancing has come. */
static void progress(ctl *c, const meta_map *map, int64_t planned)
{
    const meta_balance *b = meta_map_balance(map);
    if (!ctl_active(c))
        return;
    if (planned == 0) {
        if (b)
            meta_balance_delete(ctl_meta(c), b->mod_revision);
        return;
    }
    meta_balance want = {.since = b ? b->since : ctl_wall_ms(),
                         .total = b ? b->total : (uint64_t)planned};
    if (want.total < (uint64_t)planned)
        want.total = (uint64_t)planned; /* more came in (a node joined) */
    want.done = want.total - (uint64_t)planned;
    if (b && b->total == want.total && b->done == want.done)
        return;
    meta_balance_put(ctl_meta(c), &want, b ? b->mod_revision : 0);
}

static void balance_replicas(ctl *c, balance_state *s, const meta_map *map,
                             load *v, size_t n)
{
    const controller_config *cfg = ctl_config(c);
    if (cfg->rebalance_rate < 0 || n < 2 || ctl_unplaced(c) > 0 ||
        ctl_task_count(c, CTL_TASK_REPAIR) > 0 ||
        ctl_task_count(c, CTL_TASK_DRAIN) > 0)
        return;
    for (size_t i = 0; i < meta_map_node_count(map); i++)
        if (meta_map_drain(map, meta_map_node_at(map, i)->id))
            return; /* a drain first */
    load *hi = NULL, *lo = NULL;
    int64_t total = 0;
    for (size_t k = 0; k < n; k++) {
        total += v[k].replicas;
        if (!hi || v[k].replicas > hi->replicas ||
            (v[k].replicas == hi->replicas && v[k].bytes > hi->bytes))
            hi = &v[k];
        if (!lo || v[k].replicas < lo->replicas ||
            (v[k].replicas == lo->replicas && v[k].bytes < lo->bytes))
            lo = &v[k];
    }
    int64_t ceil_mean = (total + (int64_t)n - 1) / (int64_t)n, planned = 0;
    for (size_t k = 0; k < n; k++)
        if (v[k].replicas > ceil_mean)
            planned += v[k].replicas - ceil_mean;
    if (hi->replicas - lo->replicas <= 1)
        planned = 0;
    progress(c, map, planned);
    if (planned == 0 || ctl_now_ms() < s->next_move_ms)
        return;
    const meta_range *rg = pick(c, map, hi, lo);
    if (rg == NULL)
        return;
    meta_move mv = {.range_id = rg->id, .table_id = rg->table_id,
                    .kind = META_MOVE_REBALANCE, .add = lo->id,
                    .remove = hi->id};
    if (ctl_move_start(c, map, &mv, CTL_TASK_BALANCE, BALANCE_CONCURRENT) == 0)
        s->next_move_ms = ctl_now_ms() + 60000 / (uint64_t)cfg->rebalance_rate;
}

static void balance_run(ctl *c, void *state, const meta_map *map)
{
    if (ctl_observed(c) == NULL)
        return;
    size_t n = 0;
    load *v = loads(c, map, &n);
    if (v == NULL)
        return;
    balance_replicas(c, state, map, v, n);
    balance_leaders(c, map, v, n);
    free(v);
}

const ctl_reconciler ctl_reconcile_balance = {
    .name = "balance",
    .init = balance_init,
    .fini = free,
    .run = balance_run,
};
