/* etcd_json.c - see etcd_json.h. Also the transaction builder, since a
 * transaction is built directly as its JSON request. */
#include "meta/etcd_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/b64.h"

int64_t etcd_json_int(const cJSON *obj, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsString(f))
        return strtoll(f->valuestring, NULL, 10);
    if (cJSON_IsNumber(f))
        return (int64_t)f->valuedouble;
    return 0;
}

cJSON *etcd_json_add_int(cJSON *obj, const char *name, int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRId64, v);
    return cJSON_AddStringToObject(obj, name, s);
}

cJSON *etcd_json_add_bytes(cJSON *obj, const char *name, const void *p,
                           size_t n)
{
    buf b = BUF_INIT;
    if (meta_b64_encode(&b, p, n) != 0)
        return NULL;
    cJSON *s = cJSON_AddStringToObject(obj, name, (char *)b.data);
    buf_free(&b);
    return s;
}

int etcd_json_bytes(const cJSON *obj, const char *name, uint8_t **out,
                    size_t *len)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (f && !cJSON_IsString(f))
        return CAIRN_ERR_CORRUPT;
    const char *s = f ? f->valuestring : "";
    return meta_b64_decode(s, strlen(s), out, len);
}

int etcd_json_kv(const cJSON *o, etcd_kv *kv)
{
    memset(kv, 0, sizeof *kv);
    if (!cJSON_IsObject(o))
        return CAIRN_ERR_CORRUPT;
    int rc = etcd_json_bytes(o, "key", &kv->key, &kv->key_len);
    if (rc == 0)
        rc = etcd_json_bytes(o, "value", &kv->value, &kv->value_len);
    if (rc != 0) {
        etcd_kv_free(kv);
        return rc;
    }
    kv->create_revision = etcd_json_int(o, "create_revision");
    kv->mod_revision = etcd_json_int(o, "mod_revision");
    kv->version = etcd_json_int(o, "version");
    kv->lease = etcd_json_int(o, "lease");
    return CAIRN_OK;
}

int etcd_json_range(const cJSON *o, etcd_range_result *r)
{
    memset(r, 0, sizeof *r);
    r->revision = etcd_json_int(
        cJSON_GetObjectItemCaseSensitive(o, "header"), "revision");
    r->more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "more"));
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(o, "kvs");
    int n = cJSON_GetArraySize(kvs);
    if (n == 0)
        return CAIRN_OK;
    r->kvs = calloc((size_t)n, sizeof *r->kvs);
    if (!r->kvs)
        return CAIRN_ERR_NOMEM;
    const cJSON *item;
    cJSON_ArrayForEach(item, kvs)
    {
        int rc = etcd_json_kv(item, &r->kvs[r->count]);
        if (rc != 0) {
            etcd_range_free(r);
            return rc;
        }
        r->count++;
    }
    return CAIRN_OK;
}

const char *etcd_json_error(const cJSON *o)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (cJSON_IsString(e))
        return e->valuestring;
    if (cJSON_IsObject(e)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        return cJSON_IsString(m) ? m->valuestring : "error";
    }
    return NULL;
}

size_t etcd_json_stream_next(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' ||
                       p[i] == '\t'))
        i++;
    int depth = 0;
    bool in_string = false, escaped = false;
    for (; i < len; i++) {
        char c = p[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{') {
            depth++;
        } else if (c == '}') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return 0;
}

int etcd_json_watch_parse(const cJSON *o, etcd_json_watch *w)
{
    memset(w, 0, sizeof *w);
    w->error = etcd_json_error(o);
    if (w->error)
        return CAIRN_OK;
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "result");
    if (!cJSON_IsObject(res))
        return CAIRN_ERR_CORRUPT;
    w->header_revision = etcd_json_int(
        cJSON_GetObjectItemCaseSensitive(res, "header"), "revision");
    w->compact_revision = etcd_json_int(res, "compact_revision");
    w->created = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created"));
    w->canceled =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"));
    const cJSON *evs = cJSON_GetObjectItemCaseSensitive(res, "events");
    int n = cJSON_GetArraySize(evs);
    if (n == 0)
        return CAIRN_OK;
    w->events = calloc((size_t)n, sizeof *w->events);
    if (!w->events)
        return CAIRN_ERR_NOMEM;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, evs)
    {
        etcd_event *e = &w->events[w->n_events];
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
        e->type = cJSON_IsString(type) && strcmp(type->valuestring, "DELETE") == 0
                      ? ETCD_EVENT_DELETE
                      : ETCD_EVENT_PUT;
        int rc = etcd_json_kv(cJSON_GetObjectItemCaseSensitive(ev, "kv"), &e->kv);
        if (rc != 0) {
            etcd_json_watch_free(w);
            return rc;
        }
        w->n_events++;
    }
    return CAIRN_OK;
}

void etcd_json_watch_free(etcd_json_watch *w)
{
    for (size_t i = 0; i < w->n_events; i++)
        etcd_kv_free(&w->events[i].kv);
    free(w->events);
    w->events = NULL;
    w->n_events = 0;
}

/* ---- the transaction builder ---------------------------------------- */

struct etcd_txn {
    cJSON *root; /* {"compare": [], "success": [], "failure": []} */
    cJSON *compare, *success, *failure;
};

