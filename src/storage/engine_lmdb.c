/*
 * engine_lmdb.c - the B+ tree engine (ENGINE_BTREE) over LMDB.
 *
 * Key layout. LMDB as Debian builds it takes keys of at most 511 bytes,
 * while a stored key (range id + user key) can be 1,032. So a user key is
 * cut into chunks of LM_CHUNK (502) bytes, and each chunk but the last is a
 * "bucket" naming the keys that continue it:
 *
 *     DB "data":   range id (8) | user key              -> value record
 *                  range id (8) | first 502 bytes | 0x00 -> bucket id (8)
 *     DB "tails":  bucket id (8) | next chunk ...        (same two shapes)
 *     DB "ranges": range id (8)                          -> range record
 *                  "next_bucket"                         -> next bucket id
 *
 * A bucket key sorts exactly where the keys it holds sort among their
 * siblings: a sibling leaf is at most 502 bytes, so it is either the bucket's
 * own 502-byte prefix (smaller: shorter) or differs within it. Plain memcmp
 * order on every DB therefore gives user-key order in a depth-first walk.
 * Keys up to 502 bytes - nearly all - are one B+ tree lookup, as usual; a
 * 1,024-byte key is three. The range record lives in its own DB so it can
 * never collide with a user key, and is written in the same transaction as
 * the data; it also carries exact key and byte counters, updated in that
 * transaction, which makes engine_range_stats() exact and O(1).
 *
 * Durability (DESIGN.md, "Storage on a node"; engine.h contract). The env is
 * opened with MDB_NOMETASYNC: each commit fsyncs the data pages but not the
 * meta page, which the next commit or engine_sync() flushes. LMDB documents
 * that this "maintains database integrity" - a power loss may undo the last
 * commit, nothing worse - and that is all the contract asks, since the Raft
 * log replays from the surviving applied index. MDB_NOSYNC would skip that
 * one fdatasync per batch too, but LMDB documents that a system crash "can
 * corrupt the database" under it unless the filesystem preserves write
 * order (ext4 and xfs do not promise that), because freed pages are reused
 * before the meta page that stops referencing them reaches the disk. A
 * process kill is harmless under every flag: committed pages are in the OS
 * page cache, and the lock file's robust mutex is recovered. MDB_NOTLS ties
 * read transactions to the view, not to the thread, so the libuv thread can
 * keep several views open across callbacks. MDB_WRITEMAP is not used: with
 * it a stray write through the map could corrupt the file.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/limits.h"
#include "engine_int.h"

#define LM_CHUNK 502  /* 8 + 502 + 1 = 511, LMDB's key limit */
#define LM_DEPTH 3    /* ceil(CAIRN_KEY_MAX / LM_CHUNK) */
#define LM_BUCKET_LEN (8 + LM_CHUNK + 1)
#define LM_DEFAULT_MAP_SIZE (1ull << 40) /* address space, not disk */
#define LM_MAX_READERS 1024               /* open views + concurrent reads */
#define LM_DELETE_CHUNK 512               /* keys collected per delete pass */

static const char next_bucket_key[] = "next_bucket";

typedef struct lm_engine {
    engine base;
    MDB_env *env;
    MDB_dbi data, tails, ranges;
} lm_engine;

typedef struct lm_view {
    engine_view base;
    MDB_txn *txn;
} lm_view;

/* Where a user key's leaf lives, and the bucket entries leading to it. */
typedef struct lm_path {
    struct {
        MDB_dbi dbi;
        uint8_t key[LM_BUCKET_LEN];
        size_t len;
    } level[LM_DEPTH];
    int depth;
} lm_path;

typedef struct lm_iter {
    engine_raw_iter base;
    MDB_txn *txn;
    bool own_txn;
    MDB_cursor *cur[LM_DEPTH];
    uint8_t parent[LM_DEPTH][8];
    size_t path_len[LM_DEPTH]; /* user key bytes above each level */
    int depth;                 /* the level being walked */
    int rc;                    /* result of the last cursor move */
    MDB_val k, v;              /* where the walked cursor stands */
    bool started, done;
    uint8_t key[CAIRN_KEY_MAX];
    size_t key_len;
    uint8_t hi[CAIRN_KEY_MAX];
    size_t hi_len;
} lm_iter;

