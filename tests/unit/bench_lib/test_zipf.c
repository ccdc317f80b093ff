/*
 * test_zipf.c - the PRNG and the (scrambled) zipfian generator of
 * bench/lib/zipf.h: ranges, the exact probabilities of ranks 0 and 1, the
 * rank^-theta shape, and the workload mixes built on them.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../bench/lib/workload.h"
#include "../../../bench/lib/zipf.h"
#include "common/err.h"

#define DRAWS 1000000

/* |observed - expected| within 5 standard deviations of a binomial count:
 * false alarms are practically impossible, real errors of 1 % are not. */
static void assert_binomial(uint64_t observed, double p, double n)
{
    double mean = p * n, sd = sqrt(n * p * (1 - p));
    assert_true(fabs((double)observed - mean) <= 5 * sd + 1);
}

/* Rule 1. */
static void test_rng_ranges_and_determinism(void **state)
{
    (void)state;
    bench_rng a, b;
    bench_rng_seed(&a, 42);
    bench_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++)
        assert_true(bench_rng_next(&a) == bench_rng_next(&b));
    bench_rng_seed(&b, 43);
    assert_true(bench_rng_next(&a) != bench_rng_next(&b));
    bench_rng_seed(&a, 0); /* zero seed still makes a working generator */
    uint64_t counts[10] = {0};
    for (int i = 0; i < DRAWS; i++) {
        double d = bench_rng_double(&a);
        assert_true(d >= 0.0 && d < 1.0);
        uint64_t x = bench_rng_below(&a, 10);
        assert_true(x < 10);
        counts[x]++;
    }
    for (int i = 0; i < 10; i++)
        assert_binomial(counts[i], 0.1, DRAWS);
}

static void test_zeta(void **state)
{
    (void)state;
    assert_true(fabs(bench_zipf_zeta(1, 0.99) - 1.0) < 1e-12);
    assert_true(fabs(bench_zipf_zeta(2, 0.5) - (1.0 + 1.0 / sqrt(2.0))) <
                1e-12);
    bench_zipf z;
    assert_int_equal(bench_zipf_init(&z, 0, 0.99), CAIRN_ERR_INVALID);
    assert_int_equal(bench_zipf_init(&z, 10, 1.0), CAIRN_ERR_INVALID);
    assert_int_equal(bench_zipf_init(&z, 10, 0.0), CAIRN_ERR_INVALID);
}

/* Rule 2: ranks 0 and 1 exactly; the rest fall as rank^-theta. */
static void test_rank_distribution(void **state)
{
    (void)state;
    const uint64_t n = 1000;
    bench_zipf z;
    assert_int_equal(bench_zipf_init(&z, n, BENCH_ZIPF_THETA), 0);
    uint64_t *counts = calloc(n, sizeof *counts);
    bench_rng r;
    bench_rng_seed(&r, 7);
    for (int i = 0; i < DRAWS; i++) {
        uint64_t k = bench_zipf_rank(&z, &r);
        assert_true(k < n);
        counts[k]++;
    }
    double zn = bench_zipf_zeta(n, BENCH_ZIPF_THETA);
    assert_binomial(counts[0], 1.0 / zn, DRAWS);
    assert_binomial(counts[1], pow(2, -BENCH_ZIPF_THETA) / zn, DRAWS);
    /* Shape: the mass of ranks [10, 100) over that of [100, 1000) is close
     * to what the exact zipf law gives (Gray's approximation is within a
     * few per cent of it). */
    double mid = 0, tail = 0, emid = 0, etail = 0;
    for (uint64_t i = 10; i < n; i++) {
        double e = pow((double)(i + 1), -BENCH_ZIPF_THETA);
        if (i < 100) {
            mid += (double)counts[i];
            emid += e;
        } else {
            tail += (double)counts[i];
            etail += e;
        }
    }
    double ratio = (mid / tail) / (emid / etail);
    assert_true(ratio > 0.9 && ratio < 1.1);
    /* And popularity really falls: rank 0 beats rank 10 beats rank 500. */
    assert_true(counts[0] > 5 * counts[10]);
    assert_true(counts[10] > 5 * counts[500]);
    free(counts);
}

