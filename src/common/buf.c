#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

int buf_reserve(buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t need = b->len + extra;
    if (need < b->len)
        return CAIRN_ERR_NOMEM; /* overflow */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap * 2 > cap ? cap * 2 : need;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return CAIRN_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = buf_reserve(b, n);
    if (rc != 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_append_str(buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_append_json_str(buf *b, const char *s)
{
    int rc = buf_append(b, "\"", 1);
    for (; rc == 0 && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            rc = buf_appendf(b, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            rc = buf_appendf(b, "\\u%04x", ch);
        else
            rc = buf_append(b, s, 1);
    }
    return rc ? rc : buf_append(b, "\"", 1);
}

int buf_appendf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CAIRN_ERR_INVALID;
    int rc = buf_reserve(b, (size_t)n + 1);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_append_u8(buf *b, uint8_t v) { return buf_append(b, &v, 1); }

int buf_append_u16(buf *b, uint16_t v)
{
    uint8_t t[2];
    be_put_u16(t, v);
    return buf_append(b, t, sizeof t);
}

int buf_append_u32(buf *b, uint32_t v)
{
    uint8_t t[4];
    be_put_u32(t, v);
    return buf_append(b, t, sizeof t);
}

int buf_append_u64(buf *b, uint64_t v)
{
    uint8_t t[8];
    be_put_u64(t, v);
    return buf_append(b, t, sizeof t);
}

void buf_consume(buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
