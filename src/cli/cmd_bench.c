/*
 * cmd_bench.c - `cairn bench`: YCSB-style load against any RESP server (a
 * cairn router, Redis). The load generator itself is bench/lib/bench.h;
 * this file turns options into its configuration and prints the reports.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../bench/lib/bench.h"
#include "cli.h"
#include "common/err.h"

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: cairn bench [options]\n"
            "\n"
            "YCSB-style load over RESP (a cairn router, Redis, ...).\n"
            "\n"
            "  --host HOST        server name or IP address (127.0.0.1)\n"
            "  --port N           server port (6379)\n"
            "  --workload X       A 50%% read/50%% update, B 95/5, C 100%% "
            "read,\n"
            "                     W 100%% update, E 95%% scan/5%% insert,\n"
            "                     S 100%% scan of --max-scan keys (A)\n"
            "  --phase P          load, run or both (both)\n"
            "  --records N        records loaded and picked from (100000)\n"
            "  --load-from N      load only records N..records-1 (0): a big\n"
            "                     load in parts, each part reported\n"
            "  --value-size N     bytes per value (100)\n"
            "  --clients N        connections (50)\n"
            "  --pipeline N       requests in flight per connection (1)\n"
            "  --duration S       run phase seconds (10)\n"
            "  --ops N            run phase operations instead of a duration\n"
            "  --distribution D   zipfian (theta 0.99, scrambled) or uniform\n"
            "  --table NAME       use KV.GET/KV.PUT on NAME instead of GET/SET\n"
            "  --scan-cmd T       scan template (" BENCH_DEFAULT_SCAN ")\n"
            "  --max-scan N       scan lengths uniform in 1..N (100)\n"
            "  --seed N           random seed (1)\n"
            "  --json             one JSON object per phase on stdout\n"
            "  --progress / --no-progress   progress line (default: on a "
            "TTY)\n"
            "\n"
            "Exit status: 0, 1 if any error was counted, 2 usage error.\n");
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_WORKLOAD,
    OPT_PHASE,
    OPT_RECORDS,
    OPT_VALUE_SIZE,
    OPT_CLIENTS,
    OPT_PIPELINE,
    OPT_DURATION,
    OPT_OPS,
    OPT_DISTRIBUTION,
    OPT_TABLE,
    OPT_SCAN_CMD,
    OPT_MAX_SCAN,
    OPT_SEED,
    OPT_LOAD_FROM,
    OPT_JSON,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"workload", required_argument, NULL, OPT_WORKLOAD},
    {"phase", required_argument, NULL, OPT_PHASE},
    {"records", required_argument, NULL, OPT_RECORDS},
    {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"pipeline", required_argument, NULL, OPT_PIPELINE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"ops", required_argument, NULL, OPT_OPS},
    {"distribution", required_argument, NULL, OPT_DISTRIBUTION},
    {"table", required_argument, NULL, OPT_TABLE},
    {"scan-cmd", required_argument, NULL, OPT_SCAN_CMD},
    {"max-scan", required_argument, NULL, OPT_MAX_SCAN},
    {"seed", required_argument, NULL, OPT_SEED},
    {"load-from", required_argument, NULL, OPT_LOAD_FROM},
    {"json", no_argument, NULL, OPT_JSON},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* A whole decimal number in [min, max], or a usage error. */
static int parse_u64(const char *name, const char *s, uint64_t min,
                     uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || *s == '-' || v < min || v > max) {
        fprintf(stderr, "cairn bench: --%s wants a number in %llu..%llu\n",
                name, (unsigned long long)min, (unsigned long long)max);
        return 2;
    }
    *out = v;
    return 0;
}

typedef struct bench_cli {
    bench_config cfg;
    bool load, run, json;
    int progress; /* -1 auto, 0 off, 1 on */
} bench_cli;

