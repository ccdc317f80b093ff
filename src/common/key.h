/*
 * key.h - the one order of keys.
 *
 * Keys are byte strings ordered as memcmp orders them, a key before every
 * longer key it is a prefix of. The index stores keep keys in this order
 * (LMDB's default comparison, RocksDB's bytewise comparator), the metadata
 * splits tables into ranges [start, end) by it, and routers find a key's
 * range and walk scans across ranges by it: all must agree, so there is
 * one comparison.
 */
#ifndef CAIRN_KEY_H
#define CAIRN_KEY_H

#include <stddef.h>
#include <stdint.h>

/* Compare keys `a` and `b`: <0, 0 or >0. An empty key is the smallest; a
 * range bound that means +infinity when empty is the caller's to handle. */
int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
