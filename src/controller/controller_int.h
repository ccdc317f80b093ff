/*
 * controller_int.h - what the controller's parts share: the handle, the
 * reconciler interface, what the nodes report, node health, background
 * tasks, placement, and the bound of a node RPC.
 *
 * A reconciler is one concern of the controller, in one file: each pass of
 * the loop (every interval, and on every metadata change or new
 * observation) runs every reconciler in order on the same metadata
 * snapshot and the same observation of the nodes. A reconciler compares
 * what they say with what should be and takes the next step towards it -
 * one step, idempotent, each write a compare-and-swap - so a pass
 * interrupted by a crash or a lost election is simply taken again by the
 * next active controller. To add one (split, move): write
 * reconcile_<what>.c defining a ctl_reconciler and list it in controller.c.
 *
 * Steps that take long (a membership change waits for the new replica to
 * catch up) run as tasks on threads of their own (tasks.c), one per range
 * at a time: the loop goes on observing and deciding meanwhile.
 */
#ifndef CAIRN_CONTROLLER_INT_H
#define CAIRN_CONTROLLER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/prom.h"
#include "common/u64map.h"
#include "controller/controller.h"
#include "controller/status.h"
#include "http/httpd.h"
#include "meta/meta.h"
#include "proto/rpc.h"
#include "proto/rpc_sync.h"

typedef struct ctl ctl;
typedef struct ctl_obs ctl_obs;
typedef struct ctl_observer ctl_observer;
typedef struct ctl_task_rec ctl_task_rec;

/* Background tasks (tasks.c). */
typedef struct ctl_task_fail {
    uint64_t key;
    unsigned fails;
    uint64_t retry_ms; /* monotonic: not before */
} ctl_task_fail;

typedef struct ctl_tasks {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ctl_task_rec *list;
    int count[8];
    uint64_t last_done[8];
    ctl_task_fail *fails; /* keys whose last task failed: backing off */
    size_t n_fails, cap_fails;
} ctl_tasks;

#define CTL_MAX_RECONCILERS 16

/* The controller (controller.c owns it; the parts reach it through the
 * functions below, and their own fields). */
struct ctl {
    controller_config cfg;
    char name[128];
    etcd *etcd;
    meta *meta;
    meta_election *election;
    meta_cache *cache; /* started when first active */
    void *state[CTL_MAX_RECONCILERS];
    bool was_active;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kicked;
    atomic_bool stopping; /* controller_stop: tasks end at their next step */

    /* This pass. */
    const meta_map *map;
    ctl_obs *obs;
    u64map ranges; /* range id -> const meta_range * of `ranges_map` */
    const meta_map *ranges_map;
    size_t unplaced;

    ctl_observer *observer;
    ctl_tasks tasks;
    void *health; /* reconcile_health.c's state */

    /* the status thread (--http): collects, publishes the dashboard's
     * JSON and /metrics */
    status *status;
    httpd *http;
    pthread_t status_thread;
    bool status_running;
    pthread_cond_t status_cv; /* its own: cv's kicks are the loop's */
    _Atomic uint64_t passes;
    prom_hist pass_seconds;
};

typedef struct ctl_reconciler {
    const char *name;
    /* Private state of the reconciler (NULL is fine); freed by `fini`. */
    void *(*init)(ctl *c);
    void (*fini)(void *state);
    /* One pass over snapshot `map`. Blocks on etcd and nodes as needed. */
    void (*run)(ctl *c, void *state, const meta_map *map);
} ctl_reconciler;

extern const ctl_reconciler ctl_reconcile_health;
extern const ctl_reconciler ctl_reconcile_leaders;
extern const ctl_reconciler ctl_reconcile_create;
extern const ctl_reconciler ctl_reconcile_drop;
extern const ctl_reconciler ctl_reconcile_split;
extern const ctl_reconciler ctl_reconcile_repair;
extern const ctl_reconciler ctl_reconcile_orphans;
extern const ctl_reconciler ctl_reconcile_balance;
extern const ctl_reconciler ctl_reconcile_relocate;

