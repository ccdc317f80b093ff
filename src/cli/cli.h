/*
 * cli.h - subcommands of the `cairn` binary.
 *
 * Each `cmd_<name>(argc, argv)` gets argv[0] = its own name and returns the
 * process exit status: 0 success, 1 failure, 2 usage error.
 */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#define CAIRN_VERSION "0.1.0"

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

#endif
