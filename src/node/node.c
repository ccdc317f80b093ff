/*
 * node.c - the node process: listener, connections, request dispatch,
 * replica registry, start and stop (node.h).
 */
#include "node.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <raft.h>
#include <uv.h>

#include "../common/err.h"
#include "../common/grow.h"
#include "../common/limits.h"
#include "../proto/rpc.h"
#include "node_meta.h"

#define SCAN_LIMIT_DEFAULT 1000
#define SCAN_LIMIT_MAX 100000
#define READ_CHUNK (64 * 1024)

typedef struct node node;

typedef struct conn {
    node *n;
    uv_tcp_t *tcp; /* raft_malloc'd: a Raft connection passes it to libraft */
    buf in;
    buf out;     /* replies not yet written */
    buf writing; /* replies being written */
    uv_write_t wreq;
    bool hello_done, closing, writing_busy;
    int refs; /* 1 while open + 1 per request in progress */
    struct conn *prev, *next;
} conn;

typedef struct slot {
    uint64_t range_id;
    replica *r;
    /* Closing for a drop: the range is refused until its files are gone,
     * so that a create meanwhile cannot open a replica on the log the drop
     * is about to delete. */
    bool dropping;
} slot;

struct node {
    const node_options *opts;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    rep_env env;
    rep_hub *hub;
    seq_clock *clock;
    engine *engines[3]; /* by engine_kind */
    slot *ranges;
    size_t n_ranges, cap_ranges;
    conn *conns;
    int closing_replicas;
    bool stopping;
    node_meta *meta; /* etcd registration and leader records, or NULL */
};

/* A request waiting for its replica. */
typedef struct op {
    conn *c;
    uint64_t id;
    rpc_type type;
    replica *r;
    buf key, end;
    uint32_t limit;
    uint64_t range_id; /* drop, admin: the range of the request */
    engine *eng;
} op;

/* ---- replies ---------------------------------------------------------- */

static void conn_flush(conn *c);

static void reply_error(conn *c, uint64_t id, int status, const char *msg)
{
    rpc_reply_error(&c->out, id, status, msg ? msg : cairn_err_message(status));
}

/* NOT_LEADER with the leader this replica knows; with none known (an
 * election is running, or no majority is reachable to elect one) the clear
 * answer is NOQUORUM. */
static void reply_not_leader(conn *c, uint64_t id, replica *r)
{
    uint64_t lid = 0;
    const char *addr = NULL;
    if (r)
        replica_leader(r, &lid, &addr);
    if (lid == 0) {
        rpc_reply_error(&c->out, id, CAIRN_ERR_NO_QUORUM,
                        "no leader: election in progress or no majority of "
                        "replicas reachable");
        return;
    }
    if (lid == c->n->opts->id) { /* still leader, but handing over */
        rpc_reply_error(&c->out, id, CAIRN_ERR_TRYAGAIN,
                        "leadership transfer in progress");
        return;
    }
    rpc_reply_not_leader(&c->out, id, lid, addr ? addr : "");
}

static void reply_status(conn *c, uint64_t id, int status, replica *r,
                         const char *msg)
{
    if (status == CAIRN_ERR_NOT_LEADER)
        reply_not_leader(c, id, r);
    else
        reply_error(c, id, status, msg);
}

/* ---- replica registry ------------------------------------------------- */

static slot *find_slot(node *n, uint64_t range_id)
{
    for (size_t i = 0; i < n->n_ranges; i++)
        if (n->ranges[i].range_id == range_id)
            return &n->ranges[i];
    return NULL;
}

/* The open replica of a range; a range being dropped has none. */
static replica *find_range(node *n, uint64_t range_id)
{
    slot *s = find_slot(n, range_id);
    return s && !s->dropping ? s->r : NULL;
}

static int add_range(node *n, uint64_t range_id, replica *r)
{
    if (grow_array((void **)&n->ranges, n->n_ranges, &n->cap_ranges,
                   sizeof *n->ranges, 64) != 0)
        return CAIRN_ERR_NOMEM;
    n->ranges[n->n_ranges].range_id = range_id;
    n->ranges[n->n_ranges].r = r;
    n->ranges[n->n_ranges].dropping = false;
    n->n_ranges++;
    return 0;
}

