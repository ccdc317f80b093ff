/*
 * workload.c - workload mixes and key choice of workload.h.
 */
#include "workload.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

static const char *const op_names[BENCH_OP_COUNT_] = {"READ", "UPDATE",
                                                      "INSERT", "SCAN"};

const char *bench_op_name(bench_op op)
{
    return (unsigned)op < BENCH_OP_COUNT_ ? op_names[op] : "?";
}

/* read, update, insert, scan */
static const bench_mix mixes[] = {
    {'A', {500, 500, 0, 0}}, {'B', {950, 50, 0, 0}},
    {'C', {1000, 0, 0, 0}},  {'W', {0, 1000, 0, 0}},
    {'E', {0, 0, 50, 950}},  {'S', {0, 0, 0, 1000}},
};

int bench_mix_get(const char *name, bench_mix *out)
{
    if (!name || strlen(name) != 1)
        return CAIRN_ERR_INVALID;
    char c = (char)toupper((unsigned char)name[0]);
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++) {
        if (mixes[i].name == c) {
            *out = mixes[i];
            return CAIRN_OK;
        }
    }
    return CAIRN_ERR_INVALID;
}

bench_op bench_mix_pick(const bench_mix *m, bench_rng *r)
{
    unsigned x = (unsigned)bench_rng_below(r, 1000);
    for (int op = 0; op < BENCH_OP_COUNT_; op++) {
        if (x < m->permille[op])
            return (bench_op)op;
        x -= m->permille[op];
    }
    return BENCH_OP_READ; /* unreachable when the mix sums to 1000 */
}

size_t bench_key_format(char *out, uint64_t i)
{
    snprintf(out, BENCH_KEY_LEN + 1, BENCH_KEY_PREFIX "%012llu",
             (unsigned long long)(i % 1000000000000ull));
    return BENCH_KEY_LEN;
}

int bench_keys_init(bench_keys *k, uint64_t records, bool zipfian)
{
    if (records < 1)
        return CAIRN_ERR_INVALID;
    k->records = records;
    k->next_insert = records;
    k->zipfian = zipfian;
    if (zipfian)
        return bench_zipf_init(&k->zipf, records, BENCH_ZIPF_THETA);
    return CAIRN_OK;
}

uint64_t bench_keys_pick(const bench_keys *k, bench_rng *r)
{
    if (k->zipfian)
        return bench_zipf_next(&k->zipf, r);
    return bench_rng_below(r, k->records);
}

uint64_t bench_keys_insert(bench_keys *k)
{
    return k->next_insert++;
}
