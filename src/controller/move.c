/*
 * move.c - a membership change of one range, as a task (controller_int.h):
 * add a replica on node X, then remove the one on node Y, each epoch
 * recorded in etcd; and the leadership transfers and replica drops the
 * other reconcilers ask for.
 *
 * The steps of a move (issue 9, "Replacement"), each repeatable:
 *   0. the intent, P/moves/<range> {add X, remove Y}, written if absent
 *      (a successor controller resumes it; the orphan collector leaves X's
 *      new replica alone);
 *   1. CREATE_REPLICA on X without bootstrap (EXISTS: done before);
 *   2. ADD_REPLICA of X on the leader, with etcd's epoch: X catches up as
 *      a standby (from the log, or a snapshot when the leader has
 *      compacted it), is promoted, and the answer names the new epoch,
 *      above etcd's (a node that is already a voter is answered at once:
 *      the step is idempotent);
 *   3. the range in etcd gets X and that epoch (meta_range_update: a
 *      compare-and-swap on the range as read). etcd records only epochs
 *      a leader applied, never one of its own making: a replica serves
 *      only its current epoch, so an epoch recorded above the replicas'
 *      would be refused until they reached it (reconcile_repair.c's
 *      adopt() has the leader move past one, should it happen);
 *   4. if Y leads the range, its leadership goes to another voter first
 *      (clients see a leadership change, not a leader that vanishes);
 *   5. REMOVE_REPLICA of Y on the leader with etcd's epoch (idempotent
 *      too), recorded as 3;
 *   6. DROP_REPLICA on Y: its data and log go, and it can never serve
 *      again (a dead Y is cleaned up by the orphan collector when it
 *      comes back);
 *   7. the intent is deleted.
 * Adding before removing never leaves fewer replicas than there were; a
 * step that fails leaves the intent for the next attempt.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "common/err.h"
#include "controller/controller_int.h"
#include "storage/engine.h" /* engine_kind: the RPC's engine byte */

/* An add waits for its standby to catch up (the node allows 60 s); the
 * call may end sooner and be repeated: the add is idempotent. */
#define ADD_TIMEOUT_MS 30000
#define CHANGE_TIMEOUT_MS 10000
#define DROP_TIMEOUT_MS 10000
#define RECORD_TRIES 10

/* What a task needs, copied: the map may change under it. */
typedef struct job {
    meta_move mv;
    meta_engine engine;
    uint64_t to;     /* transfer: the new leader */
    uint64_t epoch;  /* bump: etcd's, to move past */
    bool drop_removed; /* the removed node answers: drop its replica */
    ctl_target t; /* the range's replicas, its leader asked first */
} job;

/* ---- recording in etcd -------------------------------------------------- */

/* etcd's epoch for the job's range now (0 if it cannot be read: the
 * leader's own epoch then bounds the change's). */
static uint64_t meta_epoch(ctl *c, const job *j)
{
    meta_range rg;
    if (meta_range_get(ctl_meta(c), j->mv.table_id, j->mv.range_id, &rg) != 0)
        return 0;
    uint64_t e = rg.epoch;
    meta_range_clear(&rg);
    return e;
}

/* Make the range in etcd hold `add` and not `remove`, at `epoch` (what
 * the node answered) if that is above etcd's: a compare-and-swap on the
 * range as read, read again and redone if somebody else wrote it first. */
