/*
 * node_meta.h - a node's side of the metadata in etcd (issue 4, "cairn node
 * registration"): it registers the node with a lease and keeps it alive,
 * and records in etcd every range this node starts leading, with its term.
 *
 * etcd is never on the data path. Every etcd call blocks (meta/etcd.h), so
 * none runs on the node's loop: the loop only looks at its replicas (a
 * cheap timer) and hands "range R led by me in term T" to a writer thread
 * through a queue. A node that loses etcd keeps serving (Raft does not need
 * etcd); its pending leader records are retried and its registration is
 * renewed by the keeper when etcd answers again (meta_node_keeper).
 */
#ifndef CAIRN_NODE_META_H
#define CAIRN_NODE_META_H

#include <stdint.h>

#include <uv.h>

#include "../replication/replica.h"

typedef struct node_meta node_meta;

/* The node's replicas, visited one by one on the loop thread. */
typedef void (*node_meta_visit)(void *varg, replica *r);
typedef void (*node_meta_each)(void *arg, node_meta_visit fn, void *varg);

typedef struct node_meta_config {
    const char *etcd;   /* "http://host:port[,...]" */
    const char *prefix; /* NULL = META_PREFIX_DEFAULT */
    uint64_t node_id;
    const char *address; /* where routers and peers reach this node */
    const char *dir;     /* data directory: its free space is the capacity */
    const char *zone;    /* failure zone, recorded with the node, or NULL */
    int lease_ttl_s;     /* liveness lease (0 = 6 s): how soon a dead node
                            leaves the live set */
    node_meta_each each; /* how to list the replicas */
    void *each_arg;
} node_meta_config;

/* Start on `loop` (call on its thread): the keeper thread registers the
 * node, the writer thread records leaders, a timer on the loop notices new
 * leaderships. Does no etcd I/O on the caller's thread, so it succeeds with
 * etcd down. 0, CAIRN_ERR_INVALID (bad endpoints or prefix), NOMEM. */
int node_meta_start(uv_loop_t *loop, const node_meta_config *cfg,
                    node_meta **out);

/* Stop (on the loop thread, when the node shuts down): stop the timer, join
 * the threads and revoke the lease, so the node leaves the live set at
 * once. May block up to one etcd call timeout. The memory goes when the
 * loop has closed the timer. NULL is a no-op. */
void node_meta_stop(node_meta *nm);

#endif
