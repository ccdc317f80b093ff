/*
 * node_http.c - a node's /metrics page (`cairn node --http HOST:PORT`;
 * node_int.h).
 *
 * Once a second a timer on the node's loop reads every replica's figures
 * (replica_get_stats: field reads, no I/O but a size read for a few ranges
 * per second) and the node-wide ones (the Raft log's fsyncs, the links),
 * writes the whole page in the Prometheus text format and publishes it to
 * the HTTP server, which serves copies from its own thread. A scrape never
 * touches the loop.
 *
 * Cardinality: node-wide families always (ranges by role, sleeping,
 * without a known leader, bytes and keys, worst follower lag - what the
 * alerts use); per-range series for at most --metrics-ranges ranges (1000;
 * lowest ids first), since a node may host ten thousand ranges and a
 * Prometheus series per range and figure would then cost more than it
 * tells. `cairn_node_ranges_unlisted` says how many were left out.
 */
#include "node_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "../common/err.h"
#include "../common/log.h"
#include "../common/prom.h"
#include "../common/version.h"

#define PUBLISH_MS 1000
/* Ranges whose size is read from the index store per publish (each read
 * is O(1) on LMDB, a bounded scan on RocksDB): a round robin, so ten
 * thousand ranges cost the loop no more per second than a few. */
#define SIZE_READS_PER_PUBLISH 64

static const char *const rpc_names[RPC_TYPE_MAX_] = {
    [RPC_PING] = "ping",
    [RPC_PUT] = "put",
    [RPC_DEL] = "del",
    [RPC_GET] = "get",
    [RPC_SCAN] = "scan",
    [RPC_CREATE_REPLICA] = "create_replica",
    [RPC_ADD_REPLICA] = "add_replica",
    [RPC_REMOVE_REPLICA] = "remove_replica",
    [RPC_TRANSFER_LEADER] = "transfer_leader",
    [RPC_METRICS] = "metrics",
    [RPC_DROP_REPLICA] = "drop_replica",
    [RPC_CREATE_REPLICAS] = "create_replicas",
    [RPC_SPLIT_RANGE] = "split_range",
    [RPC_CATCH_UP] = "catch_up",
    [RPC_BUMP_EPOCH] = "bump_epoch",
    [RPC_FENCE] = "fence",
    [RPC_SCAN_RECORDS] = "scan_records",
    [RPC_COPY] = "copy",
    [RPC_FLOOR] = "floor",
};

static int cmp_replica(const void *a, const void *b)
{
    uint64_t ia = replica_meta(*(replica *const *)a)->range_id;
    uint64_t ib = replica_meta(*(replica *const *)b)->range_id;
    return ia < ib ? -1 : ia > ib;
}

/* The open replicas, by range id. */
static replica **sorted_replicas(node *n, size_t *count)
{
    replica **v = malloc((n->slots.n ? n->slots.n : 1) * sizeof *v);
    size_t k = 0, it = 0;
    uint64_t id;
    void *p;
    if (v == NULL)
        return NULL;
    while (u64map_next(&n->slots, &it, &id, &p)) {
        slot *s = p;
        if (s->r != NULL && !s->dropping)
            v[k++] = s->r;
    }
    qsort(v, k, sizeof *v, cmp_replica);
    *count = k;
    return v;
}

static const char *role_label(replica_role r)
{
    static const char *const names[] = {"follower", "candidate", "leader",
                                        "unavailable"};
    return names[r];
}

typedef struct totals {
    uint64_t by_role[4];
    uint64_t asleep, leaderless, bytes, keys, leader_bytes, leader_keys;
    uint64_t lag_entries_max;
    double lag_seconds_max;
} totals;

/* The per-range families, one family at a time (the format wants all
 * samples of a family together). */
