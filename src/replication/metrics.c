/*
 * metrics.c - a replica's metrics (role, indexes, log, size, follower lag)
 * and the digest of its data (replica_int.h).
 */
#include "replica_int.h"

#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

/* The ring is allocated when a leader first proposes, and freed when the
 * range sleeps (every follower is then caught up): ten thousand idle
 * ranges keep no 16 KiB each. */
void metrics_note_proposal(replica *r, raft_index index)
{
    if (r->lag == NULL && (r->lag = calloc(LAG_RING, sizeof *r->lag)) == NULL)
        return;
    r->lag[r->lag_pos % LAG_RING].index = index;
    r->lag[r->lag_pos % LAG_RING].ms = replica_now_ms(r);
    r->lag_pos++;
}

void metrics_refresh_size(replica *r)
{
    uint64_t now = replica_now_ms(r);
    if (now - r->size_checked_ms < 1000 && r->size_checked_ms != 0)
        return;
    r->size_checked_ms = now;
    engine_range_stats(r->eng, r->range_id, &r->size_bytes, &r->size_keys);
}

static const char *role_name(int state)
{
    switch (state) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_FOLLOWER:
        return "follower";
    default:
        return "unavailable";
    }
}

/* Seconds since the oldest entry above `match` was proposed (0 if none). */
static double lag_seconds(replica *r, raft_index match)
{
    uint64_t oldest = 0;
    unsigned n = r->lag == NULL ? 0 : r->lag_pos < LAG_RING ? r->lag_pos
                                                            : LAG_RING;
    for (unsigned i = 0; i < n; i++) {
        unsigned k = (r->lag_pos - 1 - i) % LAG_RING;
        if (r->lag[k].index <= match)
            break;
        oldest = r->lag[k].ms;
    }
    return oldest ? (double)(replica_now_ms(r) - oldest) / 1000.0 : 0.0;
}

static int metrics_followers(replica *r, buf *out)
{
    int rc = buf_append_str(out, ",\"followers\":[");
    raft_index last = raft_last_index(&r->raft);
    for (unsigned i = 0, n = 0; rc == 0 && i < r->raft.configuration.n; i++) {
        const struct raft_server *s = &r->raft.configuration.servers[i];
        if (s->id == r->raft.id)
            continue;
        raft_index match = r->raft.state == RAFT_LEADER
                               ? r->raft.leader_state.progress[i].match_index
                               : 0;
        rc = buf_appendf(out,
                         "%s{\"id\":%llu,\"address\":\"%s\",\"role\":\"%s\","
                         "\"match_index\":%llu,\"lag_entries\":%llu,"
                         "\"lag_seconds\":%.3f}",
                         n++ ? "," : "", (unsigned long long)s->id,
                         s->address,
                         s->role == RAFT_VOTER     ? "voter"
                         : s->role == RAFT_STANDBY ? "standby"
                                                   : "spare",
                         (unsigned long long)match,
                         (unsigned long long)(last > match ? last - match : 0),
                         lag_seconds(r, match));
    }
    return rc ? rc : buf_append_str(out, "]");
}

/* The range's bounds, hex ("" = unbounded): what a split changed. */
static int metrics_bounds(replica *r, buf *out)
{
    static const char digits[] = "0123456789abcdef";
    const buf *b[2] = {&r->meta.start, &r->meta.end};
    const char *name[2] = {",\"start\":\"", "\",\"end\":\""};
    int rc = 0;
    for (int k = 0; rc == 0 && k < 2; k++) {
        rc = buf_append_str(out, name[k]);
        for (size_t i = 0; rc == 0 && i < b[k]->len; i++) {
            char h[2] = {digits[b[k]->data[i] >> 4], digits[b[k]->data[i] & 15]};
            rc = buf_append(out, h, 2);
        }
    }
    return rc ? rc : buf_append_str(out, "\"");
}

void replica_get_stats(replica *r, bool refresh_size, replica_stats *out)
{
    memset(out, 0, sizeof *out);
    out->range_id = r->range_id;
    out->table_id = r->meta.table_id;
    out->epoch = r->meta.epoch;
    switch (r->raft.state) {
    case RAFT_LEADER: out->role = REPLICA_LEADER; break;
    case RAFT_CANDIDATE: out->role = REPLICA_CANDIDATE; break;
    case RAFT_FOLLOWER: out->role = REPLICA_FOLLOWER; break;
    default: out->role = REPLICA_UNAVAILABLE; break;
    }
    const char *addr;
    replica_leader(r, &out->leader_id, &addr);
    out->term = r->raft.current_term;
    out->commit_index = r->raft.commit_index;
    out->applied_index = r->raft.last_applied;
    out->last_index = raft_last_index(&r->raft);
    if (refresh_size)
        metrics_refresh_size(r);
    out->bytes = r->size_bytes;
    out->keys = r->size_keys;
    out->writes = r->n_writes;
    out->reads = r->n_reads;
    out->asleep = rio_asleep(r->io);
    for (unsigned i = 0; i < r->raft.configuration.n; i++) {
        const struct raft_server *s = &r->raft.configuration.servers[i];
        if (s->role == RAFT_VOTER)
            out->voters++;
        if (s->id == r->raft.id || r->raft.state != RAFT_LEADER)
            continue;
        raft_index match = r->raft.leader_state.progress[i].match_index;
        uint64_t lag = out->last_index > match ? out->last_index - match : 0;
        if (lag > out->lag_entries_max)
            out->lag_entries_max = lag;
        double secs = lag ? lag_seconds(r, match) : 0.0;
        if (secs > out->lag_seconds_max)
            out->lag_seconds_max = secs;
    }
}

