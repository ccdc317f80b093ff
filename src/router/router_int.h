/*
 * router_int.h - internals shared by the router's files (not a public API).
 *
 *   server.c   listener, client connections, in-order reply queue,
 *              backpressure
 *   exec.c     executing parsed commands, formatting replies
 *   scan.c     KV.SCAN paging across ranges
 *   tables.c   TABLE.* commands (metadata on worker threads)
 *   req.c      a command's reply: error replies, the end of a command
 *   op.c       one routed RPC: route, send, retry, deadline
 *   migrate.c  ops on a range being moved: reads of both groups, merged
 *              scans, conditional writes on the merged state
 *   pool.c     pooled, pipelined connections to nodes
 *   view.c     the routing cache built from metadata snapshots
 *
 * Calls go one way, server -> exec (scan, tables) -> op (migrate) -> pool;
 * results
 * come back through callbacks: a pool request's on_reply/on_failed (set
 * by op.c), an op's `done` (set by exec.c, scan.c), a req's `finish` (set
 * by server.c).
 *
 * Object lifetimes, all on the loop thread:
 *   client  owns its queue of reqs; freed after its handle closed and no
 *           worker-thread job refers to one of its reqs.
 *   req     one client command; owns a copy of its arguments and its reply
 *           bytes; done when its reply is complete, freed once written.
 *   op      one RPC on behalf of a req (a req may have many: MGET, SCAN);
 *           lives in the router's op list until it finishes, is cancelled
 *           (client gone) or times out.
 */
#ifndef CAIRN_ROUTER_INT_H
#define CAIRN_ROUTER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/prom.h"
#include "common/seq.h"
#include "http/httpd.h"
#include "meta/meta.h"
#include "proto/resp.h"
#include "proto/rpc.h"
#include "router/cache.h"
#include "router/command.h"
#include "router/router.h"

/* Per-client bounds (issue 4: bounded per-client memory, backpressure). */
#define ROUTER_CLIENT_MAX_REQS 512           /* queued commands */
#define ROUTER_CLIENT_MAX_OUT (8u << 20)     /* reply bytes not yet written */
#define ROUTER_CLIENT_MESSAGE_MAX (64u << 20) /* one command */
/* A new client's reply size guess: its first window is 32 commands. */
#define ROUTER_REPLY_GUESS (256u << 10)
/* A scan page stops growing at this many bytes of keys and values. */
#define ROUTER_SCAN_PAGE_BYTES (4u << 20)
/* Most ops of one MGET/MSET/DEL/EXISTS in flight at once. */
#define ROUTER_FAN_WINDOW 64
/* Retry backoff: first wait, cap. */
#define ROUTER_BACKOFF_MIN_MS 5
#define ROUTER_BACKOFF_MAX_MS 400
#define ROUTER_TICK_MS 5
/* An op in flight to a node the routing view no longer names as its
 * range's leader is abandoned after this long (op.c, abandon_stale): a
 * read is sent to the leader, a write ends TIMEOUT. */
#define ROUTER_ABANDON_READ_MS 250
#define ROUTER_ABANDON_WRITE_MS 1000

struct router;
struct rclient;
struct rreq;
struct rop;
struct nconn;

typedef void (*rop_done_fn)(struct rop *op, int status, const rpc_reply *rep);

/* What the pool knows of one request (pool.c): its place in a node
 * connection's in-flight list, its frame until sent, and where the
 * outcome goes - exactly one of on_reply (a reply to it arrived) or
 * on_failed (the connection died; `sent` says whether the node may have
 * read it), after the pool has detached it. */
typedef struct pool_req pool_req;
struct pool_req {
    pool_req *cnext, *cprev;
    struct nconn *conn;        /* NULL: not in flight */
    uint64_t rpc_id;
    rpc_type type;             /* to decode the reply */
    buf frame;                 /* its request while attached, unsent */
    bool sent;                 /* its frame was handed to the socket */
    void (*on_reply)(pool_req *pr, const rpc_reply *rep);
    void (*on_failed)(pool_req *pr, int err);
};

/* One routed RPC. */
struct rop {
    struct rop *next, *prev;   /* router's list of live ops */
    pool_req pr;               /* in flight to a node (pool.c) */
    struct rop *wnext, *wprev; /* its client's ordered ops (op.c) */
    struct rclient *wc;        /* that client; NULL: not ordered */
    struct router *r;
    struct rreq *req;
    size_t idx;                /* which part of req (MGET key index) */
    rop_done_fn done;

    rpc_type type;
    uint64_t table_id;
    const uint8_t *key;        /* owned by req (or by `own`) */
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    rpc_cond cond;
    seq cond_seq;
    const uint8_t *end;        /* SCAN upper bound (0 = unbounded) */
    size_t end_len;
    uint8_t *rend;             /* SCAN: end of the range it was sent to */
    size_t rend_len;           /* (owned; 0 = the last range) */
    uint32_t limit;
    uint64_t range_id;         /* filled when routed */
    uint64_t epoch;

