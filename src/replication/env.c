/*
 * env.c - the node-wide parts of replication: the log, the links, the
 * ticker, and where incoming frames go (env.h).
 */
#include "env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/grow.h"
#include "../common/log.h"
#include "raftio.h"

void rep_options_default(rep_options *o)
{
    o->election_ms = 1000;
    o->heartbeat_ms = 100;
    o->snapshot_threshold = 4096;
    o->snapshot_trailing = 1024;
    o->snapshot_bytes = 16u << 20;
    o->snapshot_cap = 256u << 20;
    o->entry_max = 1u << 20;
    o->quiesce_ticks = 5;
    o->node_heartbeat_ms = 200;
}

/* ---- messages for a range not hosted yet (rep_env_deliver_early) ------ */

#define EARLY_MAX 256
#define EARLY_BYTES (1u << 20)
#define EARLY_MS 2000

typedef struct early_msg {
    uint64_t range, from, at_ms;
    char *addr;
    int kind;
    uint8_t *p;
    size_t len;
} early_msg;

static void early_free(rep_env *env, size_t i)
{
    early_msg *m = &env->early[i];
    env->early_bytes -= m->len;
    free(m->addr);
    free(m->p);
    memmove(m, m + 1, (env->n_early - i - 1) * sizeof *m);
    env->n_early--;
}

/* Drop what is older than EARLY_MS: the oldest come first. */
static void early_expire(rep_env *env)
{
    uint64_t now = uv_now(env->loop);
    while (env->n_early > 0 && now - env->early[0].at_ms > EARLY_MS)
        early_free(env, 0);
}

static void early_keep(rep_env *env, uint64_t from, const char *addr,
                       int kind, uint64_t range, const uint8_t *p, size_t len)
{
    early_expire(env);
    if (env->n_early >= EARLY_MAX || env->early_bytes + len > EARLY_BYTES ||
        grow_array((void **)&env->early, env->n_early, &env->cap_early,
                   sizeof *env->early, 16) != 0)
        return; /* not kept: Raft resends */
    early_msg m = {.range = range, .from = from, .at_ms = uv_now(env->loop),
                   .addr = strdup(addr ? addr : ""), .kind = kind,
                   .p = malloc(len ? len : 1), .len = len};
    if (m.addr == NULL || m.p == NULL) {
        free(m.addr);
        free(m.p);
        return;
    }
    memcpy(m.p, p, len);
    env->early[env->n_early++] = m;
    env->early_bytes += len;
    env->n_early_kept++;
}

void rep_env_deliver_early(rep_env *env, uint64_t range)
{
    early_expire(env);
    rio *r = u64map_get(&env->rios, range);
    for (size_t i = 0; r && i < env->n_early;) {
        early_msg *m = &env->early[i];
        if (m->range != range) {
            i++;
            continue;
        }
        rio_deliver(r, m->from, m->addr, m->kind, m->p, m->len);
        env->n_early_used++;
        early_free(env, i);
        r = u64map_get(&env->rios, range); /* delivery may close it */
    }
}

static void deliver(void *arg, uint64_t from, const char *addr, int kind,
                    uint64_t range, const uint8_t *p, size_t len)
{
    rep_env *env = arg;
    rio *r = u64map_get(&env->rios, range);
    if (r)
        rio_deliver(r, from, addr, kind, p, len);
    else /* not hosted yet (a split applying here), or any more */
        early_keep(env, from, addr, kind, range, p, len);
}

static void peer_event(void *arg, uint64_t id, int event)
{
    rep_env *env = arg;
    size_t it = 0;
    uint64_t range;
    void *v;
    /* Up is also the first contact: debug. Down and restarts are what an
     * operator looks for. */
    log_range(event == NET_PEER_UP ? LOG_DEBUG : LOG_WARN, 0, "node %llu %s",
              (unsigned long long)id,
              event == NET_PEER_UP     ? "is heard from"
              : event == NET_PEER_DOWN ? "is not heard from"
              : event == NET_PEER_GONE ? "refuses connections: it is not "
                                         "running"
                                       : "restarted");
    while (u64map_next(&env->rios, &it, &range, &v))
        rio_peer_event(v, id, event);
}

