/*
 * replica.h - one replica of a range: a libraft instance whose state machine
 * is the range's part of the node's index store.
 *
 * Write path (DESIGN.md "Write path"): replica_write() queues a client
 * write; once per loop iteration the queued writes of a range are packed
 * into one log entry (group commit: libraft costs per entry, not per op),
 * each op gets its sequencer from the node's HLC, and many entries may be in
 * flight. A write's callback fires only after its entry is committed (on a
 * majority, leader included) and applied to the index store. Conditional
 * puts are evaluated when applied, so they are atomic.
 *
 * Read path (DESIGN.md "Read path"): replica_read() queues a read; the
 * reads of a loop iteration share one raft_barrier, a log entry of the
 * leader's current term. When it commits, this node was leader when the
 * reads arrived (a majority accepted an entry of its term after they were
 * queued, so no later leader had been elected by then) and every entry
 * committed before is applied: reads then served from the index store are
 * linearizable. A deposed leader's barrier fails: it answers NOT_LEADER.
 * A new leader's first barrier is also what lets it take writes, so its
 * sequencers are above those of every entry committed before its term.
 *
 * Recovery (DESIGN.md "Storage on a node"): the index store holds the range's
 * applied index in the same batch as the data. On restart libraft replays
 * the node-wide log after the range's last snapshot; the state machine
 * skips every entry at or below the stored applied index, so nothing is
 * applied twice and nothing is rebuilt that the store already holds. The
 * store is synced before each snapshot, because a snapshot lets the log
 * drop the entries below it (raftio.h: a snapshot is metadata, the data is
 * the store).
 *
 * Sleep (quiesce.c): a range with no traffic whose followers are caught up
 * stops ticking and heartbeating; a request or a message wakes it.
 */
#ifndef CAIRN_REP_REPLICA_H
#define CAIRN_REP_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "../common/buf.h"
#include "../common/seq.h"
#include "../storage/engine.h"
#include "entry.h"
#include "env.h"

typedef struct replica replica;

/* Open the replica of the range described by `meta` (copied) whose index
 * store is `eng`; the store must already hold the range's meta. With
 * `bootstrap`, a fresh replica starts its group with `meta`'s peers as the
 * voters; without it, the replica joins when a leader adds it. An error
 * (a corrupt log among them) leaves the range closed; the message is in
 * `err` (may be NULL, 256 bytes). */
int replica_open(rep_env *env, engine *eng, const range_meta *meta,
                 bool bootstrap, replica **out, char *err);

/* Close: queued requests and pending admin requests (an add waiting for
 * its standby to catch up included) fail with CAIRN_ERR_SHUTDOWN, then
 * `cb(arg)` once libraft has released everything and the replica is freed.
 * No callback of this replica runs after `cb`. */
void replica_close(replica *r, void (*cb)(void *arg), void *arg);

/* The range's meta as applied here; its epoch moves with epoch entries. */
const range_meta *replica_meta(const replica *r);
engine *replica_engine(const replica *r);

/* The leader this replica knows (id 0 and address NULL if none). */
void replica_leader(replica *r, uint64_t *id, const char **address);

/* Checks a request must pass before it is queued: the key is in the range
 * (KEY_OUT_OF_RANGE) and of legal size (KEY_EMPTY, KEY_TOOBIG). */
int replica_check_key(const replica *r, const void *key, size_t len);

/* ---- writes and reads ------------------------------------------------- */

/* `status` 0 and the op's sequencer, or CAIRN_ERR_CONDITION (the condition
 * failed; nothing written), CAIRN_ERR_NOT_LEADER (never proposed),
 * CAIRN_ERR_TIMEOUT (leadership lost after proposing: outcome unknown),
 * CAIRN_ERR_SHUTDOWN, CAIRN_ERR_IO. */
typedef void (*rep_write_cb)(void *arg, int status, const seq *s);

/* Queue a put (ENTRY_OP_PUT) or delete (ENTRY_OP_DEL); key and value are
 * copied. With `cond` ENTRY_COND_IFNEWER the op is a record copied by a
 * move: `cond_seq` is its own sequencer, kept (not a new one), and it
 * lands only over an older record (entry.h; CAIRN_ERR_CONDITION if not). Returns 0 (cb fires later) or an error now (NOT_LEADER if this
 * replica is not the leader, TOOBIG, SNAPSHOT_TOOBIG if the range is at its
 * size cap; cb does not fire). */
