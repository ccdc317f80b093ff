/*
 * node_meta.c - registration and leader records of a node (node_meta.h).
 *
 * Three parts, three threads:
 *  - the keeper (meta_node_keeper, its own thread) keeps P/nodes/<id> and
 *    the lease-backed P/live/<id>;
 *  - a timer on the node's loop looks at each replica's leader every
 *    POLL_MS (replica_leader is a field read; the range's state is one
 *    hash lookup) and, when this node has become leader of a range, reads
 *    the term and queues (range, term). With ten thousand ranges a poll is
 *    ten thousand field reads and lookups: well under a millisecond;
 *  - the writer thread takes the WHOLE queue at once and records it with
 *    meta_leader_set_many - one read and one write transaction per 100
 *    records, not two round trips per range - so a node that starts
 *    leading a thousand new ranges records them in about ten etcd
 *    transactions. The compare on the term means a late record of an old
 *    term can never hide a newer leader. Records etcd could not take stay
 *    queued for a retry.
 */
#include "node_meta.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "../common/err.h"
#include "../common/log.h"
#include "../common/grow.h"
#include "../common/u64map.h"
#include "../meta/meta.h"

#define POLL_MS 100
#define REFRESH_POLLS 100 /* re-read terms of led ranges every 10 s: metrics
                            * cost a range-size read, so not at every poll */
#define RETRY_MS 1000
#define ETCD_TIMEOUT_MS 2000
#define LEASE_TTL_S 6

/* What the loop knows of one range it hosts. */
typedef struct tracked {
    uint64_t range_id;
    uint64_t term; /* highest term queued for this range */
    uint64_t gen;  /* last poll that saw the range */
    bool leading;
} tracked;

struct node_meta {
    node_meta_config cfg;
    uv_timer_t timer;
    etcd *etcd;
    meta *meta;
    meta_node_keeper *keeper;

    /* loop thread only */
    tracked *tr; /* in no order */
    size_t n_tr, cap_tr;
    u64map tr_at; /* range id -> index in tr + 1 */
    uint64_t gen;

    /* shared with the writer, under mu */
    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    meta_leader *q; /* range_id, node_id, term */
    size_t n_q, cap_q;
    u64map q_at; /* range id -> index in q + 1: one record per range */
    bool stop;
};

/* ---- the queue (any thread, under mu) ---------------------------------- */

/* Keep one record per range, the highest term: older ones are moot (and
 * meta_leader_set_many takes each range once). */
static void queue_push_locked(node_meta *nm, uint64_t range_id, uint64_t term)
{
    uintptr_t at = (uintptr_t)u64map_get(&nm->q_at, range_id);
    if (at) {
        if (term > nm->q[at - 1].term)
            nm->q[at - 1].term = term;
        return;
    }
    if (grow_array((void **)&nm->q, nm->n_q, &nm->cap_q, sizeof *nm->q, 16) ||
        u64map_put(&nm->q_at, range_id, (void *)(uintptr_t)(nm->n_q + 1)))
        return; /* dropped; the controller's metrics poll is the backstop */
    nm->q[nm->n_q++] = (meta_leader){.range_id = range_id,
                                     .node_id = nm->cfg.node_id,
                                     .term = term};
}

static void queue_push(node_meta *nm, uint64_t range_id, uint64_t term)
{
    pthread_mutex_lock(&nm->mu);
    queue_push_locked(nm, range_id, term);
    pthread_cond_signal(&nm->cv);
    pthread_mutex_unlock(&nm->mu);
}

/* ---- the writer thread -------------------------------------------------- */

/* Record a batch of leaderships (the queue as it was taken). The records
 * etcd did not take (it is unreachable) are queued again; those done or
 * superseded by a newer term are not. Returns how many are to retry. */
