/*
 * entry.h - what a range replica writes into its Raft log, its index-store
 * meta blob and its snapshots, and how an entry is applied.
 *
 * Command entry (one raft_apply; the group commit of many client writes):
 *
 *     version (1) = 1 | proposer nonce (8) | proposal id (8) | n ops (4)
 *     op: kind (1) | cond (1) | cond seq (16) | seq (16) | key str | value str
 *
 * then zero padding to a multiple of 8 bytes: libraft 0.15 sends the
 * entries of one AppendEntries back to back but its receiver skips padding
 * to 8 bytes after each, so every entry (and snapshot) length must be a
 * multiple of 8 or the entries after it are read shifted.
 *
 * where str = length (4) | bytes and every integer is big-endian. The nonce
 * and id let the proposing node find the waiters of its own entries when it
 * applies them; every other replica ignores them.
 *
 * Epoch entry (a membership change was made: every replica sets the
 * range's epoch to the new one when it applies it, DESIGN.md "epoch"):
 *
 *     version (1) = 2 | proposer nonce (8) | proposal id (8) | epoch (8) |
 *     flags (1) | [floor seq (16), with ENTRY_EPOCH_FLOOR] | padding
 *
 * The new epoch is carried, not implied, so that a replica that joined
 * later and replays the log from its start - whatever epoch it was created
 * with - ends at the group's epoch. An entry of 24 bytes (no epoch field,
 * written before it existed) means "one more than now"; one of 32 bytes
 * (no flags byte, written before it existed) reads as flags 0 - its
 * padding. Flag ENTRY_EPOCH_FREEZE fences the range for a move (DESIGN.md
 * "Split and move", step 2): from this entry on the range takes no writes
 * (RANGE_META_FROZEN), so what it holds is final and a copy of it can be
 * made while readers still read it. Flag ENTRY_EPOCH_FLOOR carries a
 * sequencer every replica's clock moves past and keeps past for good
 * (RANGE_META_FLOOR): a move's destination takes it from the fence of its
 * source, so that its new writes win against anything copied later.
 *
 * Split entry (the range splits at `key`; its upper part becomes range
 * `new id` with the same replicas, and both get the next epoch):
 *
 *     version (1) = 3 | proposer nonce (8) | proposal id (8) |
 *     new range id (8) | epoch (8) | key str | padding
 *
 * Range meta (the engine's per-range meta blob, written with the data):
 *
 *     version (1) = 2 | flags (1) | table id (8) | engine (1) | epoch (8) |
 *     start str | end str (empty = unbounded) | n peers (1) |
 *     peer: id (8) | addr str
 *
 * (version 1, written before splits existed, has no flags byte.) Flag
 * RANGE_META_BOOTSTRAP: the replica was created to bootstrap its group
 * with `peers` as the voters - a create or a split - so a start that finds
 * no Raft state for it (the log's first batch was lost with a crash) may
 * bootstrap it again with the same voters. Flag RANGE_META_FROZEN: a
 * fence applied (ENTRY_EPOCH_FREEZE); every later write is refused. Flag
 * RANGE_META_FLOOR: a floor sequencer (16 bytes) follows the peers; the
 * node's clock observes it whenever the replica opens or installs.
 *
 * Snapshot (produced from the index store, DESIGN.md "Storage on a node"):
 *
 *     "CSN1" | applied index (8) | meta str | n records (8) |
 *     record: key str | seq (16) | flags (1, bit 0 = tombstone) | value str
 */
#ifndef CAIRN_REP_ENTRY_H
#define CAIRN_REP_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/seq.h"
#include "../storage/engine.h"

#define ENTRY_OP_PUT 1
#define ENTRY_OP_DEL 2

#define ENTRY_COND_NONE 0
#define ENTRY_COND_IFSEQ 1
#define ENTRY_COND_IFABSENT 2
/* The op lands only if the key holds nothing, or a record (tombstones
 * included) with a lower sequencer than the op's own: a record copied from
 * a range being moved (DESIGN.md "Split and move": a copied record lands
 * only if its sequencer is higher than what the destination holds), so a
 * copy never overwrites a newer write and copying twice changes nothing.
 * A skipped op's result is CAIRN_ERR_CONDITION. */
#define ENTRY_COND_IFNEWER 3

#define ENTRY_HEADER_LEN 21
#define ENTRY_OP_FIXED 42 /* op bytes besides key and value */

typedef struct entry_op {
    uint8_t kind;
    uint8_t cond;
    seq cond_seq;
    seq seq;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
} entry_op;

