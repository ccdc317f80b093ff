/*
 * server.c - the router's RESP front end: accept clients, parse pipelined
 * commands, answer them in order, push back on clients that read slowly.
 *
 * Ordering: every command gets a req at the tail of its client's queue;
 * replies are written strictly from the head, so a pipelined client sees
 * replies in command order even when the nodes answer out of order.
 * Backpressure: a client with ROUTER_CLIENT_MAX_REQS commands queued or
 * ROUTER_CLIENT_MAX_OUT reply bytes unwritten is not read until it drains;
 * its input buffer is then bounded by one command (the parser's limits).
 * An idle client holds no input buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "router/router_int.h"

#define READ_CHUNK 16384
#define WRITE_BATCH 64

struct wctx {
    uv_write_t req;
    struct rclient *c;
    size_t n, bytes;
    uint8_t *data[WRITE_BATCH];
};

static void client_resume(struct rclient *c);
static void client_close(struct rclient *c);

void router_req_free(struct rreq *q)
{
    router_scan_free(q);
    /* An MGET whose client left mid-command still holds the values its
     * finished keys brought back. */
    if (q->parts != NULL)
        for (size_t i = 0; i < q->cmd.nargs; i++)
            free(q->parts[i].value);
    free(q->parts);
    free(q->argv);
    free(q->argmem);
    buf_free(&q->out);
    free(q);
}

static void req_finish(struct rreq *q);

/* A req owns a copy of its arguments: the input buffer moves on as soon as
 * the command is parsed, while the req may wait for nodes. */
static struct rreq *req_new(struct rclient *c, const resp_cmd *cmd)
{
    struct rreq *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->finish = req_finish;
    size_t total = 0;
    for (size_t i = 0; i < cmd->argc; i++)
        total += cmd->argv[i].len;
    q->argv = malloc(cmd->argc * sizeof *q->argv);
    q->argmem = malloc(total ? total : 1);
    if (q->argv == NULL || q->argmem == NULL) {
        router_req_free(q);
        return NULL;
    }
    size_t at = 0;
    for (size_t i = 0; i < cmd->argc; i++) {
        if (cmd->argv[i].len)
            memcpy(q->argmem + at, cmd->argv[i].p, cmd->argv[i].len);
        q->argv[i].p = q->argmem + at;
        q->argv[i].len = cmd->argv[i].len;
        at += cmd->argv[i].len;
    }
    q->argc = cmd->argc;
    q->c = c;
    q->r = c->r;
    q->start_ns = uv_hrtime();
    return q;
}

static void enqueue(struct rclient *c, struct rreq *q)
{
    q->c = c;
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->nreqs++;
}

static void on_write(uv_write_t *w, int status)
{
    struct wctx *x = (struct wctx *)w;
    struct rclient *c = x->c;
    for (size_t i = 0; i < x->n; i++)
        free(x->data[i]);
    c->out_bytes -= x->bytes;
    free(x);
    if (status < 0) {
        client_close(c);
        return;
    }
    if (!c->closing)
        client_resume(c);
}

static bool client_wants_close(const struct rclient *c)
{
    return c->stop_input && c->head == NULL;
}

/* Write the replies that are complete at the head of the queue. */
static void client_flush(struct rclient *c)
{
    while (!c->closing && c->head != NULL && c->head->done) {
        struct wctx *x = calloc(1, sizeof *x);
        if (x == NULL) {
            client_close(c);
            return;
        }
        x->c = c;
        uv_buf_t bufs[WRITE_BATCH];
        bool close_after = false;
        while (x->n < WRITE_BATCH && c->head != NULL && c->head->done) {
            struct rreq *q = c->head;
            c->head = q->next;
            if (c->head == NULL)
                c->tail = NULL;
            c->nreqs--;
            close_after |= q->close_after;
            bufs[x->n] = uv_buf_init((char *)q->out.data, (unsigned)q->out.len);
            x->data[x->n++] = q->out.data;
            x->bytes += q->out.len;
            /* moving average of reply sizes, weight 1/8 */
            c->avg_reply = c->avg_reply - c->avg_reply / 8 + q->out.len / 8;
            q->out = (buf)BUF_INIT;
            router_req_free(q);
            if (close_after)
                break;
        }
        c->out_bytes += x->bytes;
        if (uv_write(&x->req, (uv_stream_t *)&c->tcp, bufs,
                     (unsigned)x->n, on_write) != 0) {
            for (size_t i = 0; i < x->n; i++)
                free(x->data[i]);
            c->out_bytes -= x->bytes;
            free(x);
            client_close(c);
            return;
        }
        if (close_after)
            c->stop_input = true; /* QUIT, protocol error: nothing after */
    }
}

/* A req's reply is complete (its `finish`): write what can be written,
 * in order. */
static void req_finish(struct rreq *q)
{
    q->done = true;
    if (q->mkind)
        router_metrics_request(q->r, q);
    if (q->c == NULL) {
        router_req_free(q);
        return;
    }
    struct rclient *c = q->c;
    client_flush(c);
    if (!c->processing && !c->closing)
        client_resume(c);
}

