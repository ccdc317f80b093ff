/*
 * cmd_admin.c - `cairn admin`: send one admin RPC to a node (rpc.h) and
 * print the reply. What the controller will do programmatically, by hand:
 * create, add and remove replicas, transfer leadership, read metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/err.h"
#include "meta/meta.h"
#include "common/log.h"
#include "node/node.h"
#include "proto/rpc.h"
#include "proto/rpc_sync.h"

/* A node answers admin requests at once, but dropping a replica waits for
 * its Raft group to close and its data to be deleted. */
#define ADMIN_TIMEOUT_MS 30000

static int usage(FILE *out)
{
    fprintf(out,
            "usage: cairn admin --node HOST:PORT [--cluster-secret-file F] "
            "COMMAND [ARGS]\n"
            "\n"
            "  --cluster-secret-file F  the nodes' cluster secret, if they\n"
            "                           require one\n"
            "\n"
            "commands:\n"
            "  ping\n"
            "  metrics [RANGE]                  JSON; all ranges if omitted\n"
            "  create-replica RANGE ID=ADDR,... [--start KEY] [--end KEY]\n"
            "                 [--engine btree|lsm] [--epoch N] [--table N]\n"
            "                 [--join]          (--join: empty replica to be\n"
            "                                    added by the leader)\n"
            "  add-replica RANGE ID ADDR        on the leader: standby, then\n"
            "                                   voter once caught up\n"
            "  remove-replica RANGE ID          on the leader\n"
            "  transfer-leader RANGE [ID]       on the leader (0 = any)\n"
            "  drop-replica RANGE               delete this node's replica\n"
            "                                   (data and log)\n"
            "\n"
            "       cairn admin --etcd URLS [--prefix P] drain|undrain NODE_ID\n"
            "\n"
            "  drain NODE_ID    the controller moves every replica and leader\n"
            "                   off the node (cairn status shows progress;\n"
            "                   then it can be stopped, nothing under-\n"
            "                   replicated); it gets no new ones\n"
            "  undrain NODE_ID  the node takes replicas and leaders again\n");
    return out == stdout ? 0 : 2;
}

static int call(const char *addr, const rpc_request *q)
{
    buf frame = BUF_INIT;
    rpc_reply r;
    int status = 1;
    int rc = rpc_sync_call(addr, q, ADMIN_TIMEOUT_MS, &frame, &r);
    if (rc != 0) {
        fprintf(stderr, "cairn admin: no valid reply from %s: %s\n", addr,
                cairn_err_message(rc));
    } else if (r.status != 0) {
        fprintf(stderr, "%s %.*s", cairn_err_word(r.status),
                (int)r.message.len, (const char *)r.message.p);
        if (r.status == CAIRN_ERR_NOT_LEADER)
            fprintf(stderr, " (leader %llu at %.*s)",
                    (unsigned long long)r.leader_id, (int)r.leader_addr.len,
                    (const char *)r.leader_addr.p);
        fprintf(stderr, "\n");
    } else {
        printf("%.*s\n", (int)r.value.len, (const char *)r.value.p);
        status = 0;
    }
    buf_free(&frame);
    return status;
}

static rpc_bytes str_bytes(const char *s)
{
    rpc_bytes b = {(const uint8_t *)s, s ? strlen(s) : 0};
    return b;
}

static int create_replica(const char *addr, int argc, char **argv,
                          rpc_request *q)
{
    range_peer peers[RANGE_MAX_PEERS];
    unsigned n = 0;
    engine_kind kind = ENGINE_BTREE;
    if (argc < 3 || node_parse_peers(argv[2], peers, &n) != 0)
        return usage(stderr);
    q->type = RPC_CREATE_REPLICA;
    q->epoch = 1;
    q->table_id = 1;
    q->bootstrap = true;
    for (int i = 3; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--join") == 0)
            q->bootstrap = false;
        else if (v && strcmp(argv[i], "--start") == 0)
            q->key = str_bytes(argv[++i]);
        else if (v && strcmp(argv[i], "--end") == 0)
            q->end = str_bytes(argv[++i]);
        else if (v && strcmp(argv[i], "--epoch") == 0)
            q->epoch = strtoull(argv[++i], NULL, 10);
        else if (v && strcmp(argv[i], "--table") == 0)
            q->table_id = strtoull(argv[++i], NULL, 10);
        else if (v && strcmp(argv[i], "--engine") == 0) {
            if (engine_kind_parse(argv[++i], &kind) != 0)
                return usage(stderr);
        } else
            return usage(stderr);
    }
    q->engine = (uint8_t)kind;
    q->n_peers = n;
    for (unsigned i = 0; i < n; i++) {
        q->peers[i].id = peers[i].id;
        q->peers[i].addr = str_bytes(peers[i].addr);
    }
    return call(addr, q);
}