static int get_engine(node *n, engine_kind kind, engine **out)
{
    if (kind != ENGINE_BTREE && kind != ENGINE_LSM)
        return CAIRN_ERR_INVALID;
    if (n->engines[kind] == NULL) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", n->opts->dir,
                 kind == ENGINE_BTREE ? "lmdb" : "rocks");
        int rc = engine_open(kind, path, NULL, &n->engines[kind]);
        if (rc != 0)
            return rc;
        n->env.batchers[kind] = entry_batcher_new(n->engines[kind]);
        if (n->env.batchers[kind] == NULL)
            return CAIRN_ERR_NOMEM; /* the engine stays open for a retry */
    }
    *out = n->engines[kind];
    return 0;
}

/* Create a replica: its meta (applied index 0) is made durable in the
 * index store first, so that it is reopened after a restart. */
static int create_replica(node *n, const range_meta *m, bool boot,
                          char *err)
{
    engine *e;
    buf blob = BUF_INIT;
    slot *s = find_slot(n, m->range_id);
    if (s && s->dropping) {
        snprintf(err, 256, "range %" PRIu64 " is being dropped",
                 m->range_id);
        return CAIRN_ERR_TRYAGAIN;
    }
    if (s)
        return CAIRN_ERR_EXISTS;
    int rc = get_engine(n, m->engine, &e);
    engine_batch *b = rc == 0 ? engine_batch_new() : NULL;
    if (rc == 0 && b == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = range_meta_encode(m, &blob);
    if (rc == 0)
        rc = engine_batch_set_meta(b, m->range_id, blob.data, blob.len);
    if (rc == 0)
        rc = engine_write(e, b);
    if (rc == 0)
        rc = engine_sync(e);
    if (b)
        engine_batch_free(b);
    buf_free(&blob);
    replica *r = NULL;
    if (rc == 0)
        rc = replica_open(&n->env, e, m, boot, &r, err);
    if (rc == 0 && (rc = add_range(n, m->range_id, r)) != 0)
        replica_close(r, NULL, NULL);
    return rc;
}

static bool has_raft_dir(node *n, uint64_t range_id)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/raft/%" PRIu64, n->opts->dir, range_id);
    return stat(path, &st) == 0 || errno != ENOENT;
}

/* A range whose store data has no Raft log directory: a drop whose data
 * deletion was not yet durable when its log was deleted (before drops
 * synced the store), or a create that crashed before replica_open made
 * the directory (never acknowledged). Without a log the replica has no
 * term, vote or configuration and could never rejoin its group, and its
 * data proves nothing (the log is the durable truth): finish the drop. */
static void drop_leftover(node *n, engine *e, uint64_t range_id)
{
    int rc = engine_drop_range(e, range_id);
    if (rc == 0)
        rc = engine_sync(e);
    fprintf(stderr, "cairn node: range %" PRIu64 " has index-store data "
            "but no Raft log (an interrupted drop or create): %s\n",
            range_id, rc == 0 ? "data deleted" : cairn_err_message(rc));
}

/* Reopen every replica an index store holds. A range whose log cannot be
 * loaded stays closed, with the reason on stderr; the others start. */
static void load_replicas(node *n, engine *e)
{
    uint64_t *ids = NULL;
    size_t count = 0;
    if (engine_list_ranges(e, &ids, &count) != 0)
        return;
    for (size_t i = 0; i < count; i++) {
        buf blob = BUF_INIT;
        range_meta m = {0};
        char err[256] = "";
        replica *r;
        m.range_id = ids[i];
        if (!has_raft_dir(n, ids[i])) {
            drop_leftover(n, e, ids[i]);
            continue;
        }
        int rc = engine_get_meta(e, NULL, ids[i], &blob);
        if (rc == 0)
            rc = range_meta_decode(blob.data, blob.len, &m);
        if (rc == 0)
            rc = replica_open(&n->env, e, &m, false, &r, err);
        if (rc == 0)
            rc = add_range(n, ids[i], r);
        if (rc != 0)
            fprintf(stderr, "cairn node: range %" PRIu64
                    " not started: %s %s\n", ids[i], cairn_err_message(rc),
                    err);
        range_meta_free(&m);
        buf_free(&blob);
    }
    free(ids);
}

