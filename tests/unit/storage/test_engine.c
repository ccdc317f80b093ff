/*
 * Conformance suite of the index store (src/storage/engine.h): every test
 * runs once against LMDB (btree) and once against RocksDB (lsm), so both
 * engines are held to the same documented behaviour.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/limits.h"
#include "engine_fixture.h"
#include "storage/engine_int.h" /* ENGINE_REC_HDR */

static void reopen(fixture *f)
{
    engine_close(f->e);
    f->e = NULL;
    assert_int_equal(engine_open(f->kind, f->dir, NULL, &f->e), 0);
}

/* A key for test i, of length len, filled with a pattern. */
typedef struct tkey {
    uint8_t b[CAIRN_KEY_MAX];
    size_t len;
} tkey;

static int tkey_cmp(const void *a, const void *b)
{
    const tkey *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->b, y->b, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Keys that stress ordering: 0x00 and 0xff bytes, prefixes of each other,
 * 1 and 1024 bytes, and long keys sharing 502- and 1004-byte prefixes (LMDB
 * cuts keys at 502 bytes). */
static size_t make_keys(tkey *k)
{
    size_t n = 0;
    static const struct {
        const char *s;
        size_t len;
    } shorts[] = {{"\x00", 1}, {"\x00\x00", 2}, {"\x00\x01", 2},
                  {"\x01", 1}, {"a", 1},         {"ab", 2},
                  {"abc", 3},   {"b", 1},         {"\x7f", 1},
                  {"\xff", 1},  {"\xff\x00", 2},  {"\xff\xff", 2}};
    for (size_t i = 0; i < 12; i++) {
        k[n].len = shorts[i].len;
        memcpy(k[n].b, shorts[i].s, k[n].len);
        n++;
    }
    size_t lens[] = {501, 502, 503, 1003, 1004, 1005, 1023, 1024};
    for (size_t i = 0; i < 8; i++) {
        for (uint8_t fill = 0; fill < 3; fill++) {
            uint8_t byte = fill == 0 ? 0x00 : fill == 1 ? 'm' : 0xff;
            memset(k[n].b, byte, lens[i]);
            k[n].len = lens[i];
            n++;
            /* same long prefix, differing in the last byte */
            memcpy(&k[n], &k[n - 1], sizeof k[n]);
            k[n].b[lens[i] - 1] ^= 0x01;
            n++;
        }
    }
    return n;
}

static void put_keys(engine *e, uint64_t range, tkey *keys, size_t n)
{
    engine_batch *b = engine_batch_new();
    /* insert in a scrambled order */
    for (size_t j = 0; j < n; j++) {
        size_t i = (j * 7) % n;
        seq s = seq_make(100 + i, 0, 1);
        assert_int_equal(engine_batch_put(b, range, keys[i].b, keys[i].len,
                                          &s, keys[i].b, keys[i].len % 37),
                         0);
    }
    assert_int_equal(engine_batch_count(b), n);
    assert_int_equal(engine_write(e, b), 0);
    engine_batch_free(b);
}

/* Every key of a range in order, checked against `want` (sorted). */
static void expect_scan(engine *e, engine_view *v, uint64_t range,
                        const tkey *want, size_t n, unsigned flags)
{
    engine_iter *it;
    assert_int_equal(engine_iter_open(e, v, range, NULL, 0, NULL, 0, 0,
                                      flags, &it), 0);
    engine_entry en;
    size_t i = 0;
    while (engine_iter_next(it, &en) == 1) {
        assert_true(i < n);
        assert_int_equal(en.key_len, want[i].len);
        assert_memory_equal(en.key, want[i].b, en.key_len);
        i++;
    }
    assert_int_equal(i, n);
    engine_iter_close(it);
}

static void test_order_binary_keys(void **state)
{
    fixture *f = *state;
    static tkey keys[64];
    size_t n = make_keys(keys);
    put_keys(f->e, 7, keys, n);
    qsort(keys, n, sizeof keys[0], tkey_cmp);
    expect_scan(f->e, NULL, 7, keys, n, 0);

    /* every key reads back with its own value and sequencer */
    buf val = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        seq s;
        bool tomb = true;
        assert_int_equal(engine_get(f->e, NULL, 7, keys[i].b, keys[i].len,
                                    &s, &tomb, &val), 0);
        assert_false(tomb);
        assert_int_equal(val.len, keys[i].len % 37);
        if (val.len)
            assert_memory_equal(val.data, keys[i].b, val.len);
    }
    /* a prefix or extension of a stored long key is not found */
    assert_int_equal(engine_get(f->e, NULL, 7, keys[n - 1].b, 600, NULL,
                                NULL, &val), CAIRN_ERR_NOT_FOUND);
    buf_free(&val);

    /* order holds after reopen too */
    reopen(f);
    expect_scan(f->e, NULL, 7, keys, n, 0);
}

