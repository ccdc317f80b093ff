/*
 * cmd_dev.c - `cairn dev`: one command that starts a whole local cluster.
 *
 *     cairn dev [--dir DIR] [--port PORT] [--nodes N] [--dead-after S]
 *     cairn dev add-node [--dir DIR]
 *
 * Starts, as child processes under DIR (default ./data): etcd, N nodes
 * (default 3), a controller and a router listening on 127.0.0.1:PORT
 * (default 6380). Creates the table `default` if it is missing, waits until
 * it serves, and prints how to connect and where the dashboard is (the
 * controller's --http, PORT + 30; node i's /metrics on PORT + 30 + i, the
 * router's on PORT + 39). Each child's PID is in
 * DIR/<child>.pid and its output in DIR/<child>.log; DIR/etcd.url says
 * where etcd is (for `cairn status`), DIR/dev.supervisor the PID of
 * `cairn dev` itself (not a .pid file: those are the children). Ctrl-C or
 * SIGTERM stops everything (SIGTERM, then SIGKILL after a deadline).
 *
 * A node that dies is reported and the cluster keeps serving: its ranges
 * keep a majority, and the controller re-replicates them onto another
 * node once it is declared dead (--dead-after, 10 s here) - with 4 nodes
 * or more, or after `cairn dev add-node`. Watch it with `cairn status
 * --dir DIR --watch`. etcd, the controller or the router dying stops the
 * cluster (reported, with its log): nothing works without them.
 *
 * `cairn dev add-node` asks the running `cairn dev` (SIGUSR1 to the PID
 * in DIR/dev.supervisor) to start one more node; the controller then moves
 * replicas onto it. The number of nodes is kept in DIR/dev.nodes, so a restart
 * starts them all again.
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
#define DEV_MAX_NODES 8 /* ports PORT+21 .. PORT+28 */
#define DEV_MAX_ARGS 24
#define DEV_DEAD_AFTER 10
#define DEV_START_SECONDS 60
#define DEV_STOP_SECONDS 10

/* Port layout relative to the router's port. */
#define DEV_ETCD_CLIENT_OFF 10
#define DEV_ETCD_PEER_OFF 11
#define DEV_NODE_OFF 20 /* node i (1-based) listens on PORT + 20 + i */
#define DEV_HTTP_OFF 30 /* controller's dashboard; node i's /metrics at
                           PORT + 30 + i */
#define DEV_ROUTER_HTTP_OFF (DEV_HTTP_OFF + DEV_MAX_NODES + 1)

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
    int nodes;      /* nodes started (DIR/dev.nodes) */
    int dead_after; /* the controller's --dead-after */
    char etcd_url[64];
    struct dev_child children[DEV_MAX_NODES + 3];
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
    fprintf(stderr,
            "usage: cairn dev [--dir DIR] [--port PORT] [--nodes N]\n"
            "                 [--dead-after S]\n"
            "       cairn dev add-node [--dir DIR]\n"
            "  --dir DIR       data directory (default ./data)\n"
            "  --port PORT     router port on 127.0.0.1 (default 6380)\n"
            "  --nodes N       storage nodes (default 3, at most %d; 5 makes\n"
            "                  REPLICAS 5 usable; a restart starts as many as\n"
            "                  the directory has)\n"
            "  --dead-after S  a node gone this long is replaced (default %d)\n"
            "  add-node        start one more node in the running cluster\n",
            DEV_MAX_NODES, DEV_DEAD_AFTER);
    return 2;
}

/* How many nodes DIR has held (0 if it is new). */
static int read_nodes(const char *dir)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/dev.nodes", dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = 0;
        fclose(f);
    }
    return n > 0 && n <= DEV_MAX_NODES ? n : 0;
}

