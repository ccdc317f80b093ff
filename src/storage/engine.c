/*
 * engine.c - the part of the index store both engines share: argument and
 * limit checks (limits.h), the write batch, the record encodings, the
 * user-facing iterator, and the split key. The primitives come from the
 * engine's engine_ops (engine_int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/crc32c.h"
#include "../common/err.h"
#include "../common/grow.h"
#include "../common/limits.h"
#include "engine_int.h"

const char *engine_kind_name(engine_kind kind)
{
    switch (kind) {
    case ENGINE_BTREE:
        return "btree";
    case ENGINE_LSM:
        return "lsm";
    }
    return "unknown";
}

int engine_kind_parse(const char *name, engine_kind *out)
{
    if (name != NULL && strcmp(name, "btree") == 0)
        *out = ENGINE_BTREE;
    else if (name != NULL && strcmp(name, "lsm") == 0)
        *out = ENGINE_LSM;
    else
        return CAIRN_ERR_INVALID;
    return 0;
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return CAIRN_ERR_IO;
    int rc = fsync(fd) == 0 ? 0 : CAIRN_ERR_IO;
    close(fd);
    return rc;
}

/* fsync the store's directory and its parent, so that files the engine
 * just created (LMDB's data.mdb) and the directory itself survive a power
 * loss: fsync of a file alone does not promise its directory entry.
 * RocksDB syncs its directory for the files it creates later. */
static int sync_dirs(const char *dir)
{
    int rc = sync_dir(dir);
    char *parent = strdup(dir);
    if (parent == NULL)
        return CAIRN_ERR_NOMEM;
    if (rc == 0)
        rc = sync_dir(dirname(parent));
    free(parent);
    return rc;
}

int engine_open(engine_kind kind, const char *dir, const engine_options *opts,
                engine **out)
{
    static const engine_options defaults = {0};
    if (dir == NULL || out == NULL)
        return CAIRN_ERR_INVALID;
    if (opts == NULL)
        opts = &defaults;
    if (kind != ENGINE_BTREE && kind != ENGINE_LSM)
        return CAIRN_ERR_INVALID;
    int rc = engine_mkdirs(dir);
    if (rc != 0)
        return rc;
    rc = kind == ENGINE_BTREE ? engine_lmdb_open(dir, opts, out)
                              : engine_rocks_open(dir, opts, out);
    if (rc == 0 && (rc = sync_dirs(dir)) != 0) {
        engine_close(*out);
        *out = NULL;
    }
    return rc;
}

void engine_close(engine *e)
{
    if (e != NULL)
        e->ops->close(e);
}

engine_kind engine_get_kind(const engine *e) { return e->kind; }

/* ---- shared helpers ---------------------------------------------------- */

int engine_mkdirs(const char *dir)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (p == NULL)
        return CAIRN_ERR_NOMEM;
    memcpy(p, dir, n + 1);
    int rc = 0;
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = CAIRN_ERR_IO;
        p[i] = c;
    }
    free(p);
    return rc;
}


static int check_key(size_t len)
{
    if (len < CAIRN_KEY_MIN)
        return CAIRN_ERR_KEY_EMPTY;
    if (len > CAIRN_KEY_MAX)
        return CAIRN_ERR_KEY_TOOBIG;
    return 0;
}

/* Interval bounds may be empty (unbounded) but are never longer than a
 * key: no key beyond them exists that a longer bound could separate. */
static int check_bound(size_t len)
{
    return len > CAIRN_KEY_MAX ? CAIRN_ERR_KEY_TOOBIG : 0;
}

/* The range record's checksum: every byte but its own four. */
static uint32_t range_rec_crc(const uint8_t *p, size_t n)
{
    uint32_t c = crc32c_extend(0, p, ENGINE_RANGE_REC_CRC_OFF);
    return crc32c_extend(c, p + ENGINE_RANGE_REC_HDR, n - ENGINE_RANGE_REC_HDR);
}

