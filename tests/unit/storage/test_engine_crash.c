/*
 * Crash test of the index store's durability contract (engine.h): a crash
 * at any point leaves the store openable, with each range's data equal to
 * exactly the state at its stored applied index, and loses nothing that
 * engine_sync() made durable.
 *
 * A child process (this binary, re-executed) opens the store and writes a stream of batches; batch i
 * sets applied index i on two ranges and writes keys and values (and, one
 * batch in eight, an interval delete) that are a pure function of i, so the
 * parent can compute the expected state at any index. The child reports
 * through a pipe when it opened the store, when it is about to write batch
 * i, when batch i is written, and when it synced. The parent kills it with
 * SIGKILL after a random delay (sometimes during open and recovery, mostly
 * mid-stream), 50 times per engine on the same directory so that any damage
 * would accumulate, and after each kill reopens the store and checks it.
 * Set CAIRN_CRASH_SEED to replay a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/limits.h"
#include "engine_fixture.h"

#define ROUNDS 50
#define NKEYS 64       /* keys per range */
#define OPS_PER_BATCH 6
#define SYNC_EVERY 16  /* batches between engine_sync() calls */
#define MSG_LEN 9      /* tag byte + big-endian u64 */

/* A small RocksDB memtable, so that kills also land in flushes and
 * compactions, not only in WAL appends. */
static const engine_options crash_opts = {
    .rocks_write_buffer_size = 256 * 1024,
};

enum { MSG_OPENED = 'o', MSG_INTENT = 'i', MSG_DONE = 'd', MSG_SYNCED = 's' };

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- the deterministic workload --------------------------------------- */

typedef struct op {
    uint64_t range;
    unsigned key;
    bool tombstone;
    size_t value_len;
} op;

/* Operation j of batch i. */
static op batch_op(uint64_t i, unsigned j)
{
    uint64_t h = mix(i * OPS_PER_BATCH + j);
    op o;
    o.range = 1 + (j & 1);
    o.key = (unsigned)(h % NKEYS);
    o.tombstone = (h >> 20) % 8 == 0;
    /* mostly small values, sometimes large ones that span many pages */
    o.value_len = (h >> 32) % 16 == 0 ? (h >> 40) % 70000 : (h >> 40) % 300;
    return o;
}

