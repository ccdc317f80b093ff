/*
 * engine_rocks.c - the LSM engine (ENGINE_LSM) over RocksDB's C API.
 *
 * Key layout, one column family:
 *
 *     range id (8, big-endian) | user key (1..1024)  -> value record
 *     range id (8, big-endian)                       -> range record
 *
 * The range record sits at the range's zero-length user key: no user key is
 * empty, so it cannot collide with one, and it sorts just before the range's
 * data, so dropping a range is one DeleteRange over [id, id + 1) that takes
 * the record with it. One column family (not a separate one for the range
 * records) keeps every batch inside one memtable and one WAL stream: with
 * several families, a crash could find one family flushed to an SST ahead
 * of another unless the WAL is synced on every flush (or atomic_flush is
 * used); with one, RocksDB's ordinary recovery is already atomic per batch.
 * Writes read the old range record (a memtable hit) to update it.
 *
 * Durability (DESIGN.md, "Storage on a node"; engine.h contract):
 *   - WAL on, sync off. Each engine_write() appends its batch to the WAL
 *     with one write(2), so a process kill loses nothing; a power loss can
 *     lose the unsynced tail of the WAL, which the Raft log replays. Turning
 *     the WAL off would make writes only slightly cheaper but lose every
 *     unflushed memtable (up to 64 MiB) even on a process kill, and leaves
 *     engine_sync() with a full memtable flush to do.
 *   - wal_recovery_mode = point-in-time: after a power loss the WAL is
 *     replayed up to the first torn or corrupt record and no further, so the
 *     store is exactly the state after some complete batch - never a batch
 *     with a hole in it. (The default since RocksDB 6.x, set explicitly
 *     because the contract depends on it.)
 *   - engine_sync() = FlushWAL(sync = true): one fsync of the WAL makes every
 *     completed write durable, without forcing a memtable flush.
 * SST files and the MANIFEST are always fsynced by RocksDB when written.
 */
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/limits.h"
#include "../common/grow.h"
#include "../common/u64map.h"
#include "engine_int.h"
#include "rocks_close.h"

#define RK_KEY_MAX (8 + CAIRN_KEY_MAX + 1)
#define RK_BLOCK_CACHE (64u << 20)
#define RK_STATS_SCAN 10000 /* records counted exactly by range_stats */

typedef struct rk_engine {
    engine base;
    rocksdb_t *db;
    const diskguard *disk; /* engine_options.disk */
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_filterpolicy_t *bloom;
    rocksdb_readoptions_t *ro;
    rocksdb_writeoptions_t *wo;
    /* Range records as last written (range id -> buf *): every batch
     * rewrites the record of each range it touches (applied index, meta),
     * and reading it back first costs a memtable lookup per range per
     * batch - with a thousand busy ranges, a third of the engine's time.
     * Writes are serialised (engine.h), so this copy is exact. */
    u64map recs;
    /* records written by the batch being applied: cached once it is */
    uint64_t *pend_ids;
    buf *pend_recs;
    size_t n_pend, cap_ids, cap_recs;
} rk_engine;

typedef struct rk_view {
    engine_view base;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
} rk_view;

typedef struct rk_iter {
    engine_raw_iter base;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    uint8_t prefix[8];
    bool started, done;
    uint8_t lo[RK_KEY_MAX], hi[RK_KEY_MAX];
    size_t lo_len, hi_len;
} rk_iter;

static rk_engine *rk(engine *e) { return (rk_engine *)e; }

/* RocksDB reports errors as malloc'd strings; cairn needs a code. */
static int rk_err(char *err)
{
    if (err == NULL)
        return 0;
    int rc = CAIRN_ERR_ENGINE;
    if (strncmp(err, "Corruption", 10) == 0)
        rc = CAIRN_ERR_CORRUPT;
    else if (strncmp(err, "IO error", 8) == 0)
        rc = CAIRN_ERR_IO;
    rocksdb_free(err);
    return rc;
}

static size_t rk_key(uint8_t *out, uint64_t range_id, const uint8_t *key,
                     size_t klen)
{
    be_put_u64(out, range_id);
    if (klen > 0)
        memcpy(out + 8, key, klen);
    return 8 + klen;
}

