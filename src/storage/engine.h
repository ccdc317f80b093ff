/*
 * engine.h - the index store: one interface over two engines.
 *
 * A node keeps the applied state of every range replica it hosts in an index
 * store. Two engines implement this one interface, chosen per table:
 *
 *     ENGINE_BTREE  LMDB      (B+ tree: read-heavy workloads)
 *     ENGINE_LSM    RocksDB   (LSM tree: write-heavy workloads)
 *
 * A node opens at most one store of each kind; all ranges of that kind share
 * it, each range in its own key prefix:
 *
 *     stored key   = range id (8 bytes, big-endian) | user key (1..1024 bytes)
 *     stored value = sequencer (16 bytes) | flags (1 byte) | value bytes
 *
 * so byte order is scan order within a range, and a range is one contiguous
 * interval that can be dropped at once. (LMDB's 511-byte key limit makes
 * engine_lmdb.c store long keys in 502-byte chunks, preserving this order;
 * docs/ARCHITECTURE.md, Storage.) Flags bit 0 marks a tombstone: a
 * delete is a record with a sequencer, so that last-write-wins can compare a
 * delete with a write (dual read and bulk copy during a move need that).
 *
 * Per range the store also keeps, written in the same atomic batch as the
 * data it covers:
 *   - the applied index: the last Raft log index whose effects the store
 *     holds (after a crash the node replays the log from there);
 *   - an opaque meta blob owned by the replication layer (the range's bounds
 *     and epoch as of that applied index).
 *
 * Durability contract (DESIGN.md, "Storage on a node"): the Raft log is the
 * fsync'd log; the index store may lag it. engine_write() is atomic but need
 * not be durable; engine_sync() makes every completed write durable. A crash
 * at any point (process kill or power loss) leaves the store openable, with
 * each range's data equal to exactly the state at its stored applied index.
 *
 * Every function returns 0 or a negative cairn_err code (err.h). Keys longer
 * than CAIRN_KEY_MAX or empty give CAIRN_ERR_KEY_TOOBIG / CAIRN_ERR_KEY_EMPTY,
 * values over CAIRN_VALUE_MAX give CAIRN_ERR_TOOBIG, and the batch is left
 * unchanged.
 *
 * Threads: an engine may be used from several threads for reads; writes
 * (engine_write, engine_delete_interval, engine_drop_range) are serialised by
 * the caller. Batches, iterators and views belong to one thread at a time,
 * but may move between threads (LMDB read transactions are opened with
 * MDB_NOTLS) and may stay open across event-loop callbacks.
 */
#ifndef CAIRN_ENGINE_H
#define CAIRN_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/diskguard.h"
#include "../common/seq.h"

typedef enum engine_kind {
    ENGINE_BTREE = 1, /* LMDB */
    ENGINE_LSM = 2,   /* RocksDB */
} engine_kind;

typedef struct engine engine;
typedef struct engine_batch engine_batch;
typedef struct engine_view engine_view;
typedef struct engine_iter engine_iter;

/* Most bytes in a range's meta blob (engine_batch_set_meta gives
 * CAIRN_ERR_TOOBIG beyond it): it holds bounds and an epoch, not data. */
#define ENGINE_META_MAX (64 * 1024)

typedef struct engine_options {
    /* LMDB map size in bytes (the most the store can hold); 0 = default
     * (documented in docs/ARCHITECTURE.md). Ignored by RocksDB. */
    uint64_t lmdb_map_size;
    /* RocksDB memtable size in bytes; 0 = default (64 MiB). Small values
     * make tests exercise flushes and compactions. Ignored by LMDB. */
    uint64_t rocks_write_buffer_size;
    /* The node's full-disk guard, or NULL: a RocksDB store that met a full
     * disk is left for WAL recovery at close (rocks_close.h). */
    const diskguard *disk;
} engine_options;

/* One record as a reader sees it. Pointers stay valid until the next call on
 * the iterator (or, for engine_get, are copied into the caller's buf). */
typedef struct engine_entry {
    const uint8_t *key; /* user key, without the range prefix */
    size_t key_len;
    seq seq;
    bool tombstone;
    const uint8_t *value;
    size_t value_len;
} engine_entry;

/* "btree" / "lsm". */
const char *engine_kind_name(engine_kind kind);

/* Parse "btree" / "lsm". 0 or CAIRN_ERR_INVALID. */
int engine_kind_parse(const char *name, engine_kind *out);

/* Open (creating if needed) the store of `kind` in directory `dir`.
 * `opts` may be NULL for defaults. */
int engine_open(engine_kind kind, const char *dir, const engine_options *opts,
                engine **out);

/* Close the store. Completed writes are made durable first. Every view and
 * iterator of the store must be closed before. */
void engine_close(engine *e);

engine_kind engine_get_kind(const engine *e);

/* ---- writes ----------------------------------------------------------- */

engine_batch *engine_batch_new(void);
void engine_batch_free(engine_batch *b);

/* Empty the batch for reuse. */
void engine_batch_clear(engine_batch *b);

/* Number of put/tombstone operations in the batch. */
size_t engine_batch_count(const engine_batch *b);

/* Add a put of `key` -> `value` with sequencer `s` in range `range_id`.
 * The put replaces whatever is stored (last-write-wins is decided by the
 * caller, which compares sequencers before it writes). */
int engine_batch_put(engine_batch *b, uint64_t range_id, const void *key,
                     size_t key_len, const seq *s, const void *value,
                     size_t value_len);

/* Add a tombstone for `key` with sequencer `s`. */
int engine_batch_tombstone(engine_batch *b, uint64_t range_id,
                           const void *key, size_t key_len, const seq *s);

