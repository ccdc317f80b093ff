/*
 * engine_bench - throughput and latency of the two index-store engines
 * (src/storage/engine.h), side by side. A benchmark, not a test: nothing
 * here asserts a number; docs/BENCHMARKS.md records what it printed.
 *
 * For each engine, in a fresh directory:
 *   load      N keys (16 bytes, random order) with 100-byte values, in
 *             batches of 100, each batch also setting the applied index (as
 *             the replication layer does); then engine_sync()
 *   put x1    P more puts, one per batch (the worst case for batching)
 *   get       G point reads of random loaded keys
 *   scan      S scans of 100 keys from random start keys
 * and prints ops/s, keys/s, and p50/p99 latency per operation (a batch, a
 * get, a 100-key scan).
 *
 * usage: engine_bench [-n keys] [-p puts] [-g gets] [-s scans]
 *                     [-e btree|lsm|both] [-d dir]
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "storage/engine.h"

#define VALUE_LEN 100
#define KEY_LEN 16
#define LOAD_BATCH 100
#define SCAN_LEN 100
#define RANGE_ID 1

typedef struct bench_opts {
    uint64_t keys, puts, gets, scans;
    const char *engines;
    const char *dir;
} bench_opts;

typedef struct result {
    const char *name;
    uint64_t ops, keys;
    double seconds;
    uint64_t p50_ns, p99_ns;
} result;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Key number i, scrambled so that loading in i order is random order. */
static void make_key(uint64_t i, uint8_t key[KEY_LEN])
{
    uint64_t s = i;
    snprintf((char *)key, KEY_LEN + 1, "k%015llu",
             (unsigned long long)(rng_next(&s) % 1000000000000000ull));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void finish(result *r, uint64_t *lat, uint64_t n, uint64_t t0)
{
    r->seconds = (double)(now_ns() - t0) / 1e9;
    qsort(lat, n, sizeof *lat, cmp_u64);
    r->p50_ns = n ? lat[n / 2] : 0;
    r->p99_ns = n ? lat[(n * 99) / 100] : 0;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "engine_bench: %s: %s\n", what, cairn_err_message(rc));
    exit(1);
}

/* Puts of keys [first, first + n) in batches of `per`. */
static void bench_puts(engine *e, uint64_t first, uint64_t n, uint64_t per,
                       uint64_t *applied, uint64_t *lat, result *r)
{
    engine_batch *b = engine_batch_new();
    uint8_t key[KEY_LEN + 1], val[VALUE_LEN];
    memset(val, 'v', sizeof val);
    uint64_t t0 = now_ns(), nb = 0;
    for (uint64_t i = first; i < first + n; i += per, nb++) {
        engine_batch_clear(b);
        for (uint64_t j = i; j < i + per && j < first + n; j++) {
            make_key(j, key);
            seq s = seq_make(j + 1, 0, 1);
            int rc = engine_batch_put(b, RANGE_ID, key, KEY_LEN, &s, val,
                                      VALUE_LEN);
            if (rc != 0)
                die("batch", rc);
        }
        engine_batch_set_applied(b, RANGE_ID, ++*applied);
        uint64_t t = now_ns();
        int rc = engine_write(e, b);
        if (rc != 0)
            die("write", rc);
        lat[nb] = now_ns() - t;
    }
    r->ops = nb;
    r->keys = n;
    finish(r, lat, nb, t0);
    engine_batch_free(b);
}

static void bench_gets(engine *e, uint64_t nkeys, uint64_t n, uint64_t *lat,
                       result *r)
{
    uint8_t key[KEY_LEN + 1];
    buf val = BUF_INIT;
    uint64_t s = 42, t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        make_key(rng_next(&s) % nkeys, key);
        uint64_t t = now_ns();
        int rc = engine_get(e, NULL, RANGE_ID, key, KEY_LEN, NULL, NULL, &val);
        if (rc != 0)
            die("get", rc);
        lat[i] = now_ns() - t;
    }
    r->ops = r->keys = n;
    finish(r, lat, n, t0);
    buf_free(&val);
}

