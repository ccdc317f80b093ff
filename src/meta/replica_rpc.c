/*
 * replica_rpc.c - node requests built from the metadata (replica_rpc.h).
 */
#include <string.h>

#include "common/err.h"
#include "meta/replica_rpc.h"
#include "storage/engine.h" /* engine_kind: the RPC's engine byte */

int meta_create_replica_request(const meta_map *map, const meta_table *t,
                                const meta_range *rg, rpc_request *req)
{
    memset(req, 0, sizeof *req);
    if (rg->n_replicas > RPC_MAX_PEERS)
        return CAIRN_ERR_INVALID;
    req->type = RPC_CREATE_REPLICA;
    req->id = 1;
    req->range_id = rg->id;
    req->epoch = rg->epoch;
    req->table_id = t->id;
    req->engine = (uint8_t)(t->engine == META_ENGINE_LSM ? ENGINE_LSM
                                                          : ENGINE_BTREE);
    req->key = (rpc_bytes){rg->start, rg->start_len};
    req->end = (rpc_bytes){rg->end, rg->end_len};
    req->bootstrap = true;
    for (int i = 0; i < rg->n_replicas; i++) {
        const meta_node *n = meta_map_node(map, rg->replicas[i]);
        if (n == NULL)
            return CAIRN_ERR_NOT_FOUND;
        req->peers[i].id = n->id;
        req->peers[i].addr =
            (rpc_bytes){(const uint8_t *)n->addr, strlen(n->addr)};
        req->n_peers++;
    }
    return 0;
}
