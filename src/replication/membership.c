/*
 * membership.c - a replica's membership and leadership changes: add (as a
 * standby, promoted once caught up), remove, transfer leadership; each
 * change followed by the epoch entry that bumps the range's epoch
 * (replica_int.h).
 */
#include "replica_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

admin_req *admin_new(replica *r, uint64_t id, rep_admin_cb cb, void *arg)
{
    admin_req *a = calloc(1, sizeof *a);
    if (a) {
        a->r = r;
        a->id = id;
        a->cb = cb;
        a->arg = arg;
        a->change.data = a;
        a->transfer.data = a;
        a->next = r->admins;
        if (r->admins)
            r->admins->prev = a;
        r->admins = a;
    }
    return a;
}

static void admin_unlink(admin_req *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        a->r->admins = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->next = a->prev = NULL;
}

/* Free a request libraft never accepted. */
static void admin_discard(admin_req *a)
{
    admin_unlink(a);
    free(a);
}

static void admin_free_cb(uv_handle_t *h) { free(h->data); }

void admin_finish(admin_req *a, int status, const char *msg)
{
    admin_unlink(a);
    a->cb(a->arg, status, msg);
    if (a->has_poll) {
        a->poll.data = a;
        uv_close((uv_handle_t *)&a->poll, admin_free_cb);
    } else {
        free(a);
    }
}

static void admin_done(admin_req *a, int rv, const char *what)
{
    char msg[300];
    if (rv != 0)
        snprintf(msg, sizeof msg, "%s: %s", what, raft_strerror(rv));
    else
        snprintf(msg, sizeof msg, "%s: done", what);
    admin_finish(a, replica_map_raft_err(rv), msg);
}

/* The entry of an admin request (epoch or split) applied here, or failed:
 * answer the request. */
void membership_epoch_done(proposal *p, int st)
{
    admin_req *a = p->admin;
    char msg[700];
    if (st == 0 && p->status != 0) /* applied, but refused as it applied */
        snprintf(msg, sizeof msg, "%s: %s", a->what,
                 cairn_err_message(st = p->status));
    else if (st == 0 && a->fence) {
        /* every sequencer the range holds was observed as it applied (or
         * was restored): the next one is above them all */
        char hex[SEQ_HEX_LEN + 1];
        seq next = seq_next(a->r->env->clock);
        seq_to_hex(&next, hex);
        snprintf(msg, sizeof msg, "%s: done, epoch %llu, seq %s", a->what,
                 (unsigned long long)p->epoch, hex);
    } else if (st == 0)
        snprintf(msg, sizeof msg, "%s: done, epoch %llu", a->what,
                 (unsigned long long)p->epoch);
    else if (a->entry_is_change)
        snprintf(msg, sizeof msg, "%s: %s", a->what, cairn_err_message(st));
    else
        snprintf(msg, sizeof msg, "%s: done, but the epoch entry failed: %s",
                 a->what, cairn_err_message(st));
    replica_prop_free(p);
    admin_finish(a, st, msg);
}

void admin_propose(admin_req *a, const char *what,
                   int (*build)(buf *e, uint64_t nonce, uint64_t id,
                                uint64_t epoch, void *arg),
                   void *build_arg)
{
    replica *r = a->r;
    proposal *p = calloc(1, sizeof *p);
    buf e = BUF_INIT;
    struct raft_buffer rb = {NULL, 0};
    int rc = CAIRN_ERR_NOMEM;
    a->what = what;
    if (p) {
        /* The new epoch is carried in the entry. Above every epoch this
         * leader proposed, too: an earlier epoch entry may not have
         * applied yet. */
        uint64_t next = r->meta.epoch > r->epoch_proposed ? r->meta.epoch
                                                          : r->epoch_proposed;
        r->epoch_proposed = next + 1;
        p->r = r;
        p->admin = a;
        p->id = ++r->next_prop;
        rc = build(&e, r->env->nonce, p->id, next + 1, build_arg);
    }
    if (rc == 0 && (rb.base = raft_malloc(e.len)) == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0) {
        memcpy(rb.base, e.data, e.len);
        rb.len = e.len;
        p->req.data = p;
        p->next = r->props;
        if (r->props)
            r->props->prev = p;
        r->props = p;
        int rv = raft_apply(&r->raft, &p->req, &rb, 1, replica_applied_cb);
        if (rv != 0) {
            raft_free(rb.base);
            replica_prop_unlink(r, p);
            rc = replica_map_raft_err(rv);
        }
    }
    buf_free(&e);
    if (rc != 0) {
        if (p == NULL) {
            admin_finish(a, rc, "out of memory");
            return;
        }
        membership_epoch_done(p, rc);
    }
}