    bool is_write;
    bool dead;                 /* cancelled: freed by the next tick */
    uint64_t node_id;          /* where it was sent */
    uint64_t sent_ms;          /* loop ms of the attempt */
    int attempts;
    uint64_t retry_at;         /* loop ms; 0 = not waiting */
    int64_t view_rev;          /* waiting for a view newer than this (a
                                  routing refusal): retried as soon as one
                                  arrives; 0 = not */
    uint64_t deadline;         /* loop ms */
    int last_err;              /* why the last attempt failed */
    char last_msg[96];

    /* COPY: the encoded records and their count (migrate.c) */
    const uint8_t *items;
    size_t items_len;
    uint32_t count;
    /* migrate.c: a child op reads or writes one group of a moving range
     * for its parent (ROUTER_MIG_DEST: the destination, routed by key;
     * ROUTER_MIG_SOURCE: the source, by id) */
    uint8_t mig;
    bool mig_copied;           /* a conditional write: source record copied */
    struct rop *mig_parent;    /* a child's parent; NULL once it is gone */
    struct rmig *mig_state;    /* a parent's, while its children run */
};

enum { ROUTER_MIG_NONE, ROUTER_MIG_DEST, ROUTER_MIG_SOURCE };

/* A node connection (pool.c). */
struct nconn {
    struct nconn *next;
    struct router *r;
    char addr[ROUTER_ADDR_MAX + 1];
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    bool connected, closing, writing;
    buf out;                   /* the hello, until handed to the socket */
    buf in;
    pool_req *head, *tail;     /* in flight, in send order */
    size_t ninflight;
};

/* One client command. */
struct rreq {
    struct rreq *next;
    struct rclient *c;         /* NULL once the client is gone */
    router_cmd cmd;            /* points into argv/argmem */
    router_arg *argv;
    size_t argc;
    uint8_t *argmem;
    buf out;                   /* the reply */
    bool done;
    bool close_after;          /* QUIT, protocol error */
    size_t pending;            /* ops not finished */
    int first_err;             /* fan-out: first error seen */
    char first_msg[128];
    int64_t count;             /* DEL/EXISTS: sum */
    uint64_t table_id;         /* fan-out: the table, for later ops */
    size_t fan_next;           /* fan-out: next key to start */
    bool fan_busy;             /* fan-out: fan_pump is running */
    struct rpart *parts;       /* MGET: one result per key */
    struct rscan *scan;        /* KV.SCAN state */
    struct rtablejob *job;     /* TABLE.* running on a worker thread */
    struct router *r;          /* set for commands (metrics) */
    uint64_t start_ns;         /* uv_hrtime() when the command arrived */
    int mkind;                 /* metrics: router_cmd_kind + 1; 0 = none */
    void (*finish)(struct rreq *q); /* the reply is complete (server.c) */
};

/* One part of a fan-out reply (MGET). */
struct rpart {
    int status;
    uint8_t *value;
    size_t len;
};

struct rclient {
    struct rclient *next, *prev;
    struct router *r;
    uv_tcp_t tcp;
    resp_parser *parser;
    buf in;
    struct rreq *head, *tail;
    size_t nreqs;
    size_t out_bytes;          /* handed to uv_write, not yet written */
    size_t avg_reply;          /* recent reply size (client_window) */
    struct rop *whead, *wtail; /* ops of its write commands, in order */
    bool reading, processing, closing, stop_input;
    bool authed;               /* AUTH passed (or no password set) */
    uint64_t id;               /* HELLO's client id */
};

/* Request results counted in the metrics: "OK", then every cairn code
 * word (NOAUTH among them), then the Redis words the router answers (ERR,
 * WRONGPASS, NOPROTO), then "OTHER". */
#define ROUTER_RESULTS (CAIRN_ERR_COUNT_ + 4)

struct router {
    router_config cfg;
    char host[64];
    char prefix[META_PREFIX_MAX + 1];
    char etcd_urls[1024];
    uv_loop_t loop;
    uv_tcp_t listener;
    int port;
    uv_signal_t sigint, sigterm;
    uv_async_t wake;           /* meta changed, or stop requested */
    uv_timer_t ticker;
    bool ticking;
    volatile int stop_requested;
    volatile int meta_dirty;
    bool stopping;

    etcd *etcd;
    meta *meta;
    meta_cache *mcache;
    router_cache *cache;       /* current routing view */
    bool refreshing, refresh_again;
    uv_work_t refresh_work;
    int refresh_rc;

    struct nconn *conns;
    struct rop *ops, *ops_tail; /* live ops, oldest first */
    uint64_t next_rpc_id;
    struct rclient *clients;
    size_t nclients;
    size_t njobs;

    /* INFO counters */
    uint64_t stat_commands, stat_errors, stat_retries, stat_timeouts;
    uint64_t stat_refreshes, stat_connections;

    /* metrics.c: /metrics (--http) */
    httpd *http;
    uv_timer_t metrics_timer;
    uint64_t requests[RCMD_COUNT_ + 1][ROUTER_RESULTS]; /* kind, result */
    prom_hist latency[RCMD_COUNT_ + 1];
    uint64_t retries_by[CAIRN_ERR_COUNT_]; /* by -(error code) */
    uint64_t stat_auth_failures, stat_refresh_errors;
    uint64_t auth_log_ms, refused_log_ms;
    size_t nops;
};

