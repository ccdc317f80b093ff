/* Tests for engine_verify and the record checksums (engine.h,
 * engine_int.h): a clean store verifies; a flipped byte in a stored value
 * or key of a stopped store, or a block of a RocksDB SST, is reported
 * CORRUPT by reads, scans and engine_verify - never served; a record lost
 * behind LMDB's back shows in its counters. */
#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <rocksdb/c.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/limits.h"
#include "engine_fixture.h"
#include "storage/engine_int.h"

#define MARKER "MARKER-7f3a9c-a-value-nothing-else-holds"

/* Range 7: 300 records with short and 1,024-byte keys, a few tombstones,
 * an interval deleted, an applied index; range 8: one record. */
static void fill(engine *e)
{
    engine_batch *b = engine_batch_new();
    seq s = seq_make(5, 0, 1);
    char k[CAIRN_KEY_MAX];
    for (int i = 0; i < 300; i++) {
        size_t n = (size_t)snprintf(k, sizeof k, "key-%04d", i);
        if (i % 50 == 0) { /* long keys: chained in pieces on LMDB */
            memset(k + n, 'L', sizeof k - n);
            n = sizeof k;
        }
        if (i % 7 == 0)
            assert_int_equal(engine_batch_tombstone(b, 7, k, n, &s), 0);
        else
            assert_int_equal(engine_batch_put(b, 7, k, n, &s, "v", 1), 0);
    }
    assert_int_equal(engine_batch_put(b, 7, "zz-marked", 9, &s, MARKER,
                                      strlen(MARKER)), 0);
    assert_int_equal(engine_batch_set_applied(b, 7, 40), 0);
    assert_int_equal(engine_batch_put(b, 8, "other", 5, &s, "fine", 4), 0);
    assert_int_equal(engine_write(e, b), 0);
    engine_batch_free(b);
    assert_int_equal(engine_delete_interval(e, 7, "key-0100", 8, "key-0120",
                                            8), 0);
    assert_int_equal(engine_sync(e), 0);
}

static void test_clean_store_verifies(void **state)
{
    fixture *f = *state;
    fill(f->e);
    char why[256];
    assert_int_equal(engine_verify(f->e, 7, why), 0);
    assert_int_equal(engine_verify(f->e, 8, why), 0);
    engine_close(f->e);
    assert_int_equal(engine_open(f->kind, f->dir, NULL, &f->e), 0);
    assert_int_equal(engine_verify(f->e, 7, why), 0);
    /* a range with no record at all is not there to verify */
    assert_int_equal(engine_verify(f->e, 9, why), CAIRN_ERR_NOT_FOUND);
}

/* Flip one byte of the first occurrence of `needle` (at offset `at` into
 * it) in file `path`; true if found. */
static bool flip_in_file(const char *path, const char *needle, size_t at)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *p = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    size_t nl = strlen(needle);
    bool found = false;
    for (size_t i = 0; !found && i + nl <= (size_t)st.st_size; i++)
        if (memcmp(p + i, needle, nl) == 0) {
            uint8_t c = p[i + at] ^ 0x20;
            assert_int_equal(pwrite(fd, &c, 1, (off_t)(i + at)), 1);
            found = true;
        }
    free(p);
    close(fd);
    return found;
}

static void expect_range_corrupt(engine *e, uint64_t range)
{
    char why[256];
    assert_int_equal(engine_verify(e, range, why), CAIRN_ERR_CORRUPT);
    assert_true(why[0] != '\0');
    engine_iter *it;
    engine_entry en;
    assert_int_equal(engine_iter_open(e, NULL, range, NULL, 0, NULL, 0, 0,
                                      ENGINE_ITER_TOMBSTONES, &it), 0);
    int rc;
    while ((rc = engine_iter_next(it, &en)) == 1)
        ;
    assert_int_equal(rc, CAIRN_ERR_CORRUPT);
    engine_iter_close(it);
}

