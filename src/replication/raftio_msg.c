/*
 * raftio_msg.c - the messages of one range's raft_io (raftio_int.h): what
 * libraft sends goes on the node's links, held back until the log batch
 * it depends on is durable; what arrives is checked and handed to libraft;
 * peer nodes' comings and goings wake the range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/diskguard.h"
#include "raftio_int.h"

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
void rio_drop_held(rio *r)
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

int rio_io_send(struct raft_io *io, struct raft_io_send *req,
                const struct raft_message *msg, raft_io_send_cb cb)
{
    rio *r = rio_of(io);
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
    return rio_defer(r->env, send_done, req, status);
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

