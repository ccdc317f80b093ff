/*
 * u64map.c - open-addressing hash map from ids to pointers (u64map.h).
 */
#include "u64map.h"

#include <stdlib.h>

#include "err.h"

/* Ids are often consecutive: mix the bits so they spread over the table
 * (the finaliser of MurmurHash3). */
static size_t slot_of(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

static size_t find(const u64map *m, uint64_t key)
{
    size_t i = slot_of(key, m->cap);
    while (m->keys[i] != 0 && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

void *u64map_get(const u64map *m, uint64_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    size_t i = find(m, key);
    return m->keys[i] == key ? m->vals[i] : NULL;
}

static int resize(u64map *m, size_t cap)
{
    u64map bigger = {calloc(cap, sizeof(uint64_t)), calloc(cap, sizeof(void *)),
                     cap, m->n};
    if (bigger.keys == NULL || bigger.vals == NULL) {
        free(bigger.keys);
        free(bigger.vals);
        return CAIRN_ERR_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == 0)
            continue;
        size_t j = find(&bigger, m->keys[i]);
        bigger.keys[j] = m->keys[i];
        bigger.vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    *m = bigger;
    return 0;
}

int u64map_put(u64map *m, uint64_t key, void *val)
{
    if (key == 0 || val == NULL)
        return CAIRN_ERR_INVALID;
    if ((m->n + 1) * 2 > m->cap &&
        resize(m, m->cap ? m->cap * 2 : 16) != 0)
        return CAIRN_ERR_NOMEM;
    size_t i = find(m, key);
    if (m->keys[i] == 0)
        m->n++;
    m->keys[i] = key;
    m->vals[i] = val;
    return 0;
}

/* Backward-shift deletion: move later members of the probe chain into the
 * hole unless they already sit between their home slot and the hole. */
void *u64map_del(u64map *m, uint64_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    size_t mask = m->cap - 1, hole = find(m, key);
    if (m->keys[hole] != key)
        return NULL;
    void *val = m->vals[hole];
    for (size_t j = (hole + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], m->cap);
        /* j may move to hole iff home is not cyclically in (hole, j] */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->vals[hole] = NULL;
    m->n--;
    return val;
}

int u64map_next(const u64map *m, size_t *i, uint64_t *key, void **val)
{
    for (; *i < m->cap; (*i)++) {
        if (m->keys[*i] != 0) {
            *key = m->keys[*i];
            *val = m->vals[*i];
            (*i)++;
            return 1;
        }
    }
    return 0;
}

void u64map_free(u64map *m)
{
    free(m->keys);
    free(m->vals);
    *m = (u64map)U64MAP_INIT;
}
