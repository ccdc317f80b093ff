/*
 * map_internal.h - the layout of meta_map (internal to src/meta: map.c
 * builds it, meta.c reads the id counters from it for table creation).
 */
#ifndef CAIRN_META_MAP_INTERNAL_H
#define CAIRN_META_MAP_INTERNAL_H

#include <stdatomic.h>
#include <stdio.h>

#include "meta/meta.h"

/* The ranges of one table, sorted by start key. */
typedef struct meta_rset {
    uint64_t table_id;
    meta_range *v;
    size_t n, cap;
} meta_rset;

struct meta_map {
    atomic_int refs;
    char prefix[META_PREFIX_MAX + 1];
    int64_t revision;
    size_t skipped;
    meta_table *tables; /* by name */
    size_t n_tables, cap_tables;
    meta_rset *rsets; /* by table id */
    size_t n_rsets, cap_rsets;
    meta_leader *leaders; /* by range id */
    size_t n_leaders, cap_leaders;
    meta_node *nodes; /* by id */
    size_t n_nodes, cap_nodes;
    uint64_t *live; /* ids with a liveness key, sorted */
    size_t n_live, cap_live;
    /* The controller's records, each array sorted by its first field (a
     * node or range id). */
    meta_health *healths;
    size_t n_healths, cap_healths;
    meta_drain *drains;
    size_t n_drains, cap_drains;
    meta_move *moves;
    size_t n_moves, cap_moves;
    meta_relocation *relocations;
    size_t n_relocations, cap_relocations;
    meta_balance balance;
    bool has_balance;
    uint64_t ids[3];    /* id counters (meta_id_kind), last handed out */
    int64_t ids_rev[3]; /* their mod revisions, 0 = absent */
};

/* An empty map for `prefix` (one reference). */
int meta_map_new(const char *prefix, meta_map **out);

#endif