int replica_write(replica *r, int kind, const void *key, size_t key_len,
                  const void *value, size_t value_len, int cond,
                  const seq *cond_seq, rep_write_cb cb, void *arg);

/* A move's copy (COPY) reached this replica, its leader: `records`
 * landed of `bytes` offered (keys and values). METRICS counts them
 * ("copied", "copy_bytes"): the destination's side of a move's progress. */
void replica_note_copy(replica *r, uint64_t records, uint64_t bytes);

/* `status` 0: leadership is confirmed for this read; read the index store
 * (replica_engine) now, inside the callback. Else NOT_LEADER / SHUTDOWN. */
typedef void (*rep_read_cb)(void *arg, int status);

/* Queue a linearizable read. 0 (cb fires later) or NOT_LEADER now. */
int replica_read(replica *r, rep_read_cb cb, void *arg);

/* ---- membership and leadership ---------------------------------------- */

/* `status` 0 or a cairn error; `msg` a human explanation (may be NULL). */
typedef void (*rep_admin_cb)(void *arg, int status, const char *msg);

/* Membership changes bump the range's epoch (DESIGN.md: every split, move
 * or membership change): once the change has committed, the leader
 * proposes an epoch entry, every replica adds one to its epoch when it
 * applies it (in the meta blob, with the applied index), and the request is
 * answered after it applied, `msg` ending in "epoch N": the new epoch, for
 * the caller to record in the metadata. If the epoch entry fails (the
 * leader lost leadership), `status` says so although the change itself
 * committed. */

/* Add node `id` at `address` as a non-voter (standby); once it has caught
 * up, promote it to voter (libraft promotes only after catch-up rounds),
 * then bump the epoch. Leader only. Idempotent: a node already in the
 * configuration is taken from where it is (a spare made standby, a standby
 * promoted once caught up, a voter answered at once with a new epoch);
 * the same id at another address is refused (INVALID). */
int replica_add(replica *r, uint64_t id, const char *address,
                rep_admin_cb cb, void *arg);

/* Remove node `id` from the group, then bump the epoch. Leader only.
 * Idempotent: a node not in the configuration only bumps the epoch. */
int replica_remove(replica *r, uint64_t id, rep_admin_cb cb, void *arg);

/* Split the range at `key` (empty: the median by bytes, engine.h): from
 * `key` up it becomes range `new_range` (an id from the metadata, never
 * used before), with the same voters; both halves get the next epoch.
 * Leader only. Answered once the split applied here: "split at <key hex>
 * into range N: done, epoch E", or INVALID if the range changed before the
 * split applied; KEY_OUT_OF_RANGE now if `key` is not strictly inside the
 * range. The caller records both ranges in the metadata. */
int replica_split(replica *r, const void *key, size_t key_len,
                  uint64_t new_range, rep_admin_cb cb, void *arg);

/* A data request for `key` reached this replica (a leader samples it for
 * replica_load_key). */
void replica_note_load(replica *r, const void *key, size_t len);

/* The key that splits the recent load of this leader's range in two (the
 * median of sampled request keys, load.c), in `out`. CAIRN_ERR_NOT_FOUND
 * when there is none: too few requests, or one hot key carrying most of
 * them. */
int replica_load_key(replica *r, buf *out);

/* Transfer leadership to voter `id` (0 = the most caught-up one). */
int replica_transfer(replica *r, uint64_t id, rep_admin_cb cb, void *arg);

/* The metadata's epoch for this range, from a request of the controller:
 * every epoch entry this leader proposes from now on carries a higher
 * one, so that what the controller records after a change is never below
 * what the metadata held (a replica serves only its current epoch). */
void replica_epoch_floor(replica *r, uint64_t epoch);

/* On the leader: propose an epoch entry above both the range's epoch and
 * `floor` (the metadata's, when it got ahead of the replicas); answered
 * "epoch: done, epoch E" once applied here. 0 (cb fires later),
 * CAIRN_ERR_NOT_LEADER, CAIRN_ERR_TRYAGAIN (a new leader that has not
 * applied the entries of earlier terms yet), CAIRN_ERR_NOMEM. */
