/*
 * Tests for the RESP request parser and the writers (src/proto/resp.h):
 * every form, pipelining, input split at every byte, each limit at and one
 * past its bound, each malformed case, and writer -> parser round trips.
 *
 * Feeding helpers copy the presented bytes into a heap block of exactly that
 * size at a new address on every call: AddressSanitizer then catches any
 * read past what was presented, and any pointer kept across calls.
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

/* An expected command: argument strings, lengths by strlen unless given. */
typedef struct want {
    size_t argc;
    const char *argv[6];
    size_t argvlen[6]; /* 0 = strlen */
} want;

static void assert_cmd(const resp_cmd *c, const want *w)
{
    assert_int_equal(c->argc, w->argc);
    for (size_t i = 0; i < w->argc; i++) {
        size_t n = w->argvlen[i] ? w->argvlen[i] : strlen(w->argv[i]);
        assert_int_equal(c->argv[i].len, n);
        assert_memory_equal(c->argv[i].p, w->argv[i], n);
    }
}

/* Parse one command from a fresh exact-size copy of data[0..len). The copy
 * is kept in *keep (freed on the next call) so argv stays readable. */
static int parse_copy(resp_parser *p, const void *data, size_t len,
                      resp_cmd *cmd, uint8_t **keep)
{
    free(*keep);
    *keep = malloc(len ? len : 1);
    assert_non_null(*keep);
    memcpy(*keep, data, len);
    return resp_parse_command(p, *keep, len, cmd);
}

/* Parse all of `in` (a pipeline), presenting at most `step` new bytes per
 * call (0 = everything at once), and check the commands against `w`. */
static void parse_all(const char *in, size_t inlen, size_t step,
                      const want *w, size_t nwant)
{
    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    uint8_t *keep = NULL;
    size_t start = 0, avail = 0, got = 0;
    while (start < inlen || got < nwant) {
        size_t more = step ? step : inlen;
        avail = avail + more > inlen ? inlen : avail + more;
        resp_cmd c;
        int rc = parse_copy(p, in + start, avail - start, &c, &keep);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1) {
            assert_true(got < nwant);
            assert_cmd(&c, &w[got++]);
            start += c.consumed;
            assert_true(start <= avail);
            avail = start; /* present the rest again, step by step */
        } else if (avail == inlen) {
            break; /* trailing skipped bytes, nothing more to come */
        }
    }
    assert_int_equal(got, nwant);
    free(keep);
    resp_parser_free(p);
}

/* Parse `in` fed once split at every byte position: all of [0, k) first,
 * then everything; plus one byte at a time. */
static void parse_every_split(const char *in, size_t inlen, const want *w,
                              size_t nwant)
{
    parse_all(in, inlen, 0, w, nwant);
    parse_all(in, inlen, 1, w, nwant);
    for (size_t k = 1; k < inlen; k++) {
        resp_parser *p;
        assert_int_equal(resp_parser_new(&p, NULL), 0);
        uint8_t *keep = NULL;
        resp_cmd c;
        size_t start = 0, got = 0;
        int rc = parse_copy(p, in, k, &c, &keep);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1) { /* a complete first command before k */
            assert_cmd(&c, &w[got++]);
            start = c.consumed;
        }
        while ((rc = parse_copy(p, in + start, inlen - start, &c, &keep)) ==
               1) {
            assert_cmd(&c, &w[got++]);
            start += c.consumed;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(got, nwant);
        free(keep);
        resp_parser_free(p);
    }
}

#define S(lit) lit, sizeof(lit) - 1

static void test_multibulk(void **state)
{
    (void)state;
    const char in[] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    want w = {2, {"GET", "k"}, {0}};
    parse_every_split(S(in), &w, 1);

    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    resp_cmd c;
    assert_int_equal(resp_parse_command(p, (const uint8_t *)in, sizeof in - 1,
                                        &c), 1);
    assert_int_equal(c.consumed, sizeof in - 1);
    assert_false(c.is_inline);
    /* zero copy: the argument points into the input */
    assert_ptr_equal(c.argv[0].p, (const uint8_t *)in + 8);
    assert_string_equal(resp_parser_errmsg(p), "");
    resp_parser_free(p);
}

static void test_binary_and_empty_args(void **state)
{
    (void)state;
    const char in[] = "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\na\r\n\0b\r\n";
    want w = {3, {"SET", "", "a\r\n\0b"}, {0, 0, 5}};
    parse_every_split(S(in), &w, 1);
}

