/* httpd.c - published pages over libmicrohttpd (httpd.h). */
#include "httpd.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/err.h"
#include "common/log.h"

#define HTTPD_PAGES 16
#define HTTPD_CONNECTIONS 64
#define HTTPD_IDLE_S 10

typedef struct page {
    char path[64];
    char type[96];
    char *data;
    size_t len;
} page;

struct httpd {
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    page pages[HTTPD_PAGES];
    size_t n_pages;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
                             const char *type, const void *data, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    /* Every page is a live view: a cached one would lie. */
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    httpd *h = cls;
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char msg[] = "only GET and HEAD\n";
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, msg,
                     sizeof msg - 1);
    }
    if (*upload_size != 0) { /* a GET with a body: ignore the body */
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&h->mu);
    enum MHD_Result rc = MHD_NO;
    size_t i = 0;
    while (i < h->n_pages && strcmp(h->pages[i].path, url) != 0)
        i++;
    if (i < h->n_pages)
        rc = reply(conn, MHD_HTTP_OK, h->pages[i].type, h->pages[i].data,
                   h->pages[i].len);
    pthread_mutex_unlock(&h->mu);
    if (i == h->n_pages) {
        static const char msg[] = "not found\n";
        rc = reply(conn, MHD_HTTP_NOT_FOUND, text, msg, sizeof msg - 1);
    }
    return rc;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("http: %s", msg);
}

/* "host:port" or "[v6]:port" -> socket address (numeric hosts, or a name
 * such as localhost that resolves locally). */
static int parse(const char *hostport, struct sockaddr_storage *sa,
                 socklen_t *salen, char *err, size_t errcap)
{
    const char *colon = strrchr(hostport, ':');
    char host[256];
    if (colon == NULL || colon == hostport ||
        (size_t)(colon - hostport) >= sizeof host) {
        snprintf(err, errcap, "'%s' is not HOST:PORT", hostport);
        return CAIRN_ERR_INVALID;
    }
    size_t hl = (size_t)(colon - hostport);
    memcpy(host, hostport, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host, colon + 1, &hints, &ai);
    if (g != 0 || ai == NULL) {
        snprintf(err, errcap, "'%s': %s", hostport, gai_strerror(g));
        return CAIRN_ERR_INVALID;
    }
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    *salen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int httpd_start(const char *hostport, httpd **out, char *err, size_t errcap)
{
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    int rc = parse(hostport, &sa, &salen, err, errcap);
    if (rc != 0)
        return rc;
    httpd *h = calloc(1, sizeof *h);
    if (h == NULL)
        return CAIRN_ERR_NOMEM;
    pthread_mutex_init(&h->mu, NULL);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_IDLE_S,
        MHD_OPTION_END);
    if (h->d == NULL) {
        snprintf(err, errcap, "cannot serve HTTP on %s (address in use?)",
                 hostport);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return CAIRN_ERR_IO;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    *out = h;
    return 0;
}

int httpd_port(const httpd *h) { return h->port; }

int httpd_publish(httpd *h, const char *path, const char *content_type,
                  const void *data, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return CAIRN_ERR_NOMEM;
    memcpy(copy, data, len);
    char *old = NULL;
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    size_t i = 0;
    while (i < h->n_pages && strcmp(h->pages[i].path, path) != 0)
        i++;
    if (i == h->n_pages) {
        if (h->n_pages == HTTPD_PAGES) {
            rc = CAIRN_ERR_NOMEM;
        } else {
            h->n_pages++;
            snprintf(h->pages[i].path, sizeof h->pages[i].path, "%s", path);
        }
    }
    if (rc == 0) {
        page *p = &h->pages[i];
        snprintf(p->type, sizeof p->type, "%s", content_type);
        old = p->data;
        p->data = copy;
        p->len = len;
        copy = NULL;
    }
    pthread_mutex_unlock(&h->mu);
    free(old); /* outside the lock: requests wait on it */
    free(copy);
    return rc;
}

void httpd_stop(httpd *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->d);
    for (size_t i = 0; i < h->n_pages; i++)
        free(h->pages[i].data);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
