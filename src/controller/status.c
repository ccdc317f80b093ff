/*
 * status.c - collect the cluster's status and write it as JSON and as
 * health metrics (status.h).
 */
#include "controller/status.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/prom.h"
#include "common/u64map.h"
#include "proto/rpc.h"
#include "proto/rpc_sync.h"

#define ACTIONS_KEPT 50
#define ACTION_TEXT_MAX 240

typedef struct node_fig {
    uint64_t id;
    bool live, answered;
    char error[128];
    unsigned replicas, leaders, asleep;
    uint64_t bytes, keys;
    double ops_per_sec;
} node_fig;

typedef struct range_fig {
    uint64_t leader, leader_term;
    bool from_node;     /* a node reported leading it */
    uint64_t bytes, keys;
    uint64_t ops_total; /* the reporting leader's writes + reads */
    double ops_per_sec;
} range_fig;

/* A leader's counter at the previous collection, for rates. */
typedef struct prev_ops {
    uint64_t node, total;
    int64_t ms;
} prev_ops;

typedef struct action {
    int64_t unix_ms;
    char text[ACTION_TEXT_MAX];
} action;

struct status {
    char name[128];
    pthread_mutex_t mu;
    /* the last collection (swapped in under mu) */
    meta_map *map;
    node_fig *nodes;
    size_t n_nodes;
    u64map ranges; /* range id -> range_fig */
    int64_t collected_ms;
    char error[256];
    uint64_t poll_errors;
    /* the collecting thread's own */
    u64map prev;      /* range id -> prev_ops */
    u64map mig_since; /* range id -> first seen migrating (int64_t ms) */
    /* actions ring (under mu) */
    action actions[ACTIONS_KEPT];
    size_t n_actions, next_action;
};

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void free_values(u64map *m)
{
    size_t it = 0;
    uint64_t k;
    void *v;
    while (u64map_next(m, &it, &k, &v))
        free(v);
    u64map_free(m);
}

status *status_new(const char *name)
{
    status *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", name ? name : "");
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void status_free(status *s)
{
    if (s == NULL)
        return;
    if (s->map)
        meta_map_release(s->map);
    free(s->nodes);
    free_values(&s->ranges);
    free_values(&s->prev);
    free_values(&s->mig_since);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void status_note(status *s, const char *text)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    action *a = &s->actions[s->next_action];
    a->unix_ms = unix_ms();
    snprintf(a->text, sizeof a->text, "%s", text);
    s->next_action = (s->next_action + 1) % ACTIONS_KEPT;
    if (s->n_actions < ACTIONS_KEPT)
        s->n_actions++;
    pthread_mutex_unlock(&s->mu);
}

/* ---- collection ---------------------------------------------------------- */

static uint64_t jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble
                                                   : 0;
}

/* Fold one node's METRICS into its figures and the ranges'. */
static void fold_node(node_fig *nf, const cJSON *j, u64map *ranges)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "ranges");
    const cJSON *r;
    cJSON_ArrayForEach(r, rs) {
        uint64_t id = jnum(r, "range");
        if (id == 0)
            continue;
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(r, "role");
        bool leader = cJSON_IsString(role) &&
                      strcmp(role->valuestring, "leader") == 0;
        uint64_t bytes = jnum(r, "range_bytes"), keys = jnum(r, "range_keys");
        nf->replicas++;
        nf->leaders += leader;
        nf->asleep += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r,
                                                                    "asleep"));
        nf->bytes += bytes;
        nf->keys += keys;
        range_fig *f = u64map_get(ranges, id);
        if (f == NULL) {
            if ((f = calloc(1, sizeof *f)) == NULL ||
                u64map_put(ranges, id, f) != 0) {
                free(f);
                continue;
            }
        }
        uint64_t term = jnum(r, "term");
        /* Two nodes may both say leader for a moment (a deposed one that
         * has not heard yet): the higher term is the real one. */
        if (leader && (!f->from_node || term > f->leader_term)) {
            f->from_node = true;
            f->leader = nf->id;
            f->leader_term = term;
            f->ops_total = jnum(r, "writes") + jnum(r, "reads");
            f->bytes = bytes;
            f->keys = keys;
        } else if (!f->from_node && bytes > f->bytes) {
            f->bytes = bytes;
            f->keys = keys;
        }
    }
}

