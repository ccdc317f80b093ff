/*
 * reconcile_leaders.c - record the leaders the nodes report
 * (controller_int.h), from the observation the health poll took.
 *
 * Nodes record their own leaderships (node_meta.h); this is the backstop
 * for a record a node could not write (etcd away at that moment, a node
 * started without --etcd). meta_leader_set compares terms, so a report
 * that is already old by the time it is written changes nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "controller/controller_int.h"

typedef struct leaders_state {
    uint64_t last_obs; /* taken_ms of the observation last recorded */
} leaders_state;

static void *leaders_init(ctl *c)
{
    return calloc(1, sizeof(leaders_state));
}

/* Record each range the node says it leads, unless the map already has
 * that term (or a newer one). */
static void record(ctl *c, const meta_map *map, const ctl_node_obs *n)
{
    for (size_t i = 0; i < n->n && ctl_active(c); i++) {
        const ctl_replica *r = &n->replicas[i];
        if (r->role != CTL_LEADER)
            continue;
        const meta_leader *l = meta_map_leader(map, r->range);
        if (l && (l->term > r->term ||
                  (l->term == r->term && l->node_id == n->id)))
            continue;
        if (ctl_range(c, r->range) == NULL)
            continue; /* a dropped range's leftover */
        if (meta_leader_set(ctl_meta(c), r->range, n->id, r->term) == 0)
            ctl_log(c, "recorded node %" PRIu64 " as leader of range %" PRIu64
                    " (term %" PRIu64 ")", n->id, r->range, r->term);
    }
}

static void leaders_run(ctl *c, void *state, const meta_map *map)
{
    leaders_state *s = state;
    const ctl_obs *o = ctl_observed(c);
    if (o == NULL || o->taken_ms == s->last_obs)
        return;
    s->last_obs = o->taken_ms;
    for (size_t i = 0; i < o->n && ctl_active(c); i++)
        if (o->nodes[i].answered)
            record(c, map, &o->nodes[i]);
}

const ctl_reconciler ctl_reconcile_leaders = {
    .name = "leaders",
    .init = leaders_init,
    .fini = free,
    .run = leaders_run,
};
