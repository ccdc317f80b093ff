/*
 * cmd_router.c - `cairn router`: run a request manager (src/router/).
 *
 *   cairn router --listen HOST:PORT --etcd URL[,URL...] [--prefix /cairn]
 *                [--deadline-ms N] [--http HOST:PORT] [--requirepass P]
 *                [--config FILE] [--log-level L] [--cluster-secret-file F]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/err.h"
#include "common/log.h"
#include "router/router.h"

static int router_usage(FILE *out)
{
    fprintf(out,
            "usage: cairn router --listen HOST:PORT --etcd URL[,URL...] "
            "[options]\n"
            "\n"
            "Serves the Redis protocol on HOST:PORT and routes each request\n"
            "to the leader of its range (docs/API.md).\n"
            "\n"
            "  --listen HOST:PORT      RESP address (default 127.0.0.1:6380);\n"
            "                          a non-loopback HOST opens the router to\n"
            "                          the network: set a password\n"
            "  --etcd URL[,URL...]     the metadata store\n"
            "  --prefix P              metadata prefix in etcd (/cairn)\n"
            "  --deadline-ms N         per-request deadline (5000)\n"
            "  --requirepass P         clients must AUTH with P first (Redis\n"
            "                          AUTH); CAIRN_PASSWORD in the environment\n"
            "                          does the same without showing P in ps\n"
            "  --http HOST:PORT        serve /metrics (Prometheus) there; a\n"
            "                          non-loopback HOST opens it to the network\n"
            CLI_COMMON_HELP);
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
    const char *level = NULL, *secret = NULL;
    int rc = cli_expand_config("router", &argc, &argv);
    if (rc != 0)
        return rc;
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
        } else if (strcmp(a, "--requirepass") == 0) {
            cfg.password = v;
        } else if (strcmp(a, "--http") == 0) {
            cfg.http = v;
        } else if (strcmp(a, "--log-level") == 0) {
            level = v;
        } else if (strcmp(a, "--cluster-secret-file") == 0) {
            secret = v;
        } else {
            return router_usage(stderr);
        }
    }
    if (cfg.etcd == NULL)
        return router_usage(stderr);
    if (cfg.password == NULL)
        cfg.password = getenv("CAIRN_PASSWORD");
    if (cfg.password != NULL && cfg.password[0] == '\0')
        cfg.password = NULL; /* an empty password is no password */
    if ((rc = cli_setup_log("router", NULL, level)) != 0)
        return rc;
    if (cli_load_secret(secret) != 0)
        return 1;
    /* A client that goes away while its reply is being written must cost
     * an EPIPE on that socket, not the process. */
    signal(SIGPIPE, SIG_IGN);
    router *r = NULL;
    rc = router_new(&r, &cfg);
    if (rc != 0) {
        log_error("cannot start: %s (%s)", cairn_err_word(rc),
                  cairn_err_message(rc));
        return 1;
    }
    log_info("listening on %s:%d%s", cfg.host, router_port(r),
             cfg.password ? ", AUTH required" : "");
    rc = router_run(r);
    router_free(r);
    log_info("stopped");
    return rc == 0 ? 0 : 1;
}
