/*
 * quiesce.c - idle ranges sleep (DESIGN.md "Idle ranges are quiet";
 * CockroachDB calls it quiescing, TiKV hibernating regions).
 *
 * A range with no traffic would still cost a heartbeat to each follower
 * every 100 ms and a tick on every replica; ten thousand of them keep a
 * core busy doing nothing. So:
 *
 * - A leader whose log is fully committed, applied and replicated to every
 *   follower, with nothing queued or in flight (no proposal, read, barrier,
 *   membership change, transfer or snapshot), that stays so for
 *   `quiesce_ticks` ticks - long enough for a heartbeat carrying its final
 *   commit index to reach every follower - sends each follower a
 *   NET_QUIESCE (its term and commit index) and sleeps: off the ticker,
 *   its clock stopped (raftio.h).
 * - A follower sleeps on a NET_QUIESCE from the leader it follows, in its
 *   current term, if it holds and has applied exactly that commit index.
 *   Otherwise it stays awake; if it then times out it campaigns, which
 *   wakes the leader, whose heartbeats bring it back in line.
 * - Anything wakes a range: a Raft message (rio_deliver), a request to the
 *   leader (quiesce_touch), a peer node going down, coming back or
 *   restarting (rio_peer_event: node liveness is per node, net.h).
 *
 * Why fencing holds: sleeping changes no Raft rule, only when ticks come.
 * A sleeping leader that was partitioned away and replaced wakes on its
 * next request, and then commits nothing and serves no read - writes need
 * a majority in its term, and reads wait for a barrier entry that must
 * commit in its term (replica.h) - until it learns the new term and steps
 * down. Its followers, meanwhile, heard its node go silent (net.h), woke,
 * and elected a new leader.
 */
#include "replica_int.h"

#include <stdlib.h>

/* Nothing of this leader's range is moving, or about to. */
static bool leader_idle(replica *r)
{
    struct raft *rf = &r->raft;
    raft_index last = raft_last_index(rf);
    if (rf->state != RAFT_LEADER || r->closing || r->writes.n ||
        r->reads.n || r->reading.n || r->ri_busy || r->barrier_busy ||
        r->props ||
        r->admins || rf->transfer || rf->leader_state.change ||
        rf->leader_state.promotee_id || rf->snapshot.pending.term ||
        rf->snapshot.put.data || rf->commit_index != last ||
        rf->last_applied != last || rio_holding(r->io))
        return false;
    for (unsigned i = 0; i < rf->configuration.n; i++) {
        const struct raft_server *s = &rf->configuration.servers[i];
        if (s->id != rf->id && s->role != RAFT_SPARE &&
            rf->leader_state.progress[i].match_index != last)
            return false;
    }
    return true;
}

void quiesce_after_tick(void *owner)
{
    replica *r = owner;
    readindex_check(r); /* a round no majority answers ends in time */
    unsigned need = r->env->opts.quiesce_ticks;
    raft_index last = raft_last_index(&r->raft);
    if (need == 0 || !leader_idle(r) || last != r->idle_index) {
        r->idle_ticks = 0;
        r->idle_index = last;
        return;
    }
    if (++r->idle_ticks < need)
        return;
    struct raft *rf = &r->raft;
    for (unsigned i = 0; i < rf->configuration.n; i++) {
        const struct raft_server *s = &rf->configuration.servers[i];
        if (s->id != rf->id && s->role != RAFT_SPARE)
            rio_send_control(r->io, NET_QUIESCE, s->id, s->address,
                             rf->current_term, rf->commit_index);
    }
    r->idle_ticks = 0;
    free(r->lag); /* every follower is caught up: no lag to measure */
    r->lag = NULL;
    r->lag_pos = 0;
    load_forget(r); /* no load to split */
    rio_sleep(r->io);
}

void quiesce_msg(void *owner, uint64_t from, uint64_t term, uint64_t index)
{
    replica *r = owner;
    struct raft *rf = &r->raft;
    if (rf->state == RAFT_FOLLOWER && rf->current_term == term &&
        rf->follower_state.current_leader.id == from &&
        rf->last_stored == index && rf->commit_index == index &&
        rf->last_applied == index && !rf->snapshot.put.data &&
        !rf->snapshot.pending.term && !rio_holding(r->io))
        rio_sleep(r->io); /* applied entries still pending are written by
                           * the flush, which needs no tick */
}

void quiesce_woke(void *owner)
{
    replica *r = owner;
    r->idle_ticks = 0;
}

void quiesce_touch(replica *r)
{
    if (r->raft.state == RAFT_LEADER)
        rio_wake(r->io);
}
