/*
 * entry.c - log entries, range meta and snapshots of a range (entry.h).
 */
#include "entry.h"

#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/key.h"
#include "../common/grow.h"
#include "../common/limits.h"
#include "../common/u64map.h"

#define SNAP_MAGIC "CSN1"

/* ---- bounds-checked reading ------------------------------------------ */

typedef struct rdr {
    const uint8_t *p;
    size_t len;
    size_t pos;
    bool bad;
} rdr;

static const uint8_t *take(rdr *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

static uint8_t take_u8(rdr *r)
{
    const uint8_t *p = take(r, 1);
    return p ? *p : 0;
}

static uint32_t take_u32(rdr *r)
{
    const uint8_t *p = take(r, 4);
    return p ? be_get_u32(p) : 0;
}

static uint64_t take_u64(rdr *r)
{
    const uint8_t *p = take(r, 8);
    return p ? be_get_u64(p) : 0;
}

static const uint8_t *take_str(rdr *r, size_t *len)
{
    *len = take_u32(r);
    return take(r, *len);
}

static void take_seq(rdr *r, seq *s)
{
    const uint8_t *p = take(r, SEQ_LEN);
    if (p)
        memcpy(s->bytes, p, SEQ_LEN);
}

static int put_str(buf *b, const void *p, size_t n)
{
    int rc = buf_append_u32(b, (uint32_t)n);
    return rc == 0 && n ? buf_append(b, p, n) : rc;
}

/* ---- command entries -------------------------------------------------- */

size_t entry_op_size(size_t key_len, size_t value_len)
{
    return ENTRY_OP_FIXED + key_len + value_len;
}

int entry_put_header(buf *out, uint64_t nonce, uint64_t proposal,
                     uint32_t n_ops)
{
    int rc = buf_append_u8(out, 1);
    if (rc == 0)
        rc = buf_append_u64(out, nonce);
    if (rc == 0)
        rc = buf_append_u64(out, proposal);
    if (rc == 0)
        rc = buf_append_u32(out, n_ops);
    return rc;
}

static bool entry_padding_ok(const uint8_t *p, size_t end, size_t len);

int entry_put_epoch(buf *out, uint64_t nonce, uint64_t proposal,
                    uint64_t epoch, uint8_t flags, const seq *floor)
{
    if ((flags & ENTRY_EPOCH_FLOOR) && (floor == NULL || epoch == 0))
        return CAIRN_ERR_INVALID;
    int rc = buf_append_u8(out, 2);
    if (rc == 0)
        rc = buf_append_u64(out, nonce);
    if (rc == 0)
        rc = buf_append_u64(out, proposal);
    if (rc == 0 && epoch != 0)
        rc = buf_append_u64(out, epoch);
    if (rc == 0 && epoch != 0 && flags != 0)
        rc = buf_append_u8(out, flags);
    if (rc == 0 && (flags & ENTRY_EPOCH_FLOOR))
        rc = buf_append(out, floor->bytes, SEQ_LEN);
    return rc ? rc : entry_pad(out);
}

int entry_put_split(buf *out, uint64_t nonce, uint64_t proposal,
                    uint64_t new_range, uint64_t epoch, const void *key,
                    size_t key_len)
{
    int rc = buf_append_u8(out, 3);
    if (rc == 0)
        rc = buf_append_u64(out, nonce);
    if (rc == 0)
        rc = buf_append_u64(out, proposal);
    if (rc == 0)
        rc = buf_append_u64(out, new_range);
    if (rc == 0)
        rc = buf_append_u64(out, epoch);
    if (rc == 0)
        rc = put_str(out, key, key_len);
    return rc ? rc : entry_pad(out);
}

bool entry_is_split(const void *p, size_t len, uint64_t *nonce,
                    uint64_t *proposal, uint64_t *new_range, uint64_t *epoch,
                    const uint8_t **key, size_t *key_len)
{
    rdr r = {p, len, 0, false};
    if (take_u8(&r) != 3)
        return false;
    *nonce = take_u64(&r);
    *proposal = take_u64(&r);
    *new_range = take_u64(&r);
    *epoch = take_u64(&r);
    *key = take_str(&r, key_len);
    return !r.bad && *key != NULL && entry_padding_ok(p, r.pos, len);
}

bool entry_is_epoch(const void *p, size_t len, uint64_t *nonce,
                    uint64_t *proposal, uint64_t *epoch, uint8_t *flags,
                    seq *floor)
{
    rdr r = {p, len, 0, false};
    if (take_u8(&r) != 2)
        return false;
    *nonce = take_u64(&r);
    *proposal = take_u64(&r);
    /* 24 bytes: an entry of before the epoch was carried (+1). */
    *epoch = !r.bad && len >= r.pos + 8 ? take_u64(&r) : 0;
    /* the flags byte, or the first byte of the padding (zero) */
    *flags = !r.bad && *epoch != 0 && len > r.pos ? take_u8(&r) : 0;
    seq fl = seq_zero();
    if (*flags & ENTRY_EPOCH_FLOOR)
        take_seq(&r, &fl);
    if (floor)
        *floor = fl;
    return !r.bad && entry_padding_ok(p, r.pos, len);
}

int entry_put_op(buf *out, const entry_op *op)
{
    int rc = buf_reserve(out, entry_op_size(op->key_len, op->value_len));
    if (rc != 0)
        return rc;
    buf_append_u8(out, op->kind);
    buf_append_u8(out, op->cond);
    buf_append(out, op->cond_seq.bytes, SEQ_LEN);
    buf_append(out, op->seq.bytes, SEQ_LEN);
    put_str(out, op->key, op->key_len);
    return put_str(out, op->value, op->value_len);
}

static int read_op(rdr *r, entry_op *op)
{
    op->kind = take_u8(r);
    op->cond = take_u8(r);
    take_seq(r, &op->cond_seq);
    take_seq(r, &op->seq);
    op->key = take_str(r, &op->key_len);
    op->value = take_str(r, &op->value_len);
    if (r->bad)
        return CAIRN_ERR_CORRUPT;
    if ((op->kind != ENTRY_OP_PUT && op->kind != ENTRY_OP_DEL) ||
        op->cond > ENTRY_COND_IFNEWER || op->key_len < CAIRN_KEY_MIN ||
        op->key_len > CAIRN_KEY_MAX || op->value_len > CAIRN_VALUE_MAX)
        return CAIRN_ERR_CORRUPT;
    return 0;
}

int entry_pad(buf *b)
{
    static const uint8_t zeros[8];
    size_t pad = (8 - b->len % 8) % 8;
    return pad ? buf_append(b, zeros, pad) : 0;
}

/* libraft's network encoding requires 8-byte multiples (entry.h): accept
 * up to 7 zero bytes after the content, nothing else. */
static bool entry_padding_ok(const uint8_t *p, size_t end, size_t len)
{
    if (len < end || len - end > 7)
        return false;
    for (size_t i = end; i < len; i++)
        if (p[i] != 0)
            return false;
    return true;
}

int entry_parse(const void *p, size_t len, entry_reader *out)
{
    rdr r = {p, len, 0, false};
    memset(out, 0, sizeof *out);
    if (take_u8(&r) != 1)
        return CAIRN_ERR_CORRUPT;
    out->nonce = take_u64(&r);
    out->proposal = take_u64(&r);
    out->n_ops = take_u32(&r);
    if (r.bad)
        return CAIRN_ERR_CORRUPT;
    out->p = p;
    out->len = len;
    out->pos = r.pos;
    for (uint32_t i = 0; i < out->n_ops; i++) {
        entry_op op;
        if (read_op(&r, &op) != 0)
            return CAIRN_ERR_CORRUPT;
    }
    out->len = r.pos; /* the ops end here; only padding may follow */
    return entry_padding_ok(out->p, r.pos, len) ? 0 : CAIRN_ERR_CORRUPT;
}

int entry_next(entry_reader *er, entry_op *op)
{
    if (er->pos >= er->len)
        return 0;
    rdr r = {er->p, er->len, er->pos, false};
    if (read_op(&r, op) != 0)
        return CAIRN_ERR_CORRUPT;
    er->pos = r.pos;
    return 1;
}

/* ---- applying ------------------------------------------------------- */

/* An op added to the batch but not yet written: conditions of later ops
 * must see it. Its key is copied into `keys`. */
typedef struct pending {
    size_t off, len;
    seq seq;
    bool tombstone;
} pending;

struct entry_applier {
    entry_batcher *b;
    bool own_b; /* a private batcher (entry_applier_new) */
    bool dirty; /* has ops in b's batch; listed in b->dirty */
    uint64_t range_id;
    uint64_t index;   /* last index added */
    uint64_t written; /* last index written */
    size_t entries;   /* entries added since the last write */
    buf keys;
    pending *v;
    size_t n, cap;
    /* hash of a pending key -> 1 + the index in `v` of its latest op: a
     * batch of conditional ops (a move's copy: thousands of IFNEWER in one
     * entry) looks each key up here rather than scanning every op before
     * it, which made such a batch quadratic */
    u64map last;
    buf scratch;
    const range_meta *bounds; /* NULL: any key */
};

struct entry_batcher {
    engine *e;
    engine_batch *batch;
    entry_applier **dirty;
    size_t n_dirty, cap_dirty;
};

entry_batcher *entry_batcher_new(engine *e)
{
    entry_batcher *b = calloc(1, sizeof *b);
    if (b == NULL || (b->batch = engine_batch_new()) == NULL) {
        free(b);
        return NULL;
    }
    b->e = e;
    return b;
}

void entry_batcher_free(entry_batcher *b)
{
    if (b == NULL)
        return;
    engine_batch_free(b->batch);
    free(b->dirty);
    free(b);
}

int entry_batcher_flush(entry_batcher *b)
{
    if (b->n_dirty == 0)
        return 0;
    int rc = engine_write(b->e, b->batch);
    if (rc != 0)
        return rc;
    engine_batch_clear(b->batch);
    for (size_t i = 0; i < b->n_dirty; i++) {
        entry_applier *a = b->dirty[i];
        buf_reset(&a->keys);
        a->n = 0;
        u64map_free(&a->last);
        a->entries = 0;
        a->written = a->index;
        a->dirty = false;
    }
    b->n_dirty = 0;
    return 0;
}

static int mark_dirty(entry_applier *a)
{
    entry_batcher *b = a->b;
    if (a->dirty)
        return 0;
    if (grow_array((void **)&b->dirty, b->n_dirty, &b->cap_dirty,
                   sizeof *b->dirty, 16) != 0)
        return CAIRN_ERR_NOMEM;
    b->dirty[b->n_dirty++] = a;
    a->dirty = true;
    return 0;
}

entry_applier *entry_applier_new_shared(entry_batcher *b, uint64_t range_id,
                                        uint64_t applied)
{
    entry_applier *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->b = b;
    a->range_id = range_id;
    a->index = a->written = applied;
    return a;
}

entry_applier *entry_applier_new(engine *e, uint64_t range_id,
                                 uint64_t applied)
{
    entry_batcher *b = entry_batcher_new(e);
    entry_applier *a = b ? entry_applier_new_shared(b, range_id, applied)
                         : NULL;
    if (a == NULL) {
        entry_batcher_free(b);
        return NULL;
    }
    a->own_b = true;
    return a;
}

void entry_applier_free(entry_applier *a)
{
    if (a == NULL)
        return;
    if (a->dirty) /* its ops are in the shared batch: write them first */
        entry_batcher_flush(a->b);
    if (a->own_b)
        entry_batcher_free(a->b);
    buf_free(&a->keys);
    buf_free(&a->scratch);
    u64map_free(&a->last);
    free(a->v);
    free(a);
}

size_t entry_applier_pending(const entry_applier *a) { return a->entries; }

void entry_applier_set_bounds(entry_applier *a, const range_meta *bounds)
{
    a->bounds = bounds;
}

/* FNV-1a of a key, never 0 (u64map's empty slot). */
static uint64_t key_hash(const uint8_t *k, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return h ? h : 1;
}

static bool pending_is(const entry_applier *a, size_t i, const entry_op *op)
{
    return a->v[i].len == op->key_len &&
           memcmp(a->keys.data + a->v[i].off, op->key, op->key_len) == 0;
}

/* The latest pending op on the key: its index + 1, or 0. */
static size_t pending_find(const entry_applier *a, const entry_op *op)
{
    uintptr_t at = (uintptr_t)u64map_get(&a->last,
                                         key_hash(op->key, op->key_len));
    if (at && pending_is(a, at - 1, op))
        return at;
    if (at == 0)
        return 0; /* no pending op has this hash: none has this key */
    for (size_t i = a->n; i-- > 0;) /* a collision: look at them all */
        if (pending_is(a, i, op))
            return i + 1;
    return 0;
}

/* What the key holds as of the pending ops (newest first), else as of the
 * store. 1 found, 0 absent, or an error. */
static int current_seq(entry_applier *a, const entry_op *op, seq *s,
                       bool *tombstone)
{
    size_t at = pending_find(a, op);
    if (at) {
        *s = a->v[at - 1].seq;
        *tombstone = a->v[at - 1].tombstone;
        return 1;
    }
    const uint8_t *v; /* only the sequencer is wanted: no move */
    size_t n;
    int rc = engine_get_ref(a->b->e, NULL, a->range_id, op->key, op->key_len,
                            s, tombstone, &a->scratch, &v, &n);
    if (rc == CAIRN_ERR_NOT_FOUND)
        return 0;
    return rc == 0 ? 1 : rc;
}

static int check_cond(entry_applier *a, const entry_op *op)
{
    if (op->cond == ENTRY_COND_NONE)
        return 0;
    seq cur;
    bool tomb = false;
    int found = current_seq(a, op, &cur, &tomb);
    if (found < 0)
        return found;
    if (op->cond == ENTRY_COND_IFABSENT)
        return (found == 0 || tomb) ? 0 : CAIRN_ERR_CONDITION;
    if (op->cond == ENTRY_COND_IFNEWER) /* a tombstone counts: it is newer */
        return (found == 0 || seq_cmp(&cur, &op->seq) < 0)
                   ? 0
                   : CAIRN_ERR_CONDITION;
    return (found == 1 && seq_cmp(&cur, &op->cond_seq) == 0)
               ? 0
               : CAIRN_ERR_CONDITION;
}

static int add_op(entry_applier *a, const entry_op *op)
{
    int rc = mark_dirty(a);
    if (rc == 0 && op->kind == ENTRY_OP_DEL)
        rc = engine_batch_tombstone(a->b->batch, a->range_id, op->key,
                                    op->key_len, &op->seq);
    else if (rc == 0)
        rc = engine_batch_put(a->b->batch, a->range_id, op->key, op->key_len,
                              &op->seq, op->value, op->value_len);
    if (rc != 0)
        return rc;
    if (grow_array((void **)&a->v, a->n, &a->cap, sizeof *a->v, 64) != 0)
        return CAIRN_ERR_NOMEM;
    pending *pd = &a->v[a->n];
    pd->off = a->keys.len;
    pd->len = op->key_len;
    pd->seq = op->seq;
    pd->tombstone = op->kind == ENTRY_OP_DEL;
    rc = buf_append(&a->keys, op->key, op->key_len);
    if (rc == 0)
        rc = u64map_put(&a->last, key_hash(op->key, op->key_len),
                        (void *)(uintptr_t)(a->n + 1));
    if (rc == 0)
        a->n++;
    return rc;
}

int entry_applier_add(entry_applier *a, uint64_t index, const void *p,
                      size_t len, entry_result *results, seq_clock *clock)
{
    entry_reader er;
    entry_op op;
    int rc = entry_parse(p, len, &er);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; rc == 0 && entry_next(&er, &op) == 1; i++) {
        int st = a->bounds && ((a->bounds->flags & RANGE_META_FROZEN) ||
                               !range_meta_contains(a->bounds, op.key,
                                                    op.key_len))
                     ? CAIRN_ERR_KEY_OUT_OF_RANGE
                     : check_cond(a, &op);
        if (st != 0 && st != CAIRN_ERR_CONDITION &&
            st != CAIRN_ERR_KEY_OUT_OF_RANGE)
            return st;
        if (results) {
            results[i].status = st;
            results[i].seq = op.seq;
        }
        if (clock)
            seq_observe(clock, &op.seq);
        if (st == 0)
            rc = add_op(a, &op);
    }
    if (rc == 0)
        rc = mark_dirty(a);
    if (rc == 0)
        rc = engine_batch_set_applied(a->b->batch, a->range_id, index);
    if (rc == 0) {
        a->index = index;
        a->entries++;
    }
    return rc;
}

