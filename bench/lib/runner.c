/*
 * runner.c - the libuv load loop of bench.h.
 *
 * Each connection owns a ring of in-flight requests (operation + send time),
 * an output buffer and a RESP reply reader. Replies arrive in request order
 * (RESP guarantees it per connection), so the ring's head is always the
 * request a reply answers. After each read the connection refills its
 * pipeline and sends everything queued in one write, so a deep pipeline
 * costs one syscall per batch, not per request.
 */
#include "bench.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/resp.h"

#define MAX_SCAN_ARGS 16

typedef struct inflight {
    uint64_t t0_ns;
    bench_op op;
} inflight;

typedef struct runner runner;

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    runner *r;
    resp_reader *reader;
    buf in;
    buf out;     /* requests queued since the last write */
    buf writing; /* bytes owned by the write in progress */
    bool write_busy;
    bool dead;
    inflight *ring;
    unsigned head, n;
    bench_rng rng;
} conn;

struct runner {
    const bench_config *cfg;
    bench_phase phase;
    bench_result *res;
    uv_loop_t loop;
    uv_timer_t stop_timer, progress_timer, drain_timer;
    conn *conns;
    unsigned live;    /* connections not dead */
    unsigned handles; /* handles not yet closed */
    bench_mix mix;
    bench_keys keys;
    uint64_t target;  /* ops to issue; 0 = until the stop timer */
    uint64_t issued;
    uint64_t start_ns;
    bool stopping;
    bool closing;
    char *value;
    /* the scan template, split into arguments */
    char *scan_words[MAX_SCAN_ARGS];
    size_t scan_argc;
    char *scan_copy;
};

static void runner_close_all(runner *r);

/* ---- results ---------------------------------------------------------- */

static int find_word(const bench_result *res, const char *word, size_t len)
{
    for (size_t i = 0; i < res->n_err_words; i++)
        if (strlen(res->err_words[i].word) == len &&
            memcmp(res->err_words[i].word, word, len) == 0)
            return (int)i;
    return -1;
}

/* Count one error under `word`. The table is bounded: once all but its
 * last slot are taken, unseen words count as "OTHER", so a server that
 * invents error words without end cannot grow it. */
static void count_error_word(bench_result *res, const char *word, size_t len)
{
    if (len >= sizeof res->err_words[0].word)
        len = sizeof res->err_words[0].word - 1;
    int i = find_word(res, word, len);
    if (i < 0 && res->n_err_words >= BENCH_ERR_WORDS - 1) {
        word = "OTHER";
        len = 5;
        i = find_word(res, word, len);
    }
    if (i < 0) {
        i = (int)res->n_err_words++;
        memcpy(res->err_words[i].word, word, len);
        res->err_words[i].word[len] = '\0';
        res->err_words[i].count = 0;
    }
    res->err_words[i].count++;
}

static void count_error(runner *r, bench_op op, const char *word, size_t len)
{
    r->res->ops[op].errors++;
    r->res->done++;
    count_error_word(r->res, word, len);
}

/* ---- requests --------------------------------------------------------- */

static int append_scan(runner *r, buf *b, const char *key, unsigned n)
{
    char num[16], glued[MAX_SCAN_ARGS][64];
    snprintf(num, sizeof num, "%u", n);
    const char *argv[MAX_SCAN_ARGS];
    for (size_t i = 0; i < r->scan_argc; i++) {
        const char *w = r->scan_words[i];
        const char *at = strstr(w, "{start}");
        if (strcmp(w, "{start}") == 0) {
            argv[i] = key;
        } else if (at && strlen(w) < 32) { /* "[{start}": Redis's BYLEX */
            snprintf(glued[i], sizeof glued[i], "%.*s%s%s", (int)(at - w), w,
                     key, at + strlen("{start}"));
            argv[i] = glued[i];
        } else if (strcmp(w, "{n}") == 0)
            argv[i] = num;
        else if (strcmp(w, "{table}") == 0)
            argv[i] = r->cfg->table ? r->cfg->table : "default";
        else
            argv[i] = w;
    }
    return resp_write_command(b, r->scan_argc, argv, NULL);
}

