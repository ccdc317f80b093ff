/*
 * controller.c - election, the loop, and the list of reconcilers
 * (controller.h, controller_int.h).
 *
 * The loop thread wakes every interval and whenever the metadata changes
 * (the cache's watch kicks it). While this instance holds the election it
 * runs every reconciler, in order, on the newest snapshot; while it does
 * not, it only waits - a standby keeps no watch and writes nothing.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/prom.h"
#include "common/version.h"
#include "controller/controller_int.h"
#include "controller/status.h"
#include "http/httpd.h"

#define ETCD_TIMEOUT_MS 2000
/* A node's METRICS for the status: shorter than a reconciler's RPC, so
 * that one dead node does not hold the dashboard for long. */
#define STATUS_RPC_TIMEOUT_MS 1500

extern const unsigned char ctl_dashboard_html[];
extern const size_t ctl_dashboard_html_len;

/* Run in this order each pass: health first (node states and lagging
 * replicas, from the newest observation), then leaders, so that create
 * sees the leaders just recorded; repair before balance, which waits while
 * anything is under-replicated. */
static const ctl_reconciler *const reconcilers[] = {
    &ctl_reconcile_health,
    &ctl_reconcile_leaders,
    &ctl_reconcile_create,
    &ctl_reconcile_drop,
    &ctl_reconcile_relocate, /* before split and repair, which leave the
                                ranges of a move alone */
    &ctl_reconcile_split, /* before repair: a split etcd lags is not a
                             membership to adopt */
    &ctl_reconcile_repair,
    &ctl_reconcile_orphans,
    &ctl_reconcile_balance,
};
#define N_RECONCILERS (sizeof reconcilers / sizeof reconcilers[0])
_Static_assert(N_RECONCILERS <= CTL_MAX_RECONCILERS, "too many reconcilers");

/* The public handle is the same object. */
struct controller {
    ctl c;
};

uint64_t ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t ctl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

meta *ctl_meta(ctl *c) { return c->meta; }
const char *ctl_name(ctl *c) { return c->name; }
const ctl_obs *ctl_observed(ctl *c) { return c->obs; }
void ctl_note_unplaced(ctl *c) { c->unplaced++; }
size_t ctl_unplaced(ctl *c) { return c->unplaced; }

const meta_range *ctl_range(ctl *c, uint64_t id)
{
    return u64map_get(&c->ranges, id);
}

void ctl_kick(ctl *c)
{
    pthread_mutex_lock(&c->mu);
    c->kicked = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}
const controller_config *ctl_config(ctl *c) { return &c->cfg; }
bool ctl_active(ctl *c)
{
    return !atomic_load(&c->stopping) && c->election &&
           meta_election_is_leader(c->election);
}

void ctl_log(ctl *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_info("%s", line); /* the name is in every line (id=NAME) */
    status_note(c->status, line);
}

/* ---- the loop ---------------------------------------------------------- */

static void on_change(void *arg, int64_t revision)
{
    ctl_kick(arg);
}

/* Wait for the next pass: the interval, a metadata change, or stop.
 * false when stopping. */
static bool wait_pass(ctl *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)c->cfg.interval_ms * 1000000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&c->mu);
    while (!c->stop && !c->kicked &&
           pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
        ;
    c->kicked = false;
    bool go = !c->stop;
    pthread_mutex_unlock(&c->mu);
    return go;
}

/* The range index of this pass: rebuilt when the map is a new one. */
static void index_ranges(ctl *c, meta_map *map)
{
    if (c->ranges_map == map)
        return;
    u64map_free(&c->ranges);
    for (size_t i = 0; i < meta_map_table_count(map); i++) {
        size_t n = 0;
        const meta_range *rs =
            meta_map_ranges(map, meta_map_table_at(map, i)->id, &n);
        for (size_t k = 0; k < n; k++)
            u64map_put(&c->ranges, rs[k].id, (void *)&rs[k]);
    }
    if (c->ranges_map)
        meta_map_release((meta_map *)c->ranges_map);
    meta_map_retain(map);
    c->ranges_map = map;
}

