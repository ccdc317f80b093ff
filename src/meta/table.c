/*
 * table.c - the table lifecycle of meta.h: create (ids, placement, then
 * the ranges in as many transactions as they need, under the table's
 * CREATING marker), ready, drop, delete.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/map_internal.h"
#include "meta/meta_internal.h"
#include "meta/schema.h"

#define TABLE_RETRIES 20

static int check_spec(const meta_table_spec *s)
{
    if (!s->name || meta_table_name_check(s->name) != 0)
        return CAIRN_ERR_INVALID;
    if (s->replicas != 1 && s->replicas != 3 && s->replicas != 5)
        return CAIRN_ERR_INVALID;
    if (s->engine != META_ENGINE_BTREE && s->engine != META_ENGINE_LSM)
        return CAIRN_ERR_INVALID;
    if (s->n_splits > META_SPLITS_MAX)
        return CAIRN_ERR_INVALID;
    for (size_t i = 0; i < s->n_splits; i++) {
        if (s->split_lens[i] < CAIRN_KEY_MIN || s->split_lens[i] > CAIRN_KEY_MAX)
            return CAIRN_ERR_INVALID;
        if (i > 0 && key_cmp(s->splits[i - 1], s->split_lens[i - 1],
                                  s->splits[i], s->split_lens[i]) >= 0)
            return CAIRN_ERR_INVALID;
    }
    return CAIRN_OK;
}

/* Live nodes, their zones and how many replicas each hosts, for
 * placement. */
typedef struct load {
    uint64_t id;
    size_t replicas;
    const char *zone; /* "" = none */
} load;

