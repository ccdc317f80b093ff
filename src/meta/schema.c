/* schema.c - see schema.h. */
#include "meta/schema.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static const char *const id_kind_names[] = {"node", "table", "range"};

int meta_key_table(buf *b, const char *prefix, const char *name)
{
    buf_reset(b);
    return buf_appendf(b, "%s/tables/%s", prefix, name);
}

int meta_key_range(buf *b, const char *prefix, uint64_t table, uint64_t range)
{
    buf_reset(b);
    return buf_appendf(b, "%s/ranges/%016" PRIx64 "/%016" PRIx64, prefix,
                       table, range);
}

int meta_key_table_ranges(buf *b, const char *prefix, uint64_t table)
{
    buf_reset(b);
    return buf_appendf(b, "%s/ranges/%016" PRIx64 "/", prefix, table);
}

int meta_key_leader(buf *b, const char *prefix, uint64_t range)
{
    buf_reset(b);
    return buf_appendf(b, "%s/leaders/%016" PRIx64, prefix, range);
}

int meta_key_node(buf *b, const char *prefix, uint64_t node)
{
    buf_reset(b);
    return buf_appendf(b, "%s/nodes/%016" PRIx64, prefix, node);
}

int meta_key_live(buf *b, const char *prefix, uint64_t node)
{
    buf_reset(b);
    return buf_appendf(b, "%s/live/%016" PRIx64, prefix, node);
}

int meta_key_id(buf *b, const char *prefix, meta_id_kind kind)
{
    buf_reset(b);
    return buf_appendf(b, "%s/ids/%s", prefix, id_kind_names[kind]);
}

int meta_key_health(buf *b, const char *prefix, uint64_t node)
{
    buf_reset(b);
    return buf_appendf(b, "%s/health/%016" PRIx64, prefix, node);
}

int meta_key_drain(buf *b, const char *prefix, uint64_t node)
{
    buf_reset(b);
    return buf_appendf(b, "%s/drain/%016" PRIx64, prefix, node);
}

int meta_key_move(buf *b, const char *prefix, uint64_t range)
{
    buf_reset(b);
    return buf_appendf(b, "%s/moves/%016" PRIx64, prefix, range);
}

int meta_key_relocation(buf *b, const char *prefix, uint64_t range)
{
    buf_reset(b);
    return buf_appendf(b, "%s/relocations/%016" PRIx64, prefix, range);
}

int meta_key_balance(buf *b, const char *prefix)
{
    buf_reset(b);
    return buf_appendf(b, "%s/balance", prefix);
}

int meta_key_all(buf *b, const char *prefix)
{
    buf_reset(b);
    return buf_appendf(b, "%s/", prefix);
}

/* Exactly 16 lower-case hex digits -> *v. */
static bool parse_id16(const char *s, size_t n, uint64_t *v)
{
    if (n != 16)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return true;
}

/* If rest starts with "<word>/", the part after it. */
static const char *after(const char *rest, size_t n, const char *word,
                         size_t *left)
{
    size_t w = strlen(word);
    if (n <= w || memcmp(rest, word, w) != 0 || rest[w] != '/')
        return NULL;
    *left = n - w - 1;
    return rest + w + 1;
}