/* The first stored key past range `range_id`: the next range's record,
 * or for the last possible id a key above any valid one. */
static size_t rk_range_end(uint8_t *out, uint64_t range_id)
{
    if (range_id < UINT64_MAX) {
        be_put_u64(out, range_id + 1);
        return 8;
    }
    memset(out, 0xff, RK_KEY_MAX);
    return RK_KEY_MAX;
}

/* Stored bounds of user-key interval [lo, hi) of a range. */
static void rk_bounds(uint64_t range_id, const uint8_t *lo, size_t lo_len,
                      const uint8_t *hi, size_t hi_len, uint8_t *slo,
                      size_t *slo_len, uint8_t *shi, size_t *shi_len)
{
    static const uint8_t smallest_key = 0x00;
    if (lo_len == 0) /* just past the range record */
        *slo_len = rk_key(slo, range_id, &smallest_key, 1);
    else
        *slo_len = rk_key(slo, range_id, lo, lo_len);
    if (hi_len == 0)
        *shi_len = rk_range_end(shi, range_id);
    else
        *shi_len = rk_key(shi, range_id, hi, hi_len);
}

static const rocksdb_readoptions_t *rk_ro(rk_engine *e, engine_view *v)
{
    return v != NULL ? ((rk_view *)v)->ro : e->ro;
}

static int rk_get_raw(rk_engine *e, engine_view *v, const uint8_t *k,
                      size_t klen, buf *out)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned(e->db, rk_ro(e, v), (const char *)k, klen, &err);
    if (err != NULL)
        return rk_err(err);
    if (ps == NULL)
        return CAIRN_ERR_NOT_FOUND;
    size_t vlen;
    const char *val = rocksdb_pinnableslice_value(ps, &vlen);
    buf_reset(out);
    int rc = buf_append(out, val, vlen);
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

/* ---- writes ----------------------------------------------------------- */

/* The current record of range `id` into `out`: from the cache, else the
 * store (then cached). */
static int rk_range_rec(rk_engine *e, uint64_t id, buf *out)
{
    buf *c = u64map_get(&e->recs, id);
    if (c) {
        buf_reset(out);
        return buf_append(out, c->data, c->len);
    }
    uint8_t k[8];
    rk_key(k, id, NULL, 0);
    return rk_get_raw(e, NULL, k, 8, out);
}

static int rk_pend(rk_engine *e, uint64_t id, const buf *enc)
{
    if (grow_array((void **)&e->pend_ids, e->n_pend, &e->cap_ids,
                   sizeof *e->pend_ids, 16) != 0 ||
        grow_array((void **)&e->pend_recs, e->n_pend, &e->cap_recs,
                   sizeof *e->pend_recs, 16) != 0)
        return CAIRN_ERR_NOMEM;
    buf *b = &e->pend_recs[e->n_pend];
    memset(b, 0, sizeof *b);
    if (buf_append(b, enc->data, enc->len) != 0)
        return CAIRN_ERR_NOMEM;
    e->pend_ids[e->n_pend++] = id;
    return 0;
}

/* The batch is written: its range records become the cached ones (or,
 * with `ok` false, are forgotten). */
static void rk_pend_commit(rk_engine *e, bool ok)
{
    for (size_t i = 0; i < e->n_pend; i++) {
        buf *old = u64map_get(&e->recs, e->pend_ids[i]);
        buf *nb = ok ? (old ? old : calloc(1, sizeof *nb)) : NULL;
        if (nb && (buf_reset(nb), buf_append(nb, e->pend_recs[i].data,
                                             e->pend_recs[i].len)) == 0 &&
            (nb == old || u64map_put(&e->recs, e->pend_ids[i], nb) == 0)) {
            buf_free(&e->pend_recs[i]);
            continue;
        }
        /* out of memory or failed: no cached copy is better than a stale
         * one */
        if (nb && nb != old) {
            buf_free(nb);
            free(nb);
        }
        buf *gone = u64map_del(&e->recs, e->pend_ids[i]);
        if (gone) {
            buf_free(gone);
            free(gone);
        }
        buf_free(&e->pend_recs[i]);
    }
    e->n_pend = 0;
}