static int cmp_load(const void *a, const void *b)
{
    const load *x = a, *y = b;
    if (x->replicas != y->replicas)
        return x->replicas < y->replicas ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static load *live_loads(const meta_map *map, size_t *n)
{
    load *v = calloc(map->n_nodes + 1, sizeof *v);
    if (!v)
        return NULL;
    *n = 0;
    for (size_t i = 0; i < map->n_nodes; i++)
        if (map->nodes[i].live) {
            v[*n].zone = map->nodes[i].zone;
            v[(*n)++].id = map->nodes[i].id;
        }
    for (size_t t = 0; t < map->n_rsets; t++)
        for (size_t r = 0; r < map->rsets[t].n; r++) {
            const meta_range *rg = &map->rsets[t].v[r];
            for (int k = 0; k < rg->n_replicas; k++)
                for (size_t i = 0; i < *n; i++)
                    if (v[i].id == rg->replicas[k])
                        v[i].replicas++;
        }
    return v;
}

/* Whether a node of zone `z` would share a zone with one of the first
 * `k` chosen (nodes without a zone never do). */
static bool zone_taken(const load *loads, const size_t *chosen, int k,
                       const char *z)
{
    for (int i = 0; z[0] && i < k; i++)
        if (strcmp(loads[chosen[i]].zone, z) == 0)
            return true;
    return false;
}

/* Give `rg` the `n` least loaded live nodes, in distinct zones where the
 * zones allow it (`cairn node --zone`), and count them. */
static void place(load *loads, size_t n_loads, meta_range *rg, int n)
{
    qsort(loads, n_loads, sizeof *loads, cmp_load);
    size_t chosen[META_MAX_REPLICAS];
    int k = 0;
    for (int pass = 0; pass < 2 && k < n; pass++) /* new zones, then any */
        for (size_t i = 0; i < n_loads && k < n; i++) {
            bool used = false;
            for (int j = 0; j < k; j++)
                used |= chosen[j] == i;
            if (!used && (pass == 1 || !zone_taken(loads, chosen, k,
                                                   loads[i].zone)))
                chosen[k++] = i;
        }
    rg->n_replicas = k;
    for (int i = 0; i < k; i++) {
        rg->replicas[i] = loads[chosen[i]].id;
        loads[chosen[i]].replicas++;
    }
}

/* Range i of a table split at spec->splits: [split[i-1], split[i]). */
static void range_bounds(const meta_table_spec *s, size_t i, meta_range *rg)
{
    rg->start = i > 0 ? (uint8_t *)s->splits[i - 1] : NULL;
    rg->start_len = i > 0 ? s->split_lens[i - 1] : 0;
    rg->end = i < s->n_splits ? (uint8_t *)s->splits[i] : NULL;
    rg->end_len = i < s->n_splits ? s->split_lens[i] : 0;
}

/* A create being written: the table, and its ranges with their placement
 * (bounds borrowed from the spec). */
typedef struct plan {
    meta_table *tb;
    meta_range *rgs;
    size_t n;
} plan;

/* Put the table record under its compare (name free). */
static int txn_add_table(etcd_txn *t, const char *prefix, const meta_table *tb)
{
    buf key = BUF_INIT;
    char *v = meta_table_encode(tb);
    int rc = v ? meta_key_table(&key, prefix, tb->name) : CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = etcd_txn_cmp(t, key.data, key.len, ETCD_CMP_VERSION,
                          ETCD_CMP_EQUAL, 0);
    if (rc == 0)
        rc = etcd_txn_put(t, true, key.data, key.len, v, strlen(v), 0);
    free(v);
    buf_free(&key);
    return rc;
}

/* Put ranges rgs[from, to) (fresh ids: no compare of their own). */
static int txn_add_ranges(etcd_txn *t, const char *prefix, const plan *p,
                          size_t from, size_t to)
{
    buf key = BUF_INIT;
    int rc = 0;
    for (size_t i = from; rc == 0 && i < to; i++) {
        char *v = meta_range_encode(&p->rgs[i]);
        rc = v ? meta_key_range(&key, prefix, p->tb->id, p->rgs[i].id)
               : CAIRN_ERR_NOMEM;
        if (rc == 0)
            rc = etcd_txn_put(t, true, key.data, key.len, v, strlen(v), 0);
        free(v);
    }
    buf_free(&key);
    return rc;
}

/* Ids and placement from one map, then the first transaction: both
 * counters as read (bumped by 1 table and by every range), the name still
 * free, the table CREATING, and as many ranges as fit (all of them for a
 * table of up to META_TXN_OPS - 3 ranges, which is thus created
 * atomically). *written = ranges written. */
static int build_first(const meta_map *map, const char *prefix,
                       const meta_table_spec *s, plan *p, etcd_txn *t,
                       size_t *written)
{
    size_t n_loads = 0;
    load *loads = live_loads(map, &n_loads);
    if (!loads)
        return CAIRN_ERR_NOMEM;
    if (n_loads < (size_t)s->replicas) {
        free(loads);
        return CAIRN_ERR_TRYAGAIN;
    }
    p->tb->id = map->ids[META_ID_TABLE] + 1;
    uint64_t first_range = map->ids[META_ID_RANGE] + 1;
    for (size_t i = 0; i < p->n; i++) {
        meta_range *rg = &p->rgs[i];
        *rg = (meta_range){.id = first_range + i, .table_id = p->tb->id,
                           .epoch = 1};
        range_bounds(s, i, rg);
        place(loads, n_loads, rg, s->replicas);
    }
    free(loads);
    buf key = BUF_INIT;
    int rc = meta_key_id(&key, prefix, META_ID_TABLE);
    if (rc == 0)
        rc = meta_txn_bump_counter(t, &key, map->ids[META_ID_TABLE],
                                   map->ids_rev[META_ID_TABLE], 1);
    if (rc == 0)
        rc = meta_key_id(&key, prefix, META_ID_RANGE);
    if (rc == 0)
        rc = meta_txn_bump_counter(t, &key, map->ids[META_ID_RANGE],
                                   map->ids_rev[META_ID_RANGE], p->n);
    if (rc == 0)
        rc = txn_add_table(t, prefix, p->tb);
    buf_free(&key);
    *written = p->n < META_TXN_OPS - 3 ? p->n : META_TXN_OPS - 3;
    return rc ? rc : txn_add_ranges(t, prefix, p, 0, *written);
}

/* The first transaction. CAIRN_ERR_BUSY = a concurrent change (a counter
 * moved, the name was taken): try again from a fresh read. */
static int create_first(meta *m, const meta_table_spec *s, plan *p,
                        size_t *written)
{
    meta_map *map;
    int rc = meta_load(m, &map);
    if (rc != 0)
        return rc;
    if (meta_map_table(map, s->name)) {
        meta_map_release(map);
        return CAIRN_ERR_EXISTS;
    }
    etcd_txn *t = etcd_txn_new();
    rc = t ? build_first(map, m->prefix, s, p, t, written) : CAIRN_ERR_NOMEM;
    meta_map_release(map);
    return meta_txn_finish(m, t, rc, CAIRN_ERR_BUSY, &p->tb->mod_revision);
}

/* The other ranges, META_TXN_OPS per transaction, each under the compare
 * that the table record is still the one the first transaction wrote: a
 * create that was rolled back (DROPPING, or deleted) or dropped meanwhile
 * fails here (CAIRN_ERR_CONDITION) instead of bringing ranges back to a
 * table that is going away. */
static int create_rest(meta *m, const plan *p, size_t from)
{
    buf key = BUF_INIT;
    int rc = meta_key_table(&key, m->prefix, p->tb->name);
    for (size_t i = from; rc == 0 && i < p->n; i += META_TXN_OPS) {
        size_t to = i + META_TXN_OPS < p->n ? i + META_TXN_OPS : p->n;
        etcd_txn *t = etcd_txn_new();
        rc = t ? etcd_txn_cmp(t, key.data, key.len, ETCD_CMP_MOD,
                              ETCD_CMP_EQUAL, p->tb->mod_revision)
               : CAIRN_ERR_NOMEM;
        if (rc == 0)
            rc = txn_add_ranges(t, m->prefix, p, i, to);
        rc = meta_txn_finish(m, t, rc, CAIRN_ERR_CONDITION, NULL);
    }
    buf_free(&key);
    return rc;
}

int meta_table_create(meta *m, const meta_table_spec *spec, meta_table *out)
{
    int rc = check_spec(spec);
    if (rc != 0)
        return rc;
    meta_table tb = {.engine = spec->engine,
                     .replicas = spec->replicas,
                     .state = META_TABLE_CREATING};
    strcpy(tb.name, spec->name);
    plan p = {.tb = &tb, .n = spec->n_splits + 1};
    p.rgs = calloc(p.n, sizeof *p.rgs);
    if (p.rgs == NULL)
        return CAIRN_ERR_NOMEM;
    size_t written = 0;
    rc = CAIRN_ERR_BUSY;
    for (int i = 0; i < TABLE_RETRIES && rc == CAIRN_ERR_BUSY; i++)
        rc = create_first(m, spec, &p, &written);
    if (rc == 0 && written < p.n && (rc = create_rest(m, &p, written)) != 0) {
        /* Part of the ranges are missing: take the table back out now, so
         * that nobody waits for it. If etcd cannot be reached for that
         * either, the controller rolls the CREATING table back later (its
         * ranges do not cover the key space: meta_map_ranges_cover). The
         * cause of the failure is what the caller needs to know, so keep
         * rc and etcd's text of it. */
        char why[512];
        snprintf(why, sizeof why, "%s", etcd_last_error());
        meta_table_delete(m, tb.name, tb.id);
        etcd_restore_last_error(why);
    }
    free(p.rgs);
    if (rc == 0 && out)
        *out = tb;
    return rc;
}

int meta_table_get(meta *m, const char *name, meta_table *out)
{
    if (meta_table_name_check(name) != 0)
        return CAIRN_ERR_INVALID;
    buf key = BUF_INIT;
    etcd_kv kv;
    int rc = meta_key_table(&key, m->prefix, name);
    if (rc == 0)
        rc = etcd_get(m->c, key.data, key.len, 0, &kv, NULL);
    buf_free(&key);
    if (rc == CAIRN_ERR_NOT_FOUND)
        return CAIRN_ERR_NO_TABLE;
    if (rc != 0)
        return rc;
    memset(out, 0, sizeof *out);
    rc = meta_table_decode(kv.value, kv.value_len, out);
    strcpy(out->name, name);
    out->mod_revision = kv.mod_revision;
    etcd_kv_free(&kv);
    return rc;
}

/* Write `tb` (its state changed) if the record is still at the revision
 * it was read at. 0, CAIRN_ERR_BUSY (changed meanwhile) or an error. */
static int table_cas(meta *m, const meta_table *tb)
{
    buf key = BUF_INIT;
    char *v = meta_table_encode(tb);
    etcd_txn *t = etcd_txn_new();
    int rc = v && t ? meta_key_table(&key, m->prefix, tb->name)
                    : CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = meta_txn_cas_put(t, &key, tb->mod_revision, v);
    rc = meta_txn_finish(m, t, rc, CAIRN_ERR_BUSY, NULL);
    free(v);
    buf_free(&key);
    return rc;
}

/* End a create: CREATING -> `to`, only for the table `id` (the name may
 * have been dropped and taken again) and only if still CREATING. */
static int finish_create(meta *m, const char *name, uint64_t id,
                         meta_table_state to)
{
    int rc = CAIRN_ERR_BUSY;
    for (int i = 0; i < TABLE_RETRIES && rc == CAIRN_ERR_BUSY; i++) {
        meta_table tb;
        rc = meta_table_get(m, name, &tb);
        if (rc == 0 && tb.id != id)
            rc = CAIRN_ERR_NO_TABLE;
        if (rc == 0 && tb.state != META_TABLE_CREATING)
            rc = CAIRN_ERR_CONDITION;
        if (rc == 0) {
            tb.state = to;
            rc = table_cas(m, &tb);
        }
    }
    return rc;
}

int meta_table_set_ready(meta *m, const char *name, uint64_t id)
{
    return finish_create(m, name, id, META_TABLE_READY);
}

int meta_table_abandon(meta *m, const char *name, uint64_t id)
{
    return finish_create(m, name, id, META_TABLE_DROPPING);
}

int meta_table_drop(meta *m, const char *name, meta_table *out)
{
    int rc = CAIRN_ERR_BUSY;
    for (int i = 0; i < TABLE_RETRIES && rc == CAIRN_ERR_BUSY; i++) {
        meta_table tb;
        rc = meta_table_get(m, name, &tb);
        if (rc == 0 && tb.state == META_TABLE_DROPPING)
            rc = CAIRN_ERR_NO_TABLE;
        if (rc == 0) {
            tb.state = META_TABLE_DROPPING;
            rc = table_cas(m, &tb);
            if (rc == 0 && out)
                *out = tb;
        }
    }
    return rc;
}

/* The ids of a table's ranges (a new array of *n). */
static int table_range_ids(meta *m, uint64_t table_id, uint64_t **ids,
                           size_t *n)
{
    buf key = BUF_INIT;
    uint8_t end[META_PREFIX_MAX + 64];
    etcd_range_result r = {0};
    int rc = meta_key_table_ranges(&key, m->prefix, table_id);
    size_t end_len = etcd_prefix_end(key.data, key.len, end);
    if (rc == 0)
        rc = etcd_range(m->c, key.data, key.len, end, end_len, 0, 0, &r);
    *ids = rc == 0 ? calloc(r.count + 1, sizeof **ids) : NULL;
    if (rc == 0 && !*ids)
        rc = CAIRN_ERR_NOMEM;
    *n = 0;
    for (size_t i = 0; rc == 0 && i < r.count; i++) {
        meta_key k;
        if (meta_key_parse(m->prefix, r.kvs[i].key, r.kvs[i].key_len, &k) == 0 &&
            k.kind == META_KEY_RANGE)
            (*ids)[(*n)++] = k.b;
    }
    etcd_range_free(&r);
    buf_free(&key);
    return rc;
}

/* Delete leader records of ranges that no longer exist, in batches (a
 * table may have more ranges than a transaction may have operations). */
static int delete_leaders(meta *m, const uint64_t *ids, size_t n)
{
    buf key = BUF_INIT;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += META_TXN_OPS) {
        etcd_txn *t = etcd_txn_new();
        rc = t ? 0 : CAIRN_ERR_NOMEM;
        for (size_t j = i; rc == 0 && j < n && j < i + META_TXN_OPS; j++) {
            rc = meta_key_leader(&key, m->prefix, ids[j]);
            if (rc == 0)
                rc = etcd_txn_delete(t, true, key.data, key.len, NULL, 0);
        }
        rc = meta_txn_finish(m, t, rc, CAIRN_ERR_BUSY, NULL);
    }
    buf_free(&key);
    return rc;
}

