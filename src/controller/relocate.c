/*
 * relocate.c - a range moves live to a new replica group (TABLE.MOVE;
 * DESIGN.md "Split and move", MISSION.md "Live split / migration flow"),
 * as a task per move, its steps recorded in P/relocations/<range> (meta.h,
 * meta_relocation) so that a controller killed at any step is followed by
 * one that goes on from the last recorded:
 *
 *   CREATE  a new range id from etcd; the destination group created on
 *           the chosen nodes (empty, bootstrapped, not yet in etcd: no
 *           router knows it) and waited on until it has a leader;
 *   FENCE   the source fenced (FENCE: every later write refused, its epoch
 *           bumped; the answer names a sequencer above all it holds), the
 *           destination's clock floored past that sequencer for good
 *           (FLOOR), so that every write it takes wins against anything
 *           copied - the writes stop here until the switch;
 *   SWITCH  one etcd transaction: the source's record out, the
 *           destination's in, MIGRATING from the source (its fenced epoch
 *           and replicas). Routers holding the old map meet STALE_EPOCH at
 *           the source and refresh; from now on writes go to the
 *           destination, reads to both (router/migrate.c: the higher
 *           sequencer wins, tombstones included; scans merge by key; a
 *           conditional write first copies the source's record of its key);
 *   COPY    the source, frozen, read in key order (SCAN_RECORDS:
 *           tombstones too) and written into the destination (COPY: a
 *           record lands only if newer than what the key holds, so a copy
 *           repeated after a crash changes nothing); then the marker
 *           cleared in etcd (NORMAL, same epoch);
 *   DROP    the source's replicas dropped, then the record.
 *
 * Steps before FENCE can be repeated or given up; from FENCE on the move
 * only goes forward, since the source takes no writes. Every step is
 * idempotent: a create answered EXISTS, a second fence (a new epoch and a
 * sequencer above the first), a floor again, a switch already made (the
 * destination is in etcd), records copied twice, a drop of a replica that
 * is gone.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "controller/controller_int.h"
#include "storage/engine.h" /* engine_kind: the RPC's engine byte */

#define CREATE_TIMEOUT_MS 10000
#define FENCE_TIMEOUT_MS 10000
#define COPY_TIMEOUT_MS 30000
#define DROP_TIMEOUT_MS 10000
/* Records asked for per SCAN_RECORDS; the node also stops at
 * RPC_SCAN_BYTES. */
#define COPY_PAGE 10000
/* The progress in etcd is updated this often during a copy. */
#define PROGRESS_MS 1000

typedef struct rjob {
    meta_relocation rl; /* as last read or written */
    meta_engine engine;
    bool table_gone;    /* dropped (or dropping) meanwhile */
    ctl_target src, dst;
} rjob;

bool ctl_relocating(const meta_map *map, uint64_t range_id)
{
    if (meta_map_relocation(map, range_id))
        return true;
    for (size_t i = 0; i < meta_map_relocation_count(map); i++)
        if (meta_map_relocation_at(map, i)->dest == range_id)
            return true;
    return false;
}

/* Write the record as changed in j->rl, compared with what was read;
 * j->rl is then what etcd holds. */
static int save(ctl *c, rjob *j)
{
    if (!ctl_active(c))
        return CAIRN_ERR_SHUTDOWN;
    int rc = meta_relocation_put(ctl_meta(c), &j->rl, j->rl.mod_revision);
    if (rc == 0)
        rc = meta_relocation_get(ctl_meta(c), j->rl.range_id, &j->rl);
    if (rc != 0)
        ctl_log(c, "range %" PRIu64 ": move: cannot record step %s: %s",
                j->rl.range_id, meta_reloc_step_name(j->rl.step),
                cairn_err_message(rc));
    return rc;
}

/* Tests: a pause of CAIRN_TEST_RELOCATE_PAUSE_MS after each recorded
 * step and copied page, so that a test can act while a step is current. */
static void test_pause(void)
{
    const char *ms = getenv("CAIRN_TEST_RELOCATE_PAUSE_MS");
    if (ms && atoi(ms) > 0)
        ctl_pause_ms(atoi(ms));
}

/* Tests: a controller dying right after recording step `s`
 * (CAIRN_TEST_CRASH=relocate-<step>). */
static void crash_point(ctl *c, meta_reloc_step s)
{
    const char *crash = getenv("CAIRN_TEST_CRASH");
    char want[64];
    snprintf(want, sizeof want, "relocate-%s", meta_reloc_step_name(s));
    if (crash && strcmp(crash, want) == 0) {
        ctl_log(c, "CAIRN_TEST_CRASH=%s: aborting", crash);
        abort();
    }
}