static void test_empty_and_max_values(void **state)
{
    fixture *f = *state;
    uint8_t *big = malloc(CAIRN_VALUE_MAX);
    for (size_t i = 0; i < CAIRN_VALUE_MAX; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    assert_int_equal(fx_put(f->e, 1, "empty", 5, NULL, 0, 1), 0);
    assert_int_equal(fx_put(f->e, 1, "max", 3, big, CAIRN_VALUE_MAX, 2), 0);
    buf val = BUF_INIT;
    bool tomb;
    seq s;
    assert_int_equal(engine_get(f->e, NULL, 1, "empty", 5, &s, &tomb, &val),
                     0);
    assert_int_equal(val.len, 0);
    assert_false(tomb);
    assert_int_equal(seq_time(&s), 1);
    assert_int_equal(engine_get(f->e, NULL, 1, "max", 3, &s, &tomb, &val),
                     0);
    assert_int_equal(val.len, CAIRN_VALUE_MAX);
    assert_memory_equal(val.data, big, CAIRN_VALUE_MAX);
    /* the same read, the value left in place in the record */
    buf rec = BUF_INIT;
    const uint8_t *v = NULL;
    size_t vlen = 0;
    tomb = true;
    assert_int_equal(engine_get_ref(f->e, NULL, 1, "max", 3, &s, &tomb, &rec,
                                    &v, &vlen), 0);
    assert_false(tomb);
    assert_int_equal(seq_time(&s), 2);
    assert_int_equal(vlen, CAIRN_VALUE_MAX);
    assert_true(v > rec.data && v + vlen == rec.data + rec.len);
    assert_memory_equal(v, big, CAIRN_VALUE_MAX);
    assert_int_equal(engine_get_ref(f->e, NULL, 1, "none", 4, &s, &tomb,
                                    &rec, &v, &vlen), CAIRN_ERR_NOT_FOUND);
    buf_free(&rec);
    engine_iter *it;
    engine_entry en;
    assert_int_equal(engine_iter_open(f->e, NULL, 1, NULL, 0, NULL, 0, 0, 0,
                                      &it), 0);
    assert_int_equal(engine_iter_next(it, &en), 1);
    assert_int_equal(en.value_len, 0);
    assert_int_equal(engine_iter_next(it, &en), 1);
    assert_int_equal(en.value_len, CAIRN_VALUE_MAX);
    assert_memory_equal(en.value, big, CAIRN_VALUE_MAX);
    assert_int_equal(engine_iter_next(it, &en), 0);
    engine_iter_close(it);
    buf_free(&val);
    free(big);
}

static void test_limits(void **state)
{
    fixture *f = *state;
    static uint8_t key[CAIRN_KEY_MAX + 1];
    uint8_t *big = calloc(1, CAIRN_VALUE_MAX + 1);
    seq s = seq_make(5, 0, 1);
    engine_batch *b = engine_batch_new();
    assert_int_equal(engine_batch_put(b, 1, key, 0, &s, "v", 1),
                     CAIRN_ERR_KEY_EMPTY);
    assert_int_equal(engine_batch_put(b, 1, key, CAIRN_KEY_MAX + 1, &s, "v",
                                      1), CAIRN_ERR_KEY_TOOBIG);
    assert_int_equal(engine_batch_tombstone(b, 1, key, 0, &s),
                     CAIRN_ERR_KEY_EMPTY);
    assert_int_equal(engine_batch_tombstone(b, 1, key, CAIRN_KEY_MAX + 1,
                                            &s), CAIRN_ERR_KEY_TOOBIG);
    assert_int_equal(engine_batch_put(b, 1, "k", 1, &s, big,
                                      CAIRN_VALUE_MAX + 1), CAIRN_ERR_TOOBIG);
    assert_int_equal(engine_batch_set_meta(b, 1, big, ENGINE_META_MAX + 1),
                     CAIRN_ERR_TOOBIG);
    /* nothing of the rejected calls entered the batch */
    assert_int_equal(engine_batch_count(b), 0);
    assert_int_equal(engine_write(f->e, b), 0);
    uint64_t *ids;
    size_t nids;
    assert_int_equal(engine_list_ranges(f->e, &ids, &nids), 0);
    assert_int_equal(nids, 0);
    free(ids);
    /* the limits themselves are accepted */
    assert_int_equal(engine_batch_put(b, 1, key, 1, &s, big, CAIRN_VALUE_MAX),
                     0);
    assert_int_equal(engine_batch_put(b, 1, key, CAIRN_KEY_MAX, &s, "v", 1),
                     0);
    assert_int_equal(engine_batch_count(b), 2);
    assert_int_equal(engine_write(f->e, b), 0);
    buf val = BUF_INIT;
    assert_int_equal(engine_get(f->e, NULL, 1, key, 0, NULL, NULL, &val),
                     CAIRN_ERR_KEY_EMPTY);
    assert_int_equal(engine_get(f->e, NULL, 1, key, CAIRN_KEY_MAX + 1, NULL,
                                NULL, &val), CAIRN_ERR_KEY_TOOBIG);
    assert_int_equal(engine_get(f->e, NULL, 1, key, CAIRN_KEY_MAX, NULL,
                                NULL, &val), 0);
    assert_int_equal(val.len, 1);
    engine_iter *it;
    assert_int_equal(engine_iter_open(f->e, NULL, 1, key, CAIRN_KEY_MAX + 1,
                                      NULL, 0, 0, 0, &it),
                     CAIRN_ERR_KEY_TOOBIG);
    engine_batch_clear(b);
    assert_int_equal(engine_batch_count(b), 0);
    engine_batch_free(b);
    buf_free(&val);
    free(big);
}

static void test_tombstones(void **state)
{
    fixture *f = *state;
    assert_int_equal(fx_put_str(f->e, 3, "a", "1", 10), 0);
    assert_int_equal(fx_put_str(f->e, 3, "b", "2", 11), 0);
    assert_int_equal(fx_put_str(f->e, 3, "c", "3", 12), 0);
    engine_batch *b = engine_batch_new();
    seq s = seq_make(20, 4, 9);
    assert_int_equal(engine_batch_tombstone(b, 3, "b", 1, &s), 0);
    assert_int_equal(engine_batch_tombstone(b, 3, "z", 1, &s), 0);
    assert_int_equal(engine_write(f->e, b), 0);
    engine_batch_free(b);

    buf val = BUF_INIT;
    seq got;
    bool tomb = false;
    assert_int_equal(engine_get(f->e, NULL, 3, "b", 1, &got, &tomb, &val), 0);
    assert_true(tomb);
    assert_int_equal(val.len, 0);
    assert_int_equal(seq_cmp(&got, &s), 0);
    assert_int_equal(engine_get(f->e, NULL, 3, "z", 1, &got, &tomb, &val), 0);
    assert_true(tomb);
    assert_int_equal(engine_get(f->e, NULL, 3, "y", 1, &got, &tomb, &val),
                     CAIRN_ERR_NOT_FOUND);
    buf_free(&val);

    tkey live[2] = {{"a", 1}, {"c", 1}};
    tkey all[4] = {{"a", 1}, {"b", 1}, {"c", 1}, {"z", 1}};
    expect_scan(f->e, NULL, 3, live, 2, 0);
    expect_scan(f->e, NULL, 3, all, 4, ENGINE_ITER_TOMBSTONES);

    /* the tombstone flag and sequencer come through the iterator too */
    engine_iter *it;
    engine_entry en;
    assert_int_equal(engine_iter_open(f->e, NULL, 3, "b", 1, "c", 1, 0,
                                      ENGINE_ITER_TOMBSTONES, &it), 0);
    assert_int_equal(engine_iter_next(it, &en), 1);
    assert_true(en.tombstone);
    assert_int_equal(seq_cmp(&en.seq, &s), 0);
    assert_int_equal(engine_iter_next(it, &en), 0);
    engine_iter_close(it);

    /* a put over a tombstone revives the key */
    assert_int_equal(fx_put_str(f->e, 3, "b", "again", 30), 0);
    tkey revived[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
    expect_scan(f->e, NULL, 3, revived, 3, 0);
}

static void put_numbered(engine *e, uint64_t range, int n, uint64_t applied)
{
    engine_batch *b = engine_batch_new();
    char k[16];
    seq s = seq_make(1000, 0, 1);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "k%02d", i);
        assert_int_equal(engine_batch_put(b, range, k, 3, &s, k, 3), 0);
    }
    if (applied)
        assert_int_equal(engine_batch_set_applied(b, range, applied), 0);
    assert_int_equal(engine_write(e, b), 0);
    engine_batch_free(b);
}

