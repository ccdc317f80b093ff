/*
 * req.c - the end of a client command: its error replies, and handing its
 * complete reply back to whoever made it (server.c sets q->finish). The
 * layers below the server (exec, scan, tables) finish a command through
 * here and never call up into server.c.
 */
#include "router/router_int.h"

void router_req_finish(struct rreq *q)
{
    q->finish(q);
}

void router_reply_status(struct rreq *q, int status, const char *msg)
{
    if (msg == NULL || msg[0] == '\0')
        msg = cairn_err_message(status);
    resp_write_error(&q->out, cairn_err_word(status), "%s", msg);
}
