/*
 * metrics.c - the router's /metrics page (`cairn router --http HOST:PORT`;
 * router_int.h).
 *
 * The loop counts as it goes (a few array increments per request, no
 * lock: only the loop writes them) and, once a second, writes the whole
 * page and publishes it to the HTTP server's thread (http/httpd.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/version.h"
#include "meta/etcd.h"
#include "router/router_int.h"

#define PUBLISH_MS 1000

/* Result index -> label: "OK", every cairn code word (position k of the
 * error list for code -k), then the words only the router answers. */
static const char *const extra_words[] = {"ERR", "WRONGPASS", "NOPROTO",
                                          "OTHER"};

static const char *result_name(size_t i)
{
    if (i < CAIRN_ERR_COUNT_)
        return cairn_err_word(-(int)i);
    return extra_words[i - CAIRN_ERR_COUNT_];
}

/* The result of a reply: 0 unless it is an error, else its code word's
 * index (OTHER for a word not in the list). */
static size_t result_of(const buf *out)
{
    if (out->len == 0 || out->data[0] != '-')
        return 0;
    size_t n = 1;
    while (n < out->len && n < 40 && out->data[n] != ' ' &&
           out->data[n] != '\r')
        n++;
    const char *w = (const char *)out->data + 1;
    size_t wl = n - 1;
    for (size_t i = 1; i < ROUTER_RESULTS - 1; i++) {
        const char *name = result_name(i);
        if (strlen(name) == wl && strncmp(name, w, wl) == 0)
            return i;
    }
    return ROUTER_RESULTS - 1;
}

void router_metrics_request(struct router *r, struct rreq *q)
{
    if (q->mkind == 0)
        return;
    size_t k = (size_t)(q->mkind - 1);
    q->mkind = 0; /* once */
    r->requests[k][result_of(&q->out)]++;
    prom_hist_observe_ns(&r->latency[k], uv_hrtime() - q->start_ns);
}

void router_metrics_retry(struct router *r, int err)
{
    int i = -err;
    if (i > 0 && i < CAIRN_ERR_COUNT_)
        r->retries_by[i]++;
}

static int counter(buf *b, const char *name, const char *help, uint64_t v)
{
    int rc = prom_family(b, name, "counter", help);
    return rc ? rc : prom_u64(b, name, NULL, v);
}

static int gauge(buf *b, const char *name, const char *help, uint64_t v)
{
    int rc = prom_family(b, name, "gauge", help);
    return rc ? rc : prom_u64(b, name, NULL, v);
}

/* etcd's round trips, shared by every process that has a client. */
static int etcd_page(buf *b, const etcd *c)
{
    etcd_stats s;
    etcd_get_stats(c, &s);
    return etcd_stats_write(b, &s);
}

