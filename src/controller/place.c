/*
 * place.c - where a new replica goes (controller_int.h, "placement").
 *
 * Rules, in order (issue 9, "Placement"): never two replicas of a range on
 * one node; only live nodes that are not draining; a zone that none of
 * the range's remaining replicas is in, when such a node exists (zones
 * are optional: nodes without one never conflict); then the node with the
 * fewest replicas, then the fewest bytes, then the lowest id (so that the
 * choice is deterministic).
 */
#include <string.h>

#include "controller/controller_int.h"

static const ctl_place_node *find(const ctl_place_node *nodes, size_t n,
                                  uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (nodes[i].id == id)
            return &nodes[i];
    return NULL;
}

static bool is_member(const uint64_t *members, int n, uint64_t id)
{
    for (int i = 0; i < n; i++)
        if (members[i] == id)
            return true;
    return false;
}

/* Whether `zone` is the zone of a member that stays. */
static bool zone_taken(const ctl_place_node *nodes, size_t n,
                       const uint64_t *members, int n_members,
                       uint64_t leaving, const char *zone)
{
    if (zone == NULL || zone[0] == '\0')
        return false;
    for (int i = 0; i < n_members; i++) {
        if (members[i] == leaving)
            continue;
        const ctl_place_node *m = find(nodes, n, members[i]);
        if (m && m->zone && strcmp(m->zone, zone) == 0)
            return true;
    }
    return false;
}

/* Whether a is a better home than b. */
static bool better(const ctl_place_node *a, bool a_conflict,
                   const ctl_place_node *b, bool b_conflict)
{
    if (a_conflict != b_conflict)
        return !a_conflict;
    if (a->replicas != b->replicas)
        return a->replicas < b->replicas;
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes;
    return a->id < b->id;
}

uint64_t ctl_place(const ctl_place_node *nodes, size_t n,
                   const uint64_t *members, int n_members, uint64_t leaving)
{
    const ctl_place_node *best = NULL;
    bool best_conflict = false;
    for (size_t i = 0; i < n; i++) {
        const ctl_place_node *c = &nodes[i];
        if (!c->usable || c->id == 0 || is_member(members, n_members, c->id))
            continue;
        bool conflict = zone_taken(nodes, n, members, n_members, leaving,
                                   c->zone);
        if (best == NULL || better(c, conflict, best, best_conflict)) {
            best = c;
            best_conflict = conflict;
        }
    }
    return best ? best->id : 0;
}
