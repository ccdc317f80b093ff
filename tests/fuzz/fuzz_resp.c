/*
 * fuzz_resp.c - libFuzzer target for the RESP request parser.
 *
 * Input: byte 0 picks the limits (defaults, or tiny ones so that every limit
 * is reachable by short inputs), byte 1 seeds the chunk sizes, the rest is
 * the byte stream a client sends. The stream is fed in chunks, each call
 * seeing an exact-size heap copy (ASan flags any over-read), and checked
 * against these invariants:
 *   - a command has 1 <= argc <= args_max, each argument within its limit,
 *     and the argument bytes sum to no more than the bytes it consumed;
 *   - consumed is within what was presented and within message_max;
 *   - the commands and the final outcome (need more / error + message) are
 *     the same as when the whole stream is presented at once;
 *   - re-writing a command (resp_write_command_args) and parsing that gives
 *     the same arguments back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/resp.h"

#include "feed.h"


/* A digest of the commands seen, to compare two ways of feeding. */
typedef struct trace {
    uint64_t hash;
    size_t ncmds;
    int final_rc;
    char err[128];
} trace;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static void check_rewrite(const resp_cmd *c)
{
    buf out = BUF_INIT;
    CHECK(resp_write_command_args(&out, c->argc, c->argv) == 0);
    resp_parser *p;
    CHECK(resp_parser_new(&p, NULL) == 0);
    resp_cmd again;
    int rc = resp_parse_command(p, out.data, out.len, &again);
    /* what the default limits accepted fits them again once re-written
     * (an inline command grows, but 64 KiB of line stays far below
     * message_max) */
    CHECK(rc == 1);
    CHECK(again.consumed == out.len && again.argc == c->argc);
    for (size_t i = 0; i < c->argc; i++) {
        CHECK(again.argv[i].len == c->argv[i].len);
        CHECK(c->argv[i].len == 0 ||
              memcmp(again.argv[i].p, c->argv[i].p, c->argv[i].len) == 0);
    }
    resp_parser_free(p);
    buf_free(&out);
}

static void check_cmd(const resp_cmd *c, const resp_limits *lim,
                      const uint8_t *data, size_t len, trace *t)
{
    CHECK(c->consumed >= 1 && c->consumed <= len);
    CHECK(c->consumed <= lim->message_max);
    CHECK(c->argc >= 1 && c->argc <= lim->args_max);
    size_t sum = 0;
    size_t max = c->is_inline ? lim->inline_max : lim->bulk_max;
    mix(&t->hash, &c->argc, sizeof c->argc);
    for (size_t i = 0; i < c->argc; i++) {
        const resp_arg *a = &c->argv[i];
        CHECK(a->len <= max);
        if (!c->is_inline) /* zero copy: inside the presented bytes */
            CHECK(a->len == 0 || (a->p >= data && a->p + a->len <= data + len));
        mix(&t->hash, &a->len, sizeof a->len);
        mix(&t->hash, a->p, a->len); /* reads every byte: ASan checks */
        sum += a->len;
    }
    CHECK(sum <= c->consumed);
    t->ncmds++;
}

/* Feed `in` in chunks from `seed` (0: all at once); record into *t. */
static void run(const uint8_t *in, size_t n, const resp_limits *lim,
                unsigned seed, bool rewrite, trace *t)
{
    resp_parser *p;
    CHECK(resp_parser_new(&p, lim) == 0);
    memset(t, 0, sizeof *t);
    t->hash = 0xcbf29ce484222325ull;
    feed f;
    feed_init(&f, in, n, seed);
    const uint8_t *copy;
    size_t len;
    int rc = 0;
    while (feed_next(&f, rc == 0, &copy, &len)) {
        resp_cmd c;
        rc = resp_parse_command(p, copy, len, &c);
        if (rc == 1) {
            check_cmd(&c, lim, copy, len, t);
            if (rewrite)
                check_rewrite(&c);
            feed_consume(&f, c.consumed);
        } else if (rc < 0) {
            CHECK(rc == CAIRN_ERR_PROTO);
            snprintf(t->err, sizeof t->err, "%s", resp_parser_errmsg(p));
            CHECK(strncmp(t->err, "Protocol error: ", 16) == 0);
            break;
        }
    }
    t->final_rc = rc;
    feed_free(&f);
    resp_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    resp_limits lim = resp_limits_default();
    if (data[0] & 1) {
        lim.args_max = 8;
        lim.bulk_max = 64;
        lim.inline_max = 32;
        lim.message_max = 256;
    }
    unsigned seed = data[1] | 1u;
    trace whole, chunked;
    run(data + 2, size - 2, &lim, 0, false, &whole);
    run(data + 2, size - 2, &lim, seed, !(data[0] & 1), &chunked);
    CHECK(whole.ncmds == chunked.ncmds);
    CHECK(whole.hash == chunked.hash);
    CHECK(whole.final_rc == chunked.final_rc);
    CHECK(strcmp(whole.err, chunked.err) == 0);
    return 0;
}
