#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/grow.h"

struct cache_node {
    uint64_t id;
    char addr[ROUTER_ADDR_MAX + 1];
};

struct router_cache {
    int64_t revision;
    router_table *tables;
    size_t ntables, tcap;
    struct cache_node *nodes;
    size_t nnodes, ncap;
    router_range *sources; /* of migrating ranges: by id only */
    size_t nsources, scap;
};


router_cache *router_cache_new(int64_t revision)
{
    router_cache *c = calloc(1, sizeof *c);
    if (c != NULL)
        c->revision = revision;
    return c;
}

static void range_free(router_range *r)
{
    free(r->start);
    free(r->end);
}

void router_cache_free(router_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->ntables; i++) {
        for (size_t j = 0; j < c->tables[i].nranges; j++)
            range_free(&c->tables[i].ranges[j]);
        free(c->tables[i].ranges);
    }
    for (size_t i = 0; i < c->nsources; i++)
        range_free(&c->sources[i]);
    free(c->sources);
    free(c->tables);
    free(c->nodes);
    free(c);
}

int64_t router_cache_revision(const router_cache *c)
{
    return c->revision;
}

int router_cache_add_table(router_cache *c, const char *name, uint64_t id,
                           int engine, int replicas, router_table_state st)
{
    size_t len = strlen(name);
    if (len == 0 || len > CAIRN_TABLE_NAME_MAX)
        return CAIRN_ERR_INVALID;
    if (router_cache_table(c, (const uint8_t *)name, len) != NULL ||
        router_cache_table_by_id(c, id) != NULL)
        return CAIRN_ERR_EXISTS;
    if (grow_array((void **)&c->tables, c->ntables, &c->tcap,
                   sizeof *c->tables, 8))
        return CAIRN_ERR_NOMEM;
    router_table *t = &c->tables[c->ntables++];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len + 1);
    t->id = id;
    t->engine = engine;
    t->replicas = replicas;
    t->state = st;
    return 0;
}

static int dup_bytes(uint8_t **out, const uint8_t *p, size_t n)
{
    *out = NULL;
    if (n == 0)
        return 0;
    *out = malloc(n);
    if (*out == NULL)
        return CAIRN_ERR_NOMEM;
    memcpy(*out, p, n);
    return 0;
}

/* A copy of `r` that owns its bounds. */
static int range_dup(router_range *copy, const router_range *r)
{
    *copy = *r;
    if (dup_bytes(&copy->start, r->start, r->start_len) != 0)
        return CAIRN_ERR_NOMEM;
    if (dup_bytes(&copy->end, r->end, r->end_len) != 0) {
        free(copy->start);
        return CAIRN_ERR_NOMEM;
    }
    return 0;
}

int router_cache_add_source(router_cache *c, const router_range *r)
{
    if (r->nreplicas < 0 || r->nreplicas > ROUTER_REPLICAS_MAX)
        return CAIRN_ERR_INVALID;
    if (router_cache_range(c, r->id) != NULL)
        return CAIRN_ERR_EXISTS;
    if (grow_array((void **)&c->sources, c->nsources, &c->scap,
                   sizeof *c->sources, 4))
        return CAIRN_ERR_NOMEM;
    if (range_dup(&c->sources[c->nsources], r) != 0)
        return CAIRN_ERR_NOMEM;
    c->nsources++;
    return 0;
}

int router_cache_add_range(router_cache *c, uint64_t table_id,
                           const router_range *r)
{
    router_table *t = (router_table *)router_cache_table_by_id(c, table_id);
    if (t == NULL || r->nreplicas < 0 || r->nreplicas > ROUTER_REPLICAS_MAX)
        return CAIRN_ERR_INVALID;
    if (router_cache_range(c, r->id) != NULL)
        return CAIRN_ERR_EXISTS;
    if (grow_array((void **)&t->ranges, t->nranges, &t->cap,
                   sizeof *t->ranges, 8))
        return CAIRN_ERR_NOMEM;
    router_range copy;
    if (range_dup(&copy, r) != 0)
        return CAIRN_ERR_NOMEM;
    t->ranges[t->nranges++] = copy;
    return 0;
}

