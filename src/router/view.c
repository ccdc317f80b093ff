/*
 * view.c - the routing cache as the loop sees it, rebuilt from the
 * metadata library's snapshots (meta/meta.h).
 *
 * Two ways a fresher snapshot arrives: the etcd watch (the push: meta_cache
 * publishes, its thread wakes the loop through uv_async) and a refresh the
 * router asks for when a node rejected a request as misrouted (a blocking
 * re-read, so it runs on a libuv worker thread). Refreshes are coalesced:
 * at most one runs, and requests arriving meanwhile cause one more.
 */
#include <string.h>

#include "common/err.h"
#include "router/router_int.h"

static router_table_state table_state(meta_table_state s)
{
    switch (s) {
    case META_TABLE_READY:
        return ROUTER_TABLE_READY;
    case META_TABLE_CREATING:
        return ROUTER_TABLE_CREATING;
    default:
        return ROUTER_TABLE_DROPPING;
    }
}

/* The move of `m` under way, if any: recorded under the source's id, so
 * the destination (after the switch) finds it by its `from`. */
static void note_move(const meta_map *map, const meta_range *m,
                      router_range *rg)
{
    const meta_relocation *rl = meta_map_relocation(map, m->id);
    if (rl == NULL && m->state == META_RANGE_MIGRATING)
        rl = meta_map_relocation(map, m->from);
    if (rl == NULL)
        return;
    rg->move_step = (int)rl->step + 1;
    rg->move_dest = rl->dest;
    rg->move_keys = rl->copied_keys;
    rg->move_bytes = rl->copied_bytes;
    rg->move_ms = rl->copy_ms;
}

/* The source of migrating range `m` (`rg`: as added), read by id only. */
static int add_source(router_cache *c, const meta_map *map,
                      const meta_range *m, const router_range *rg)
{
    router_range src = *rg; /* the same bounds */
    src.id = m->from;
    src.epoch = m->from_epoch;
    src.nreplicas = m->n_from < ROUTER_REPLICAS_MAX ? m->n_from
                                                    : ROUTER_REPLICAS_MAX;
    for (int j = 0; j < src.nreplicas; j++)
        src.replicas[j] = m->from_replicas[j];
    src.migrating = false;
    src.migrating_from = 0;
    const meta_leader *l = meta_map_leader(map, m->from);
    src.leader = l ? l->node_id : 0;
    src.leader_term = l ? l->term : 0;
    return router_cache_add_source(c, &src);
}

static int add_ranges(router_cache *c, const meta_map *map, uint64_t tid)
{
    size_t n = 0;
    const meta_range *rs = meta_map_ranges(map, tid, &n);
    for (size_t i = 0; i < n; i++) {
        const meta_range *m = &rs[i];
        router_range rg;
        memset(&rg, 0, sizeof rg);
        rg.id = m->id;
        rg.epoch = m->epoch;
        rg.start = m->start;
        rg.start_len = m->start_len;
        rg.end = m->end;
        rg.end_len = m->end_len;
        rg.nreplicas = m->n_replicas < ROUTER_REPLICAS_MAX
                           ? m->n_replicas
                           : ROUTER_REPLICAS_MAX;
        for (int j = 0; j < rg.nreplicas; j++)
            rg.replicas[j] = m->replicas[j];
        rg.migrating = m->state == META_RANGE_MIGRATING;
        rg.migrating_from = m->from;
        note_move(map, m, &rg);
        const meta_leader *l = meta_map_leader(map, m->id);
        if (l != NULL) {
            rg.leader = l->node_id;
            rg.leader_term = l->term;
        }
        int rc = router_cache_add_range(c, tid, &rg);
        if (rc == 0 && rg.migrating)
            rc = add_source(c, map, m, &rg);
        if (rc != 0 && rc != CAIRN_ERR_EXISTS)
            return rc;
    }
    return 0;
}

/* A routing cache holding everything in `map`. NULL when out of memory. */
static router_cache *build(const meta_map *map)
{
    router_cache *c = router_cache_new(meta_map_revision(map));
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < meta_map_table_count(map); i++) {
        const meta_table *t = meta_map_table_at(map, i);
        if (router_cache_add_table(c, t->name, t->id, (int)t->engine,
                                   t->replicas, table_state(t->state)) != 0)
            continue;
        if (add_ranges(c, map, t->id) != 0) {
            router_cache_free(c);
            return NULL;
        }
    }
    for (size_t i = 0; i < meta_map_node_count(map); i++) {
        const meta_node *n = meta_map_node_at(map, i);
        if (n->addr[0] != '\0')
            router_cache_add_node(c, n->id, n->addr);
    }
    router_cache_seal(c);
    return c;
}

/* Leaders learnt from NOT_LEADER hints survive a rebuild where etcd has no
 * leader on record for the same range and epoch (nodes may not record
 * theirs): otherwise every metadata change would cost each range a hop. */
static void keep_hints(router_cache *c, router_cache *old)
{
    if (old == NULL)
        return;
    for (size_t i = 0; i < router_cache_table_count(c); i++) {
        const router_table *t = router_cache_table_at(c, i);
        for (size_t j = 0; j < t->nranges; j++) {
            const router_range *rg = &t->ranges[j];
            const router_range *was = router_cache_range(old, rg->id);
            if (rg->leader == 0 && was != NULL && was->epoch == rg->epoch &&
                was->leader != 0)
                router_cache_set_leader(c, rg->id, was->leader, 0);
        }
    }
}

void router_view_update(struct router *r)
{
    if (r->mcache == NULL)
        return;
    meta_map *map = meta_cache_acquire(r->mcache);
    if (r->cache != NULL &&
        meta_map_revision(map) <= router_cache_revision(r->cache)) {
        meta_map_release(map);
        return;
    }
    router_cache *c = build(map);
    meta_map_release(map);
    if (c == NULL)
        return; /* keep the old view; the next change tries again */
    keep_hints(c, r->cache);
    router_cache_free(r->cache);
    r->cache = c;
}

static void refresh_work(uv_work_t *w)
{
    struct router *r = w->data;
    r->refresh_rc = meta_cache_refresh(r->mcache);
}

static void refresh_after(uv_work_t *w, int status)
{
    struct router *r = w->data;
    r->refreshing = false;
    if (r->refresh_rc != 0)
        r->stat_refresh_errors++;
    router_job_done(r);
    if (r->stopping)
        return;
    router_view_update(r);
    if (r->refresh_again) {
        r->refresh_again = false;
        router_view_refresh(r);
    }
}

void router_view_refresh(struct router *r)
{
    if (r->stopping || r->mcache == NULL)
        return;
    if (r->refreshing) {
        r->refresh_again = true;
        return;
    }
    r->refreshing = true;
    r->stat_refreshes++;
    r->refresh_work.data = r;
    r->njobs++;
    if (uv_queue_work(&r->loop, &r->refresh_work, refresh_work,
                      refresh_after) != 0) {
        r->refreshing = false;
        r->njobs--;
    }
}