static int record(ctl *c, const job *j, uint64_t add, uint64_t remove,
                  uint64_t epoch)
{
    int rc = CAIRN_ERR_CONDITION;
    for (int t = 0; t < RECORD_TRIES && rc == CAIRN_ERR_CONDITION; t++) {
        meta_range cur, next;
        rc = meta_range_get(ctl_meta(c), j->mv.table_id, j->mv.range_id, &cur);
        if (rc != 0)
            return rc;
        rc = meta_range_copy(&next, &cur);
        if (rc != 0) {
            meta_range_clear(&cur);
            return rc;
        }
        bool has_add = add == 0, changed = false;
        next.n_replicas = 0;
        for (int i = 0; i < cur.n_replicas; i++) {
            if (cur.replicas[i] == remove && remove) {
                changed = true;
                continue;
            }
            has_add |= cur.replicas[i] == add;
            next.replicas[next.n_replicas++] = cur.replicas[i];
        }
        if (!has_add && next.n_replicas < META_MAX_REPLICAS) {
            next.replicas[next.n_replicas++] = add;
            changed = true;
        }
        next.epoch = cur.epoch > epoch ? cur.epoch : epoch;
        if (!changed && cur.epoch >= epoch)
            rc = 0; /* recorded already */
        else if (!ctl_active(c))
            rc = CAIRN_ERR_SHUTDOWN;
        else
            rc = meta_range_update(ctl_meta(c), &cur, &next);
        meta_range_clear(&cur);
        meta_range_clear(&next);
    }
    return rc;
}

/* ---- the steps ---------------------------------------------------------- */

static int drop_on(ctl *c, job *j, uint64_t node);

static int create_on(ctl *c, job *j, uint64_t node)
{
    meta_range rg;
    int rc = meta_range_get(ctl_meta(c), j->mv.table_id, j->mv.range_id, &rg);
    if (rc != 0)
        return rc;
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_CREATE_REPLICA;
    q.id = 1;
    q.range_id = rg.id;
    q.epoch = rg.epoch;
    q.table_id = rg.table_id;
    q.engine = (uint8_t)(j->engine == META_ENGINE_LSM ? ENGINE_LSM
                                                      : ENGINE_BTREE);
    q.key = (rpc_bytes){rg.start, rg.start_len};
    q.end = (rpc_bytes){rg.end, rg.end_len};
    q.bootstrap = false; /* it joins when the leader adds it */
    for (int i = 0; i < rg.n_replicas && q.n_peers < RPC_MAX_PEERS; i++) {
        const char *a = ctl_target_addr(&j->t, rg.replicas[i]);
        if (a == NULL || rg.replicas[i] == node)
            continue;
        q.peers[q.n_peers].id = rg.replicas[i];
        q.peers[q.n_peers++].addr = (rpc_bytes){(const uint8_t *)a, strlen(a)};
    }
    const char *a = ctl_target_addr(&j->t, node);
    if (q.n_peers < RPC_MAX_PEERS && a) {
        q.peers[q.n_peers].id = node;
        q.peers[q.n_peers++].addr = (rpc_bytes){(const uint8_t *)a, strlen(a)};
    }
    char text[256];
    uint64_t hint;
    char hint_addr[META_ADDR_MAX];
    rc = a ? ctl_call(a, &q, CHANGE_TIMEOUT_MS, text, sizeof text, &hint,
                  hint_addr)
           : CAIRN_ERR_NOT_FOUND;
    /* The node still holds a corrupt copy (a rebuild in place whose drop
     * did not get through): drop it, then create afresh. */
    if (rc == CAIRN_ERR_CORRUPT && drop_on(c, j, node) == 0)
        rc = ctl_call(a, &q, CHANGE_TIMEOUT_MS, text, sizeof text, &hint,
                  hint_addr);
    meta_range_clear(&rg);
    if (rc == CAIRN_ERR_EXISTS)
        rc = 0;
    if (rc != 0)
        ctl_log(c, "range %" PRIu64 ": cannot create a replica on node %"
                PRIu64 ": %s %s", j->mv.range_id, node, cairn_err_word(rc),
                text);
    return rc;
}

static int add_step(ctl *c, job *j)
{
    uint64_t x = j->mv.add;
    const char *xa = ctl_target_addr(&j->t, x);
    if (xa == NULL)
        return CAIRN_ERR_NOT_FOUND;
    int rc = create_on(c, j, x);
    if (rc != 0)
        return rc;
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_ADD_REPLICA;
    q.id = 1;
    q.range_id = j->mv.range_id;
    q.node_id = x;
    q.epoch = meta_epoch(c, j);
    q.addr = (rpc_bytes){(const uint8_t *)xa, strlen(xa)};
    char text[300];
    rc = ctl_on_leader(c, &j->t, &q, ADD_TIMEOUT_MS, text, sizeof text);
    if (rc != 0) {
        ctl_log(c, "range %" PRIu64 ": adding node %" PRIu64 ": %s %s",
                j->mv.range_id, x, cairn_err_word(rc), text);
        return rc;
    }
    rc = record(c, j, x, 0, ctl_epoch_in(text));
    if (rc != 0)
        ctl_log(c, "range %" PRIu64 ": node %" PRIu64 " added but not "
                "recorded: %s", j->mv.range_id, x, cairn_err_message(rc));
    return rc;
}

