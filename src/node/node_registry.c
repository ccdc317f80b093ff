/*
 * node_registry.c - the replica registry of a node: which ranges it hosts,
 * their index stores, creating, reopening and dropping replicas
 * (node_int.h).
 */
#include "node_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/err.h"
#include "../common/log.h"

slot *node_find_slot(node *n, uint64_t range_id)
{
    return u64map_get(&n->slots, range_id);
}

replica *node_find_range(node *n, uint64_t range_id)
{
    slot *s = node_find_slot(n, range_id);
    return s && !s->dropping ? s->r : NULL;
}

static int add_range(node *n, uint64_t range_id, replica *r)
{
    slot *s = calloc(1, sizeof *s);
    if (s == NULL)
        return CAIRN_ERR_NOMEM;
    s->range_id = range_id;
    s->r = r;
    if (u64map_put(&n->slots, range_id, s) != 0) {
        free(s);
        return CAIRN_ERR_NOMEM;
    }
    return 0;
}

static void remove_range(node *n, uint64_t range_id)
{
    free(u64map_del(&n->slots, range_id));
}

static int get_engine(node *n, engine_kind kind, engine **out)
{
    if (kind != ENGINE_BTREE && kind != ENGINE_LSM)
        return CAIRN_ERR_INVALID;
    if (n->engines[kind] == NULL) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", n->opts->dir,
                 kind == ENGINE_BTREE ? "lmdb" : "rocks");
        engine_options eo = {.disk = n->disk};
        int rc = engine_open(kind, path, &eo, &n->engines[kind]);
        if (rc != 0)
            return rc;
        n->env.batchers[kind] = entry_batcher_new(n->engines[kind]);
        if (n->env.batchers[kind] == NULL)
            return CAIRN_ERR_NOMEM; /* the engine stays open for a retry */
    }
    *out = n->engines[kind];
    return 0;
}

/* Whether range `m` may be created now: 0, or why not (errs filled). A
 * range given twice in one batch is created once; the later one is
 * EXISTS, as it would be if sent again. */
static int create_check(node *n, const range_meta *m, u64map *batch,
                        char *err)
{
    slot *s = node_find_slot(n, m->range_id);
    if (s && s->dropping) {
        snprintf(err, 256, "range %" PRIu64 " is being dropped",
                 m->range_id);
        return CAIRN_ERR_TRYAGAIN;
    }
    if (s || u64map_get(batch, m->range_id))
        return CAIRN_ERR_EXISTS;
    if (m->engine != ENGINE_BTREE && m->engine != ENGINE_LSM) {
        snprintf(err, 256, "range %" PRIu64 ": unknown engine %d",
                 m->range_id, (int)m->engine);
        return CAIRN_ERR_INVALID;
    }
    return u64map_put(batch, m->range_id, (void *)m);
}

/* Make the metas of ms[i] (statuses[i] == 0, engine `kind`) durable in
 * that index store: one batch, one write, one sync for all of them, so
 * that a node creating a thousand replicas syncs once, not a thousand
 * times. A failure fails each of them. */
static void create_metas(node *n, engine_kind kind, const range_meta *ms,
                         size_t count, bool boot, int *statuses,
                         char (*errs)[256])
{
    engine *e = NULL;
    engine_batch *b = NULL;
    buf blob = BUF_INIT;
    size_t todo = 0;
    for (size_t i = 0; i < count; i++)
        todo += statuses[i] == 0 && ms[i].engine == kind;
    if (todo == 0)
        return;
    int rc = get_engine(n, kind, &e);
    if (rc == 0 && (b = engine_batch_new()) == NULL)
        rc = CAIRN_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        if (statuses[i] != 0 || ms[i].engine != kind)
            continue;
        buf_reset(&blob);
        range_meta m = ms[i]; /* shallow: only encoded */
        m.flags = boot ? RANGE_META_BOOTSTRAP : 0;
        rc = range_meta_encode(&m, &blob);
        if (rc == 0)
            rc = engine_batch_set_meta(b, ms[i].range_id, blob.data,
                                       blob.len);
    }
    if (rc == 0)
        rc = engine_write(e, b);
    if (rc == 0)
        rc = engine_sync(e);
    if (b)
        engine_batch_free(b);
    buf_free(&blob);
    for (size_t i = 0; rc != 0 && i < count; i++)
        if (statuses[i] == 0 && ms[i].engine == kind) {
            statuses[i] = rc;
            snprintf(errs[i], 256, "range %" PRIu64 ": cannot store its "
                     "meta in the %s index store", ms[i].range_id,
                     engine_kind_name(kind));
        }
}

