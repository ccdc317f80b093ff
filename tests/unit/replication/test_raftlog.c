/* Tests for src/replication/raftlog.h, the node-wide Raft log:
 *  - records of several ranges round-trip (entries, hard state, snapshot
 *    metadata), truncation, compaction and drop touch one range only;
 *  - a write made with raftlog_write_now is visible before any sync;
 *  - a gap in a range's entries is reported CORRUPT, never loaded;
 *  - group commit: what 200 ranges queue in one loop iteration is one
 *    synced write, and callbacks fire in order after it;
 *  - the crash test: a child process writes batches over many ranges,
 *    reporting each batch once durable, and is SIGKILLed at a random
 *    moment, CAIRN_RAFTLOG_CRASHES times (default 200) on the same log; after
 *    each kill the log opens, every range's entries are contiguous and
 *    self-consistent, and every acknowledged entry is there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "replication/raftlog.h"

typedef struct fix {
    char dir[64];
    char path[96];
    uv_loop_t loop;
    raftlog *log;
} fix;

static int setup(void **state)
{
    fix *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/cairn-test-raftlog-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/raftlog", f->dir);
    uv_loop_init(&f->loop);
    char err[256];
    assert_int_equal(raftlog_open(&f->loop, f->path, &f->log, err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix *f = *state;
    char cmd[128];
    if (f->log)
        raftlog_close(f->log);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int durable_calls;
static int last_status;

static void durable_cb(void *arg, int status)
{
    int *order = arg;
    if (order)
        assert_int_equal(*order, durable_calls);
    durable_calls++;
    last_status = status;
}

/* Run the loop until `durable_calls` reaches `want` (10 s at most). */
static void run_until(fix *f, int want)
{
    time_t end = time(NULL) + 10;
    while (durable_calls < want && time(NULL) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(durable_calls, want);
    assert_int_equal(last_status, 0);
}

static void sync_all(fix *f)
{
    int want = durable_calls + 1;
    assert_int_equal(raftlog_when_durable(f->log, durable_cb, NULL), 0);
    run_until(f, want);
}

static struct raft_entry entry(uint64_t term, const char *text)
{
    struct raft_entry e = {.term = term, .type = RAFT_COMMAND,
                           .buf = {(void *)text, strlen(text)}};
    return e;
}

static void put(fix *f, uint64_t range, uint64_t first, unsigned n,
                uint64_t term)
{
    for (unsigned i = 0; i < n; i++) {
        char text[64];
        snprintf(text, sizeof text, "r%llu-i%llu-t%llu",
                 (unsigned long long)range,
                 (unsigned long long)(first + i), (unsigned long long)term);
        struct raft_entry e = entry(term, text);
        assert_int_equal(raftlog_put_entries(f->log, range, first + i, &e, 1),
                         0);
    }
}

static void assert_entries(fix *f, uint64_t range, uint64_t start,
                           size_t n)
{
    raftlog_state st;
    assert_int_equal(raftlog_load(f->log, range, &st), 0);
    assert_int_equal(st.start_index, start);
    assert_int_equal(st.n, n);
    for (size_t i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof want, "r%llu-i%llu-t%llu",
                 (unsigned long long)range,
                 (unsigned long long)(start + i),
                 (unsigned long long)st.entries[i].term);
        assert_int_equal(st.entries[i].buf.len, strlen(want));
        assert_memory_equal(st.entries[i].buf.base, want, strlen(want));
    }
    raftlog_state_free(&st);
}

