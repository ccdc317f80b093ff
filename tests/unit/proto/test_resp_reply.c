/*
 * Tests for the RESP reply reader (src/proto/resp.h, client side): every
 * type, nesting, pipelined replies, input split at every byte, each limit at
 * and one past its bound, malformed replies, and writer -> reader round
 * trips. As in test_resp.c, every call sees a fresh exact-size heap copy so
 * AddressSanitizer catches over-reads and stale pointers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/resp.h"

#define S(lit) lit, sizeof(lit) - 1

static int read_copy(resp_reader *r, const void *data, size_t len,
                     resp_reply *rep, uint8_t **keep)
{
    free(*keep);
    *keep = malloc(len ? len : 1);
    assert_non_null(*keep);
    memcpy(*keep, data, len);
    return resp_read_reply(r, *keep, len, rep);
}

/* A reply rendered back to text, to compare trees compactly:
 * +s -s :n $s nil [..] nilarr; elements separated by spaces. */
static size_t render(const resp_node *n, size_t i, buf *out)
{
    const resp_node *x = &n[i++];
    switch (x->type) {
    case RESP_SIMPLE:
    case RESP_ERROR:
    case RESP_BULK:
        buf_appendf(out, "%c%.*s", (char)x->type, (int)x->len,
                    (const char *)x->str);
        break;
    case RESP_INTEGER:
        buf_appendf(out, ":%lld", (long long)x->integer);
        break;
    case RESP_NIL:
        buf_append_str(out, "nil");
        break;
    case RESP_NIL_ARRAY:
        buf_append_str(out, "nilarr");
        break;
    case RESP_ARRAY:
        buf_append_str(out, "[");
        for (size_t k = 0; k < x->count; k++) {
            if (k)
                buf_append_str(out, " ");
            i = render(n, i, out);
        }
        buf_append_str(out, "]");
        break;
    }
    return i;
}

static void assert_reply(const resp_reply *rep, const char *want)
{
    buf out = BUF_INIT;
    size_t end = render(rep->nodes, 0, &out);
    assert_int_equal(end, rep->nnodes);
    buf_append(&out, "", 1);
    assert_string_equal((const char *)out.data, want);
    buf_free(&out);
}

/* Read all replies of `in`, presenting `step` more bytes per call (0: all
 * at once) after an optional first cut at `cut`. */
static void read_all(const char *in, size_t inlen, size_t cut, size_t step,
                     const char *const *want, size_t nwant)
{
    resp_reader *r;
    assert_int_equal(resp_reader_new(&r, NULL), 0);
    uint8_t *keep = NULL;
    size_t start = 0, avail = cut, got = 0;
    resp_reply rep;
    for (;;) {
        int rc = read_copy(r, in + start, avail - start, &rep, &keep);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1) {
            assert_true(got < nwant);
            assert_reply(&rep, want[got++]);
            start += rep.consumed;
            continue;
        }
        if (avail == inlen)
            break;
        avail = step == 0 || avail + step > inlen ? inlen : avail + step;
    }
    assert_int_equal(got, nwant);
    assert_int_equal(start, inlen);
    free(keep);
    resp_reader_free(r);
}

static void read_every_split(const char *in, size_t inlen,
                             const char *const *want, size_t nwant)
{
    read_all(in, inlen, 0, 1, want, nwant);
    for (size_t k = 0; k <= inlen; k++)
        read_all(in, inlen, k, 0, want, nwant);
}

static void test_every_type(void **state)
{
    (void)state;
    const char in[] = "+OK\r\n"
                      "-TOOBIG value is 2000000 bytes, limit 1048576\r\n"
                      ":0\r\n:-9223372036854775808\r\n:9223372036854775807\r\n"
                      "$5\r\nhello\r\n$0\r\n\r\n$4\r\na\r\nb\r\n"
                      "$-1\r\n*-1\r\n*0\r\n+\r\n"
                      "*3\r\n:1\r\n$1\r\nx\r\n-ERR e\r\n";
    const char *want[] = {
        "+OK",
        "-TOOBIG value is 2000000 bytes, limit 1048576",
        ":0",
        ":-9223372036854775808",
        ":9223372036854775807",
        "$hello",
        "$",
        "$a\r\nb",
        "nil",
        "nilarr",
        "[]",
        "+",
        "[:1 $x -ERR e]",
    };
    read_every_split(S(in), want, sizeof want / sizeof want[0]);
}

