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
    rocksdb_close(db);
    return true;
}