static int lm_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return CAIRN_ERR_NOT_FOUND;
    case ENOMEM:
        return CAIRN_ERR_NOMEM;
    case EIO:
    case ENOSPC:
        return CAIRN_ERR_IO;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return CAIRN_ERR_CORRUPT;
    default:
        return CAIRN_ERR_ENGINE;
    }
}

static lm_engine *lm(engine *e) { return (lm_engine *)e; }

/* A read transaction: the view's, or a fresh one the caller must end. */
static int lm_read_txn(lm_engine *e, engine_view *v, MDB_txn **txn)
{
    if (v != NULL) {
        *txn = ((lm_view *)v)->txn;
        return 0;
    }
    return lm_err(mdb_txn_begin(e->env, NULL, MDB_RDONLY, txn));
}

static void lm_read_end(engine_view *v, MDB_txn *txn)
{
    if (v == NULL)
        mdb_txn_abort(txn);
}

static int lm_new_bucket(lm_engine *e, MDB_txn *txn, uint8_t id[8])
{
    MDB_val k = {sizeof next_bucket_key - 1, (void *)next_bucket_key}, v;
    uint64_t next = 1;
    int rc = mdb_get(txn, e->ranges, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        next = be_get_u64(v.mv_data);
    else if (rc != MDB_NOTFOUND)
        return rc == 0 ? CAIRN_ERR_CORRUPT : lm_err(rc);
    be_put_u64(id, next);
    uint8_t nb[8];
    be_put_u64(nb, next + 1);
    v.mv_size = 8;
    v.mv_data = nb;
    return lm_err(mdb_put(txn, e->ranges, &k, &v, 0));
}

/* Walk down the buckets of `key`, making missing ones if `create`. */
static int lm_locate(lm_engine *e, MDB_txn *txn, uint64_t range_id,
                     const uint8_t *key, size_t klen, bool create, lm_path *p)
{
    uint8_t parent[8];
    be_put_u64(parent, range_id);
    MDB_dbi dbi = e->data;
    for (int d = 0; d < LM_DEPTH; d++) {
        p->level[d].dbi = dbi;
        uint8_t *lk = p->level[d].key;
        memcpy(lk, parent, 8);
        if (klen <= LM_CHUNK) {
            memcpy(lk + 8, key, klen);
            p->level[d].len = 8 + klen;
            p->depth = d + 1;
            return 0;
        }
        memcpy(lk + 8, key, LM_CHUNK);
        lk[8 + LM_CHUNK] = 0;
        p->level[d].len = LM_BUCKET_LEN;
        MDB_val k = {LM_BUCKET_LEN, lk}, v;
        int rc = mdb_get(txn, dbi, &k, &v);
        if (rc == 0 && v.mv_size == 8) {
            memcpy(parent, v.mv_data, 8);
        } else if (rc == MDB_NOTFOUND && create) {
            if ((rc = lm_new_bucket(e, txn, parent)) != 0)
                return rc;
            v.mv_size = 8;
            v.mv_data = parent;
            if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
                return lm_err(rc);
        } else {
            return rc == 0 ? CAIRN_ERR_CORRUPT : lm_err(rc);
        }
        key += LM_CHUNK;
        klen -= LM_CHUNK;
        dbi = e->tails;
    }
    return CAIRN_ERR_CORRUPT; /* unreachable for keys <= CAIRN_KEY_MAX */
}

/* ---- iterator: a depth-first walk over the bucket levels ------------- */

static int lm_position(lm_iter *it, const uint8_t *rem, size_t rlen)
{
    uint8_t k[LM_BUCKET_LEN];
    memcpy(k, it->parent[it->depth], 8);
    if (rlen > 0)
        memcpy(k + 8, rem, rlen);
    it->k.mv_size = 8 + rlen;
    it->k.mv_data = k;
    it->rc = mdb_cursor_get(it->cur[it->depth], &it->k, &it->v,
                            MDB_SET_RANGE);
    return it->rc;
}

static bool lm_under_parent(const lm_iter *it)
{
    return it->rc == 0 && it->k.mv_size > 8 &&
           memcmp(it->k.mv_data, it->parent[it->depth], 8) == 0;
}

/* Enter the bucket the cursor stands on. */
static int lm_descend(lm_iter *it)
{
    if (it->depth + 1 >= LM_DEPTH || it->v.mv_size != 8)
        return CAIRN_ERR_CORRUPT;
    int d = it->depth;
    memcpy(it->key + it->path_len[d], (uint8_t *)it->k.mv_data + 8, LM_CHUNK);
    memcpy(it->parent[d + 1], it->v.mv_data, 8);
    it->path_len[d + 1] = it->path_len[d] + LM_CHUNK;
    it->depth = d + 1;
    return 0;
}

/* From where the cursor stands, move to the next leaf (1) or the end (0). */
static int lm_settle(lm_iter *it)
{
    for (;;) {
        if (it->rc != 0 && it->rc != MDB_NOTFOUND)
            return lm_err(it->rc);
        if (!lm_under_parent(it)) {
            if (it->depth == 0)
                return 0;
            it->depth--;
            it->rc = mdb_cursor_get(it->cur[it->depth], &it->k, &it->v,
                                    MDB_NEXT);
            continue;
        }
        size_t clen = it->k.mv_size - 8;
        if (clen == LM_CHUNK + 1) {
            int rc = lm_descend(it);
            if (rc != 0)
                return rc;
            lm_position(it, NULL, 0);
            continue;
        }
        if (clen > LM_CHUNK)
            return CAIRN_ERR_CORRUPT;
        memcpy(it->key + it->path_len[it->depth],
               (uint8_t *)it->k.mv_data + 8, clen);
        it->key_len = it->path_len[it->depth] + clen;
        return 1;
    }
}

/* Stand on the first entry >= lo, entering buckets lo continues into. */
static void lm_seek(lm_iter *it, const uint8_t *lo, size_t lo_len)
{
    while (lo_len > LM_CHUNK) {
        uint8_t t[LM_CHUNK + 1];
        memcpy(t, lo, LM_CHUNK);
        t[LM_CHUNK] = 0;
        if (lm_position(it, t, sizeof t) != 0 || !lm_under_parent(it) ||
            it->k.mv_size != LM_BUCKET_LEN ||
            memcmp((uint8_t *)it->k.mv_data + 8, t, sizeof t) != 0)
            return; /* no key continues lo's prefix: go on from here */
        if (lm_descend(it) != 0)
            return;
        lo += LM_CHUNK;
        lo_len -= LM_CHUNK;
    }
    lm_position(it, lo, lo_len);
}

static int lm_iter_begin(lm_engine *e, MDB_txn *txn, bool own_txn,
                         uint64_t range_id, const uint8_t *lo, size_t lo_len,
                         const uint8_t *hi, size_t hi_len, lm_iter **out)
{
    lm_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return CAIRN_ERR_NOMEM;
    it->base.e = &e->base;
    it->txn = txn;
    it->own_txn = own_txn;
    for (int d = 0; d < LM_DEPTH; d++) {
        int rc = mdb_cursor_open(txn, d == 0 ? e->data : e->tails,
                                 &it->cur[d]);
        if (rc != 0) {
            it->own_txn = false;
            e->base.ops->iter_close(&it->base);
            return lm_err(rc);
        }
    }
    be_put_u64(it->parent[0], range_id);
    if (hi_len > 0)
        memcpy(it->hi, hi, hi_len);
    it->hi_len = hi_len;
    lm_seek(it, lo, lo_len);
    *out = it;
    return 0;
}

static int lm_iter_open(engine *e, engine_view *v, uint64_t range_id,
                        const uint8_t *lo, size_t lo_len, const uint8_t *hi,
                        size_t hi_len, engine_raw_iter **out)
{
    MDB_txn *txn;
    int rc = lm_read_txn(lm(e), v, &txn);
    if (rc != 0)
        return rc;
    lm_iter *it;
    rc = lm_iter_begin(lm(e), txn, v == NULL, range_id, lo, lo_len, hi,
                       hi_len, &it);
    if (rc != 0) {
        lm_read_end(v, txn);
        return rc;
    }
    *out = &it->base;
    return 0;
}

static int lm_iter_next(engine_raw_iter *raw, const uint8_t **key,
                        size_t *key_len, const uint8_t **rec, size_t *rec_len)
{
    lm_iter *it = (lm_iter *)raw;
    if (it->done)
        return 0;
    if (it->started)
        it->rc = mdb_cursor_get(it->cur[it->depth], &it->k, &it->v, MDB_NEXT);
    it->started = true;
    int rc = lm_settle(it);
    if (rc == 1 && it->hi_len > 0 &&
        key_cmp(it->key, it->key_len, it->hi, it->hi_len) >= 0)
        rc = 0;
    if (rc <= 0) {
        it->done = true;
        return rc;
    }
    *key = it->key;
    *key_len = it->key_len;
    *rec = it->v.mv_data;
    *rec_len = it->v.mv_size;
    return 1;
}

static void lm_iter_close(engine_raw_iter *raw)
{
    lm_iter *it = (lm_iter *)raw;
    for (int d = 0; d < LM_DEPTH; d++)
        if (it->cur[d] != NULL)
            mdb_cursor_close(it->cur[d]);
    if (it->own_txn)
        mdb_txn_abort(it->txn);
    free(it);
}

/* ---- writes ----------------------------------------------------------- */

/* The range record of `range_id` in `txn`, or a zeroed one; `tmp` holds the
 * meta bytes so they survive the caller's writes. */
static int lm_load_range(lm_engine *e, MDB_txn *txn, uint64_t range_id,
                         engine_range_rec *r, buf *tmp)
{
    uint8_t id[8];
    be_put_u64(id, range_id);
    MDB_val k = {8, id}, v;
    memset(r, 0, sizeof *r);
    int rc = mdb_get(txn, e->ranges, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return lm_err(rc);
    buf_reset(tmp);
    if ((rc = buf_append(tmp, v.mv_data, v.mv_size)) != 0)
        return rc;
    return engine_range_rec_decode(tmp->data, tmp->len, r);
}

static int lm_store_range(lm_engine *e, MDB_txn *txn, uint64_t range_id,
                          const engine_range_rec *r, buf *tmp)
{
    uint8_t id[8];
    be_put_u64(id, range_id);
    int rc = engine_range_rec_encode(r, tmp);
    if (rc != 0)
        return rc;
    MDB_val k = {8, id}, v = {tmp->len, tmp->data};
    return lm_err(mdb_put(txn, e->ranges, &k, &v, 0));
}

/* Delete one leaf and every bucket its removal leaves empty. */
static int lm_delete_key(lm_engine *e, MDB_txn *txn, uint64_t range_id,
                         const uint8_t *key, size_t klen)
{
    lm_path p;
    int rc = lm_locate(e, txn, range_id, key, klen, false, &p);
    for (int d = p.depth - 1; rc == 0 && d >= 0; d--) {
        if (d < p.depth - 1) {
            /* the bucket at level d has id = parent of level d + 1 */
            MDB_cursor *c;
            if ((rc = lm_err(mdb_cursor_open(txn, e->tails, &c))) != 0)
                break;
            MDB_val k = {8, p.level[d + 1].key}, v;
            int found = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            bool empty = found != 0 || k.mv_size < 8 ||
                         memcmp(k.mv_data, p.level[d + 1].key, 8) != 0;
            mdb_cursor_close(c);
            if (!empty)
                break;
        }
        MDB_val k = {p.level[d].len, p.level[d].key};
        rc = lm_err(mdb_del(txn, p.level[d].dbi, &k, NULL));
    }
    return rc;
}

/* Collect up to LM_DELETE_CHUNK keys of [lo, hi) as (u16 len | key) in
 * `keys`, summing their record sizes; delete them after the walk, since
 * LMDB cursors must not see the tree change under them. */
static int lm_collect(lm_engine *e, MDB_txn *txn, uint64_t range_id,
                      const uint8_t *lo, size_t lo_len, const uint8_t *hi,
                      size_t hi_len, buf *keys, size_t *n, uint64_t *bytes)
{
    lm_iter *it;
    int rc = lm_iter_begin(e, txn, false, range_id, lo, lo_len, hi, hi_len,
                           &it);
    if (rc != 0)
        return rc;
    buf_reset(keys);
    *n = 0;
    const uint8_t *k, *r;
    size_t kl, rl;
    while (*n < LM_DELETE_CHUNK &&
           (rc = lm_iter_next(&it->base, &k, &kl, &r, &rl)) == 1) {
        if ((rc = buf_append_u16(keys, (uint16_t)kl)) != 0 ||
            (rc = buf_append(keys, k, kl)) != 0)
            break;
        *bytes += kl + rl;
        (*n)++;
    }
    lm_iter_close(&it->base);
    return rc < 0 ? rc : 0;
}

/* Delete every key of [lo, hi) in `txn`, counting what went. */
static int lm_delete_txn(lm_engine *e, MDB_txn *txn, uint64_t range_id,
                         const uint8_t *lo, size_t lo_len, const uint8_t *hi,
                         size_t hi_len, uint64_t *keys_out,
                         uint64_t *bytes_out)
{
    buf keys = BUF_INIT;
    uint8_t from[CAIRN_KEY_MAX];
    size_t from_len = lo_len, n;
    if (lo_len > 0)
        memcpy(from, lo, lo_len);
    int rc;
    do {
        rc = lm_collect(e, txn, range_id, from, from_len, hi, hi_len, &keys,
                        &n, bytes_out);
        for (size_t off = 0; rc == 0 && off < keys.len;) {
            size_t kl = be_get_u16(keys.data + off);
            rc = lm_delete_key(e, txn, range_id, keys.data + off + 2, kl);
            memcpy(from, keys.data + off + 2, kl);
            from_len = kl;
            off += 2 + kl;
        }
        *keys_out += n;
    } while (rc == 0 && n == LM_DELETE_CHUNK);
    buf_free(&keys);
    return rc;
}

/* Put one record, returning the change in the range's counters. */
static int lm_put(lm_engine *e, MDB_txn *txn, uint64_t range_id,
                  const uint8_t *key, size_t klen, const uint8_t *rec,
                  size_t rlen, int64_t *dkeys, int64_t *dbytes)
{
    lm_path p;
    int rc = lm_locate(e, txn, range_id, key, klen, true, &p);
    if (rc != 0)
        return rc;
    MDB_val k = {p.level[p.depth - 1].len, p.level[p.depth - 1].key}, v;
    MDB_dbi dbi = p.level[p.depth - 1].dbi;
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0)
        *dbytes -= (int64_t)(klen + v.mv_size);
    else if (rc == MDB_NOTFOUND)
        (*dkeys)++;
    else
        return lm_err(rc);
    *dbytes += (int64_t)(klen + rlen);
    v.mv_size = rlen;
    v.mv_data = (void *)rec;
    return lm_err(mdb_put(txn, dbi, &k, &v, 0));
}

/* Apply one batch op, adding its effect on the counters to d[0..1]. */
static int lm_apply_op(lm_engine *e, MDB_txn *txn, const engine_batch *b,
                       const engine_batch_op *op, int64_t *d)
{
    uint64_t range_id = b->ranges[op->range_idx].range_id;
    const uint8_t *key = b->data.data + op->key_off;
    const uint8_t *rec = b->data.data + op->rec_off;
    if (op->kind == ENGINE_OP_PUT)
        return lm_put(e, txn, range_id, key, op->key_len, rec, op->rec_len, d,
                      d + 1);
    uint64_t keys = 0, bytes = 0;
    int rc = lm_delete_txn(e, txn, range_id, key, op->key_len, rec,
                           op->rec_len, &keys, &bytes);
    d[0] -= (int64_t)keys;
    d[1] -= (int64_t)bytes;
    return rc;
}

static int lm_write_txn(lm_engine *e, MDB_txn *txn, const engine_batch *b,
                        int64_t *deltas)
{
    for (size_t i = 0; i < b->nops; i++) {
        const engine_batch_op *op = &b->ops[i];
        int rc = lm_apply_op(e, txn, b, op, deltas + 2 * op->range_idx);
        if (rc != 0)
            return rc;
    }
    buf tmp = BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < b->nranges && rc == 0; i++) {
        const engine_batch_range *br = &b->ranges[i];
        if (!br->set_applied && !br->set_meta && deltas[2 * i] == 0 &&
            deltas[2 * i + 1] == 0)
            continue; /* e.g. an interval delete that found nothing */
        engine_range_rec r;
        rc = lm_load_range(e, txn, br->range_id, &r, &tmp);
        if (rc != 0)
            break;
        r.keys += (uint64_t)deltas[2 * i];
        r.bytes += (uint64_t)deltas[2 * i + 1];
        engine_range_rec_merge(&r, b, br);
        rc = lm_store_range(e, txn, br->range_id, &r, &tmp);
    }
    buf_free(&tmp);
    return rc;
}

