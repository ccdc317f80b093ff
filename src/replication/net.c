/*
 * net.c - one connection per peer node for every range's Raft traffic,
 * batched per loop iteration, and node heartbeats (net.h).
 */
#include "net.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/u64map.h"

#define DIAL_GAP_MS 200  /* between two connection attempts to a peer */
#define READ_CHUNK (64 * 1024)

enum { P_IDLE, P_CONNECTING, P_UP };

/* The outgoing link to one peer. */
typedef struct peer {
    net *n;
    uint64_t id;
    char addr[RPC_ADDR_MAX + 1];
    int state;
    uv_tcp_t *tcp; /* this attempt's handle; NULL when idle */
    uv_connect_t creq;
    buf out;     /* queued frames (after the handshake, when dialling) */
    buf writing; /* handed to the socket */
    uv_write_t wreq;
    bool writing_busy, dirty;
    uint64_t next_dial_ms;
    struct peer *next_dirty;
} peer;

/* An accepted link from a peer. */
typedef struct inlink {
    net *n;
    uv_tcp_t *tcp;
    buf in;
    uint64_t from;
    char addr[RPC_ADDR_MAX + 1];
    bool closing;
    struct inlink *prev, *next;
} inlink;

/* What this node knows of a peer's liveness. */
typedef struct live {
    uint64_t incarnation;
    uint64_t last_ms;
    bool up;
} live;

struct net {
    uv_loop_t *loop;
    net_options o;
    char address[RPC_ADDR_MAX + 1];
    net_callbacks cb;
    u64map peers; /* id -> peer */
    u64map lives; /* id -> live */
    inlink *ins;
    peer *dirty;
    uv_prepare_t flush;
    uv_timer_t beat;
    /* the frame being built (net_frame_begin .. net_frame_end) */
    peer *cur;
    size_t cur_mark;
    net_stats stats;
    bool closing;
    int open_handles;
    void (*close_cb)(void *);
    void *close_arg;
};

static uint64_t now_ms(net *n) { return uv_now(n->loop); }

/* ---- handles that close asynchronously -------------------------------- */

/* Peers are freed only here, once no libuv callback can name them. */
static void maybe_closed(net *n)
{
    if (!n->closing || n->open_handles > 0)
        return;
    void (*cb)(void *) = n->close_cb;
    void *arg = n->close_arg;
    size_t it = 0;
    uint64_t id;
    void *v;
    while (u64map_next(&n->peers, &it, &id, &v)) {
        peer *p = v;
        buf_free(&p->out);
        buf_free(&p->writing);
        free(p);
    }
    it = 0;
    while (u64map_next(&n->lives, &it, &id, &v))
        free(v);
    u64map_free(&n->peers);
    u64map_free(&n->lives);
    free(n);
    if (cb)
        cb(arg);
}

static void tcp_freed(uv_handle_t *h)
{
    net *n = h->data;
    free(h);
    n->open_handles--;
    maybe_closed(n);
}

/* Close a connection handle; its memory goes when libuv is done. */
static void close_tcp(net *n, uv_tcp_t *tcp)
{
    tcp->data = n;
    uv_close((uv_handle_t *)tcp, tcp_freed);
}

/* ---- outgoing links --------------------------------------------------- */

static void flush_cb(uv_prepare_t *h);

static void schedule_flush(net *n, peer *p)
{
    if (!p->dirty) {
        p->dirty = true;
        p->next_dirty = n->dirty;
        n->dirty = p;
    }
    if (!n->closing)
        uv_prepare_start(&n->flush, flush_cb);
}

/* The connection failed or broke: what was queued is lost (Raft resends),
 * and the next frame dials again. */
static void peer_reset(peer *p)
{
    net *n = p->n;
    if (p->tcp) {
        close_tcp(n, p->tcp);
        p->tcp = NULL;
    }
    p->state = P_IDLE;
    if (p->out.len)
        n->stats.dropped++;
    buf_reset(&p->out);
}

static void peer_write(peer *p);

/* A write of this connection, or of one reset meanwhile (then only the
 * buffer is released). */
static void written(uv_write_t *w, int status)
{
    peer *p = w->data;
    p->writing_busy = false;
    buf_reset(&p->writing);
    if (p->n->closing || w->handle != (uv_stream_t *)p->tcp)
        return;
    if (status < 0)
        peer_reset(p);
    else if (p->out.len)
        peer_write(p);
}