int entry_applier_add_meta(entry_applier *a, uint64_t index,
                           const void *meta, size_t meta_len)
{
    int rc = mark_dirty(a);
    if (rc == 0)
        rc = engine_batch_set_meta(a->b->batch, a->range_id, meta, meta_len);
    if (rc == 0)
        rc = engine_batch_set_applied(a->b->batch, a->range_id, index);
    if (rc == 0) {
        a->index = index;
        a->entries++;
    }
    return rc;
}

int entry_applier_add_noop(entry_applier *a, uint64_t index)
{
    int rc = mark_dirty(a);
    if (rc == 0)
        rc = engine_batch_set_applied(a->b->batch, a->range_id, index);
    if (rc == 0) {
        a->index = index;
        a->entries++;
    }
    return rc;
}

int entry_applier_flush(entry_applier *a)
{
    return a->dirty ? entry_batcher_flush(a->b) : 0;
}

int entry_apply(engine *e, engine_batch *batch, uint64_t range_id,
                uint64_t index, const void *p, size_t len,
                entry_result *results, seq_clock *clock)
{
    (void)batch;
    entry_applier *a = entry_applier_new(e, range_id, 0);
    if (a == NULL)
        return CAIRN_ERR_NOMEM;
    int rc = entry_applier_add(a, index, p, len, results, clock);
    if (rc == 0)
        rc = entry_applier_flush(a);
    entry_applier_free(a);
    return rc;
}

