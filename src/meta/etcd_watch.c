/*
 * etcd_watch.c - watches (see etcd.h): one thread per watch, one
 * long-lived POST /v3/watch whose answer is a stream of JSON objects.
 *
 * The thread drives its curl handle through a multi handle so that
 * etcd_watch_stop can interrupt a quiet stream at once (curl_multi_wakeup)
 * instead of waiting for data. After a broken stream it reconnects from
 * the revision after the last one delivered, so events are delivered
 * exactly once and in order across reconnects and etcd restarts.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "meta/etcd.h"
#include "meta/etcd_http.h"
#include "meta/etcd_json.h"
#include "meta/mono.h"

#define WATCH_BACKOFF_MIN_MS 50
#define WATCH_BACKOFF_MAX_MS 1000

struct etcd_watch {
    etcd *c;
    uint8_t *key, *end;
    size_t key_len, end_len;
    etcd_watch_fn fn;
    void *arg;
    int64_t next_revision; /* first revision not yet delivered */
    size_t endpoint;       /* the endpoint in use */
    bool connected;        /* CONNECTED was reported for this stream */
    bool finished;         /* compacted: no reconnect */
    buf in;                /* stream bytes not parsed yet */
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
};

static void deliver(etcd_watch *w, etcd_watch_kind kind,
                    const etcd_event *evs, size_t n, int64_t rev)
{
    etcd_watch_msg m = {kind, evs, n, rev, w->next_revision};
    w->fn(w->arg, &m);
}

/* Handle one parsed stream message. false = drop this stream. */
static bool on_message(etcd_watch *w, const etcd_json_watch *m)
{
    if (m->error)
        return false;
    if (m->compact_revision > 0 || m->canceled) {
        w->finished = true;
        deliver(w, ETCD_WATCH_COMPACTED, NULL, 0, m->compact_revision);
        return false;
    }
    if (m->created) {
        w->connected = true;
        if (w->next_revision <= 0) /* "from now": pin it for reconnects */
            w->next_revision = m->header_revision + 1;
        deliver(w, ETCD_WATCH_CONNECTED, NULL, 0, m->header_revision);
        return true;
    }
    if (m->n_events > 0) {
        int64_t last = m->events[m->n_events - 1].kv.mod_revision;
        w->next_revision = last + 1;
        deliver(w, ETCD_WATCH_EVENTS, m->events, m->n_events, last);
    } else if (m->header_revision >= w->next_revision) {
        /* A progress notification: everything up to it was sent. */
        w->next_revision = m->header_revision + 1;
        deliver(w, ETCD_WATCH_PROGRESS, NULL, 0, m->header_revision);
    }
    return true;
}

/* curl write callback: split the stream into objects and handle each. */
static size_t on_stream(char *p, size_t size, size_t n, void *arg)
{
    etcd_watch *w = arg;
    if (buf_append(&w->in, p, size * n) != 0)
        return 0;
    size_t len;
    while ((len = etcd_json_stream_next((char *)w->in.data, w->in.len)) > 0) {
        cJSON *o = cJSON_ParseWithLength((char *)w->in.data, len);
        buf_consume(&w->in, len);
        etcd_json_watch m;
        bool keep = o && etcd_json_watch_parse(o, &m) == 0;
        if (keep) {
            keep = on_message(w, &m);
            etcd_json_watch_free(&m);
        }
        cJSON_Delete(o);
        if (!keep || atomic_load(&w->stop))
            return 0; /* abort the transfer */
    }
    return size * n;
}

static char *create_request(const etcd_watch *w)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *cr = root ? cJSON_AddObjectToObject(root, "create_request") : NULL;
    char *body = NULL;
    if (cr && etcd_json_add_bytes(cr, "key", w->key, w->key_len) &&
        (!w->end || etcd_json_add_bytes(cr, "range_end", w->end, w->end_len)) &&
        (w->next_revision <= 0 ||
         etcd_json_add_int(cr, "start_revision", w->next_revision)) &&
        cJSON_AddTrueToObject(cr, "progress_notify"))
        body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return body;
}

/* Run one stream until it breaks or the watch stops. */
static void stream_once(etcd_watch *w)
{
    char *body = create_request(w);
    char url[512];
    snprintf(url, sizeof url, "%s/v3/watch", etcd_endpoint(w->c, w->endpoint));
    CURL *h = curl_easy_init();
    if (!body || !h) {
        free(body);
        curl_easy_cleanup(h);
        return;
    }
    buf_reset(&w->in);
    w->connected = false;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)etcd_http_timeout_ms(w->c));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    /* A silent peer (partition) is found by TCP keepalive, not a timeout:
     * a quiet watch is normal. */
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
    curl_multi_add_handle(w->multi, h);
    int running = 1;
    while (running && !atomic_load(&w->stop)) {
        if (curl_multi_perform(w->multi, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
    }
    curl_multi_remove_handle(w->multi, h);
    curl_easy_cleanup(h);
    free(body);
}

/* Sleep up to ms, returning early when the watch is stopped. */
static void pause_ms(etcd_watch *w, int ms)
{
    struct timespec ts = meta_mono_deadline(ms);
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->stop) &&
           pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&w->mu);
}

static void *watch_main(void *arg)
{
    etcd_watch *w = arg;
    int backoff = WATCH_BACKOFF_MIN_MS;
    while (!atomic_load(&w->stop) && !w->finished) {
        stream_once(w);
        if (atomic_load(&w->stop) || w->finished)
            break;
        if (w->connected)
            backoff = WATCH_BACKOFF_MIN_MS;
        deliver(w, ETCD_WATCH_DISCONNECTED, NULL, 0, w->next_revision - 1);
        w->endpoint = (w->endpoint + 1) % etcd_endpoint_count(w->c);
        pause_ms(w, backoff);
        backoff = backoff * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS
                                                     : backoff * 2;
    }
    return NULL;
}

static void watch_free(etcd_watch *w)
{
    if (w->multi)
        curl_multi_cleanup(w->multi);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    buf_free(&w->in);
    free(w->key);
    free(w->end);
    free(w);
}

int etcd_watch_start(etcd *c, const void *key, size_t key_len,
                     const void *range_end, size_t range_end_len,
                     int64_t start_revision, etcd_watch_fn fn, void *arg,
                     etcd_watch **out)
{
    etcd_watch *w = calloc(1, sizeof *w);
    if (!w)
        return CAIRN_ERR_NOMEM;
    pthread_mutex_init(&w->mu, NULL);
    meta_cond_init(&w->cv);
    w->c = c;
    w->fn = fn;
    w->arg = arg;
    w->next_revision = start_revision;
    w->endpoint = etcd_http_preferred(c);
    w->key = malloc(key_len + 1);
    w->key_len = key_len;
    if (range_end) {
        w->end = malloc(range_end_len + 1);
        w->end_len = range_end_len;
    }
    w->multi = curl_multi_init();
    if (!w->key || (range_end && !w->end) || !w->multi) {
        watch_free(w);
        return CAIRN_ERR_NOMEM;
    }
    memcpy(w->key, key, key_len);
    if (range_end)
        memcpy(w->end, range_end, range_end_len);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        watch_free(w);
        return CAIRN_ERR_NOMEM;
    }
    *out = w;
    return CAIRN_OK;
}

void etcd_watch_stop(etcd_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, true);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
    watch_free(w);
}
