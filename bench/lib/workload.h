/*
 * workload.h - the YCSB-style workloads of `cairn bench`: which operation
 * comes next, which key it touches, and how keys are spelled.
 *
 * Workloads (YCSB's core workloads, plus W):
 *     A  50 % read, 50 % update        (update heavy)
 *     B  95 % read,  5 % update        (read mostly)
 *     C  100 % read                    (read only)
 *     W  100 % update                  (write only; not in YCSB)
 *     E  95 % scan,  5 % insert        (short ranges)
 *     S  100 % scan of max_scan keys   (scan throughput; not in YCSB)
 * Reads, updates and scan starts pick a loaded record, uniformly or by
 * YCSB's scrambled zipfian (zipf.h); inserts append new records after the
 * loaded ones, so they never overwrite one. Scan lengths are uniform in
 * 1..max_scan, YCSB's default (max 100), except in S: always max_scan.
 *
 * Keys are "user" followed by the record number in 12 zero-padded digits,
 * so key order is record order and a scan from a key returns the records
 * after it.
 */
#ifndef CAIRN_BENCH_WORKLOAD_H
#define CAIRN_BENCH_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zipf.h"

typedef enum bench_op {
    BENCH_OP_READ,
    BENCH_OP_UPDATE,
    BENCH_OP_INSERT,
    BENCH_OP_SCAN,
    BENCH_OP_COUNT_
} bench_op;

/* "READ", "UPDATE", "INSERT", "SCAN". */
const char *bench_op_name(bench_op op);

/* Proportions in per-mille, summing to 1000. */
typedef struct bench_mix {
    char name;
    unsigned permille[BENCH_OP_COUNT_];
} bench_mix;

/* The mix of workload `name` ("A", "b", ...). 0 or CAIRN_ERR_INVALID. */
int bench_mix_get(const char *name, bench_mix *out);

/* The next operation, drawn by the mix's proportions. */
bench_op bench_mix_pick(const bench_mix *m, bench_rng *r);

#define BENCH_KEY_PREFIX "user"
#define BENCH_KEY_LEN 16 /* "user" + 12 digits */

/* Spell record `i` into `out` (at least BENCH_KEY_LEN + 1 bytes).
 * Returns BENCH_KEY_LEN. */
size_t bench_key_format(char *out, uint64_t i);

/* Which record an operation touches. */
typedef struct bench_keys {
    uint64_t records;     /* loaded records: 0 .. records-1 */
    uint64_t next_insert; /* the next record number an insert creates */
    bool zipfian;
    bench_zipf zipf;
} bench_keys;

/* Over `records` (>= 1) loaded records; zipfian or uniform. O(records) for
 * zipfian (zeta). 0 or CAIRN_ERR_INVALID. */
int bench_keys_init(bench_keys *k, uint64_t records, bool zipfian);

/* A loaded record for a read, update or scan start. */
uint64_t bench_keys_pick(const bench_keys *k, bench_rng *r);

/* A new record number for an insert (records, records+1, ...). */
uint64_t bench_keys_insert(bench_keys *k);

#endif
