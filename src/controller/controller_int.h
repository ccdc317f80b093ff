/*
 * controller_int.h - what the controller's parts share: the handle, the
 * reconciler interface, and the bound of a node RPC.
 *
 * A reconciler is one concern of the controller, in one file: each pass of
 * the loop (every interval, and on every metadata change) runs every
 * reconciler in order on the same metadata snapshot. A reconciler compares
 * what the snapshot says with what should be and takes the next step
 * towards it - one step, idempotent, each write a compare-and-swap - so a
 * pass interrupted by a crash or a lost election is simply taken again by
 * the next active controller. To add one (replacement of dead or lagging
 * replicas, split, move): write reconcile_<what>.c defining a
 * ctl_reconciler and list it in controller.c.
 */
#ifndef CAIRN_CONTROLLER_INT_H
#define CAIRN_CONTROLLER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "controller/controller.h"
#include "meta/meta.h"
#include "proto/rpc.h"
#include "proto/rpc_sync.h"

typedef struct ctl ctl;

typedef struct ctl_reconciler {
    const char *name;
    /* Private state of the reconciler (NULL is fine); freed by `fini`. */
    void *(*init)(ctl *c);
    void (*fini)(void *state);
    /* One pass over snapshot `map`. Blocks on etcd and nodes as needed. */
    void (*run)(ctl *c, void *state, const meta_map *map);
} ctl_reconciler;

extern const ctl_reconciler ctl_reconcile_leaders;
extern const ctl_reconciler ctl_reconcile_create;
extern const ctl_reconciler ctl_reconcile_drop;

/* ---- for reconcilers ---------------------------------------------------- */

meta *ctl_meta(ctl *c);
const controller_config *ctl_config(ctl *c);

/* Whether this instance still holds the election: check before each write. */
bool ctl_active(ctl *c);

/* Monotonic milliseconds. */
uint64_t ctl_now_ms(void);

/* One log line at info (common/log.h; the controller's name is in every
 * line), also kept among the recent actions the dashboard shows. */
void ctl_log(ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- node RPC ------------------------------------------------------------ */

/* Reconcilers talk to nodes with proto/rpc_sync.h (one blocking call, one
 * fresh connection: a few calls a second at most), within this bound. */
#define CTL_RPC_TIMEOUT_MS 3000

#endif
