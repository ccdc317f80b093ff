/*
 * reconcile_repair.c - every range at its replication factor, on healthy
 * nodes (issue 9, "Replacement", "Drain").
 *
 * For each range of a ready table, in this order, the first that applies:
 *   - a move under way (P/moves/<range>) and no task on it: a controller
 *     died in the middle; resume it, or drop the intent if the node it was
 *     adding is no longer fit (what was done is then put right by the
 *     rules below);
 *   - the etcd record differs from the configuration the range's leader
 *     reports (a change made but not recorded: a controller that died
 *     between the two, or `cairn admin add-replica`): record what Raft
 *     has, at the leader's epoch - Raft is the truth about membership and
 *     epochs, etcd its record. Should etcd's epoch be ahead of the
 *     leader's (or equal, with other voters), the leader first applies
 *     one above it (BUMP_EPOCH): replicas serve only their current epoch,
 *     so etcd must never hold one they do not have;
 *   - a non-voter left in the configuration by an add nobody finishes
 *     (none under way for a minute): removed;
 *   - a replica on a dead node, or a follower that lags past the
 *     thresholds: replaced (add a replica elsewhere, then remove it);
 *   - a replica its node refuses as corrupt, or that a node which answers
 *     has not held for MISSING_GRACE_MS (its data directory was wiped):
 *     rebuilt - replaced like a dead one if another node can take it,
 *     else removed first (it counts for nothing) so that the next pass
 *     adds it back, from its peers, to the same node;
 *   - fewer replicas than the table's factor: one added; more: one
 *     removed (never below a majority of healthy ones);
 *   - a replica on a draining node: moved off.
 * Placement: ctl_place (place.c). With no node to place on, the range
 * stays as it is - under-replicated, never shrunk - and `cairn status`
 * says so. A change that would need a majority the range does not have
 * (2 of 3 replicas dead) is not attempted: nothing can commit it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/grow.h"
#include "controller/controller_int.h"

/* A non-voter no move accounts for is removed after this long. */
#define NONVOTER_GRACE_MS 60000
/* A replica a node that answers does not hold is rebuilt after this long
 * (a split's new range reaches a slow follower within it). */
#define MISSING_GRACE_MS 30000
/* Say that a range cannot be placed at most this often. */
#define UNPLACED_LOG_MS 30000

typedef struct seen {
    uint64_t range, node, since, pass;
} seen;

/* (range, node) pairs noticed in a pass, with when first noticed. */
typedef struct seen_set {
    seen *v;
    size_t n, cap;
} seen_set;

/* The entry of (range, node), added if new; marked seen in `pass`. NULL
 * if out of memory. */
static seen *seen_note(seen_set *s, uint64_t range, uint64_t node,
                       uint64_t pass)
{
    seen *e = NULL;
    for (size_t k = 0; k < s->n && !e; k++)
        if (s->v[k].range == range && s->v[k].node == node)
            e = &s->v[k];
    if (e == NULL) {
        if (grow_array((void **)&s->v, s->n, &s->cap, sizeof *s->v, 8) != 0)
            return NULL;
        e = &s->v[s->n++];
        *e = (seen){.range = range, .node = node, .since = ctl_now_ms()};
    }
    e->pass = pass;
    return e;
}

/* Forget the pairs not noticed in `pass` (gone, or put right). */
static void seen_forget(seen_set *s, uint64_t pass)
{
    for (size_t k = 0; k < s->n;)
        if (s->v[k].pass != pass)
            s->v[k] = s->v[--s->n];
        else
            k++;
}

typedef struct repair_state {
    seen_set nonvoters;
    seen_set missing; /* replicas a node that answers does not hold */
    seen_set ahead;   /* ranges whose etcd epoch is ahead of the leader's */
    uint64_t pass;
    uint64_t unplaced_logged_ms;
    ctl_place_node *pn; /* this pass's placement view */
    size_t n_pn;
} repair_state;

static void *repair_init(ctl *c)
{
    return calloc(1, sizeof(repair_state));
}

