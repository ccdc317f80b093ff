/*
 * split.c - a range split, start to end: the new id from etcd, the split
 * itself by the range's Raft group, both halves recorded in etcd
 * (replica_rpc.h meta_split).
 *
 * The order makes every interruption safe. An id allocated and never used
 * is only a gap (ids are never reused). A split the replicas applied but
 * etcd does not show yet leaves routers with the old map; the range then
 * answers STALE_EPOCH for everything, routers refresh and retry, and the
 * controller records the split from what the nodes report
 * (reconcile_split.c) - the replicas' state is the truth, etcd catches up.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "meta/replica_rpc.h"
#include "proto/rpc_sync.h"

#define SPLIT_HINTS 4 /* NOT_LEADER hints followed */

/* "split at <hex> into range N: done, epoch E" -> key and epoch. */
static int parse_reply(const buf *text, buf *key, uint64_t *epoch)
{
    const char *s = (const char *)text->data;
    const char *at = s ? strstr(s, "split at ") : NULL;
    const char *ep = s ? strstr(s, "epoch ") : NULL;
    if (at == NULL || ep == NULL)
        return CAIRN_ERR_PROTO;
    at += strlen("split at ");
    buf_reset(key);
    for (; at[0] && at[1] && at[0] != ' '; at += 2) {
        unsigned v;
        if (sscanf(at, "%2x", &v) != 1 || buf_append_u8(key, (uint8_t)v) != 0)
            return CAIRN_ERR_PROTO;
    }
    *epoch = strtoull(ep + strlen("epoch "), NULL, 10);
    return key->len > 0 && *epoch > 0 ? 0 : CAIRN_ERR_PROTO;
}

/* Ask one node; on NOT_LEADER, *next is the hinted leader's address. */
static int ask(const char *addr, const rpc_request *req, int timeout_ms,
               buf *text, char *next, size_t next_len)
{
    buf frame = BUF_INIT;
    rpc_reply rep;
    int rc = rpc_sync_call(addr, req, timeout_ms, &frame, &rep);
    if (rc == 0) {
        rc = rep.status;
        const rpc_bytes *b = rc == 0 ? &rep.value : &rep.message;
        buf_reset(text);
        buf_append(text, b->p, b->len);
        buf_append_u8(text, 0);
        text->len--;
        next[0] = '\0';
        if (rc == CAIRN_ERR_NOT_LEADER && rep.leader_addr.len > 0 &&
            rep.leader_addr.len < next_len) {
            memcpy(next, rep.leader_addr.p, rep.leader_addr.len);
            next[rep.leader_addr.len] = '\0';
        }
    }
    buf_free(&frame);
    return rc;
}

/* Where to ask first: the recorded leader, then each replica. */
static size_t candidates(const meta_map *map, const meta_range *rg,
                         const char **addrs)
{
    size_t n = 0;
    const meta_leader *l = meta_map_leader(map, rg->id);
    const meta_node *ln = l ? meta_map_node(map, l->node_id) : NULL;
    if (ln)
        addrs[n++] = ln->addr;
    for (int i = 0; i < rg->n_replicas; i++) {
        const meta_node *nd = meta_map_node(map, rg->replicas[i]);
        if (nd && (ln == NULL || nd != ln))
            addrs[n++] = nd->addr;
    }
    return n;
}

/* Split on the leader; `text` gets its answer. */
static int split_on_leader(const meta_map *map, const meta_range *rg,
                           const rpc_request *req, int timeout_ms, buf *text)
{
    const char *addrs[META_MAX_REPLICAS + 1];
    size_t n = candidates(map, rg, addrs);
    int rc = CAIRN_ERR_NO_QUORUM;
    for (size_t i = 0; i < n; i++) {
        char next[RPC_ADDR_MAX + 1];
        rc = ask(addrs[i], req, timeout_ms, text, next, sizeof next);
        /* a new leader splits once its first entry committed: soon */
        for (int t = 0; rc == CAIRN_ERR_TRYAGAIN && t < 40; t++) {
            usleep(50 * 1000);
            rc = ask(addrs[i], req, timeout_ms, text, next, sizeof next);
        }
        for (int h = 0; rc == CAIRN_ERR_NOT_LEADER && next[0] &&
                        h < SPLIT_HINTS; h++) {
            char here[RPC_ADDR_MAX + 1];
            memcpy(here, next, sizeof here);
            rc = ask(here, req, timeout_ms, text, next, sizeof next);
        }
        if (rc != CAIRN_ERR_NOT_LEADER && rc != CAIRN_ERR_NO_QUORUM &&
            rc != CAIRN_ERR_IO && rc != CAIRN_ERR_RANGE_NOT_FOUND)
            return rc; /* the leader answered: done, or a real refusal */
    }
    return rc;
}

int meta_split(meta *m, const meta_map *map, const meta_range *rg,
               const void *key, size_t key_len, int timeout_ms,
               uint64_t *new_id, buf *chosen, char *err, size_t err_len)
{
    uint64_t id = 0, epoch = 0;
    buf text = BUF_INIT, k = BUF_INIT;
    int rc = meta_alloc_ids(m, META_ID_RANGE, 1, &id);
    if (rc != 0) {
        snprintf(err, err_len, "cannot allocate a range id: %s",
                 cairn_err_message(rc));
        return rc;
    }
    rpc_request req;
    memset(&req, 0, sizeof req);
    req.type = RPC_SPLIT_RANGE;
    req.id = 1;
    req.range_id = rg->id;
    req.epoch = rg->epoch;
    req.new_range = id;
    req.key = (rpc_bytes){key, key_len};
    rc = split_on_leader(map, rg, &req, timeout_ms, &text);
    if (rc == 0 && parse_reply(&text, &k, &epoch) != 0)
        rc = CAIRN_ERR_PROTO;
    if (rc != 0)
        snprintf(err, err_len, "range %" PRIu64 ": split: %s %s", rg->id,
                 cairn_err_word(rc), text.len ? (char *)text.data : "");
    if (rc == 0) {
        rc = meta_range_split(m, rg, k.data, k.len, id, epoch, epoch);
        if (rc != 0)
            snprintf(err, err_len, "range %" PRIu64 " split into %" PRIu64
                     "; recording it in etcd: %s (the controller records "
                     "it)", rg->id, id, cairn_err_message(rc));
    }
    if (rc == 0) {
        *new_id = id;
        if (chosen) {
            buf_reset(chosen);
            rc = buf_append(chosen, k.data, k.len);
        }
    }
    buf_free(&text);
    buf_free(&k);
    return rc;
}
