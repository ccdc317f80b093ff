/*
 * router.h - `cairn router`, the request manager (DESIGN.md, "cairn router").
 *
 * A stateless RESP server: clients speak the Redis protocol (docs/API.md);
 * the router keeps an in-memory copy of the metadata (tables, ranges,
 * leaders, nodes) loaded from etcd and kept fresh by a watch, and sends
 * each operation to the leader of the range holding the key over pooled,
 * pipelined cairn RPC connections. When its copy is wrong it still answers
 * correctly: a node rejects a misrouted request (NOT_LEADER with a hint,
 * STALE_EPOCH, KEY_OUT_OF_RANGE, RANGE_NOT_FOUND) and the router follows
 * the hint or re-reads the metadata and retries, with bounded backoff and
 * an overall deadline, before answering -TRYAGAIN. A write whose outcome
 * is unknown is answered -TIMEOUT and never retried behind the client's
 * back (MISSION.md puts idempotent retries on the client).
 *
 * Everything runs on one libuv loop; metadata I/O (blocking etcd calls)
 * runs on libuv's worker threads.
 */
#ifndef CAIRN_ROUTER_H
#define CAIRN_ROUTER_H

#include <stdint.h>

typedef struct router_config {
    const char *host;      /* listen address, e.g. "127.0.0.1" */
    int port;              /* listen port; 0 = any (see router_port) */
    const char *etcd;      /* comma-separated etcd URLs */
    const char *prefix;    /* metadata prefix; NULL = "/cairn" */
    int deadline_ms;       /* per-request deadline; 0 = 5000 */
    int etcd_timeout_ms;   /* per etcd call; 0 = 2000 */
    const char *password;  /* clients must AUTH with it; NULL = no AUTH */
    const char *http;      /* "host:port" of /metrics; NULL = none */
} router_config;

typedef struct router router;

/* Create a router: connect the metadata client, load the map (blocking,
 * retried until `cfg->deadline_ms` x 2 has passed) and bind the listener.
 * 0, CAIRN_ERR_META (etcd unreachable), CAIRN_ERR_IO (cannot listen),
 * CAIRN_ERR_INVALID or CAIRN_ERR_NOMEM. */
int router_new(router **out, const router_config *cfg);

/* Serve until router_stop or SIGINT/SIGTERM. 0 on a clean stop. */
int router_run(router *r);

/* Ask a running router to stop (thread-safe, async-signal-unsafe). */
void router_stop(router *r);

/* The port actually bound (useful with port 0). */
int router_port(const router *r);

/* Free a stopped router. NULL is a no-op. */
void router_free(router *r);

#endif
