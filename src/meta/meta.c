/*
 * meta.c - the schema operations of meta.h on etcd: load, id allocation,
 * tables, ranges, leaders and node registration.
 *
 * Each change follows one pattern: read (remember the mod revision), decide
 * in C, then one transaction whose compares say "nothing I read has
 * changed". A failed compare means a concurrent writer won; operations
 * that are safe to redo from a fresh read retry a bounded number of times.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/map_internal.h"
#include "meta/meta_internal.h"
#include "meta/schema.h"

#define META_RETRIES 100
#define META_LOAD_PAGE 1000

int meta_open(meta **out, etcd *c, const char *prefix)
{
    if (!prefix)
        prefix = META_PREFIX_DEFAULT;
    size_t n = strlen(prefix);
    if (!c || n < 2 || n > META_PREFIX_MAX || prefix[0] != '/' ||
        prefix[n - 1] == '/')
        return CAIRN_ERR_INVALID;
    meta *m = calloc(1, sizeof *m);
    if (!m)
        return CAIRN_ERR_NOMEM;
    m->c = c;
    memcpy(m->prefix, prefix, n + 1);
    *out = m;
    return CAIRN_OK;
}

void meta_close(meta *m) { free(m); }

etcd *meta_etcd(const meta *m) { return m->c; }

const char *meta_prefix(const meta *m) { return m->prefix; }

/* ---- load ------------------------------------------------------------- */

/* Apply a page of kvs as PUT events. */
static int apply_kvs(meta_map *map, const etcd_range_result *r)
{
    for (size_t i = 0; i < r->count; i++) {
        etcd_event ev = {ETCD_EVENT_PUT, r->kvs[i]};
        int rc = meta_map_apply(map, &ev, 1);
        if (rc != 0)
            return rc;
    }
    return CAIRN_OK;
}

int meta_load(meta *m, meta_map **out)
{
    buf key = BUF_INIT;
    uint8_t end[META_PREFIX_MAX + 2];
    meta_map *map = NULL;
    int rc = meta_key_all(&key, m->prefix);
    if (rc == 0)
        rc = meta_map_new(m->prefix, &map);
    size_t end_len = etcd_prefix_end(key.data, key.len, end);
    int64_t rev = 0;
    /* Page through the prefix, every page at the first page's revision. */
    while (rc == 0) {
        etcd_range_result r;
        rc = etcd_range(m->c, key.data, key.len, end, end_len, rev,
                        META_LOAD_PAGE, &r);
        if (rc != 0)
            break;
        if (rev == 0)
            rev = r.revision;
        rc = apply_kvs(map, &r);
        bool more = r.more && r.count > 0;
        if (rc == 0 && more) { /* continue after the last key */
            const etcd_kv *last = &r.kvs[r.count - 1];
            buf_reset(&key);
            rc = buf_append(&key, last->key, last->key_len);
            if (rc == 0)
                rc = buf_append_u8(&key, 0);
        }
        etcd_range_free(&r);
        if (!more)
            break;
    }
    buf_free(&key);
    if (rc != 0) {
        meta_map_release(map);
        return rc;
    }
    map->revision = rev;
    *out = map;
    return CAIRN_OK;
}

/* ---- ids -------------------------------------------------------------- */

/* Read an id counter: its value and mod revision (0/0 if absent). */
static int read_counter(meta *m, const buf *key, uint64_t *v, int64_t *rev)
{
    etcd_kv kv;
    int rc = etcd_get(m->c, key->data, key->len, 0, &kv, NULL);
    *v = 0;
    *rev = 0;
    if (rc == CAIRN_ERR_NOT_FOUND)
        return CAIRN_OK;
    if (rc != 0)
        return rc;
    rc = meta_counter_decode(kv.value, kv.value_len, v);
    *rev = kv.mod_revision;
    etcd_kv_free(&kv);
    return rc;
}

/* Add "counter at rev is still v" + "counter := v + n" to a txn. */
int meta_txn_bump_counter(etcd_txn *t, const buf *key, uint64_t v,
                          int64_t rev, uint64_t n)
{
    char s[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)(v + n));
    return meta_txn_cas_put(t, key, rev, s);
}

