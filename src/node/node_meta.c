/*
 * node_meta.c - registration and leader records of a node (node_meta.h).
 *
 * Three parts, three threads:
 *  - the keeper (meta_node_keeper, its own thread) keeps P/nodes/<id> and
 *    the lease-backed P/live/<id>;
 *  - a timer on the node's loop looks at each replica's leader every
 *    POLL_MS (replica_leader is a field read) and, when this node has
 *    become leader of a range, reads the term and queues (range, term);
 *  - the writer thread takes the queue and calls meta_leader_set, whose
 *    compare on the term means a late record of an old term can never
 *    hide a newer leader. etcd errors leave the record queued for a retry.
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
#include "../common/grow.h"
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

typedef struct pending {
    uint64_t range_id, term;
} pending;

struct node_meta {
    node_meta_config cfg;
    uv_timer_t timer;
    etcd *etcd;
    meta *meta;
    meta_node_keeper *keeper;

    /* loop thread only */
    tracked *tr;
    size_t n_tr, cap_tr;
    uint64_t gen;

    /* shared with the writer, under mu */
    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pending *q;
    size_t n_q, cap_q;
    bool stop;
};

/* ---- the queue (any thread, under mu) ---------------------------------- */

/* Keep one record per range, the highest term: older ones are moot. */
static void queue_push_locked(node_meta *nm, uint64_t range_id, uint64_t term)
{
    for (size_t i = 0; i < nm->n_q; i++)
        if (nm->q[i].range_id == range_id) {
            if (term > nm->q[i].term)
                nm->q[i].term = term;
            return;
        }
    if (grow_array((void **)&nm->q, nm->n_q, &nm->cap_q, sizeof *nm->q, 16))
        return; /* dropped; the controller's metrics poll is the backstop */
    nm->q[nm->n_q++] = (pending){range_id, term};
}

static void queue_push(node_meta *nm, uint64_t range_id, uint64_t term)
{
    pthread_mutex_lock(&nm->mu);
    queue_push_locked(nm, range_id, term);
    pthread_cond_signal(&nm->cv);
    pthread_mutex_unlock(&nm->mu);
}

/* ---- the writer thread -------------------------------------------------- */

/* Record one leadership. true when done (written, or a newer term is
 * already there), false to retry later (etcd unreachable). */
static bool record_leader(node_meta *nm, const pending *p)
{
    int rc = meta_leader_set(nm->meta, p->range_id, nm->cfg.node_id, p->term);
    if (rc == 0 || rc == CAIRN_ERR_CONDITION)
        return true;
    fprintf(stderr, "cairn node %" PRIu64 ": cannot record leadership of "
            "range %" PRIu64 " (term %" PRIu64 ") yet: %s\n",
            nm->cfg.node_id, p->range_id, p->term, cairn_err_message(rc));
    return false;
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
    pthread_mutex_lock(&nm->mu);
    while (!nm->stop) {
        if (nm->n_q == 0) {
            pthread_cond_wait(&nm->cv, &nm->mu);
            continue;
        }
        pending p = nm->q[--nm->n_q];
        pthread_mutex_unlock(&nm->mu);
        bool done = record_leader(nm, &p);
        pthread_mutex_lock(&nm->mu);
        if (!done) {
            queue_push_locked(nm, p.range_id, p.term);
            wait_retry_locked(nm);
        }
    }
    pthread_mutex_unlock(&nm->mu);
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

/* The tracked entry of a range (binary search; inserted if new). */
static tracked *track(node_meta *nm, uint64_t range_id)
{
    size_t lo = 0, hi = nm->n_tr;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (nm->tr[mid].range_id < range_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < nm->n_tr && nm->tr[lo].range_id == range_id)
        return &nm->tr[lo];
    if (grow_array((void **)&nm->tr, nm->n_tr, &nm->cap_tr, sizeof *nm->tr,
                   64) != 0)
        return NULL;
    memmove(&nm->tr[lo + 1], &nm->tr[lo], (nm->n_tr - lo) * sizeof *nm->tr);
    nm->n_tr++;
    nm->tr[lo] = (tracked){.range_id = range_id};
    return &nm->tr[lo];
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
     * true: the periodic refresh catches its new term. */
    if (leading && (!t->leading || nm->gen % REFRESH_POLLS == 0)) {
        uint64_t term = replica_term(r);
        if (term > t->term) {
            t->term = term;
            queue_push(nm, t->range_id, term);
        }
    }
    t->leading = leading;
}

/* Forget ranges that are no longer hosted (dropped or closed). */
static void prune(node_meta *nm)
{
    size_t k = 0;
    for (size_t i = 0; i < nm->n_tr; i++)
        if (nm->tr[i].gen == nm->gen)
            nm->tr[k++] = nm->tr[i];
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
    free(nm->q);
    free(nm);
}

static int start_threads(node_meta *nm)
{
    const node_meta_config *c = &nm->cfg;
    int rc = meta_node_keeper_start(nm->meta, c->node_id, c->address,
                                    free_bytes(c->dir), LEASE_TTL_S,
                                    &nm->keeper);
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