static int lm_write(engine *eng, const engine_batch *b)
{
    lm_engine *e = lm(eng);
    int64_t *deltas = calloc(2 * b->nranges, sizeof *deltas);
    if (deltas == NULL)
        return CAIRN_ERR_NOMEM;
    MDB_txn *txn;
    int rc = lm_err(mdb_txn_begin(e->env, NULL, 0, &txn));
    if (rc == 0) {
        rc = lm_write_txn(e, txn, b, deltas);
        if (rc == 0)
            rc = lm_err(mdb_txn_commit(txn));
        else
            mdb_txn_abort(txn);
    }
    free(deltas);
    return rc;
}

static int lm_drop_range(engine *eng, uint64_t range_id)
{
    lm_engine *e = lm(eng);
    MDB_txn *txn;
    int rc = lm_err(mdb_txn_begin(e->env, NULL, 0, &txn));
    if (rc != 0)
        return rc;
    uint64_t keys = 0, bytes = 0;
    rc = lm_delete_txn(e, txn, range_id, NULL, 0, NULL, 0, &keys, &bytes);
    if (rc == 0) {
        uint8_t id[8];
        be_put_u64(id, range_id);
        MDB_val k = {8, id};
        int drc = mdb_del(txn, e->ranges, &k, NULL);
        if (drc != 0 && drc != MDB_NOTFOUND)
            rc = lm_err(drc);
    }
    if (rc == 0)
        return lm_err(mdb_txn_commit(txn));
    mdb_txn_abort(txn);
    return rc;
}

