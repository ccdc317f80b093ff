/* Tests for src/replication/entry.h: the log entry codec, applying entries
 * to a real index store (conditions evaluated at apply time, applied index
 * in the same batch), range meta, and snapshots round-tripping between two
 * stores. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "replication/entry.h"

typedef struct fix {
    char dir[64];
    engine *e;
    engine_batch *b;
    seq_clock *clock;
} fix;

static int setup(void **state)
{
    fix *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/cairn-test-entry-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(engine_open(ENGINE_BTREE, f->dir, NULL, &f->e), 0);
    f->b = engine_batch_new();
    f->clock = seq_clock_new(1, NULL, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix *f = *state;
    char cmd[128];
    engine_batch_free(f->b);
    engine_close(f->e);
    seq_clock_free(f->clock);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static entry_op put_op(const char *k, const char *v, seq s)
{
    entry_op op = {.kind = ENTRY_OP_PUT, .seq = s,
                   .key = (const uint8_t *)k, .key_len = strlen(k),
                   .value = (const uint8_t *)v, .value_len = strlen(v)};
    return op;
}

/* Encode ops as one padded entry. */
static void encode(buf *out, const entry_op *ops, size_t n)
{
    buf_reset(out);
    assert_int_equal(entry_put_header(out, 7, 9, (uint32_t)n), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(entry_put_op(out, &ops[i]), 0);
    assert_int_equal(entry_pad(out), 0);
    assert_int_equal(out->len % 8, 0);
}

static void assert_value(fix *f, const char *k, const char *want)
{
    seq s;
    bool tomb = false;
    buf v = BUF_INIT;
    int rc = engine_get(f->e, NULL, 1, k, strlen(k), &s, &tomb, &v);
    if (want == NULL) {
        assert_true(rc == CAIRN_ERR_NOT_FOUND || (rc == 0 && tomb));
    } else {
        assert_int_equal(rc, 0);
        assert_false(tomb);
        assert_int_equal(v.len, strlen(want));
        assert_memory_equal(v.data, want, v.len);
    }
    buf_free(&v);
}

static void test_codec_round_trip_and_corruption(void **state)
{
    (void)state;
    buf e = BUF_INIT;
    entry_op ops[2] = {put_op("a", "1", seq_make(10, 0, 1)),
                       put_op("bb", "22", seq_make(11, 0, 1))};
    ops[1].cond = ENTRY_COND_IFSEQ;
    ops[1].cond_seq = seq_make(5, 0, 1);
    encode(&e, ops, 2);
    entry_reader r;
    entry_op op;
    assert_int_equal(entry_parse(e.data, e.len, &r), 0);
    assert_int_equal(r.nonce, 7);
    assert_int_equal(r.proposal, 9);
    assert_int_equal(r.n_ops, 2);
    assert_int_equal(entry_next(&r, &op), 1);
    assert_int_equal(op.key_len, 1);
    assert_int_equal(entry_next(&r, &op), 1);
    assert_int_equal(op.cond, ENTRY_COND_IFSEQ);
    assert_int_equal(seq_time(&op.cond_seq), 5);
    assert_memory_equal(op.value, "22", 2);
    assert_int_equal(entry_next(&r, &op), 0);
    /* every truncation, and non-zero padding, is refused */
    for (size_t n = 0; n + 8 <= e.len; n++)
        assert_int_equal(entry_parse(e.data, n, &r), CAIRN_ERR_CORRUPT);
    e.data[e.len - 1] = 1;
    assert_int_equal(entry_parse(e.data, e.len, &r), CAIRN_ERR_CORRUPT);
    buf_free(&e);
}

static void test_apply_sets_applied_index_and_conditions(void **state)
{
    fix *f = *state;
    buf e = BUF_INIT;
    entry_result res[4];
    seq s1 = seq_make(100, 0, 1), s2 = seq_make(101, 0, 1);
    entry_op ops[4] = {put_op("k", "v1", s1), put_op("k", "v2", s2),
                       put_op("n", "x", seq_make(102, 0, 1)),
                       put_op("k", "v3", seq_make(103, 0, 1))};
    /* IFSEQ sees the earlier op of the same entry (s2), IFABSENT on a new
     * key succeeds, IFSEQ with a stale sequencer fails */
    ops[1].cond = ENTRY_COND_IFSEQ;
    ops[1].cond_seq = s1;
    ops[2].cond = ENTRY_COND_IFABSENT;
    ops[3].cond = ENTRY_COND_IFSEQ;
    ops[3].cond_seq = s1;
    encode(&e, ops, 4);
    assert_int_equal(entry_apply(f->e, f->b, 1, 5, e.data, e.len, res,
                                 f->clock), 0);
    assert_int_equal(res[0].status, 0);
    assert_int_equal(res[1].status, 0);
    assert_int_equal(res[2].status, 0);
    assert_int_equal(res[3].status, CAIRN_ERR_CONDITION);
    assert_value(f, "k", "v2");
    assert_value(f, "n", "x");
    uint64_t applied;
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &applied), 0);
    assert_int_equal(applied, 5);
    /* the clock moved past every applied sequencer (seq.h rule 3) */
    seq next = seq_next(f->clock);
    assert_true(seq_cmp(&next, &ops[3].seq) > 0);

    /* IFABSENT: an existing key fails, a tombstoned key counts as absent */
    entry_op del = {.kind = ENTRY_OP_DEL, .seq = seq_make(200, 0, 1),
                    .key = (const uint8_t *)"n", .key_len = 1};
    entry_op again = put_op("n", "y", seq_make(201, 0, 1));
    again.cond = ENTRY_COND_IFABSENT;
    entry_op both[2] = {again, del};
    encode(&e, both, 2);
    assert_int_equal(entry_apply(f->e, f->b, 1, 6, e.data, e.len, res, NULL),
                     0);
    assert_int_equal(res[0].status, CAIRN_ERR_CONDITION);
    assert_value(f, "n", NULL);
    encode(&e, &again, 1);
    assert_int_equal(entry_apply(f->e, f->b, 1, 7, e.data, e.len, res, NULL),
                     0);
    assert_int_equal(res[0].status, 0);
    assert_value(f, "n", "y");
    buf_free(&e);
}

