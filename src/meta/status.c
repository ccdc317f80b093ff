/*
 * status.c - the status document (status.h).
 */
#include "meta/status.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

typedef struct node_count {
    uint64_t id;
    int64_t replicas, leaders;
} node_count;

typedef struct st {
    const meta_map *map;
    node_count *counts;
    size_t n_counts;
    bool ok;
} st;

static node_count *count_of(st *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_counts; i++)
        if (s->counts[i].id == id)
            return &s->counts[i];
    return NULL;
}

/* A replica counts as healthy when its node is known, holds its lease and
 * is not recorded dead or suspect. */
static bool healthy_node(const meta_map *map, uint64_t id)
{
    const meta_node *n = meta_map_node(map, id);
    const meta_health *h = meta_map_health(map, id);
    return n && n->live && (h == NULL || h->state == META_NODE_LIVE);
}

static bool dead_node(const meta_map *map, uint64_t id)
{
    const meta_health *h = meta_map_health(map, id);
    return meta_map_node(map, id) == NULL ||
           (h && h->state == META_NODE_DEAD);
}

static bool lagging(const meta_map *map, uint64_t range, uint64_t node)
{
    const meta_health *h = meta_map_health(map, node);
    for (int i = 0; h && i < h->n_lagging; i++)
        if (h->lagging[i] == range)
            return true;
    return false;
}

static void add_num(st *s, cJSON *o, const char *k, double v)
{
    if (!cJSON_AddNumberToObject(o, k, v))
        s->ok = false;
}

static void add_str(st *s, cJSON *o, const char *k, const char *v)
{
    if (!cJSON_AddStringToObject(o, k, v))
        s->ok = false;
}

static void add_bool(st *s, cJSON *o, const char *k, bool v)
{
    if (!cJSON_AddBoolToObject(o, k, v))
        s->ok = false;
}

static void add_ms(st *s, cJSON *o, const char *k, uint64_t v)
{
    if (v == 0 ? !cJSON_AddNullToObject(o, k)
               : !cJSON_AddNumberToObject(o, k, (double)v))
        s->ok = false;
}

static cJSON *add_obj(st *s, cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        s->ok = false;
        return NULL;
    }
    return o;
}

static cJSON *add_arr(st *s, cJSON *o, const char *k)
{
    cJSON *a = cJSON_AddArrayToObject(o, k);
    if (!a)
        s->ok = false;
    return a;
}

static void push_num(st *s, cJSON *arr, double v)
{
    cJSON *x = cJSON_CreateNumber(v);
    if (!x || !cJSON_AddItemToArray(arr, x)) {
        cJSON_Delete(x);
        s->ok = false;
    }
}

static void push_str(st *s, cJSON *arr, const char *v)
{
    cJSON *x = cJSON_CreateString(v);
    if (!x || !cJSON_AddItemToArray(arr, x)) {
        cJSON_Delete(x);
        s->ok = false;
    }
}

/* Replicas and leaders per node, from the ranges and leader records. */
static void count(st *s)
{
    const meta_map *map = s->map;
    for (size_t i = 0; i < meta_map_table_count(map); i++) {
        size_t n = 0;
        const meta_range *rs =
            meta_map_ranges(map, meta_map_table_at(map, i)->id, &n);
        for (size_t k = 0; k < n; k++) {
            for (int r = 0; r < rs[k].n_replicas; r++) {
                node_count *c = count_of(s, rs[k].replicas[r]);
                if (c)
                    c->replicas++;
            }
            const meta_leader *l = meta_map_leader(map, rs[k].id);
            node_count *c = l ? count_of(s, l->node_id) : NULL;
            if (c)
                c->leaders++;
        }
    }
}

