/*
 * tables.c - TABLE.CREATE, TABLE.DROP, TABLE.LIST, TABLE.INFO.
 *
 * LIST and INFO answer from the routing cache. CREATE and DROP change the
 * metadata through meta/meta.h, whose calls block on etcd, so they run on
 * a libuv worker thread and reply from the loop when done.
 *
 * TABLE.CREATE (issue 4, "Tables"; issue 8, tables of up to 1,024
 * splits): the metadata library writes the table in state CREATING with
 * its ranges and placement (several etcd transactions for a big table,
 * under the CREATING marker); the router then creates the replicas on
 * their nodes - one CREATE_REPLICAS request per node, all nodes at once
 * (meta_create_replicas), every replica of a range bootstrapped with the
 * same configuration - waits until every range has a leader, marks the
 * table READY and re-reads the metadata, so the client's next command on
 * this router already sees the table. If a step fails the table is marked
 * DROPPING (invisible; the controller deletes whatever was created), or
 * deleted outright when no request reached a node. Every error names its
 * cause: etcd's text, the node and address that failed and what it said,
 * how many ranges still lack a leader.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/u64map.h"
#include "router/router_int.h"
#include "meta/replica_rpc.h"
#include "proto/rpc_sync.h"

/* The wait for leaders: a base, plus a little per range (elections of a
 * thousand new groups take longer than of one). It stays well inside the
 * controller's --create-timeout-ms (60 s by default), after which the
 * controller would finish or roll back the create itself. */
#define CREATE_WAIT_MS 15000
#define CREATE_WAIT_MS_PER_RANGE 25
#define CREATE_WAIT_MS_MAX 45000
#define CREATE_POLL_MS 50
/* Ranges asked directly, per poll, when etcd shows no progress. */
#define CREATE_PROBES_PER_POLL 16
#define PROBE_RPC_TIMEOUT_MS 1000
#define ADMIN_RPC_TIMEOUT_MS 5000

_Static_assert(ROUTER_SPLITS_MAX == META_SPLITS_MAX,
               "the router accepts exactly the splits the metadata takes");

struct rtablejob {
    uv_work_t work;
    struct router *r;
    struct rreq *q;
    char name[CAIRN_TABLE_NAME_MAX + 1];
    buf key; /* TABLE.SPLIT, TABLE.MOVE */
    uint64_t nodes[ROUTER_MOVE_NODES_MAX]; /* TABLE.MOVE */
    int nnodes;
    int status;
    char msg[512];
};

static int fail(struct rtablejob *j, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct rtablejob *j, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->msg, sizeof j->msg, fmt, ap);
    va_end(ap);
    j->status = status;
    return status;
}

