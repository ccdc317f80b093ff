/*
 * zipf.h - random numbers and key choice for `cairn bench`: a small fast
 * PRNG, and YCSB's (scrambled) zipfian generator.
 *
 * YCSB's zipfian follows Gray et al., "Quickly generating billion-record
 * synthetic databases" (SIGMOD 1994): item i (0-based rank) is drawn with
 * probability proportional to 1 / (i + 1)^theta, over n items, in O(1) per
 * draw after an O(n) computation of zeta(n, theta). Ranks 0 and 1 are drawn
 * with their exact probabilities, the rest by Gray's closed-form
 * approximation. YCSB's default theta is 0.99.
 *
 * "Scrambled" (YCSB's ScrambledZipfianGenerator): the rank is hashed
 * (FNV-1a 64) onto [0, n), so the hot items are spread over the key space
 * instead of all sitting at its start - otherwise range partitioning would
 * put every hot key in the first range.
 *
 * Rules the tests check:
 *  1. bench_rng is deterministic for a seed and bench_rng_double() is in
 *     [0, 1); bench_rng_below(n) is in [0, n).
 *  2. bench_zipf_rank() returns rank 0 with probability 1/zeta(n) and rank 1
 *     with probability 2^-theta/zeta(n); frequencies fall as rank^-theta.
 *  3. bench_zipf_next() is bench_zipf_rank() scrambled: always in [0, n).
 */
#ifndef CAIRN_BENCH_ZIPF_H
#define CAIRN_BENCH_ZIPF_H

#include <stdint.h>

/* xorshift64* state; any non-zero seed (0 is replaced). */
typedef struct bench_rng {
    uint64_t s;
} bench_rng;

void bench_rng_seed(bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(bench_rng *r);

/* Uniform in [0, 1) with 53 random bits (rule 1). */
double bench_rng_double(bench_rng *r);

/* Uniform in [0, n) (rule 1); n must be > 0. */
uint64_t bench_rng_below(bench_rng *r, uint64_t n);

#define BENCH_ZIPF_THETA 0.99

typedef struct bench_zipf {
    uint64_t n;
    double theta;
    double alpha;
    double zetan;
    double eta;
    double half_pow_theta; /* 1 + 0.5^theta: the rank-1 threshold */
} bench_zipf;

/* Prepare a generator over `n` items (n >= 1) with exponent `theta` in
 * (0, 1). O(n): computes zeta(n, theta). 0 or CAIRN_ERR_INVALID. */
int bench_zipf_init(bench_zipf *z, uint64_t n, double theta);

/* zeta(n, theta) = sum over i = 1..n of 1 / i^theta. */
double bench_zipf_zeta(uint64_t n, double theta);

/* A zipfian rank in [0, n): rank 0 is the most popular (rule 2). */
uint64_t bench_zipf_rank(const bench_zipf *z, bench_rng *r);

/* A scrambled zipfian item in [0, n) (rule 3). */
uint64_t bench_zipf_next(const bench_zipf *z, bench_rng *r);

/* FNV-1a 64 over the 8 little-endian bytes of `v`: YCSB's scramble. */
uint64_t bench_fnv64(uint64_t v);

#endif
