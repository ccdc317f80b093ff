/*
 * etcd_fixture.h - a real etcd for a cmocka test group (header-only, so
 * any tests/unit/<folder>/test_*.c can include "meta/etcd_fixture.h").
 *
 * etcd_fixture_setup starts one etcd on free loopback ports in a fresh
 * temp dir, waiting at most 20 s; etcd_fixture_teardown kills it by PID
 * and removes the dir. Use them as cmocka group setup/teardown.
 */
#ifndef CAIRN_TEST_ETCD_FIXTURE_H
#define CAIRN_TEST_ETCD_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "meta/etcd.h"
#include "meta/etcd_server.h"

typedef struct etcd_fixture {
    etcd_server *server;
    etcd *client;
    char dir[64];
} etcd_fixture;

static inline int etcd_fixture_setup(void **state)
{
    etcd_fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cairn-etcd-XXXXXX");
    if (!mkdtemp(f->dir) ||
        etcd_server_start(f->dir, 0, 0, 20000, &f->server) != 0 ||
        etcd_open(&f->client, etcd_server_url(f->server), 2000) != 0) {
        fprintf(stderr, "etcd fixture: cannot start etcd in %s\n", f->dir);
        etcd_server_stop(f->server, 1);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static inline int etcd_fixture_teardown(void **state)
{
    etcd_fixture *f = *state;
    if (!f)
        return 0;
    etcd_close(f->client);
    etcd_server_stop(f->server, 1);
    free(f);
    return 0;
}

#endif
