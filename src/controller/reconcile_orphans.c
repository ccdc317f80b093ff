/*
 * reconcile_orphans.c - replicas that belong to no group any more are
 * deleted (issue 9: "a replica removed from its group must be cleaned up
 * and never serve").
 *
 * A replica is removed from its group while its node is down or stopped
 * (a dead node replaced, a lagging follower under SIGSTOP); when the node
 * is back it still hosts the replica. That replica cannot serve - it is in
 * no quorum, and its old peers no longer take its votes (their logs are
 * ahead) - but it holds data and a log. It is an orphan when, in every
 * poll for ORPHAN_GRACE_POLLS polls (at least 3 s) in a row:
 *   - its range is in etcd without its node, no move is adding its node
 *     (the new replica of a move exists before the add), no task works on
 *     the range, and the range's leader reports a configuration without
 *     its node; or
 *   - its table is gone from etcd altogether (dropped while the node was
 *     decommissioned or down).
 * A replica of a table that exists but whose range is unknown is left
 * alone (a split or a create may be writing it). Before the drop the
 * range is read again from etcd, not from the snapshot.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/grow.h"
#include "controller/controller_int.h"

/* Seen orphaned in polls spanning this long (and at least 3 s). */
#define ORPHAN_GRACE_POLLS 3

typedef struct suspect {
    uint64_t range, table, node, since, obs;
} suspect;

typedef struct orphans_state {
    suspect *v;
    size_t n, cap;
    uint64_t last_obs;
} orphans_state;

static void *orphans_init(ctl *c)
{
    return calloc(1, sizeof(orphans_state));
}

static void orphans_fini(void *state)
{
    orphans_state *s = state;
    if (s)
        free(s->v);
    free(s);
}

static bool in_config(const ctl_replica *l, uint64_t node)
{
    if (l->node == node)
        return true;
    for (int i = 0; i < l->n_followers; i++)
        if (l->followers[i].id == node)
            return true;
    return false;
}

static bool listed(const meta_range *rg, uint64_t node)
{
    for (int i = 0; i < rg->n_replicas; i++)
        if (rg->replicas[i] == node)
            return true;
    return false;
}

/* Whether the replica of `r` on its node looks orphaned in this pass. */
static bool looks_orphaned(ctl *c, const meta_map *map, const ctl_replica *r)
{
    const meta_range *rg = ctl_range(c, r->range);
    if (rg == NULL)
        return meta_map_table_by_id(map, r->table) == NULL;
    if (listed(rg, r->node) || ctl_task_busy(c, rg->id))
        return false;
    const meta_move *mv = meta_map_move(map, rg->id);
    if (mv && mv->add == r->node)
        return false;
    const ctl_replica *l = ctl_obs_leader(ctl_observed(c), rg->id);
    return l && !in_config(l, r->node) &&
           ctl_obs_confirmed(ctl_observed(c), l);
}

/* The fresh check, against etcd itself. */
static bool still_orphaned(ctl *c, const suspect *x)
{
    meta_range rg;
    int rc = meta_range_get(ctl_meta(c), x->table, x->range, &rg);
    if (rc == CAIRN_ERR_RANGE_NOT_FOUND)
        return ctl_range(c, x->range) == NULL;
    if (rc != 0)
        return false;
    bool orphan = !listed(&rg, x->node);
    meta_range_clear(&rg);
    meta_move mv;
    rc = meta_move_get(ctl_meta(c), x->range, &mv);
    if (rc == 0 && mv.add == x->node)
        orphan = false;
    else if (rc != 0 && rc != CAIRN_ERR_NOT_FOUND)
        orphan = false;
    return orphan;
}

static void orphans_run(ctl *c, void *state, const meta_map *map)
{
    orphans_state *s = state;
    const ctl_obs *o = ctl_observed(c);
    if (o == NULL || o->taken_ms == s->last_obs)
        return;
    s->last_obs = o->taken_ms;
    for (size_t i = 0; i < o->n; i++) {
        const ctl_node_obs *nd = &o->nodes[i];
        for (size_t k = 0; nd->answered && k < nd->n; k++) {
            const ctl_replica *r = &nd->replicas[k];
            if (!looks_orphaned(c, map, r))
                continue;
            suspect *x = NULL;
            for (size_t j = 0; j < s->n && !x; j++)
                if (s->v[j].range == r->range && s->v[j].node == r->node)
                    x = &s->v[j];
            if (x == NULL) {
                if (grow_array((void **)&s->v, s->n, &s->cap, sizeof *s->v,
                               8) != 0)
                    continue;
                x = &s->v[s->n++];
                *x = (suspect){.range = r->range, .table = r->table,
                               .node = r->node, .since = ctl_now_ms()};
            }
            x->obs = o->taken_ms;
        }
    }
    for (size_t j = 0; j < s->n;) {
        suspect *x = &s->v[j];
        if (x->obs != o->taken_ms) { /* not orphaned any more */
            *x = s->v[--s->n];
            continue;
        }
        uint64_t grace = (uint64_t)ctl_config(c)->poll_ms * ORPHAN_GRACE_POLLS;
        if (grace < 3000)
            grace = 3000;
        if (ctl_now_ms() - x->since >= grace && ctl_active(c) &&
            still_orphaned(c, x) &&
            ctl_drop_start(c, map, x->range, x->node) == 0)
            ctl_log(c, "range %" PRIu64 ": node %" PRIu64 " holds a replica "
                    "outside the group: dropping it", x->range, x->node);
        j++;
    }
}

const ctl_reconciler ctl_reconcile_orphans = {
    .name = "orphans",
    .init = orphans_init,
    .fini = orphans_fini,
    .run = orphans_run,
};
