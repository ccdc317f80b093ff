/*
 * cmd_dev.c - `cairn dev`: one command that starts a whole local cluster.
 *
 *     cairn dev [--dir DIR] [--port PORT]
 *
 * Starts, as child processes under DIR (default ./data): etcd, three nodes,
 * a controller and a router listening on 127.0.0.1:PORT (default 6380).
 * Creates the table `default` if it is missing, waits until it serves, and
 * prints how to connect and where the dashboard is (the controller's
 * --http, PORT + 30; the nodes' and the router's /metrics on PORT + 31..34).
 * Each child's PID is in DIR/<child>.pid and its output in
 * DIR/<child>.log. Ctrl-C or SIGTERM stops everything (SIGTERM, then
 * SIGKILL after a deadline). A node that dies is reported and the cluster
 * keeps serving without it (a majority of each range is left; the
 * dashboard shows the node down) - so that a user can watch a failure;
 * any other child dying stops the cluster, since nothing works without
 * etcd, the router or the controller.
 *
 * Every address is derived from PORT, never chosen at random: Raft keeps the
 * peers' addresses in its configuration, so a restart must find each node at
 * the address it had. Restarting `cairn dev` with the same DIR and PORT
 * keeps all data.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "cli.h"

#define DEV_NODES 3
#define DEV_MAX_ARGS 24
#define DEV_START_SECONDS 60
#define DEV_STOP_SECONDS 10

/* Port layout relative to the router's port. */
#define DEV_ETCD_CLIENT_OFF 10
#define DEV_ETCD_PEER_OFF 11
#define DEV_NODE_OFF 20 /* node i (1-based) listens on PORT + 20 + i */
#define DEV_HTTP_OFF 30 /* controller's dashboard; node i's /metrics at
                           PORT + 30 + i; the router's at PORT + 34 */
#define DEV_ROUTER_HTTP_OFF (DEV_HTTP_OFF + DEV_NODES + 1)

struct dev_child {
    char name[32];
    char *argv[DEV_MAX_ARGS];
    int argc;
    pid_t pid;
};

