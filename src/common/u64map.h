/*
 * u64map.h - a hash map from 64-bit ids to pointers.
 *
 * A node looks a range up by id on every request and every Raft message,
 * and hosts up to tens of thousands of them, so the lookup must not be a
 * scan. Open addressing with linear probing; deletions use backward shift
 * (no tombstones), so a map that churns never slows down. Id 0 is reserved
 * (no range, table or node has id 0) and marks an empty slot.
 */
#ifndef CAIRN_U64MAP_H
#define CAIRN_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct u64map {
    uint64_t *keys; /* 0 = empty */
    void **vals;
    size_t cap;     /* a power of two, or 0 */
    size_t n;
} u64map;

#define U64MAP_INIT {NULL, NULL, 0, 0}

/* The value stored under `key`, or NULL. */
void *u64map_get(const u64map *m, uint64_t key);

/* Store `val` (not NULL) under `key` (not 0), replacing any value there.
 * 0, CAIRN_ERR_INVALID (key 0 or val NULL) or CAIRN_ERR_NOMEM (the map is
 * unchanged). The map grows to keep at most half of its slots in use. */
int u64map_put(u64map *m, uint64_t key, void *val);

/* Remove `key`; returns its value, or NULL if it was not there. */
void *u64map_del(u64map *m, uint64_t key);

/* Visit every entry: `i` starts at 0; returns 1 with *key and *val set and
 * `i` advanced, or 0 at the end. The map must not change during a walk. */
int u64map_next(const u64map *m, size_t *i, uint64_t *key, void **val);

void u64map_free(u64map *m);

#endif
