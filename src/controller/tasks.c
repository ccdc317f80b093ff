/*
 * tasks.c - background tasks of the controller (controller_int.h): a
 * thread each, one per range at a time, a bound per class.
 *
 * A membership change takes as long as its new replica needs to catch up
 * (seconds; a minute at worst), a node that does not answer costs an RPC
 * timeout: run on the loop, one of them would stop every other concern.
 * Tasks are few (a handful per class), so a thread each is simplest; they
 * block on etcd and on nodes, and check ctl_active() before every write,
 * so a task of a deposed controller stops at its next step and leaves the
 * rest to the new one (every step is repeatable).
 */
#include <stdlib.h>

#include "common/err.h"
#include "common/grow.h"
#include "controller/controller_int.h"

struct ctl_task_rec {
    ctl *c;
    uint64_t key;
    int cls;
    ctl_task_fn fn;
    void *arg;
    uint64_t adds, removes;
    bool done;
    pthread_t thread;
    ctl_task_rec *next;
};

void ctl_tasks_init(ctl *c)
{
    pthread_mutex_init(&c->tasks.mu, NULL);
    pthread_cond_init(&c->tasks.cv, NULL);
}

/* Join and free the tasks that finished. Called with the lock held. */
static void reap(ctl_tasks *t)
{
    ctl_task_rec **p = &t->list;
    while (*p) {
        ctl_task_rec *r = *p;
        if (!r->done) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        pthread_join(r->thread, NULL);
        free(r);
    }
}

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 30000

static ctl_task_fail *find_fail(ctl_tasks *t, uint64_t key)
{
    for (size_t i = 0; i < t->n_fails; i++)
        if (t->fails[i].key == key)
            return &t->fails[i];
    return NULL;
}

/* Remember how a task on `key` ended. Called with the lock held. */
static void note_result(ctl_tasks *t, uint64_t key, int rc)
{
    ctl_task_fail *f = find_fail(t, key);
    if (rc == 0) {
        if (f)
            *f = t->fails[--t->n_fails];
        return;
    }
    if (f == NULL) {
        if (grow_array((void **)&t->fails, t->n_fails, &t->cap_fails,
                       sizeof *t->fails, 8) != 0)
            return;
        f = &t->fails[t->n_fails++];
        *f = (ctl_task_fail){.key = key};
    }
    uint64_t wait = BACKOFF_FIRST_MS << (f->fails < 5 ? f->fails : 5);
    f->fails++;
    f->retry_ms = ctl_now_ms() + (wait < BACKOFF_MAX_MS ? wait : BACKOFF_MAX_MS);
}

static void *task_main(void *arg)
{
    ctl_task_rec *r = arg;
    ctl *c = r->c;
    int rc = r->fn(c, r->arg);
    free(r->arg);
    pthread_mutex_lock(&c->tasks.mu);
    note_result(&c->tasks, r->key, rc);
    r->done = true;
    c->tasks.count[r->cls]--;
    c->tasks.last_done[r->cls] = ctl_now_ms();
    pthread_cond_broadcast(&c->tasks.cv);
    pthread_mutex_unlock(&c->tasks.mu);
    ctl_kick(c);
    return NULL;
}

static bool busy_locked(ctl_tasks *t, uint64_t key)
{
    for (ctl_task_rec *r = t->list; r; r = r->next)
        if (!r->done && r->key == key)
            return true;
    return false;
}

int ctl_task_start(ctl *c, uint64_t key, int cls, int limit, ctl_task_fn fn,
                   void *arg, uint64_t adds, uint64_t removes)
{
    ctl_tasks *t = &c->tasks;
    ctl_task_rec *r = calloc(1, sizeof *r);
    if (r == NULL) {
        free(arg);
        return CAIRN_ERR_NOMEM;
    }
    *r = (ctl_task_rec){.c = c, .key = key, .cls = cls, .fn = fn,
                        .arg = arg, .adds = adds, .removes = removes};
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    reap(t);
    ctl_task_fail *f = find_fail(t, key);
    if (busy_locked(t, key) || t->count[cls] >= limit ||
        (f && f->retry_ms > ctl_now_ms()))
        rc = CAIRN_ERR_BUSY;
    else if (pthread_create(&r->thread, NULL, task_main, r) != 0)
        rc = CAIRN_ERR_NOMEM;
    if (rc == 0) {
        t->count[cls]++;
        r->next = t->list;
        t->list = r;
    }
    pthread_mutex_unlock(&t->mu);
    if (rc != 0) {
        free(arg);
        free(r);
    }
    return rc;
}

bool ctl_task_busy(ctl *c, uint64_t key)
{
    pthread_mutex_lock(&c->tasks.mu);
    bool b = busy_locked(&c->tasks, key);
    pthread_mutex_unlock(&c->tasks.mu);
    return b;
}

int ctl_task_count(ctl *c, int cls)
{
    pthread_mutex_lock(&c->tasks.mu);
    int n = c->tasks.count[cls];
    pthread_mutex_unlock(&c->tasks.mu);
    return n;
}

int ctl_task_delta(ctl *c, uint64_t id)
{
    int d = 0;
    pthread_mutex_lock(&c->tasks.mu);
    for (ctl_task_rec *r = c->tasks.list; r; r = r->next)
        if (!r->done)
            d += (r->adds == id) - (r->removes == id);
    pthread_mutex_unlock(&c->tasks.mu);
    return d;
}

uint64_t ctl_task_last_done(ctl *c, int cls)
{
    pthread_mutex_lock(&c->tasks.mu);
    uint64_t t = c->tasks.last_done[cls];
    pthread_mutex_unlock(&c->tasks.mu);
    return t;
}

void ctl_tasks_join(ctl *c)
{
    ctl_tasks *t = &c->tasks;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        reap(t);
        if (t->list == NULL)
            break;
        pthread_cond_wait(&t->cv, &t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    free(t->fails);
    t->fails = NULL;
    t->n_fails = t->cap_fails = 0;
}
