/*
 * cli_common.c - what the long-running commands share: --config, the log
 * level and identity, the cluster secret (cli.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"
#include "proto/rpc.h"

int cli_expand_config(const char *cmd, int *argc, char ***argv)
{
    /* Kept for the life of the process: the options point into it. */
    static conf_args args;
    char err[512];
    if (conf_expand(*argc, *argv, &args, err, sizeof err) != 0) {
        fprintf(stderr, "cairn %s: %s\n", cmd, err);
        return 2;
    }
    *argc = args.argc;
    *argv = args.argv;
    return 0;
}

int cli_setup_log(const char *component, const char *ident,
                  const char *level)
{
    log_init(component, ident);
    if (level == NULL)
        return 0;
    log_level l;
    if (log_level_parse(level, &l) != 0) {
        fprintf(stderr, "cairn %s: --log-level must be error, warn, info or "
                        "debug\n", component);
        return 2;
    }
    log_set_level(l);
    return 0;
}

int cli_load_secret(const char *path)
{
    if (path == NULL)
        return 0;
    char err[512], warn[512];
    if (rpc_secret_load(path, err, sizeof err, warn, sizeof warn) != 0) {
        log_error("--cluster-secret-file: %s", err);
        return 1;
    }
    if (warn[0])
        log_warn("--cluster-secret-file: %s", warn);
    return 0;
}