/* Why a metadata call failed: etcd's own text when it gave one. */
static const char *meta_why(int rc)
{
    const char *e = etcd_last_error();
    return e[0] ? e : cairn_err_message(rc);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- TABLE.CREATE ---- */

static int live_nodes(const meta_map *map)
{
    int n = 0;
    for (size_t i = 0; i < meta_map_node_count(map); i++)
        n += meta_map_node_at(map, i)->live;
    return n;
}

/* Whether some replica of `rg` answers as its leader: a read of a key in
 * the range that is not rejected as NOT_LEADER (nodes that do not record
 * their leadership in etcd are still found). */
static bool probe_leader(const meta_map *map, const meta_range *rg)
{
    static const uint8_t low = 0;
    rpc_request req;
    memset(&req, 0, sizeof req);
    req.type = RPC_GET;
    req.id = 1;
    req.range_id = rg->id;
    req.epoch = rg->epoch;
    req.key = rg->start_len ? (rpc_bytes){rg->start, rg->start_len}
                            : (rpc_bytes){&low, 1};
    if (rg->end_len > 0 && key_cmp(req.key.p, req.key.len, rg->end,
                                          rg->end_len) >= 0)
        return false; /* no 1-byte key fits: rely on etcd's record */
    for (int i = 0; i < rg->n_replicas; i++) {
        const meta_node *n = meta_map_node(map, rg->replicas[i]);
        if (n == NULL)
            continue;
        int rc = rpc_sync_status(n->addr, &req, PROBE_RPC_TIMEOUT_MS, NULL);
        if (rc == 0 || rc == CAIRN_ERR_NOT_FOUND)
            return true;
    }
    return false;
}

/* The ranges of a new table being waited for. */
typedef struct waitset {
    const meta_map *map;
    const meta_range *rs;
    size_t n;
    bool *led;
    size_t n_led;
    size_t probe_at; /* where the next probes start */
    u64map index;    /* range id -> i + 1 */
} waitset;

/* One read of every leader record of the table (its range ids are
 * consecutive: one etcd range read, whatever the number of ranges). */
static void read_leaders(waitset *w, meta *m, uint64_t lo, uint64_t hi)
{
    meta_leader *ls = NULL;
    size_t k = 0;
    if (meta_leaders_read(m, lo, hi, &ls, &k) != 0)
        return; /* etcd unavailable: try again at the next poll */
    for (size_t i = 0; i < k; i++) {
        uintptr_t at = (uintptr_t)u64map_get(&w->index, ls[i].range_id);
        if (at && !w->led[at - 1]) {
            w->led[at - 1] = true;
            w->n_led++;
        }
    }
    free(ls);
}

/* Ask a few leaderless ranges' replicas directly, round robin. */
static void probe_some(waitset *w)
{
    size_t asked = 0;
    for (size_t k = 0; k < w->n && asked < CREATE_PROBES_PER_POLL; k++) {
        size_t i = (w->probe_at + k) % w->n;
        if (w->led[i])
            continue;
        asked++;
        if (probe_leader(w->map, &w->rs[i])) {
            w->led[i] = true;
            w->n_led++;
        }
        w->probe_at = i + 1;
    }
}

/* Wait until every range rs[0..n) has a leader: recorded in etcd (one
 * read per poll for all of them), or - for nodes that record nothing -
 * answering a read, asked a few ranges per poll when the records make no
 * progress. On timeout, says how many ranges still have no leader. */
static int wait_leaders(struct rtablejob *j, meta *m, const meta_map *map,
                        const meta_range *rs, size_t n)
{
    waitset w = {.map = map, .rs = rs, .n = n, .index = U64MAP_INIT};
    uint64_t lo = UINT64_MAX, hi = 0;
    w.led = calloc(n ? n : 1, sizeof *w.led);
    int rc = w.led ? 0 : CAIRN_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        lo = rs[i].id < lo ? rs[i].id : lo;
        hi = rs[i].id > hi ? rs[i].id : hi;
        rc = u64map_put(&w.index, rs[i].id, (void *)(uintptr_t)(i + 1));
    }
    uint64_t wait_ms = CREATE_WAIT_MS + n * CREATE_WAIT_MS_PER_RANGE;
    if (wait_ms > CREATE_WAIT_MS_MAX)
        wait_ms = CREATE_WAIT_MS_MAX;
    uint64_t until = mono_ms() + wait_ms;
    while (rc == 0 && w.n_led < n) {
        size_t before = w.n_led;
        read_leaders(&w, m, lo, hi);
        if (w.n_led == before)
            probe_some(&w);
        if (w.n_led == n)
            break;
        if (mono_ms() >= until) {
            size_t first = 0;
            while (first < n && w.led[first])
                first++;
            rc = fail(j, CAIRN_ERR_TRYAGAIN, "no leader elected within %"
                      PRIu64 " ms for %zu of %zu ranges (the first: range %"
                      PRIu64 ")", wait_ms, n - w.n_led, n, rs[first].id);
            break;
        }
        usleep(CREATE_POLL_MS * 1000);
    }
    if (rc == CAIRN_ERR_NOMEM)
        fail(j, rc, "out of memory");
    u64map_free(&w.index);
    free(w.led);
    return rc;
}

/* Create every replica of the new table, one request per node, then wait
 * for the leaders. *reached: whether a request reached a node. */
