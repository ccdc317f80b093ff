/*
 * replica_rpc.c - node requests built from the metadata (replica_rpc.h).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/u64map.h"
#include "meta/replica_rpc.h"
#include "proto/rpc_sync.h"
#include "storage/engine.h" /* engine_kind: the RPC's engine byte */

int meta_create_replica_request(const meta_map *map, const meta_table *t,
                                const meta_range *rg, rpc_request *req)
{
    memset(req, 0, sizeof *req);
    if (rg->n_replicas > RPC_MAX_PEERS)
        return CAIRN_ERR_INVALID;
    req->type = RPC_CREATE_REPLICA;
    req->id = 1;
    req->range_id = rg->id;
    req->epoch = rg->epoch;
    req->table_id = t->id;
    req->engine = (uint8_t)(t->engine == META_ENGINE_LSM ? ENGINE_LSM
                                                          : ENGINE_BTREE);
    req->key = (rpc_bytes){rg->start, rg->start_len};
    req->end = (rpc_bytes){rg->end, rg->end_len};
    req->bootstrap = true;
    for (int i = 0; i < rg->n_replicas; i++) {
        const meta_node *n = meta_map_node(map, rg->replicas[i]);
        if (n == NULL)
            return CAIRN_ERR_NOT_FOUND;
        req->peers[i].id = n->id;
        req->peers[i].addr =
            (rpc_bytes){(const uint8_t *)n->addr, strlen(n->addr)};
        req->n_peers++;
    }
    return 0;
}

/* ---- many ranges, one request per node --------------------------------- */

typedef struct create_job {
    const meta_map *map;
    const meta_table *t;
    const meta_range *rs;
    size_t n;
    int timeout_ms;
    uint64_t *nodes; /* distinct nodes holding a replica of an rs[i] */
    size_t n_nodes;
    atomic_size_t next; /* the next node for a thread to serve */
    u64map index;       /* range id -> i + 1; read-only while threads run */
    pthread_mutex_t mu; /* guards what follows */
    bool *ok;
    size_t failed;
    char *err;
    size_t err_len;
    bool reached;
} create_job;

