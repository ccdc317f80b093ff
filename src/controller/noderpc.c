/*
 * noderpc.c - a blocking client of the node RPC for the controller's
 * thread (controller_int.h). One connection per call: the controller talks
 * to a node a few times a second at most, so pooling would buy nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "controller/controller_int.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Connect to "host:port" within the RPC timeout; -1 on failure. */
static int dial(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (fd >= 0 && rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, CTL_RPC_TIMEOUT_MS) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
            rc = 0;
    }
    if (rc != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {CTL_RPC_TIMEOUT_MS / 1000,
                         (CTL_RPC_TIMEOUT_MS % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Read one reply frame into `frame` (whole, length prefix included). */
static int read_frame(int fd, buf *frame)
{
    uint8_t head[4];
    if (read_all(fd, head, 4) != 0)
        return CAIRN_ERR_IO;
    size_t len = (size_t)be32(head) + 4;
    if (len > RPC_FRAME_MAX || buf_reserve(frame, len) != 0)
        return CAIRN_ERR_PROTO;
    memcpy(frame->data, head, 4);
    if (read_all(fd, frame->data + 4, len - 4) != 0)
        return CAIRN_ERR_IO;
    frame->len = len;
    return 0;
}

static void set_text(buf *text, const rpc_bytes *b)
{
    if (text == NULL)
        return;
    buf_reset(text);
    if (buf_append(text, b->p, b->len) == 0 && buf_append(text, "", 1) == 0)
        text->len--; /* NUL-terminated, not counted */
}

int ctl_node_rpc(const char *addr, const rpc_request *req, buf *text)
{
    buf out = BUF_INIT, frame = BUF_INIT;
    int rc = rpc_hello_client(&out);
    if (rc == 0)
        rc = rpc_encode_request(&out, req);
    int fd = rc == 0 ? dial(addr) : -1;
    if (rc == 0)
        rc = fd < 0 || write_all(fd, out.data, out.len) != 0 ? CAIRN_ERR_IO
                                                            : 0;
    if (rc == 0)
        rc = read_frame(fd, &frame);
    rpc_reply rep;
    if (rc == 0 && rpc_decode_reply(frame.data, frame.len, req->type, &rep) != 0)
        rc = CAIRN_ERR_PROTO;
    if (rc == 0) {
        rc = rep.status;
        set_text(text, rc == 0 ? &rep.value : &rep.message);
    }
    if (fd >= 0)
        close(fd);
    buf_free(&out);
    buf_free(&frame);
    return rc;
}
