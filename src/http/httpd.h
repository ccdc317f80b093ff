/*
 * httpd.h - the small HTTP server of every cairn process (`--http
 * HOST:PORT`): /metrics for Prometheus, and on the controller the
 * dashboard and its JSON.
 *
 * libmicrohttpd (Debian libmicrohttpd-dev) serves on a thread of its own;
 * we write no HTTP ourselves. The server never calls into the process's
 * state: the thread that owns the figures (a node's or router's libuv
 * loop, the controller's status thread) builds a whole page and
 * *publishes* it under a path; a request gets a copy of the latest page
 * published there. So a slow or hostile HTTP client can never block a
 * loop, and a page is always consistent (built at one moment).
 *
 * Only GET and HEAD are served; other methods get 405, unknown paths 404.
 * At most 64 connections at once, idle ones closed after 10 s.
 */
#ifndef CAIRN_HTTPD_H
#define CAIRN_HTTPD_H

#include <stddef.h>

typedef struct httpd httpd;

/* Start serving on `hostport` ("127.0.0.1:9100", "0.0.0.0:9100",
 * "[::1]:9100"; port 0 picks a free one). 0, or CAIRN_ERR_INVALID (bad
 * address) / CAIRN_ERR_IO (cannot bind: the reason in `err`, `errcap`
 * bytes) / CAIRN_ERR_NOMEM. */
int httpd_start(const char *hostport, httpd **out, char *err, size_t errcap);

/* The port bound. */
int httpd_port(const httpd *h);

/* Make `data` (copied) the page at `path` ("/metrics"), replacing what
 * was there. Thread-safe. At most 16 paths. 0 or CAIRN_ERR_NOMEM. */
int httpd_publish(httpd *h, const char *path, const char *content_type,
                  const void *data, size_t len);

/* Stop serving (joins the server's thread) and free everything. NULL is a
 * no-op. */
void httpd_stop(httpd *h);

#endif