static void test_nested(void **state)
{
    (void)state;
    /* KV.SCAN's shape: [cursor, [k, v, ...]], plus deeper and empty ones */
    const char in[] = "*2\r\n$1\r\nc\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n"
                      "$1\r\nb\r\n$-1\r\n"
                      "*3\r\n*1\r\n*1\r\n*0\r\n*-1\r\n*2\r\n:1\r\n*1\r\n:2\r\n"
                      "*1\r\n*0\r\n";
    const char *want[] = {
        "[$c [$a $1 $b nil]]",
        "[[[[]]] nilarr [:1 [:2]]]",
        "[[]]",
    };
    read_every_split(S(in), want, 3);
}

static void test_zero_copy_and_consumed(void **state)
{
    (void)state;
    resp_reader *r;
    assert_int_equal(resp_reader_new(&r, NULL), 0);
    const char in[] = "*2\r\n$3\r\nabc\r\n+OK\r\n:5\r\n";
    resp_reply rep;
    assert_int_equal(resp_read_reply(r, (const uint8_t *)in, sizeof in - 1,
                                     &rep), 1);
    assert_int_equal(rep.consumed, 18);
    assert_int_equal(rep.nnodes, 3);
    assert_int_equal(rep.nodes[0].type, RESP_ARRAY);
    assert_ptr_equal(rep.nodes[1].str, (const uint8_t *)in + 8);
    assert_int_equal(rep.nodes[2].type, RESP_SIMPLE);
    assert_string_equal(resp_reader_errmsg(r), "");
    assert_int_equal(resp_read_reply(r, (const uint8_t *)in + 18, 4, &rep), 1);
    assert_int_equal(rep.nodes[0].integer, 5);
    assert_int_equal(resp_read_reply(r, (const uint8_t *)in + 22, 0, &rep), 0);
    resp_reader_free(r);
}

static void expect_error_lim(const char *in, size_t inlen, const char *msg,
                             const resp_limits *lim)
{
    /* every call copies what it presents: small steps for short inputs
     * only, so the test stays linear */
    size_t steps[] = {1, 2, 3, 7, inlen};
    if (inlen > 256) {
        steps[0] = 997;
        steps[1] = steps[2] = steps[3] = 4096;
    }
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        resp_reader *r;
        assert_int_equal(resp_reader_new(&r, lim), 0);
        uint8_t *keep = NULL;
        resp_reply rep;
        size_t start = 0, avail = 0;
        int rc = 0;
        while (rc >= 0) {
            avail = avail + steps[s] > inlen ? inlen : avail + steps[s];
            rc = read_copy(r, in + start, avail - start, &rep, &keep);
            if (rc == 1) {
                start += rep.consumed;
                rc = 0;
            } else if (rc == 0) {
                if (avail >= inlen)
                    fail_msg("no error for \"%.*s\"", (int)inlen, in);
            }
        }
        assert_int_equal(rc, CAIRN_ERR_PROTO);
        assert_string_equal(resp_reader_errmsg(r), msg);
        assert_int_equal(read_copy(r, "+OK\r\n", 5, &rep, &keep),
                         CAIRN_ERR_PROTO); /* sticky */
        resp_reader_reset(r);
        assert_int_equal(read_copy(r, "+OK\r\n", 5, &rep, &keep), 1);
        free(keep);
        resp_reader_free(r);
    }
}

static void expect_error(const char *in, size_t inlen, const char *msg)
{
    expect_error_lim(in, inlen, msg, NULL);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bl = "Protocol error: invalid bulk length";
    const char *ml = "Protocol error: invalid multibulk length";
    const char *in = "Protocol error: invalid integer";
    expect_error(S("?x\r\n"), "Protocol error: invalid reply type byte 0x3f");
    expect_error(S("+OK\r\nOK\r\n"),
                 "Protocol error: invalid reply type byte 0x4f");
    expect_error(S(":\r\n"), in);
    expect_error(S(":+1\r\n"), in);
    expect_error(S(":01\r\n"), in);
    expect_error(S(":-0\r\n"), in);
    expect_error(S(":1a\r\n"), in);
    expect_error(S(":9223372036854775808\r\n"), in);
    expect_error(S(":-9223372036854775809\r\n"), in);
    expect_error(S("$-2\r\n"), bl);
    expect_error(S("$x\r\n"), bl);
    expect_error(S("$3\r\nabcd\r\n"),
                 "Protocol error: bulk string not terminated by CRLF");
    expect_error(S("$3\r\nabc\n\r"),
                 "Protocol error: bulk string not terminated by CRLF");
    expect_error(S("*-2\r\n"), ml);
    expect_error(S("*1x\r\n"), ml);
    expect_error(S("*2\r\n:1\r\n?\r\n"),
                 "Protocol error: invalid reply type byte 0x3f");
    expect_error(S("+OK\rX"), "Protocol error: line not terminated by CRLF");
    expect_error(S(":1\nx\r\n"), in);
    expect_error(S(":123456789012345678901234567890123"),
                 "Protocol error: reply line too long");
}

