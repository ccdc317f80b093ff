/*
 * cache.c - meta_cache (meta.h): the map kept fresh by a watch.
 *
 * Readers never wait for writers: each change is applied to a private
 * clone which then replaces the published snapshot under a short mutex
 * (copy-on-write). Metadata is small, so copying it per change is cheap
 * next to the round trip that brought the change.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/map_internal.h"
#include "meta/meta_internal.h"
#include "meta/schema.h"

struct meta_cache {
    meta *m;
    meta_cache_fn changed;
    void *arg;
    pthread_mutex_t mu; /* guards cur, watch, retired */
    meta_map *cur;
    etcd_watch *watch;
    etcd_watch *retired; /* a watch that ended by compaction */
};

/* Replace the snapshot if `map` is newer; takes the caller's reference. */
static void publish(meta_cache *c, meta_map *map)
{
    pthread_mutex_lock(&c->mu);
    meta_map *old = c->cur;
    bool newer = !old || map->revision > old->revision;
    if (newer)
        c->cur = map;
    pthread_mutex_unlock(&c->mu);
    meta_map_release(newer ? old : map);
    if (newer && c->changed)
        c->changed(c->arg, map->revision);
}

meta_map *meta_cache_acquire(meta_cache *c)
{
    pthread_mutex_lock(&c->mu);
    meta_map *map = c->cur;
    meta_map_retain(map);
    pthread_mutex_unlock(&c->mu);
    return map;
}

/* Apply events newer than the snapshot (a refresh may have published a
 * later revision than the watch has reached: re-applying older events on
 * it would move it backwards). */
static void on_events(meta_cache *c, const etcd_event *evs, size_t n)
{
    meta_map *cur = meta_cache_acquire(c), *next;
    size_t skip = 0;
    while (skip < n && evs[skip].kv.mod_revision <= cur->revision)
        skip++;
    if (skip == n || meta_map_clone(cur, &next) != 0) {
        meta_map_release(cur);
        return; /* out of memory: a later refresh repairs it */
    }
    meta_map_release(cur);
    if (meta_map_apply(next, evs + skip, n - skip) != 0) {
        meta_map_release(next);
        return;
    }
    publish(c, next);
}

static int start_watch(meta_cache *c, int64_t from);

static void on_watch(void *arg, const etcd_watch_msg *msg)
{
    meta_cache *c = arg;
    if (msg->kind == ETCD_WATCH_EVENTS) {
        on_events(c, msg->events, msg->n_events);
    } else if (msg->kind == ETCD_WATCH_COMPACTED) {
        /* History is gone: reload, and watch again from there. This
         * watch's thread ends after this callback; keep it to join. */
        meta_map *map = NULL;
        for (int i = 0; i < 50 && meta_load(c->m, &map) != 0; i++)
            usleep(200 * 1000); /* etcd just compacted: it is there */
        if (!map)
            return; /* gave up after ~10 s: a refresh repairs the map */
        int64_t rev = map->revision;
        publish(c, map);
        pthread_mutex_lock(&c->mu);
        etcd_watch *old = c->retired;
        c->retired = c->watch;
        c->watch = NULL;
        pthread_mutex_unlock(&c->mu);
        etcd_watch_stop(old); /* another, finished thread */
        start_watch(c, rev + 1);
    }
}

static int start_watch(meta_cache *c, int64_t from)
{
    buf key = BUF_INIT;
    uint8_t end[META_PREFIX_MAX + 2];
    etcd_watch *w = NULL;
    int rc = meta_key_all(&key, c->m->prefix);
    size_t end_len = etcd_prefix_end(key.data, key.len, end);
    if (rc == 0)
        rc = etcd_watch_start(c->m->c, key.data, key.len, end, end_len, from,
                              on_watch, c, &w);
    buf_free(&key);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        c->watch = w;
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

int meta_cache_start(meta *m, meta_cache_fn changed, void *arg,
                     meta_cache **out)
{
    meta_cache *c = calloc(1, sizeof *c);
    if (!c)
        return CAIRN_ERR_NOMEM;
    c->m = m;
    c->changed = changed;
    c->arg = arg;
    pthread_mutex_init(&c->mu, NULL);
    int rc = meta_load(m, &c->cur);
    if (rc == 0)
        rc = start_watch(c, c->cur->revision + 1);
    if (rc != 0) {
        meta_map_release(c->cur);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return rc;
    }
    *out = c;
    return CAIRN_OK;
}

int meta_cache_refresh(meta_cache *c)
{
    meta_map *map;
    int rc = meta_load(c->m, &map);
    if (rc == 0)
        publish(c, map);
    return rc;
}

void meta_cache_stop(meta_cache *c)
{
    if (!c)
        return;
    /* The watch callback may swap watches (compaction): take each one
     * out under the lock, then stop it without the lock held. */
    for (;;) {
        pthread_mutex_lock(&c->mu);
        etcd_watch *w = c->watch ? c->watch : c->retired;
        if (w == c->watch)
            c->watch = NULL;
        else
            c->retired = NULL;
        pthread_mutex_unlock(&c->mu);
        if (!w)
            break;
        etcd_watch_stop(w);
    }
    meta_map_release(c->cur);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
