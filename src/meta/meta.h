/*
 * meta.h - cairn's metadata schema on etcd: tables, ranges, leaders,
 * nodes and id counters, and the in-memory map the router routes with.
 *
 * Layout under a prefix P (default "/cairn"; several clusters may share an
 * etcd with different prefixes). Values are small JSON objects so that
 * `etcdctl get --prefix /cairn` is readable; binary range bounds are hex.
 *   P/tables/<name>                 table: id, engine, replicas, state
 *   P/ranges/<table id>/<range id>  range: [start, end), epoch, replicas,
 *                                   state (normal | migrating from range)
 *   P/leaders/<range id>            leader node and its Raft term
 *   P/nodes/<node id>               node: address, capacity
 *   P/live/<node id>                liveness: exists while the node's lease
 *                                   is kept alive
 *   P/ids/{node,table,range}        last id handed out (ids start at 1,
 *                                   0 means "none", never reused)
 *   P/health/<node id>              node state as the controller sees it:
 *                                   live | suspect | dead, and its figures
 *   P/drain/<node id>               the node is being drained (an operator
 *                                   asked: `cairn admin drain`)
 *   P/moves/<range id>              a membership change of the range under
 *                                   way (the controller's intent: add node
 *                                   X, remove node Y)
 *   P/relocations/<range id>        a move of the range to a new group
 *                                   (TABLE.MOVE: its steps, recorded)
 *   P/balance                       replica rebalancing under way
 *   P/controller                    the active controller's name, attached
 *                                   to its lease (meta_election)
 * (ids in keys are 16 lower-case hex digits so keys sort by id.)
 *
 * The rule (MISSION.md, metadata manager; DESIGN.md): every change is one
 * etcd transaction that compares the mod revision (or epoch/term) of what
 * it read - there are no blind writes, so two controllers or routers can
 * never interleave into a broken map. A compare that fails means somebody
 * else changed the data first: functions return CAIRN_ERR_CONDITION (or
 * retry internally where the operation is naturally retryable, such as id
 * allocation, and say so).
 *
 * Threads: a `meta` handle is as thread-safe as its etcd client (it is).
 * Every function taking a `meta *` BLOCKS on etcd (see etcd.h: call it
 * from uv_queue_work or a thread, never on a loop thread). The meta_map_*
 * lookups do no I/O and are fast; a meta_map is immutable once published
 * by a meta_cache, so many threads may read one snapshot at once.
 */
#ifndef CAIRN_META_META_H
#define CAIRN_META_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"
#include "common/seq.h" /* SEQ_HEX_LEN */
#include "meta/etcd.h"

#define META_PREFIX_DEFAULT "/cairn"
#define META_PREFIX_MAX 200
#define META_MAX_REPLICAS 8 /* 5 plus room for a membership change */
#define META_ADDR_MAX 128   /* "host:port" */
#define META_ZONE_MAX 64    /* `cairn node --zone Z` */
/* Most split keys of a table at creation (docs/API.md): 1,025 ranges. */
#define META_SPLITS_MAX 1024
/* Most operations this library puts in one etcd transaction. etcd refuses
 * more than --max-txn-ops (128 by default) in the compares or in either
 * branch; a few are kept for the compares and counters that go with a
 * batch. Anything larger - a table's ranges, a node's leader records - is
 * written in several transactions (see meta_table_create). */
#define META_TXN_OPS 100

typedef enum meta_engine { META_ENGINE_BTREE, META_ENGINE_LSM } meta_engine;

typedef enum meta_table_state {
    META_TABLE_CREATING, /* replicas being created; invisible to clients */
    META_TABLE_READY,
    META_TABLE_DROPPING, /* invisible; nodes delete data, then metadata goes */
} meta_table_state;

typedef enum meta_range_state {
    META_RANGE_NORMAL,
    META_RANGE_MIGRATING, /* copy from range `from` under way: dual read */
} meta_range_state;

