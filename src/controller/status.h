/*
 * status.h - the cluster's status as one JSON document: what the
 * dashboard (GET / on `cairn controller --http`) shows and refreshes from
 * (GET /api/status), what the controller's health metrics are computed
 * from, and what `cairn status --json` prints.
 *
 * A collection is one consistent metadata read (meta_load: nodes,
 * liveness, tables, ranges, leader records at one etcd revision) plus the
 * METRICS of every live node (one RPC each, bounded by a timeout): what
 * each node hosts, leads, stores and serves. Rates (ops/s) are the
 * difference between two collections of the same leader's counters.
 *
 * The document (version 1). Fields are only ever added; a reader ignores
 * what it does not know. Ids are numbers, bounds hex (as in etcd; "" =
 * unbounded), sizes bytes, times Unix milliseconds.
 *
 *   {
 *     "version": 1,
 *     "collected_unix_ms": 1714557600123,   when this was collected
 *     "revision": 812,                      etcd revision of the metadata
 *     "error": "",                          why the collection failed
 *                                           (then the rest is the last
 *                                           good one, or empty)
 *     "controller": {"name": "host:123", "active": true},
 *     "summary": {"nodes": 3, "nodes_live": 3,      (state "live")
 *                 "tables": 2, "ranges": 5,
 *                 "ranges_without_leader": 0,       of ready tables, no
 *                 "ranges_under_replicated": 0,     node says it leads /
 *                 "ranges_migrating": 0},           too few live replicas
 *     "nodes": [{
 *        "id": 1, "address": "10.0.0.1:7000", "zone": "",
 *        "state": "live" | "unreachable" | "down",
 *            live: etcd lease held and METRICS answered; unreachable:
 *            lease held, no answer; down: no lease
 *        "live": true, "error": "",             why it did not answer
 *        "capacity_bytes": 0,                   free bytes it registered
 *        "replicas": 4, "leaders": 2, "asleep": 1,
 *        "bytes": 1024, "keys": 10,             over its replicas
 *        "ops_per_sec": 12.5                    over the ranges it leads
 *     }],
 *     "tables": [{
 *        "name": "users", "id": 2, "engine": "btree", "replicas": 3,
 *        "state": "creating" | "ready" | "dropping",
 *        "ranges": [{                           in key order
 *           "id": 5, "start": "", "end": "6d", "epoch": 1,
 *           "replicas": [1, 2, 3], "live_replicas": 3,
 *           "leader": 2, "leader_term": 3,
 *           "leader_source": "node" | "etcd" | "none",
 *               node: a node says it leads now; etcd: only the record
 *           "state": "normal" | "migrating", "from": 0,
 *           "migrating_seconds": 0,             seen migrating this long
 *           "under_replicated": false,          fewer live replicas than
 *                                               the table's factor
 *           "bytes": 1024, "keys": 10, "ops_per_sec": 3.5
 *        }]
 *     }],
 *     "operations": [{                          in progress
 *        "kind": "move", "range": 7, "from": 5,  a TABLE.MOVE: the new
 *            range (0 before its id is taken) and the moving one
 *        "step": "create" | "fence" | "switch" | "copy" | "drop",
 *        "to": [4, 5, 6], "seconds": 12,        since it was asked for
 *        "keys_copied": 100, "bytes_copied": 2048, "bytes_per_sec": 1e6,
 *        "progress": 0.5                        bytes copied / the
 *            source's bytes as polled (null if unknown; 1 from "drop")
 *     }],
 *     "actions": [{"unix_ms": ..., "text": "..."}]   the controller's
 *                                               recent log, oldest first
 *   }
 *
 * Extending it (issue 9's node states, replacements, drains; issue 10's
 * splits and moves): add fields to the node or range objects in
 * status.c's writers, and entries to "operations" with their own "kind"
 * (progress 0..1 and bytes_copied where known), bump nothing - the
 * version changes only if a field changes meaning.
 *
 * Threads: status_collect blocks (etcd, node RPCs) and is called from one
 * thread at a time; status_note may be called from any thread;
 * status_json and status_metrics read the last collection under a lock.
 */
#ifndef CAIRN_CONTROLLER_STATUS_H
#define CAIRN_CONTROLLER_STATUS_H

#include <stdbool.h>

#include "common/buf.h"
#include "meta/meta.h"

typedef struct status status;

/* A status for the controller (or tool) named `name`. NULL: out of
 * memory. */
status *status_new(const char *name);
void status_free(status *s);

/* Remember one controller action for "actions" (the last 50 are kept). */
void status_note(status *s, const char *text);

/* Collect a fresh view: read the metadata, then ask every live node for
 * its METRICS (at most `rpc_timeout_ms` each, nodes in turn). 0, or the
 * metadata read's error (the last view is kept and "error" says why). */
int status_collect(status *s, meta *m, int rpc_timeout_ms);

/* The document above for the last collection; `active` is whether the
 * caller is the active controller. 0 or CAIRN_ERR_NOMEM. */
int status_json(status *s, bool active, buf *out);

/* The health families of the last collection, for /metrics:
 * cairn_controller_nodes{state}, cairn_controller_tables{state},
 * cairn_controller_ranges, ..._without_leader, ..._under_replicated,
 * ..._migrating, cairn_controller_migration_oldest_seconds,
 * cairn_controller_node_poll_errors_total. */
int status_metrics(status *s, buf *out);

#endif
