/*
 * etcd.h - a small blocking client for etcd 3.4's v3 JSON gateway.
 *
 * etcd is cairn's metadata store (DESIGN.md, "Metadata manager"). This
 * client speaks the gateway's HTTP/JSON API with libcurl and cJSON: range
 * reads, puts, deletes, transactions with compares, leases, and watches.
 * Keys and values are arbitrary bytes (base64 on the wire, hidden here).
 *
 * Endpoints: a client is given a comma-separated list of base URLs
 * ("http://127.0.0.1:2379,http://127.0.0.1:2381"). A call that cannot
 * reach an endpoint (connect error, timeout before any answer) tries the
 * next one; a call fails with CAIRN_ERR_META only after every endpoint
 * failed. The endpoint that last worked is tried first next time.
 *
 * Errors: CAIRN_ERR_META (unreachable, or etcd answered an error),
 * CAIRN_ERR_NOT_FOUND (etcd_get of a missing key, an unknown lease),
 * CAIRN_ERR_TIMEOUT (a write - put, delete, txn - was sent but no answer
 * came: it may or may not have been applied), CAIRN_ERR_NOMEM,
 * CAIRN_ERR_INVALID. Every call is bounded by the client's timeout per
 * endpoint tried.
 *
 * Threads and event loops - READ THIS before calling from a libuv loop:
 *  - Every function here except etcd_watch_* BLOCKS the calling thread on
 *    network I/O for up to timeout_ms x number of endpoints. Never call
 *    them on a libuv loop thread: run them from uv_queue_work (or a thread
 *    of your own) and use the result in the after-work callback.
 *  - An `etcd` client is thread-safe: any number of threads may call it at
 *    once (each call uses its own curl handle).
 *  - A watch runs on its own thread; its callback is called on that
 *    thread, never concurrently with itself. Copy what you need (see
 *    etcd_event fields: they are valid only during the callback) and hand
 *    it to your loop with uv_async_send. etcd_watch_stop joins the thread.
 */
#ifndef CAIRN_META_ETCD_H
#define CAIRN_META_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/prom.h"

typedef struct etcd etcd;

/* Create a client for `endpoints` (comma-separated base URLs, at most 8)
 * with a per-endpoint, per-call timeout of `timeout_ms` (> 0). Does no I/O.
 * 0, CAIRN_ERR_INVALID (bad list) or CAIRN_ERR_NOMEM. */
int etcd_open(etcd **out, const char *endpoints, int timeout_ms);

/* Free a client. Stop its watches first. NULL is a no-op. */
void etcd_close(etcd *c);

/* Why the last call of THIS thread failed, for error messages: etcd's own
 * text ("etcd http://127.0.0.1:2379: etcdserver: too many operations in
 * txn request") or the transport's ("etcd http://127.0.0.1:2379: Couldn't
 * connect to server", several endpoints joined by "; "). Every call
 * clears it first, so after a call that failed with CAIRN_ERR_META,
 * CAIRN_ERR_NOT_FOUND (a lease) or CAIRN_ERR_TIMEOUT it names that call's
 * cause, and after a success it is "". Thread-local: calls block their
 * thread, so the text belongs to the caller's own last call. Valid until
 * the thread's next call. */
const char *etcd_last_error(void);

/* Put back a text saved from etcd_last_error(): for a caller that makes
 * clean-up calls after the failure it reports. */
void etcd_restore_last_error(const char *text);

/* Round trips of a client since it was opened, for /metrics: every HTTP
 * request to an endpoint (a call that fails over makes several), the
 * calls that failed in the end, and the requests' durations. Watches are
 * long-lived streams and not counted. Thread-safe (atomics). */
typedef struct etcd_stats {
    uint64_t requests;       /* HTTP requests sent to an endpoint */
    uint64_t request_errors; /* of those, no answer or an error answer */
    uint64_t calls_failed;   /* calls that returned an error */
    const prom_hist *latency; /* request durations (the client's own) */
} etcd_stats;

void etcd_get_stats(const etcd *c, etcd_stats *out);

/* Append the cairn_etcd_* families of `s` to a /metrics page. */
int etcd_stats_write(buf *b, const etcd_stats *s);

