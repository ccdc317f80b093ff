/*
 * observe.c - what the nodes report (controller_int.h): a thread that
 * polls the METRICS of every known node every poll_ms, every node at once
 * (a thread each, at most OBSERVE_THREADS at a time), and publishes the
 * answers as one immutable, reference-counted observation.
 *
 * Polling off the loop keeps a node that does not answer (SIGSTOP, a
 * network partition) from holding every reconciler for an RPC timeout;
 * polling in parallel keeps one such node from delaying the others. Every
 * known node is asked, not only those with a lease: a node whose lease
 * lapsed because etcd is out of its reach may still serve, and says so.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/grow.h"
#include "controller/controller_int.h"

#define OBSERVE_THREADS 16
/* A node that does not answer in time counts as not answering. Short
 * enough that a pass over a cluster with a hung node stays brisk. */
#define OBSERVE_TIMEOUT_MS 2500

struct ctl_observer {
    ctl *c;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    ctl_obs *latest;
};

/* ---- parsing ----------------------------------------------------------- */

static uint64_t num(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(f) && f->valuedouble > 0 ? (uint64_t)f->valuedouble
                                                   : 0;
}

static double real(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(f) ? f->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(f) ? f->valuestring : "";
}

static uint8_t role_of(const char *s)
{
    if (strcmp(s, "leader") == 0)
        return CTL_LEADER;
    if (strcmp(s, "follower") == 0)
        return CTL_FOLLOWER;
    if (strcmp(s, "candidate") == 0)
        return CTL_CANDIDATE;
    return CTL_UNAVAILABLE;
}

static uint8_t member_role(const char *s)
{
    if (strcmp(s, "voter") == 0)
        return CTL_VOTER;
    if (strcmp(s, "standby") == 0)
        return CTL_STANDBY;
    return CTL_SPARE;
}

static void parse_replica(const cJSON *j, uint64_t node_id, ctl_replica *r)
{
    memset(r, 0, sizeof *r);
    r->node = node_id;
    r->range = num(j, "range");
    r->table = num(j, "table");
    r->epoch = num(j, "epoch");
    r->term = num(j, "term");
    r->leader = num(j, "leader");
    r->commit = num(j, "commit_index");
    r->applied = num(j, "applied_index");
    r->last = num(j, "last_index");
    r->bytes = num(j, "range_bytes");
    r->ops = num(j, "ops");
    const char *lk = str(j, "load_key");
    r->load_key = lk && lk[0];
    r->role = role_of(str(j, "role"));
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(j, "followers"), *f;
    cJSON_ArrayForEach(f, fs)
    {
        if (r->n_followers >= RPC_MAX_PEERS + 1)
            break;
        ctl_follower *x = &r->followers[r->n_followers++];
        x->id = num(f, "id");
        x->role = member_role(str(f, "role"));
        x->match = num(f, "match_index");
        x->lag_entries = num(f, "lag_entries");
        x->lag_seconds = real(f, "lag_seconds");
    }
}

static int by_id(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return *x < *y ? -1 : *x > *y;
}

static int by_range(const void *a, const void *b)
{
    const ctl_replica *x = a, *y = b;
    return x->range < y->range ? -1 : x->range > y->range;
}

int ctl_obs_parse_node(const char *json, size_t len, uint64_t node_id,
                       ctl_node_obs *out)
{
    memset(out, 0, sizeof *out);
    out->id = node_id;
    cJSON *j = cJSON_ParseWithLength(json, len);
    const cJSON *ranges = j ? cJSON_GetObjectItemCaseSensitive(j, "ranges")
                            : NULL;
    if (!cJSON_IsArray(ranges)) {
        cJSON_Delete(j);
        return CAIRN_ERR_CORRUPT;
    }
    int n = cJSON_GetArraySize(ranges);
    out->replicas = calloc(n > 0 ? (size_t)n : 1, sizeof *out->replicas);
    if (out->replicas == NULL) {
        cJSON_Delete(j);
        return CAIRN_ERR_NOMEM;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, ranges)
    {
        ctl_replica *x = &out->replicas[out->n];
        parse_replica(r, node_id, x);
        if (x->range == 0)
            continue;
        out->bytes += x->bytes;
        out->n++;
    }
    qsort(out->replicas, out->n, sizeof *out->replicas, by_range);
    const cJSON *bad = cJSON_GetObjectItemCaseSensitive(j, "corrupt");
    int nb = cJSON_IsArray(bad) ? cJSON_GetArraySize(bad) : 0;
    out->corrupt = calloc(nb > 0 ? (size_t)nb : 1, sizeof *out->corrupt);
    if (out->corrupt == NULL) {
        ctl_obs_node_free(out);
        cJSON_Delete(j);
        return CAIRN_ERR_NOMEM;
    }
    cJSON_ArrayForEach(r, bad)
        if ((out->corrupt[out->n_corrupt] = num(r, "range")) != 0)
            out->n_corrupt++;
    qsort(out->corrupt, out->n_corrupt, sizeof *out->corrupt, by_id);
    out->answered = true;
    cJSON_Delete(j);
    return 0;
}