/* What an epoch entry carries besides the epoch. */
typedef struct epoch_extra {
    uint8_t flags; /* ENTRY_EPOCH_FREEZE, ENTRY_EPOCH_FLOOR */
    seq floor;
} epoch_extra;

/* `arg`: an epoch_extra, or NULL for none. */
static int build_epoch(buf *e, uint64_t nonce, uint64_t id, uint64_t epoch,
                       void *arg)
{
    const epoch_extra *x = arg;
    return entry_put_epoch(e, nonce, id, epoch, x ? x->flags : 0,
                           x ? &x->floor : NULL);
}

/* The membership change committed: propose the epoch entry that bumps the
 * range's epoch on every replica; the request is answered once it applied,
 * with the new epoch (the caller records it in the metadata). */
static void membership_changed(admin_req *a, const char *what)
{
    admin_propose(a, what, build_epoch, NULL);
}

static void promoted_cb(struct raft_change *req, int status)
{
    admin_req *a = req->data;
    char msg[128];
    if (status == 0) {
        membership_changed(a, "promote to voter");
        return;
    }
    snprintf(msg, sizeof msg, "promote to voter: %s", raft_strerror(status));
    admin_finish(a, replica_map_raft_err(status), msg);
}

/* Whether standby `id` has every entry the leader had committed. */
static bool caught_up(replica *r, uint64_t id)
{
    if (r->raft.state != RAFT_LEADER)
        return false;
    for (unsigned i = 0; i < r->raft.configuration.n; i++)
        if (r->raft.configuration.servers[i].id == id)
            return r->raft.leader_state.progress[i].match_index >=
                   r->raft.commit_index;
    return false;
}

/* The standby is promoted only once it holds the committed log, so that a
 * slow newcomer never counts in a quorum it cannot serve. */
static void poll_catch_up(uv_timer_t *t)
{
    admin_req *a = t->data;
    replica *r = a->r;
    int rv = 0;
    if (r->closing || r->raft.state != RAFT_LEADER)
        rv = RAFT_NOTLEADER;
    else if (!caught_up(r, a->id) && replica_now_ms(r) < a->deadline_ms)
        return; /* keep polling */
    else if (!caught_up(r, a->id))
        rv = RAFT_BUSY;
    else
        rv = raft_assign(&r->raft, &a->change, a->id, RAFT_VOTER,
                         promoted_cb);
    uv_timer_stop(t);
    if (rv != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "promote to voter: %s%s", raft_strerror(rv),
                 rv == RAFT_BUSY ? " (standby did not catch up in 60 s)" : "");
        admin_finish(a, replica_map_raft_err(rv), msg);
    }
}

static void start_catch_up(admin_req *a)
{
    a->deadline_ms = replica_now_ms(a->r) + 60000;
    uv_timer_init(a->r->env->loop, &a->poll);
    a->has_poll = true;
    a->poll.data = a;
    uv_timer_start(&a->poll, poll_catch_up, 50, 50);
}

static void standby_cb(struct raft_change *req, int status)
{
    admin_req *a = req->data;
    if (status != 0) {
        admin_done(a, status, "assign standby");
        return;
    }
    start_catch_up(a);
}

static void added_cb(struct raft_change *req, int status)
{
    admin_req *a = req->data;
    if (status != 0) {
        admin_done(a, status, "add");
        return;
    }
    int rv = raft_assign(&a->r->raft, &a->change, a->id, RAFT_STANDBY,
                         standby_cb);
    if (rv != 0)
        admin_done(a, rv, "assign standby");
}

/* Server `id` in the current configuration (the last one appended,
 * committed or not), or NULL. */
