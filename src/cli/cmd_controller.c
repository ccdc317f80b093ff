/*
 * cmd_controller.c - `cairn controller`: run a controller candidate
 * (src/controller/controller.h).
 *
 *   cairn controller --etcd URL[,URL...] [--prefix /cairn] [--id NAME]
 *                    [--lease-ttl S] [--interval-ms N]
 *                    [--create-timeout-ms N] [health and healing flags]
 *                    [--http HOST:PORT] [--config FILE] [--log-level L]
 *                    [--cluster-secret-file F]
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common/err.h"
#include "common/log.h"
#include "controller/controller.h"

static int controller_usage(FILE *out)
{
    fprintf(out,
            "usage: cairn controller --etcd URL[,URL...] [options]\n"
            "\n"
            "Runs one controller candidate: one active controller per\n"
            "cluster is elected through an etcd lease; the others wait and\n"
            "take over when it dies. It finishes or rolls back table\n"
            "creations, finishes drops, records leaders, watches the\n"
            "nodes' health, replaces dead and lagging replicas, drains\n"
            "nodes, and balances replicas and leaders.\n"
            "\n"
            "  --prefix P              metadata prefix in etcd (/cairn)\n"
            "  --id NAME               candidate name (default host:pid)\n"
            "  --lease-ttl S           election lease in seconds (5)\n"
            "  --interval-ms N         loop period (1000)\n"
            "  --create-timeout-ms N   age of an abandoned create (60000)\n"
            "  --poll-ms N             ask every node its metrics (2000)\n"
            "  --split-bytes N         split a range larger than this at its\n"
            "                          median by bytes (64 MiB; 0 = never)\n"
            "  --split-qps N           split a range serving more requests a\n"
            "  --split-qps-seconds S   second than N for S seconds at its\n"
            "                          load median (2500, 10; 0 = never)\n"
            "  --dead-after S          lease lost and not answering this\n"
            "                          long: dead, replicas replaced (30)\n"
            "  --lag-entries N         a follower this far behind ...\n"
            "  --lag-seconds S         ... or this far, for this long again,\n"
            "                          is replaced (100000, 20)\n"
            "  --max-moves N           membership changes at once (4)\n"
            "  --max-relocations N     moves of ranges to new groups\n"
            "                          (TABLE.MOVE) at once (2)\n"
            "  --rebalance-rate N      replica moves per minute to balance\n"
            "                          a joining node (30; 0 = never)\n"
            "  --transfer-rate N       leader transfers at once to balance\n"
            "                          leaders (4; 0 = never)\n"
            "  --http HOST:PORT        serve the dashboard (/), its JSON\n"
            "                          (/api/status) and /metrics there; a\n"
            "                          non-loopback HOST opens them to the\n"
            "                          network (no login: keep it private)\n"
            "  --status-interval-ms N  between two status collections (2000)\n"
            CLI_COMMON_HELP);
    return out == stdout ? 0 : 2;
}

static const char *level, *secret;

static int parse(int argc, char **argv, controller_config *cfg)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return controller_usage(stdout) - 1; /* -1: exit 0 */
        if (i + 1 >= argc)
            return controller_usage(stderr);
        const char *v = argv[++i];
        if (strcmp(a, "--etcd") == 0)
            cfg->etcd = v;
        else if (strcmp(a, "--prefix") == 0)
            cfg->prefix = v;
        else if (strcmp(a, "--id") == 0)
            cfg->name = v;
        else if (strcmp(a, "--lease-ttl") == 0)
            cfg->lease_ttl_s = atoi(v);
        else if (strcmp(a, "--interval-ms") == 0)
            cfg->interval_ms = atoi(v);
        else if (strcmp(a, "--create-timeout-ms") == 0)
            cfg->create_timeout_ms = atoi(v);
        else if (strcmp(a, "--poll-ms") == 0)
            cfg->poll_ms = atoi(v);
        else if (strcmp(a, "--split-bytes") == 0)
            cfg->split_bytes = atoll(v) > 0 ? atoll(v) : -1;
        else if (strcmp(a, "--split-qps") == 0)
            cfg->split_qps = atoi(v) > 0 ? atoi(v) : -1;
        else if (strcmp(a, "--split-qps-seconds") == 0)
            cfg->split_qps_seconds = atoi(v);
        else if (strcmp(a, "--dead-after") == 0)
            cfg->dead_after_s = atoi(v);
        else if (strcmp(a, "--lag-entries") == 0)
            cfg->lag_entries = strtoull(v, NULL, 10);
        else if (strcmp(a, "--lag-seconds") == 0)
            cfg->lag_seconds = atof(v);
        else if (strcmp(a, "--max-moves") == 0)
            cfg->max_moves = atoi(v);
        else if (strcmp(a, "--max-relocations") == 0)
            cfg->max_relocations = atoi(v);
        else if (strcmp(a, "--rebalance-rate") == 0)
            cfg->rebalance_rate = atoi(v) > 0 ? atoi(v) : -1;
        else if (strcmp(a, "--transfer-rate") == 0)
            cfg->transfer_rate = atoi(v) > 0 ? atoi(v) : -1;
        else if (strcmp(a, "--http") == 0)
            cfg->http = v;
        else if (strcmp(a, "--status-interval-ms") == 0)
            cfg->status_interval_ms = atoi(v);
        else if (strcmp(a, "--log-level") == 0)
            level = v;
        else if (strcmp(a, "--cluster-secret-file") == 0)
            secret = v;
        else
            return controller_usage(stderr);
    }
    return cfg->etcd ? 0 : controller_usage(stderr);
}

int cmd_controller(int argc, char **argv)
{
    controller_config cfg = {0};
    char name[128];
    int rc = cli_expand_config("controller", &argc, &argv);
    if (rc != 0)
        return rc;
    rc = parse(argc, argv, &cfg);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (cfg.name == NULL) {
        char host[64] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(name, sizeof name, "%s:%d", host, (int)getpid());
        cfg.name = name;
    }
    char ident[160];
    snprintf(ident, sizeof ident, "id=%s", cfg.name);
    if ((rc = cli_setup_log("controller", ident, level)) != 0)
        return rc;
    if (cli_load_secret(secret) != 0)
        return 1;
    /* Signals are taken synchronously here; the threads never see them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    controller *c = NULL;
    rc = controller_start(&cfg, &c);
    if (rc != 0) {
        log_error("cannot start: %s (%s)", cairn_err_word(rc),
                  cairn_err_message(rc));
        return 1;
    }
    log_info("started");
    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("stopping (signal %d)", sig);
    controller_stop(c);
    return 0;
}
