/*
 * reconcile_health.c - node states and lagging followers (issue 9,
 * "Health"), recorded in etcd (P/health/<node>) for `cairn status`,
 * dashboards and routers.
 *
 * From the node's etcd lease, whether it answers the controller's METRICS
 * poll (observe.c), and what the leaders of its ranges say of it:
 *   live     lease held, answers, and none of its replicas lags;
 *   suspect  lease lost, or not answering, or a replica lagging;
 *   dead     lease lost AND not answering, without a break, for
 *            --dead-after seconds. Both, so that a node cut off from etcd
 *            but serving, or one the controller cannot reach but whose
 *            lease is kept, is not written off.
 * A follower lags when its leader reports it --lag-entries or
 * --lag-seconds behind. It is first given a snapshot: the leader is asked
 * (CATCH_UP) to send one instead of the log it lacks, which a follower
 * far behind takes in far less time than the entries one by one. It is to
 * be replaced when it still lags --lag-seconds after that.
 *
 * The times live in this controller's memory; a successor starts from the
 * record's `since` (wall clock), so a failover does not restart the
 * countdown to "dead".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/grow.h"
#include "controller/controller_int.h"
#include "proto/rpc_sync.h"

/* Rewrite a record whose state did not change at most this often (its
 * figures: bytes, lag). */
#define REFRESH_MS 10000

typedef struct node_track {
    uint64_t id;
    bool known; /* seen in an earlier pass (or taken from its record) */
    uint64_t gone_since; /* mono ms: no lease and not answering, or 0 */
    meta_node_state state;
    uint64_t state_since; /* wall ms */
    uint64_t replicas_lost;
    uint64_t written_ms; /* mono ms of our last write */
} node_track;

typedef struct lag_track {
    uint64_t range, node;
    uint64_t since; /* mono ms: first seen behind */
    uint64_t snap;  /* mono ms: its leader was asked for a snapshot, or 0 */
    uint64_t seen;  /* taken_ms of the last observation that showed it */
    uint64_t lag_entries;
    double lag_seconds;
} lag_track;

typedef struct health_state {
    node_track *tracks;
    size_t n_tracks, cap_tracks;
    ctl_health *view; /* this pass, sorted by id (the map's node order) */
    size_t n_view;
    lag_track *lags;
    size_t n_lags, cap_lags;
    uint64_t last_obs;
} health_state;

static void *health_init(ctl *c)
{
    health_state *s = calloc(1, sizeof *s);
    c->health = s;
    return s;
}

static void health_fini(void *state)
{
    health_state *s = state;
    if (s == NULL)
        return;
    free(s->tracks);
    free(s->view);
    free(s->lags);
    free(s);
}

static node_track *track(health_state *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_tracks; i++)
        if (s->tracks[i].id == id)
            return &s->tracks[i];
    if (grow_array((void **)&s->tracks, s->n_tracks, &s->cap_tracks,
                   sizeof *s->tracks, 8) != 0)
        return NULL;
    node_track *t = &s->tracks[s->n_tracks++];
    memset(t, 0, sizeof *t);
    t->id = id;
    return t;
}

/* ---- lagging followers -------------------------------------------------- */

static lag_track *find_lag(health_state *s, uint64_t range, uint64_t node)
{
    for (size_t i = 0; i < s->n_lags; i++)
        if (s->lags[i].range == range && s->lags[i].node == node)
            return &s->lags[i];
    return NULL;
}

/* Note every follower its leader reports behind, in a new observation;
 * forget those it no longer does. */