static void rk_forget(rk_engine *e, uint64_t id)
{
    buf *gone = u64map_del(&e->recs, id);
    if (gone) {
        buf_free(gone);
        free(gone);
    }
}

/* Add the updated range record of batch range `br` to `wb`. */
static int rk_batch_range(rk_engine *e, rocksdb_writebatch_t *wb,
                          const engine_batch *b, const engine_batch_range *br,
                          buf *old, buf *enc)
{
    uint8_t k[8];
    rk_key(k, br->range_id, NULL, 0);
    engine_range_rec r;
    int rc = rk_range_rec(e, br->range_id, old);
    if (rc == 0)
        rc = engine_range_rec_decode(old->data, old->len, &r);
    else if (rc == CAIRN_ERR_NOT_FOUND) {
        memset(&r, 0, sizeof r);
        rc = 0;
    }
    if (rc != 0)
        return rc;
    engine_range_rec_merge(&r, b, br);
    if ((rc = engine_range_rec_encode(&r, enc)) != 0)
        return rc;
    rocksdb_writebatch_put(wb, (const char *)k, 8, (const char *)enc->data,
                           enc->len);
    return rk_pend(e, br->range_id, enc);
}

static int rk_fill_batch(rk_engine *e, rocksdb_writebatch_t *wb,
                         const engine_batch *b)
{
    uint8_t k[RK_KEY_MAX], hi[RK_KEY_MAX];
    for (size_t i = 0; i < b->nops; i++) {
        const engine_batch_op *op = &b->ops[i];
        uint64_t range_id = b->ranges[op->range_idx].range_id;
        const uint8_t *lo = b->data.data + op->key_off;
        const uint8_t *rec = b->data.data + op->rec_off;
        size_t klen, hi_len;
        if (op->kind == ENGINE_OP_PUT) {
            klen = rk_key(k, range_id, lo, op->key_len);
            rocksdb_writebatch_put(wb, (const char *)k, klen,
                                   (const char *)rec, op->rec_len);
            continue;
        }
        rk_bounds(range_id, lo, op->key_len, rec, op->rec_len, k, &klen, hi,
                  &hi_len);
        rocksdb_writebatch_delete_range(wb, (const char *)k, klen,
                                        (const char *)hi, hi_len);
    }
    buf old = BUF_INIT, enc = BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < b->nranges && rc == 0; i++)
        if (b->ranges[i].set_applied || b->ranges[i].set_meta)
            rc = rk_batch_range(e, wb, b, &b->ranges[i], &old, &enc);
    buf_free(&old);
    buf_free(&enc);
    return rc;
}

static int rk_apply(rk_engine *e, rocksdb_writebatch_t *wb)
{
    char *err = NULL;
    rocksdb_write(e->db, e->wo, wb, &err);
    rocksdb_writebatch_destroy(wb);
    return rk_err(err);
}

static int rk_write(engine *eng, const engine_batch *b)
{
    rk_engine *e = rk(eng);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    int rc = rk_fill_batch(e, wb, b);
    if (rc != 0) {
        rocksdb_writebatch_destroy(wb);
        rk_pend_commit(e, false);
        return rc;
    }
    rc = rk_apply(e, wb);
    rk_pend_commit(e, rc == 0);
    return rc;
}

static int rk_sync(engine *eng)
{
    char *err = NULL;
    rocksdb_flush_wal(rk(eng)->db, 1, &err);
    return rk_err(err);
}

