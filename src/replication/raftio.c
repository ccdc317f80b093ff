/*
 * raftio.c - libraft's struct raft_io for one range, on the node-wide log,
 * links and ticker (raftio.h): time, storage, snapshots, work on the
 * thread pool and the lifecycle; its messages are in raftio_msg.c.
 */
#include "raftio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "raftio_int.h"
#include "raftmsg.h"

/* A callback deferred to the loop's idle phase: libraft's send and close
 * callbacks must not run inside the call that started them. */
typedef struct later {
    struct later *next;
    void (*fn)(void *arg, int status);
    void *arg;
    int status;
} later;


/* ---- deferred callbacks ----------------------------------------------- */

static void later_cb(uv_idle_t *h)
{
    rep_env *env = h->data;
    later *l = env->later;
    env->later = NULL;
    uv_idle_stop(h);
    /* run in the order they were queued */
    later *rev = NULL;
    while (l) {
        later *next = l->next;
        l->next = rev;
        rev = l;
        l = next;
    }
    while (rev) {
        later *next = rev->next;
        rev->fn(rev->arg, rev->status);
        free(rev);
        rev = next;
    }
}

int rio_defer(rep_env *env, void (*fn)(void *, int), void *arg, int status)
{
    later *l = malloc(sizeof *l);
    if (l == NULL)
        return RAFT_NOMEM;
    *l = (later){env->later, fn, arg, status};
    env->later = l;
    uv_idle_start(&env->later_idle, later_cb);
    return 0;
}

/* ---- the ticker ------------------------------------------------------- */

static void ticker_cb(uv_timer_t *t)
{
    rep_env *env = t->data;
    for (rio *r = env->awake; r; r = env->tick_next) {
        env->tick_next = r->next;
        r->tick_cb(&r->io);
        if (r->on_ticker && r->hooks.after_tick)
            r->hooks.after_tick(r->owner);
    }
    env->tick_next = NULL;
}

static void ticker_add(rio *r)
{
    rep_env *env = r->env;
    if (r->on_ticker || !r->started || r->closing)
        return;
    r->on_ticker = true;
    env->n_awake++;
    r->prev = NULL;
    r->next = env->awake;
    if (env->awake)
        env->awake->prev = r;
    env->awake = r;
    if (!env->ticker_on) {
        env->ticker_on = true;
        uv_timer_start(&env->ticker, ticker_cb, env->opts.heartbeat_ms,
                       env->opts.heartbeat_ms);
    }
}

static void ticker_remove(rio *r)
{
    rep_env *env = r->env;
    if (!r->on_ticker)
        return;
    if (env->tick_next == r)
        env->tick_next = r->next;
    if (r->prev)
        r->prev->next = r->next;
    else
        env->awake = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->on_ticker = false;
    env->n_awake--;
    if (env->awake == NULL && env->ticker_on) {
        env->ticker_on = false;
        uv_timer_stop(&env->ticker);
    }
}

/* ---- time and sleep --------------------------------------------------- */

static raft_time io_time(struct raft_io *io)
{
    rio *r = rio_of(io);
    uint64_t now = r->asleep ? r->asleep_at : uv_now(r->env->loop);
    return (raft_time)((int64_t)now - r->offset_ms);
}

void rio_sleep(rio *r)
{
    if (r->asleep || r->closing)
        return;
    r->asleep = true;
    r->asleep_at = uv_now(r->env->loop);
    ticker_remove(r);
    r->env->n_sleeps++;
}

void rio_wake(rio *r)
{
    if (!r->asleep || r->closing)
        return;
    r->asleep = false;
    r->offset_ms += (int64_t)(uv_now(r->env->loop) - r->asleep_at);
    ticker_add(r);
    r->env->n_wakes++;
    if (r->hooks.woke)
        r->hooks.woke(r->owner);
}

bool rio_asleep(const rio *r) { return r->asleep; }

void rio_expire_election(rio *r, bool at_once)
{
    struct raft *raft = r->io.data;
    if (raft == NULL || raft->state != RAFT_FOLLOWER)
        return;
    raft_time now = io_time(&r->io);
    raft_time elapsed = now - raft->election_timer_start;
    raft_time want = at_once
                         ? raft->follower_state.randomized_election_timeout
                         : raft->election_timeout;
    if (elapsed < want)
        r->offset_ms -= (int64_t)(want - elapsed);
}

/* libraft draws every election timeout from [T, 2T) with this, and
 * nothing else. The random part only has to keep the followers, which
 * notice a silent leader at about the same moment, from splitting the
 * vote: a spread of many round trips does that, and T more (another
 * second by default) is time a range goes without a leader after its
 * leader hangs. So the draw is from [T, T + ELECTION_SPREAD_MS). */
#define ELECTION_SPREAD_MS 300