static int per_range(buf *b, const replica_stats *st, size_t n)
{
    static const struct {
        const char *name, *type, *help;
        int field;
    } fams[] = {
        {"cairn_range_leader", "gauge",
         "1 if this replica is the range's leader, else 0.", 0},
        {"cairn_range_term", "gauge", "Raft term of this replica.", 1},
        {"cairn_range_commit_index", "gauge", "Raft commit index.", 2},
        {"cairn_range_applied_index", "gauge", "Raft applied index.", 3},
        {"cairn_range_last_index", "gauge", "Last index in the log.", 4},
        {"cairn_range_epoch", "gauge", "Range epoch as applied here.", 5},
        {"cairn_range_bytes", "gauge",
         "Bytes of the range (keys and values) in the index store.", 6},
        {"cairn_range_keys", "gauge", "Records of the range (tombstones "
                                      "included).", 7},
        {"cairn_range_asleep", "gauge", "1 if the range sleeps (idle).", 8},
        {"cairn_range_follower_lag_entries", "gauge",
         "Leader only: entries the furthest follower is behind.", 9},
        {"cairn_range_follower_lag_seconds", "gauge",
         "Leader only: age of the oldest entry a follower lacks.", 10},
    };
    int rc = 0;
    for (size_t f = 0; rc == 0 && f < sizeof fams / sizeof fams[0]; f++) {
        rc = prom_family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const replica_stats *s = &st[i];
            if (fams[f].field >= 9 && s->role != REPLICA_LEADER)
                continue;
            char lab[96], rid[24], tid[24];
            snprintf(rid, sizeof rid, "%llu", (unsigned long long)s->range_id);
            snprintf(tid, sizeof tid, "%llu", (unsigned long long)s->table_id);
            prom_labels(lab, sizeof lab, "range", rid, "table", tid, NULL);
            uint64_t v = 0;
            switch (fams[f].field) {
            case 0: v = s->role == REPLICA_LEADER; break;
            case 1: v = s->term; break;
            case 2: v = s->commit_index; break;
            case 3: v = s->applied_index; break;
            case 4: v = s->last_index; break;
            case 5: v = s->epoch; break;
            case 6: v = s->bytes; break;
            case 7: v = s->keys; break;
            case 8: v = s->asleep; break;
            case 9: v = s->lag_entries_max; break;
            default:
                rc = prom_double(b, fams[f].name, lab, s->lag_seconds_max);
                continue;
            }
            rc = prom_u64(b, fams[f].name, lab, v);
        }
    }
    return rc;
}