static int create_replicas(struct rtablejob *j, meta *m, const meta_table *t,
                           bool *reached)
{
    meta_map *map = NULL;
    int rc = meta_load(m, &map);
    if (rc != 0)
        return fail(j, rc, "cannot read the metadata: %s", meta_why(rc));
    size_t n = 0;
    const meta_range *rs = meta_map_ranges(map, t->id, &n);
    bool *ok = calloc(n ? n : 1, sizeof *ok);
    char why[400];
    if (ok == NULL)
        rc = fail(j, CAIRN_ERR_NOMEM, "out of memory");
    else if (n == 0 || !meta_map_ranges_cover(map, t->id))
        rc = fail(j, CAIRN_ERR_TRYAGAIN, "the table's ranges changed "
                  "while it was being created");
    size_t failed = rc == 0 ? meta_create_replicas(map, t, rs, n,
                                                   ADMIN_RPC_TIMEOUT_MS, ok,
                                                   why, sizeof why, reached)
                            : 0;
    if (failed > 0)
        rc = fail(j, CAIRN_ERR_TRYAGAIN, "cannot create the replicas of "
                  "%zu of %zu ranges: %s", failed, n, why);
    if (rc == 0)
        rc = wait_leaders(j, m, map, rs, n);
    free(ok);
    meta_map_release(map);
    return rc;
}

static int pick_replicas(struct rtablejob *j, meta *m)
{
    meta_map *map = NULL;
    int rc = meta_load(m, &map);
    if (rc != 0)
        return fail(j, rc, "cannot read the metadata: %s", meta_why(rc));
    int live = live_nodes(map);
    meta_map_release(map);
    return live >= 3 ? 3 : 1;
}

int router_table_mark_ready(meta *m, const char *name, uint64_t id)
{
    int rc = meta_table_set_ready(m, name, id);
    meta_table now;
    if (rc == CAIRN_ERR_CONDITION && meta_table_get(m, name, &now) == 0 &&
        now.id == id && now.state == META_TABLE_READY)
        rc = 0;
    return rc;
}

