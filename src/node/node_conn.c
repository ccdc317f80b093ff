/*
 * node_conn.c - a node's client connections: accept, the handshake,
 * length-prefixed request frames in, replies out in one buffered write at
 * a time (node_int.h). A connection whose handshake says Raft is handed to
 * the replication layer, which owns it from then on.
 */
#include "node_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "../common/err.h"
#include "../common/log.h"

#define READ_CHUNK (64 * 1024)

static void conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    free(c->tcp);
    c->tcp = NULL;
    node_conn_unref(c);
}

void node_conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)c->tcp, conn_closed);
}

void node_conn_ref(conn *c) { c->refs++; }

void node_conn_unref(conn *c)
{
    if (--c->refs > 0)
        return;
    node *n = c->n;
    n->n_conns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        n->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->writing);
    free(c);
}

static void conn_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->writing_busy = false;
    buf_reset(&c->writing);
    if (status != 0 || (c->close_after_write && c->out.len == 0))
        node_conn_close(c);
    else if (!c->closing)
        node_conn_flush(c);
    node_conn_unref(c);
}

void node_conn_flush(conn *c)
{
    if (c->writing_busy || c->out.len == 0 || c->closing)
        return;
    buf t = c->writing;
    c->writing = c->out;
    c->out = t;
    uv_buf_t b = uv_buf_init((char *)c->writing.data,
                             (unsigned)c->writing.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)c->tcp, &b, 1, conn_written) != 0) {
        node_conn_close(c);
        return;
    }
    c->writing_busy = true;
    c->refs++;
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    conn *c = h->data;
    if (buf_reserve(&c->in, READ_CHUNK) != 0) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init((char *)c->in.data + c->in.len,
                     (unsigned)(c->in.cap - c->in.len));
}

/* "ip:port" of the other end, for the log. */
static void peer_name(conn *c, char *out, size_t cap)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    snprintf(out, cap, "?");
    if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&sa, &len) != 0)
        return;
    char ip[64] = "?";
    int port = 0;
    if (sa.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    } else if (sa.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    }
    snprintf(out, cap, "%s:%d", ip, port);
}

/* A refused handshake is logged, but at most once a second per reason
 * (with the count of those not logged), so that a client retrying in a
 * loop with a wrong secret cannot flood the log. */
static void log_refusal(conn *c, uint64_t *count, const char *what)
{
    node *n = c->n;
    uint64_t now = uv_now(&n->loop);
    (*count)++;
    bool secret = count == &n->refused_secret;
    uint64_t *last = secret ? &n->refused_secret_log_ms
                            : &n->refused_handshake_log_ms;
    if (*last != 0 && now - *last < 1000)
        return;
    *last = now;
    char peer[96];
    peer_name(c, peer, sizeof peer);
    /* A malformed handshake is a port scan or a confused client: debug.
     * A wrong secret is a misconfigured or unwelcome peer: warn. */
    log_range(secret ? LOG_WARN : LOG_DEBUG, 0,
              "refused a connection from %s: %s (%llu refused so far)",
              peer, what, (unsigned long long)*count);
}

/* The handshake says what the connection carries; a link from a peer
 * node is handed over to replication, which owns the stream (and the
 * bytes read after the handshake) from then on. With a cluster secret,
 * a handshake without it or with another one closes the connection
 * before anything after it is read: nothing such a client sent is
 * applied, and no peer is heard from. */
static bool conn_hello(conn *c)
{
    rpc_hello h;
    int used = rpc_hello_parse(c->in.data, c->in.len, &h);
    if (used == 0)
        return false;
    if (used < 0) {
        log_refusal(c, &c->n->refused_handshake, "malformed handshake");
        node_conn_close(c);
        return false;
    }
    int sec = rpc_secret_check(&h);
    if (sec != 0) {
        char what[RPC_ADDR_MAX + 96];
        if (h.kind == RPC_CONN_LINK)
            snprintf(what, sizeof what,
                     "%s cluster secret on a link from node %llu at %s",
                     sec == CAIRN_ERR_PROTO ? "no" : "wrong",
                     (unsigned long long)h.from_id, h.addr);
        else
            snprintf(what, sizeof what, "%s cluster secret on a client "
                     "connection", sec == CAIRN_ERR_PROTO ? "no" : "wrong");
        log_refusal(c, &c->n->refused_secret, what);
        if (h.kind != RPC_CONN_CLIENT) {
            node_conn_close(c);
            return false;
        }
        /* A client is told why (request id 0: the connection, not a
         * request), so that a router or tool can say so instead of
         * guessing from a closed socket; nothing after the handshake is
         * read. */
        uv_read_stop((uv_stream_t *)c->tcp);
        rpc_reply_error(&c->out, 0, CAIRN_ERR_NOAUTH,
                        sec == CAIRN_ERR_PROTO
                            ? "this node requires the cluster secret; "
                              "nothing sent on this connection was applied"
                            : "wrong cluster secret; nothing sent on this "
                              "connection was applied");
        c->close_after_write = true;
        node_conn_flush(c);
        return false;
    }
    if (h.kind == RPC_CONN_LINK) {
        uv_read_stop((uv_stream_t *)c->tcp);
        uv_tcp_t *tcp = c->tcp;
        c->tcp = NULL;
        c->closing = true;
        rep_env_accept(&c->n->env, &h, tcp, c->in.data + used,
                       c->in.len - (size_t)used);
        node_conn_unref(c);
        return false;
    }
    buf_consume(&c->in, (size_t)used);
    c->hello_done = true;
    return true;
}

static void conn_frames(conn *c)
{
    size_t pos = 0;
    while (!c->closing) {
        long n = rpc_frame_len(c->in.data + pos, c->in.len - pos);
        if (n == 0)
            break;
        rpc_request q;
        if (n < 0 || rpc_decode_request(c->in.data + pos, (size_t)n, &q) != 0) {
            node_conn_close(c);
            break;
        }
        node_dispatch(c, &q);
        pos += (size_t)n;
    }
    buf_consume(&c->in, pos);
    node_conn_flush(c);
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn *c = s->data;
    if (nread < 0) {
        node_conn_close(c);
        return;
    }
    c->in.len += (size_t)nread;
    if (!c->hello_done && !conn_hello(c))
        return;
    c->refs++; /* a dispatch may drop the last other reference */
    conn_frames(c);
    node_conn_unref(c);
}

void node_on_connection(uv_stream_t *server, int status)
{
    node *n = server->data;
    if (status != 0 || n->stopping)
        return;
    conn *c = calloc(1, sizeof *c);
    uv_tcp_t *tcp = c ? malloc(sizeof *tcp) : NULL;
    if (tcp == NULL) {
        free(c);
        return;
    }
    uv_tcp_init(&n->loop, tcp);
    c->n = n;
    c->tcp = tcp;
    c->refs = 1;
    n->n_conns++;
    tcp->data = c;
    c->next = n->conns;
    if (n->conns)
        n->conns->prev = c;
    n->conns = c;
    if (uv_accept(server, (uv_stream_t *)tcp) != 0 ||
        uv_read_start((uv_stream_t *)tcp, conn_alloc, conn_read) != 0) {
        node_conn_close(c);
        return;
    }
    uv_tcp_nodelay(tcp, 1);
}