/* ---- CREATE ------------------------------------------------------------- */

static int create_dest(ctl *c, rjob *j, const meta_range *src)
{
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_CREATE_REPLICA;
    q.id = 1;
    q.range_id = j->rl.dest;
    q.epoch = 1;
    q.table_id = src->table_id;
    q.engine = (uint8_t)(j->engine == META_ENGINE_LSM ? ENGINE_LSM
                                                      : ENGINE_BTREE);
    q.key = (rpc_bytes){src->start, src->start_len};
    q.end = (rpc_bytes){src->end, src->end_len};
    q.bootstrap = true;
    for (int i = 0; i < j->rl.n_nodes && q.n_peers < RPC_MAX_PEERS; i++) {
        const char *a = ctl_target_addr(&j->dst, j->rl.nodes[i]);
        if (a == NULL)
            return CAIRN_ERR_NOT_FOUND;
        q.peers[q.n_peers].id = j->rl.nodes[i];
        q.peers[q.n_peers++].addr = (rpc_bytes){(const uint8_t *)a,
                                                strlen(a)};
    }
    for (int i = 0; i < j->rl.n_nodes; i++) {
        char text[256], hint_addr[META_ADDR_MAX];
        uint64_t hint;
        const char *a = ctl_target_addr(&j->dst, j->rl.nodes[i]);
        int rc = ctl_call(a, &q, CREATE_TIMEOUT_MS, text, sizeof text, &hint,
                          hint_addr);
        if (rc != 0 && rc != CAIRN_ERR_EXISTS) {
            ctl_log(c, "range %" PRIu64 ": move: cannot create range %" PRIu64
                    " on node %" PRIu64 ": %s %s", j->rl.range_id, j->rl.dest,
                    j->rl.nodes[i], cairn_err_word(rc), text);
            return rc;
        }
    }
    return ctl_find_leader(c, &j->dst) ? 0 : CAIRN_ERR_NO_QUORUM;
}

static int step_create(ctl *c, rjob *j)
{
    meta_range src;
    int rc = meta_range_get(ctl_meta(c), j->rl.table_id, j->rl.range_id, &src);
    if (rc != 0)
        return rc;
    if (j->rl.dest == 0) {
        rc = meta_alloc_ids(ctl_meta(c), META_ID_RANGE, 1, &j->rl.dest);
        memcpy(j->rl.src_nodes, src.replicas, sizeof src.replicas);
        j->rl.n_src = src.n_replicas;
        if (rc == 0)
            rc = save(c, j);
    }
    j->dst.range_id = j->rl.dest;
    if (rc == 0)
        rc = create_dest(c, j, &src);
    meta_range_clear(&src);
    if (rc != 0)
        return rc;
    j->rl.step = META_RELOC_FENCE;
    return save(c, j);
}

/* ---- FENCE -------------------------------------------------------------- */

static int step_fence(ctl *c, rjob *j)
{
    meta_range src;
    int rc = meta_range_get(ctl_meta(c), j->rl.table_id, j->rl.range_id, &src);
    if (rc != 0)
        return rc;
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_FENCE;
    q.id = 1;
    q.range_id = j->rl.range_id;
    q.epoch = src.epoch;
    meta_range_clear(&src);
    char text[300];
    rc = ctl_on_leader(c, &j->src, &q, FENCE_TIMEOUT_MS, text, sizeof text);
    const char *s = rc == 0 ? strstr(text, "seq ") : NULL;
    if (rc == 0 && (s == NULL || strlen(s + 4) != SEQ_HEX_LEN ||
                    seq_from_hex(s + 4, SEQ_HEX_LEN, &q.cond_seq) != 0))
        rc = CAIRN_ERR_PROTO;
    if (rc != 0) {
        ctl_log(c, "range %" PRIu64 ": move: fence: %s %s", j->rl.range_id,
                cairn_err_word(rc), text);
        return rc;
    }
    j->rl.fence_epoch = ctl_epoch_in(text);
    snprintf(j->rl.fence_seq, sizeof j->rl.fence_seq, "%s", s + 4);
    q.type = RPC_FLOOR;
    q.range_id = j->rl.dest;
    q.epoch = 0;
    rc = ctl_on_leader(c, &j->dst, &q, FENCE_TIMEOUT_MS, text, sizeof text);
    if (rc != 0) {
        ctl_log(c, "range %" PRIu64 ": move: floor of range %" PRIu64
                ": %s %s", j->rl.range_id, j->rl.dest, cairn_err_word(rc),
                text);
        return rc;
    }
    j->rl.dest_epoch = ctl_epoch_in(text);
    j->rl.step = META_RELOC_SWITCH;
    ctl_log(c, "range %" PRIu64 ": move: fenced at epoch %" PRIu64
            "; range %" PRIu64 " floored at epoch %" PRIu64,
            j->rl.range_id, j->rl.fence_epoch, j->rl.dest, j->rl.dest_epoch);
    return save(c, j);
}