static void update_lags(ctl *c, health_state *s, const ctl_obs *o)
{
    const controller_config *cfg = ctl_config(c);
    size_t i = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&o->leaders, &i, &key, &val)) {
        const ctl_replica *l = val;
        for (int k = 0; k < l->n_followers; k++) {
            const ctl_follower *f = &l->followers[k];
            if (f->role != CTL_VOTER || (f->lag_entries < cfg->lag_entries &&
                                         f->lag_seconds < cfg->lag_seconds))
                continue;
            lag_track *t = find_lag(s, l->range, f->id);
            if (t == NULL) {
                if (grow_array((void **)&s->lags, s->n_lags, &s->cap_lags,
                               sizeof *s->lags, 8) != 0)
                    continue;
                t = &s->lags[s->n_lags++];
                *t = (lag_track){.range = l->range, .node = f->id,
                                 .since = ctl_now_ms()};
                ctl_log(c, "range %" PRIu64 ": the follower on node %" PRIu64
                        " is %" PRIu64 " entries, %.1f s behind",
                        l->range, f->id, f->lag_entries, f->lag_seconds);
            }
            t->seen = o->taken_ms;
            t->lag_entries = f->lag_entries;
            t->lag_seconds = f->lag_seconds;
        }
    }
    for (size_t k = 0; k < s->n_lags;)
        if (s->lags[k].seen != o->taken_ms)
            s->lags[k] = s->lags[--s->n_lags];
        else
            k++;
}

/* Ask the leader of `t`'s range to give the follower a snapshot. Asked
 * once per lagging spell, whatever the answer: a leader that cannot (not
 * reachable) leaves the replacement to go ahead. Only a follower behind by
 * --lag-entries is asked for: one behind in seconds only is silent, not
 * slow (a node down, or paused), and a snapshot would not reach it - every
 * range of a dead node would have its leader take one for nothing. */
static void give_snapshot(ctl *c, lag_track *t, const meta_map *map,
                          const ctl_obs *o)
{
    const ctl_replica *l = ctl_obs_leader(o, t->range);
    const meta_node *nd = l ? meta_map_node(map, l->node) : NULL;
    t->snap = ctl_now_ms();
    if (nd == NULL || t->lag_entries < ctl_config(c)->lag_entries)
        return;
    rpc_request q = {.type = RPC_CATCH_UP, .id = 1, .range_id = t->range,
                     .node_id = t->node};
    buf text = BUF_INIT;
    int rc = rpc_sync_status(nd->addr, &q, CTL_RPC_TIMEOUT_MS, &text);
    ctl_log(c, "range %" PRIu64 ": follower on node %" PRIu64 " lagging: "
            "%s a snapshot from node %" PRIu64 ": %s%s%s", t->range, t->node,
            rc == 0 ? "giving it" : "cannot give it", l->node,
            rc == 0 ? "" : cairn_err_word(rc), rc == 0 ? "" : " ",
            text.data ? (const char *)text.data : "");
    buf_free(&text);
}

bool ctl_lagging(ctl *c, uint64_t range_id, uint64_t node_id)
{
    health_state *s = c->health;
    lag_track *t = s ? find_lag(s, range_id, node_id) : NULL;
    return t && t->snap && ctl_now_ms() - t->snap >=
                    (uint64_t)(ctl_config(c)->lag_seconds * 1000);
}

/* ---- node states -------------------------------------------------------- */

const ctl_health *ctl_node_health(ctl *c, uint64_t id)
{
    health_state *s = c->health;
    for (size_t i = 0; s && i < s->n_view; i++)
        if (s->view[i].id == id)
            return &s->view[i];
    return NULL;
}

bool ctl_node_usable(ctl *c, uint64_t id)
{
    const ctl_health *h = ctl_node_health(c, id);
    return h && h->state == META_NODE_LIVE && h->polled && !h->draining;
}

/* A successor controller goes on from the record: a node that has been
 * gone since `since` is not given --dead-after afresh. */
static void take_record(node_track *t, const meta_health *rec, bool gone)
{
    t->known = true;
    if (rec == NULL || rec->state == META_NODE_LIVE || !gone)
        return;
    uint64_t wall = ctl_wall_ms(), now = ctl_now_ms();
    uint64_t ago = wall > rec->since ? wall - rec->since : 0;
    t->gone_since = ago < now ? now - ago : 1;
    t->state = rec->state;
    t->state_since = rec->since;
    t->replicas_lost = rec->replicas_lost;
}

