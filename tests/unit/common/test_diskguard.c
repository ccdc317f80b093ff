/* Tests for src/common/diskguard.h: the full / not-full rule with its
 * hysteresis, and the reserve file on a real directory (taken at open,
 * kept at close, given back when the guard is turned off). The turn to full on a disk that fills up is tested with a
 * real tmpfs in tests/faults (root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/diskguard.h"

#define MIB (1ull << 20)

static void test_rule_hysteresis(void **state)
{
    (void)state;
    uint64_t r = 100 * MIB;
    assert_false(diskguard_rule(false, 50 * MIB, r)); /* half: still room */
    assert_true(diskguard_rule(false, 50 * MIB - 1, r));
    assert_true(diskguard_rule(true, 200 * MIB - 1, r)); /* stays full */
    assert_false(diskguard_rule(true, 200 * MIB, r));
    assert_false(diskguard_rule(false, 0, 0)); /* no guard: never full */
    assert_false(diskguard_rule(true, 0, 0));
}

static char dir[] = "/tmp/cairn-diskguard-XXXXXX";

static off_t reserve_size(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/reserve", dir);
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_reserve_file(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    diskguard *g;
    assert_int_equal(diskguard_open(dir, 4 * MIB, &g), 0);
    diskguard_stats st;
    diskguard_get_stats(g, &st);
    struct statvfs sv;
    assert_int_equal(statvfs(dir, &sv), 0);
    uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
    uint64_t want = 4 * MIB < total / 10 ? 4 * MIB : total / 10;
    assert_int_equal(st.reserve, want);
    if (!st.full) /* a disk with room: the reserve is held */
        assert_int_equal(reserve_size(), (off_t)want);
    assert_false(diskguard_full(g) != diskguard_check(g));
    diskguard_close(g);
    assert_int_equal(reserve_size(), (off_t)want); /* kept for next start */

    assert_int_equal(diskguard_open(dir, 0, &g), 0); /* off: given back */
    assert_false(diskguard_check(g));
    assert_false(diskguard_poll(g));
    assert_int_equal(reserve_size(), -1);
    diskguard_close(g);
    assert_false(diskguard_full(NULL));
    rmdir(dir);
}

/* A follower asks room() for every message: it answers from a look at
 * the disk at most 50 ms old while far from the reserve, looks again when
 * that look is older or a request comes near the reserve. */
static void test_room_looks_at_the_disk_sparingly(void **state)
{
    (void)state;
    char d[] = "/tmp/cairn-diskguard-room-XXXXXX", res[64];
    assert_non_null(mkdtemp(d));
    diskguard *g;
    assert_int_equal(diskguard_open(d, 4 * MIB, &g), 0);
    diskguard_stats st;
    diskguard_get_stats(g, &st);
    if (!st.full && st.free_bytes > 64 * MIB) { /* else: no room to test */
        uint64_t looks = st.looks;
        for (int i = 0; i < 1000; i++)
            assert_true(diskguard_room(g, 4096));
        diskguard_get_stats(g, &st);
        assert_true(st.looks - looks <= 2);
        /* more than the disk holds: looked at now, refused */
        looks = st.looks;
        assert_false(diskguard_room(g, st.free_bytes));
        diskguard_get_stats(g, &st);
        assert_int_equal(st.looks, looks + 1);
        /* past the 50 ms: the next question looks again */
        struct timespec pause = {0, 60 * 1000 * 1000};
        nanosleep(&pause, NULL);
        assert_true(diskguard_room(g, 4096));
        diskguard_get_stats(g, &st);
        assert_int_equal(st.looks, looks + 2);
    }
    diskguard_close(g);
    snprintf(res, sizeof res, "%s/reserve", d);
    unlink(res);
    rmdir(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_hysteresis),
        cmocka_unit_test(test_reserve_file),
        cmocka_unit_test(test_room_looks_at_the_disk_sparingly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