static void open_existing(node *n)
{
    static const engine_kind kinds[] = {ENGINE_BTREE, ENGINE_LSM};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        struct stat st;
        engine *e;
        snprintf(path, sizeof path, "%s/%s", n->opts->dir,
                 kinds[i] == ENGINE_BTREE ? "lmdb" : "rocks");
        if (stat(path, &st) == 0 && get_engine(n, kinds[i], &e) == 0)
            load_replicas(n, e);
    }
}

/* ---- data requests ---------------------------------------------------- */

static op *op_new(conn *c, const rpc_request *q, replica *r)
{
    op *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->c = c;
    o->id = q->id;
    o->type = q->type;
    o->r = r;
    o->limit = q->limit;
    if (buf_append(&o->key, q->key.p, q->key.len) != 0 ||
        buf_append(&o->end, q->end.p, q->end.len) != 0) {
        buf_free(&o->key);
        free(o);
        return NULL;
    }
    c->refs++;
    return o;
}

static void conn_unref(conn *c);

/* Finish an op: flush its reply (if the connection is still open). */
static void op_done(op *o)
{
    conn *c = o->c;
    buf_free(&o->key);
    buf_free(&o->end);
    free(o);
    if (!c->closing)
        conn_flush(c);
    conn_unref(c);
}

static void write_done(void *arg, int status, const seq *s)
{
    op *o = arg;
    if (!o->c->closing) {
        if (status == 0)
            rpc_reply_seq(&o->c->out, o->id, s);
        else
            reply_status(o->c, o->id, status, o->r, NULL);
    }
    op_done(o);
}

static void serve_get(op *o)
{
    seq s;
    bool tomb = false;
    buf v = BUF_INIT;
    const range_meta *m = replica_meta(o->r);
    int rc = engine_get(replica_engine(o->r), NULL, m->range_id, o->key.data,
                        o->key.len, &s, &tomb, &v);
    if (rc == 0 && tomb)
        rc = CAIRN_ERR_NOT_FOUND;
    if (rc == 0)
        rpc_reply_value(&o->c->out, o->id, &s, v.data, v.len);
    else
        reply_error(o->c, o->id, rc, NULL);
    buf_free(&v);
}

static int cmp_bytes(const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return an < bn ? -1 : an > bn;
}

/* Clamp the requested [start, end) to the range's bounds. */
static void scan_bounds(const range_meta *m, op *o, buf *start, buf *end)
{
    const buf *rs = &m->start, *re = &m->end;
    if (cmp_bytes(o->key.data, o->key.len, rs->data, rs->len) < 0)
        buf_append(start, rs->data, rs->len);
    else
        buf_append(start, o->key.data, o->key.len);
    if (o->end.len == 0 ||
        (re->len && cmp_bytes(o->end.data, o->end.len, re->data, re->len) > 0))
        buf_append(end, re->data, re->len);
    else
        buf_append(end, o->end.data, o->end.len);
}

static void serve_scan(op *o)
{
    const range_meta *m = replica_meta(o->r);
    buf start = BUF_INIT, end = BUF_INIT;
    engine_iter *it = NULL;
    size_t mark;
    uint32_t limit = o->limit ? o->limit : SCAN_LIMIT_DEFAULT, count = 0;
    if (limit > SCAN_LIMIT_MAX)
        limit = SCAN_LIMIT_MAX;
    scan_bounds(m, o, &start, &end);
    int rc = engine_iter_open(replica_engine(o->r), NULL, m->range_id,
                              start.data, start.len, end.data, end.len,
                              limit, 0, &it);
    bool more = false;
    if (rc == 0)
        rc = rpc_reply_scan_begin(&o->c->out, o->id, &mark);
    engine_entry en;
    while (rc == 0 && (rc = engine_iter_next(it, &en)) == 1) {
        if (o->c->out.len - mark > RPC_SCAN_BYTES) {
            more = true;
            rc = 0;
            break;
        }
        rc = rpc_reply_scan_add(&o->c->out, en.key, en.key_len, &en.seq,
                                en.value, en.value_len);
        count++;
    }
    if (rc == 0)
        rpc_reply_scan_end(&o->c->out, mark, count, more);
    else if (it) {
        o->c->out.len = mark;
        reply_error(o->c, o->id, rc, NULL);
    } else {
        reply_error(o->c, o->id, rc, NULL);
    }
    if (it)
        engine_iter_close(it);
    buf_free(&start);
    buf_free(&end);
}