/* Bytes one op takes in an entry. */
size_t entry_op_size(size_t key_len, size_t value_len);

/* Append an entry header / one op to `out`. */
int entry_put_header(buf *out, uint64_t nonce, uint64_t proposal,
                     uint32_t n_ops);
int entry_put_op(buf *out, const entry_op *op);

/* Zero-pad `b` to a multiple of 8 bytes (see above). */
int entry_pad(buf *b);

/* Decoding: entry_parse checks the header and every op's bounds up front so
 * that applying never meets a malformed op halfway. */
typedef struct entry_reader {
    const uint8_t *p;
    size_t len;
    size_t pos;
    uint64_t nonce;
    uint64_t proposal;
    uint32_t n_ops;
} entry_reader;

/* 0, or CAIRN_ERR_CORRUPT if the entry is malformed anywhere. */
int entry_parse(const void *p, size_t len, entry_reader *out);

/* Next op: 1 and *op filled, 0 after the last. Only after entry_parse. */
int entry_next(entry_reader *r, entry_op *op);

/* Append a whole split entry, padded, to `out`; both halves get
 * `epoch`. */
int entry_put_split(buf *out, uint64_t nonce, uint64_t proposal,
                    uint64_t new_range, uint64_t epoch, const void *key,
                    size_t key_len);

/* Whether `p` is a well-formed split entry; its fields (`key` points into
 * `p`). */
bool entry_is_split(const void *p, size_t len, uint64_t *nonce,
                    uint64_t *proposal, uint64_t *new_range, uint64_t *epoch,
                    const uint8_t **key, size_t *key_len);

#define ENTRY_EPOCH_FREEZE 1
#define ENTRY_EPOCH_FLOOR 2

/* Append a whole epoch entry, padded, to `out`, carrying the new `epoch`
 * (0: none carried, the old form: one more than the replica's) and
 * `flags` (ENTRY_EPOCH_FREEZE, ENTRY_EPOCH_FLOOR: then `floor` is
 * carried; only with an epoch carried). */
int entry_put_epoch(buf *out, uint64_t nonce, uint64_t proposal,
                    uint64_t epoch, uint8_t flags, const seq *floor);

/* Whether `p` is a well-formed epoch entry; its nonce, proposal id, the
 * epoch it carries (0 for the old form without one), its flags and, with
 * ENTRY_EPOCH_FLOOR, its floor (`floor` may be NULL). */
bool entry_is_epoch(const void *p, size_t len, uint64_t *nonce,
                    uint64_t *proposal, uint64_t *epoch, uint8_t *flags,
                    seq *floor);

/* Outcome of one applied op, for the proposer's waiter. */
typedef struct entry_result {
    int status; /* 0 or CAIRN_ERR_CONDITION */
    seq seq;    /* the op's sequencer */
} entry_result;

/* Apply one command entry to range `range_id` of `e` as log index `index`,
 * in one atomic engine batch that also records `index` as the applied
 * index (the rule that makes replay after a crash apply nothing twice).
 * Conditions are evaluated here, against the state the entry applies to,
 * including earlier ops of the same entry: that makes a conditional put
 * atomic. `results` (n_ops of them) may be NULL. Every op's sequencer is
 * passed to `clock` (seq_observe) if not NULL. `batch` is unused (kept for
 * callers); this is entry_applier_add + entry_applier_flush. */
int entry_apply(engine *e, engine_batch *batch, uint64_t range_id,
                uint64_t index, const void *p, size_t len,
                entry_result *results, seq_clock *clock);

/* An applier applies consecutive entries of one range into an engine batch
 * written by a flush: libraft applies every entry that commits in one
 * callback, and the index store may fsync per write, so the replica flushes
 * once per loop iteration (and before anything reads the store).
 * Conditions of later entries see the pending ops of earlier ones. The batch
 * carries the applied index of the last entry added, so a write is still
 * all-or-nothing and exactly at an entry boundary.
 *
 * A batcher holds one engine batch shared by the appliers of every range of
 * that engine on the node: flushing any of them writes all of them, so a
 * node with many busy ranges still does one engine write per iteration. */
typedef struct entry_applier entry_applier;
typedef struct entry_batcher entry_batcher;
typedef struct range_meta range_meta;

entry_batcher *entry_batcher_new(engine *e);
void entry_batcher_free(entry_batcher *b);

/* Write every pending op of every applier of `b` (one engine_write). */
int entry_batcher_flush(entry_batcher *b);

