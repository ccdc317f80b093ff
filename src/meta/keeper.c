/*
 * keeper.c - meta_node_keeper (meta.h): keep a node registered in etcd.
 *
 * The node's liveness key is tied to a lease; the thread refreshes the
 * lease every ttl/3. If etcd is unreachable the node keeps serving (Raft
 * does not need etcd) and the thread keeps trying; when etcd answers
 * again and the lease has expired meanwhile, it grants a new lease and
 * registers again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "meta/meta.h"
#include "meta/mono.h"

#define KEEPER_RETRY_MS 200

struct meta_node_keeper {
    meta *m;
    uint64_t id;
    char addr[META_ADDR_MAX];
    char zone[META_ZONE_MAX];
    uint64_t capacity;
    int ttl_s;
    int64_t lease; /* 0 = none */
    bool registered;
    bool stop;
    pthread_t thread;
    pthread_mutex_t mu; /* guards registered, stop, lease */
    pthread_cond_t cv;
};

/* Sleep up to ms unless stopped. true = stopped. */
static bool pause_ms(meta_node_keeper *k, int ms)
{
    return meta_sleep_unless(&k->mu, &k->cv, &k->stop, ms);
}

static void set_state(meta_node_keeper *k, int64_t lease, bool registered)
{
    pthread_mutex_lock(&k->mu);
    k->lease = lease;
    k->registered = registered;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* Grant a lease and register under it. 0 or an error (retry later). */
static int join(meta_node_keeper *k, int64_t *lease)
{
    etcd *c = meta_etcd(k->m);
    int rc = etcd_lease_grant(c, k->ttl_s, lease);
    if (rc != 0)
        return rc;
    rc = meta_node_register_zone(k->m, k->id, k->addr, k->capacity, k->zone,
                                 *lease);
    if (rc != 0)
        etcd_lease_revoke(c, *lease); /* best effort; it expires anyway */
    return rc;
}

static void *keeper_main(void *arg)
{
    meta_node_keeper *k = arg;
    int64_t lease = 0;
    int period_ms = k->ttl_s * 1000 / 3;
    for (;;) {
        if (lease == 0) {
            if (join(k, &lease) != 0) {
                lease = 0;
                if (pause_ms(k, KEEPER_RETRY_MS))
                    break;
                continue;
            }
            set_state(k, lease, true);
        }
        if (pause_ms(k, period_ms))
            break;
        int rc = etcd_lease_keepalive(meta_etcd(k->m), lease, NULL);
        if (rc == CAIRN_ERR_NOT_FOUND) {
            lease = 0; /* expired while etcd was away: join again */
            set_state(k, 0, false);
        }
        /* Other errors: etcd unreachable; keep the lease, try again. */
    }
    return NULL;
}

int meta_node_keeper_start(meta *m, uint64_t id, const char *addr,
                           uint64_t capacity, int ttl_s,
                           meta_node_keeper **out)
{
    return meta_node_keeper_start_zone(m, id, addr, capacity, NULL, ttl_s,
                                       out);
}

int meta_node_keeper_start_zone(meta *m, uint64_t id, const char *addr,
                                uint64_t capacity, const char *zone,
                                int ttl_s, meta_node_keeper **out)
{
    if (id == 0 || !addr || strlen(addr) >= META_ADDR_MAX || ttl_s < 2 ||
        (zone && strlen(zone) >= META_ZONE_MAX))
        return CAIRN_ERR_INVALID;
    meta_node_keeper *k = calloc(1, sizeof *k);
    if (!k)
        return CAIRN_ERR_NOMEM;
    k->m = m;
    k->id = id;
    strcpy(k->addr, addr);
    if (zone)
        strcpy(k->zone, zone);
    k->capacity = capacity;
    k->ttl_s = ttl_s;
    pthread_mutex_init(&k->mu, NULL);
    meta_cond_init(&k->cv);
    if (pthread_create(&k->thread, NULL, keeper_main, k) != 0) {
        pthread_mutex_destroy(&k->mu);
        pthread_cond_destroy(&k->cv);
        free(k);
        return CAIRN_ERR_NOMEM;
    }
    *out = k;
    return CAIRN_OK;
}

int meta_node_keeper_wait(meta_node_keeper *k, int timeout_ms)
{
    struct timespec ts = meta_mono_deadline(timeout_ms);
    pthread_mutex_lock(&k->mu);
    while (!k->registered && !k->stop &&
           pthread_cond_timedwait(&k->cv, &k->mu, &ts) == 0)
        ;
    bool ok = k->registered;
    pthread_mutex_unlock(&k->mu);
    return ok ? CAIRN_OK : CAIRN_ERR_TIMEOUT;
}

void meta_node_keeper_stop(meta_node_keeper *k, bool revoke)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    if (revoke && k->lease)
        etcd_lease_revoke(meta_etcd(k->m), k->lease);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
}
