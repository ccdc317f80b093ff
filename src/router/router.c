/*
 * router.c - the router's lifecycle: metadata connection, loop, stop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "router/router_int.h"

#define DEFAULT_DEADLINE_MS 5000
#define DEFAULT_ETCD_TIMEOUT_MS 2000

/* Called on the meta cache's watch thread: only wake the loop. */
static void on_meta_changed(void *arg, int64_t revision)
{
    struct router *r = arg;
    r->meta_dirty = 1;
    uv_async_send(&r->wake);
}

/* The watch thread may wake the loop until the meta cache is stopped, and
 * worker jobs use the cache: stop it when both are done with it. */
static void stop_meta(struct router *r)
{
    meta_cache_stop(r->mcache);
    r->mcache = NULL;
    uv_close((uv_handle_t *)&r->wake, NULL);
}

void router_job_done(struct router *r)
{
    r->njobs--;
    if (r->stopping && r->njobs == 0)
        stop_meta(r);
}

static void begin_stop(struct router *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    router_server_stop(r);
    router_op_free_all(r);
    router_pool_close_all(r);
    router_metrics_stop(r);
    uv_timer_stop(&r->ticker);
    uv_close((uv_handle_t *)&r->ticker, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    if (r->njobs == 0)
        stop_meta(r);
}

static void on_wake(uv_async_t *a)
{
    struct router *r = a->data;
    if (r->stop_requested) {
        begin_stop(r);
        return;
    }
    if (r->meta_dirty) {
        r->meta_dirty = 0;
        router_view_update(r);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    begin_stop(s->data);
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    if (src == NULL || strlen(src) >= cap)
        return CAIRN_ERR_INVALID;
    strcpy(dst, src);
    return 0;
}

/* Load the metadata and start its watch, retrying while etcd comes up. */
static int start_meta(struct router *r)
{
    int rc = etcd_open(&r->etcd, r->etcd_urls, r->cfg.etcd_timeout_ms);
    if (rc == 0)
        rc = meta_open(&r->meta, r->etcd, r->prefix);
    if (rc != 0)
        return rc;
    uv_update_time(&r->loop);
    uint64_t until = uv_now(&r->loop) + 2 * (uint64_t)r->cfg.deadline_ms;
    for (;;) {
        rc = meta_cache_start(r->meta, on_meta_changed, r, &r->mcache);
        uv_update_time(&r->loop);
        if (rc == 0 || uv_now(&r->loop) >= until)
            return rc;
        uv_sleep(200);
    }
}

int router_new(router **out, const router_config *cfg)
{
    struct router *r = calloc(1, sizeof *r);
    if (r == NULL)
        return CAIRN_ERR_NOMEM;
    r->cfg = *cfg;
    if (r->cfg.deadline_ms <= 0)
        r->cfg.deadline_ms = DEFAULT_DEADLINE_MS;
    if (r->cfg.etcd_timeout_ms <= 0)
        r->cfg.etcd_timeout_ms = DEFAULT_ETCD_TIMEOUT_MS;
    int rc = copy_str(r->host, sizeof r->host, cfg->host ? cfg->host
                                                         : "127.0.0.1");
    if (rc == 0)
        rc = copy_str(r->prefix, sizeof r->prefix,
                      cfg->prefix ? cfg->prefix : META_PREFIX_DEFAULT);
    if (rc == 0)
        rc = copy_str(r->etcd_urls, sizeof r->etcd_urls, cfg->etcd);
    if (rc != 0 || uv_loop_init(&r->loop) != 0) {
        free(r);
        return rc ? rc : CAIRN_ERR_IO;
    }
    uv_async_init(&r->loop, &r->wake, on_wake);
    r->wake.data = r;
    uv_timer_init(&r->loop, &r->ticker);
    r->ticker.data = r;
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    uv_tcp_init(&r->loop, &r->listener);
    r->listener.data = r;
    r->sigint.data = r->sigterm.data = r;
    r->cache = router_cache_new(0);
    rc = r->cache ? start_meta(r) : CAIRN_ERR_NOMEM;
    if (rc == 0) {
        router_view_update(r);
        rc = router_server_start(r);
    }
    if (rc == 0)
        rc = router_metrics_start(r);
    if (rc != 0) {
        begin_stop(r);
        router_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int router_run(router *r)
{
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return 0;
}

void router_stop(router *r)
{
    r->stop_requested = 1;
    uv_async_send(&r->wake);
}

int router_port(const router *r)
{
    return r->port;
}

void router_free(router *r)
{
    if (r == NULL)
        return;
    begin_stop(r);
    uv_run(&r->loop, UV_RUN_DEFAULT); /* let closes and workers finish */
    httpd_stop(r->http);
    meta_close(r->meta);
    etcd_close(r->etcd);
    router_cache_free(r->cache);
    uv_loop_close(&r->loop);
    free(r);
}