int engine_range_rec_decode(const uint8_t *p, size_t n, engine_range_rec *out)
{
    if (n < ENGINE_RANGE_REC_HDR || p[0] != ENGINE_RANGE_REC_VERSION ||
        be_get_u32(p + ENGINE_RANGE_REC_CRC_OFF) != range_rec_crc(p, n))
        return CAIRN_ERR_CORRUPT;
    out->flags = p[1];
    out->applied = be_get_u64(p + 2);
    out->keys = be_get_u64(p + 10);
    out->bytes = be_get_u64(p + 18);
    out->meta = p + ENGINE_RANGE_REC_HDR;
    out->meta_len = n - ENGINE_RANGE_REC_HDR;
    return 0;
}

int engine_range_rec_encode(const engine_range_rec *r, buf *out)
{
    buf_reset(out);
    int rc = buf_reserve(out, ENGINE_RANGE_REC_HDR + r->meta_len);
    if (rc != 0)
        return rc;
    buf_append_u8(out, ENGINE_RANGE_REC_VERSION);
    buf_append_u8(out, (uint8_t)r->flags);
    buf_append_u64(out, r->applied);
    buf_append_u64(out, r->keys);
    buf_append_u64(out, r->bytes);
    buf_append_u32(out, 0);
    rc = buf_append(out, r->meta, r->meta_len);
    if (rc == 0)
        be_put_u32(out->data + ENGINE_RANGE_REC_CRC_OFF,
                   range_rec_crc(out->data, out->len));
    return rc;
}

/* ---- the value record's checksum -------------------------------------- */

uint32_t engine_rec_crc(uint64_t range_id, const void *key, size_t key_len,
                        const uint8_t *rec, size_t rec_len)
{
    uint8_t head[10];
    be_put_u64(head, range_id);
    head[8] = (uint8_t)(key_len >> 8);
    head[9] = (uint8_t)key_len;
    uint32_t c = crc32c_extend(0, head, sizeof head);
    c = crc32c_extend(c, key, key_len);
    c = crc32c_extend(c, rec, ENGINE_REC_CRC_OFF);
    return crc32c_extend(c, rec + ENGINE_REC_HDR, rec_len - ENGINE_REC_HDR);
}

/* 0 if the record is whole and its checksum holds, else CORRUPT. */
static int rec_check(uint64_t range_id, const void *key, size_t key_len,
                     const uint8_t *rec, size_t rec_len)
{
    if (rec_len < ENGINE_REC_HDR ||
        be_get_u32(rec + ENGINE_REC_CRC_OFF) !=
            engine_rec_crc(range_id, key, key_len, rec, rec_len))
        return CAIRN_ERR_CORRUPT;
    return 0;
}

void engine_range_rec_merge(engine_range_rec *r, const engine_batch *b,
                            const engine_batch_range *br)
{
    if (br->set_applied) {
        r->flags |= ENGINE_RANGE_HAS_APPLIED;
        r->applied = br->applied;
    }
    if (br->set_meta) {
        r->flags |= ENGINE_RANGE_HAS_META;
        r->meta = b->data.data + br->meta_off;
        r->meta_len = br->meta_len;
    }
}

/* ---- the write batch -------------------------------------------------- */

engine_batch *engine_batch_new(void)
{
    return calloc(1, sizeof(engine_batch));
}

void engine_batch_free(engine_batch *b)
{
    if (b == NULL)
        return;
    buf_free(&b->data);
    free(b->ops);
    free(b->ranges);
    free(b);
}

void engine_batch_clear(engine_batch *b)
{
    buf_reset(&b->data);
    b->nops = 0;
    b->nputs = 0;
    b->nranges = 0;
}

size_t engine_batch_count(const engine_batch *b) { return b->nputs; }

/* The batch's entry for `range_id`, added if new; NULL when out of memory.
 * Batches normally touch one range (one Raft group), so a linear search. */
static engine_batch_range *batch_range(engine_batch *b, uint64_t range_id)
{
    for (size_t i = 0; i < b->nranges; i++)
        if (b->ranges[i].range_id == range_id)
            return &b->ranges[i];
    if (grow_array((void **)&b->ranges, b->nranges, &b->cap_ranges,
                   sizeof *b->ranges, 4) != 0)
        return NULL;
    engine_batch_range *br = &b->ranges[b->nranges++];
    memset(br, 0, sizeof *br);
    br->range_id = range_id;
    return br;
}

