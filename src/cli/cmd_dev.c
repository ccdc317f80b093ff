/*
 * cmd_dev.c - `cairn dev`: one command that starts a whole local cluster.
 *
 * The cluster pieces (nodes, router, controller, etcd wiring) are not built
 * yet; until they are, this command says so honestly instead of pretending.
 */
#include <stdio.h>

#include "cli.h"

int cmd_dev(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr,
            "cairn dev: the local cluster is not built yet.\n"
            "What exists today: the index store (LMDB and RocksDB engines),\n"
            "the sequencer and the RESP codec, each with its tests\n"
            "(run ./scripts/test). See README.md for the roadmap.\n");
    return 1;
}
