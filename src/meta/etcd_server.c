/* etcd_server.c - see etcd_server.h. */
#include "meta/etcd_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "meta/etcd.h"

struct etcd_server {
    char *dir;
    int client_port, peer_port;
    pid_t pid;
    char url[64];
    char name[16];     /* member name: "default", or "m<i>" in a cluster */
    char cluster[512]; /* --initial-cluster */
};

int etcd_server_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void exec_etcd(const etcd_server *s)
{
    char data[4096], log[4096], curl[64], purl[64];
    snprintf(data, sizeof data, "%s/etcd-data", s->dir);
    snprintf(log, sizeof log, "%s/etcd.log", s->dir);
    snprintf(curl, sizeof curl, "http://127.0.0.1:%d", s->client_port);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", s->peer_port);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    /* A test that crashes must not leave etcd behind. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const char *bin = getenv("CAIRN_ETCD") ? getenv("CAIRN_ETCD") : "/usr/bin/etcd";
    execl(bin, "etcd", "--name", s->name, "--data-dir", data,
          "--listen-client-urls", curl, "--advertise-client-urls", curl,
          "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
          "--initial-cluster", s->cluster, "--initial-cluster-token",
          "cairn", "--log-level", "warn", "--logger", "zap", (char *)NULL);
    _exit(127);
}

static int spawn(etcd_server *s)
{
    pid_t pid = fork();
    if (pid < 0)
        return CAIRN_ERR_IO;
    if (pid == 0)
        exec_etcd(s);
    s->pid = pid;
    return CAIRN_OK;
}

/* Wait until etcd answers a read, the child dies, or the deadline. */
static int wait_ready(etcd_server *s, int timeout_ms)
{
    etcd *c = NULL;
    if (etcd_open(&c, s->url, 500) != 0)
        return CAIRN_ERR_NOMEM;
    int64_t deadline = now_ms() + timeout_ms;
    int rc = CAIRN_ERR_TIMEOUT;
    while (now_ms() < deadline) {
        etcd_range_result r;
        if (etcd_range(c, "health", 6, NULL, 0, 0, 1, &r) == 0) {
            etcd_range_free(&r);
            rc = CAIRN_OK;
            break;
        }
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            rc = CAIRN_ERR_IO;
            break;
        }
        usleep(20 * 1000);
    }
    etcd_close(c);
    return rc;
}

int etcd_server_restart(etcd_server *s, int timeout_ms)
{
    int rc = spawn(s);
    if (rc == 0)
        rc = wait_ready(s, timeout_ms);
    if (rc != 0)
        etcd_server_kill(s, 1);
    return rc;
}

/* A member description: ports, name, data dir; nothing started. */
static etcd_server *member_new(const char *dir, int client_port,
                               int peer_port, const char *name)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return NULL;
    etcd_server *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return NULL;
    }
    s->client_port = client_port ? client_port : etcd_server_free_port();
    s->peer_port = peer_port ? peer_port : etcd_server_free_port();
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->client_port);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->cluster, sizeof s->cluster, "%s=http://127.0.0.1:%d", name,
             s->peer_port);
    return s;
}

int etcd_server_start(const char *dir, int client_port, int peer_port,
                      int timeout_ms, etcd_server **out)
{
    etcd_server *s = member_new(dir, client_port, peer_port, "default");
    if (!s)
        return CAIRN_ERR_IO;
    int rc = etcd_server_restart(s, timeout_ms);
    if (rc != 0) {
        etcd_server_stop(s, 0);
        return rc;
    }
    *out = s;
    return CAIRN_OK;
}

/* Append ",member" (or "member" first) to the --initial-cluster list. */
static int cluster_add(char *list, size_t cap, const char *member)
{
    size_t used = strlen(list), n = strlen(member);
    if (used + n + 2 > cap)
        return CAIRN_ERR_INVALID;
    if (used)
        list[used++] = ',';
    memcpy(list + used, member, n + 1);
    return CAIRN_OK;
}

int etcd_server_start_cluster(const char *dir, int n, int timeout_ms,
                              etcd_server **out)
{
    char cluster[512] = "", sub[4096], name[16];
    if (n < 1 || n > 5 || (mkdir(dir, 0755) != 0 && errno != EEXIST))
        return CAIRN_ERR_INVALID;
    memset(out, 0, (size_t)n * sizeof *out);
    int rc = CAIRN_OK;
    for (int i = 0; i < n && rc == 0; i++) {
        snprintf(sub, sizeof sub, "%s/m%d", dir, i);
        snprintf(name, sizeof name, "m%d", i);
        out[i] = member_new(sub, 0, 0, name);
        if (!out[i])
            rc = CAIRN_ERR_IO;
        else
            rc = cluster_add(cluster, sizeof cluster, out[i]->cluster);
    }
    /* All members start together: none is ready before a quorum is up. */
    for (int i = 0; rc == 0 && i < n; i++) {
        memcpy(out[i]->cluster, cluster, sizeof cluster);
        rc = spawn(out[i]);
    }
    for (int i = 0; rc == 0 && i < n; i++)
        rc = wait_ready(out[i], timeout_ms);
    if (rc != 0)
        for (int i = 0; i < n; i++) {
            etcd_server_stop(out[i], 0);
            out[i] = NULL;
        }
    return rc;
}

size_t etcd_server_urls(etcd_server *const *members, int n, char *out,
                        size_t len)
{
    size_t used = 0;
    if (len > 0)
        out[0] = '\0';
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s", i ? "," : "",
                                 members[i]->url);
    return used;
}

const char *etcd_server_url(const etcd_server *s) { return s->url; }

pid_t etcd_server_pid(const etcd_server *s) { return s->pid; }

void etcd_server_kill(etcd_server *s, int hard)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, hard ? SIGKILL : SIGTERM);
    for (int i = 0; !hard && i < 500; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        usleep(10 * 1000);
    }
    if (!hard)
        kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void etcd_server_stop(etcd_server *s, int remove_dir)
{
    if (!s)
        return;
    etcd_server_kill(s, 0);
    if (remove_dir)
        nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(s->dir);
    free(s);
}