static size_t count_range(engine *e, engine_view *v, uint64_t range)
{
    engine_iter *it;
    engine_entry en;
    size_t n = 0;
    assert_int_equal(engine_iter_open(e, v, range, NULL, 0, NULL, 0, 0,
                                      ENGINE_ITER_TOMBSTONES, &it), 0);
    while (engine_iter_next(it, &en) == 1)
        n++;
    engine_iter_close(it);
    return n;
}

static void test_delete_interval(void **state)
{
    fixture *f = *state;
    put_numbered(f->e, 4, 20, 77);
    put_numbered(f->e, 5, 20, 0);
    assert_int_equal(engine_delete_interval(f->e, 4, "k05", 3, "k10", 3), 0);
    assert_int_equal(count_range(f->e, NULL, 4), 15);
    buf val = BUF_INIT;
    assert_int_equal(engine_get(f->e, NULL, 4, "k05", 3, NULL, NULL, &val),
                     CAIRN_ERR_NOT_FOUND);
    assert_int_equal(engine_get(f->e, NULL, 4, "k09", 3, NULL, NULL, &val),
                     CAIRN_ERR_NOT_FOUND);
    assert_int_equal(engine_get(f->e, NULL, 4, "k04", 3, NULL, NULL, &val),
                     0);
    assert_int_equal(engine_get(f->e, NULL, 4, "k10", 3, NULL, NULL, &val),
                     0);
    /* open end and open start */
    assert_int_equal(engine_delete_interval(f->e, 4, "k15", 3, NULL, 0), 0);
    assert_int_equal(engine_delete_interval(f->e, 4, NULL, 0, "k02", 3), 0);
    tkey left[8] = {{"k02", 3}, {"k03", 3}, {"k04", 3}, {"k10", 3},
                    {"k11", 3}, {"k12", 3}, {"k13", 3}, {"k14", 3}};
    expect_scan(f->e, NULL, 4, left, 8, 0);
    /* empty and reversed intervals delete nothing */
    assert_int_equal(engine_delete_interval(f->e, 4, "k12", 3, "k12", 3), 0);
    assert_int_equal(engine_delete_interval(f->e, 4, "k13", 3, "k11", 3), 0);
    assert_int_equal(count_range(f->e, NULL, 4), 8);
    /* the applied index survives, the neighbour range is untouched */
    uint64_t applied;
    assert_int_equal(engine_applied_index(f->e, NULL, 4, &applied), 0);
    assert_int_equal(applied, 77);
    assert_int_equal(count_range(f->e, NULL, 5), 20);
    /* the whole range */
    assert_int_equal(engine_delete_interval(f->e, 4, NULL, 0, NULL, 0), 0);
    assert_int_equal(count_range(f->e, NULL, 4), 0);
    assert_int_equal(engine_applied_index(f->e, NULL, 4, &applied), 0);
    assert_int_equal(applied, 77);
    buf_free(&val);
}