static void nodes(st *s, cJSON *root, cJSON *sum)
{
    const meta_map *map = s->map;
    cJSON *arr = add_arr(s, root, "nodes");
    int live = 0, suspect = 0, dead = 0, draining = 0;
    for (size_t i = 0; arr && i < meta_map_node_count(map); i++) {
        const meta_node *n = meta_map_node_at(map, i);
        const meta_health *h = meta_map_health(map, n->id);
        const meta_drain *d = meta_map_drain(map, n->id);
        node_count *c = count_of(s, n->id);
        /* No health record yet (no controller ran): the lease decides. */
        meta_node_state state = h ? h->state
                                  : n->live ? META_NODE_LIVE
                                            : META_NODE_SUSPECT;
        live += state == META_NODE_LIVE;
        suspect += state == META_NODE_SUSPECT;
        dead += state == META_NODE_DEAD;
        draining += d != NULL;
        cJSON *o = add_obj(s, arr);
        if (!o)
            return;
        add_num(s, o, "id", (double)n->id);
        add_str(s, o, "addr", n->addr);
        add_str(s, o, "zone", n->zone);
        add_str(s, o, "state", meta_node_state_name(state));
        add_ms(s, o, "since", h ? h->since : 0);
        add_str(s, o, "reason", h ? h->reason : n->live ? "" : "no lease");
        add_bool(s, o, "lease", n->live);
        add_bool(s, o, "draining", d != NULL);
        add_num(s, o, "replicas", c ? (double)c->replicas : 0);
        add_num(s, o, "leaders", c ? (double)c->leaders : 0);
        add_num(s, o, "bytes", h ? (double)h->bytes : 0);
        add_num(s, o, "capacity", (double)n->capacity);
        add_num(s, o, "lag_entries", h ? (double)h->lag_entries : 0);
        add_num(s, o, "lag_seconds", h ? h->lag_seconds : 0);
        add_ms(s, o, "updated", h ? h->updated : 0);
    }
    add_num(s, sum, "nodes", (double)meta_map_node_count(map));
    add_num(s, sum, "live", live);
    add_num(s, sum, "suspect", suspect);
    add_num(s, sum, "dead", dead);
    add_num(s, sum, "draining", draining);
}

static void ranges(st *s, cJSON *root, cJSON *sum, int max)
{
    const meta_map *map = s->map;
    cJSON *arr = add_arr(s, root, "unhealthy");
    size_t n_ranges = 0, n_replicas = 0, n_bad = 0, n_under = 0;
    for (size_t i = 0; arr && i < meta_map_table_count(map); i++) {
        const meta_table *t = meta_map_table_at(map, i);
        if (t->state != META_TABLE_READY)
            continue;
        size_t n = 0;
        const meta_range *rs = meta_map_ranges(map, t->id, &n);
        for (size_t k = 0; k < n; k++) {
            const meta_range *rg = &rs[k];
            int healthy = 0;
            bool on_dead = false, lag = false;
            for (int r = 0; r < rg->n_replicas; r++) {
                uint64_t id = rg->replicas[r];
                healthy += healthy_node(map, id) && !lagging(map, rg->id, id);
                on_dead |= dead_node(map, id);
                lag |= lagging(map, rg->id, id);
            }
            const meta_leader *l = meta_map_leader(map, rg->id);
            const meta_node *ln = l ? meta_map_node(map, l->node_id) : NULL;
            bool no_leader = ln == NULL || !ln->live;
            bool under = rg->n_replicas < t->replicas || healthy < t->replicas;
            bool no_quorum = healthy < rg->n_replicas / 2 + 1;
            n_ranges++;
            n_replicas += (size_t)rg->n_replicas;
            n_under += under;
            if (!under && !lag && !no_leader && !on_dead)
                continue;
            n_bad++;
            if ((int)n_bad > max)
                continue;
            cJSON *o = add_obj(s, arr), *p, *reps;
            if (!o)
                return;
            add_num(s, o, "range", (double)rg->id);
            add_str(s, o, "table", t->name);
            if ((p = add_arr(s, o, "problems")) != NULL) {
                if (under)
                    push_str(s, p, "under-replicated");
                if (on_dead)
                    push_str(s, p, "on-dead-node");
                if (lag)
                    push_str(s, p, "lagging");
                if (no_leader)
                    push_str(s, p, "no-leader");
                if (no_quorum)
                    push_str(s, p, "no-quorum");
            }
            if ((reps = add_arr(s, o, "replicas")) != NULL)
                for (int r = 0; r < rg->n_replicas; r++)
                    push_num(s, reps, (double)rg->replicas[r]);
            add_num(s, o, "healthy", healthy);
            add_num(s, o, "want", t->replicas);
            if (l)
                add_num(s, o, "leader", (double)l->node_id);
            else if (!cJSON_AddNullToObject(o, "leader"))
                s->ok = false;
            add_num(s, o, "epoch", (double)rg->epoch);
        }
    }
    size_t tables = 0;
    for (size_t i = 0; i < meta_map_table_count(map); i++)
        tables += meta_map_table_at(map, i)->state == META_TABLE_READY;
    add_num(s, sum, "tables", (double)tables);
    add_num(s, sum, "ranges", (double)n_ranges);
    add_num(s, sum, "replicas", (double)n_replicas);
    add_num(s, sum, "unhealthy_ranges", (double)n_bad);
    add_num(s, sum, "under_replicated", (double)n_under);
}

