/*
 * net.h - a node's links to its peer nodes: the Raft traffic of every range
 * over one connection per peer, batched per loop iteration, and node-level
 * liveness (DESIGN.md: "Raft traffic between two nodes shares one
 * connection"; "node liveness is per node, not per range").
 *
 * Links. A node dials each peer it has something to send to, on the
 * peer's one port (the port routers use), and opens with the handshake
 * `rpc_hello_link` (proto/rpc.h: sender's node id, address and
 * incarnation). The connection then carries frames in one direction:
 *
 *     length (4, of what follows) | kind (1) | range id (8) | payload
 *
 * so between two nodes there are two connections, one each way: each node
 * writes its own, nobody arbitrates who dials whom, and a reader never has
 * to interleave its replies with the other side's traffic. Frames queued
 * in one loop iteration leave in one write, right before the loop blocks
 * (a uv_prepare handle) - the Raft messages of a thousand ranges to one
 * peer cost one system call.
 *
 * Delivery is best effort, as Raft expects of its transport: a frame for a
 * peer that is unreachable, or whose queue is full (NET_QUEUE_MAX, a peer
 * that stopped reading), is dropped, and Raft's own retries recover.
 *
 * Liveness. Every NET_HEARTBEAT frame carries the sender's incarnation (a
 * random number per process). Every link sends one each heartbeat period;
 * a peer not heard from for `dead_ms` - or whose address refuses a
 * connection: its process is gone - is reported down, then up again
 * when it is heard, and a new incarnation is reported as a restart. The
 * replicas use these events to wake ranges that sleep (quiesce.c): a range
 * with no traffic sends nothing, so the node-wide heartbeat is what tells
 * its followers that their leader's node died.
 *
 * Everything runs on the node's loop.
 */
#ifndef CAIRN_REP_NET_H
#define CAIRN_REP_NET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "../common/buf.h"
#include "../proto/rpc.h"

/* Frame kinds. */
enum {
    NET_RAFT = 1,      /* a Raft message (raftmsg.h) for a range */
    NET_QUIESCE = 2,   /* a leader's "sleep" to a follower (quiesce.c) */
    NET_HEARTBEAT = 3, /* node liveness: incarnation (8); range id 0 */
    NET_READINDEX = 4, /* a leader's "am I still leader?" (readindex.c) */
    NET_READINDEX_ACK = 5, /* a follower's "yes, in that term" */
};

#define NET_FRAME_HEAD 13                /* length | kind | range */
#define NET_FRAME_MAX (256u << 20)       /* largest payload accepted */
#define NET_QUEUE_MAX (64u << 20)        /* bytes queued per peer */

/* Peer events. GONE is DOWN known for sure: its address refuses
 * connections, so its process is not running. */
enum { NET_PEER_UP = 1, NET_PEER_DOWN, NET_PEER_RESTARTED, NET_PEER_GONE };

typedef struct net_callbacks {
    /* A frame from node `from` (its `addr` stays valid during the call). */
    void (*deliver)(void *arg, uint64_t from, const char *addr, int kind,
                    uint64_t range, const uint8_t *payload, size_t len);
    /* Peer `id` went down, came back, or restarted. */
    void (*peer)(void *arg, uint64_t id, int event);
    void *arg;
} net_callbacks;

typedef struct net_options {
    uint64_t node_id;
    const char *address; /* this node's "host:port" */
    uint64_t incarnation;
    unsigned heartbeat_ms; /* node heartbeat period */
    unsigned dead_ms;      /* silence after which a peer is down */
} net_options;

typedef struct net net;

/* The links of a node. NULL when out of memory. */
net *net_new(uv_loop_t *loop, const net_options *o, const net_callbacks *cb);

/* Close every link; `cb(arg)` once every handle is closed. */
void net_close(net *n, void (*cb)(void *arg), void *arg);

/* Take over an accepted connection whose handshake `hello` (kind
 * RPC_CONN_LINK) has been read, with the `len` bytes that followed it.
 * `tcp` was malloc'd; ownership passes to the net (freed with free()). */
void net_accept(net *n, const rpc_hello *hello, uv_tcp_t *tcp,
                const uint8_t *rest, size_t len);

/* Queue a frame to peer `id` at `addr`: start it with net_frame_begin,
 * which returns the buffer to append the payload to (or NULL: the frame is
 * dropped - unknown address, queue full, out of memory), then
 * net_frame_end. Nothing else may touch the net in between. */
buf *net_frame_begin(net *n, uint64_t id, const char *addr, int kind,
                     uint64_t range);
void net_frame_end(net *n);

/* Give up the frame begun (its payload could not be built). */
void net_frame_cancel(net *n);

/* Whether peer `id` is considered up (heard within dead_ms). */
int net_peer_up(const net *n, uint64_t id);

typedef struct net_stats {
    uint64_t frames_out, bytes_out, writes; /* writes: system calls */
    uint64_t frames_in, bytes_in;
    uint64_t dropped; /* frames dropped: no connection or queue full */
} net_stats;

void net_get_stats(const net *n, net_stats *out);

/* Append the links as a JSON array: per peer its id, address, state
 * ("idle", "connecting", "up"), bytes queued and being written, and
 * whether it is heard from. */
int net_peers_json(const net *n, buf *out);

#endif
