/*
 * test_runner.c - the load loop of bench/lib/bench.h against a small RESP
 * server in a thread of this test: every request answered, in order, on
 * every connection and pipeline depth; error replies counted by their first
 * word (rule 2); nil reads counted as misses (rule 3); a refused connection
 * reported, not hidden. Bounded: the server thread stops when told, and
 * every run is a fixed number of operations.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "../../../bench/lib/bench.h"
#include "common/err.h"
#include "proto/resp.h"

#define MAX_FDS 64

/* The fake server: SET and KV.PUT answer +OK, GET answers a value unless
 * the key ends in '7' (nil), a well-formed `KV.SCAN table start "" LIMIT n`
 * answers a last page of n keys, anything else "-WRONG no such command". */
typedef struct fake {
    int listen_fd;
    int stop_pipe[2];
    int port;
    pthread_t thread;
    uint64_t commands;
} fake;

static bool arg_is(const resp_arg *a, const char *s)
{
    return a->len == strlen(s) && memcmp(a->p, s, a->len) == 0;
}

/* KV.SCAN <default or t> user... "" LIMIT 1..100: the limit, else 0 */
static int scan_ok(const resp_cmd *cmd)
{
    const resp_arg *a = cmd->argv;
    if (cmd->argc != 6 || !arg_is(&a[0], "KV.SCAN") ||
        !(arg_is(&a[1], "default") || arg_is(&a[1], "t")) ||
        a[2].len != BENCH_KEY_LEN || a[3].len != 0 ||
        !arg_is(&a[4], "LIMIT"))
        return 0;
    char n[8] = {0};
    memcpy(n, a[5].p, a[5].len < 7 ? a[5].len : 7);
    return atoi(n) >= 1 && atoi(n) <= 100 ? atoi(n) : 0;
}

static void answer(buf *out, const resp_cmd *cmd)
{
    const resp_arg *a = cmd->argv;
    if (arg_is(&a[0], "ERRN") && cmd->argc == 2) {
        /* an error whose word is the argument: "-E17 made up" */
        char word[16];
        snprintf(word, sizeof word, "E%.*s", (int)a[1].len,
                 (const char *)a[1].p);
        resp_write_error(out, word, "made up");
        return;
    }
    int limit = scan_ok(cmd);
    if (limit > 0) {
        resp_write_array(out, 2);
        resp_write_bulk_str(out, "");
        resp_write_array(out, 2 * (size_t)limit);
        for (int i = 0; i < 2 * limit; i++)
            resp_write_bulk_str(out, i % 2 ? "v" : "k");
        return;
    }
    if ((a[0].len == 3 && memcmp(a[0].p, "SET", 3) == 0) ||
        (a[0].len == 6 && memcmp(a[0].p, "KV.PUT", 6) == 0)) {
        resp_write_simple(out, "OK");
    } else if (a[0].len == 3 && memcmp(a[0].p, "GET", 3) == 0) {
        if (a[1].p[a[1].len - 1] == '7')
            resp_write_nil(out);
        else
            resp_write_bulk_str(out, "value");
    } else {
        resp_write_error(out, "WRONG", "no such command");
    }
}

/* Serve one readable client; false when it closed. */
static bool serve(fake *f, int fd, resp_parser *p, buf *in)
{
    uint8_t tmp[16384];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n <= 0)
        return false;
    buf_append(in, tmp, (size_t)n);
    buf out = BUF_INIT;
    size_t off = 0;
    resp_cmd cmd;
    while (resp_parse_command(p, in->data + off, in->len - off, &cmd) == 1) {
        answer(&out, &cmd);
        off += cmd.consumed;
        f->commands++;
    }
    buf_consume(in, off);
    bool ok = write(fd, out.data, out.len) == (ssize_t)out.len;
    buf_free(&out);
    return ok;
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    struct pollfd fds[MAX_FDS];
    resp_parser *parsers[MAX_FDS] = {0};
    buf ins[MAX_FDS];
    memset(ins, 0, sizeof ins);
    size_t n = 2;
    fds[0] = (struct pollfd){.fd = f->stop_pipe[0], .events = POLLIN};
    fds[1] = (struct pollfd){.fd = f->listen_fd, .events = POLLIN};
    for (;;) {
        if (poll(fds, n, 10000) <= 0 || fds[0].revents)
            break;
        if (fds[1].revents && n < MAX_FDS) {
            int c = accept(f->listen_fd, NULL, NULL);
            if (c >= 0) {
                resp_parser_new(&parsers[n], NULL);
                fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            }
        }
        for (size_t i = 2; i < n; i++) {
            if (fds[i].fd >= 0 && fds[i].revents &&
                !serve(f, fds[i].fd, parsers[i], &ins[i])) {
                close(fds[i].fd);
                fds[i].fd = -1; /* poll ignores negative fds */
            }
        }
    }
    for (size_t i = 2; i < n; i++) {
        if (fds[i].fd >= 0)
            close(fds[i].fd);
        resp_parser_free(parsers[i]);
        buf_free(&ins[i]);
    }
    return NULL;
}