static size_t record_leaders(node_meta *nm, const meta_leader *ls, size_t n)
{
    int *st = malloc((n ? n : 1) * sizeof *st);
    size_t retry = 0, first = 0;
    int rc = st ? meta_leader_set_many(nm->meta, ls, n, st)
                : CAIRN_ERR_NOMEM;
    pthread_mutex_lock(&nm->mu);
    for (size_t i = 0; i < n; i++) {
        int s = st ? st[i] : rc;
        if (s != 0 && s != CAIRN_ERR_CONDITION) {
            queue_push_locked(nm, ls[i].range_id, ls[i].term);
            first = retry++ ? first : i;
        }
    }
    pthread_mutex_unlock(&nm->mu);
    if (retry > 0)
        log_warn("cannot record leadership of %zu ranges yet (the first: "
                 "range %" PRIu64 ", term %" PRIu64 "): %s %s", retry,
                 ls[first].range_id, ls[first].term, cairn_err_message(rc),
                 etcd_last_error());
    free(st);
    return retry;
}

static void wait_retry_locked(node_meta *nm)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += RETRY_MS / 1000;
    while (!nm->stop && pthread_cond_timedwait(&nm->cv, &nm->mu, &ts) == 0)
        ;
}

static void *writer_main(void *arg)
{
    node_meta *nm = arg;
    meta_leader *batch = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&nm->mu);
    while (!nm->stop) {
        if (nm->n_q == 0) {
            pthread_cond_wait(&nm->cv, &nm->mu);
            continue;
        }
        /* Take the whole queue: what piled up while the last batch was
         * being written goes out together. */
        meta_leader *taken = nm->q;
        size_t n = nm->n_q, taken_cap = nm->cap_q;
        nm->q = batch;
        nm->cap_q = cap;
        nm->n_q = 0;
        u64map_free(&nm->q_at);
        batch = taken;
        cap = taken_cap;
        pthread_mutex_unlock(&nm->mu);
        size_t retry = record_leaders(nm, batch, n);
        pthread_mutex_lock(&nm->mu);
        if (retry > 0)
            wait_retry_locked(nm);
    }
    pthread_mutex_unlock(&nm->mu);
    free(batch);
    return NULL;
}

/* ---- the poll on the loop ----------------------------------------------- */

/* The replica's current Raft term, from its metrics (replica.h exposes the
 * term nowhere else). Called only when leadership may have changed. */
static uint64_t replica_term(replica *r)
{
    buf j = BUF_INIT;
    uint64_t term = 0;
    if (replica_metrics(r, &j) == 0 && buf_append(&j, "", 1) == 0) {
        const char *t = strstr((const char *)j.data, "\"term\":");
        if (t)
            term = strtoull(t + 7, NULL, 10);
    }
    buf_free(&j);
    return term;
}

/* The tracked entry of a range (one hash lookup; appended if new). */
static tracked *track(node_meta *nm, uint64_t range_id)
{
    uintptr_t at = (uintptr_t)u64map_get(&nm->tr_at, range_id);
    if (at && at <= nm->n_tr && nm->tr[at - 1].range_id == range_id)
        return &nm->tr[at - 1];
    if (grow_array((void **)&nm->tr, nm->n_tr, &nm->cap_tr, sizeof *nm->tr,
                   64) != 0 ||
        u64map_put(&nm->tr_at, range_id, (void *)(uintptr_t)(nm->n_tr + 1)))
        return NULL;
    nm->tr[nm->n_tr] = (tracked){.range_id = range_id};
    return &nm->tr[nm->n_tr++];
}

static void visit(void *varg, replica *r)
{
    node_meta *nm = varg;
    tracked *t = track(nm, replica_meta(r)->range_id);
    if (t == NULL)
        return;
    t->gen = nm->gen;
    uint64_t lid = 0;
    const char *addr = NULL;
    replica_leader(r, &lid, &addr);
    bool leading = lid == nm->cfg.node_id;
    /* A leadership lost and won back between two polls keeps `leading`
     * true: the periodic refresh catches its new term. Each led range is
     * refreshed once every REFRESH_POLLS polls, a different slice of the
     * ranges at each poll, so that ten thousand led ranges never make one
     * poll read ten thousand metrics at once. */
    bool refresh = (nm->gen + t->range_id) % REFRESH_POLLS == 0;
    if (leading && (!t->leading || refresh)) {
        uint64_t term = replica_term(r);
        if (term > t->term) {
            t->term = term;
            queue_push(nm, t->range_id, term);
        }
    }
    t->leading = leading;
}