int meta_key_parse(const char *prefix, const uint8_t *key, size_t len,
                   meta_key *out)
{
    size_t pl = strlen(prefix);
    if (len <= pl || memcmp(key, prefix, pl) != 0 || key[pl] != '/')
        return CAIRN_ERR_INVALID;
    const char *rest = (const char *)key + pl + 1;
    size_t n = len - pl - 1, m;
    const char *p;
    memset(out, 0, sizeof *out);
    out->kind = META_KEY_OTHER;
    if ((p = after(rest, n, "tables", &m))) {
        if (m >= 1 && m <= CAIRN_TABLE_NAME_MAX && !memchr(p, '\0', m)) {
            memcpy(out->name, p, m);
            out->name[m] = '\0';
            if (meta_table_name_check(out->name) == 0)
                out->kind = META_KEY_TABLE;
        }
    } else if ((p = after(rest, n, "ranges", &m))) {
        if (m == 33 && p[16] == '/' && parse_id16(p, 16, &out->a) &&
            parse_id16(p + 17, 16, &out->b))
            out->kind = META_KEY_RANGE;
    } else if ((p = after(rest, n, "leaders", &m))) {
        if (parse_id16(p, m, &out->a))
            out->kind = META_KEY_LEADER;
    } else if ((p = after(rest, n, "nodes", &m))) {
        if (parse_id16(p, m, &out->a))
            out->kind = META_KEY_NODE;
    } else if ((p = after(rest, n, "live", &m))) {
        if (parse_id16(p, m, &out->a))
            out->kind = META_KEY_LIVE;
    } else if ((p = after(rest, n, "health", &m))) {
        if (parse_id16(p, m, &out->a))
            out->kind = META_KEY_HEALTH;
    } else if ((p = after(rest, n, "drain", &m))) {
        if (parse_id16(p, m, &out->a))
            out->kind = META_KEY_DRAIN;
    } else if ((p = after(rest, n, "moves", &m))) {
        if (parse_id16(p, m, &out->a))
            out->kind = META_KEY_MOVE;
    } else if ((p = after(rest, n, "relocations", &m))) {
        if (parse_id16(p, m, &out->a))
            out->kind = META_KEY_RELOCATION;
    } else if (n == 7 && memcmp(rest, "balance", 7) == 0) {
        out->kind = META_KEY_BALANCE;
    } else if ((p = after(rest, n, "ids", &m))) {
        for (uint64_t k = 0; k < 3; k++)
            if (m == strlen(id_kind_names[k]) &&
                memcmp(p, id_kind_names[k], m) == 0) {
                out->kind = META_KEY_ID;
                out->a = k;
            }
    }
    return CAIRN_OK;
}

/* ---- JSON helpers ----------------------------------------------------- */

static cJSON *parse_obj(const uint8_t *v, size_t n)
{
    cJSON *o = cJSON_ParseWithLength((const char *)v, n);
    if (o && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A non-negative integer field (JSON number). */
static bool get_u64(const cJSON *o, const char *name, uint64_t *out)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(f) || f->valuedouble < 0 ||
        f->valuedouble > 9007199254740992.0 ||
        f->valuedouble != (double)(uint64_t)f->valuedouble)
        return false;
    *out = (uint64_t)f->valuedouble;
    return true;
}

static const char *get_str(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

static char *print_and_free(cJSON *o, bool ok)
{
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* ---- tables ----------------------------------------------------------- */

static const char *const table_states[] = {"creating", "ready", "dropping"};

char *meta_table_encode(const meta_table *t)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "id", (double)t->id) &&
              cJSON_AddStringToObject(o, "engine", meta_engine_name(t->engine)) &&
              cJSON_AddNumberToObject(o, "replicas", t->replicas) &&
              cJSON_AddStringToObject(o, "state", table_states[t->state]);
    return print_and_free(o, ok);
}

int meta_table_decode(const uint8_t *v, size_t n, meta_table *t)
{
    cJSON *o = parse_obj(v, n);
    uint64_t id, replicas;
    const char *engine = get_str(o, "engine"), *state = get_str(o, "state");
    int rc = CAIRN_ERR_CORRUPT;
    if (o && get_u64(o, "id", &id) && id > 0 &&
        get_u64(o, "replicas", &replicas) && replicas >= 1 &&
        replicas <= META_MAX_REPLICAS && engine &&
        meta_engine_parse(engine, &t->engine) == 0 && state) {
        for (int s = 0; s < 3; s++)
            if (strcmp(state, table_states[s]) == 0) {
                t->state = (meta_table_state)s;
                t->id = id;
                t->replicas = (int)replicas;
                rc = CAIRN_OK;
            }
    }
    cJSON_Delete(o);
    return rc;
}

/* ---- ranges ----------------------------------------------------------- */

static cJSON *add_hex(cJSON *o, const char *name, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * n] = '\0';
    cJSON *r = cJSON_AddStringToObject(o, name, s);
    free(s);
    return r;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A hex string field -> new allocation (NULL for empty). */