/* ---- for reconcilers ---------------------------------------------------- */

meta *ctl_meta(ctl *c);
const controller_config *ctl_config(ctl *c);
const char *ctl_name(ctl *c);

/* Whether this instance still holds the election: check before each write. */
bool ctl_active(ctl *c);

/* Monotonic milliseconds; wall-clock milliseconds since the Unix epoch
 * (what the records in etcd carry). */
uint64_t ctl_now_ms(void);
uint64_t ctl_wall_ms(void);

/* One log line at info (common/log.h; the controller's name is in every
 * line), also kept among the recent actions the dashboard shows. */
void ctl_log(ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ask for another pass soon (a task finished, a new observation). Safe
 * from any thread. */
void ctl_kick(ctl *c);

/* The range with id `id` in this pass's map (NULL if none): a hash
 * lookup, rebuilt when the map changes. */
const meta_range *ctl_range(ctl *c, uint64_t id);

/* ---- node RPC ------------------------------------------------------------ */

/* Reconcilers talk to nodes with proto/rpc_sync.h (one blocking call, one
 * fresh connection: a few calls a second at most), within this bound. */
#define CTL_RPC_TIMEOUT_MS 3000

/* ---- calls to a range (rangecall.c) ------------------------------------ */

#define CTL_MAX_ADDRS 24

typedef struct ctl_node_addr {
    uint64_t id;
    char addr[META_ADDR_MAX];
} ctl_node_addr;

/* Where to reach a range: the addresses of every node of the map (the
 * range's own replicas first: its leader may be a node that joined after
 * the map was read) and the node asked first - the last that answered as
 * its leader. */
typedef struct ctl_target {
    uint64_t range_id;
    uint64_t leader;
    ctl_node_addr addrs[CTL_MAX_ADDRS];
    int n_addrs;
} ctl_target;

/* `rg` (may be NULL) is the range as the map has it. */
void ctl_target_init(ctl_target *t, const meta_map *map, uint64_t range_id,
                     const meta_range *rg);
const char *ctl_target_addr(const ctl_target *t, uint64_t id);
void ctl_target_add(ctl_target *t, uint64_t id, const char *addr);

/* One RPC to `addr`: its status; `text` gets the reply's text or message;
 * *hint the leader a NOT_LEADER names (0 if none) and `hint_addr` (of
 * META_ADDR_MAX bytes) its address. */
int ctl_call(const char *addr, const rpc_request *q, int timeout_ms,
             char *text, size_t text_len, uint64_t *hint, char *hint_addr);

/* Send `q` to the range's leader: the one `t` names first, then any node a
 * NOT_LEADER names, then each node in turn while the group elects. Gives
 * up after 15 s, or at once on an answer that is not about leadership.
 * t->leader = who answered. */
int ctl_on_leader(ctl *c, ctl_target *t, rpc_request *q, int timeout_ms,
                  char *text, size_t text_len);

/* The leader of the range now (METRICS on each node until one says it
 * leads); 0 if none within 15 s. */
uint64_t ctl_find_leader(ctl *c, ctl_target *t);

/* The N of "... epoch N" in an admin answer; 0 if none. */
uint64_t ctl_epoch_in(const char *text);

void ctl_pause_ms(int ms);

/* ---- what the nodes report (observe.c) ----------------------------------
 * A thread polls the METRICS of every known node every poll_ms, all nodes
 * at once, and publishes what they said as one immutable observation. */

enum { CTL_VOTER, CTL_STANDBY, CTL_SPARE };
enum { CTL_FOLLOWER, CTL_LEADER, CTL_CANDIDATE, CTL_UNAVAILABLE };

typedef struct ctl_follower {
    uint64_t id;
    uint8_t role; /* CTL_VOTER ... */
    uint64_t match, lag_entries;
    double lag_seconds;
} ctl_follower;

/* One replica as its node reports it. On a leader, `followers` is the
 * whole configuration but itself. */
typedef struct ctl_replica {
    uint64_t node, range, table, epoch, term, leader;
    uint64_t commit, applied, last, bytes;
    uint64_t ops;   /* requests served since the replica opened */
    bool load_key;  /* its leader offers a load split key (load.c) */
    uint8_t role; /* CTL_FOLLOWER ... */
    uint8_t n_followers;
    ctl_follower followers[RPC_MAX_PEERS + 1];
} ctl_replica;

typedef struct ctl_node_obs {
    uint64_t id;
    bool answered;
    int err;               /* why not */
    ctl_replica *replicas; /* sorted by range id */
    size_t n;
    uint64_t bytes; /* of all its replicas */
    /* Ranges it holds but refuses: their stored data failed a check
     * (CORRUPT). Sorted. */
    uint64_t *corrupt;
    size_t n_corrupt;
} ctl_node_obs;

struct ctl_obs {
    atomic_int refs;
    uint64_t taken_ms; /* monotonic, when the poll began */
    ctl_node_obs *nodes; /* sorted by id */
    size_t n;
    u64map leaders; /* range id -> the ctl_replica of its leader (highest
                       term reported) */
};

int ctl_observer_start(ctl *c);
void ctl_observer_stop(ctl *c);

/* The newest observation, with a reference (NULL before the first). */
ctl_obs *ctl_obs_acquire(ctl *c);
void ctl_obs_release(ctl_obs *o);

/* This pass's observation (NULL before the first poll). */
const ctl_obs *ctl_observed(ctl *c);

const ctl_node_obs *ctl_obs_node(const ctl_obs *o, uint64_t id);
const ctl_replica *ctl_obs_leader(const ctl_obs *o, uint64_t range_id);
const ctl_replica *ctl_obs_replica(const ctl_node_obs *n, uint64_t range_id);
/* Whether node `n` reports its replica of `range_id` corrupt. */
bool ctl_obs_corrupt(const ctl_node_obs *n, uint64_t range_id);

/* Whether leader `l` is confirmed: a majority of the voters it lists
 * (itself included) answered this poll and name it leader in its term. A
 * deposed leader cut off in a minority, which has not heard yet, is not:
 * its configuration may be old, and nothing is recorded or dropped on its
 * word. */
bool ctl_obs_confirmed(const ctl_obs *o, const ctl_replica *l);

/* Parse one node's METRICS reply into `out` (its replicas sorted by
 * range). For the tests too. 0, CAIRN_ERR_CORRUPT, NOMEM. */
int ctl_obs_parse_node(const char *json, size_t len, uint64_t node_id,
                       ctl_node_obs *out);
void ctl_obs_node_free(ctl_node_obs *n);

/* ---- node health (reconcile_health.c) -----------------------------------
 * Decided each pass from the node's lease, whether it answers, and how its
 * replicas keep up; recorded in etcd (P/health) when it changes. */

typedef struct ctl_health {
    uint64_t id;
    meta_node_state state;
    bool lease, answered, draining;
    bool polled; /* asked at least once (else `answered` = its lease) */
    uint64_t replicas, leaders; /* from the map and the observation */
} ctl_health;

/* The health of node `id` as of this pass (NULL: unknown node). */
const ctl_health *ctl_node_health(ctl *c, uint64_t id);

/* Whether the follower of range `range_id` on node `node_id` has lagged
 * past the thresholds for long enough to be replaced. */
bool ctl_lagging(ctl *c, uint64_t range_id, uint64_t node_id);

/* Whether a node may receive replicas and leaderships: live and not
 * draining. */
bool ctl_node_usable(ctl *c, uint64_t id);

/* Ranges that need a replica and found no node for it, in this pass (for
 * the log and the balance, which waits while there are any). */
void ctl_note_unplaced(ctl *c);
size_t ctl_unplaced(ctl *c);

/* ---- background tasks (tasks.c) ------------------------------------------
 * A task runs fn(c, arg) on a thread of its own; `key` (a range id) is
 * busy until it returns, so two tasks never work on one range. At most
 * `limit` tasks of class `cls` run at once. A task that changes membership
 * says which node it adds and removes, so placement counts it ahead. */

enum { CTL_TASK_REPAIR, CTL_TASK_DRAIN, CTL_TASK_BALANCE, CTL_TASK_LEADER,
       CTL_TASK_DROP, CTL_TASK_RELOCATE, CTL_TASK_CLASSES };

/* 0 = done; an error makes the key back off (1 s, doubling to 30 s)
 * before another task may start on it. */
typedef int (*ctl_task_fn)(ctl *c, void *arg);

/* 0, CAIRN_ERR_BUSY (key busy or backing off, or `limit` reached),
 * CAIRN_ERR_NOMEM. `arg` is freed with free() once fn returns (or here, on
 * an error). */
int ctl_task_start(ctl *c, uint64_t key, int cls, int limit, ctl_task_fn fn,
                   void *arg, uint64_t adds, uint64_t removes);
bool ctl_task_busy(ctl *c, uint64_t key);
int ctl_task_count(ctl *c, int cls);
/* Replicas running tasks will add to node `id`, minus those they remove. */
int ctl_task_delta(ctl *c, uint64_t id);
/* Monotonic ms when the last task of class `cls` finished (0: never). */
uint64_t ctl_task_last_done(ctl *c, int cls);
void ctl_tasks_init(ctl *c);
void ctl_tasks_join(ctl *c); /* wait for every task (stopping) */

/* ---- membership changes and leadership (move.c) ------------------------- */

/* Start the move `mv` (add mv->add, then remove mv->remove, recording
 * each epoch with meta_range_update) as a task of class `cls`. `mv` is
 * either new (mod_revision 0: its record is written first) or a record
 * read from the map, resumed. 0 or CAIRN_ERR_BUSY / NOMEM / NOT_FOUND
 * (a node or the table is unknown). */
int ctl_move_start(ctl *c, const meta_map *map, const meta_move *mv,
                   int cls, int limit);

/* Transfer the leadership of `range_id` from `from` to `to`. */
int ctl_transfer_start(ctl *c, const meta_map *map, uint64_t range_id,
                       uint64_t from, uint64_t to);

/* Have the leader of `range_id` (`leader` asked first) apply an epoch
 * above `epoch`, etcd's, which got ahead of it (BUMP_EPOCH). */
int ctl_bump_start(ctl *c, const meta_map *map, uint64_t range_id,
                   uint64_t leader, uint64_t epoch);

/* Delete the replica of `range_id` on node `node` (DROP_REPLICA). */
int ctl_drop_start(ctl *c, const meta_map *map, uint64_t range_id,
                   uint64_t node);

/* ---- moves to new groups (relocate.c) ------------------------------------ */

/* Whether `range_id` is the source or the destination of a move to a new
 * group (TABLE.MOVE) under way: the other reconcilers leave it alone (a
 * split, a membership change or a rebalance would change what the move
 * recorded). */
bool ctl_relocating(const meta_map *map, uint64_t range_id);

/* ---- placement (place.c: pure, unit-tested) ----------------------------- */

typedef struct ctl_place_node {
    uint64_t id;
    const char *zone; /* "" = none */
    bool usable;      /* live and not draining */
    int64_t replicas; /* hosted, counting moves under way */
    uint64_t bytes;
} ctl_place_node;

/* The best node for a new replica of a range whose replicas are
 * `members` (n_members; `leaving`, if not 0, is one of them that is about
 * to go): usable, not a member, in a zone none of the remaining members is
 * in if there is one, then the fewest replicas, then the fewest bytes,
 * then the lowest id. 0 if none. */
uint64_t ctl_place(const ctl_place_node *nodes, size_t n,
                   const uint64_t *members, int n_members, uint64_t leaving);

#endif