static void test_batch_interval_delete_in_order(void **state)
{
    fixture *f = *state;
    put_numbered(f->e, 4, 10, 1);
    engine_batch *b = engine_batch_new();
    seq s = seq_make(5000, 0, 1);
    assert_int_equal(engine_batch_put(b, 4, "k03x", 4, &s, "gone", 4), 0);
    assert_int_equal(engine_batch_delete_interval(b, 4, "k02", 3, "k08", 3),
                     0);
    assert_int_equal(engine_batch_put(b, 4, "k05", 3, &s, "kept", 4), 0);
    assert_int_equal(engine_batch_delete_interval(b, 4, "k09", 3, NULL, 0),
                     0);
    assert_int_equal(engine_batch_delete_interval(b, 4, "k1", 2, "k0", 2), 0);
    assert_int_equal(engine_batch_delete_interval(b, 4, NULL, 0, "k01", 3),
                     0);
    assert_int_equal(engine_batch_set_applied(b, 4, 2), 0);
    assert_int_equal(engine_batch_delete_interval(b, 4, "k", CAIRN_KEY_MAX + 1,
                                                  NULL, 0),
                     CAIRN_ERR_KEY_TOOBIG);
    assert_int_equal(engine_batch_count(b), 2); /* puts only */
    engine_view *before;
    assert_int_equal(engine_view_open(f->e, &before), 0);
    assert_int_equal(engine_write(f->e, b), 0);
    engine_batch_free(b);
    tkey left[4] = {{"k01", 3}, {"k05", 3}, {"k08", 3}};
    expect_scan(f->e, NULL, 4, left, 3, 0);
    buf val = BUF_INIT;
    assert_int_equal(engine_get(f->e, NULL, 4, "k05", 3, NULL, NULL, &val),
                     0);
    assert_memory_equal(val.data, "kept", 4);
    uint64_t applied, bytes, keys;
    assert_int_equal(engine_applied_index(f->e, NULL, 4, &applied), 0);
    assert_int_equal(applied, 2);
    assert_int_equal(engine_range_stats(f->e, 4, &bytes, &keys), 0);
    assert_int_equal(keys, 3);
    assert_int_equal(bytes, 3 * (3 + ENGINE_REC_HDR + 3) + 1);
    /* all of it or none of it: a view from before sees none */
    assert_int_equal(count_range(f->e, before, 4), 10);
    assert_int_equal(engine_applied_index(f->e, before, 4, &applied), 0);
    assert_int_equal(applied, 1);
    engine_view_close(before);
    buf_free(&val);
}

static void test_delete_interval_long_keys(void **state)
{
    fixture *f = *state;
    static tkey keys[64];
    size_t n = make_keys(keys);
    put_keys(f->e, 9, keys, n);
    qsort(keys, n, sizeof keys[0], tkey_cmp);
    /* delete the middle third, bounded by stored long keys */
    size_t lo = n / 3, hi = 2 * n / 3;
    assert_int_equal(engine_delete_interval(f->e, 9, keys[lo].b, keys[lo].len,
                                            keys[hi].b, keys[hi].len), 0);
    static tkey left[64];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (i < lo || i >= hi)
            left[m++] = keys[i];
    expect_scan(f->e, NULL, 9, left, m, 0);
    /* re-inserting a deleted long key works (buckets were cleaned or kept
     * consistently) */
    put_keys(f->e, 9, keys + lo, 1);
    uint64_t bytes, nkeys;
    assert_int_equal(engine_range_stats(f->e, 9, &bytes, &nkeys), 0);
    assert_int_equal(nkeys, m + 1);
    assert_int_equal(engine_drop_range(f->e, 9), 0);
    assert_int_equal(count_range(f->e, NULL, 9), 0);
}

static void setup_three_ranges(engine *e, uint64_t r)
{
    for (uint64_t id = r - 1; id <= r + 1; id++) {
        put_numbered(e, id, 10, 100 + id);
        engine_batch *b = engine_batch_new();
        assert_int_equal(engine_batch_set_meta(b, id, "meta", 4), 0);
        assert_int_equal(engine_write(e, b), 0);
        engine_batch_free(b);
    }
}

static void check_range_present(engine *e, uint64_t id)
{
    uint64_t applied;
    buf meta = BUF_INIT;
    assert_int_equal(count_range(e, NULL, id), 10);
    assert_int_equal(engine_applied_index(e, NULL, id, &applied), 0);
    assert_int_equal(applied, 100 + id);
    assert_int_equal(engine_get_meta(e, NULL, id, &meta), 0);
    assert_int_equal(meta.len, 4);
    buf_free(&meta);
}

