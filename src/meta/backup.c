/*
 * backup.c - meta_backup / meta_restore (meta.h): a logical backup of one
 * cluster's prefix, so it works when clusters share an etcd (an etcd
 * snapshot saves everybody's keys; docs/OPERATIONS.md covers both).
 *
 * File format, JSON lines:
 *   {"cairn_meta_backup":1,"prefix":"/cairn","revision":"123","keys":"2"}
 *   {"key":"<base64 of the key without the prefix>","value":"<base64>"}
 * It is written to FILE.tmp, fsync'd, then renamed: a crash never leaves
 * a half backup under the final name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/etcd_json.h"
#include "meta/meta_internal.h"
#include "meta/schema.h"

#define RESTORE_BATCH 100 /* etcd allows 128 operations per txn */

static int write_line(FILE *f, cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    int rc = s && fprintf(f, "%s\n", s) > 0 ? CAIRN_OK : CAIRN_ERR_IO;
    if (!s && o)
        rc = CAIRN_ERR_NOMEM;
    free(s);
    cJSON_Delete(o);
    return rc;
}

/* The keys to back up: all under the prefix but those attached to a lease
 * (liveness, the controller's election): they belong to a process that is
 * alive now, and a restored copy without its lease would never go away. */
static bool backed_up(const meta *m, const etcd_kv *kv)
{
    meta_key k;
    return meta_key_parse(m->prefix, kv->key, kv->key_len, &k) == 0 &&
           k.kind != META_KEY_LIVE && kv->lease == 0;
}

static int write_backup(meta *m, FILE *f, const etcd_range_result *r,
                        size_t *n_keys)
{
    size_t pl = strlen(m->prefix), n = 0;
    for (size_t i = 0; i < r->count; i++)
        n += backed_up(m, &r->kvs[i]);
    cJSON *h = cJSON_CreateObject();
    if (h && (!cJSON_AddNumberToObject(h, "cairn_meta_backup", 1) ||
              !cJSON_AddStringToObject(h, "prefix", m->prefix) ||
              !etcd_json_add_int(h, "revision", r->revision) ||
              !etcd_json_add_int(h, "keys", (int64_t)n)))
        cJSON_Delete(h), h = NULL;
    int rc = write_line(f, h);
    for (size_t i = 0; rc == 0 && i < r->count; i++) {
        const etcd_kv *kv = &r->kvs[i];
        if (!backed_up(m, kv))
            continue;
        cJSON *o = cJSON_CreateObject();
        if (o && (!etcd_json_add_bytes(o, "key", kv->key + pl, kv->key_len - pl) ||
                  !etcd_json_add_bytes(o, "value", kv->value, kv->value_len)))
            cJSON_Delete(o), o = NULL;
        rc = write_line(f, o);
    }
    if (n_keys)
        *n_keys = n;
    return rc;
}