/* Rule 3: scrambled items stay in range; the hottest item is about as hot
 * as rank 0 (hash collisions can only add to it), and it is not item 0. */
static void test_scrambled(void **state)
{
    (void)state;
    const uint64_t n = 1000;
    bench_zipf z;
    assert_int_equal(bench_zipf_init(&z, n, BENCH_ZIPF_THETA), 0);
    uint64_t *counts = calloc(n, sizeof *counts);
    bench_rng r;
    bench_rng_seed(&r, 9);
    for (int i = 0; i < DRAWS; i++) {
        uint64_t k = bench_zipf_next(&z, &r);
        assert_true(k < n);
        counts[k]++;
    }
    uint64_t hot = bench_fnv64(0) % n;
    uint64_t best = 0;
    for (uint64_t i = 0; i < n; i++)
        if (counts[i] > counts[best])
            best = i;
    assert_int_equal(best, hot);
    double p0 = 1.0 / bench_zipf_zeta(n, BENCH_ZIPF_THETA);
    assert_true((double)counts[hot] >= p0 * DRAWS * 0.97);
    assert_true((double)counts[hot] <= p0 * DRAWS * 1.15);
    free(counts);
}

static void test_tiny_n(void **state)
{
    (void)state;
    bench_zipf z;
    bench_rng r;
    bench_rng_seed(&r, 1);
    assert_int_equal(bench_zipf_init(&z, 1, BENCH_ZIPF_THETA), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(bench_zipf_next(&z, &r), 0);
    assert_int_equal(bench_zipf_init(&z, 2, BENCH_ZIPF_THETA), 0);
    for (int i = 0; i < 1000; i++)
        assert_true(bench_zipf_rank(&z, &r) < 2);
}

/* The workload mixes draw operations in their stated proportions. */
static void test_mixes(void **state)
{
    (void)state;
    bench_mix m;
    assert_int_equal(bench_mix_get("Q", &m), CAIRN_ERR_INVALID);
    assert_int_equal(bench_mix_get("AB", &m), CAIRN_ERR_INVALID);
    const char *names[] = {"a", "B", "C", "W", "e", "S"};
    bench_rng r;
    bench_rng_seed(&r, 3);
    for (size_t w = 0; w < 6; w++) {
        assert_int_equal(bench_mix_get(names[w], &m), 0);
        uint64_t counts[BENCH_OP_COUNT_] = {0};
        for (int i = 0; i < 100000; i++)
            counts[bench_mix_pick(&m, &r)]++;
        for (int op = 0; op < BENCH_OP_COUNT_; op++) {
            double p = m.permille[op] / 1000.0;
            if (p == 0)
                assert_int_equal(counts[op], 0);
            else
                assert_binomial(counts[op], p, 100000);
        }
    }
    assert_string_equal(bench_op_name(BENCH_OP_SCAN), "SCAN");
}

static void test_keys(void **state)
{
    (void)state;
    char k[BENCH_KEY_LEN + 1];
    assert_int_equal(bench_key_format(k, 42), BENCH_KEY_LEN);
    assert_string_equal(k, "user000000000042");
    char k2[BENCH_KEY_LEN + 1];
    bench_key_format(k2, 1000);
    assert_true(strcmp(k, k2) < 0); /* key order is record order */
    bench_keys keys;
    assert_int_equal(bench_keys_init(&keys, 0, false), CAIRN_ERR_INVALID);
    assert_int_equal(bench_keys_init(&keys, 100, true), 0);
    assert_int_equal(bench_keys_insert(&keys), 100);
    assert_int_equal(bench_keys_insert(&keys), 101);
    bench_rng r;
    bench_rng_seed(&r, 5);
    for (int i = 0; i < 10000; i++)
        assert_true(bench_keys_pick(&keys, &r) < 100);
    assert_int_equal(bench_keys_init(&keys, 100, false), 0);
    for (int i = 0; i < 10000; i++)
        assert_true(bench_keys_pick(&keys, &r) < 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_ranges_and_determinism),
        cmocka_unit_test(test_zeta),
        cmocka_unit_test(test_rank_distribution),
        cmocka_unit_test(test_scrambled),
        cmocka_unit_test(test_tiny_n),
        cmocka_unit_test(test_mixes),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
