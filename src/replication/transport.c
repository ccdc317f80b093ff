/*
 * transport.c - the multiplexing raft_uv_transport (transport.h).
 */
#include "transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/grow.h"

typedef struct rep_transport rep_transport;

struct rep_hub {
    uv_loop_t *loop;
    rep_transport **list; /* listening transports */
    size_t n, cap;
};

/* One outgoing connection attempt. */
typedef struct dial {
    rep_transport *tr;
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
    uv_tcp_t *tcp; /* raft_malloc'd: libraft frees it once it owns it */
    uv_connect_t connect;
    uv_write_t write;
    buf hello;
    uint8_t ack;
    int status;
    bool closing;
    struct dial *next;
} dial;

struct rep_transport {
    rep_hub *hub;
    uint64_t range_id;
    raft_id id;
    char address[RPC_ADDR_MAX + 1];
    raft_uv_accept_cb accept_cb;
    dial *dials;
    bool closing;
    bool held;        /* rep_transport_hold_close */
    bool reporting;   /* the close callback is on its way */
    uv_timer_t defer[2]; /* closed in turn to report the close */
    raft_uv_transport_close_cb close_cb;
    struct raft_uv_transport *t;
};

/* One accepted connection waiting for its acknowledgement to be written. */
typedef struct accept_req {
    rep_hub *hub;
    uv_write_t write;
    uv_tcp_t *tcp;
    rpc_hello hello;
} accept_req;

static const uint8_t ACK = 1;

rep_hub *rep_hub_new(uv_loop_t *loop)
{
    rep_hub *h = calloc(1, sizeof *h);
    if (h)
        h->loop = loop;
    return h;
}

void rep_hub_free(rep_hub *h)
{
    if (h == NULL)
        return;
    free(h->list);
    free(h);
}

static rep_transport *hub_find(rep_hub *h, uint64_t range_id)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->list[i]->range_id == range_id)
            return h->list[i];
    return NULL;
}

static int hub_add(rep_hub *h, rep_transport *tr)
{
    if (grow_array((void **)&h->list, h->n, &h->cap, sizeof *h->list,
                   16) != 0)
        return RAFT_NOMEM;
    h->list[h->n++] = tr;
    return 0;
}

static void hub_remove(rep_hub *h, rep_transport *tr)
{
    for (size_t i = 0; i < h->n; i++) {
        if (h->list[i] == tr) {
            h->list[i] = h->list[--h->n];
            return;
        }
    }
}

static void free_handle(uv_handle_t *handle) { raft_free(handle); }

static void accept_written(uv_write_t *w, int status)
{
    accept_req *a = w->data;
    rep_transport *tr = hub_find(a->hub, a->hello.range_id);
    if (status != 0 || tr == NULL || tr->closing || tr->accept_cb == NULL) {
        uv_close((uv_handle_t *)a->tcp, free_handle);
    } else {
        tr->accept_cb(tr->t, a->hello.from_id, a->hello.addr,
                      (uv_stream_t *)a->tcp);
    }
    free(a);
}

void rep_hub_accept(rep_hub *h, const rpc_hello *hello, uv_tcp_t *stream)
{
    rep_transport *tr = hub_find(h, hello->range_id);
    accept_req *a = tr ? malloc(sizeof *a) : NULL;
    if (a == NULL) {
        uv_close((uv_handle_t *)stream, free_handle);
        return;
    }
    a->hub = h;
    a->tcp = stream;
    a->hello = *hello;
    a->write.data = a;
    uv_buf_t b = uv_buf_init((char *)&ACK, 1);
    if (uv_write(&a->write, (uv_stream_t *)stream, &b, 1,
                 accept_written) != 0) {
        uv_close((uv_handle_t *)stream, free_handle);
        free(a);
    }
}

/* ---- outgoing connections -------------------------------------------- */

static void transport_maybe_closed(rep_transport *tr);

static void dial_unlink(dial *d)
{
    rep_transport *tr = d->tr;
    for (dial **p = &tr->dials; *p; p = &(*p)->next) {
        if (*p == d) {
            *p = d->next;
            break;
        }
    }
}

static void dial_closed(uv_handle_t *handle)
{
    dial *d = handle->data;
    rep_transport *tr = d->tr;
    raft_free(d->tcp);
    dial_unlink(d);
    d->cb(d->req, NULL, d->status);
    buf_free(&d->hello);
    free(d);
    transport_maybe_closed(tr);
}

static void dial_fail(dial *d, int status)
{
    if (d->closing)
        return;
    d->closing = true;
    d->status = status;
    uv_close((uv_handle_t *)d->tcp, dial_closed);
}

static void dial_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    dial *d = h->data;
    *b = uv_buf_init((char *)&d->ack, 1); /* never read past the ack */
}

static void dial_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    dial *d = s->data;
    if (n == 0 || d->closing)
        return;
    uv_read_stop(s);
    if (n != 1 || d->ack != ACK) {
        dial_fail(d, RAFT_NOCONNECTION);
        return;
    }
    dial_unlink(d);
    d->tcp->data = NULL;
    d->cb(d->req, (uv_stream_t *)d->tcp, 0); /* libraft owns the stream */
    buf_free(&d->hello);
    free(d);
}