static int lm_sync(engine *e) { return lm_err(mdb_env_sync(lm(e)->env, 1)); }

/* ---- reads ------------------------------------------------------------ */

static int lm_view_open(engine *e, engine_view **out)
{
    lm_view *v = calloc(1, sizeof *v);
    if (v == NULL)
        return CAIRN_ERR_NOMEM;
    int rc = lm_err(mdb_txn_begin(lm(e)->env, NULL, MDB_RDONLY, &v->txn));
    if (rc != 0) {
        free(v);
        return rc;
    }
    v->base.e = e;
    *out = &v->base;
    return 0;
}

static void lm_view_close(engine_view *v)
{
    mdb_txn_abort(((lm_view *)v)->txn);
    free(v);
}

static int lm_get(engine *eng, engine_view *v, uint64_t range_id,
                  const uint8_t *key, size_t key_len, buf *rec_out)
{
    lm_engine *e = lm(eng);
    MDB_txn *txn;
    int rc = lm_read_txn(e, v, &txn);
    if (rc != 0)
        return rc;
    lm_path p;
    rc = lm_locate(e, txn, range_id, key, key_len, false, &p);
    if (rc == 0) {
        MDB_val k = {p.level[p.depth - 1].len, p.level[p.depth - 1].key}, val;
        rc = lm_err(mdb_get(txn, p.level[p.depth - 1].dbi, &k, &val));
        if (rc == 0) {
            buf_reset(rec_out);
            rc = buf_append(rec_out, val.mv_data, val.mv_size);
        }
    }
    lm_read_end(v, txn);
    return rc;
}