typedef struct meta_table {
    char name[CAIRN_TABLE_NAME_MAX + 1];
    uint64_t id;
    meta_engine engine;
    int replicas; /* replication factor: 1, 3 or 5 */
    meta_table_state state;
    int64_t mod_revision; /* as read: what a change compares against */
} meta_table;

/* A range [start, end) of a table. An empty start is minus infinity, an
 * empty end plus infinity (keys are at least 1 byte, so neither bound can
 * be a real empty key). The bounds are owned (meta_range_clear). */
typedef struct meta_range {
    uint64_t id;
    uint64_t table_id;
    uint8_t *start;
    size_t start_len;
    uint8_t *end;
    size_t end_len;
    uint64_t epoch; /* +1 on every split, move or membership change */
    uint64_t replicas[META_MAX_REPLICAS]; /* node ids */
    int n_replicas;
    meta_range_state state;
    uint64_t from; /* MIGRATING: the source range id; else 0 */
    /* MIGRATING: the source's epoch once fenced and its replicas, for the
     * routers' dual reads (DESIGN.md "Split and move") */
    uint64_t from_epoch;
    uint64_t from_replicas[META_MAX_REPLICAS];
    int n_from;
    int64_t mod_revision;
} meta_range;

typedef struct meta_leader {
    uint64_t range_id;
    uint64_t node_id;
    uint64_t term; /* the Raft term the node became leader in */
    int64_t mod_revision;
} meta_leader;

typedef struct meta_node {
    uint64_t id;
    char addr[META_ADDR_MAX];
    char zone[META_ZONE_MAX]; /* "" = none given */
    uint64_t capacity; /* bytes the node offers */
    bool live;         /* its lease-backed liveness key exists */
    int64_t mod_revision;
} meta_node;

/* Free a range's bounds; the struct may be reused. */
void meta_range_clear(meta_range *r);

/* Deep copy (bounds included). 0 or CAIRN_ERR_NOMEM. */
int meta_range_copy(meta_range *dst, const meta_range *src);

/* Whether `key` lies in [r->start, r->end). */
bool meta_range_contains(const meta_range *r, const void *key, size_t len);

/* Table names: 1..CAIRN_TABLE_NAME_MAX bytes of [A-Za-z0-9_.-]
 * (MISSION/issue "name rules"). 0 or CAIRN_ERR_INVALID. */
int meta_table_name_check(const char *name);

/* "btree"/"lsm" <-> meta_engine. parse: 0 or CAIRN_ERR_INVALID. */
const char *meta_engine_name(meta_engine e);
int meta_engine_parse(const char *s, meta_engine *out);

/* ---- the handle ------------------------------------------------------- */

typedef struct meta meta;

/* A schema handle on client `c` (not owned; must outlive the handle) under
 * `prefix` (NULL = META_PREFIX_DEFAULT; must start with '/', no trailing
 * '/', at most META_PREFIX_MAX bytes). No I/O. */
int meta_open(meta **out, etcd *c, const char *prefix);
void meta_close(meta *m);
etcd *meta_etcd(const meta *m);
const char *meta_prefix(const meta *m);

/* ---- ids --------------------------------------------------------------- */

typedef enum meta_id_kind { META_ID_NODE, META_ID_TABLE, META_ID_RANGE } meta_id_kind;

/* Allocate `n` consecutive fresh ids of `kind`: *first .. *first + n - 1.
 * A compare-and-swap on the counter's mod revision; retried internally on
 * conflict (up to 100 times, then CAIRN_ERR_BUSY). Ids are never reused,
 * even across restarts and concurrent allocators. */
int meta_alloc_ids(meta *m, meta_id_kind kind, uint64_t n, uint64_t *first);

/* ---- the map ----------------------------------------------------------- */

/* A consistent picture of all tables, ranges, leaders and nodes at one
 * etcd revision. Reference-counted: a map from meta_load or
 * meta_cache_acquire must be released with meta_map_release. A map that
 * is shared (acquired from a cache) must not be changed. */
typedef struct meta_map meta_map;

