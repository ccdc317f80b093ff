/*
 * etcd_http.h - the HTTP side of the etcd client (internal to src/meta):
 * POST a JSON body to one endpoint, or to the client's endpoints with
 * fail-over. Shared by etcd.c (unary calls) and etcd_watch.c (streams).
 */
#ifndef CAIRN_META_ETCD_HTTP_H
#define CAIRN_META_ETCD_HTTP_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "meta/etcd.h"

/* POST `body` to `path` ("/v3/kv/range"), trying the endpoints in turn
 * (preferred one first). A call that is `idempotent` moves on to the next
 * endpoint after any failure; one that is not moves on only if nothing
 * was sent, and returns CAIRN_ERR_TIMEOUT if the request may have reached
 * etcd. On success *out is the parsed 200 answer (cJSON_Delete it). An
 * error answer gives CAIRN_ERR_NOT_FOUND (gRPC NotFound) or
 * CAIRN_ERR_META. */
int etcd_http_call(etcd *c, const char *path, const char *body,
                   bool idempotent, cJSON **out);

/* Index of the endpoint to try first, and the timeout, for the watch. */
size_t etcd_http_preferred(etcd *c);
int etcd_http_timeout_ms(const etcd *c);

#endif