/* Requests served, and where their load splits (load.c): hex, "" if
 * there is no such key. */
static int metrics_load(replica *r, buf *out)
{
    static const char digits[] = "0123456789abcdef";
    buf key = BUF_INIT;
    int rc = buf_appendf(out, ",\"ops\":%llu,\"load_key\":\"",
                         (unsigned long long)(r->n_writes + r->n_reads));
    if (rc == 0 && r->raft.state == RAFT_LEADER &&
        replica_load_key(r, &key) == 0)
        for (size_t i = 0; rc == 0 && i < key.len; i++) {
            char h[2] = {digits[key.data[i] >> 4], digits[key.data[i] & 15]};
            rc = buf_append(out, h, 2);
        }
    buf_free(&key);
    return rc ? rc : buf_append_str(out, "\"");
}

/* FNV-1a over every record of the range (tombstones included): equal on
 * two replicas at the same applied index iff their data is identical. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int replica_digest(replica *r, uint64_t *out)
{
    engine_iter *it;
    engine_entry en;
    uint64_t h = 0xcbf29ce484222325ull;
    fsm_flush(r);
    int rc = engine_iter_open(r->eng, NULL, r->range_id, NULL, 0, NULL, 0, 0,
                              ENGINE_ITER_TOMBSTONES, &it);
    if (rc != 0)
        return rc;
    while ((rc = engine_iter_next(it, &en)) == 1) {
        uint8_t lens[9];
        be_put_u32(lens, (uint32_t)en.key_len);
        be_put_u32(lens + 4, (uint32_t)en.value_len);
        lens[8] = en.tombstone;
        h = fnv(h, lens, sizeof lens);
        h = fnv(h, en.key, en.key_len);
        h = fnv(h, en.seq.bytes, SEQ_LEN);
        h = fnv(h, en.value, en.value_len);
    }
    engine_iter_close(it);
    *out = h;
    return rc;
}

int replica_metrics(replica *r, buf *out)
{
    return replica_metrics_aged(r, out, 0);
}

int replica_metrics_aged(replica *r, buf *out, uint64_t size_age_ms)
{
    struct raft_log *log = &r->raft.log;
    size_t n_log = log->back >= log->front ? log->back - log->front
                                           : log->size - log->front + log->back;
    uint64_t log_bytes = 0;
    for (size_t i = 0; i < n_log; i++)
        log_bytes += log->entries[(log->front + i) % log->size].buf.len;
    uint64_t lid;
    const char *laddr;
    replica_leader(r, &lid, &laddr);
    fsm_flush(r);
    if (size_age_ms == 0 || r->size_checked_ms == 0 ||
        replica_now_ms(r) - r->size_checked_ms >= size_age_ms) {
        r->size_checked_ms = 0;
        metrics_refresh_size(r);
    }
    int rc = buf_appendf(
        out,
        "{\"range\":%llu,\"table\":%llu,\"engine\":\"%s\",\"epoch\":%llu,"
        "\"role\":\"%s\",\"term\":%llu,\"leader\":%llu,"
        "\"commit_index\":%llu,\"applied_index\":%llu,"
        "\"store_applied_index\":%llu,\"last_index\":%llu,"
        "\"snapshot_index\":%llu,\"log_entries\":%zu,\"log_bytes\":%llu,"
        "\"range_bytes\":%llu,\"range_keys\":%llu,\"writes\":%llu,"
        "\"entries\":%llu,\"reads\":%llu,\"read_rounds\":%llu,"
        "\"barriers\":%llu,"
        "\"snapshots\":%llu,\"snapshots_installed\":%llu,"
        "\"catchups\":%llu,\"copied\":%llu,\"copy_bytes\":%llu,"
        "\"asleep\":%s,\"frozen\":%s",
        (unsigned long long)r->range_id,
        (unsigned long long)r->meta.table_id, engine_kind_name(r->meta.engine),
        (unsigned long long)r->meta.epoch, role_name(r->raft.state),
        (unsigned long long)r->raft.current_term, (unsigned long long)lid,
        (unsigned long long)r->raft.commit_index,
        (unsigned long long)r->raft.last_applied,
        (unsigned long long)r->applied,
        (unsigned long long)raft_last_index(&r->raft),
        (unsigned long long)log->snapshot.last_index, n_log,
        (unsigned long long)log_bytes, (unsigned long long)r->size_bytes,
        (unsigned long long)r->size_keys, (unsigned long long)r->n_writes,
        (unsigned long long)r->n_entries, (unsigned long long)r->n_reads,
        (unsigned long long)r->n_readindex,
        (unsigned long long)r->n_barriers, (unsigned long long)r->n_snapshots,
        (unsigned long long)r->n_installed, (unsigned long long)r->n_catchups,
        (unsigned long long)r->n_copied, (unsigned long long)r->copy_bytes,
        rio_asleep(r->io) ? "true" : "false",
        (r->meta.flags & RANGE_META_FROZEN) ? "true" : "false");
    if (rc == 0)
        rc = metrics_bounds(r, out);
    if (rc == 0)
        rc = metrics_load(r, out);
    if (rc == 0)
        rc = metrics_followers(r, out);
    return rc ? rc : buf_append_str(out, "}");
}