/* Read everything under the prefix at one revision (one range read).
 * *out has one reference. */
int meta_load(meta *m, meta_map **out);

void meta_map_retain(meta_map *map);
void meta_map_release(meta_map *map);

/* A private deep copy (one reference), e.g. to apply events to. */
int meta_map_clone(const meta_map *map, meta_map **out);

/* Apply watch events (keys under the map's prefix; others are ignored)
 * and advance the map's revision. Invalidates pointers previously
 * returned by lookups on this map. Malformed values are skipped (and
 * counted in meta_map_skipped) rather than breaking the map. */
int meta_map_apply(meta_map *map, const etcd_event *events, size_t n);

int64_t meta_map_revision(const meta_map *map);
size_t meta_map_skipped(const meta_map *map);

/* Tables sorted by name (every state). */
size_t meta_map_table_count(const meta_map *map);
const meta_table *meta_map_table_at(const meta_map *map, size_t i);

/* A table by name or id in any state; NULL if none. */
const meta_table *meta_map_table(const meta_map *map, const char *name);
const meta_table *meta_map_table_by_id(const meta_map *map, uint64_t id);

/* The ranges of table `table_id`, sorted by start key (contiguous
 * array of *n ranges; NULL/0 if none). For scans: the next range in key
 * order is the next element. */
const meta_range *meta_map_ranges(const meta_map *map, uint64_t table_id,
                                  size_t *n);

/* The range of table `table_id` that holds `key` (binary search); NULL if
 * no range covers it (a gap, e.g. during a change). */
const meta_range *meta_map_range_for(const meta_map *map, uint64_t table_id,
                                     const void *key, size_t len);

/* Routing: the range of READY table `table` holding `key`.
 * CAIRN_ERR_NO_TABLE if there is no such table or it is not ready
 * (creating or dropping tables are invisible), CAIRN_ERR_RANGE_NOT_FOUND
 * if no range covers the key. */
int meta_map_route(const meta_map *map, const char *table, const void *key,
                   size_t len, const meta_range **out);

/* A range by id (any table); NULL if none. */
const meta_range *meta_map_range(const meta_map *map, uint64_t range_id);

/* Whether the ranges of table `table_id` cover the whole key space, each
 * starting where the one before ends, from minus to plus infinity. A table
 * whose create was interrupted while its ranges were being written (they
 * take several transactions, meta_table_create) does not: such a table
 * must never be marked READY. */
bool meta_map_ranges_cover(const meta_map *map, uint64_t table_id);

/* The recorded leader of a range; NULL if none recorded yet. */
const meta_leader *meta_map_leader(const meta_map *map, uint64_t range_id);

/* Nodes sorted by id, and one by id (NULL if unknown). */
size_t meta_map_node_count(const meta_map *map);
const meta_node *meta_map_node_at(const meta_map *map, size_t i);
const meta_node *meta_map_node(const meta_map *map, uint64_t id);

/* ---- the cache: a map kept fresh by a watch (the router's push) -------- */

typedef struct meta_cache meta_cache;

/* Called after each new snapshot is published, on the thread that
 * published it: the cache's watch thread, or the caller of
 * meta_cache_refresh (use uv_async_send to wake a loop). May be NULL. */
typedef void (*meta_cache_fn)(void *arg, int64_t revision);

/* Load the map (blocking) and keep it fresh with a watch from the load's
 * revision + 1. Each change publishes a new immutable snapshot; on a
 * compaction it reloads. */
int meta_cache_start(meta *m, meta_cache_fn changed, void *arg,
                     meta_cache **out);

/* Stop the watch (joins its thread); snapshots still held stay valid. */
void meta_cache_stop(meta_cache *c);

/* The current snapshot, with a reference for the caller (release it with
 * meta_map_release). Never NULL. Non-blocking apart from a short mutex:
 * safe on a loop thread. */
meta_map *meta_cache_acquire(meta_cache *c);

/* Re-read everything now (BLOCKS) and publish it if it is newer: for a
 * router whose request was rejected as stale. */
