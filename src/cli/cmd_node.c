/*
 * cmd_node.c - `cairn node`: run a storage node (src/node/node.h).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "meta/meta.h"
#include "node/node.h"

/* Long options without a letter of their own. */
enum { OPT_LEASE_TTL = 256 };

static int usage(FILE *out)
{
    fprintf(out,
            "usage: cairn node --id N --listen HOST:PORT --dir DIR [options]\n"
            "\n"
            "Hosts range replicas; one port serves the cairn RPC and the Raft\n"
            "traffic of every range.\n"
            "\n"
            "  --id N                  node id (> 0, never reused)\n"
            "  --listen HOST:PORT      address to listen on; peers and routers\n"
            "                          use it too unless --advertise is given.\n"
            "                          A non-loopback HOST (or 0.0.0.0) opens\n"
            "                          the node to the network\n"
            "  --advertise HOST:PORT   the address other machines reach this\n"
            "                          node at (registered in etcd and in the\n"
            "                          ranges' Raft configurations); needed\n"
            "                          with --listen 0.0.0.0:PORT\n"
            "  --dir DIR               data directory (created if missing)\n"
            "  --http HOST:PORT        serve /metrics (Prometheus) there; a\n"
            "                          non-loopback HOST opens it to the network\n"
            "  --metrics-ranges N      ranges with series of their own in\n"
            "                          /metrics (1000; node-wide figures cover\n"
            "                          every range)\n"
            "  --etcd URL[,URL...]     register in etcd and record leaders\n"
            "  --prefix P              metadata prefix in etcd (/cairn)\n"
            "  --zone Z                failure zone (rack, host, AZ): the\n"
            "                          controller spreads a range's replicas\n"
            "                          over distinct zones\n"
            "  --lease-ttl S           etcd liveness lease (default 6): a\n"
            "                          node gone this long leaves the live set\n"
            "  --bootstrap RANGE:PEERS start range RANGE with voters PEERS\n"
            "                          (ID=HOST:PORT,...): table 1, unbounded,\n"
            "                          epoch 1; every voter passes the same flag\n"
            "  --engine btree|lsm      index store of the bootstrap range\n"
            "  --election-ms N         election timeout (default 1000)\n"
            "  --heartbeat-ms N        heartbeat interval (default 100)\n"
            "  --snapshot-threshold N  entries between snapshots (4096)\n"
            "  --snapshot-trailing N   entries kept after a snapshot (1024)\n"
            "  --snapshot-bytes BYTES  also snapshot every BYTES of log,\n"
            "                          keeping a quarter (16 MiB; 0 = off)\n"
            "  --snapshot-cap BYTES    largest range/snapshot (256 MiB)\n"
            "  --quiesce-ticks N       idle heartbeats before a range sleeps\n"
            "                          (default 5; 0: ranges never sleep)\n"
            "  --node-heartbeat-ms N   node-to-node heartbeat (default 200)\n"
            "  --disk-reserve-mb N     space kept for a full disk (default\n"
            "                          128, at most a tenth of the disk; 0:\n"
            "                          off): below half of it free, writes\n"
            "                          get NOSPACE until twice it is free\n"
            "  --clock-offset-ms N     test only: shift the sequencer's wall\n"
            "                          clock by N ms (may be negative)\n"
            CLI_COMMON_HELP);
    return out == stdout ? 0 : 2;
}

static int parse_boot(const char *arg, node_options *o)
{
    char *end;
    o->boot_range = strtoull(arg, &end, 10);
    if (o->boot_range == 0 || *end != ':')
        return -1;
    return node_parse_peers(end + 1, o->boot_peers, &o->boot_n_peers);
}