/* memcmp order, a shorter prefix first (the store's key order). */
static int engine_key_cmp_(const uint8_t *a, size_t alen, const uint8_t *b,
                           size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* Key k: every 16th is 1000 bytes long (three LMDB chunks). */
static size_t make_key(unsigned k, uint8_t *out)
{
    size_t len = k % 16 == 15 ? 1000 : 8;
    memset(out, 'L', len);
    snprintf((char *)out + len - 4, 5, "%04u", k);
    return len;
}

static void make_value(uint64_t i, unsigned j, uint8_t *out, size_t len)
{
    for (size_t n = 0; n < len; n += 8) {
        uint64_t r = mix((i << 8) ^ j ^ (n << 20));
        memcpy(out + n, &r, len - n < 8 ? len - n : 8);
    }
}

/* One batch in eight starts by deleting the keys of [lo, hi) of a range
 * (an empty interval when lo >= hi). */
typedef struct interval {
    bool on;
    uint64_t range;
    uint8_t lo[CAIRN_KEY_MAX], hi[CAIRN_KEY_MAX];
    size_t lo_len, hi_len;
} interval;

static void batch_interval(uint64_t i, interval *iv)
{
    uint64_t h = mix(i ^ 0x5eed5eed5eedull);
    iv->on = h % 8 == 0;
    iv->range = 1 + ((h >> 8) & 1);
    iv->lo_len = make_key((unsigned)((h >> 16) % NKEYS), iv->lo);
    iv->hi_len = make_key((unsigned)((h >> 32) % NKEYS), iv->hi);
}

static bool in_interval(const interval *iv, uint64_t range, unsigned k)
{
    uint8_t key[CAIRN_KEY_MAX];
    size_t klen = make_key(k, key);
    return iv->on && iv->range == range &&
           engine_key_cmp_(iv->lo, iv->lo_len, key, klen) <= 0 &&
           engine_key_cmp_(key, klen, iv->hi, iv->hi_len) < 0;
}

static int write_batch(engine *e, engine_batch *b, uint64_t i, uint8_t *val)
{
    uint8_t key[CAIRN_KEY_MAX];
    engine_batch_clear(b);
    interval iv;
    batch_interval(i, &iv);
    if (iv.on && engine_batch_delete_interval(b, iv.range, iv.lo, iv.lo_len,
                                              iv.hi, iv.hi_len) != 0)
        return -1;
    for (unsigned j = 0; j < OPS_PER_BATCH; j++) {
        op o = batch_op(i, j);
        size_t klen = make_key(o.key, key);
        seq s = seq_make(i, j, 7);
        int rc;
        if (o.tombstone) {
            rc = engine_batch_tombstone(b, o.range, key, klen, &s);
        } else {
            make_value(i, j, val, o.value_len);
            rc = engine_batch_put(b, o.range, key, klen, &s, val,
                                  o.value_len);
        }
        if (rc != 0)
            return rc;
    }
    engine_batch_set_applied(b, 1, i);
    engine_batch_set_applied(b, 2, i);
    return engine_write(e, b);
}

/* ---- the child -------------------------------------------------------- */

static void report(int fd, char tag, uint64_t v)
{
    uint8_t m[MSG_LEN];
    m[0] = (uint8_t)tag;
    be_put_u64(m + 1, v);
    if (write(fd, m, sizeof m) != (ssize_t)sizeof m)
        _exit(3);
}

/* Runs in its own process (main's --child), until killed. */
static void child(engine_kind kind, const char *dir, int fd)
{
    engine *e;
    if (engine_open(kind, dir, &crash_opts, &e) != 0)
        _exit(1);
    uint64_t i;
    if (engine_applied_index(e, NULL, 1, &i) != 0)
        _exit(1);
    report(fd, MSG_OPENED, i);
    engine_batch *b = engine_batch_new();
    uint8_t *val = malloc(70000);
    for (i++;; i++) {
        report(fd, MSG_INTENT, i);
        if (write_batch(e, b, i, val) != 0)
            _exit(2);
        report(fd, MSG_DONE, i);
        if (i % SYNC_EVERY == 0) {
            if (engine_sync(e) != 0)
                _exit(2);
            report(fd, MSG_SYNCED, i);
        }
    }
}

/* ---- the parent ------------------------------------------------------- */

typedef struct progress {
    bool opened;
    uint64_t intent, done, synced;
    uint8_t partial[MSG_LEN];
    size_t npartial;
} progress;

static void take(progress *p, const uint8_t *m)
{
    uint64_t v = be_get_u64(m + 1);
    switch (m[0]) {
    case MSG_OPENED:
        p->opened = true;
        p->intent = p->done = v;
        break;
    case MSG_INTENT:
        p->intent = v;
        break;
    case MSG_DONE:
        p->done = v;
        break;
    case MSG_SYNCED:
        p->synced = v;
        break;
    default:
        fail_msg("bad message from the child");
    }
}

/* Read what is there (waiting at most timeout_ms); false at EOF. */
static bool drain(int fd, progress *p, int timeout_ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return true;
    uint8_t buf_[4096];
    ssize_t n = read(fd, buf_, sizeof buf_);
    if (n <= 0)
        return n < 0 && errno == EINTR;
    for (ssize_t k = 0; k < n; k++) {
        p->partial[p->npartial++] = buf_[k];
        if (p->npartial == MSG_LEN) {
            take(p, p->partial);
            p->npartial = 0;
        }
    }
    return true;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Keep reading until `until_ms`, or until the child opened the store if
 * `until_opened` (bounded by a 20 s deadline either way). */
static void follow(int fd, progress *p, uint64_t until_ms, bool until_opened)
{
    uint64_t deadline = now_ms() + 20000;
    for (;;) {
        uint64_t t = now_ms();
        if (until_opened ? p->opened : t >= until_ms)
            return;
        assert_true(t < deadline);
        uint64_t end = until_opened ? deadline : until_ms;
        if (!drain(fd, p, (int)(end - t)))
            fail_msg("the child died on its own");
    }
}

/* The expected state of one range at applied index a: for each key, the
 * batch and op that wrote it last (0 = never written). */
typedef struct expect {
    uint64_t batch[NKEYS];
    unsigned op[NKEYS];
} expect;

static void model(uint64_t a, expect ex[2])
{
    memset(ex, 0, 2 * sizeof *ex);
    for (uint64_t i = 1; i <= a; i++) {
        interval iv;
        batch_interval(i, &iv);
        for (uint64_t r = 1; iv.on && r <= 2; r++)
            for (unsigned k = 0; k < NKEYS; k++)
                if (in_interval(&iv, r, k))
                    ex[r - 1].batch[k] = 0;
        for (unsigned j = 0; j < OPS_PER_BATCH; j++) {
            op o = batch_op(i, j);
            ex[o.range - 1].batch[o.key] = i;
            ex[o.range - 1].op[o.key] = j;
        }
    }
}

static void check_range(engine *e, uint64_t range, const expect *ex,
                        uint8_t *val)
{
    uint8_t key[CAIRN_KEY_MAX];
    buf got = BUF_INIT;
    size_t live = 0;
    for (unsigned k = 0; k < NKEYS; k++) {
        size_t klen = make_key(k, key);
        seq s;
        bool tomb;
        int rc = engine_get(e, NULL, range, key, klen, &s, &tomb, &got);
        if (ex->batch[k] == 0) {
            assert_int_equal(rc, CAIRN_ERR_NOT_FOUND);
            continue;
        }
        assert_int_equal(rc, 0);
        op o = batch_op(ex->batch[k], ex->op[k]);
        seq want = seq_make(ex->batch[k], ex->op[k], 7);
        assert_int_equal(seq_cmp(&s, &want), 0);
        assert_int_equal(tomb, o.tombstone);
        if (o.tombstone) {
            assert_int_equal(got.len, 0);
            continue;
        }
        live++;
        make_value(ex->batch[k], ex->op[k], val, o.value_len);
        assert_int_equal(got.len, o.value_len);
        if (got.len)
            assert_memory_equal(got.data, val, got.len);
    }
    /* and nothing else: the iterator sees exactly the live keys */
    engine_iter *it;
    engine_entry en;
    size_t n = 0;
    assert_int_equal(engine_iter_open(e, NULL, range, NULL, 0, NULL, 0, 0, 0,
                                      &it), 0);
    while (engine_iter_next(it, &en) == 1)
        n++;
    engine_iter_close(it);
    assert_int_equal(n, live);
    buf_free(&got);
}

/* Reopen after a kill and check the contract; returns the applied index. */
static uint64_t verify(engine_kind kind, const char *dir, const progress *p,
                       uint64_t before)
{
    engine *e;
    assert_int_equal(engine_open(kind, dir, &crash_opts, &e), 0);
    uint64_t a1, a2;
    assert_int_equal(engine_applied_index(e, NULL, 1, &a1), 0);
    assert_int_equal(engine_applied_index(e, NULL, 2, &a2), 0);
    assert_int_equal(a1, a2); /* one batch, both ranges */
    /* A process kill loses nothing completed: the applied index is the
     * last batch done, or the one in flight if it committed. */
    uint64_t done = p->opened ? p->done : before;
    uint64_t intent = p->opened ? p->intent : before;
    if (a1 != done && a1 != intent)
        fail_msg("applied %llu, child had done %llu (in flight %llu)",
                 (unsigned long long)a1, (unsigned long long)done,
                 (unsigned long long)intent);
    assert_true(a1 >= p->synced);
    expect ex[2];
    model(a1, ex);
    uint8_t *val = malloc(70000);
    check_range(e, 1, &ex[0], val);
    check_range(e, 2, &ex[1], val);
    free(val);
    engine_close(e);
    return a1;
}

static void crash_round(engine_kind kind, const char *dir, unsigned *rng,
                        uint64_t *applied)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fcntl(fds[0], F_SETFD, FD_CLOEXEC); /* the child only writes */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        /* A fresh process image: the parent has RocksDB's background
         * threads from earlier rounds, and a forked child would inherit
         * its thread pool without the threads (no flush, no compaction). */
        char fd[16];
        snprintf(fd, sizeof fd, "%d", fds[1]);
        execl("/proc/self/exe", "test_storage_engine_crash", "--child",
              engine_kind_name(kind), dir, fd, (char *)NULL);
        _exit(4);
    }
    close(fds[1]);
    progress p = {0};
    /* One round in five kills at any moment, open and recovery included;
     * the rest let the child open and then write for a while. */
    if (rand_r(rng) % 5 == 0) {
        follow(fds[0], &p, now_ms() + (uint64_t)(rand_r(rng) % 30), false);
    } else {
        follow(fds[0], &p, 0, true);
        follow(fds[0], &p, now_ms() + 1 + (uint64_t)(rand_r(rng) % 80),
               false);
    }
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    while (drain(fds[0], &p, 1000))
        ;
    close(fds[0]);
    *applied = verify(kind, dir, &p, *applied);
}