static void repair_fini(void *state)
{
    repair_state *s = state;
    if (s) {
        free(s->nonvoters.v);
        free(s->missing.v);
        free(s->ahead.v);
        free(s->pn);
    }
    free(s);
}

static bool member(const meta_range *rg, uint64_t id)
{
    for (int i = 0; i < rg->n_replicas; i++)
        if (rg->replicas[i] == id)
            return true;
    return false;
}

static ctl_place_node *pn_find(repair_state *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_pn; i++)
        if (s->pn[i].id == id)
            return &s->pn[i];
    return NULL;
}

/* The placement view: every node, usable or not, its replicas counting
 * the moves under way, its bytes. */
static int build_pn(ctl *c, repair_state *s, const meta_map *map)
{
    size_t n = meta_map_node_count(map);
    ctl_place_node *pn = calloc(n ? n : 1, sizeof *pn);
    if (pn == NULL)
        return CAIRN_ERR_NOMEM;
    const ctl_obs *o = ctl_observed(c);
    for (size_t i = 0; i < n; i++) {
        const meta_node *nd = meta_map_node_at(map, i);
        const ctl_health *h = ctl_node_health(c, nd->id);
        const ctl_node_obs *ob = ctl_obs_node(o, nd->id);
        pn[i] = (ctl_place_node){
            .id = nd->id, .zone = nd->zone, .usable = ctl_node_usable(c, nd->id),
            .replicas = (h ? (int64_t)h->replicas : 0) + ctl_task_delta(c, nd->id),
            .bytes = ob ? ob->bytes : 0};
    }
    free(s->pn);
    s->pn = pn;
    s->n_pn = n;
    return 0;
}

static int start(ctl *c, repair_state *s, const meta_map *map,
                 const meta_range *rg, meta_move_kind kind, uint64_t add,
                 uint64_t remove)
{
    meta_move mv = {.range_id = rg->id, .table_id = rg->table_id,
                    .kind = kind, .add = add, .remove = remove};
    int cls = kind == META_MOVE_DRAIN ? CTL_TASK_DRAIN : CTL_TASK_REPAIR;
    int limit = ctl_config(c)->max_moves;
    if (cls == CTL_TASK_DRAIN)
        limit = limit / 2 > 0 ? limit / 2 : 1;
    int rc = ctl_move_start(c, map, &mv, cls, limit);
    if (rc == 0) {
        ctl_place_node *p = add ? pn_find(s, add) : NULL;
        if (p)
            p->replicas++;
        p = remove ? pn_find(s, remove) : NULL;
        if (p)
            p->replicas--;
    }
    return rc;
}

/* ---- a move a dead controller left ---------------------------------------- */

static void resume(ctl *c, const meta_map *map, const meta_move *snap)
{
    /* The snapshot may not show yet that a task of ours just finished
     * this move: resume only what etcd still holds. */
    meta_move fresh;
    if (meta_move_get(ctl_meta(c), snap->range_id, &fresh) != 0 ||
        fresh.mod_revision != snap->mod_revision)
        return;
    const meta_move *mv = &fresh;
    const ctl_health *h = mv->add ? ctl_node_health(c, mv->add) : NULL;
    if (mv->add && (h == NULL || h->state == META_NODE_DEAD || h->draining)) {
        if (!ctl_active(c))
            return;
        int rc = meta_move_delete(ctl_meta(c), mv->range_id, mv->mod_revision);
        if (rc == 0)
            ctl_log(c, "range %" PRIu64 ": abandoned the %s that was adding "
                    "node %" PRIu64 " (no longer fit)", mv->range_id,
                    meta_move_kind_name(mv->kind), mv->add);
        return;
    }
    int cls = mv->kind == META_MOVE_DRAIN       ? CTL_TASK_DRAIN
              : mv->kind == META_MOVE_REBALANCE ? CTL_TASK_BALANCE
                                                : CTL_TASK_REPAIR;
    ctl_move_start(c, map, mv, cls, ctl_config(c)->max_moves);
}

/* ---- etcd behind Raft --------------------------------------------------- */