static void test_inline(void **state)
{
    (void)state;
    const char in[] = "PING\r\n"
                      "ping\n"
                      "  set \t a   b  \r\n"
                      "\r\n\n   \r\n" /* blank lines: skipped */
                      "SET \"a b\" 'c d'\r\n"
                      "ECHO \"\\x41\\n\\t\\\"\\\\z\" 'it\\'s' \"\" ''\r\n"
                      "a\"b c\"\r\n"; /* a quote may open mid-token */
    want w[] = {
        {1, {"PING"}, {0}},
        {1, {"ping"}, {0}},
        {3, {"set", "a", "b"}, {0}},
        {3, {"SET", "a b", "c d"}, {0}},
        {5, {"ECHO", "A\n\t\"\\z", "it's", "", ""}, {0}},
        {1, {"ab c"}, {0}},
    };
    parse_every_split(S(in), w, sizeof w / sizeof w[0]);
}

static void test_inline_flag_and_empty_multibulk(void **state)
{
    (void)state;
    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    resp_cmd c;
    const char in[] = "*0\r\n\r\nPING\r\n";
    assert_int_equal(resp_parse_command(p, (const uint8_t *)in, 6, &c), 0);
    assert_int_equal(resp_parse_command(p, (const uint8_t *)in, sizeof in - 1,
                                        &c), 1);
    assert_true(c.is_inline);
    assert_int_equal(c.consumed, sizeof in - 1);
    resp_parser_free(p);
}

static void test_pipeline_mixed(void **state)
{
    (void)state;
    const char in[] = "*1\r\n$4\r\nPING\r\n"
                      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n"
                      "GET k\r\n"
                      "*0\r\n"
                      "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n";
    want w[] = {
        {1, {"PING"}, {0}},
        {3, {"SET", "k", "vv"}, {0}},
        {2, {"GET", "k"}, {0}},
        {2, {"DEL", "k"}, {0}},
    };
    parse_every_split(S(in), w, 4);
}

/* A big bulk string fed one byte at a time in one growing buffer: must be
 * linear (a parser re-scanning from the start would take ~10^12 steps). */
static void test_big_bulk_byte_by_byte(void **state)
{
    (void)state;
    buf in = BUF_INIT;
    size_t n = RESP_BULK_MAX;
    assert_int_equal(buf_appendf(&in, "*2\r\n$3\r\nSET\r\n$%zu\r\n", n), 0);
    assert_int_equal(buf_reserve(&in, n + 2), 0);
    memset(in.data + in.len, 'x', n);
    in.len += n;
    assert_int_equal(buf_append(&in, "\r\n", 2), 0);

    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    resp_cmd c;
    for (size_t len = 0; len < in.len; len++)
        assert_int_equal(resp_parse_command(p, in.data, len, &c), 0);
    assert_int_equal(resp_parse_command(p, in.data, in.len, &c), 1);
    assert_int_equal(c.argc, 2);
    assert_int_equal(c.argv[1].len, n);
    assert_int_equal(c.consumed, in.len);
    resp_parser_free(p);
    buf_free(&in);
}

/* The chunk sizes to feed an input of `inlen` bytes in: every size for
 * short inputs; for long ones (copied whole on every call) a few, so the
 * test stays linear. 0 ends the list. */
static size_t next_step(size_t step, size_t inlen)
{
    if (inlen <= 256)
        return step < inlen ? step + 1 : 0;
    if (step == 0)
        return 997;
    if (step == 997)
        return 4096;
    return step < inlen ? inlen : 0;
}

/* Expect CAIRN_ERR_PROTO with message `msg` once all of `in` is presented,
 * whichever way it is split, and for every later call too. */
static void expect_error_lim(const char *in, size_t inlen, const char *msg,
                             const resp_limits *lim)
{
    for (size_t step = next_step(0, inlen); step; step = next_step(step, inlen)) {
        resp_parser *p;
        assert_int_equal(resp_parser_new(&p, lim), 0);
        uint8_t *keep = NULL;
        resp_cmd c;
        int rc = 0;
        size_t start = 0;
        for (size_t len = step; rc >= 0; len += step) {
            if (len > inlen)
                len = inlen;
            rc = parse_copy(p, in + start, len - start, &c, &keep);
            if (rc == 1) {
                start += c.consumed;
                rc = 0;
            } else if (rc == 0) {
                assert_true(len < inlen);
            }
        }
        assert_int_equal(rc, CAIRN_ERR_PROTO);
        assert_string_equal(resp_parser_errmsg(p), msg);
        /* sticky until reset */
        assert_int_equal(parse_copy(p, "P\r\n", 3, &c, &keep),
                         CAIRN_ERR_PROTO);
        resp_parser_reset(p);
        assert_string_equal(resp_parser_errmsg(p), "");
        assert_int_equal(parse_copy(p, "P\r\n", 3, &c, &keep), 1);
        free(keep);
        resp_parser_free(p);
    }
}