struct dev {
    char dir[PATH_MAX];
    char self[PATH_MAX]; /* path of the cairn binary */
    int port;
    char etcd_url[64];
    struct dev_child children[DEV_NODES + 3];
    int nchildren;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dev_usage(void)
{
    fprintf(stderr, "usage: cairn dev [--dir DIR] [--port PORT]\n"
                    "  --dir DIR    data directory (default ./data)\n"
                    "  --port PORT  router port on 127.0.0.1 (default 6380);\n"
                    "               etcd, nodes and the HTTP pages use\n"
                    "               PORT+10 .. PORT+34, all on loopback\n");
    return 2;
}

static int dev_parse(struct dev *d, int argc, char **argv)
{
    const char *dir = "data";
    d->port = 6380;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            long p = strtol(argv[++i], &end, 10);
            if (*end != '\0' || p < 1024 || p > 65535 - 64)
                return dev_usage();
            d->port = (int)p;
        } else {
            return dev_usage();
        }
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cairn dev: cannot create %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    if (realpath(dir, d->dir) == NULL) {
        fprintf(stderr, "cairn dev: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    ssize_t n = readlink("/proc/self/exe", d->self, sizeof d->self - 1);
    if (n <= 0) {
        fprintf(stderr, "cairn dev: cannot find own binary\n");
        return 1;
    }
    d->self[n] = '\0';
    snprintf(d->etcd_url, sizeof d->etcd_url, "http://127.0.0.1:%d",
             d->port + DEV_ETCD_CLIENT_OFF);
    return 0;
}

/* Append a formatted argument to a child's argv (freed by dev_free). */
static void child_arg(struct dev_child *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void child_arg(struct dev_child *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0 || c->argc >= DEV_MAX_ARGS - 1) {
        fprintf(stderr, "cairn dev: out of memory\n");
        exit(1);
    }
    va_end(ap);
    c->argv[c->argc++] = s;
    c->argv[c->argc] = NULL;
}

static struct dev_child *dev_add(struct dev *d, const char *name)
{
    struct dev_child *c = &d->children[d->nchildren++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

/* The cluster's processes, in start order. */
static void dev_plan(struct dev *d)
{
    struct dev_child *c = dev_add(d, "etcd");
    int cp = d->port + DEV_ETCD_CLIENT_OFF, pp = d->port + DEV_ETCD_PEER_OFF;
    child_arg(c, "etcd");
    child_arg(c, "--name=dev");
    child_arg(c, "--data-dir=%s/etcd", d->dir);
    child_arg(c, "--listen-client-urls=http://127.0.0.1:%d", cp);
    child_arg(c, "--advertise-client-urls=http://127.0.0.1:%d", cp);
    child_arg(c, "--listen-peer-urls=http://127.0.0.1:%d", pp);
    child_arg(c, "--initial-advertise-peer-urls=http://127.0.0.1:%d", pp);
    child_arg(c, "--initial-cluster=dev=http://127.0.0.1:%d", pp);
    for (int i = 1; i <= DEV_NODES; i++) {
        char name[16];
        snprintf(name, sizeof name, "node%d", i);
        c = dev_add(d, name);
        child_arg(c, "%s", d->self);
        child_arg(c, "node");
        child_arg(c, "--id");
        child_arg(c, "%d", i);
        child_arg(c, "--listen");
        child_arg(c, "127.0.0.1:%d", d->port + DEV_NODE_OFF + i);
        child_arg(c, "--dir");
        child_arg(c, "%s/%s", d->dir, name);
        child_arg(c, "--etcd");
        child_arg(c, "%s", d->etcd_url);
        child_arg(c, "--http");
        child_arg(c, "127.0.0.1:%d", d->port + DEV_HTTP_OFF + i);
    }
    c = dev_add(d, "controller");
    child_arg(c, "%s", d->self);
    child_arg(c, "controller");
    child_arg(c, "--etcd");
    child_arg(c, "%s", d->etcd_url);
    child_arg(c, "--http");
    child_arg(c, "127.0.0.1:%d", d->port + DEV_HTTP_OFF);
    c = dev_add(d, "router");
    child_arg(c, "%s", d->self);
    child_arg(c, "router");
    child_arg(c, "--listen");
    child_arg(c, "127.0.0.1:%d", d->port);
    child_arg(c, "--etcd");
    child_arg(c, "%s", d->etcd_url);
    child_arg(c, "--http");
    child_arg(c, "127.0.0.1:%d", d->port + DEV_ROUTER_HTTP_OFF);
}

static void dev_free(struct dev *d)
{
    for (int i = 0; i < d->nchildren; i++)
        for (int k = 0; k < d->children[i].argc; k++)
            free(d->children[i].argv[k]);
    d->nchildren = 0;
}

static void write_pid_file(const struct dev *d, const struct dev_child *c)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.pid", d->dir, c->name);
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fprintf(f, "%d\n", (int)c->pid);
        fclose(f);
    }
}

/* fork + exec with stdout/stderr appended to DIR/<name>.log. The child
 * gets the signal mask and dispositions of a fresh process. */
static int dev_spawn(const struct dev *d, struct dev_child *c)
{
    char log[PATH_MAX + 64];
    snprintf(log, sizeof log, "%s/%s.log", d->dir, c->name);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Own process group: Ctrl-C reaches only `cairn dev`, which then
         * stops the children in order. */
        setpgid(0, 0);
        /* If `cairn dev` itself is killed (SIGKILL cannot be caught), the
         * children must not outlive it holding the ports: the kernel sends
         * them SIGTERM, which each handles as a clean stop. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1); /* the parent died before prctl took effect */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(c->argv[0], c->argv);
        fprintf(stderr, "cairn dev: exec %s: %s\n", c->argv[0],
                strerror(errno));
        _exit(127);
    }
    c->pid = pid;
    write_pid_file(d, c);
    return 0;
}

/* Reap children that exited; report each one. Returns how many died;
 * `*essential` (may be NULL) counts those the cluster cannot do without
 * (every child but a node). */
static int dev_reap(struct dev *d, int *essential)
{
    int died = 0, status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < d->nchildren; i++) {
            struct dev_child *c = &d->children[i];
            if (c->pid != pid)
                continue;
            if (WIFSIGNALED(status))
                fprintf(stderr, "cairn dev: %s (pid %d) killed by signal "
                        "%d; see %s/%s.log\n", c->name, (int)pid,
                        WTERMSIG(status), d->dir, c->name);
            else
                fprintf(stderr, "cairn dev: %s (pid %d) exited with status "
                        "%d; see %s/%s.log\n", c->name, (int)pid,
                        WEXITSTATUS(status), d->dir, c->name);
            c->pid = 0;
            died++;
            if (strncmp(c->name, "node", 4) != 0) {
                if (essential)
                    (*essential)++;
            } else if (essential) {
                fprintf(stderr, "cairn dev: the cluster keeps serving "
                        "without %s; restart cairn dev to bring it back\n",
                        c->name);
            }
        }
    }
    return died;
}