static bool get_hex(const cJSON *o, const char *name, uint8_t **out,
                    size_t *len)
{
    const char *s = get_str(o, name);
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n % 2 || n / 2 > CAIRN_KEY_MAX)
        return false;
    *out = NULL;
    *len = n / 2;
    if (n == 0)
        return true;
    uint8_t *d = malloc(n / 2);
    if (!d)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(d);
            return false;
        }
        d[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = d;
    return true;
}

/* An array of node ids. */
static bool add_ids(cJSON *o, const char *name, const uint64_t *ids, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, name);
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber((double)ids[i]);
        if (x == NULL || !cJSON_AddItemToArray(a, x))
            return false;
    }
    return a != NULL;
}

/* An array of at most META_MAX_REPLICAS node ids (>= 1); absent = none. */
static bool get_ids(const cJSON *o, const char *name, uint64_t *ids, int *n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name);
    *n = 0;
    if (a == NULL)
        return true;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > META_MAX_REPLICAS)
        return false;
    const cJSON *x;
    cJSON_ArrayForEach(x, a)
    {
        if (!cJSON_IsNumber(x) || x->valuedouble < 1 ||
            x->valuedouble > 9007199254740992.0)
            return false;
        ids[(*n)++] = (uint64_t)x->valuedouble;
    }
    return true;
}

/* An optional non-negative integer (absent = 0). */
static bool get_opt_u64(const cJSON *o, const char *name, uint64_t *out)
{
    *out = 0;
    return cJSON_GetObjectItemCaseSensitive(o, name) == NULL ||
           get_u64(o, name, out);
}

char *meta_range_encode(const meta_range *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *reps = NULL;
    bool ok = o && cJSON_AddNumberToObject(o, "id", (double)r->id) &&
              cJSON_AddNumberToObject(o, "table", (double)r->table_id) &&
              add_hex(o, "start", r->start, r->start_len) &&
              add_hex(o, "end", r->end, r->end_len) &&
              cJSON_AddNumberToObject(o, "epoch", (double)r->epoch) &&
              (reps = cJSON_AddArrayToObject(o, "replicas")) &&
              cJSON_AddStringToObject(o, "state", r->state == META_RANGE_MIGRATING
                                                      ? "migrating" : "normal") &&
              cJSON_AddNumberToObject(o, "from", (double)r->from);
    for (int i = 0; ok && i < r->n_replicas; i++) {
        cJSON *x = cJSON_CreateNumber((double)r->replicas[i]);
        ok = x && cJSON_AddItemToArray(reps, x);
    }
    if (ok && r->state == META_RANGE_MIGRATING)
        ok = cJSON_AddNumberToObject(o, "from_epoch",
                                     (double)r->from_epoch) &&
             add_ids(o, "from_replicas", r->from_replicas, r->n_from);
    return print_and_free(o, ok);
}

static bool decode_replicas(const cJSON *o, meta_range *r)
{
    const cJSON *reps = cJSON_GetObjectItemCaseSensitive(o, "replicas");
    int n = cJSON_GetArraySize(reps);
    if (!cJSON_IsArray(reps) || n > META_MAX_REPLICAS)
        return false;
    r->n_replicas = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, reps)
    {
        if (!cJSON_IsNumber(x) || x->valuedouble < 1)
            return false;
        r->replicas[r->n_replicas++] = (uint64_t)x->valuedouble;
    }
    return true;
}