/* IFNEWER (a record copied by a move): it lands on an absent key and over
 * an older record, never over a newer one - tombstones count both ways -
 * and copying the same record twice changes nothing. */
static void test_ifnewer_lands_only_over_older_records(void **state)
{
    fix *f = *state;
    buf e = BUF_INIT;
    entry_result res[5];
    /* what the destination holds: a at 10, b at 30, c deleted at 30 */
    entry_op have[3] = {put_op("a", "new-a", seq_make(10, 0, 1)),
                        put_op("b", "new-b", seq_make(30, 0, 1)),
                        {.kind = ENTRY_OP_DEL, .seq = seq_make(30, 0, 1),
                         .key = (const uint8_t *)"c", .key_len = 1}};
    encode(&e, have, 3);
    assert_int_equal(entry_apply(f->e, f->b, 1, 1, e.data, e.len, res, NULL),
                     0);
    /* copies: a older than a's, b newer, c older than its tombstone, d new,
     * and a tombstone newer than a */
    entry_op copy[5] = {put_op("a", "old-a", seq_make(5, 0, 2)),
                        put_op("b", "copy-b", seq_make(31, 0, 2)),
                        put_op("c", "copy-c", seq_make(25, 0, 2)),
                        put_op("d", "copy-d", seq_make(7, 0, 2)),
                        {.kind = ENTRY_OP_DEL, .seq = seq_make(40, 0, 2),
                         .key = (const uint8_t *)"b", .key_len = 1}};
    for (int i = 0; i < 5; i++)
        copy[i].cond = ENTRY_COND_IFNEWER;
    encode(&e, copy, 5);
    assert_int_equal(entry_apply(f->e, f->b, 1, 2, e.data, e.len, res, NULL),
                     0);
    assert_int_equal(res[0].status, CAIRN_ERR_CONDITION); /* 5 < 10 */
    assert_int_equal(res[1].status, 0);                   /* 31 > 30 */
    assert_int_equal(res[2].status, CAIRN_ERR_CONDITION); /* tombstone 30 */
    assert_int_equal(res[3].status, 0);                   /* absent */
    assert_int_equal(res[4].status, 0); /* sees op 1 of the same entry */
    assert_value(f, "a", "new-a");
    assert_value(f, "b", NULL);
    assert_value(f, "c", NULL);
    assert_value(f, "d", "copy-d");
    /* the same copy again: every op is now as old as what is there */
    assert_int_equal(entry_apply(f->e, f->b, 1, 3, e.data, e.len, res, NULL),
                     0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(res[i].status, CAIRN_ERR_CONDITION);
    assert_value(f, "d", "copy-d");
    assert_value(f, "b", NULL);
    /* a condition word beyond IFNEWER is a corrupt entry */
    copy[0].cond = ENTRY_COND_IFNEWER + 1;
    encode(&e, copy, 1);
    entry_reader r;
    assert_int_equal(entry_parse(e.data, e.len, &r), CAIRN_ERR_CORRUPT);
    buf_free(&e);
}

/* A batch of thousands of conditional ops (a move's copy) over keys
 * repeated within it: each condition sees the latest pending op of its
 * key (looked up by hash, not by scanning the batch). */
static void test_big_conditional_batch_sees_pending_ops(void **state)
{
    fix *f = *state;
    enum { KEYS = 1500 };
    static char names[KEYS][16];
    entry_applier *a = entry_applier_new(f->e, 1, 0);
    entry_result *res = calloc(KEYS, sizeof *res);
    entry_op *ops = calloc(KEYS, sizeof *ops);
    buf e = BUF_INIT;
    /* round r writes every key with seq r*KEYS + i, as IFNEWER: rounds 0
     * and 2 land, round 1 (older sequencers than round 0's) does not */
    const uint64_t base[3] = {2 * KEYS, KEYS, 4 * KEYS};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < KEYS; i++) {
            snprintf(names[i], sizeof names[i], "key%05d", i);
            ops[i] = put_op(names[i], round == 1 ? "old" : "new",
                            seq_make(base[round] + (uint64_t)i, 0, 1));
            ops[i].cond = ENTRY_COND_IFNEWER;
        }
        encode(&e, ops, KEYS);
        assert_int_equal(entry_applier_add(a, (uint64_t)round + 1, e.data,
                                           e.len, res, NULL), 0);
        for (int i = 0; i < KEYS; i++)
            assert_int_equal(res[i].status,
                             round == 1 ? CAIRN_ERR_CONDITION : 0);
    }
    /* IFSEQ on round 2's sequencer, still pending: lands */
    ops[0] = put_op(names[7], "cas", seq_make(9 * KEYS, 0, 1));
    ops[0].cond = ENTRY_COND_IFSEQ;
    ops[0].cond_seq = seq_make(base[2] + 7, 0, 1);
    encode(&e, ops, 1);
    assert_int_equal(entry_applier_add(a, 4, e.data, e.len, res, NULL), 0);
    assert_int_equal(res[0].status, 0);
    assert_int_equal(entry_applier_flush(a), 0);
    assert_value(f, "key00007", "cas");
    assert_value(f, "key01499", "new");
    entry_applier_free(a);
    free(res);
    free(ops);
    buf_free(&e);
}