/* Move the leadership off `from`, to `to` (0: whichever voter libraft
 * picks). 0 once another node leads. */
static int transfer(ctl *c, job *j, uint64_t from, uint64_t to)
{
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_TRANSFER_LEADER;
    q.id = 1;
    q.range_id = j->mv.range_id;
    q.node_id = to;
    char text[256];
    uint64_t hint;
    char hint_addr[META_ADDR_MAX];
    const char *a = ctl_target_addr(&j->t, from);
    int rc = a ? ctl_call(a, &q, CHANGE_TIMEOUT_MS, text, sizeof text, &hint,
                      hint_addr)
               : CAIRN_ERR_NOT_FOUND;
    if (rc == CAIRN_ERR_NOT_LEADER && hint != from)
        rc = 0; /* someone else leads already */
    if (rc == 0)
        j->t.leader = to;
    return rc;
}

static int drop_on(ctl *c, job *j, uint64_t node)
{
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_DROP_REPLICA;
    q.id = 1;
    q.range_id = j->mv.range_id;
    char text[256];
    uint64_t hint;
    char hint_addr[META_ADDR_MAX];
    const char *a = ctl_target_addr(&j->t, node);
    int rc = a ? ctl_call(a, &q, DROP_TIMEOUT_MS, text, sizeof text, &hint,
                      hint_addr)
               : CAIRN_ERR_NOT_FOUND;
    return rc == CAIRN_ERR_RANGE_NOT_FOUND ? 0 : rc;
}

static int remove_step(ctl *c, job *j)
{
    uint64_t y = j->mv.remove;
    uint64_t leader = ctl_find_leader(c, &j->t);
    if (leader == 0)
        return CAIRN_ERR_NO_QUORUM;
    if (leader == y) {
        int rc = transfer(c, j, y, j->mv.add);
        if (rc != 0) {
            ctl_log(c, "range %" PRIu64 ": cannot move the leadership off "
                    "node %" PRIu64 ": %s", j->mv.range_id, y,
                    cairn_err_message(rc));
            return rc;
        }
        if (ctl_find_leader(c, &j->t) == y)
            return CAIRN_ERR_TRYAGAIN;
    }
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_REMOVE_REPLICA;
    q.id = 1;
    q.range_id = j->mv.range_id;
    q.node_id = y;
    q.epoch = meta_epoch(c, j);
    char text[300];
    int rc = ctl_on_leader(c, &j->t, &q, CHANGE_TIMEOUT_MS, text, sizeof text);
    if (rc != 0) {
        ctl_log(c, "range %" PRIu64 ": removing node %" PRIu64 ": %s %s",
                j->mv.range_id, y, cairn_err_word(rc), text);
        return rc;
    }
    rc = record(c, j, 0, y, ctl_epoch_in(text));
    if (rc != 0) {
        ctl_log(c, "range %" PRIu64 ": node %" PRIu64 " removed but not "
                "recorded: %s", j->mv.range_id, y, cairn_err_message(rc));
        return rc;
    }
    /* Best effort; a node that is down or not answering (it would hold
     * this task for a timeout) is cleaned up when it is back, by the
     * orphan collector. */
    rc = j->drop_removed ? drop_on(c, j, y) : 0;
    if (rc != 0 && rc != CAIRN_ERR_IO)
        ctl_log(c, "range %" PRIu64 ": removed replica on node %" PRIu64
                " not dropped yet: %s", j->mv.range_id, y,
                cairn_err_message(rc));
    return 0;
}