static void test_drop_range(void **state)
{
    fixture *f = *state;
    uint64_t r = 0x100; /* neighbours differ in the last prefix byte */
    setup_three_ranges(f->e, r);
    setup_three_ranges(f->e, 0x1ff);
    assert_int_equal(engine_drop_range(f->e, r), 0);
    assert_int_equal(engine_drop_range(f->e, 0x1ff), 0);
    uint64_t applied = 1;
    buf meta = BUF_INIT;
    assert_int_equal(count_range(f->e, NULL, r), 0);
    assert_int_equal(engine_applied_index(f->e, NULL, r, &applied), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(engine_get_meta(f->e, NULL, r, &meta),
                     CAIRN_ERR_NOT_FOUND);
    uint64_t bytes, keys;
    assert_int_equal(engine_range_stats(f->e, r, &bytes, &keys), 0);
    assert_int_equal(keys, 0);
    check_range_present(f->e, r - 1);
    check_range_present(f->e, r + 1);
    check_range_present(f->e, 0x1fe);
    check_range_present(f->e, 0x200);
    uint64_t *ids;
    size_t n;
    assert_int_equal(engine_list_ranges(f->e, &ids, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], r - 1);
    assert_int_equal(ids[1], r + 1);
    assert_int_equal(ids[2], 0x1fe);
    assert_int_equal(ids[3], 0x200);
    free(ids);
    /* dropping an unknown range is fine; a dropped range can be reused */
    assert_int_equal(engine_drop_range(f->e, 12345), 0);
    put_numbered(f->e, r, 3, 5);
    assert_int_equal(count_range(f->e, NULL, r), 3);
    buf_free(&meta);
}

static void test_extreme_range_ids(void **state)
{
    fixture *f = *state;
    put_numbered(f->e, 0, 5, 1);
    put_numbered(f->e, UINT64_MAX, 6, 2);
    put_numbered(f->e, UINT64_MAX - 1, 7, 3);
    assert_int_equal(count_range(f->e, NULL, 0), 5);
    assert_int_equal(count_range(f->e, NULL, UINT64_MAX), 6);
    assert_int_equal(count_range(f->e, NULL, UINT64_MAX - 1), 7);
    uint64_t *ids;
    size_t n;
    assert_int_equal(engine_list_ranges(f->e, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_true(ids[0] == 0 && ids[1] == UINT64_MAX - 1 &&
                ids[2] == UINT64_MAX);
    free(ids);
    assert_int_equal(engine_drop_range(f->e, UINT64_MAX), 0);
    assert_int_equal(count_range(f->e, NULL, UINT64_MAX), 0);
    assert_int_equal(count_range(f->e, NULL, UINT64_MAX - 1), 7);
    assert_int_equal(engine_delete_interval(f->e, UINT64_MAX - 1, "k03", 3,
                                            NULL, 0), 0);
    assert_int_equal(count_range(f->e, NULL, UINT64_MAX - 1), 3);
}

/* Keys in [start, end) with a limit, as a string of first letters. */
static void expect_window(engine *e, const char *start, const char *end,
                          size_t limit, const char *want)
{
    engine_iter *it;
    engine_entry en;
    assert_int_equal(engine_iter_open(e, NULL, 2, start, strlen(start), end,
                                      strlen(end), limit, 0, &it), 0);
    char got[32];
    size_t n = 0;
    while (engine_iter_next(it, &en) == 1 && n < sizeof got - 1)
        got[n++] = (char)en.key[0];
    got[n] = '\0';
    assert_string_equal(got, want);
    assert_int_equal(engine_iter_next(it, &en), 0); /* stays at the end */
    engine_iter_close(it);
}

static void test_iter_bounds_and_limit(void **state)
{
    fixture *f = *state;
    const char *keys[] = {"a", "b", "bb", "c", "d", "e"};
    for (int i = 0; i < 6; i++)
        assert_int_equal(fx_put_str(f->e, 2, keys[i], "v", 1), 0);
    assert_int_equal(fx_put_str(f->e, 1, "zz", "other range", 1), 0);
    assert_int_equal(fx_put(f->e, 3, "\x00", 1, "other", 5, 1), 0);
    expect_window(f->e, "", "", 0, "abbcde");
    expect_window(f->e, "b", "d", 0, "bbc"); /* start in, end out */
    expect_window(f->e, "ba", "c", 0, "b");  /* "bb" only */
    expect_window(f->e, "", "b", 0, "a");
    expect_window(f->e, "c", "", 0, "cde");
    expect_window(f->e, "", "", 2, "ab");
    expect_window(f->e, "b", "", 1, "b");
    expect_window(f->e, "f", "", 0, "");
    expect_window(f->e, "", "\x01", 0, "");
    expect_window(f->e, "c", "c", 0, "");
}

static void test_view_is_consistent(void **state)
{
    fixture *f = *state;
    put_numbered(f->e, 6, 10, 10);
    engine_view *v;
    assert_int_equal(engine_view_open(f->e, &v), 0);
    engine_iter *it;
    engine_entry en;
    assert_int_equal(engine_iter_open(f->e, NULL, 6, NULL, 0, NULL, 0, 0, 0,
                                      &it), 0);
    assert_int_equal(engine_iter_next(it, &en), 1);

    /* writes continue: overwrite, delete, add, move the applied index */
    assert_int_equal(fx_put_str(f->e, 6, "k00", "new", 2000), 0);
    assert_int_equal(engine_delete_interval(f->e, 6, "k05", 3, NULL, 0), 0);
    put_numbered(f->e, 6, 2, 11);
    assert_int_equal(fx_put_str(f->e, 6, "k99", "new", 2000), 0);

    /* the view still sees the old state */
    assert_int_equal(count_range(f->e, v, 6), 10);
    buf val = BUF_INIT;
    assert_int_equal(engine_get(f->e, v, 6, "k00", 3, NULL, NULL, &val), 0);
    assert_memory_equal(val.data, "k00", 3);
    assert_int_equal(engine_get(f->e, v, 6, "k99", 3, NULL, NULL, &val),
                     CAIRN_ERR_NOT_FOUND);
    uint64_t applied;
    assert_int_equal(engine_applied_index(f->e, v, 6, &applied), 0);
    assert_int_equal(applied, 10);
    /* the iterator opened before the writes too */
    size_t n = 1;
    while (engine_iter_next(it, &en) == 1)
        n++;
    assert_int_equal(n, 10);
    engine_iter_close(it);
    /* the latest state has moved on */
    assert_int_equal(count_range(f->e, NULL, 6), 6);
    assert_int_equal(engine_get(f->e, NULL, 6, "k00", 3, NULL, NULL, &val),
                     0);
    assert_memory_equal(val.data, "k00", 3); /* put_numbered rewrote it */
    assert_int_equal(engine_applied_index(f->e, NULL, 6, &applied), 0);
    assert_int_equal(applied, 11);
    engine_view_close(v);
    buf_free(&val);
}

/* A writer thread commits batches that set keys "a" and "b" and the
 * applied index to i; readers on the main thread must always find the three
 * equal, in a view and through an iterator, while the writes continue. */
#define MT_BATCHES 200

static void *mt_writer(void *arg)
{
    engine *e = arg;
    engine_batch *b = engine_batch_new();
    for (uint64_t i = 1; i <= MT_BATCHES; i++) {
        uint8_t v[8];
        be_put_u64(v, i);
        seq s = seq_make(i, 0, 1);
        engine_batch_clear(b);
        engine_batch_put(b, 20, "a", 1, &s, v, 8);
        engine_batch_put(b, 20, "b", 1, &s, v, 8);
        engine_batch_set_applied(b, 20, i);
        if (engine_write(e, b) != 0)
            break;
    }
    engine_batch_free(b);
    return NULL;
}

static uint64_t mt_read_view(engine *e)
{
    engine_view *v;
    assert_int_equal(engine_view_open(e, &v), 0);
    uint64_t applied;
    assert_int_equal(engine_applied_index(e, v, 20, &applied), 0);
    engine_iter *it;
    engine_entry en;
    assert_int_equal(engine_iter_open(e, v, 20, NULL, 0, NULL, 0, 0, 0, &it),
                     0);
    size_t n = 0;
    while (engine_iter_next(it, &en) == 1) {
        assert_int_equal(en.value_len, 8);
        assert_int_equal(be_get_u64(en.value), applied);
        n++;
    }
    assert_int_equal(n, applied ? 2 : 0);
    engine_iter_close(it);
    engine_view_close(v);
    return applied;
}

static void test_reads_while_another_thread_writes(void **state)
{
    fixture *f = *state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, mt_writer, f->e), 0);
    uint64_t last = 0;
    size_t reads = 0;
    time_t deadline = time(NULL) + 60; /* a failed writer must not hang us */
    while (last < MT_BATCHES) {
        assert_true(time(NULL) < deadline);
        uint64_t now = mt_read_view(f->e);
        assert_true(now >= last); /* never goes back */
        last = now;
        reads++;
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(reads >= 1);
}

static void test_applied_and_meta(void **state)
{
    fixture *f = *state;
    uint64_t applied = 99;
    buf meta = BUF_INIT;
    assert_int_equal(engine_applied_index(f->e, NULL, 8, &applied), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(engine_get_meta(f->e, NULL, 8, &meta),
                     CAIRN_ERR_NOT_FOUND);

    /* last call wins within a batch; both land with the data */
    engine_batch *b = engine_batch_new();
    seq s = seq_make(1, 0, 1);
    assert_int_equal(engine_batch_set_applied(b, 8, 5), 0);
    assert_int_equal(engine_batch_set_meta(b, 8, "first", 5), 0);
    assert_int_equal(engine_batch_put(b, 8, "x", 1, &s, "1", 1), 0);
    assert_int_equal(engine_batch_set_applied(b, 8, 6), 0);
    assert_int_equal(engine_batch_set_meta(b, 8, "second", 6), 0);
    assert_int_equal(engine_batch_set_applied(b, 10, 42), 0);
    engine_view *before;
    assert_int_equal(engine_view_open(f->e, &before), 0);
    assert_int_equal(engine_write(f->e, b), 0);
    engine_batch_free(b);
    assert_int_equal(engine_applied_index(f->e, NULL, 8, &applied), 0);
    assert_int_equal(applied, 6);
    assert_int_equal(engine_get_meta(f->e, NULL, 8, &meta), 0);
    assert_int_equal(meta.len, 6);
    assert_memory_equal(meta.data, "second", 6);
    assert_int_equal(engine_applied_index(f->e, NULL, 10, &applied), 0);
    assert_int_equal(applied, 42);
    /* a view from before saw none of it */
    assert_int_equal(engine_applied_index(f->e, before, 8, &applied), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(count_range(f->e, before, 8), 0);
    engine_view_close(before);

    /* setting only one of them keeps the other */
    b = engine_batch_new();
    assert_int_equal(engine_batch_set_applied(b, 8, 7), 0);
    assert_int_equal(engine_write(f->e, b), 0);
    engine_batch_clear(b);
    assert_int_equal(engine_batch_set_meta(b, 8, "", 0), 0);
    assert_int_equal(engine_write(f->e, b), 0);
    engine_batch_free(b);
    assert_int_equal(engine_applied_index(f->e, NULL, 8, &applied), 0);
    assert_int_equal(applied, 7);
    assert_int_equal(engine_get_meta(f->e, NULL, 8, &meta), 0);
    assert_int_equal(meta.len, 0);
    /* the range record is not a user key */
    assert_int_equal(count_range(f->e, NULL, 8), 1);
    assert_int_equal(count_range(f->e, NULL, 10), 0);
    buf_free(&meta);
}

static void test_list_ranges(void **state)
{
    fixture *f = *state;
    uint64_t *ids;
    size_t n;
    assert_int_equal(engine_list_ranges(f->e, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
    uint64_t want[] = {1, 2, 300, 1ull << 40, 1ull << 63};
    for (int i = 4; i >= 0; i--)
        put_numbered(f->e, want[i], 3, 1);
    put_numbered(f->e, 77, 3, 0); /* data only: not listed */
    engine_batch *b = engine_batch_new();
    assert_int_equal(engine_batch_set_meta(b, 500, "m", 1), 0);
    assert_int_equal(engine_write(f->e, b), 0);
    engine_batch_free(b);
    assert_int_equal(engine_list_ranges(f->e, &ids, &n), 0);
    assert_int_equal(n, 6);
    uint64_t expect[] = {1, 2, 300, 500, 1ull << 40, 1ull << 63};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], expect[i]);
    free(ids);
}

static void test_stats_and_split_key(void **state)
{
    fixture *f = *state;
    uint64_t bytes, keys;
    buf key = BUF_INIT;
    assert_int_equal(engine_range_stats(f->e, 11, &bytes, &keys), 0);
    assert_int_equal(keys, 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(engine_split_key(f->e, 11, &key), CAIRN_ERR_NOT_FOUND);
    assert_int_equal(fx_put_str(f->e, 11, "only", "v", 1), 0);
    assert_int_equal(engine_split_key(f->e, 11, &key), CAIRN_ERR_NOT_FOUND);

    /* 1000 keys of 100-byte values; each record is 5 + ENGINE_REC_HDR + 100 bytes */
    engine_batch *b = engine_batch_new();
    uint8_t val[100];
    memset(val, 'v', sizeof val);
    char k[16];
    seq s = seq_make(1, 0, 1);
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "%05d", i);
        assert_int_equal(engine_batch_put(b, 12, k, 5, &s, val, sizeof val),
                         0);
    }
    assert_int_equal(engine_write(f->e, b), 0);
    /* overwrites do not count twice */
    assert_int_equal(engine_write(f->e, b), 0);
    engine_batch_free(b);
    assert_int_equal(engine_range_stats(f->e, 12, &bytes, &keys), 0);
    assert_int_equal(keys, 1000);
    assert_int_equal(bytes, 1000 * (5 + ENGINE_REC_HDR + 100));
    /* the neighbour's one key is not counted here */
    assert_int_equal(engine_range_stats(f->e, 11, &bytes, &keys), 0);
    assert_int_equal(keys, 1);

    assert_int_equal(engine_split_key(f->e, 12, &key), 0);
    assert_int_equal(key.len, 5);
    assert_memory_equal(key.data, "00500", 5);

    /* tombstones count; interval deletes subtract */
    assert_int_equal(engine_delete_interval(f->e, 12, "00500", 5, NULL, 0),
                     0);
    assert_int_equal(engine_range_stats(f->e, 12, &bytes, &keys), 0);
    assert_int_equal(keys, 500);
    assert_int_equal(bytes, 500 * (5 + ENGINE_REC_HDR + 100));
    assert_int_equal(engine_split_key(f->e, 12, &key), 0);
    assert_memory_equal(key.data, "00250", 5);

    /* two keys: the split is the second, so both halves hold one */
    assert_int_equal(engine_delete_interval(f->e, 12, "00002", 5, NULL, 0),
                     0);
    assert_int_equal(engine_split_key(f->e, 12, &key), 0);
    assert_memory_equal(key.data, "00001", 5);
    buf_free(&key);
}

/* Past RocksDB's exact-count sample: stats stay sane, exact for LMDB; the
 * split key stays near the middle. */
static void test_stats_large_range(void **state)
{
    fixture *f = *state;
    const int n = 25000;
    engine_batch *b = engine_batch_new();
    uint8_t val[64];
    memset(val, 'x', sizeof val);
    char k[16];
    seq s = seq_make(1, 0, 1);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "%06d", i);
        assert_int_equal(engine_batch_put(b, 14, k, 6, &s, val, sizeof val),
                         0);
    }
    assert_int_equal(engine_write(f->e, b), 0);
    engine_batch_free(b);
    uint64_t bytes, keys, rec = 6 + ENGINE_REC_HDR + 64;
    assert_int_equal(engine_range_stats(f->e, 14, &bytes, &keys), 0);
    if (f->kind == ENGINE_BTREE) {
        assert_int_equal(keys, n);
        assert_int_equal(bytes, n * rec);
    } else {
        /* all in the memtable: the documented lower bound, never more
         * than twice the truth */
        assert_true(keys >= 10000 && keys <= 2 * (uint64_t)n);
        assert_true(bytes >= 10000 * rec && bytes <= 2 * n * rec);
    }
    buf key = BUF_INIT;
    assert_int_equal(engine_split_key(f->e, 14, &key), 0);
    assert_int_equal(key.len, 6);
    assert_memory_equal(key.data, "012500", 6);
    buf_free(&key);
}

static void test_reopen_after_close(void **state)
{
    fixture *f = *state;
    put_numbered(f->e, 13, 20, 55);
    engine_batch *b = engine_batch_new();
    seq s = seq_make(3, 0, 1);
    assert_int_equal(engine_batch_tombstone(b, 13, "k03", 3, &s), 0);
    assert_int_equal(engine_batch_set_meta(b, 13, "epoch=4", 7), 0);
    assert_int_equal(engine_write(f->e, b), 0);
    engine_batch_free(b);
    assert_int_equal(engine_sync(f->e), 0);
    reopen(f);
    reopen(f); /* twice: reopen of a reopened store */
    uint64_t applied;
    assert_int_equal(engine_applied_index(f->e, NULL, 13, &applied), 0);
    assert_int_equal(applied, 55);
    buf val = BUF_INIT;
    bool tomb;
    assert_int_equal(engine_get_meta(f->e, NULL, 13, &val), 0);
    assert_memory_equal(val.data, "epoch=4", 7);
    assert_int_equal(engine_get(f->e, NULL, 13, "k03", 3, NULL, &tomb, &val),
                     0);
    assert_true(tomb);
    assert_int_equal(count_range(f->e, NULL, 13), 20);
    uint64_t bytes, keys;
    assert_int_equal(engine_range_stats(f->e, 13, &bytes, &keys), 0);
    assert_int_equal(keys, 20);
    buf_free(&val);
}

static void test_kind_names(void **state)
{
    (void)state;
    engine_kind k;
    assert_int_equal(engine_kind_parse("btree", &k), 0);
    assert_int_equal(k, ENGINE_BTREE);
    assert_int_equal(engine_kind_parse("lsm", &k), 0);
    assert_int_equal(k, ENGINE_LSM);
    assert_int_equal(engine_kind_parse("hash", &k), CAIRN_ERR_INVALID);
    assert_string_equal(engine_kind_name(ENGINE_BTREE), "btree");
    assert_string_equal(engine_kind_name(ENGINE_LSM), "lsm");
}

static void test_open_errors(void **state)
{
    (void)state;
    char dir[256], file[300];
    fx_tmpdir(dir, "open");
    engine *e = NULL;
    assert_int_equal(engine_open((engine_kind)7, dir, NULL, &e),
                     CAIRN_ERR_INVALID);
    /* a regular file where the store's directory should be */
    snprintf(file, sizeof file, "%s/file", dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_true(engine_open(ENGINE_BTREE, file, NULL, &e) < 0);
    assert_true(engine_open(ENGINE_LSM, file, NULL, &e) < 0);
    /* nested directories are created */
    snprintf(file, sizeof file, "%s/a/b/c", dir);
    assert_int_equal(engine_open(ENGINE_BTREE, file, NULL, &e), 0);
    engine_close(e);
    fx_rmtree(dir);
}

/* LMDB only: a write that does not fit the map fails whole, and the store
 * stays usable with everything written before. */
static void test_lmdb_map_full_fails_whole(void **state)
{
    (void)state;
    char dir[256];
    fx_tmpdir(dir, "mapfull");
    engine_options o = {.lmdb_map_size = 4u << 20};
    engine *e;
    assert_int_equal(engine_open(ENGINE_BTREE, dir, &o, &e), 0);
    uint8_t *val = calloc(1, CAIRN_VALUE_MAX);
    engine_batch *b = engine_batch_new();
    seq s = seq_make(1, 0, 1);
    uint64_t i, applied;
    int rc = 0;
    for (i = 1; i < 100 && rc == 0; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%02u", (unsigned)i);
        engine_batch_clear(b);
        engine_batch_put(b, 1, k, 3, &s, val, CAIRN_VALUE_MAX);
        engine_batch_set_applied(b, 1, i);
        rc = engine_write(e, b);
    }
    assert_int_equal(rc, CAIRN_ERR_ENGINE);
    uint64_t failed = i - 1;
    assert_int_equal(engine_applied_index(e, NULL, 1, &applied), 0);
    assert_int_equal(applied, failed - 1);
    assert_int_equal(count_range(e, NULL, 1), failed - 1);
    /* small writes still fit after deleting */
    assert_int_equal(engine_delete_interval(e, 1, NULL, 0, NULL, 0), 0);
    assert_int_equal(fx_put_str(e, 1, "x", "y", 2), 0);
    assert_int_equal(count_range(e, NULL, 1), 1);
    engine_batch_free(b);
    free(val);
    engine_close(e);
    fx_rmtree(dir);
}

static engine_kind btree = ENGINE_BTREE, lsm = ENGINE_LSM;

#define ONE(fn, kind)                                                         \
    cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, &kind)
#define BOTH(fn) ONE(fn, btree), ONE(fn, lsm)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_lmdb_map_full_fails_whole),
        BOTH(test_order_binary_keys),
        BOTH(test_empty_and_max_values),
        BOTH(test_limits),
        BOTH(test_tombstones),
        BOTH(test_delete_interval),
        BOTH(test_batch_interval_delete_in_order),
        BOTH(test_delete_interval_long_keys),
        BOTH(test_drop_range),
        BOTH(test_extreme_range_ids),
        BOTH(test_iter_bounds_and_limit),
        BOTH(test_view_is_consistent),
        BOTH(test_reads_while_another_thread_writes),
        BOTH(test_applied_and_meta),
        BOTH(test_list_ranges),
        BOTH(test_stats_and_split_key),
        BOTH(test_stats_large_range),
        BOTH(test_reopen_after_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
