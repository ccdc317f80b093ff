/*
 * node_int.h - what the files of the node process share (node.h is the
 * public face). One concern per file:
 *
 *     node.c           start and stop: directories, listener, signals, loop
 *     node_registry.c  the replica registry: range id -> replica, index
 *                      stores, create, reopen on start, drop
 *     node_dispatch.c  RPC requests to their handlers; replies and ops
 *                      (node_op.h, shared by the handlers)
 *     node_data.c      data requests: put/del/get/scan, a move's records
 *     node_admin.c     admin requests: create, membership, epochs, fences,
 *                      splits, metrics, drop
 *     node_conn.c      client connections: accept, handshake, framing,
 *                      buffered replies; link connections from peer nodes
 *                      go to replication (net.h)
 *     node_meta.c      etcd registration and leader records (node_meta.h)
 *     node_http.c      the /metrics page (--http)
 *
 * Layering is one way: node.c -> node_conn.c -> node_dispatch.c ->
 * node_data.c, node_admin.c -> node_registry.c -> replication/. Replies
 * flow back through callbacks.
 */
#ifndef CAIRN_NODE_INT_H
#define CAIRN_NODE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "../common/buf.h"
#include "../common/diskguard.h"
#include "../common/u64map.h"
#include "../http/httpd.h"
#include "../proto/rpc.h"
#include "node.h"
#include "node_meta.h"

typedef struct node node;

/* One client connection (router, admin tool, tests). */
typedef struct conn {
    node *n;
    uv_tcp_t *tcp;
    buf in;
    buf out;     /* replies not yet written */
    buf writing; /* replies being written */
    uv_write_t wreq;
    bool hello_done, closing, writing_busy;
    bool close_after_write; /* refused: close once the refusal is out */
    int refs; /* 1 while open + 1 per request in progress */
    struct conn *prev, *next;
} conn;

/* A hosted range. */
typedef struct slot {
    uint64_t range_id;
    replica *r; /* NULL for a corrupt range once closed (or never opened) */
    /* Closing for a drop: the range is refused until its data is gone,
     * so that a create meanwhile cannot open a replica on the log the drop
     * is about to delete. */
    bool dropping;
    /* Corrupt: its stored state failed a check (engine_verify at start, a
     * checksum on a read, a malformed Raft log). It is refused - never
     * served - and reported in METRICS until the controller rebuilds it
     * from its peers (a drop, then a new replica). `quarantining`: its
     * replica is being closed. */
    bool corrupt, quarantining;
    engine *eng; /* its index store, for the drop */
    char why[160];
} slot;

struct node {
    const node_options *opts;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    rep_env env;
    seq_clock *clock;
    engine *engines[3]; /* by engine_kind */
    u64map slots;       /* range id -> slot */
    conn *conns;
    int closing_replicas;
    void (*all_closed)(node *n); /* node_close_replicas' callback */
    bool stopping;
    node_meta *meta; /* etcd registration and leader records, or NULL */
    const char *address; /* where peers and routers reach this node */

    /* node_http.c: the /metrics page */
    httpd *http;
    uv_timer_t metrics_timer;
    size_t size_cursor; /* round robin of range size reads */
    int64_t started_unix;
    uint64_t rpc_in[RPC_TYPE_MAX_]; /* requests received, by type */
    uint64_t refused_secret, refused_handshake;
    uint64_t refused_secret_log_ms, refused_handshake_log_ms;
    size_t n_conns;

    uv_timer_t quarantine_timer; /* node_found_corrupt: closes replicas */

    /* node_disk.c: the full-disk guard */
    diskguard *disk;
    uv_timer_t disk_timer;
    bool disk_was_full;
};

/* ---- node_registry.c -------------------------------------------------- */

/* The slot of a range, dropping or not; NULL if not hosted. */
slot *node_find_slot(node *n, uint64_t range_id);

/* The open replica of a range; a range being dropped has none. */
replica *node_find_range(node *n, uint64_t range_id);

/* Create a replica of `m`: its meta (applied index 0) is made durable in
 * the index store first, so that it is reopened after a restart. EXISTS if
 * hosted, TRYAGAIN while a drop of it finishes; `err` (256 bytes) says
 * more. */
