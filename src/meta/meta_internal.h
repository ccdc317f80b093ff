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

#endif
