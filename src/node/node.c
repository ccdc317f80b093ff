/*
 * node.c - the node process: start and stop - data directories, the
 * listener, signals, the loop (node.h; the other files: node_int.h).
 */
#include "node_int.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/err.h"
#include "../common/log.h"

/* ---- start and stop --------------------------------------------------- */

static void all_closed(node *n) { uv_stop(&n->loop); }

static void on_signal(uv_signal_t *h, int signum)
{
    node *n = h->data;
    if (n->stopping)
        return;
    n->stopping = true;
    log_info("stopping (signal %d)", signum);
    if (n->http)
        uv_timer_stop(&n->metrics_timer);
    node_meta_stop(n->meta);
    n->meta = NULL;
    uv_close((uv_handle_t *)&n->listener, NULL);
    for (conn *c = n->conns; c; c = c->next)
        node_conn_close(c);
    node_close_replicas(n, all_closed);
}

static int start_listener(node *n)
{
    struct sockaddr_in sa;
    /* Peers and routers dial the advertised address; an unspecified one
     * would send them to themselves. */
    if (strncmp(n->address, "0.0.0.0:", 8) == 0) {
        log_error("--listen %s needs --advertise HOST:PORT: the address "
                  "other machines reach this node at", n->opts->listen);
        return CAIRN_ERR_INVALID;
    }
    char host[256];
    const char *colon = strrchr(n->opts->listen, ':');
    if (colon == NULL || (size_t)(colon - n->opts->listen) >= sizeof host)
        return CAIRN_ERR_INVALID;
    memcpy(host, n->opts->listen, (size_t)(colon - n->opts->listen));
    host[colon - n->opts->listen] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0)
        return CAIRN_ERR_INVALID;
    uv_tcp_init(&n->loop, &n->listener);
    n->listener.data = n;
    int rv = uv_tcp_bind(&n->listener, (struct sockaddr *)&sa, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&n->listener, 512, node_on_connection);
    if (rv != 0) {
        log_error("cannot listen on %s: %s", n->opts->listen, uv_strerror(rv));
        return CAIRN_ERR_IO;
    }
    return 0;
}

static int make_dirs(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return CAIRN_ERR_IO;
    return 0;
}

/* Before the node-wide log (docs/OPERATIONS.md, "Upgrading"), each range
 * kept libraft's own segment files under DIR/raft/<range id>/. Serving
 * such a directory with the new log would forget every range's term, vote
 * and log: refuse, saying why, rather than lose acknowledged writes. */
static bool old_layout(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/raft", dir);
    DIR *d = opendir(path);
    if (d == NULL)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL)
        found = de->d_name[0] >= '0' && de->d_name[0] <= '9';
    closedir(d);
    return found;
}

static void boot_static(node *n)
{
    const node_options *o = n->opts;
    if (o->boot_range == 0 || node_find_range(n, o->boot_range))
        return;
    range_meta m = {0};
    char err[256] = "";
    m.range_id = o->boot_range;
    m.table_id = 1;
    m.engine = o->boot_engine;
    m.epoch = 1;
    m.n_peers = o->boot_n_peers;
    memcpy(m.peers, o->boot_peers, sizeof m.peers);
    int rc = node_create_replica(n, &m, true, err);
    if (rc != 0)
        log_range(LOG_ERROR, o->boot_range, "bootstrap failed: %s %s",
                  cairn_err_message(rc), err);
    range_meta_free(&m);
}

