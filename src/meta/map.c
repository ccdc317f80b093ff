/*
 * map.c - the in-memory metadata map (meta.h, "the map"): sorted arrays,
 * binary searches, and the application of etcd events.
 *
 * Every kind of record lives in one array sorted by its natural key
 * (tables by name, ranges per table by start key, leaders and nodes by
 * id). Updates insert or remove in place: metadata is small (thousands of
 * ranges), lookups are the hot path.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/grow.h"
#include "meta/map_internal.h"
#include "meta/schema.h"

/* ---- small shared helpers of meta.h ----------------------------------- */

void meta_range_clear(meta_range *r)
{
    free(r->start);
    free(r->end);
    r->start = r->end = NULL;
    r->start_len = r->end_len = 0;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n, bool *ok)
{
    if (n == 0)
        return NULL;
    uint8_t *d = malloc(n);
    if (!d)
        *ok = false;
    else
        memcpy(d, p, n);
    return d;
}

int meta_range_copy(meta_range *dst, const meta_range *src)
{
    bool ok = true;
    *dst = *src;
    dst->start = dup_bytes(src->start, src->start_len, &ok);
    dst->end = dup_bytes(src->end, src->end_len, &ok);
    if (!ok) {
        meta_range_clear(dst);
        return CAIRN_ERR_NOMEM;
    }
    return CAIRN_OK;
}

bool meta_range_contains(const meta_range *r, const void *key, size_t len)
{
    if (key_cmp(key, len, r->start, r->start_len) < 0)
        return false;
    return r->end_len == 0 || key_cmp(key, len, r->end, r->end_len) < 0;
}

int meta_table_name_check(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > CAIRN_TABLE_NAME_MAX)
        return CAIRN_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return CAIRN_ERR_INVALID;
    }
    return CAIRN_OK;
}

const char *meta_engine_name(meta_engine e)
{
    return e == META_ENGINE_LSM ? "lsm" : "btree";
}

int meta_engine_parse(const char *s, meta_engine *out)
{
    if (strcmp(s, "btree") == 0)
        *out = META_ENGINE_BTREE;
    else if (strcmp(s, "lsm") == 0)
        *out = META_ENGINE_LSM;
    else
        return CAIRN_ERR_INVALID;
    return CAIRN_OK;
}

/* ---- life ------------------------------------------------------------- */

int meta_map_new(const char *prefix, meta_map **out)
{
    meta_map *m = calloc(1, sizeof *m);
    if (!m)
        return CAIRN_ERR_NOMEM;
    atomic_init(&m->refs, 1);
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
    *out = m;
    return CAIRN_OK;
}

static void rset_free(meta_rset *s)
{
    for (size_t i = 0; i < s->n; i++)
        meta_range_clear(&s->v[i]);
    free(s->v);
}

static void map_free(meta_map *m)
{
    for (size_t i = 0; i < m->n_rsets; i++)
        rset_free(&m->rsets[i]);
    free(m->rsets);
    free(m->tables);
    free(m->leaders);
    free(m->nodes);
    free(m->live);
    free(m->healths);
    free(m->drains);
    free(m->moves);
    free(m->relocations);
    free(m);
}

void meta_map_retain(meta_map *map) { atomic_fetch_add(&map->refs, 1); }

void meta_map_release(meta_map *map)
{
    if (map && atomic_fetch_sub(&map->refs, 1) == 1)
        map_free(map);
}

/* Copy n elements of size sz (NULL when n is 0). */
static void *dup_array(const void *p, size_t n, size_t sz, bool *ok)
{
    if (n == 0)
        return NULL;
    void *d = malloc(n * sz);
    if (!d)
        *ok = false;
    else
        memcpy(d, p, n * sz);
    return d;
}