static int append_request(runner *r, conn *c, bench_op op)
{
    const bench_config *cfg = r->cfg;
    char key[BENCH_KEY_LEN + 1];
    uint64_t rec;
    if (r->phase == BENCH_PHASE_LOAD)
        rec = cfg->load_from + r->issued;
    else if (op == BENCH_OP_INSERT)
        rec = bench_keys_insert(&r->keys);
    else
        rec = bench_keys_pick(&r->keys, &c->rng);
    bench_key_format(key, rec);
    bool kv = cfg->table != NULL;
    switch (op) {
    case BENCH_OP_READ: {
        const char *argv[] = {kv ? "KV.GET" : "GET", kv ? cfg->table : key,
                              key};
        return kv ? resp_write_command(&c->out, 3, argv, NULL)
                  : resp_write_command(&c->out, 2, argv, NULL);
    }
    case BENCH_OP_SCAN: /* S: every page full length (workload.h) */
        return append_scan(r, &c->out, key,
                           cfg->workload[0] == 'S' || cfg->workload[0] == 's'
                               ? cfg->max_scan
                               : 1 + (unsigned)bench_rng_below(
                                         &c->rng, cfg->max_scan));
    default: {
        const char *argv[] = {kv ? "KV.PUT" : "SET", kv ? cfg->table : key,
                              key, r->value};
        size_t lens[] = {strlen(argv[0]), strlen(argv[1]), BENCH_KEY_LEN,
                         cfg->value_size};
        if (kv)
            return resp_write_command(&c->out, 4, argv, lens);
        argv[2] = r->value;
        lens[2] = cfg->value_size;
        return resp_write_command(&c->out, 3, argv, lens);
    }
    }
}

static bool may_issue(const runner *r)
{
    return !r->stopping && (r->target == 0 || r->issued < r->target);
}

static void on_write(uv_write_t *req, int status);

static void conn_flush(conn *c)
{
    if (c->write_busy || c->out.len == 0 || c->dead)
        return;
    buf tmp = c->writing;
    c->writing = c->out;
    c->out = tmp;
    buf_reset(&c->out);
    uv_buf_t b = uv_buf_init((char *)c->writing.data,
                             (unsigned)c->writing.len);
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write) ==
        0)
        c->write_busy = true;
}

static void conn_fail(conn *c, const char *why, bool lost);
static void begin_stop(runner *r);

/* Fill the pipeline up to its depth, then send. */
static void conn_fill(conn *c)
{
    runner *r = c->r;
    unsigned depth = r->cfg->pipeline;
    while (!c->dead && c->n < depth && may_issue(r)) {
        bench_op op = r->phase == BENCH_PHASE_LOAD
                          ? BENCH_OP_INSERT
                          : bench_mix_pick(&r->mix, &c->rng);
        if (append_request(r, c, op) != 0) {
            conn_fail(c, "NOMEM", true);
            return;
        }
        inflight *f = &c->ring[(c->head + c->n) % depth];
        f->op = op;
        f->t0_ns = uv_hrtime();
        c->n++;
        r->issued++;
    }
    if (!may_issue(r) && r->target && !r->stopping)
        begin_stop(r);
    conn_flush(c);
}

static void maybe_finish(runner *r)
{
    if (!r->stopping || r->closing)
        return;
    for (unsigned i = 0; i < r->cfg->clients; i++)
        if (!r->conns[i].dead && r->conns[i].n > 0)
            return;
    runner_close_all(r);
}

static void on_write(uv_write_t *req, int status)
{
    conn *c = req->data;
    c->write_busy = false;
    if (status < 0) {
        conn_fail(c, uv_err_name(status), true);
        return;
    }
    conn_flush(c);
}

/* ---- replies ---------------------------------------------------------- */

/* Keys a scan reply holds: KV.SCAN's [cursor, [k, v, ...]] has pairs; a
 * flat array (Redis's ZRANGEBYLEX, SCAN's keys) one key per element. */
static uint64_t scanned_keys(const resp_reply *rep)
{
    const resp_node *n = rep->nodes;
    if (n[0].type != RESP_ARRAY)
        return 0;
    if (n[0].count == 2 && rep->nnodes >= 3 && n[1].type == RESP_BULK &&
        n[2].type == RESP_ARRAY)
        return n[2].count / 2;
    return n[0].count;
}

