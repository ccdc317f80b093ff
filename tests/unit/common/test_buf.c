/* Tests for src/common/buf.h and src/common/err.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"

static void test_append_and_consume(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(buf_append_str(&b, "hello "), 0);
    assert_int_equal(buf_appendf(&b, "%d-%s", 42, "x"), 0);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "hello 42-x", 10);
    buf_consume(&b, 6);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "42-x", 4);
    buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    assert_null(b.data);
}

static void test_grows_past_many_doublings(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    uint8_t chunk[1000];
    for (int i = 0; i < 1000; i++)
        chunk[i] = (uint8_t)i;
    for (int i = 0; i < 2000; i++)
        assert_int_equal(buf_append(&b, chunk, sizeof chunk), 0);
    assert_int_equal(b.len, 2000000);
    assert_int_equal(b.data[1999999], (uint8_t)999);
    buf_free(&b);
}

static void test_json_strings(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(buf_append_json_str(&b, "a \"q\" \\ \n\x01 \xc3\xa9"),
                     0);
    const char *want = "\"a \\\"q\\\" \\\\ \\u000a\\u0001 \xc3\xa9\"";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    buf_reset(&b);
    assert_int_equal(buf_append_json_str(&b, ""), 0);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "\"\"", 2);
    buf_free(&b);
}

static void test_big_endian_helpers(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(buf_append_u8(&b, 0xab), 0);
    assert_int_equal(buf_append_u16(&b, 0x0102), 0);
    assert_int_equal(buf_append_u32(&b, 0x03040506), 0);
    assert_int_equal(buf_append_u64(&b, 0x0708090a0b0c0d0eull), 0);
    const uint8_t want[] = {0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    assert_int_equal(be_get_u16(b.data + 1), 0x0102);
    assert_int_equal(be_get_u32(b.data + 3), 0x03040506);
    assert_int_equal(be_get_u64(b.data + 7), 0x0708090a0b0c0d0eull);
    buf_free(&b);
}

static void test_error_words_are_stable(void **state)
{
    (void)state;
    assert_int_equal(CAIRN_OK, 0);
    assert_true(CAIRN_ERR_TOOBIG < 0);
    assert_string_equal(cairn_err_word(CAIRN_ERR_TOOBIG), "TOOBIG");
    assert_string_equal(cairn_err_word(CAIRN_ERR_NOT_LEADER), "NOT_LEADER");
    assert_string_equal(cairn_err_word(CAIRN_ERR_STALE_EPOCH), "STALE_EPOCH");
    assert_string_equal(cairn_err_word(CAIRN_ERR_KEY_OUT_OF_RANGE),
                        "KEY_OUT_OF_RANGE");
    assert_string_equal(cairn_err_word(CAIRN_ERR_RANGE_NOT_FOUND),
                        "RANGE_NOT_FOUND");
    assert_string_equal(cairn_err_word(-100000), "ERR");
    assert_string_equal(cairn_err_word(5), "ERR");
    assert_string_equal(cairn_err_message(CAIRN_ERR_TIMEOUT),
                        "timed out, outcome unknown");
    assert_string_equal(cairn_err_message(-100000), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_consume),
        cmocka_unit_test(test_grows_past_many_doublings),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_big_endian_helpers),
        cmocka_unit_test(test_error_words_are_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