int cmd_node(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"id", required_argument, NULL, 'i'},
        {"listen", required_argument, NULL, 'l'},
        {"dir", required_argument, NULL, 'd'},
        {"etcd", required_argument, NULL, 'M'},
        {"prefix", required_argument, NULL, 'P'},
        {"bootstrap", required_argument, NULL, 'b'},
        {"engine", required_argument, NULL, 'e'},
        {"election-ms", required_argument, NULL, 'E'},
        {"heartbeat-ms", required_argument, NULL, 'H'},
        {"snapshot-threshold", required_argument, NULL, 'T'},
        {"snapshot-trailing", required_argument, NULL, 'R'},
        {"snapshot-bytes", required_argument, NULL, 'Y'},
        {"quiesce-ticks", required_argument, NULL, 'Q'},
        {"node-heartbeat-ms", required_argument, NULL, 'N'},
        {"snapshot-cap", required_argument, NULL, 'C'},
        {"clock-offset-ms", required_argument, NULL, 'O'},
        {"disk-reserve-mb", required_argument, NULL, 'D'},
        {"zone", required_argument, NULL, 'Z'},
        {"lease-ttl", required_argument, NULL, OPT_LEASE_TTL},
        {"advertise", required_argument, NULL, 'A'},
        {"http", required_argument, NULL, 'W'},
        {"metrics-ranges", required_argument, NULL, 'm'},
        {"log-level", required_argument, NULL, 'L'},
        {"cluster-secret-file", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    node_options o;
    memset(&o, 0, sizeof o);
    rep_options_default(&o.rep);
    o.boot_engine = ENGINE_BTREE;
    o.metrics_ranges = 1000;
    o.disk_reserve = (uint64_t)NODE_DISK_RESERVE_MB << 20;
    const char *level = NULL, *secret = NULL;
    int c = cli_expand_config("node", &argc, &argv);
    if (c != 0)
        return c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': o.id = strtoull(optarg, NULL, 10); break;
        case 'l': o.listen = optarg; break;
        case 'd': o.dir = optarg; break;
        case 'M': o.etcd = optarg; break;
        case 'P': o.etcd_prefix = optarg; break;
        case 'b':
            if (parse_boot(optarg, &o) != 0) {
                fprintf(stderr, "cairn node: bad --bootstrap '%s'\n", optarg);
                return 2;
            }
            break;
        case 'e':
            if (engine_kind_parse(optarg, &o.boot_engine) != 0)
                return usage(stderr);
            break;
        case 'E': o.rep.election_ms = (unsigned)atoi(optarg); break;
        case 'H': o.rep.heartbeat_ms = (unsigned)atoi(optarg); break;
        case 'T': o.rep.snapshot_threshold = (unsigned)atoi(optarg); break;
        case 'R': o.rep.snapshot_trailing = (unsigned)atoi(optarg); break;
        case 'Y': o.rep.snapshot_bytes = strtoull(optarg, NULL, 10); break;
        case 'Q': o.rep.quiesce_ticks = (unsigned)atoi(optarg); break;
        case 'N': o.rep.node_heartbeat_ms = (unsigned)atoi(optarg); break;
        case 'C': o.rep.snapshot_cap = strtoull(optarg, NULL, 10); break;
        case 'O': o.clock_offset_ms = strtoll(optarg, NULL, 10); break;
        case 'D': o.disk_reserve = strtoull(optarg, NULL, 10) << 20; break;
        case 'Z':
            if (strlen(optarg) >= META_ZONE_MAX) {
                fprintf(stderr, "cairn node: --zone longer than %d bytes\n",
                        META_ZONE_MAX - 1);
                return 2;
            }
            o.zone = optarg;
            break;
        case OPT_LEASE_TTL: o.lease_ttl_s = atoi(optarg); break;
        case 'A': o.advertise = optarg; break;
        case 'W': o.http = optarg; break;
        case 'm': o.metrics_ranges = (unsigned)atoi(optarg); break;
        case 'L': level = optarg; break;
        case 'S': secret = optarg; break;
        case 'h': return usage(stdout);
        default: return usage(stderr);
        }
    }
    if (o.id == 0 || o.listen == NULL || o.dir == NULL || optind != argc)
        return usage(stderr);
    char ident[32];
    snprintf(ident, sizeof ident, "node=%" PRIu64, o.id);
    if ((c = cli_setup_log("node", ident, level)) != 0)
        return c;
    if (cli_load_secret(secret) != 0)
        return 1;
    return node_run(&o);
}
