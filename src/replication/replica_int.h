/*
 * replica_int.h - what the files of a range replica share (replica.h is
 * the public face). One concern per file:
 *
 *     replica.c     open and close; client writes (group commit) and reads
 *                   (barriers); the leader's identity
 *     fsm.c         the state machine: applying entries to the index store,
 *                   snapshots (taking, sending, installing, restoring)
 *     membership.c  add, remove, promote, transfer leadership; the epoch
 *                   entry that follows a membership change
 *     quiesce.c     when an idle range sleeps and what wakes it
 *     metrics.c     metrics, follower lag, the data digest
 *     catchup.c     a snapshot now for a lagging follower
 *     raftio.c      libraft's I/O on the node-wide log and links
 *     raftio_msg.c  (its messages: send, hold until durable, deliver)
 */
#ifndef CAIRN_REP_REPLICA_INT_H
#define CAIRN_REP_REPLICA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>

#include "raftio.h"
#include "replica.h"

#define LAG_RING 1024 /* (index, time) of recent proposals, for lag seconds */

typedef struct waiter {
    rep_write_cb wcb;
    rep_read_cb rcb;
    void *arg;
    /* queued write: op fields, key and value at offsets into r->stage */
    uint8_t kind, cond;
    seq cond_seq;
    size_t off, key_len, value_len;
} waiter;

typedef struct wvec {
    waiter *v;
    size_t n, cap;
} wvec;

typedef struct admin_req {
    struct raft_change change;
    struct raft_transfer transfer;
    replica *r;
    uint64_t id;
    rep_admin_cb cb;
    void *arg;
    const char *what;  /* the change, for the reply */
    char text[600];    /* a `what` built for this request (split) */
    bool entry_is_change; /* the proposed entry is the change itself */
    bool fence;        /* a fence: the answer names the next sequencer */
    bool has_poll;     /* `poll` is initialised: closed before the free */
    uv_timer_t poll;   /* add: waits for the standby to catch up */
    uint64_t deadline_ms;
    struct admin_req *next, *prev; /* the replica's pending admin requests */
} admin_req;

/* A proposed entry: client writes (n waiters), or the epoch entry of a
 * membership change (`admin`). */
typedef struct proposal {
    struct raft_apply req;
    replica *r;
    uint64_t id;
    size_t n;
    waiter *w;
    entry_result *res;
    admin_req *admin;
    uint64_t epoch; /* the epoch entry's (or split's) resulting epoch */
    int status;     /* refused as it applied (a split no longer valid) */
    struct proposal *next, *prev;
} proposal;

typedef struct lag_sample {
    raft_index index;
    uint64_t ms;
} lag_sample;

struct replica {
    rep_env *env;
    range_meta meta;
    uint64_t range_id;
    engine *eng;
    entry_applier *applier; /* committed entries not yet written */
    uint64_t applied;       /* the index store's applied index */
    uint64_t entry_bytes;   /* a running mean of entry sizes (fsm.c) */
    unsigned snap_every, snap_keep; /* libraft's counts as last set */
    rio *io;
    struct raft raft;
    struct raft_fsm fsm;
    bool raft_inited;

    uv_check_t flush; /* group commit: runs once per loop iteration */
    wvec writes;      /* queued writes */
    buf stage;        /* their keys and values */
    wvec reads;       /* queued reads */
    wvec reading;     /* reads waiting for the barrier in flight */
    struct raft_barrier barrier;
    bool barrier_busy;
    raft_term barrier_term;
    raft_term ready_term; /* a barrier of this term has committed */
    proposal *props;      /* proposals in flight */
    admin_req *admins;    /* admin requests not answered yet */
    uint64_t next_prop;
    uint64_t epoch_proposed; /* the highest epoch this replica proposed */
    bool handing_over;       /* a leadership transfer is under way: new
                                writes are refused (TRYAGAIN) */

    uint64_t size_bytes, size_keys;
    uint64_t size_checked_ms;
    lag_sample *lag; /* LAG_RING samples while leading with traffic */
    unsigned lag_pos;
    uint64_t n_writes, n_entries, n_reads, n_barriers, n_snapshots;
    uint64_t n_installed; /* snapshots installed from a leader */
    uint64_t n_copied, copy_bytes; /* a move's COPY: landed, offered */

    /* catchup.c: a snapshot taken for a lagging follower */
    struct raft_barrier catchup_barrier;
    bool catchup_barrier_busy;
    raft_index catchup_index; /* until a snapshot reaches it, or 0 */
    uint64_t n_catchups;

    /* readindex.c: one ReadIndex round at a time */
    wvec ri_reading;       /* reads waiting for the round */
    uint64_t ri_seq;       /* the round's number */
    raft_term ri_term;
    raft_index ri_commit;  /* served once applied reaches it */
    uint64_t ri_acked[RANGE_MAX_PEERS];
    unsigned ri_acks;      /* voters that confirmed, this one included */
    bool ri_busy, ri_confirmed;
    uint64_t ri_started_ms;
    uint64_t n_readindex;  /* rounds (metrics) */

    /* load.c: keys of recent requests, for a load-based split key */
    buf *load;          /* LOAD_SAMPLES keys, allocated with traffic */
    unsigned load_pos, load_n;
    uint32_t load_skip; /* sample one request in LOAD_EVERY */