/* ---- range meta ------------------------------------------------------- */

int range_meta_encode(const range_meta *m, buf *out)
{
    int rc = buf_append_u8(out, 2);
    if (rc == 0)
        rc = buf_append_u8(out, m->flags);
    if (rc == 0)
        rc = buf_append_u64(out, m->table_id);
    if (rc == 0)
        rc = buf_append_u8(out, (uint8_t)m->engine);
    if (rc == 0)
        rc = buf_append_u64(out, m->epoch);
    if (rc == 0)
        rc = put_str(out, m->start.data, m->start.len);
    if (rc == 0)
        rc = put_str(out, m->end.data, m->end.len);
    if (rc == 0)
        rc = buf_append_u8(out, (uint8_t)m->n_peers);
    for (unsigned i = 0; rc == 0 && i < m->n_peers; i++) {
        rc = buf_append_u64(out, m->peers[i].id);
        if (rc == 0)
            rc = put_str(out, m->peers[i].addr, strlen(m->peers[i].addr));
    }
    if (rc == 0 && (m->flags & RANGE_META_FLOOR))
        rc = buf_append(out, m->floor.bytes, SEQ_LEN);
    return rc;
}

int range_meta_decode(const void *p, size_t len, range_meta *m)
{
    rdr r = {p, len, 0, false};
    size_t n;
    const uint8_t *s;
    uint8_t version = take_u8(&r);
    if (version != 1 && version != 2)
        return CAIRN_ERR_CORRUPT;
    m->flags = version == 2 ? take_u8(&r) : 0;
    m->table_id = take_u64(&r);
    m->engine = (engine_kind)take_u8(&r);
    m->epoch = take_u64(&r);
    buf_reset(&m->start);
    buf_reset(&m->end);
    s = take_str(&r, &n);
    if (s && buf_append(&m->start, s, n) != 0)
        return CAIRN_ERR_NOMEM;
    s = take_str(&r, &n);
    if (s && buf_append(&m->end, s, n) != 0)
        return CAIRN_ERR_NOMEM;
    m->n_peers = take_u8(&r);
    if (m->n_peers > RANGE_MAX_PEERS)
        return CAIRN_ERR_CORRUPT;
    for (unsigned i = 0; i < m->n_peers && !r.bad; i++) {
        m->peers[i].id = take_u64(&r);
        s = take_str(&r, &n);
        if (s == NULL || n >= sizeof m->peers[i].addr)
            return CAIRN_ERR_CORRUPT;
        memcpy(m->peers[i].addr, s, n);
        m->peers[i].addr[n] = '\0';
    }
    m->floor = seq_zero();
    if (m->flags & RANGE_META_FLOOR)
        take_seq(&r, &m->floor);
    return (r.bad || r.pos != len) ? CAIRN_ERR_CORRUPT : 0;
}

