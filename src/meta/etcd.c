/* etcd.c - the blocking calls of etcd.h over libcurl; see etcd.h. */
#include "meta/etcd.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/etcd_http.h"
#include "meta/etcd_json.h"

#define ETCD_MAX_ENDPOINTS 8

struct etcd {
    char *urls[ETCD_MAX_ENDPOINTS];
    size_t n_urls;
    int timeout_ms;
    atomic_size_t preferred; /* the endpoint that answered last */
    _Atomic uint64_t requests, request_errors, calls_failed;
    prom_hist latency;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* curl_global_init is not thread-safe: do it once, before any handle. */
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int etcd_open(etcd **out, const char *endpoints, int timeout_ms)
{
    if (!endpoints || timeout_ms <= 0)
        return CAIRN_ERR_INVALID;
    pthread_once(&curl_once, curl_init_once);
    etcd *c = calloc(1, sizeof *c);
    if (!c)
        return CAIRN_ERR_NOMEM;
    c->timeout_ms = timeout_ms;
    prom_hist_init_seconds(&c->latency, prom_latency_bounds,
                           prom_latency_bounds_n);
    const char *p = endpoints;
    while (*p) {
        size_t n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == '/')
            n--; /* "http://h:p/" -> "http://h:p" */
        if (n > 0) {
            if (c->n_urls == ETCD_MAX_ENDPOINTS) {
                etcd_close(c);
                return CAIRN_ERR_INVALID;
            }
            c->urls[c->n_urls] = strndup(p, n);
            if (!c->urls[c->n_urls++]) {
                etcd_close(c);
                return CAIRN_ERR_NOMEM;
            }
        }
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    if (c->n_urls == 0) {
        etcd_close(c);
        return CAIRN_ERR_INVALID;
    }
    *out = c;
    return CAIRN_OK;
}

void etcd_close(etcd *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_urls; i++)
        free(c->urls[i]);
    free(c);
}

size_t etcd_endpoint_count(const etcd *c) { return c->n_urls; }

const char *etcd_endpoint(const etcd *c, size_t i)
{
    return i < c->n_urls ? c->urls[i] : NULL;
}

size_t etcd_http_preferred(etcd *c) { return atomic_load(&c->preferred); }

int etcd_http_timeout_ms(const etcd *c) { return c->timeout_ms; }

void etcd_get_stats(const etcd *c, etcd_stats *out)
{
    out->requests = atomic_load(&c->requests);
    out->request_errors = atomic_load(&c->request_errors);
    out->calls_failed = atomic_load(&c->calls_failed);
    out->latency = &c->latency;
}

int etcd_stats_write(buf *b, const etcd_stats *s)
{
    int rc = prom_family(b, "cairn_etcd_requests_total", "counter",
                         "HTTP requests to etcd endpoints (round trips).");
    if (rc == 0)
        rc = prom_u64(b, "cairn_etcd_requests_total", NULL, s->requests);
    if (rc == 0)
        rc = prom_family(b, "cairn_etcd_request_errors_total", "counter",
                         "Requests to an endpoint that got no answer or an "
                         "error answer.");
    if (rc == 0)
        rc = prom_u64(b, "cairn_etcd_request_errors_total", NULL,
                      s->request_errors);
    if (rc == 0)
        rc = prom_family(b, "cairn_etcd_calls_failed_total", "counter",
                         "Metadata calls that failed after trying every "
                         "endpoint (or whose write outcome is unknown).");
    if (rc == 0)
        rc = prom_u64(b, "cairn_etcd_calls_failed_total", NULL,
                      s->calls_failed);
    if (rc == 0)
        rc = prom_family(b, "cairn_etcd_request_duration_seconds",
                         "histogram", "Duration of requests to etcd.");
    if (rc == 0)
        rc = prom_hist_write(b, "cairn_etcd_request_duration_seconds", NULL,
                             s->latency);
    return rc;
}

/* ---- HTTP ------------------------------------------------------------- */

static uint64_t etcd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

/* One POST to one endpoint. *sent = whether any request byte left. */
static CURLcode post_one(etcd *c, size_t i, const char *path,
                         const char *body, buf *resp, long *status,
                         bool *sent)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", c->urls[i], path);
    CURL *h = curl_easy_init();
    if (!h)
        return CURLE_OUT_OF_MEMORY;
    struct curl_slist *hdr =
        curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in threads */
    curl_easy_setopt(h, CURLOPT_PROXY, "");    /* loopback, never a proxy */
    uint64_t t0 = etcd_now_ns();
    CURLcode rc = curl_easy_perform(h);
    prom_hist_observe_ns(&c->latency, etcd_now_ns() - t0);
    atomic_fetch_add(&c->requests, 1);
    long reqsize = 0;
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    *sent = reqsize > 0;
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return rc;
}

/* The cause of this thread's last failed call (etcd_last_error). */
static _Thread_local char last_error[512];

const char *etcd_last_error(void) { return last_error; }

