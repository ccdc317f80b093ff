/* Tests for src/meta/etcd.h against a real 3-member etcd: calls and
 * watches fail over when the member they use dies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "meta/etcd.h"
#include "meta/etcd_server.h"

#define MEMBERS 3

typedef struct cluster {
    char dir[64];
    etcd_server *m[MEMBERS];
    etcd *client;
} cluster;

static int setup(void **state)
{
    cluster *c = calloc(1, sizeof *c);
    char urls[512];
    snprintf(c->dir, sizeof c->dir, "/tmp/cairn-etcd3-XXXXXX");
    if (!mkdtemp(c->dir) ||
        etcd_server_start_cluster(c->dir, MEMBERS, 30000, c->m) != 0) {
        fprintf(stderr, "cannot start a 3-member etcd in %s\n", c->dir);
        free(c);
        return -1;
    }
    etcd_server_urls(c->m, MEMBERS, urls, sizeof urls);
    if (etcd_open(&c->client, urls, 1000) != 0)
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    cluster *c = *state;
    etcd_close(c->client);
    for (int i = 0; i < MEMBERS; i++)
        etcd_server_stop(c->m[i], 1);
    rmdir(c->dir);
    free(c);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Put until it succeeds (a member died: the survivors may be electing a
 * leader), at most 10 s. A TIMEOUT (outcome unknown) is retried too: the
 * value is the same, so a repeat is harmless here. */
static int put_retry(etcd *e, const char *key, const char *value)
{
    int64_t deadline = now_ms() + 10000;
    int rc;
    while ((rc = etcd_put(e, key, strlen(key), value, strlen(value), 0,
                          NULL)) != 0 &&
           now_ms() < deadline)
        usleep(50 * 1000);
    return rc;
}

typedef struct seen {
    pthread_mutex_t mu;
    char keys[16][8];
    int64_t revs[16];
    int n;
} seen;

static void on_watch(void *arg, const etcd_watch_msg *m)
{
    seen *s = arg;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < m->n_events && s->n < 16; i++) {
        snprintf(s->keys[s->n], 8, "%.*s", (int)m->events[i].kv.key_len,
                 (char *)m->events[i].kv.key);
        s->revs[s->n++] = m->events[i].kv.mod_revision;
    }
    pthread_mutex_unlock(&s->mu);
}

static bool wait_seen(seen *s, int n)
{
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int have = s->n;
        pthread_mutex_unlock(&s->mu);
        if (have >= n)
            return have == n;
        if (now_ms() > deadline)
            return false;
        usleep(10 * 1000);
    }
}

static void test_member_failures(void **state)
{
    cluster *c = *state;
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    int64_t rev0;
    assert_int_equal(etcd_put(c->client, "/c/0", 4, "x", 1, 0, &rev0), 0);
    etcd_watch *w;
    /* the watch and the calls start on member 0, the first endpoint */
    assert_int_equal(etcd_watch_start(c->client, "/c/", 3, "/c0", 3, rev0 + 1,
                                      on_watch, &s, &w), 0);
    assert_int_equal(put_retry(c->client, "/c/1", "x"), 0);
    assert_true(wait_seen(&s, 1));

    /* member 0 dies: calls move to the next member, the watch too */
    etcd_server_kill(c->m[0], 1);
    assert_int_equal(put_retry(c->client, "/c/2", "x"), 0);
    etcd_kv kv;
    assert_int_equal(etcd_get(c->client, "/c/2", 4, 0, &kv, NULL), 0);
    etcd_kv_free(&kv);
    assert_true(wait_seen(&s, 2));

    /* member 0 back, member 1 dies: still a majority */
    assert_int_equal(etcd_server_restart(c->m[0], 20000), 0);
    etcd_server_kill(c->m[1], 1);
    assert_int_equal(put_retry(c->client, "/c/3", "x"), 0);
    assert_true(wait_seen(&s, 3));
    etcd_watch_stop(w);
    /* every change once, in order */
    for (int i = 0; i < 3; i++) {
        char want[8];
        snprintf(want, sizeof want, "/c/%d", i + 1);
        assert_string_equal(s.keys[i], want);
        if (i)
            assert_true(s.revs[i] > s.revs[i - 1]);
    }
    assert_int_equal(etcd_server_restart(c->m[1], 20000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_member_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