static void poll_node(node_fig *nf, const meta_node *n, u64map *ranges,
                      int timeout_ms)
{
    rpc_request req;
    memset(&req, 0, sizeof req);
    req.type = RPC_METRICS;
    req.id = 1;
    buf text = BUF_INIT;
    int rc = rpc_sync_status(n->addr, &req, timeout_ms, &text);
    cJSON *j = rc == 0 ? cJSON_ParseWithLength((const char *)text.data,
                                               text.len)
                       : NULL;
    if (j != NULL) {
        nf->answered = true;
        fold_node(nf, j, ranges);
    } else {
        snprintf(nf->error, sizeof nf->error, "%s: %s", cairn_err_word(rc),
                 rc && text.data ? (const char *)text.data
                                 : "malformed METRICS");
    }
    cJSON_Delete(j);
    buf_free(&text);
}

/* ops/s from the previous collection's counter of the same leader (a new
 * leader's counters start again: no rate until the next collection). */
static void rates(status *s, meta_map *map, node_fig *nodes, size_t n_nodes,
                  u64map *ranges, int64_t now)
{
    u64map prev = U64MAP_INIT;
    size_t it = 0;
    uint64_t id;
    void *v;
    while (u64map_next(ranges, &it, &id, &v)) {
        range_fig *f = v;
        if (!f->from_node)
            continue;
        prev_ops *p = u64map_get(&s->prev, id);
        if (p && p->node == f->leader && f->ops_total >= p->total &&
            now > p->ms)
            f->ops_per_sec =
                (double)(f->ops_total - p->total) * 1000.0 / (double)(now - p->ms);
        prev_ops *q = malloc(sizeof *q);
        if (q == NULL)
            continue;
        *q = (prev_ops){f->leader, f->ops_total, now};
        if (u64map_put(&prev, id, q) != 0)
            free(q);
        for (size_t i = 0; i < n_nodes; i++)
            if (nodes[i].id == f->leader)
                nodes[i].ops_per_sec += f->ops_per_sec;
    }
    free_values(&s->prev);
    s->prev = prev;

    /* How long each migrating range has been seen so (a stuck move). */
    u64map mig = U64MAP_INIT;
    for (size_t t = 0; t < meta_map_table_count(map); t++) {
        size_t nr = 0;
        const meta_range *rs =
            meta_map_ranges(map, meta_map_table_at(map, t)->id, &nr);
        for (size_t i = 0; i < nr; i++) {
            if (rs[i].state != META_RANGE_MIGRATING)
                continue;
            int64_t *was = u64map_get(&s->mig_since, rs[i].id);
            int64_t *since = malloc(sizeof *since);
            if (since == NULL)
                continue;
            *since = was ? *was : now;
            if (u64map_put(&mig, rs[i].id, since) != 0)
                free(since);
        }
    }
    free_values(&s->mig_since);
    s->mig_since = mig;
}

