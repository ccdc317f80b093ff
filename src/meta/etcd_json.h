/*
 * etcd_json.h - JSON encoding of the etcd v3 gateway's requests and
 * responses (internal to src/meta; separate so it is tested without etcd).
 *
 * The gateway is grpc-gateway: int64 fields are JSON strings ("42"),
 * bytes are base64 strings, and fields equal to their zero value (false,
 * 0, PUT) are omitted.
 */
#ifndef CAIRN_META_ETCD_JSON_H
#define CAIRN_META_ETCD_JSON_H

#include <cjson/cJSON.h>

#include "meta/etcd.h"

/* An int64 field given as a string or a number; 0 if absent/malformed. */
int64_t etcd_json_int(const cJSON *obj, const char *name);

/* Add an int64 field as a string. NULL on NOMEM. */
cJSON *etcd_json_add_int(cJSON *obj, const char *name, int64_t v);

/* Add a bytes field (base64). NULL on NOMEM. */
cJSON *etcd_json_add_bytes(cJSON *obj, const char *name, const void *p,
                           size_t n);

/* Decode a base64 field into a new NUL-terminated allocation (an absent
 * field gives an empty one). 0, CAIRN_ERR_CORRUPT or CAIRN_ERR_NOMEM. */
int etcd_json_bytes(const cJSON *obj, const char *name, uint8_t **out,
                    size_t *len);

/* Parse one mvccpb.KeyValue object. On error *kv is left empty. */
int etcd_json_kv(const cJSON *o, etcd_kv *kv);

/* Parse a RangeResponse object (kvs, more, header.revision). */
int etcd_json_range(const cJSON *o, etcd_range_result *r);

/* The error text of an error answer ({"error": ..}), or NULL. */
const char *etcd_json_error(const cJSON *o);

/* The length of the first complete JSON object at the start of p[0..len)
 * (after leading whitespace, which is counted), or 0 if it is not complete
 * yet. The watch stream is a sequence of such objects. */
size_t etcd_json_stream_next(const char *p, size_t len);

/* One watch stream message, parsed. */
typedef struct etcd_json_watch {
    int64_t header_revision;
    int64_t compact_revision;
    bool created;
    bool canceled;
    etcd_event *events;
    size_t n_events;
    const char *error; /* points into the cJSON tree; NULL if none */
} etcd_json_watch;

/* Parse a watch message ({"result": {...}} or {"error": ...}). */
int etcd_json_watch_parse(const cJSON *o, etcd_json_watch *w);
void etcd_json_watch_free(etcd_json_watch *w);

/* The body of a txn request (a new string to free()), or NULL on NOMEM. */
char *etcd_txn_json(const etcd_txn *t);

/* Parse a TxnResponse into *r. */
int etcd_json_txn_result(const cJSON *o, etcd_txn_result *r);

#endif