/* Room for one more op, and the range entry it belongs to. */
static engine_batch_op *batch_new_op(engine_batch *b, uint64_t range_id,
                                     size_t data_bytes)
{
    if (grow_array((void **)&b->ops, b->nops, &b->cap_ops, sizeof *b->ops,
                   16) != 0)
        return NULL;
    size_t nranges = b->nranges;
    engine_batch_range *br = batch_range(b, range_id);
    if (br == NULL || buf_reserve(&b->data, data_bytes) != 0) {
        b->nranges = nranges;
        return NULL;
    }
    engine_batch_op *op = &b->ops[b->nops++];
    op->range_idx = (size_t)(br - b->ranges);
    return op;
}

static int batch_add(engine_batch *b, uint64_t range_id, const void *key,
                     size_t key_len, const seq *s, uint8_t flags,
                     const void *value, size_t value_len)
{
    int rc = check_key(key_len);
    if (rc != 0)
        return rc;
    if (value_len > CAIRN_VALUE_MAX)
        return CAIRN_ERR_TOOBIG;
    if (s == NULL || (value_len > 0 && value == NULL))
        return CAIRN_ERR_INVALID;
    engine_batch_op *op = batch_new_op(b, range_id,
                                       key_len + ENGINE_REC_HDR + value_len);
    if (op == NULL)
        return CAIRN_ERR_NOMEM;
    op->kind = ENGINE_OP_PUT;
    op->key_off = b->data.len;
    op->key_len = key_len;
    buf_append(&b->data, key, key_len);
    op->rec_off = b->data.len;
    op->rec_len = ENGINE_REC_HDR + value_len;
    buf_append(&b->data, s->bytes, SEQ_LEN);
    buf_append_u8(&b->data, flags);
    buf_append_u32(&b->data, 0);
    buf_append(&b->data, value, value_len);
    uint8_t *rec = b->data.data + op->rec_off;
    be_put_u32(rec + ENGINE_REC_CRC_OFF,
               engine_rec_crc(range_id, b->data.data + op->key_off, key_len,
                              rec, op->rec_len));
    b->nputs++;
    return 0;
}

int engine_batch_put(engine_batch *b, uint64_t range_id, const void *key,
                     size_t key_len, const seq *s, const void *value,
                     size_t value_len)
{
    return batch_add(b, range_id, key, key_len, s, 0, value, value_len);
}

int engine_batch_tombstone(engine_batch *b, uint64_t range_id,
                           const void *key, size_t key_len, const seq *s)
{
    return batch_add(b, range_id, key, key_len, s, ENGINE_FLAG_TOMBSTONE,
                     NULL, 0);
}

int engine_batch_set_applied(engine_batch *b, uint64_t range_id,
                             uint64_t applied_index)
{
    engine_batch_range *br = batch_range(b, range_id);
    if (br == NULL)
        return CAIRN_ERR_NOMEM;
    br->set_applied = true;
    br->applied = applied_index;
    return 0;
}

int engine_batch_set_meta(engine_batch *b, uint64_t range_id,
                          const void *meta, size_t meta_len)
{
    if (meta_len > ENGINE_META_MAX)
        return CAIRN_ERR_TOOBIG;
    if (meta_len > 0 && meta == NULL)
        return CAIRN_ERR_INVALID;
    size_t nranges = b->nranges;
    engine_batch_range *br = batch_range(b, range_id);
    if (br == NULL || buf_reserve(&b->data, meta_len) != 0) {
        b->nranges = nranges;
        return CAIRN_ERR_NOMEM;
    }
    br->set_meta = true;
    br->meta_off = b->data.len;
    br->meta_len = meta_len;
    buf_append(&b->data, meta, meta_len);
    return 0;
}

int engine_write(engine *e, engine_batch *b)
{
    if (b->nranges == 0)
        return 0;
    return e->ops->write(e, b);
}

int engine_sync(engine *e) { return e->ops->sync(e); }