static int lm_get_range(engine *eng, engine_view *v, uint64_t range_id,
                        buf *rec_out)
{
    lm_engine *e = lm(eng);
    MDB_txn *txn;
    int rc = lm_read_txn(e, v, &txn);
    if (rc != 0)
        return rc;
    uint8_t id[8];
    be_put_u64(id, range_id);
    MDB_val k = {8, id}, val;
    rc = lm_err(mdb_get(txn, e->ranges, &k, &val));
    if (rc == 0) {
        buf_reset(rec_out);
        rc = buf_append(rec_out, val.mv_data, val.mv_size);
    }
    lm_read_end(v, txn);
    return rc;
}

static int lm_list_ranges(engine *eng, uint64_t **ids_out, size_t *count_out)
{
    lm_engine *e = lm(eng);
    MDB_txn *txn;
    MDB_cursor *c;
    int rc = lm_read_txn(e, NULL, &txn);
    if (rc != 0)
        return rc;
    if ((rc = lm_err(mdb_cursor_open(txn, e->ranges, &c))) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    buf ids = BUF_INIT;
    MDB_val k, v;
    int mrc;
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0 && rc == 0;
         mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        engine_range_rec r;
        if (k.mv_size != 8)
            continue;
        /* A record that fails its check is listed: its range is there,
         * and whoever opens it must find out that it is corrupt. */
        if (engine_range_rec_decode(v.mv_data, v.mv_size, &r) != 0 ||
            (r.flags & (ENGINE_RANGE_HAS_APPLIED | ENGINE_RANGE_HAS_META))) {
            uint64_t id = be_get_u64(k.mv_data);
            rc = buf_append(&ids, &id, sizeof id);
        }
    }
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = lm_err(mrc);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    if (rc != 0) {
        buf_free(&ids);
        return rc;
    }
    *ids_out = (uint64_t *)ids.data;
    *count_out = ids.len / sizeof(uint64_t);
    return 0;
}

