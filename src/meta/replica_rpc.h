/*
 * replica_rpc.h - the node requests that carry out what the metadata says
 * about a range's replicas (proto/rpc.h).
 *
 * The router (TABLE.CREATE) and the controller (finishing an interrupted
 * create) must create a range's replicas identically - same range, epoch,
 * bounds, engine and voters on every node - or the Raft groups they
 * bootstrap would disagree. Both build the requests here, and both send
 * them with meta_create_replicas: one CREATE_REPLICAS request per node
 * (several frames only beyond RPC_CREATE_BATCH_MAX creations or
 * RPC_FRAME_MAX bytes), every node at once - not one round trip per
 * replica. cairn_meta links cairn_proto for the codec and the blocking
 * client (proto/rpc_sync.h).
 */
#ifndef CAIRN_META_REPLICA_RPC_H
#define CAIRN_META_REPLICA_RPC_H

#include <stdbool.h>
#include <stddef.h>

#include "meta/meta.h"
#include "proto/rpc.h"

/* What one creation may cost a node beyond the base timeout: a frame of k
 * creations is given timeout_ms + k * META_CREATE_MS_PER_REPLICA. Today's
 * node makes each replica's own Raft log files (~35 ms each on a 2-core
 * test machine); generous, since a timeout fails the whole create. */
#define META_CREATE_MS_PER_REPLICA 100

/* Most nodes asked at once (one thread each). */
#define META_CREATE_THREADS 16

/* Fill `req` with the CREATE_REPLICA request for range `rg` of table `t`
 * as snapshot `map` places it: bootstrapped, with every replica of the
 * range as a voter (issue 4, "Tables": all replicas of a range start with
 * the same configuration). The request points into `rg` and `map`, which
 * must outlive it. CAIRN_ERR_NOT_FOUND when the placement names a node the
 * map does not know (the caller retries later or rolls back); CAIRN_ERR_
 * INVALID when the range has more replicas than a request carries. */
int meta_create_replica_request(const meta_map *map, const meta_table *t,
                                const meta_range *rg, rpc_request *req);

/* Create every replica of ranges rs[0..n) of table `t` as `map` places
 * them (rs points into `map` or holds shallow copies of its ranges). Each
 * node gets its creations in CREATE_REPLICAS frames, as few as fit (one
 * for up to RPC_CREATE_BATCH_MAX); the nodes are asked concurrently (at
 * most META_CREATE_THREADS at once), each node's frames in turn, a frame
 * of k creations within timeout_ms + k * META_CREATE_MS_PER_REPLICA.
 * BLOCKS (rpc_sync.h): never on a loop thread.
 *
 * ok[i] = every replica of rs[i] exists now (created, or EXISTS: creating
 * is idempotent). Returns how many ranges are not ok (0: all created).
 * `err` (err_len bytes) then names the first failure and its cause, in
 * the node's own words or the transport's: "range 17 on node 2
 * (127.0.0.1:7001): TRYAGAIN range 17 is being dropped", "node 3
 * (127.0.0.1:7003): unreachable (connection refused or closed)", "node 3
 * (127.0.0.1:7003): no answer within 9000 ms", "range 4: placed on node 9,
 * which the metadata does not know". *reached (may be NULL) = whether any
 * frame was sent, so that replicas may exist somewhere (a caller rolling
 * back must then have them dropped). */
size_t meta_create_replicas(const meta_map *map, const meta_table *t,
                            const meta_range *rs, size_t n, int timeout_ms,
                            bool *ok, char *err, size_t err_len,
                            bool *reached);

/* Split range `rg` of the table at `key` (key_len 0: its leader picks the
 * median by bytes), the whole procedure (DESIGN.md "Split and move"):
 * allocate the new range's id, ask the range's leader (the map's leader
 * record first, then each replica, following NOT_LEADER hints) to split
 * at rg's epoch, then record both ranges in etcd (meta_range_split). On 0,
 * *new_id is the new range and `chosen` (may be NULL) the split key.
 * BLOCKS (rpc_sync.h). Errors: the leader's (STALE_EPOCH: the map is old;
 * KEY_OUT_OF_RANGE: the key does not split the range), NOQUORUM when no
 * replica leads, CONDITION when etcd changed meanwhile (a controller pass
 * records a split the replicas applied: reconcile_split.c); `err` says
 * which. */
int meta_split(meta *m, const meta_map *map, const meta_range *rg,
               const void *key, size_t key_len, int timeout_ms,
               uint64_t *new_id, buf *chosen, char *err, size_t err_len);

#endif