int meta_backup(meta *m, const char *path, size_t *n_keys)
{
    buf key = BUF_INIT;
    uint8_t end[META_PREFIX_MAX + 2];
    etcd_range_result r = {0};
    int rc = meta_key_all(&key, m->prefix);
    size_t end_len = etcd_prefix_end(key.data, key.len, end);
    if (rc == 0) /* one read: one revision */
        rc = etcd_range(m->c, key.data, key.len, end, end_len, 0, 0, &r);
    buf_free(&key);
    if (rc != 0)
        return rc;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    rc = f ? write_backup(m, f, &r, n_keys) : CAIRN_ERR_IO;
    etcd_range_free(&r);
    if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = rc ? rc : CAIRN_ERR_IO;
    if (f && fclose(f) != 0)
        rc = rc ? rc : CAIRN_ERR_IO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = CAIRN_ERR_IO;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* Is anything stored under the prefix? */
static int prefix_empty(meta *m)
{
    buf key = BUF_INIT;
    uint8_t end[META_PREFIX_MAX + 2];
    etcd_range_result r = {0};
    int rc = meta_key_all(&key, m->prefix);
    size_t end_len = etcd_prefix_end(key.data, key.len, end);
    if (rc == 0)
        rc = etcd_range(m->c, key.data, key.len, end, end_len, 0, 1, &r);
    if (rc == 0 && r.count > 0)
        rc = CAIRN_ERR_EXISTS;
    etcd_range_free(&r);
    buf_free(&key);
    return rc;
}

/* Add one backup line to the txn: "absent" compare + put. */
static int restore_line(meta *m, const char *line, etcd_txn *t)
{
    cJSON *o = cJSON_Parse(line);
    uint8_t *k = NULL, *v = NULL;
    size_t kn = 0, vn = 0;
    buf key = BUF_INIT;
    int rc = o ? etcd_json_bytes(o, "key", &k, &kn) : CAIRN_ERR_CORRUPT;
    if (rc == 0)
        rc = etcd_json_bytes(o, "value", &v, &vn);
    if (rc == 0 && (kn == 0 || k[0] != '/'))
        rc = CAIRN_ERR_CORRUPT;
    if (rc == 0)
        rc = buf_append_str(&key, m->prefix);
    if (rc == 0)
        rc = buf_append(&key, k, kn);
    if (rc == 0)
        rc = etcd_txn_cmp(t, key.data, key.len, ETCD_CMP_VERSION,
                          ETCD_CMP_EQUAL, 0);
    if (rc == 0)
        rc = etcd_txn_put(t, true, key.data, key.len, v, vn, 0);
    cJSON_Delete(o);
    free(k);
    free(v);
    buf_free(&key);
    return rc == CAIRN_ERR_NOMEM ? rc : rc ? CAIRN_ERR_CORRUPT : 0;
}

static int commit_batch(meta *m, etcd_txn *t)
{
    etcd_txn_result r = {0};
    int rc = etcd_txn_commit(m->c, t, &r);
    if (rc == 0 && !r.succeeded)
        rc = CAIRN_ERR_EXISTS; /* somebody wrote under the prefix */
    etcd_txn_result_free(&r);
    return rc;
}

static int check_header(const char *line, int64_t *keys)
{
    cJSON *h = cJSON_Parse(line);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, "cairn_meta_backup");
    int rc = cJSON_IsNumber(v) && v->valueint == 1 ? 0 : CAIRN_ERR_CORRUPT;
    *keys = etcd_json_int(h, "keys");
    cJSON_Delete(h);
    return rc;
}

static int restore_file(meta *m, FILE *f, size_t *n_keys)
{
    char *line = NULL;
    size_t cap = 0, n = 0, in_batch = 0;
    int64_t want = 0;
    int rc = getline(&line, &cap, f) > 0 ? check_header(line, &want)
                                         : CAIRN_ERR_CORRUPT;
    /* Count first: a truncated file must not be half restored. */
    long body = ftell(f);
    int64_t lines = 0;
    while (rc == 0 && getline(&line, &cap, f) > 0)
        lines++;
    if (rc == 0 && (lines != want || fseek(f, body, SEEK_SET) != 0))
        rc = CAIRN_ERR_CORRUPT;
    etcd_txn *t = NULL;
    while (rc == 0 && getline(&line, &cap, f) > 0) {
        if (!t && !(t = etcd_txn_new()))
            rc = CAIRN_ERR_NOMEM;
        if (rc == 0)
            rc = restore_line(m, line, t);
        if (rc == 0 && ++in_batch == RESTORE_BATCH) {
            rc = commit_batch(m, t);
            etcd_txn_free(t);
            t = NULL;
            in_batch = 0;
        }
        n += rc == 0;
    }
    if (rc == 0 && in_batch > 0)
        rc = commit_batch(m, t);
    etcd_txn_free(t);
    free(line);
    if (n_keys)
        *n_keys = n;
    return rc;
}

int meta_restore(meta *m, const char *path, size_t *n_keys)
{
    int rc = prefix_empty(m);
    if (rc != 0)
        return rc;
    FILE *f = fopen(path, "r");
    if (!f)
        return CAIRN_ERR_IO;
    rc = restore_file(m, f, n_keys);
    fclose(f);
    return rc;
}