/* etcd's epoch is ahead of the leader's, or equal with other voters:
 * have the leader apply one above it - once an observation taken after
 * this was first noticed still shows it, since a change just recorded
 * (a split, a move) may be newer than the observation. */
static void move_past(ctl *c, repair_state *s, const meta_map *map,
                      const meta_range *rg, const ctl_replica *l)
{
    seen *e = seen_note(&s->ahead, rg->id, 0, s->pass);
    if (e && ctl_observed(c)->taken_ms > e->since)
        ctl_bump_start(c, map, rg->id, l->node, rg->epoch);
}

/* Record the voters the leader reports if etcd says otherwise, or an
 * epoch the nodes are ahead of. true if it acted (or must wait). */
static bool adopt(ctl *c, repair_state *s, const meta_map *map,
                  const meta_range *rg, const ctl_replica *l)
{
    uint64_t voters[META_MAX_REPLICAS];
    int n = 0;
    voters[n++] = l->node;
    for (int i = 0; i < l->n_followers && n < META_MAX_REPLICAS; i++)
        if (l->followers[i].role == CTL_VOTER)
            voters[n++] = l->followers[i].id;
    bool same = n == rg->n_replicas;
    for (int i = 0; same && i < n; i++)
        same = member(rg, voters[i]);
    if (same && l->epoch == rg->epoch)
        return false;
    if (!ctl_obs_confirmed(ctl_observed(c), l))
        return true; /* not on the word of a leader nobody follows */
    /* An observation older than the last membership change a task made
     * may predate it: wait for a newer one. */
    const ctl_obs *o = ctl_observed(c);
    for (int k = 0; k < CTL_TASK_CLASSES; k++)
        if (o->taken_ms <= ctl_task_last_done(c, k))
            return true;
    if (l->epoch <= rg->epoch) {
        move_past(c, s, map, rg, l);
        return true;
    }
    meta_range next;
    if (meta_range_copy(&next, rg) != 0)
        return true;
    next.n_replicas = 0;
    for (int i = 0; i < rg->n_replicas; i++) /* keep etcd's order */
        for (int k = 0; k < n; k++)
            if (voters[k] == rg->replicas[i])
                next.replicas[next.n_replicas++] = voters[k];
    for (int k = 0; k < n; k++)
        if (!member(rg, voters[k]))
            next.replicas[next.n_replicas++] = voters[k];
    next.epoch = l->epoch;
    int rc = ctl_active(c) ? meta_range_update(ctl_meta(c), rg, &next)
                           : CAIRN_ERR_SHUTDOWN;
    if (rc == 0)
        ctl_log(c, "range %" PRIu64 ": recorded the membership its leader "
                "(node %" PRIu64 ") reports: %d voters, epoch %" PRIu64
                " (etcd had %d replicas, epoch %" PRIu64 ")", rg->id,
                l->node, n, next.epoch, rg->n_replicas, rg->epoch);
    else if (rc != CAIRN_ERR_CONDITION && rc != CAIRN_ERR_SHUTDOWN)
        ctl_log(c, "range %" PRIu64 ": cannot record its membership: %s",
                rg->id, cairn_err_message(rc));
    meta_range_clear(&next);
    return true;
}

/* A standby or spare no move accounts for, there for a minute: removed. */
static bool stray_nonvoter(ctl *c, repair_state *s, const meta_map *map,
                           const meta_range *rg, const ctl_replica *l)
{
    for (int i = 0; i < l->n_followers; i++) {
        const ctl_follower *f = &l->followers[i];
        if (f->role == CTL_VOTER)
            continue;
        seen *e = seen_note(&s->nonvoters, rg->id, f->id, s->pass);
        if (e == NULL)
            return false;
        if (ctl_now_ms() - e->since < NONVOTER_GRACE_MS)
            continue;
        ctl_log(c, "range %" PRIu64 ": node %" PRIu64 " has been a non-voter "
                "for a minute with no add under way: removing it", rg->id,
                f->id);
        start(c, s, map, rg, META_MOVE_REPAIR, 0, f->id);
        return true;
    }
    return false;
}