static void read_done(void *arg, int status)
{
    op *o = arg;
    if (!o->c->closing) {
        if (status != 0)
            reply_status(o->c, o->id, status, o->r, NULL);
        else if (o->type == RPC_GET)
            serve_get(o);
        else
            serve_scan(o);
    }
    op_done(o);
}

/* The checks every data request passes first (node.h). */
static replica *route(conn *c, const rpc_request *q)
{
    replica *r = find_range(c->n, q->range_id);
    char msg[128];
    if (r == NULL) {
        snprintf(msg, sizeof msg, "range %" PRIu64 " is not hosted here",
                 q->range_id);
        reply_error(c, q->id, CAIRN_ERR_RANGE_NOT_FOUND, msg);
        return NULL;
    }
    /* Older than the range's epoch: the sender's routing is stale. A newer
     * one is accepted: the metadata may be ahead of this replica (the
     * epoch entry of a membership change not applied here yet, a change the
     * controller recorded first), and this replica's bounds, checked next,
     * still hold. */
    uint64_t epoch = replica_meta(r)->epoch;
    if (q->epoch < epoch) {
        snprintf(msg, sizeof msg, "epoch %" PRIu64 ", range is at %" PRIu64,
                 q->epoch, epoch);
        reply_error(c, q->id, CAIRN_ERR_STALE_EPOCH, msg);
        return NULL;
    }
    if (q->type == RPC_SCAN)
        return r;
    int rc = replica_check_key(r, q->key.p, q->key.len);
    if (rc != 0) {
        reply_error(c, q->id, rc, NULL);
        return NULL;
    }
    return r;
}

static void handle_data(conn *c, const rpc_request *q)
{
    replica *r = route(c, q);
    if (r == NULL)
        return;
    op *o = op_new(c, q, r);
    if (o == NULL) {
        reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
        return;
    }
    int rc;
    if (q->type == RPC_PUT)
        rc = replica_write(r, ENTRY_OP_PUT, q->key.p, q->key.len, q->value.p,
                           q->value.len, q->cond, &q->cond_seq, write_done, o);
    else if (q->type == RPC_DEL)
        rc = replica_write(r, ENTRY_OP_DEL, q->key.p, q->key.len, NULL, 0,
                           ENTRY_COND_NONE, NULL, write_done, o);
    else
        rc = replica_read(r, read_done, o);
    if (rc != 0) {
        reply_status(c, q->id, rc, r, NULL);
        op_done(o);
    }
}

/* ---- admin requests --------------------------------------------------- */

/* The replica may be closing (a drop, or the node stopping) when its admin
 * requests are answered: only a replica still in the registry is asked for
 * its leader. */
static void admin_done(void *arg, int status, const char *msg)
{
    op *o = arg;
    if (!o->c->closing) {
        replica *live = find_range(o->c->n, o->range_id);
        if (status == 0)
            rpc_reply_text(&o->c->out, o->id, msg, strlen(msg));
        else if (live == o->r)
            reply_status(o->c, o->id, status, o->r, msg);
        else
            reply_error(o->c, o->id, status, msg);
    }
    op_done(o);
}

static int meta_from_request(const rpc_request *q, range_meta *m)
{
    memset(m, 0, sizeof *m);
    m->range_id = q->range_id;
    m->table_id = q->table_id;
    m->engine = (engine_kind)q->engine;
    m->epoch = q->epoch;
    if (q->range_id == 0 || q->n_peers == 0 ||
        (m->engine != ENGINE_BTREE && m->engine != ENGINE_LSM))
        return CAIRN_ERR_INVALID;
    if (buf_append(&m->start, q->key.p, q->key.len) != 0 ||
        buf_append(&m->end, q->end.p, q->end.len) != 0)
        return CAIRN_ERR_NOMEM;
    m->n_peers = q->n_peers;
    for (unsigned i = 0; i < q->n_peers; i++) {
        if (q->peers[i].addr.len >= sizeof m->peers[i].addr ||
            q->peers[i].id == 0)
            return CAIRN_ERR_INVALID;
        m->peers[i].id = q->peers[i].id;
        memcpy(m->peers[i].addr, q->peers[i].addr.p, q->peers[i].addr.len);
        m->peers[i].addr[q->peers[i].addr.len] = '\0';
    }
    return 0;
}