void range_meta_free(range_meta *m)
{
    buf_free(&m->start);
    buf_free(&m->end);
}

bool range_meta_contains(const range_meta *m, const void *key,
                         size_t key_len)
{
    if (key_cmp(key, key_len, m->start.data, m->start.len) < 0)
        return false;
    return m->end.len == 0 ||
           key_cmp(key, key_len, m->end.data, m->end.len) < 0;
}

/* ---- snapshots -------------------------------------------------------- */

int snapshot_encode(engine *e, engine_view *view, uint64_t range_id,
                    uint64_t applied, size_t cap, buf *out)
{
    buf meta = BUF_INIT;
    engine_iter *it = NULL;
    int rc = engine_get_meta(e, view, range_id, &meta);
    if (rc == 0)
        rc = buf_append(out, SNAP_MAGIC, 4);
    if (rc == 0)
        rc = buf_append_u64(out, applied);
    if (rc == 0)
        rc = put_str(out, meta.data, meta.len);
    size_t count_at = out->len;
    if (rc == 0)
        rc = buf_append_u64(out, 0);
    if (rc == 0)
        rc = engine_iter_open(e, view, range_id, NULL, 0, NULL, 0, 0,
                              ENGINE_ITER_TOMBSTONES, &it);
    uint64_t count = 0;
    engine_entry en;
    while (rc == 0 && (rc = engine_iter_next(it, &en)) == 1) {
        rc = put_str(out, en.key, en.key_len);
        if (rc == 0)
            rc = buf_append(out, en.seq.bytes, SEQ_LEN);
        if (rc == 0)
            rc = buf_append_u8(out, en.tombstone ? 1 : 0);
        if (rc == 0)
            rc = put_str(out, en.value, en.value_len);
        if (rc == 0 && out->len > cap)
            rc = CAIRN_ERR_SNAPSHOT_TOOBIG;
        count++;
    }
    if (it)
        engine_iter_close(it);
    buf_free(&meta);
    if (rc == 0) {
        be_put_u64(out->data + count_at, count);
        rc = entry_pad(out);
    }
    return rc;
}