/* ---- SWITCH ------------------------------------------------------------- */

static int step_switch(ctl *c, rjob *j)
{
    meta *m = ctl_meta(c);
    meta_range src, dest;
    int rc = meta_range_get(m, j->rl.table_id, j->rl.range_id, &src);
    if (rc == CAIRN_ERR_RANGE_NOT_FOUND) {
        /* switched already, by this task's predecessor */
        rc = meta_range_get(m, j->rl.table_id, j->rl.dest, &dest);
        if (rc == 0)
            meta_range_clear(&dest);
    } else if (rc == 0) {
        rc = meta_range_copy(&dest, &src);
        if (rc == 0) {
            dest.id = j->rl.dest;
            dest.epoch = j->rl.dest_epoch;
            memcpy(dest.replicas, j->rl.nodes, sizeof j->rl.nodes);
            dest.n_replicas = j->rl.n_nodes;
            dest.state = META_RANGE_MIGRATING;
            dest.from = src.id;
            dest.from_epoch = j->rl.fence_epoch;
            memcpy(dest.from_replicas, src.replicas, sizeof src.replicas);
            dest.n_from = src.n_replicas;
            rc = ctl_active(c) ? meta_range_switch(m, &src, &dest)
                               : CAIRN_ERR_SHUTDOWN;
            meta_range_clear(&dest);
        }
        meta_range_clear(&src);
    }
    if (rc != 0) {
        ctl_log(c, "range %" PRIu64 ": move: switch to range %" PRIu64
                ": %s", j->rl.range_id, j->rl.dest, cairn_err_message(rc));
        return rc;
    }
    ctl_log(c, "range %" PRIu64 ": move: range %" PRIu64 " owns the keys "
            "now; copying", j->rl.range_id, j->rl.dest);
    j->rl.step = META_RELOC_COPY;
    return save(c, j);
}

/* ---- COPY --------------------------------------------------------------- */

/* One page of the source from `start`: the records into `items` (COPY's
 * encoding), their count and bytes, and where the next page starts
 * (`start` becomes the last key + "\0"); *more = there is a next page. */
static int read_page(ctl *c, rjob *j, buf *start, buf *items,
                     uint32_t *count, uint64_t *bytes, bool *more)
{
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_SCAN_RECORDS;
    q.id = 1;
    q.range_id = j->rl.range_id;
    q.epoch = j->rl.fence_epoch;
    q.key = (rpc_bytes){start->data, start->len};
    q.limit = COPY_PAGE;
    buf frame = BUF_INIT;
    rpc_reply rep;
    int rc = CAIRN_ERR_NOT_LEADER;
    for (int tries = 0; tries < 3 && rc != 0; tries++) {
        if (tries > 0 && ctl_find_leader(c, &j->src) == 0)
            break;
        const char *a = ctl_target_addr(&j->src, j->src.leader);
        rc = a ? rpc_sync_call(a, &q, COPY_TIMEOUT_MS, &frame, &rep)
               : CAIRN_ERR_NOT_FOUND;
        if (rc == 0)
            rc = rep.status;
    }
    *count = 0;
    *bytes = 0;
    buf_reset(items);
    size_t pos = 0;
    rpc_record r;
    int more_rc = 0;
    while (rc == 0 && (more_rc = rpc_record_next(rep.scan, &pos, &r)) == 1) {
        rc = rpc_record_put(items, r.key.p, r.key.len, &r.seq, r.tombstone,
                            r.value.p, r.value.len);
        (*count)++;
        *bytes += r.key.len + r.value.len;
        if (rc == 0 && pos >= rep.scan.len) { /* the last: resume after it */
            buf_reset(start);
            rc = buf_append(start, r.key.p, r.key.len);
            if (rc == 0)
                rc = buf_append_u8(start, 0);
        }
    }
    if (rc == 0 && more_rc < 0)
        rc = CAIRN_ERR_PROTO;
    *more = rc == 0 && (rep.scan_more || *count >= COPY_PAGE);
    buf_free(&frame);
    return rc;
}

