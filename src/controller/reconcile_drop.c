/*
 * reconcile_drop.c - finish table drops (issue 4, "Tables": mark dropped -
 * immediately invisible - then nodes delete the ranges' data and the
 * metadata goes).
 *
 * A DROPPING table is already invisible to routers (meta_map_route). For
 * each of its ranges every live node hosting a replica is asked to delete
 * it; once all did, the table's metadata (table, ranges, leaders) is
 * deleted in one compare-and-swap transaction. A node that is down is not
 * waited for: its leftover replica is an orphan for a later garbage
 * collector (a replica whose range is not in the metadata). A node that is
 * live but failed to answer makes the drop wait for the next pass, so
 * that data is not orphaned on nodes that were only slow.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "controller/controller_int.h"

/* Ask the node at `addr` to delete its replica of `range_id` (Raft log and
 * index-store data). The node RPC has no such request yet (proto/rpc.h:
 * CREATE, ADD, REMOVE, TRANSFER, METRICS): until it has, this answers
 * UNSUPPORTED and the data stays on the node while the metadata goes. */
static int drop_replica(const char *addr, uint64_t range_id)
{
    (void)addr;
    (void)range_id;
    return CAIRN_ERR_UNSUPPORTED;
}

/* true when every live replica of the table's ranges is gone (or cannot
 * be dropped by this version of the nodes). */
static bool drop_data(ctl *c, const meta_map *map, const meta_table *t)
{
    size_t n = 0;
    bool done = true, unsupported = false;
    const meta_range *rs = meta_map_ranges(map, t->id, &n);
    for (size_t i = 0; i < n && ctl_active(c); i++)
        for (int k = 0; k < rs[i].n_replicas; k++) {
            const meta_node *node = meta_map_node(map, rs[i].replicas[k]);
            if (node == NULL || !node->live)
                continue;
            int rc = drop_replica(node->addr, rs[i].id);
            if (rc == CAIRN_ERR_UNSUPPORTED)
                unsupported = true;
            else if (rc != 0 && rc != CAIRN_ERR_RANGE_NOT_FOUND)
                done = false;
        }
    if (unsupported)
        ctl_log(c, "table %s: nodes cannot delete range data yet (no drop "
                "RPC); the data stays on the nodes", t->name);
    return done && ctl_active(c);
}

static void drop_run(ctl *c, void *state, const meta_map *map)
{
    for (size_t i = 0; i < meta_map_table_count(map) && ctl_active(c); i++) {
        const meta_table *t = meta_map_table_at(map, i);
        if (t->state != META_TABLE_DROPPING || !drop_data(c, map, t))
            continue;
        int rc = meta_table_delete(ctl_meta(c), t->name, t->id);
        if (rc == 0)
            ctl_log(c, "table %s (id %" PRIu64 "): dropped", t->name, t->id);
        else if (rc != CAIRN_ERR_NO_TABLE && rc != CAIRN_ERR_CONDITION)
            ctl_log(c, "table %s: cannot delete its metadata: %s", t->name,
                    cairn_err_message(rc));
    }
}

const ctl_reconciler ctl_reconcile_drop = {
    .name = "drop",
    .run = drop_run,
};