static void handle_create(conn *c, const rpc_request *q)
{
    range_meta m;
    char err[256] = "";
    int rc = meta_from_request(q, &m);
    if (rc == 0)
        rc = create_replica(c->n, &m, q->bootstrap, err);
    range_meta_free(&m);
    if (rc == 0)
        rpc_reply_text(&c->out, q->id, "created", 7);
    else
        reply_error(c, q->id, rc, err[0] ? err : NULL);
}

/* One range's metrics plus its digest. A failed append (out of memory)
 * must not trim a byte of an empty buffer, hence the checks. */
static int metrics_one(replica *r, buf *j)
{
    uint64_t digest = 0;
    int rc = replica_metrics(r, j);
    if (rc == 0)
        rc = replica_digest(r, &digest);
    if (rc == 0 && j->len > 0) {
        j->len--; /* reopen the object to add the digest */
        rc = buf_appendf(j, ",\"digest\":\"%016" PRIx64 "\"}", digest);
    }
    return rc;
}

static int metrics_all(node *n, buf *j)
{
    int rc = buf_appendf(j, "{\"node\":%" PRIu64 ",\"address\":\"%s\","
                         "\"ranges\":[", n->opts->id, n->opts->listen);
    bool first = true;
    for (size_t i = 0; rc == 0 && i < n->n_ranges; i++) {
        if (n->ranges[i].dropping)
            continue;
        if (!first)
            rc = buf_append_str(j, ",");
        first = false;
        if (rc == 0)
            rc = replica_metrics(n->ranges[i].r, j);
    }
    return rc ? rc : buf_append_str(j, "]}");
}

static void handle_metrics(conn *c, const rpc_request *q)
{
    buf j = BUF_INIT;
    int rc;
    if (q->range_id) {
        replica *r = find_range(c->n, q->range_id);
        rc = r ? metrics_one(r, &j) : CAIRN_ERR_RANGE_NOT_FOUND;
    } else {
        rc = metrics_all(c->n, &j);
    }
    if (rc == 0)
        rpc_reply_text(&c->out, q->id, (const char *)j.data, j.len);
    else
        reply_error(c, q->id, rc, NULL);
    buf_free(&j);
}

static void handle_membership(conn *c, const rpc_request *q)
{
    replica *r = find_range(c->n, q->range_id);
    if (r == NULL) {
        reply_error(c, q->id, CAIRN_ERR_RANGE_NOT_FOUND, NULL);
        return;
    }
    op *o = op_new(c, q, r);
    char addr[RPC_ADDR_MAX + 1];
    if (o)
        o->range_id = q->range_id;
    if (o == NULL || q->addr.len > RPC_ADDR_MAX) {
        reply_error(c, q->id, o ? CAIRN_ERR_INVALID : CAIRN_ERR_NOMEM, NULL);
        if (o)
            op_done(o);
        return;
    }
    if (q->addr.len)
        memcpy(addr, q->addr.p, q->addr.len);
    addr[q->addr.len] = '\0';
    int rc;
    if (q->type == RPC_ADD_REPLICA)
        rc = replica_add(r, q->node_id, addr, admin_done, o);
    else if (q->type == RPC_REMOVE_REPLICA)
        rc = replica_remove(r, q->node_id, admin_done, o);
    else
        rc = replica_transfer(r, q->node_id, admin_done, o);
    if (rc != 0) {
        reply_status(c, q->id, rc, r, NULL);
        op_done(o);
    }
}

static void remove_range(node *n, uint64_t range_id)
{
    for (size_t i = 0; i < n->n_ranges; i++) {
        if (n->ranges[i].range_id == range_id) {
            n->ranges[i] = n->ranges[--n->n_ranges];
            return;
        }
    }
}

/* Remove a directory of plain files (a replica's Raft log). */
static int remove_flat_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char file[4096 + 32 + 256 + 2]; /* path: DIR/raft/<range id> */
    if (d == NULL)
        return errno == ENOENT ? 0 : CAIRN_ERR_IO;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        unlink(file);
    }
    closedir(d);
    return rmdir(path) == 0 ? 0 : CAIRN_ERR_IO;
}

/* fsync a directory, so that the entries removed from it stay removed. */
static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return CAIRN_ERR_IO;
    int rc = fsync(fd) == 0 ? 0 : CAIRN_ERR_IO;
    close(fd);
    return rc;
}

