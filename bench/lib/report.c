/*
 * report.c - text and JSON reports of bench.h.
 */
#include "bench.h"


static const char *phase_name(bench_phase p)
{
    return p == BENCH_PHASE_LOAD ? "load" : "run";
}

static uint64_t total_misses(const bench_result *res)
{
    uint64_t n = 0;
    for (int op = 0; op < BENCH_OP_COUNT_; op++)
        n += res->ops[op].misses;
    return n;
}

static double rate(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0;
}

/* Latencies of every operation type together. */
static bench_hist *merged(const bench_result *res)
{
    bench_hist *all = bench_hist_new();
    if (all)
        for (int op = 0; op < BENCH_OP_COUNT_; op++)
            bench_hist_merge(all, res->ops[op].hist);
    return all;
}

static void text_row(FILE *f, const char *name, const bench_hist *h,
                     uint64_t errors, double secs)
{
    fprintf(f, "  %-7s %10llu %10.0f %8.3f %8.3f %8.3f %8.3f %8.3f %8llu\n",
            name, (unsigned long long)bench_hist_count(h),
            rate(bench_hist_count(h), secs),
            bench_hist_percentile(h, 50) / 1000.0,
            bench_hist_percentile(h, 95) / 1000.0,
            bench_hist_percentile(h, 99) / 1000.0,
            bench_hist_percentile(h, 99.9) / 1000.0,
            bench_hist_max(h) / 1000.0, (unsigned long long)errors);
}

void bench_report_text(FILE *f, const bench_config *cfg,
                       const bench_result *res)
{
    double secs = res->elapsed_s;
    uint64_t errs = bench_result_errors(res);
    double cpu = res->cpu_user_s + res->cpu_sys_s;
    fprintf(f, "%s%s%s: %llu ops in %.2f s = %.0f ops/s, %llu errors%s\n",
            phase_name(res->phase),
            res->phase == BENCH_PHASE_LOAD ? "" : " ",
            res->phase == BENCH_PHASE_LOAD ? "" : res->workload,
            (unsigned long long)res->done, secs, rate(res->done, secs),
            (unsigned long long)errs, res->aborted ? " (ABORTED)" : "");
    fprintf(f, "  target %s:%d, %llu records x %zu B, %u clients, pipeline "
               "%u, %s keys\n",
            cfg->host, cfg->port, (unsigned long long)cfg->records,
            cfg->value_size, cfg->clients, cfg->pipeline,
            cfg->zipfian ? "zipfian" : "uniform");
    fprintf(f, "  client CPU %.2f s user + %.2f s sys = %.0f %% of one core\n",
            res->cpu_user_s, res->cpu_sys_s,
            secs > 0 ? 100.0 * cpu / secs : 0.0);
    fprintf(f, "  %-7s %10s %10s %8s %8s %8s %8s %8s %8s\n", "op", "count",
            "ops/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms",
            "errors");
    uint64_t op_errs = 0;
    for (int op = 0; op < BENCH_OP_COUNT_; op++) {
        const bench_op_stats *s = &res->ops[op];
        op_errs += s->errors;
        if (bench_hist_count(s->hist) || s->errors)
            text_row(f, bench_op_name((bench_op)op), s->hist, s->errors,
                     secs);
    }
    bench_hist *all = merged(res);
    if (all)
        text_row(f, "TOTAL", all, op_errs, secs);
    bench_hist_free(all);
    if (total_misses(res))
        fprintf(f, "  reads of loaded keys that found nothing: %llu\n",
                (unsigned long long)total_misses(res));
    if (res->ops[BENCH_OP_SCAN].items)
        fprintf(f, "  keys scanned: %llu = %.0f keys/s\n",
                (unsigned long long)res->ops[BENCH_OP_SCAN].items,
                rate(res->ops[BENCH_OP_SCAN].items, secs));
    if (res->n_err_words) {
        fprintf(f, "  errors by kind:");
        for (size_t i = 0; i < res->n_err_words; i++)
            fprintf(f, " %s=%llu", res->err_words[i].word,
                    (unsigned long long)res->err_words[i].count);
        fprintf(f, "\n");
    }
}

/* Error words come from the server; keep the JSON valid whatever they hold. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_op(FILE *f, const char *name, const bench_hist *h,
                    uint64_t errors, double secs)
{
    fprintf(f,
            "\"%s\":{\"count\":%llu,\"ops_per_s\":%.1f,\"errors\":%llu,"
            "\"mean_us\":%.1f,\"p50_us\":%llu,\"p95_us\":%llu,"
            "\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu}",
            name, (unsigned long long)bench_hist_count(h),
            rate(bench_hist_count(h), secs), (unsigned long long)errors,
            bench_hist_mean(h),
            (unsigned long long)bench_hist_percentile(h, 50),
            (unsigned long long)bench_hist_percentile(h, 95),
            (unsigned long long)bench_hist_percentile(h, 99),
            (unsigned long long)bench_hist_percentile(h, 99.9),
            (unsigned long long)bench_hist_max(h));
}

void bench_report_json(FILE *f, const bench_config *cfg,
                       const bench_result *res)
{
    double secs = res->elapsed_s;
    fprintf(f,
            "{\"tool\":\"cairn-bench\",\"target\":\"%s:%d\",\"phase\":\"%s\","
            "\"workload\":\"%s\",\"distribution\":\"%s\",\"records\":%llu,"
            "\"value_size\":%zu,\"clients\":%u,\"pipeline\":%u,"
            "\"elapsed_s\":%.3f,\"ops\":%llu,\"ops_per_s\":%.1f,"
            "\"errors\":%llu,\"misses\":%llu,\"scan_keys\":%llu,"
            "\"scan_keys_per_s\":%.1f,\"aborted\":%s,",
            cfg->host, cfg->port, phase_name(res->phase),
            res->phase == BENCH_PHASE_LOAD ? "load" : res->workload,
            cfg->zipfian ? "zipfian" : "uniform",
            (unsigned long long)cfg->records, cfg->value_size, cfg->clients,
            cfg->pipeline, secs, (unsigned long long)res->done,
            rate(res->done, secs),
            (unsigned long long)bench_result_errors(res),
            (unsigned long long)total_misses(res),
            (unsigned long long)res->ops[BENCH_OP_SCAN].items,
            rate(res->ops[BENCH_OP_SCAN].items, secs),
            res->aborted ? "true" : "false");
    fprintf(f, "\"error_words\":{");
    for (size_t i = 0; i < res->n_err_words; i++) {
        fprintf(f, "%s", i ? "," : "");
        json_string(f, res->err_words[i].word);
        fprintf(f, ":%llu", (unsigned long long)res->err_words[i].count);
    }
    fprintf(f, "},\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f},\"by_op\":{",
            res->cpu_user_s, res->cpu_sys_s);
    uint64_t op_errs = 0;
    bool first = true;
    for (int op = 0; op < BENCH_OP_COUNT_; op++) {
        const bench_op_stats *s = &res->ops[op];
        op_errs += s->errors;
        if (!bench_hist_count(s->hist) && !s->errors)
            continue;
        fprintf(f, "%s", first ? "" : ",");
        first = false;
        json_op(f, bench_op_name((bench_op)op), s->hist, s->errors, secs);
    }
    fprintf(f, "},");
    bench_hist *all = merged(res);
    if (all)
        json_op(f, "TOTAL", all, op_errs, secs);
    else
        fprintf(f, "\"TOTAL\":null");
    bench_hist_free(all);
    fprintf(f, "}\n");
}