int meta_range_decode(const uint8_t *v, size_t n, meta_range *r)
{
    memset(r, 0, sizeof *r);
    cJSON *o = parse_obj(v, n);
    const char *state = get_str(o, "state");
    bool ok = o && get_u64(o, "id", &r->id) &&
              get_u64(o, "table", &r->table_id) &&
              get_u64(o, "epoch", &r->epoch) && get_u64(o, "from", &r->from) &&
              decode_replicas(o, r) && state &&
              (strcmp(state, "normal") == 0 || strcmp(state, "migrating") == 0) &&
              get_hex(o, "start", &r->start, &r->start_len) &&
              get_hex(o, "end", &r->end, &r->end_len) &&
              get_opt_u64(o, "from_epoch", &r->from_epoch) &&
              get_ids(o, "from_replicas", r->from_replicas, &r->n_from);
    if (ok && strcmp(state, "migrating") == 0)
        r->state = META_RANGE_MIGRATING;
    /* A range must not be empty: start < end unless end is +inf. */
    if (ok && r->end_len > 0 &&
        key_cmp(r->start, r->start_len, r->end, r->end_len) >= 0)
        ok = false;
    cJSON_Delete(o);
    if (!ok) {
        meta_range_clear(r);
        return CAIRN_ERR_CORRUPT;
    }
    return CAIRN_OK;
}

/* ---- leaders, nodes, counters ----------------------------------------- */

char *meta_leader_encode(const meta_leader *l)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "node", (double)l->node_id) &&
              cJSON_AddNumberToObject(o, "term", (double)l->term);
    return print_and_free(o, ok);
}

int meta_leader_decode(const uint8_t *v, size_t n, meta_leader *l)
{
    cJSON *o = parse_obj(v, n);
    bool ok = o && get_u64(o, "node", &l->node_id) &&
              get_u64(o, "term", &l->term);
    cJSON_Delete(o);
    return ok ? CAIRN_OK : CAIRN_ERR_CORRUPT;
}

char *meta_node_encode(const meta_node *nd)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "addr", nd->addr) &&
              cJSON_AddNumberToObject(o, "capacity", (double)nd->capacity);
    if (ok && nd->zone[0]) /* absent when none: older readers are unaware */
        ok = cJSON_AddStringToObject(o, "zone", nd->zone) != NULL;
    return print_and_free(o, ok);
}

int meta_node_decode(const uint8_t *v, size_t n, meta_node *nd)
{
    cJSON *o = parse_obj(v, n);
    const char *addr = get_str(o, "addr"), *zone = get_str(o, "zone");
    bool ok = o && addr && strlen(addr) < META_ADDR_MAX &&
              get_u64(o, "capacity", &nd->capacity) &&
              (!zone || strlen(zone) < META_ZONE_MAX);
    if (ok) {
        strcpy(nd->addr, addr);
        strcpy(nd->zone, zone ? zone : "");
    }
    cJSON_Delete(o);
    return ok ? CAIRN_OK : CAIRN_ERR_CORRUPT;
}

/* ---- the controller's records (meta.h, "health, drains, moves") -------- */

static const char *const node_states[] = {"live", "suspect", "dead"};
static const char *const move_kinds[] = {"replace", "lagging", "repair",
                                         "drain", "rebalance", "rebuild"};
#define N_MOVE_KINDS (int)(sizeof move_kinds / sizeof move_kinds[0])

const char *meta_node_state_name(meta_node_state st)
{
    return (unsigned)st < 3 ? node_states[st] : "?";
}

const char *meta_move_kind_name(meta_move_kind k)
{
    return (unsigned)k < (unsigned)N_MOVE_KINDS ? move_kinds[k] : "?";
}

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

char *meta_health_encode(const meta_health *h)
{
    cJSON *o = cJSON_CreateObject(), *lag = NULL;
    bool ok = o &&
              cJSON_AddStringToObject(o, "state", meta_node_state_name(h->state)) &&
              cJSON_AddNumberToObject(o, "since", (double)h->since) &&
              cJSON_AddStringToObject(o, "reason", h->reason) &&
              cJSON_AddNumberToObject(o, "replicas_lost", (double)h->replicas_lost) &&
              cJSON_AddNumberToObject(o, "bytes", (double)h->bytes) &&
              cJSON_AddNumberToObject(o, "lag_entries", (double)h->lag_entries) &&
              cJSON_AddNumberToObject(o, "lag_seconds", h->lag_seconds) &&
              (lag = cJSON_AddArrayToObject(o, "lagging")) &&
              cJSON_AddNumberToObject(o, "updated", (double)h->updated);
    for (int i = 0; ok && i < h->n_lagging && i < META_HEALTH_LAGGING_MAX; i++) {
        cJSON *x = cJSON_CreateNumber((double)h->lagging[i]);
        ok = x && cJSON_AddItemToArray(lag, x);
    }
    return print_and_free(o, ok);
}