/* An applier sharing `b` (which must outlive it). NULL if no memory. */
entry_applier *entry_applier_new_shared(entry_batcher *b, uint64_t range_id,
                                        uint64_t applied);

/* An applier with a private batcher. `applied` is the range's applied
 * index in the store. NULL if no memory. */
entry_applier *entry_applier_new(engine *e, uint64_t range_id,
                                 uint64_t applied);
/* Free; writes the applier's pending ops first, if any. */
void entry_applier_free(entry_applier *a);

/* Add entry `index` (the next one). Errors: CAIRN_ERR_CORRUPT (malformed,
 * nothing added), or an engine error (the applier must then be dropped). */
int entry_applier_add(entry_applier *a, uint64_t index, const void *p,
                      size_t len, entry_result *results, seq_clock *clock);

/* Add entry `index` (the next one), an epoch entry: it sets the range's
 * meta blob to `meta` in the batch that records `index` as applied, so the
 * epoch and the applied index change together. */
int entry_applier_add_meta(entry_applier *a, uint64_t index,
                           const void *meta, size_t meta_len);

/* Ops of later entries whose key lies outside `bounds` (the range's meta
 * as of the entry: a split may have narrowed it after they were proposed)
 * are not applied, nor any op once `bounds` is RANGE_META_FROZEN (a fence
 * applied after they were proposed); their result is
 * CAIRN_ERR_KEY_OUT_OF_RANGE - a definite "not written", the router
 * retries against the new map. `bounds` must
 * outlive the applier; NULL checks nothing. */
void entry_applier_set_bounds(entry_applier *a, const range_meta *bounds);

/* Add entry `index` (the next one), which changes nothing but the
 * applied index (a refused split). */
int entry_applier_add_noop(entry_applier *a, uint64_t index);

/* Number of entries added and not yet written. */
size_t entry_applier_pending(const entry_applier *a);

/* Write the pending entries (with those of every applier sharing its
 * batcher: one engine_write); no-op if none. */
int entry_applier_flush(entry_applier *a);

/* ---- range meta ------------------------------------------------------- */

#define RANGE_MAX_PEERS 7
#define RANGE_META_BOOTSTRAP 1
#define RANGE_META_FROZEN 2
#define RANGE_META_FLOOR 4

typedef struct range_peer {
    uint64_t id;
    char addr[256];
} range_peer;

struct range_meta {
    uint64_t range_id; /* not encoded: it is the engine key */
    uint64_t table_id;
    engine_kind engine;
    uint64_t epoch;
    buf start;
    buf end; /* empty = unbounded */
    unsigned n_peers;
    range_peer peers[RANGE_MAX_PEERS];
    uint8_t flags; /* RANGE_META_BOOTSTRAP, _FROZEN, _FLOOR */
    seq floor;     /* RANGE_META_FLOOR: the clock stays past it */
};

int range_meta_encode(const range_meta *m, buf *out);

/* Fills `m` (whose bufs must be initialised); CAIRN_ERR_CORRUPT if bad. */
int range_meta_decode(const void *p, size_t len, range_meta *m);
void range_meta_free(range_meta *m);

/* Whether `key` lies in the range's [start, end). */
bool range_meta_contains(const range_meta *m, const void *key,
                         size_t key_len);

/* ---- snapshots -------------------------------------------------------- */

/* Encode range `range_id` as of `view`: its meta blob, every record
 * (tombstones included) and `applied`. CAIRN_ERR_SNAPSHOT_TOOBIG if the
 * encoding would exceed `cap` bytes (nothing is lost: the log is simply not
 * compacted). */
int snapshot_encode(engine *e, engine_view *view, uint64_t range_id,
                    uint64_t applied, size_t cap, buf *out);

/* The applied index a snapshot carries, without applying it. */
int snapshot_index(const void *p, size_t len, uint64_t *applied_out);

/* Replace range `range_id` with a snapshot in one atomic batch: the
 * deletion of every key the range held, every record of the snapshot, its
 * meta blob and its applied index. A crash leaves the old state or the new
 * one, never a mix. `clock` (may be NULL) observes every sequencer. */
int snapshot_restore(engine *e, uint64_t range_id, const void *p, size_t len,
                     seq_clock *clock);

/* Move `clock` past every sequencer of a snapshot (restore does it too, for
 * `clock` not NULL). A restarting replica whose store is newer than its last
 * snapshot skips the restore but must still observe what it holds (seq.h
 * rule 4): the log before the snapshot is gone. */
int snapshot_observe(const void *p, size_t len, seq_clock *clock);

#endif
