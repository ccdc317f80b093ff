/*
 * cmd_status.c - `cairn status`: the cluster on one screen (issue 9,
 * "Seeing it").
 *
 *   cairn status [--etcd URLS] [--prefix P] [--dir DIR] [--json]
 *                [--watch [SECONDS]]
 *
 * Nodes (state, zone, replicas, leaders, bytes, lag), the ranges that are
 * not healthy, and the operations under way with their progress. All of it
 * comes from etcd (meta/status.h), in one read: the JSON of --json is the
 * document meta_status_json builds, and the screen is drawn from that same
 * document. Without --etcd, a `cairn dev` directory (DIR, ./data or .)
 * says where its etcd is (DIR/etcd.url).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/err.h"
#include "meta/meta.h"
#include "meta/status.h"

#define STATUS_DEFAULT_ETCD "http://127.0.0.1:2379"

static int status_usage(FILE *out)
{
    fprintf(out,
            "usage: cairn status [--etcd URLS] [--prefix P] [--dir DIR]\n"
            "                    [--json] [--watch [SECONDS]]\n\n"
            "The cluster on one screen: nodes, unhealthy ranges, operations\n"
            "under way (replacements, drains, rebalancing).\n"
            "  --etcd    etcd client URLs (default: DIR/etcd.url of a `cairn\n"
            "            dev` directory - DIR, ./data or . - else %s)\n"
            "  --json    the same as one JSON document (docs/OPERATIONS.md)\n"
            "  --watch   redraw every SECONDS (default 1) until Ctrl-C\n",
            STATUS_DEFAULT_ETCD);
    return out == stdout ? 0 : 2;
}

/* The etcd URL a `cairn dev` directory records, into url[0..n). */
static bool dev_url(const char *dir, char *url, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/etcd.url", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(url, (int)n, f) != NULL;
    fclose(f);
    if (ok)
        url[strcspn(url, "\r\n")] = '\0';
    return ok && url[0];
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool jbool(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void human_bytes(double b, char *out, size_t n)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void ago(double since_ms, double now_ms, char *out, size_t n)
{
    if (since_ms <= 0) {
        snprintf(out, n, "-");
        return;
    }
    double s = (now_ms - since_ms) / 1000;
    if (s < 120)
        snprintf(out, n, "%.0fs", s < 0 ? 0 : s);
    else if (s < 7200)
        snprintf(out, n, "%.0fm", s / 60);
    else
        snprintf(out, n, "%.0fh", s / 3600);
}

static void bar(double p, char *out, size_t n)
{
    int width = 24, full = (int)(p * width + 0.5);
    size_t k = 0;
    out[k++] = '[';
    for (int i = 0; i < width && k + 2 < n; i++)
        out[k++] = i < full ? '#' : '-';
    out[k++] = ']';
    out[k] = '\0';
}

static void render(const cJSON *j, const char *etcd_url)
{
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(j, "summary");
    double now = jnum(j, "time");
    const char *ctl = jstr(j, "controller");
    printf("cairn status - etcd %s, revision %.0f, controller %s\n\n",
           etcd_url, jnum(j, "revision"), ctl[0] ? ctl : "(none active)");
    printf("nodes: %.0f (%.0f live, %.0f suspect, %.0f dead, %.0f draining)\n",
           jnum(sum, "nodes"), jnum(sum, "live"), jnum(sum, "suspect"),
           jnum(sum, "dead"), jnum(sum, "draining"));
    printf("  %4s  %-21s %-8s %-8s %8s %8s %10s %9s  %s\n", "ID", "ADDRESS",
           "ZONE", "STATE", "REPLICAS", "LEADERS", "BYTES", "LAG", "NOTE");
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(j, "nodes"))
    {
        char bytes[32], lag[32], since[16], note[200];
        human_bytes(jnum(n, "bytes"), bytes, sizeof bytes);
        snprintf(lag, sizeof lag, "%.1fs", jnum(n, "lag_seconds"));
        ago(jnum(n, "since"), now, since, sizeof since);
        const char *state = jstr(n, "state"), *reason = jstr(n, "reason");
        snprintf(note, sizeof note, "%s%s%s%s%s",
                 jbool(n, "draining") ? "draining" : "",
                 jbool(n, "draining") && reason[0] ? "; " : "", reason,
                 strcmp(state, "live") != 0 ? " for " : "",
                 strcmp(state, "live") != 0 ? since : "");
        printf("  %4.0f  %-21s %-8s %-8s %8.0f %8.0f %10s %9s  %s\n",
               jnum(n, "id"), jstr(n, "addr"),
               jstr(n, "zone")[0] ? jstr(n, "zone") : "-", state,
               jnum(n, "replicas"), jnum(n, "leaders"), bytes, lag, note);
    }
    printf("\nranges: %.0f in %.0f tables, %.0f replicas; %.0f not healthy "
           "(%.0f under-replicated)\n", jnum(sum, "ranges"),
           jnum(sum, "tables"), jnum(sum, "replicas"),
           jnum(sum, "unhealthy_ranges"), jnum(sum, "under_replicated"));
    const cJSON *bad = cJSON_GetObjectItemCaseSensitive(j, "unhealthy");
    int shown = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, bad)
    {
        if (shown++ == 20) {
            printf("  ... (--json lists them all)\n");
            break;
        }
        char probs[160] = "", reps[96] = "";
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(r, "problems"))
        {
            size_t l = strlen(probs);
            snprintf(probs + l, sizeof probs - l, "%s%s", l ? "," : "",
                     x->valuestring);
        }
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(r, "replicas"))
        {
            size_t l = strlen(reps);
            snprintf(reps + l, sizeof reps - l, "%s%.0f", l ? "," : "",
                     x->valuedouble);
        }
        const cJSON *ld = cJSON_GetObjectItemCaseSensitive(r, "leader");
        char leader[24];
        snprintf(leader, sizeof leader, cJSON_IsNumber(ld) ? "%.0f" : "-",
                 cJSON_IsNumber(ld) ? ld->valuedouble : 0.0);
        printf("  range %-6.0f %-16s %-40s replicas %s (%.0f healthy of "
               "%.0f), leader %s\n", jnum(r, "range"), jstr(r, "table"),
               probs, reps, jnum(r, "healthy"), jnum(r, "want"), leader);
    }
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(j, "operations");
    printf("\noperations: %s\n", cJSON_GetArraySize(ops) ? "" : "none");
    cJSON_ArrayForEach(r, ops)
    {
        char b[40], who[32] = "", since[16];
        bar(jnum(r, "progress"), b, sizeof b);
        ago(jnum(r, "since"), now, since, sizeof since);
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r, "node")))
            snprintf(who, sizeof who, " node %.0f", jnum(r, "node"));
        printf("  %-9s%-9s %s %3.0f/%-3.0f %s (%s)\n", jstr(r, "kind"), who,
               b, jnum(r, "done"), jnum(r, "total"), jstr(r, "detail"),
               since);
    }
    const cJSON *moves = cJSON_GetObjectItemCaseSensitive(j, "moves");
    if (cJSON_GetArraySize(moves))
        printf("\nmoves under way:\n");
    cJSON_ArrayForEach(r, moves)
    {
        char since[16];
        ago(jnum(r, "since"), now, since, sizeof since);
        printf("  range %-6.0f %-16s %-9s add node %.0f, remove node %.0f "
               "(%s, by %s)\n", jnum(r, "range"), jstr(r, "table"),
               jstr(r, "kind"), jnum(r, "add"), jnum(r, "remove"), since,
               jstr(r, "by"));
    }
    const cJSON *rels = cJSON_GetObjectItemCaseSensitive(j, "relocations");
    if (cJSON_GetArraySize(rels))
        printf("\nranges moving to new groups (TABLE.MOVE):\n");
    cJSON_ArrayForEach(r, rels)
    {
        char since[16], to[64] = "";
        ago(jnum(r, "since"), now, since, sizeof since);
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(r, "to"))
        {
            size_t l = strlen(to);
            snprintf(to + l, sizeof to - l, "%s%.0f", l ? "," : "",
                     x->valuedouble);
        }
        printf("  range %-6.0f %-16s -> range %.0f on nodes %s: %-6s "
               "%.0f keys, %.0f bytes copied (%.0f bytes/s) (%s)\n",
               jnum(r, "range"), jstr(r, "table"), jnum(r, "dest"), to,
               jstr(r, "step"), jnum(r, "keys_copied"),
               jnum(r, "bytes_copied"), jnum(r, "bytes_per_sec"), since);
    }
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One status: read etcd, print. 0, or 1 on an error (said on stderr). */
static int once(meta *m, const char *url, bool json, bool clear)
{
    meta_map *map = NULL;
    char ctl[128] = "";
    int rc = meta_load(m, &map);
    if (rc != 0) {
        fprintf(stderr, "cairn status: cannot read the metadata from %s: "
                "%s (%s)\n", url, cairn_err_message(rc), etcd_last_error());
        return 1;
    }
    bool has_ctl = meta_election_leader(m, ctl, sizeof ctl) == 0;
    meta_status_opts o = {.now_ms = wall_ms(),
                          .controller = has_ctl ? ctl : NULL};
    buf out = BUF_INIT;
    rc = meta_status_json(map, &o, &out);
    meta_map_release(map);
    if (rc != 0) {
        buf_free(&out);
        fprintf(stderr, "cairn status: %s\n", cairn_err_message(rc));
        return 1;
    }
    if (json) {
        printf("%.*s\n", (int)out.len, (const char *)out.data);
    } else {
        cJSON *j = cJSON_ParseWithLength((const char *)out.data, out.len);
        if (clear)
            printf("\033[H\033[2J");
        if (j)
            render(j, url);
        cJSON_Delete(j);
    }
    fflush(stdout);
    buf_free(&out);
    return 0;
}