static void peer_write(peer *p)
{
    if (p->state != P_UP || p->writing_busy || p->out.len == 0)
        return;
    buf t = p->writing;
    p->writing = p->out;
    p->out = t;
    uv_buf_t b = uv_buf_init((char *)p->writing.data,
                             (unsigned)p->writing.len);
    p->wreq.data = p;
    if (uv_write(&p->wreq, (uv_stream_t *)p->tcp, &b, 1, written) != 0) {
        buf_reset(&p->writing);
        peer_reset(p);
        return;
    }
    p->writing_busy = true;
    p->n->stats.writes++;
    p->n->stats.bytes_out += b.len;
}

/* The flush: every link with frames queued writes them at once. */
static void flush_cb(uv_prepare_t *h)
{
    net *n = h->data;
    peer *p = n->dirty;
    n->dirty = NULL;
    uv_prepare_stop(h);
    while (p) {
        peer *next = p->next_dirty;
        p->dirty = false;
        peer_write(p);
        p = next;
    }
}

/* An outgoing link carries nothing back: data is a protocol error, and
 * EOF or an error means the link is gone. */
static void out_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char sink[64];
    (void)h;
    (void)hint;
    *b = uv_buf_init(sink, sizeof sink);
}

static void out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    peer *p = s->data;
    (void)b;
    if (nread != 0 && !p->n->closing && p->tcp == (uv_tcp_t *)s)
        peer_reset(p);
}

static void refused(net *n, uint64_t id);

static void connected(uv_connect_t *req, int status)
{
    peer *p = req->data;
    uv_tcp_t *tcp = (uv_tcp_t *)req->handle;
    if (p->n->closing || p->tcp != tcp) /* abandoned meanwhile */
        return;
    if (status < 0) {
        peer_reset(p);
        if (status == UV_ECONNREFUSED)
            refused(p->n, p->id);
        return;
    }
    p->state = P_UP;
    uv_tcp_nodelay(tcp, 1);
    uv_read_start((uv_stream_t *)tcp, out_alloc, out_read);
    peer_write(p);
}

static int parse_addr(const char *address, struct sockaddr_in *sa)
{
    char host[RPC_ADDR_MAX + 1];
    const char *colon = strrchr(address, ':');
    if (colon == NULL || (size_t)(colon - address) >= sizeof host)
        return CAIRN_ERR_INVALID;
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    return uv_ip4_addr(host, atoi(colon + 1), sa) == 0 ? 0 : CAIRN_ERR_INVALID;
}

static int dial(peer *p)
{
    net *n = p->n;
    struct sockaddr_in sa;
    p->next_dial_ms = now_ms(n) + DIAL_GAP_MS;
    if (parse_addr(p->addr, &sa) != 0)
        return CAIRN_ERR_INVALID;
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (tcp == NULL)
        return CAIRN_ERR_NOMEM;
    uv_tcp_init(n->loop, tcp);
    n->open_handles++;
    tcp->data = p;
    p->creq.data = p;
    buf_reset(&p->out);
    if (rpc_hello_link(&p->out, n->o.incarnation, n->o.node_id,
                       n->address) != 0 ||
        uv_tcp_connect(&p->creq, tcp, (struct sockaddr *)&sa,
                       connected) != 0) {
        buf_reset(&p->out);
        close_tcp(n, tcp);
        return CAIRN_ERR_IO;
    }
    p->tcp = tcp;
    p->state = P_CONNECTING;
    return 0;
}