/* drain / undrain: a record in etcd the controller acts on. */
static int drain(const char *urls, const char *prefix, const char *cmd,
                 const char *node)
{
    char *end;
    uint64_t id = strtoull(node, &end, 10);
    if (id == 0 || *end != '\0')
        return usage(stderr);
    etcd *e = NULL;
    meta *m = NULL;
    meta_map *map = NULL;
    int rc = etcd_open(&e, urls, 3000);
    if (rc == 0)
        rc = meta_open(&m, e, prefix);
    if (rc == 0)
        rc = meta_load(m, &map);
    if (rc == 0 && meta_map_node(map, id) == NULL)
        rc = CAIRN_ERR_NOT_FOUND;
    if (rc == 0 && strcmp(cmd, "drain") == 0) {
        uint64_t held = 0;
        for (size_t i = 0; i < meta_map_table_count(map); i++) {
            size_t n = 0;
            const meta_range *rs =
                meta_map_ranges(map, meta_map_table_at(map, i)->id, &n);
            for (size_t k = 0; k < n; k++) {
                for (int r = 0; r < rs[k].n_replicas; r++)
                    held += rs[k].replicas[r] == id;
                const meta_leader *l = meta_map_leader(map, rs[k].id);
                held += l && l->node_id == id;
            }
        }
        rc = meta_drain_start(m, id, held);
        if (rc == 0)
            printf("node %llu: draining (%llu replicas and leaders to move; "
                   "`cairn status` shows the progress)\n",
                   (unsigned long long)id, (unsigned long long)held);
    } else if (rc == 0) {
        rc = meta_drain_stop(m, id);
        if (rc == 0)
            printf("node %llu: not draining any more\n",
                   (unsigned long long)id);
    }
    if (rc != 0)
        fprintf(stderr, "cairn admin: %s node %s: %s%s%s\n", cmd, node,
                rc == CAIRN_ERR_NOT_FOUND && map && !meta_map_node(map, id)
                    ? "no such node"
                : rc == CAIRN_ERR_NOT_FOUND ? "it is not draining"
                : rc == CAIRN_ERR_EXISTS    ? "it is draining already"
                                            : cairn_err_message(rc),
                etcd_last_error()[0] ? ": " : "", etcd_last_error());
    meta_map_release(map);
    meta_close(m);
    etcd_close(e);
    return rc == 0 ? 0 : 1;
}

int cmd_admin(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
                      strcmp(argv[1], "-h") == 0))
        return usage(stdout);
    if (argc >= 4 && strcmp(argv[1], "--etcd") == 0) {
        const char *urls = argv[2], *prefix = NULL;
        int i = 3;
        if (argc >= 6 && strcmp(argv[3], "--prefix") == 0) {
            prefix = argv[4];
            i = 5;
        }
        if (argc == i + 2 && (strcmp(argv[i], "drain") == 0 ||
                              strcmp(argv[i], "undrain") == 0))
            return drain(urls, prefix, argv[i], argv[i + 1]);
        return usage(stderr);
    }
    if (argc < 4 || strcmp(argv[1], "--node") != 0)
        return usage(stderr);
    const char *addr = argv[2];
    argc -= 3;
    argv += 3; /* argv[0] = command */
    if (strcmp(argv[0], "--cluster-secret-file") == 0) {
        if (argc < 3)
            return usage(stderr);
        log_init("admin", NULL);
        if (cli_load_secret(argv[1]) != 0)
            return 1;
        argc -= 2;
        argv += 2;
    }
    const char *cmd = argv[0];
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.id = 1;
    uint64_t a1 = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;
    uint64_t a2 = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    if (strcmp(cmd, "ping") == 0 && argc == 1) {
        q.type = RPC_PING;
    } else if (strcmp(cmd, "metrics") == 0 && argc <= 2) {
        q.type = RPC_METRICS;
        q.range_id = a1;
    } else if (strcmp(cmd, "create-replica") == 0 && argc >= 3) {
        q.range_id = a1;
        return create_replica(addr, argc, argv, &q);
    } else if (strcmp(cmd, "add-replica") == 0 && argc == 4) {
        q.type = RPC_ADD_REPLICA;
        q.range_id = a1;
        q.node_id = a2;
        q.addr = str_bytes(argv[3]);
    } else if (strcmp(cmd, "remove-replica") == 0 && argc == 3) {
        q.type = RPC_REMOVE_REPLICA;
        q.range_id = a1;
        q.node_id = a2;
    } else if (strcmp(cmd, "drop-replica") == 0 && argc == 2) {
        q.type = RPC_DROP_REPLICA;
        q.range_id = a1;
    } else if (strcmp(cmd, "transfer-leader") == 0 && argc <= 3 && argc >= 2) {
        q.type = RPC_TRANSFER_LEADER;
        q.range_id = a1;
        q.node_id = a2;
    } else {
        return usage(stderr);
    }
    return call(addr, &q);
}