int router_metrics_page(struct router *r, buf *b)
{
    char lab[256], port[16];
    snprintf(port, sizeof port, "%d", r->port);
    int rc = prom_family(b, "cairn_router_info", "gauge",
                         "Always 1; the labels say which router this is.");
    if (rc == 0)
        rc = prom_u64(b, "cairn_router_info",
                      prom_labels(lab, sizeof lab, "host", r->host, "port",
                                  port, "version", CAIRN_VERSION, NULL),
                      1);
    if (rc == 0)
        rc = prom_family(b, "cairn_router_requests_total", "counter",
                         "Client commands answered, by command and result "
                         "(OK or the error's code word).");
    for (size_t k = 0; rc == 0 && k <= RCMD_COUNT_; k++)
        for (size_t i = 0; rc == 0 && i < ROUTER_RESULTS; i++)
            if (r->requests[k][i])
                rc = prom_u64(
                    b, "cairn_router_requests_total",
                    prom_labels(lab, sizeof lab, "command",
                                k < RCMD_COUNT_
                                    ? router_cmd_kind_name((router_cmd_kind)k)
                                    : "unknown",
                                "result", result_name(i), NULL),
                    r->requests[k][i]);
    if (rc == 0)
        rc = prom_family(b, "cairn_router_request_duration_seconds",
                         "histogram",
                         "Time from a command's arrival to its complete "
                         "reply, by command.");
    for (size_t k = 0; rc == 0 && k <= RCMD_COUNT_; k++) {
        uint64_t n = 0;
        for (size_t i = 0; i <= r->latency[k].n; i++)
            n += r->latency[k].counts[i];
        if (n)
            rc = prom_hist_write(
                b, "cairn_router_request_duration_seconds",
                prom_labels(lab, sizeof lab, "command",
                            k < RCMD_COUNT_
                                ? router_cmd_kind_name((router_cmd_kind)k)
                                : "unknown",
                            NULL),
                &r->latency[k]);
    }
    if (rc == 0)
        rc = prom_family(b, "cairn_router_retries_total", "counter",
                         "Node requests retried, by the reason of the "
                         "failed attempt.");
    for (int i = 1; rc == 0 && i < CAIRN_ERR_COUNT_; i++)
        if (r->retries_by[i])
            rc = prom_u64(b, "cairn_router_retries_total",
                          prom_labels(lab, sizeof lab, "reason",
                                      cairn_err_word(-i), NULL),
                          r->retries_by[i]);
    if (rc == 0)
        rc = counter(b, "cairn_router_refreshes_total",
                     "Metadata re-reads asked for (a rejection or a miss).",
                     r->stat_refreshes);
    if (rc == 0)
        rc = counter(b, "cairn_router_refresh_errors_total",
                     "Metadata re-reads that failed.",
                     r->stat_refresh_errors);
    if (rc == 0)
        rc = counter(b, "cairn_router_write_timeouts_total",
                     "Requests answered TIMEOUT: sent, outcome unknown.",
                     r->stat_timeouts);
    if (rc == 0)
        rc = counter(b, "cairn_router_connections_total",
                     "Client connections accepted.", r->stat_connections);
    if (rc == 0)
        rc = counter(b, "cairn_router_auth_failures_total",
                     "AUTH (or HELLO AUTH) with a wrong password.",
                     r->stat_auth_failures);
    if (rc == 0)
        rc = gauge(b, "cairn_router_clients", "Client connections open.",
                   r->nclients);
    size_t nconns = 0;
    for (struct nconn *c = r->conns; c; c = c->next)
        nconns++;
    if (rc == 0)
        rc = gauge(b, "cairn_router_node_connections",
                   "Connections open to nodes.", nconns);
    if (rc == 0)
        rc = gauge(b, "cairn_router_ops_in_flight",
                   "Node requests in flight or waiting to retry.", r->nops);
    if (rc == 0)
        rc = gauge(b, "cairn_router_tables", "Tables in the routing view.",
                   router_cache_table_count(r->cache));
    if (rc == 0)
        rc = prom_family(b, "cairn_router_meta_revision", "gauge",
                         "etcd revision of the routing view.");
    if (rc == 0)
        rc = prom_double(b, "cairn_router_meta_revision", NULL,
                         (double)router_cache_revision(r->cache));
    if (rc == 0 && r->etcd)
        rc = etcd_page(b, r->etcd);
    return rc;
}

static void publish(uv_timer_t *t)
{
    struct router *r = t->data;
    buf b = BUF_INIT;
    if (router_metrics_page(r, &b) == 0)
        httpd_publish(r->http, "/metrics", PROM_CONTENT_TYPE, b.data, b.len);
    buf_free(&b);
}

int router_metrics_start(struct router *r)
{
    for (size_t k = 0; k <= RCMD_COUNT_; k++)
        prom_hist_init_seconds(&r->latency[k], prom_latency_bounds,
                               prom_latency_bounds_n);
    if (r->cfg.http == NULL)
        return 0;
    char err[256];
    int rc = httpd_start(r->cfg.http, &r->http, err, sizeof err);
    if (rc != 0) {
        log_error("cannot serve --http: %s", err);
        return rc;
    }
    uv_timer_init(&r->loop, &r->metrics_timer);
    r->metrics_timer.data = r;
    uv_timer_start(&r->metrics_timer, publish, 0, PUBLISH_MS);
    log_info("metrics on http://%s/metrics", r->cfg.http);
    return 0;
}

void router_metrics_stop(struct router *r)
{
    if (r->http == NULL)
        return;
    uv_timer_stop(&r->metrics_timer);
    uv_close((uv_handle_t *)&r->metrics_timer, NULL);
}