/* SIGTERM children [from, to), then SIGKILL at the deadline and reap.
 * Only our own children, by PID. */
static void dev_stop_range(struct dev *d, int from, int to)
{
    for (int i = to - 1; i >= from; i--)
        if (d->children[i].pid > 0)
            kill(d->children[i].pid, SIGTERM);
    double deadline = now_seconds() + DEV_STOP_SECONDS;
    for (;;) {
        int alive = 0;
        for (int i = from; i < to; i++) {
            struct dev_child *c = &d->children[i];
            if (c->pid > 0 && waitpid(c->pid, NULL, WNOHANG) == c->pid)
                c->pid = 0;
            alive += c->pid > 0;
        }
        if (alive == 0)
            break;
        if (now_seconds() > deadline) {
            for (int i = from; i < to; i++)
                if (d->children[i].pid > 0) {
                    fprintf(stderr, "cairn dev: %s did not stop, killing\n",
                            d->children[i].name);
                    kill(d->children[i].pid, SIGKILL);
                    waitpid(d->children[i].pid, NULL, 0);
                    d->children[i].pid = 0;
                }
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Stop the cluster: everything but etcd first (child 0), in reverse start
 * order, so that nodes and the controller can still revoke their leases
 * on the way out; etcd last. */
static void dev_stop(struct dev *d)
{
    dev_stop_range(d, 1, d->nchildren);
    dev_stop_range(d, 0, 1);
    for (int i = 0; i < d->nchildren; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s.pid", d->dir, d->children[i].name);
        unlink(path);
    }
}

/* Connect to 127.0.0.1:port; -1 if nothing listens yet. */
static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send one RESP command (inline form is fine for these) and read the first
 * reply line into `line`. 0 on a reply, -1 on a connection failure. */
static int resp_roundtrip(int port, const char *cmd, char *line, size_t cap)
{
    int fd = tcp_connect(port);
    if (fd < 0)
        return -1;
    size_t len = strlen(cmd), off = 0;
    if (write(fd, cmd, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    while (off + 1 < cap) {
        ssize_t n = read(fd, line + off, 1);
        if (n <= 0)
            break;
        if (line[off] == '\n')
            break;
        off++;
    }
    close(fd);
    line[off] = '\0';
    if (off > 0 && line[off - 1] == '\r')
        line[off - 1] = '\0';
    return off > 0 ? 0 : -1;
}

/* Wait, with a deadline, until `probe` succeeds; children dying fail it. */
static bool dev_wait(struct dev *d, const char *what, bool (*probe)(struct dev *))
{
    double deadline = now_seconds() + DEV_START_SECONDS;
    while (now_seconds() < deadline) {
        if (probe(d))
            return true;
        if (dev_reap(d, NULL) > 0)
            return false; /* while starting, any death is a failed start */
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "cairn dev: %s not ready after %d s\n", what,
            DEV_START_SECONDS);
    return false;
}

static bool probe_etcd(struct dev *d)
{
    int fd = tcp_connect(d->port + DEV_ETCD_CLIENT_OFF);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static bool probe_router(struct dev *d)
{
    char line[256];
    return resp_roundtrip(d->port, "PING\r\n", line, sizeof line) == 0 &&
           strcmp(line, "+PONG") == 0;
}

/* The table `default` exists (created now or on an earlier run) and its
 * range answers a read through the router. */
static bool probe_default_table(struct dev *d)
{
    char line[512];
    if (resp_roundtrip(d->port, "TABLE.CREATE default\r\n", line,
                       sizeof line) != 0)
        return false;
    if (strcmp(line, "+OK") != 0 && strncmp(line, "-EXISTS", 7) != 0)
        return false;
    if (resp_roundtrip(d->port, "GET cairn-dev-probe\r\n", line,
                       sizeof line) != 0)
        return false;
    return line[0] == '$'; /* a bulk string or nil: the range serves */
}

static int dev_start(struct dev *d)
{
    for (int i = 0; i < d->nchildren; i++) {
        struct dev_child *c = &d->children[i];
        if (dev_spawn(d, c) != 0) {
            fprintf(stderr, "cairn dev: cannot start %s: %s\n", c->name,
                    strerror(errno));
            return -1;
        }
        fprintf(stderr, "cairn dev: started %-10s pid %d\n", c->name,
                (int)c->pid);
        if (strcmp(c->name, "etcd") == 0 && !dev_wait(d, "etcd", probe_etcd))
            return -1;
    }
    if (!dev_wait(d, "router", probe_router) ||
        !dev_wait(d, "table default", probe_default_table))
        return -1;
    return 0;
}

/* Wait for Ctrl-C, SIGTERM or a child's death. */
static void dev_supervise(struct dev *d, const sigset_t *sigs)
{
    for (;;) {
        int sig = sigwaitinfo(sigs, NULL);
        if (sig == SIGINT || sig == SIGTERM) {
            fprintf(stderr, "\ncairn dev: stopping\n");
            return;
        }
        int essential = 0;
        if (sig == SIGCHLD && (dev_reap(d, &essential), essential > 0)) {
            fprintf(stderr, "cairn dev: etcd, the router or the controller "
                            "died; stopping the cluster\n");
            return;
        }
    }
}

int cmd_dev(int argc, char **argv)
{
    struct dev d;
    memset(&d, 0, sizeof d);
    int rc = dev_parse(&d, argc, argv);
    if (rc != 0)
        return rc;
    dev_plan(&d);

    /* Signals are taken synchronously with sigwaitinfo. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGCHLD);
    sigprocmask(SIG_BLOCK, &sigs, NULL);

    if (dev_start(&d) != 0) {
        fprintf(stderr, "cairn dev: start failed; logs are in %s\n", d.dir);
        dev_stop(&d);
        dev_free(&d);
        return 1;
    }
    printf("ready: redis-cli -p %d\n", d.port);
    printf("dashboard: http://127.0.0.1:%d/\n", d.port + DEV_HTTP_OFF);
    printf("metrics: http://127.0.0.1:%d/metrics (router), ports %d-%d "
           "(nodes), %d (controller)\n", d.port + DEV_ROUTER_HTTP_OFF,
           d.port + DEV_HTTP_OFF + 1, d.port + DEV_HTTP_OFF + DEV_NODES,
           d.port + DEV_HTTP_OFF);
    printf("data: %s (logs: %s/*.log)\n", d.dir, d.dir);
    printf("stop: Ctrl-C\n");
    fflush(stdout);
    dev_supervise(&d, &sigs);
    dev_stop(&d);
    dev_free(&d);
    return 0;
}