int meta_txn_cas_put(etcd_txn *t, const buf *key, int64_t rev,
                     const char *value)
{
    int rc = etcd_txn_cmp(t, key->data, key->len, ETCD_CMP_MOD,
                          ETCD_CMP_EQUAL, rev);
    if (rc == 0)
        rc = etcd_txn_put(t, true, key->data, key->len, value, strlen(value),
                          0);
    return rc;
}

int meta_txn_finish(meta *m, etcd_txn *t, int rc, int lost,
                    int64_t *revision)
{
    etcd_txn_result r = {0};
    if (rc == 0 && t == NULL)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = etcd_txn_commit(m->c, t, &r);
    if (rc == 0 && !r.succeeded)
        rc = lost;
    if (rc == 0 && revision)
        *revision = r.revision;
    etcd_txn_result_free(&r);
    etcd_txn_free(t);
    return rc;
}

int meta_alloc_ids(meta *m, meta_id_kind kind, uint64_t n, uint64_t *first)
{
    if (n == 0 || (unsigned)kind > META_ID_RANGE)
        return CAIRN_ERR_INVALID;
    buf key = BUF_INIT;
    int rc = meta_key_id(&key, m->prefix, kind);
    if (rc == 0)
        rc = CAIRN_ERR_BUSY;
    for (int i = 0; i < META_RETRIES && rc == CAIRN_ERR_BUSY; i++) {
        uint64_t v;
        int64_t rev;
        rc = read_counter(m, &key, &v, &rev);
        etcd_txn *t = rc == 0 ? etcd_txn_new() : NULL;
        if (rc == 0 && !t)
            rc = CAIRN_ERR_NOMEM;
        if (rc == 0)
            rc = meta_txn_bump_counter(t, &key, v, rev, n);
        rc = meta_txn_finish(m, t, rc, CAIRN_ERR_BUSY, NULL);
        if (rc == 0)
            *first = v + 1;
    }
    buf_free(&key);
    return rc;
}

/* ---- leaders ---------------------------------------------------------- */

int meta_leader_get(meta *m, uint64_t range_id, meta_leader *out)
{
    buf key = BUF_INIT;
    etcd_kv kv;
    int rc = meta_key_leader(&key, m->prefix, range_id);
    if (rc == 0)
        rc = etcd_get(m->c, key.data, key.len, 0, &kv, NULL);
    buf_free(&key);
    if (rc != 0)
        return rc;
    memset(out, 0, sizeof *out);
    rc = meta_leader_decode(kv.value, kv.value_len, out);
    out->range_id = range_id;
    out->mod_revision = kv.mod_revision;
    etcd_kv_free(&kv);
    return rc;
}

/* One attempt: 0 done, CAIRN_ERR_CONDITION newer term, CAIRN_ERR_BUSY lost
 * a race (retry), other errors. */
static int leader_try(meta *m, const buf *key, const meta_leader *want)
{
    meta_leader cur;
    int rc = meta_leader_get(m, want->range_id, &cur);
    if (rc != 0 && rc != CAIRN_ERR_NOT_FOUND)
        return rc;
    int64_t rev = 0;
    if (rc == 0) {
        if (cur.term > want->term ||
            (cur.term == want->term && cur.node_id != want->node_id))
            return CAIRN_ERR_CONDITION;
        if (cur.term == want->term)
            return CAIRN_OK; /* already recorded */
        rev = cur.mod_revision;
    }
    char *v = meta_leader_encode(want);
    etcd_txn *t = etcd_txn_new();
    rc = v && t ? CAIRN_OK : CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = meta_txn_cas_put(t, key, rev, v);
    rc = meta_txn_finish(m, t, rc, CAIRN_ERR_BUSY, NULL);
    free(v);
    return rc;
}

int meta_leader_set(meta *m, uint64_t range_id, uint64_t node_id,
                    uint64_t term)
{
    meta_leader want = {.range_id = range_id, .node_id = node_id, .term = term};
    buf key = BUF_INIT;
    int rc = meta_key_leader(&key, m->prefix, range_id);
    for (int i = 0; rc == 0 && i < META_RETRIES; i++) {
        rc = leader_try(m, &key, &want);
        if (rc != CAIRN_ERR_BUSY)
            break;
        rc = 0;
        if (i == META_RETRIES - 1)
            rc = CAIRN_ERR_BUSY;
    }
    buf_free(&key);
    return rc;
}