static void pass(ctl *c)
{
    if (c->cache == NULL) {
        int rc = meta_cache_start(c->meta, on_change, c, &c->cache);
        if (rc != 0) {
            ctl_log(c, "cannot read the metadata: %s", cairn_err_message(rc));
            return;
        }
    }
    if (c->observer == NULL && ctl_observer_start(c) != 0)
        ctl_log(c, "cannot start polling the nodes");
    uint64_t t0 = ctl_now_ms();
    meta_map *map = meta_cache_acquire(c->cache);
    index_ranges(c, map);
    c->map = map;
    c->obs = ctl_obs_acquire(c);
    c->unplaced = 0;
    for (size_t i = 0; i < N_RECONCILERS && ctl_active(c); i++)
        reconcilers[i]->run(c, c->state[i], map);
    ctl_obs_release(c->obs);
    c->obs = NULL;
    c->map = NULL;
    meta_map_release(map);
    prom_hist_observe_ns(&c->pass_seconds, (ctl_now_ms() - t0) * 1000000);
    c->passes++;
}

/* ---- the status thread ---------------------------------------------------- */

static int metrics_page(ctl *c, buf *b)
{
    char lab[256];
    int rc = prom_family(b, "cairn_controller_info", "gauge",
                         "Always 1; the labels say which controller this "
                         "is.");
    if (rc == 0)
        rc = prom_u64(b, "cairn_controller_info",
                      prom_labels(lab, sizeof lab, "name", c->name, "version",
                                  CAIRN_VERSION, NULL),
                      1);
    if (rc == 0)
        rc = prom_family(b, "cairn_controller_active", "gauge",
                         "1 if this instance holds the election.");
    if (rc == 0)
        rc = prom_u64(b, "cairn_controller_active", NULL, ctl_active(c));
    if (rc == 0)
        rc = prom_family(b, "cairn_controller_passes_total", "counter",
                         "Passes of the reconcilers (while active).");
    if (rc == 0)
        rc = prom_u64(b, "cairn_controller_passes_total", NULL, c->passes);
    if (rc == 0)
        rc = prom_family(b, "cairn_controller_pass_duration_seconds",
                         "histogram", "Time one pass of every reconciler "
                                      "took.");
    if (rc == 0)
        rc = prom_hist_write(b, "cairn_controller_pass_duration_seconds",
                             NULL, &c->pass_seconds);
    if (rc == 0)
        rc = status_metrics(c->status, b);
    etcd_stats es;
    etcd_get_stats(c->etcd, &es);
    if (rc == 0)
        rc = etcd_stats_write(b, &es);
    return rc;
}

static void publish_status(ctl *c)
{
    buf b = BUF_INIT;
    if (status_json(c->status, ctl_active(c), &b) == 0)
        httpd_publish(c->http, "/api/status", "application/json", b.data,
                      b.len);
    buf_reset(&b);
    if (metrics_page(c, &b) == 0)
        httpd_publish(c->http, "/metrics", PROM_CONTENT_TYPE, b.data, b.len);
    buf_free(&b);
}

static void *status_main(void *arg)
{
    ctl *c = arg;
    for (;;) {
        status_collect(c->status, c->meta, STATUS_RPC_TIMEOUT_MS);
        publish_status(c);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec +
                      (uint64_t)c->cfg.status_interval_ms * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_mutex_lock(&c->mu);
        while (!c->stop &&
               pthread_cond_timedwait(&c->status_cv, &c->mu, &ts) == 0)
            ;
        bool stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            return NULL;
    }
}

static int start_status(ctl *c)
{
    if (c->cfg.http == NULL)
        return 0;
    char err[256];
    int rc = httpd_start(c->cfg.http, &c->http, err, sizeof err);
    if (rc != 0) {
        log_error("cannot serve --http: %s", err);
        return rc;
    }
    httpd_publish(c->http, "/", "text/html; charset=utf-8",
                  ctl_dashboard_html, ctl_dashboard_html_len);
    publish_status(c); /* an empty document until the first collection */
    if (pthread_create(&c->status_thread, NULL, status_main, c) != 0)
        return CAIRN_ERR_NOMEM;
    c->status_running = true;
    log_info("dashboard on http://%s/ (JSON: /api/status, metrics: "
             "/metrics)", c->cfg.http);
    return 0;
}

static void *loop_main(void *arg)
{
    ctl *c = arg;
    do {
        bool active = ctl_active(c);
        if (active != c->was_active)
            ctl_log(c, active ? "active" : "standby");
        c->was_active = active;
        if (active)
            pass(c);
    } while (wait_pass(c));
    return NULL;
}

/* ---- start and stop ---------------------------------------------------- */

