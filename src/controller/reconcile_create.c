/*
 * reconcile_create.c - finish or roll back table creations (issue 4,
 * "Tables": a create interrupted by a crash at any step is either
 * completed or rolled back; it never leaves a half table visible).
 *
 * A router creates a table itself (CREATING, replicas, leaders, READY) and
 * gives up within its own deadline. A table still CREATING after
 * create_timeout_ms (longer than that deadline, so the controller never
 * races a live router) was abandoned:
 *  - if its ranges do not cover the key space, the create was interrupted
 *    while its ranges were being written (a big table takes several etcd
 *    transactions, meta_table_create): nothing can finish it, so it is
 *    rolled back at once - marked DROPPING, and the drop reconciler
 *    deletes whatever ranges and replicas exist;
 *  - if every range has a leader the create had in fact succeeded, so it
 *    is marked READY;
 *  - if not, the missing replicas are (re)created on their nodes - one
 *    CREATE_REPLICAS request per node (meta_create_replicas; creating is
 *    idempotent: EXISTS) - every RETRY_EVERY_MS for another
 *    create_timeout_ms, then it is rolled back by marking it DROPPING,
 *    which the drop reconciler finishes.
 * The age is counted from when this controller first saw the table, so a
 * new controller waits a full timeout again: late is safe, early is not.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/grow.h"
#include "controller/controller_int.h"
#include "meta/replica_rpc.h"

#define RETRY_EVERY_MS 5000

typedef struct seen {
    uint64_t table_id;
    uint64_t since_ms;   /* first seen CREATING */
    uint64_t retry_ms;   /* next CREATE_REPLICA round */
    bool alive;          /* seen in this pass */
} seen;

typedef struct create_state {
    seen *v;
    size_t n, cap;
} create_state;

static void *create_init(ctl *c)
{
    return calloc(1, sizeof(create_state));
}

static void create_fini(void *state)
{
    create_state *s = state;
    if (s)
        free(s->v);
    free(s);
}

static seen *find_seen(create_state *s, uint64_t table_id, uint64_t now)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].table_id == table_id)
            return &s->v[i];
    if (grow_array((void **)&s->v, s->n, &s->cap, sizeof *s->v, 8) != 0)
        return NULL;
    s->v[s->n] = (seen){.table_id = table_id, .since_ms = now};
    return &s->v[s->n++];
}

static bool all_led(const meta_map *map, uint64_t table_id)
{
    size_t n = 0;
    const meta_range *rs = meta_map_ranges(map, table_id, &n);
    for (size_t i = 0; i < n; i++)
        if (meta_map_leader(map, rs[i].id) == NULL)
            return false;
    return n > 0;
}

/* Create every replica of the table's leaderless ranges on its node, all
 * bootstrapped with the same voters, as the router does: one request per
 * node for all of them. */
static void create_leaderless(ctl *c, const meta_map *map,
                              const meta_table *t)
{
    size_t n = 0, k = 0;
    const meta_range *rs = meta_map_ranges(map, t->id, &n);
    meta_range *todo = calloc(n ? n : 1, sizeof *todo);
    bool *ok = calloc(n ? n : 1, sizeof *ok);
    char why[400];
    if (todo == NULL || ok == NULL) {
        free(todo);
        free(ok);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (meta_map_leader(map, rs[i].id) == NULL)
            todo[k++] = rs[i]; /* shallow: the bounds stay in `map` */
    size_t failed = k && ctl_active(c)
                        ? meta_create_replicas(map, t, todo, k,
                                               CTL_RPC_TIMEOUT_MS, ok, why,
                                               sizeof why, NULL)
                        : 0;
    if (failed > 0)
        ctl_log(c, "table %s: cannot create the replicas of %zu of %zu "
                "leaderless ranges: %s", t->name, failed, k, why);
    free(todo);
    free(ok);
}

static void reconcile_table(ctl *c, const meta_map *map, const meta_table *t,
                            seen *s, uint64_t now)
{
    int timeout = ctl_config(c)->create_timeout_ms;
    if (now - s->since_ms < (uint64_t)timeout || !ctl_active(c))
        return;
    if (!meta_map_ranges_cover(map, t->id)) {
        int rc = meta_table_abandon(ctl_meta(c), t->name, t->id);
        ctl_log(c, "table %s: create interrupted while its ranges were "
                "written, rolled back (dropping): %s", t->name,
                rc ? cairn_err_message(rc) : "ok");
    } else if (all_led(map, t->id)) {
        int rc = meta_table_set_ready(ctl_meta(c), t->name, t->id);
        ctl_log(c, "table %s: interrupted create finished (ready): %s",
                t->name, rc ? cairn_err_message(rc) : "ok");
    } else if (now - s->since_ms < 2 * (uint64_t)timeout) {
        if (now < s->retry_ms)
            return;
        s->retry_ms = now + RETRY_EVERY_MS;
        create_leaderless(c, map, t);
    } else {
        int rc = meta_table_abandon(ctl_meta(c), t->name, t->id);
        ctl_log(c, "table %s: create abandoned, rolled back (dropping): %s",
                t->name, rc ? cairn_err_message(rc) : "ok");
    }
}

static void create_run(ctl *c, void *state, const meta_map *map)
{
    create_state *s = state;
    uint64_t now = ctl_now_ms();
    for (size_t i = 0; i < s->n; i++)
        s->v[i].alive = false;
    for (size_t i = 0; i < meta_map_table_count(map); i++) {
        const meta_table *t = meta_map_table_at(map, i);
        if (t->state != META_TABLE_CREATING)
            continue;
        seen *e = find_seen(s, t->id, now);
        if (e == NULL)
            continue;
        e->alive = true;
        reconcile_table(c, map, t, e, now);
    }
    size_t k = 0; /* forget tables that left CREATING */
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].alive)
            s->v[k++] = s->v[i];
    s->n = k;
}

const ctl_reconciler ctl_reconcile_create = {
    .name = "create",
    .init = create_init,
    .fini = create_fini,
    .run = create_run,
};