int engine_batch_delete_interval(engine_batch *b, uint64_t range_id,
                                 const void *start, size_t start_len,
                                 const void *end, size_t end_len)
{
    int rc = check_bound(start_len);
    if (rc == 0)
        rc = check_bound(end_len);
    if (rc != 0)
        return rc;
    if (end_len > 0 && key_cmp(start, start_len, end, end_len) >= 0)
        return 0; /* an empty interval: nothing to do */
    engine_batch_op *op = batch_new_op(b, range_id, start_len + end_len);
    if (op == NULL)
        return CAIRN_ERR_NOMEM;
    op->kind = ENGINE_OP_DELETE_INTERVAL;
    op->key_off = b->data.len;
    op->key_len = start_len;
    buf_append(&b->data, start, start_len);
    op->rec_off = b->data.len;
    op->rec_len = end_len;
    buf_append(&b->data, end, end_len);
    return 0;
}

int engine_delete_interval(engine *e, uint64_t range_id, const void *start,
                           size_t start_len, const void *end, size_t end_len)
{
    engine_batch *b = engine_batch_new();
    if (b == NULL)
        return CAIRN_ERR_NOMEM;
    int rc = engine_batch_delete_interval(b, range_id, start, start_len, end,
                                          end_len);
    if (rc == 0)
        rc = engine_write(e, b);
    engine_batch_free(b);
    return rc;
}

int engine_drop_range(engine *e, uint64_t range_id)
{
    return e->ops->drop_range(e, range_id);
}

/* ---- reads ------------------------------------------------------------ */

int engine_view_open(engine *e, engine_view **out)
{
    return e->ops->view_open(e, out);
}

void engine_view_close(engine_view *v)
{
    if (v != NULL)
        v->e->ops->view_close(v);
}

int engine_get_ref(engine *e, engine_view *view, uint64_t range_id,
                   const void *key, size_t key_len, seq *seq_out,
                   bool *tombstone_out, buf *rec, const uint8_t **value,
                   size_t *value_len)
{
    int rc = check_key(key_len);
    if (rc != 0)
        return rc;
    rc = e->ops->get(e, view, range_id, key, key_len, rec);
    if (rc == 0)
        rc = rec_check(range_id, key, key_len, rec->data, rec->len);
    if (rc != 0)
        return rc;
    if (seq_out != NULL)
        memcpy(seq_out->bytes, rec->data, SEQ_LEN);
    if (tombstone_out != NULL)
        *tombstone_out = (rec->data[SEQ_LEN] & ENGINE_FLAG_TOMBSTONE);
    *value = rec->data + ENGINE_REC_HDR;
    *value_len = rec->len - ENGINE_REC_HDR;
    return 0;
}

int engine_get(engine *e, engine_view *view, uint64_t range_id,
               const void *key, size_t key_len, seq *seq_out,
               bool *tombstone_out, buf *value_out)
{
    const uint8_t *v;
    size_t n;
    int rc = engine_get_ref(e, view, range_id, key, key_len, seq_out,
                            tombstone_out, value_out, &v, &n);
    if (rc == 0)
        buf_consume(value_out, ENGINE_REC_HDR);
    return rc;
}

/* Decode the range record of `range_id` into *r, with its bytes in `tmp`. */
static int read_range(engine *e, engine_view *view, uint64_t range_id,
                      buf *tmp, engine_range_rec *r)
{
    int rc = e->ops->get_range(e, view, range_id, tmp);
    if (rc != 0)
        return rc;
    return engine_range_rec_decode(tmp->data, tmp->len, r);
}

int engine_applied_index(engine *e, engine_view *view, uint64_t range_id,
                         uint64_t *out)
{
    buf tmp = BUF_INIT;
    engine_range_rec r;
    int rc = read_range(e, view, range_id, &tmp, &r);
    *out = 0;
    if (rc == 0 && (r.flags & ENGINE_RANGE_HAS_APPLIED))
        *out = r.applied;
    buf_free(&tmp);
    return rc == CAIRN_ERR_NOT_FOUND ? 0 : rc;
}