/* Whether some range with a replica on `node` has no node to go to: every
 * healthy node that is not draining holds it already. */
static bool nowhere_to_go(const meta_map *map, uint64_t node)
{
    for (size_t i = 0; i < meta_map_table_count(map); i++) {
        size_t n = 0;
        const meta_range *rs =
            meta_map_ranges(map, meta_map_table_at(map, i)->id, &n);
        for (size_t k = 0; k < n; k++) {
            bool on = false, room = false;
            for (int r = 0; r < rs[k].n_replicas; r++)
                on |= rs[k].replicas[r] == node;
            for (size_t j = 0; on && !room && j < meta_map_node_count(map);
                 j++) {
                const meta_node *c = meta_map_node_at(map, j);
                bool member = false;
                for (int r = 0; r < rs[k].n_replicas; r++)
                    member |= rs[k].replicas[r] == c->id;
                room = !member && healthy_node(map, c->id) &&
                       meta_map_drain(map, c->id) == NULL;
            }
            if (on && !room)
                return true;
        }
    }
    return false;
}

static void operation(st *s, cJSON *arr, const char *kind, uint64_t node,
                      uint64_t done, uint64_t total, uint64_t since,
                      const char *detail)
{
    cJSON *o = add_obj(s, arr);
    if (!o)
        return;
    add_str(s, o, "kind", kind);
    if (node)
        add_num(s, o, "node", (double)node);
    else if (!cJSON_AddNullToObject(o, "node"))
        s->ok = false;
    add_num(s, o, "done", (double)done);
    add_num(s, o, "total", (double)total);
    add_num(s, o, "progress", total ? (double)done / (double)total : 1.0);
    add_ms(s, o, "since", since);
    add_str(s, o, "detail", detail);
}

/* Moves of ranges to new groups (TABLE.MOVE), from their records. */
static void relocations(st *s, cJSON *root, cJSON *sum)
{
    const meta_map *map = s->map;
    cJSON *arr = add_arr(s, root, "relocations");
    for (size_t i = 0; arr && i < meta_map_relocation_count(map); i++) {
        const meta_relocation *rl = meta_map_relocation_at(map, i);
        const meta_table *t = meta_map_table_by_id(map, rl->table_id);
        cJSON *o = add_obj(s, arr);
        if (!o)
            return;
        add_num(s, o, "range", (double)rl->range_id);
        add_str(s, o, "table", t ? t->name : "");
        add_num(s, o, "dest", (double)rl->dest);
        add_str(s, o, "step", meta_reloc_step_name(rl->step));
        cJSON *to = add_arr(s, o, "to");
        for (int k = 0; to && k < rl->n_nodes; k++)
            if (!cJSON_AddItemToArray(to, cJSON_CreateNumber(
                                              (double)rl->nodes[k])))
                s->ok = false;
        add_num(s, o, "keys_copied", (double)rl->copied_keys);
        add_num(s, o, "bytes_copied", (double)rl->copied_bytes);
        add_num(s, o, "bytes_per_sec",
                rl->copy_ms ? (double)rl->copied_bytes * 1e3 /
                                  (double)rl->copy_ms
                            : 0);
        add_ms(s, o, "since", rl->since);
        add_str(s, o, "by", rl->by);
    }
    add_num(s, sum, "relocations", (double)meta_map_relocation_count(map));
}