int status_collect(status *s, meta *m, int rpc_timeout_ms)
{
    meta_map *map = NULL;
    int rc = meta_load(m, &map);
    if (rc != 0) {
        pthread_mutex_lock(&s->mu);
        snprintf(s->error, sizeof s->error, "cannot read the metadata: %s %s",
                 cairn_err_word(rc), etcd_last_error());
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    size_t n_nodes = meta_map_node_count(map);
    node_fig *nodes = calloc(n_nodes ? n_nodes : 1, sizeof *nodes);
    u64map ranges = U64MAP_INIT;
    uint64_t errors = 0;
    if (nodes == NULL) {
        meta_map_release(map);
        return CAIRN_ERR_NOMEM;
    }
    for (size_t i = 0; i < n_nodes; i++) {
        const meta_node *n = meta_map_node_at(map, i);
        nodes[i].id = n->id;
        nodes[i].live = n->live;
        if (n->live) {
            poll_node(&nodes[i], n, &ranges, rpc_timeout_ms);
            errors += !nodes[i].answered;
        }
    }
    int64_t now = unix_ms();
    rates(s, map, nodes, n_nodes, &ranges, now);

    pthread_mutex_lock(&s->mu);
    meta_map *old_map = s->map;
    node_fig *old_nodes = s->nodes;
    u64map old_ranges = s->ranges;
    s->map = map;
    s->nodes = nodes;
    s->n_nodes = n_nodes;
    s->ranges = ranges;
    s->collected_ms = now;
    s->error[0] = '\0';
    s->poll_errors += errors;
    pthread_mutex_unlock(&s->mu);
    if (old_map)
        meta_map_release(old_map);
    free(old_nodes);
    free_values(&old_ranges);
    return 0;
}

/* ---- the document --------------------------------------------------------- */

static void hex(char *out, const uint8_t *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static const char *table_state(meta_table_state s)
{
    return s == META_TABLE_CREATING  ? "creating"
           : s == META_TABLE_READY   ? "ready"
                                     : "dropping";
}

static const node_fig *find_node(const status *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].id == id)
            return &s->nodes[i];
    return NULL;
}

/* Figures of one range that the JSON and the metrics share. */
typedef struct range_view {
    const range_fig *f;
    uint64_t leader, term;
    const char *source;
    int live;
    bool under;
    double mig_seconds;
} range_view;

static void view_range(const status *s, const meta_table *t,
                       const meta_range *r, range_view *v)
{
    memset(v, 0, sizeof *v);
    v->f = u64map_get(&s->ranges, r->id);
    const meta_leader *l = meta_map_leader(s->map, r->id);
    v->source = "none";
    if (v->f && v->f->from_node) {
        v->leader = v->f->leader;
        v->term = v->f->leader_term;
        v->source = "node";
    } else if (l) {
        v->leader = l->node_id;
        v->term = l->term;
        v->source = "etcd";
    }
    for (int i = 0; i < r->n_replicas; i++) {
        const node_fig *n = find_node(s, r->replicas[i]);
        v->live += n && n->live;
    }
    v->under = v->live < t->replicas || r->n_replicas < t->replicas;
    int64_t *since = u64map_get(&s->mig_since, r->id);
    if (since && s->collected_ms > *since)
        v->mig_seconds = (double)(s->collected_ms - *since) / 1000.0;
}

static cJSON *range_json(const status *s, const meta_table *t,
                         const meta_range *r, cJSON *ops)
{
    range_view v;
    view_range(s, t, r, &v);
    cJSON *o = cJSON_CreateObject();
    char *h = malloc(2 * (r->start_len > r->end_len ? r->start_len
                                                     : r->end_len) + 1);
    if (o == NULL || h == NULL) {
        free(h);
        return o;
    }
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    hex(h, r->start, r->start_len);
    cJSON_AddStringToObject(o, "start", h);
    hex(h, r->end, r->end_len);
    cJSON_AddStringToObject(o, "end", h);
    free(h);
    cJSON_AddNumberToObject(o, "epoch", (double)r->epoch);
    cJSON *reps = cJSON_AddArrayToObject(o, "replicas");
    for (int i = 0; reps && i < r->n_replicas; i++)
        cJSON_AddItemToArray(reps, cJSON_CreateNumber((double)r->replicas[i]));
    cJSON_AddNumberToObject(o, "live_replicas", v.live);
    cJSON_AddNumberToObject(o, "leader", (double)v.leader);
    cJSON_AddNumberToObject(o, "leader_term", (double)v.term);
    cJSON_AddStringToObject(o, "leader_source", v.source);
    bool mig = r->state == META_RANGE_MIGRATING;
    cJSON_AddStringToObject(o, "state", mig ? "migrating" : "normal");
    cJSON_AddNumberToObject(o, "from", (double)r->from);
    cJSON_AddNumberToObject(o, "migrating_seconds", v.mig_seconds);
    cJSON_AddBoolToObject(o, "under_replicated", v.under);
    cJSON_AddNumberToObject(o, "bytes", v.f ? (double)v.f->bytes : 0);
    cJSON_AddNumberToObject(o, "keys", v.f ? (double)v.f->keys : 0);
    cJSON_AddNumberToObject(o, "ops_per_sec", v.f ? v.f->ops_per_sec : 0);
    (void)ops;
    return o;
}