int meta_cache_refresh(meta_cache *c);

/* ---- tables ------------------------------------------------------------ */

typedef struct meta_table_spec {
    const char *name;
    meta_engine engine;
    int replicas;                 /* 1, 3 or 5 */
    const uint8_t *const *splits; /* n_splits split keys, strictly */
    const size_t *split_lens;     /* increasing, each 1..CAIRN_KEY_MAX */
    size_t n_splits;              /* bytes: n_splits + 1 ranges */
} meta_table_spec;

/* Create a table in state CREATING with its ranges ([-inf, s1), [s1, s2),
 * ..., [sn, +inf); epoch 1; at most META_SPLITS_MAX split keys). Their
 * ids are consecutive: the first range's id + i for range i.
 * Placement: each range gets `replicas` distinct live nodes, those hosting
 * the fewest replicas first.
 *
 * etcd takes at most 128 operations per transaction, so a large table is
 * written in several: the first allocates the table id and every range id
 * (both counters compared as read), checks the name is free and writes the
 * table in state CREATING - the create marker, invisible to routing - with
 * as many ranges as fit (a table of up to META_TXN_OPS - 3 ranges is thus
 * written atomically); then the other ranges, META_TXN_OPS per
 * transaction, each under the compare that the table record has not
 * changed since, so that a create rolled back or dropped meanwhile is
 * never given ranges again (CAIRN_ERR_CONDITION). If a later transaction
 * fails, the table is deleted again before returning; should that fail
 * too (etcd gone), the controller rolls back the CREATING table, whose
 * ranges do not cover the key space (meta_map_ranges_cover).
 *
 * *out (if not NULL) = the table as written (mod_revision: the first
 * transaction's). CAIRN_ERR_INVALID (name, replicas, engine, splits),
 * CAIRN_ERR_EXISTS (the name is taken, in any state), CAIRN_ERR_TRYAGAIN
 * (fewer live nodes than replicas), CAIRN_ERR_CONDITION (see above), or
 * an etcd error (etcd_last_error() says which). The caller (router, or
 * the controller) then creates the replicas and calls
 * meta_table_set_ready - or meta_table_abandon / meta_table_delete to
 * roll back. */
int meta_table_create(meta *m, const meta_table_spec *spec, meta_table *out);

/* Read one table (any state). CAIRN_ERR_NO_TABLE if absent. */
int meta_table_get(meta *m, const char *name, meta_table *out);

/* CREATING -> READY, only if the table still has id `id` and is still
 * CREATING. CAIRN_ERR_NO_TABLE, CAIRN_ERR_CONDITION (other state). */
int meta_table_set_ready(meta *m, const char *name, uint64_t id);

/* Roll back an unfinished create: CREATING -> DROPPING (the drop then
 * deletes whatever replicas were made), only if the name still has id
 * `id` and the table is still CREATING - never a table someone finished
 * meanwhile, nor a new table that took the name. CAIRN_ERR_NO_TABLE,
 * CAIRN_ERR_CONDITION (other state). */
int meta_table_abandon(meta *m, const char *name, uint64_t id);

/* READY or CREATING -> DROPPING: from this revision the table is invisible
 * to routing. *out (if not NULL) = the table as it is now (its id names the
 * ranges to delete). CAIRN_ERR_NO_TABLE if absent or already dropping. */
int meta_table_drop(meta *m, const char *name, meta_table *out);

/* Remove a table's metadata, only if the name still has id `id` and the
 * table is DROPPING or CREATING (a rolled-back create): the table record
 * and all its ranges in one transaction (two operations: the record, and
 * the ranges' key prefix), then their leader records, META_TXN_OPS per
 * transaction (a crash in between leaves leader records of ranges that
 * no longer exist: harmless, nothing routes by them). CAIRN_ERR_NO_TABLE,
 * CAIRN_ERR_CONDITION (READY, or changed meanwhile). */
int meta_table_delete(meta *m, const char *name, uint64_t id);

