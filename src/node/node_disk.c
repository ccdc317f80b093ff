/*
 * node_disk.c - the node's full-disk guard (diskguard.h): opened before
 * the stores, polled on the loop, its turns logged.
 *
 * The guard itself does the deciding; the replicas read it through the
 * replication environment (env.h): leaders answer NOSPACE, followers take
 * no new entries, while it is full.
 */
#include "node_int.h"

#include <string.h>

#include "../common/err.h"
#include "../common/log.h"

/* How often the loop looks at the disk. The Raft log's writer also looks
 * before each of its writes, so this is for leaving "full" and for disks
 * that fill while the node is idle. */
#define DISK_POLL_MS 100

int node_disk_open(node *n)
{
    int rc = diskguard_open(n->opts->dir, n->opts->disk_reserve, &n->disk);
    if (rc != 0) {
        log_error("cannot examine the disk of %s: %s", n->opts->dir,
                  cairn_err_message(rc));
        return rc;
    }
    n->env.disk = n->disk;
    diskguard_stats st;
    diskguard_get_stats(n->disk, &st);
    if (st.full)
        log_warn("disk full: %llu bytes free in %s, under the %llu needed "
                 "to keep a %llu-byte reserve; refusing writes until there "
                 "is room", (unsigned long long)st.free_bytes, n->opts->dir,
                 (unsigned long long)(2 * st.reserve),
                 (unsigned long long)st.reserve);
    n->disk_was_full = st.full;
    return 0;
}

static void disk_tick(uv_timer_t *t)
{
    node *n = t->data;
    bool full = diskguard_poll(n->disk);
    if (full == n->disk_was_full)
        return;
    n->disk_was_full = full;
    diskguard_stats st;
    diskguard_get_stats(n->disk, &st);
    if (full)
        log_warn("disk full: %llu bytes free in %s; the %llu-byte reserve "
                 "is released for what was already accepted; refusing "
                 "writes (NOSPACE) and new log entries until %llu bytes "
                 "are free", (unsigned long long)st.free_bytes, n->opts->dir,
                 (unsigned long long)st.reserve,
                 (unsigned long long)(2 * st.reserve));
    else
        log_info("disk has room again (%llu bytes free, reserve taken "
                 "back); taking writes", (unsigned long long)st.free_bytes);
}

void node_disk_start(node *n)
{
    uv_timer_init(&n->loop, &n->disk_timer);
    n->disk_timer.data = n;
    if (n->opts->disk_reserve > 0)
        uv_timer_start(&n->disk_timer, disk_tick, DISK_POLL_MS, DISK_POLL_MS);
}

void node_disk_close(node *n)
{
    diskguard_close(n->disk);
    n->disk = NULL;
    n->env.disk = NULL;
}