int replica_bump_epoch(replica *r, uint64_t floor, rep_admin_cb cb,
                       void *arg);

/* On the leader: fence the range for a move (DESIGN.md "Split and move",
 * step 2) - an epoch entry with ENTRY_EPOCH_FREEZE, above both the range's
 * epoch and `floor`. Once it applies, every replica refuses every write
 * (CAIRN_ERR_KEY_OUT_OF_RANGE: not written, the router retries against the
 * new map), also those proposed before it, and the range never splits
 * again: what it holds is final. Answered "fence: done, epoch E, seq S"
 * once applied here, S (hex) above every sequencer the range holds - the
 * destination's clock moves past it, so every new write wins against
 * anything copied. Idempotent (a frozen range is fenced again at a new
 * epoch). Returns as replica_bump_epoch. */
int replica_fence(replica *r, uint64_t floor, rep_admin_cb cb, void *arg);

/* On the leader: move every replica's clock past `s` for good (a move's
 * destination, with its source's fence sequencer: DESIGN.md "Split and
 * move", so that every new write wins against anything copied later) - an
 * epoch entry with ENTRY_EPOCH_FLOOR above both the range's epoch and
 * `floor`; the floor is kept in the range's meta (RANGE_META_FLOOR) and
 * observed again on every open and install. Answered "floor: done, epoch
 * E" once applied here. Returns as replica_bump_epoch. */
int replica_set_floor(replica *r, uint64_t floor, const seq *s,
                      rep_admin_cb cb, void *arg);

/* On the leader: give the follower on node `id` a snapshot instead of the
 * log it lacks (issue 9: a lagging follower is first caught up so, and
 * replaced only if it still lags). Takes a snapshot at once, keeping fewer
 * trailing entries than the follower lacks, so that libraft's next
 * message to it is InstallSnapshot (catchup.c). `msg` says what was done,
 * or why not. 0 once started; CAIRN_ERR_NOT_LEADER; CAIRN_ERR_NOT_FOUND
 * (`id` is no follower); CAIRN_ERR_INVALID (fewer than 16 entries behind:
 * the log serves it); CAIRN_ERR_TRYAGAIN (one is under way). */
int replica_catch_up(replica *r, uint64_t id, char *msg, size_t msg_len);

/* Append this replica's metrics as one JSON object: role, term, commit and
 * applied index, log size, range size, and on a leader each follower's lag
 * in entries and seconds. */
int replica_metrics(replica *r, buf *out);

/* The same, with the range's size read again only if it is older than
 * `size_age_ms` (a periodic poll of thousands of ranges). */
int replica_metrics_aged(replica *r, buf *out, uint64_t size_age_ms);

/* The same figures as plain numbers, cheap enough to take for every
 * replica of a node once a second (the node's /metrics page): no JSON, no
 * store flush, no log walk. The range's size is the last one read from
 * the index store; with `refresh_size` it is read again if older than a
 * second (a read is O(1) on LMDB, a bounded scan on RocksDB: callers
 * spread refreshes over many ranges). Lag is over this replica's
 * followers and only on a leader. */
typedef enum replica_role {
    REPLICA_FOLLOWER,
    REPLICA_CANDIDATE,
    REPLICA_LEADER,
    REPLICA_UNAVAILABLE,
} replica_role;

typedef struct replica_stats {
    uint64_t range_id, table_id, epoch;
    replica_role role;
    uint64_t term, leader_id; /* leader 0: none known */
    uint64_t commit_index, applied_index, last_index;
    uint64_t bytes, keys;
    uint64_t writes, reads; /* client ops since the replica opened */
    bool asleep;
    unsigned voters;          /* in the configuration, this one included */
    uint64_t lag_entries_max; /* leader: the furthest follower behind */
    double lag_seconds_max;
} replica_stats;

void replica_get_stats(replica *r, bool refresh_size, replica_stats *out);

/* A 64-bit digest of the range's records (keys, sequencers, values,
 * tombstones) as this replica holds them: replicas at the same applied
 * index must agree (tests compare them to detect divergence). */
int replica_digest(replica *r, uint64_t *out);

#endif