static int rk_drop_range(engine *eng, uint64_t range_id)
{
    rk_engine *e = rk(eng);
    uint8_t slo[8], shi[RK_KEY_MAX];
    rk_key(slo, range_id, NULL, 0);
    size_t shi_len = rk_range_end(shi, range_id);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_range(wb, (const char *)slo, 8,
                                    (const char *)shi, shi_len);
    rk_forget(e, range_id);
    int rc = rk_apply(e, wb);
    if (rc == 0) {
        /* SST files that hold nothing but this range go at once, unread:
         * the space comes back now, and a corrupt block in such a file
         * (a replica dropped to be rebuilt) is never read again. Let
         * compaction reclaim the rest soon rather than eventually. */
        char *err = NULL;
        rocksdb_delete_file_in_range(e->db, (const char *)slo, 8,
                                     (const char *)shi, shi_len, &err);
        rocksdb_free(err);
        err = NULL;
        rocksdb_suggest_compact_range(e->db, (const char *)slo, 8,
                                      (const char *)shi, shi_len, &err);
        rocksdb_free(err);
    }
    return rc;
}

/* ---- reads ------------------------------------------------------------ */

static int rk_view_open(engine *eng, engine_view **out)
{
    rk_engine *e = rk(eng);
    rk_view *v = calloc(1, sizeof *v);
    if (v == NULL)
        return CAIRN_ERR_NOMEM;
    v->base.e = eng;
    v->snap = rocksdb_create_snapshot(e->db);
    v->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(v->ro, v->snap);
    *out = &v->base;
    return 0;
}

static void rk_view_close(engine_view *vb)
{
    rk_view *v = (rk_view *)vb;
    rocksdb_readoptions_destroy(v->ro);
    rocksdb_release_snapshot(rk(vb->e)->db, v->snap);
    free(v);
}

static int rk_get(engine *eng, engine_view *v, uint64_t range_id,
                  const uint8_t *key, size_t key_len, buf *rec_out)
{
    uint8_t k[RK_KEY_MAX];
    size_t klen = rk_key(k, range_id, key, key_len);
    return rk_get_raw(rk(eng), v, k, klen, rec_out);
}

static int rk_get_range(engine *eng, engine_view *v, uint64_t range_id,
                        buf *rec_out)
{
    uint8_t k[8];
    rk_key(k, range_id, NULL, 0);
    return rk_get_raw(rk(eng), v, k, 8, rec_out);
}

static int rk_iter_error(rocksdb_iterator_t *it)
{
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    return rk_err(err);
}

/* Jump from range to range: one seek per range, not a scan of the data. */
static int rk_list_ranges(engine *eng, uint64_t **ids_out, size_t *count_out)
{
    rk_engine *e = rk(eng);
    rocksdb_iterator_t *it = rocksdb_create_iterator(e->db, e->ro);
    buf ids = BUF_INIT;
    uint8_t k[8] = {0};
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)k, 8);
         rc == 0 && rocksdb_iter_valid(it);
         rocksdb_iter_seek(it, (const char *)k, 8)) {
        size_t klen, vlen;
        const uint8_t *key = (const uint8_t *)rocksdb_iter_key(it, &klen);
        const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it, &vlen);
        if (klen < 8) {
            rc = CAIRN_ERR_CORRUPT;
            break;
        }
        uint64_t id = be_get_u64(key);
        engine_range_rec r;
        /* one that fails its check is listed: its opener must find out */
        if (klen == 8 && (engine_range_rec_decode(val, vlen, &r) != 0 ||
                          (r.flags & (ENGINE_RANGE_HAS_APPLIED |
                                      ENGINE_RANGE_HAS_META))))
            rc = buf_append(&ids, &id, sizeof id);
        if (id == UINT64_MAX)
            break;
        be_put_u64(k, id + 1);
    }
    if (rc == 0)
        rc = rk_iter_error(it);
    rocksdb_iter_destroy(it);
    if (rc != 0) {
        buf_free(&ids);
        return rc;
    }
    *ids_out = (uint64_t *)ids.data;
    *count_out = ids.len / sizeof(uint64_t);
    return 0;
}