int snapshot_index(const void *p, size_t len, uint64_t *applied_out)
{
    if (len < 12 || memcmp(p, SNAP_MAGIC, 4) != 0)
        return CAIRN_ERR_CORRUPT;
    *applied_out = be_get_u64((const uint8_t *)p + 4);
    return 0;
}

/* Read the records: add them to `b` (if not NULL) and move `clock` past
 * their sequencers (if not NULL). */
static int read_records(rdr *r, engine_batch *b, uint64_t range_id,
                        seq_clock *clock)
{
    uint64_t count = take_u64(r);
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < count && !r->bad; i++) {
        size_t kn, vn;
        const uint8_t *k = take_str(r, &kn);
        seq s = seq_zero();
        take_seq(r, &s);
        uint8_t flags = take_u8(r);
        const uint8_t *v = take_str(r, &vn);
        if (r->bad)
            break;
        if (clock)
            seq_observe(clock, &s);
        if (b && (flags & 1))
            rc = engine_batch_tombstone(b, range_id, k, kn, &s);
        else if (b)
            rc = engine_batch_put(b, range_id, k, kn, &s, v, vn);
    }
    if (rc == 0 && (r->bad || !entry_padding_ok(r->p, r->pos, r->len)))
        rc = CAIRN_ERR_CORRUPT;
    return rc;
}

