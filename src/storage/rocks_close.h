/*
 * rocks_close.h - closing a RocksDB database that may have met a full disk
 * (both RocksDB users: the node-wide Raft log and the lsm index store).
 *
 * Debian's RocksDB 7.8 is built with assertions. A flush or compaction
 * that fails with ENOSPC leaves a file writer (MANIFEST, WAL) in an error
 * state; RocksDB's own recovery from "no space" lets the database go on,
 * but closing it later asserts in
 * WritableFileWriter::AssertFalseAndGetStatusForPrevError and aborts the
 * process (seen in the fault suite's full-disk runs, at SIGTERM - also
 * with no background error on record: the failed writer need not be the
 * WAL's or the MANIFEST's). So a database that met a full disk in this
 * process (the node's guard turned full) or has a background error on
 * record is not closed: every write
 * the node acknowledged was already synced (the Raft log) or can be
 * replayed from the Raft log (the index store), and the next open
 * recovers from the WAL as after a crash.
 */
#ifndef CAIRN_STORAGE_ROCKS_CLOSE_H
#define CAIRN_STORAGE_ROCKS_CLOSE_H

#include <stdbool.h>

#include <rocksdb/c.h>

#include "../common/diskguard.h"

/* Flush `db`'s memtables and close it, unless the node's guard `disk` (may be NULL) turned full in
 * this process or RocksDB reports background errors
 * ("rocksdb.background-errors" > 0); then leave it open, say so on stderr
 * naming `what`, and return false. */
bool rocks_close(rocksdb_t *db, const char *what, const diskguard *disk);

#endif
