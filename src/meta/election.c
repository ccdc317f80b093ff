/*
 * election.c - meta_election (meta.h): one active controller.
 *
 * The leader is whoever created P/controller under its lease. Safety does
 * not rest on etcd alone: a holder claims leadership only until
 * (start of its last successful keepalive + TTL - margin), a moment
 * before etcd could expire the lease and let another candidate win, so
 * two controllers never both believe they lead (clocks on one machine
 * run at the same rate; the margin covers scheduling).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/meta_internal.h"
#include "meta/mono.h"

#define ELECTION_NAME_MAX 128
#define ELECTION_MARGIN_MS 500

struct meta_election {
    meta *m;
    char name[ELECTION_NAME_MAX];
    int ttl_s;
    buf key;
    int64_t lease;        /* thread-owned */
    int64_t leader_until; /* monotonic ms; 0 = not leader */
    bool stop;
    pthread_t thread;
    pthread_mutex_t mu; /* guards leader_until, stop */
    pthread_cond_t cv;
};

static void set_until(meta_election *e, int64_t until)
{
    pthread_mutex_lock(&e->mu);
    e->leader_until = until;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* Sleep up to ms unless stopped. true = stopped. */
static bool pause_ms(meta_election *e, int ms)
{
    return meta_sleep_unless(&e->mu, &e->cv, &e->stop, ms);
}

/* Try to take the key with our lease. 0 won, CAIRN_ERR_EXISTS held by
 * someone else (or by us already), or an error. */
static int campaign(meta_election *e)
{
    etcd_txn *t = etcd_txn_new();
    int rc = t ? 0 : CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = etcd_txn_cmp(t, e->key.data, e->key.len, ETCD_CMP_VERSION,
                          ETCD_CMP_EQUAL, 0);
    if (rc == 0)
        rc = etcd_txn_put(t, true, e->key.data, e->key.len, e->name,
                          strlen(e->name), e->lease);
    return meta_txn_finish(e->m, t, rc, CAIRN_ERR_EXISTS, NULL);
}

/* Whether the key exists under our lease (it may have been deleted by
 * hand, or our lease replaced). */
static bool holds(meta_election *e)
{
    etcd_kv kv;
    if (etcd_get(e->m->c, e->key.data, e->key.len, 0, &kv, NULL) != 0)
        return false;
    bool mine = kv.lease == e->lease;
    etcd_kv_free(&kv);
    return mine;
}

/* One round: make sure we have a lease, refresh it, and campaign if we
 * are not the leader. */
static void round_once(meta_election *e)
{
    etcd *c = e->m->c;
    int64_t start = meta_mono_ms();
    if (e->lease == 0 && etcd_lease_grant(c, e->ttl_s, &e->lease) != 0) {
        e->lease = 0;
        return;
    }
    int64_t ttl = 0;
    int rc = etcd_lease_keepalive(c, e->lease, &ttl);
    if (rc == CAIRN_ERR_NOT_FOUND) {
        e->lease = 0; /* expired: whatever we held is gone */
        set_until(e, 0);
        return;
    }
    if (rc != 0)
        return; /* etcd unreachable: leader_until runs out by itself */
    int64_t until = start + ttl * 1000 - ELECTION_MARGIN_MS;
    if (holds(e) || campaign(e) == 0)
        set_until(e, until);
    else
        set_until(e, 0);
}

static void *election_main(void *arg)
{
    meta_election *e = arg;
    int period = e->ttl_s * 1000 / 3;
    do
        round_once(e);
    while (!pause_ms(e, period));
    return NULL;
}

int meta_election_start(meta *m, const char *candidate, int ttl_s,
                        meta_election **out)
{
    if (!candidate || strlen(candidate) >= ELECTION_NAME_MAX || ttl_s < 2)
        return CAIRN_ERR_INVALID;
    meta_election *e = calloc(1, sizeof *e);
    if (!e)
        return CAIRN_ERR_NOMEM;
    e->m = m;
    strcpy(e->name, candidate);
    e->ttl_s = ttl_s;
    if (buf_appendf(&e->key, "%s/controller", m->prefix) != 0) {
        free(e);
        return CAIRN_ERR_NOMEM;
    }
    pthread_mutex_init(&e->mu, NULL);
    meta_cond_init(&e->cv);
    if (pthread_create(&e->thread, NULL, election_main, e) != 0) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        buf_free(&e->key);
        free(e);
        return CAIRN_ERR_NOMEM;
    }
    *out = e;
    return CAIRN_OK;
}

bool meta_election_is_leader(meta_election *e)
{
    pthread_mutex_lock(&e->mu);
    bool yes = e->leader_until > meta_mono_ms();
    pthread_mutex_unlock(&e->mu);
    return yes;
}

int meta_election_wait(meta_election *e, int timeout_ms)
{
    int64_t deadline = meta_mono_ms() + timeout_ms;
    while (!meta_election_is_leader(e)) {
        int64_t left = deadline - meta_mono_ms();
        if (left <= 0)
            return CAIRN_ERR_TIMEOUT;
        pause_ms(e, left < 20 ? (int)left : 20);
    }
    return CAIRN_OK;
}

void meta_election_stop(meta_election *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    e->leader_until = 0;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    if (e->lease)
        etcd_lease_revoke(e->m->c, e->lease); /* hand over at once */
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    buf_free(&e->key);
    free(e);
}

int meta_election_leader(meta *m, char *out, size_t n)
{
    buf key = BUF_INIT;
    etcd_kv kv;
    int rc = buf_appendf(&key, "%s/controller", m->prefix);
    if (rc == 0)
        rc = etcd_get(m->c, key.data, key.len, 0, &kv, NULL);
    buf_free(&key);
    if (rc != 0)
        return rc;
    snprintf(out, n, "%s", (char *)kv.value);
    etcd_kv_free(&kv);
    return CAIRN_OK;
}