static void handle_reply(conn *c, const resp_reply *rep, uint64_t now_ns)
{
    runner *r = c->r;
    if (c->n == 0) {
        /* A reply nobody asked for: the peer is not speaking our RESP. */
        count_error_word(r->res, "UNEXPECTED", 10);
        return;
    }
    inflight f = c->ring[c->head];
    c->head = (c->head + 1) % r->cfg->pipeline;
    c->n--;
    const resp_node *top = &rep->nodes[0];
    if (top->type == RESP_ERROR) {
        size_t w = 0;
        while (w < top->len && top->str[w] != ' ')
            w++;
        count_error(r, f.op, (const char *)top->str, w);
        return;
    }
    if (f.op == BENCH_OP_READ && top->type == RESP_NIL)
        r->res->ops[f.op].misses++;
    if (f.op == BENCH_OP_SCAN)
        r->res->ops[f.op].items += scanned_keys(rep);
    uint64_t us = (now_ns - f.t0_ns) / 1000;
    bench_hist_record(r->res->ops[f.op].hist, us);
    r->res->done++;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    conn *c = h->data;
    (void)suggested;
    if (buf_reserve(&c->in, 64 * 1024) != 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init((char *)c->in.data + c->in.len,
                       (unsigned)(c->in.cap - c->in.len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn *c = s->data;
    (void)b;
    if (nread < 0) {
        conn_fail(c, nread == UV_EOF ? "CONN" : uv_err_name((int)nread), true);
        return;
    }
    c->in.len += (size_t)nread;
    uint64_t now = uv_hrtime();
    size_t off = 0;
    for (;;) {
        resp_reply rep;
        int rc = resp_read_reply(c->reader, c->in.data + off,
                                 c->in.len - off, &rep);
        if (rc == 0)
            break;
        if (rc < 0) {
            conn_fail(c, "PROTO", true);
            return;
        }
        handle_reply(c, &rep, now);
        off += rep.consumed;
    }
    buf_consume(&c->in, off);
    conn_fill(c);
    maybe_finish(c->r);
}

/* ---- connections ------------------------------------------------------ */

static void on_close(uv_handle_t *h)
{
    runner *r = h->loop->data;
    r->handles--;
}

/* Mark the connection dead and count what it had in flight under `why`
 * (rule 2); `lost` also counts the connection itself under CONN_LOST. */
static void conn_fail(conn *c, const char *why, bool lost)
{
    runner *r = c->r;
    if (c->dead)
        return;
    c->dead = true;
    r->live--;
    while (c->n > 0) {
        count_error(r, c->ring[c->head].op, why, strlen(why));
        c->head = (c->head + 1) % r->cfg->pipeline;
        c->n--;
    }
    if (lost)
        count_error_word(r->res, "CONN_LOST", 9);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (r->live == 0 && !r->closing) {
        r->res->aborted = !r->stopping;
        r->stopping = true;
    }
    maybe_finish(r);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn *c = req->data;
    if (status < 0) {
        const char *name = uv_err_name(status);
        count_error_word(c->r->res, name, strlen(name));
        conn_fail(c, "CONN", false);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    conn_fill(c);
    maybe_finish(c->r);
}

static int conn_init(runner *r, conn *c, unsigned idx,
                     const struct sockaddr *addr)
{
    c->r = r;
    c->ring = calloc(r->cfg->pipeline, sizeof *c->ring);
    if (!c->ring || resp_reader_new(&c->reader, NULL) != 0)
        return CAIRN_ERR_NOMEM;
    bench_rng_seed(&c->rng, r->cfg->seed * 1000003u + idx);
    uv_tcp_init(&r->loop, &c->tcp);
    r->handles++;
    c->tcp.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    r->live++;
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connect);
    if (rc < 0) {
        count_error_word(r->res, uv_err_name(rc), strlen(uv_err_name(rc)));
        conn_fail(c, "CONN", false);
    }
    return CAIRN_OK;
}

static void conn_release(conn *c)
{
    if (c->reader)
        resp_reader_free(c->reader);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->writing);
    free(c->ring);
}

/* ---- timers ----------------------------------------------------------- */

static double elapsed_s(const runner *r)
{
    return (double)(uv_hrtime() - r->start_ns) / 1e9;
}

static void on_drain_timeout(uv_timer_t *t)
{
    runner *r = t->data;
    for (unsigned i = 0; i < r->cfg->clients; i++)
        if (r->conns[i].r)
            conn_fail(&r->conns[i], "UNANSWERED", false);
    runner_close_all(r);
}

/* No more requests; what is in flight gets cfg->drain_ms to come back (a
 * server that never answers must not hang the run). */
static void begin_stop(runner *r)
{
    r->stopping = true;
    uv_timer_start(&r->drain_timer, on_drain_timeout, r->cfg->drain_ms, 0);
}

static void on_stop(uv_timer_t *t)
{
    runner *r = t->data;
    /* libuv's loop clock is coarse (milliseconds, CLOCK_MONOTONIC_COARSE):
     * the timer may fire a few ms before the precise duration. Re-arm for
     * the rest, so a run lasts at least what was asked. */
    double left = r->cfg->duration_s - elapsed_s(r);
    if (left > 0) {
        uv_timer_start(&r->stop_timer, on_stop, (uint64_t)(left * 1000) + 1,
                       0);
        return;
    }
    begin_stop(r);
    maybe_finish(r);
}

static void on_progress(uv_timer_t *t)
{
    runner *r = t->data;
    double el = elapsed_s(r);
    double rate = el > 0 ? (double)r->res->done / el : 0;
    double eta;
    if (r->target)
        eta = rate > 0 ? (double)(r->target - r->res->done) / rate : 0;
    else
        eta = r->cfg->duration_s - el;
    if (eta < 0)
        eta = 0;
    fprintf(stderr, "\r%s %s: %llu ops, %.0f ops/s, %.1f s elapsed, ETA "
                    "%.0f s, %llu errors   ",
            r->phase == BENCH_PHASE_LOAD ? "load" : "run", r->cfg->workload,
            (unsigned long long)r->res->done, rate, el, eta,
            (unsigned long long)bench_result_errors(r->res));
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_close);
}

static void runner_close_all(runner *r)
{
    if (r->closing)
        return;
    r->closing = true;
    r->stopping = true;
    r->res->elapsed_s = elapsed_s(r);
    for (unsigned i = 0; r->conns && i < r->cfg->clients; i++)
        if (r->conns[i].r) /* initialised */
            close_handle((uv_handle_t *)&r->conns[i].tcp);
    close_handle((uv_handle_t *)&r->stop_timer);
    close_handle((uv_handle_t *)&r->progress_timer);
    close_handle((uv_handle_t *)&r->drain_timer);
}

/* ---- setup ------------------------------------------------------------ */

void bench_config_default(bench_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 6379;
    cfg->workload[0] = 'A';
    cfg->records = 100000;
    cfg->value_size = 100;
    cfg->clients = 50;
    cfg->pipeline = 1;
    cfg->duration_s = 10;
    cfg->zipfian = true;
    cfg->scan_cmd = BENCH_DEFAULT_SCAN;
    cfg->max_scan = 100;
    cfg->seed = 1;
    cfg->drain_ms = 10000;
}

/* Split the scan template on spaces; `""` is an empty argument. */
static int parse_scan(runner *r, const char *tmpl)
{
    r->scan_copy = strdup(tmpl);
    if (!r->scan_copy)
        return CAIRN_ERR_NOMEM;
    for (char *save = NULL, *w = strtok_r(r->scan_copy, " ", &save); w;
         w = strtok_r(NULL, " ", &save)) {
        if (r->scan_argc == MAX_SCAN_ARGS)
            return CAIRN_ERR_INVALID;
        if (strcmp(w, "\"\"") == 0)
            *w = '\0';
        r->scan_words[r->scan_argc++] = w;
    }
    return r->scan_argc ? CAIRN_OK : CAIRN_ERR_INVALID;
}

static int check_config(const bench_config *cfg, bench_mix *mix)
{
    if (bench_mix_get(cfg->workload, mix) != 0) {
        fprintf(stderr, "bench: unknown workload '%s' (A, B, C, W, E)\n",
                cfg->workload);
        return CAIRN_ERR_INVALID;
    }
    if (cfg->clients < 1 || cfg->pipeline < 1 || cfg->records < 1 ||
        cfg->max_scan < 1 || (cfg->ops == 0 && !(cfg->duration_s > 0))) {
        fprintf(stderr, "bench: clients, pipeline, records, max scan and "
                        "duration or ops must be positive\n");
        return CAIRN_ERR_INVALID;
    }
    return CAIRN_OK;
}

static bench_result *result_new(const bench_config *cfg, bench_phase phase)
{
    bench_result *res = calloc(1, sizeof *res);
    if (!res)
        return NULL;
    res->phase = phase;
    res->workload[0] = phase == BENCH_PHASE_LOAD ? 'L' : cfg->workload[0];
    for (int op = 0; op < BENCH_OP_COUNT_; op++) {
        res->ops[op].hist = bench_hist_new();
        if (!res->ops[op].hist) {
            bench_result_free(res);
            return NULL;
        }
    }
    return res;
}

void bench_result_free(bench_result *res)
{
    if (!res)
        return;
    for (int op = 0; op < BENCH_OP_COUNT_; op++)
        bench_hist_free(res->ops[op].hist);
    free(res);
}

uint64_t bench_result_errors(const bench_result *res)
{
    uint64_t n = 0;
    for (size_t i = 0; i < res->n_err_words; i++)
        n += res->err_words[i].count;
    return n;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int runner_prepare(runner *r)
{
    const bench_config *cfg = r->cfg;
    int rc = parse_scan(r, cfg->scan_cmd);
    if (rc != 0)
        return rc;
    rc = bench_keys_init(&r->keys, cfg->records, cfg->zipfian);
    if (rc != 0)
        return rc;
    r->value = malloc(cfg->value_size + 1);
    r->conns = calloc(cfg->clients, sizeof *r->conns);
    if (!r->value || !r->conns)
        return CAIRN_ERR_NOMEM;
    /* Printable, varied bytes: compression-friendly values would flatter a
     * store that compresses. */
    bench_rng vr;
    bench_rng_seed(&vr, cfg->seed);
    for (size_t i = 0; i < cfg->value_size; i++)
        r->value[i] = (char)('a' + bench_rng_below(&vr, 26));
    r->value[cfg->value_size] = '\0';
    r->target = r->phase == BENCH_PHASE_LOAD ? cfg->records - cfg->load_from
                                             : cfg->ops;
    return CAIRN_OK;
}

static void runner_init_timers(runner *r)
{
    uv_timer_t *timers[] = {&r->stop_timer, &r->progress_timer,
                            &r->drain_timer};
    for (size_t i = 0; i < 3; i++) {
        uv_timer_init(&r->loop, timers[i]);
        timers[i]->data = r;
        r->handles++;
    }
}

/* The server's address: an IP literal, or a name resolved once, before
 * the clock starts (a resolver's latency is not the server's). An IPv4
 * address is preferred when a name has both: cairn routers and Redis bind
 * 127.0.0.1 by default, while "localhost" may list ::1 first. */
static int resolve(const bench_config *cfg, struct sockaddr_storage *addr)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->port);
    int rc = getaddrinfo(cfg->host, port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "bench: cannot resolve '%s': %s\n", cfg->host,
                gai_strerror(rc));
        return CAIRN_ERR_INVALID;
    }
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    memcpy(addr, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    return CAIRN_OK;
}

