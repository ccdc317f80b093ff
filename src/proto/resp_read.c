/*
 * resp_read.c - the incremental RESP2 reply reader (client side).
 *
 * A reply is a tree; the reader emits it flat, in pre-order, as it arrives.
 * A stack of "elements still to come" per open array says when the tree is
 * complete, so no recursion and a depth bounded by resp_limits.depth_max.
 * Like the request parser it keeps offsets (not pointers) between calls and
 * resumes where it stopped, so split input costs no re-scanning.
 */
#include "proto/resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/resp_internal.h"

/* Nodes kept between replies; more are freed once the reply is done. */
#define RESP_KEEP_NODES 4096

enum rstate {
    R_TYPE, /* at the type byte of an element */
    R_LINE, /* in its first line */
    R_BULK, /* waiting for a bulk payload and "\r\n" */
    R_ERROR
};

struct resp_reader {
    resp_limits lim;
    enum rstate state;
    size_t pos;   /* next unparsed byte, from the reply's first byte */
    size_t line;  /* where the current element's line starts */
    size_t scan;  /* terminator search resumes here */
    size_t nnodes;
    size_t cap;
    resp_node *nodes;
    size_t *offs; /* string offsets of nodes, made pointers on completion */
    size_t depth;
    size_t *left; /* per open array: elements still to come */
    size_t elems; /* array elements so far in this reply */
    char err[96];
};

int resp_reader_new(resp_reader **out, const resp_limits *lim)
{
    resp_reader *r = calloc(1, sizeof *r);
    if (r == NULL)
        return CAIRN_ERR_NOMEM;
    r->lim = lim ? *lim : resp_limits_default();
    if (r->lim.depth_max == 0)
        r->lim.depth_max = 1;
    r->left = calloc(r->lim.depth_max, sizeof *r->left);
    if (r->left == NULL) {
        free(r);
        return CAIRN_ERR_NOMEM;
    }
    *out = r;
    return 0;
}

void resp_reader_free(resp_reader *r)
{
    if (r == NULL)
        return;
    free(r->nodes);
    free(r->offs);
    free(r->left);
    free(r);
}

static void start_reply(resp_reader *r)
{
    r->state = R_TYPE;
    r->pos = r->line = r->scan = 0;
    r->nnodes = r->depth = r->elems = 0;
}

void resp_reader_reset(resp_reader *r)
{
    start_reply(r);
    r->err[0] = '\0';
}

const char *resp_reader_errmsg(const resp_reader *r)
{
    return r->err;
}