/* Decide one record of a batch against what is recorded (`cur`, range_id
 * 0 if nothing readable is): true = write it, comparing the mod revision
 * read (0: still absent); false = nothing to write, *status says why. The
 * rule of leader_try. */
static bool leader_decide(const meta_leader *want, const meta_leader *cur,
                          int *status)
{
    *status = 0;
    if (cur->range_id == 0)
        return true; /* none, or unreadable: (over)write it */
    if (cur->term > want->term ||
        (cur->term == want->term && cur->node_id != want->node_id)) {
        *status = CAIRN_ERR_CONDITION;
        return false;
    }
    return cur->term != want->term; /* the same term: already recorded */
}

/* Read the current records of ls[0..n) (n <= META_TXN_OPS) in one
 * transaction of gets: cur[i] (range_id 0 = none recorded). */
static int leaders_get(meta *m, const meta_leader *ls, size_t n,
                       meta_leader *cur)
{
    buf key = BUF_INIT;
    etcd_txn *t = etcd_txn_new();
    etcd_txn_result r = {0};
    int rc = t ? 0 : CAIRN_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = meta_key_leader(&key, m->prefix, ls[i].range_id);
        if (rc == 0)
            rc = etcd_txn_get(t, true, key.data, key.len, NULL, 0);
    }
    if (rc == 0)
        rc = etcd_txn_commit(m->c, t, &r);
    if (rc == 0 && r.n_gets != n)
        rc = CAIRN_ERR_META;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        memset(&cur[i], 0, sizeof cur[i]);
        if (r.gets[i].count == 0)
            continue;
        const etcd_kv *kv = &r.gets[i].kvs[0];
        if (meta_leader_decode(kv->value, kv->value_len, &cur[i]) != 0) {
            memset(&cur[i], 0, sizeof cur[i]); /* unreadable: overwrite */
            cur[i].mod_revision = kv->mod_revision;
            continue;
        }
        cur[i].range_id = ls[i].range_id;
        cur[i].mod_revision = kv->mod_revision;
    }
    etcd_txn_result_free(&r);
    etcd_txn_free(t);
    buf_free(&key);
    return rc;
}

/* One attempt at a chunk: read, decide, write. CAIRN_ERR_BUSY = a compare
 * failed (somebody wrote one of these records meanwhile): again. */
static int leaders_chunk_try(meta *m, const meta_leader *ls, size_t n,
                             const bool *skip, int *statuses)
{
    meta_leader cur[META_TXN_OPS];
    buf key = BUF_INIT;
    int rc = leaders_get(m, ls, n, cur);
    etcd_txn *t = rc == 0 ? etcd_txn_new() : NULL;
    if (rc == 0 && t == NULL)
        rc = CAIRN_ERR_NOMEM;
    size_t writes = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (skip[i] || !leader_decide(&ls[i], &cur[i], &statuses[i]))
            continue;
        char *v = meta_leader_encode(&ls[i]);
        rc = v ? meta_key_leader(&key, m->prefix, ls[i].range_id)
               : CAIRN_ERR_NOMEM;
        if (rc == 0)
            rc = meta_txn_cas_put(t, &key, cur[i].mod_revision, v);
        free(v);
        writes++;
    }
    buf_free(&key);
    if (rc == 0 && writes == 0) {
        etcd_txn_free(t);
        return 0;
    }
    return meta_txn_finish(m, t, rc, CAIRN_ERR_BUSY, NULL);
}

int meta_leader_set_many(meta *m, const meta_leader *ls, size_t n,
                         int *statuses)
{
    bool skip[META_TXN_OPS];
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        statuses[i] = 0;
    for (size_t at = 0; rc == 0 && at < n; at += META_TXN_OPS) {
        size_t k = n - at < META_TXN_OPS ? n - at : META_TXN_OPS;
        /* A range given twice would put one key twice in a transaction,
         * which etcd refuses: the later one is refused here instead. */
        for (size_t i = 0; i < k; i++) {
            skip[i] = false;
            for (size_t j = at; j < at + i && !skip[i]; j++)
                skip[i] = ls[j].range_id == ls[at + i].range_id;
            if (skip[i])
                statuses[at + i] = CAIRN_ERR_INVALID;
        }
        rc = CAIRN_ERR_BUSY;
        for (int tries = 0; tries < META_RETRIES && rc == CAIRN_ERR_BUSY;
             tries++)
            rc = leaders_chunk_try(m, ls + at, k, skip, statuses + at);
        for (size_t i = 0; rc != 0 && i < n - at; i++)
            if (i >= k || !skip[i])
                statuses[at + i] = rc;
    }
    return rc;
}