static int io_random(struct raft_io *io, int min, int max)
{
    rio *r = rio_of(io);
    /* xorshift64* */
    r->rnd ^= r->rnd >> 12;
    r->rnd ^= r->rnd << 25;
    r->rnd ^= r->rnd >> 27;
    uint64_t v = r->rnd * 0x2545F4914F6CDD1Dull;
    if (max - min > ELECTION_SPREAD_MS)
        max = min + ELECTION_SPREAD_MS;
    return max > min ? min + (int)(v % (uint64_t)(max - min)) : min;
}

/* ---- storage ---------------------------------------------------------- */

static void hold_for_log(rio *r)
{
    r->hold_until = raftlog_filling(r->env->log);
}

static void close_if_done(rio *r);

typedef struct log_req {
    rio *r;
    void *req; /* raft_io_append or raft_io_snapshot_put */
    bool is_put;
} log_req;

static void log_done(void *arg, int status)
{
    log_req *q = arg;
    rio *r = q->r;
    int st = status == 0 ? 0 : RAFT_IOERR;
    if (q->is_put) {
        struct raft_io_snapshot_put *put = q->req;
        put->cb(put, st);
    } else {
        struct raft_io_append *app = q->req;
        app->cb(app, st);
    }
    free(q);
    r->pending--;
    close_if_done(r);
}

static int when_durable(rio *r, void *req, bool is_put)
{
    log_req *q = malloc(sizeof *q);
    if (q == NULL)
        return RAFT_NOMEM;
    *q = (log_req){r, req, is_put};
    if (raftlog_when_durable(r->env->log, log_done, q) != 0) {
        free(q);
        return RAFT_NOMEM;
    }
    r->pending++;
    return 0;
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n,
                     raft_io_append_cb cb)
{
    rio *r = rio_of(io);
    if (r->closing)
        return RAFT_CANCELED;
    req->cb = cb;
    int rv = when_durable(r, req, false);
    if (rv != 0)
        return rv;
    raftlog_put_entries(r->env->log, r->range, r->next_index, entries, n);
    r->next_index += n;
    return 0;
}

static int io_truncate(struct raft_io *io, raft_index index)
{
    rio *r = rio_of(io);
    raftlog_truncate(r->env->log, r->range, index);
    r->next_index = index;
    return 0;
}

static int io_set_term(struct raft_io *io, raft_term term)
{
    rio *r = rio_of(io);
    r->term = term;
    r->vote = 0;
    raftlog_put_hard(r->env->log, r->range, r->term, r->vote);
    hold_for_log(r);
    return 0;
}

static int io_set_vote(struct raft_io *io, raft_id id)
{
    rio *r = rio_of(io);
    r->vote = id;
    raftlog_put_hard(r->env->log, r->range, r->term, r->vote);
    hold_for_log(r);
    return 0;
}

static int io_bootstrap(struct raft_io *io,
                        const struct raft_configuration *conf)
{
    rio *r = rio_of(io);
    raftlog_state st;
    int rc = raftlog_load(r->env->log, r->range, &st);
    if (rc != 0) {
        snprintf(io->errmsg, sizeof io->errmsg, "Raft log of range %llu: %s",
                 (unsigned long long)r->range, cairn_err_message(rc));
        return rc == CAIRN_ERR_CORRUPT ? RAFT_CORRUPT : RAFT_IOERR;
    }
    bool has_state = st.term != 0 || st.n > 0 || st.has_snap;
    raftlog_state_free(&st);
    if (has_state)
        return RAFT_CANTBOOTSTRAP;
    struct raft_entry e = {.term = 1, .type = RAFT_CHANGE};
    if (raft_configuration_encode(conf, &e.buf) != 0)
        return RAFT_NOMEM;
    rc = raftlog_write_now(r->env->log, r->range, 1, 0, &e);
    raft_free(e.buf.base);
    if (rc != 0)
        return RAFT_IOERR;
    hold_for_log(r);
    return 0;
}

static int io_recover(struct raft_io *io, const struct raft_configuration *c)
{
    (void)io;
    (void)c;
    return RAFT_INVALID; /* not offered: membership goes through Raft */
}

/* The snapshot libraft restores at start: the data is already in the
 * index store, so the buffer only names the snapshot's index ("CSNM" |
 * index), for the state machine to check its store is not behind it. */
