/*
 * reconcile_drop.c - finish table drops (issue 4, "Tables": mark dropped -
 * immediately invisible - then nodes delete the ranges' data and the
 * metadata goes).
 *
 * A DROPPING table is already invisible to routers (meta_map_route). Each
 * pass asks every node that hosts a replica of one of its ranges to delete
 * it (DROP_REPLICA: the node closes the replica, deletes its index-store
 * data and its Raft log); RANGE_NOT_FOUND means already gone. Only when
 * every replica is confirmed gone is the table's metadata (table, ranges,
 * leaders) deleted, in one compare-and-swap transaction: the metadata is
 * the only record of where replicas live, so deleting it earlier would
 * orphan them for good.
 *
 * A node that is down (its record exists, its liveness key does not), or
 * live but not answering, keeps the table DROPPING: the next pass asks
 * again, and a node that restarts reopens its replicas and then deletes
 * them when asked. A node gone forever is decommissioned by deleting its
 * record (P/nodes/<id>; the replacement reconciler will do that when it
 * replaces a dead node's replicas): from then on its replicas are not
 * waited for. Should such a node ever come back with its old directory,
 * those replicas are orphans (their range is in no metadata, so nothing
 * routes to them), for the orphan collector to delete.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "controller/controller_int.h"

/* Dropping a replica waits for its Raft group to close and its data to be
 * deleted: longer than other admin requests. */
#define DROP_RPC_TIMEOUT_MS 10000
/* How often, at most, to say which nodes a drop is waiting for. */
#define WAIT_LOG_EVERY_MS 30000

typedef struct drop_state {
    uint64_t next_log_ms;
} drop_state;

static void *drop_init(ctl *c)
{
    return calloc(1, sizeof(drop_state));
}

static void drop_fini(void *state)
{
    free(state);
}

/* Delete the replica of `range_id` on `node`: 0 when it is gone (now or
 * before), else why not. */
static int drop_replica(const meta_node *node, uint64_t range_id)
{
    if (!node->live)
        return CAIRN_ERR_TRYAGAIN;
    rpc_request req;
    memset(&req, 0, sizeof req);
    req.type = RPC_DROP_REPLICA;
    req.id = 1;
    req.range_id = range_id;
    int rc = rpc_sync_status(node->addr, &req, DROP_RPC_TIMEOUT_MS, NULL);
    return rc == CAIRN_ERR_RANGE_NOT_FOUND ? 0 : rc;
}

/* A node that still holds replicas of the table, in this pass. */
typedef struct holdout {
    const meta_node *node;
    size_t ranges; /* replicas not confirmed deleted */
    int why;       /* the first reason */
    bool skip;     /* unreachable: not asked again in this pass */
} holdout;

static holdout *find_holdout(holdout *v, size_t n, const meta_node *node)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].node == node)
            return &v[i];
    return NULL;
}

/* true when no replica of the table's ranges remains on a known node. A
 * node that cannot be reached is not asked again in the same pass (a
 * table of a thousand ranges would otherwise cost a thousand timeouts per
 * pass); what is still to delete is reported once per node. */
static bool drop_data(ctl *c, drop_state *s, const meta_map *map,
                      const meta_table *t)
{
    size_t n = 0, n_hold = 0;
    bool say = ctl_now_ms() >= s->next_log_ms;
    const meta_range *rs = meta_map_ranges(map, t->id, &n);
    holdout *hold = calloc(meta_map_node_count(map) + 1, sizeof *hold);
    if (hold == NULL)
        return false;
    for (size_t i = 0; i < n && ctl_active(c); i++)
        for (int k = 0; k < rs[i].n_replicas; k++) {
            const meta_node *node = meta_map_node(map, rs[i].replicas[k]);
            if (node == NULL)
                continue; /* decommissioned: see the top of this file */
            holdout *h = find_holdout(hold, n_hold, node);
            int rc = h && h->skip ? h->why : drop_replica(node, rs[i].id);
            if (rc == 0)
                continue;
            if (h == NULL) {
                h = &hold[n_hold++];
                *h = (holdout){.node = node, .why = rc};
            }
            h->ranges++;
            if (rc == CAIRN_ERR_IO || rc == CAIRN_ERR_TIMEOUT || !node->live)
                h->skip = true;
        }
    for (size_t j = 0; say && j < n_hold; j++)
        ctl_log(c, "table %s: %zu replicas not yet deleted on node %" PRIu64
                " (%s, %s): %s; retrying", t->name, hold[j].ranges,
                hold[j].node->id, hold[j].node->addr,
                hold[j].node->live ? "live" : "down",
                cairn_err_message(hold[j].why));
    if (n_hold > 0 && say)
        s->next_log_ms = ctl_now_ms() + WAIT_LOG_EVERY_MS;
    free(hold);
    return n_hold == 0 && ctl_active(c);
}

static void drop_run(ctl *c, void *state, const meta_map *map)
{
    for (size_t i = 0; i < meta_map_table_count(map) && ctl_active(c); i++) {
        const meta_table *t = meta_map_table_at(map, i);
        if (t->state != META_TABLE_DROPPING || !drop_data(c, state, map, t))
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
    .init = drop_init,
    .fini = drop_fini,
    .run = drop_run,
};