int meta_health_decode(const uint8_t *v, size_t n, meta_health *h)
{
    memset(h, 0, sizeof *h);
    cJSON *o = parse_obj(v, n);
    const char *reason = get_str(o, "reason");
    int st = name_index(get_str(o, "state"), node_states, 3);
    const cJSON *secs = cJSON_GetObjectItemCaseSensitive(o, "lag_seconds");
    const cJSON *lag = cJSON_GetObjectItemCaseSensitive(o, "lagging");
    bool ok = o && st >= 0 && reason && get_u64(o, "since", &h->since) &&
              get_u64(o, "replicas_lost", &h->replicas_lost) &&
              get_u64(o, "bytes", &h->bytes) &&
              get_u64(o, "lag_entries", &h->lag_entries) &&
              cJSON_IsNumber(secs) && cJSON_IsArray(lag) &&
              get_u64(o, "updated", &h->updated);
    if (ok) {
        h->state = (meta_node_state)st;
        snprintf(h->reason, sizeof h->reason, "%s", reason);
        h->lag_seconds = secs->valuedouble;
        const cJSON *x;
        cJSON_ArrayForEach(x, lag)
        {
            if (!cJSON_IsNumber(x) || x->valuedouble < 1)
                ok = false;
            else if (h->n_lagging < META_HEALTH_LAGGING_MAX)
                h->lagging[h->n_lagging++] = (uint64_t)x->valuedouble;
        }
    }
    cJSON_Delete(o);
    return ok ? CAIRN_OK : CAIRN_ERR_CORRUPT;
}

char *meta_drain_encode(const meta_drain *d)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "since", (double)d->since) &&
              cJSON_AddNumberToObject(o, "replicas", (double)d->replicas);
    return print_and_free(o, ok);
}

int meta_drain_decode(const uint8_t *v, size_t n, meta_drain *d)
{
    cJSON *o = parse_obj(v, n);
    bool ok = o && get_u64(o, "since", &d->since) &&
              get_u64(o, "replicas", &d->replicas);
    cJSON_Delete(o);
    return ok ? CAIRN_OK : CAIRN_ERR_CORRUPT;
}

char *meta_move_encode(const meta_move *mv)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "range", (double)mv->range_id) &&
              cJSON_AddNumberToObject(o, "table", (double)mv->table_id) &&
              cJSON_AddStringToObject(o, "kind", meta_move_kind_name(mv->kind)) &&
              cJSON_AddNumberToObject(o, "add", (double)mv->add) &&
              cJSON_AddNumberToObject(o, "remove", (double)mv->remove) &&
              cJSON_AddNumberToObject(o, "since", (double)mv->since) &&
              cJSON_AddStringToObject(o, "by", mv->by);
    return print_and_free(o, ok);
}

int meta_move_decode(const uint8_t *v, size_t n, meta_move *mv)
{
    memset(mv, 0, sizeof *mv);
    cJSON *o = parse_obj(v, n);
    int k = name_index(get_str(o, "kind"), move_kinds, N_MOVE_KINDS);
    const char *by = get_str(o, "by");
    bool ok = o && k >= 0 && by && get_u64(o, "range", &mv->range_id) &&
              get_u64(o, "table", &mv->table_id) &&
              get_u64(o, "add", &mv->add) &&
              get_u64(o, "remove", &mv->remove) &&
              get_u64(o, "since", &mv->since);
    if (ok) {
        mv->kind = (meta_move_kind)k;
        snprintf(mv->by, sizeof mv->by, "%s", by);
    }
    cJSON_Delete(o);
    return ok ? CAIRN_OK : CAIRN_ERR_CORRUPT;
}

static const char *const reloc_steps[] = {"create", "fence", "switch",
                                          "copy", "drop"};