/* Exact: the counters are kept in the range record by every write. */
static int lm_range_stats(engine *eng, uint64_t range_id, uint64_t *bytes_out,
                          uint64_t *keys_out)
{
    buf tmp = BUF_INIT;
    engine_range_rec r;
    int rc = lm_get_range(eng, NULL, range_id, &tmp);
    if (rc == 0 && (rc = engine_range_rec_decode(tmp.data, tmp.len, &r)) ==
                       0) {
        *bytes_out = r.bytes;
        *keys_out = r.keys;
    }
    buf_free(&tmp);
    return rc == CAIRN_ERR_NOT_FOUND ? 0 : rc;
}

static void lm_close(engine *eng)
{
    lm_engine *e = lm(eng);
    mdb_env_sync(e->env, 1);
    mdb_env_close(e->env);
    free(e);
}

static const engine_ops lm_ops = {
    .close = lm_close,
    .write = lm_write,
    .sync = lm_sync,
    .drop_range = lm_drop_range,
    .view_open = lm_view_open,
    .view_close = lm_view_close,
    .get = lm_get,
    .get_range = lm_get_range,
    .list_ranges = lm_list_ranges,
    .iter_open = lm_iter_open,
    .iter_next = lm_iter_next,
    .iter_close = lm_iter_close,
    .range_stats = lm_range_stats,
};

