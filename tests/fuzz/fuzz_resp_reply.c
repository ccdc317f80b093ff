/*
 * fuzz_resp_reply.c - libFuzzer target for the RESP reply reader.
 *
 * Input: byte 0 picks the limits (defaults, or tiny ones so every limit is
 * reachable), byte 1 seeds the chunk sizes, the rest is the byte stream a
 * server sends. Fed in chunks of exact-size heap copies (ASan flags any
 * over-read) and checked against these invariants:
 *   - a reply's nodes form exactly one pre-order tree (walking it uses all
 *     nnodes), arrays nest at most depth_max deep and hold at most args_max
 *     elements in all, every string lies inside the presented bytes;
 *   - consumed is within what was presented and within message_max;
 *   - the replies and final outcome are the same as when the whole stream
 *     is presented at once;
 *   - re-writing a reply with the writers reproduces the consumed bytes
 *     (the reader accepts only the canonical form).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/resp.h"

#include "feed.h"


typedef struct trace {
    uint64_t hash;
    size_t nreplies;
    int final_rc;
    char err[128];
} trace;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ull;
}

/* Check node i and its subtree, hash it and write it back into *out;
 * returns the index after the subtree. */
static size_t walk(const resp_reply *rep, size_t i, size_t depth,
                   const resp_limits *lim, const uint8_t *data, size_t len,
                   uint64_t *h, buf *out)
{
    CHECK(i < rep->nnodes);
    const resp_node *n = &rep->nodes[i++];
    mix(h, &n->type, sizeof n->type);
    switch (n->type) {
    case RESP_SIMPLE:
    case RESP_ERROR:
    case RESP_BULK:
        CHECK(n->str >= data && n->str + n->len <= data + len);
        CHECK(n->len <= (n->type == RESP_BULK ? lim->bulk_max
                                              : lim->inline_max));
        mix(h, n->str, n->len);
        if (n->type == RESP_BULK) {
            CHECK(resp_write_bulk(out, n->str, n->len) == 0);
        } else {
            CHECK(memchr(n->str, '\r', n->len) == NULL);
            CHECK(buf_append(out, n->type == RESP_SIMPLE ? "+" : "-", 1) == 0);
            CHECK(buf_append(out, n->str, n->len) == 0);
            CHECK(buf_append(out, "\r\n", 2) == 0);
        }
        break;
    case RESP_INTEGER:
        mix(h, &n->integer, sizeof n->integer);
        CHECK(resp_write_int(out, n->integer) == 0);
        break;
    case RESP_NIL:
        CHECK(resp_write_nil(out) == 0);
        break;
    case RESP_NIL_ARRAY:
        CHECK(resp_write_nil_array(out) == 0);
        break;
    case RESP_ARRAY:
        CHECK(n->count == 0 || depth < lim->depth_max);
        CHECK(n->count <= lim->args_max);
        mix(h, &n->count, sizeof n->count);
        CHECK(resp_write_array(out, n->count) == 0);
        for (size_t k = 0; k < n->count; k++)
            i = walk(rep, i, depth + 1, lim, data, len, h, out);
        break;
    default:
        CHECK(!"unknown node type");
    }
    return i;
}

static void check_reply(const resp_reply *rep, const resp_limits *lim,
                        const uint8_t *data, size_t len, trace *t)
{
    CHECK(rep->consumed >= 1 && rep->consumed <= len);
    CHECK(rep->consumed <= lim->message_max);
    CHECK(rep->nnodes >= 1 && rep->nnodes <= lim->args_max + 1);
    buf out = BUF_INIT;
    CHECK(walk(rep, 0, 0, lim, data, len, &t->hash, &out) == rep->nnodes);
    CHECK(out.len == rep->consumed && memcmp(out.data, data, out.len) == 0);
    buf_free(&out);
    t->nreplies++;
}

static void run(const uint8_t *in, size_t n, const resp_limits *lim,
                unsigned seed, trace *t)
{
    resp_reader *r;
    CHECK(resp_reader_new(&r, lim) == 0);
    memset(t, 0, sizeof *t);
    t->hash = 0xcbf29ce484222325ull;
    feed f;
    feed_init(&f, in, n, seed);
    const uint8_t *copy;
    size_t len;
    int rc = 0;
    while (feed_next(&f, rc == 0, &copy, &len)) {
        resp_reply rep;
        rc = resp_read_reply(r, copy, len, &rep);
        if (rc == 1) {
            check_reply(&rep, lim, copy, len, t);
            feed_consume(&f, rep.consumed);
        } else if (rc < 0) {
            CHECK(rc == CAIRN_ERR_PROTO);
            snprintf(t->err, sizeof t->err, "%s", resp_reader_errmsg(r));
            CHECK(strncmp(t->err, "Protocol error: ", 16) == 0);
            break;
        }
    }
    t->final_rc = rc;
    feed_free(&f);
    resp_reader_free(r);
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
        lim.depth_max = 3;
    }
    trace whole, chunked;
    run(data + 2, size - 2, &lim, 0, &whole);
    run(data + 2, size - 2, &lim, data[1] | 1u, &chunked);
    CHECK(whole.nreplies == chunked.nreplies);
    CHECK(whole.hash == chunked.hash);
    CHECK(whole.final_rc == chunked.final_rc);
    CHECK(strcmp(whole.err, chunked.err) == 0);
    return 0;
}
