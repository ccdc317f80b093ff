/*
 * resp_write.c - RESP2 writers: replies (server side) and commands (client
 * side). Each writer reserves all the room it needs first, so it either
 * appends the whole element or, on CAIRN_ERR_NOMEM, nothing.
 */
#include "proto/resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "proto/resp_internal.h"

/* "<type><n>\r\n" into reserved room; n may be negative only for nils. */
static void put_header(buf *b, char type, int64_t n)
{
    /* By hand rather than snprintf: a load generator writes millions. */
    char tmp[24];
    char *e = tmp + sizeof tmp, *d = e;
    uint64_t u = n < 0 ? 0 - (uint64_t)n : (uint64_t)n;
    do {
        *--d = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (n < 0)
        *--d = '-';
    uint8_t *o = b->data + b->len;
    *o++ = (uint8_t)type;
    memcpy(o, d, (size_t)(e - d));
    o += e - d;
    *o++ = '\r';
    *o++ = '\n';
    b->len = (size_t)(o - b->data);
}

static void put_crlf(buf *b)
{
    b->data[b->len++] = '\r';
    b->data[b->len++] = '\n';
}

/* A line-typed element cannot carry CR or LF: Redis replaces them by
 * spaces rather than failing, and so do we. */
static void put_line_bytes(buf *b, const char *s, size_t n)
{
    uint8_t *o = b->data + b->len;
    for (size_t i = 0; i < n; i++)
        o[i] = s[i] == '\r' || s[i] == '\n' ? ' ' : (uint8_t)s[i];
    b->len += n;
}

int resp_write_simple(buf *b, const char *s)
{
    size_t n = strlen(s);
    int rc = buf_reserve(b, n + 3);
    if (rc != 0)
        return rc;
    b->data[b->len++] = '+';
    put_line_bytes(b, s, n);
    put_crlf(b);
    return 0;
}

static int write_errorv(buf *b, const char *word, const char *fmt, va_list ap)
{
    size_t wn = strlen(word);
    int mn = 0;
    if (fmt != NULL) {
        va_list cp;
        va_copy(cp, ap);
        mn = vsnprintf(NULL, 0, fmt, cp);
        va_end(cp);
        if (mn < 0)
            return CAIRN_ERR_INVALID;
    }
    /* '-', word, ' ', message, and vsnprintf's NUL where "\r\n" goes */
    int rc = buf_reserve(b, wn + (size_t)mn + 4);
    if (rc != 0)
        return rc;
    b->data[b->len++] = '-';
    put_line_bytes(b, word, wn);
    if (fmt != NULL && mn > 0) {
        b->data[b->len++] = ' ';
        char *m = (char *)b->data + b->len;
        vsnprintf(m, (size_t)mn + 1, fmt, ap);
        put_line_bytes(b, m, (size_t)mn); /* in place */
    }
    put_crlf(b);
    return 0;
}

int resp_write_error(buf *b, const char *word, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = write_errorv(b, word, fmt, ap);
    va_end(ap);
    return rc;
}

int resp_write_err(buf *b, int code, const char *fmt, ...)
{
    const char *word = cairn_err_word(code);
    if (fmt == NULL)
        return resp_write_error(b, word, "%s", cairn_err_message(code));
    va_list ap;
    va_start(ap, fmt);
    int rc = write_errorv(b, word, fmt, ap);
    va_end(ap);
    return rc;
}

int resp_write_proto_error(buf *b, const resp_parser *p)
{
    return resp_write_error(b, "ERR", "%s", resp_parser_errmsg(p));
}

int resp_write_int(buf *b, int64_t v)
{
    int rc = buf_reserve(b, RESP_NUM_LINE_MAX);
    if (rc != 0)
        return rc;
    put_header(b, ':', v);
    return 0;
}

int resp_write_bulk(buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n + RESP_NUM_LINE_MAX);
    if (rc != 0)
        return rc;
    put_header(b, '$', (int64_t)n);
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    put_crlf(b);
    return 0;
}

int resp_write_bulk_str(buf *b, const char *s)
{
    return resp_write_bulk(b, s, strlen(s));
}

int resp_write_nil(buf *b)
{
    return buf_append(b, "$-1\r\n", 5);
}

int resp_write_array(buf *b, size_t n)
{
    int rc = buf_reserve(b, RESP_NUM_LINE_MAX);
    if (rc != 0)
        return rc;
    put_header(b, '*', (int64_t)n);
    return 0;
}

int resp_write_nil_array(buf *b)
{
    return buf_append(b, "*-1\r\n", 5);
}

/* Bytes resp_write_bulk needs for n payload bytes, at most. */
static size_t bulk_room(size_t n)
{
    return n + RESP_NUM_LINE_MAX;
}

int resp_write_command(buf *b, size_t argc, const char *const *argv,
                       const size_t *argvlen)
{
    size_t need = RESP_NUM_LINE_MAX;
    for (size_t i = 0; i < argc; i++)
        need += bulk_room(argvlen ? argvlen[i] : strlen(argv[i]));
    int rc = buf_reserve(b, need);
    if (rc != 0)
        return rc;
    put_header(b, '*', (int64_t)argc);
    for (size_t i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        resp_write_bulk(b, argv[i], n); /* cannot fail: room reserved */
    }
    return 0;
}

int resp_write_command_args(buf *b, size_t argc, const resp_arg *argv)
{
    size_t need = RESP_NUM_LINE_MAX;
    for (size_t i = 0; i < argc; i++)
        need += bulk_room(argv[i].len);
    int rc = buf_reserve(b, need);
    if (rc != 0)
        return rc;
    put_header(b, '*', (int64_t)argc);
    for (size_t i = 0; i < argc; i++)
        resp_write_bulk(b, argv[i].p, argv[i].len);
    return 0;
}