/* Delete a closed replica: its index-store data (one atomic engine
 * operation) made durable first, then its log, then the log's directory
 * entry. A crash at any point leaves the replica whole, or its data gone
 * and an orphan log directory (never opened again: a replica exists only
 * while the store holds its meta), or nothing - never data without a log
 * (load_replicas deletes such leftovers of older versions). */
static int drop_replica_files(node *n, engine *e, uint64_t range_id)
{
    char raft[4096], path[4096 + 32];
    snprintf(raft, sizeof raft, "%s/raft", n->opts->dir);
    snprintf(path, sizeof path, "%s/%" PRIu64, raft, range_id);
    int rc = engine_drop_range(e, range_id);
    if (rc == 0)
        rc = engine_sync(e);
    if (rc == 0)
        rc = remove_flat_dir(path);
    if (rc == 0)
        rc = sync_dir(raft);
    return rc;
}

static void replica_closed(void *arg);

/* The replica is closed: delete it for good, then free its range id. */
static void dropped(void *arg)
{
    op *o = arg;
    node *n = o->c->n;
    int rc = drop_replica_files(n, o->eng, o->range_id);
    remove_range(n, o->range_id);
    if (n->stopping) /* on_signal counted it among the closing replicas */
        replica_closed(n);
    if (!o->c->closing) {
        if (rc == 0)
            rpc_reply_text(&o->c->out, o->id, "dropped", 7);
        else
            reply_error(o->c, o->id, rc, NULL);
    }
    op_done(o);
}

/* Delete this node's replica of a range (after the leader removed it from
 * the group, or to clean up a replica that never joined). */
static void handle_drop(conn *c, const rpc_request *q)
{
    slot *s = find_slot(c->n, q->range_id);
    if (s == NULL) {
        reply_error(c, q->id, CAIRN_ERR_RANGE_NOT_FOUND, NULL);
        return;
    }
    if (s->dropping) { /* not gone yet: "not found" would be premature */
        reply_error(c, q->id, CAIRN_ERR_TRYAGAIN, "being dropped");
        return;
    }
    replica *r = s->r;
    op *o = op_new(c, q, NULL);
    if (o == NULL) {
        reply_error(c, q->id, CAIRN_ERR_NOMEM, NULL);
        return;
    }
    o->range_id = q->range_id;
    o->eng = replica_engine(r);
    s->dropping = true;
    replica_close(r, dropped, o);
}

static void dispatch(conn *c, const rpc_request *q)
{
    switch (q->type) {
    case RPC_PING:
        rpc_reply_ok(&c->out, q->id);
        break;
    case RPC_PUT:
    case RPC_DEL:
    case RPC_GET:
    case RPC_SCAN:
        handle_data(c, q);
        break;
    case RPC_CREATE_REPLICA:
        handle_create(c, q);
        break;
    case RPC_METRICS:
        handle_metrics(c, q);
        break;
    case RPC_DROP_REPLICA:
        handle_drop(c, q);
        break;
    default:
        handle_membership(c, q);
        break;
    }
}

/* ---- connections ------------------------------------------------------ */

static void conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    raft_free(c->tcp);
    c->tcp = NULL;
    conn_unref(c);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)c->tcp, conn_closed);
}

static void conn_unref(conn *c)
{
    if (--c->refs > 0)
        return;
    node *n = c->n;
    if (c->prev)
        c->prev->next = c->next;
    else
        n->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->writing);
    free(c);
}

static void conn_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->writing_busy = false;
    buf_reset(&c->writing);
    if (status != 0)
        conn_close(c);
    else if (!c->closing)
        conn_flush(c);
    conn_unref(c);
}

static void conn_flush(conn *c)
{
    if (c->writing_busy || c->out.len == 0 || c->closing)
        return;
    buf t = c->writing;
    c->writing = c->out;
    c->out = t;
    uv_buf_t b = uv_buf_init((char *)c->writing.data,
                             (unsigned)c->writing.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)c->tcp, &b, 1, conn_written) != 0) {
        conn_close(c);
        return;
    }
    c->writing_busy = true;
    c->refs++;
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    conn *c = h->data;
    if (buf_reserve(&c->in, READ_CHUNK) != 0) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init((char *)c->in.data + c->in.len,
                     (unsigned)(c->in.cap - c->in.len));
}

/* The handshake says what the connection carries; a Raft connection is
 * handed over to the replication hub, which owns the stream from then on. */
