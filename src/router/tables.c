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
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "router/router_int.h"
#include "storage/engine.h" /* engine_kind: the RPC's engine byte */

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

/* ---- a blocking RPC for admin requests (worker thread only) ---- */

static int dial(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon - addr > 63)
        return -1;
    char host[64];
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {ADMIN_RPC_TIMEOUT_MS / 1000, 0};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t got = recv(fd, p, n, 0);
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Send one request to `addr` and wait for its reply. Returns the reply's
 * status, or CAIRN_ERR_IO when the node could not be reached. */
static int admin_rpc(const char *addr, const rpc_request *req, char *msg,
                     size_t msgcap)
{
    buf out = BUF_INIT;
    int rc = rpc_hello_client(&out);
    if (rc == 0)
        rc = rpc_encode_request(&out, req);
    int fd = rc == 0 ? dial(addr) : -1;
    uint8_t *frame = NULL;
    rc = CAIRN_ERR_IO;
    uint8_t head[4];
    if (fd >= 0 && write_all(fd, out.data, out.len) == 0 &&
        read_all(fd, head, 4) == 0) {
        size_t len = be_get_u32(head) + 4u;
        frame = len <= RPC_FRAME_MAX ? malloc(len) : NULL;
        if (frame != NULL) {
            memcpy(frame, head, 4);
            rpc_reply rep;
            if (read_all(fd, frame + 4, len - 4) == 0 &&
                rpc_decode_reply(frame, len, req->type, &rep) == 0) {
                rc = rep.status;
                snprintf(msg, msgcap, "%.*s", (int)rep.message.len,
                         (const char *)rep.message.p);
            }
        }
    }
    if (fd >= 0)
        close(fd);
    free(frame);
    buf_free(&out);
    return rc;
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
    memset(&req, 0, sizeof req);
    req.type = RPC_CREATE_REPLICA;
    req.id = 1;
    req.range_id = rg->id;
    req.epoch = rg->epoch;
    req.table_id = t->id;
    req.engine = (uint8_t)(t->engine == META_ENGINE_LSM ? ENGINE_LSM
                                                         : ENGINE_BTREE);
    req.key = (rpc_bytes){rg->start, rg->start_len};
    req.end = (rpc_bytes){rg->end, rg->end_len};
    req.bootstrap = true;
    for (int i = 0; i < rg->n_replicas && i < RPC_MAX_PEERS; i++) {
        const meta_node *n = meta_map_node(map, rg->replicas[i]);
        if (n == NULL)
            return fail(j, CAIRN_ERR_TRYAGAIN, "node %llu is unknown",
                        (unsigned long long)rg->replicas[i]);
        req.peers[i].id = n->id;
        req.peers[i].addr = (rpc_bytes){(const uint8_t *)n->addr,
                                        strlen(n->addr)};
        req.n_peers++;
    }
    for (unsigned i = 0; i < req.n_peers; i++) {
        char msg[128] = "", addr[META_ADDR_MAX + 1];
        snprintf(addr, sizeof addr, "%.*s", (int)req.peers[i].addr.len,
                 (const char *)req.peers[i].addr.p);
        int rc = admin_rpc(addr, &req, msg, sizeof msg);
        if (rc != 0 && rc != CAIRN_ERR_EXISTS)
            return fail(j, CAIRN_ERR_TRYAGAIN,
                        "cannot create range %llu on node %llu: %s %s",
                        (unsigned long long)rg->id,
                        (unsigned long long)req.peers[i].id,
                        cairn_err_word(rc), msg);
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
    if (rg->end_len > 0 && router_key_cmp(req.key.p, req.key.len, rg->end,
                                          rg->end_len) >= 0)
        return false; /* no 1-byte key fits: rely on etcd's record */
    for (int i = 0; i < rg->n_replicas; i++) {
        const meta_node *n = meta_map_node(map, rg->replicas[i]);
        char msg[64];
        if (n == NULL)
            continue;
        int rc = admin_rpc(n->addr, &req, msg, sizeof msg);
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
    if (rc == 0 && (rc = meta_table_set_ready(r->meta, j->name, t.id)) != 0)
        fail(j, rc, "cannot mark the table ready");
    if (rc != 0) {
        /* Roll back: invisible at once; the controller removes what was
         * created on nodes. */
        meta_table_drop(r->meta, j->name, NULL);
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