static int rk_iter_open(engine *eng, engine_view *v, uint64_t range_id,
                        const uint8_t *lo, size_t lo_len, const uint8_t *hi,
                        size_t hi_len, engine_raw_iter **out)
{
    rk_engine *e = rk(eng);
    rk_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return CAIRN_ERR_NOMEM;
    it->base.e = eng;
    be_put_u64(it->prefix, range_id);
    rk_bounds(range_id, lo, lo_len, hi, hi_len, it->lo, &it->lo_len, it->hi,
              &it->hi_len);
    it->ro = rocksdb_readoptions_create();
    if (v != NULL)
        rocksdb_readoptions_set_snapshot(it->ro, ((rk_view *)v)->snap);
    /* Bounds let RocksDB stop at the range end instead of stepping over
     * the next range's deleted keys. */
    rocksdb_readoptions_set_iterate_lower_bound(it->ro, (const char *)it->lo,
                                                it->lo_len);
    rocksdb_readoptions_set_iterate_upper_bound(it->ro, (const char *)it->hi,
                                                it->hi_len);
    it->it = rocksdb_create_iterator(e->db, it->ro);
    rocksdb_iter_seek(it->it, (const char *)it->lo, it->lo_len);
    *out = &it->base;
    return 0;
}

static int rk_iter_next(engine_raw_iter *raw, const uint8_t **key,
                        size_t *key_len, const uint8_t **rec, size_t *rec_len)
{
    rk_iter *it = (rk_iter *)raw;
    if (it->done) /* RocksDB must not step an invalid iterator */
        return 0;
    if (it->started)
        rocksdb_iter_next(it->it);
    it->started = true;
    if (!rocksdb_iter_valid(it->it)) {
        it->done = true;
        return rk_iter_error(it->it);
    }
    size_t klen;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it->it, &klen);
    if (klen <= 8 || memcmp(k, it->prefix, 8) != 0) {
        it->done = true;
        return 0;
    }
    *key = k + 8;
    *key_len = klen - 8;
    *rec = (const uint8_t *)rocksdb_iter_value(it->it, rec_len);
    return 1;
}

static void rk_iter_close(engine_raw_iter *raw)
{
    rk_iter *it = (rk_iter *)raw;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ro);
    free(it);
}

/* What the first RK_STATS_SCAN records of a range add up to. */
typedef struct rk_sample {
    uint64_t bytes, keys;
    bool complete;                /* that was the whole range */
    uint8_t end[RK_KEY_MAX + 1]; /* stored key just past the last record */
    size_t end_len;
} rk_sample;

static int rk_scan_stats(engine *eng, uint64_t range_id, rk_sample *s)
{
    engine_raw_iter *it;
    int rc = rk_iter_open(eng, NULL, range_id, NULL, 0, NULL, 0, &it);
    if (rc != 0)
        return rc;
    const uint8_t *k = NULL, *r;
    size_t kl = 0, rl;
    while (s->keys < RK_STATS_SCAN &&
           (rc = rk_iter_next(it, &k, &kl, &r, &rl)) == 1) {
        s->bytes += kl + rl;
        s->keys++;
    }
    s->complete = rc == 0;
    if (rc == 1) {
        s->end_len = rk_key(s->end, range_id, k, kl) + 1;
        s->end[s->end_len - 1] = 0x00;
    }
    rk_iter_close(it);
    return rc < 0 ? rc : 0;
}

/* Exact for ranges of up to RK_STATS_SCAN records. Past that, RocksDB's
 * estimate of the range's SST bytes is scaled by raw bytes per SST byte
 * measured on the scanned sample, which corrects for compression and, if
 * writes are spread evenly, for records still in the memtable (SST sizes
 * do not see them). Keys are those bytes over the sample's average record.
 * If the sample is all in the memtable, the result is a lower bound. */
