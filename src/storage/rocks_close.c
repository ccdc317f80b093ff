/*
 * rocks_close.c - see rocks_close.h.
 */
#include "rocks_close.h"

#include <stdio.h>
#include <stdlib.h>

bool rocks_close(rocksdb_t *db, const char *what)
{
    char *v = rocksdb_property_value(db, "rocksdb.background-errors");
    long errors = v ? strtol(v, NULL, 10) : 0;
    free(v);
    if (errors > 0) {
        fprintf(stderr,
                "cairn node: %s: RocksDB recorded %ld background error(s) "
                "(a full disk?); not closing it - every acknowledged write "
                "is synced, and the next start recovers from its WAL\n",
                what, errors);
        return false;
    }
    rocksdb_close(db);
    return true;
}
