/*
 * rpc_sync.h - one-shot blocking RPC for admin paths.
 *
 * Opens a fresh client connection to a node, sends the handshake and one
 * request frame (rpc.h), reads one reply frame and closes, all within one
 * overall deadline. For admin work that talks to a node a few times a
 * second at most (the controller, a router's TABLE.CREATE worker, `cairn
 * admin`), where pooling would buy nothing.
 *
 * It blocks the calling thread: never call it on a libuv loop thread (the
 * data path uses the router's pooled, pipelined connections instead).
 */
#ifndef CAIRN_RPC_SYNC_H
#define CAIRN_RPC_SYNC_H

#include "../common/buf.h"
#include "rpc.h"

/* Send `req` to the node at `addr` ("host:port", IPv4 preferred) and wait
 * for its reply, at most `timeout_ms` from the call in total. On 0, `*rep`
 * is the decoded reply (its own status may be an error); it points into
 * `frame`, which the caller frees with buf_free() after reading `*rep`.
 * Errors, so a caller can tell whether the request may have been applied:
 *   CAIRN_ERR_INVALID  `addr` is not host:port or does not resolve;
 *   CAIRN_ERR_IO       no connection (refused, unreachable, connect timed
 *                      out) or it closed before a reply: the request was
 *                      not sent, or its outcome is unknown after a close;
 *   CAIRN_ERR_TIMEOUT  sent, but no complete reply in time (outcome
 *                      unknown, as the router's -TIMEOUT);
 *   CAIRN_ERR_PROTO    the answer is not a well-formed RPC_REPLY frame to
 *                      this request's id.
 * A node that refuses the connection (a wrong or missing cluster secret,
 * rpc.h) answers with request id 0 and status NOAUTH: that is returned as
 * the reply (0, rep->status NOAUTH); the request was not applied. */
int rpc_sync_call(const char *addr, const rpc_request *req, int timeout_ms,
                  buf *frame, rpc_reply *rep);

/* rpc_sync_call() reduced to one status: the reply's status (0 or a cairn
 * error) or the transport error above. `text` (may be NULL) receives,
 * NUL-terminated and not counted in its length, the reply's text on
 * success (admin replies: JSON) or its error message. */
int rpc_sync_status(const char *addr, const rpc_request *req, int timeout_ms,
                    buf *text);

#endif