int meta_leaders_read(meta *m, uint64_t first_id, uint64_t last_id,
                      meta_leader **out, size_t *n)
{
    buf key = BUF_INIT, end = BUF_INIT;
    etcd_range_result r = {0};
    *out = NULL;
    *n = 0;
    if (first_id == 0 || last_id < first_id)
        return CAIRN_ERR_INVALID;
    int rc = meta_key_leader(&key, m->prefix, first_id);
    if (rc == 0)
        rc = meta_key_leader(&end, m->prefix, last_id);
    if (rc == 0)
        rc = buf_append_u8(&end, 0); /* just past last_id's key */
    if (rc == 0)
        rc = etcd_range(m->c, key.data, key.len, end.data, end.len, 0, 0, &r);
    *out = rc == 0 ? calloc(r.count + 1, sizeof **out) : NULL;
    if (rc == 0 && *out == NULL)
        rc = CAIRN_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < r.count; i++) {
        meta_key k;
        meta_leader *l = &(*out)[*n];
        if (meta_key_parse(m->prefix, r.kvs[i].key, r.kvs[i].key_len, &k) != 0 ||
            k.kind != META_KEY_LEADER ||
            meta_leader_decode(r.kvs[i].value, r.kvs[i].value_len, l) != 0)
            continue; /* not a record of ours: skip it, as meta_load does */
        l->range_id = k.a;
        l->mod_revision = r.kvs[i].mod_revision;
        (*n)++;
    }
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    etcd_range_free(&r);
    buf_free(&key);
    buf_free(&end);
    return rc;
}

/* ---- nodes ------------------------------------------------------------ */

static int node_try(meta *m, const meta_node *nd, int64_t lease)
{
    buf key = BUF_INIT, live = BUF_INIT;
    etcd_kv kv;
    int64_t rev = 0;
    int rc = meta_key_node(&key, m->prefix, nd->id);
    if (rc == 0)
        rc = meta_key_live(&live, m->prefix, nd->id);
    if (rc == 0) {
        rc = etcd_get(m->c, key.data, key.len, 0, &kv, NULL);
        if (rc == 0) {
            rev = kv.mod_revision;
            etcd_kv_free(&kv);
        } else if (rc == CAIRN_ERR_NOT_FOUND) {
            rc = 0;
        }
    }
    char *v = rc == 0 ? meta_node_encode(nd) : NULL;
    etcd_txn *t = v ? etcd_txn_new() : NULL;
    if (rc == 0 && !t)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = meta_txn_cas_put(t, &key, rev, v);
    if (rc == 0)
        rc = etcd_txn_put(t, true, live.data, live.len, "", 0, lease);
    rc = meta_txn_finish(m, t, rc, CAIRN_ERR_BUSY, NULL);
    free(v);
    buf_free(&key);
    buf_free(&live);
    return rc;
}

int meta_node_register(meta *m, uint64_t id, const char *addr,
                       uint64_t capacity, int64_t lease)
{
    return meta_node_register_zone(m, id, addr, capacity, NULL, lease);
}

int meta_node_register_zone(meta *m, uint64_t id, const char *addr,
                            uint64_t capacity, const char *zone,
                            int64_t lease)
{
    meta_node nd = {.id = id, .capacity = capacity};
    if (id == 0 || !addr || strlen(addr) >= META_ADDR_MAX || lease == 0 ||
        (zone && strlen(zone) >= META_ZONE_MAX))
        return CAIRN_ERR_INVALID;
    strcpy(nd.addr, addr);
    if (zone)
        strcpy(nd.zone, zone);
    int rc = CAIRN_ERR_BUSY;
    for (int i = 0; i < META_RETRIES && rc == CAIRN_ERR_BUSY; i++)
        rc = node_try(m, &nd, lease);
    return rc;
}

