/*
 * catchup.c - give a lagging follower a snapshot (issue 9, "Lagging
 * follower": it is first given a snapshot, and replaced only if it still
 * lags).
 *
 * libraft sends InstallSnapshot by itself only when the entry before a
 * follower's next index is gone from the leader's log. A follower far
 * behind is otherwise fed the log entry by entry, however long that takes.
 * To give it a snapshot now, the leader takes one at once (threshold 1,
 * and a barrier so that something applies) while keeping fewer trailing
 * entries than the follower lacks: its next message to that follower is
 * then InstallSnapshot. The others, close behind, keep the entries they
 * need. The counts go back to fsm.c's sizing once the snapshot is taken.
 */
#include <inttypes.h>
#include <stdio.h>

#include "common/err.h"
#include "replication/replica_int.h"

/* A follower less behind than this gets its entries from the log. */
#define CATCHUP_MIN_LAG 16

static void catchup_barrier_cb(struct raft_barrier *req, int status)
{
    (void)status; /* the snapshot comes with the next apply if not now */
    replica *r = req->data;
    r->catchup_barrier_busy = false;
}

/* The follower's match index; false if `id` is no member or not a
 * follower of this leader. */
static bool follower_match(replica *r, uint64_t id, raft_index *match)
{
    for (unsigned i = 0; i < r->raft.configuration.n; i++)
        if (r->raft.configuration.servers[i].id == id && id != r->raft.id) {
            *match = r->raft.leader_state.progress[i].match_index;
            return true;
        }
    return false;
}

int replica_catch_up(replica *r, uint64_t id, char *msg, size_t msg_len)
{
    raft_index match = 0;
    if (r->closing || r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    if (!follower_match(r, id, &match)) {
        snprintf(msg, msg_len, "node %" PRIu64 " is no follower", id);
        return CAIRN_ERR_NOT_FOUND;
    }
    /* (catchup_pending also clears a finished one: an idle range applies
     * nothing after its barrier that would have) */
    if (catchup_pending(r) || r->catchup_barrier_busy) {
        snprintf(msg, msg_len, "a snapshot for a follower is under way");
        return CAIRN_ERR_TRYAGAIN;
    }
    raft_index applied = r->raft.last_applied;
    if (applied < match + CATCHUP_MIN_LAG) {
        snprintf(msg, msg_len, "node %" PRIu64 " is %" PRIu64 " entries "
                 "behind: it catches up from the log", id,
                 (uint64_t)(applied > match ? applied - match : 0));
        return CAIRN_ERR_INVALID;
    }
    /* Keep half of what the follower lacks: its next entry is gone, the
     * followers ahead of it keep theirs. */
    unsigned keep = (unsigned)((applied - match) / 2);
    if (keep > r->raft.snapshot.trailing)
        keep = r->raft.snapshot.trailing;
    r->catchup_barrier.data = r;
    int rv = raft_barrier(&r->raft, &r->catchup_barrier, catchup_barrier_cb);
    if (rv != 0) {
        snprintf(msg, msg_len, "%s", raft_strerror(rv));
        return replica_map_raft_err(rv);
    }
    r->catchup_barrier_busy = true;
    r->catchup_index = raft_last_index(&r->raft);
    raft_set_snapshot_threshold(&r->raft, 1);
    raft_set_snapshot_trailing(&r->raft, keep ? keep : 1);
    r->n_catchups++;
    snprintf(msg, msg_len, "snapshot at entry %" PRIu64 " for node %" PRIu64
             ", %" PRIu64 " entries behind", (uint64_t)r->catchup_index, id,
             (uint64_t)(applied - match));
    return 0;
}

bool catchup_pending(replica *r)
{
    if (r->catchup_index == 0)
        return false;
    if (r->raft.log.snapshot.last_index < r->catchup_index &&
        r->raft.state == RAFT_LEADER)
        return true;
    /* Taken (or no longer leading): back to the configured counts. */
    r->catchup_index = 0;
    r->snap_every = r->env->opts.snapshot_threshold;
    r->snap_keep = r->env->opts.snapshot_trailing;
    raft_set_snapshot_threshold(&r->raft, r->snap_every);
    raft_set_snapshot_trailing(&r->raft, r->snap_keep);
    return false;
}
