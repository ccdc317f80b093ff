/*
 * buf.h - a growable byte buffer, and big-endian integer helpers.
 *
 * Used for building network messages and index-store records. A `buf` owns
 * its memory; `buf_free` releases it. Appends never fail silently: they
 * return CAIRN_ERR_NOMEM, and the buffer is left as it was.
 */
#ifndef CAIRN_BUF_H
#define CAIRN_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} buf;

#define BUF_INIT {NULL, 0, 0}

/* Make room for at least `extra` more bytes. 0 or CAIRN_ERR_NOMEM. */
int buf_reserve(buf *b, size_t extra);

/* Append `n` bytes. 0 or CAIRN_ERR_NOMEM. */
int buf_append(buf *b, const void *p, size_t n);

/* Append a NUL-terminated string (without the NUL). */
int buf_append_str(buf *b, const char *s);

/* Append `s` as a JSON string: quoted, with '"' and '\\' escaped and
 * control characters as \u00XX (bytes of 0x80 and up pass as they are:
 * UTF-8 stays UTF-8). 0 or CAIRN_ERR_NOMEM. */
int buf_append_json_str(buf *b, const char *s);

/* printf-style append. 0 or CAIRN_ERR_NOMEM. */
int buf_appendf(buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append big-endian integers. */
int buf_append_u8(buf *b, uint8_t v);
int buf_append_u16(buf *b, uint16_t v);
int buf_append_u32(buf *b, uint32_t v);
int buf_append_u64(buf *b, uint64_t v);

/* Drop the first `n` bytes (consumed input), keeping the rest. */
void buf_consume(buf *b, size_t n);

/* Forget the contents, keep the memory. */
static inline void buf_reset(buf *b) { b->len = 0; }

/* Release the memory; the buffer is empty and reusable afterwards. */
void buf_free(buf *b);

/* Big-endian loads and stores on raw memory. */
static inline void be_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void be_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void be_put_u64(uint8_t *p, uint64_t v)
{
    be_put_u32(p, (uint32_t)(v >> 32));
    be_put_u32(p + 4, (uint32_t)v);
}
static inline uint16_t be_get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t be_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline uint64_t be_get_u64(const uint8_t *p)
{
    return ((uint64_t)be_get_u32(p) << 32) | be_get_u32(p + 4);
}

#endif