static void dial_written(uv_write_t *w, int status)
{
    dial *d = w->data;
    if (d->closing)
        return;
    if (status != 0 ||
        uv_read_start((uv_stream_t *)d->tcp, dial_alloc, dial_read) != 0)
        dial_fail(d, RAFT_NOCONNECTION);
}

static void dial_connected(uv_connect_t *c, int status)
{
    dial *d = c->data;
    if (d->closing)
        return;
    uv_buf_t b = uv_buf_init((char *)d->hello.data, (unsigned)d->hello.len);
    if (status != 0 || uv_write(&d->write, (uv_stream_t *)d->tcp, &b, 1,
                                dial_written) != 0)
        dial_fail(d, RAFT_NOCONNECTION);
}

static int parse_addr(const char *address, struct sockaddr_in *sa)
{
    char host[RPC_ADDR_MAX + 1];
    const char *colon = strrchr(address, ':');
    if (colon == NULL || (size_t)(colon - address) >= sizeof host)
        return RAFT_INVALID;
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    return uv_ip4_addr(host, atoi(colon + 1), sa) == 0 ? 0 : RAFT_INVALID;
}

static int tr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                      raft_id id, const char *address, raft_uv_connect_cb cb)
{
    rep_transport *tr = t->impl;
    struct sockaddr_in sa;
    if (parse_addr(address, &sa) != 0)
        return RAFT_NOCONNECTION;
    dial *d = calloc(1, sizeof *d);
    if (d == NULL)
        return RAFT_NOMEM;
    d->tcp = raft_malloc(sizeof *d->tcp);
    if (d->tcp == NULL ||
        rpc_hello_raft(&d->hello, tr->range_id, tr->id, tr->address) != 0) {
        raft_free(d->tcp);
        free(d);
        return RAFT_NOMEM;
    }
    d->tr = tr;
    d->req = req;
    d->cb = cb;
    d->connect.data = d;
    d->write.data = d;
    uv_tcp_init(tr->hub->loop, d->tcp);
    uv_tcp_nodelay(d->tcp, 1);
    d->tcp->data = d;
    d->next = tr->dials;
    tr->dials = d;
    if (uv_tcp_connect(&d->connect, d->tcp, (struct sockaddr *)&sa,
                       dial_connected) != 0)
        dial_fail(d, RAFT_NOCONNECTION); /* reported through cb */
    return 0;
}

/* ---- the transport interface ----------------------------------------- */

static int tr_init(struct raft_uv_transport *t, raft_id id,
                   const char *address)
{
    rep_transport *tr = t->impl;
    if (strlen(address) > RPC_ADDR_MAX)
        return RAFT_NAMETOOLONG;
    tr->id = id;
    strcpy(tr->address, address);
    return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    rep_transport *tr = t->impl;
    tr->accept_cb = cb;
    return hub_add(tr->hub, tr);
}

static void defer_closed(uv_handle_t *h)
{
    rep_transport *tr = h->data;
    raft_uv_transport_close_cb cb = tr->close_cb;
    tr->close_cb = NULL;
    if (cb)
        cb(tr->t);
}

/* libuv runs the close callbacks of one loop iteration newest first, and a
 * handle closed from one of them waits for the next iteration. Closing
 * `defer[1]` from the close callback of `defer[0]` therefore reports the
 * transport closed after every handle that was closing when the report was
 * started (raft_uv's segment writers among them: replica.c, "libraft 0.15
 * closes twice"). */
static void defer_first_closed(uv_handle_t *h)
{
    rep_transport *tr = h->data;
    uv_close((uv_handle_t *)&tr->defer[1], defer_closed);
}

static void transport_maybe_closed(rep_transport *tr)
{
    if (!tr->closing || tr->held || tr->dials != NULL || tr->reporting)
        return;
    tr->reporting = true;
    uv_close((uv_handle_t *)&tr->defer[0], defer_first_closed);
}

static void tr_close(struct raft_uv_transport *t,
                     raft_uv_transport_close_cb cb)
{
    rep_transport *tr = t->impl;
    tr->closing = true;
    tr->close_cb = cb;
    hub_remove(tr->hub, tr);
    for (int i = 0; i < 2; i++) {
        uv_timer_init(tr->hub->loop, &tr->defer[i]);
        tr->defer[i].data = tr;
    }
    for (dial *d = tr->dials; d; d = d->next)
        dial_fail(d, RAFT_CANCELED);
    transport_maybe_closed(tr);
}

void rep_transport_hold_close(struct raft_uv_transport *t, bool hold)
{
    rep_transport *tr = t->impl;
    tr->held = hold;
    if (!hold)
        transport_maybe_closed(tr);
}

int rep_transport_init(struct raft_uv_transport *t, rep_hub *h,
                       uint64_t range_id)
{
    rep_transport *tr = calloc(1, sizeof *tr);
    if (tr == NULL)
        return RAFT_NOMEM;
    memset(t, 0, sizeof *t);
    tr->hub = h;
    tr->range_id = range_id;
    tr->t = t;
    t->impl = tr;
    t->init = tr_init;
    t->listen = tr_listen;
    t->connect = tr_connect;
    t->close = tr_close;
    return 0;
}

void rep_transport_release(struct raft_uv_transport *t)
{
    rep_transport *tr = t->impl;
    if (tr == NULL)
        return;
    if (!tr->closing)
        hub_remove(tr->hub, tr);
    free(tr);
    t->impl = NULL;
}