/* ---- ranges ----------------------------------------------------------- */

int meta_range_get(meta *m, uint64_t table_id, uint64_t range_id,
                   meta_range *out)
{
    buf key = BUF_INIT;
    etcd_kv kv;
    int rc = meta_key_range(&key, m->prefix, table_id, range_id);
    if (rc == 0)
        rc = etcd_get(m->c, key.data, key.len, 0, &kv, NULL);
    buf_free(&key);
    if (rc == CAIRN_ERR_NOT_FOUND)
        return CAIRN_ERR_RANGE_NOT_FOUND;
    if (rc != 0)
        return rc;
    rc = meta_range_decode(kv.value, kv.value_len, out);
    out->table_id = table_id;
    out->id = range_id;
    out->mod_revision = kv.mod_revision;
    etcd_kv_free(&kv);
    return rc;
}

int meta_range_update(meta *m, const meta_range *read, const meta_range *next)
{
    if (next->id != read->id || next->table_id != read->table_id ||
        next->n_replicas < 0 || next->n_replicas > META_MAX_REPLICAS ||
        (next->end_len > 0 && key_cmp(next->start, next->start_len,
                                           next->end, next->end_len) >= 0))
        return CAIRN_ERR_INVALID;
    if (next->epoch <= read->epoch)
        return CAIRN_ERR_STALE_EPOCH;
    buf key = BUF_INIT;
    char *v = meta_range_encode(next);
    etcd_txn *t = etcd_txn_new();
    int rc = v && t ? meta_key_range(&key, m->prefix, read->table_id, read->id)
                    : CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = meta_txn_cas_put(t, &key, read->mod_revision, v);
    rc = meta_txn_finish(m, t, rc, CAIRN_ERR_CONDITION, NULL);
    free(v);
    buf_free(&key);
    return rc;
}

int meta_range_split(meta *m, const meta_range *read, const void *key,
                     size_t key_len, uint64_t new_id, uint64_t epoch,
                     uint64_t new_epoch)
{
    if (key_len == 0 || new_id == 0 || new_id == read->id ||
        !meta_range_contains(read, key, key_len) ||
        key_cmp(key, key_len, read->start, read->start_len) == 0)
        return CAIRN_ERR_INVALID;
    if (epoch <= read->epoch || new_epoch <= read->epoch)
        return CAIRN_ERR_STALE_EPOCH;
    meta_range left = *read, right = *read; /* share bounds: read only */
    left.end = (uint8_t *)key;
    left.end_len = key_len;
    left.epoch = epoch;
    right.id = new_id;
    right.start = (uint8_t *)key;
    right.start_len = key_len;
    right.epoch = new_epoch;
    right.state = META_RANGE_NORMAL;
    right.from = 0;
    buf lk = BUF_INIT, rk = BUF_INIT;
    char *lv = meta_range_encode(&left), *rv = meta_range_encode(&right);
    etcd_txn *t = etcd_txn_new();
    int rc = lv && rv && t ? 0 : CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = meta_key_range(&lk, m->prefix, read->table_id, read->id);
    if (rc == 0)
        rc = meta_key_range(&rk, m->prefix, read->table_id, new_id);
    if (rc == 0)
        rc = meta_txn_cas_put(t, &lk, read->mod_revision, lv);
    if (rc == 0) /* mod revision 0: the new range does not exist yet */
        rc = meta_txn_cas_put(t, &rk, 0, rv);
    rc = meta_txn_finish(m, t, rc, CAIRN_ERR_CONDITION, NULL);
    free(lv);
    free(rv);
    buf_free(&lk);
    buf_free(&rk);
    return rc;
}

int meta_range_set_replicas(meta *m, const meta_range *read,
                            const uint64_t *nodes, int n)
{
    if (n < 1 || n > META_MAX_REPLICAS)
        return CAIRN_ERR_INVALID;
    meta_range next = *read; /* shares the bounds: read-only here */
    memcpy(next.replicas, nodes, (size_t)n * sizeof *nodes);
    next.n_replicas = n;
    next.epoch = read->epoch + 1;
    return meta_range_update(m, read, &next);
}
