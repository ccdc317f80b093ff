/*
 * raftio.h - libraft's I/O for one range replica (`struct raft_io`), on
 * the node-wide log, links and ticker of its rep_env.
 *
 * libraft asks its I/O layer to store entries, term and vote, and
 * snapshots; to send and receive messages; to tick; and to tell the time.
 * Here:
 *
 * Storage (raftlog.h). Appends, truncations, term and vote go into the
 * node's filling log batch; an append's callback fires when its batch is
 * durable. libraft wants term and vote durable before anything that
 * depends on them leaves the node (a vote granted, a candidate's
 * requests): rather than sync on the spot (libraft's raft_uv blocks the
 * loop on an fsync per term change - ten thousand elections would take
 * minutes), every message the range sends after a term or vote change is
 * *held* until the batch carrying the change is durable, then sent in
 * order.
 *
 * Snapshots keep no data in the log: the range's data is the index store,
 * which the state machine syncs before a snapshot is taken (fsm.c), so a
 * snapshot is its metadata (index, term, configuration, the clock's
 * high-water mark) plus the compaction of the log below it. Sending one to
 * a follower encodes the range from the index store at that moment - at
 * or beyond the snapshot's index, and carrying its own applied index, so
 * the follower skips the entries its data already holds. Installing one
 * writes the data durably into the index store first (rio_hooks.install),
 * then records the metadata and deletes the log: a crash in between
 * leaves a store ahead of its log, which replay handles.
 *
 * Time. Each range has its own clock: the loop's time minus the time the
 * range spent asleep. A range that sleeps (quiesce.c) is off the ticker
 * and its clock stands still, so when it wakes libraft carries on as if no
 * time had passed - no spurious election, no leader stepping down for a
 * silence that was agreed. rio_expire_election moves a range's clock on
 * to its election timeout when its leader's node is known to be gone.
 */
#ifndef CAIRN_REP_RAFTIO_H
#define CAIRN_REP_RAFTIO_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>

#include "env.h"

/* What the replica provides to its I/O. */
typedef struct rio_hooks {
    /* After each tick of libraft (the replica decides about sleeping). */
    void (*after_tick)(void *owner);
    /* The range woke up (a message, a request, a peer event). */
    void (*woke)(void *owner);
    /* A control frame of kind `kind` (NET_QUIESCE, NET_READINDEX,
     * NET_READINDEX_ACK) from node `from`, at `addr`: a term and a value
     * (the commit index to sleep at; the ReadIndex round). */
    void (*control)(void *owner, int kind, uint64_t from, const char *addr,
                    uint64_t term, uint64_t value);
    /* Write a received snapshot's data into the index store, durably. */
    int (*install)(void *owner, const struct raft_buffer *data);
    /* Encode the range's current data for a follower: begin on the loop
     * (returns a handle, NULL on failure), encode on a worker thread into
     * a raft_malloc'd buffer, end on the loop. */
    void *(*snap_begin)(void *owner);
    int (*snap_encode)(void *owner, void *h, struct raft_buffer *out);
    void (*snap_end)(void *owner, void *h);
} rio_hooks;

/* A new I/O for range `range` of `env` (registered for its messages).
 * NULL when out of memory. */
rio *rio_new(rep_env *env, uint64_t range, const rio_hooks *hooks,
             void *owner);

/* The raft_io to hand to raft_init. */
struct raft_io *rio_io(rio *io);

/* Free, after libraft closed the raft_io (its close callback ran). */
void rio_free(rio *io);

/* Sleep: off the ticker, clock stopped. */
void rio_sleep(rio *io);

/* Wake: back on the ticker, clock running from where it stopped. */
void rio_wake(rio *io);

bool rio_asleep(const rio *io);

/* Move a follower's clock on so that its election timer expires: at its
 * next tick if `at_once`, else within one election timeout more (its
 * randomised part: replicas told together do not all campaign at once). */
void rio_expire_election(rio *io, bool at_once);

/* Send a control frame (NET_QUIESCE, NET_READINDEX, NET_READINDEX_ACK)
 * with `term` and `value` to node `to` at `addr`. */
void rio_send_control(rio *io, int kind, uint64_t to, const char *addr,
                      uint64_t term, uint64_t value);

/* Messages held for the log (see above): none, so a sleep is safe. */
bool rio_holding(const rio *io);

/* ---- for env.c -------------------------------------------------------- */

/* A frame of kind `kind` from node `from` for this range. */
void rio_deliver(rio *io, uint64_t from, const char *addr, int kind,
                 const uint8_t *p, size_t len);

/* A peer event (net.h) for every range. */
void rio_peer_event(rio *io, uint64_t peer, int event);

/* The log batch `durable` is on disk: send the messages held for it. */
void rio_release_held(rep_env *env, uint64_t durable);

#endif
