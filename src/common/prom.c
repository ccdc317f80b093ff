/* prom.c - the Prometheus text format (prom.h). */
#include "prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const double prom_latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001,
                                      0.0025, 0.005,   0.01,   0.025,
                                      0.05,   0.1,     0.25,   0.5,
                                      1,      2.5,     5,      10};
const size_t prom_latency_bounds_n =
    sizeof prom_latency_bounds / sizeof prom_latency_bounds[0];

int prom_family(buf *b, const char *name, const char *type, const char *help)
{
    return buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                       type);
}

static int sample_head(buf *b, const char *name, const char *labels)
{
    if (labels == NULL || labels[0] == '\0')
        return buf_appendf(b, "%s ", name);
    return buf_appendf(b, "%s{%s} ", name, labels);
}

int prom_u64(buf *b, const char *name, const char *labels, uint64_t v)
{
    int rc = sample_head(b, name, labels);
    return rc ? rc : buf_appendf(b, "%llu\n", (unsigned long long)v);
}

/* The format's spelling of a float: Go's, for the special values. */
static int append_double(buf *b, double v)
{
    if (isnan(v))
        return buf_append_str(b, "NaN");
    if (isinf(v))
        return buf_append_str(b, v > 0 ? "+Inf" : "-Inf");
    return buf_appendf(b, "%.17g", v);
}

int prom_double(buf *b, const char *name, const char *labels, double v)
{
    int rc = sample_head(b, name, labels);
    if (rc == 0)
        rc = append_double(b, v);
    return rc ? rc : buf_append_str(b, "\n");
}

char *prom_labels(char *out, size_t cap, ...)
{
    va_list ap;
    va_start(ap, cap);
    size_t n = 0;
    out[0] = '\0';
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        char one[512];
        size_t m = (size_t)snprintf(one, sizeof one, "%s%s=\"", n ? "," : "",
                                    k);
        for (const char *p = v ? v : ""; *p && m + 3 < sizeof one; p++) {
            if (*p == '\\' || *p == '"') {
                one[m++] = '\\';
                one[m++] = *p;
            } else if (*p == '\n') {
                one[m++] = '\\';
                one[m++] = 'n';
            } else {
                one[m++] = *p;
            }
        }
        one[m++] = '"';
        one[m] = '\0';
        if (n + m + 1 > cap)
            break; /* keep whole labels only */
        memcpy(out + n, one, m + 1);
        n += m;
    }
    va_end(ap);
    return out;
}

static void hist_init(prom_hist *h, const double *bounds, size_t n,
                      double unit)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n = n > PROM_HIST_MAX ? PROM_HIST_MAX : n;
    h->unit = unit;
}

void prom_hist_init_seconds(prom_hist *h, const double *bounds, size_t n)
{
    hist_init(h, bounds, n, 1e-9);
}

void prom_hist_init(prom_hist *h, const double *bounds, size_t n)
{
    hist_init(h, bounds, n, 1.0);
}

void prom_hist_observe_value(prom_hist *h, uint64_t v)
{
    double x = (double)v * h->unit;
    size_t i = 0;
    while (i < h->n && x > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void prom_hist_observe_ns(prom_hist *h, uint64_t ns)
{
    prom_hist_observe_value(h, ns);
}

int prom_hist_write(buf *b, const char *name, const char *labels,
                    const prom_hist *h)
{
    const char *sep = labels && labels[0] ? "," : "";
    const char *lab = labels ? labels : "";
    uint64_t cum = 0;
    int rc = 0;
    /* Buckets are cumulative; the count is their total, read once, so
     * that the page is consistent even while other threads observe. */
    for (size_t i = 0; rc == 0 && i <= h->n; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->n)
            rc = buf_appendf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lab,
                             sep, h->bounds[i], (unsigned long long)cum);
        else
            rc = buf_appendf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name,
                             lab, sep, (unsigned long long)cum);
    }
    char sum_name[256], count_name[256];
    snprintf(sum_name, sizeof sum_name, "%s_sum", name);
    snprintf(count_name, sizeof count_name, "%s_count", name);
    double sum = (double)atomic_load_explicit(&h->sum, memory_order_relaxed) *
                 h->unit;
    if (rc == 0)
        rc = prom_double(b, sum_name, labels, sum);
    if (rc == 0)
        rc = prom_u64(b, count_name, labels, cum);
    return rc;
}
