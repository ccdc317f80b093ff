/*
 * rpc_sync.c - one-shot blocking RPC (rpc_sync.h).
 *
 * The socket is non-blocking and every wait is a poll() bounded by the
 * call's one deadline, so a node that accepts but never answers, or
 * answers half a frame, costs at most `timeout_ms`.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "proto/rpc_sync.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until `fd` is ready for `events` or the deadline passes: 1 ready,
 * 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, left > 0 ? (int)left : 0);
        if (rc < 0 && errno == EINTR)
            continue;
        return rc;
    }
}

/* Resolve "host:port", IPv4 first (nodes listen on IPv4 addresses; a name
 * such as localhost may also resolve to ::1 where nothing listens). */
static int resolve(const char *addr, struct addrinfo **out)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == '\0' ||
        (size_t)(colon - addr) >= sizeof host)
        return CAIRN_ERR_INVALID;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    if (getaddrinfo(host, colon + 1, &hints, out) == 0)
        return 0;
    hints.ai_family = AF_UNSPEC;
    return getaddrinfo(host, colon + 1, &hints, out) == 0 ? 0
                                                          : CAIRN_ERR_INVALID;
}

/* A connected non-blocking socket to `ai`, or -1. */
static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
        int err = 0;
        socklen_t len = sizeof err;
        if (wait_fd(fd, POLLOUT, deadline) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
            rc = 0;
    }
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int dial(const char *addr, int64_t deadline, int *fd)
{
    struct addrinfo *list = NULL;
    int rc = resolve(addr, &list);
    if (rc != 0)
        return rc;
    *fd = -1;
    for (struct addrinfo *ai = list; ai != NULL && *fd < 0; ai = ai->ai_next)
        *fd = connect_one(ai, deadline);
    freeaddrinfo(list);
    return *fd < 0 ? CAIRN_ERR_IO : 0;
}

static int send_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            int ready = wait_fd(fd, POLLOUT, deadline);
            if (ready <= 0)
                return ready == 0 ? CAIRN_ERR_TIMEOUT : CAIRN_ERR_IO;
        } else {
            return CAIRN_ERR_IO;
        }
    }
    return 0;
}

/* Read until `frame` holds one complete frame; its length in *len. */
static int read_frame(int fd, buf *frame, int64_t deadline, size_t *len)
{
    for (;;) {
        long n = rpc_frame_len(frame->data, frame->len);
        if (n < 0)
            return CAIRN_ERR_PROTO;
        if (n > 0) {
            *len = (size_t)n;
            return 0;
        }
        if (buf_reserve(frame, 4096) != 0)
            return CAIRN_ERR_NOMEM;
        ssize_t r = recv(fd, frame->data + frame->len,
                         frame->cap - frame->len, 0);
        if (r > 0) {
            frame->len += (size_t)r;
        } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            int ready = wait_fd(fd, POLLIN, deadline);
            if (ready <= 0)
                return ready == 0 ? CAIRN_ERR_TIMEOUT : CAIRN_ERR_IO;
        } else {
            return CAIRN_ERR_IO; /* closed before a whole reply */
        }
    }
}

int rpc_sync_call(const char *addr, const rpc_request *req, int timeout_ms,
                  buf *frame, rpc_reply *rep)
{
    int64_t deadline = now_ms() + timeout_ms;
    buf out = BUF_INIT;
    int fd = -1;
    size_t len = 0;
    buf_reset(frame);
    int rc = rpc_hello_client(&out);
    if (rc == 0)
        rc = rpc_encode_request(&out, req);
    if (rc == 0)
        rc = dial(addr, deadline, &fd);
    if (rc == 0)
        rc = send_all(fd, out.data, out.len, deadline);
    if (rc == 0)
        rc = read_frame(fd, frame, deadline, &len);
    if (rc == 0 && (rpc_decode_reply(frame->data, len, req->type, rep) != 0 ||
                    (rep->id != req->id &&
                     /* id 0: the node refused the connection (rpc.h) */
                     (rep->id != 0 || rep->status == 0))))
        rc = CAIRN_ERR_PROTO;
    if (fd >= 0)
        close(fd);
    buf_free(&out);
    return rc;
}

static void set_text(buf *text, const rpc_bytes *b)
{
    if (text == NULL)
        return;
    buf_reset(text);
    if (buf_append(text, b->p, b->len) == 0 && buf_append(text, "", 1) == 0)
        text->len--;
}

int rpc_sync_status(const char *addr, const rpc_request *req, int timeout_ms,
                    buf *text)
{
    buf frame = BUF_INIT;
    rpc_reply rep;
    int rc = rpc_sync_call(addr, req, timeout_ms, &frame, &rep);
    if (rc == 0) {
        rc = rep.status;
        set_text(text, rc == 0 ? &rep.value : &rep.message);
    } else if (text != NULL) {
        set_text(text, &(rpc_bytes){(const uint8_t *)cairn_err_message(rc),
                                    strlen(cairn_err_message(rc))});
    }
    buf_free(&frame);
    return rc;
}