/* Ops whose key left the range (a split applied after they were proposed)
 * are refused as they apply, the others of the same entry applied; the
 * entry still moves the applied index. */
static void test_applier_refuses_keys_outside_its_bounds(void **state)
{
    fix *f = *state;
    buf e = BUF_INIT;
    entry_result res[3];
    range_meta m;
    memset(&m, 0, sizeof m);
    assert_int_equal(buf_append(&m.start, "b", 1), 0);
    assert_int_equal(buf_append(&m.end, "m", 1), 0);
    entry_applier *a = entry_applier_new(f->e, 1, 0);
    entry_applier_set_bounds(a, &m);
    entry_op ops[3] = {put_op("a", "1", seq_make(1, 0, 1)),
                       put_op("c", "2", seq_make(2, 0, 1)),
                       put_op("m", "3", seq_make(3, 0, 1))};
    encode(&e, ops, 3);
    assert_int_equal(entry_applier_add(a, 4, e.data, e.len, res, NULL), 0);
    assert_int_equal(entry_applier_flush(a), 0);
    assert_int_equal(res[0].status, CAIRN_ERR_KEY_OUT_OF_RANGE);
    assert_int_equal(res[1].status, 0);
    assert_int_equal(res[2].status, CAIRN_ERR_KEY_OUT_OF_RANGE);
    assert_value(f, "a", NULL);
    assert_value(f, "c", "2");
    assert_value(f, "m", NULL);
    uint64_t applied;
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &applied), 0);
    assert_int_equal(applied, 4);
    /* fenced (RANGE_META_FROZEN): no op lands, inside the bounds or not,
     * and the entry still moves the applied index */
    m.flags |= RANGE_META_FROZEN;
    assert_int_equal(entry_applier_add(a, 5, e.data, e.len, res, NULL), 0);
    assert_int_equal(entry_applier_flush(a), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i].status, CAIRN_ERR_KEY_OUT_OF_RANGE);
    assert_value(f, "c", "2");
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &applied), 0);
    assert_int_equal(applied, 5);
    entry_applier_free(a);
    range_meta_free(&m);
    buf_free(&e);
}