#define N_RELOC_STEPS (int)(sizeof reloc_steps / sizeof reloc_steps[0])

const char *meta_reloc_step_name(meta_reloc_step s)
{
    return (unsigned)s < (unsigned)N_RELOC_STEPS ? reloc_steps[s] : "?";
}

char *meta_relocation_encode(const meta_relocation *r)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "range", (double)r->range_id) &&
              cJSON_AddNumberToObject(o, "table", (double)r->table_id) &&
              cJSON_AddNumberToObject(o, "dest", (double)r->dest) &&
              add_ids(o, "nodes", r->nodes, r->n_nodes) &&
              add_ids(o, "src_nodes", r->src_nodes, r->n_src) &&
              cJSON_AddStringToObject(o, "step",
                                      meta_reloc_step_name(r->step)) &&
              cJSON_AddNumberToObject(o, "fence_epoch",
                                      (double)r->fence_epoch) &&
              cJSON_AddStringToObject(o, "fence_seq", r->fence_seq) &&
              cJSON_AddNumberToObject(o, "dest_epoch",
                                      (double)r->dest_epoch) &&
              cJSON_AddNumberToObject(o, "copied_keys",
                                      (double)r->copied_keys) &&
              cJSON_AddNumberToObject(o, "copied_bytes",
                                      (double)r->copied_bytes) &&
              cJSON_AddNumberToObject(o, "since", (double)r->since) &&
              cJSON_AddNumberToObject(o, "copy_ms", (double)r->copy_ms) &&
              cJSON_AddStringToObject(o, "by", r->by);
    return print_and_free(o, ok);
}

int meta_relocation_decode(const uint8_t *v, size_t n, meta_relocation *r)
{
    memset(r, 0, sizeof *r);
    cJSON *o = parse_obj(v, n);
    int k = name_index(get_str(o, "step"), reloc_steps, N_RELOC_STEPS);
    const char *by = get_str(o, "by"), *fs = get_str(o, "fence_seq");
    bool ok = o && k >= 0 && by && fs && strlen(fs) <= SEQ_HEX_LEN &&
              get_u64(o, "range", &r->range_id) &&
              get_u64(o, "table", &r->table_id) &&
              get_u64(o, "dest", &r->dest) &&
              get_ids(o, "nodes", r->nodes, &r->n_nodes) && r->n_nodes > 0 &&
              get_ids(o, "src_nodes", r->src_nodes, &r->n_src) &&
              get_u64(o, "fence_epoch", &r->fence_epoch) &&
              get_u64(o, "dest_epoch", &r->dest_epoch) &&
              get_u64(o, "copied_keys", &r->copied_keys) &&
              get_u64(o, "copied_bytes", &r->copied_bytes) &&
              get_u64(o, "since", &r->since) &&
              get_u64(o, "copy_ms", &r->copy_ms);
    if (ok) {
        r->step = (meta_reloc_step)k;
        snprintf(r->by, sizeof r->by, "%s", by);
        snprintf(r->fence_seq, sizeof r->fence_seq, "%s", fs);
    }
    cJSON_Delete(o);
    return ok ? CAIRN_OK : CAIRN_ERR_CORRUPT;
}

char *meta_balance_encode(const meta_balance *b)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddNumberToObject(o, "since", (double)b->since) &&
              cJSON_AddNumberToObject(o, "total", (double)b->total) &&
              cJSON_AddNumberToObject(o, "done", (double)b->done);
    return print_and_free(o, ok);
}

int meta_balance_decode(const uint8_t *v, size_t n, meta_balance *b)
{
    memset(b, 0, sizeof *b);
    cJSON *o = parse_obj(v, n);
    bool ok = o && get_u64(o, "since", &b->since) &&
              get_u64(o, "total", &b->total) && get_u64(o, "done", &b->done);
    cJSON_Delete(o);
    return ok ? CAIRN_OK : CAIRN_ERR_CORRUPT;
}

int meta_counter_decode(const uint8_t *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - 9) / 10)
            return CAIRN_ERR_CORRUPT;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return CAIRN_OK;
}

