/* Tests for src/common/seq.h: the HLC rules stated in the header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/seq.h"

/* An injectable wall clock the test steps by hand. */
static uint64_t fake_now(void *arg) { return *(uint64_t *)arg; }

static void test_layout_is_big_endian(void **state)
{
    (void)state;
    seq s = seq_make(0x0102030405060708ull, 0x090a0b0c, 0x0d0e0f10);
    for (int i = 0; i < SEQ_LEN; i++)
        assert_int_equal(s.bytes[i], i + 1);
    assert_int_equal(seq_time(&s), 0x0102030405060708ull);
    assert_int_equal(seq_counter(&s), 0x090a0b0c);
    assert_int_equal(seq_node(&s), 0x0d0e0f10);
}

static void test_strictly_increasing_when_clock_steps_back(void **state)
{
    (void)state;
    uint64_t now = 1000000;
    seq_clock *c = seq_clock_new(7, fake_now, &now);
    assert_non_null(c);
    seq prev = seq_next(c);
    assert_int_equal(seq_time(&prev), 1000000);
    assert_int_equal(seq_node(&prev), 7);
    /* Clock frozen, then stepping backwards, then forwards again. */
    const uint64_t steps[] = {1000000, 1000000, 5, 0, 999999, 2000000, 10};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        now = steps[i];
        seq s = seq_next(c);
        assert_true(seq_cmp(&s, &prev) > 0);
        prev = s;
    }
    assert_int_equal(seq_time(&prev), 2000000);
    seq_clock_free(c);
}

static void test_counter_overflow_borrows_next_nanosecond(void **state)
{
    (void)state;
    uint64_t now = 50;
    seq_clock *c = seq_clock_new(1, fake_now, &now);
    seq big = seq_make(50, UINT32_MAX, 9);
    seq_observe(c, &big);
    seq s = seq_next(c);
    assert_true(seq_cmp(&s, &big) > 0);
    assert_int_equal(seq_time(&s), 51);
    assert_int_equal(seq_counter(&s), 0);
    seq_clock_free(c);
}

static void test_observe_moves_past_foreign_seq(void **state)
{
    (void)state;
    uint64_t now = 100;
    seq_clock *c = seq_clock_new(1, fake_now, &now);
    /* A sequencer from a node with a higher id and a clock far ahead. */
    seq foreign = seq_make(5000, 3, 99);
    seq_observe(c, &foreign);
    seq s = seq_next(c);
    assert_true(seq_cmp(&s, &foreign) > 0);
    /* Observing an older one never moves the clock back. */
    seq old = seq_make(10, 0, 2);
    seq_observe(c, &old);
    seq t = seq_next(c);
    assert_true(seq_cmp(&t, &s) > 0);
    seq_clock_free(c);
}

static void test_zero_sorts_first(void **state)
{
    (void)state;
    seq z = seq_zero();
    assert_true(seq_is_zero(&z));
    seq one = seq_make(0, 0, 1);
    assert_false(seq_is_zero(&one));
    assert_true(seq_cmp(&z, &one) < 0);
}

static void test_hex_round_trip(void **state)
{
    (void)state;
    seq s = seq_make(0x17f0a1b2c3d4e5f6ull, 42, 3);
    char hex[SEQ_HEX_LEN + 1];
    seq_to_hex(&s, hex);
    assert_string_equal(hex, "17f0a1b2c3d4e5f60000002a00000003");
    seq back;
    assert_int_equal(seq_from_hex(hex, strlen(hex), &back), 0);
    assert_int_equal(seq_cmp(&s, &back), 0);
    assert_int_equal(seq_from_hex("17F0A1B2C3D4E5F60000002A00000003", 32,
                                  &back), 0);
    assert_int_equal(seq_cmp(&s, &back), 0);
    assert_int_equal(seq_from_hex(hex, 31, &back), CAIRN_ERR_INVALID);
    assert_int_equal(seq_from_hex("g7f0a1b2c3d4e5f60000002a00000003", 32,
                                  &back), CAIRN_ERR_INVALID);
}

static void test_real_clock_is_monotonic(void **state)
{
    (void)state;
    seq_clock *c = seq_clock_new(2, NULL, NULL);
    seq prev = seq_next(c);
    for (int i = 0; i < 100000; i++) {
        seq s = seq_next(c);
        assert_true(seq_cmp(&s, &prev) > 0);
        prev = s;
    }
    seq_clock_free(c);
}

static void test_offset_clock_is_shifted_and_increasing(void **state)
{
    (void)state;
    const uint64_t hour = 3600ull * 1000000000ull;
    seq_clock *plain = seq_clock_new(1, NULL, NULL);
    seq_clock *ahead = seq_clock_new_offset(2, 3600 * 1000);
    seq_clock *behind = seq_clock_new_offset(3, -3600 * 1000);
    assert_non_null(plain);
    assert_non_null(ahead);
    assert_non_null(behind);
    seq p = seq_next(plain), a = seq_next(ahead), b = seq_next(behind);
    assert_true(seq_time(&a) > seq_time(&p) + hour - 60ull * 1000000000ull);
    assert_true(seq_time(&b) + hour < seq_time(&p) + 60ull * 1000000000ull);
    /* Observing a sequencer from the future still moves a clock past it. */
    seq_observe(behind, &a);
    seq n = seq_next(behind);
    assert_true(seq_cmp(&n, &a) > 0);
    seq_clock_free(plain);
    seq_clock_free(ahead);
    seq_clock_free(behind);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_is_big_endian),
        cmocka_unit_test(test_strictly_increasing_when_clock_steps_back),
        cmocka_unit_test(test_counter_overflow_borrows_next_nanosecond),
        cmocka_unit_test(test_observe_moves_past_foreign_seq),
        cmocka_unit_test(test_zero_sorts_first),
        cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_real_clock_is_monotonic),
        cmocka_unit_test(test_offset_clock_is_shifted_and_increasing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
