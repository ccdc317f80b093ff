/*
 * bench.h - `cairn bench`: a YCSB-style load generator speaking RESP.
 *
 * One libuv loop drives `clients` TCP connections; each keeps up to
 * `pipeline` requests in flight (a closed loop: a reply makes room for the
 * next request). The same tool measures a cairn router, Redis, or anything
 * else that speaks RESP, so numbers compare like for like.
 *
 * Phases (YCSB's): "load" inserts records 0..records-1 once, spread over all
 * connections; "run" plays the workload mix (workload.h) for a duration or an
 * operation count. Each phase is measured and reported on its own.
 *
 * Commands sent: reads `GET key`, updates and inserts `SET key value` (cairn
 * maps these to the table `default`), or with a table name `KV.GET table
 * key` and `KV.PUT table key value`; scans by a template, by default
 * `KV.SCAN {table} {start} "" LIMIT {n}` ({table} is the table name or
 * `default`, {start} the first key - also inside a word, as in Redis's
 * `ZRANGEBYLEX z [{start} + LIMIT 0 {n}` - {n} the scan length, "" an
 * empty argument). Scan replies count the keys they hold: KV.SCAN's
 * [cursor, [k, v, ...]] a key per pair, a flat array one per element.
 *
 * Honest reporting (the rules the report follows):
 *  1. Latency is measured per request from when it is queued for sending to
 *     when its reply is parsed, so queueing inside the pipeline counts.
 *  2. An error reply is counted under its operation and under the first word
 *     of the error ("NOT_LEADER", "ERR", ...), never in the latency
 *     histograms; a lost connection counts its in-flight requests as errors
 *     under "CONN"; requests unanswered at the drain deadline under
 *     "UNANSWERED". Errors are always shown.
 *  3. A read of a loaded key that replies nil is a "miss", shown beside the
 *     errors (it means data the load phase wrote is missing).
 *  4. The client's own CPU time is reported next to its throughput, so a
 *     saturated client is visible.
 */
#ifndef CAIRN_BENCH_H
#define CAIRN_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"
#include "workload.h"

typedef enum bench_phase { BENCH_PHASE_LOAD, BENCH_PHASE_RUN } bench_phase;

#define BENCH_DEFAULT_SCAN "KV.SCAN {table} {start} \"\" LIMIT {n}"

typedef struct bench_config {
    const char *host;
    int port;
    char workload[2];     /* "A", "B", "C", "W", "E" or "S" */
    uint64_t records;     /* records loaded / picked from */
    uint64_t load_from;   /* the load phase inserts load_from..records-1 */
    size_t value_size;    /* bytes per value */
    unsigned clients;     /* connections */
    unsigned pipeline;    /* requests in flight per connection */
    double duration_s;    /* run phase length, when ops == 0 */
    uint64_t ops;         /* run phase operation count; 0 = by duration */
    bool zipfian;         /* else uniform */
    const char *table;    /* NULL: GET/SET; else KV.GET/KV.PUT on it */
    const char *scan_cmd; /* template, see above */
    unsigned max_scan;    /* scan lengths are uniform in 1..max_scan */
    bool progress;        /* a progress line on stderr */
    unsigned drain_ms;    /* after the last request, how long replies may
                           * take before they count as UNANSWERED */
    uint64_t seed;
} bench_config;

/* Defaults: 127.0.0.1:6379, workload A, 100000 records of 100 bytes, 50
 * clients, pipeline 1, 10 s, zipfian, max scan 100, drain 10 s. */
void bench_config_default(bench_config *cfg);

#define BENCH_ERR_WORDS 16

typedef struct bench_op_stats {
    bench_hist *hist; /* latencies of successful replies, microseconds */
    uint64_t errors;
    uint64_t misses;
    uint64_t items; /* SCAN: keys the replies held */
} bench_op_stats;

typedef struct bench_result {
    bench_phase phase;
    char workload[2];
    double elapsed_s;
    uint64_t done; /* replies received, errors included */
    bench_op_stats ops[BENCH_OP_COUNT_];
    struct {
        char word[32];
        uint64_t count;
    } err_words[BENCH_ERR_WORDS]; /* the last slot collects "OTHER" */
    size_t n_err_words;
    double cpu_user_s, cpu_sys_s;
    bool aborted; /* every connection was lost */
} bench_result;

/* Run one phase against cfg->host:port. Returns 0 with *out filled (free it
 * with bench_result_free), or CAIRN_ERR_INVALID for a bad configuration
 * (message on stderr) or CAIRN_ERR_NOMEM. Lost connections do not fail the
 * call: they show in the result (rule 2) and set `aborted` if all were lost. */
int bench_run(const bench_config *cfg, bench_phase phase, bench_result **out);

void bench_result_free(bench_result *res);

/* Errors of every kind in the result (rule 2). */
uint64_t bench_result_errors(const bench_result *res);

/* A human-readable report (rules 2-4). */
void bench_report_text(FILE *f, const bench_config *cfg,
                       const bench_result *res);

/* The same as one JSON object (the shape bench/etcd/ also writes, so
 * bench/compare reads both): phase, workload, elapsed_s, ops, ops_per_s,
 * errors, misses, error_words {word: n}, cpu {user_s, sys_s}, and per
 * operation type and "TOTAL": count, ops_per_s, errors, mean_us, p50_us,
 * p95_us, p99_us, p999_us, max_us. */
void bench_report_json(FILE *f, const bench_config *cfg,
                       const bench_result *res);

#endif
