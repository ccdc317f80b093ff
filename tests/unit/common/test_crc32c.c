/* crc32c: the standard check value, parts equal the whole, and the
 * hardware and table paths agree on every length and alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/crc32c.h"

static void test_check_value(void **state)
{
    assert_int_equal(crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c("", 0), 0);
    /* RFC 3720 B.4: 32 bytes of zeros */
    uint8_t z[32] = {0};
    assert_int_equal(crc32c(z, sizeof z), 0x8A9136AAu);
}

/* Bit-at-a-time reference, independent of both fast paths. */
static uint32_t ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

static void test_lengths_alignments_and_parts(void **state)
{
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; off + len <= sizeof buf; len += 13) {
            uint32_t want = ref(buf + off, len);
            assert_int_equal(crc32c(buf + off, len), want);
            size_t half = len / 3;
            uint32_t c = crc32c_extend(0, buf + off, half);
            assert_int_equal(crc32c_extend(c, buf + off + half, len - half),
                             want);
        }
}

/* Buffers long enough for the three-way interleaved path (blocks of 4 KiB,
 * three at a time), at every alignment and around each block boundary,
 * whole and in parts, against the bit-at-a-time reference. */
static void test_long_buffers_three_way(void **state)
{
    static uint8_t big[40000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    size_t lens[] = {12287, 12288, 12289, 12288 + 8, 24576, 24583,
                     36864, 39990};
    for (size_t off = 0; off < 8; off += 3)
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            size_t len = lens[k];
            uint32_t want = ref(big + off, len);
            assert_int_equal(crc32c(big + off, len), want);
            uint32_t c = crc32c_extend(0, big + off, 5000);
            assert_int_equal(crc32c_extend(c, big + off + 5000, len - 5000),
                             want);
        }
}

static void test_one_flipped_bit_changes_it(void **state)
{
    uint8_t buf[64] = "a record that must not change silently..";
    uint32_t good = crc32c(buf, sizeof buf);
    for (size_t i = 0; i < sizeof buf * 8; i++) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_not_equal(crc32c(buf, sizeof buf), good);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_lengths_alignments_and_parts),
        cmocka_unit_test(test_long_buffers_three_way),
        cmocka_unit_test(test_one_flipped_bit_changes_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
