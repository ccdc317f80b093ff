#include "cursor.h"

#include <string.h>

#include "common/err.h"

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t cursor_check(const uint8_t id[8], const uint8_t *key,
                             size_t key_len)
{
    return fnv1a(fnv1a(2166136261u, id, 8), key, key_len);
}

static int append_hex(buf *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    int rc = buf_reserve(out, 2 * n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        out->data[out->len++] = (uint8_t)digits[p[i] >> 4];
        out->data[out->len++] = (uint8_t)digits[p[i] & 15];
    }
    return 0;
}

static int hex_val(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case is not what we emit: refuse it */
}

int router_cursor_encode(uint64_t table_id, const uint8_t *key,
                         size_t key_len, buf *out)
{
    if (key_len < CAIRN_KEY_MIN || key_len > CAIRN_KEY_MAX)
        return CAIRN_ERR_INVALID;
    uint8_t id[8], check[4];
    be_put_u64(id, table_id);
    be_put_u32(check, cursor_check(id, key, key_len));
    size_t old = out->len;
    int rc = buf_append(out, "c1", 2);
    if (rc == 0)
        rc = append_hex(out, id, 8);
    if (rc == 0)
        rc = append_hex(out, key, key_len);
    if (rc == 0)
        rc = append_hex(out, check, 4);
    if (rc != 0)
        out->len = old;
    return rc;
}

int router_cursor_decode(const uint8_t *text, size_t len, router_cursor *out)
{
    if (len < 2 || len > ROUTER_CURSOR_MAX || len % 2 != 0 ||
        memcmp(text, "c1", 2) != 0)
        return CAIRN_ERR_INVALID;
    uint8_t raw[(ROUTER_CURSOR_MAX - 2) / 2];
    size_t n = (len - 2) / 2;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val(text[2 + 2 * i]), lo = hex_val(text[3 + 2 * i]);
        if (hi < 0 || lo < 0)
            return CAIRN_ERR_INVALID;
        raw[i] = (uint8_t)(hi << 4 | lo);
    }
    if (n < 8 + CAIRN_KEY_MIN + 4)
        return CAIRN_ERR_INVALID;
    size_t key_len = n - 12;
    if (be_get_u32(raw + 8 + key_len) != cursor_check(raw, raw + 8, key_len))
        return CAIRN_ERR_INVALID;
    out->table_id = be_get_u64(raw);
    out->key_len = key_len;
    memcpy(out->key, raw + 8, key_len);
    return 0;
}