static int write_page(ctl *c, rjob *j, const buf *items, uint32_t count)
{
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_COPY;
    q.id = 1;
    q.range_id = j->rl.dest;
    q.epoch = j->rl.dest_epoch;
    q.count = count;
    q.items = (rpc_bytes){items->data, items->len};
    char text[200];
    return ctl_on_leader(c, &j->dst, &q, COPY_TIMEOUT_MS, text, sizeof text);
}

/* One page read from the source, on a thread of its own while the page
 * before it is written into the destination: the copy goes at the pace of
 * the slower of the two, not of their sum. */
typedef struct page {
    ctl *c;
    rjob *j;
    buf *start; /* where it begins; moved on past it */
    buf items;
    uint32_t n;
    uint64_t bytes;
    bool more;
    int rc;
} page;

static void *read_page_thread(void *arg)
{
    page *pg = arg;
    pg->rc = read_page(pg->c, pg->j, pg->start, &pg->items, &pg->n,
                       &pg->bytes, &pg->more);
    return NULL;
}

static int copy_all(ctl *c, rjob *j)
{
    buf start = BUF_INIT;
    page pages[2] = {{.c = c, .j = j, .start = &start, .items = BUF_INIT},
                     {.c = c, .j = j, .start = &start, .items = BUF_INIT}};
    uint64_t t0 = ctl_now_ms(), saved = t0;
    int rc, cur = 0;
    j->rl.copied_keys = j->rl.copied_bytes = 0; /* a resumed copy restarts */
    read_page_thread(&pages[0]);
    rc = pages[0].rc;
    while (rc == 0) {
        page *pg = &pages[cur], *next = &pages[cur ^ 1];
        pthread_t t;
        bool reading = pg->more &&
                       pthread_create(&t, NULL, read_page_thread, next) == 0;
        if (pg->more && !reading)
            read_page_thread(next); /* no thread: one after the other */
        if (pg->n > 0)
            rc = write_page(c, j, &pg->items, pg->n);
        if (reading)
            pthread_join(t, NULL);
        if (rc == 0 && !ctl_active(c))
            rc = CAIRN_ERR_SHUTDOWN;
        if (rc != 0)
            break;
        j->rl.copied_keys += pg->n;
        j->rl.copied_bytes += pg->bytes;
        test_pause();
        if (ctl_now_ms() - saved >= PROGRESS_MS) {
            saved = ctl_now_ms();
            j->rl.copy_ms = saved - t0;
            rc = save(c, j);
        }
        if (rc != 0 || !pg->more)
            break;
        rc = next->rc;
        cur ^= 1;
    }
    j->rl.copy_ms = ctl_now_ms() - t0;
    buf_free(&start);
    buf_free(&pages[0].items);
    buf_free(&pages[1].items);
    return rc;
}

static int step_copy(ctl *c, rjob *j)
{
    int rc = copy_all(c, j);
    if (rc != 0) {
        ctl_log(c, "range %" PRIu64 ": move: copy into range %" PRIu64
                ": %s", j->rl.range_id, j->rl.dest, cairn_err_message(rc));
        return rc;
    }
    meta_range dest;
    rc = meta_range_get(ctl_meta(c), j->rl.table_id, j->rl.dest, &dest);
    if (rc == 0 && dest.state == META_RANGE_MIGRATING)
        rc = ctl_active(c) ? meta_range_end_migration(ctl_meta(c), &dest)
                           : CAIRN_ERR_SHUTDOWN;
    if (rc == 0)
        meta_range_clear(&dest);
    if (rc != 0)
        return rc;
    ctl_log(c, "range %" PRIu64 ": move: %" PRIu64 " records (%" PRIu64
            " bytes) copied into range %" PRIu64 " in %" PRIu64 " ms",
            j->rl.range_id, j->rl.copied_keys, j->rl.copied_bytes, j->rl.dest,
            j->rl.copy_ms);
    j->rl.step = META_RELOC_DROP;
    return save(c, j);
}

/* ---- DROP --------------------------------------------------------------- */