/* ---- ranges (the controller) -------------------------------------------- */

/* Read one range. CAIRN_ERR_RANGE_NOT_FOUND if absent. *out owns its
 * bounds (meta_range_clear). */
int meta_range_get(meta *m, uint64_t table_id, uint64_t range_id,
                   meta_range *out);

/* Replace range `read` (as read: its mod_revision is compared) with
 * `next` (same id and table; next->epoch must be greater than
 * read->epoch). CAIRN_ERR_CONDITION if the range changed since it was
 * read (re-read and decide again), CAIRN_ERR_STALE_EPOCH if next's epoch
 * is not greater, CAIRN_ERR_INVALID for a malformed range. */
int meta_range_update(meta *m, const meta_range *read, const meta_range *next);

/* Convenience: `read` with replicas replaced by nodes[0..n) and the epoch
 * bumped, written with meta_range_update. */
int meta_range_set_replicas(meta *m, const meta_range *read,
                            const uint64_t *nodes, int n);

/* Record a split the range's replicas applied (replica.h replica_split):
 * range `read` (as read: compared on its mod revision) now ends at `key`
 * with epoch `epoch`; range `new_id` (must not exist) covers [key, the old
 * end) with the same replicas and epoch `new_epoch`. One transaction.
 * CAIRN_ERR_CONDITION if `read` changed or `new_id` exists (re-read and
 * decide again), CAIRN_ERR_INVALID if `key` is not strictly inside,
 * STALE_EPOCH if an epoch does not grow. */
int meta_range_split(meta *m, const meta_range *read, const void *key,
                     size_t key_len, uint64_t new_id, uint64_t epoch,
                     uint64_t new_epoch);

/* ---- leaders ----------------------------------------------------------- */

/* Record that `node_id` leads `range_id` in Raft term `term` - called by
 * the new leader. Read-compare-write: succeeds if no leader is recorded or
 * the recorded term is older (or the same term and node: idempotent);
 * CAIRN_ERR_CONDITION if a newer term (or another node in the same term)
 * is recorded: an older term never overwrites a newer one. Retries
 * internally if a concurrent writer changed the key between read and
 * write. */
int meta_leader_set(meta *m, uint64_t range_id, uint64_t node_id,
                    uint64_t term);

/* meta_leader_set for many ranges at once, in as few etcd transactions
 * as the operation limit allows (META_TXN_OPS records each): one read of
 * the chunk's current records (a transaction of gets), then one
 * transaction writing every record that is not older, each compared on
 * the mod revision it was read at. The same rule per record as
 * meta_leader_set: ls[i] (range_id, node_id, term; mod_revision ignored)
 * is written if no leader is recorded or the recorded term is older;
 * statuses[i] = 0 (written, or already recorded as is),
 * CAIRN_ERR_CONDITION (a newer term, or another node in the same term, is
 * recorded: nothing written), CAIRN_ERR_INVALID (the same range id
 * given twice among the records of one transaction: give each range
 * once, with its highest term), or the etcd error that stopped the
 * call for the records not done. A chunk whose compares fail (a
 * concurrent writer) is read and decided again. Returns 0, or the first
 * etcd error (then some statuses[i] carry it: retry those). */
int meta_leader_set_many(meta *m, const meta_leader *ls, size_t n,
                         int *statuses);

/* The leader records of ranges first_id .. last_id (inclusive) in one
 * etcd range read: *out = a new array (free()) of *n records sorted by
 * range id. For a new table, whose range ids are consecutive
 * (meta_table_create): a router waiting for its leaders reads them all at
 * once, not one range at a time. */
int meta_leaders_read(meta *m, uint64_t first_id, uint64_t last_id,
                      meta_leader **out, size_t *n);

/* Read one leader record; CAIRN_ERR_NOT_FOUND if none. */
int meta_leader_get(meta *m, uint64_t range_id, meta_leader *out);

/* ---- nodes ------------------------------------------------------------- */

