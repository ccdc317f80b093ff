/* Tests for src/http/httpd.h: published pages over real HTTP on
 * loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/err.h"
#include "http/httpd.h"

/* One request on a fresh connection; the whole answer in `out`. */
static void request(int port, const char *req, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(write(fd, req, strlen(req)), (int)strlen(req));
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd);
}

static void test_publish_and_serve(void **state)
{
    (void)state;
    httpd *h = NULL;
    char err[256];
    assert_int_equal(httpd_start("127.0.0.1:0", &h, err, sizeof err), 0);
    int port = httpd_port(h);
    assert_true(port > 0);
    char out[4096];
    request(port, "GET /metrics HTTP/1.0\r\n\r\n", out, sizeof out);
    assert_non_null(strstr(out, " 404 "));
    assert_int_equal(httpd_publish(h, "/metrics", "text/plain", "a 1\n", 4),
                     0);
    request(port, "GET /metrics HTTP/1.0\r\n\r\n", out, sizeof out);
    assert_non_null(strstr(out, " 200 OK"));
    assert_non_null(strstr(out, "Content-Type: text/plain"));
    assert_non_null(strstr(out, "\r\n\r\na 1\n"));
    /* A new page replaces the old one. */
    assert_int_equal(httpd_publish(h, "/metrics", "text/plain", "a 2\n", 4),
                     0);
    request(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close"
                  "\r\n\r\n", out, sizeof out);
    assert_non_null(strstr(out, "\r\n\r\na 2\n"));
    request(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", out,
            sizeof out);
    assert_non_null(strstr(out, " 405 "));
    httpd_stop(h);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    httpd *h = NULL, *h2 = NULL;
    char err[256];
    assert_int_equal(httpd_start("nonsense", &h, err, sizeof err),
                     CAIRN_ERR_INVALID);
    assert_int_equal(httpd_start("127.0.0.1:0", &h, err, sizeof err), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", httpd_port(h));
    assert_int_equal(httpd_start(addr, &h2, err, sizeof err), CAIRN_ERR_IO);
    assert_non_null(strstr(err, addr));
    httpd_stop(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_and_serve),
        cmocka_unit_test(test_bad_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