static peer *get_peer(net *n, uint64_t id, const char *addr)
{
    peer *p = u64map_get(&n->peers, id);
    if (p && strcmp(p->addr, addr) != 0) { /* the peer moved */
        peer_reset(p);
        snprintf(p->addr, sizeof p->addr, "%s", addr);
    }
    if (p)
        return p;
    if (strlen(addr) > RPC_ADDR_MAX || (p = calloc(1, sizeof *p)) == NULL)
        return NULL;
    p->n = n;
    p->id = id;
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    if (u64map_put(&n->peers, id, p) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

buf *net_frame_begin(net *n, uint64_t id, const char *addr, int kind,
                     uint64_t range)
{
    peer *p = n->closing || id == 0 || addr == NULL ? NULL
                                                    : get_peer(n, id, addr);
    if (p && p->state == P_IDLE &&
        (now_ms(n) < p->next_dial_ms || dial(p) != 0))
        p = NULL;
    if (p && p->out.len + p->writing.len > NET_QUEUE_MAX)
        p = NULL;
    uint8_t head[NET_FRAME_HEAD] = {0};
    head[4] = (uint8_t)kind;
    be_put_u64(head + 5, range);
    if (p == NULL || buf_append(&p->out, head, sizeof head) != 0) {
        n->stats.dropped++;
        return NULL;
    }
    n->cur = p;
    n->cur_mark = p->out.len - NET_FRAME_HEAD;
    return &p->out;
}

void net_frame_cancel(net *n)
{
    n->cur->out.len = n->cur_mark;
    n->cur = NULL;
}

void net_frame_end(net *n)
{
    peer *p = n->cur;
    n->cur = NULL;
    size_t len = p->out.len - n->cur_mark - 4;
    be_put_u32(p->out.data + n->cur_mark, (uint32_t)len);
    n->stats.frames_out++;
    if (p->state == P_UP)
        schedule_flush(n, p);
}

/* ---- liveness --------------------------------------------------------- */

static void heard(net *n, uint64_t id, uint64_t incarnation)
{
    live *l = u64map_get(&n->lives, id);
    if (l == NULL) {
        if ((l = calloc(1, sizeof *l)) == NULL ||
            u64map_put(&n->lives, id, l) != 0) {
            free(l);
            return;
        }
    }
    l->last_ms = now_ms(n);
    bool restarted = l->incarnation != 0 && incarnation != 0 &&
                     l->incarnation != incarnation;
    if (incarnation != 0)
        l->incarnation = incarnation;
    if (!l->up) {
        l->up = true;
        n->cb.peer(n->cb.arg, id, NET_PEER_UP);
    } else if (restarted) {
        n->cb.peer(n->cb.arg, id, NET_PEER_RESTARTED);
    }
}

/* Nothing listens at the peer's address: its process is gone (killed,
 * crashed, stopping), not merely slow or cut off - those leave the
 * connection open or time out. Waiting out `dead_ms` of silence would only
 * delay the elections of the ranges it led (a kill -9 then cost about an
 * election timeout more, measured with bench/failover), so it is reported
 * down at once. A false alarm costs nothing: a follower that still hears
 * its leader refuses to vote (Raft 4.2.3, libraft), and the peer is up
 * again at its next heartbeat. */
static void refused(net *n, uint64_t id)
{
    live *l = u64map_get(&n->lives, id);
    if (l != NULL && l->up) {
        l->up = false;
        n->cb.peer(n->cb.arg, id, NET_PEER_GONE);
    }
}

static void check_dead(net *n)
{
    size_t it = 0;
    uint64_t id;
    void *v;
    uint64_t now = now_ms(n);
    while (u64map_next(&n->lives, &it, &id, &v)) {
        live *l = v;
        if (l->up && now - l->last_ms > n->o.dead_ms) {
            l->up = false;
            n->cb.peer(n->cb.arg, id, NET_PEER_DOWN);
        }
    }
}

int net_peer_up(const net *n, uint64_t id)
{
    const live *l = u64map_get(&n->lives, id);
    return l && l->up;
}

/* Every heartbeat period: a heartbeat on every link (dialling the idle
 * ones), then the silence check. */
static void beat_cb(uv_timer_t *t)
{
    net *n = t->data;
    size_t it = 0;
    uint64_t id;
    void *v;
    while (u64map_next(&n->peers, &it, &id, &v)) {
        peer *p = v;
        buf *b = net_frame_begin(n, p->id, p->addr, NET_HEARTBEAT, 0);
        if (b == NULL)
            continue;
        if (buf_append_u64(b, n->o.incarnation) != 0)
            net_frame_cancel(n);
        else
            net_frame_end(n);
    }
    check_dead(n);
}

/* ---- incoming links --------------------------------------------------- */

static void in_closed(uv_handle_t *h)
{
    inlink *in = h->data;
    net *n = in->n;
    free(h);
    buf_free(&in->in);
    free(in);
    n->open_handles--;
    maybe_closed(n);
}

/* The link leaves the list at once; its memory goes with its handle, so
 * a callback still on the stack may look at `closing`. */
static void in_close(inlink *in)
{
    net *n = in->n;
    if (in->closing)
        return;
    in->closing = true;
    if (in->prev)
        in->prev->next = in->next;
    else
        n->ins = in->next;
    if (in->next)
        in->next->prev = in->prev;
    uv_close((uv_handle_t *)in->tcp, in_closed);
}

/* Consume every whole frame in `in->in`; false if the link was closed. */
static bool in_frames(inlink *in)
{
    net *n = in->n;
    size_t pos = 0;
    while (in->in.len - pos >= NET_FRAME_HEAD) {
        const uint8_t *f = in->in.data + pos;
        uint32_t len = be_get_u32(f);
        if (len < NET_FRAME_HEAD - 4 || len > NET_FRAME_MAX + 9) {
            fprintf(stderr, "cairn node: bad frame from node %llu; closing "
                    "its link\n", (unsigned long long)in->from);
            in_close(in);
            return false;
        }
        if (in->in.len - pos < (size_t)len + 4)
            break;
        int kind = f[4];
        uint64_t range = be_get_u64(f + 5);
        n->stats.frames_in++;
        if (kind == NET_HEARTBEAT)
            heard(n, in->from, len >= 17 ? be_get_u64(f + 13) : 0);
        else
            n->cb.deliver(n->cb.arg, in->from, in->addr, kind, range,
                          f + NET_FRAME_HEAD, len + 4 - NET_FRAME_HEAD);
        pos += (size_t)len + 4;
        if (in->closing || n->closing)
            return false;
    }
    buf_consume(&in->in, pos);
    return true;
}

static void in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    inlink *in = h->data;
    (void)hint;
    /* a frame announced bigger than what is buffered gets room at once */
    size_t want = READ_CHUNK;
    if (in->in.len >= 4) {
        size_t frame = (size_t)be_get_u32(in->in.data) + 4;
        if (frame > in->in.len && frame - in->in.len > want &&
            frame <= NET_FRAME_MAX + NET_FRAME_HEAD)
            want = frame - in->in.len;
    }
    if (buf_reserve(&in->in, want) != 0) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init((char *)in->in.data + in->in.len,
                     (unsigned)(in->in.cap - in->in.len));
}

static void in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    inlink *in = s->data;
    (void)b;
    if (nread < 0) {
        in_close(in);
        return;
    }
    in->in.len += (size_t)nread;
    in->n->stats.bytes_in += (size_t)nread;
    if (in_frames(in) && in->in.len == 0 && in->in.cap > 4 * READ_CHUNK)
        buf_free(&in->in); /* an idle link keeps no large buffer */
}