/* Write node `id`'s record (address, capacity; compare on the mod
 * revision read) and its liveness key attached to `lease` (the key goes
 * when the lease expires). `id` comes from meta_alloc_ids(META_ID_NODE)
 * the first time and is kept by the node forever after. */
int meta_node_register(meta *m, uint64_t id, const char *addr,
                       uint64_t capacity, int64_t lease);

/* Keeps a node registered: a thread that grants a lease of `ttl_s`
 * seconds, registers (meta_node_register), refreshes the lease every
 * ttl_s/3, and when etcd was unreachable long enough for the lease to
 * expire, grants a new one and registers again as soon as etcd answers.
 * Never blocks the caller (the first registration happens on the thread).
 */
typedef struct meta_node_keeper meta_node_keeper;

int meta_node_keeper_start(meta *m, uint64_t id, const char *addr,
                           uint64_t capacity, int ttl_s,
                           meta_node_keeper **out);

/* The same, for a node in failure zone `zone` (NULL or "" = none; at most
 * META_ZONE_MAX - 1 bytes): the controller spreads a range's replicas over
 * distinct zones. */
int meta_node_keeper_start_zone(meta *m, uint64_t id, const char *addr,
                                uint64_t capacity, const char *zone,
                                int ttl_s, meta_node_keeper **out);

/* meta_node_register with a zone (NULL or "" = none). */
int meta_node_register_zone(meta *m, uint64_t id, const char *addr,
                            uint64_t capacity, const char *zone,
                            int64_t lease);

/* Wait until the node is registered, up to timeout_ms. 0 or
 * CAIRN_ERR_TIMEOUT. */
int meta_node_keeper_wait(meta_node_keeper *k, int timeout_ms);

/* Stop the thread; with `revoke`, revoke the lease (the node disappears
 * from the live set at once, for a clean shutdown). */
void meta_node_keeper_stop(meta_node_keeper *k, bool revoke);

/* ---- health, drains, moves: the controller's records (issue 9) ----------
 *
 * Written by the active controller (health, moves, balance) or by an
 * operator's tool (drain), read by everyone through the map: `cairn
 * status`, dashboards, routers. Each write is a compare-and-swap on the
 * mod revision as read (0: the key must be absent): CAIRN_ERR_CONDITION
 * when somebody changed it first. Times are wall-clock milliseconds since
 * the Unix epoch, for people and for a successor controller. */

typedef enum meta_node_state {
    META_NODE_LIVE,    /* lease held, answers, its replicas keep up */
    META_NODE_SUSPECT, /* lease lost, or not answering, or lagging */
    META_NODE_DEAD,    /* lease lost and not answering for --dead-after */
} meta_node_state;

const char *meta_node_state_name(meta_node_state s);

#define META_HEALTH_LAGGING_MAX 16
#define META_REASON_MAX 128

typedef struct meta_health {
    uint64_t node_id;
    meta_node_state state;
    uint64_t since; /* when this state began */
    char reason[META_REASON_MAX]; /* why suspect or dead ("" when live) */
    uint64_t replicas_lost; /* DEAD: replicas it held when declared dead
                               (the replacement's progress is measured
                               against it) */
    uint64_t bytes;       /* bytes of its replicas, at the last poll */
    uint64_t lag_entries; /* largest lag of its replicas as followers */
    double lag_seconds;   /* ... in seconds */
    uint64_t lagging[META_HEALTH_LAGGING_MAX]; /* ranges where it lags */
    int n_lagging;
    uint64_t updated; /* the poll this reports */
    int64_t mod_revision;
} meta_health;

typedef struct meta_drain {
    uint64_t node_id;
    uint64_t since;
    uint64_t replicas; /* replicas and leaders it held when asked */
    int64_t mod_revision;
} meta_drain;