int engine_get_meta(engine *e, engine_view *view, uint64_t range_id,
                    buf *out)
{
    buf tmp = BUF_INIT;
    engine_range_rec r;
    int rc = read_range(e, view, range_id, &tmp, &r);
    if (rc == 0 && !(r.flags & ENGINE_RANGE_HAS_META))
        rc = CAIRN_ERR_NOT_FOUND;
    if (rc == 0) {
        buf_reset(out);
        rc = buf_append(out, r.meta, r.meta_len);
    }
    buf_free(&tmp);
    return rc;
}

int engine_list_ranges(engine *e, uint64_t **ids_out, size_t *count_out)
{
    *ids_out = NULL;
    *count_out = 0;
    return e->ops->list_ranges(e, ids_out, count_out);
}

struct engine_iter {
    engine_raw_iter *raw;
    uint64_t range_id;
    size_t limit, n;
    unsigned flags;
};

int engine_iter_open(engine *e, engine_view *view, uint64_t range_id,
                     const void *start, size_t start_len, const void *end,
                     size_t end_len, size_t limit, unsigned flags,
                     engine_iter **out)
{
    int rc = check_bound(start_len);
    if (rc == 0)
        rc = check_bound(end_len);
    if (rc != 0)
        return rc;
    engine_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return CAIRN_ERR_NOMEM;
    rc = e->ops->iter_open(e, view, range_id, start, start_len, end, end_len,
                           &it->raw);
    if (rc != 0) {
        free(it);
        return rc;
    }
    it->range_id = range_id;
    it->limit = limit;
    it->flags = flags;
    *out = it;
    return 0;
}

int engine_iter_next(engine_iter *it, engine_entry *out)
{
    while (it->limit == 0 || it->n < it->limit) {
        const uint8_t *key, *rec;
        size_t key_len, rec_len;
        int rc = it->raw->e->ops->iter_next(it->raw, &key, &key_len, &rec,
                                            &rec_len);
        if (rc <= 0)
            return rc;
        if (rec_check(it->range_id, key, key_len, rec, rec_len) != 0)
            return CAIRN_ERR_CORRUPT;
        bool tomb = rec[SEQ_LEN] & ENGINE_FLAG_TOMBSTONE;
        if (tomb && !(it->flags & ENGINE_ITER_TOMBSTONES))
            continue;
        out->key = key;
        out->key_len = key_len;
        memcpy(out->seq.bytes, rec, SEQ_LEN);
        out->tombstone = tomb;
        out->value = rec + ENGINE_REC_HDR;
        out->value_len = rec_len - ENGINE_REC_HDR;
        it->n++;
        return 1;
    }
    return 0;
}

void engine_iter_close(engine_iter *it)
{
    if (it == NULL)
        return;
    it->raw->e->ops->iter_close(it->raw);
    free(it);
}

int engine_range_stats(engine *e, uint64_t range_id, uint64_t *bytes_out,
                       uint64_t *keys_out)
{
    *bytes_out = 0;
    *keys_out = 0;
    return e->ops->range_stats(e, range_id, bytes_out, keys_out);
}

/* Size of a record as range stats count it. */
static uint64_t entry_bytes(const engine_entry *en)
{
    return en->key_len + ENGINE_REC_HDR + en->value_len;
}

/* Bytes and count of every record of the range in `v`. */
static int sum_range(engine *e, engine_view *v, uint64_t range_id,
                     uint64_t *bytes, uint64_t *keys)
{
    engine_iter *it;
    int rc = engine_iter_open(e, v, range_id, NULL, 0, NULL, 0, 0,
                              ENGINE_ITER_TOMBSTONES, &it);
    if (rc != 0)
        return rc;
    engine_entry en;
    *bytes = *keys = 0;
    while ((rc = engine_iter_next(it, &en)) == 1) {
        *bytes += entry_bytes(&en);
        (*keys)++;
    }
    engine_iter_close(it);
    return rc;
}

/* The first key (never the first of the range) before which at least half
 * of `total` bytes lie; the last key if the tail is one huge record. */