/* The replicas each node holds (from the map) and leads (from the
 * observation), into the view. */
static void count(ctl *c, health_state *s, const meta_map *map,
                  const ctl_obs *o)
{
    for (size_t i = 0; i < meta_map_table_count(map); i++) {
        size_t n = 0;
        const meta_range *rs =
            meta_map_ranges(map, meta_map_table_at(map, i)->id, &n);
        for (size_t k = 0; k < n; k++)
            for (int r = 0; r < rs[k].n_replicas; r++) {
                ctl_health *h = (ctl_health *)ctl_node_health(c, rs[k].replicas[r]);
                if (h)
                    h->replicas++;
            }
    }
    size_t i = 0;
    uint64_t key;
    void *val;
    while (o && u64map_next(&o->leaders, &i, &key, &val)) {
        ctl_health *h = (ctl_health *)ctl_node_health(c, ((ctl_replica *)val)->node);
        if (h && ctl_range(c, key))
            h->leaders++;
    }
}

/* Why a node did not answer, for people. */
static const char *why(const ctl_node_obs *ob)
{
    if (ob == NULL)
        return "never polled";
    switch (ob->err) {
    case CAIRN_ERR_IO:
        return "unreachable";
    case CAIRN_ERR_TIMEOUT:
        return "no answer in time";
    default:
        return cairn_err_message(ob->err);
    }
}

static void decide(ctl *c, health_state *s, node_track *t, ctl_health *h,
                   const ctl_node_obs *ob, char *reason, size_t reason_len,
                   int lagging)
{
    uint64_t now = ctl_now_ms();
    bool gone = !h->lease && !h->answered;
    if (!gone)
        t->gone_since = 0;
    else if (t->gone_since == 0)
        t->gone_since = now;
    meta_node_state st = META_NODE_LIVE;
    if (gone && now - t->gone_since >=
                    (uint64_t)ctl_config(c)->dead_after_s * 1000)
        st = META_NODE_DEAD;
    else if (!h->lease || !h->answered || lagging > 0)
        st = META_NODE_SUSPECT;
    reason[0] = '\0';
    if (!h->lease && !h->answered)
        snprintf(reason, reason_len, "no lease, not answering (%s)", why(ob));
    else if (!h->lease)
        snprintf(reason, reason_len, "no lease (etcd out of its reach?)");
    else if (!h->answered)
        snprintf(reason, reason_len, "not answering: %s", why(ob));
    else if (lagging > 0)
        snprintf(reason, reason_len, "%d replica%s lagging", lagging,
                 lagging > 1 ? "s" : "");
    if (st != t->state || t->state_since == 0) {
        if (t->state_since != 0 || st != META_NODE_LIVE)
            ctl_log(c, "node %" PRIu64 ": %s%s%s", h->id,
                    meta_node_state_name(st), reason[0] ? ": " : "", reason);
        t->state = st;
        t->state_since = ctl_wall_ms();
        t->replicas_lost = st == META_NODE_DEAD ? h->replicas : 0;
    }
    h->state = st;
}

static bool same_lagging(const meta_health *a, const meta_health *b)
{
    if (a->n_lagging != b->n_lagging)
        return false;
    for (int i = 0; i < a->n_lagging; i++)
        if (a->lagging[i] != b->lagging[i])
            return false;
    return true;
}

