/*
 * meta_internal.h - what the files of src/meta share about a `meta`
 * handle (meta.c, table.c, keeper.c, backup.c).
 */
#ifndef CAIRN_META_META_INTERNAL_H
#define CAIRN_META_META_INTERNAL_H

#include "common/buf.h"
#include "meta/meta.h"

struct meta {
    etcd *c;
    char prefix[META_PREFIX_MAX + 1];
};

/* Add "counter `key` still has mod revision `rev`" and "counter := v + n"
 * to a transaction's success branch. */
int meta_txn_bump_counter(etcd_txn *t, const buf *key, uint64_t v,
                          int64_t rev, uint64_t n);

/* Add the compare-and-swap of one record to `t`'s success branch: "`key`
 * still has mod revision `rev`" (0: still absent), then "`key` := value"
 * (no lease). The rule of the schema: no blind writes. */
int meta_txn_cas_put(etcd_txn *t, const buf *key, int64_t rev,
                     const char *value);

/* Commit `t` unless `rc` says building it failed, then free it (NULL:
 * etcd_txn_new failed, CAIRN_ERR_NOMEM). Returns that `rc`, the commit's error, `lost` when a compare failed (another
 * writer won: CAIRN_ERR_BUSY for callers that re-read and retry,
 * CAIRN_ERR_CONDITION for those whose caller re-decides), or 0.
 * *revision (may be NULL) = the revision the transaction wrote. */
int meta_txn_finish(meta *m, etcd_txn *t, int rc, int lost,
                    int64_t *revision);

/* One record by compare-and-swap (heal.c): write `value` (taken: freed
 * here) at `key` (freed too) if the key still has mod revision `rev` (0:
 * absent); `rc` non-zero: building failed, only clean up. `lost`: what a
 * failed compare returns. */
int meta_cas_put(meta *m, buf *key, int rc, int64_t rev, char *value,
                 int lost);

/* Delete `key` (freed here) if it still has mod revision `rev` (0:
 * whatever it has, but it must exist). */
int meta_cas_delete(meta *m, buf *key, int rc, int64_t rev, int lost);

#endif
