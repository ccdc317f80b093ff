/*
 * cmd_meta.c - `cairn meta`: operator tools for the metadata in etcd.
 *
 *   cairn meta backup FILE   [--etcd URLS] [--prefix P]
 *   cairn meta restore FILE  [--etcd URLS] [--prefix P]
 *   cairn meta dump          [--etcd URLS] [--prefix P]
 *
 * backup/restore are the logical backup of meta.h (one cluster's prefix,
 * at one revision); docs/OPERATIONS.md gives the whole procedure,
 * including etcd's own snapshots.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common/err.h"
#include "meta/meta.h"

#define META_DEFAULT_ETCD "http://127.0.0.1:2379"

static int meta_usage(FILE *out)
{
    fprintf(out,
            "usage: cairn meta backup FILE  [--etcd URLS] [--prefix P]\n"
            "       cairn meta restore FILE [--etcd URLS] [--prefix P]\n"
            "       cairn meta dump         [--etcd URLS] [--prefix P]\n\n"
            "  backup   save the cluster's metadata (tables, ranges, leaders,\n"
            "           nodes, id counters) at one etcd revision to FILE\n"
            "  restore  load FILE into an empty prefix\n"
            "  dump     print the metadata map\n"
            "  --etcd   comma-separated etcd client URLs (default %s)\n"
            "  --prefix key prefix of the cluster (default %s)\n",
            META_DEFAULT_ETCD, META_PREFIX_DEFAULT);
    return out == stdout ? 0 : 2;
}

/* Print bytes as a quoted string, escaping what is not printable. */
static void print_key(const uint8_t *p, size_t n, const char *if_empty)
{
    if (n == 0) {
        printf("%s", if_empty);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    }
    putchar('"');
}

static const char *const table_state_names[] = {"creating", "ready",
                                                "dropping"};

static void dump_table(const meta_map *map, const meta_table *t)
{
    printf("table %s id=%llu engine=%s replicas=%d state=%s\n", t->name,
           (unsigned long long)t->id, meta_engine_name(t->engine), t->replicas,
           table_state_names[t->state]);
    size_t n;
    const meta_range *r = meta_map_ranges(map, t->id, &n);
    for (size_t i = 0; i < n; i++) {
        printf("  range %llu [", (unsigned long long)r[i].id);
        print_key(r[i].start, r[i].start_len, "-inf");
        printf(", ");
        print_key(r[i].end, r[i].end_len, "+inf");
        printf(") epoch=%llu replicas=", (unsigned long long)r[i].epoch);
        for (int k = 0; k < r[i].n_replicas; k++)
            printf("%s%llu", k ? "," : "", (unsigned long long)r[i].replicas[k]);
        const meta_leader *l = meta_map_leader(map, r[i].id);
        if (l)
            printf(" leader=%llu term=%llu", (unsigned long long)l->node_id,
                   (unsigned long long)l->term);
        if (r[i].state == META_RANGE_MIGRATING)
            printf(" migrating-from=%llu", (unsigned long long)r[i].from);
        printf("\n");
    }
}

static int dump(meta *m)
{
    meta_map *map;
    int rc = meta_load(m, &map);
    if (rc != 0)
        return rc;
    printf("revision %lld\n", (long long)meta_map_revision(map));
    for (size_t i = 0; i < meta_map_node_count(map); i++) {
        const meta_node *nd = meta_map_node_at(map, i);
        printf("node %llu addr=%s capacity=%llu %s\n",
               (unsigned long long)nd->id, nd->addr,
               (unsigned long long)nd->capacity, nd->live ? "live" : "down");
    }
    for (size_t i = 0; i < meta_map_table_count(map); i++)
        dump_table(map, meta_map_table_at(map, i));
    meta_map_release(map);
    return CAIRN_OK;
}

static int run(const char *verb, const char *file, const char *endpoints,
               const char *prefix)
{
    etcd *c = NULL;
    meta *m = NULL;
    int rc = etcd_open(&c, endpoints, 5000);
    if (rc == 0)
        rc = meta_open(&m, c, prefix);
    size_t n = 0;
    if (rc == 0 && strcmp(verb, "backup") == 0) {
        rc = meta_backup(m, file, &n);
        if (rc == 0)
            printf("saved %zu keys of %s to %s\n", n, meta_prefix(m), file);
    } else if (rc == 0 && strcmp(verb, "restore") == 0) {
        rc = meta_restore(m, file, &n);
        if (rc == 0)
            printf("restored %zu keys into %s\n", n, meta_prefix(m));
    } else if (rc == 0) {
        rc = dump(m);
    }
    if (rc != 0)
        fprintf(stderr, "cairn meta %s: %s (%s)%s\n", verb,
                cairn_err_message(rc), cairn_err_word(rc),
                rc == CAIRN_ERR_EXISTS ? ": the prefix is not empty" : "");
    meta_close(m);
    etcd_close(c);
    return rc == 0 ? 0 : 1;
}

int cmd_meta(int argc, char **argv)
{
    const char *endpoints = META_DEFAULT_ETCD, *prefix = NULL, *file = NULL;
    if (argc < 2)
        return meta_usage(stderr);
    const char *verb = argv[1];
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0)
        return meta_usage(stdout);
    bool needs_file = strcmp(verb, "backup") == 0 || strcmp(verb, "restore") == 0;
    if (!needs_file && strcmp(verb, "dump") != 0)
        return meta_usage(stderr);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--etcd") == 0 && i + 1 < argc)
            endpoints = argv[++i];
        else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
            prefix = argv[++i];
        else if (needs_file && !file && argv[i][0] != '-')
            file = argv[i];
        else
            return meta_usage(stderr);
    }
    if (needs_file && !file)
        return meta_usage(stderr);
    return run(verb, file, endpoints, prefix);
}