int router_cache_add_node(router_cache *c, uint64_t node_id,
                          const char *addr)
{
    size_t len = strlen(addr);
    if (len == 0 || len > ROUTER_ADDR_MAX)
        return CAIRN_ERR_INVALID;
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].id == node_id) {
            memcpy(c->nodes[i].addr, addr, len + 1);
            return 0;
        }
    if (grow_array((void **)&c->nodes, c->nnodes, &c->ncap, sizeof *c->nodes,
                   8))
        return CAIRN_ERR_NOMEM;
    c->nodes[c->nnodes].id = node_id;
    memcpy(c->nodes[c->nnodes].addr, addr, len + 1);
    c->nnodes++;
    return 0;
}

static int range_start_cmp(const void *a, const void *b)
{
    const router_range *x = a, *y = b;
    return key_cmp(x->start, x->start_len, y->start, y->start_len);
}

void router_cache_seal(router_cache *c)
{
    for (size_t i = 0; i < c->ntables; i++) {
        router_table *t = &c->tables[i];
        if (t->nranges > 1)
            qsort(t->ranges, t->nranges, sizeof *t->ranges, range_start_cmp);
    }
}

const router_table *router_cache_table(const router_cache *c,
                                       const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < c->ntables; i++)
        if (strlen(c->tables[i].name) == len &&
            memcmp(c->tables[i].name, name, len) == 0)
            return &c->tables[i];
    return NULL;
}

const router_table *router_cache_table_by_id(const router_cache *c,
                                             uint64_t id)
{
    for (size_t i = 0; i < c->ntables; i++)
        if (c->tables[i].id == id)
            return &c->tables[i];
    return NULL;
}

size_t router_cache_table_count(const router_cache *c)
{
    return c->ntables;
}

const router_table *router_cache_table_at(const router_cache *c, size_t i)
{
    return i < c->ntables ? &c->tables[i] : NULL;
}

static bool key_below_end(const router_range *r, const uint8_t *key,
                          size_t len)
{
    return r->end_len == 0 ||
           key_cmp(key, len, r->end, r->end_len) < 0;
}

const router_range *router_cache_lookup(const router_table *t,
                                        const uint8_t *key, size_t len)
{
    /* Binary search for the last range whose start <= key. */
    size_t lo = 0, hi = t->nranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const router_range *r = &t->ranges[mid];
        if (key_cmp(r->start, r->start_len, key, len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const router_range *r = &t->ranges[lo - 1];
    /* A gap in the tiling (an unfinished split in the snapshot) must not
     * route a key to a range that does not hold it. */
    return key_below_end(r, key, len) ? r : NULL;
}

const router_range *router_cache_next(const router_table *t,
                                      const router_range *r)
{
    size_t i = (size_t)(r - t->ranges);
    if (i + 1 >= t->nranges || r->end_len == 0)
        return NULL;
    const router_range *n = &t->ranges[i + 1];
    /* Only a range that starts exactly where `r` ends continues it. */
    if (key_cmp(n->start, n->start_len, r->end, r->end_len) != 0)
        return NULL;
    return n;
}

router_range *router_cache_range(router_cache *c, uint64_t range_id)
{
    for (size_t i = 0; i < c->ntables; i++)
        for (size_t j = 0; j < c->tables[i].nranges; j++)
            if (c->tables[i].ranges[j].id == range_id)
                return &c->tables[i].ranges[j];
    for (size_t i = 0; i < c->nsources; i++)
        if (c->sources[i].id == range_id)
            return &c->sources[i];
    return NULL;
}

void router_cache_set_leader(router_cache *c, uint64_t range_id,
                             uint64_t node_id, uint64_t term)
{
    router_range *r = router_cache_range(c, range_id);
    if (r == NULL)
        return;
    if (term != 0 && term < r->leader_term)
        return;
    r->leader = node_id;
    if (term != 0)
        r->leader_term = term;
}

const char *router_cache_node_addr(const router_cache *c, uint64_t node_id)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].id == node_id)
            return c->nodes[i].addr;
    return NULL;
}
