/*
 * cmd_router.c - `cairn router`: run a request manager (src/router/).
 *
 *   cairn router --listen HOST:PORT --etcd URL[,URL...] [--prefix /cairn]
 *                [--deadline-ms N]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/err.h"
#include "router/router.h"

static int router_usage(FILE *out)
{
    fprintf(out,
            "usage: cairn router --listen HOST:PORT --etcd URL[,URL...]\n"
            "                    [--prefix /cairn] [--deadline-ms 5000]\n"
            "\n"
            "Serves the Redis protocol on HOST:PORT and routes each request\n"
            "to the leader of its range (docs/API.md).\n");
    return out == stdout ? 0 : 2;
}

/* "HOST:PORT" -> host (NUL-terminated in `host`) and port. */
static int split_listen(const char *s, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= cap)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

int cmd_router(int argc, char **argv)
{
    router_config cfg = {.host = "127.0.0.1", .port = 6380};
    char host[64] = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return router_usage(stdout);
        if (i + 1 >= argc)
            return router_usage(stderr);
        const char *v = argv[++i];
        if (strcmp(a, "--listen") == 0) {
            if (split_listen(v, host, sizeof host, &cfg.port) != 0)
                return router_usage(stderr);
            cfg.host = host;
        } else if (strcmp(a, "--etcd") == 0) {
            cfg.etcd = v;
        } else if (strcmp(a, "--prefix") == 0) {
            cfg.prefix = v;
        } else if (strcmp(a, "--deadline-ms") == 0) {
            cfg.deadline_ms = atoi(v);
        } else {
            return router_usage(stderr);
        }
    }
    if (cfg.etcd == NULL)
        return router_usage(stderr);
    /* A client that goes away while its reply is being written must cost
     * an EPIPE on that socket, not the process. */
    signal(SIGPIPE, SIG_IGN);
    router *r = NULL;
    int rc = router_new(&r, &cfg);
    if (rc != 0) {
        fprintf(stderr, "cairn router: cannot start: %s (%s)\n",
                cairn_err_word(rc), cairn_err_message(rc));
        return 1;
    }
    fprintf(stderr, "cairn router: listening on %s:%d\n", cfg.host,
            router_port(r));
    rc = router_run(r);
    router_free(r);
    fprintf(stderr, "cairn router: stopped\n");
    return rc == 0 ? 0 : 1;
}
