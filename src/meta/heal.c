/*
 * heal.c - the controller's records in etcd (meta.h, "health, drains,
 * moves"): node health, drains, membership changes under way, replica
 * rebalancing. Each write compares the mod revision as read.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/err.h"
#include "meta/meta_internal.h"
#include "meta/schema.h"

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

int meta_cas_put(meta *m, buf *key, int rc, int64_t rev, char *value,
                 int lost)
{
    etcd_txn *t = NULL;
    if (rc == 0 && value == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0 && (t = etcd_txn_new()) == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = meta_txn_cas_put(t, key, rev, value);
    if (t || rc != 0)
        rc = meta_txn_finish(m, t, rc, lost, NULL);
    free(value);
    buf_free(key);
    return rc;
}

int meta_cas_delete(meta *m, buf *key, int rc, int64_t rev, int lost)
{
    etcd_txn *t = NULL;
    if (rc == 0 && (t = etcd_txn_new()) == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = rev ? etcd_txn_cmp(t, key->data, key->len, ETCD_CMP_MOD,
                                ETCD_CMP_EQUAL, rev)
                 : etcd_txn_cmp(t, key->data, key->len, ETCD_CMP_VERSION,
                                ETCD_CMP_GREATER, 0);
    if (rc == 0)
        rc = etcd_txn_delete(t, true, key->data, key->len, NULL, 0);
    if (t || rc != 0)
        rc = meta_txn_finish(m, t, rc, lost, NULL);
    buf_free(key);
    return rc;
}

int meta_health_put(meta *m, const meta_health *h, int64_t rev)
{
    buf key = BUF_INIT;
    int rc = meta_key_health(&key, meta_prefix(m), h->node_id);
    return meta_cas_put(m, &key, rc, rev, meta_health_encode(h),
                   CAIRN_ERR_CONDITION);
}

int meta_health_delete(meta *m, uint64_t node_id, int64_t rev)
{
    buf key = BUF_INIT;
    int rc = meta_key_health(&key, meta_prefix(m), node_id);
    return meta_cas_delete(m, &key, rc, rev, CAIRN_ERR_CONDITION);
}

int meta_drain_start(meta *m, uint64_t node_id, uint64_t replicas)
{
    meta_drain d = {.node_id = node_id, .since = wall_ms(),
                    .replicas = replicas};
    buf key = BUF_INIT;
    if (node_id == 0)
        return CAIRN_ERR_INVALID;
    int rc = meta_key_drain(&key, meta_prefix(m), node_id);
    return meta_cas_put(m, &key, rc, 0, meta_drain_encode(&d), CAIRN_ERR_EXISTS);
}

int meta_drain_stop(meta *m, uint64_t node_id)
{
    buf key = BUF_INIT;
    int rc = meta_key_drain(&key, meta_prefix(m), node_id);
    return meta_cas_delete(m, &key, rc, 0, CAIRN_ERR_NOT_FOUND);
}

int meta_move_put(meta *m, const meta_move *mv, int64_t rev)
{
    buf key = BUF_INIT;
    int rc = meta_key_move(&key, meta_prefix(m), mv->range_id);
    return meta_cas_put(m, &key, rc, rev, meta_move_encode(mv),
                   CAIRN_ERR_CONDITION);
}

int meta_move_get(meta *m, uint64_t range_id, meta_move *out)
{
    buf key = BUF_INIT;
    etcd_kv kv;
    int rc = meta_key_move(&key, meta_prefix(m), range_id);
    if (rc == 0)
        rc = etcd_get(meta_etcd(m), key.data, key.len, 0, &kv, NULL);
    buf_free(&key);
    if (rc != 0)
        return rc;
    rc = meta_move_decode(kv.value, kv.value_len, out);
    out->range_id = range_id;
    out->mod_revision = kv.mod_revision;
    etcd_kv_free(&kv);
    return rc;
}

int meta_move_delete(meta *m, uint64_t range_id, int64_t rev)
{
    buf key = BUF_INIT;
    int rc = meta_key_move(&key, meta_prefix(m), range_id);
    return meta_cas_delete(m, &key, rc, rev, CAIRN_ERR_CONDITION);
}

int meta_balance_put(meta *m, const meta_balance *b, int64_t rev)
{
    buf key = BUF_INIT;
    int rc = meta_key_balance(&key, meta_prefix(m));
    return meta_cas_put(m, &key, rc, rev, meta_balance_encode(b),
                   CAIRN_ERR_CONDITION);
}

int meta_balance_delete(meta *m, int64_t rev)
{
    buf key = BUF_INIT;
    int rc = meta_key_balance(&key, meta_prefix(m));
    return meta_cas_delete(m, &key, rc, rev, CAIRN_ERR_CONDITION);
}