static void bench_scans(engine *e, uint64_t nkeys, uint64_t n, uint64_t *lat,
                        result *r)
{
    uint8_t key[KEY_LEN + 1];
    uint64_t s = 7, t0 = now_ns(), total = 0;
    for (uint64_t i = 0; i < n; i++) {
        make_key(rng_next(&s) % nkeys, key);
        uint64_t t = now_ns();
        engine_iter *it;
        engine_entry en;
        int rc = engine_iter_open(e, NULL, RANGE_ID, key, KEY_LEN, NULL, 0,
                                  SCAN_LEN, 0, &it);
        if (rc != 0)
            die("iter", rc);
        while ((rc = engine_iter_next(it, &en)) == 1)
            total++;
        engine_iter_close(it);
        if (rc < 0)
            die("scan", rc);
        lat[i] = now_ns() - t;
    }
    r->ops = n;
    r->keys = total;
    finish(r, lat, n, t0);
}

static void print_row(const char *eng, const result *r)
{
    printf("%-6s %-16s %9llu %11.0f %11.0f %9.1f %9.1f\n", eng, r->name,
           (unsigned long long)r->ops, (double)r->ops / r->seconds,
           (double)r->keys / r->seconds, (double)r->p50_ns / 1e3,
           (double)r->p99_ns / 1e3);
    fflush(stdout);
}

static void bench_engine(engine_kind kind, const bench_opts *o)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", o->dir, engine_kind_name(kind));
    engine *e;
    int rc = engine_open(kind, dir, NULL, &e);
    if (rc != 0)
        die("open", rc);
    uint64_t most = o->keys > o->gets ? o->keys : o->gets;
    most = most > o->scans ? most : o->scans;
    most = most > o->puts ? most : o->puts;
    uint64_t *lat = malloc(most * sizeof *lat);
    uint64_t applied = 0;
    const char *name = engine_kind_name(kind);
    result r = {"put batch=100", 0, 0, 0, 0, 0};
    bench_puts(e, 0, o->keys, LOAD_BATCH, &applied, lat, &r);
    if ((rc = engine_sync(e)) != 0)
        die("sync", rc);
    print_row(name, &r);
    r.name = "put batch=1";
    bench_puts(e, o->keys, o->puts, 1, &applied, lat, &r);
    print_row(name, &r);
    r.name = "get random";
    bench_gets(e, o->keys, o->gets, lat, &r);
    print_row(name, &r);
    r.name = "scan 100 keys";
    bench_scans(e, o->keys, o->scans, lat, &r);
    print_row(name, &r);
    uint64_t bytes, keys;
    if (engine_range_stats(e, RANGE_ID, &bytes, &keys) == 0)
        printf("%-6s range stats: %llu keys, %llu bytes\n", name,
               (unsigned long long)keys, (unsigned long long)bytes);
    free(lat);
    engine_close(e);
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void usage(void)
{
    fprintf(stderr, "usage: engine_bench [-n keys] [-p puts] [-g gets] "
                    "[-s scans] [-e btree|lsm|both] [-d dir]\n");
    exit(2);
}

static bench_opts parse(int argc, char **argv)
{
    bench_opts o = {1000000, 5000, 200000, 20000, "both", NULL};
    int c;
    while ((c = getopt(argc, argv, "n:p:g:s:e:d:")) != -1) {
        switch (c) {
        case 'n': o.keys = strtoull(optarg, NULL, 10); break;
        case 'p': o.puts = strtoull(optarg, NULL, 10); break;
        case 'g': o.gets = strtoull(optarg, NULL, 10); break;
        case 's': o.scans = strtoull(optarg, NULL, 10); break;
        case 'e': o.engines = optarg; break;
        case 'd': o.dir = optarg; break;
        default: usage();
        }
    }
    if (o.keys == 0 || o.puts == 0 || o.gets == 0 || o.scans == 0)
        usage();
    return o;
}

int main(int argc, char **argv)
{
    bench_opts o = parse(argc, argv);
    char tmp[] = "/tmp/cairn-engine-bench-XXXXXX";
    if (o.dir == NULL && (o.dir = mkdtemp(tmp)) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    printf("engine_bench: %llu keys of %d bytes, %d-byte values, in %s\n",
           (unsigned long long)o.keys, KEY_LEN, VALUE_LEN, o.dir);
    printf("%-6s %-16s %9s %11s %11s %9s %9s\n", "engine", "operation", "ops",
           "ops/s", "keys/s", "p50 us", "p99 us");
    bool both = strcmp(o.engines, "both") == 0;
    if (both || strcmp(o.engines, "btree") == 0)
        bench_engine(ENGINE_BTREE, &o);
    if (both || strcmp(o.engines, "lsm") == 0)
        bench_engine(ENGINE_LSM, &o);
    if (o.dir == tmp) /* ours: clean up; a -d directory is the user's */
        nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