int node_create_replicas(node *n, const range_meta *ms, size_t count,
                         bool boot, int *statuses, char (*errs)[256])
{
    u64map batch = U64MAP_INIT;
    for (size_t i = 0; i < count; i++) {
        errs[i][0] = '\0';
        statuses[i] = create_check(n, &ms[i], &batch, errs[i]);
    }
    u64map_free(&batch);
    create_metas(n, ENGINE_BTREE, ms, count, boot, statuses, errs);
    create_metas(n, ENGINE_LSM, ms, count, boot, statuses, errs);
    for (size_t i = 0; i < count; i++) {
        replica *r = NULL;
        if (statuses[i] != 0)
            continue;
        engine *e = n->engines[ms[i].engine];
        int rc = replica_open(&n->env, e, &ms[i], boot, &r, errs[i]);
        if (rc == 0 && (rc = add_range(n, ms[i].range_id, r)) != 0)
            replica_close(r, NULL, NULL);
        statuses[i] = rc;
    }
    return 0;
}

int node_create_replica(node *n, const range_meta *m, bool boot, char *err)
{
    int status = 0;
    char errs[1][256];
    int rc = node_create_replicas(n, m, 1, boot, &status, errs);
    if (errs[0][0])
        memcpy(err, errs[0], sizeof errs[0]);
    return rc ? rc : status;
}

/* Reopen every replica an index store holds. A range whose log cannot be
 * loaded stays closed, with the reason on stderr; the others start. */
static void load_replicas(node *n, engine *e)
{
    uint64_t *ids = NULL;
    size_t count = 0;
    if (engine_list_ranges(e, &ids, &count) != 0)
        return;
    for (size_t i = 0; i < count; i++) {
        buf blob = BUF_INIT;
        range_meta m = {0};
        char err[256] = "";
        replica *r;
        m.range_id = ids[i];
        int rc = engine_get_meta(e, NULL, ids[i], &blob);
        if (rc == 0)
            rc = range_meta_decode(blob.data, blob.len, &m);
        /* A replica created to bootstrap its group (a create, a split)
         * bootstraps again if its log lost its first batch (a crash): with
         * no Raft state it never voted nor acknowledged, and its group's
         * first entry is the same on every replica. With state, the
         * bootstrap is a no-op. */
        if (rc == 0)
            rc = replica_open(&n->env, e, &m,
                              (m.flags & RANGE_META_BOOTSTRAP) != 0, &r,
                              err);
        if (rc == 0)
            rc = add_range(n, ids[i], r);
        if (rc != 0)
            log_range(LOG_ERROR, ids[i], "range %" PRIu64 " not started: %s %s",
                      ids[i], cairn_err_message(rc), err);
        range_meta_free(&m);
        buf_free(&blob);
    }
    free(ids);
}

/* Log records of a range no index store holds: a drop that deleted the
 * store's data (first, durably) and crashed before the log's turn. The
 * replica no longer exists; its log goes too. (The other way round - a
 * range in a store with no log record - is a create that crashed before
 * its first log batch, which acknowledged nothing: it reopens as a replica
 * that has not joined yet, and its leader catches it up.) */
static void drop_orphan_logs(node *n)
{
    uint64_t *ids = NULL;
    size_t count = 0;
    if (raftlog_list_ranges(n->env.log, &ids, &count) != 0)
        return;
    for (size_t i = 0; i < count; i++) {
        if (node_find_slot(n, ids[i]))
            continue;
        bool stored = false;
        for (int k = 0; k < 3 && !stored; k++) {
            buf blob = BUF_INIT;
            stored = n->engines[k] &&
                     engine_get_meta(n->engines[k], NULL, ids[i], &blob) == 0;
            buf_free(&blob);
        }
        if (stored)
            continue; /* it failed to open: keep its log for a look */
        log_range(LOG_WARN, ids[i], "range %" PRIu64 " has a Raft log but no "
                  "data (an interrupted drop): log deleted", ids[i]);
        raftlog_drop(n->env.log, ids[i]);
    }
    free(ids);
}

void node_open_existing(node *n)
{
    static const engine_kind kinds[] = {ENGINE_BTREE, ENGINE_LSM};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        struct stat st;
        engine *e;
        snprintf(path, sizeof path, "%s/%s", n->opts->dir,
                 kinds[i] == ENGINE_BTREE ? "lmdb" : "rocks");
        if (stat(path, &st) == 0 && get_engine(n, kinds[i], &e) == 0)
            load_replicas(n, e);
    }
    drop_orphan_logs(n);
}