static void expect_error(const char *in, size_t inlen, const char *msg)
{
    expect_error_lim(in, inlen, msg, NULL);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *mb = "Protocol error: invalid multibulk length";
    const char *bl = "Protocol error: invalid bulk length";
    expect_error(S("*abc\r\n"), mb);
    expect_error(S("*\r\n"), mb);
    expect_error(S("*-1\r\n"), mb);
    expect_error(S("*-2\r\n"), mb);
    expect_error(S("*+1\r\n"), mb);
    expect_error(S("*01\r\n"), mb);
    expect_error(S("* 1\r\n"), mb);
    expect_error(S("*1x\r\n"), mb);
    expect_error(S("*99999999999999999999\r\n"), mb); /* int64 overflow */
    expect_error(S("*1\rX"), mb);                     /* CR without LF */
    expect_error(S("*123456789012345678901234567890123"),
                 "Protocol error: too big multibulk count string");
    expect_error(S("*1\r\n$-1\r\n"), bl);
    expect_error(S("*1\r\n$-0\r\n"), bl);
    expect_error(S("*1\r\n$x\r\n"), bl);
    expect_error(S("*1\r\n$\r\n"), bl);
    expect_error(S("*1\r\n$18446744073709551617\r\n"), bl);
    expect_error(S("*1\r\n$3\nabc\r\n"), bl); /* LF-only line */
    expect_error(S("*1\r\n$1234567890123456789012345678901234"),
                 "Protocol error: too big bulk count string");
    expect_error(S("*1\r\nX3\r\nabc\r\n"), "Protocol error: expected '$', got 'X'");
    expect_error(S("*1\r\n\x01"), "Protocol error: expected '$', got '\\x01'");
    expect_error(S("*2\r\n$1\r\na\r\n:1\r\n"),
                 "Protocol error: expected '$', got ':'");
    expect_error(S("*1\r\n$3\r\nabcXY"),
                 "Protocol error: bulk string not terminated by CRLF");
    expect_error(S("*1\r\n$3\r\nabc\rY"),
                 "Protocol error: bulk string not terminated by CRLF");
    expect_error(S("*1\r\n$3\r\nabcd\r\n"),
                 "Protocol error: bulk string not terminated by CRLF");
    expect_error(S("SET \"a\r\n"), "Protocol error: unbalanced quotes in request");
    expect_error(S("SET 'a\r\n"), "Protocol error: unbalanced quotes in request");
    expect_error(S("SET \"a\"b\r\n"), "Protocol error: unbalanced quotes in request");
    expect_error(S("SET 'a'b\n"), "Protocol error: unbalanced quotes in request");
    expect_error(S("PING\r\n*1\r\n$x\r\n"), bl); /* after a good command */
}

static void test_incomplete_is_not_an_error(void **state)
{
    (void)state;
    const char *partial[] = {"*", "*2", "*2\r", "*2\r\n$", "*2\r\n$3\r\nGE",
                             "*2\r\n$3\r\nGET\r", "*2\r\n$3\r\nGET\r\n",
                             "PING", "PING\r", "SET \"a b"};
    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
        resp_cmd c;
        uint8_t *keep = NULL;
        resp_parser_reset(p);
        assert_int_equal(parse_copy(p, partial[i], strlen(partial[i]), &c,
                                    &keep), 0);
        free(keep);
    }
    resp_parser_free(p);
}

/* A command of `argc` arguments "x". */
static void make_args(buf *b, size_t argc)
{
    assert_int_equal(buf_appendf(b, "*%zu\r\n", argc), 0);
    for (size_t i = 0; i < argc; i++)
        assert_int_equal(buf_append(b, "$1\r\nx\r\n", 7), 0);
}