static int marker_snapshot(rio *r, struct raft_snapshot **out)
{
    struct raft_snapshot *s = raft_calloc(1, sizeof *s);
    uint8_t *m = raft_malloc(16);
    struct raft_buffer *bufs = raft_malloc(sizeof *bufs);
    if (s == NULL || m == NULL || bufs == NULL)
        goto nomem;
    memcpy(m, "CSNM\0\0\0\0", 8);
    be_put_u64(m + 8, r->snap.index);
    s->index = r->snap.index;
    s->term = r->snap.term;
    s->configuration_index = r->snap.conf_index;
    if (raftmsg_conf_decode(r->snap.conf.data, r->snap.conf.len,
                            &s->configuration) != 0)
        goto corrupt;
    bufs[0] = (struct raft_buffer){m, 16};
    s->bufs = bufs;
    s->n_bufs = 1;
    *out = s;
    return 0;
corrupt:
    raft_free(s), raft_free(m), raft_free(bufs);
    return RAFT_CORRUPT;
nomem:
    raft_free(s), raft_free(m), raft_free(bufs);
    return RAFT_NOMEM;
}

static int io_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries)
{
    rio *r = rio_of(io);
    raftlog_state st;
    int rc = raftlog_load(r->env->log, r->range, &st);
    if (rc != 0) {
        snprintf(io->errmsg, sizeof io->errmsg, "Raft log of range %llu: %s",
                 (unsigned long long)r->range, cairn_err_message(rc));
        return rc == CAIRN_ERR_CORRUPT ? RAFT_CORRUPT : RAFT_IOERR;
    }
    /* A replica that never stored anything still gets its hard-state
     * record: the log then lists it as hosted (orphans are told apart). */
    if (!st.exists &&
        raftlog_write_now(r->env->log, r->range, 0, 0, NULL) != 0) {
        raftlog_state_free(&st);
        return RAFT_IOERR;
    }
    r->term = st.term;
    r->vote = st.vote;
    r->has_snap = st.has_snap;
    raftlog_snap_free(&r->snap);
    r->snap = st.snap;
    st.snap = (raftlog_snap){0};
    *snapshot = NULL;
    if (r->has_snap) {
        seq_observe(r->env->clock, &r->snap.clock); /* seq.h rule 4 */
        rc = marker_snapshot(r, snapshot);
        if (rc != 0) {
            raftlog_state_free(&st);
            return rc;
        }
    }
    *term = st.term;
    *voted_for = st.vote;
    *start_index = st.start_index;
    *entries = st.entries;
    *n_entries = st.n;
    r->next_index = st.start_index + st.n;
    return 0;
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing,
                           struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *s,
                           raft_io_snapshot_put_cb cb)
{
    rio *r = rio_of(io);
    if (r->closing)
        return RAFT_CANCELED;
    req->cb = cb;
    raftlog_snap meta = {.index = s->index, .term = s->term,
                         .conf_index = s->configuration_index};
    /* A failed install is answered through the callback: an error
     * returned here would make libraft give the whole replica up. */
    if (trailing == 0 && s->n_bufs == 1 &&
        r->hooks.install(r->owner, &s->bufs[0]) != 0) {
        log_req *q = malloc(sizeof *q);
        if (q == NULL)
            return RAFT_NOMEM;
        *q = (log_req){r, req, true};
        if (rio_defer(r->env, log_done, q, CAIRN_ERR_IO) != 0) {
            free(q);
            return RAFT_NOMEM;
        }
        r->pending++;
        return 0;
    }
    /* the clock has observed everything the data holds (fsm.c) */
    meta.clock = seq_clock_mark(r->env->clock);
    if (raftmsg_conf_encode(&s->configuration, &meta.conf) != 0) {
        buf_free(&meta.conf);
        return RAFT_NOMEM;
    }
    int rv = when_durable(r, req, true);
    if (rv != 0) {
        buf_free(&meta.conf);
        return rv;
    }
    raftlog_put_snap(r->env->log, r->range, &meta);
    if (trailing == 0) {
        raftlog_truncate(r->env->log, r->range, 0);
        r->next_index = s->index + 1;
    } else if (s->index > trailing) {
        raftlog_compact(r->env->log, r->range, s->index - trailing + 1);
    }
    raftlog_snap_free(&r->snap);
    r->snap = meta;
    r->has_snap = true;
    return 0;
}

/* ---- work on libuv's thread pool -------------------------------------- */

typedef struct job {
    uv_work_t work;
    rio *r;
    struct raft_io_async_work *async;  /* libraft's job, or */
    struct raft_io_snapshot_get *get;  /* a snapshot to encode */
    void *snap;                        /* its hooks' handle */
    struct raft_buffer data;
    int status;
} job;

static void job_run(uv_work_t *w)
{
    job *j = w->data;
    if (j->async)
        j->status = j->async->work(j->async);
    else
        j->status = j->r->hooks.snap_encode(j->r->owner, j->snap, &j->data);
}

static struct raft_snapshot *snapshot_for(rio *r, struct raft_buffer *data)
{
    struct raft_snapshot *s = raft_calloc(1, sizeof *s);
    struct raft_buffer *bufs = raft_malloc(sizeof *bufs);
    if (s == NULL || bufs == NULL ||
        raftmsg_conf_decode(r->snap.conf.data, r->snap.conf.len,
                            &s->configuration) != 0) {
        raft_free(s);
        raft_free(bufs);
        return NULL;
    }
    s->index = r->snap.index;
    s->term = r->snap.term;
    s->configuration_index = r->snap.conf_index;
    bufs[0] = *data;
    s->bufs = bufs;
    s->n_bufs = 1;
    return s;
}

