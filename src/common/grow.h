/*
 * grow.h - growable arrays.
 *
 * Most of cairn's tables in memory (a node's ranges, the metadata map, a
 * router's routing cache, a write batch's ranges and operations) are plain
 * arrays with a count and a capacity. They all grow the same way: the
 * capacity doubles, so n appends cost O(n) copies in total.
 */
#ifndef CAIRN_GROW_H
#define CAIRN_GROW_H

#include <stddef.h>

/* Make room for one more element in the array `*v` of `size`-byte
 * elements, `n` of them in use, capacity `*cap`: when full, the capacity
 * doubles (starting at `first`). `v` is the address of the array's
 * pointer, passed as (void **)&p. 0, or CAIRN_ERR_NOMEM with the array
 * and *cap unchanged. */
int grow_array(void **v, size_t n, size_t *cap, size_t size, size_t first);

#endif
