/*
 * engine_fixture.h - helpers shared by the index-store tests: a temporary
 * directory per test, removed afterwards, one open store per test (after
 * cmocka.h, fx_setup/fx_teardown), and small write helpers.
 */
#ifndef CAIRN_TEST_ENGINE_FIXTURE_H
#define CAIRN_TEST_ENGINE_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/engine.h"

static int fx_rm_one(const char *path, const struct stat *sb, int flag,
                     struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove a directory tree. */
static inline void fx_rmtree(const char *dir)
{
    nftw(dir, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under $TMPDIR (or /tmp); `out` gets its path. */
static inline void fx_tmpdir(char out[256], const char *tag)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, 256, "%s/cairn-%s-XXXXXX", base ? base : "/tmp", tag);
    if (mkdtemp(out) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

/* Write one put (and optionally the applied index) in its own batch. */
static inline int fx_put(engine *e, uint64_t range, const void *key,
                         size_t klen, const void *val, size_t vlen,
                         uint64_t seqn)
{
    engine_batch *b = engine_batch_new();
    seq s = seq_make(seqn, 0, 1);
    int rc = engine_batch_put(b, range, key, klen, &s, val, vlen);
    if (rc == 0)
        rc = engine_write(e, b);
    engine_batch_free(b);
    return rc;
}

#ifdef cmocka_unit_test
/* One open store per test, in a directory of its own; the kind is the
 * test's prestate (cmocka_unit_test_prestate_setup_teardown with a pointer
 * to an engine_kind). */
typedef struct fixture {
    engine_kind kind;
    char dir[256];
    engine *e;
} fixture;

static inline int fx_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->kind = *(engine_kind *)*state;
    fx_tmpdir(f->dir, engine_kind_name(f->kind));
    assert_int_equal(engine_open(f->kind, f->dir, NULL, &f->e), 0);
    assert_int_equal(engine_get_kind(f->e), f->kind);
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    fixture *f = *state;
    if (f->e)
        engine_close(f->e);
    fx_rmtree(f->dir);
    free(f);
    return 0;
}
#endif

static inline int fx_put_str(engine *e, uint64_t range, const char *key,
                             const char *val, uint64_t seqn)
{
    return fx_put(e, range, key, strlen(key), val, strlen(val), seqn);
}

#endif
