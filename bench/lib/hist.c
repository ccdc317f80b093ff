/*
 * hist.c - the log-bucketed histogram of hist.h.
 *
 * Layout: indexes 0..255 count values 0..255 exactly. A value v >= 256 has
 * its highest set bit at position b >= 8; with shift s = b - 7, v >> s lies
 * in [128, 256), and the value goes to index 256 + (s - 1) * 128 +
 * ((v >> s) - 128). So each power-of-two octave above 256 has 128 buckets,
 * each 2^s wide: the relative width is at most 1/128 (hist.h, rule 2).
 */
#include "hist.h"

#include <stdlib.h>
#include <string.h>

#define SUB_HALF 128u
#define EXACT_LIMIT 256u

/* Octaves above the exact part needed to reach BENCH_HIST_MAX_US: 2^26 >
 * 60e6, so shifts 1..18 cover it. */
#define MAX_SHIFT 18u
#define NBUCKETS (EXACT_LIMIT + MAX_SHIFT * SUB_HALF)

struct bench_hist {
    uint64_t counts[NBUCKETS];
    uint64_t total;
    uint64_t min;
    uint64_t max;
    double sum;
};

static unsigned msb(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

static size_t index_of(uint64_t v)
{
    if (v < EXACT_LIMIT)
        return (size_t)v;
    unsigned s = msb(v) - 7u;
    return EXACT_LIMIT + (s - 1u) * SUB_HALF + (size_t)((v >> s) - SUB_HALF);
}

/* The largest value that lands in bucket `i` (HdrHistogram's "highest
 * equivalent value"). */
static uint64_t highest_of(size_t i)
{
    if (i < EXACT_LIMIT)
        return i;
    size_t rel = i - EXACT_LIMIT;
    unsigned s = (unsigned)(rel / SUB_HALF) + 1u;
    uint64_t sub = SUB_HALF + rel % SUB_HALF;
    return ((sub + 1) << s) - 1;
}

bench_hist *bench_hist_new(void)
{
    bench_hist *h = calloc(1, sizeof *h);
    return h;
}

void bench_hist_free(bench_hist *h)
{
    free(h);
}

void bench_hist_reset(bench_hist *h)
{
    memset(h, 0, sizeof *h);
}

void bench_hist_record(bench_hist *h, uint64_t us)
{
    if (us > BENCH_HIST_MAX_US)
        us = BENCH_HIST_MAX_US;
    h->counts[index_of(us)]++;
    if (h->total == 0 || us < h->min)
        h->min = us;
    if (us > h->max)
        h->max = us;
    h->total++;
    h->sum += (double)us;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    if (src->total == 0)
        return;
    for (size_t i = 0; i < NBUCKETS; i++)
        dst->counts[i] += src->counts[i];
    if (dst->total == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->total += src->total;
    dst->sum += src->sum;
}

uint64_t bench_hist_count(const bench_hist *h)
{
    return h->total;
}

uint64_t bench_hist_min(const bench_hist *h)
{
    return h->min;
}

uint64_t bench_hist_max(const bench_hist *h)
{
    return h->max;
}

double bench_hist_mean(const bench_hist *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}

uint64_t bench_hist_percentile(const bench_hist *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    /* Rank by rule 3: ceil(p/100 * count), at least 1. The small epsilon
     * keeps 99.9 % of 1000 at rank 999, not 1000, despite rounding. */
    double want = p / 100.0 * (double)h->total - 1e-9;
    uint64_t rank = 1;
    if (want > 1.0) {
        rank = (uint64_t)want;
        if ((double)rank < want)
            rank++;
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = highest_of(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
