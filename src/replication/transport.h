/*
 * transport.h - Raft traffic of every range over the node's one TCP port.
 *
 * libraft's raft_uv does each range's disk I/O and speaks its own message
 * format over a stream; it asks a `struct raft_uv_transport` for streams.
 * Ours opens them to the peer node's one port (the same port routers use)
 * and starts each with a handshake naming the range and the sender
 * (rpc_hello_raft, proto/rpc.h); the accepting node hands the stream to the
 * raft_uv instance of that range. So each Raft message names its range
 * through its connection, and a node has one port however many ranges it
 * hosts (DESIGN.md, "cairn node").
 *
 * After its handshake the connecting side waits for a one-byte
 * acknowledgement before libraft writes anything: the acceptor has then read
 * exactly the handshake and no Raft byte, whatever size its reads are.
 * A connection for a range the acceptor does not host (yet) is closed;
 * libraft retries it after its connect retry delay.
 *
 * The hub is the node-wide registry of the ranges' transports. Everything
 * runs on the node's one libuv loop.
 */
#ifndef CAIRN_REP_TRANSPORT_H
#define CAIRN_REP_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "../proto/rpc.h"

typedef struct rep_hub rep_hub;

/* A hub for node `node_id` on `loop`. NULL when out of memory. */
rep_hub *rep_hub_new(uv_loop_t *loop);

/* Free the hub; every transport must be closed and released first. */
void rep_hub_free(rep_hub *h);

/* Hand an accepted connection whose Raft handshake `hello` has been read to
 * the range it names. `stream` must have been allocated with raft_malloc
 * and must not be reading; ownership passes to the hub (it is closed if no
 * listening range matches). */
void rep_hub_accept(rep_hub *h, const rpc_hello *hello, uv_tcp_t *stream);

/* Initialise `t` as the transport of range `range_id`, for raft_uv_init. */
int rep_transport_init(struct raft_uv_transport *t, rep_hub *h,
                       uint64_t range_id);

/* Hold back (`hold` true) or let through the close callback of `t`. A
 * closing transport reports itself closed to raft_uv once it is not held and
 * has no connection attempt left, and then only one loop iteration after
 * every libuv handle that was closing at that moment has closed. The replica
 * holds it while disk appends are in flight: raft_uv's close callback must
 * not fire before its log segment writers have closed (replica.c, "libraft
 * 0.15 closes twice"). */
void rep_transport_hold_close(struct raft_uv_transport *t, bool hold);

/* Release `t`'s memory, after the raft_uv that used it has closed it. */
void rep_transport_release(struct raft_uv_transport *t);

#endif