static void job_done(uv_work_t *w, int status)
{
    job *j = w->data;
    rio *r = j->r;
    int st = status == 0 ? j->status : RAFT_CANCELED;
    if (j->async) {
        j->async->cb(j->async, st);
    } else {
        r->hooks.snap_end(r->owner, j->snap);
        struct raft_snapshot *s = st == 0 ? snapshot_for(r, &j->data) : NULL;
        if (s == NULL) {
            raft_free(j->data.base);
            j->get->cb(j->get, NULL, st ? st : RAFT_NOMEM);
        } else {
            j->get->cb(j->get, s, 0);
        }
    }
    free(j);
    r->pending--;
    close_if_done(r);
}

static int queue_job(rio *r, job *j)
{
    j->r = r;
    j->work.data = j;
    if (uv_queue_work(r->env->loop, &j->work, job_run, job_done) != 0)
        return RAFT_IOERR;
    r->pending++;
    return 0;
}

static int io_async_work(struct raft_io *io, struct raft_io_async_work *req,
                         raft_io_async_work_cb cb)
{
    rio *r = rio_of(io);
    job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return RAFT_NOMEM;
    req->cb = cb;
    j->async = req;
    int rv = queue_job(r, j);
    if (rv != 0)
        free(j);
    return rv;
}

static int io_snapshot_get(struct raft_io *io,
                           struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb)
{
    rio *r = rio_of(io);
    if (r->closing || !r->has_snap)
        return r->closing ? RAFT_CANCELED : RAFT_NOTFOUND;
    job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return RAFT_NOMEM;
    req->cb = cb;
    j->get = req;
    j->snap = r->hooks.snap_begin(r->owner);
    int rv = j->snap ? queue_job(r, j) : RAFT_IOERR;
    if (rv != 0) {
        if (j->snap)
            r->hooks.snap_end(r->owner, j->snap);
        free(j);
    }
    return rv;
}

/* ---- lifecycle -------------------------------------------------------- */

static int io_init(struct raft_io *io, raft_id id, const char *address)
{
    (void)io;
    (void)id;
    (void)address;
    return 0;
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv)
{
    rio *r = rio_of(io);
    (void)msecs; /* the node ticks every range each heartbeat_ms */
    r->tick_cb = tick;
    r->recv_cb = recv;
    r->started = true;
    ticker_add(r);
    return 0;
}

static void close_done(void *arg, int status)
{
    rio *r = arg;
    (void)status;
    raft_io_close_cb cb = r->close_cb;
    r->close_cb = NULL;
    if (cb)
        cb(&r->io);
}

static void close_if_done(rio *r)
{
    if (r->closing && r->pending == 0 && r->close_cb &&
        rio_defer(r->env, close_done, r, 0) != 0)
        close_done(r, 0);
}

static void io_close(struct raft_io *io, raft_io_close_cb cb)
{
    rio *r = rio_of(io);
    ticker_remove(r);
    r->closing = true;
    r->close_cb = cb;
    rio_drop_held(r);
    close_if_done(r);
}

rio *rio_new(rep_env *env, uint64_t range, const rio_hooks *hooks,
             void *owner)
{
    rio *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->env = env;
    r->range = range;
    r->hooks = *hooks;
    r->owner = owner;
    r->next_index = 1;
    r->rnd = (env->nonce ^ (range * 0x9E3779B97F4A7C15ull)) | 1;
    if (u64map_put(&env->rios, range, r) != 0) {
        free(r);
        return NULL;
    }
    struct raft_io *io = &r->io;
    io->version = 2;
    io->impl = r;
    io->init = io_init;
    io->close = io_close;
    io->load = io_load;
    io->start = io_start;
    io->bootstrap = io_bootstrap;
    io->recover = io_recover;
    io->set_term = io_set_term;
    io->set_vote = io_set_vote;
    io->send = rio_io_send;
    io->append = io_append;
    io->truncate = io_truncate;
    io->snapshot_put = io_snapshot_put;
    io->snapshot_get = io_snapshot_get;
    io->time = io_time;
    io->random = io_random;
    io->async_work = io_async_work;
    return r;
}

struct raft_io *rio_io(rio *r) { return &r->io; }

void rio_free(rio *r)
{
    if (r == NULL)
        return;
    ticker_remove(r);
    rio_drop_held(r);
    if (u64map_get(&r->env->rios, r->range) == r)
        u64map_del(&r->env->rios, r->range);
    raftlog_snap_free(&r->snap);
    free(r);
}
