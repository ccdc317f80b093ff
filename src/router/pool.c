/*
 * pool.c - pooled, pipelined connections from the router to nodes.
 *
 * One connection per node address, shared by every client: requests are
 * framed with a request id (proto/rpc.h) and written back to back; replies
 * are matched by id, so a node may answer them in any order. Writes are
 * batched: while one write is on the socket, new requests queue with their
 * frames and go together when it completes.
 *
 * The pool knows requests (pool_req), not ops: their outcome goes back
 * through the request's callbacks, set by op.c, which sits above.
 * A request counts as sent once the write carrying its frame was handed to
 * the socket; if the connection then dies or the deadline passes, a sent
 * write's outcome is unknown (op.c answers -TIMEOUT), while an unsent
 * request's frame is still its own: detaching it drops the frame, so it is
 * safely retried or answered -TRYAGAIN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "router/router_int.h"

struct nwrite {
    uv_write_t req;
    struct nconn *conn;
    size_t n;
    uint8_t *data[]; /* owned: the hello and the frames in this write */
};

static void conn_fail(struct nconn *n, int err);
static void on_write(uv_write_t *req, int status);

/* Unsent requests are always the tail of the in-flight list: they are
 * appended unsent and a flush sends every one of them. */
static pool_req *first_unsent(struct nconn *n)
{
    pool_req *first = NULL;
    for (pool_req *pr = n->tail; pr != NULL && !pr->sent; pr = pr->cprev)
        first = pr;
    return first;
}

/* Hand the hello (if not yet written) and every unsent request's frame to
 * the socket in one write. Until then a frame belongs to its request, so
 * one detached first takes its frame with it and the node never sees it
 * (why -TRYAGAIN may promise that nothing was written). */
static void conn_flush(struct nconn *n)
{
    if (!n->connected || n->writing || n->closing)
        return;
    pool_req *first = first_unsent(n);
    size_t nb = n->out.len > 0 ? 1 : 0;
    for (pool_req *pr = first; pr != NULL; pr = pr->cnext)
        nb++;
    if (nb == 0)
        return;
    struct nwrite *w = malloc(sizeof *w + nb * sizeof w->data[0]);
    uv_buf_t *bufs = malloc(nb * sizeof *bufs);
    if (w == NULL || bufs == NULL) {
        free(w);
        free(bufs);
        conn_fail(n, CAIRN_ERR_NOMEM);
        return;
    }
    w->conn = n;
    w->n = 0;
    if (n->out.len > 0) {
        bufs[w->n] = uv_buf_init((char *)n->out.data, (unsigned)n->out.len);
        w->data[w->n++] = n->out.data;
        n->out = (buf)BUF_INIT;
    }
    for (pool_req *pr = first; pr != NULL; pr = pr->cnext) {
        bufs[w->n] = uv_buf_init((char *)pr->frame.data,
                                 (unsigned)pr->frame.len);
        w->data[w->n++] = pr->frame.data;
        pr->frame = (buf)BUF_INIT;
        pr->sent = true;
    }
    n->writing = true;
    int rc = uv_write(&w->req, (uv_stream_t *)&n->tcp, bufs,
                      (unsigned)w->n, on_write);
    free(bufs); /* libuv keeps its own copy of the array */
    if (rc != 0) {
        for (size_t i = 0; i < w->n; i++)
            free(w->data[i]);
        free(w);
        n->writing = false;
        conn_fail(n, CAIRN_ERR_IO);
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct nwrite *w = (struct nwrite *)req;
    struct nconn *n = w->conn;
    for (size_t i = 0; i < w->n; i++)
        free(w->data[i]);
    free(w);
    n->writing = false;
    if (status < 0) {
        conn_fail(n, CAIRN_ERR_IO);
        return;
    }
    conn_flush(n);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct nconn *n = h->data;
    buf_free(&n->out);
    buf_free(&n->in);
    free(n);
}

/* The connection is gone: every request on it fails (op.c retries it or,
 * for a sent write, answers -TIMEOUT). New sends to the address open a
 * new connection. */
static void conn_fail(struct nconn *n, int err)
{
    if (n->closing)
        return;
    n->closing = true;
    struct router *r = n->r;
    for (struct nconn **p = &r->conns; *p != NULL; p = &(*p)->next)
        if (*p == n) {
            *p = n->next;
            break;
        }
    uv_close((uv_handle_t *)&n->tcp, on_conn_closed);
    while (n->head != NULL) {
        pool_req *pr = n->head;
        router_pool_detach(pr);
        pr->on_failed(pr, err);
    }
}

static pool_req *find_req(struct nconn *n, uint64_t id)
{
    for (pool_req *pr = n->head; pr != NULL; pr = pr->cnext)
        if (pr->rpc_id == id)
            return pr;
    return NULL;
}

/* The node refused the connection (request id 0: a wrong or missing
 * cluster secret). It read nothing after the handshake, so no request on
 * this connection was applied, sent or not: every one may be retried. */
static void conn_refused(struct nconn *n, const uint8_t *p, size_t len)
{
    rpc_reply rep;
    struct router *r = n->r;
    uint64_t now = router_now(r);
    if (rpc_decode_reply(p, len, RPC_PING, &rep) == 0 &&
        (r->refused_log_ms == 0 || now - r->refused_log_ms >= 1000)) {
        r->refused_log_ms = now;
        log_warn("node %s refused the connection: %s %.*s", n->addr,
                 cairn_err_word(rep.status), (int)rep.message.len,
                 (const char *)rep.message.p);
    }
    for (pool_req *pr = n->head; pr != NULL; pr = pr->cnext)
        pr->sent = false;
    conn_fail(n, CAIRN_ERR_NOAUTH);
}

static void handle_frame(struct nconn *n, const uint8_t *p, size_t len)
{
    if (be_get_u64(p + 5) == 0) {
        conn_refused(n, p, len);
        return;
    }
    pool_req *pr = find_req(n, be_get_u64(p + 5));
    if (pr == NULL)
        return; /* it timed out or was cancelled: drop the reply */
    rpc_reply rep;
    if (rpc_decode_reply(p, len, pr->type, &rep) != 0) {
        conn_fail(n, CAIRN_ERR_PROTO);
        return;
    }
    router_pool_detach(pr);
    pr->on_reply(pr, &rep);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    struct nconn *n = h->data;
    if (buf_reserve(&n->in, 65536) != 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init((char *)n->in.data + n->in.len,
                       (unsigned)(n->in.cap - n->in.len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct nconn *n = s->data;
    if (nread < 0) {
        conn_fail(n, CAIRN_ERR_IO);
        return;
    }
    n->in.len += (size_t)nread;
    size_t off = 0;
    while (!n->closing) {
        long flen = rpc_frame_len(n->in.data + off, n->in.len - off);
        if (flen == 0)
            break;
        if (flen < 0) {
            conn_fail(n, CAIRN_ERR_PROTO);
            return;
        }
        handle_frame(n, n->in.data + off, (size_t)flen);
        off += (size_t)flen;
    }
    if (n->closing)
        return;
    buf_consume(&n->in, off);
    if (n->in.len == 0 && n->in.cap > (1u << 20))
        buf_free(&n->in); /* let a large scan reply's memory go */
}

static void on_connect(uv_connect_t *req, int status)
{
    struct nconn *n = req->data;
    if (n->closing)
        return;
    if (status < 0) {
        conn_fail(n, CAIRN_ERR_IO);
        return;
    }
    n->connected = true;
    uv_tcp_nodelay(&n->tcp, 1);
    uv_read_start((uv_stream_t *)&n->tcp, on_alloc, on_read);
    conn_flush(n);
}

/* "host:port" -> sockaddr (numeric addresses; nodes register them). */
static int parse_addr(const char *addr, struct sockaddr_storage *sa)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon - addr > 63)
        return CAIRN_ERR_INVALID;
    char host[64];
    size_t hl = (size_t)(colon - addr);
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return CAIRN_ERR_INVALID;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)sa) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa) == 0)
        return 0;
    return CAIRN_ERR_INVALID;
}

