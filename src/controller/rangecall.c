/*
 * rangecall.c - the controller's calls to a range's replicas
 * (controller_int.h, "calls to a range"): one admin RPC to a node, and the
 * search for the range's leader - the one asked last first, then any node
 * a NOT_LEADER names, then each node in turn while the group elects.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "controller/controller_int.h"

/* How long a call keeps looking for the range's leader. */
#define LEADER_SEARCH_MS 15000

const char *ctl_target_addr(const ctl_target *t, uint64_t id)
{
    for (int i = 0; i < t->n_addrs; i++)
        if (t->addrs[i].id == id)
            return t->addrs[i].addr;
    return NULL;
}

void ctl_target_add(ctl_target *t, uint64_t id, const char *addr)
{
    if (id == 0 || addr == NULL || ctl_target_addr(t, id) ||
        t->n_addrs >= CTL_MAX_ADDRS)
        return;
    t->addrs[t->n_addrs].id = id;
    snprintf(t->addrs[t->n_addrs].addr, META_ADDR_MAX, "%s", addr);
    t->n_addrs++;
}

/* Every node of the map: the task may have to look for the leader on a
 * node that joined the group after the snapshot it was started from. */
void ctl_target_init(ctl_target *t, const meta_map *map, uint64_t range_id,
                     const meta_range *rg)
{
    memset(t, 0, sizeof *t);
    t->range_id = range_id;
    for (int i = 0; rg && i < rg->n_replicas; i++) {
        const meta_node *n = meta_map_node(map, rg->replicas[i]);
        if (n)
            ctl_target_add(t, n->id, n->addr);
    }
    for (size_t i = 0; i < meta_map_node_count(map); i++) {
        const meta_node *n = meta_map_node_at(map, i);
        ctl_target_add(t, n->id, n->addr);
    }
}

void ctl_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* One admin call: its status; `text` gets the reply's text or message;
 * *hint the leader a NOT_LEADER names (0 if none). */
int ctl_call(const char *addr, const rpc_request *q, int timeout_ms, char *text,
             size_t text_len, uint64_t *hint, char *hint_addr)
{
    buf frame = BUF_INIT;
    rpc_reply rep;
    *hint = 0;
    text[0] = '\0';
    int rc = rpc_sync_call(addr, q, timeout_ms, &frame, &rep);
    if (rc == 0) {
        rc = rep.status;
        rpc_bytes b = rc == 0 ? rep.value : rep.message;
        snprintf(text, text_len, "%.*s", (int)b.len, (const char *)b.p);
        if (rc == CAIRN_ERR_NOT_LEADER) {
            *hint = rep.leader_id;
            snprintf(hint_addr, META_ADDR_MAX, "%.*s", (int)rep.leader_addr.len,
                     (const char *)rep.leader_addr.p);
        }
    } else {
        snprintf(text, text_len, "%s", cairn_err_message(rc));
    }
    buf_free(&frame);
    return rc;
}

/* Send `q` to the range's leader: the one the job knows first, then any
 * node a NOT_LEADER names, then each node in turn while the group elects.
 * Gives up after LEADER_SEARCH_MS, or at once on an answer that is not
 * about leadership. t->leader = who answered. */
int ctl_on_leader(ctl *c, ctl_target *t, rpc_request *q, int timeout_ms,
                  char *text, size_t text_len)
{
    uint64_t deadline = ctl_now_ms() + LEADER_SEARCH_MS, who = t->leader;
    int next = 0, rc = CAIRN_ERR_NOT_LEADER;
    while (ctl_active(c)) {
        const char *addr = ctl_target_addr(t, who);
        if (addr == NULL) {
            who = t->addrs[next++ % t->n_addrs].id;
            continue;
        }
        uint64_t hint;
        char hint_addr[META_ADDR_MAX];
        rc = ctl_call(addr, q, timeout_ms, text, text_len, &hint, hint_addr);
        if (rc == 0 ||
            (rc != CAIRN_ERR_NOT_LEADER && rc != CAIRN_ERR_NO_QUORUM &&
             rc != CAIRN_ERR_IO && rc != CAIRN_ERR_TRYAGAIN &&
             rc != CAIRN_ERR_BUSY && rc != CAIRN_ERR_RANGE_NOT_FOUND &&
             rc != CAIRN_ERR_SHUTDOWN)) {
            t->leader = who;
            return rc;
        }
        if (ctl_now_ms() >= deadline)
            return rc;
        if (rc == CAIRN_ERR_NOT_LEADER && hint != 0 && hint != who) {
            ctl_target_add(t, hint, hint_addr);
            who = hint;
            continue;
        }
        who = t->addrs[next++ % t->n_addrs].id;
        ctl_pause_ms(rc == CAIRN_ERR_BUSY || rc == CAIRN_ERR_TRYAGAIN ? 200
                                                                      : 50);
    }
    return CAIRN_ERR_SHUTDOWN;
}

/* The leader of the range now (METRICS of the range on each node until
 * one says it leads; the leader it names is asked first). 0 if none. */
uint64_t ctl_find_leader(ctl *c, ctl_target *t)
{
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_METRICS;
    q.id = 1;
    q.range_id = t->range_id;
    uint64_t deadline = ctl_now_ms() + LEADER_SEARCH_MS, who = t->leader;
    int next = 0;
    while (ctl_active(c) && ctl_now_ms() < deadline) {
        const char *addr = ctl_target_addr(t, who);
        if (addr == NULL) {
            who = t->addrs[next++ % t->n_addrs].id;
            continue;
        }
        buf text = BUF_INIT;
        int rc = rpc_sync_status(addr, &q, CTL_RPC_TIMEOUT_MS, &text);
        ctl_node_obs ob;
        uint64_t named = 0;
        bool leads = false;
        if (rc == 0) {
            /* one range's metrics: wrap it as a node's */
            buf wrap = BUF_INIT;
            buf_appendf(&wrap, "{\"ranges\":[%.*s]}", (int)text.len,
                        (const char *)text.data);
            if (ctl_obs_parse_node((const char *)wrap.data, wrap.len, who,
                                   &ob) == 0 &&
                ob.n == 1) {
                leads = ob.replicas[0].role == CTL_LEADER;
                named = ob.replicas[0].leader;
            }
            ctl_obs_node_free(&ob);
            buf_free(&wrap);
        }
        buf_free(&text);
        if (leads) {
            t->leader = who;
            return who;
        }
        if (named && named != who && ctl_target_addr(t, named)) {
            who = named;
        } else {
            who = t->addrs[next++ % t->n_addrs].id;
            ctl_pause_ms(50);
        }
    }
    return 0;
}

uint64_t ctl_epoch_in(const char *text)
{
    const char *p = strstr(text, "epoch ");
    return p ? strtoull(p + 6, NULL, 10) : 0;
}
