/*
 * cache.h - the router's routing cache: tables, ranges, leaders, nodes.
 *
 * The request manager keeps an in-memory copy of the metadata (MISSION.md,
 * "Architecture"): which tables exist, each table's ranges [start, end) in
 * key order, each range's replicas and last known leader, and each node's
 * address. A cache is built whole from one metadata snapshot (the loader
 * adds tables, ranges and nodes, then seals it) and is then read-only,
 * except for leader hints: a NOT_LEADER reply names the current leader and
 * router_cache_set_leader records it so the next request goes there
 * directly (DESIGN.md, "cairn router").
 *
 * A fresher snapshot replaces the whole cache; no lookup result survives
 * that (callers copy range id, epoch and leader into each request).
 * One loop thread owns a cache; it is not thread-safe.
 */
#ifndef CAIRN_ROUTER_CACHE_H
#define CAIRN_ROUTER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/key.h" /* key_cmp: routing */
#include "common/limits.h"

#define ROUTER_REPLICAS_MAX 7
#define ROUTER_ADDR_MAX 255

typedef enum router_table_state {
    ROUTER_TABLE_CREATING,
    ROUTER_TABLE_READY,
    ROUTER_TABLE_DROPPING,
} router_table_state;

typedef struct router_range {
    uint64_t id;
    uint64_t epoch;
    uint8_t *start; /* start_len 0: unbounded below */
    size_t start_len;
    uint8_t *end;   /* end_len 0: unbounded above */
    size_t end_len;
    uint64_t replicas[ROUTER_REPLICAS_MAX];
    int nreplicas;
    uint64_t leader; /* node id; 0 = unknown */
    uint64_t leader_term;
    bool migrating;  /* a move is in progress (dual read) */
    uint64_t migrating_from; /* its source: router_cache_range finds it */
    /* A TABLE.MOVE of the range under way (TABLE.INFO): its step + 1 (0:
     * none; meta_reloc_step), the new range and the copy's progress */
    int move_step;
    uint64_t move_dest, move_keys, move_bytes, move_ms;
} router_range;

typedef struct router_table {
    char name[CAIRN_TABLE_NAME_MAX + 1];
    uint64_t id;
    int engine;   /* 0 btree, 1 lsm */
    int replicas; /* replication factor */
    router_table_state state;
    router_range *ranges; /* in key order once sealed */
    size_t nranges;
    size_t cap;
} router_table;

typedef struct router_cache router_cache;

/* An empty cache (NULL when out of memory). `revision` is the metadata
 * revision it reflects (for INFO and for ignoring older snapshots). */
router_cache *router_cache_new(int64_t revision);
void router_cache_free(router_cache *c);
int64_t router_cache_revision(const router_cache *c);

/* Building (before router_cache_seal). Each returns 0, CAIRN_ERR_NOMEM,
 * CAIRN_ERR_INVALID (bad name, a range of an unknown table) or
 * CAIRN_ERR_EXISTS (duplicate id or name). `r->start`/`r->end` are copied. */
int router_cache_add_table(router_cache *c, const char *name, uint64_t id,
                           int engine, int replicas, router_table_state st);
int router_cache_add_range(router_cache *c, uint64_t table_id,
                           const router_range *r);
int router_cache_add_node(router_cache *c, uint64_t node_id,
                          const char *addr);
/* The source of a migrating range (its id, fenced epoch and replicas; the
 * same bounds): found by id (router_cache_range), never by key - the
 * destination owns the keys, the source is only read (router/migrate.c). */
int router_cache_add_source(router_cache *c, const router_range *r);

/* Sort every table's ranges by start key. Ranges need not tile the key
 * space (a snapshot taken mid-split may have a gap): router_cache_lookup
 * returns NULL for a key no range covers, and the router then refreshes
 * and retries instead of sending the request to a wrong range. */
void router_cache_seal(router_cache *c);

/* Tables, by name (any state) or id. NULL if absent. */
const router_table *router_cache_table(const router_cache *c,
                                       const uint8_t *name, size_t len);
const router_table *router_cache_table_by_id(const router_cache *c,
                                             uint64_t id);
size_t router_cache_table_count(const router_cache *c);
const router_table *router_cache_table_at(const router_cache *c, size_t i);

/* The range of `t` holding `key` (start <= key < end); NULL if no range
 * covers it. An empty key looks up the first range (scan from ""). */
const router_range *router_cache_lookup(const router_table *t,
                                        const uint8_t *key, size_t len);

/* The range of `t` that follows `r` in key order (NULL after the last). */
const router_range *router_cache_next(const router_table *t,
                                      const router_range *r);

/* A range by id, across tables, or a migrating range's source; NULL if
 * absent. */
router_range *router_cache_range(router_cache *c, uint64_t range_id);

/* Record a leader hint for a range (NOT_LEADER replies, leader keys). An
 * older term never replaces a newer one; term 0 = unknown (always taken:
 * hints from NOT_LEADER replies carry no term). */
void router_cache_set_leader(router_cache *c, uint64_t range_id,
                             uint64_t node_id, uint64_t term);

/* Address "host:port" of a node, NULL if unknown. */
const char *router_cache_node_addr(const router_cache *c, uint64_t node_id);

#endif