static int fail(resp_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(resp_reader *r, const char *fmt, ...)
{
    int n = snprintf(r->err, sizeof r->err, "Protocol error: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
    va_end(ap);
    r->state = R_ERROR;
    return CAIRN_ERR_PROTO;
}

/* A new node, zeroed; NULL on allocation failure. */
static resp_node *add_node(resp_reader *r, resp_type type, size_t off)
{
    if (r->nnodes == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        resp_node *nodes = realloc(r->nodes, cap * sizeof *nodes);
        if (nodes == NULL)
            return NULL;
        r->nodes = nodes;
        size_t *offs = realloc(r->offs, cap * sizeof *offs);
        if (offs == NULL)
            return NULL;
        r->offs = offs;
        r->cap = cap;
    }
    resp_node *n = &r->nodes[r->nnodes];
    memset(n, 0, sizeof *n);
    n->type = type;
    r->offs[r->nnodes++] = off;
    return n;
}

/* Step results: need more bytes, reply complete, go on parsing. */
enum { R_MORE = 0, R_DONE = 1, R_NEXT = 2 };

/* The element just added is done (or, for a non-empty array, opened). */
static int element_done(resp_reader *r, size_t count)
{
    if (r->depth > 0)
        r->left[r->depth - 1]--;
    if (count > 0)
        r->left[r->depth++] = count;
    while (r->depth > 0 && r->left[r->depth - 1] == 0)
        r->depth--;
    r->line = r->scan = r->pos;
    r->state = R_TYPE;
    return r->depth == 0 ? R_DONE : R_NEXT;
}

static int line_element(resp_reader *r, uint8_t t, size_t eol)
{
    resp_node *n = add_node(r, (resp_type)t, r->line + 1);
    if (n == NULL)
        return CAIRN_ERR_NOMEM;
    n->len = eol - r->line - 1;
    return element_done(r, 0);
}

static int int_element(resp_reader *r, const uint8_t *data, size_t eol)
{
    int64_t v;
    if (!resp_parse_i64(data + r->line + 1, eol - r->line - 1, &v))
        return fail(r, "invalid integer");
    resp_node *n = add_node(r, RESP_INTEGER, 0);
    if (n == NULL)
        return CAIRN_ERR_NOMEM;
    n->integer = v;
    return element_done(r, 0);
}

static int bulk_header(resp_reader *r, const uint8_t *data, size_t eol)
{
    int64_t v;
    if (!resp_parse_i64(data + r->line + 1, eol - r->line - 1, &v) ||
        v < -1 || (v >= 0 && (uint64_t)v > r->lim.bulk_max))
        return fail(r, "invalid bulk length");
    if (v == -1) {
        if (add_node(r, RESP_NIL, 0) == NULL)
            return CAIRN_ERR_NOMEM;
        return element_done(r, 0);
    }
    if ((uint64_t)v + 2 > r->lim.message_max - r->pos)
        return fail(r, "reply too big (more than %zu bytes)",
                    r->lim.message_max);
    resp_node *n = add_node(r, RESP_BULK, r->pos);
    if (n == NULL)
        return CAIRN_ERR_NOMEM;
    n->len = (size_t)v;
    r->state = R_BULK;
    return R_NEXT;
}

static int array_header(resp_reader *r, const uint8_t *data, size_t eol)
{
    int64_t v;
    if (!resp_parse_i64(data + r->line + 1, eol - r->line - 1, &v) ||
        v < -1)
        return fail(r, "invalid multibulk length");
    if (v == -1) {
        if (add_node(r, RESP_NIL_ARRAY, 0) == NULL)
            return CAIRN_ERR_NOMEM;
        return element_done(r, 0);
    }
    if ((uint64_t)v > r->lim.args_max - r->elems)
        return fail(r, "too many array elements (more than %zu)",
                    r->lim.args_max);
    if (v > 0 && r->depth == r->lim.depth_max)
        return fail(r, "arrays nested deeper than %zu", r->lim.depth_max);
    resp_node *n = add_node(r, RESP_ARRAY, 0);
    if (n == NULL)
        return CAIRN_ERR_NOMEM; /* nothing changed: the call can be retried */
    n->count = (size_t)v;
    r->elems += (size_t)v;
    return element_done(r, (size_t)v);
}

/* The first line of an element. */
static int parse_line(resp_reader *r, const uint8_t *data, size_t len)
{
    uint8_t t = data[r->line];
    bool text = t == '+' || t == '-';
    size_t max = text ? r->lim.inline_max : RESP_NUM_LINE_MAX;
    size_t eol;
    switch (resp_find_crlf(data, len, r->line + 1, max, &r->scan, &eol)) {
    case RESP_LINE_MORE:
        return R_MORE;
    case RESP_LINE_TOOLONG:
        return fail(r, "reply line too long");
    case RESP_LINE_BADEND:
        return fail(r, "line not terminated by CRLF");
    case RESP_LINE_OK:
        break;
    }
    r->pos = eol + 2;
    if (r->pos > r->lim.message_max)
        return fail(r, "reply too big (more than %zu bytes)",
                    r->lim.message_max);
    switch (t) {
    case ':':
        return int_element(r, data, eol);
    case '$':
        return bulk_header(r, data, eol);
    case '*':
        return array_header(r, data, eol);
    default:
        return line_element(r, t, eol);
    }
}

static int parse_bulk(resp_reader *r, const uint8_t *data, size_t len)
{
    size_t n = r->nodes[r->nnodes - 1].len;
    if (len - r->pos < n + 2)
        return R_MORE;
    size_t end = r->pos + n;
    if (data[end] != '\r' || data[end + 1] != '\n')
        return fail(r, "bulk string not terminated by CRLF");
    r->pos = end + 2;
    return element_done(r, 0);
}

static void finish(resp_reader *r, const uint8_t *data, resp_reply *reply)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        resp_type t = r->nodes[i].type;
        if (t == RESP_SIMPLE || t == RESP_ERROR || t == RESP_BULK)
            r->nodes[i].str = data + r->offs[i];
    }
    reply->nnodes = r->nnodes;
    reply->nodes = r->nodes;
    reply->consumed = r->pos;
    start_reply(r);
}

static bool is_type_byte(uint8_t t)
{
    return t == '+' || t == '-' || t == ':' || t == '$' || t == '*';
}

/* Between replies, give back what one huge reply made us hold. The
 * previous reply's nodes die here (resp.h, rule 3). */
static void shrink_idle(resp_reader *r)
{
    if (r->cap > RESP_KEEP_NODES) {
        free(r->nodes);
        free(r->offs);
        r->nodes = NULL;
        r->offs = NULL;
        r->cap = 0;
    }
}

int resp_read_reply(resp_reader *r, const uint8_t *data, size_t len,
                    resp_reply *reply)
{
    if (r->state == R_TYPE && r->nnodes == 0)
        shrink_idle(r);
    for (;;) {
        int rc = 0;
        switch (r->state) {
        case R_ERROR:
            return CAIRN_ERR_PROTO;
        case R_TYPE:
            if (r->pos >= len)
                return 0;
            if (!is_type_byte(data[r->pos]))
                return fail(r, "invalid reply type byte 0x%02x",
                            data[r->pos]);
            r->line = r->pos;
            r->scan = r->pos + 1;
            r->state = R_LINE;
            continue;
        case R_LINE:
            rc = parse_line(r, data, len);
            break;
        case R_BULK:
            rc = parse_bulk(r, data, len);
            break;
        }
        if (rc == R_DONE) {
            finish(r, data, reply);
            return 1;
        }
        if (rc != R_NEXT)
            return rc; /* an error, or more bytes needed */
    }
}