/* A move to a new group (TABLE.MOVE), from its record: its step, where it
 * goes, and the copy's progress against the source's size as last
 * polled. */
static cJSON *relocation_json(const status *s, const meta_relocation *rl)
{
    cJSON *op = cJSON_CreateObject();
    if (op == NULL)
        return NULL;
    const range_fig *f = u64map_get(&s->ranges, rl->range_id);
    double secs = s->collected_ms > (int64_t)rl->since
                      ? (double)(s->collected_ms - (int64_t)rl->since) / 1e3
                      : 0;
    cJSON_AddStringToObject(op, "kind", "move");
    cJSON_AddNumberToObject(op, "range", (double)rl->dest);
    cJSON_AddNumberToObject(op, "from", (double)rl->range_id);
    cJSON_AddStringToObject(op, "step", meta_reloc_step_name(rl->step));
    cJSON *to = cJSON_AddArrayToObject(op, "to");
    for (int i = 0; to && i < rl->n_nodes; i++)
        cJSON_AddItemToArray(to, cJSON_CreateNumber((double)rl->nodes[i]));
    cJSON_AddNumberToObject(op, "seconds", secs);
    cJSON_AddNumberToObject(op, "keys_copied", (double)rl->copied_keys);
    cJSON_AddNumberToObject(op, "bytes_copied", (double)rl->copied_bytes);
    cJSON_AddNumberToObject(op, "bytes_per_sec",
                            rl->copy_ms ? (double)rl->copied_bytes * 1e3 /
                                              (double)rl->copy_ms
                                        : 0);
    if (rl->step >= META_RELOC_DROP)
        cJSON_AddNumberToObject(op, "progress", 1);
    else if (f && f->bytes > 0)
        cJSON_AddNumberToObject(op, "progress",
                                (double)rl->copied_bytes >= (double)f->bytes
                                    ? 1
                                    : (double)rl->copied_bytes /
                                          (double)f->bytes);
    else
        cJSON_AddNullToObject(op, "progress");
    return op;
}

static const char *node_state(const node_fig *n)
{
    return !n->live ? "down" : n->answered ? "live" : "unreachable";
}

static cJSON *node_json(const node_fig *nf, const meta_node *n)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)n->id);
    cJSON_AddStringToObject(o, "address", n->addr);
    cJSON_AddStringToObject(o, "zone", ""); /* nodes carry no zone yet */
    cJSON_AddStringToObject(o, "state", node_state(nf));
    cJSON_AddBoolToObject(o, "live", nf->live);
    cJSON_AddStringToObject(o, "error", nf->error);
    cJSON_AddNumberToObject(o, "capacity_bytes", (double)n->capacity);
    cJSON_AddNumberToObject(o, "replicas", nf->replicas);
    cJSON_AddNumberToObject(o, "leaders", nf->leaders);
    cJSON_AddNumberToObject(o, "asleep", nf->asleep);
    cJSON_AddNumberToObject(o, "bytes", (double)nf->bytes);
    cJSON_AddNumberToObject(o, "keys", (double)nf->keys);
    cJSON_AddNumberToObject(o, "ops_per_sec", nf->ops_per_sec);
    return o;
}