static void create_work(uv_work_t *w)
{
    struct rtablejob *j = w->data;
    struct router *r = j->r;
    const router_cmd *cmd = &j->q->cmd;
    meta_table_spec spec = {.name = j->name,
                            .engine = cmd->engine == ROUTER_ENGINE_LSM
                                          ? META_ENGINE_LSM
                                          : META_ENGINE_BTREE,
                            .replicas = cmd->replicas};
    if (spec.replicas == 0 && (spec.replicas = pick_replicas(j, r->meta)) < 0)
        return;
    const uint8_t **splits = calloc(cmd->nsplits + 1, sizeof *splits);
    size_t *lens = calloc(cmd->nsplits + 1, sizeof *lens);
    if (splits == NULL || lens == NULL) {
        free(splits);
        free(lens);
        fail(j, CAIRN_ERR_NOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < cmd->nsplits; i++) {
        splits[i] = cmd->splits[i].p;
        lens[i] = cmd->splits[i].len;
    }
    spec.splits = splits;
    spec.split_lens = lens;
    spec.n_splits = cmd->nsplits;
    meta_table t;
    int rc = meta_table_create(r->meta, &spec, &t);
    free(splits);
    free(lens);
    if (rc == CAIRN_ERR_EXISTS) {
        fail(j, rc, "table '%s' already exists", j->name);
        return;
    }
    if (rc == CAIRN_ERR_TRYAGAIN) {
        fail(j, rc, "fewer live nodes than %d replicas", spec.replicas);
        return;
    }
    if (rc == CAIRN_ERR_CONDITION) {
        fail(j, CAIRN_ERR_TRYAGAIN, "table '%s' was dropped while its "
             "ranges were being written", j->name);
        return;
    }
    if (rc != 0) {
        fail(j, rc, "cannot create the table in the metadata: %s",
             meta_why(rc));
        return;
    }
    bool reached = false;
    rc = create_replicas(j, r->meta, &t, &reached);
    if (rc == 0 && (rc = router_table_mark_ready(r->meta, j->name, t.id)) != 0)
        fail(j, rc, "cannot mark the table ready: %s",
             rc == CAIRN_ERR_CONDITION ? "it was dropped meanwhile"
                                       : meta_why(rc));
    if (rc != 0) {
        /* Roll back: invisible at once; the controller removes what was
         * created on nodes. */
        meta_table_abandon(r->meta, j->name, t.id);
        if (!reached)
            meta_table_delete(r->meta, j->name, t.id);
        return;
    }
    meta_cache_refresh(r->mcache);
}

/* ---- TABLE.DROP ---- */

static void drop_work(uv_work_t *w)
{
    struct rtablejob *j = w->data;
    int rc = meta_table_drop(j->r->meta, j->name, NULL);
    if (rc == CAIRN_ERR_NO_TABLE) {
        fail(j, rc, "no such table '%s'", j->name);
        return;
    }
    if (rc != 0) {
        fail(j, rc, "cannot drop the table");
        return;
    }
    meta_cache_refresh(j->r->mcache);
}

/* ---- TABLE.SPLIT ---- */

/* The ready table the job names, in `map`, and its range holding the
 * job's key (NULL: none, the map is between changes). 0, CAIRN_ERR_META
 * (no map) or CAIRN_ERR_NO_TABLE. */
static int job_range(const struct rtablejob *j, const meta_map *map,
                     const meta_table **t, const meta_range **rg)
{
    *t = map ? meta_map_table(map, j->name) : NULL;
    *rg = NULL;
    if (map == NULL)
        return CAIRN_ERR_META;
    if (*t == NULL || (*t)->state != META_TABLE_READY)
        return CAIRN_ERR_NO_TABLE;
    *rg = meta_map_range_for(map, (*t)->id, j->key.data, j->key.len);
    return 0;
}

/* TABLE.SPLIT table key: the range holding `key` splits there (meta_split:
 * a new id, the split by the range's Raft group, both halves in etcd). A
 * map older than the range (STALE_EPOCH) is read again once. */
static void split_work(uv_work_t *w)
{
    struct rtablejob *j = w->data;
    int rc = CAIRN_ERR_STALE_EPOCH;
    char err[512] = "";
    for (int attempt = 0; rc == CAIRN_ERR_STALE_EPOCH && attempt < 2;
         attempt++) {
        if (attempt > 0)
            meta_cache_refresh(j->r->mcache);
        meta_map *map = meta_cache_acquire(j->r->mcache);
        const meta_table *t;
        const meta_range *rg;
        rc = job_range(j, map, &t, &rg);
        if (rc == 0 && rg == NULL)
            rc = CAIRN_ERR_TRYAGAIN; /* the map is between changes */
        else if (rc == 0 && rg->start_len == j->key.len &&
                 memcmp(rg->start, j->key.data, j->key.len) == 0)
            rc = CAIRN_ERR_EXISTS; /* a range already starts there */
        else if (rc == 0) {
            uint64_t id;
            rc = meta_split(j->r->meta, map, rg, j->key.data, j->key.len,
                            ADMIN_RPC_TIMEOUT_MS, &id, NULL, err,
                            sizeof err);
        }
        if (map)
            meta_map_release(map);
    }
    if (rc == CAIRN_ERR_EXISTS)
        rc = 0; /* splitting where a range starts: already done */
    if (rc == CAIRN_ERR_NO_TABLE)
        fail(j, rc, "no such table '%s'", j->name);
    else if (rc != 0)
        fail(j, rc, "%s", err[0] ? err : cairn_err_message(rc));
    meta_cache_refresh(j->r->mcache);
}

/* ---- TABLE.MOVE ---- */

/* Why the nodes of TABLE.MOVE cannot take the range; NULL if they can:
 * as many as the table's replicas, each known and live. */
static const char *bad_nodes(struct rtablejob *j, const meta_map *map,
                             const meta_table *t, char *why, size_t cap)
{
    if (j->nnodes != t->replicas) {
        snprintf(why, cap, "table '%s' has %d replicas: name %d nodes",
                 t->name, t->replicas, t->replicas);
        return why;
    }
    for (int i = 0; i < j->nnodes; i++) {
        const meta_node *n = meta_map_node(map, j->nodes[i]);
        if (n == NULL || !n->live) {
            snprintf(why, cap, "node %llu is %s",
                     (unsigned long long)j->nodes[i],
                     n ? "not live" : "unknown");
            return why;
        }
    }
    return NULL;
}

/* TABLE.MOVE table key nodes: the range holding `key` moves to a new
 * replica group on `nodes` (the controller's relocate.c does it; this
 * records the request, meta_relocation_start, and answers once it is
 * recorded). */
static void move_work(uv_work_t *w)
{
    struct rtablejob *j = w->data;
    meta_cache_refresh(j->r->mcache);
    meta_map *map = meta_cache_acquire(j->r->mcache);
    const meta_table *t;
    const meta_range *rg;
    int rc = job_range(j, map, &t, &rg);
    char why[300];
    if (rc == CAIRN_ERR_META)
        fail(j, rc, "cannot read the metadata");
    else if (rc != 0)
        fail(j, rc, "no such table '%s'", j->name);
    else if (rg == NULL)
        fail(j, CAIRN_ERR_TRYAGAIN, "the map is between changes");
    else if (bad_nodes(j, map, t, why, sizeof why))
        fail(j, CAIRN_ERR_INVALID, "%s", why);
    else if (rg->state != META_RANGE_NORMAL ||
             meta_map_relocation(map, rg->id) != NULL)
        fail(j, CAIRN_ERR_BUSY, "range %llu is being moved already",
             (unsigned long long)rg->id);
    else {
        meta_relocation rl = {.range_id = rg->id, .table_id = t->id,
                              .n_nodes = j->nnodes, .step = META_RELOC_CREATE,
                              .since = (uint64_t)time(NULL) * 1000};
        memcpy(rl.nodes, j->nodes, sizeof rl.nodes[0] * (size_t)j->nnodes);
        snprintf(rl.by, sizeof rl.by, "router");
        rc = meta_relocation_start(j->r->meta, &rl);
        if (rc == CAIRN_ERR_EXISTS)
            fail(j, CAIRN_ERR_BUSY, "range %llu is being moved already",
                 (unsigned long long)rg->id);
        else if (rc != 0)
            fail(j, rc, "cannot record the move: %s", meta_why(rc));
    }
    if (map)
        meta_map_release(map);
}

static void job_after(uv_work_t *w, int status)
{
    struct rtablejob *j = w->data;
    struct router *r = j->r;
    struct rreq *q = j->q;
    q->job = NULL;
    if (!r->stopping)
        router_view_update(r);
    if (j->status != 0) {
        router_reply_status(q, j->status, j->msg);
        r->stat_errors++;
    } else {
        resp_write_simple(&q->out, "OK");
    }
    buf_free(&j->key);
    free(j);
    router_req_finish(q); /* frees q if its client is gone */
    router_job_done(r);
}

static void start_job(struct router *r, struct rreq *q, uv_work_cb work)
{
    struct rtablejob *j = calloc(1, sizeof *j);
    if (j == NULL) {
        router_reply_status(q, CAIRN_ERR_NOMEM, NULL);
        router_req_finish(q);
        return;
    }
    j->r = r;
    j->q = q;
    memcpy(j->name, q->cmd.table.p, q->cmd.table.len);
    memcpy(j->nodes, q->cmd.nodes, sizeof j->nodes);
    j->nnodes = q->cmd.nnodes;
    if ((q->cmd.kind == RCMD_TABLE_SPLIT || q->cmd.kind == RCMD_TABLE_MOVE) &&
        buf_append(&j->key, q->cmd.key.p, q->cmd.key.len) != 0) {
        free(j);
        router_reply_status(q, CAIRN_ERR_NOMEM, NULL);
        router_req_finish(q);
        return;
    }
    j->work.data = j;
    q->job = j;
    r->njobs++;
    if (uv_queue_work(&r->loop, &j->work, work, job_after) != 0) {
        q->job = NULL;
        free(j);
        r->njobs--;
        router_reply_status(q, CAIRN_ERR_IO, "cannot start a worker job");
        router_req_finish(q);
    }
}

/* ---- TABLE.LIST, TABLE.INFO (from the cache) ---- */

static const char *state_name(router_table_state s)
{
    return s == ROUTER_TABLE_READY      ? "ready"
           : s == ROUTER_TABLE_CREATING ? "creating"
                                        : "dropping";
}

static void reply_list(struct router *r, struct rreq *q)
{
    size_t n = 0, total = router_cache_table_count(r->cache);
    for (size_t i = 0; i < total; i++)
        n += router_cache_table_at(r->cache, i)->state == ROUTER_TABLE_READY;
    resp_write_array(&q->out, n);
    for (size_t i = 0; i < total; i++) {
        const router_table *t = router_cache_table_at(r->cache, i);
        if (t->state == ROUTER_TABLE_READY)
            resp_write_bulk_str(&q->out, t->name);
    }
}

static void write_kv_int(buf *b, const char *k, int64_t v)
{
    resp_write_bulk_str(b, k);
    resp_write_int(b, v);
}

/* A move's progress: nil when the range is not moving. */
static void write_move(buf *b, const router_range *rg)
{
    resp_write_bulk_str(b, "move");
    if (rg->move_step == 0) {
        resp_write_nil(b);
        return;
    }
    resp_write_array(b, 10);
    resp_write_bulk_str(b, "step");
    resp_write_bulk_str(b,
                        meta_reloc_step_name((meta_reloc_step)(rg->move_step -
                                                               1)));
    write_kv_int(b, "to_range", (int64_t)rg->move_dest);
    write_kv_int(b, "keys_copied", (int64_t)rg->move_keys);
    write_kv_int(b, "bytes_copied", (int64_t)rg->move_bytes);
    write_kv_int(b, "bytes_per_sec",
                 rg->move_ms ? (int64_t)(rg->move_bytes * 1000 / rg->move_ms)
                             : 0);
}

static void write_range(struct router *r, buf *b, const router_range *rg)
{
    resp_write_array(b, 16);
    write_kv_int(b, "id", (int64_t)rg->id);
    resp_write_bulk_str(b, "start");
    resp_write_bulk(b, rg->start, rg->start_len);
    resp_write_bulk_str(b, "end");
    resp_write_bulk(b, rg->end, rg->end_len);
    write_kv_int(b, "epoch", (int64_t)rg->epoch);
    resp_write_bulk_str(b, "replicas");
    resp_write_array(b, (size_t)rg->nreplicas);
    for (int i = 0; i < rg->nreplicas; i++)
        resp_write_int(b, (int64_t)rg->replicas[i]);
    write_kv_int(b, "leader", (int64_t)rg->leader);
    resp_write_bulk_str(b, "state");
    resp_write_bulk_str(b, rg->migrating ? "migrating" : "normal");
    write_move(b, rg);
}

static void reply_info(struct router *r, struct rreq *q)
{
    const router_table *t =
        router_cache_table(r->cache, q->cmd.table.p, q->cmd.table.len);
    if (t == NULL || t->state != ROUTER_TABLE_READY) {
        resp_write_error(&q->out, "NOTABLE", "no such table '%.*s'",
                         (int)q->cmd.table.len, (const char *)q->cmd.table.p);
        r->stat_errors++;
        return;
    }
    buf *b = &q->out;
    resp_write_array(b, 12);
    resp_write_bulk_str(b, "name");
    resp_write_bulk_str(b, t->name);
    write_kv_int(b, "id", (int64_t)t->id);
    resp_write_bulk_str(b, "engine");
    resp_write_bulk_str(b, t->engine == 1 ? "lsm" : "btree");
    write_kv_int(b, "replicas", t->replicas);
    resp_write_bulk_str(b, "state");
    resp_write_bulk_str(b, state_name(t->state));
    resp_write_bulk_str(b, "ranges");
    resp_write_array(b, t->nranges);
    for (size_t i = 0; i < t->nranges; i++)
        write_range(r, b, &t->ranges[i]);
}

void router_table_cmd(struct router *r, struct rreq *q)
{
    switch (q->cmd.kind) {
    case RCMD_TABLE_CREATE:
        start_job(r, q, create_work);
        return;
    case RCMD_TABLE_DROP:
        start_job(r, q, drop_work);
        return;
    case RCMD_TABLE_SPLIT:
        start_job(r, q, split_work);
        return;
    case RCMD_TABLE_MOVE:
        start_job(r, q, move_work);
        return;
    case RCMD_TABLE_LIST:
        reply_list(r, q);
        break;
    case RCMD_TABLE_INFO:
        reply_info(r, q);
        break;
    default:
        router_reply_status(q, CAIRN_ERR_UNSUPPORTED, "not implemented");
    }
    router_req_finish(q);
}