/* The table record and all its ranges go in one transaction, under the
 * compare that the table is as read. */
static int delete_table_txn(meta *m, const meta_table *tb)
{
    buf key = BUF_INIT;
    uint8_t end[META_PREFIX_MAX + 64];
    etcd_txn *t = etcd_txn_new();
    int rc = t ? meta_key_table(&key, m->prefix, tb->name) : CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = etcd_txn_cmp(t, key.data, key.len, ETCD_CMP_MOD, ETCD_CMP_EQUAL,
                          tb->mod_revision);
    if (rc == 0)
        rc = etcd_txn_delete(t, true, key.data, key.len, NULL, 0);
    if (rc == 0)
        rc = meta_key_table_ranges(&key, m->prefix, tb->id);
    if (rc == 0) {
        size_t end_len = etcd_prefix_end(key.data, key.len, end);
        rc = etcd_txn_delete(t, true, key.data, key.len, end, end_len);
    }
    rc = meta_txn_finish(m, t, rc, CAIRN_ERR_BUSY, NULL);
    buf_free(&key);
    return rc;
}

int meta_table_delete(meta *m, const char *name, uint64_t id)
{
    int rc = CAIRN_ERR_BUSY;
    for (int i = 0; i < TABLE_RETRIES && rc == CAIRN_ERR_BUSY; i++) {
        meta_table tb;
        uint64_t *ids = NULL;
        size_t n = 0;
        rc = meta_table_get(m, name, &tb);
        if (rc == 0 && tb.id != id)
            rc = CAIRN_ERR_NO_TABLE;
        if (rc == 0 && tb.state == META_TABLE_READY)
            rc = CAIRN_ERR_CONDITION;
        if (rc == 0)
            rc = table_range_ids(m, id, &ids, &n);
        if (rc == 0)
            rc = delete_table_txn(m, &tb);
        if (rc == 0)
            rc = delete_leaders(m, ids, n);
        free(ids);
    }
    return rc;
}