/* ---- req.c ---- */
/* A req's reply is complete: hand it to whoever made the req (q->finish:
 * the server writes what can be written, in order). */
void router_req_finish(struct rreq *q);
/* Write the error reply of a failed op to a req. */
void router_reply_status(struct rreq *q, int status, const char *msg);

/* ---- server.c ---- */
/* Free a req that is no longer queued (client gone). */
void router_req_free(struct rreq *q);
int router_server_start(struct router *r);
void router_server_stop(struct router *r);

/* ---- exec.c ---- */
/* Execute a parsed command; the reply arrives via router_req_finish. */
void router_exec(struct router *r, struct rreq *q);

/* ---- scan.c ---- */
void router_scan_start(struct router *r, struct rreq *q,
                       const router_table *t);
void router_scan_free(struct rreq *q);

/* ---- tables.c ---- */
void router_table_cmd(struct router *r, struct rreq *q);

/* The last step of TABLE.CREATE: CREATING -> READY for table `name` with
 * id `id`. The controller may have finished this create first (it marks
 * READY an old CREATING table whose ranges all have leaders,
 * reconcile_create.c): a table already READY under the same id is
 * success, never a failure to roll back. Otherwise as meta_table_set_ready
 * (CAIRN_ERR_NO_TABLE, CAIRN_ERR_CONDITION: dropping). Blocks on etcd. */
int router_table_mark_ready(meta *m, const char *name, uint64_t id);

/* ---- op.c ---- */
/* A new op for `q` (not yet started); NULL when out of memory. */
struct rop *router_op_new(struct router *r, struct rreq *q, rpc_type type,
                          uint64_t table_id, rop_done_fn done);
/* Route and send (or wait for a retry). Calls op->done exactly once. */
void router_op_start(struct rop *op);
/* `op` (a delete's tombstone) takes the place of `probe` (the read that
 * decided it) in their client's write order (op.c). */
void router_op_take_place(struct rop *op, struct rop *probe);
/* Drop every op of a req without calling done (its client is gone). */
void router_op_cancel_req(struct router *r, struct rreq *q);
/* Finish `op` now with this outcome (migrate.c: its children decided);
 * calls op->done. */
void router_op_finish(struct rop *op, int status, const rpc_reply *rep);

/* ---- migrate.c ---- */
/* `op` is about to go to `rg`, a range being moved (DESIGN.md "Split and
 * move"): whether migrate.c takes it over - a read becomes a read of both
 * groups (the higher sequencer wins, tombstones included), a scan page a
 * merge of both, a conditional write first copies the source's record of
 * its key into the destination; the op is then finished (reads) or
 * started again (writes) from here. */
bool router_migrate_take(struct rop *op, const router_range *rg);
/* A child bound for the source of a range that is no longer moving: the
 * destination holds everything, the source is nothing to read. */
void router_migrate_source_done(struct rop *op);
/* `op` finishes or is cancelled: its children are dropped (never call
 * back) and its state freed. */
void router_migrate_drop(struct rop *op);
/* The loop ticker: retries that are due, deadlines that passed. */
void router_op_tick(struct router *r);
void router_op_free_all(struct router *r);

/* ---- pool.c ---- */
/* Encode `req` (its id and type become pr's) and queue it on the
 * connection to `addr`; pr's callbacks must be set. 0 or an error (nothing
 * was queued). */
int router_pool_send(struct router *r, const char *addr, pool_req *pr,
                     const rpc_request *req);
/* The open connection to `addr`, or NULL. */
struct nconn *router_pool_find(struct router *r, const char *addr);
/* Remove a request from its connection's in-flight list (a reply is then
 * ignored). One not yet handed to the socket takes its frame with it: the
 * node never receives it. */
void router_pool_detach(pool_req *pr);
void router_pool_close_all(struct router *r);

/* ---- view.c ---- */
/* Rebuild the routing cache from the meta cache's current snapshot. */
void router_view_update(struct router *r);
/* Ask for a metadata re-read (coalesced; runs on a worker thread). */
void router_view_refresh(struct router *r);

/* ---- metrics.c ---- */
/* Serve /metrics on cfg.http and publish it every second. 0 or an error
 * (logged). */
int router_metrics_start(struct router *r);
void router_metrics_stop(struct router *r);
/* Count a finished request (its kind, result and duration). */
void router_metrics_request(struct router *r, struct rreq *q);
/* Count a retry and why. */
void router_metrics_retry(struct router *r, int err);
/* The whole page. */
int router_metrics_page(struct router *r, buf *b);

/* ---- router.c ---- */
/* A worker-thread job (refresh, TABLE.*) finished, on the loop thread. */
void router_job_done(struct router *r);

/* Loop time in ms. */
static inline uint64_t router_now(struct router *r)
{
    return uv_now(&r->loop);
}

#endif