static int fake_start(void **state)
{
    static fake f;
    memset(&f, 0, sizeof f);
    f.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(f.listen_fd, (struct sockaddr *)&sa, len) != 0 ||
        listen(f.listen_fd, 64) != 0 ||
        getsockname(f.listen_fd, (struct sockaddr *)&sa, &len) != 0 ||
        pipe(f.stop_pipe) != 0)
        return -1;
    f.port = ntohs(sa.sin_port);
    if (pthread_create(&f.thread, NULL, fake_main, &f) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int fake_stop(void **state)
{
    fake *f = *state;
    if (write(f->stop_pipe[1], "x", 1) != 1)
        return -1;
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    close(f->stop_pipe[0]);
    close(f->stop_pipe[1]);
    return 0;
}

static void config(bench_config *cfg, const fake *f, const char *w)
{
    bench_config_default(cfg);
    cfg->port = f->port;
    cfg->workload[0] = w[0];
    cfg->records = 1000;
    cfg->ops = 5000;
    cfg->clients = 3;
    cfg->pipeline = 8;
}

static uint64_t word_count(const bench_result *res, const char *word)
{
    for (size_t i = 0; i < res->n_err_words; i++)
        if (strcmp(res->err_words[i].word, word) == 0)
            return res->err_words[i].count;
    return 0;
}

static void test_load_phase(void **state)
{
    fake *f = *state;
    bench_config cfg;
    config(&cfg, f, "A");
    cfg.host = "localhost"; /* names resolve, not only IP literals */
    bench_result *res;
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_LOAD, &res), 0);
    assert_int_equal(res->done, 1000); /* exactly the records */
    assert_int_equal(bench_hist_count(res->ops[BENCH_OP_INSERT].hist), 1000);
    assert_int_equal(bench_result_errors(res), 0);
    assert_false(res->aborted);
    bench_result_free(res);
}

/* Every request answered once; READ/UPDATE split near 50/50; the nil
 * replies for keys ending in 7 are misses, not errors. */
static void test_run_workload_a(void **state)
{
    fake *f = *state;
    bench_config cfg;
    config(&cfg, f, "A");
    uint64_t before = f->commands;
    bench_result *res;
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), 0);
    assert_int_equal(res->done, 5000);
    uint64_t reads = bench_hist_count(res->ops[BENCH_OP_READ].hist);
    uint64_t updates = bench_hist_count(res->ops[BENCH_OP_UPDATE].hist);
    assert_int_equal(reads + updates, 5000);
    assert_true(reads > 2000 && updates > 2000);
    assert_true(res->ops[BENCH_OP_READ].misses > 0);
    assert_true(res->ops[BENCH_OP_READ].misses < reads);
    assert_int_equal(bench_result_errors(res), 0);
    assert_int_equal(f->commands - before, 5000);
    bench_result_free(res);
}

/* Workload E with the default scan template, on `default` and on a named
 * table: the fake checks every argument of every scan. */
static void test_scans(void **state)
{
    fake *f = *state;
    const char *tables[] = {NULL, "t"};
    for (int i = 0; i < 2; i++) {
        bench_config cfg;
        config(&cfg, f, "E");
        cfg.table = tables[i];
        cfg.ops = 1000;
        bench_result *res;
        assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), 0);
        assert_int_equal(bench_result_errors(res), 0);
        assert_true(bench_hist_count(res->ops[BENCH_OP_SCAN].hist) > 800);
        assert_int_equal(bench_hist_count(res->ops[BENCH_OP_SCAN].hist) +
                             bench_hist_count(res->ops[BENCH_OP_INSERT].hist),
                         1000);
        /* lengths uniform in 1..100: a mean near 50 keys a scan */
        uint64_t scans = bench_hist_count(res->ops[BENCH_OP_SCAN].hist);
        uint64_t keys = res->ops[BENCH_OP_SCAN].items;
        assert_true(keys > scans * 40 && keys < scans * 60);
        bench_result_free(res);
    }
}

/* Workload S: scans only, every one asking for --max-scan keys; the keys
 * the replies hold are counted. */
static void test_scan_workload_counts_keys(void **state)
{
    fake *f = *state;
    bench_config cfg;
    config(&cfg, f, "S");
    cfg.ops = 500;
    cfg.max_scan = 100;
    bench_result *res;
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), 0);
    assert_int_equal(bench_result_errors(res), 0);
    assert_int_equal(bench_hist_count(res->ops[BENCH_OP_SCAN].hist), 500);
    assert_int_equal(res->ops[BENCH_OP_SCAN].items, 500 * 100);
    bench_result_free(res);
}

/* A scan command the server does not know: every scan is an error under
 * its first word, inserts succeed, nothing lands in the scan histogram. */