/* ---- replicas to replace, add, remove, move off --------------------------- */

/* Whether node `id` answered this pass and holds no working replica of
 * the range: it reports it corrupt, or does not list it at all. */
static bool not_held(ctl *c, const meta_range *rg, uint64_t id)
{
    const ctl_node_obs *o = ctl_obs_node(ctl_observed(c), id);
    return o && o->answered &&
           (ctl_obs_corrupt(o, rg->id) || ctl_obs_replica(o, rg->id) == NULL);
}

/* Replicas on nodes that answer, are not dead, do not lag and hold it. */
static int healthy(ctl *c, const meta_range *rg, uint64_t except)
{
    int n = 0;
    for (int i = 0; i < rg->n_replicas; i++) {
        uint64_t id = rg->replicas[i];
        const ctl_health *h = ctl_node_health(c, id);
        n += id != except && h && h->answered && h->state != META_NODE_DEAD &&
             !ctl_lagging(c, rg->id, id) && !not_held(c, rg, id);
    }
    return n;
}

/* A member of the range to rebuild: reported corrupt now, or missing from
 * a node that answers for MISSING_GRACE_MS. 0 if none. */
static uint64_t to_rebuild(ctl *c, repair_state *s, const meta_range *rg)
{
    for (int i = 0; i < rg->n_replicas; i++) {
        uint64_t id = rg->replicas[i];
        if (!not_held(c, rg, id))
            continue;
        if (ctl_obs_corrupt(ctl_obs_node(ctl_observed(c), id), rg->id))
            return id;
        seen *e = seen_note(&s->missing, rg->id, id, s->pass);
        if (e == NULL)
            return 0;
        if (ctl_now_ms() - e->since >= MISSING_GRACE_MS)
            return id;
    }
    return 0;
}

/* Rebuild the replica on node `bad`: elsewhere if a node can take it,
 * else remove it first - it serves nothing, so the healthy ones left
 * must only be a majority of what remains - and the next pass adds one
 * back, which may be on the same node. */
static void rebuild(ctl *c, repair_state *s, const meta_map *map,
                    const meta_range *rg, uint64_t bad)
{
    int n = rg->n_replicas;
    uint64_t to = ctl_place(s->pn, s->n_pn, rg->replicas, n, bad);
    int left = healthy(c, rg, bad);
    if (to ? left + 1 < (n + 1) / 2 + 1 : left < (n - 1) / 2 + 1)
        return; /* nothing could commit the change */
    if (start(c, s, map, rg, META_MOVE_REBUILD, to, bad) != 0)
        return;
    ctl_log(c, "range %" PRIu64 ": the replica on node %" PRIu64 " is %s: "
            "rebuilding it %s", rg->id, bad,
            ctl_obs_corrupt(ctl_obs_node(ctl_observed(c), bad), rg->id)
                ? "corrupt" : "missing",
            to ? "on another node" : "in place (removed, then added back)");
}

static void unplaced(ctl *c, repair_state *s, const meta_range *rg,
                     const char *why)
{
    ctl_note_unplaced(c);
    if (ctl_now_ms() < s->unplaced_logged_ms)
        return;
    s->unplaced_logged_ms = ctl_now_ms() + UNPLACED_LOG_MS;
    ctl_log(c, "range %" PRIu64 " (and maybe others): %s, and no live node "
            "can take a replica: left as it is", rg->id, why);
}

