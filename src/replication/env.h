/*
 * env.h - what every range replica of a node shares: the loop, the node's
 * identity and clock, the node-wide Raft log (raftlog.h), the links to the
 * peer nodes (net.h), one ticker for the ranges that are awake, and the
 * routing of incoming Raft messages to their range.
 *
 * One node-wide ticker instead of a timer per range: a range that sleeps
 * (quiesce.c) is simply off the ticker's list, so ten thousand idle ranges
 * cost no timer and no CPU.
 *
 * Everything runs on the node's loop.
 */
#ifndef CAIRN_REP_ENV_H
#define CAIRN_REP_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "../common/diskguard.h"
#include "../common/seq.h"
#include "../common/u64map.h"
#include "entry.h"
#include "net.h"
#include "raftlog.h"

typedef struct rep_options {
    unsigned election_ms;        /* libraft election timeout */
    unsigned heartbeat_ms;       /* libraft heartbeat, and the tick */
    unsigned snapshot_threshold; /* entries between snapshots */
    unsigned snapshot_trailing;  /* entries kept after a snapshot */
    /* ... and by bytes: with big entries (1 MiB of 20 KB values each), 4096
     * entries are 4 GiB of log per range - on disk and in libraft's memory
     * (a capacity run's node died of it, 8 GiB resident); fsm.c lowers both
     * counts so that the log since the last snapshot stays near
     * snapshot_bytes and the tail kept near a quarter of it (at least 16
     * entries). 0: by count only. */
    size_t snapshot_bytes;
    size_t snapshot_cap;         /* largest snapshot = largest range, bytes */
    size_t entry_max;            /* ops bytes packed into one entry */
    unsigned quiesce_ticks;      /* idle ticks before a leader sleeps; 0 never */
    unsigned node_heartbeat_ms;  /* node-to-node heartbeat (net.h) */
} rep_options;

/* Defaults: election 1000 ms, heartbeat 100 ms, snapshot every 4096 entries
 * or 16 MiB of them, keeping 1024 (or 4 MiB), 256 MiB snapshot cap, 1 MiB entries, sleep after 5 idle
 * ticks, node heartbeat 200 ms. */
void rep_options_default(rep_options *o);

typedef struct rio rio;

typedef struct rep_env {
    /* filled by the node before rep_env_start */
    uv_loop_t *loop;
    uint64_t node_id;
    const char *address; /* this node's "host:port" */
    const char *dir;     /* node data directory; the log is dir/raftlog */
    seq_clock *clock;
    uint64_t nonce; /* random per process: marks this process's proposals,
                     * and is the node's incarnation on its links */
    rep_options opts;
    /* One shared apply batch per index store (by engine_kind), so that the
     * ranges of a node write their applied entries with one engine write
     * per loop iteration; NULL: each replica batches alone. */
    entry_batcher *batchers[3];
    /* The node's full-disk guard (diskguard.h), or NULL: while it is
     * full, leaders refuse writes (NOSPACE) and followers take no new log
     * entries; the Raft log checks it before every write. */
    diskguard *disk;
    /* A split made range `m` on this node, in store `eng` (split.c): the
     * node opens its replica and hosts it. May be NULL. */
    void (*added)(void *arg, engine *eng, const range_meta *m);
    void *added_arg;

    /* made by rep_env_start */
    raftlog *log;
    net *net;
    u64map rios;          /* range id -> rio: where messages go */
    rio *awake;           /* ranges on the ticker */
    rio *tick_next;       /* the ticker's cursor (removal-safe) */
    uv_timer_t ticker;
    bool ticker_on;
    struct held *held;    /* messages waiting for the log (raftio_msg.c) */
    struct held *held_tail;
    struct later *later;  /* deferred callbacks (raftio.c) */
    uv_idle_t later_idle;
    bool started;
    size_t n_awake;             /* ranges on the ticker */
    uint64_t n_wakes, n_sleeps; /* metrics */
    struct early_msg *early;    /* for ranges not hosted yet (env.c) */
    size_t n_early, cap_early, early_bytes;
    uint64_t n_early_kept, n_early_used; /* metrics */
} rep_env;

/* Open the node's Raft log under env->dir, start the links and the
 * ticker. `err` (256 bytes) says why not. */
int rep_env_start(rep_env *env, char *err);

/* After every replica has closed: write and close the log, close the links
 * and the ticker. The memory goes as the loop runs on. */
void rep_env_stop(rep_env *env);

/* Hand an accepted link connection (net_accept). */
void rep_env_accept(rep_env *env, const rpc_hello *hello, uv_tcp_t *tcp,
                    const uint8_t *rest, size_t len);

/* Range `range` is now hosted here (its replica started): hand it the
 * messages that came for it before, in order. Why they are kept: a split
 * creates the new range on each replica when that replica applies it, the
 * leader first; the new range's first election (its first voter campaigns
 * at once) would otherwise lose its vote requests to followers that apply
 * the split a moment later, and wait a whole election timeout - measured
 * 1.5 s without a leader for the upper half of every split under load
 * (bench/split). Kept: at most EARLY_MAX messages and EARLY_BYTES, each
 * for EARLY_MS; Raft copes with a late or duplicated message. */
void rep_env_deliver_early(rep_env *env, uint64_t range);

/* Append the node-wide replication metrics (one JSON object: the log's
 * syncs and entries, the links' frames and writes, ranges awake, the disk
 * guard's state) to
 * `out`. */
int rep_env_metrics(rep_env *env, buf *out);

#endif