/* Record node `h`'s health if it says something new. */
static void record(ctl *c, health_state *s, node_track *t,
                   const ctl_health *h, const ctl_node_obs *ob,
                   const char *reason, const meta_map *map)
{
    meta_health want = {.node_id = h->id, .state = h->state,
                        .since = t->state_since,
                        .replicas_lost = t->replicas_lost,
                        .bytes = ob ? ob->bytes : 0,
                        .updated = ctl_wall_ms()};
    snprintf(want.reason, sizeof want.reason, "%s", reason);
    for (size_t i = 0; i < s->n_lags; i++) {
        const lag_track *l = &s->lags[i];
        if (l->node != h->id)
            continue;
        if (l->lag_entries > want.lag_entries)
            want.lag_entries = l->lag_entries;
        if (l->lag_seconds > want.lag_seconds)
            want.lag_seconds = l->lag_seconds;
        if (want.n_lagging < META_HEALTH_LAGGING_MAX)
            want.lagging[want.n_lagging++] = l->range;
    }
    const meta_health *rec = meta_map_health(map, h->id);
    bool changed = rec == NULL || rec->state != want.state ||
                   rec->since != want.since ||
                   strcmp(rec->reason, want.reason) != 0 ||
                   rec->replicas_lost != want.replicas_lost ||
                   !same_lagging(rec, &want);
    uint64_t now = ctl_now_ms();
    if (!changed && (now - t->written_ms < REFRESH_MS ||
                     (rec->bytes == want.bytes &&
                      rec->lag_entries == want.lag_entries &&
                      rec->lag_seconds == want.lag_seconds)))
        return; /* nothing new, or figures written less than 10 s ago */
    if (!ctl_active(c))
        return;
    int rc = meta_health_put(ctl_meta(c), &want, rec ? rec->mod_revision : 0);
    if (rc == 0)
        t->written_ms = now;
    else if (rc != CAIRN_ERR_CONDITION)
        ctl_log(c, "node %" PRIu64 ": cannot record its health: %s",
                h->id, cairn_err_message(rc));
}

static void health_run(ctl *c, void *state, const meta_map *map)
{
    health_state *s = state;
    const ctl_obs *o = ctl_observed(c);
    size_t n = meta_map_node_count(map);
    ctl_health *view = calloc(n ? n : 1, sizeof *view);
    if (view == NULL)
        return;
    free(s->view);
    s->view = view;
    s->n_view = n;
    if (o && o->taken_ms != s->last_obs) {
        update_lags(c, s, o);
        s->last_obs = o->taken_ms;
    }
    for (size_t i = 0; o && i < s->n_lags; i++)
        if (s->lags[i].snap == 0 && ctl_active(c))
            give_snapshot(c, &s->lags[i], map, o);
    for (size_t i = 0; i < n; i++) {
        const meta_node *nd = meta_map_node_at(map, i);
        const ctl_node_obs *ob = ctl_obs_node(o, nd->id);
        ctl_health *h = &view[i];
        h->id = nd->id;
        h->lease = nd->live;
        /* Not polled yet (no observation, or a node newer than it): its
         * lease speaks for it until the next poll. */
        h->polled = ob != NULL;
        h->answered = ob ? ob->answered : nd->live;
        h->draining = meta_map_drain(map, nd->id) != NULL;
    }
    count(c, s, map, o);
    for (size_t i = 0; i < n; i++) {
        ctl_health *h = &view[i];
        const ctl_node_obs *ob = ctl_obs_node(o, h->id);
        node_track *t = track(s, h->id);
        if (t == NULL)
            continue;
        if (!t->known)
            take_record(t, meta_map_health(map, h->id), !h->lease && !h->answered);
        int lagging = 0;
        for (size_t k = 0; k < s->n_lags; k++)
            lagging += s->lags[k].node == h->id &&
                       ctl_lagging(c, s->lags[k].range, h->id);
        char reason[META_REASON_MAX];
        decide(c, s, t, h, ob, reason, sizeof reason, lagging);
        if (o == NULL && h->state != META_NODE_DEAD)
            continue; /* nothing polled yet: nothing worth writing */
        record(c, s, t, h, ob, reason, map);
    }
}

const ctl_reconciler ctl_reconcile_health = {
    .name = "health",
    .init = health_init,
    .fini = health_fini,
    .run = health_run,
};