/* Add a deletion of the user keys in [start, end) of a range, with the
 * bounds of engine_delete_interval(); it applies in order with the batch's
 * other operations (a later put of a key in the interval survives). Lets an
 * interval delete commit atomically with the applied index of the Raft
 * entry that asked for it. Not counted by engine_batch_count(). */
int engine_batch_delete_interval(engine_batch *b, uint64_t range_id,
                                 const void *start, size_t start_len,
                                 const void *end, size_t end_len);

/* Set the range's applied index in this batch (the last call wins). */
int engine_batch_set_applied(engine_batch *b, uint64_t range_id,
                             uint64_t applied_index);

/* Set the range's meta blob in this batch (the last call wins). */
int engine_batch_set_meta(engine_batch *b, uint64_t range_id,
                          const void *meta, size_t meta_len);

/* Apply the batch atomically: all of it or none of it, also across a crash.
 * Not necessarily durable until engine_sync(). The batch is not cleared. */
int engine_write(engine *e, engine_batch *b);

/* Make every completed write durable (fsync). */
int engine_sync(engine *e);

/* Delete the user keys in [start, end) of a range; end_len 0 means to the end
 * of the range. Atomic. The applied index and meta are kept. */
int engine_delete_interval(engine *e, uint64_t range_id, const void *start,
                           size_t start_len, const void *end, size_t end_len);

/* Delete everything of a range: data, applied index and meta. Atomic. */
int engine_drop_range(engine *e, uint64_t range_id);

/* ---- reads ------------------------------------------------------------ */

/* A consistent, read-only point-in-time view of the whole store (what a
 * snapshot of a range is produced from). NULL `view` arguments below mean
 * "the latest state". Close views promptly: an open LMDB view keeps old pages
 * from being reused. */
int engine_view_open(engine *e, engine_view **out);
void engine_view_close(engine_view *v);

/* Point read, the value left where the store copied it: `rec` receives
 * the whole stored record and *value / *value_len point at the value
 * inside it (valid until `rec` changes). For large values this saves
 * engine_get's move of the value to the front of its buffer. Otherwise as
 * engine_get. */
int engine_get_ref(engine *e, engine_view *view, uint64_t range_id,
                   const void *key, size_t key_len, seq *seq_out,
                   bool *tombstone_out, buf *rec, const uint8_t **value,
                   size_t *value_len);

/* Point read. Fills *seq_out, *tombstone_out and copies the value into
 * `value_out` (replacing its contents). CAIRN_ERR_NOT_FOUND if the key has no
 * record at all; a tombstone is returned as found with *tombstone_out set. */
int engine_get(engine *e, engine_view *view, uint64_t range_id,
               const void *key, size_t key_len, seq *seq_out,
               bool *tombstone_out, buf *value_out);

/* The range's applied index, or 0 if the store has none for it. */
int engine_applied_index(engine *e, engine_view *view, uint64_t range_id,
                         uint64_t *out);

/* The range's meta blob, copied into `out`; CAIRN_ERR_NOT_FOUND if none. */
int engine_get_meta(engine *e, engine_view *view, uint64_t range_id,
                    buf *out);

/* Ids of every range that has an applied index or meta (or a range record
 * that fails its check: engine_verify tells), ascending. The
 * caller frees *ids_out with free(). */
int engine_list_ranges(engine *e, uint64_t **ids_out, size_t *count_out);

#define ENGINE_ITER_TOMBSTONES 1u /* also return tombstones */

/* Ordered forward iterator over user keys in [start, end) of a range;
 * end_len 0 means to the end of the range, start_len 0 from its beginning.
 * At most `limit` entries (0 = no limit). Tombstones are skipped unless
 * `flags` has ENGINE_ITER_TOMBSTONES. */
int engine_iter_open(engine *e, engine_view *view, uint64_t range_id,
                     const void *start, size_t start_len, const void *end,
                     size_t end_len, size_t limit, unsigned flags,
                     engine_iter **out);

/* 1 and *out filled, 0 at the end, or a negative error. */
int engine_iter_next(engine_iter *it, engine_entry *out);

void engine_iter_close(engine_iter *it);

/* Approximate size of a range: bytes of keys and values, and key count
 * (tombstones included). Cheap enough to call every few seconds. Accuracy
 * (docs/ARCHITECTURE.md, Storage): exact for LMDB, which keeps counters in
 * every write; for RocksDB exact up to 10,000 records, beyond that an
 * estimate from SST sizes scaled by a sampled bytes ratio. */
int engine_range_stats(engine *e, uint64_t range_id, uint64_t *bytes_out,
                       uint64_t *keys_out);

/* Check range `range_id` whole, as a node does before it serves a replica
 * it reopens: the range record decodes and passes its checksum, every
 * record (tombstones included) passes its checksum (engine_int.h), keys
 * come in strictly increasing order, and on LMDB the count and bytes of
 * the records equal the counters kept with every write (a lost or
 * duplicated page shows there). RocksDB checks its block checksums on the
 * way. 0, or CAIRN_ERR_CORRUPT with what was wrong in `why` (256 bytes,
 * may be NULL); another error if the store could not be read. Linear in
 * the range's size; for a node's start, not a hot path. */
int engine_verify(engine *e, uint64_t range_id, char *why);

/* Suggest a split key: a user key near the middle of the range by bytes,
 * such that both halves are non-empty. CAIRN_ERR_NOT_FOUND if the range has
 * fewer than two keys. Exact, and linear in the range's size (two passes
 * over one view): for the controller's occasional split, not a hot path. */
int engine_split_key(engine *e, uint64_t range_id, buf *key_out);

#endif