/* Range i failed: count it once, and say why if it is the first failure. */
static void fail_range(create_job *j, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_range(create_job *j, size_t i, const char *fmt, ...)
{
    pthread_mutex_lock(&j->mu);
    if (j->ok[i]) {
        j->ok[i] = false;
        j->failed++;
    }
    if (j->err_len > 0 && j->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, j->err_len, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&j->mu);
}

static bool on_node(const meta_range *rg, uint64_t node)
{
    for (int k = 0; k < rg->n_replicas; k++)
        if (rg->replicas[k] == node)
            return true;
    return false;
}

/* The transport's error, for a person: what happened to the request. */
static const char *transport_why(int rc)
{
    switch (rc) {
    case CAIRN_ERR_IO:
        return "unreachable (connection refused, or closed before "
               "answering)";
    case CAIRN_ERR_PROTO:
        return "malformed answer";
    case CAIRN_ERR_INVALID:
        return "bad address";
    default:
        return cairn_err_message(rc);
    }
}

/* Send one frame of `count` creations (ranges at[0..count)) to `nd`. */
static void send_frame(create_job *j, const meta_node *nd,
                       const rpc_create_batch *b, const size_t *at)
{
    rpc_request q;
    rpc_reply rep;
    buf frame = BUF_INIT;
    int timeout = j->timeout_ms + (int)b->count * META_CREATE_MS_PER_REPLICA;
    rpc_create_batch_request(b, 1, &q);
    int rc = rpc_sync_call(nd->addr, &q, timeout, &frame, &rep);
    if (rc == 0 || rc == CAIRN_ERR_TIMEOUT) {
        pthread_mutex_lock(&j->mu);
        j->reached = true;
        pthread_mutex_unlock(&j->mu);
    }
    if (rc != 0) {
        char why[160];
        if (rc == CAIRN_ERR_TIMEOUT)
            snprintf(why, sizeof why, "no answer within %d ms (the "
                     "creations may or may not have been made)", timeout);
        else
            snprintf(why, sizeof why, "%s", transport_why(rc));
        for (uint32_t k = 0; k < b->count; k++)
            fail_range(j, at[k], "node %" PRIu64 " (%s): %s; %u creations "
                       "not confirmed", nd->id, nd->addr, why, b->count);
    } else if (rep.status != 0) {
        for (uint32_t k = 0; k < b->count; k++)
            fail_range(j, at[k], "node %" PRIu64 " (%s): %s %.*s", nd->id,
                       nd->addr, cairn_err_word(rep.status),
                       (int)rep.message.len, (const char *)rep.message.p);
    } else {
        size_t pos = 0;
        rpc_create_failure f;
        while (rpc_create_failure_next(&rep, &pos, &f) == 1) {
            uintptr_t i = (uintptr_t)u64map_get(&j->index, f.range_id);
            if (i == 0 || f.status == CAIRN_ERR_EXISTS)
                continue; /* not asked for / already there: done */
            fail_range(j, i - 1, "range %" PRIu64 " on node %" PRIu64
                       " (%s): %s %.*s", f.range_id, nd->id, nd->addr,
                       cairn_err_word(f.status), (int)f.message.len,
                       (const char *)f.message.p);
        }
    }
    buf_free(&frame);
}

/* Every creation for node `id`, in as few frames as fit. */
static void serve_node(create_job *j, uint64_t id)
{
    const meta_node *nd = meta_map_node(j->map, id);
    rpc_create_batch b = RPC_CREATE_BATCH_INIT;
    size_t *at = malloc(RPC_CREATE_BATCH_MAX * sizeof *at);
    if (at == NULL) {
        for (size_t i = 0; i < j->n; i++)
            if (on_node(&j->rs[i], id))
                fail_range(j, i, "out of memory");
        return;
    }
    for (size_t i = 0; i < j->n; i++) {
        rpc_request req;
        if (!on_node(&j->rs[i], id) ||
            meta_create_replica_request(j->map, j->t, &j->rs[i], &req) != 0)
            continue; /* not here, or failed before any thread started */
        int rc = rpc_create_batch_add(&b, &req);
        if (rc == CAIRN_ERR_TOOBIG) {
            send_frame(j, nd, &b, at);
            rpc_create_batch_reset(&b);
            rc = rpc_create_batch_add(&b, &req);
        }
        if (rc != 0)
            fail_range(j, i, "range %" PRIu64 ": cannot encode its creation "
                       "(%s)", j->rs[i].id, cairn_err_message(rc));
        else
            at[b.count - 1] = i;
    }
    if (b.count > 0)
        send_frame(j, nd, &b, at);
    rpc_create_batch_free(&b);
    free(at);
}

static void *create_thread(void *arg)
{
    create_job *j = arg;
    size_t k;
    while ((k = atomic_fetch_add(&j->next, 1)) < j->n_nodes)
        serve_node(j, j->nodes[k]);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Check every range's placement, index the ranges by id and list the
 * nodes involved. */
static int create_prepare(create_job *j)
{
    j->nodes = malloc((j->n * META_MAX_REPLICAS + 1) * sizeof *j->nodes);
    if (j->nodes == NULL)
        return CAIRN_ERR_NOMEM;
    for (size_t i = 0; i < j->n; i++) {
        const meta_range *rg = &j->rs[i];
        rpc_request req;
        int rc = meta_create_replica_request(j->map, j->t, rg, &req);
        if (u64map_put(&j->index, rg->id, (void *)(uintptr_t)(i + 1)) != 0)
            return CAIRN_ERR_NOMEM;
        if (rc == CAIRN_ERR_NOT_FOUND) {
            uint64_t unknown = 0;
            for (int k = 0; k < rg->n_replicas && !unknown; k++)
                if (!meta_map_node(j->map, rg->replicas[k]))
                    unknown = rg->replicas[k];
            fail_range(j, i, "range %" PRIu64 ": placed on node %" PRIu64
                       ", which the metadata does not know", rg->id, unknown);
            continue;
        }
        if (rc != 0) {
            fail_range(j, i, "range %" PRIu64 ": %d replicas, more than a "
                       "request carries", rg->id, rg->n_replicas);
            continue;
        }
        for (int k = 0; k < rg->n_replicas; k++)
            j->nodes[j->n_nodes++] = rg->replicas[k];
    }
    qsort(j->nodes, j->n_nodes, sizeof *j->nodes, cmp_u64);
    size_t w = 0;
    for (size_t i = 0; i < j->n_nodes; i++)
        if (w == 0 || j->nodes[w - 1] != j->nodes[i])
            j->nodes[w++] = j->nodes[i];
    j->n_nodes = w;
    return 0;
}

size_t meta_create_replicas(const meta_map *map, const meta_table *t,
                            const meta_range *rs, size_t n, int timeout_ms,
                            bool *ok, char *err, size_t err_len,
                            bool *reached)
{
    create_job j = {.map = map, .t = t, .rs = rs, .n = n,
                    .timeout_ms = timeout_ms, .index = U64MAP_INIT, .ok = ok,
                    .err = err, .err_len = err_len};
    pthread_mutex_init(&j.mu, NULL);
    atomic_init(&j.next, 0);
    if (err_len > 0)
        err[0] = '\0';
    for (size_t i = 0; i < n; i++)
        ok[i] = true;
    if (create_prepare(&j) != 0) {
        for (size_t i = 0; i < n; i++)
            fail_range(&j, i, "out of memory");
    } else {
        pthread_t th[META_CREATE_THREADS];
        size_t started = 0;
        while (started < j.n_nodes && started < META_CREATE_THREADS &&
               pthread_create(&th[started], NULL, create_thread, &j) == 0)
            started++;
        create_thread(&j); /* this thread helps (or does it all) */
        for (size_t i = 0; i < started; i++)
            pthread_join(th[i], NULL);
    }
    if (reached)
        *reached = j.reached;
    u64map_free(&j.index);
    free(j.nodes);
    pthread_mutex_destroy(&j.mu);
    return j.failed;
}