/* Split entries round-trip; a truncated one is not a split entry. */
static void test_split_entry_codec(void **state)
{
    (void)state;
    buf e = BUF_INIT;
    assert_int_equal(entry_put_split(&e, 7, 8, 99, 12, "key", 3), 0);
    assert_int_equal(e.len % 8, 0);
    uint64_t nonce, id, range, epoch;
    const uint8_t *k;
    size_t kl;
    assert_true(entry_is_split(e.data, e.len, &nonce, &id, &range, &epoch,
                               &k, &kl));
    assert_int_equal(nonce, 7);
    assert_int_equal(id, 8);
    assert_int_equal(range, 99);
    assert_int_equal(epoch, 12);
    assert_int_equal(kl, 3);
    assert_memory_equal(k, "key", 3);
    assert_false(entry_is_split(e.data, 20, &nonce, &id, &range, &epoch, &k,
                                &kl));
    uint8_t flags;
    assert_false(entry_is_epoch(e.data, e.len, &nonce, &id, &epoch, &flags, NULL));
    buf_free(&e);
}

static void test_corrupt_entry_changes_nothing(void **state)
{
    fix *f = *state;
    buf e = BUF_INIT;
    entry_op op = put_op("z", "1", seq_make(5, 0, 1));
    encode(&e, &op, 1);
    e.data[ENTRY_HEADER_LEN + 1] = 9; /* unknown condition */
    assert_int_equal(entry_apply(f->e, f->b, 1, 3, e.data, e.len, NULL,
                                 NULL), CAIRN_ERR_CORRUPT);
    assert_value(f, "z", NULL);
    uint64_t applied = 1;
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &applied), 0);
    assert_int_equal(applied, 0);
    buf_free(&e);
}

/* Entries added to one applier are written by one flush; conditions of a
 * later entry see the pending ops of an earlier one. */
static void test_applier_batches_entries(void **state)
{
    fix *f = *state;
    buf e1 = BUF_INIT, e2 = BUF_INIT;
    entry_result res[1];
    seq s1 = seq_make(300, 0, 1);
    entry_op a = put_op("q", "1", s1), b = put_op("q", "2", seq_make(301, 0, 1));
    b.cond = ENTRY_COND_IFSEQ;
    b.cond_seq = s1;
    encode(&e1, &a, 1);
    encode(&e2, &b, 1);
    entry_applier *ap = entry_applier_new(f->e, 1, 0);
    assert_non_null(ap);
    assert_int_equal(entry_applier_add(ap, 1, e1.data, e1.len, NULL, NULL), 0);
    assert_int_equal(entry_applier_add(ap, 2, e2.data, e2.len, res, NULL), 0);
    assert_int_equal(res[0].status, 0);
    assert_int_equal(entry_applier_pending(ap), 2);
    uint64_t applied = 9;
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &applied), 0);
    assert_int_equal(applied, 0); /* nothing written yet */
    assert_int_equal(entry_applier_flush(ap), 0);
    assert_int_equal(entry_applier_pending(ap), 0);
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &applied), 0);
    assert_int_equal(applied, 2);
    assert_value(f, "q", "2");
    /* a malformed entry adds nothing */
    e1.data[0] = 2;
    assert_int_equal(entry_applier_add(ap, 3, e1.data, e1.len, NULL, NULL),
                     CAIRN_ERR_CORRUPT);
    assert_int_equal(entry_applier_pending(ap), 0);
    entry_applier_free(ap);
    buf_free(&e1);
    buf_free(&e2);
}

