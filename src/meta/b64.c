/* b64.c - see b64.h. */
#include "meta/b64.h"

#include <stdlib.h>

#include "common/err.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t meta_b64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }

int meta_b64_encode(buf *out, const void *p, size_t n)
{
    const uint8_t *s = p;
    size_t need = meta_b64_encoded_len(n) + 1;
    if (buf_reserve(out, need) != 0)
        return CAIRN_ERR_NOMEM;
    char *d = (char *)out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *d++ = b64_alphabet[v >> 18];
        *d++ = b64_alphabet[(v >> 12) & 63];
        *d++ = b64_alphabet[(v >> 6) & 63];
        *d++ = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        *d++ = b64_alphabet[v >> 18];
        *d++ = b64_alphabet[(v >> 12) & 63];
        *d++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        *d++ = '=';
    }
    *d = '\0';
    out->len += need - 1;
    return CAIRN_OK;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int meta_b64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len)
{
    while (len > 0 && s[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return CAIRN_ERR_CORRUPT;
    uint8_t *d = malloc(len / 4 * 3 + 3);
    if (!d)
        return CAIRN_ERR_NOMEM;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(s[i]);
        if (v < 0) {
            free(d);
            return CAIRN_ERR_CORRUPT;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* Canonical input leaves only zero bits behind. */
    if (acc & ((1u << bits) - 1)) {
        free(d);
        return CAIRN_ERR_CORRUPT;
    }
    d[n] = '\0';
    *out = d;
    *out_len = n;
    return CAIRN_OK;
}