/* Number of endpoints and the one currently preferred (for logging). */
size_t etcd_endpoint_count(const etcd *c);
const char *etcd_endpoint(const etcd *c, size_t i);

/* One key-value pair as etcd stores it. Owns its bytes (etcd_kv_free).
 * `value` is NUL-terminated for convenience (value_len excludes it). */
typedef struct etcd_kv {
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    int64_t create_revision; /* revision that created the key */
    int64_t mod_revision;    /* revision of the last change */
    int64_t version;         /* number of changes since creation */
    int64_t lease;           /* lease id, 0 if none */
} etcd_kv;

void etcd_kv_free(etcd_kv *kv);

/* Result of a range read: `count` pairs in key order, and the store
 * revision the read was served at. Free with etcd_range_free. */
typedef struct etcd_range_result {
    etcd_kv *kvs;
    size_t count;
    int64_t revision;
    bool more; /* a limit cut the answer short */
} etcd_range_result;

void etcd_range_free(etcd_range_result *r);

/* The range_end that makes [key, range_end) cover every key with the
 * prefix `key` (etcd's rule: increment the last byte that is not 0xff and
 * drop what follows; "\0" - all keys - if there is none). Writes at most
 * `len` bytes to `out` and returns the length (0 means "\0", see above). */
size_t etcd_prefix_end(const void *key, size_t len, uint8_t *out);

/* Read one key. `revision` 0 = latest. Fills *kv (free with etcd_kv_free)
 * and, if not NULL, *store_revision. CAIRN_ERR_NOT_FOUND if absent (then
 * *store_revision is still set). */
int etcd_get(etcd *c, const void *key, size_t key_len, int64_t revision,
             etcd_kv *kv, int64_t *store_revision);

/* Read [key, range_end) (range_end NULL/0 = the single key; use
 * etcd_prefix_end for a prefix) at `revision` (0 = latest), at most
 * `limit` pairs (0 = no limit). */
int etcd_range(etcd *c, const void *key, size_t key_len,
               const void *range_end, size_t range_end_len, int64_t revision,
               int64_t limit, etcd_range_result *out);

/* Blind write, attached to `lease` if not 0. Tests and tools only: cairn's
 * metadata is changed with etcd_txn (compare first, never blind writes).
 * *revision (if not NULL) = revision of the write. */
int etcd_put(etcd *c, const void *key, size_t key_len, const void *value,
             size_t value_len, int64_t lease, int64_t *revision);

/* Delete [key, range_end) (range_end NULL = the single key). *deleted (if
 * not NULL) = number of keys deleted. Tests and tools only, as etcd_put. */
int etcd_delete(etcd *c, const void *key, size_t key_len,
                const void *range_end, size_t range_end_len,
                int64_t *deleted);

/* ---- transactions ------------------------------------------------------
 * if (all compares hold) then success ops else failure ops, atomically. */

typedef enum etcd_cmp_target {
    ETCD_CMP_VERSION, /* number of changes; 0 = key does not exist */
    ETCD_CMP_CREATE,  /* create_revision; 0 = key does not exist */
    ETCD_CMP_MOD,     /* mod_revision; 0 = key does not exist */
    ETCD_CMP_VALUE,   /* bytes (a missing key fails every value compare) */
    ETCD_CMP_LEASE,
} etcd_cmp_target;

typedef enum etcd_cmp_op {
    ETCD_CMP_EQUAL,
    ETCD_CMP_GREATER,
    ETCD_CMP_LESS,
    ETCD_CMP_NOT_EQUAL,
} etcd_cmp_op;

typedef struct etcd_txn etcd_txn;

/* A new, empty transaction (NULL when out of memory). */
etcd_txn *etcd_txn_new(void);
void etcd_txn_free(etcd_txn *t);

/* Add a compare of an integer target (VERSION, CREATE, MOD, LEASE). */
int etcd_txn_cmp(etcd_txn *t, const void *key, size_t key_len,
                 etcd_cmp_target target, etcd_cmp_op op, int64_t v);

/* Add a compare of the key's value with `value` (bytewise). */
int etcd_txn_cmp_value(etcd_txn *t, const void *key, size_t key_len,
                       etcd_cmp_op op, const void *value, size_t value_len);

