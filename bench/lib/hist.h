/*
 * hist.h - a log-bucketed latency histogram (HdrHistogram-style).
 *
 * `cairn bench` records one latency per operation; at hundreds of thousands
 * of operations a second it cannot keep every sample, and percentiles from a
 * fixed-size histogram are what HdrHistogram made the norm. Debian has no
 * libhdr-histogram, so this is a small one of our own.
 *
 * Values are microseconds, from 0 to BENCH_HIST_MAX_US (60 s); larger values
 * are recorded as BENCH_HIST_MAX_US. Precision (the rule the tests check):
 *  1. Values below 256 us are counted exactly.
 *  2. Above, buckets are 1/128 of a power of two wide, so any value the
 *     histogram reports is within 1/128 (< 0.8 %, i.e. 2 significant
 *     digits) of a value that was recorded.
 *  3. bench_hist_percentile() reports the highest value equivalent to the
 *     bucket holding the rank ceil(p/100 * count), never above the exact
 *     maximum recorded. min, max, count and mean are exact.
 *
 * A histogram is not thread-safe; `cairn bench` runs one loop and merges
 * per-operation histograms only to report.
 */
#ifndef CAIRN_BENCH_HIST_H
#define CAIRN_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_MAX_US (60ull * 1000 * 1000)

typedef struct bench_hist bench_hist;

/* A new, empty histogram; NULL when out of memory. */
bench_hist *bench_hist_new(void);

void bench_hist_free(bench_hist *h);

/* Forget every recorded value. */
void bench_hist_reset(bench_hist *h);

/* Count one value of `us` microseconds (clamped to BENCH_HIST_MAX_US). */
void bench_hist_record(bench_hist *h, uint64_t us);

/* Add every value counted in `src` to `dst` (same layout for all). */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);

uint64_t bench_hist_count(const bench_hist *h);

/* Exact smallest and largest recorded values; 0 when empty. */
uint64_t bench_hist_min(const bench_hist *h);
uint64_t bench_hist_max(const bench_hist *h);

/* Exact arithmetic mean of the recorded (clamped) values; 0 when empty. */
double bench_hist_mean(const bench_hist *h);

/* The value at percentile `p` (0..100) by rule 3; 0 when empty. */
uint64_t bench_hist_percentile(const bench_hist *h, double p);

#endif
