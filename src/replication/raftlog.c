/*
 * raftlog.c - the node-wide Raft log on RocksDB, with a writer thread that
 * syncs one batch per loop iteration (raftlog.h).
 */
#include "raftlog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rocksdb/c.h>

#include "../common/err.h"
#include "../common/grow.h"
#include "../storage/rocks_close.h"

#define KEY_LEN 17 /* tag | range | index */
#define ENTRY_HEAD 9 /* term | type */
#define SNAP_HEAD (8 + 8 + 8 + SEQ_LEN + 4)

enum { TAG_ENTRY = 'e', TAG_HARD = 'h', TAG_SNAP = 's' };

typedef struct pending_cb {
    raftlog_cb cb;
    void *arg;
} pending_cb;

/* A batch: the RocksDB write batch and what to call when it is durable. */
typedef struct batch {
    rocksdb_writebatch_t *wb;
    pending_cb *cbs;
    size_t n_cbs, cap_cbs;
    bool must_sync; /* sync even if empty (raftlog_write_now) */
    uint64_t id;
    uint64_t entries;
} batch;

struct raftlog {
    uv_loop_t *loop;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wsync, *wnosync;
    rocksdb_readoptions_t *ropts;

    batch fill;   /* being filled by the loop */
    batch flight; /* owned by the writer thread while busy */
    bool busy;
    uint64_t durable;
    bool failed;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool submitted, stop, thread_started;
    int result;           /* of the flight, set by the writer */
    char result_msg[256]; /* RocksDB's reason */
    uint64_t result_us;

    uv_prepare_t prepare;
    uv_async_t done;
    uv_timer_t compact_timer;
    uv_work_t compact_work;
    bool compacting, closing;
    uint64_t drops; /* ranges dropped since the last compaction began */
    diskguard *disk; /* checked before every write (diskguard.h) */
    int handles_open;

    void (*durable_fn)(void *, uint64_t);
    void *durable_arg;
    void (*failure_fn)(void *, const char *);
    void *failure_arg;
    raftlog_stats stats;
};

/* ---- keys and records ------------------------------------------------- */

static void make_key(uint8_t *k, uint8_t tag, uint64_t range, uint64_t index)
{
    k[0] = tag;
    be_put_u64(k + 1, range);
    be_put_u64(k + 9, index);
}

static size_t key_len(uint8_t tag) { return tag == TAG_ENTRY ? 17 : 9; }

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the writer thread ------------------------------------------------ */