static void test_records_round_trip_per_range(void **state)
{
    fix *f = *state;
    assert_int_equal(raftlog_put_hard(f->log, 7, 3, 2), 0);
    assert_int_equal(raftlog_put_hard(f->log, 8, 5, 0), 0);
    put(f, 7, 1, 10, 3);
    put(f, 8, 1, 4, 5);
    raftlog_snap s = {.index = 4, .term = 3, .conf_index = 1,
                      .clock = seq_make(99, 1, 7)};
    assert_int_equal(buf_append(&s.conf, "conf!", 5), 0);
    assert_int_equal(raftlog_put_snap(f->log, 7, &s), 0);
    raftlog_snap_free(&s);
    sync_all(f);

    raftlog_state st;
    assert_int_equal(raftlog_load(f->log, 7, &st), 0);
    assert_true(st.exists);
    assert_int_equal(st.term, 3);
    assert_int_equal(st.vote, 2);
    assert_true(st.has_snap);
    assert_int_equal(st.snap.index, 4);
    assert_int_equal(st.snap.conf.len, 5);
    assert_int_equal(seq_time(&st.snap.clock), 99);
    raftlog_state_free(&st);
    assert_entries(f, 7, 1, 10);
    assert_entries(f, 8, 1, 4);

    /* truncate the tail and rewrite it in a new term; compact the head */
    assert_int_equal(raftlog_truncate(f->log, 7, 8), 0);
    put(f, 7, 8, 2, 4);
    assert_int_equal(raftlog_compact(f->log, 7, 4), 0);
    sync_all(f);
    assert_entries(f, 7, 4, 6);
    assert_entries(f, 8, 1, 4);

    uint64_t *ids;
    size_t n;
    assert_int_equal(raftlog_list_ranges(f->log, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 7);
    free(ids);

    assert_int_equal(raftlog_drop(f->log, 7), 0);
    sync_all(f);
    assert_int_equal(raftlog_load(f->log, 7, &st), 0);
    assert_false(st.exists || st.has_snap || st.n);
    raftlog_state_free(&st);
    assert_entries(f, 8, 1, 4);

    /* reopen: everything durable is there */
    raftlog_close(f->log);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(raftlog_open(&f->loop, f->path, &f->log, NULL), 0);
    assert_entries(f, 8, 1, 4);
    assert_int_equal(raftlog_load(f->log, 8, &st), 0);
    assert_int_equal(st.term, 5);
    raftlog_state_free(&st);
}

static void test_write_now_visible_and_gap_corrupt(void **state)
{
    fix *f = *state;
    struct raft_entry e = entry(1, "r3-i1-t1");
    assert_int_equal(raftlog_write_now(f->log, 3, 1, 0, &e), 0);
    assert_entries(f, 3, 1, 1); /* before any batch was written */
    put(f, 3, 2, 5, 1);
    sync_all(f);
    /* delete the head without a snapshot: the log now starts at 4 with
     * nothing before it - a gap that was never written like that */
    assert_int_equal(raftlog_compact(f->log, 3, 4), 0);
    sync_all(f);
    raftlog_state st;
    assert_int_equal(raftlog_load(f->log, 3, &st), CAIRN_ERR_CORRUPT);
}

static void test_group_commit_one_sync_for_many_ranges(void **state)
{
    fix *f = *state;
    raftlog_stats s0, s1;
    sync_all(f);
    raftlog_get_stats(f->log, &s0);
    static int order[200];
    int base = durable_calls;
    for (int r = 0; r < 200; r++) {
        put(f, 1000 + (uint64_t)r, 1, 3, 1);
        order[r] = base + r;
        assert_int_equal(raftlog_when_durable(f->log, durable_cb, &order[r]),
                         0);
    }
    run_until(f, base + 200);
    raftlog_get_stats(f->log, &s1);
    assert_int_equal(s1.batches - s0.batches, 1);
    assert_int_equal(s1.entries - s0.entries, 600);
    for (int r = 0; r < 200; r += 37)
        assert_entries(f, 1000 + (uint64_t)r, 1, 3);
}

static uint64_t dir_bytes(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "du -sb %s", path);
    FILE *p = popen(cmd, "r");
    unsigned long long n = 0;
    assert_int_equal(fscanf(p, "%llu", &n), 1);
    pclose(p);
    return n;
}

/* A drop gives the disk back: the compaction it schedules rewrites the
 * files without the dropped range's records. */