static struct nconn *conn_open(struct router *r, const char *addr)
{
    struct sockaddr_storage sa;
    if (strlen(addr) > ROUTER_ADDR_MAX || parse_addr(addr, &sa) != 0)
        return NULL;
    struct nconn *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    n->r = r;
    strcpy(n->addr, addr);
    if (rpc_hello_client(&n->out) != 0) {
        free(n);
        return NULL;
    }
    uv_tcp_init(&r->loop, &n->tcp);
    n->tcp.data = n;
    n->connect_req.data = n;
    n->next = r->conns;
    r->conns = n;
    if (uv_tcp_connect(&n->connect_req, &n->tcp,
                       (const struct sockaddr *)&sa, on_connect) != 0) {
        n->closing = true;
        r->conns = n->next;
        uv_close((uv_handle_t *)&n->tcp, on_conn_closed);
        return NULL;
    }
    return n;
}

struct nconn *router_pool_find(struct router *r, const char *addr)
{
    struct nconn *n = r->conns;
    while (n != NULL && strcmp(n->addr, addr) != 0)
        n = n->next;
    return n;
}

int router_pool_send(struct router *r, const char *addr, pool_req *pr,
                     const rpc_request *req)
{
    struct nconn *n = router_pool_find(r, addr);
    if (n == NULL && (n = conn_open(r, addr)) == NULL)
        return CAIRN_ERR_IO;
    buf_free(&pr->frame);
    int rc = rpc_encode_request(&pr->frame, req);
    if (rc != 0) {
        buf_free(&pr->frame);
        return rc;
    }
    pr->rpc_id = req->id;
    pr->type = req->type;
    pr->sent = false;
    pr->conn = n;
    pr->cnext = NULL;
    pr->cprev = n->tail;
    if (n->tail)
        n->tail->cnext = pr;
    else
        n->head = pr;
    n->tail = pr;
    n->ninflight++;
    conn_flush(n);
    return 0;
}

void router_pool_detach(pool_req *pr)
{
    struct nconn *n = pr->conn;
    if (n == NULL)
        return;
    if (pr->cprev)
        pr->cprev->cnext = pr->cnext;
    else
        n->head = pr->cnext;
    if (pr->cnext)
        pr->cnext->cprev = pr->cprev;
    else
        n->tail = pr->cprev;
    n->ninflight--;
    buf_free(&pr->frame); /* not handed to the socket: never sent */
    pr->conn = NULL;
    pr->cnext = pr->cprev = NULL;
}

void router_pool_close_all(struct router *r)
{
    while (r->conns != NULL)
        conn_fail(r->conns, CAIRN_ERR_SHUTDOWN);
}