/* The epoch entry of a membership change: a padded codec that no command
 * parser accepts, and its apply writes the meta blob and the applied index
 * in one batch (the epoch and the applied index change together). */
static void test_epoch_entry_sets_meta_with_applied(void **state)
{
    fix *f = *state;
    buf e = BUF_INIT, blob = BUF_INIT, got = BUF_INIT;
    uint64_t nonce = 0, id = 0, applied = 0, epoch = 1;
    uint8_t flags = 9;
    entry_reader er;
    /* The old form, without the epoch: 24 bytes, "one more". */
    assert_int_equal(entry_put_epoch(&e, 77, 5, 0, 0, NULL), 0);
    assert_int_equal(e.len, 24);
    assert_true(entry_is_epoch(e.data, e.len, &nonce, &id, &epoch, &flags, NULL));
    assert_int_equal(epoch, 0);
    buf_reset(&e);
    /* The new epoch carried: 32 bytes. */
    assert_int_equal(entry_put_epoch(&e, 77, 5, 9, 0, NULL), 0);
    assert_int_equal(e.len, 32);
    assert_true(entry_is_epoch(e.data, e.len, &nonce, &id, &epoch, &flags, NULL));
    assert_int_equal(nonce, 77);
    assert_int_equal(id, 5);
    assert_int_equal(epoch, 9);
    assert_int_equal(flags, 0); /* the padding of an entry without flags */
    /* A fence: the flags byte fits in the same 32 bytes. */
    buf_reset(&e);
    assert_int_equal(entry_put_epoch(&e, 77, 5, 9, ENTRY_EPOCH_FREEZE, NULL), 0);
    assert_int_equal(e.len, 32);
    assert_true(entry_is_epoch(e.data, e.len, &nonce, &id, &epoch, &flags, NULL));
    assert_int_equal(epoch, 9);
    assert_int_equal(flags, ENTRY_EPOCH_FREEZE);
    assert_int_equal(entry_parse(e.data, e.len, &er), CAIRN_ERR_CORRUPT);
    assert_false(entry_is_epoch(e.data, 10, &nonce, &id, &epoch, &flags, NULL)); /* cut */
    e.data[e.len - 1] = 1;                                 /* bad padding */
    assert_false(entry_is_epoch(e.data, e.len, &nonce, &id, &epoch, &flags, NULL));
    /* A floor: 16 more bytes; none without an epoch or a sequencer. */
    seq fl = seq_make(12345, 6, 7), got_fl = seq_zero();
    buf_reset(&e);
    assert_int_equal(entry_put_epoch(&e, 77, 5, 9, ENTRY_EPOCH_FLOOR, &fl),
                     0);
    assert_int_equal(e.len, 48);
    assert_true(entry_is_epoch(e.data, e.len, &nonce, &id, &epoch, &flags,
                               &got_fl));
    assert_int_equal(flags, ENTRY_EPOCH_FLOOR);
    assert_int_equal(seq_cmp(&fl, &got_fl), 0);
    assert_false(entry_is_epoch(e.data, 32, &nonce, &id, &epoch, &flags,
                                NULL)); /* cut inside the floor */
    buf_reset(&e);
    assert_int_equal(entry_put_epoch(&e, 77, 5, 0, ENTRY_EPOCH_FLOOR, &fl),
                     CAIRN_ERR_INVALID);
    assert_int_equal(entry_put_epoch(&e, 77, 5, 9, ENTRY_EPOCH_FLOOR, NULL),
                     CAIRN_ERR_INVALID);

    range_meta m = {0}, back = {0};
    m.table_id = 3;
    m.engine = ENGINE_BTREE;
    m.epoch = 4;
    m.n_peers = 1;
    m.peers[0].id = 1;
    strcpy(m.peers[0].addr, "127.0.0.1:7");
    assert_int_equal(range_meta_encode(&m, &blob), 0);
    entry_applier *ap = entry_applier_new(f->e, 1, 0);
    assert_non_null(ap);
    assert_int_equal(entry_applier_add_meta(ap, 1, blob.data, blob.len), 0);
    assert_int_equal(entry_applier_pending(ap), 1);
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &applied), 0);
    assert_int_equal(applied, 0); /* nothing written before the flush */
    assert_int_equal(entry_applier_flush(ap), 0);
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &applied), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(engine_get_meta(f->e, NULL, 1, &got), 0);
    assert_int_equal(range_meta_decode(got.data, got.len, &back), 0);
    assert_int_equal(back.epoch, 4);
    assert_int_equal(back.flags, 0);
    /* the floor and the frozen flag round-trip in the meta blob */
    m.flags = RANGE_META_FLOOR | RANGE_META_FROZEN;
    m.floor = fl;
    buf_reset(&blob);
    assert_int_equal(range_meta_encode(&m, &blob), 0);
    assert_int_equal(range_meta_decode(blob.data, blob.len, &back), 0);
    assert_int_equal(back.flags, RANGE_META_FLOOR | RANGE_META_FROZEN);
    assert_int_equal(seq_cmp(&back.floor, &fl), 0);
    assert_int_equal(range_meta_decode(blob.data, blob.len - 1, &back),
                     CAIRN_ERR_CORRUPT);
    entry_applier_free(ap);
    range_meta_free(&m);
    range_meta_free(&back);
    buf_free(&e);
    buf_free(&blob);
    buf_free(&got);
}