void etcd_restore_last_error(const char *text)
{
    snprintf(last_error, sizeof last_error, "%s", text ? text : "");
}

/* Add one endpoint's failure to the thread's error text ("; " between
 * endpoints: every one tried failed, and each may have its own reason). */
static void note_error(const char *url, const char *why)
{
    size_t n = strlen(last_error);
    if (n + 4 >= sizeof last_error)
        return;
    snprintf(last_error + n, sizeof last_error - n, "%setcd %s: %s",
             n ? "; " : "", url, why);
}

/* An error answer: gRPC code 5 is NotFound (e.g. an unknown lease). etcd's
 * text is kept for the caller's message (grpc-gateway puts it in "error"
 * and "message"), since the code alone says nothing of the cause. */
static int answer_error(const etcd *c, size_t i, const cJSON *o, long status)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
    const char *why = cJSON_IsString(m) ? m->valuestring : etcd_json_error(o);
    char text[64];
    if (why == NULL) {
        snprintf(text, sizeof text, "HTTP status %ld", status);
        why = text;
    }
    note_error(c->urls[i], why);
    return etcd_json_int(o, "code") == 5 ? CAIRN_ERR_NOT_FOUND
                                         : CAIRN_ERR_META;
}

int etcd_http_call(etcd *c, const char *path, const char *body,
                   bool idempotent, cJSON **out)
{
    size_t first = atomic_load(&c->preferred);
    buf resp = BUF_INIT;
    int rc = CAIRN_ERR_META;
    last_error[0] = '\0';
    for (size_t k = 0; k < c->n_urls; k++) {
        size_t i = (first + k) % c->n_urls;
        long status = 0;
        bool sent = false;
        buf_reset(&resp);
        CURLcode cc = post_one(c, i, path, body, &resp, &status, &sent);
        if (cc != CURLE_OK || status != 200)
            atomic_fetch_add(&c->request_errors, 1);
        if (cc != CURLE_OK) {
            note_error(c->urls[i], curl_easy_strerror(cc));
            if (!idempotent && sent) {
                rc = CAIRN_ERR_TIMEOUT; /* it may have been applied */
                break;
            }
            continue;
        }
        cJSON *o = cJSON_ParseWithLength((const char *)resp.data, resp.len);
        if (status == 200 && o) {
            atomic_store(&c->preferred, i);
            *out = o;
            buf_free(&resp);
            last_error[0] = '\0';
            return CAIRN_OK;
        }
        if (o) {
            rc = answer_error(c, i, o, status);
        } else {
            char why[64];
            snprintf(why, sizeof why, "HTTP status %ld, no JSON answer",
                     status);
            note_error(c->urls[i], why);
            rc = CAIRN_ERR_META;
        }
        cJSON_Delete(o);
        /* 5xx: this member cannot serve now (no leader, stopping). */
        if (status < 500 || !idempotent)
            break;
    }
    buf_free(&resp);
    atomic_fetch_add(&c->calls_failed, 1);
    return rc;
}

/* Build a request with key (+range_end) and call; the common shape. */
static int keyed_call(etcd *c, const char *path, cJSON *req, const void *key,
                      size_t key_len, const void *end, size_t end_len,
                      bool idempotent, cJSON **out)
{
    int rc = CAIRN_ERR_NOMEM;
    char *body = NULL;
    if (req && etcd_json_add_bytes(req, "key", key, key_len) &&
        (!end || etcd_json_add_bytes(req, "range_end", end, end_len)) &&
        (body = cJSON_PrintUnformatted(req)))
        rc = etcd_http_call(c, path, body, idempotent, out);
    free(body);
    cJSON_Delete(req);
    return rc;
}

/* ---- kv ------------------------------------------------------------- */

void etcd_kv_free(etcd_kv *kv)
{
    free(kv->key);
    free(kv->value);
    kv->key = kv->value = NULL;
    kv->key_len = kv->value_len = 0;
}

void etcd_range_free(etcd_range_result *r)
{
    for (size_t i = 0; i < r->count; i++)
        etcd_kv_free(&r->kvs[i]);
    free(r->kvs);
    r->kvs = NULL;
    r->count = 0;
}

size_t etcd_prefix_end(const void *key, size_t len, uint8_t *out)
{
    const uint8_t *k = key;
    while (len > 0 && k[len - 1] == 0xff)
        len--;
    if (len == 0)
        return 0;
    memcpy(out, k, len);
    out[len - 1]++;
    return len;
}

int etcd_range(etcd *c, const void *key, size_t key_len,
               const void *range_end, size_t range_end_len, int64_t revision,
               int64_t limit, etcd_range_result *out)
{
    cJSON *req = cJSON_CreateObject();
    if (req && revision && !etcd_json_add_int(req, "revision", revision))
        cJSON_Delete(req), req = NULL;
    if (req && limit && !etcd_json_add_int(req, "limit", limit))
        cJSON_Delete(req), req = NULL;
    cJSON *ans = NULL;
    int rc = keyed_call(c, "/v3/kv/range", req, key, key_len, range_end,
                        range_end_len, true, &ans);
    if (rc != 0)
        return rc;
    rc = etcd_json_range(ans, out);
    cJSON_Delete(ans);
    return rc;
}

