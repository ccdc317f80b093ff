/*
 * replica_rpc.h - the node requests that carry out what the metadata says
 * about a range's replicas (proto/rpc.h).
 *
 * The router (TABLE.CREATE) and the controller (finishing an interrupted
 * create) must create a range's replicas identically - same range, epoch,
 * bounds, engine and voters on every node - or the Raft groups they
 * bootstrap would disagree. Both build the request here. Only proto's
 * header is used (the request struct), so cairn_meta links nothing more.
 */
#ifndef CAIRN_META_REPLICA_RPC_H
#define CAIRN_META_REPLICA_RPC_H

#include "meta/meta.h"
#include "proto/rpc.h"

/* Fill `req` with the CREATE_REPLICA request for range `rg` of table `t`
 * as snapshot `map` places it: bootstrapped, with every replica of the
 * range as a voter (issue 4, "Tables": all replicas of a range start with
 * the same configuration). The request points into `rg` and `map`, which
 * must outlive it. CAIRN_ERR_NOT_FOUND when the placement names a node the
 * map does not know (the caller retries later or rolls back); CAIRN_ERR_
 * INVALID when the range has more replicas than a request carries. */
int meta_create_replica_request(const meta_map *map, const meta_table *t,
                                const meta_range *rg, rpc_request *req);

#endif