int cmd_status(int argc, char **argv)
{
    const char *etcd_url = NULL, *prefix = NULL, *dir = NULL;
    bool json = false;
    double watch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return status_usage(stdout);
        if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--watch") == 0) {
            watch = 1;
            if (v && v[0] >= '0' && v[0] <= '9' && atof(v) > 0)
                watch = atof(argv[++i]);
        } else if (v && strcmp(a, "--etcd") == 0) {
            etcd_url = argv[++i];
        } else if (v && strcmp(a, "--prefix") == 0) {
            prefix = argv[++i];
        } else if (v && strcmp(a, "--dir") == 0) {
            dir = argv[++i];
        } else {
            return status_usage(stderr);
        }
    }
    char found[512];
    if (etcd_url == NULL) {
        if (dir ? dev_url(dir, found, sizeof found)
                : dev_url("data", found, sizeof found) ||
                      dev_url(".", found, sizeof found))
            etcd_url = found;
        else if (dir) {
            fprintf(stderr, "cairn status: %s/etcd.url not found (is it a "
                    "`cairn dev` directory?)\n", dir);
            return 1;
        } else
            etcd_url = STATUS_DEFAULT_ETCD;
    }
    etcd *e = NULL;
    meta *m = NULL;
    int rc = etcd_open(&e, etcd_url, 2000);
    if (rc == 0)
        rc = meta_open(&m, e, prefix);
    if (rc != 0) {
        fprintf(stderr, "cairn status: bad --etcd or --prefix\n");
        etcd_close(e);
        return 2;
    }
    int status = 0;
    do {
        status = once(m, etcd_url, json, watch > 0 && !json);
        if (watch > 0) {
            struct timespec ts = {(time_t)watch,
                                  (long)((watch - (double)(time_t)watch) * 1e9)};
            nanosleep(&ts, NULL);
        }
    } while (watch > 0);
    meta_close(m);
    etcd_close(e);
    return status;
}