static void test_lmdb_flipped_value_byte(void **state)
{
    fixture *f = *state;
    fill(f->e);
    engine_close(f->e);
    f->e = NULL;
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    assert_true(flip_in_file(path, MARKER, 10));
    assert_int_equal(engine_open(f->kind, f->dir, NULL, &f->e), 0);
    buf v = BUF_INIT;
    assert_int_equal(engine_get(f->e, NULL, 7, "zz-marked", 9, NULL, NULL,
                                &v), CAIRN_ERR_CORRUPT);
    expect_range_corrupt(f->e, 7);
    /* the other range is untouched */
    assert_int_equal(engine_verify(f->e, 8, NULL), 0);
    assert_int_equal(engine_get(f->e, NULL, 8, "other", 5, NULL, NULL, &v), 0);
    assert_memory_equal(v.data, "fine", 4);
    buf_free(&v);
}

/* A flipped key byte moves the record to another key: its checksum, which
 * covers the key, no longer holds. */
static void test_lmdb_flipped_key_byte(void **state)
{
    fixture *f = *state;
    fill(f->e);
    engine_close(f->e);
    f->e = NULL;
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    assert_true(flip_in_file(path, "zz-marked", 3));
    assert_int_equal(engine_open(f->kind, f->dir, NULL, &f->e), 0);
    expect_range_corrupt(f->e, 7);
}

/* A record deleted behind the engine's back (as a lost page would lose
 * it): every remaining record is sound, the counters are not. */
static void test_lmdb_lost_record_shows_in_counters(void **state)
{
    fixture *f = *state;
    fill(f->e);
    engine_close(f->e);
    f->e = NULL;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 3), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "data", 0, &dbi), 0);
    uint8_t k[8 + 9];
    be_put_u64(k, 7);
    memcpy(k + 8, "zz-marked", 9);
    MDB_val key = {sizeof k, k};
    int rc = mdb_del(txn, dbi, &key, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(engine_open(f->kind, f->dir, NULL, &f->e), 0);
    char why[256];
    assert_int_equal(engine_verify(f->e, 7, why), CAIRN_ERR_CORRUPT);
    assert_non_null(strstr(why, "counters"));
}

/* RocksDB: move everything into an SST, then flip a byte of its first
 * data block. */
static void test_rocks_flipped_sst_byte(void **state)
{
    fixture *f = *state;
    fill(f->e);
    engine_close(f->e); /* a clean close flushes the memtable */
    f->e = NULL;
    DIR *d = opendir(f->dir);
    struct dirent *de;
    char path[600] = "";
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".sst"))
            snprintf(path, sizeof path, "%s/%s", f->dir, de->d_name);
    closedir(d);
    assert_true(path[0] != '\0');
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, 40), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, 40), 1);
    close(fd);
    if (engine_open(f->kind, f->dir, NULL, &f->e) != 0) {
        f->e = NULL; /* refusing to open at all is detection too */
        return;
    }
    assert_int_equal(engine_verify(f->e, 7, NULL), CAIRN_ERR_CORRUPT);
    buf v = BUF_INIT;
    /* the first data block holds the range's first keys */
    assert_int_equal(engine_get(f->e, NULL, 7, "key-0001", 8, NULL, NULL, &v),
                     CAIRN_ERR_CORRUPT);
    buf_free(&v);
}

static engine_kind btree = ENGINE_BTREE, lsm = ENGINE_LSM;

#define ONE(fn, kind) cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, \
                                                               fx_teardown, &kind)

int main(void)
{
    const struct CMUnitTest tests[] = {
        ONE(test_clean_store_verifies, btree),
        ONE(test_clean_store_verifies, lsm),
        ONE(test_lmdb_flipped_value_byte, btree),
        ONE(test_lmdb_flipped_key_byte, btree),
        ONE(test_lmdb_lost_record_shows_in_counters, btree),
        ONE(test_rocks_flipped_sst_byte, lsm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