/* Add an operation to the success branch (`on_success` true) or the
 * failure branch. A get's answer comes back in etcd_txn_result.gets, in
 * the order the gets of the executed branch were added. */
int etcd_txn_put(etcd_txn *t, bool on_success, const void *key,
                 size_t key_len, const void *value, size_t value_len,
                 int64_t lease);
int etcd_txn_delete(etcd_txn *t, bool on_success, const void *key,
                    size_t key_len, const void *range_end,
                    size_t range_end_len);
int etcd_txn_get(etcd_txn *t, bool on_success, const void *key,
                 size_t key_len, const void *range_end, size_t range_end_len);

typedef struct etcd_txn_result {
    bool succeeded;          /* the compares held */
    int64_t revision;        /* store revision after the txn */
    etcd_range_result *gets; /* one per get of the executed branch */
    size_t n_gets;
} etcd_txn_result;

void etcd_txn_result_free(etcd_txn_result *r);

/* Run the transaction. Returns 0 whether or not the compares held: look
 * at r->succeeded. (A transaction is not retried on another endpoint once
 * it may have reached etcd; a timeout then returns CAIRN_ERR_TIMEOUT:
 * the outcome is unknown, re-read before retrying.) */
int etcd_txn_commit(etcd *c, const etcd_txn *t, etcd_txn_result *r);

/* ---- leases ------------------------------------------------------------ */

/* Grant a lease of `ttl_s` seconds; *id = its id. */
int etcd_lease_grant(etcd *c, int64_t ttl_s, int64_t *id);

/* Refresh a lease once. *ttl_s (if not NULL) = the remaining TTL.
 * CAIRN_ERR_NOT_FOUND if the lease expired or was revoked. */
int etcd_lease_keepalive(etcd *c, int64_t id, int64_t *ttl_s);

/* Revoke a lease: every key attached to it is deleted at once. */
int etcd_lease_revoke(etcd *c, int64_t id);

/* ---- watches ----------------------------------------------------------- */

typedef enum etcd_event_type { ETCD_EVENT_PUT, ETCD_EVENT_DELETE } etcd_event_type;

/* One change. For a delete, kv.value is empty and kv.mod_revision is the
 * revision of the delete. */
typedef struct etcd_event {
    etcd_event_type type;
    etcd_kv kv;
} etcd_event;

typedef enum etcd_watch_kind {
    ETCD_WATCH_EVENTS,       /* events[0..n) happened, in revision order */
    ETCD_WATCH_PROGRESS,     /* nothing new up to `revision` */
    ETCD_WATCH_CONNECTED,    /* stream (re)established */
    ETCD_WATCH_DISCONNECTED, /* stream lost; reconnecting from next_revision */
    ETCD_WATCH_COMPACTED,    /* history needed was compacted: the watch has
                                stopped; reload everything and watch again
                                from the reload's revision + 1 */
} etcd_watch_kind;

typedef struct etcd_watch_msg {
    etcd_watch_kind kind;
    const etcd_event *events; /* valid only during the callback */
    size_t n_events;
    int64_t revision;         /* EVENTS: revision of the last event;
                                 PROGRESS: store revision;
                                 COMPACTED: the compact revision */
    int64_t next_revision;    /* where the watch resumes after a reconnect */
} etcd_watch_msg;

/* Called on the watch thread; see the threading notes at the top. */
typedef void (*etcd_watch_fn)(void *arg, const etcd_watch_msg *m);

typedef struct etcd_watch etcd_watch;

/* Watch [key, range_end) from `start_revision` (every change with a
 * revision >= start_revision is delivered once, in order; 0 = from now).
 * Runs on a new thread with its own HTTP stream; on a broken stream it
 * reconnects (any endpoint, with backoff up to 1 s) from the last
 * delivered revision + 1, so no change is lost or repeated, until
 * etcd_watch_stop or a compaction. */
int etcd_watch_start(etcd *c, const void *key, size_t key_len,
                     const void *range_end, size_t range_end_len,
                     int64_t start_revision, etcd_watch_fn fn, void *arg,
                     etcd_watch **out);

/* Stop a watch and join its thread (at most ~200 ms). After it returns no
 * callback runs. Must not be called from the watch's own callback. NULL is
 * a no-op. */
void etcd_watch_stop(etcd_watch *w);

#endif
