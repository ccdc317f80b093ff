/*
 * diskguard.h - keep a full disk from reaching the stores (the fault
 * suite's "full disk"; docs/OPERATIONS.md "A full disk").
 *
 * Why: neither store survives running out of space mid-write. RocksDB 7.8
 * as Debian builds it asserts and aborts inside a synced write whose WAL
 * append failed with ENOSPC (tried: a put on a full tmpfs), and a write
 * the index store refuses after Raft committed it cannot be skipped
 * without the replica diverging. So the node must stop taking new data
 * *before* the disk is full, with room left for what it already accepted.
 *
 * How, as CockroachDB's ballast: the guard keeps a reserve file of
 * `reserve` bytes (DIR/reserve, allocated with posix_fallocate) while the
 * disk has room. Whenever the free space (statvfs f_bavail) falls below
 * half the reserve - the node's own growth or anything else filling the
 * disk - the guard turns *full*: it deletes the reserve file, which gives
 * the node `reserve` bytes of headroom for the entries it has already
 * accepted (their log writes, their applies, the stores' flushes), and the
 * node refuses new writes (`NOSPACE`, nothing applied) and stops accepting
 * new log entries as a follower (raftio_msg.c). Once the free space is back
 * to twice the reserve, the guard allocates the reserve file again and
 * turns not full: the node takes writes again, with no restart.
 *
 * The check is one statvfs call: the node makes it before every Raft log
 * write (the writer thread) and on a timer, so a disk filled at once by
 * another process is seen before the node's next write. A follower's
 * question before taking entries (diskguard_room) is answered from a look
 * at most 50 ms old when the disk is far from the reserve.
 *
 * Thread-safe: diskguard_check and diskguard_full may be called from any
 * thread; the rest from the one that opened the guard.
 */
#ifndef CAIRN_DISKGUARD_H
#define CAIRN_DISKGUARD_H

#include <stdbool.h>
#include <stdint.h>

typedef struct diskguard diskguard;

/* The largest reserve: a tenth of the filesystem's size, so that a small
 * disk keeps most of its space for data. */
#define DISKGUARD_MAX_SHARE 10

/* Guard the filesystem of directory `dir` (which exists) with a reserve of
 * `reserve` bytes, capped at 1/DISKGUARD_MAX_SHARE of the filesystem; 0
 * disables the guard (never full, no file). A disk already below the
 * threshold starts full. Returns 0, or CAIRN_ERR_NOMEM / CAIRN_ERR_IO
 * (`dir` cannot be examined). */
int diskguard_open(const char *dir, uint64_t reserve, diskguard **out);

/* Free the guard; the reserve file stays for the next start. NULL is a
 * no-op. */
void diskguard_close(diskguard *g);

/* Look at the free space now; turn full (deleting the reserve file) if it
 * is below half the reserve. Returns whether the guard is full. */
bool diskguard_check(diskguard *g);

/* Whether `bytes` more can be written without the free space falling
 * below half the reserve - from a look at the disk at most 50 ms old, less
 * what it let through since, when that leaves more than the reserve;
 * looking now otherwise. False while full.
 * For data the node may still refuse (a follower's new entries): what it
 * accepts it must later apply, from the reserve at worst. NULL or no
 * guard: always. */
bool diskguard_room(diskguard *g, uint64_t bytes);

/* Whether the guard is full (no system call). NULL: never. */
bool diskguard_full(const diskguard *g);

/* The timer's step: diskguard_check, then, if full and the free space is
 * at least twice the reserve, allocate the reserve file again and turn not
 * full. Returns whether the guard is full. */
bool diskguard_poll(diskguard *g);

/* What the guard saw last: free bytes, the reserve in force (after the
 * cap), and how many times it turned full. */
typedef struct diskguard_stats {
    uint64_t free_bytes, reserve, times_full;
    uint64_t looks; /* statvfs calls made */
    bool full;
} diskguard_stats;
void diskguard_get_stats(const diskguard *g, diskguard_stats *out);

/* The rule itself, for tests: whether a guard in state `full` with
 * `free_bytes` free and reserve `reserve` should be full now. A not-full
 * guard turns full below reserve / 2; a full one stays full below
 * 2 * reserve. */
bool diskguard_rule(bool full, uint64_t free_bytes, uint64_t reserve);

#endif