int node_create_replica(node *n, const range_meta *m, bool boot, char *err);

/* Create replicas of ms[0..count) (all bootstrapped with their peers as
 * voters, or none: `boot`), synchronously. The metas are made durable
 * first, in one engine batch and one engine_sync per index store (not one
 * per replica), then each replica is opened. statuses[i] = 0 or why range
 * i was not created - EXISTS if hosted (or given earlier in the batch),
 * TRYAGAIN while a drop of it finishes, INVALID for an unknown engine, the
 * store's or replica_open's error - with errs[i] saying more ("" if
 * nothing to add). Returns 0 unless the whole batch failed (then no
 * replica was created). */
int node_create_replicas(node *n, const range_meta *ms, size_t count,
                         bool boot, int *statuses, char (*errs)[256]);

/* Reopen every replica the index stores hold (on start), each after its
 * data passed engine_verify; a range that fails it, or whose Raft log
 * does not load, is kept as a corrupt slot. An index store that exists
 * but does not open is an error (said on stderr): the node must not
 * start, or it would take that store's ranges for gone. */
int node_open_existing(node *n);

/* A read of range `range_id` found its stored data corrupt (`why`):
 * refuse the range from now on and close its replica (on the next loop
 * turn: the caller may be inside one of the replica's callbacks). */
void node_found_corrupt(node *n, uint64_t range_id, const char *why);

/* Append `,"corrupt":[{"range":N,"why":"..."},...]` (METRICS). */
int node_corrupt_json(node *n, buf *j);

/* The number of corrupt ranges (the /metrics page). */
size_t node_corrupt_count(node *n);

/* A split made range `m` in store `eng` (rep_env.added): open and host
 * its replica. */
void node_range_added(void *arg, engine *eng, const range_meta *m);

/* Call `cb(arg, status)` once everything the replicas wrote to the Raft
 * log so far is durable (a created replica's bootstrap, for one). */
int node_when_durable(node *n, void (*cb)(void *arg, int status), void *arg);

/* Close range `range_id` for a drop (it is refused meanwhile), delete its
 * data and log for good, forget it, then `cb(arg, status)`. RANGE_NOT_FOUND
 * if not hosted, TRYAGAIN if already being dropped (cb does not fire). */
int node_drop_replica(node *n, uint64_t range_id,
                      void (*cb)(void *arg, int status), void *arg);

/* Close every replica (the node is stopping); `cb(n)` once all are closed,
 * drops in progress included. */
void node_close_replicas(node *n, void (*cb)(node *n));

/* Visit every open replica (node_meta_each). */
void node_each_replica(void *arg, node_meta_visit fn, void *varg);

/* Free the registry and close the index stores (replicas closed). */
void node_registry_free(node *n);

/* ---- node_dispatch.c -------------------------------------------------- */

/* Serve one decoded request of `c`; replies go to c->out (node_conn). */
void node_dispatch(conn *c, const rpc_request *q);

/* ---- node_http.c ------------------------------------------------------ */

/* Serve /metrics on opts->http (if set) and publish it every second.
 * 0, or the error (logged). */
int node_http_start(node *n);

/* Stop serving; call before the loop closes. */
void node_http_stop(node *n);

/* The whole /metrics page, appended to `b`. */
int node_metrics_page(node *n, buf *b);

/* ---- node_disk.c ------------------------------------------------------ */

/* Open the full-disk guard of opts->dir, before any store (its reserve
 * file must be taken while there is room). 0, or the error (logged). */
int node_disk_open(node *n);

/* Watch the disk on the loop (every DISK_POLL_MS), logging each turn to
 * full and back. */
void node_disk_start(node *n);

/* Free the guard, after the loop stopped. */
void node_disk_close(node *n);

/* ---- node_conn.c ------------------------------------------------------ */

/* Accept a connection on the listener. */
void node_on_connection(uv_stream_t *server, int status);

/* Write what c->out holds (if not already writing). */
void node_conn_flush(conn *c);

/* Close (idempotent); the memory goes with the last reference. */
void node_conn_close(conn *c);
void node_conn_ref(conn *c);
void node_conn_unref(conn *c);

#endif