/* Appliers of two ranges sharing a batcher: one flush writes both. */
static void test_shared_batcher_one_write(void **state)
{
    fix *f = *state;
    buf e = BUF_INIT;
    entry_op op = put_op("s", "1", seq_make(400, 0, 1));
    encode(&e, &op, 1);
    entry_batcher *b = entry_batcher_new(f->e);
    entry_applier *a1 = entry_applier_new_shared(b, 1, 0);
    entry_applier *a2 = entry_applier_new_shared(b, 2, 0);
    assert_int_equal(entry_applier_add(a1, 1, e.data, e.len, NULL, NULL), 0);
    assert_int_equal(entry_applier_add(a2, 7, e.data, e.len, NULL, NULL), 0);
    assert_int_equal(entry_applier_flush(a2), 0); /* writes a1's too */
    assert_int_equal(entry_applier_pending(a1), 0);
    uint64_t i1 = 0, i2 = 0;
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &i1), 0);
    assert_int_equal(engine_applied_index(f->e, NULL, 2, &i2), 0);
    assert_int_equal(i1, 1);
    assert_int_equal(i2, 7);
    assert_value(f, "s", "1");
    /* freeing an applier with pending ops writes them */
    assert_int_equal(entry_applier_add(a1, 2, e.data, e.len, NULL, NULL), 0);
    entry_applier_free(a1);
    assert_int_equal(engine_applied_index(f->e, NULL, 1, &i1), 0);
    assert_int_equal(i1, 2);
    entry_applier_free(a2);
    entry_batcher_free(b);
    buf_free(&e);
}

static void test_meta_round_trip(void **state)
{
    (void)state;
    range_meta m = {0}, d = {0};
    m.table_id = 4;
    m.engine = ENGINE_LSM;
    m.epoch = 9;
    buf_append_str(&m.start, "b");
    buf_append_str(&m.end, "m");
    m.n_peers = 2;
    m.peers[0].id = 1;
    strcpy(m.peers[0].addr, "127.0.0.1:1");
    m.peers[1].id = 2;
    strcpy(m.peers[1].addr, "127.0.0.1:2");
    buf out = BUF_INIT;
    assert_int_equal(range_meta_encode(&m, &out), 0);
    assert_int_equal(range_meta_decode(out.data, out.len, &d), 0);
    assert_int_equal(d.epoch, 9);
    assert_int_equal(d.engine, ENGINE_LSM);
    assert_int_equal(d.n_peers, 2);
    assert_string_equal(d.peers[1].addr, "127.0.0.1:2");
    assert_true(range_meta_contains(&d, "b", 1));
    assert_true(range_meta_contains(&d, "lzzz", 4));
    assert_false(range_meta_contains(&d, "a", 1));
    assert_false(range_meta_contains(&d, "m", 1));
    for (size_t n = 0; n < out.len; n++)
        assert_int_equal(range_meta_decode(out.data, n, &d),
                         CAIRN_ERR_CORRUPT);
    range_meta_free(&m);
    range_meta_free(&d);
    buf_free(&out);
}