static unsigned crash_seed(void)
{
    const char *s = getenv("CAIRN_CRASH_SEED");
    unsigned seed = s ? (unsigned)strtoul(s, NULL, 10)
                      : (unsigned)time(NULL) ^ (unsigned)getpid();
    print_message("crash test seed %u (CAIRN_CRASH_SEED to replay)\n", seed);
    return seed;
}

static void crash_test(engine_kind kind)
{
    char dir[256];
    fx_tmpdir(dir, "crash");
    unsigned rng = crash_seed();
    uint64_t applied = 0, max_applied = 0;
    for (int r = 0; r < ROUNDS; r++) {
        crash_round(kind, dir, &rng, &applied);
        if (applied > max_applied)
            max_applied = applied;
    }
    print_message("%s: %d kills, reached applied index %llu\n",
                  engine_kind_name(kind), ROUNDS,
                  (unsigned long long)max_applied);
    assert_true(max_applied > 0); /* the stream did make progress */
    fx_rmtree(dir);
}

static void test_crash_btree(void **state)
{
    (void)state;
    crash_test(ENGINE_BTREE);
}

static void test_crash_lsm(void **state)
{
    (void)state;
    crash_test(ENGINE_LSM);
}

int main(int argc, char **argv)
{
    engine_kind kind;
    if (argc == 5 && strcmp(argv[1], "--child") == 0 &&
        engine_kind_parse(argv[2], &kind) == 0)
        child(kind, argv[3], atoi(argv[4])); /* never returns */
    /* a child killed mid-write must not take the parent with it */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_btree),
        cmocka_unit_test(test_crash_lsm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