static int lm_open_dbs(lm_engine *e)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(e->env, NULL, 0, &txn);
    if (rc != 0)
        return lm_err(rc);
    if ((rc = mdb_dbi_open(txn, "data", MDB_CREATE, &e->data)) != 0 ||
        (rc = mdb_dbi_open(txn, "tails", MDB_CREATE, &e->tails)) != 0 ||
        (rc = mdb_dbi_open(txn, "ranges", MDB_CREATE, &e->ranges)) != 0) {
        mdb_txn_abort(txn);
        return lm_err(rc);
    }
    return lm_err(mdb_txn_commit(txn));
}

int engine_lmdb_open(const char *dir, const engine_options *opts,
                     engine **out)
{
    lm_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return CAIRN_ERR_NOMEM;
    e->base.ops = &lm_ops;
    e->base.kind = ENGINE_BTREE;
    size_t map = opts->lmdb_map_size ? opts->lmdb_map_size
                                     : LM_DEFAULT_MAP_SIZE;
    int rc = mdb_env_create(&e->env);
    if (rc != 0) {
        free(e);
        return lm_err(rc);
    }
    if ((rc = mdb_env_set_maxdbs(e->env, 3)) == 0 &&
        (rc = mdb_env_set_maxreaders(e->env, LM_MAX_READERS)) == 0 &&
        (rc = mdb_env_set_mapsize(e->env, map)) == 0)
        rc = mdb_env_open(e->env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0644);
    int dead;
    if (rc == 0) /* free reader slots a killed process left behind */
        rc = mdb_reader_check(e->env, &dead);
    rc = rc != 0 ? (rc == ENOENT || rc == EACCES ? CAIRN_ERR_IO : lm_err(rc))
                 : lm_open_dbs(e);
    if (rc != 0) {
        mdb_env_close(e->env);
        free(e);
        return rc;
    }
    *out = &e->base;
    return 0;
}
