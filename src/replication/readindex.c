/*
 * readindex.c - linearizable reads without a log write (DESIGN.md "Read
 * path"; Raft thesis section 6.4).
 *
 * A batch of reads on the leader starts a round: the leader notes its
 * commit index C and asks every voter "am I still your leader in term T?"
 * (NET_READINDEX, on the node links, never waking a sleeping range). A
 * follower confirms (NET_READINDEX_ACK) only if it is a follower in term T
 * whose leader is the asker. Once a majority (the leader included) has
 * confirmed, the reads are served from the index store as soon as the
 * leader has applied up to C. No disk is touched.
 *
 * Why this is linearizable. A write W acknowledged before a read arrived
 * was committed, so it is at or below the commit index of the leader that
 * committed it; if that was this leader in term T, W <= C. If a leader of
 * a later term T' committed W, a majority M' voted in T' (and so moved its
 * term past T) before W was acknowledged, hence before the round started;
 * the round's confirming majority intersects M' in a node that would have
 * had to answer "follower in term T" after having moved past T - it never
 * does. So no later leader existed, and every acknowledged write is <= C,
 * applied before the reads are served. C itself is complete: a leader
 * serves reads only once an entry of its own term committed (its first
 * barrier, replica.c), so every entry committed before its term is <= C.
 * A deposed leader's round never gets a majority: it fails within an
 * election timeout (NOQUORUM, which routers retry), or sooner when it
 * learns the higher term (NOT_LEADER).
 */
#include "replica_int.h"

#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

static unsigned voters(const struct raft *rf)
{
    unsigned n = 0;
    for (unsigned i = 0; i < rf->configuration.n; i++)
        n += rf->configuration.servers[i].role == RAFT_VOTER;
    return n;
}

static bool is_voter(const struct raft *rf, uint64_t id)
{
    for (unsigned i = 0; i < rf->configuration.n; i++)
        if (rf->configuration.servers[i].id == id)
            return rf->configuration.servers[i].role == RAFT_VOTER;
    return false;
}

void readindex_fail(replica *r, int status)
{
    r->ri_busy = false;
    replica_fail_waiters(&r->ri_reading, status);
}

static void confirm_if_majority(replica *r)
{
    if (!r->ri_confirmed && r->ri_acks * 2 > voters(&r->raft))
        r->ri_confirmed = true;
}

void readindex_start(replica *r)
{
    struct raft *rf = &r->raft;
    wvec t = r->reads;
    r->reads = r->ri_reading;
    r->ri_reading = t;
    r->ri_seq++;
    r->ri_term = rf->current_term;
    r->ri_commit = rf->commit_index;
    r->ri_acks = 0;
    if (is_voter(rf, rf->id))
        r->ri_acked[r->ri_acks++] = rf->id;
    r->ri_busy = true;
    r->ri_confirmed = false;
    r->ri_started_ms = replica_now_ms(r);
    r->n_readindex++;
    confirm_if_majority(r); /* a group of one */
    for (unsigned i = 0; !r->ri_confirmed && i < rf->configuration.n; i++) {
        const struct raft_server *s = &rf->configuration.servers[i];
        if (s->id != rf->id && s->role == RAFT_VOTER)
            rio_send_control(r->io, NET_READINDEX, s->id, s->address,
                             r->ri_term, r->ri_seq);
    }
    readindex_check(r);
}

void readindex_check(replica *r)
{
    struct raft *rf = &r->raft;
    if (!r->ri_busy)
        return;
    if (rf->state != RAFT_LEADER || rf->current_term != r->ri_term) {
        readindex_fail(r, CAIRN_ERR_NOT_LEADER);
        return;
    }
    if (!r->ri_confirmed) {
        if (replica_now_ms(r) - r->ri_started_ms > r->env->opts.election_ms)
            readindex_fail(r, CAIRN_ERR_NO_QUORUM);
        return;
    }
    if (rf->last_applied < r->ri_commit)
        return; /* the apply will schedule a flush, which checks again */
    fsm_flush(r); /* the reads must see every applied entry */
    wvec mine = r->ri_reading;
    memset(&r->ri_reading, 0, sizeof r->ri_reading);
    r->ri_busy = false;
    r->n_reads += mine.n;
    for (size_t i = 0; i < mine.n; i++)
        mine.v[i].rcb(mine.v[i].arg, 0);
    free(mine.v);
    if (r->reads.n)
        replica_schedule_flush(r);
}

/* A follower answers for the state it is in now: a follower in that term,
 * following the asker. */
static void answer(replica *r, uint64_t from, const char *addr,
                   uint64_t term, uint64_t round)
{
    const struct raft *rf = &r->raft;
    if (rf->state == RAFT_FOLLOWER && rf->current_term == term &&
        rf->follower_state.current_leader.id == from)
        rio_send_control(r->io, NET_READINDEX_ACK, from, addr, term, round);
}

static void acked(replica *r, uint64_t from, uint64_t term, uint64_t round)
{
    if (!r->ri_busy || term != r->ri_term || round != r->ri_seq ||
        !is_voter(&r->raft, from) || r->ri_acks >= RANGE_MAX_PEERS)
        return;
    for (unsigned i = 0; i < r->ri_acks; i++)
        if (r->ri_acked[i] == from)
            return;
    r->ri_acked[r->ri_acks++] = from;
    confirm_if_majority(r);
    readindex_check(r);
}

void readindex_control(void *owner, int kind, uint64_t from,
                       const char *addr, uint64_t term, uint64_t value)
{
    replica *r = owner;
    if (r->closing)
        return;
    if (kind == NET_QUIESCE)
        quiesce_msg(owner, from, term, value);
    else if (kind == NET_READINDEX)
        answer(r, from, addr, term, value);
    else if (kind == NET_READINDEX_ACK)
        acked(r, from, term, value);
}