static void ctl_free(ctl *c)
{
    ctl_observer_stop(c);
    ctl_tasks_join(c);
    httpd_stop(c->http);
    status_free(c->status);
    for (size_t i = 0; i < N_RECONCILERS; i++)
        if (reconcilers[i]->fini)
            reconcilers[i]->fini(c->state[i]);
    u64map_free(&c->ranges);
    if (c->ranges_map)
        meta_map_release((meta_map *)c->ranges_map);
    if (c->cache)
        meta_cache_stop(c->cache);
    if (c->meta)
        meta_close(c->meta);
    etcd_close(c->etcd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->tasks.mu);
    pthread_cond_destroy(&c->tasks.cv);
    pthread_cond_destroy(&c->status_cv);
}

static int ctl_init(ctl *c, const controller_config *cfg)
{
    ctl_tasks_init(c);
    c->cfg = *cfg;
    if (c->cfg.lease_ttl_s == 0)
        c->cfg.lease_ttl_s = 5;
    if (c->cfg.interval_ms <= 0)
        c->cfg.interval_ms = 1000;
    if (c->cfg.create_timeout_ms <= 0)
        c->cfg.create_timeout_ms = 60000;
    if (c->cfg.split_bytes == 0)
        c->cfg.split_bytes = 64u << 20;
    if (c->cfg.split_qps == 0)
        c->cfg.split_qps = 2500;
    if (c->cfg.split_qps_seconds <= 0)
        c->cfg.split_qps_seconds = 10;
    if (c->cfg.poll_ms <= 0)
        c->cfg.poll_ms = 2000;
    if (c->cfg.dead_after_s <= 0)
        c->cfg.dead_after_s = 30;
    if (c->cfg.lag_entries == 0)
        c->cfg.lag_entries = 100000;
    if (c->cfg.lag_seconds <= 0)
        c->cfg.lag_seconds = 20;
    if (c->cfg.max_moves <= 0)
        c->cfg.max_moves = 4;
    if (c->cfg.max_relocations <= 0)
        c->cfg.max_relocations = 2;
    if (c->cfg.rebalance_rate == 0)
        c->cfg.rebalance_rate = 30;
    if (c->cfg.transfer_rate == 0)
        c->cfg.transfer_rate = 4;
    if (c->cfg.status_interval_ms <= 0)
        c->cfg.status_interval_ms = 2000;
    prom_hist_init_seconds(&c->pass_seconds, prom_latency_bounds,
                           prom_latency_bounds_n);
    snprintf(c->name, sizeof c->name, "%s", cfg->name ? cfg->name : "?");
    c->cfg.name = c->name;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_cond_init(&c->status_cv, &ca);
    pthread_condattr_destroy(&ca);
    c->status = status_new(c->name);
    if (c->status == NULL)
        return CAIRN_ERR_NOMEM;
    int rc = etcd_open(&c->etcd, cfg->etcd, ETCD_TIMEOUT_MS);
    if (rc == 0)
        rc = meta_open(&c->meta, c->etcd, cfg->prefix);
    for (size_t i = 0; rc == 0 && i < N_RECONCILERS; i++)
        if (reconcilers[i]->init &&
            (c->state[i] = reconcilers[i]->init(c)) == NULL)
            rc = CAIRN_ERR_NOMEM;
    return rc;
}

static void stop_status(ctl *c)
{
    if (!c->status_running)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->status_cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->status_thread, NULL);
    c->status_running = false;
}

int controller_start(const controller_config *cfg, controller **out)
{
    controller *h = calloc(1, sizeof *h);
    if (h == NULL)
        return CAIRN_ERR_NOMEM;
    ctl *c = &h->c;
    int rc = ctl_init(c, cfg);
    if (rc == 0)
        rc = meta_election_start(c->meta, c->name, c->cfg.lease_ttl_s,
                                 &c->election);
    if (rc == 0 && (rc = start_status(c)) != 0)
        meta_election_stop(c->election);
    if (rc == 0 && pthread_create(&c->thread, NULL, loop_main, c) != 0) {
        meta_election_stop(c->election);
        c->election = NULL;
        rc = CAIRN_ERR_NOMEM;
    }
    if (rc != 0) {
        stop_status(c);
        ctl_free(c);
        free(h);
        return rc;
    }
    *out = h;
    return 0;
}

bool controller_is_active(controller *h)
{
    return ctl_active(&h->c);
}

void controller_stop(controller *h)
{
    if (h == NULL)
        return;
    ctl *c = &h->c;
    atomic_store(&c->stopping, true);
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    ctl_observer_stop(c);
    ctl_tasks_join(c); /* before the election goes: tasks ask it */
    stop_status(c);
    meta_election_stop(c->election);
    c->election = NULL;
    ctl_free(c);
    free(h);
}
