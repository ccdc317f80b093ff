/*
 * raftio_int.h - what the two files of one range's raft_io share
 * (raftio.h is the public face): raftio.c (time, storage, snapshots,
 * thread-pool work, lifecycle) and raftio_msg.c (messages: send, hold
 * until durable, deliver, peer events).
 */
#ifndef CAIRN_REP_RAFTIO_INT_H
#define CAIRN_REP_RAFTIO_INT_H

#include "raftio.h"
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

static inline rio *rio_of(struct raft_io *io) { return io->impl; }

/* Run fn(arg, status) on the loop's idle phase: libraft's send and close
 * callbacks must not run inside the call that started them. 0 or
 * RAFT_NOMEM. */
int rio_defer(rep_env *env, void (*fn)(void *, int), void *arg, int status);

/* libraft's io->send (raftio_msg.c). */
int rio_io_send(struct raft_io *io, struct raft_io_send *req,
                const struct raft_message *msg, raft_io_send_cb cb);

/* Drop the held messages of a closing range (raftio_msg.c). */
void rio_drop_held(rio *r);

#endif