static void *writer_main(void *arg)
{
    raftlog *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->submitted && !l->stop)
            pthread_cond_wait(&l->cv, &l->mu);
        if (!l->submitted)
            break;
        pthread_mutex_unlock(&l->mu);
        char *err = NULL;
        uint64_t t0 = now_us();
        diskguard_check(l->disk); /* a disk filled meanwhile: headroom now */
        if (rocksdb_writebatch_count(l->flight.wb) > 0)
            rocksdb_write(l->db, l->wsync, l->flight.wb, &err);
        else
            rocksdb_flush_wal(l->db, 1, &err);
        uint64_t t1 = now_us();
        pthread_mutex_lock(&l->mu);
        l->submitted = false;
        l->result = err ? CAIRN_ERR_IO : 0;
        if (err)
            snprintf(l->result_msg, sizeof l->result_msg, "%s", err);
        l->result_us = t1 - t0;
        free(err);
        uv_async_send(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static bool batch_pending(const batch *b)
{
    return b->n_cbs > 0 || b->must_sync || rocksdb_writebatch_count(b->wb) > 0;
}

static void batch_reset(batch *b, uint64_t id)
{
    rocksdb_writebatch_clear(b->wb);
    b->n_cbs = 0;
    b->must_sync = false;
    b->entries = 0;
    b->id = id;
}

/* Hand the filling batch to the writer; a fresh one starts filling. */
static void submit(raftlog *l)
{
    batch t = l->flight;
    l->flight = l->fill;
    l->fill = t;
    batch_reset(&l->fill, l->flight.id + 1);
    size_t len = 0;
    rocksdb_writebatch_data(l->flight.wb, &len);
    l->stats.bytes += len;
    l->stats.entries += l->flight.entries;
    l->busy = true;
    pthread_mutex_lock(&l->mu);
    l->submitted = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void prepare_cb(uv_prepare_t *h)
{
    raftlog *l = h->data;
    if (l->busy)
        return; /* done_cb restarts us */
    uv_prepare_stop(h);
    if (batch_pending(&l->fill) && !l->failed)
        submit(l);
}

static void schedule(raftlog *l)
{
    if (!l->busy && !uv_is_closing((uv_handle_t *)&l->prepare))
        uv_prepare_start(&l->prepare, prepare_cb);
}

static void fail(raftlog *l, const char *why)
{
    if (l->failed)
        return;
    l->failed = true;
    if (l->failure_fn) {
        l->failure_fn(l->failure_arg, why);
        return;
    }
    fprintf(stderr, "cairn node: Raft log write failed: %s; stopping\n", why);
    abort();
}

/* Run the callbacks of the batch that just finished (or failed). */
static void finish_flight(raftlog *l, int status)
{
    batch *b = &l->flight;
    l->busy = false;
    if (status == 0) {
        l->durable = b->id;
        l->stats.batches++;
        l->stats.sync_us += l->result_us;
    }
    pending_cb *cbs = b->cbs;
    size_t n = b->n_cbs;
    b->cbs = NULL;
    b->n_cbs = b->cap_cbs = 0;
    for (size_t i = 0; i < n; i++)
        cbs[i].cb(cbs[i].arg, status);
    free(cbs);
    if (status == 0 && l->durable_fn)
        l->durable_fn(l->durable_arg, l->durable);
}

static void done_cb(uv_async_t *h)
{
    raftlog *l = h->data;
    pthread_mutex_lock(&l->mu);
    bool finished = l->busy && !l->submitted;
    int status = l->result;
    char msg[256];
    memcpy(msg, l->result_msg, sizeof msg);
    pthread_mutex_unlock(&l->mu);
    if (!finished)
        return;
    finish_flight(l, status);
    if (status != 0)
        fail(l, msg);
    else if (batch_pending(&l->fill))
        schedule(l);
}

/* ---- open and close --------------------------------------------------- */

static int set_err(char *err, const char *what, const char *detail)
{
    if (err)
        snprintf(err, 256, "%s: %.200s", what, detail ? detail : "");
    return CAIRN_ERR_IO;
}

/* A RocksDB error string as a cairn error (and freed): a failed checksum
 * ("Corruption: block checksum mismatch ...") is CORRUPT, the rest IO. */
static int rocks_status(char *err)
{
    if (err == NULL)
        return 0;
    int rc = strncmp(err, "Corruption", 10) == 0 ? CAIRN_ERR_CORRUPT
                                                 : CAIRN_ERR_IO;
    free(err);
    return rc;
}

/* Read every record once, checksums on: a corrupt block anywhere in the
 * log would fail a later load or compaction - and a failed compaction
 * stops every write of the node - so it is found before anything runs. */
static int verify_all(raftlog *l, char *err)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(ro, 1);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(l->db, ro);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
         rocksdb_iter_next(it))
        ;
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (e)
        set_err(err, "the Raft log fails its check", e);
    return rocks_status(e);
}

static void free_parts(raftlog *l)
{
    if (l->db)
        rocks_close(l->db, "the Raft log", l->disk);
    if (l->opts)
        rocksdb_options_destroy(l->opts);
    if (l->wsync)
        rocksdb_writeoptions_destroy(l->wsync);
    if (l->wnosync)
        rocksdb_writeoptions_destroy(l->wnosync);
    if (l->ropts)
        rocksdb_readoptions_destroy(l->ropts);
    if (l->fill.wb)
        rocksdb_writebatch_destroy(l->fill.wb);
    if (l->flight.wb)
        rocksdb_writebatch_destroy(l->flight.wb);
    free(l->fill.cbs);
    free(l->flight.cbs);
    free(l);
}

/* The log is small (a few entries per range beyond the index store's
 * applied index) and short-lived (compaction deletes entries soon after
 * they are written), so it keeps its memtable modest and its WAL files
 * bounded; RocksDB's flush drops entries already deleted. */
