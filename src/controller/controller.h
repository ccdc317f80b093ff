/*
 * controller.h - the cluster controller (issue 4, "cairn controller";
 * MISSION.md, metadata manager): one active instance, elected through an
 * etcd lease, that drives the metadata and the nodes towards what the
 * metadata says.
 *
 * First cut: it finishes or rolls back table creations that nobody
 * finished (a router that died mid-create), finishes drops (nodes lose the
 * ranges' data, then the metadata goes), and polls every live node's
 * metrics, recording the leaders it learns of as a backstop to the nodes'
 * own records. Its loop is a list of reconcilers (controller_int.h) so
 * that replacement, split and move are added as further ones.
 *
 * Every action re-checks that this instance still holds the election, and
 * every metadata change is a compare-and-swap (meta.h): a deposed
 * controller that wakes up late cannot undo its successor's work.
 */
#ifndef CAIRN_CONTROLLER_H
#define CAIRN_CONTROLLER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct controller_config {
    const char *etcd;   /* "http://host:port[,...]" */
    const char *prefix; /* NULL = META_PREFIX_DEFAULT */
    const char *name;   /* candidate name in P/controller, e.g. "host:pid" */
    int lease_ttl_s;    /* election lease, >= 2 (0 = 5) */
    int interval_ms;    /* loop period (0 = 1000) */
    int create_timeout_ms; /* a CREATING table older than this is finished
                              or rolled back (0 = 60000: beyond a router's
                              whole create - its replica RPCs and its 15 s
                              wait for leaders - since a router that finds
                              its table already READY rolls it back) */

    /* Health and healing (issue 9). 0 = the default in parentheses. */
    int poll_ms;           /* METRICS of every node this often (2000) */
    int64_t split_bytes;   /* a range larger is split at its median by
                              bytes (64 MiB; < 0 = never) */
    int split_qps;         /* a range busier than this ... (2500; < 0 =
                              never) */
    int split_qps_seconds; /* ... for this long is split at its load
                              median (10) */
    int dead_after_s;      /* lease lost and not answering this long: the
                              node is dead, its replicas are replaced (30) */
    uint64_t lag_entries;  /* a follower this many entries behind ... */
    double lag_seconds;    /* ... or this many seconds, for this long
                              again (the leader's time to catch it up, by
                              log or snapshot), is replaced (100000, 20) */
    int max_moves;         /* membership changes at once (4) */
    int max_relocations;   /* moves to new groups (TABLE.MOVE) at once (2) */
    int rebalance_rate;    /* replica moves started per minute to balance
                              a joining node (30; < 0 = never) */
    int transfer_rate;     /* leader transfers per pass to balance leaders
                              (4; < 0 = never) */
    const char *http;   /* "host:port": serve the dashboard (/), its JSON
                           (/api/status) and /metrics; NULL = none */
    int status_interval_ms; /* between two status collections (0 = 2000) */
} controller_config;

typedef struct controller controller;

/* Start campaigning and the loop, each on a thread of its own, and with
 * `http` the status thread (status.h): it collects the cluster's status
 * every status interval and publishes the dashboard's JSON and /metrics.
 * Does no blocking etcd I/O on the caller's thread. 0, CAIRN_ERR_INVALID,
 * CAIRN_ERR_IO (cannot serve `http`), NOMEM. */
int controller_start(const controller_config *cfg, controller **out);

/* Whether this instance is the active controller now. */
bool controller_is_active(controller *c);

/* Stop the loop and resign (another candidate takes over at once). */
void controller_stop(controller *c);

#endif
