/*
 * tables.c - TABLE.CREATE, TABLE.DROP, TABLE.LIST, TABLE.INFO.
 *
 * LIST and INFO answer from the routing cache. CREATE and DROP change the
 * metadata through meta/meta.h, whose calls block on etcd, so they run on
 * a libuv worker thread and reply from the loop when done.
 *
 * TABLE.CREATE (issue 4, "Tables"): the metadata library writes the table
 * in state CREATING with its ranges and placement; the router then creates
 * the replicas on their nodes (CREATE_REPLICA RPC, all replicas of a range
 * bootstrapped with the same configuration), waits until every range has
 * a leader recorded, marks the table READY and re-reads the metadata, so
 * the client's next command on this router already sees the table. If a
 * step fails the table is marked DROPPING (invisible; the controller
 * deletes whatever was created), or deleted outright when nothing was
 * created on any node.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "router/router_int.h"
#include "meta/replica_rpc.h"
#include "proto/rpc_sync.h"

#define CREATE_WAIT_MS 15000
#define ADMIN_RPC_TIMEOUT_MS 5000

struct rtablejob {
    uv_work_t work;
    struct router *r;
    struct rreq *q;
    char name[CAIRN_TABLE_NAME_MAX + 1];
    int status;
    char msg[200];
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

static int create_range_replicas(struct rtablejob *j, const meta_map *map,
                                 const meta_table *t, const meta_range *rg,
                                 int *created)
{
    rpc_request req;
    if (meta_create_replica_request(map, t, rg, &req) != 0)
        return fail(j, CAIRN_ERR_TRYAGAIN,
                    "range %llu is placed on an unknown node",
                    (unsigned long long)rg->id);
    for (unsigned i = 0; i < req.n_peers; i++) {
        buf msg = BUF_INIT;
        const char *addr = meta_map_node(map, req.peers[i].id)->addr;
        int rc = rpc_sync_status(addr, &req, ADMIN_RPC_TIMEOUT_MS, &msg);
        if (rc != 0 && rc != CAIRN_ERR_EXISTS)
            fail(j, CAIRN_ERR_TRYAGAIN,
                 "cannot create range %llu on node %llu: %s %s",
                 (unsigned long long)rg->id,
                 (unsigned long long)req.peers[i].id, cairn_err_word(rc),
                 msg.len ? (const char *)msg.data : "");
        buf_free(&msg);
        if (rc != 0 && rc != CAIRN_ERR_EXISTS)
            return CAIRN_ERR_TRYAGAIN;
        (*created)++;
    }
    return 0;
}

/* Whether some replica of `rg` answers as its leader: a read of a key in
 * the range that is not rejected as NOT_LEADER (nodes that do not record
 * their leadership in etcd yet are still found). */
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
        int rc = rpc_sync_status(n->addr, &req, ADMIN_RPC_TIMEOUT_MS, NULL);
        if (rc == 0 || rc == CAIRN_ERR_NOT_FOUND)
            return true;
    }
    return false;
}

/* Wait until every range of table `tid` has a leader: recorded in etcd,
 * or answering. */
static int wait_leaders(struct rtablejob *j, meta *m, uint64_t tid)
{
    uint64_t until = mono_ms() + CREATE_WAIT_MS;
    for (;;) {
        meta_map *map = NULL;
        bool all = false;
        if (meta_load(m, &map) == 0) {
            size_t n = 0;
            const meta_range *rs = meta_map_ranges(map, tid, &n);
            all = n > 0;
            for (size_t i = 0; all && i < n; i++)
                all = meta_map_leader(map, rs[i].id) != NULL ||
                      probe_leader(map, &rs[i]);
            meta_map_release(map);
        }
        if (all)
            return 0;
        if (mono_ms() >= until)
            return fail(j, CAIRN_ERR_TRYAGAIN,
                        "no leader elected within %d ms", CREATE_WAIT_MS);
        usleep(50 * 1000);
    }
}

static int create_replicas(struct rtablejob *j, meta *m, const meta_table *t,
                           int *created)
{
    meta_map *map = NULL;
    int rc = meta_load(m, &map);
    if (rc != 0)
        return fail(j, rc, "cannot read the metadata");
    size_t n = 0;
    const meta_range *rs = meta_map_ranges(map, t->id, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = create_range_replicas(j, map, t, &rs[i], created);
    meta_map_release(map);
    return rc;
}

static int pick_replicas(struct rtablejob *j, meta *m)
{
    meta_map *map = NULL;
    int rc = meta_load(m, &map);
    if (rc != 0)
        return fail(j, rc, "cannot read the metadata");
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
    if (rc != 0) {
        fail(j, rc, "cannot create the table in the metadata");
        return;
    }
    int created = 0;
    rc = create_replicas(j, r->meta, &t, &created);
    if (rc == 0)
        rc = wait_leaders(j, r->meta, t.id);
    if (rc == 0 && (rc = router_table_mark_ready(r->meta, j->name, t.id)) != 0)
        fail(j, rc, "cannot mark the table ready");
    if (rc != 0) {
        /* Roll back: invisible at once; the controller removes what was
         * created on nodes. */
        meta_table_abandon(r->meta, j->name, t.id);
        if (created == 0)
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

static void write_range(struct router *r, buf *b, const router_range *rg)
{
    resp_write_array(b, 14);
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
