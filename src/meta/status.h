/*
 * status.h - the cluster's state in one JSON document, built from the
 * metadata alone: what `cairn status --json` prints and what a dashboard
 * fetches (docs/OPERATIONS.md, "cairn status", documents every field;
 * fields are only ever added, never renamed or removed: `version` says
 * which set to expect).
 *
 * Everything in it is in etcd: nodes and their liveness, the controller's
 * health records (state, bytes, lag), drains, moves under way and
 * rebalancing, tables, ranges and leaders. No node is asked, so a status
 * costs one etcd read whatever the cluster's size, and shows the same to
 * everyone. Pure: tested without etcd (tests/unit/meta/test_status.c).
 */
#ifndef CAIRN_META_STATUS_H
#define CAIRN_META_STATUS_H

#include <stdint.h>

#include "common/buf.h"
#include "meta/meta.h"

#define META_STATUS_VERSION 1

typedef struct meta_status_opts {
    uint64_t now_ms;        /* wall clock, ms since the Unix epoch */
    const char *controller; /* the active controller's name, NULL = none */
    int max_unhealthy;      /* ranges listed at most (0 = 1000) */
} meta_status_opts;

/* Append the status document of `map` to `out` (one line of JSON).
 * 0 or CAIRN_ERR_NOMEM. */
int meta_status_json(const meta_map *map, const meta_status_opts *opts,
                     buf *out);

#endif