int etcd_get(etcd *c, const void *key, size_t key_len, int64_t revision,
             etcd_kv *kv, int64_t *store_revision)
{
    etcd_range_result r;
    int rc = etcd_range(c, key, key_len, NULL, 0, revision, 0, &r);
    if (rc != 0)
        return rc;
    if (store_revision)
        *store_revision = r.revision;
    if (r.count == 0) {
        etcd_range_free(&r);
        return CAIRN_ERR_NOT_FOUND;
    }
    *kv = r.kvs[0]; /* take ownership of the one pair */
    r.count = 0;
    etcd_range_free(&r);
    return CAIRN_OK;
}

int etcd_put(etcd *c, const void *key, size_t key_len, const void *value,
             size_t value_len, int64_t lease, int64_t *revision)
{
    cJSON *req = cJSON_CreateObject();
    if (req && (!etcd_json_add_bytes(req, "value", value, value_len) ||
                (lease && !etcd_json_add_int(req, "lease", lease))))
        cJSON_Delete(req), req = NULL;
    cJSON *ans = NULL;
    int rc = keyed_call(c, "/v3/kv/put", req, key, key_len, NULL, 0, false,
                        &ans);
    if (rc == 0 && revision)
        *revision = etcd_json_int(
            cJSON_GetObjectItemCaseSensitive(ans, "header"), "revision");
    cJSON_Delete(ans);
    return rc;
}

int etcd_delete(etcd *c, const void *key, size_t key_len,
                const void *range_end, size_t range_end_len, int64_t *deleted)
{
    cJSON *ans = NULL;
    int rc = keyed_call(c, "/v3/kv/deleterange", cJSON_CreateObject(), key,
                        key_len, range_end, range_end_len, false, &ans);
    if (rc == 0 && deleted)
        *deleted = etcd_json_int(ans, "deleted");
    cJSON_Delete(ans);
    return rc;
}

/* ---- transactions --------------------------------------------------- */

void etcd_txn_result_free(etcd_txn_result *r)
{
    for (size_t i = 0; i < r->n_gets; i++)
        etcd_range_free(&r->gets[i]);
    free(r->gets);
    r->gets = NULL;
    r->n_gets = 0;
}

int etcd_txn_commit(etcd *c, const etcd_txn *t, etcd_txn_result *r)
{
    char *body = etcd_txn_json(t);
    if (!body)
        return CAIRN_ERR_NOMEM;
    cJSON *ans = NULL;
    int rc = etcd_http_call(c, "/v3/kv/txn", body, false, &ans);
    free(body);
    if (rc != 0)
        return rc;
    rc = etcd_json_txn_result(ans, r);
    cJSON_Delete(ans);
    return rc;
}

/* ---- leases --------------------------------------------------------- */

/* Call a lease endpoint with {"<field>": "<v>", ...}. */
static int lease_call(etcd *c, const char *path, const char *f1, int64_t v1,
                      const char *f2, int64_t v2, cJSON **ans)
{
    cJSON *req = cJSON_CreateObject();
    char *body = NULL;
    int rc = CAIRN_ERR_NOMEM;
    if (req && etcd_json_add_int(req, f1, v1) &&
        (!f2 || etcd_json_add_int(req, f2, v2)) &&
        (body = cJSON_PrintUnformatted(req)))
        rc = etcd_http_call(c, path, body, true, ans);
    free(body);
    cJSON_Delete(req);
    return rc;
}

int etcd_lease_grant(etcd *c, int64_t ttl_s, int64_t *id)
{
    cJSON *ans = NULL;
    int rc = lease_call(c, "/v3/lease/grant", "TTL", ttl_s, NULL, 0, &ans);
    if (rc != 0)
        return rc;
    *id = etcd_json_int(ans, "ID");
    cJSON_Delete(ans);
    return *id ? CAIRN_OK : CAIRN_ERR_META;
}

int etcd_lease_keepalive(etcd *c, int64_t id, int64_t *ttl_s)
{
    cJSON *ans = NULL;
    int rc = lease_call(c, "/v3/lease/keepalive", "ID", id, NULL, 0, &ans);
    if (rc != 0)
        return rc;
    /* The answer is a stream message; an unknown lease has no TTL. */
    int64_t ttl =
        etcd_json_int(cJSON_GetObjectItemCaseSensitive(ans, "result"), "TTL");
    cJSON_Delete(ans);
    if (ttl_s)
        *ttl_s = ttl;
    return ttl > 0 ? CAIRN_OK : CAIRN_ERR_NOT_FOUND;
}

int etcd_lease_revoke(etcd *c, int64_t id)
{
    cJSON *ans = NULL;
    int rc = lease_call(c, "/v3/lease/revoke", "ID", id, NULL, 0, &ans);
    cJSON_Delete(ans);
    return rc;
}
