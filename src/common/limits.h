/*
 * limits.h - the documented limits of cairn (docs/API.md repeats them).
 *
 * They are enforced where data enters (router, node, index store) with the
 * error codes named beside each; tests cover both sides of every limit.
 */
#ifndef CAIRN_LIMITS_H
#define CAIRN_LIMITS_H

/* Keys are 1..1024 bytes: CAIRN_ERR_KEY_EMPTY, CAIRN_ERR_KEY_TOOBIG. */
#define CAIRN_KEY_MIN 1
#define CAIRN_KEY_MAX 1024

/* Values are 0..1 MiB (1,048,576 bytes): CAIRN_ERR_TOOBIG. The mission puts
 * larger values in a blob store, not here. */
#define CAIRN_VALUE_MAX (1024 * 1024)

/* Table names are 1..128 bytes of [A-Za-z0-9_.-]. */
#define CAIRN_TABLE_NAME_MAX 128

#endif