static int step_drop(ctl *c, rjob *j)
{
    rpc_request q;
    memset(&q, 0, sizeof q);
    q.type = RPC_DROP_REPLICA;
    q.id = 1;
    q.range_id = j->rl.range_id;
    int failed = 0;
    for (int i = 0; i < j->rl.n_src; i++) {
        char text[200], hint_addr[META_ADDR_MAX];
        uint64_t hint;
        const char *a = ctl_target_addr(&j->src, j->rl.src_nodes[i]);
        int rc = a ? ctl_call(a, &q, DROP_TIMEOUT_MS, text, sizeof text,
                              &hint, hint_addr)
                   : CAIRN_ERR_NOT_FOUND;
        if (rc != 0 && rc != CAIRN_ERR_RANGE_NOT_FOUND) {
            ctl_log(c, "range %" PRIu64 ": move: drop on node %" PRIu64
                    ": %s", j->rl.range_id, j->rl.src_nodes[i],
                    cairn_err_message(rc));
            failed = rc;
        }
    }
    if (failed)
        return failed; /* again later: a node that is down comes back */
    if (!ctl_active(c))
        return CAIRN_ERR_SHUTDOWN;
    return meta_relocation_delete(ctl_meta(c), j->rl.range_id,
                                  j->rl.mod_revision);
}

static int relocate_run(ctl *c, void *arg)
{
    rjob *j = arg;
    uint64_t t0 = ctl_now_ms();
    /* as etcd has it now: the pass's snapshot may predate the last task */
    int rc = meta_relocation_get(ctl_meta(c), j->rl.range_id, &j->rl);
    if (rc == CAIRN_ERR_NOT_FOUND)
        return 0; /* done meanwhile */
    if (rc != 0)
        return rc;
    if (j->table_gone) {
        /* nothing to move any more: the drop deletes what etcd names, the
         * orphan collector the rest (a table gone from etcd) */
        ctl_log(c, "range %" PRIu64 ": move given up: its table is "
                "dropped", j->rl.range_id);
        return ctl_active(c) ? meta_relocation_delete(ctl_meta(c),
                                                      j->rl.range_id,
                                                      j->rl.mod_revision)
                             : CAIRN_ERR_SHUTDOWN;
    }
    ctl_log(c, "range %" PRIu64 ": move to a new group: at step %s",
            j->rl.range_id, meta_reloc_step_name(j->rl.step));
    while (rc == 0) {
        meta_reloc_step at = j->rl.step;
        switch (at) {
        case META_RELOC_CREATE:
            rc = step_create(c, j);
            break;
        case META_RELOC_FENCE:
            rc = step_fence(c, j);
            break;
        case META_RELOC_SWITCH:
            rc = step_switch(c, j);
            break;
        case META_RELOC_COPY:
            rc = step_copy(c, j);
            break;
        case META_RELOC_DROP:
            rc = step_drop(c, j);
            if (rc == 0)
                ctl_log(c, "range %" PRIu64 ": moved to range %" PRIu64
                        " in %" PRIu64 " ms", j->rl.range_id, j->rl.dest,
                        ctl_now_ms() - t0);
            return rc;
        }
        if (rc == 0) {
            crash_point(c, at);
            test_pause();
        }
    }
    return rc;
}

/* ---- the reconciler ------------------------------------------------------
 * Every move recorded in etcd has a task, unless one runs. */

static void relocate_pass(ctl *c, void *state, const meta_map *map)
{
    (void)state;
    for (size_t i = 0; i < meta_map_relocation_count(map); i++) {
        const meta_relocation *rl = meta_map_relocation_at(map, i);
        if (ctl_task_busy(c, rl->range_id) || !ctl_active(c))
            continue;
        rjob *j = calloc(1, sizeof *j);
        if (j == NULL)
            return;
        j->rl = *rl;
        const meta_table *t = meta_map_table_by_id(map, rl->table_id);
        j->engine = t ? t->engine : META_ENGINE_BTREE;
        j->table_gone = t == NULL || t->state == META_TABLE_DROPPING;
        ctl_target_init(&j->src, map, rl->range_id,
                        meta_map_range(map, rl->range_id));
        ctl_target_init(&j->dst, map, rl->dest,
                        rl->dest ? meta_map_range(map, rl->dest) : NULL);
        j->dst.leader = rl->n_nodes ? rl->nodes[0] : 0;
        if (j->src.leader == 0 && rl->n_src)
            j->src.leader = rl->src_nodes[0];
        const meta_leader *l = meta_map_leader(map, rl->range_id);
        if (l)
            j->src.leader = l->node_id;
        ctl_task_start(c, rl->range_id, CTL_TASK_RELOCATE,
                       ctl_config(c)->max_relocations, relocate_run, j, 0, 0);
    }
}

const ctl_reconciler ctl_reconcile_relocate = {
    .name = "relocate",
    .run = relocate_pass,
};
