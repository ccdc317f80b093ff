/*
 * raftio.c - libraft's struct raft_io for one range, on the node-wide log,
 * links and ticker (raftio.h).
 */
#include "raftio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "raftmsg.h"

struct rio {
    struct raft_io io;
    rep_env *env;
    uint64_t range;
    rio_hooks hooks;
    void *owner;
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;
    bool started, asleep, closing;
    int64_t offset_ms;  /* range clock = loop time - offset */
    uint64_t asleep_at; /* loop time it fell asleep */
    struct rio *prev, *next; /* on the ticker while awake */
    bool on_ticker;
    uint64_t next_index; /* where the next append goes */
    uint64_t term, vote;
    bool has_snap;
    raftlog_snap snap;    /* the last snapshot's metadata */
    uint64_t hold_until;  /* sends wait until this batch is durable */
    unsigned held;        /* of its messages in env->held */
    int pending;          /* log, snapshot and worker operations */
    raft_io_close_cb close_cb;
    uint64_t rnd;
    /* while libraft handles a delivered AppendEntries: the last index it
     * proves this log matches the leader's (see verified_only) */
    bool delivering;
    uint64_t verified;
};

/* A message held until the log batch `batch` is durable. */
typedef struct held {
    struct held *next;
    rio *io;
    uint64_t to;
    char addr[RAFTMSG_ADDR_MAX + 1];
    uint64_t batch;
    buf bytes;
} held;

/* A callback deferred to the loop's idle phase: libraft's send and close
 * callbacks must not run inside the call that started them. */
typedef struct later {
    struct later *next;
    void (*fn)(void *arg, int status);
    void *arg;
    int status;
} later;

static rio *of(struct raft_io *io) { return io->impl; }

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

static int defer(rep_env *env, void (*fn)(void *, int), void *arg,
                 int status)
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
    rio *r = of(io);
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
    rio *r = of(io);
    /* xorshift64* */
    r->rnd ^= r->rnd >> 12;
    r->rnd ^= r->rnd << 25;
    r->rnd ^= r->rnd >> 27;
    uint64_t v = r->rnd * 0x2545F4914F6CDD1Dull;
    if (max - min > ELECTION_SPREAD_MS)
        max = min + ELECTION_SPREAD_MS;
    return max > min ? min + (int)(v % (uint64_t)(max - min)) : min;
}

/* ---- messages --------------------------------------------------------- */

static void send_done(void *arg, int status)
{
    struct raft_io_send *req = arg;
    if (req->cb) /* libraft sends some messages without a callback */
        req->cb(req, status);
}

/* Put the encoded message on the link to `to` (or drop it: Raft resends). */
static void transmit(rio *r, uint64_t to, const char *addr, const buf *b)
{
    buf *out = net_frame_begin(r->env->net, to, addr, NET_RAFT, r->range);
    if (out == NULL)
        return;
    if (buf_append(out, b->data, b->len) != 0)
        net_frame_cancel(r->env->net);
    else
        net_frame_end(r->env->net);
}

static int hold(rio *r, const struct raft_message *m)
{
    held *h = calloc(1, sizeof *h);
    if (h == NULL || raftmsg_encode(m, &h->bytes) != 0) {
        free(h);
        return RAFT_NOMEM;
    }
    h->io = r;
    h->to = m->server_id;
    snprintf(h->addr, sizeof h->addr, "%s", m->server_address);
    h->batch = r->hold_until;
    rep_env *env = r->env;
    if (env->held_tail)
        env->held_tail->next = h;
    else
        env->held = h;
    env->held_tail = h;
    r->held++;
    return 0;
}