/* Position `r` after the header; the meta blob is returned. */
static int read_snapshot_header(rdr *r, uint64_t *applied,
                                const uint8_t **meta, size_t *meta_len)
{
    const uint8_t *magic = take(r, 4);
    if (magic == NULL || memcmp(magic, SNAP_MAGIC, 4) != 0)
        return CAIRN_ERR_CORRUPT;
    *applied = take_u64(r);
    *meta = take_str(r, meta_len);
    return r->bad ? CAIRN_ERR_CORRUPT : 0;
}

int snapshot_observe(const void *p, size_t len, seq_clock *clock)
{
    rdr r = {p, len, 0, false};
    uint64_t applied;
    const uint8_t *meta;
    size_t meta_len;
    int rc = read_snapshot_header(&r, &applied, &meta, &meta_len);
    return rc ? rc : read_records(&r, NULL, 0, clock);
}

int snapshot_restore(engine *e, uint64_t range_id, const void *p, size_t len,
                     seq_clock *clock)
{
    rdr r = {p, len, 0, false};
    uint64_t applied;
    const uint8_t *meta;
    size_t meta_len;
    int rc = read_snapshot_header(&r, &applied, &meta, &meta_len);
    if (rc != 0)
        return rc;
    engine_batch *b = engine_batch_new();
    if (b == NULL)
        return CAIRN_ERR_NOMEM;
    /* Replace, not merge: everything the range held goes in the same
     * atomic batch as the snapshot's records. */
    rc = engine_batch_delete_interval(b, range_id, NULL, 0, NULL, 0);
    if (rc == 0)
        rc = read_records(&r, b, range_id, clock);
    if (rc == 0 && meta_len)
        rc = engine_batch_set_meta(b, range_id, meta, meta_len);
    if (rc == 0)
        rc = engine_batch_set_applied(b, range_id, applied);
    if (rc == 0)
        rc = engine_write(e, b);
    engine_batch_free(b);
    return rc;
}
