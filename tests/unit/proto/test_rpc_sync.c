/* Tests for src/proto/rpc_sync.h against a tiny in-test node: a thread
 * with a listening socket on loopback that reads the handshake and one
 * request, then answers as the test asks (a reply, nothing, a frame of the
 * wrong type, a close). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "proto/rpc_sync.h"

typedef enum mode { ANSWER, SILENT, WRONG_TYPE, CLOSE } mode;

typedef struct server {
    int lfd;
    char addr[32];
    mode mode;
    pthread_t thread;
    rpc_request got; /* what the server decoded (type, id, range) */
    int got_rc;
} server;

/* Read the handshake and one request frame into `in`; the frame's offset
 * and length. */
static int read_request(int fd, buf *in, size_t *off, long *len)
{
    for (;;) {
        if (in->len >= RPC_MAGIC_LEN + 1) {
            *off = RPC_MAGIC_LEN + 1;
            *len = rpc_frame_len(in->data + *off, in->len - *off);
            if (*len != 0)
                return *len < 0 ? -1 : 0;
        }
        if (buf_reserve(in, 4096) != 0)
            return -1;
        ssize_t r = recv(fd, in->data + in->len, in->cap - in->len, 0);
        if (r <= 0)
            return -1;
        in->len += (size_t)r;
    }
}

static void answer(server *s, int fd, const rpc_request *q)
{
    buf out = BUF_INIT;
    if (s->mode == ANSWER)
        rpc_reply_text(&out, q->id, "{\"ok\":1}", 8);
    else if (s->mode == WRONG_TYPE)
        rpc_encode_request(&out, q); /* a request frame, not a reply */
    /* no cmocka assert here: they must run on the test's own thread */
    if (out.len > 0 &&
        send(fd, out.data, out.len, MSG_NOSIGNAL) != (ssize_t)out.len)
        s->got_rc = -2;
    buf_free(&out);
    if (s->mode == SILENT) {
        char c;
        while (recv(fd, &c, 1, 0) > 0) /* until the client gives up */
            ;
    }
}

static void *serve(void *arg)
{
    server *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    buf in = BUF_INIT;
    size_t off = 0;
    long len = 0;
    s->got_rc = -1;
    if (fd >= 0 && read_request(fd, &in, &off, &len) == 0) {
        s->got_rc = rpc_decode_request(in.data + off, (size_t)len, &s->got);
        if (s->got_rc == 0 && s->mode != CLOSE)
            answer(s, fd, &s->got);
    }
    if (fd >= 0)
        close(fd);
    buf_free(&in);
    return NULL;
}

/* Listen on an ephemeral loopback port. */
static int listen_any(char *addr, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(addr, cap, "127.0.0.1:%u", ntohs(sa.sin_port));
    return fd;
}

static void server_start(server *s, mode m)
{
    memset(s, 0, sizeof *s);
    s->mode = m;
    s->lfd = listen_any(s->addr, sizeof s->addr);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_join(server *s)
{
    pthread_join(s->thread, NULL);
    close(s->lfd);
}

static rpc_request metrics_request(void)
{
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_METRICS;
    q.id = 42;
    q.range_id = 7;
    return q;
}

static double elapsed_s(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_success(void **state)
{
    (void)state;
    server s;
    server_start(&s, ANSWER);
    rpc_request q = metrics_request();
    buf frame = BUF_INIT, text = BUF_INIT;
    rpc_reply rep;
    assert_int_equal(rpc_sync_call(s.addr, &q, 2000, &frame, &rep), 0);
    assert_int_equal(rep.status, 0);
    assert_int_equal(rep.id, 42);
    assert_int_equal(rep.value.len, 8);
    assert_memory_equal(rep.value.p, "{\"ok\":1}", 8);
    server_join(&s);
    assert_int_equal(s.got_rc, 0);
    assert_int_equal(s.got.type, RPC_METRICS);
    assert_int_equal(s.got.range_id, 7);

    server_start(&s, ANSWER); /* the status form: text NUL-terminated */
    assert_int_equal(rpc_sync_status(s.addr, &q, 2000, &text), 0);
    assert_string_equal((const char *)text.data, "{\"ok\":1}");
    assert_int_equal(text.len, 8);
    server_join(&s);
    buf_free(&frame);
    buf_free(&text);
}

static void test_timeout(void **state)
{
    (void)state;
    server s;
    server_start(&s, SILENT);
    rpc_request q = metrics_request();
    buf frame = BUF_INIT;
    rpc_reply rep;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(rpc_sync_call(s.addr, &q, 300, &frame, &rep),
                     CAIRN_ERR_TIMEOUT);
    double took = elapsed_s(&t0);
    assert_true(took >= 0.25 && took < 2.0);
    server_join(&s);
    assert_int_equal(s.got_rc, 0); /* it was sent: outcome unknown */
    buf_free(&frame);
}

static void test_refused(void **state)
{
    (void)state;
    char addr[32];
    close(listen_any(addr, sizeof addr)); /* a port nobody listens on */
    rpc_request q = metrics_request();
    buf text = BUF_INIT;
    assert_int_equal(rpc_sync_status(addr, &q, 2000, &text), CAIRN_ERR_IO);
    assert_true(text.len > 0);
    assert_int_equal(rpc_sync_status("no-port", &q, 2000, NULL),
                     CAIRN_ERR_INVALID);
    buf_free(&text);
}

static void test_wrong_type(void **state)
{
    (void)state;
    server s;
    server_start(&s, WRONG_TYPE);
    rpc_request q = metrics_request();
    buf frame = BUF_INIT;
    rpc_reply rep;
    assert_int_equal(rpc_sync_call(s.addr, &q, 2000, &frame, &rep),
                     CAIRN_ERR_PROTO);
    server_join(&s);
    buf_free(&frame);
}

static void test_closed_before_reply(void **state)
{
    (void)state;
    server s;
    server_start(&s, CLOSE);
    rpc_request q = metrics_request();
    assert_int_equal(rpc_sync_status(s.addr, &q, 2000, NULL), CAIRN_ERR_IO);
    server_join(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_closed_before_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