static void set_options(rocksdb_options_t *o)
{
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_wal_recovery_mode(
        o, rocksdb_tolerate_corrupted_tail_records_recovery);
    rocksdb_options_set_write_buffer_size(o, 32u << 20);
    rocksdb_options_set_max_total_wal_size(o, 128u << 20);
    rocksdb_options_set_max_background_jobs(o, 2);
    rocksdb_options_set_keep_log_file_num(o, 5); /* RocksDB's info logs */
    rocksdb_options_set_max_log_file_size(o, 4u << 20);
    rocksdb_options_set_paranoid_checks(o, 1);
}

int raftlog_open(uv_loop_t *loop, const char *path, raftlog **out, char *err)
{
    raftlog *l = calloc(1, sizeof *l);
    if (l == NULL)
        return set_err(err, "out of memory", NULL), CAIRN_ERR_NOMEM;
    l->loop = loop;
    l->opts = rocksdb_options_create();
    l->wsync = rocksdb_writeoptions_create();
    l->wnosync = rocksdb_writeoptions_create();
    l->ropts = rocksdb_readoptions_create();
    l->fill.wb = rocksdb_writebatch_create();
    l->flight.wb = rocksdb_writebatch_create();
    rocksdb_writeoptions_set_sync(l->wsync, 1);
    set_options(l->opts);
    char *rerr = NULL;
    l->db = rocksdb_open(l->opts, path, &rerr);
    if (l->db == NULL) {
        set_err(err, "cannot open the Raft log", rerr);
        free_parts(l);
        return rocks_status(rerr);
    }
    int rc = verify_all(l, err);
    if (rc != 0) {
        free_parts(l);
        return rc;
    }
    l->fill.id = 1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
        free_parts(l);
        return set_err(err, "cannot start the Raft log writer", NULL);
    }
    l->thread_started = true;
    uv_prepare_init(loop, &l->prepare);
    uv_async_init(loop, &l->done, done_cb);
    uv_timer_init(loop, &l->compact_timer);
    l->prepare.data = l->done.data = l->compact_timer.data = l;
    *out = l;
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    raftlog *l = h->data;
    if (--l->handles_open == 0)
        free_parts(l);
}