int meta_map_clone(const meta_map *map, meta_map **out)
{
    meta_map *m;
    if (meta_map_new(map->prefix, &m) != 0)
        return CAIRN_ERR_NOMEM;
    bool ok = true;
    m->revision = map->revision;
    m->skipped = map->skipped;
    memcpy(m->ids, map->ids, sizeof m->ids);
    memcpy(m->ids_rev, map->ids_rev, sizeof m->ids_rev);
#define DUP_(f, n)                                                            \
    m->f = dup_array(map->f, map->n, sizeof *map->f, &ok);                    \
    m->cap_##f = m->n = ok ? map->n : 0;
    DUP_(tables, n_tables)
    DUP_(leaders, n_leaders)
    DUP_(nodes, n_nodes)
    DUP_(live, n_live)
    DUP_(rsets, n_rsets)
    DUP_(healths, n_healths)
    DUP_(drains, n_drains)
    DUP_(moves, n_moves)
    DUP_(relocations, n_relocations)
#undef DUP_
    m->balance = map->balance;
    m->has_balance = map->has_balance;
    /* Ranges own their bounds: deep-copy each set. */
    for (size_t i = 0; i < m->n_rsets; i++) {
        meta_rset *s = &m->rsets[i];
        const meta_rset *o = &map->rsets[i];
        s->v = calloc(o->n ? o->n : 1, sizeof *s->v);
        s->n = s->cap = 0;
        if (!s->v) {
            ok = false;
            continue;
        }
        s->cap = o->n ? o->n : 1;
        for (size_t j = 0; j < o->n && ok; j++) {
            if (meta_range_copy(&s->v[j], &o->v[j]) != 0)
                ok = false;
            else
                s->n++;
        }
    }
    if (!ok) {
        map_free(m);
        return CAIRN_ERR_NOMEM;
    }
    *out = m;
    return CAIRN_OK;
}

/* ---- generic sorted-array helpers ------------------------------------- */

/* Index of the first element whose u64 id (at `off` in each element of
 * size sz) is >= id. */