/* How many commands a client may have in flight. Replies are only known
 * once they arrive, so the window follows the client's recent reply size:
 * ROUTER_CLIENT_MAX_OUT bytes' worth, between 4 and ROUTER_CLIENT_MAX_REQS
 * commands. A client reading 1 MiB values gets a few at a time; one doing
 * small GETs gets hundreds. */
static size_t client_window(const struct rclient *c)
{
    size_t avg = c->avg_reply > 1 ? c->avg_reply : 1;
    size_t w = ROUTER_CLIENT_MAX_OUT / avg;
    if (w < 4)
        w = 4;
    return w < ROUTER_CLIENT_MAX_REQS ? w : ROUTER_CLIENT_MAX_REQS;
}

static bool client_can_take_more(const struct rclient *c)
{
    return !c->stop_input && c->nreqs < client_window(c) &&
           c->out_bytes < ROUTER_CLIENT_MAX_OUT;
}

static void proto_error(struct rclient *c)
{
    struct rreq *q = calloc(1, sizeof *q);
    if (q == NULL) {
        client_close(c);
        return;
    }
    resp_write_proto_error(&q->out, c->parser);
    q->close_after = true;
    c->stop_input = true;
    enqueue(c, q);
    c->r->stat_errors++;
    req_finish(q);
}

/* Parse and start every complete command in the input, as far as the
 * client's bounds allow. */
static void client_process(struct rclient *c)
{
    size_t off = 0;
    c->processing = true;
    while (!c->closing && client_can_take_more(c) && off < c->in.len) {
        resp_cmd cmd;
        int rc = resp_parse_command(c->parser, c->in.data + off,
                                    c->in.len - off, &cmd);
        if (rc == 0)
            break;
        if (rc < 0) {
            proto_error(c);
            break;
        }
        off += cmd.consumed;
        struct rreq *q = req_new(c, &cmd);
        if (q == NULL) {
            client_close(c);
            break;
        }
        enqueue(c, q);
        c->r->stat_commands++;
        router_exec(c->r, q);
    }
    c->processing = false;
    if (c->closing)
        return;
    buf_consume(&c->in, off);
    if (c->in.len == 0)
        buf_free(&c->in); /* an idle client holds no buffer */
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    struct rclient *c = h->data;
    if (buf_reserve(&c->in, READ_CHUNK) != 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init((char *)c->in.data + c->in.len,
                       (unsigned)(c->in.cap - c->in.len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct rclient *c = s->data;
    if (n < 0) {
        client_close(c);
        return;
    }
    c->in.len += (size_t)n;
    client_process(c);
    if (!c->closing)
        client_resume(c);
}

static void set_reading(struct rclient *c, bool on)
{
    if (on == c->reading)
        return;
    c->reading = on;
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

/* Take buffered commands if there is room, then read iff there is room. */
static void client_resume(struct rclient *c)
{
    if (client_wants_close(c) && c->out_bytes == 0) {
        client_close(c);
        return;
    }
    if (client_can_take_more(c) && c->in.len > 0 && !c->processing)
        client_process(c);
    if (!c->closing)
        set_reading(c, client_can_take_more(c));
}

static void on_client_closed(uv_handle_t *h)
{
    struct rclient *c = h->data;
    resp_parser_free(c->parser);
    buf_free(&c->in);
    free(c);
}

static void client_close(struct rclient *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct router *r = c->r;
    if (c->prev)
        c->prev->next = c->next;
    else
        r->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    r->nclients--;
    struct rreq *q = c->head;
    while (q != NULL) {
        struct rreq *next = q->next;
        router_op_cancel_req(r, q);
        q->c = NULL;
        if (q->job == NULL)
            router_req_free(q); /* else the job's completion frees it */
        q = next;
    }
    c->head = c->tail = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct router *r = server->data;
    if (status < 0)
        return;
    struct rclient *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->r = r;
    c->avg_reply = ROUTER_REPLY_GUESS;
    resp_limits lim = resp_limits_default();
    lim.message_max = ROUTER_CLIENT_MESSAGE_MAX;
    if (resp_parser_new(&c->parser, &lim) != 0) {
        free(c);
        return;
    }
    uv_tcp_init(&r->loop, &c->tcp);
    c->tcp.data = c;
    c->next = r->clients;
    if (r->clients)
        r->clients->prev = c;
    r->clients = c;
    r->nclients++;
    r->stat_connections++;
    c->id = r->stat_connections;
    c->authed = r->cfg.password == NULL;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        client_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    set_reading(c, true);
}

int router_server_start(struct router *r)
{
    struct sockaddr_storage sa;
    if (uv_ip4_addr(r->host, r->cfg.port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(r->host, r->cfg.port, (struct sockaddr_in6 *)&sa) != 0)
        return CAIRN_ERR_INVALID;
    if (uv_tcp_bind(&r->listener, (const struct sockaddr *)&sa, 0) != 0 ||
        uv_listen((uv_stream_t *)&r->listener, 511, on_connection) != 0)
        return CAIRN_ERR_IO;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&r->listener, (struct sockaddr *)&bound, &len);
    r->port = bound.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

void router_server_stop(struct router *r)
{
    if (!uv_is_closing((uv_handle_t *)&r->listener))
        uv_close((uv_handle_t *)&r->listener, NULL);
    while (r->clients != NULL)
        client_close(r->clients);
}
