/*
 * relocate.c - a range's move to a new replica group in etcd (meta.h,
 * "meta_relocation"): the record of its steps, the switch of ownership
 * and the end of the migration. Each write compares what it read.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "meta/meta_internal.h"
#include "meta/schema.h"

int meta_relocation_start(meta *m, const meta_relocation *r)
{
    if (r->range_id == 0 || r->n_nodes < 1 || r->n_nodes > META_MAX_REPLICAS)
        return CAIRN_ERR_INVALID;
    buf key = BUF_INIT;
    int rc = meta_key_relocation(&key, meta_prefix(m), r->range_id);
    return meta_cas_put(m, &key, rc, 0, meta_relocation_encode(r),
                        CAIRN_ERR_EXISTS);
}

int meta_relocation_put(meta *m, const meta_relocation *r, int64_t rev)
{
    buf key = BUF_INIT;
    int rc = meta_key_relocation(&key, meta_prefix(m), r->range_id);
    return meta_cas_put(m, &key, rc, rev, meta_relocation_encode(r),
                        CAIRN_ERR_CONDITION);
}

int meta_relocation_get(meta *m, uint64_t range_id, meta_relocation *out)
{
    buf key = BUF_INIT;
    etcd_kv kv;
    int rc = meta_key_relocation(&key, meta_prefix(m), range_id);
    if (rc == 0)
        rc = etcd_get(meta_etcd(m), key.data, key.len, 0, &kv, NULL);
    buf_free(&key);
    if (rc != 0)
        return rc;
    rc = meta_relocation_decode(kv.value, kv.value_len, out);
    out->range_id = range_id;
    out->mod_revision = kv.mod_revision;
    etcd_kv_free(&kv);
    return rc;
}

int meta_relocation_delete(meta *m, uint64_t range_id, int64_t rev)
{
    buf key = BUF_INIT;
    int rc = meta_key_relocation(&key, meta_prefix(m), range_id);
    return meta_cas_delete(m, &key, rc, rev, CAIRN_ERR_CONDITION);
}

static bool same_bounds(const meta_range *a, const meta_range *b)
{
    return a->start_len == b->start_len && a->end_len == b->end_len &&
           (a->start_len == 0 ||
            memcmp(a->start, b->start, a->start_len) == 0) &&
           (a->end_len == 0 || memcmp(a->end, b->end, a->end_len) == 0);
}

int meta_range_switch(meta *m, const meta_range *src, const meta_range *dest)
{
    if (dest->id == 0 || dest->id == src->id ||
        dest->table_id != src->table_id || !same_bounds(src, dest) ||
        dest->state != META_RANGE_MIGRATING || dest->from != src->id ||
        dest->n_replicas < 1 || dest->n_replicas > META_MAX_REPLICAS)
        return CAIRN_ERR_INVALID;
    buf sk = BUF_INIT, dk = BUF_INIT;
    char *v = meta_range_encode(dest);
    etcd_txn *t = etcd_txn_new();
    int rc = v && t ? 0 : CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = meta_key_range(&sk, meta_prefix(m), src->table_id, src->id);
    if (rc == 0)
        rc = meta_key_range(&dk, meta_prefix(m), dest->table_id, dest->id);
    /* the source as read, and nothing yet where the destination goes */
    if (rc == 0)
        rc = etcd_txn_cmp(t, sk.data, sk.len, ETCD_CMP_MOD, ETCD_CMP_EQUAL,
                          src->mod_revision);
    if (rc == 0)
        rc = etcd_txn_delete(t, true, sk.data, sk.len, NULL, 0);
    if (rc == 0)
        rc = meta_txn_cas_put(t, &dk, 0, v);
    rc = meta_txn_finish(m, t, rc, CAIRN_ERR_CONDITION, NULL);
    free(v);
    buf_free(&sk);
    buf_free(&dk);
    return rc;
}

int meta_range_end_migration(meta *m, const meta_range *read)
{
    if (read->state != META_RANGE_MIGRATING)
        return CAIRN_ERR_INVALID;
    meta_range next = *read; /* shares the bounds: read-only here */
    next.state = META_RANGE_NORMAL;
    next.from = 0;
    next.from_epoch = 0;
    next.n_from = 0;
    buf key = BUF_INIT;
    int rc = meta_key_range(&key, meta_prefix(m), read->table_id, read->id);
    return meta_cas_put(m, &key, rc, read->mod_revision,
                        meta_range_encode(&next), CAIRN_ERR_CONDITION);
}