typedef enum meta_move_kind {
    META_MOVE_REPLACE,   /* a replica on a dead node */
    META_MOVE_LAGGING,   /* a follower that does not keep up */
    META_MOVE_REPAIR,    /* fewer or more replicas than the table wants */
    META_MOVE_DRAIN,     /* off a draining node */
    META_MOVE_REBALANCE, /* onto a node with fewer replicas */
    META_MOVE_REBUILD,   /* a replica its node reports corrupt or lost */
} meta_move_kind;

const char *meta_move_kind_name(meta_move_kind k);

/* A membership change of one range under way: add node `add` (0: none),
 * then remove node `remove` (0: none). Written before the first step and
 * deleted after the last, so that a controller that dies between the two
 * is followed by one that finishes the same change, and so that the new
 * replica, created before it is added, is not taken for an orphan. */
typedef struct meta_move {
    uint64_t range_id;
    uint64_t table_id;
    meta_move_kind kind;
    uint64_t add, remove;
    uint64_t since;
    char by[64]; /* the controller that started it */
    int64_t mod_revision;
} meta_move;

/* Replica rebalancing under way: `total` moves were planned at `since`,
 * `done` of them are made. */
typedef struct meta_balance {
    uint64_t since, total, done;
    int64_t mod_revision;
} meta_balance;

int meta_health_put(meta *m, const meta_health *h, int64_t rev);
int meta_health_delete(meta *m, uint64_t node_id, int64_t rev);

/* Start draining node `node_id` (`replicas`: what it holds now, for the
 * progress). CAIRN_ERR_EXISTS if it is already draining. */
int meta_drain_start(meta *m, uint64_t node_id, uint64_t replicas);

/* Stop draining. CAIRN_ERR_NOT_FOUND if it was not draining. */
int meta_drain_stop(meta *m, uint64_t node_id);

/* A move of a range to a new replica group (TABLE.MOVE; DESIGN.md "Split
 * and move"), its steps recorded so that a controller that dies between
 * two is followed by one that goes on from the last recorded:
 *   CREATE  the destination group is created (empty, range id `dest`,
 *           replicas `nodes`);
 *   FENCE   the source is fenced (writes refused, its epoch bumped; the
 *           answer's sequencer `fence_seq`), the destination's clock
 *           floored past it;
 *   SWITCH  etcd's switch: the source's record replaced by the
 *           destination's, MIGRATING from the source - routers send new
 *           writes to the destination and read both;
 *   COPY    the source copied into the destination in key order
 *           (`copied_*`; records land only if newer);
 *   DROP    the marker cleared: the source's replicas (`src_nodes`) are
 *           dropped, then this record.
 * Before FENCE a move can be given up (the destination dropped); from
 * FENCE on it only goes forward (the source takes no writes). */
typedef enum meta_reloc_step {
    META_RELOC_CREATE,
    META_RELOC_FENCE,
    META_RELOC_SWITCH,
    META_RELOC_COPY,
    META_RELOC_DROP,
} meta_reloc_step;

typedef struct meta_relocation {
    uint64_t range_id; /* the source (first: the map sorts by it) */
    uint64_t table_id;
    uint64_t dest;     /* the destination range id; 0 until allocated */
    uint64_t nodes[META_MAX_REPLICAS]; /* the destination's replicas */
    int n_nodes;
    uint64_t src_nodes[META_MAX_REPLICAS]; /* the source's, to drop */
    int n_src;
    meta_reloc_step step;
    uint64_t fence_epoch; /* FENCE on: the source's fenced epoch */
    char fence_seq[SEQ_HEX_LEN + 1]; /* ... and its sequencer (hex) */
    uint64_t dest_epoch;  /* FENCE on: the destination's, floored */
    uint64_t copied_keys, copied_bytes;
    uint64_t since, copy_ms; /* wall ms: asked; time spent copying */
    char by[64];
    int64_t mod_revision;
} meta_relocation;

const char *meta_reloc_step_name(meta_reloc_step s);

/* Ask for a move (TABLE.MOVE): the record in step CREATE, written only if
 * none exists for the range (CAIRN_ERR_EXISTS otherwise). */