static bool conn_hello(conn *c)
{
    rpc_hello h;
    int used = rpc_hello_parse(c->in.data, c->in.len, &h);
    if (used == 0)
        return false;
    if (used < 0 || (h.kind == RPC_CONN_RAFT && (size_t)used != c->in.len)) {
        conn_close(c);
        return false;
    }
    if (h.kind == RPC_CONN_RAFT) {
        uv_read_stop((uv_stream_t *)c->tcp);
        uv_tcp_t *tcp = c->tcp;
        c->tcp = NULL;
        c->closing = true;
        rep_hub_accept(c->n->hub, &h, tcp);
        conn_unref(c);
        return false;
    }
    buf_consume(&c->in, (size_t)used);
    c->hello_done = true;
    return true;
}

static void conn_frames(conn *c)
{
    size_t pos = 0;
    while (!c->closing) {
        long n = rpc_frame_len(c->in.data + pos, c->in.len - pos);
        if (n == 0)
            break;
        rpc_request q;
        if (n < 0 || rpc_decode_request(c->in.data + pos, (size_t)n, &q) != 0) {
            conn_close(c);
            break;
        }
        dispatch(c, &q);
        pos += (size_t)n;
    }
    buf_consume(&c->in, pos);
    conn_flush(c);
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->in.len += (size_t)nread;
    if (!c->hello_done && !conn_hello(c))
        return;
    c->refs++; /* a dispatch may drop the last other reference */
    conn_frames(c);
    conn_unref(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    node *n = server->data;
    if (status != 0 || n->stopping)
        return;
    conn *c = calloc(1, sizeof *c);
    uv_tcp_t *tcp = c ? raft_malloc(sizeof *tcp) : NULL;
    if (tcp == NULL) {
        free(c);
        return;
    }
    uv_tcp_init(&n->loop, tcp);
    c->n = n;
    c->tcp = tcp;
    c->refs = 1;
    tcp->data = c;
    c->next = n->conns;
    if (n->conns)
        n->conns->prev = c;
    n->conns = c;
    if (uv_accept(server, (uv_stream_t *)tcp) != 0 ||
        uv_read_start((uv_stream_t *)tcp, conn_alloc, conn_read) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(tcp, 1);
}

/* ---- start and stop --------------------------------------------------- */

static void replica_closed(void *arg)
{
    node *n = arg;
    if (--n->closing_replicas == 0)
        uv_stop(&n->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    node *n = h->data;
    if (n->stopping)
        return;
    n->stopping = true;
    fprintf(stderr, "cairn node %" PRIu64 ": stopping (signal %d)\n",
            n->opts->id, signum);
    node_meta_stop(n->meta);
    n->meta = NULL;
    uv_close((uv_handle_t *)&n->listener, NULL);
    for (conn *c = n->conns; c; c = c->next)
        conn_close(c);
    /* a replica being dropped is already closing: dropped() counts it */
    n->closing_replicas = (int)n->n_ranges;
    for (size_t i = 0; i < n->n_ranges; i++)
        if (!n->ranges[i].dropping)
            replica_close(n->ranges[i].r, replica_closed, n);
    n->n_ranges = 0;
    if (n->closing_replicas == 0)
        uv_stop(&n->loop);
}

static int start_listener(node *n)
{
    struct sockaddr_in sa;
    char host[256];
    const char *colon = strrchr(n->opts->listen, ':');
    if (colon == NULL || (size_t)(colon - n->opts->listen) >= sizeof host)
        return CAIRN_ERR_INVALID;
    memcpy(host, n->opts->listen, (size_t)(colon - n->opts->listen));
    host[colon - n->opts->listen] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0)
        return CAIRN_ERR_INVALID;
    uv_tcp_init(&n->loop, &n->listener);
    n->listener.data = n;
    if (uv_tcp_bind(&n->listener, (struct sockaddr *)&sa, 0) != 0 ||
        uv_listen((uv_stream_t *)&n->listener, 512, on_connection) != 0)
        return CAIRN_ERR_IO;
    return 0;
}

static int make_dirs(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/raft", dir);
    if ((mkdir(dir, 0755) != 0 && errno != EEXIST) ||
        (mkdir(path, 0755) != 0 && errno != EEXIST))
        return CAIRN_ERR_IO;
    return 0;
}

static void boot_static(node *n)
{
    const node_options *o = n->opts;
    if (o->boot_range == 0 || find_range(n, o->boot_range))
        return;
    range_meta m = {0};
    char err[256] = "";
    m.range_id = o->boot_range;
    m.table_id = 1;
    m.engine = o->boot_engine;
    m.epoch = 1;
    m.n_peers = o->boot_n_peers;
    memcpy(m.peers, o->boot_peers, sizeof m.peers);
    int rc = create_replica(n, &m, true, err);
    if (rc != 0)
        fprintf(stderr, "cairn node: bootstrap of range %" PRIu64
                " failed: %s %s\n", o->boot_range, cairn_err_message(rc), err);
    range_meta_free(&m);
}

/* node_meta lists the replicas through this (node_meta.h). */
static void each_replica(void *arg, node_meta_visit fn, void *varg)
{
    node *n = arg;
    for (size_t i = 0; i < n->n_ranges; i++)
        if (!n->ranges[i].dropping)
            fn(varg, n->ranges[i].r);
}

static void start_meta(node *n)
{
    const node_options *o = n->opts;
    node_meta_config c = {.etcd = o->etcd, .prefix = o->etcd_prefix,
                          .node_id = o->id, .address = o->listen,
                          .dir = o->dir, .each = each_replica, .each_arg = n};
    if (o->etcd && node_meta_start(&n->loop, &c, &n->meta) != 0)
        fprintf(stderr, "cairn node: bad --etcd or --prefix; running "
                "without etcd\n");
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void node_free(node *n)
{
    uv_walk(&n->loop, close_walk, NULL);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    uv_loop_close(&n->loop);
    for (int k = 0; k < 3; k++) {
        entry_batcher_free(n->env.batchers[k]); /* replicas flushed them */
        if (n->engines[k])
            engine_close(n->engines[k]);
    }
    rep_hub_free(n->hub);
    seq_clock_free(n->clock);
    free(n->ranges);
}

static uint64_t random_nonce(void)
{
    uint64_t v = 0;
    if (uv_random(NULL, NULL, &v, sizeof v, 0, NULL) != 0)
        v = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return v;
}

int node_run(const node_options *opts)
{
    node n;
    memset(&n, 0, sizeof n);
    n.opts = opts;
    if (make_dirs(opts->dir) != 0) {
        fprintf(stderr, "cairn node: cannot create %s: %s\n", opts->dir,
                strerror(errno));
        return 1;
    }
    /* A peer or client that goes away must cost a write error, not the
     * process. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&n.loop);
    n.hub = rep_hub_new(&n.loop);
    n.clock = seq_clock_new_offset((uint32_t)opts->id, opts->clock_offset_ms);
    n.env = (rep_env){.loop = &n.loop, .hub = n.hub, .node_id = opts->id,
                      .address = opts->listen, .dir = opts->dir,
                      .clock = n.clock, .nonce = random_nonce(),
                      .opts = opts->rep};
    int rc = start_listener(&n);
    if (rc != 0) {
        fprintf(stderr, "cairn node: cannot listen on %s\n", opts->listen);
        node_free(&n);
        return 1;
    }
    open_existing(&n);
    boot_static(&n);
    start_meta(&n);
    uv_signal_init(&n.loop, &n.sigint);
    uv_signal_init(&n.loop, &n.sigterm);
    n.sigint.data = n.sigterm.data = &n;
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    fprintf(stderr, "cairn node %" PRIu64 ": listening on %s, %zu ranges\n",
            opts->id, opts->listen, n.n_ranges);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    node_free(&n);
    return 0;
}

int node_parse_peers(const char *text, range_peer *peers, unsigned *n)
{
    *n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        unsigned long long id = strtoull(p, &end, 10);
        if (id == 0 || *end != '=' || *n >= RANGE_MAX_PEERS)
            return CAIRN_ERR_INVALID;
        const char *a = end + 1, *comma = strchr(a, ',');
        size_t len = comma ? (size_t)(comma - a) : strlen(a);
        if (len == 0 || len >= sizeof peers[0].addr)
            return CAIRN_ERR_INVALID;
        peers[*n].id = id;
        memcpy(peers[*n].addr, a, len);
        peers[*n].addr[len] = '\0';
        (*n)++;
        p = comma ? comma + 1 : a + len;
    }
    return *n ? 0 : CAIRN_ERR_INVALID;
}