void net_accept(net *n, const rpc_hello *hello, uv_tcp_t *tcp,
                const uint8_t *rest, size_t len)
{
    n->open_handles++;
    inlink *in = n->closing ? NULL : calloc(1, sizeof *in);
    if (in == NULL || buf_append(&in->in, rest, len) != 0) {
        free(in);
        close_tcp(n, tcp);
        return;
    }
    in->n = n;
    in->tcp = tcp;
    in->from = hello->from_id;
    snprintf(in->addr, sizeof in->addr, "%s", hello->addr);
    tcp->data = in;
    in->next = n->ins;
    if (n->ins)
        n->ins->prev = in;
    n->ins = in;
    heard(n, in->from, hello->incarnation);
    if (uv_read_start((uv_stream_t *)tcp, in_alloc, in_read) != 0) {
        in_close(in);
        return;
    }
    in_frames(in);
}

/* ---- lifecycle -------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    net *n = h->data;
    n->open_handles--;
    maybe_closed(n);
}

net *net_new(uv_loop_t *loop, const net_options *o, const net_callbacks *cb)
{
    net *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    n->loop = loop;
    n->o = *o;
    snprintf(n->address, sizeof n->address, "%s", o->address);
    n->o.address = n->address;
    n->cb = *cb;
    uv_prepare_init(loop, &n->flush);
    uv_timer_init(loop, &n->beat);
    n->flush.data = n->beat.data = n;
    n->open_handles = 2;
    uv_prepare_start(&n->flush, flush_cb);
    uv_prepare_stop(&n->flush); /* started with its callback when needed */
    uv_timer_start(&n->beat, beat_cb, o->heartbeat_ms, o->heartbeat_ms);
    return n;
}

void net_close(net *n, void (*cb)(void *), void *arg)
{
    n->closing = true;
    n->close_cb = cb;
    n->close_arg = arg;
    size_t it = 0;
    uint64_t id;
    void *v;
    while (u64map_next(&n->peers, &it, &id, &v)) {
        peer *p = v;
        if (p->tcp)
            close_tcp(n, p->tcp);
        p->tcp = NULL;
    }
    while (n->ins)
        in_close(n->ins);
    uv_close((uv_handle_t *)&n->flush, handle_closed);
    uv_close((uv_handle_t *)&n->beat, handle_closed);
}

void net_get_stats(const net *n, net_stats *out) { *out = n->stats; }

int net_peers_json(const net *n, buf *out)
{
    static const char *states[] = {"idle", "connecting", "up"};
    int rc = buf_append_str(out, "[");
    size_t it = 0, k = 0;
    uint64_t id;
    void *v;
    while (rc == 0 && u64map_next(&n->peers, &it, &id, &v)) {
        const peer *p = v;
        rc = buf_appendf(out, "%s{\"id\":%llu,\"address\":\"%s\","
                         "\"state\":\"%s\",\"queued\":%zu,"
                         "\"writing\":%zu,\"heard\":%s}",
                         k++ ? "," : "", (unsigned long long)p->id, p->addr,
                         states[p->state], p->out.len, p->writing.len,
                         net_peer_up(n, p->id) ? "true" : "false");
    }
    return rc ? rc : buf_append_str(out, "]");
}