void raftlog_close(raftlog *l)
{
    if (l == NULL)
        return;
    l->closing = true;
    /* a compaction in flight must end before the database closes: the
     * work callback runs on the thread pool, so wait for it here */
    while (l->compacting)
        uv_run(l->loop, UV_RUN_ONCE);
    /* Finish the batch in flight, then write the filling one here. */
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    if (l->busy)
        finish_flight(l, l->result);
    if (!l->failed && batch_pending(&l->fill)) {
        char *e = NULL;
        if (rocksdb_writebatch_count(l->fill.wb) > 0)
            rocksdb_write(l->db, l->wsync, l->fill.wb, &e);
        else
            rocksdb_flush_wal(l->db, 1, &e);
        batch t = l->flight;
        l->flight = l->fill;
        l->fill = t;
        finish_flight(l, e ? CAIRN_ERR_IO : 0);
        free(e);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    l->handles_open = 3;
    uv_close((uv_handle_t *)&l->prepare, handle_closed);
    uv_close((uv_handle_t *)&l->done, handle_closed);
    uv_close((uv_handle_t *)&l->compact_timer, handle_closed);
}

/* ---- reads ------------------------------------------------------------ */

void raftlog_snap_free(raftlog_snap *s) { buf_free(&s->conf); }

void raftlog_state_free(raftlog_state *st)
{
    if (st->entries) {
        if (st->n > 0)
            raft_free(st->entries[0].batch);
        raft_free(st->entries);
    }
    st->entries = NULL;
    st->n = 0;
    raftlog_snap_free(&st->snap);
}

static int get_record(raftlog *l, uint8_t tag, uint64_t range, char **val,
                      size_t *len)
{
    uint8_t k[KEY_LEN];
    char *err = NULL;
    make_key(k, tag, range, 0);
    *val = rocksdb_get(l->db, l->ropts, (const char *)k, key_len(tag), len,
                       &err);
    return rocks_status(err);
}

static int load_hard(raftlog *l, uint64_t range, raftlog_state *st)
{
    char *v;
    size_t len;
    int rc = get_record(l, TAG_HARD, range, &v, &len);
    if (rc != 0 || v == NULL)
        return rc;
    if (len != 16)
        rc = CAIRN_ERR_CORRUPT;
    else {
        st->exists = true;
        st->term = be_get_u64((uint8_t *)v);
        st->vote = be_get_u64((uint8_t *)v + 8);
    }
    free(v);
    return rc;
}

static int decode_snap(const uint8_t *p, size_t len, raftlog_snap *s)
{
    if (len < SNAP_HEAD)
        return CAIRN_ERR_CORRUPT;
    s->index = be_get_u64(p);
    s->term = be_get_u64(p + 8);
    s->conf_index = be_get_u64(p + 16);
    memcpy(s->clock.bytes, p + 24, SEQ_LEN);
    uint32_t n = be_get_u32(p + 24 + SEQ_LEN);
    if (len != SNAP_HEAD + (size_t)n)
        return CAIRN_ERR_CORRUPT;
    return buf_append(&s->conf, p + SNAP_HEAD, n);
}

static int load_snap(raftlog *l, uint64_t range, raftlog_state *st)
{
    char *v;
    size_t len;
    int rc = get_record(l, TAG_SNAP, range, &v, &len);
    if (rc != 0 || v == NULL)
        return rc;
    rc = decode_snap((uint8_t *)v, len, &st->snap);
    st->has_snap = rc == 0;
    free(v);
    return rc;
}

/* Entries are copied into one batch, each at an 8-byte boundary. */
typedef struct loaded {
    uint64_t term;
    unsigned short type;
    size_t off, len;
} loaded;

static int load_entries(raftlog *l, uint64_t range, raftlog_state *st)
{
    uint8_t lo[KEY_LEN], hi[KEY_LEN];
    make_key(lo, TAG_ENTRY, range, 0);
    make_key(hi, TAG_ENTRY, range, UINT64_MAX);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, KEY_LEN);
    rocksdb_iterator_t *it = rocksdb_create_iterator(l->db, ro);
    loaded *v = NULL;
    size_t n = 0, cap = 0, total = 0;
    uint64_t first = 0;
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)lo, KEY_LEN);
         rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it, &vlen);
        uint64_t index = klen == KEY_LEN ? be_get_u64(k + 9) : 0;
        if (n == 0)
            first = index;
        if (klen != KEY_LEN || vlen < ENTRY_HEAD || index != first + n)
            rc = CAIRN_ERR_CORRUPT; /* a gap: never written like that */
        else if (grow_array((void **)&v, n, &cap, sizeof *v, 16) != 0)
            rc = CAIRN_ERR_NOMEM;
        else {
            v[n++] = (loaded){be_get_u64(val), val[8], total, vlen - ENTRY_HEAD};
            total += (vlen - ENTRY_HEAD + 7) & ~(size_t)7;
        }
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err)
        rc = rocks_status(err);
    uint8_t *data = NULL;
    if (rc == 0 && n > 0) {
        data = raft_malloc(total ? total : 8);
        st->entries = raft_malloc(n * sizeof *st->entries);
        if (data == NULL || st->entries == NULL)
            rc = CAIRN_ERR_NOMEM;
    }
    /* second pass: copy the data (the iterator is still positioned in
     * the same snapshot) */
    size_t i = 0;
    if (rc == 0 && n > 0) {
        for (rocksdb_iter_seek(it, (const char *)lo, KEY_LEN);
             i < n && rocksdb_iter_valid(it); rocksdb_iter_next(it), i++) {
            size_t vlen;
            const uint8_t *val =
                (const uint8_t *)rocksdb_iter_value(it, &vlen);
            memcpy(data + v[i].off, val + ENTRY_HEAD, v[i].len);
            st->entries[i] = (struct raft_entry){
                .term = v[i].term, .type = v[i].type,
                .buf = {data + v[i].off, v[i].len}, .batch = data};
        }
        if (i != n)
            rc = CAIRN_ERR_IO;
    }
    if (rc == 0) {
        st->n = n;
        st->start_index = n ? first : 0;
    } else {
        raft_free(data);
        raft_free(st->entries);
        st->entries = NULL;
    }
    free(v);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