    unsigned idle_ticks;   /* quiesce.c */
    raft_index idle_index; /* last index when last looked */

    bool closing;
    void (*close_cb)(void *);
    void *close_arg;
};

static inline uint64_t replica_now_ms(replica *r)
{
    return uv_now(r->env->loop);
}

/* ---- replica.c -------------------------------------------------------- */

/* Answer every waiter of `v` with `status` and empty it. */
void replica_fail_waiters(wvec *v, int status);

/* Run the group commit at the end of this loop iteration. */
void replica_schedule_flush(replica *r);

/* Map a libraft error to a cairn error (a refusal: nothing was done). */
int replica_map_raft_err(int rv);

/* Unlink / free a proposal. */
void replica_prop_unlink(replica *r, proposal *p);
void replica_prop_free(proposal *p);

/* Find this process's proposal `id` (NULL for another proposer's). */
proposal *replica_find_proposal(replica *r, uint64_t nonce, uint64_t id);

/* libraft's callback for every proposal (writes and epoch entries). */
void replica_applied_cb(struct raft_apply *req, int status, void *result);

/* ---- fsm.c ------------------------------------------------------------ */

/* Fill r->fsm (libraft's state machine callbacks). */
void fsm_init(replica *r);

/* The I/O hooks that reach the state machine (install, snapshot data). */
void fsm_hooks(rio_hooks *h);

/* Write the applied-but-pending entries: before anything reads the store
 * (reads, snapshots, metrics) and once per loop iteration. A failure
 * stops the process: the replica would diverge. */
void fsm_flush(replica *r);

/* A fresh applier for the range at `applied`. */
entry_applier *fsm_new_applier(replica *r, uint64_t applied);

/* ---- catchup.c -------------------------------------------------------- */

/* Whether catchup.c's snapshot counts hold (its snapshot is not taken
 * yet); once it is, puts the configured counts back and says false. */
bool catchup_pending(replica *r);

/* ---- membership.c ----------------------------------------------------- */

/* A pending admin request of `r`, answered later through `cb`. */
admin_req *admin_new(replica *r, uint64_t id, rep_admin_cb cb, void *arg);

/* Propose the entry `build` writes (an epoch or split entry, carrying
 * `epoch`: the range's next epoch, above every one this leader proposed)
 * for admin request `a`; it is answered once the entry applied here, as
 * "<what>: done, epoch N", or with the reason it failed. */
void admin_propose(admin_req *a, const char *what,
                   int (*build)(buf *e, uint64_t nonce, uint64_t id,
                                uint64_t epoch, void *arg),
                   void *build_arg);

/* Answer an admin request and free it. */
void admin_finish(admin_req *a, int status, const char *msg);

/* The epoch entry of a membership change ended (applied, or failed). */
void membership_epoch_done(proposal *p, int status);

/* Close the catch-up timers of pending adds (the replica is closing). */
void membership_stop_polls(replica *r);

/* ---- quiesce.c -------------------------------------------------------- */

void quiesce_after_tick(void *owner);
void quiesce_woke(void *owner);
void quiesce_msg(void *owner, uint64_t from, uint64_t term, uint64_t index);

/* A local request for this range: wake it if it leads. */
void quiesce_touch(replica *r);

/* ---- split.c ---------------------------------------------------------- */

/* Apply split entry `index` (entry.h): the range's keys from `key` up move
 * to range `new_range`, both get the next epoch, and the new range's
 * replica opens here, bootstrapped with this range's voters. A split that
 * no longer fits the range (it moved on meanwhile) changes nothing and
 * answers its proposer with INVALID. */
void split_apply(replica *r, uint64_t index, uint64_t nonce, uint64_t id,
                 uint64_t new_range, uint64_t epoch, const uint8_t *key,
                 size_t key_len);

/* ---- readindex.c ------------------------------------------------------ */

/* Start a ReadIndex round for the queued reads (leader, ready). */
void readindex_start(replica *r);

/* Serve the round once confirmed and applied far enough; fail it if
 * leadership was lost or no majority answered in an election timeout. */
void readindex_check(replica *r);

/* Answer the round's reads with `status` (closing, leadership lost). */
void readindex_fail(replica *r, int status);

/* The rio control hook: NET_QUIESCE (quiesce.c), NET_READINDEX (a
 * follower confirms its leader), NET_READINDEX_ACK (a leader counts). */
void readindex_control(void *owner, int kind, uint64_t from,
                       const char *addr, uint64_t term, uint64_t value);

/* ---- load.c ----------------------------------------------------------- */

#define LOAD_SAMPLES 128
#define LOAD_EVERY 4

/* A request for `key` reached this leader (sampled, for load_split_key). */
void load_note(replica *r, const void *key, size_t len);

/* Forget the samples (the range sleeps, or splits). */
void load_forget(replica *r);

/* ---- metrics.c -------------------------------------------------------- */

/* Remember when entry `index` was proposed (for lag seconds). */
void metrics_note_proposal(replica *r, raft_index index);

/* Re-read the range's size from the store at most once a second. */
void metrics_refresh_size(replica *r);

#endif