/* The log batch `durable` is on disk: send what waited for it, in order. */
void rio_release_held(rep_env *env, uint64_t durable)
{
    held **pp = &env->held;
    env->held_tail = NULL;
    while (*pp) {
        held *h = *pp;
        if (h->batch > durable) {
            env->held_tail = h;
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        h->io->held--;
        if (!h->io->closing)
            transmit(h->io, h->to, h->addr, &h->bytes);
        buf_free(&h->bytes);
        free(h);
    }
}

/* Drop the held messages of a closing range. */
static void drop_held(rio *r)
{
    held **pp = &r->env->held;
    r->env->held_tail = NULL;
    while (*pp && r->held) {
        held *h = *pp;
        if (h->io != r) {
            r->env->held_tail = h;
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        r->held--;
        buf_free(&h->bytes);
        free(h);
    }
    for (held *h = r->env->held; h; h = h->next)
        r->env->held_tail = h;
}

bool rio_holding(const rio *r) { return r->held > 0; }

static int io_send(struct raft_io *io, struct raft_io_send *req,
                   const struct raft_message *msg, raft_io_send_cb cb)
{
    rio *r = of(io);
    req->cb = cb;
    int status = 0;
    struct raft_message copy = *msg;
    const struct raft_message *m = &copy;
    if (copy.type == RAFT_IO_APPEND_ENTRIES_RESULT && r->delivering &&
        copy.append_entries_result.rejected == 0 &&
        copy.append_entries_result.last_log_index > r->verified)
        copy.append_entries_result.last_log_index = r->verified;
    if (r->closing) {
        status = RAFT_CANCELED;
    } else if (r->hold_until > raftlog_durable(r->env->log)) {
        status = hold(r, m);
    } else {
        buf *out = net_frame_begin(r->env->net, m->server_id,
                                   m->server_address, NET_RAFT, r->range);
        if (out == NULL)
            status = RAFT_NOCONNECTION;
        else if (raftmsg_encode(m, out) != 0) {
            net_frame_cancel(r->env->net);
            status = RAFT_NOMEM;
        } else {
            net_frame_end(r->env->net);
        }
    }
    return defer(r->env, send_done, req, status);
}

void rio_send_control(rio *r, int kind, uint64_t to, const char *addr,
                      uint64_t term, uint64_t value)
{
    buf *out = net_frame_begin(r->env->net, to, addr, kind, r->range);
    if (out == NULL)
        return;
    if (buf_append_u64(out, term) != 0 || buf_append_u64(out, value) != 0)
        net_frame_cancel(r->env->net);
    else
        net_frame_end(r->env->net);
}

/* A follower's answer to the last heartbeat before the leader slept
 * arrives after it: it reports nothing new, so libraft takes it without
 * waking the range (or every sleep would end at once). */
static bool changes_nothing(rio *r, const struct raft_message *m)
{
    struct raft *raft = r->io.data;
    const struct raft_append_entries_result *res = &m->append_entries_result;
    return raft && m->type == RAFT_IO_APPEND_ENTRIES_RESULT &&
           raft->state == RAFT_LEADER && res->term == raft->current_term &&
           res->rejected == 0 && res->last_log_index == raft_last_index(raft);
}

/* libraft 0.15 (and later) rejects an AppendEntries whose previous entry
 * is below the start of its log, even when its own snapshot covers it -
 * and a leader then backs off one index per round trip, resending every
 * entry after it each time: a follower that compacted further than the
 * leader (it restarted and the new leader's last snapshot is older, or it
 * installed a newer one) is never caught up (seen: a range stalled for
 * minutes in the kill -9 loop, 8 MiB resent 20 times a second). Entries
 * up to a snapshot are committed, so the leader's are the same: drop the
 * ones the snapshot covers and check the snapshot's index and term
 * instead. */
static void skip_covered(struct raft *raft, struct raft_append_entries *a)
{
    raft_index snap = raft->log.snapshot.last_index;
    if (a->prev_log_index == 0 || a->prev_log_index >= snap ||
        a->prev_log_index > raft->log.offset)
        return; /* libraft has the previous entry (or needs none) */
    raft_index skip = snap - a->prev_log_index;
    if (skip >= a->n_entries) {
        if (a->n_entries > 0) {
            raft_free(a->entries[0].batch);
            raft_free(a->entries);
        }
        a->entries = NULL;
        a->n_entries = 0;
    } else {
        memmove(a->entries, a->entries + skip,
                (a->n_entries - skip) * sizeof *a->entries);
        a->n_entries -= (unsigned)skip;
    }
    a->prev_log_index = snap;
    a->prev_log_term = raft->log.snapshot.last_term;
}

/* Whether the disk can take what message `m` would have this node write
 * and then apply: new entries go to the log and then to the index store,
 * a snapshot into the store. What a follower accepts it must apply, so it
 * accepts nothing that would eat into its reserve (diskguard.h); to the
 * leader it looks like a follower that has not caught up yet, and it
 * sends again. */
static bool disk_takes(const rio *r, const struct raft_message *m)
{
    uint64_t bytes = 0;
    if (m->type == RAFT_IO_APPEND_ENTRIES) {
        for (unsigned i = 0; i < m->append_entries.n_entries; i++)
            bytes += m->append_entries.entries[i].buf.len;
        bytes *= 2;
    } else if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        bytes = m->install_snapshot.data.len;
    }
    return bytes == 0 || diskguard_room(r->env->disk, bytes);
}

/* libraft 0.15 answers an AppendEntries it accepts without writing (a
 * heartbeat, or entries it already has) with its whole log's last index,
 * and commits up to min(leader commit, that index) - but a follower's log
 * past prev_log_index + n_entries is unverified: it may hold entries of a
 * deposed leader that the new leader never had. The new leader then
 * counts the follower as holding its own, different entries (seen: a
 * rejoining old leader's progress stuck past its divergent tail, every
 * heartbeat rejected, never caught up) and the follower may apply an
 * entry that was never committed. Raft (figure 3.1) bounds both by "the
 * index of the last new entry": so does this, on the way in (the leader's
 * commit) and on the way out (the answer, in io_send). */
static void verified_only(rio *r, struct raft_append_entries *a)
{
    r->verified = a->prev_log_index + a->n_entries;
    if (a->leader_commit > r->verified)
        a->leader_commit = r->verified;
}

/* A frame from node `from` for this range (env.c routes it here). */
void rio_deliver(rio *r, uint64_t from, const char *addr, int kind,
                 const uint8_t *p, size_t len)
{
    if (!r->started || r->closing)
        return;
    if (kind == NET_QUIESCE || kind == NET_READINDEX ||
        kind == NET_READINDEX_ACK) {
        /* none wakes the range: a sleeping follower answers a ReadIndex
         * from the state it keeps (readindex.c) */
        if (len == 16 && r->hooks.control)
            r->hooks.control(r->owner, kind, from, addr, be_get_u64(p),
                             be_get_u64(p + 8));
        return;
    }
    struct raft_message m;
    if (kind != NET_RAFT || raftmsg_decode(p, len, &m) != 0) {
        fprintf(stderr, "cairn node: range %llu: malformed Raft message "
                "from node %llu dropped\n", (unsigned long long)r->range,
                (unsigned long long)from);
        return;
    }
    m.server_id = from;
    m.server_address = addr;
    if (m.type == RAFT_IO_APPEND_ENTRIES && r->io.data)
        skip_covered(r->io.data, &m.append_entries);
    if (!disk_takes(r, &m)) {
        raftmsg_free(&m); /* the leader sends them again */
        return;
    }
    if (m.type == RAFT_IO_APPEND_ENTRIES)
        verified_only(r, &m.append_entries);
    if (!(r->asleep && changes_nothing(r, &m)))
        rio_wake(r);
    r->delivering = m.type == RAFT_IO_APPEND_ENTRIES;
    r->recv_cb(&r->io, &m);
    r->delivering = false;
}

/* A peer node went down, came back or restarted (net.h). A range asleep
 * has no heartbeats of its own, so this is what tells it: a follower
 * whose leader's node is gone (or restarted, forgetting it led) wakes and
 * starts an election at once; a leader wakes for a follower that is back,
 * to catch it up. */
void rio_peer_event(rio *r, uint64_t peer, int event)
{
    struct raft *raft = r->io.data;
    if (!r->started || r->closing || raft == NULL)
        return;
    bool member = false;
    for (unsigned i = 0; i < raft->configuration.n; i++)
        member |= raft->configuration.servers[i].id == peer;
    if (!member)
        return;
    if (raft->state == RAFT_LEADER &&
        (event == NET_PEER_UP || event == NET_PEER_RESTARTED)) {
        rio_wake(r);
    } else if (raft->state == RAFT_FOLLOWER && event != NET_PEER_UP &&
               raft->follower_state.current_leader.id == peer) {
        /* A leader known gone: campaign at the next tick. Only silence:
         * keep libraft's random part, so that the followers, which all
         * notice the silence at about the same time, do not split the
         * vote; those that learn "gone" do so at their own dial times. */
        rio_wake(r);
        rio_expire_election(r, event == NET_PEER_GONE);
    }
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
    rio *r = of(io);
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
    rio *r = of(io);
    raftlog_truncate(r->env->log, r->range, index);
    r->next_index = index;
    return 0;
}

static int io_set_term(struct raft_io *io, raft_term term)
{
    rio *r = of(io);
    r->term = term;
    r->vote = 0;
    raftlog_put_hard(r->env->log, r->range, r->term, r->vote);
    hold_for_log(r);
    return 0;
}

static int io_set_vote(struct raft_io *io, raft_id id)
{
    rio *r = of(io);
    r->vote = id;
    raftlog_put_hard(r->env->log, r->range, r->term, r->vote);
    hold_for_log(r);
    return 0;
}

static int io_bootstrap(struct raft_io *io,
                        const struct raft_configuration *conf)
{
    rio *r = of(io);
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
    rio *r = of(io);
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
    rio *r = of(io);
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
        if (defer(r->env, log_done, q, CAIRN_ERR_IO) != 0) {
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
    rio *r = of(io);
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
    rio *r = of(io);
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
    rio *r = of(io);
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
        defer(r->env, close_done, r, 0) != 0)
        close_done(r, 0);
}

static void io_close(struct raft_io *io, raft_io_close_cb cb)
{
    rio *r = of(io);
    ticker_remove(r);
    r->closing = true;
    r->close_cb = cb;
    drop_held(r);
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
    io->send = io_send;
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
    drop_held(r);
    if (u64map_get(&r->env->rios, r->range) == r)
        u64map_del(&r->env->rios, r->range);
    raftlog_snap_free(&r->snap);
    free(r);
}