static int node_wide(node *n, buf *b, const totals *t, size_t listed,
                     size_t total)
{
    char lab[256], id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)n->opts->id);
    int rc = prom_family(b, "cairn_node_info", "gauge",
                         "Always 1; the labels say which node this is.");
    if (rc == 0)
        rc = prom_u64(b, "cairn_node_info",
                      prom_labels(lab, sizeof lab, "node", id, "address",
                                  n->address, "version", CAIRN_VERSION,
                                  NULL),
                      1);
    if (rc == 0)
        rc = prom_family(b, "cairn_node_start_time_seconds", "gauge",
                         "When the process started, Unix time.");
    if (rc == 0)
        rc = prom_u64(b, "cairn_node_start_time_seconds", NULL,
                      (uint64_t)n->started_unix);
    if (rc == 0)
        rc = prom_family(b, "cairn_node_ranges", "gauge",
                         "Replicas hosted, by Raft role.");
    for (int r = 0; rc == 0 && r < 4; r++)
        rc = prom_u64(b, "cairn_node_ranges",
                      prom_labels(lab, sizeof lab, "role",
                                  role_label((replica_role)r), NULL),
                      t->by_role[r]);
    struct {
        const char *name, *help;
        uint64_t v;
    } g[] = {
        {"cairn_node_ranges_asleep", "Replicas sleeping (idle, quiesced).",
         t->asleep},
        {"cairn_node_ranges_without_leader",
         "Replicas that know no leader of their range (an election, or no "
         "majority).",
         t->leaderless},
        {"cairn_node_ranges_unlisted",
         "Replicas left out of the per-range series (--metrics-ranges).",
         (uint64_t)(total - listed)},
        {"cairn_node_replica_bytes",
         "Bytes of every replica on this node (keys and values).", t->bytes},
        {"cairn_node_replica_keys", "Records of every replica on this node.",
         t->keys},
        {"cairn_node_leader_bytes", "Bytes of the ranges this node leads.",
         t->leader_bytes},
        {"cairn_node_leader_keys", "Records of the ranges this node leads.",
         t->leader_keys},
        {"cairn_node_follower_lag_entries_max",
         "Over the ranges this node leads: entries the furthest follower "
         "is behind.",
         t->lag_entries_max},
        {"cairn_node_connections", "Client connections open (routers, admin "
                                   "tools).",
         n->n_conns},
    };
    for (size_t i = 0; rc == 0 && i < sizeof g / sizeof g[0]; i++) {
        rc = prom_family(b, g[i].name, "gauge", g[i].help);
        if (rc == 0)
            rc = prom_u64(b, g[i].name, NULL, g[i].v);
    }
    if (rc == 0)
        rc = prom_family(b, "cairn_node_follower_lag_seconds_max", "gauge",
                         "Over the ranges this node leads: age of the "
                         "oldest entry a follower lacks.");
    if (rc == 0)
        rc = prom_double(b, "cairn_node_follower_lag_seconds_max", NULL,
                         t->lag_seconds_max);

    if (rc == 0)
        rc = prom_family(b, "cairn_node_corrupt_replicas", "gauge",
                         "Replicas whose stored data failed a check "
                         "(CORRUPT): refused until rebuilt from peers.");
    if (rc == 0)
        rc = prom_u64(b, "cairn_node_corrupt_replicas", NULL,
                      node_corrupt_count(n));

    struct statvfs sv;
    if (rc == 0 && statvfs(n->opts->dir, &sv) == 0) {
        rc = prom_family(b, "cairn_node_disk_available_bytes", "gauge",
                         "Bytes available to the node in its data "
                         "directory's file system.");
        if (rc == 0)
            rc = prom_u64(b, "cairn_node_disk_available_bytes", NULL,
                          (uint64_t)sv.f_bavail * sv.f_frsize);
        diskguard_stats ds;
        diskguard_get_stats(n->disk, &ds);
        if (rc == 0)
            rc = prom_family(b, "cairn_node_disk_full", "gauge",
                             "1 while the disk is full: writes get NOSPACE "
                             "and the node takes no new log entries.");
        if (rc == 0)
            rc = prom_u64(b, "cairn_node_disk_full", NULL, ds.full);
        if (rc == 0)
            rc = prom_family(b, "cairn_node_disk_size_bytes", "gauge",
                             "Size of the data directory's file system.");
        if (rc == 0)
            rc = prom_u64(b, "cairn_node_disk_size_bytes", NULL,
                          (uint64_t)sv.f_blocks * sv.f_frsize);
    }

    if (rc == 0)
        rc = prom_family(b, "cairn_node_requests_total", "counter",
                         "RPC requests received, by type.");
    for (int i = 0; rc == 0 && i < RPC_TYPE_MAX_; i++)
        if (rpc_names[i])
            rc = prom_u64(b, "cairn_node_requests_total",
                          prom_labels(lab, sizeof lab, "type", rpc_names[i],
                                      NULL),
                          n->rpc_in[i]);
    if (rc == 0)
        rc = prom_family(b, "cairn_node_connections_refused_total", "counter",
                         "Connections refused at the handshake: a missing "
                         "or wrong cluster secret, or a malformed "
                         "handshake.");
    if (rc == 0)
        rc = prom_u64(b, "cairn_node_connections_refused_total",
                      prom_labels(lab, sizeof lab, "reason", "secret", NULL),
                      n->refused_secret);
    if (rc == 0)
        rc = prom_u64(b, "cairn_node_connections_refused_total",
                      prom_labels(lab, sizeof lab, "reason", "handshake",
                                  NULL),
                      n->refused_handshake);
    return rc;
}

