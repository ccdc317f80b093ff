/*
 * node_dispatch.c - a node's RPC requests: each goes to its handler (data
 * requests: node_data.c; admin requests: node_admin.c); the replies and
 * the ops they share (node_op.h).
 */
#include "node_op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

/* ---- replies ---------------------------------------------------------- */

void node_reply_error(conn *c, uint64_t id, int status, const char *msg)
{
    rpc_reply_error(&c->out, id, status, msg ? msg : cairn_err_message(status));
}

/* NOT_LEADER with the leader this replica knows; with none known (an
 * election is running, or no majority is reachable to elect one) the clear
 * answer is NOQUORUM. */
static void reply_not_leader(conn *c, uint64_t id, replica *r)
{
    uint64_t lid = 0;
    const char *addr = NULL;
    if (r)
        replica_leader(r, &lid, &addr);
    if (lid == 0) {
        rpc_reply_error(&c->out, id, CAIRN_ERR_NO_QUORUM,
                        "no leader: election in progress or no majority of "
                        "replicas reachable");
        return;
    }
    if (lid == c->n->opts->id) { /* still leader, but handing over */
        rpc_reply_error(&c->out, id, CAIRN_ERR_TRYAGAIN,
                        "leadership transfer in progress");
        return;
    }
    rpc_reply_not_leader(&c->out, id, lid, addr ? addr : "");
}

void node_reply_status(conn *c, uint64_t id, int status, replica *r,
                         const char *msg)
{
    if (status == CAIRN_ERR_NOT_LEADER)
        reply_not_leader(c, id, r);
    else
        node_reply_error(c, id, status, msg);
}

/* ---- ops -------------------------------------------------------------- */

op *node_op_new(conn *c, const rpc_request *q, replica *r)
{
    op *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->c = c;
    o->id = q->id;
    o->type = q->type;
    o->r = r;
    o->limit = q->limit;
    o->range_id = q->range_id;
    o->epoch = q->epoch;
    if (buf_append(&o->key, q->key.p, q->key.len) != 0 ||
        buf_append(&o->end, q->end.p, q->end.len) != 0) {
        buf_free(&o->key);
        free(o);
        return NULL;
    }
    node_conn_ref(c);
    return o;
}

/* Finish an op: flush its reply (if the connection is still open). */
void node_op_done(op *o)
{
    conn *c = o->c;
    buf_free(&o->key);
    buf_free(&o->end);
    free(o);
    if (!c->closing)
        node_conn_flush(c);
    node_conn_unref(c);
}

void node_dispatch(conn *c, const rpc_request *q)
{
    if ((unsigned)q->type < RPC_TYPE_MAX_)
        c->n->rpc_in[q->type]++;
    switch (q->type) {
    case RPC_PING:
        rpc_reply_ok(&c->out, q->id);
        break;
    case RPC_PUT:
    case RPC_DEL:
    case RPC_GET:
    case RPC_SCAN:
    case RPC_SCAN_RECORDS:
        node_handle_data(c, q);
        break;
    case RPC_COPY:
        node_handle_copy(c, q);
        break;
    case RPC_CREATE_REPLICA:
        node_handle_create(c, q);
        break;
    case RPC_CREATE_REPLICAS:
        node_handle_create_many(c, q);
        break;
    case RPC_METRICS:
        node_handle_metrics(c, q);
        break;
    case RPC_DROP_REPLICA:
        node_handle_drop(c, q);
        break;
    case RPC_SPLIT_RANGE:
        node_handle_split(c, q);
        break;
    case RPC_CATCH_UP:
        node_handle_catch_up(c, q);
        break;
    default:
        node_handle_membership(c, q);
        break;
    }
}