static int parse_number_opt(int opt, const char *arg, bench_config *cfg)
{
    uint64_t v = 0;
    int rc = 0;
    switch (opt) {
    case OPT_PORT:
        rc = parse_u64("port", arg, 1, 65535, &v);
        cfg->port = (int)v;
        break;
    case OPT_RECORDS:
        rc = parse_u64("records", arg, 1, 1000000000000ull, &cfg->records);
        break;
    case OPT_LOAD_FROM:
        rc = parse_u64("load-from", arg, 0, 1000000000000ull,
                       &cfg->load_from);
        break;
    case OPT_VALUE_SIZE:
        rc = parse_u64("value-size", arg, 0, 1024 * 1024, &v);
        cfg->value_size = (size_t)v;
        break;
    case OPT_CLIENTS:
        rc = parse_u64("clients", arg, 1, 10000, &v);
        cfg->clients = (unsigned)v;
        break;
    case OPT_PIPELINE:
        rc = parse_u64("pipeline", arg, 1, 10000, &v);
        cfg->pipeline = (unsigned)v;
        break;
    case OPT_OPS:
        rc = parse_u64("ops", arg, 1, UINT64_MAX, &cfg->ops);
        break;
    case OPT_MAX_SCAN:
        rc = parse_u64("max-scan", arg, 1, 100000, &v);
        cfg->max_scan = (unsigned)v;
        break;
    case OPT_SEED:
        rc = parse_u64("seed", arg, 0, UINT64_MAX, &cfg->seed);
        break;
    default:
        rc = 2;
    }
    return rc;
}

static int parse_text_opt(int opt, const char *arg, bench_cli *cli)
{
    bench_config *cfg = &cli->cfg;
    switch (opt) {
    case OPT_HOST:
        cfg->host = arg;
        return 0;
    case OPT_WORKLOAD:
        if (strlen(arg) != 1)
            break;
        cfg->workload[0] = arg[0];
        return 0;
    case OPT_PHASE:
        cli->load = strcmp(arg, "load") == 0 || strcmp(arg, "both") == 0;
        cli->run = strcmp(arg, "run") == 0 || strcmp(arg, "both") == 0;
        if (cli->load || cli->run)
            return 0;
        break;
    case OPT_DURATION: {
        char *end;
        cfg->duration_s = strtod(arg, &end);
        if (*end == '\0' && cfg->duration_s > 0)
            return 0;
        break;
    }
    case OPT_DISTRIBUTION:
        cfg->zipfian = strcmp(arg, "zipfian") == 0;
        if (cfg->zipfian || strcmp(arg, "uniform") == 0)
            return 0;
        break;
    case OPT_TABLE:
        cfg->table = arg;
        return 0;
    case OPT_SCAN_CMD:
        cfg->scan_cmd = arg;
        return 0;
    default:
        return parse_number_opt(opt, arg, cfg);
    }
    fprintf(stderr, "cairn bench: bad value '%s'\n", arg);
    return 2;
}

static int parse_args(int argc, char **argv, bench_cli *cli)
{
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case OPT_JSON:
            cli->json = true;
            break;
        case OPT_PROGRESS:
            cli->progress = 1;
            break;
        case OPT_NO_PROGRESS:
            cli->progress = 0;
            break;
        case OPT_HELP:
        case 'h':
            bench_usage(stdout);
            return 1;
        case '?':
            bench_usage(stderr);
            return 2;
        default:
            rc = parse_text_opt(opt, optarg, cli);
        }
        if (rc)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "cairn bench: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    if (cli->cfg.load_from >= cli->cfg.records) {
        fprintf(stderr, "cairn bench: --load-from must be below --records\n");
        return 2;
    }
    return 0;
}

/* Run one phase and report it; 0 clean, 1 errors or failure, 2 a bad
 * configuration. */
static int run_phase(const bench_cli *cli, bench_phase phase)
{
    bench_result *res = NULL;
    int rc = bench_run(&cli->cfg, phase, &res);
    if (rc != 0)
        return rc == CAIRN_ERR_INVALID ? 2 : 1;
    if (cli->json)
        bench_report_json(stdout, &cli->cfg, res);
    else
        bench_report_text(stdout, &cli->cfg, res);
    fflush(stdout);
    int bad = bench_result_errors(res) > 0 || res->aborted;
    bench_result_free(res);
    return bad;
}

int cmd_bench(int argc, char **argv)
{
    bench_cli cli;
    memset(&cli, 0, sizeof cli);
    bench_config_default(&cli.cfg);
    cli.load = cli.run = true;
    cli.progress = -1;
    int rc = parse_args(argc, argv, &cli);
    if (rc)
        return rc == 1 ? 0 : 2;
    cli.cfg.progress = cli.progress < 0 ? isatty(STDERR_FILENO) != 0
                                        : cli.progress == 1;
    int status = 0;
    if (cli.load)
        status = run_phase(&cli, BENCH_PHASE_LOAD);
    if (cli.run && status == 0)
        status = run_phase(&cli, BENCH_PHASE_RUN);
    return status;
}