static int replication(node *n, buf *b)
{
    raftlog_stats ls;
    net_stats ns;
    raftlog_get_stats(n->env.log, &ls);
    net_get_stats(n->env.net, &ns);
    struct {
        const char *name, *help;
        uint64_t v;
    } c[] = {
        {"cairn_raft_log_syncs_total",
         "Synced writes of the node-wide Raft log: one fsync each. Entries "
         "per fsync = rate(entries) / rate(syncs).",
         ls.batches},
        {"cairn_raft_log_entries_total",
         "Raft entries appended to the node-wide log, every range.",
         ls.entries},
        {"cairn_raft_log_bytes_total", "Bytes written to the Raft log.",
         ls.bytes},
        {"cairn_raft_log_compactions_total",
         "Compactions of the Raft log after drops.", ls.compactions},
        {"cairn_link_frames_sent_total",
         "Raft frames sent to peer nodes (all ranges).", ns.frames_out},
        {"cairn_link_frames_received_total",
         "Raft frames received from peer nodes.", ns.frames_in},
        {"cairn_link_bytes_sent_total", "Bytes sent to peer nodes.",
         ns.bytes_out},
        {"cairn_link_bytes_received_total", "Bytes received from peer nodes.",
         ns.bytes_in},
        {"cairn_link_writes_total",
         "Write system calls on links (frames are batched per loop "
         "iteration).",
         ns.writes},
        {"cairn_link_frames_dropped_total",
         "Frames dropped: peer unreachable or its queue full (Raft "
         "resends).",
         ns.dropped},
        {"cairn_range_wakes_total", "Sleeping ranges woken.",
         n->env.n_wakes},
        {"cairn_range_sleeps_total", "Ranges put to sleep.", n->env.n_sleeps},
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof c / sizeof c[0]; i++) {
        rc = prom_family(b, c[i].name, "counter", c[i].help);
        if (rc == 0)
            rc = prom_u64(b, c[i].name, NULL, c[i].v);
    }
    if (rc == 0)
        rc = prom_family(b, "cairn_raft_log_sync_seconds_total", "counter",
                         "Time spent in synced Raft log writes.");
    if (rc == 0)
        rc = prom_double(b, "cairn_raft_log_sync_seconds_total", NULL,
                         (double)ls.sync_us / 1e6);
    return rc;
}

int node_metrics_page(node *n, buf *b)
{
    size_t count = 0;
    replica **rs = sorted_replicas(n, &count);
    if (rs == NULL)
        return CAIRN_ERR_NOMEM;
    size_t listed = count < n->opts->metrics_ranges ? count
                                                    : n->opts->metrics_ranges;
    replica_stats *st = malloc((listed ? listed : 1) * sizeof *st);
    if (st == NULL) {
        free(rs);
        return CAIRN_ERR_NOMEM;
    }
    totals t;
    memset(&t, 0, sizeof t);
    size_t first = count ? n->size_cursor % count : 0;
    for (size_t i = 0; i < count; i++) {
        size_t since = (i + count - first) % count;
        replica_stats s;
        replica_get_stats(rs[i], since < SIZE_READS_PER_PUBLISH, &s);
        t.by_role[s.role]++;
        t.asleep += s.asleep;
        t.leaderless += s.leader_id == 0;
        t.bytes += s.bytes;
        t.keys += s.keys;
        if (s.role == REPLICA_LEADER) {
            t.leader_bytes += s.bytes;
            t.leader_keys += s.keys;
        }
        if (s.lag_entries_max > t.lag_entries_max)
            t.lag_entries_max = s.lag_entries_max;
        if (s.lag_seconds_max > t.lag_seconds_max)
            t.lag_seconds_max = s.lag_seconds_max;
        if (i < listed)
            st[i] = s;
    }
    n->size_cursor = first + SIZE_READS_PER_PUBLISH;
    int rc = node_wide(n, b, &t, listed, count);
    if (rc == 0)
        rc = replication(n, b);
    if (rc == 0)
        rc = per_range(b, st, listed);
    free(st);
    free(rs);
    return rc;
}

static void publish(uv_timer_t *t)
{
    node *n = t->data;
    buf b = BUF_INIT;
    if (node_metrics_page(n, &b) == 0)
        httpd_publish(n->http, "/metrics", PROM_CONTENT_TYPE, b.data, b.len);
    buf_free(&b);
}

int node_http_start(node *n)
{
    if (n->opts->http == NULL)
        return 0;
    char err[256];
    int rc = httpd_start(n->opts->http, &n->http, err, sizeof err);
    if (rc != 0) {
        log_error("cannot serve --http: %s", err);
        return rc;
    }
    n->started_unix = time(NULL);
    uv_timer_init(&n->loop, &n->metrics_timer);
    n->metrics_timer.data = n;
    uv_timer_start(&n->metrics_timer, publish, 0, PUBLISH_MS);
    log_info("metrics on http://%s/metrics", n->opts->http);
    return 0;
}

void node_http_stop(node *n)
{
    httpd_stop(n->http); /* joins its thread: no request is in flight */
    n->http = NULL;
}
