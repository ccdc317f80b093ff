/*
 * grow.c - growable arrays (grow.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/grow.h"

int grow_array(void **v, size_t n, size_t *cap, size_t size, size_t first)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : first;
    if (ncap <= n || ncap > SIZE_MAX / size)
        return CAIRN_ERR_NOMEM;
    void *p = realloc(*v, ncap * size);
    if (p == NULL)
        return CAIRN_ERR_NOMEM;
    *v = p;
    *cap = ncap;
    return 0;
}
