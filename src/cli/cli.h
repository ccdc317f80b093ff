/*
 * cli.h - subcommands of the `cairn` binary.
 *
 * Each `cmd_<name>(argc, argv)` gets argv[0] = its own name and returns the
 * process exit status: 0 success, 1 failure, 2 usage error.
 */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include "common/version.h"

struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

int cmd_version(int argc, char **argv);
int cmd_dev(int argc, char **argv);
int cmd_meta(int argc, char **argv);
int cmd_router(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_admin(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_controller(int argc, char **argv);
int cmd_status(int argc, char **argv);

/* ---- cli_common.c: what node, router and controller share ---- */

/* Replace argc/argv by the list with every `--config FILE` expanded
 * (common/conf.h). 0, or 2 (a usage error, reported on stderr). */
int cli_expand_config(const char *cmd, int *argc, char ***argv);

/* Name the process in log lines and set the level ("info" if NULL).
 * 0, or 2 for an unknown level (reported). */
int cli_setup_log(const char *component, const char *ident,
                  const char *level);

/* Load the cluster secret from `path` (NULL: none) into the process
 * (proto/rpc.h). 0, or 1 (the reason logged). */
int cli_load_secret(const char *path);

/* The help lines of the flags every long-running command has. */
#define CLI_COMMON_HELP                                                      \
    "  --config FILE           flags from FILE, one per line (`name value`)\n" \
    "  --log-level L           error, warn, info (default) or debug\n"       \
    "  --cluster-secret-file F connections to nodes carry (and nodes\n"      \
    "                          require) the secret in F; chmod 600 it\n"

#endif
