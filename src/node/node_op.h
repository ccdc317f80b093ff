/*
 * node_op.h - what the node's request handlers share (node_dispatch.c,
 * node_data.c, node_admin.c): a request waiting for its replica, and the
 * replies. Internal to src/node.
 */
#ifndef CAIRN_NODE_OP_H
#define CAIRN_NODE_OP_H

#include "node_int.h"

/* A request waiting for its replica. */
typedef struct op {
    conn *c;
    uint64_t id;
    rpc_type type;
    replica *r;
    buf key, end;
    uint32_t limit;
    uint64_t range_id; /* drop, admin: the range of the request */
    uint64_t epoch;    /* reads: checked again when served */
    uint32_t copies, landed, skipped; /* COPY: outstanding, landed, not */
    uint64_t copy_bytes;              /* COPY: keys and values offered */
    bool issuing;            /* COPY: records still being queued */
    int copy_err;            /* COPY: the first failure */
} op;

/* An error reply (`msg` NULL: the code's own message). */
void node_reply_error(conn *c, uint64_t id, int status, const char *msg);

/* An error reply; NOT_LEADER names the leader this replica knows (or is
 * NOQUORUM when none is known, TRYAGAIN while it hands over). */
void node_reply_status(conn *c, uint64_t id, int status, replica *r,
                       const char *msg);

/* A request of `c` waiting for replica `r` (its key and end copied);
 * NULL when out of memory. It holds a reference on the connection. */
op *node_op_new(conn *c, const rpc_request *q, replica *r);

/* Finish an op: flush its reply (if the connection is still open) and
 * drop its reference. */
void node_op_done(op *o);

/* Data requests (node_data.c): PUT, DEL, GET, SCAN, SCAN_RECORDS after
 * the routing checks (range, epoch, key), and COPY (a move's records). */
void node_handle_data(conn *c, const rpc_request *q);
void node_handle_copy(conn *c, const rpc_request *q);

/* Admin requests (node_admin.c). */
void node_handle_create(conn *c, const rpc_request *q);
void node_handle_create_many(conn *c, const rpc_request *q);
void node_handle_metrics(conn *c, const rpc_request *q);
void node_handle_membership(conn *c, const rpc_request *q);
void node_handle_drop(conn *c, const rpc_request *q);
void node_handle_split(conn *c, const rpc_request *q);
void node_handle_catch_up(conn *c, const rpc_request *q);

#endif
