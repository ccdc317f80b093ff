/* Tests for `cairn meta backup|restore|dump` (src/cli/cmd_meta.c): runs the
 * built `cairn` binary, found next to this test in the build directory,
 * against a real etcd (etcd_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "meta/etcd_fixture.h"
#include "meta/meta.h"

static char cairn_bin[PATH_MAX];

/* The `cairn` binary beside this test executable. */
static bool find_cairn(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    snprintf(cairn_bin, sizeof cairn_bin, "%s/cairn", dirname(self));
    return access(cairn_bin, X_OK) == 0;
}

/* Run cairn with args, stdout+stderr to `out`, killed after 20 s.
 * Returns the exit status (or -1). */
static int run_cairn(const char *out, char *const args[])
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(cairn_bin, args);
        _exit(127);
    }
    for (int i = 0; i < 2000; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static char *slurp(const char *path)
{
    static char text[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f)
        fclose(f);
    return text;
}

static void test_backup_restore_dump(void **state)
{
    if (!find_cairn())
        skip(); /* only the test target was built, not the binary */
    etcd_fixture *f = *state;
    meta *m;
    assert_int_equal(meta_open(&m, f->client, "/cli"), 0);
    int64_t lease;
    assert_int_equal(etcd_lease_grant(f->client, 60, &lease), 0);
    assert_int_equal(meta_node_register(m, 1, "127.0.0.1:7001", 5, lease), 0);
    const uint8_t *splits[] = {(const uint8_t *)"m"};
    size_t lens[] = {1};
    meta_table_spec spec = {.name = "orders", .replicas = 1, .splits = splits,
                            .split_lens = lens, .n_splits = 1};
    meta_table t;
    assert_int_equal(meta_table_create(m, &spec, &t), 0);
    assert_int_equal(meta_table_set_ready(m, "orders", t.id), 0);

    char file[128], out[128], url[64];
    snprintf(file, sizeof file, "%s/cli.backup", f->dir);
    snprintf(out, sizeof out, "%s/cli.out", f->dir);
    snprintf(url, sizeof url, "%s", etcd_server_url(f->server));
    char *backup[] = {"cairn", "meta", "backup", file, "--etcd", url,
                      "--prefix", "/cli", NULL};
    assert_int_equal(run_cairn(out, backup), 0);
    assert_non_null(strstr(slurp(out), "saved 6 keys of /cli"));

    char *again[] = {"cairn", "meta", "restore", file, "--etcd", url,
                     "--prefix", "/cli", NULL};
    assert_int_equal(run_cairn(out, again), 1); /* not empty: refused */
    assert_non_null(strstr(slurp(out), "EXISTS"));

    char *restore[] = {"cairn", "meta", "restore", file, "--etcd", url,
                       "--prefix", "/cli-copy", NULL};
    assert_int_equal(run_cairn(out, restore), 0);
    char *dump[] = {"cairn", "meta", "dump", "--etcd", url, "--prefix",
                    "/cli-copy", NULL};
    assert_int_equal(run_cairn(out, dump), 0);
    const char *text = slurp(out);
    assert_non_null(strstr(text, "table orders id=1 engine=btree replicas=1 state=ready"));
    assert_non_null(strstr(text, "[-inf, \"m\") epoch=1 replicas=1"));
    assert_non_null(strstr(text, "[\"m\", +inf) epoch=1 replicas=1"));
    assert_non_null(strstr(text, "node 1 addr=127.0.0.1:7001 capacity=5 down"));

    char *usage[] = {"cairn", "meta", "backup", NULL};
    assert_int_equal(run_cairn(out, usage), 2);
    etcd_lease_revoke(f->client, lease);
    meta_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_restore_dump),
    };
    return cmocka_run_group_tests(tests, etcd_fixture_setup,
                                  etcd_fixture_teardown);
}