/* A split made range `m` here (env.h `added`): host it. Its meta and data
 * are in the store already, written by the split. */
void node_range_added(void *arg, engine *eng, const range_meta *m)
{
    node *n = arg;
    replica *r = NULL;
    char err[256] = "";
    if (node_find_slot(n, m->range_id))
        return; /* replayed: already open */
    int rc = replica_open(&n->env, eng, m, true, &r, err);
    if (rc == 0 && (rc = add_range(n, m->range_id, r)) != 0)
        replica_close(r, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "cairn node: range %" PRIu64 " made by a split did "
                "not start: %s %s\n", m->range_id, cairn_err_message(rc),
                err);
}

int node_when_durable(node *n, void (*cb)(void *arg, int status), void *arg)
{
    return raftlog_when_durable(n->env.log, cb, arg);
}

/* ---- drop ------------------------------------------------------------- */

typedef struct drop_job {
    node *n;
    uint64_t range_id;
    engine *eng;
    void (*cb)(void *arg, int status);
    void *arg;
} drop_job;

static void replica_closed(void *arg);

/* The log is gone too (durably, or failed): forget the range. */
static void drop_logged(void *arg, int status)
{
    drop_job *j = arg;
    node *n = j->n;
    remove_range(n, j->range_id);
    if (n->stopping) /* node_close_replicas counted it */
        replica_closed(n);
    j->cb(j->arg, status);
    free(j);
}

/* The replica is closed: delete it for good - its index-store data first
 * (one atomic engine operation, made durable), then its log records (one
 * batch). A crash in between leaves a log without data, which the next
 * start deletes (drop_orphan_logs); never data without its log. */
static void dropped(void *arg)
{
    drop_job *j = arg;
    int rc = engine_drop_range(j->eng, j->range_id);
    if (rc == 0)
        rc = engine_sync(j->eng);
    /* fault injection for the test of the interrupted drop */
    const char *crash = getenv("CAIRN_TEST_CRASH");
    if (rc == 0 && crash && strcmp(crash, "drop-after-data") == 0)
        abort();
    if (rc == 0)
        rc = raftlog_drop(j->n->env.log, j->range_id);
    if (rc == 0)
        rc = raftlog_when_durable(j->n->env.log, drop_logged, j);
    if (rc != 0)
        drop_logged(j, rc);
}

int node_drop_replica(node *n, uint64_t range_id,
                      void (*cb)(void *arg, int status), void *arg)
{
    slot *s = node_find_slot(n, range_id);
    if (s == NULL)
        return CAIRN_ERR_RANGE_NOT_FOUND;
    if (s->dropping) /* not gone yet: "not found" would be premature */
        return CAIRN_ERR_TRYAGAIN;
    drop_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return CAIRN_ERR_NOMEM;
    *j = (drop_job){n, range_id, replica_engine(s->r), cb, arg};
    s->dropping = true;
    replica_close(s->r, dropped, j);
    return 0;
}

/* ---- the whole registry ----------------------------------------------- */

static void replica_closed(void *arg)
{
    node *n = arg;
    if (--n->closing_replicas == 0 && n->all_closed)
        n->all_closed(n);
}

void node_close_replicas(node *n, void (*cb)(node *n))
{
    size_t it = 0;
    uint64_t id;
    void *v;
    n->all_closed = cb;
    /* a replica being dropped is already closing: dropped() counts it */
    n->closing_replicas = (int)n->slots.n;
    if (n->closing_replicas == 0) {
        cb(n);
        return;
    }
    while (u64map_next(&n->slots, &it, &id, &v)) {
        slot *s = v;
        if (!s->dropping)
            replica_close(s->r, replica_closed, n);
    }
}

void node_each_replica(void *arg, node_meta_visit fn, void *varg)
{
    node *n = arg;
    size_t it = 0;
    uint64_t id;
    void *v;
    while (u64map_next(&n->slots, &it, &id, &v)) {
        slot *s = v;
        if (!s->dropping)
            fn(varg, s->r);
    }
}

void node_registry_free(node *n)
{
    size_t it = 0;
    uint64_t id;
    void *v;
    while (u64map_next(&n->slots, &it, &id, &v))
        free(v);
    u64map_free(&n->slots);
    for (int k = 0; k < 3; k++) {
        entry_batcher_free(n->env.batchers[k]); /* replicas flushed them */
        n->env.batchers[k] = NULL;
        if (n->engines[k])
            engine_close(n->engines[k]);
        n->engines[k] = NULL;
    }
}
