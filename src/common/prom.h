/*
 * prom.h - writing metrics in the Prometheus text format (version 0.0.4),
 * and a thread-safe histogram.
 *
 * Every process builds its whole /metrics page into a buf on the thread
 * that owns the figures, and hands the finished page to its HTTP server
 * (http/httpd.h): nothing here is shared between threads except the
 * histogram, whose observations may come from any thread.
 *
 * Conventions (https://prometheus.io/docs/practices/naming/): names start
 * with `cairn_`, counters end in `_total`, durations are histograms in
 * seconds named `_seconds`, sizes are in bytes named `_bytes`. Each family
 * is written as its `# HELP` and `# TYPE` lines followed by its samples.
 */
#ifndef CAIRN_PROM_H
#define CAIRN_PROM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The content type of the format. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* `# HELP name help` and `# TYPE name type` ("counter", "gauge",
 * "histogram"). 0 or CAIRN_ERR_NOMEM, as every writer here. */
int prom_family(buf *b, const char *name, const char *type, const char *help);

/* One sample: `name{labels} value`. `labels` is what goes between the
 * braces, already formatted (prom_labels); NULL or "" for none. */
int prom_u64(buf *b, const char *name, const char *labels, uint64_t v);
int prom_double(buf *b, const char *name, const char *labels, double v);

/* Format `k1="v1",k2="v2"` from NULL-terminated name/value pairs into
 * `out` (`cap` bytes), escaping values as the format requires (backslash,
 * double quote, newline). Returns `out`; a label list that does not fit
 * is cut at the last whole label. */
char *prom_labels(char *out, size_t cap, ...);

/* ---- histograms ---------------------------------------------------------
 * Fixed bucket bounds, counted with atomics: observe from any thread,
 * write from another. Values are observed in nanoseconds and written in
 * seconds (for `_seconds` histograms), or observed and written as plain
 * numbers with prom_hist_observe_value (unit 1). */

#define PROM_HIST_MAX 24

typedef struct prom_hist {
    const double *bounds; /* upper bounds, increasing, in output units */
    size_t n;             /* number of bounds (<= PROM_HIST_MAX) */
    double unit;          /* output units per observed unit (1e-9 for ns) */
    _Atomic uint64_t counts[PROM_HIST_MAX + 1]; /* last one: +Inf */
    _Atomic uint64_t sum;                       /* observed units */
} prom_hist;

/* Latency bounds in seconds, 100 us .. 10 s. */
extern const double prom_latency_bounds[];
extern const size_t prom_latency_bounds_n;

/* A histogram of durations observed in nanoseconds, written in seconds. */
void prom_hist_init_seconds(prom_hist *h, const double *bounds, size_t n);

/* A histogram of plain numbers (e.g. entries per batch). */
void prom_hist_init(prom_hist *h, const double *bounds, size_t n);

void prom_hist_observe_ns(prom_hist *h, uint64_t ns);
void prom_hist_observe_value(prom_hist *h, uint64_t v);

/* The samples of one histogram series (`name_bucket`, `name_sum`,
 * `name_count`) with `labels` (NULL: none) and `le` added. Write the
 * family header once before the series of one name. */
int prom_hist_write(buf *b, const char *name, const char *labels,
                    const prom_hist *h);

#endif