etcd_txn *etcd_txn_new(void)
{
    etcd_txn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->root = cJSON_CreateObject();
    if (t->root) {
        t->compare = cJSON_AddArrayToObject(t->root, "compare");
        t->success = cJSON_AddArrayToObject(t->root, "success");
        t->failure = cJSON_AddArrayToObject(t->root, "failure");
    }
    if (!t->failure) {
        etcd_txn_free(t);
        return NULL;
    }
    return t;
}

void etcd_txn_free(etcd_txn *t)
{
    if (!t)
        return;
    cJSON_Delete(t->root);
    free(t);
}

static const char *const cmp_target_names[] = {"VERSION", "CREATE", "MOD",
                                               "VALUE", "LEASE"};
static const char *const cmp_target_fields[] = {
    "version", "create_revision", "mod_revision", "value", "lease"};
static const char *const cmp_op_names[] = {"EQUAL", "GREATER", "LESS",
                                           "NOT_EQUAL"};

static cJSON *txn_cmp_base(etcd_txn *t, const void *key, size_t key_len,
                           etcd_cmp_target target, etcd_cmp_op op)
{
    if ((unsigned)target > ETCD_CMP_LEASE || (unsigned)op > ETCD_CMP_NOT_EQUAL)
        return NULL;
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return NULL;
    cJSON_AddItemToArray(t->compare, c);
    if (!cJSON_AddStringToObject(c, "result", cmp_op_names[op]) ||
        !cJSON_AddStringToObject(c, "target", cmp_target_names[target]) ||
        !etcd_json_add_bytes(c, "key", key, key_len))
        return NULL;
    return c;
}

int etcd_txn_cmp(etcd_txn *t, const void *key, size_t key_len,
                 etcd_cmp_target target, etcd_cmp_op op, int64_t v)
{
    if (target == ETCD_CMP_VALUE)
        return CAIRN_ERR_INVALID;
    cJSON *c = txn_cmp_base(t, key, key_len, target, op);
    if (!c || !etcd_json_add_int(c, cmp_target_fields[target], v))
        return CAIRN_ERR_NOMEM;
    return CAIRN_OK;
}

int etcd_txn_cmp_value(etcd_txn *t, const void *key, size_t key_len,
                       etcd_cmp_op op, const void *value, size_t value_len)
{
    cJSON *c = txn_cmp_base(t, key, key_len, ETCD_CMP_VALUE, op);
    if (!c || !etcd_json_add_bytes(c, "value", value, value_len))
        return CAIRN_ERR_NOMEM;
    return CAIRN_OK;
}

/* Append {"<kind>": {}} to a branch and return the inner object. */
static cJSON *txn_op(etcd_txn *t, bool on_success, const char *kind)
{
    cJSON *op = cJSON_CreateObject();
    if (!op)
        return NULL;
    cJSON_AddItemToArray(on_success ? t->success : t->failure, op);
    return cJSON_AddObjectToObject(op, kind);
}

int etcd_txn_put(etcd_txn *t, bool on_success, const void *key,
                 size_t key_len, const void *value, size_t value_len,
                 int64_t lease)
{
    cJSON *r = txn_op(t, on_success, "request_put");
    if (!r || !etcd_json_add_bytes(r, "key", key, key_len) ||
        !etcd_json_add_bytes(r, "value", value, value_len) ||
        (lease && !etcd_json_add_int(r, "lease", lease)))
        return CAIRN_ERR_NOMEM;
    return CAIRN_OK;
}

static int txn_keyed(etcd_txn *t, bool on_success, const char *kind,
                     const void *key, size_t key_len, const void *end,
                     size_t end_len)
{
    cJSON *r = txn_op(t, on_success, kind);
    if (!r || !etcd_json_add_bytes(r, "key", key, key_len) ||
        (end && !etcd_json_add_bytes(r, "range_end", end, end_len)))
        return CAIRN_ERR_NOMEM;
    return CAIRN_OK;
}

int etcd_txn_delete(etcd_txn *t, bool on_success, const void *key,
                    size_t key_len, const void *range_end,
                    size_t range_end_len)
{
    return txn_keyed(t, on_success, "request_delete_range", key, key_len,
                     range_end, range_end_len);
}

int etcd_txn_get(etcd_txn *t, bool on_success, const void *key,
                 size_t key_len, const void *range_end, size_t range_end_len)
{
    return txn_keyed(t, on_success, "request_range", key, key_len, range_end,
                     range_end_len);
}

char *etcd_txn_json(const etcd_txn *t)
{
    return cJSON_PrintUnformatted(t->root);
}

int etcd_json_txn_result(const cJSON *o, etcd_txn_result *r)
{
    memset(r, 0, sizeof *r);
    r->succeeded =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "succeeded"));
    r->revision = etcd_json_int(
        cJSON_GetObjectItemCaseSensitive(o, "header"), "revision");
    const cJSON *resps = cJSON_GetObjectItemCaseSensitive(o, "responses");
    int n = cJSON_GetArraySize(resps);
    if (n == 0)
        return CAIRN_OK;
    r->gets = calloc((size_t)n, sizeof *r->gets);
    if (!r->gets)
        return CAIRN_ERR_NOMEM;
    const cJSON *item;
    cJSON_ArrayForEach(item, resps)
    {
        const cJSON *rr =
            cJSON_GetObjectItemCaseSensitive(item, "response_range");
        if (!rr)
            continue;
        int rc = etcd_json_range(rr, &r->gets[r->n_gets]);
        if (rc != 0) {
            etcd_txn_result_free(r);
            return rc;
        }
        r->n_gets++;
    }
    return CAIRN_OK;
}