static size_t lower_u64(const void *v, size_t n, size_t sz, size_t off,
                        uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t x;
        memcpy(&x, (const char *)v + mid * sz + off, sizeof x);
        if (x < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void remove_at(void *v, size_t *n, size_t sz, size_t i)
{
    memmove((char *)v + i * sz, (char *)v + (i + 1) * sz, (*n - i - 1) * sz);
    (*n)--;
}

static void insert_at(void *v, size_t *n, size_t sz, size_t i, const void *e)
{
    memmove((char *)v + (i + 1) * sz, (char *)v + i * sz, (*n - i) * sz);
    memcpy((char *)v + i * sz, e, sz);
    (*n)++;
}

/* ---- lookups ---------------------------------------------------------- */

int64_t meta_map_revision(const meta_map *map) { return map->revision; }

size_t meta_map_skipped(const meta_map *map) { return map->skipped; }

size_t meta_map_table_count(const meta_map *map) { return map->n_tables; }

const meta_table *meta_map_table_at(const meta_map *map, size_t i)
{
    return i < map->n_tables ? &map->tables[i] : NULL;
}

/* Index of the first table whose name is >= name. */
static size_t table_lower(const meta_map *map, const char *name)
{
    size_t lo = 0, hi = map->n_tables;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(map->tables[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const meta_table *meta_map_table(const meta_map *map, const char *name)
{
    size_t i = table_lower(map, name);
    if (i < map->n_tables && strcmp(map->tables[i].name, name) == 0)
        return &map->tables[i];
    return NULL;
}

const meta_table *meta_map_table_by_id(const meta_map *map, uint64_t id)
{
    for (size_t i = 0; i < map->n_tables; i++)
        if (map->tables[i].id == id)
            return &map->tables[i];
    return NULL;
}

static meta_rset *rset_find(const meta_map *map, uint64_t table_id)
{
    size_t i = lower_u64(map->rsets, map->n_rsets, sizeof *map->rsets,
                         offsetof(meta_rset, table_id), table_id);
    if (i < map->n_rsets && map->rsets[i].table_id == table_id)
        return &map->rsets[i];
    return NULL;
}

const meta_range *meta_map_ranges(const meta_map *map, uint64_t table_id,
                                  size_t *n)
{
    const meta_rset *s = rset_find(map, table_id);
    *n = s ? s->n : 0;
    return s && s->n ? s->v : NULL;
}

bool meta_map_ranges_cover(const meta_map *map, uint64_t table_id)
{
    size_t n = 0;
    const meta_range *v = meta_map_ranges(map, table_id, &n);
    if (n == 0 || v[0].start_len != 0 || v[n - 1].end_len != 0)
        return false;
    for (size_t i = 0; i + 1 < n; i++)
        if (v[i].end_len == 0 ||
            key_cmp(v[i].end, v[i].end_len, v[i + 1].start,
                    v[i + 1].start_len) != 0)
            return false;
    return true;
}

const meta_range *meta_map_range_for(const meta_map *map, uint64_t table_id,
                                     const void *key, size_t len)
{
    const meta_rset *s = rset_find(map, table_id);
    if (!s)
        return NULL;
    /* The last range whose start is <= key, then check its end. */
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (key_cmp(s->v[mid].start, s->v[mid].start_len, key, len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || !meta_range_contains(&s->v[lo - 1], key, len))
        return NULL;
    return &s->v[lo - 1];
}

int meta_map_route(const meta_map *map, const char *table, const void *key,
                   size_t len, const meta_range **out)
{
    const meta_table *t = meta_map_table(map, table);
    if (!t || t->state != META_TABLE_READY)
        return CAIRN_ERR_NO_TABLE;
    *out = meta_map_range_for(map, t->id, key, len);
    return *out ? CAIRN_OK : CAIRN_ERR_RANGE_NOT_FOUND;
}

const meta_range *meta_map_range(const meta_map *map, uint64_t range_id)
{
    for (size_t i = 0; i < map->n_rsets; i++)
        for (size_t j = 0; j < map->rsets[i].n; j++)
            if (map->rsets[i].v[j].id == range_id)
                return &map->rsets[i].v[j];
    return NULL;
}

const meta_leader *meta_map_leader(const meta_map *map, uint64_t range_id)
{
    size_t i = lower_u64(map->leaders, map->n_leaders, sizeof *map->leaders,
                         offsetof(meta_leader, range_id), range_id);
    if (i < map->n_leaders && map->leaders[i].range_id == range_id)
        return &map->leaders[i];
    return NULL;
}

size_t meta_map_node_count(const meta_map *map) { return map->n_nodes; }

const meta_node *meta_map_node_at(const meta_map *map, size_t i)
{
    return i < map->n_nodes ? &map->nodes[i] : NULL;
}

const meta_node *meta_map_node(const meta_map *map, uint64_t id)
{
    size_t i = lower_u64(map->nodes, map->n_nodes, sizeof *map->nodes,
                         offsetof(meta_node, id), id);
    if (i < map->n_nodes && map->nodes[i].id == id)
        return &map->nodes[i];
    return NULL;
}

/* The controller's records: arrays of structs whose first field is the
 * u64 id they are sorted by. */
static const void *find_by_id(const void *v, size_t n, size_t sz, uint64_t id)
{
    size_t i = lower_u64(v, n, sz, 0, id);
    if (i < n) {
        uint64_t x;
        memcpy(&x, (const char *)v + i * sz, sizeof x);
        if (x == id)
            return (const char *)v + i * sz;
    }
    return NULL;
}

const meta_health *meta_map_health(const meta_map *map, uint64_t node_id)
{
    return find_by_id(map->healths, map->n_healths, sizeof *map->healths,
                      node_id);
}

const meta_drain *meta_map_drain(const meta_map *map, uint64_t node_id)
{
    return find_by_id(map->drains, map->n_drains, sizeof *map->drains,
                      node_id);
}

size_t meta_map_move_count(const meta_map *map) { return map->n_moves; }

const meta_move *meta_map_move_at(const meta_map *map, size_t i)
{
    return i < map->n_moves ? &map->moves[i] : NULL;
}

const meta_move *meta_map_move(const meta_map *map, uint64_t range_id)
{
    return find_by_id(map->moves, map->n_moves, sizeof *map->moves, range_id);
}

size_t meta_map_relocation_count(const meta_map *map)
{
    return map->n_relocations;
}

const meta_relocation *meta_map_relocation_at(const meta_map *map, size_t i)
{
    return i < map->n_relocations ? &map->relocations[i] : NULL;
}

const meta_relocation *meta_map_relocation(const meta_map *map,
                                           uint64_t range_id)
{
    return find_by_id(map->relocations, map->n_relocations,
                      sizeof *map->relocations, range_id);
}

const meta_balance *meta_map_balance(const meta_map *map)
{
    return map->has_balance ? &map->balance : NULL;
}

/* ---- updates ---------------------------------------------------------- */

/* Insert or replace element `e` (its id first) in a sorted array. */
static int put_by_id(void **v, size_t *n, size_t *cap, size_t sz,
                     const void *e)
{
    uint64_t id;
    memcpy(&id, e, sizeof id);
    size_t i = lower_u64(*v, *n, sz, 0, id);
    if (i < *n) {
        uint64_t x;
        memcpy(&x, (char *)*v + i * sz, sizeof x);
        if (x == id) {
            memcpy((char *)*v + i * sz, e, sz);
            return CAIRN_OK;
        }
    }
    if (grow_array(v, *n, cap, sz, 8) != 0)
        return CAIRN_ERR_NOMEM;
    insert_at(*v, n, sz, i, e);
    return CAIRN_OK;
}

static void del_by_id(void *v, size_t *n, size_t sz, uint64_t id)
{
    size_t i = lower_u64(v, *n, sz, 0, id);
    if (i < *n) {
        uint64_t x;
        memcpy(&x, (char *)v + i * sz, sizeof x);
        if (x == id)
            remove_at(v, n, sz, i);
    }
}

static int apply_ctl_record(meta_map *m, const meta_key *k,
                            const etcd_event *ev)
{
    bool put = ev->type == ETCD_EVENT_PUT;
    const etcd_kv *kv = &ev->kv;
    switch (k->kind) {
    case META_KEY_HEALTH: {
        meta_health h;
        if (!put) {
            del_by_id(m->healths, &m->n_healths, sizeof h, k->a);
            return CAIRN_OK;
        }
        if (meta_health_decode(kv->value, kv->value_len, &h) != 0)
            return CAIRN_ERR_CORRUPT;
        h.node_id = k->a;
        h.mod_revision = kv->mod_revision;
        return put_by_id((void **)&m->healths, &m->n_healths,
                         &m->cap_healths, sizeof h, &h);
    }
    case META_KEY_DRAIN: {
        meta_drain d = {0};
        if (!put) {
            del_by_id(m->drains, &m->n_drains, sizeof d, k->a);
            return CAIRN_OK;
        }
        if (meta_drain_decode(kv->value, kv->value_len, &d) != 0)
            return CAIRN_ERR_CORRUPT;
        d.node_id = k->a;
        d.mod_revision = kv->mod_revision;
        return put_by_id((void **)&m->drains, &m->n_drains, &m->cap_drains,
                         sizeof d, &d);
    }
    case META_KEY_MOVE: {
        meta_move mv;
        if (!put) {
            del_by_id(m->moves, &m->n_moves, sizeof mv, k->a);
            return CAIRN_OK;
        }
        if (meta_move_decode(kv->value, kv->value_len, &mv) != 0)
            return CAIRN_ERR_CORRUPT;
        mv.range_id = k->a;
        mv.mod_revision = kv->mod_revision;
        return put_by_id((void **)&m->moves, &m->n_moves, &m->cap_moves,
                         sizeof mv, &mv);
    }
    case META_KEY_RELOCATION: {
        meta_relocation rl;
        if (!put) {
            del_by_id(m->relocations, &m->n_relocations, sizeof rl, k->a);
            return CAIRN_OK;
        }
        if (meta_relocation_decode(kv->value, kv->value_len, &rl) != 0)
            return CAIRN_ERR_CORRUPT;
        rl.range_id = k->a;
        rl.mod_revision = kv->mod_revision;
        return put_by_id((void **)&m->relocations, &m->n_relocations,
                         &m->cap_relocations, sizeof rl, &rl);
    }
    case META_KEY_BALANCE:
        m->has_balance = false;
        if (!put)
            return CAIRN_OK;
        if (meta_balance_decode(kv->value, kv->value_len, &m->balance) != 0)
            return CAIRN_ERR_CORRUPT;
        m->balance.mod_revision = kv->mod_revision;
        m->has_balance = true;
        return CAIRN_OK;
    default:
        return CAIRN_OK;
    }
}

static int put_table(meta_map *m, const meta_key *k, const etcd_kv *kv)
{
    meta_table t = {0};
    if (meta_table_decode(kv->value, kv->value_len, &t) != 0)
        return CAIRN_ERR_CORRUPT;
    snprintf(t.name, sizeof t.name, "%s", k->name);
    t.mod_revision = kv->mod_revision;
    size_t i = table_lower(m, t.name);
    if (i < m->n_tables && strcmp(m->tables[i].name, t.name) == 0) {
        m->tables[i] = t;
        return CAIRN_OK;
    }
    if (grow_array((void **)&m->tables, m->n_tables, &m->cap_tables, sizeof t,
                   8) != 0)
        return CAIRN_ERR_NOMEM;
    insert_at(m->tables, &m->n_tables, sizeof t, i, &t);
    return CAIRN_OK;
}

static void del_table(meta_map *m, const meta_key *k)
{
    size_t i = table_lower(m, k->name);
    if (i < m->n_tables && strcmp(m->tables[i].name, k->name) == 0)
        remove_at(m->tables, &m->n_tables, sizeof *m->tables, i);
}

static void del_range(meta_map *m, uint64_t table_id, uint64_t range_id)
{
    meta_rset *s = rset_find(m, table_id);
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].id == range_id) {
            meta_range_clear(&s->v[i]);
            remove_at(s->v, &s->n, sizeof *s->v, i);
            return;
        }
}

static meta_rset *rset_get(meta_map *m, uint64_t table_id)
{
    meta_rset *s = rset_find(m, table_id);
    if (s)
        return s;
    if (grow_array((void **)&m->rsets, m->n_rsets, &m->cap_rsets, sizeof *s,
                   8) != 0)
        return NULL;
    meta_rset fresh = {.table_id = table_id};
    size_t i = lower_u64(m->rsets, m->n_rsets, sizeof *m->rsets,
                         offsetof(meta_rset, table_id), table_id);
    insert_at(m->rsets, &m->n_rsets, sizeof fresh, i, &fresh);
    return &m->rsets[i];
}

static int put_range(meta_map *m, const meta_key *k, const etcd_kv *kv)
{
    meta_range r;
    if (meta_range_decode(kv->value, kv->value_len, &r) != 0)
        return CAIRN_ERR_CORRUPT;
    r.table_id = k->a; /* the key is authoritative */
    r.id = k->b;
    r.mod_revision = kv->mod_revision;
    del_range(m, r.table_id, r.id); /* its start may have changed */
    meta_rset *s = rset_get(m, r.table_id);
    if (!s || grow_array((void **)&s->v, s->n, &s->cap, sizeof r, 8) != 0) {
        meta_range_clear(&r);
        return CAIRN_ERR_NOMEM;
    }
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (key_cmp(s->v[mid].start, s->v[mid].start_len, r.start,
                         r.start_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    insert_at(s->v, &s->n, sizeof r, lo, &r);
    return CAIRN_OK;
}

static int put_leader(meta_map *m, const meta_key *k, const etcd_kv *kv)
{
    meta_leader l = {.range_id = k->a, .mod_revision = kv->mod_revision};
    if (meta_leader_decode(kv->value, kv->value_len, &l) != 0)
        return CAIRN_ERR_CORRUPT;
    size_t i = lower_u64(m->leaders, m->n_leaders, sizeof l,
                         offsetof(meta_leader, range_id), l.range_id);
    if (i < m->n_leaders && m->leaders[i].range_id == l.range_id) {
        m->leaders[i] = l;
        return CAIRN_OK;
    }
    if (grow_array((void **)&m->leaders, m->n_leaders, &m->cap_leaders,
                   sizeof l, 8) != 0)
        return CAIRN_ERR_NOMEM;
    insert_at(m->leaders, &m->n_leaders, sizeof l, i, &l);
    return CAIRN_OK;
}

static bool is_live(const meta_map *m, uint64_t id)
{
    size_t i = lower_u64(m->live, m->n_live, sizeof *m->live, 0, id);
    return i < m->n_live && m->live[i] == id;
}

static int put_node(meta_map *m, const meta_key *k, const etcd_kv *kv)
{
    meta_node nd = {.id = k->a, .mod_revision = kv->mod_revision};
    if (meta_node_decode(kv->value, kv->value_len, &nd) != 0)
        return CAIRN_ERR_CORRUPT;
    nd.live = is_live(m, nd.id);
    size_t i = lower_u64(m->nodes, m->n_nodes, sizeof nd,
                         offsetof(meta_node, id), nd.id);
    if (i < m->n_nodes && m->nodes[i].id == nd.id) {
        m->nodes[i] = nd;
        return CAIRN_OK;
    }
    if (grow_array((void **)&m->nodes, m->n_nodes, &m->cap_nodes, sizeof nd,
                   8) != 0)
        return CAIRN_ERR_NOMEM;
    insert_at(m->nodes, &m->n_nodes, sizeof nd, i, &nd);
    return CAIRN_OK;
}

/* Liveness is kept as a sorted id set, mirrored into the node records. */
static int set_live(meta_map *m, uint64_t id, bool live)
{
    size_t i = lower_u64(m->live, m->n_live, sizeof *m->live, 0, id);
    bool present = i < m->n_live && m->live[i] == id;
    if (live && !present) {
        if (grow_array((void **)&m->live, m->n_live, &m->cap_live, sizeof id,
                       8) != 0)
            return CAIRN_ERR_NOMEM;
        insert_at(m->live, &m->n_live, sizeof id, i, &id);
    } else if (!live && present) {
        remove_at(m->live, &m->n_live, sizeof id, i);
    }
    meta_node *nd = (meta_node *)meta_map_node(m, id);
    if (nd)
        nd->live = live;
    return CAIRN_OK;
}

static int apply_one(meta_map *m, const etcd_event *ev)
{
    meta_key k;
    if (meta_key_parse(m->prefix, ev->kv.key, ev->kv.key_len, &k) != 0)
        return CAIRN_OK; /* not ours */
    bool put = ev->type == ETCD_EVENT_PUT;
    size_t i;
    switch (k.kind) {
    case META_KEY_TABLE:
        if (put)
            return put_table(m, &k, &ev->kv);
        del_table(m, &k);
        return CAIRN_OK;
    case META_KEY_RANGE:
        if (put)
            return put_range(m, &k, &ev->kv);
        del_range(m, k.a, k.b);
        return CAIRN_OK;
    case META_KEY_LEADER:
        if (put)
            return put_leader(m, &k, &ev->kv);
        i = lower_u64(m->leaders, m->n_leaders, sizeof *m->leaders,
                      offsetof(meta_leader, range_id), k.a);
        if (i < m->n_leaders && m->leaders[i].range_id == k.a)
            remove_at(m->leaders, &m->n_leaders, sizeof *m->leaders, i);
        return CAIRN_OK;
    case META_KEY_NODE:
        if (put)
            return put_node(m, &k, &ev->kv);
        i = lower_u64(m->nodes, m->n_nodes, sizeof *m->nodes,
                      offsetof(meta_node, id), k.a);
        if (i < m->n_nodes && m->nodes[i].id == k.a)
            remove_at(m->nodes, &m->n_nodes, sizeof *m->nodes, i);
        return CAIRN_OK;
    case META_KEY_LIVE:
        return set_live(m, k.a, put);
    case META_KEY_ID:
        m->ids[k.a] = 0;
        m->ids_rev[k.a] = put ? ev->kv.mod_revision : 0;
        if (put && meta_counter_decode(ev->kv.value, ev->kv.value_len,
                                       &m->ids[k.a]) != 0)
            return CAIRN_ERR_CORRUPT;
        return CAIRN_OK;
    case META_KEY_HEALTH:
    case META_KEY_DRAIN:
    case META_KEY_MOVE:
    case META_KEY_RELOCATION:
    case META_KEY_BALANCE:
        return apply_ctl_record(m, &k, ev);
    case META_KEY_OTHER:
        return CAIRN_OK;
    }
    return CAIRN_OK;
}

int meta_map_apply(meta_map *map, const etcd_event *events, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = apply_one(map, &events[i]);
        if (rc == CAIRN_ERR_NOMEM)
            return rc;
        if (rc != 0)
            map->skipped++;
        if (events[i].kv.mod_revision > map->revision)
            map->revision = events[i].kv.mod_revision;
    }
    return CAIRN_OK;
}