int status_json(status *s, bool active, buf *out)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return CAIRN_ERR_NOMEM;
    pthread_mutex_lock(&s->mu);
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddNumberToObject(root, "collected_unix_ms", (double)s->collected_ms);
    cJSON_AddNumberToObject(root, "revision",
                            s->map ? (double)meta_map_revision(s->map) : 0);
    cJSON_AddStringToObject(root, "error", s->error);
    cJSON *ctl = cJSON_AddObjectToObject(root, "controller");
    if (ctl) {
        cJSON_AddStringToObject(ctl, "name", s->name);
        cJSON_AddBoolToObject(ctl, "active", active);
    }
    cJSON *sum = cJSON_AddObjectToObject(root, "summary");
    cJSON *nodes = cJSON_AddArrayToObject(root, "nodes");
    cJSON *tables = cJSON_AddArrayToObject(root, "tables");
    cJSON *ops = cJSON_AddArrayToObject(root, "operations");
    size_t n_live = 0, n_ranges = 0, leaderless = 0, under = 0, mig = 0;
    for (size_t i = 0; s->map && i < s->n_nodes; i++) {
        const meta_node *n = meta_map_node(s->map, s->nodes[i].id);
        n_live += s->nodes[i].live && s->nodes[i].answered;
        if (n && nodes)
            cJSON_AddItemToArray(nodes, node_json(&s->nodes[i], n));
    }
    size_t n_tables = s->map ? meta_map_table_count(s->map) : 0;
    for (size_t t = 0; t < n_tables; t++) {
        const meta_table *tb = meta_map_table_at(s->map, t);
        cJSON *to = cJSON_CreateObject();
        if (to == NULL || tables == NULL) {
            cJSON_Delete(to);
            continue;
        }
        cJSON_AddStringToObject(to, "name", tb->name);
        cJSON_AddNumberToObject(to, "id", (double)tb->id);
        cJSON_AddStringToObject(to, "engine", meta_engine_name(tb->engine));
        cJSON_AddNumberToObject(to, "replicas", tb->replicas);
        cJSON_AddStringToObject(to, "state", table_state(tb->state));
        cJSON *ra = cJSON_AddArrayToObject(to, "ranges");
        size_t nr = 0;
        const meta_range *rs = meta_map_ranges(s->map, tb->id, &nr);
        for (size_t i = 0; i < nr; i++) {
            range_view v;
            view_range(s, tb, &rs[i], &v);
            n_ranges++;
            /* As in status_metrics: tables being created or dropped are
             * expected to lack leaders for a while. */
            leaderless += tb->state == META_TABLE_READY &&
                          strcmp(v.source, "node") != 0;
            under += tb->state == META_TABLE_READY && v.under;
            mig += rs[i].state == META_RANGE_MIGRATING;
            if (ra)
                cJSON_AddItemToArray(ra, range_json(s, tb, &rs[i], ops));
        }
        cJSON_AddItemToArray(tables, to);
    }
    for (size_t i = 0; ops && s->map && i < meta_map_relocation_count(s->map);
         i++)
        cJSON_AddItemToArray(
            ops, relocation_json(s, meta_map_relocation_at(s->map, i)));
    if (sum) {
        cJSON_AddNumberToObject(sum, "nodes", (double)s->n_nodes);
        cJSON_AddNumberToObject(sum, "nodes_live", (double)n_live);
        cJSON_AddNumberToObject(sum, "tables", (double)n_tables);
        cJSON_AddNumberToObject(sum, "ranges", (double)n_ranges);
        cJSON_AddNumberToObject(sum, "ranges_without_leader",
                                (double)leaderless);
        cJSON_AddNumberToObject(sum, "ranges_under_replicated", (double)under);
        cJSON_AddNumberToObject(sum, "ranges_migrating", (double)mig);
    }
    cJSON *acts = cJSON_AddArrayToObject(root, "actions");
    for (size_t k = 0; acts && k < s->n_actions; k++) {
        const action *a = &s->actions[(s->next_action + ACTIONS_KEPT -
                                       s->n_actions + k) % ACTIONS_KEPT];
        cJSON *ao = cJSON_CreateObject();
        if (ao == NULL)
            continue;
        cJSON_AddNumberToObject(ao, "unix_ms", (double)a->unix_ms);
        cJSON_AddStringToObject(ao, "text", a->text);
        cJSON_AddItemToArray(acts, ao);
    }
    pthread_mutex_unlock(&s->mu);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text == NULL)
        return CAIRN_ERR_NOMEM;
    int rc = buf_append_str(out, text);
    free(text);
    return rc;
}

/* ---- health metrics ------------------------------------------------------- */