static void write_file(const char *dir, const char *name, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));
static void write_file(const char *dir, const char *name, const char *fmt,
                       ...)
{
    char path[PATH_MAX + 64], tmp[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    if (fclose(f) == 0)
        rename(tmp, path);
}

static int dev_parse(struct dev *d, int argc, char **argv)
{
    const char *dir = "data";
    d->port = 6380;
    d->dead_after = DEV_DEAD_AFTER;
    int nodes = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            long p = strtol(argv[++i], &end, 10);
            if (*end != '\0' || p < 1024 || p > 65535 - 64)
                return dev_usage();
            d->port = (int)p;
        } else if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc) {
            long n = strtol(argv[++i], &end, 10);
            if (*end != '\0' || n < 1 || n > DEV_MAX_NODES)
                return dev_usage();
            nodes = (int)n;
        } else if (strcmp(argv[i], "--dead-after") == 0 && i + 1 < argc) {
            long s = strtol(argv[++i], &end, 10);
            if (*end != '\0' || s < 1)
                return dev_usage();
            d->dead_after = (int)s;
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
    /* A directory that held more nodes starts them all: their replicas
     * and their peers' Raft configurations expect them. */
    int had = read_nodes(d->dir);
    d->nodes = nodes ? nodes : DEV_NODES;
    if (had > d->nodes)
        d->nodes = had;
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

/* Node `i` (1-based) of the cluster. */
static struct dev_child *plan_node(struct dev *d, int i)
{
    char name[16];
    snprintf(name, sizeof name, "node%d", i);
    struct dev_child *c = dev_add(d, name);
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
    child_arg(c, "--lease-ttl"); /* a dead node is seen within 3 s */
    child_arg(c, "3");
    child_arg(c, "--http");
    child_arg(c, "127.0.0.1:%d", d->port + DEV_HTTP_OFF + i);
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
    for (int i = 1; i <= d->nodes; i++)
        plan_node(d, i);
    c = dev_add(d, "controller");
    child_arg(c, "%s", d->self);
    child_arg(c, "controller");
    child_arg(c, "--etcd");
    child_arg(c, "%s", d->etcd_url);
    child_arg(c, "--dead-after");
    child_arg(c, "%d", d->dead_after);
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

static bool is_node(const struct dev_child *c)
{
    return strncmp(c->name, "node", 4) == 0;
}

/* Print the last lines of a child's log, so that whoever reads cairn dev's
 * output (a user, or CI that keeps nothing else) sees why it stopped. */
static void dev_print_log_tail(const struct dev *d, const char *name)
{
    char path[PATH_MAX + 32], buf[2048];
    snprintf(path, sizeof path, "%s/%s.log", d->dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    long start = 0;
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)sizeof buf - 1)
        start = ftell(f) - (long)sizeof buf + 1;
    fseek(f, start, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Drop a line cut in half by the window; keep the last 8 lines. */
    char *p = start > 0 && strchr(buf, '\n') ? strchr(buf, '\n') + 1 : buf;
    int lines = 0;
    for (char *q = buf + n; q > p; q--)
        if (q[-1] == '\n' && q != buf + n && ++lines == 8) {
            p = q;
            break;
        }
    fprintf(stderr, "cairn dev: the end of %s:\n", path);
    for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(stderr, "  | %s\n", line);
}

/* Reap children that exited; report each one. Returns how many died,
 * nodes not counted unless `nodes_count` (a node may die once the cluster
 * runs: it keeps serving, and heals). */
static int dev_reap(struct dev *d, bool nodes_count)
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
            dev_print_log_tail(d, c->name);
            c->pid = 0;
            if (nodes_count || !is_node(c)) {
                died++;
                continue;
            }
            fprintf(stderr,
                    "cairn dev: the cluster keeps serving without %s: its "
                    "ranges keep a majority, and once it has been gone %d s "
                    "the controller re-replicates them on another node, if "
                    "there is one that does not hold them (`cairn dev "
                    "add-node` starts one). Watch: cairn status --dir %s "
                    "--watch\n", c->name, d->dead_after, d->dir);
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
    char path[PATH_MAX + 64];
    for (int i = 0; i < d->nchildren; i++) {
        snprintf(path, sizeof path, "%s/%s.pid", d->dir, d->children[i].name);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/dev.supervisor", d->dir);
    unlink(path);
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
        if (dev_reap(d, true) > 0)
            return false;
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
 * range answers a read through the router. Its replicas are asked for
 * explicitly: without REPLICAS the router takes 3 only if 3 nodes are
 * live at that moment, else 1 - and a node slow to register (seen under
 * ASan on a loaded machine) left `default` with one replica for good. With
 * REPLICAS the create answers TRYAGAIN until enough nodes are live, and
 * this probe is asked again. */
static bool probe_default_table(struct dev *d)
{
    char line[512], cmd[96];
    snprintf(cmd, sizeof cmd, "TABLE.CREATE default REPLICAS %d\r\n",
             d->nodes >= 3 ? 3 : 1);
    if (resp_roundtrip(d->port, cmd, line, sizeof line) != 0)
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

/* `cairn dev add-node` asked: one more node. */
static void dev_add_node(struct dev *d)
{
    if (d->nodes >= DEV_MAX_NODES) {
        fprintf(stderr, "cairn dev: add-node: already %d nodes, the most "
                "this layout has ports for\n", d->nodes);
        return;
    }
    struct dev_child *c = plan_node(d, d->nodes + 1);
    if (dev_spawn(d, c) != 0) {
        fprintf(stderr, "cairn dev: cannot start %s: %s\n", c->name,
                strerror(errno));
        d->nchildren--;
        return;
    }
    d->nodes++;
    write_file(d->dir, "dev.nodes", "%d\n", d->nodes);
    fprintf(stderr, "cairn dev: started %-10s pid %d (added; the controller "
            "moves replicas and leaders onto it)\n", c->name, (int)c->pid);
}

/* Wait for Ctrl-C, SIGTERM, add-node, or the death of a child the
 * cluster cannot do without. */
static void dev_supervise(struct dev *d, const sigset_t *sigs)
{
    for (;;) {
        int sig = sigwaitinfo(sigs, NULL);
        if (sig == SIGINT || sig == SIGTERM) {
            fprintf(stderr, "\ncairn dev: stopping\n");
            return;
        }
        if (sig == SIGUSR1)
            dev_add_node(d);
        if (sig == SIGCHLD && dev_reap(d, false) > 0) {
            fprintf(stderr, "cairn dev: the cluster cannot run without it; "
                            "stopping the cluster\n");
            return;
        }
    }
}

/* `cairn dev add-node [--dir DIR]`: signal the running `cairn dev`, then
 * wait for its new node's PID file. */
static int dev_add_node_cmd(int argc, char **argv)
{
    const char *dir = "data";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else
            return dev_usage();
    }
    char path[PATH_MAX + 64], cmdline[256] = "";
    snprintf(path, sizeof path, "%s/dev.supervisor", dir);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    f = pid > 0 ? fopen(path, "r") : NULL;
    size_t n = f ? fread(cmdline, 1, sizeof cmdline - 1, f) : 0;
    if (f)
        fclose(f);
    for (size_t i = 0; i < n; i++) /* arguments are NUL-separated */
        if (cmdline[i] == '\0')
            cmdline[i] = ' ';
    if (pid <= 0 || strstr(cmdline, " dev") == NULL) {
        fprintf(stderr, "cairn dev add-node: no `cairn dev` runs on %s "
                "(start it first)\n", dir);
        return 1;
    }
    int before = read_nodes(dir);
    if (kill(pid, SIGUSR1) != 0) {
        fprintf(stderr, "cairn dev add-node: %s\n", strerror(errno));
        return 1;
    }
    double deadline = now_seconds() + 30;
    snprintf(path, sizeof path, "%s/node%d.pid", dir, before + 1);
    while (now_seconds() < deadline) {
        if (read_nodes(dir) == before + 1 && access(path, R_OK) == 0) {
            printf("node %d started; the controller moves replicas onto "
                   "it (cairn status --dir %s)\n", before + 1, dir);
            return 0;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "cairn dev add-node: no node %d after 30 s; see %s/"
            "dev.log or the output of `cairn dev`\n", before + 1, dir);
    return 1;
}

int cmd_dev(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "add-node") == 0)
        return dev_add_node_cmd(argc, argv);
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
    sigaddset(&sigs, SIGUSR1);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    write_file(d.dir, "etcd.url", "%s\n", d.etcd_url);
    write_file(d.dir, "dev.nodes", "%d\n", d.nodes);
    write_file(d.dir, "dev.supervisor", "%d\n", (int)getpid());

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
           d.port + DEV_HTTP_OFF + 1, d.port + DEV_HTTP_OFF + d.nodes,
           d.port + DEV_HTTP_OFF);
    printf("data: %s (logs: %s/*.log), %d nodes\n", d.dir, d.dir, d.nodes);
    printf("status: cairn status --dir %s [--watch]\n", d.dir);
    printf("stop: Ctrl-C\n");
    fflush(stdout);
    dev_supervise(&d, &sigs);
    dev_stop(&d);
    dev_free(&d);
    return 0;
}