void ctl_obs_node_free(ctl_node_obs *n)
{
    free(n->replicas);
    free(n->corrupt);
    n->replicas = NULL;
    n->corrupt = NULL;
    n->n = n->n_corrupt = 0;
}

/* ---- lookups ----------------------------------------------------------- */

const ctl_node_obs *ctl_obs_node(const ctl_obs *o, uint64_t id)
{
    size_t lo = 0, hi = o ? o->n : 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (o->nodes[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return o && lo < o->n && o->nodes[lo].id == id ? &o->nodes[lo] : NULL;
}

const ctl_replica *ctl_obs_replica(const ctl_node_obs *n, uint64_t range_id)
{
    size_t lo = 0, hi = n ? n->n : 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (n->replicas[mid].range < range_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return n && lo < n->n && n->replicas[lo].range == range_id
               ? &n->replicas[lo]
               : NULL;
}

bool ctl_obs_corrupt(const ctl_node_obs *n, uint64_t range_id)
{
    return n && n->n_corrupt && bsearch(&range_id, n->corrupt, n->n_corrupt,
                        sizeof *n->corrupt, by_id) != NULL;
}

const ctl_replica *ctl_obs_leader(const ctl_obs *o, uint64_t range_id)
{
    return o ? u64map_get(&o->leaders, range_id) : NULL;
}

bool ctl_obs_confirmed(const ctl_obs *o, const ctl_replica *l)
{
    int voters = 1, agree = 1;
    for (int i = 0; i < l->n_followers; i++) {
        const ctl_follower *f = &l->followers[i];
        if (f->role != CTL_VOTER)
            continue;
        voters++;
        const ctl_replica *r = ctl_obs_replica(ctl_obs_node(o, f->id),
                                               l->range);
        agree += r && r->leader == l->node && r->term == l->term;
    }
    return agree >= voters / 2 + 1;
}

static void obs_free(ctl_obs *o)
{
    for (size_t i = 0; i < o->n; i++)
        ctl_obs_node_free(&o->nodes[i]);
    free(o->nodes);
    u64map_free(&o->leaders);
    free(o);
}

void ctl_obs_release(ctl_obs *o)
{
    if (o && atomic_fetch_sub(&o->refs, 1) == 1)
        obs_free(o);
}

ctl_obs *ctl_obs_acquire(ctl *c)
{
    ctl_observer *ob = c->observer;
    if (ob == NULL)
        return NULL;
    pthread_mutex_lock(&ob->mu);
    ctl_obs *o = ob->latest;
    if (o)
        atomic_fetch_add(&o->refs, 1);
    pthread_mutex_unlock(&ob->mu);
    return o;
}

/* ---- polling ----------------------------------------------------------- */

typedef struct poll_job {
    const meta_map *map;
    ctl_obs *o;
    atomic_size_t next;
} poll_job;

static void poll_one(const meta_node *nd, ctl_node_obs *out)
{
    rpc_request req;
    memset(&req, 0, sizeof req);
    req.type = RPC_METRICS;
    req.id = 1;
    req.range_id = RPC_METRICS_POLL; /* sizes may be 30 s old: cheap */
    buf text = BUF_INIT;
    int rc = rpc_sync_status(nd->addr, &req, OBSERVE_TIMEOUT_MS, &text);
    if (rc == 0)
        rc = ctl_obs_parse_node((const char *)text.data, text.len, nd->id,
                                out);
    if (rc != 0) {
        ctl_obs_node_free(out);
        memset(out, 0, sizeof *out);
        out->id = nd->id;
        out->err = rc;
    }
    buf_free(&text);
}

static void *poll_worker(void *arg)
{
    poll_job *j = arg;
    size_t i;
    while ((i = atomic_fetch_add(&j->next, 1)) < j->o->n)
        poll_one(meta_map_node(j->map, j->o->nodes[i].id), &j->o->nodes[i]);
    return NULL;
}

/* The leader of each range: the replica that says it leads, in the
 * highest term (a deposed leader that has not heard yet says so too). */
static void index_leaders(ctl_obs *o)
{
    for (size_t i = 0; i < o->n; i++)
        for (size_t k = 0; k < o->nodes[i].n; k++) {
            ctl_replica *r = &o->nodes[i].replicas[k];
            if (r->role != CTL_LEADER)
                continue;
            const ctl_replica *cur = u64map_get(&o->leaders, r->range);
            if (cur == NULL || cur->term < r->term)
                u64map_put(&o->leaders, r->range, r);
        }
}

static ctl_obs *poll_all(const meta_map *map)
{
    ctl_obs *o = calloc(1, sizeof *o);
    size_t n = meta_map_node_count(map);
    if (o == NULL || (o->nodes = calloc(n ? n : 1, sizeof *o->nodes)) == NULL) {
        free(o);
        return NULL;
    }
    atomic_init(&o->refs, 1);
    o->taken_ms = ctl_now_ms();
    o->n = n;
    for (size_t i = 0; i < n; i++)
        o->nodes[i].id = meta_map_node_at(map, i)->id;
    poll_job j = {.map = map, .o = o};
    atomic_init(&j.next, 0);
    pthread_t th[OBSERVE_THREADS];
    size_t k = 0;
    while (k < n && k < OBSERVE_THREADS &&
           pthread_create(&th[k], NULL, poll_worker, &j) == 0)
        k++;
    poll_worker(&j); /* this thread helps, and does all if none started */
    for (size_t i = 0; i < k; i++)
        pthread_join(th[i], NULL);
    index_leaders(o);
    return o;
}

static bool wait_or_stop(ctl_observer *ob, uint64_t until_ms)
{
    pthread_mutex_lock(&ob->mu);
    while (!ob->stop) {
        uint64_t now = ctl_now_ms();
        if (now >= until_ms)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (until_ms - now) * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&ob->cv, &ob->mu, &ts);
    }
    bool stop = ob->stop;
    pthread_mutex_unlock(&ob->mu);
    return stop;
}

static void *observer_main(void *arg)
{
    ctl_observer *ob = arg;
    ctl *c = ob->c;
    do {
        if (!ctl_active(c))
            continue; /* a standby polls nobody */
        meta_map *map = meta_cache_acquire(c->cache);
        ctl_obs *o = poll_all(map);
        meta_map_release(map);
        if (o == NULL)
            continue;
        pthread_mutex_lock(&ob->mu);
        ctl_obs *old = ob->latest;
        ob->latest = o;
        pthread_mutex_unlock(&ob->mu);
        ctl_obs_release(old);
        ctl_kick(c);
    } while (!wait_or_stop(ob, ctl_now_ms() + (uint64_t)ob->c->cfg.poll_ms));
    return NULL;
}

int ctl_observer_start(ctl *c)
{
    ctl_observer *ob = calloc(1, sizeof *ob);
    if (ob == NULL)
        return CAIRN_ERR_NOMEM;
    ob->c = c;
    pthread_mutex_init(&ob->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ob->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->observer = ob; /* before the thread: it may publish at once */
    if (pthread_create(&ob->thread, NULL, observer_main, ob) != 0) {
        c->observer = NULL;
        pthread_mutex_destroy(&ob->mu);
        pthread_cond_destroy(&ob->cv);
        free(ob);
        return CAIRN_ERR_NOMEM;
    }
    return 0;
}

void ctl_observer_stop(ctl *c)
{
    ctl_observer *ob = c->observer;
    if (ob == NULL)
        return;
    pthread_mutex_lock(&ob->mu);
    ob->stop = true;
    pthread_cond_broadcast(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
    pthread_join(ob->thread, NULL);
    ctl_obs_release(ob->latest);
    pthread_mutex_destroy(&ob->mu);
    pthread_cond_destroy(&ob->cv);
    free(ob);
    c->observer = NULL;
}