static void log_durable(void *arg, uint64_t batch)
{
    rio_release_held(arg, batch);
}

int rep_env_start(rep_env *env, char *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/raftlog", env->dir);
    int rc = raftlog_open(env->loop, path, &env->log, err);
    if (rc != 0)
        return rc;
    raftlog_on_durable(env->log, log_durable, env);
    raftlog_set_disk_guard(env->log, env->disk);
    net_options no = {.node_id = env->node_id, .address = env->address,
                      .incarnation = env->nonce,
                      .heartbeat_ms = env->opts.node_heartbeat_ms,
                      .dead_ms = env->opts.election_ms};
    net_callbacks cb = {.deliver = deliver, .peer = peer_event, .arg = env};
    env->net = net_new(env->loop, &no, &cb);
    if (env->net == NULL) {
        raftlog_close(env->log);
        env->log = NULL;
        if (err)
            snprintf(err, 256, "out of memory");
        return CAIRN_ERR_NOMEM;
    }
    uv_timer_init(env->loop, &env->ticker);
    uv_idle_init(env->loop, &env->later_idle);
    env->ticker.data = env->later_idle.data = env;
    env->started = true;
    return 0;
}

void rep_env_stop(rep_env *env)
{
    if (!env->started)
        return;
    env->started = false;
    raftlog_close(env->log);
    env->log = NULL;
    net_close(env->net, NULL, NULL);
    env->net = NULL;
    uv_close((uv_handle_t *)&env->ticker, NULL);
    uv_close((uv_handle_t *)&env->later_idle, NULL);
    u64map_free(&env->rios);
    while (env->n_early > 0)
        early_free(env, env->n_early - 1);
    free(env->early);
    env->early = NULL;
    env->cap_early = 0;
}

void rep_env_accept(rep_env *env, const rpc_hello *hello, uv_tcp_t *tcp,
                    const uint8_t *rest, size_t len)
{
    net_accept(env->net, hello, tcp, rest, len);
}

int rep_env_metrics(rep_env *env, buf *out)
{
    raftlog_stats ls;
    net_stats ns;
    raftlog_get_stats(env->log, &ls);
    net_get_stats(env->net, &ns);
    int rc = buf_appendf(
        out,
        "{\"log_syncs\":%llu,\"log_entries\":%llu,\"log_bytes\":%llu,"
        "\"log_sync_us\":%llu,\"net_frames_out\":%llu,\"net_writes\":%llu,"
        "\"net_bytes_out\":%llu,\"net_frames_in\":%llu,"
        "\"net_dropped\":%llu,\"ranges\":%zu,\"ranges_awake\":%zu,"
        "\"wakes\":%llu,\"sleeps\":%llu,\"early_kept\":%llu,"
        "\"early_used\":%llu,\"peers\":",
        (unsigned long long)ls.batches, (unsigned long long)ls.entries,
        (unsigned long long)ls.bytes, (unsigned long long)ls.sync_us,
        (unsigned long long)ns.frames_out, (unsigned long long)ns.writes,
        (unsigned long long)ns.bytes_out, (unsigned long long)ns.frames_in,
        (unsigned long long)ns.dropped, env->rios.n, env->n_awake,
        (unsigned long long)env->n_wakes, (unsigned long long)env->n_sleeps,
        (unsigned long long)env->n_early_kept,
        (unsigned long long)env->n_early_used);
    if (rc == 0)
        rc = net_peers_json(env->net, out);
    diskguard_stats ds;
    diskguard_get_stats(env->disk, &ds);
    if (rc == 0)
        rc = buf_appendf(out,
                         ",\"disk_full\":%s,\"disk_free\":%llu,"
                         "\"disk_reserve\":%llu,\"disk_times_full\":%llu",
                         ds.full ? "true" : "false",
                         (unsigned long long)ds.free_bytes,
                         (unsigned long long)ds.reserve,
                         (unsigned long long)ds.times_full);
    return rc ? rc : buf_append_str(out, "}");
}