static const struct raft_server *config_find(replica *r, uint64_t id)
{
    for (unsigned i = 0; i < r->raft.configuration.n; i++)
        if (r->raft.configuration.servers[i].id == id)
            return &r->raft.configuration.servers[i];
    return NULL;
}

/* Adding a server that is already in the configuration continues where an
 * earlier add stopped (a caller that lost its answer, a controller that
 * died mid-way, a leader that changed): a spare is made a standby, a
 * standby is promoted once caught up, and a voter is done - its epoch
 * entry is proposed again, so the answer carries an epoch the caller can
 * record. The same id at another address is refused. */
static int add_again(admin_req *a, const struct raft_server *s,
                     const char *address)
{
    replica *r = a->r;
    if (strcmp(s->address, address) != 0)
        return RAFT_DUPLICATEID;
    if (s->role == RAFT_VOTER) {
        membership_changed(a, "add");
        return 0;
    }
    if (s->role == RAFT_STANDBY) {
        start_catch_up(a);
        return 0;
    }
    return raft_assign(&r->raft, &a->change, a->id, RAFT_STANDBY, standby_cb);
}

int replica_add(replica *r, uint64_t id, const char *address,
                rep_admin_cb cb, void *arg)
{
    quiesce_touch(r);
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    admin_req *a = admin_new(r, id, cb, arg);
    if (a == NULL)
        return CAIRN_ERR_NOMEM;
    const struct raft_server *s = config_find(r, id);
    int rv = s ? add_again(a, s, address)
               : raft_add(&r->raft, &a->change, id, address, added_cb);
    if (rv != 0) {
        admin_discard(a);
        return replica_map_raft_err(rv);
    }
    return 0;
}

static void removed_cb(struct raft_change *req, int status)
{
    if (status == 0)
        membership_changed(req->data, "remove");
    else
        admin_done(req->data, status, "remove");
}

int replica_remove(replica *r, uint64_t id, rep_admin_cb cb, void *arg)
{
    quiesce_touch(r);
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    admin_req *a = admin_new(r, id, cb, arg);
    if (a == NULL)
        return CAIRN_ERR_NOMEM;
    if (config_find(r, id) == NULL) {
        /* Already removed (a repeated request): done, and the epoch entry
         * proposed again so that the answer carries an epoch. */
        membership_changed(a, "remove");
        return 0;
    }
    int rv = raft_remove(&r->raft, &a->change, id, removed_cb);
    if (rv != 0) {
        admin_discard(a);
        return replica_map_raft_err(rv);
    }
    return 0;
}

void replica_epoch_floor(replica *r, uint64_t epoch)
{
    if (epoch > r->epoch_proposed)
        r->epoch_proposed = epoch;
}

int replica_bump_epoch(replica *r, uint64_t floor, rep_admin_cb cb,
                       void *arg)
{
    quiesce_touch(r);
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    /* As a split: not before this leader's first barrier, so that every
     * epoch entry of earlier terms applied and this one is above them. */
    if (r->ready_term != r->raft.current_term) {
        replica_schedule_flush(r);
        return CAIRN_ERR_TRYAGAIN;
    }
    admin_req *a = admin_new(r, 0, cb, arg);
    if (a == NULL)
        return CAIRN_ERR_NOMEM;
    replica_epoch_floor(r, floor);
    membership_changed(a, "epoch");
    return 0;
}

/* An epoch entry with `extra` (copied into the request), above `floor`. */
static int propose_marked(replica *r, uint64_t floor, const epoch_extra *x,
                          const char *what, rep_admin_cb cb, void *arg)
{
    quiesce_touch(r);
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    if (r->ready_term != r->raft.current_term) { /* as replica_bump_epoch */
        replica_schedule_flush(r);
        return CAIRN_ERR_TRYAGAIN;
    }
    admin_req *a = admin_new(r, 0, cb, arg);
    if (a == NULL)
        return CAIRN_ERR_NOMEM;
    a->fence = (x->flags & ENTRY_EPOCH_FREEZE) != 0;
    replica_epoch_floor(r, floor);
    /* the entry is built inside admin_propose: `x` may be the caller's */
    admin_propose(a, what, build_epoch, (void *)x);
    return 0;
}

