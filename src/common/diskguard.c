/*
 * diskguard.c - the reserve file and the free-space rule (diskguard.h).
 */
#include "diskguard.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

/* diskguard_room answers from a look at the disk at most this old. */
#define DISKGUARD_FRESH_MS 50

struct diskguard {
    char dir[4096];
    char path[4200]; /* the reserve file */
    uint64_t reserve;
    pthread_mutex_t mu; /* turning full or not full */
    atomic_bool full;
    atomic_uint_fast64_t free_bytes, times_full, looks;
    atomic_uint_fast64_t looked_ms; /* monotonic, of the last statvfs */
    atomic_uint_fast64_t granted;   /* bytes room() let through since */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool diskguard_rule(bool full, uint64_t free_bytes, uint64_t reserve)
{
    if (reserve == 0)
        return false;
    return full ? free_bytes < 2 * reserve : free_bytes < reserve / 2;
}

static int free_space(const char *dir, uint64_t *free_bytes, uint64_t *total)
{
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return CAIRN_ERR_IO;
    *free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (total)
        *total = (uint64_t)sv.f_blocks * sv.f_frsize;
    return 0;
}

/* Whether the reserve file is there, whole. */
static bool reserve_present(const diskguard *g)
{
    struct stat st;
    return stat(g->path, &st) == 0 && (uint64_t)st.st_blocks * 512 >= g->reserve;
}

/* Allocate the reserve file; a partial one is removed again. */
static bool reserve_make(const diskguard *g)
{
    int fd = open(g->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    int rc = posix_fallocate(fd, 0, (off_t)g->reserve);
    if (rc == 0)
        rc = fsync(fd);
    close(fd);
    if (rc != 0)
        unlink(g->path);
    return rc == 0;
}

int diskguard_open(const char *dir, uint64_t reserve, diskguard **out)
{
    *out = NULL;
    diskguard *g = calloc(1, sizeof *g);
    if (g == NULL)
        return CAIRN_ERR_NOMEM;
    uint64_t free_bytes, total;
    if (free_space(dir, &free_bytes, &total) != 0) {
        free(g);
        return CAIRN_ERR_IO;
    }
    snprintf(g->dir, sizeof g->dir, "%s", dir);
    snprintf(g->path, sizeof g->path, "%s/reserve", dir);
    g->reserve = reserve < total / DISKGUARD_MAX_SHARE
                     ? reserve : total / DISKGUARD_MAX_SHARE;
    pthread_mutex_init(&g->mu, NULL);
    atomic_store(&g->free_bytes, free_bytes);
    if (g->reserve == 0) {
        unlink(g->path); /* a guard turned off gives its reserve back */
    } else if (!reserve_present(g)) {
        unlink(g->path);
        atomic_store(&g->full, true); /* until the poll can allocate it */
        diskguard_poll(g);
    } else {
        diskguard_check(g);
    }
    *out = g;
    return 0;
}

void diskguard_close(diskguard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_destroy(&g->mu);
    free(g);
}

bool diskguard_full(const diskguard *g)
{
    return g != NULL && atomic_load(&g->full);
}

bool diskguard_check(diskguard *g)
{
    if (g == NULL || g->reserve == 0)
        return false;
    uint64_t free_bytes;
    atomic_fetch_add(&g->looks, 1);
    if (free_space(g->dir, &free_bytes, NULL) != 0)
        return atomic_load(&g->full);
    atomic_store(&g->free_bytes, free_bytes);
    atomic_store(&g->granted, 0);
    atomic_store(&g->looked_ms, mono_ms());
    if (atomic_load(&g->full) || !diskguard_rule(false, free_bytes, g->reserve))
        return atomic_load(&g->full);
    /* The headroom for what the node already accepted: give it back now,
     * before the next write needs it. */
    pthread_mutex_lock(&g->mu);
    if (!atomic_load(&g->full)) {
        atomic_store(&g->full, true);
        unlink(g->path);
        atomic_fetch_add(&g->times_full, 1);
    }
    pthread_mutex_unlock(&g->mu);
    return true;
}

/* A follower asks this for every AppendEntries of every range: a statvfs
 * each time was a system call per message. The free space seen at most
 * DISKGUARD_FRESH_MS ago, less what this let through since, answers
 * instead while it stays above the reserve; near it, or older, the disk is
 * looked at now. What is let through on an estimate is still written only
 * after the log writer's own look at the disk (raftlog.c), and the reserve
 * covers what was accepted. */
bool diskguard_room(diskguard *g, uint64_t bytes)
{
    if (g == NULL || g->reserve == 0)
        return true;
    if (atomic_load(&g->full))
        return false;
    uint64_t free_bytes = atomic_load(&g->free_bytes);
    uint64_t used = atomic_load(&g->granted) + bytes;
    if (mono_ms() - atomic_load(&g->looked_ms) >= DISKGUARD_FRESH_MS ||
        free_bytes < used + g->reserve) {
        if (diskguard_check(g))
            return false;
        free_bytes = atomic_load(&g->free_bytes);
        used = bytes;
    }
    atomic_fetch_add(&g->granted, bytes);
    return free_bytes >= used &&
           !diskguard_rule(false, free_bytes - used, g->reserve);
}

bool diskguard_poll(diskguard *g)
{
    if (g == NULL || g->reserve == 0)
        return false;
    if (!diskguard_check(g))
        return false;
    if (diskguard_rule(true, atomic_load(&g->free_bytes), g->reserve))
        return true;
    pthread_mutex_lock(&g->mu);
    if (atomic_load(&g->full) && reserve_make(g)) {
        atomic_store(&g->full, false);
        uint64_t free_bytes;
        if (free_space(g->dir, &free_bytes, NULL) == 0)
            atomic_store(&g->free_bytes, free_bytes);
    }
    pthread_mutex_unlock(&g->mu);
    return atomic_load(&g->full);
}

void diskguard_get_stats(const diskguard *g, diskguard_stats *out)
{
    *out = (diskguard_stats){0};
    if (g == NULL)
        return;
    out->free_bytes = atomic_load(&g->free_bytes);
    out->reserve = g->reserve;
    out->times_full = atomic_load(&g->times_full);
    out->looks = atomic_load(&g->looks);
    out->full = atomic_load(&g->full);
}