static int find_middle(engine *e, engine_view *v, uint64_t range_id,
                       uint64_t total, buf *key_out)
{
    engine_iter *it;
    int rc = engine_iter_open(e, v, range_id, NULL, 0, NULL, 0, 0,
                              ENGINE_ITER_TOMBSTONES, &it);
    if (rc != 0)
        return rc;
    engine_entry en;
    uint64_t acc = 0;
    size_t i = 0;
    while ((rc = engine_iter_next(it, &en)) == 1) {
        if (i > 0) {
            buf_reset(key_out);
            rc = buf_append(key_out, en.key, en.key_len);
            if (rc != 0 || acc >= total / 2)
                break;
        }
        acc += entry_bytes(&en);
        i++;
    }
    engine_iter_close(it);
    return rc < 0 ? rc : 0;
}

/* Two passes over one view: exact, and bounded by the range size, which
 * splitting itself keeps bounded. The controller calls this rarely. */
int engine_split_key(engine *e, uint64_t range_id, buf *key_out)
{
    engine_view *v;
    int rc = engine_view_open(e, &v);
    if (rc != 0)
        return rc;
    uint64_t bytes, keys;
    rc = sum_range(e, v, range_id, &bytes, &keys);
    if (rc == 0 && keys < 2)
        rc = CAIRN_ERR_NOT_FOUND;
    if (rc == 0)
        rc = find_middle(e, v, range_id, bytes, key_out);
    engine_view_close(v);
    return rc;
}

/* ---- verification ----------------------------------------------------- */

/* Scan every record of the range: checksums (engine_iter_next) and key
 * order; count and bytes into *keys and *bytes. */
static int verify_records(engine *e, engine_view *v, uint64_t range_id,
                          uint64_t *keys, uint64_t *bytes, char *why)
{
    engine_iter *it;
    int rc = engine_iter_open(e, v, range_id, NULL, 0, NULL, 0, 0,
                              ENGINE_ITER_TOMBSTONES, &it);
    if (rc != 0)
        return rc;
    buf prev = BUF_INIT;
    engine_entry en;
    while ((rc = engine_iter_next(it, &en)) == 1) {
        if (*keys > 0 && key_cmp(prev.data, prev.len, en.key, en.key_len) >= 0) {
            snprintf(why, 256, "keys out of order after record %" PRIu64,
                     *keys);
            rc = CAIRN_ERR_CORRUPT;
            break;
        }
        buf_reset(&prev);
        if ((rc = buf_append(&prev, en.key, en.key_len)) != 0)
            break;
        *bytes += entry_bytes(&en);
        (*keys)++;
    }
    if (rc == CAIRN_ERR_CORRUPT && why[0] == '\0')
        snprintf(why, 256, "record %" PRIu64 " fails its checksum or cannot "
                 "be read", *keys + 1);
    engine_iter_close(it);
    buf_free(&prev);
    return rc < 0 ? rc : 0;
}

int engine_verify(engine *e, uint64_t range_id, char *why)
{
    char local[256];
    if (why == NULL)
        why = local;
    why[0] = '\0';
    engine_view *v;
    int rc = engine_view_open(e, &v);
    if (rc != 0)
        return rc;
    buf tmp = BUF_INIT;
    engine_range_rec r;
    rc = read_range(e, v, range_id, &tmp, &r);
    if (rc == CAIRN_ERR_CORRUPT)
        snprintf(why, 256, "the range record fails its checksum");
    /* RocksDB keeps no range record for a range that never set one */
    bool has_rec = rc == 0;
    if (rc == CAIRN_ERR_NOT_FOUND && e->kind == ENGINE_LSM)
        rc = 0;
    uint64_t keys = 0, bytes = 0;
    if (rc == 0)
        rc = verify_records(e, v, range_id, &keys, &bytes, why);
    if (rc == 0 && !has_rec && keys == 0)
        rc = CAIRN_ERR_NOT_FOUND;
    if (rc == 0 && e->kind == ENGINE_BTREE &&
        (keys != r.keys || bytes != r.bytes)) {
        snprintf(why, 256, "%" PRIu64 " records of %" PRIu64 " bytes, but "
                 "the counters say %" PRIu64 " of %" PRIu64, keys, bytes,
                 r.keys, r.bytes);
        rc = CAIRN_ERR_CORRUPT;
    }
    buf_free(&tmp);
    engine_view_close(v);
    return rc;
}