static void operations(st *s, cJSON *root, cJSON *sum)
{
    const meta_map *map = s->map;
    cJSON *arr = add_arr(s, root, "operations");
    for (size_t i = 0; arr && i < meta_map_node_count(map); i++) {
        const meta_node *n = meta_map_node_at(map, i);
        const meta_health *h = meta_map_health(map, n->id);
        const meta_drain *d = meta_map_drain(map, n->id);
        node_count *c = count_of(s, n->id);
        uint64_t held = c ? (uint64_t)c->replicas : 0;
        if (h && h->state == META_NODE_DEAD && held > 0) {
            uint64_t total = h->replicas_lost > held ? h->replicas_lost : held;
            operation(s, arr, "replace", n->id, total - held, total,
                      h->since, nowhere_to_go(map, n->id)
                                    ? "stuck: no other live node can take "
                                      "some of its replicas"
                                    : "replicas of a dead node replaced");
        }
        if (d) {
            uint64_t left = held + (c ? (uint64_t)c->leaders : 0);
            uint64_t total = d->replicas > left ? d->replicas : left;
            operation(s, arr, "drain", n->id, total - left, total, d->since,
                      !left ? "drained: the node can be stopped"
                      : held && nowhere_to_go(map, n->id)
                          ? "stuck: no other live node can take some of "
                            "its replicas"
                          : "replicas and leaders moved off");
        }
    }
    const meta_balance *b = meta_map_balance(map);
    if (arr && b)
        operation(s, arr, "rebalance", 0, b->done, b->total, b->since,
                  "replicas moved to even the nodes out");
    cJSON *mv = add_arr(s, root, "moves");
    for (size_t i = 0; mv && i < meta_map_move_count(map); i++) {
        const meta_move *m = meta_map_move_at(map, i);
        const meta_table *t = meta_map_table_by_id(map, m->table_id);
        cJSON *o = add_obj(s, mv);
        if (!o)
            return;
        add_num(s, o, "range", (double)m->range_id);
        add_str(s, o, "table", t ? t->name : "");
        add_str(s, o, "kind", meta_move_kind_name(m->kind));
        add_num(s, o, "add", (double)m->add);
        add_num(s, o, "remove", (double)m->remove);
        add_ms(s, o, "since", m->since);
        add_str(s, o, "by", m->by);
    }
    add_num(s, sum, "moves", (double)meta_map_move_count(map));
    relocations(s, root, sum);
}

int meta_status_json(const meta_map *map, const meta_status_opts *opts,
                     buf *out)
{
    st s = {.map = map, .ok = true};
    size_t n = meta_map_node_count(map);
    s.counts = calloc(n ? n : 1, sizeof *s.counts);
    cJSON *root = cJSON_CreateObject(), *sum = NULL;
    if (s.counts == NULL || root == NULL) {
        free(s.counts);
        cJSON_Delete(root);
        return CAIRN_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        s.counts[s.n_counts++].id = meta_map_node_at(map, i)->id;
    count(&s);
    add_num(&s, root, "version", META_STATUS_VERSION);
    add_ms(&s, root, "time", opts->now_ms);
    add_num(&s, root, "revision", (double)meta_map_revision(map));
    if (opts->controller)
        add_str(&s, root, "controller", opts->controller);
    else if (!cJSON_AddNullToObject(root, "controller"))
        s.ok = false;
    if ((sum = cJSON_AddObjectToObject(root, "summary")) == NULL)
        s.ok = false;
    if (s.ok) {
        nodes(&s, root, sum);
        ranges(&s, root, sum, opts->max_unhealthy > 0 ? opts->max_unhealthy
                                                      : 1000);
        operations(&s, root, sum);
    }
    char *text = s.ok ? cJSON_PrintUnformatted(root) : NULL;
    int rc = text ? buf_append_str(out, text) : CAIRN_ERR_NOMEM;
    free(text);
    cJSON_Delete(root);
    free(s.counts);
    return rc;
}
