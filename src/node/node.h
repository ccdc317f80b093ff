/*
 * node.h - the `cairn node` process: hosts range replicas on one libuv loop
 * and serves the cairn RPC and the Raft traffic of all of them on one TCP
 * port (DESIGN.md, "cairn node").
 *
 * Data directory layout:
 *
 *     DIR/lmdb/            the node's LMDB index store (btree tables)
 *     DIR/rocks/           the node's RocksDB index store (lsm tables)
 *     DIR/raft/<range id>/ each replica's Raft log segments, snapshots and
 *                          term/vote files (libraft raft_uv)
 *
 * A replica exists on a node when an index store holds its meta blob; on
 * start the node opens every such replica, which replays only its log after
 * the stored applied index (replica.h).
 *
 * Every request names (range id, epoch) and is rejected with a precise code
 * before anything else: RANGE_NOT_FOUND, STALE_EPOCH, KEY_OUT_OF_RANGE, and
 * NOT_LEADER with the leader this replica knows.
 */
#ifndef CAIRN_NODE_H
#define CAIRN_NODE_H

#include <stdint.h>

#include "../replication/entry.h"
#include "../replication/replica.h"

/* The default reserve against a full disk: room for the stores to flush
 * their memtables and apply what was accepted (diskguard.h). */
#define NODE_DISK_RESERVE_MB 128

typedef struct node_options {
    uint64_t id;
    const char *listen;    /* "host:port" to bind */
    const char *advertise; /* "host:port" peers and routers use; NULL =
                            * listen (which must then not be 0.0.0.0) */
    const char *http;      /* "host:port" of /metrics, or NULL */
    unsigned metrics_ranges; /* most ranges with series of their own */
    const char *dir;
    const char *etcd;        /* etcd endpoints (node_meta.h), or NULL */
    const char *etcd_prefix; /* metadata prefix, NULL = "/cairn" */
    const char *zone;        /* failure zone (node_meta.h), or NULL */
    int lease_ttl_s;         /* etcd liveness lease, 0 = the default */
    rep_options rep;
    /* Bytes kept free for a full disk (diskguard.h); 0 = no guard.
     * Default NODE_DISK_RESERVE_MB MiB. */
    uint64_t disk_reserve;
    /* Test only (the fault suite): shift the sequencer's wall clock. */
    int64_t clock_offset_ms;
    /* Optional static bootstrap of one range (before the metadata manager
     * exists): range id and voters; table 1, unbounded, epoch 1. */
    uint64_t boot_range;
    engine_kind boot_engine;
    unsigned boot_n_peers;
    range_peer boot_peers[RANGE_MAX_PEERS];
} node_options;

/* Run a node until SIGINT or SIGTERM; returns the process exit status
 * (0 clean stop, 1 failure to start, with the reason on stderr). */
int node_run(const node_options *opts);

/* Parse "ID=HOST:PORT,ID=HOST:PORT,..." into peers. 0 or CAIRN_ERR_INVALID. */
int node_parse_peers(const char *text, range_peer *peers, unsigned *n);

#endif