static void test_limit_args(void **state)
{
    (void)state;
    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    buf b = BUF_INIT;
    make_args(&b, RESP_ARGS_MAX); /* the default bound itself */
    resp_cmd c;
    assert_int_equal(resp_parse_command(p, b.data, b.len, &c), 1);
    assert_int_equal(c.argc, RESP_ARGS_MAX);
    assert_int_equal(c.consumed, b.len);
    /* the next command still parses once the big arrays are given back */
    assert_int_equal(resp_parse_command(p, (const uint8_t *)"PING\r\n", 6,
                                        &c), 1);
    assert_int_equal(c.argc, 1);
    buf_free(&b);
    resp_parser_free(p);

    char one_past[32];
    snprintf(one_past, sizeof one_past, "*%d\r\n", RESP_ARGS_MAX + 1);
    expect_error(one_past, strlen(one_past),
                 "Protocol error: invalid multibulk length");

    /* inline arguments count too */
    resp_limits lim = resp_limits_default();
    lim.args_max = 3;
    assert_int_equal(resp_parser_new(&p, &lim), 0);
    assert_int_equal(resp_parse_command(p, (const uint8_t *)"a b  c\r\n", 8,
                                        &c), 1);
    assert_int_equal(c.argc, 3);
    resp_parser_free(p);
    expect_error_lim(S("a b c d\r\n"),
                     "Protocol error: too many arguments in inline request",
                     &lim);
    expect_error_lim(S("*4\r\n"), "Protocol error: invalid multibulk length",
                     &lim);
}

static void test_limit_bulk(void **state)
{
    (void)state;
    char hdr[64];
    snprintf(hdr, sizeof hdr, "*1\r\n$%d\r\n", RESP_BULK_MAX);
    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    resp_cmd c;
    /* at the bound: the header is accepted and the parser waits */
    assert_int_equal(resp_parse_command(p, (const uint8_t *)hdr, strlen(hdr),
                                        &c), 0);
    resp_parser_free(p);
    snprintf(hdr, sizeof hdr, "*1\r\n$%d\r\n", RESP_BULK_MAX + 1);
    expect_error(hdr, strlen(hdr), "Protocol error: invalid bulk length");
    /* (test_big_bulk_byte_by_byte parses a whole bulk at the bound) */
}

static void test_limit_inline(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(buf_reserve(&b, RESP_INLINE_MAX + 8), 0);
    memset(b.data, 'a', RESP_INLINE_MAX);
    b.len = RESP_INLINE_MAX;
    assert_int_equal(buf_append(&b, "\r\n", 2), 0);
    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    resp_cmd c;
    assert_int_equal(resp_parse_command(p, b.data, b.len, &c), 1);
    assert_int_equal(c.argv[0].len, RESP_INLINE_MAX);
    /* "\n" alone: same bound */
    assert_int_equal(resp_parse_command(p, b.data + 1, b.len - 1, &c), 1);
    b.data[RESP_INLINE_MAX] = '\n';
    assert_int_equal(resp_parse_command(p, b.data, b.len - 1, &c), 1);
    assert_int_equal(c.argv[0].len, RESP_INLINE_MAX);
    resp_parser_free(p);

    /* one past, terminated or not yet */
    b.data[RESP_INLINE_MAX] = 'a';
    b.data[RESP_INLINE_MAX + 1] = '\n';
    expect_error((const char *)b.data, RESP_INLINE_MAX + 2,
                 "Protocol error: too big inline request");
    memset(b.data, 'a', RESP_INLINE_MAX + 2);
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    assert_int_equal(resp_parse_command(p, b.data, RESP_INLINE_MAX + 1, &c),
                     0); /* could still end in "\r\n" */
    assert_int_equal(resp_parse_command(p, b.data, RESP_INLINE_MAX + 2, &c),
                     CAIRN_ERR_PROTO);
    assert_string_equal(resp_parser_errmsg(p),
                        "Protocol error: too big inline request");
    resp_parser_free(p);
    buf_free(&b);
}

static void test_limit_message(void **state)
{
    (void)state;
    const char ok[] = "*2\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n";
    resp_limits lim = resp_limits_default();
    lim.message_max = sizeof ok - 1; /* 30: exactly this command */
    resp_parser *p;
    resp_cmd c;
    assert_int_equal(resp_parser_new(&p, &lim), 0);
    assert_int_equal(resp_parse_command(p, (const uint8_t *)ok, sizeof ok - 1,
                                        &c), 1);
    resp_parser_free(p);
    expect_error_lim(S("*2\r\n$3\r\nSET\r\n$11\r\n"),
                     "Protocol error: request too big (more than 30 bytes)",
                     &lim);
    /* a header line alone crossing the bound */
    expect_error_lim(S("*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$0\r\n"),
                     "Protocol error: request too big (more than 30 bytes)",
                     &lim);
    lim.message_max = 3;
    expect_error_lim(S("*1\r\n"),
                     "Protocol error: request too big (more than 3 bytes)",
                     &lim);
    lim.message_max = 30;
    /* inline lines and runs of empty commands count too */
    lim.message_max = 6;
    assert_int_equal(resp_parser_new(&p, &lim), 0);
    assert_int_equal(resp_parse_command(p, (const uint8_t *)"PING\r\n", 6, &c),
                     1);
    resp_parser_free(p);
    expect_error_lim(S("PINGG\r\n"),
                     "Protocol error: request too big (more than 6 bytes)",
                     &lim);
    expect_error_lim(S("*0\r\n*0\r\n"),
                     "Protocol error: request too big (more than 6 bytes)",
                     &lim);
    expect_error_lim(S("\r\n\r\n\r\n\r\n"),
                     "Protocol error: request too big (more than 6 bytes)",
                     &lim);
}