int meta_relocation_start(meta *m, const meta_relocation *r);
/* Write the record if it still has mod revision `rev` (CONDITION if not). */
int meta_relocation_put(meta *m, const meta_relocation *r, int64_t rev);
int meta_relocation_get(meta *m, uint64_t range_id, meta_relocation *out);
int meta_relocation_delete(meta *m, uint64_t range_id, int64_t rev);

/* The switch of a move: in one transaction, the source's record `src` (as
 * read: its mod revision is compared) is deleted and `dest` (MIGRATING
 * from it, same table and bounds, a new id) written where no record was.
 * CAIRN_ERR_CONDITION if the source changed or the destination exists. */
int meta_range_switch(meta *m, const meta_range *src, const meta_range *dest);

/* The end of a move's copy: the range (as read) back to NORMAL, its
 * source forgotten, at the same epoch - the replicas' did not change. */
int meta_range_end_migration(meta *m, const meta_range *read);

int meta_move_put(meta *m, const meta_move *mv, int64_t rev);
int meta_move_get(meta *m, uint64_t range_id, meta_move *out);
int meta_move_delete(meta *m, uint64_t range_id, int64_t rev);

int meta_balance_put(meta *m, const meta_balance *b, int64_t rev);
int meta_balance_delete(meta *m, int64_t rev);

/* In the map: the health of a node (NULL: none recorded), its drain
 * (NULL: not draining), the moves under way (by range id) and the
 * rebalancing (NULL: none). */
const meta_health *meta_map_health(const meta_map *map, uint64_t node_id);
const meta_drain *meta_map_drain(const meta_map *map, uint64_t node_id);
size_t meta_map_move_count(const meta_map *map);
const meta_move *meta_map_move_at(const meta_map *map, size_t i);
const meta_move *meta_map_move(const meta_map *map, uint64_t range_id);
const meta_balance *meta_map_balance(const meta_map *map);
/* The moves to new groups under way (by source range id). */
size_t meta_map_relocation_count(const meta_map *map);
const meta_relocation *meta_map_relocation_at(const meta_map *map, size_t i);
const meta_relocation *meta_map_relocation(const meta_map *map,
                                           uint64_t range_id);

/* ---- controller election ------------------------------------------------
 * One active controller (DESIGN.md): candidates race to create P/controller
 * (version == 0) attached to their own lease; the holder keeps the lease
 * alive, the others poll until the key is gone. A holder that cannot
 * refresh its lease in time stops claiming leadership before etcd could
 * give it to another candidate. */
typedef struct meta_election meta_election;

/* Start campaigning as `candidate` (a name for humans, e.g. "host:pid")
 * with a lease of `ttl_s` (>= 2) seconds, on a thread of its own. */
int meta_election_start(meta *m, const char *candidate, int ttl_s,
                        meta_election **out);

/* Whether this candidate holds the leadership now (safe from any thread,
 * non-blocking). Check it before every action, not once. */
bool meta_election_is_leader(meta_election *e);

/* Wait until leader, up to timeout_ms: 0 or CAIRN_ERR_TIMEOUT. */
int meta_election_wait(meta_election *e, int timeout_ms);

/* Resign (revoke the lease, so another candidate takes over at once) and
 * stop the thread. */
void meta_election_stop(meta_election *e);

/* The current leader's name into out[0..n). CAIRN_ERR_NOT_FOUND if none. */
int meta_election_leader(meta *m, char *out, size_t n);

/* ---- backup ------------------------------------------------------------ */

/* Write every key under the prefix (except keys attached to a lease:
 * liveness, election) at one revision to `path` as JSON lines, keys relative to the
 * prefix. *n_keys (if not NULL) = keys written. */
int meta_backup(meta *m, const char *path, size_t *n_keys);

/* Load a backup into this handle's prefix, which must be empty (else
 * CAIRN_ERR_EXISTS); each write compares that its key is absent.
 * CAIRN_ERR_CORRUPT for a malformed file. */
int meta_restore(meta *m, const char *path, size_t *n_keys);

#endif
