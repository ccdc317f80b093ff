/*
 * test_hist.c - the latency histogram of bench/lib/hist.h against known
 * distributions: exact answers within the header's stated precision.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../../bench/lib/hist.h"

/* Rule 2: a reported value is within 1/128 of the true one, and rule 3: it
 * is at or above the true one (highest equivalent value). */
static void assert_close(uint64_t got, uint64_t want)
{
    assert_true(got >= want);
    assert_true((double)(got - want) <= (double)want / 128.0 + 0.5);
}

static void test_empty(void **state)
{
    (void)state;
    bench_hist *h = bench_hist_new();
    assert_non_null(h);
    assert_int_equal(bench_hist_count(h), 0);
    assert_int_equal(bench_hist_percentile(h, 50), 0);
    assert_int_equal(bench_hist_max(h), 0);
    assert_true(bench_hist_mean(h) == 0.0);
    bench_hist_free(h);
}

/* Below 256 us every value is its own bucket (rule 1). */
static void test_small_values_exact(void **state)
{
    (void)state;
    bench_hist *h = bench_hist_new();
    for (uint64_t v = 1; v <= 200; v++)
        bench_hist_record(h, v);
    assert_int_equal(bench_hist_count(h), 200);
    assert_int_equal(bench_hist_min(h), 1);
    assert_int_equal(bench_hist_max(h), 200);
    assert_int_equal(bench_hist_percentile(h, 50), 100);
    assert_int_equal(bench_hist_percentile(h, 95), 190);
    assert_int_equal(bench_hist_percentile(h, 99), 198);
    assert_int_equal(bench_hist_percentile(h, 100), 200);
    assert_int_equal(bench_hist_percentile(h, 0), 1);
    assert_true(bench_hist_mean(h) == 100.5);
    bench_hist_free(h);
}

/* Uniform 1..100000 us: the p-th percentile is p * 1000 exactly. */
static void test_uniform_large(void **state)
{
    (void)state;
    bench_hist *h = bench_hist_new();
    for (uint64_t v = 1; v <= 100000; v++)
        bench_hist_record(h, v);
    assert_close(bench_hist_percentile(h, 50), 50000);
    assert_close(bench_hist_percentile(h, 95), 95000);
    assert_close(bench_hist_percentile(h, 99), 99000);
    assert_close(bench_hist_percentile(h, 99.9), 99900);
    assert_int_equal(bench_hist_percentile(h, 100), 100000);
    assert_int_equal(bench_hist_max(h), 100000);
    assert_true(bench_hist_mean(h) == 50000.5);
    bench_hist_free(h);
}

/* 999 fast operations and one slow one: the tail shows only at p99.9+. */
static void test_single_outlier(void **state)
{
    (void)state;
    bench_hist *h = bench_hist_new();
    for (int i = 0; i < 999; i++)
        bench_hist_record(h, 1000);
    bench_hist_record(h, 5000000);
    assert_close(bench_hist_percentile(h, 50), 1000);
    assert_close(bench_hist_percentile(h, 99), 1000);
    assert_close(bench_hist_percentile(h, 99.9), 1000);
    assert_int_equal(bench_hist_percentile(h, 99.99), 5000000);
    assert_int_equal(bench_hist_max(h), 5000000);
    bench_hist_free(h);
}

/* Powers of two across the whole range: each lands within precision. */
static void test_every_octave(void **state)
{
    (void)state;
    for (uint64_t v = 1; v <= BENCH_HIST_MAX_US; v = v * 3 + 1) {
        bench_hist *h = bench_hist_new();
        bench_hist_record(h, v);
        bench_hist_record(h, v + 1);
        /* rank 1 of 2 is v */
        assert_close(bench_hist_percentile(h, 50), v);
        assert_int_equal(bench_hist_percentile(h, 100), v + 1);
        bench_hist_free(h);
    }
}

static void test_clamp_above_max(void **state)
{
    (void)state;
    bench_hist *h = bench_hist_new();
    bench_hist_record(h, BENCH_HIST_MAX_US * 10);
    assert_int_equal(bench_hist_max(h), BENCH_HIST_MAX_US);
    assert_int_equal(bench_hist_percentile(h, 99), BENCH_HIST_MAX_US);
    bench_hist_free(h);
}

/* Merging two halves equals recording everything in one. */
static void test_merge(void **state)
{
    (void)state;
    bench_hist *a = bench_hist_new(), *b = bench_hist_new();
    bench_hist *all = bench_hist_new();
    for (uint64_t v = 1; v <= 20000; v++) {
        bench_hist_record(v % 2 ? a : b, v * 7);
        bench_hist_record(all, v * 7);
    }
    bench_hist *empty = bench_hist_new();
    bench_hist_merge(a, empty);
    bench_hist_merge(empty, b);
    assert_int_equal(bench_hist_min(empty), 14);
    bench_hist_merge(a, b);
    assert_int_equal(bench_hist_count(a), 20000);
    assert_int_equal(bench_hist_min(a), 7);
    assert_int_equal(bench_hist_max(a), 140000);
    double ps[] = {50, 95, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        assert_int_equal(bench_hist_percentile(a, ps[i]),
                         bench_hist_percentile(all, ps[i]));
    assert_true(bench_hist_mean(a) == bench_hist_mean(all));
    bench_hist_reset(a);
    assert_int_equal(bench_hist_count(a), 0);
    bench_hist_free(a);
    bench_hist_free(b);
    bench_hist_free(all);
    bench_hist_free(empty);
}

/* A two-level distribution like a real server: 90 % at 200 us, 9 % at
 * 2 ms, 1 % at 30 ms. */
static void test_bimodal(void **state)
{
    (void)state;
    bench_hist *h = bench_hist_new();
    for (int i = 0; i < 10000; i++)
        bench_hist_record(h, i < 9000 ? 200 : i < 9900 ? 2000 : 30000);
    assert_int_equal(bench_hist_percentile(h, 50), 200);
    assert_int_equal(bench_hist_percentile(h, 90), 200);
    assert_close(bench_hist_percentile(h, 95), 2000);
    assert_close(bench_hist_percentile(h, 99), 2000);
    assert_int_equal(bench_hist_percentile(h, 99.9), 30000);
    bench_hist_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_uniform_large),
        cmocka_unit_test(test_single_outlier),
        cmocka_unit_test(test_every_octave),
        cmocka_unit_test(test_clamp_above_max),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_bimodal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