static void start_meta(node *n)
{
    const node_options *o = n->opts;
    node_meta_config c = {.etcd = o->etcd, .prefix = o->etcd_prefix,
                          .node_id = o->id, .address = n->address,
                          .dir = o->dir, .zone = o->zone,
                          .lease_ttl_s = o->lease_ttl_s,
                          .each = node_each_replica, .each_arg = n};
    if (o->etcd && node_meta_start(&n->loop, &c, &n->meta) != 0)
        log_error("bad --etcd or --prefix; running without etcd");
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void node_free(node *n)
{
    node_http_stop(n);
    rep_env_stop(&n->env); /* every replica is closed: the log is idle */
    uv_walk(&n->loop, close_walk, NULL);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    uv_loop_close(&n->loop);
    node_registry_free(n);
    node_disk_close(n);
    seq_clock_free(n->clock);
}

static uint64_t random_nonce(void)
{
    uint64_t v = 0;
    if (uv_random(NULL, NULL, &v, sizeof v, 0, NULL) != 0)
        v = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return v;
}

int node_run(const node_options *opts)
{
    node n;
    memset(&n, 0, sizeof n);
    n.opts = opts;
    n.address = opts->advertise ? opts->advertise : opts->listen;
    if (make_dirs(opts->dir) != 0) {
        log_error("cannot create %s: %s", opts->dir, strerror(errno));
        return 1;
    }
    if (old_layout(opts->dir)) {
        log_error("%s/raft holds per-range Raft logs of an older cairn; this "
                  "version keeps every range's log in %s/raftlog and does "
                  "not convert them. Not starting: see docs/OPERATIONS.md, "
                  "\"Upgrading\"", opts->dir, opts->dir);
        return 1;
    }
    /* A peer or client that goes away must cost a write error, not the
     * process. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&n.loop);
    n.clock = seq_clock_new_offset((uint32_t)opts->id, opts->clock_offset_ms);
    n.env = (rep_env){.loop = &n.loop, .node_id = opts->id,
                      .address = n.address, .dir = opts->dir,
                      .clock = n.clock, .nonce = random_nonce(),
                      .opts = opts->rep, .added = node_range_added,
                      .added_arg = &n};
    char err[256] = "";
    if (node_disk_open(&n) != 0) {
        node_free(&n);
        return 1;
    }
    node_disk_start(&n);
    int rc = rep_env_start(&n.env, err);
    if (rc == CAIRN_ERR_CORRUPT)
        log_error("CORRUPT: %s. The node-wide Raft log holds every range's "
                  "log: not starting. Move %s away and start the node "
                  "empty; the controller rebuilds its replicas from their "
                  "peers (docs/OPERATIONS.md, \"Corrupt data\")", err,
                  opts->dir);
    else if (rc != 0)
        log_error("%s", err);
    if (rc != 0) {
        node_free(&n);
        return 1;
    }
    rc = start_listener(&n);
    if (rc != 0) {
        if (rc == CAIRN_ERR_INVALID && strncmp(n.address, "0.0.0.0:", 8) != 0)
            log_error("cannot listen on %s: not HOST:PORT", opts->listen);
        node_free(&n);
        return 1;
    }
    if (node_http_start(&n) != 0) {
        node_free(&n);
        return 1;
    }
    if (node_open_existing(&n) != 0) {
        log_error("not starting: move %s away and start the node empty; "
                  "the controller rebuilds its replicas from their peers "
                  "(docs/OPERATIONS.md, \"Corrupt data\")", opts->dir);
        node_free(&n);
        return 1;
    }
    boot_static(&n);
    start_meta(&n);
    uv_signal_init(&n.loop, &n.sigint);
    uv_signal_init(&n.loop, &n.sigterm);
    n.sigint.data = n.sigterm.data = &n;
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    if (opts->advertise)
        log_info("listening on %s (advertised as %s), %zu ranges%s",
                 opts->listen, opts->advertise, n.slots.n,
                 rpc_secret_required() ? ", cluster secret required" : "");
    else
        log_info("listening on %s, %zu ranges%s", opts->listen, n.slots.n,
                 rpc_secret_required() ? ", cluster secret required" : "");
    uv_run(&n.loop, UV_RUN_DEFAULT);
    node_free(&n);
    return 0;
}

int node_parse_peers(const char *text, range_peer *peers, unsigned *n)
{
    *n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        unsigned long long id = strtoull(p, &end, 10);
        if (id == 0 || *end != '=' || *n >= RANGE_MAX_PEERS)
            return CAIRN_ERR_INVALID;
        const char *a = end + 1, *comma = strchr(a, ',');
        size_t len = comma ? (size_t)(comma - a) : strlen(a);
        if (len == 0 || len >= sizeof peers[0].addr)
            return CAIRN_ERR_INVALID;
        peers[*n].id = id;
        memcpy(peers[*n].addr, a, len);
        peers[*n].addr[len] = '\0';
        (*n)++;
        p = comma ? comma + 1 : a + len;
    }
    return *n ? 0 : CAIRN_ERR_INVALID;
}