int replica_fence(replica *r, uint64_t floor, rep_admin_cb cb, void *arg)
{
    epoch_extra x = {.flags = ENTRY_EPOCH_FREEZE, .floor = seq_zero()};
    return propose_marked(r, floor, &x, "fence", cb, arg);
}

int replica_set_floor(replica *r, uint64_t floor, const seq *s,
                      rep_admin_cb cb, void *arg)
{
    epoch_extra x = {.flags = ENTRY_EPOCH_FLOOR, .floor = *s};
    return propose_marked(r, floor, &x, "floor", cb, arg);
}

static void transferred_cb(struct raft_transfer *req)
{
    admin_req *a = req->data;
    a->r->handing_over = false;
    raft_id lid = 0;
    const char *addr = NULL;
    raft_leader(&a->r->raft, &lid, &addr);
    bool ok = a->id ? lid == a->id : (lid != 0 && lid != a->r->raft.id);
    char msg[128];
    snprintf(msg, sizeof msg, "leader is now %llu", (unsigned long long)lid);
    admin_finish(a, ok ? 0 : CAIRN_ERR_TIMEOUT, msg);
}

/* A transfer waits (at most this long) for the writes in flight to apply
 * before it starts. */
#define HANDOVER_WAIT_MS 2000

static void start_transfer(admin_req *a)
{
    replica *r = a->r;
    int rv = raft_transfer(&r->raft, &a->transfer, a->id, transferred_cb);
    if (rv != 0) {
        r->handing_over = false;
        admin_done(a, rv, "transfer");
    }
}

static bool writes_in_flight(replica *r)
{
    return r->props != NULL || r->writes.n > 0;
}

static void poll_handover(uv_timer_t *t)
{
    admin_req *a = t->data;
    replica *r = a->r;
    if (r->closing || r->raft.state != RAFT_LEADER) {
        uv_timer_stop(t);
        r->handing_over = false;
        admin_finish(a, CAIRN_ERR_NOT_LEADER, "transfer: leadership lost");
        return;
    }
    if (writes_in_flight(r) && replica_now_ms(r) < a->deadline_ms)
        return;
    uv_timer_stop(t);
    start_transfer(a);
}

/* A leader that steps down fails the writes it has in flight: their
 * clients would hear TIMEOUT (outcome unknown) for writes that commit
 * anyway. So a transfer first refuses new writes (TRYAGAIN, which the
 * router retries on the next leader), waits for those in flight to be
 * applied - a few milliseconds - and only then hands over. */
int replica_transfer(replica *r, uint64_t id, rep_admin_cb cb, void *arg)
{
    quiesce_touch(r);
    if (r->raft.state != RAFT_LEADER)
        return CAIRN_ERR_NOT_LEADER;
    if (r->handing_over)
        return CAIRN_ERR_BUSY;
    admin_req *a = admin_new(r, id, cb, arg);
    if (a == NULL)
        return CAIRN_ERR_NOMEM;
    r->handing_over = true;
    if (!writes_in_flight(r)) {
        int rv = raft_transfer(&r->raft, &a->transfer, id, transferred_cb);
        if (rv != 0) {
            r->handing_over = false;
            admin_discard(a);
            return replica_map_raft_err(rv);
        }
        return 0;
    }
    a->deadline_ms = replica_now_ms(r) + HANDOVER_WAIT_MS;
    uv_timer_init(r->env->loop, &a->poll);
    a->has_poll = true;
    a->poll.data = a;
    uv_timer_start(&a->poll, poll_handover, 2, 2);
    return 0;
}


/* An add waiting for its standby to catch up is known to no one but its
 * timer, which would otherwise fire into the freed replica. */
void membership_stop_polls(replica *r)
{
    admin_req *a = r->admins, *next;
    for (; a; a = next) {
        next = a->next;
        if (a->has_poll && uv_is_active((uv_handle_t *)&a->poll)) {
            uv_timer_stop(&a->poll);
            admin_finish(a, CAIRN_ERR_SHUTDOWN,
                         "promote to voter: replica closed");
        }
    }
}