/* Announcing a huge count must not allocate for it up front. */
static void test_no_allocation_for_announced_sizes(void **state)
{
    (void)state;
    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    char in[64];
    snprintf(in, sizeof in, "*%d\r\n$%d\r\n", RESP_ARGS_MAX, RESP_BULK_MAX);
    resp_cmd c;
    assert_int_equal(resp_parse_command(p, (const uint8_t *)in, strlen(in),
                                        &c), 0);
    resp_parser_free(p); /* ASan/LSan would report a leak or huge alloc */
}

/* ---- writers ---- */

static void assert_buf(buf *b, const char *lit, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, lit, n);
    buf_reset(b);
}

#define ASSERT_BUF(b, lit) assert_buf(b, lit, sizeof(lit) - 1)

static void test_writers(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(resp_write_simple(&b, "OK"), 0);
    ASSERT_BUF(&b, "+OK\r\n");
    assert_int_equal(resp_write_simple(&b, "a\r\nb"), 0);
    ASSERT_BUF(&b, "+a  b\r\n");
    assert_int_equal(resp_write_error(&b, "TOOBIG",
                                      "value is %d bytes, limit %d", 2000000,
                                      1048576), 0);
    ASSERT_BUF(&b, "-TOOBIG value is 2000000 bytes, limit 1048576\r\n");
    assert_int_equal(resp_write_error(&b, "ERR", NULL), 0);
    ASSERT_BUF(&b, "-ERR\r\n");
    assert_int_equal(resp_write_error(&b, "ERR", "bad\nline\r"), 0);
    ASSERT_BUF(&b, "-ERR bad line \r\n");
    assert_int_equal(resp_write_err(&b, CAIRN_ERR_TOOBIG, NULL), 0);
    ASSERT_BUF(&b, "-TOOBIG value is larger than 1048576 bytes\r\n");
    assert_int_equal(resp_write_err(&b, CAIRN_ERR_NOT_LEADER, "%s", "n2"), 0);
    ASSERT_BUF(&b, "-NOT_LEADER n2\r\n");
    assert_int_equal(resp_write_int(&b, 0), 0);
    ASSERT_BUF(&b, ":0\r\n");
    assert_int_equal(resp_write_int(&b, -42), 0);
    ASSERT_BUF(&b, ":-42\r\n");
    assert_int_equal(resp_write_int(&b, INT64_MAX), 0);
    ASSERT_BUF(&b, ":9223372036854775807\r\n");
    assert_int_equal(resp_write_int(&b, INT64_MIN), 0);
    ASSERT_BUF(&b, ":-9223372036854775808\r\n");
    assert_int_equal(resp_write_bulk(&b, "a\0\r\n", 4), 0);
    ASSERT_BUF(&b, "$4\r\na\0\r\n\r\n");
    assert_int_equal(resp_write_bulk(&b, NULL, 0), 0);
    ASSERT_BUF(&b, "$0\r\n\r\n");
    assert_int_equal(resp_write_bulk_str(&b, "hello"), 0);
    ASSERT_BUF(&b, "$5\r\nhello\r\n");
    assert_int_equal(resp_write_nil(&b), 0);
    ASSERT_BUF(&b, "$-1\r\n");
    assert_int_equal(resp_write_array(&b, 3), 0);
    ASSERT_BUF(&b, "*3\r\n");
    assert_int_equal(resp_write_array(&b, 0), 0);
    ASSERT_BUF(&b, "*0\r\n");
    assert_int_equal(resp_write_nil_array(&b), 0);
    ASSERT_BUF(&b, "*-1\r\n");
    const char *argv[] = {"SET", "k", "v\0w"};
    size_t lens[] = {3, 1, 3};
    assert_int_equal(resp_write_command(&b, 3, argv, lens), 0);
    ASSERT_BUF(&b, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\0w\r\n");
    assert_int_equal(resp_write_command(&b, 2, argv, NULL), 0);
    ASSERT_BUF(&b, "*2\r\n$3\r\nSET\r\n$1\r\nk\r\n");
    resp_arg args[] = {{(const uint8_t *)"GET", 3}, {(const uint8_t *)"", 0}};
    assert_int_equal(resp_write_command_args(&b, 2, args), 0);
    ASSERT_BUF(&b, "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
    /* appends after what is there */
    assert_int_equal(resp_write_simple(&b, "A"), 0);
    assert_int_equal(resp_write_int(&b, 7), 0);
    ASSERT_BUF(&b, "+A\r\n:7\r\n");
    buf_free(&b);
}

static void test_proto_error_reply(void **state)
{
    (void)state;
    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    resp_cmd c;
    assert_int_equal(resp_parse_command(p, (const uint8_t *)"*1\r\n$x\r\n", 8,
                                        &c), CAIRN_ERR_PROTO);
    buf b = BUF_INIT;
    assert_int_equal(resp_write_proto_error(&b, p), 0);
    ASSERT_BUF(&b, "-ERR Protocol error: invalid bulk length\r\n");
    buf_free(&b);
    resp_parser_free(p);
}

/* Random commands with binary arguments: written, then parsed back from a
 * pipeline in random chunks. A fixed-seed generator keeps it repeatable. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void test_round_trip_commands(void **state)
{
    (void)state;
    enum { NCMD = 300, MAXARGS = 6 };
    static uint8_t store[NCMD][MAXARGS][300];
    static size_t lens[NCMD][MAXARGS], argcs[NCMD];
    buf out = BUF_INIT;
    for (int i = 0; i < NCMD; i++) {
        argcs[i] = 1 + rnd() % MAXARGS;
        const char *argv[MAXARGS];
        for (size_t a = 0; a < argcs[i]; a++) {
            lens[i][a] = rnd() % (rnd() % 8 == 0 ? 300 : 5);
            for (size_t k = 0; k < lens[i][a]; k++)
                store[i][a][k] = (uint8_t)rnd();
            argv[a] = (const char *)store[i][a];
        }
        assert_int_equal(resp_write_command(&out, argcs[i], argv, lens[i]),
                         0);
    }
    resp_parser *p;
    assert_int_equal(resp_parser_new(&p, NULL), 0);
    uint8_t *keep = NULL;
    size_t start = 0, avail = 0;
    for (int i = 0; i < NCMD;) {
        avail += rnd() % 64;
        if (avail > out.len)
            avail = out.len;
        resp_cmd c;
        int rc = parse_copy(p, out.data + start, avail - start, &c, &keep);
        assert_true(rc == 0 || rc == 1);
        while (rc == 1) {
            assert_int_equal(c.argc, argcs[i]);
            for (size_t a = 0; a < c.argc; a++) {
                assert_int_equal(c.argv[a].len, lens[i][a]);
                if (lens[i][a])
                    assert_memory_equal(c.argv[a].p, store[i][a], lens[i][a]);
            }
            /* a router re-sending it writes the same bytes */
            buf again = BUF_INIT;
            assert_int_equal(resp_write_command_args(&again, c.argc, c.argv),
                             0);
            assert_int_equal(again.len, c.consumed);
            assert_memory_equal(again.data, keep, c.consumed);
            buf_free(&again);
            start += c.consumed;
            i++;
            rc = parse_copy(p, out.data + start, avail - start, &c, &keep);
            assert_true(rc == 0 || rc == 1);
        }
    }
    assert_int_equal(start, out.len);
    free(keep);
    resp_parser_free(p);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multibulk),
        cmocka_unit_test(test_binary_and_empty_args),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_inline_flag_and_empty_multibulk),
        cmocka_unit_test(test_pipeline_mixed),
        cmocka_unit_test(test_big_bulk_byte_by_byte),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_incomplete_is_not_an_error),
        cmocka_unit_test(test_limit_args),
        cmocka_unit_test(test_limit_bulk),
        cmocka_unit_test(test_limit_inline),
        cmocka_unit_test(test_limit_message),
        cmocka_unit_test(test_no_allocation_for_announced_sizes),
        cmocka_unit_test(test_writers),
        cmocka_unit_test(test_proto_error_reply),
        cmocka_unit_test(test_round_trip_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