/* Forget ranges that are no longer hosted (dropped or closed). Nothing to
 * do in the common case; otherwise the survivors move down and their
 * index entries follow. */
static void prune(node_meta *nm)
{
    size_t k = 0;
    for (size_t i = 0; i < nm->n_tr; i++) {
        if (nm->tr[i].gen != nm->gen) {
            u64map_del(&nm->tr_at, nm->tr[i].range_id);
            continue;
        }
        if (k != i) {
            nm->tr[k] = nm->tr[i];
            /* out of memory here leaves a stale index, which track()
             * notices (and then tracks the range afresh) */
            u64map_put(&nm->tr_at, nm->tr[k].range_id,
                       (void *)(uintptr_t)(k + 1));
        }
        k++;
    }
    nm->n_tr = k;
}

static void on_poll(uv_timer_t *t)
{
    node_meta *nm = t->data;
    nm->gen++;
    nm->cfg.each(nm->cfg.each_arg, visit, nm);
    prune(nm);
}

/* ---- start and stop ----------------------------------------------------- */

static uint64_t free_bytes(const char *dir)
{
    struct statvfs s;
    if (statvfs(dir, &s) != 0)
        return 0;
    return (uint64_t)s.f_bavail * s.f_frsize;
}

static void nm_free(node_meta *nm)
{
    if (nm->meta)
        meta_close(nm->meta);
    etcd_close(nm->etcd);
    pthread_mutex_destroy(&nm->mu);
    pthread_cond_destroy(&nm->cv);
    free(nm->tr);
    u64map_free(&nm->tr_at);
    free(nm->q);
    u64map_free(&nm->q_at);
    free(nm);
}

static int start_threads(node_meta *nm)
{
    const node_meta_config *c = &nm->cfg;
    int rc = meta_node_keeper_start_zone(
        nm->meta, c->node_id, c->address, free_bytes(c->dir), c->zone,
        c->lease_ttl_s >= 2 ? c->lease_ttl_s : LEASE_TTL_S, &nm->keeper);
    if (rc != 0)
        return rc;
    if (pthread_create(&nm->writer, NULL, writer_main, nm) != 0) {
        meta_node_keeper_stop(nm->keeper, true);
        return CAIRN_ERR_NOMEM;
    }
    return 0;
}

int node_meta_start(uv_loop_t *loop, const node_meta_config *cfg,
                    node_meta **out)
{
    node_meta *nm = calloc(1, sizeof *nm);
    if (nm == NULL)
        return CAIRN_ERR_NOMEM;
    nm->cfg = *cfg;
    pthread_mutex_init(&nm->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&nm->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = etcd_open(&nm->etcd, cfg->etcd, ETCD_TIMEOUT_MS);
    if (rc == 0)
        rc = meta_open(&nm->meta, nm->etcd, cfg->prefix);
    if (rc == 0)
        rc = start_threads(nm);
    if (rc != 0) {
        nm_free(nm);
        return rc;
    }
    uv_timer_init(loop, &nm->timer);
    nm->timer.data = nm;
    uv_timer_start(&nm->timer, on_poll, POLL_MS, POLL_MS);
    *out = nm;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    nm_free(h->data);
}

void node_meta_stop(node_meta *nm)
{
    if (nm == NULL)
        return;
    uv_timer_stop(&nm->timer);
    pthread_mutex_lock(&nm->mu);
    nm->stop = true;
    pthread_cond_signal(&nm->cv);
    pthread_mutex_unlock(&nm->mu);
    pthread_join(nm->writer, NULL);
    meta_node_keeper_stop(nm->keeper, true);
    uv_close((uv_handle_t *)&nm->timer, timer_closed);
}