int status_metrics(status *s, buf *b)
{
    char lab[64];
    uint64_t by_state[3] = {0}, tables[3] = {0};
    uint64_t ranges = 0, leaderless = 0, under = 0, mig = 0;
    double oldest = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_nodes; i++) {
        const node_fig *n = &s->nodes[i];
        by_state[!n->live ? 2 : n->answered ? 0 : 1]++;
    }
    size_t n_tables = s->map ? meta_map_table_count(s->map) : 0;
    for (size_t t = 0; t < n_tables; t++) {
        const meta_table *tb = meta_map_table_at(s->map, t);
        tables[tb->state]++;
        size_t nr = 0;
        const meta_range *rs = meta_map_ranges(s->map, tb->id, &nr);
        for (size_t i = 0; i < nr; i++) {
            range_view v;
            view_range(s, tb, &rs[i], &v);
            ranges++;
            /* Only a node's word counts: an etcd record outlives a leader
             * that died. Ranges of a table being created or dropped are
             * expected to lack one for a while. */
            leaderless += tb->state == META_TABLE_READY &&
                          strcmp(v.source, "node") != 0;
            under += tb->state == META_TABLE_READY && v.under;
            mig += rs[i].state == META_RANGE_MIGRATING;
            if (v.mig_seconds > oldest)
                oldest = v.mig_seconds;
        }
    }
    uint64_t poll_errors = s->poll_errors;
    bool have = s->map != NULL;
    pthread_mutex_unlock(&s->mu);

    static const char *const states[] = {"live", "unreachable", "down"};
    static const char *const tstates[] = {"creating", "ready", "dropping"};
    int rc = prom_family(b, "cairn_controller_status_collected", "gauge",
                         "1 once the controller has read the cluster's "
                         "status (the families below are then meaningful).");
    if (rc == 0)
        rc = prom_u64(b, "cairn_controller_status_collected", NULL, have);
    if (rc == 0)
        rc = prom_family(b, "cairn_controller_nodes", "gauge",
                         "Registered nodes by state: live (lease held, "
                         "answers), unreachable (lease held, no answer), "
                         "down (no lease).");
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = prom_u64(b, "cairn_controller_nodes",
                      prom_labels(lab, sizeof lab, "state", states[i], NULL),
                      by_state[i]);
    if (rc == 0)
        rc = prom_family(b, "cairn_controller_tables", "gauge",
                         "Tables by state.");
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = prom_u64(b, "cairn_controller_tables",
                      prom_labels(lab, sizeof lab, "state", tstates[i], NULL),
                      tables[i]);
    struct {
        const char *name, *help;
        uint64_t v;
    } g[] = {
        {"cairn_controller_ranges", "Ranges in the metadata.", ranges},
        {"cairn_controller_ranges_without_leader",
         "Ranges of ready tables that no node says it leads.", leaderless},
        {"cairn_controller_ranges_under_replicated",
         "Ranges of ready tables with fewer live replicas than their "
         "table's replication factor.",
         under},
        {"cairn_controller_ranges_migrating",
         "Ranges marked migrating (a move in progress).", mig},
    };
    for (size_t i = 0; rc == 0 && i < sizeof g / sizeof g[0]; i++) {
        rc = prom_family(b, g[i].name, "gauge", g[i].help);
        if (rc == 0)
            rc = prom_u64(b, g[i].name, NULL, g[i].v);
    }
    if (rc == 0)
        rc = prom_family(b, "cairn_controller_migration_oldest_seconds",
                         "gauge",
                         "How long the oldest migrating range has been seen "
                         "migrating by this controller.");
    if (rc == 0)
        rc = prom_double(b, "cairn_controller_migration_oldest_seconds", NULL,
                         oldest);
    if (rc == 0)
        rc = prom_family(b, "cairn_controller_node_poll_errors_total",
                         "counter",
                         "Live nodes that did not answer a METRICS poll.");
    if (rc == 0)
        rc = prom_u64(b, "cairn_controller_node_poll_errors_total", NULL,
                      poll_errors);
    return rc;
}