static void test_drop_gives_the_disk_back(void **state)
{
    fix *f = *state;
    static char big[8192];
    memset(big, 'b', sizeof big);
    for (uint64_t i = 1; i <= 1500; i++) {
        struct raft_entry e = {.term = 1, .type = RAFT_COMMAND,
                               .buf = {big, sizeof big}};
        raftlog_put_entries(f->log, 5, i, &e, 1);
        if (i % 100 == 0)
            sync_all(f);
    }
    assert_int_equal(raftlog_put_hard(f->log, 5, 1, 0), 0);
    sync_all(f);
    uint64_t full = dir_bytes(f->path);
    assert_true(full > 10u << 20);
    assert_int_equal(raftlog_drop(f->log, 5), 0);
    sync_all(f);
    raftlog_stats st;
    time_t end = time(NULL) + 30;
    do {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(10000);
        raftlog_get_stats(f->log, &st);
    } while (st.compactions == 0 && time(NULL) < end);
    assert_int_equal(st.compactions, 1);
    uint64_t after = dir_bytes(f->path);
    if (after > full / 4)
        fail_msg("%llu bytes before the drop, %llu after its compaction",
                 (unsigned long long)full, (unsigned long long)after);
}

/* ---- the crash test --------------------------------------------------- */

#define CRASH_RANGES 64

typedef struct child {
    raftlog *log;
    uint64_t next[CRASH_RANGES];
    uint64_t term[CRASH_RANGES];
    int fd;
    unsigned seed;
} child;

typedef struct ack {
    child *c;
    uint64_t last[CRASH_RANGES]; /* last index per range in this batch */
} ack;

/* What a child writes first, once the log is open and recovered. */
#define READY_MARK UINT64_MAX

/* Wait (at most 30 s) for the child's ready mark. */
static void wait_ready(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    uint64_t rec[2];
    if (poll(&pf, 1, 30000) != 1 ||
        read(fd, rec, sizeof rec) != (ssize_t)sizeof rec ||
        rec[0] != READY_MARK)
        fail_msg("the child did not open the log within 30 s");
}

static void child_durable(void *arg, int status)
{
    ack *a = arg;
    if (status != 0)
        _exit(3);
    /* report (range, last index) pairs, written whole */
    uint64_t rec[CRASH_RANGES * 2];
    size_t n = 0;
    for (int r = 0; r < CRASH_RANGES; r++)
        if (a->last[r]) {
            rec[n++] = (uint64_t)r;
            rec[n++] = a->last[r];
        }
    if (n && write(a->c->fd, rec, n * 8) != (ssize_t)(n * 8))
        _exit(4);
    free(a);
}

/* One loop iteration's worth of writes: entries for a few ranges (some
 * large, so records span several WAL blocks), and now and then a
 * truncation rewritten in a new term, of entries queued in this same
 * batch (a put, a delete-range over it, a put again: the order inside a
 * batch must hold) - never of an earlier batch's, which may be
 * acknowledged by now: in this model an acknowledged entry never goes. */
static void child_tick(uv_idle_t *h)
{
    child *c = h->data;
    ack *a = calloc(1, sizeof *a);
    uint64_t first[CRASH_RANGES] = {0}; /* first index queued now */
    a->c = c;
    int k = 1 + rand_r(&c->seed) % 8;
    for (int i = 0; i < k; i++) {
        int r = rand_r(&c->seed) % CRASH_RANGES;
        if (first[r] == 0)
            first[r] = c->next[r];
        if (c->next[r] >= first[r] + 2 && rand_r(&c->seed) % 2 == 0) {
            c->next[r] -= 2;
            c->term[r]++;
            raftlog_truncate(c->log, (uint64_t)r + 1, c->next[r]);
        }
        int n = 1 + rand_r(&c->seed) % 4;
        for (int j = 0; j < n; j++) {
            static char data[40000];
            int len = snprintf(data, 64, "r%d-i%llu-t%llu|", r + 1,
                               (unsigned long long)c->next[r],
                               (unsigned long long)c->term[r]);
            size_t pad = rand_r(&c->seed) % 3 == 0 ? 30000 : 50;
            memset(data + len, 'x', pad);
            struct raft_entry e = {.term = c->term[r], .type = RAFT_COMMAND,
                                   .buf = {data, (size_t)len + pad}};
            raftlog_put_entries(c->log, (uint64_t)r + 1, c->next[r], &e, 1);
            a->last[r] = c->next[r]++;
        }
    }
    raftlog_when_durable(c->log, child_durable, a);
}

