/*
 * cursor.h - the opaque pagination cursor of KV.SCAN.
 *
 * A KV.SCAN page ends with a cursor that names where the next page starts:
 * the table id and the first key not yet returned. Clients must treat it as
 * opaque text (docs/API.md); the router validates it on input, so a cursor
 * of another table, a truncated or edited cursor, or random text is refused
 * with CAIRN_ERR_INVALID instead of silently scanning from somewhere else.
 *
 * Text form: "c1" (format version) + lower-case hex of
 *     table id (8 bytes, big-endian) | key | check (4 bytes, FNV-1a of both)
 * Hex keeps the cursor printable in redis-cli and safe in any client.
 */
#ifndef CAIRN_ROUTER_CURSOR_H
#define CAIRN_ROUTER_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/limits.h"

/* Longest cursor text: "c1" + hex(8 + CAIRN_KEY_MAX + 4). */
#define ROUTER_CURSOR_MAX (2 + 2 * (8 + CAIRN_KEY_MAX + 4))

typedef struct router_cursor {
    uint64_t table_id;
    size_t key_len; /* 1..CAIRN_KEY_MAX */
    uint8_t key[CAIRN_KEY_MAX];
} router_cursor;

/* Append the text of the cursor (table_id, key) to `out`. The key must be
 * 1..CAIRN_KEY_MAX bytes (CAIRN_ERR_INVALID otherwise). 0 or an error. */
int router_cursor_encode(uint64_t table_id, const uint8_t *key,
                         size_t key_len, buf *out);

/* Parse cursor text. Anything that is not exactly what router_cursor_encode
 * produced (version, hex, length, key limits, check) is CAIRN_ERR_INVALID;
 * the caller still compares `table_id` with the table being scanned. */
int router_cursor_decode(const uint8_t *text, size_t len, router_cursor *out);

#endif