static uint64_t zero_now(void *arg)
{
    (void)arg;
    return 0;
}

static void test_snapshot_round_trip(void **state)
{
    fix *f = *state;
    buf e = BUF_INIT, snap = BUF_INIT, meta = BUF_INIT;
    char key[16], val[16];
    /* 50 keys, one tombstone, meta, applied 12 */
    engine_batch_clear(f->b);
    for (int i = 0; i < 50; i++) {
        seq s = seq_make(1000 + (uint64_t)i, 0, 1);
        snprintf(key, sizeof key, "k%02d", i);
        snprintf(val, sizeof val, "v%d", i);
        engine_batch_put(f->b, 1, key, strlen(key), &s, val, strlen(val));
    }
    seq ts = seq_make(2000, 0, 1);
    engine_batch_tombstone(f->b, 1, "k07", 3, &ts);
    engine_batch_set_meta(f->b, 1, "META", 4);
    engine_batch_set_applied(f->b, 1, 12);
    assert_int_equal(engine_write(f->e, f->b), 0);

    assert_int_equal(snapshot_encode(f->e, NULL, 1, 12, 1 << 20, &snap), 0);
    assert_int_equal(snap.len % 8, 0);
    uint64_t idx;
    assert_int_equal(snapshot_index(snap.data, snap.len, &idx), 0);
    assert_int_equal(idx, 12);
    buf small = BUF_INIT;
    assert_int_equal(snapshot_encode(f->e, NULL, 1, 12, 100, &small),
                     CAIRN_ERR_SNAPSHOT_TOOBIG);
    buf_free(&small);

    /* restore into range 2 of the same store, which holds other data */
    engine_batch_clear(f->b);
    seq old = seq_make(1, 0, 1);
    engine_batch_put(f->b, 2, "k01", 3, &old, "old", 3);
    engine_batch_put(f->b, 2, "zz-not-in-snapshot", 18, &old, "old", 3);
    assert_int_equal(engine_write(f->e, f->b), 0);
    /* clocks stuck at time 0: only observing can move them past ts */
    seq_clock *c2 = seq_clock_new(2, zero_now, NULL);
    assert_int_equal(snapshot_restore(f->e, 2, snap.data, snap.len, c2), 0);
    seq after = seq_next(c2); /* observed every record, tombstone included */
    assert_true(seq_cmp(&after, &ts) > 0);
    seq_clock_free(c2);
    seq_clock *c3 = seq_clock_new(3, zero_now, NULL);
    assert_int_equal(snapshot_observe(snap.data, snap.len, c3), 0);
    after = seq_next(c3);
    assert_true(seq_cmp(&after, &ts) > 0);
    seq_clock_free(c3);
    assert_int_equal(engine_applied_index(f->e, NULL, 2, &idx), 0);
    assert_int_equal(idx, 12);
    assert_int_equal(engine_get_meta(f->e, NULL, 2, &meta), 0);
    assert_memory_equal(meta.data, "META", 4);
    buf again = BUF_INIT;
    assert_int_equal(snapshot_encode(f->e, NULL, 2, 12, 1 << 20, &again), 0);
    assert_int_equal(again.len, snap.len); /* identical data */
    assert_memory_equal(again.data + 12, snap.data + 12, snap.len - 12);
    /* a truncated snapshot is refused */
    assert_int_equal(snapshot_restore(f->e, 3, snap.data, snap.len - 24,
                                      NULL), CAIRN_ERR_CORRUPT);
    buf_free(&again);
    buf_free(&e);
    buf_free(&snap);
    buf_free(&meta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_round_trip_and_corruption),
        cmocka_unit_test_setup_teardown(
            test_apply_sets_applied_index_and_conditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_entry_changes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_applier_batches_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_shared_batcher_one_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_epoch_entry_sets_meta_with_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_ifnewer_lands_only_over_older_records, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_big_conditional_batch_sees_pending_ops, setup, teardown),
        cmocka_unit_test(test_meta_round_trip),
        cmocka_unit_test_setup_teardown(
            test_applier_refuses_keys_outside_its_bounds, setup, teardown),
        cmocka_unit_test(test_split_entry_codec),
        cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