static void repair_range(ctl *c, repair_state *s, const meta_map *map,
                         const meta_table *t, const meta_range *rg)
{
    if (ctl_task_busy(c, rg->id) || ctl_relocating(map, rg->id))
        return; /* a move to a new group (relocate.c) owns it */
    const meta_move *mv = meta_map_move(map, rg->id);
    if (mv) {
        resume(c, map, mv);
        return;
    }
    if (rg->state != META_RANGE_NORMAL)
        return; /* a split or move owns it */
    const ctl_replica *l = ctl_obs_leader(ctl_observed(c), rg->id);
    if (l == NULL)
        return; /* no leader: no change could commit */
    if (adopt(c, s, map, rg, l) || stray_nonvoter(c, s, map, rg, l))
        return;
    uint64_t bad = to_rebuild(c, s, rg);
    if (bad) {
        rebuild(c, s, map, rg, bad);
        return;
    }
    int n = rg->n_replicas;
    uint64_t victim = 0;
    meta_move_kind kind = META_MOVE_REPLACE;
    for (int i = 0; i < n; i++) {
        uint64_t id = rg->replicas[i];
        const ctl_health *h = ctl_node_health(c, id);
        if (h == NULL || h->state == META_NODE_DEAD) {
            victim = id; /* dead (or decommissioned) first */
            kind = META_MOVE_REPLACE;
            break;
        }
        if (victim == 0 && ctl_lagging(c, rg->id, id) && id != l->node) {
            victim = id;
            kind = META_MOVE_LAGGING;
        }
    }
    if (victim) {
        uint64_t to = ctl_place(s->pn, s->n_pn, rg->replicas, n, victim);
        if (to == 0) {
            unplaced(c, s, rg, kind == META_MOVE_REPLACE
                                   ? "a replica is on a dead node"
                                   : "a replica lags");
            return;
        }
        /* The add makes n + 1 voters; a majority of them must be healthy
         * to commit it. */
        if (healthy(c, rg, victim) + 1 < (n + 1) / 2 + 1)
            return;
        start(c, s, map, rg, kind, to, victim);
        return;
    }
    if (n < t->replicas) {
        uint64_t to = ctl_place(s->pn, s->n_pn, rg->replicas, n, 0);
        if (to == 0)
            unplaced(c, s, rg, "fewer replicas than the table's factor");
        else
            start(c, s, map, rg, META_MOVE_REPAIR, to, 0);
        return;
    }
    if (n > t->replicas) {
        /* The one to let go: draining, else not answering, else the most
         * loaded; the leader last. */
        uint64_t pick = 0;
        int best = -1;
        for (int i = 0; i < n; i++) {
            uint64_t id = rg->replicas[i];
            const ctl_health *h = ctl_node_health(c, id);
            const ctl_place_node *p = pn_find(s, id);
            int score = (h && h->draining) * 4 + (h && !h->answered) * 2 +
                        (id != l->node);
            if (score > best ||
                (score == best && p && pn_find(s, pick) &&
                 p->replicas > pn_find(s, pick)->replicas)) {
                best = score;
                pick = id;
            }
        }
        if (healthy(c, rg, pick) >= (n - 1) / 2 + 1)
            start(c, s, map, rg, META_MOVE_REPAIR, 0, pick);
        return;
    }
    for (int i = 0; i < n; i++) {
        uint64_t id = rg->replicas[i];
        const ctl_health *h = ctl_node_health(c, id);
        if (!h || !h->draining)
            continue;
        uint64_t to = ctl_place(s->pn, s->n_pn, rg->replicas, n, id);
        if (to == 0)
            unplaced(c, s, rg, "a replica is on a draining node");
        else
            start(c, s, map, rg, META_MOVE_DRAIN, to, id);
        return;
    }
}

static void repair_run(ctl *c, void *state, const meta_map *map)
{
    repair_state *s = state;
    if (ctl_observed(c) == NULL || build_pn(c, s, map) != 0)
        return;
    s->pass++;
    for (size_t i = 0; i < meta_map_table_count(map) && ctl_active(c); i++) {
        const meta_table *t = meta_map_table_at(map, i);
        if (t->state != META_TABLE_READY)
            continue;
        size_t n = 0;
        const meta_range *rs = meta_map_ranges(map, t->id, &n);
        for (size_t k = 0; k < n && ctl_active(c); k++)
            repair_range(c, s, map, t, &rs[k]);
    }
    seen_forget(&s->nonvoters, s->pass);
    seen_forget(&s->missing, s->pass);
    seen_forget(&s->ahead, s->pass);
}

const ctl_reconciler ctl_reconcile_repair = {
    .name = "repair",
    .init = repair_init,
    .fini = repair_fini,
    .run = repair_run,
};