static void test_limits(void **state)
{
    (void)state;
    resp_limits lim = resp_limits_default();
    lim.depth_max = 3;
    lim.args_max = 4;
    lim.bulk_max = 5;
    lim.inline_max = 4;
    resp_reader *r;
    assert_int_equal(resp_reader_new(&r, &lim), 0);
    resp_reply rep;
    /* each at its bound */
    const char *ok[] = {"*1\r\n*1\r\n*1\r\n:1\r\n", "*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n",
                        "*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", "$5\r\n12345\r\n",
                        "+1234\r\n", "-1234\r\n", "*1\r\n*1\r\n*0\r\n"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (resp_read_reply(r, (const uint8_t *)ok[i], strlen(ok[i]), &rep) !=
            1)
            fail_msg("\"%s\": %s", ok[i], resp_reader_errmsg(r));
        assert_int_equal(rep.consumed, strlen(ok[i]));
    }
    resp_reader_free(r);
    /* each one past */
    expect_error_lim(S("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
                     "Protocol error: arrays nested deeper than 3", &lim);
    expect_error_lim(S("*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n:4\r\n"),
                     "Protocol error: too many array elements (more than 4)",
                     &lim);
    expect_error_lim(S("*5\r\n"),
                     "Protocol error: too many array elements (more than 4)",
                     &lim);
    expect_error_lim(S("$6\r\n"), "Protocol error: invalid bulk length", &lim);
    expect_error_lim(S("+12345\r\n"), "Protocol error: reply line too long",
                     &lim);
    expect_error_lim(S("-12345"), "Protocol error: reply line too long", &lim);

    /* the whole reply's size */
    lim = resp_limits_default();
    lim.message_max = 11;
    assert_int_equal(resp_reader_new(&r, &lim), 0);
    assert_int_equal(resp_read_reply(r, (const uint8_t *)"$5\r\n12345\r\n", 11,
                                     &rep), 1);
    resp_reader_free(r);
    expect_error_lim(S("$6\r\n"),
                     "Protocol error: reply too big (more than 11 bytes)",
                     &lim);
    expect_error_lim(S("*2\r\n:1\r\n:12\r\n"),
                     "Protocol error: reply too big (more than 11 bytes)",
                     &lim);

    /* default bulk bound, at and one past */
    assert_int_equal(resp_reader_new(&r, NULL), 0);
    char hdr[32];
    snprintf(hdr, sizeof hdr, "$%d\r\n", RESP_BULK_MAX);
    assert_int_equal(resp_read_reply(r, (const uint8_t *)hdr, strlen(hdr),
                                     &rep), 0);
    resp_reader_free(r);
    snprintf(hdr, sizeof hdr, "$%d\r\n", RESP_BULK_MAX + 1);
    expect_error(hdr, strlen(hdr), "Protocol error: invalid bulk length");
}

/* The default depth, element and line bounds, at and one past. */
static void test_default_limits(void **state)
{
    (void)state;
    resp_reader *r;
    assert_int_equal(resp_reader_new(&r, NULL), 0);
    resp_reply rep;
    buf b = BUF_INIT;
    for (int i = 0; i < RESP_DEPTH_MAX; i++)
        assert_int_equal(resp_write_array(&b, 1), 0);
    assert_int_equal(resp_write_int(&b, 1), 0);
    assert_int_equal(resp_read_reply(r, b.data, b.len, &rep), 1);
    assert_int_equal(rep.nnodes, RESP_DEPTH_MAX + 1);
    buf_reset(&b);
    for (int i = 0; i <= RESP_DEPTH_MAX; i++)
        assert_int_equal(resp_write_array(&b, 1), 0);
    expect_error((const char *)b.data, b.len,
                 "Protocol error: arrays nested deeper than 16");

    buf_reset(&b);
    assert_int_equal(resp_write_array(&b, RESP_ARGS_MAX), 0);
    for (int i = 0; i < RESP_ARGS_MAX; i++)
        assert_int_equal(buf_append(&b, ":1\r\n", 4), 0);
    assert_int_equal(resp_read_reply(r, b.data, b.len, &rep), 1);
    assert_int_equal(rep.nnodes, RESP_ARGS_MAX + 1);
    assert_int_equal(rep.consumed, b.len);
    buf_reset(&b);
    assert_int_equal(resp_write_array(&b, RESP_ARGS_MAX + 1), 0);
    expect_error((const char *)b.data, b.len,
                 "Protocol error: too many array elements (more than 1048576)");

    buf_reset(&b);
    assert_int_equal(buf_append(&b, "-", 1), 0);
    assert_int_equal(buf_reserve(&b, RESP_INLINE_MAX + 3), 0);
    memset(b.data + 1, 'e', RESP_INLINE_MAX);
    b.len += RESP_INLINE_MAX;
    assert_int_equal(buf_append(&b, "\r\n", 2), 0);
    assert_int_equal(resp_read_reply(r, b.data, b.len, &rep), 1);
    assert_int_equal(rep.nodes[0].type, RESP_ERROR);
    assert_int_equal(rep.nodes[0].len, RESP_INLINE_MAX);
    b.data[RESP_INLINE_MAX + 1] = 'e'; /* one more byte before the CRLF */
    expect_error((const char *)b.data, b.len - 1,
                 "Protocol error: reply line too long");
    buf_free(&b);
    resp_reader_free(r);
}

/* Big bulk reply fed byte by byte through one buffer: linear time. */
static void test_big_bulk_byte_by_byte(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    buf payload = BUF_INIT;
    assert_int_equal(buf_reserve(&payload, RESP_BULK_MAX), 0);
    memset(payload.data, 'v', RESP_BULK_MAX);
    assert_int_equal(resp_write_bulk(&b, payload.data, RESP_BULK_MAX), 0);
    resp_reader *r;
    assert_int_equal(resp_reader_new(&r, NULL), 0);
    resp_reply rep;
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(resp_read_reply(r, b.data, len, &rep), 0);
    assert_int_equal(resp_read_reply(r, b.data, b.len, &rep), 1);
    assert_int_equal(rep.nodes[0].len, RESP_BULK_MAX);
    resp_reader_free(r);
    buf_free(&b);
    buf_free(&payload);
}

/* Every writer's output read back, pipelined, in random chunks. */
static void test_round_trip_replies(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(resp_write_simple(&b, "OK"), 0);
    assert_int_equal(resp_write_err(&b, CAIRN_ERR_TOOBIG,
                                    "value is %d bytes, limit %d", 2000000,
                                    1048576), 0);
    assert_int_equal(resp_write_int(&b, INT64_MIN), 0);
    assert_int_equal(resp_write_bulk(&b, "k\0v", 3), 0);
    assert_int_equal(resp_write_nil(&b), 0);
    assert_int_equal(resp_write_nil_array(&b), 0);
    assert_int_equal(resp_write_array(&b, 2), 0);
    assert_int_equal(resp_write_bulk_str(&b, "cursor"), 0);
    assert_int_equal(resp_write_array(&b, 2), 0);
    assert_int_equal(resp_write_bulk_str(&b, "a"), 0);
    assert_int_equal(resp_write_int(&b, 1), 0);
    const char *argv[] = {"GET", "key"};
    assert_int_equal(resp_write_command(&b, 2, argv, NULL), 0);
    const char *want[] = {
        "+OK",
        "-TOOBIG value is 2000000 bytes, limit 1048576",
        ":-9223372036854775808",
        "$k", /* rendered with %.*s: stops at the NUL; checked below */
        "nil",
        "nilarr",
        "[$cursor [$a :1]]",
        "[$GET $key]",
    };
    read_every_split((const char *)b.data, b.len, want, 8);

    resp_reader *r;
    assert_int_equal(resp_reader_new(&r, NULL), 0);
    resp_reply rep;
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(resp_read_reply(r, b.data + off, b.len - off, &rep),
                         1);
        off += rep.consumed;
    }
    assert_int_equal(rep.nodes[0].len, 3);
    assert_memory_equal(rep.nodes[0].str, "k\0v", 3);
    resp_reader_free(r);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_zero_copy_and_consumed),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_big_bulk_byte_by_byte),
        cmocka_unit_test(test_round_trip_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