static void run_child(const char *path, int fd, unsigned seed)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    child c = {.fd = fd, .seed = seed};
    if (raftlog_open(&loop, path, &c.log, NULL) != 0)
        _exit(2);
    for (int r = 0; r < CRASH_RANGES; r++) {
        raftlog_state st;
        if (raftlog_load(c.log, (uint64_t)r + 1, &st) != 0)
            _exit(5);
        c.next[r] = st.n ? st.start_index + st.n : 1;
        c.term[r] = st.n ? st.entries[st.n - 1].term + 1 : 1;
        /* keep the log short, as Raft's snapshots do (their record, then
         * the entries below go), so that recovery stays quick over
         * hundreds of rounds; the last 32 entries stay */
        if (st.n > 64) {
            uint64_t below = c.next[r] - 32;
            raftlog_snap s = {.index = below - 1,
                              .term = st.entries[below - 1 - st.start_index]
                                          .term};
            raftlog_put_snap(c.log, (uint64_t)r + 1, &s);
            raftlog_compact(c.log, (uint64_t)r + 1, below);
        }
        raftlog_state_free(&st);
    }
    uint64_t ready[2] = {READY_MARK, 0}; /* open and recovered */
    if (write(fd, ready, sizeof ready) != (ssize_t)sizeof ready)
        _exit(6);
    uv_idle_t idle;
    uv_idle_init(&loop, &idle);
    idle.data = &c;
    uv_idle_start(&idle, child_tick);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

static void check_after_crash(const char *path, const uint64_t *acked)
{
    uv_loop_t loop;
    raftlog *log;
    char err[256] = "";
    uv_loop_init(&loop);
    int rc = raftlog_open(&loop, path, &log, err);
    if (rc != 0)
        fail_msg("the log does not open after a kill: %s", err);
    for (int r = 0; r < CRASH_RANGES; r++) {
        raftlog_state st;
        assert_int_equal(raftlog_load(log, (uint64_t)r + 1, &st), 0);
        uint64_t last = st.n ? st.start_index + st.n - 1 : 0;
        if (last < acked[r])
            fail_msg("range %d: acknowledged entry %llu lost (log ends at "
                     "%llu)", r + 1, (unsigned long long)acked[r],
                     (unsigned long long)last);
        for (size_t i = 0; i < st.n; i++) {
            char want[64];
            int len = snprintf(want, sizeof want, "r%d-i%llu-t%llu|", r + 1,
                               (unsigned long long)(st.start_index + i),
                               (unsigned long long)st.entries[i].term);
            assert_true(st.entries[i].buf.len > (size_t)len);
            assert_memory_equal(st.entries[i].buf.base, want, (size_t)len);
        }
        raftlog_state_free(&st);
    }
    raftlog_close(log);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

static void test_crash_loop(void **state)
{
    fix *f = *state;
    raftlog_close(f->log); /* the children own the log from here */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->log = NULL;
    const char *env = getenv("CAIRN_RAFTLOG_CRASHES");
    int rounds = env ? atoi(env) : 200;
    static uint64_t acked[CRASH_RANGES];
    srand((unsigned)time(NULL));
    for (int round = 0; round < rounds; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            run_child(f->path, p[1], (unsigned)rand() ^ (unsigned)round);
        }
        close(p[1]);
        /* kill at a random point: during open and recovery too, but every
         * eighth round only once the log is open (so that some entries
         * are acknowledged however slow the open is: a sanitizer build,
         * a busy machine) */
        if (round % 8 == 7)
            wait_ready(p[0]);
        usleep((useconds_t)(rand() % 60000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        uint64_t rec[2];
        ssize_t got;
        while ((got = read(p[0], rec, sizeof rec)) == (ssize_t)sizeof rec)
            if (rec[0] != READY_MARK && rec[1] > acked[rec[0]])
                acked[rec[0]] = rec[1];
        close(p[0]);
        if (WIFEXITED(status))
            fail_msg("child exited by itself with %d", WEXITSTATUS(status));
        check_after_crash(f->path, acked);
    }
    uint64_t total = 0;
    for (int r = 0; r < CRASH_RANGES; r++)
        total += acked[r];
    print_message("crash loop: %d kills, %llu acknowledged entries checked\n",
                  rounds, (unsigned long long)total);
    assert_true(total > 0);
    assert_int_equal(raftlog_open(&f->loop, f->path, &f->log, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_round_trip_per_range,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_write_now_visible_and_gap_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_group_commit_one_sync_for_many_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_gives_the_disk_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