static int move_run(ctl *c, void *arg)
{
    job *j = arg;
    meta *m = ctl_meta(c);
    uint64_t t0 = ctl_now_ms();
    if (j->mv.mod_revision == 0) {
        if (!ctl_active(c))
            return CAIRN_ERR_SHUTDOWN;
        int rc = meta_move_put(m, &j->mv, 0);
        if (rc == 0)
            rc = meta_move_get(m, j->mv.range_id, &j->mv);
        if (rc != 0) {
            if (rc != CAIRN_ERR_CONDITION)
                ctl_log(c, "range %" PRIu64 ": cannot record the move: %s",
                        j->mv.range_id, cairn_err_message(rc));
            return rc;
        }
        ctl_log(c, "range %" PRIu64 ": %s: adding node %" PRIu64
                ", removing node %" PRIu64, j->mv.range_id,
                meta_move_kind_name(j->mv.kind), j->mv.add, j->mv.remove);
    } else {
        ctl_log(c, "range %" PRIu64 ": resuming %s (add node %" PRIu64
                ", remove node %" PRIu64 ") started by %s", j->mv.range_id,
                meta_move_kind_name(j->mv.kind), j->mv.add, j->mv.remove,
                j->mv.by);
    }
    int rc = j->mv.add ? add_step(c, j) : 0;
    const char *crash = getenv("CAIRN_TEST_CRASH");
    if (rc == 0 && crash && strcmp(crash, "move-after-add") == 0) {
        ctl_log(c, "CAIRN_TEST_CRASH=move-after-add: aborting");
        abort(); /* tests: a controller dying between two steps */
    }
    if (rc == 0 && j->mv.remove)
        rc = remove_step(c, j);
    if (rc != 0)
        return rc;
    if (ctl_active(c)) {
        int drc = meta_move_delete(m, j->mv.range_id, j->mv.mod_revision);
        if (drc != 0 && drc != CAIRN_ERR_CONDITION)
            ctl_log(c, "range %" PRIu64 ": cannot delete the finished move "
                    "record: %s", j->mv.range_id, cairn_err_message(drc));
    }
    ctl_log(c, "range %" PRIu64 ": %s done in %" PRIu64 " ms (added node %"
            PRIu64 ", removed node %" PRIu64 ")", j->mv.range_id,
            meta_move_kind_name(j->mv.kind), ctl_now_ms() - t0, j->mv.add,
            j->mv.remove);
    return 0;
}

static job *job_new(const meta_map *map, uint64_t range_id)
{
    job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    const meta_range *rg = meta_map_range(map, range_id);
    ctl_target_init(&j->t, map, range_id, rg);
    const meta_leader *l = meta_map_leader(map, range_id);
    j->t.leader = l ? l->node_id : rg && rg->n_replicas ? rg->replicas[0] : 0;
    if (rg) {
        const meta_table *t = meta_map_table_by_id(map, rg->table_id);
        j->engine = t ? t->engine : META_ENGINE_BTREE;
    }
    return j;
}

int ctl_move_start(ctl *c, const meta_map *map, const meta_move *mv, int cls,
                   int limit)
{
    const meta_range *rg = ctl_range(c, mv->range_id);
    if (rg == NULL || meta_map_table_by_id(map, rg->table_id) == NULL)
        return CAIRN_ERR_NOT_FOUND;
    job *j = job_new(map, mv->range_id);
    if (j == NULL)
        return CAIRN_ERR_NOMEM;
    j->mv = *mv;
    j->mv.table_id = rg->table_id;
    if (j->mv.by[0] == '\0')
        snprintf(j->mv.by, sizeof j->mv.by, "%s", ctl_name(c));
    if (j->mv.since == 0)
        j->mv.since = ctl_wall_ms();
    const ctl_replica *l = ctl_obs_leader(ctl_observed(c), mv->range_id);
    if (l)
        j->t.leader = l->node;
    const ctl_health *h = mv->remove ? ctl_node_health(c, mv->remove) : NULL;
    j->drop_removed = h && h->polled && h->answered &&
                      h->state != META_NODE_DEAD;
    if ((mv->add && !ctl_target_addr(&j->t, mv->add)) ||
        (mv->remove && !ctl_target_addr(&j->t, mv->remove) &&
         !meta_map_node(map, mv->remove))) {
        free(j);
        return CAIRN_ERR_NOT_FOUND;
    }
    return ctl_task_start(c, mv->range_id, cls, limit, move_run, j, mv->add,
                          mv->remove);
}