static int rk_range_stats(engine *eng, uint64_t range_id, uint64_t *bytes_out,
                          uint64_t *keys_out)
{
    rk_sample s = {0};
    int rc = rk_scan_stats(eng, range_id, &s);
    *bytes_out = s.bytes;
    *keys_out = s.keys;
    if (rc != 0 || s.complete || s.keys == 0)
        return rc;
    uint8_t lo[8], hi[RK_KEY_MAX];
    rk_key(lo, range_id, NULL, 0);
    size_t hi_len = rk_range_end(hi, range_id);
    const char *los[2] = {(const char *)lo, (const char *)lo};
    const char *his[2] = {(const char *)hi, (const char *)s.end};
    size_t lol[2] = {8, 8}, hil[2] = {hi_len, s.end_len};
    uint64_t approx[2] = {0, 0};
    char *err = NULL;
    rocksdb_approximate_sizes(rk(eng)->db, 2, los, lol, his, hil, approx,
                              &err);
    if ((rc = rk_err(err)) != 0)
        return rc;
    double est = approx[1] > 0
                     ? (double)approx[0] * ((double)s.bytes / (double)approx[1])
                     : (double)approx[0] + (double)s.bytes;
    if (est > (double)s.bytes) {
        *bytes_out = (uint64_t)est;
        *keys_out = (uint64_t)(est / ((double)s.bytes / (double)s.keys));
    }
    return 0;
}

static void rk_free(rk_engine *e)
{
    if (e->db != NULL)
        rocks_close(e->db, "the lsm index store", e->disk);
    if (e->ro != NULL)
        rocksdb_readoptions_destroy(e->ro);
    if (e->wo != NULL)
        rocksdb_writeoptions_destroy(e->wo);
    if (e->opts != NULL)
        rocksdb_options_destroy(e->opts);
    if (e->table != NULL)
        rocksdb_block_based_options_destroy(e->table);
    if (e->cache != NULL)
        rocksdb_cache_destroy(e->cache);
    free(e);
}

static void rk_close(engine *eng)
{
    rk_engine *e = rk(eng);
    size_t it = 0;
    uint64_t id;
    void *v;
    while (u64map_next(&e->recs, &it, &id, &v)) {
        buf_free(v);
        free(v);
    }
    u64map_free(&e->recs);
    free(e->pend_ids);
    free(e->pend_recs);
    char *err = NULL;
    rocksdb_flush_wal(e->db, 1, &err);
    rocksdb_free(err);
    rk_free(e);
}

static const engine_ops rk_ops = {
    .close = rk_close,
    .write = rk_write,
    .sync = rk_sync,
    .drop_range = rk_drop_range,
    .view_open = rk_view_open,
    .view_close = rk_view_close,
    .get = rk_get,
    .get_range = rk_get_range,
    .list_ranges = rk_list_ranges,
    .iter_open = rk_iter_open,
    .iter_next = rk_iter_next,
    .iter_close = rk_iter_close,
    .range_stats = rk_range_stats,
};

static void rk_set_options(rk_engine *e, const engine_options *o)
{
    e->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(e->opts, 1);
    if (o->rocks_write_buffer_size > 0)
        rocksdb_options_set_write_buffer_size(e->opts,
                                              o->rocks_write_buffer_size);
    rocksdb_options_set_wal_recovery_mode(e->opts,
                                          rocksdb_point_in_time_recovery);
    rocksdb_options_set_max_background_jobs(e->opts, 2);
    rocksdb_options_set_keep_log_file_num(e->opts, 10); /* info logs */
    /* Point reads of absent keys (dual read, LWW checks) skip SSTs. */
    e->table = rocksdb_block_based_options_create();
    e->cache = rocksdb_cache_create_lru(RK_BLOCK_CACHE);
    e->bloom = rocksdb_filterpolicy_create_bloom_full(10);
    rocksdb_block_based_options_set_block_cache(e->table, e->cache);
    rocksdb_block_based_options_set_filter_policy(e->table, e->bloom);
    rocksdb_options_set_block_based_table_factory(e->opts, e->table);
    e->ro = rocksdb_readoptions_create();
    e->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(e->wo, 0);
}

int engine_rocks_open(const char *dir, const engine_options *opts,
                      engine **out)
{
    rk_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return CAIRN_ERR_NOMEM;
    e->base.ops = &rk_ops;
    e->base.kind = ENGINE_LSM;
    rk_set_options(e, opts);
    e->disk = opts->disk;
    char *err = NULL;
    e->db = rocksdb_open(e->opts, dir, &err);
    if (err != NULL) {
        e->db = NULL;
        rk_free(e);
        return rk_err(err);
    }
    *out = &e->base;
    return 0;
}