static int runner_start(runner *r)
{
    struct sockaddr_storage addr;
    int rc = resolve(r->cfg, &addr);
    if (rc != 0)
        return rc;
    /* The loop's clock was read at uv_loop_init, before the O(records)
     * preparation: refresh it so that the stop timer counts from now, the
     * same instant elapsed time counts from. */
    uv_update_time(&r->loop);
    r->start_ns = uv_hrtime();
    if (r->target == 0)
        uv_timer_start(&r->stop_timer, on_stop,
                       (uint64_t)(r->cfg->duration_s * 1000), 0);
    if (r->cfg->progress)
        uv_timer_start(&r->progress_timer, on_progress, 1000, 1000);
    for (unsigned i = 0; i < r->cfg->clients; i++) {
        rc = conn_init(r, &r->conns[i], i, (struct sockaddr *)&addr);
        if (rc != 0)
            return rc;
    }
    return CAIRN_OK;
}

static void runner_release(runner *r)
{
    if (r->conns)
        for (unsigned i = 0; i < r->cfg->clients; i++)
            conn_release(&r->conns[i]);
    free(r->conns);
    free(r->value);
    free(r->scan_copy);
}

int bench_run(const bench_config *cfg, bench_phase phase, bench_result **out)
{
    runner r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.phase = phase;
    int rc = check_config(cfg, &r.mix);
    if (rc != 0)
        return rc;
    r.res = result_new(cfg, phase);
    if (!r.res)
        return CAIRN_ERR_NOMEM;
    if (uv_loop_init(&r.loop) != 0) {
        bench_result_free(r.res);
        return CAIRN_ERR_IO;
    }
    r.loop.data = &r;
    r.start_ns = uv_hrtime();
    runner_init_timers(&r);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    rc = runner_prepare(&r);
    if (rc == 0)
        rc = runner_start(&r);
    if (rc != 0)
        runner_close_all(&r);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    uv_loop_close(&r.loop);
    getrusage(RUSAGE_SELF, &ru1);
    r.res->cpu_user_s = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
    r.res->cpu_sys_s = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
    if (cfg->progress)
        fprintf(stderr, "\r%*s\r", 100, "");
    runner_release(&r);
    if (rc != 0) {
        bench_result_free(r.res);
        return rc;
    }
    *out = r.res;
    return CAIRN_OK;
}