/* ---- leadership transfers and drops ------------------------------------- */

static int transfer_run(ctl *c, void *arg)
{
    job *j = arg;
    if (!ctl_active(c))
        return CAIRN_ERR_SHUTDOWN;
    uint64_t from = j->t.leader;
    int rc = transfer(c, j, from, j->to);
    if (rc != 0)
        ctl_log(c, "range %" PRIu64 ": leadership from node %" PRIu64
                " to node %" PRIu64 ": %s", j->mv.range_id, from, j->to,
                cairn_err_message(rc));
    return rc;
}

int ctl_transfer_start(ctl *c, const meta_map *map, uint64_t range_id,
                       uint64_t from, uint64_t to)
{
    job *j = job_new(map, range_id);
    if (j == NULL)
        return CAIRN_ERR_NOMEM;
    j->mv.range_id = range_id;
    j->t.leader = from;
    j->to = to;
    int limit = ctl_config(c)->transfer_rate > 0 ? ctl_config(c)->transfer_rate
                                                 : 1;
    return ctl_task_start(c, range_id, CTL_TASK_LEADER, limit, transfer_run,
                          j, 0, 0);
}

static int bump_run(ctl *c, void *arg)
{
    job *j = arg;
    if (!ctl_active(c))
        return CAIRN_ERR_SHUTDOWN;
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_BUMP_EPOCH;
    q.id = 1;
    q.range_id = j->mv.range_id;
    q.epoch = j->epoch;
    char text[256];
    int rc = ctl_on_leader(c, &j->t, &q, CHANGE_TIMEOUT_MS, text, sizeof text);
    ctl_log(c, "range %" PRIu64 ": etcd's epoch %" PRIu64 " is ahead of its "
            "leader's: %s %s", j->mv.range_id, j->epoch,
            rc == 0 ? "bumped:" : cairn_err_word(rc), text);
    return rc;
}

int ctl_bump_start(ctl *c, const meta_map *map, uint64_t range_id,
                   uint64_t leader, uint64_t epoch)
{
    job *j = job_new(map, range_id);
    if (j == NULL)
        return CAIRN_ERR_NOMEM;
    j->mv.range_id = range_id;
    j->t.leader = leader;
    j->epoch = epoch;
    return ctl_task_start(c, range_id, CTL_TASK_REPAIR, 4, bump_run, j, 0, 0);
}

static int drop_run(ctl *c, void *arg)
{
    job *j = arg;
    if (!ctl_active(c))
        return CAIRN_ERR_SHUTDOWN;
    int rc = drop_on(c, j, j->to);
    if (rc == 0)
        ctl_log(c, "range %" PRIu64 ": dropped the stale replica on node %"
                PRIu64, j->mv.range_id, j->to);
    return rc;
}

/* Keys of drops never collide with a range's own tasks: a drop of a
 * stale replica must not hold back a move of the range. */
#define DROP_KEY(range, node) (((range) * 1000003u) ^ ((node) << 48) ^ 1ull << 63)

int ctl_drop_start(ctl *c, const meta_map *map, uint64_t range_id,
                   uint64_t node)
{
    job *j = job_new(map, range_id);
    if (j == NULL)
        return CAIRN_ERR_NOMEM;
    j->mv.range_id = range_id;
    j->to = node;
    if (ctl_target_addr(&j->t, node) == NULL) {
        free(j);
        return CAIRN_ERR_NOT_FOUND;
    }
    return ctl_task_start(c, DROP_KEY(range_id, node), CTL_TASK_DROP, 4,
                          drop_run, j, 0, 0);
}
