/*
 * main.c - the `cairn` binary: one executable, one subcommand per role.
 *
 * Each subcommand lives in its own file (cmd_<name>.c) and is listed in
 * the table below with a one-line summary that `cairn help` prints.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_command commands[] = {
    {"version", "print the version", cmd_version},
    {"dev", "start a local cluster under ./data", cmd_dev},
    {"meta", "back up, restore or print the metadata in etcd", cmd_meta},
    {"router", "run a request manager (RESP server)", cmd_router},
    {"node", "run a storage node (range replicas)", cmd_node},
    {"admin", "admin RPCs to a node: replicas, leadership, metrics", cmd_admin},
    {"bench", "YCSB-style load against a RESP server", cmd_bench},
    {"controller", "run a cluster controller (one active, elected)", cmd_controller},
    {"status", "the cluster on one screen: nodes, unhealthy ranges, operations", cmd_status},
};

static int usage(FILE *out)
{
    fprintf(out, "usage: cairn <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'cairn <command> --help' explains one command.\n");
    return out == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0)
        return usage(stdout);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cairn: unknown command '%s'\n\n", argv[1]);
    return usage(stderr);
}
