/*
 * raftlog.h - the node-wide Raft log: one append-only, fsync'd store for
 * the Raft state of every range replica on a node (DESIGN.md, "Storage on
 * a node").
 *
 * What it holds, per range: the log entries, the hard state (current term
 * and vote) and the metadata of the last snapshot (index, term, committed
 * configuration, and the node clock's high-water mark when it was taken).
 * Snapshot *data* is not kept here: a range's data lives in the index
 * store, which is synced before a snapshot is recorded (raftio.h).
 *
 * Why one store for all ranges: a range then costs a key prefix, not
 * files of its own, and the writes of every range made in one loop
 * iteration become one write and one fsync - group commit across ranges.
 * The store is RocksDB (already a dependency): keys
 *
 *     'e' | range (8) | index (8)  ->  term (8) | type (1) | entry bytes
 *     'h' | range (8)              ->  term (8) | vote (8)
 *     's' | range (8)              ->  snapshot meta (raftlog_snap)
 *
 * big-endian, so one range's entries are one key interval in index order,
 * deleted with one DeleteRange (truncation, compaction, drop). TiKV kept
 * its Raft logs this way for years before writing raft-engine.
 *
 * Write pipeline. Mutations are queued into the *filling* batch (a RocksDB
 * WriteBatch). Once per loop iteration, right before the loop blocks (a
 * uv_prepare handle), the filling batch is handed to a writer thread,
 * which writes it with sync = true: one WAL write and one fsync for
 * everything every range queued in that iteration. One batch is in flight
 * at a time; what is queued meanwhile waits in the next one, so the batch
 * grows with the load (group commit). When a batch is durable its
 * callbacks run on the loop, in queue order. Batches are numbered; a
 * mutation queued now is durable once raftlog_durable() reaches the
 * raftlog_filling() of the moment it was queued.
 *
 * Crash safety. A RocksDB write batch is atomic; the WAL is replayed on
 * open with kTolerateCorruptedTailRecords: a torn record at the tail (a
 * write cut by a crash, never acknowledged) is dropped, and corruption
 * anywhere else makes the open fail rather than silently forget
 * acknowledged entries. A write error is final for the process
 * (raftlog_on_failure): Raft cannot go on with a log whose state on disk
 * it no longer knows.
 *
 * Everything here runs on the node's loop thread, but the writer thread's
 * private work.
 */
#ifndef CAIRN_REP_RAFTLOG_H
#define CAIRN_REP_RAFTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <uv.h>

#include "../common/buf.h"
#include "../common/diskguard.h"
#include "../common/seq.h"

typedef struct raftlog raftlog;

/* Durable (status 0) or failed (a cairn error). */
typedef void (*raftlog_cb)(void *arg, int status);

/* Open (create) the log at `path` on `loop`, and read it all once with
 * checksums on. `err` (256 bytes, may be NULL) says why not:
 * CAIRN_ERR_CORRUPT if a record or block fails its check (the log is
 * shared by every range of the node: the node must not start on it),
 * else CAIRN_ERR_IO. */
int raftlog_open(uv_loop_t *loop, const char *path, raftlog **out,
                 char *err);

/* Write what is queued, wait for it, close. Callbacks still queued run
 * (with their status) before this returns. */
void raftlog_close(raftlog *l);

/* ---- a range's state -------------------------------------------------- */

/* Metadata of a range's last snapshot. `conf` is the committed
 * configuration, opaque here (raftmsg_conf_encode writes it). */
typedef struct raftlog_snap {
    uint64_t index, term;
    uint64_t conf_index;
    buf conf;
    seq clock; /* the node's HLC high-water mark when it was taken */
} raftlog_snap;

void raftlog_snap_free(raftlog_snap *s);

typedef struct raftlog_state {
    bool exists; /* the range has a hard-state record */
    uint64_t term, vote;
    bool has_snap;
    raftlog_snap snap;
    /* Entries [start_index, start_index + n), contiguous; `entries` is
     * raft_malloc'd and every entry's data lies in one raft_malloc'd batch
     * (entries[i].batch), as libraft's raft_io->load hands them over. */
    uint64_t start_index;
    struct raft_entry *entries;
    size_t n;
} raftlog_state;

/* Read range `range`'s state (synchronously; the store's latest state,
 * which includes everything queued and written, durable or not).
 * CAIRN_ERR_CORRUPT if a record is malformed or the entries have a gap;
 * CAIRN_ERR_IO if the store fails to read. */
int raftlog_load(raftlog *l, uint64_t range, raftlog_state *st);

/* Free what raftlog_load returned that the caller did not take. */
void raftlog_state_free(raftlog_state *st);

/* Every range with a hard-state record, sorted. `*ids` is malloc'd. */
int raftlog_list_ranges(raftlog *l, uint64_t **ids, size_t *n);

/* ---- mutations: queued into the filling batch ------------------------- */

/* Entries `first`, `first`+1, ... of `range`. The bytes are copied. */
int raftlog_put_entries(raftlog *l, uint64_t range, uint64_t first,
                        const struct raft_entry *entries, unsigned n);

/* Delete entries [from, end of log). */
int raftlog_truncate(raftlog *l, uint64_t range, uint64_t from);

/* Delete entries [1, below). */
int raftlog_compact(raftlog *l, uint64_t range, uint64_t below);

int raftlog_put_hard(raftlog *l, uint64_t range, uint64_t term,
                     uint64_t vote);

int raftlog_put_snap(raftlog *l, uint64_t range, const raftlog_snap *s);

/* Delete every record of `range`. A compaction follows within seconds
 * (on a worker thread), so that the disk is given back. */
int raftlog_drop(raftlog *l, uint64_t range);

/* Write a hard state and, if `first` is not NULL, entry 1, *now* (not
 * synced, but visible to raftlog_load at once) - a bootstrap or a new
 * replica must be loadable before its first batch is written - and make
 * the filling batch sync it. */
int raftlog_write_now(raftlog *l, uint64_t range, uint64_t term,
                      uint64_t vote, const struct raft_entry *first);

/* Call `cb(arg, status)` once everything queued so far is durable (at the
 * end of the filling batch). Allocation failure: CAIRN_ERR_NOMEM, no
 * callback. */
int raftlog_when_durable(raftlog *l, raftlog_cb cb, void *arg);

/* ---- progress --------------------------------------------------------- */

/* The number of the batch being filled, and of the last durable one. */
uint64_t raftlog_filling(const raftlog *l);
uint64_t raftlog_durable(const raftlog *l);

/* Check `g` (may be NULL) on the writer thread before every write, so
 * that a disk filled by anything turns the guard full - freeing its
 * reserve - before this write could meet ENOSPC (diskguard.h). */
void raftlog_set_disk_guard(raftlog *l, diskguard *g);

/* Called on the loop after each batch became durable, after its own
 * callbacks (the node releases messages held until then: raftio.h). */
void raftlog_on_durable(raftlog *l, void (*fn)(void *arg, uint64_t batch),
                        void *arg);

/* Called once, on the loop, when a write fails: the process must stop
 * using the log. Default: print the reason and abort. */
void raftlog_on_failure(raftlog *l, void (*fn)(void *arg, const char *why),
                        void *arg);

typedef struct raftlog_stats {
    uint64_t batches; /* synced writes: one fsync each */
    uint64_t entries; /* entries appended */
    uint64_t bytes;   /* bytes of batches written */
    uint64_t sync_us; /* time spent in synced writes */
    uint64_t compactions; /* after drops, to give the disk back */
} raftlog_stats;

void raftlog_get_stats(const raftlog *l, raftlog_stats *out);

#endif
