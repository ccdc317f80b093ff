/*
 * reconcile_leaders.c - health: poll the metrics of every live node and
 * record the leaders they report (controller_int.h).
 *
 * Nodes record their own leaderships (node_meta.h); this is the backstop
 * for a record a node could not write (etcd away at that moment, a node
 * started without --etcd). meta_leader_set compares terms, so a report
 * that is already old by the time it is written changes nothing.
 * A live node that does not answer is reported once per outage; replacing
 * its replicas is for the replacement reconciler, later.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "controller/controller_int.h"

/* Not at every pass: METRICS costs a node a size read of each range. */
#define POLL_EVERY_MS 5000
#define MAX_TRACKED 1024

typedef struct leaders_state {
    uint64_t next_ms;
    uint64_t down[MAX_TRACKED]; /* ids of live nodes that did not answer */
    size_t n_down;
} leaders_state;

static void *leaders_init(ctl *c)
{
    return calloc(1, sizeof(leaders_state));
}

static void set_down(ctl *c, leaders_state *s, const meta_node *n, bool down,
                     int rc)
{
    size_t i = 0;
    while (i < s->n_down && s->down[i] != n->id)
        i++;
    bool was = i < s->n_down;
    if (down && !was && s->n_down < MAX_TRACKED) {
        s->down[s->n_down++] = n->id;
        ctl_log(c, "node %" PRIu64 " at %s does not answer: %s", n->id,
                n->addr, cairn_err_message(rc));
    } else if (!down && was) {
        s->down[i] = s->down[--s->n_down];
        ctl_log(c, "node %" PRIu64 " answers again", n->id);
    }
}

/* Record each range the node says it leads, unless the map already has
 * that term (or a newer one). */
static void record(ctl *c, const meta_map *map, uint64_t node_id,
                   const cJSON *ranges)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, ranges) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(r, "role");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "range");
        const cJSON *term = cJSON_GetObjectItemCaseSensitive(r, "term");
        if (!cJSON_IsString(role) || strcmp(role->valuestring, "leader") != 0 ||
            !cJSON_IsNumber(id) || !cJSON_IsNumber(term))
            continue;
        uint64_t rid = (uint64_t)id->valuedouble, t = (uint64_t)term->valuedouble;
        const meta_leader *l = meta_map_leader(map, rid);
        if (l && (l->term > t || (l->term == t && l->node_id == node_id)))
            continue;
        if (meta_map_range(map, rid) == NULL || !ctl_active(c))
            continue; /* a dropped range's leftover, or no longer ours */
        if (meta_leader_set(ctl_meta(c), rid, node_id, t) == 0)
            ctl_log(c, "recorded node %" PRIu64 " as leader of range %" PRIu64
                    " (term %" PRIu64 ")", node_id, rid, t);
    }
}

static void poll_node(ctl *c, leaders_state *s, const meta_map *map,
                      const meta_node *n)
{
    rpc_request req;
    memset(&req, 0, sizeof req);
    req.type = RPC_METRICS;
    req.id = 1;
    buf text = BUF_INIT;
    int rc = rpc_sync_status(n->addr, &req, CTL_RPC_TIMEOUT_MS, &text);
    set_down(c, s, n, rc != 0, rc);
    cJSON *j = rc == 0 ? cJSON_ParseWithLength((const char *)text.data,
                                               text.len)
                       : NULL;
    if (j)
        record(c, map, n->id, cJSON_GetObjectItemCaseSensitive(j, "ranges"));
    cJSON_Delete(j);
    buf_free(&text);
}

static void leaders_run(ctl *c, void *state, const meta_map *map)
{
    leaders_state *s = state;
    uint64_t now = ctl_now_ms();
    if (now < s->next_ms)
        return;
    s->next_ms = now + POLL_EVERY_MS;
    for (size_t i = 0; i < meta_map_node_count(map) && ctl_active(c); i++) {
        const meta_node *n = meta_map_node_at(map, i);
        if (n->live)
            poll_node(c, s, map, n);
    }
}

const ctl_reconciler ctl_reconcile_leaders = {
    .name = "leaders",
    .init = leaders_init,
    .fini = free,
    .run = leaders_run,
};