int raftlog_load(raftlog *l, uint64_t range, raftlog_state *st)
{
    memset(st, 0, sizeof *st);
    int rc = load_hard(l, range, st);
    if (rc == 0)
        rc = load_snap(l, range, st);
    if (rc == 0)
        rc = load_entries(l, range, st);
    if (rc == 0 && st->n == 0)
        st->start_index = st->has_snap ? st->snap.index + 1 : 1;
    /* entries must follow the snapshot, or start the log */
    if (rc == 0 && st->n > 0 &&
        st->start_index > (st->has_snap ? st->snap.index + 1 : 1))
        rc = CAIRN_ERR_CORRUPT;
    if (rc != 0)
        raftlog_state_free(st);
    return rc;
}

int raftlog_list_ranges(raftlog *l, uint64_t **ids, size_t *n)
{
    uint8_t lo[1] = {TAG_HARD}, hi[1] = {TAG_HARD + 1};
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 1);
    rocksdb_iterator_t *it = rocksdb_create_iterator(l->db, ro);
    size_t cap = 0;
    int rc = 0;
    *ids = NULL;
    *n = 0;
    for (rocksdb_iter_seek(it, (const char *)lo, 1);
         rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        if (klen != 9)
            continue;
        if (grow_array((void **)ids, *n, &cap, sizeof **ids, 64) != 0)
            rc = CAIRN_ERR_NOMEM;
        else
            (*ids)[(*n)++] = be_get_u64(k + 1);
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err)
        rc = rocks_status(err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (rc != 0) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- mutations -------------------------------------------------------- */

static void put_entry(rocksdb_writebatch_t *wb, uint64_t range,
                      uint64_t index, const struct raft_entry *e)
{
    uint8_t k[KEY_LEN], head[ENTRY_HEAD];
    make_key(k, TAG_ENTRY, range, index);
    be_put_u64(head, e->term);
    head[8] = (uint8_t)e->type;
    const char *parts[2] = {(const char *)head, e->buf.base};
    size_t lens[2] = {ENTRY_HEAD, e->buf.len};
    const char *kp[1] = {(const char *)k};
    size_t kl[1] = {KEY_LEN};
    rocksdb_writebatch_putv(wb, 1, kp, kl, 2, parts, lens);
}

int raftlog_put_entries(raftlog *l, uint64_t range, uint64_t first,
                        const struct raft_entry *entries, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        put_entry(l->fill.wb, range, first + i, &entries[i]);
    l->fill.entries += n;
    schedule(l);
    return 0;
}

static void delete_entries(raftlog *l, uint64_t range, uint64_t from,
                           uint64_t to)
{
    uint8_t lo[KEY_LEN], hi[KEY_LEN];
    make_key(lo, TAG_ENTRY, range, from);
    make_key(hi, TAG_ENTRY, range, to);
    rocksdb_writebatch_delete_range(l->fill.wb, (const char *)lo, KEY_LEN,
                                    (const char *)hi, KEY_LEN);
    schedule(l);
}

int raftlog_truncate(raftlog *l, uint64_t range, uint64_t from)
{
    delete_entries(l, range, from, UINT64_MAX);
    return 0;
}

int raftlog_compact(raftlog *l, uint64_t range, uint64_t below)
{
    if (below > 1)
        delete_entries(l, range, 0, below);
    return 0;
}

static void hard_record(uint8_t *k, uint8_t *v, uint64_t range,
                        uint64_t term, uint64_t vote)
{
    make_key(k, TAG_HARD, range, 0);
    be_put_u64(v, term);
    be_put_u64(v + 8, vote);
}

int raftlog_put_hard(raftlog *l, uint64_t range, uint64_t term,
                     uint64_t vote)
{
    uint8_t k[KEY_LEN], v[16];
    hard_record(k, v, range, term, vote);
    rocksdb_writebatch_put(l->fill.wb, (const char *)k, 9, (const char *)v,
                           16);
    schedule(l);
    return 0;
}

int raftlog_put_snap(raftlog *l, uint64_t range, const raftlog_snap *s)
{
    uint8_t k[KEY_LEN];
    buf v = BUF_INIT;
    if (buf_append_u64(&v, s->index) != 0 ||
        buf_append_u64(&v, s->term) != 0 ||
        buf_append_u64(&v, s->conf_index) != 0 ||
        buf_append(&v, s->clock.bytes, SEQ_LEN) != 0 ||
        buf_append_u32(&v, (uint32_t)s->conf.len) != 0 ||
        buf_append(&v, s->conf.data, s->conf.len) != 0) {
        buf_free(&v);
        return CAIRN_ERR_NOMEM;
    }
    make_key(k, TAG_SNAP, range, 0);
    rocksdb_writebatch_put(l->fill.wb, (const char *)k, 9,
                           (const char *)v.data, v.len);
    buf_free(&v);
    schedule(l);
    return 0;
}

/* A dropped range's records are gone for readers at once, but RocksDB
 * keeps their bytes (and the range tombstone) until a compaction rewrites
 * the files: a while after drops, compact the whole log on a worker thread
 * (RocksDB compacts alongside writes), so that a drop gives the disk
 * back. The log is small - live entries are few per range - so this is
 * cheap. */
static void compact_run(uv_work_t *w)
{
    raftlog *l = w->data;
    rocksdb_compact_range(l->db, NULL, 0, NULL, 0);
}

static void compact_soon(raftlog *l);

static void compact_done(uv_work_t *w, int status)
{
    raftlog *l = w->data;
    (void)status;
    l->compacting = false;
    l->stats.compactions++;
    if (l->closing)
        return;
    if (l->drops > 0)
        compact_soon(l);
}

static void compact_cb(uv_timer_t *t)
{
    raftlog *l = t->data;
    if (l->compacting || l->closing)
        return;
    l->drops = 0;
    l->compacting = true;
    l->compact_work.data = l;
    if (uv_queue_work(l->loop, &l->compact_work, compact_run,
                      compact_done) != 0)
        l->compacting = false;
}

static void compact_soon(raftlog *l)
{
    if (!l->compacting && !l->closing &&
        !uv_is_active((uv_handle_t *)&l->compact_timer))
        uv_timer_start(&l->compact_timer, compact_cb, 2000, 0);
}

int raftlog_drop(raftlog *l, uint64_t range)
{
    l->drops++;
    compact_soon(l);
    uint8_t k[KEY_LEN];
    delete_entries(l, range, 0, UINT64_MAX);
    make_key(k, TAG_ENTRY, range, UINT64_MAX); /* never written; be sure */
    rocksdb_writebatch_delete(l->fill.wb, (const char *)k, KEY_LEN);
    make_key(k, TAG_HARD, range, 0);
    rocksdb_writebatch_delete(l->fill.wb, (const char *)k, 9);
    make_key(k, TAG_SNAP, range, 0);
    rocksdb_writebatch_delete(l->fill.wb, (const char *)k, 9);
    schedule(l);
    return 0;
}

int raftlog_write_now(raftlog *l, uint64_t range, uint64_t term,
                      uint64_t vote, const struct raft_entry *first)
{
    uint8_t k[KEY_LEN], v[16];
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    hard_record(k, v, range, term, vote);
    rocksdb_writebatch_put(wb, (const char *)k, 9, (const char *)v, 16);
    if (first)
        put_entry(wb, range, 1, first);
    char *err = NULL;
    rocksdb_write(l->db, l->wnosync, wb, &err);
    rocksdb_writebatch_destroy(wb);
    if (err) {
        free(err);
        return CAIRN_ERR_IO;
    }
    l->fill.must_sync = true;
    schedule(l);
    return 0;
}

int raftlog_when_durable(raftlog *l, raftlog_cb cb, void *arg)
{
    batch *b = &l->fill;
    if (grow_array((void **)&b->cbs, b->n_cbs, &b->cap_cbs, sizeof *b->cbs,
                   16) != 0)
        return CAIRN_ERR_NOMEM;
    b->cbs[b->n_cbs++] = (pending_cb){cb, arg};
    schedule(l);
    return 0;
}

/* ---- progress --------------------------------------------------------- */

void raftlog_set_disk_guard(raftlog *l, diskguard *g) { l->disk = g; }

uint64_t raftlog_filling(const raftlog *l) { return l->fill.id; }
uint64_t raftlog_durable(const raftlog *l) { return l->durable; }

void raftlog_on_durable(raftlog *l, void (*fn)(void *, uint64_t), void *arg)
{
    l->durable_fn = fn;
    l->durable_arg = arg;
}

void raftlog_on_failure(raftlog *l, void (*fn)(void *, const char *),
                        void *arg)
{
    l->failure_fn = fn;
    l->failure_arg = arg;
}

void raftlog_get_stats(const raftlog *l, raftlog_stats *out)
{
    *out = l->stats;
}
