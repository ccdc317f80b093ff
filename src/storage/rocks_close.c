/*
 * rocks_close.c - see rocks_close.h.
 */
#include "rocks_close.h"

#include <stdio.h>
#include <stdlib.h>

bool rocks_close(rocksdb_t *db, const char *what, const diskguard *disk)
{
    diskguard_stats ds;
    diskguard_get_stats(disk, &ds);
    bool met_full_disk = ds.times_full > 0;
    char *v = rocksdb_property_value(db, "rocksdb.background-errors");
    long errors = v ? strtol(v, NULL, 10) : 0;
    free(v);
    if (errors > 0 || met_full_disk) {
        fprintf(stderr,
                "cairn node: %s met a full disk (%ld background errors); "
                "not closing it - every acknowledged write is synced, and "
                "the next start recovers from its WAL\n",
                what, errors);
        return false;
    }
    /* A clean close writes the memtables out, so that the next open has
     * no WAL to replay (a faster restart) and the data sits in SSTs, whose
     * blocks RocksDB checksums on every read. A failed flush changes
     * nothing: the WAL still holds it all. */
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    char *err = NULL;
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(db, fo, &err);
    rocksdb_flushoptions_destroy(fo);
    if (err) {
        fprintf(stderr, "cairn node: %s: flush at close: %s\n", what, err);
        free(err);
    }
    rocksdb_close(db);
    return true;
}
