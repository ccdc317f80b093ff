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
    return s && !s->dropping && !s->corrupt ? s->r : NULL;
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
    if (s && s->corrupt) {
        snprintf(err, 256, "range %" PRIu64 " is here but corrupt (%s): "
                 "drop it first", m->range_id, s->why);
        return CAIRN_ERR_CORRUPT;
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

/* ---- corrupt ranges ---------------------------------------------------- */

/* Say so, and refuse slot `s` (of store `eng`) from now on. */
static void mark_corrupt(slot *s, engine *eng, const char *why)
{
    log_range(LOG_ERROR, s->range_id, "range %" PRIu64 ": CORRUPT: %s; the "
              "range is refused here until the controller rebuilds it from "
              "its peers", s->range_id, why);
    s->corrupt = true;
    s->eng = eng;
    snprintf(s->why, sizeof s->why, "%s", why);
}

/* Host range `range_id` of store `eng` as corrupt, with no replica. */
static void add_corrupt(node *n, uint64_t range_id, engine *eng,
                        const char *why)
{
    if (add_range(n, range_id, NULL) != 0) {
        /* out of memory: it stays unhosted, which refuses it too */
        log_range(LOG_ERROR, range_id, "range %" PRIu64 ": CORRUPT: %s",
                  range_id, why);
        return;
    }
    mark_corrupt(node_find_slot(n, range_id), eng, why);
}

static void replica_closed(void *arg);

typedef struct quarantine {
    node *n;
    slot *s;
} quarantine;

/* A corrupt range's replica is closed: the slot stays, refusing it. */
static void quarantined(void *arg)
{
    quarantine *q = arg;
    q->s->r = NULL;
    q->s->quarantining = false;
    if (q->n->stopping) /* node_close_replicas counted it */
        replica_closed(q->n);
    free(q);
}

static void quarantine_tick(uv_timer_t *t)
{
    node *n = t->data;
    size_t it = 0;
    uint64_t id;
    void *v;
    if (n->stopping) /* node_close_replicas closes them all */
        return;
    while (u64map_next(&n->slots, &it, &id, &v)) {
        slot *s = v;
        if (!s->corrupt || !s->r || s->quarantining || s->dropping)
            continue;
        quarantine *q = malloc(sizeof *q);
        if (q == NULL) { /* refused meanwhile; closed at the next try */
            uv_timer_start(&n->quarantine_timer, quarantine_tick, 100, 0);
            return;
        }
        *q = (quarantine){n, s};
        s->quarantining = true;
        replica_close(s->r, quarantined, q);
    }
}

void node_found_corrupt(node *n, uint64_t range_id, const char *why)
{
    slot *s = node_find_slot(n, range_id);
    if (s == NULL || s->corrupt || s->dropping)
        return;
    mark_corrupt(s, replica_engine(s->r), why);
    uv_timer_start(&n->quarantine_timer, quarantine_tick, 0, 0);
}

int node_corrupt_json(node *n, buf *j)
{
    size_t it = 0, k = 0;
    uint64_t id;
    void *v;
    int rc = buf_append_str(j, ",\"corrupt\":[");
    while (rc == 0 && u64map_next(&n->slots, &it, &id, &v)) {
        slot *s = v;
        if (!s->corrupt || s->dropping)
            continue;
        rc = buf_appendf(j, "%s{\"range\":%" PRIu64 ",\"why\":",
                         k++ ? "," : "", id);
        if (rc == 0)
            rc = buf_append_json_str(j, s->why);
        if (rc == 0)
            rc = buf_append_str(j, "}");
    }
    return rc ? rc : buf_append_str(j, "]");
}

size_t node_corrupt_count(node *n)
{
    size_t it = 0, k = 0;
    uint64_t id;
    void *v;
    while (u64map_next(&n->slots, &it, &id, &v))
        k += ((slot *)v)->corrupt && !((slot *)v)->dropping;
    return k;
}

/* Reopen every replica an index store holds. A range whose log cannot be
 * loaded stays closed, with the reason on stderr; the others start. */
static int load_replicas(node *n, engine *e)
{
    uint64_t *ids = NULL;
    size_t count = 0;
    int listed = engine_list_ranges(e, &ids, &count);
    if (listed != 0)
        return listed;
    for (size_t i = 0; i < count; i++) {
        buf blob = BUF_INIT;
        range_meta m = {0};
        char err[256] = "";
        replica *r;
        m.range_id = ids[i];
        int rc = engine_get_meta(e, NULL, ids[i], &blob);
        if (rc == 0)
            rc = range_meta_decode(blob.data, blob.len, &m);
        if (rc == 0 && m.range_id != ids[i]) {
            snprintf(err, sizeof err, "its stored meta names range %" PRIu64,
                     m.range_id);
            rc = CAIRN_ERR_CORRUPT;
        }
        if (rc == 0)
            rc = engine_verify(e, ids[i], err);
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
        if (rc == CAIRN_ERR_CORRUPT)
            add_corrupt(n, ids[i], e, err);
        else if (rc != 0)
            log_range(LOG_ERROR, ids[i], "range %" PRIu64 " not started: %s %s",
                      ids[i], cairn_err_message(rc), err);
        range_meta_free(&m);
        buf_free(&blob);
    }
    free(ids);
    return 0;
}

/* Store `e` cannot list its ranges (a corrupt block where the range
 * records are): every range the Raft log knows that no store opened may
 * be in it, so each is kept as corrupt - refused, its log kept - for the
 * controller to rebuild. */
static void unlisted_store(node *n, engine *e, int why)
{
    uint64_t *ids = NULL;
    size_t count = 0;
    char text[160];
    snprintf(text, sizeof text, "the %s index store cannot list its ranges "
             "(%s)", engine_kind_name(engine_get_kind(e)),
             cairn_err_message(why));
    log_error("CORRUPT: %s", text);
    if (raftlog_list_ranges(n->env.log, &ids, &count) != 0)
        return;
    for (size_t i = 0; i < count; i++)
        if (node_find_slot(n, ids[i]) == NULL)
            add_corrupt(n, ids[i], e, text);
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
                     engine_get_meta(n->engines[k], NULL, ids[i], &blob) !=
                         CAIRN_ERR_NOT_FOUND;
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

int node_open_existing(node *n)
{
    static const engine_kind kinds[] = {ENGINE_BTREE, ENGINE_LSM};
    engine *unlisted[2] = {NULL, NULL};
    int why[2] = {0, 0};
    uv_timer_init(&n->loop, &n->quarantine_timer);
    n->quarantine_timer.data = n;
    for (int i = 0; i < 2; i++) {
        char path[4096];
        struct stat st;
        engine *e;
        snprintf(path, sizeof path, "%s/%s", n->opts->dir,
                 kinds[i] == ENGINE_BTREE ? "lmdb" : "rocks");
        if (stat(path, &st) != 0)
            continue;
        int rc = get_engine(n, kinds[i], &e);
        if (rc != 0) { /* its ranges' logs must not go as orphans */
            log_error("%s%s: the %s index store does not open: %s",
                      rc == CAIRN_ERR_CORRUPT ? "CORRUPT: " : "", path,
                      engine_kind_name(kinds[i]), cairn_err_message(rc));
            return rc;
        }
        if ((why[i] = load_replicas(n, e)) != 0)
            unlisted[i] = e;
    }
    for (int i = 0; i < 2; i++)
        if (unlisted[i])
            unlisted_store(n, unlisted[i], why[i]);
    drop_orphan_logs(n);
    return 0;
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
    bool had_replica; /* node_close_replicas counts it while stopping */
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
    if (n->stopping && j->had_replica) /* node_close_replicas counted it */
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
    /* not gone yet: "not found" would be premature */
    if (s->dropping || s->quarantining)
        return CAIRN_ERR_TRYAGAIN;
    drop_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return CAIRN_ERR_NOMEM;
    s->dropping = true;
    if (s->r == NULL) { /* corrupt, closed: only its data and log to go */
        *j = (drop_job){n, range_id, s->eng, false, cb, arg};
        dropped(j);
        return 0;
    }
    *j = (drop_job){n, range_id, replica_engine(s->r), true, cb, arg};
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
    /* Every slot with a replica counts. One being dropped or quarantined
     * is already closing: drop_logged() or quarantined() counts it down. */
    n->closing_replicas = 0;
    while (u64map_next(&n->slots, &it, &id, &v))
        n->closing_replicas += ((slot *)v)->r != NULL;
    if (n->closing_replicas == 0) {
        cb(n);
        return;
    }
    it = 0;
    while (u64map_next(&n->slots, &it, &id, &v)) {
        slot *s = v;
        if (s->r && !s->dropping && !s->quarantining)
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
        if (!s->dropping && !s->corrupt && s->r)
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