static void test_errors_counted_by_word(void **state)
{
    fake *f = *state;
    bench_config cfg;
    config(&cfg, f, "E");
    cfg.scan_cmd = "NOPE {start} {n}";
    cfg.pipeline = 1;
    cfg.ops = 1000;
    bench_result *res;
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), 0);
    assert_int_equal(res->done, 1000);
    uint64_t scans = res->ops[BENCH_OP_SCAN].errors;
    assert_true(scans > 800);
    assert_int_equal(bench_hist_count(res->ops[BENCH_OP_SCAN].hist), 0);
    assert_int_equal(bench_hist_count(res->ops[BENCH_OP_INSERT].hist) + scans,
                     1000);
    assert_int_equal(word_count(res, "WRONG"), scans);
    assert_int_equal(bench_result_errors(res), scans);
    bench_result_free(res);
}

/* 40 distinct error words: the table keeps the first 15 and counts the
 * rest under OTHER; nothing is lost from the total. */
static void test_error_words_bounded(void **state)
{
    fake *f = *state;
    bench_config cfg;
    config(&cfg, f, "E");
    cfg.scan_cmd = "ERRN {n}";
    cfg.max_scan = 40;
    cfg.ops = 3000;
    bench_result *res;
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), 0);
    assert_int_equal(res->n_err_words, BENCH_ERR_WORDS);
    assert_string_equal(res->err_words[BENCH_ERR_WORDS - 1].word, "OTHER");
    uint64_t sum = 0;
    for (size_t i = 0; i < res->n_err_words; i++)
        sum += res->err_words[i].count;
    assert_int_equal(sum, res->ops[BENCH_OP_SCAN].errors);
    assert_int_equal(bench_result_errors(res), sum);
    assert_true(word_count(res, "OTHER") > 0);
    bench_result_free(res);
}

/* A duration-bound run stops on its own and drains what is in flight. */
static void test_duration_run(void **state)
{
    fake *f = *state;
    bench_config cfg;
    config(&cfg, f, "W");
    cfg.ops = 0;
    cfg.duration_s = 0.3;
    cfg.table = "t"; /* KV.PUT */
    bench_result *res;
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), 0);
    assert_true(res->done > 0);
    assert_int_equal(bench_hist_count(res->ops[BENCH_OP_UPDATE].hist),
                     res->done);
    assert_int_equal(bench_result_errors(res), 0);
    assert_true(res->elapsed_s >= 0.3);
    bench_result_free(res);
}

static void test_refused_connection(void **state)
{
    (void)state;
    /* A port nobody listens on: bind, read the port, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    bench_config cfg;
    bench_config_default(&cfg);
    cfg.port = ntohs(sa.sin_port);
    cfg.ops = 10;
    cfg.clients = 2;
    bench_result *res;
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), 0);
    assert_true(res->aborted);
    assert_int_equal(word_count(res, "ECONNREFUSED"), 2);
    assert_int_equal(res->done, 0);
    bench_result_free(res);
}

/* A server that accepts and never answers: the run still ends, after the
 * drain deadline, with every request counted as UNANSWERED. */
static void test_silent_server(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
    assert_int_equal(listen(fd, 8), 0); /* the kernel completes connects */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    bench_config cfg;
    bench_config_default(&cfg);
    cfg.port = ntohs(sa.sin_port);
    cfg.ops = 6;
    cfg.clients = 2;
    cfg.pipeline = 3;
    cfg.records = 10;
    cfg.drain_ms = 200;
    bench_result *res;
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), 0);
    assert_int_equal(word_count(res, "UNANSWERED"), 6);
    assert_int_equal(bench_result_errors(res), 6);
    assert_false(res->aborted);
    bench_result_free(res);
    close(fd);
}

static void test_bad_config(void **state)
{
    (void)state;
    bench_config cfg;
    bench_config_default(&cfg);
    bench_result *res = NULL;
    cfg.workload[0] = 'Q';
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), CAIRN_ERR_INVALID);
    bench_config_default(&cfg);
    cfg.clients = 0;
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), CAIRN_ERR_INVALID);
    bench_config_default(&cfg);
    cfg.host = "no-such-host.invalid"; /* RFC 2606: never resolves */
    assert_int_equal(bench_run(&cfg, BENCH_PHASE_RUN, &res), CAIRN_ERR_INVALID);
    assert_null(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_phase),
        cmocka_unit_test(test_run_workload_a),
        cmocka_unit_test(test_scans),
        cmocka_unit_test(test_scan_workload_counts_keys),
        cmocka_unit_test(test_errors_counted_by_word),
        cmocka_unit_test(test_error_words_bounded),
        cmocka_unit_test(test_duration_run),
        cmocka_unit_test(test_refused_connection),
        cmocka_unit_test(test_silent_server),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, fake_start, fake_stop);
}
