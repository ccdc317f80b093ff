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
#include "controller/controller_int.h"

#define ETCD_TIMEOUT_MS 2000

/* Run in this order each pass: leaders first, so that the create
 * reconciler sees the leaders the health poll just recorded. */
static const ctl_reconciler *const reconcilers[] = {
    &ctl_reconcile_leaders,
    &ctl_reconcile_create,
    &ctl_reconcile_drop,
};
#define N_RECONCILERS (sizeof reconcilers / sizeof reconcilers[0])

struct ctl {
    controller_config cfg;
    char name[128];
    etcd *etcd;
    meta *meta;
    meta_election *election;
    meta_cache *cache; /* started when first active */
    void *state[N_RECONCILERS];
    bool was_active;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kicked;
};

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

meta *ctl_meta(ctl *c) { return c->meta; }
const controller_config *ctl_config(ctl *c) { return &c->cfg; }
bool ctl_active(ctl *c) { return meta_election_is_leader(c->election); }

void ctl_log(ctl *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cairn controller %s: %s\n", c->name, line);
}

/* ---- the loop ---------------------------------------------------------- */

static void on_change(void *arg, int64_t revision)
{
    ctl *c = arg;
    pthread_mutex_lock(&c->mu);
    c->kicked = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
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

static void pass(ctl *c)
{
    if (c->cache == NULL) {
        int rc = meta_cache_start(c->meta, on_change, c, &c->cache);
        if (rc != 0) {
            ctl_log(c, "cannot read the metadata: %s", cairn_err_message(rc));
            return;
        }
    }
    meta_map *map = meta_cache_acquire(c->cache);
    for (size_t i = 0; i < N_RECONCILERS && ctl_active(c); i++)
        reconcilers[i]->run(c, c->state[i], map);
    meta_map_release(map);
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
    for (size_t i = 0; i < N_RECONCILERS; i++)
        if (reconcilers[i]->fini)
            reconcilers[i]->fini(c->state[i]);
    if (c->cache)
        meta_cache_stop(c->cache);
    if (c->meta)
        meta_close(c->meta);
    etcd_close(c->etcd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static int ctl_init(ctl *c, const controller_config *cfg)
{
    c->cfg = *cfg;
    if (c->cfg.lease_ttl_s == 0)
        c->cfg.lease_ttl_s = 5;
    if (c->cfg.interval_ms <= 0)
        c->cfg.interval_ms = 1000;
    if (c->cfg.create_timeout_ms <= 0)
        c->cfg.create_timeout_ms = 60000;
    snprintf(c->name, sizeof c->name, "%s", cfg->name ? cfg->name : "?");
    c->cfg.name = c->name;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = etcd_open(&c->etcd, cfg->etcd, ETCD_TIMEOUT_MS);
    if (rc == 0)
        rc = meta_open(&c->meta, c->etcd, cfg->prefix);
    for (size_t i = 0; rc == 0 && i < N_RECONCILERS; i++)
        if (reconcilers[i]->init &&
            (c->state[i] = reconcilers[i]->init(c)) == NULL)
            rc = CAIRN_ERR_NOMEM;
    return rc;
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
    if (rc == 0 && pthread_create(&c->thread, NULL, loop_main, c) != 0) {
        meta_election_stop(c->election);
        rc = CAIRN_ERR_NOMEM;
    }
    if (rc != 0) {
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
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    meta_election_stop(c->election);
    ctl_free(c);
    free(h);
}
