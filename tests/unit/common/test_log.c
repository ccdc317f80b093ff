/* Tests for src/common/log.h: the line format and levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/log.h"

static void test_line_has_time_level_component_ids_range(void **state)
{
    (void)state;
    char line[256];
    log_init("node", "node=3");
    /* 2024-05-01T10:00:00.123Z */
    int n = log_format(line, sizeof line, 1714557600123LL, LOG_WARN, 17,
                       "installing snapshot");
    assert_string_equal(line, "2024-05-01T10:00:00.123Z WARN  node node=3 "
                              "range=17: installing snapshot\n");
    assert_int_equal(n, (int)strlen(line));
    log_init("router", NULL);
    log_format(line, sizeof line, 0, LOG_INFO, 0, "listening");
    assert_string_equal(line,
                        "1970-01-01T00:00:00.000Z INFO  router: listening\n");
}

static void test_one_event_is_one_line(void **state)
{
    (void)state;
    char line[64];
    log_init("controller", "id=a");
    log_format(line, sizeof line, 0, LOG_ERROR, 0, "two\nlines\r\nhere");
    assert_null(strchr(line, '\n') == line + strlen(line) - 1 ? NULL : line);
    assert_null(strchr(line, '\r'));
    /* A long message is cut and still ends in exactly one newline. */
    char big[500];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    int n = log_format(line, sizeof line, 0, LOG_DEBUG, 0, big);
    assert_int_equal(n, (int)sizeof line - 1);
    assert_int_equal(line[n - 1], '\n');
    assert_ptr_equal(strchr(line, '\n'), line + n - 1);
}

static void test_levels(void **state)
{
    (void)state;
    log_level l;
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_level_parse("WARN", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse("warning", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse("loud", &l), CAIRN_ERR_INVALID);
    log_set_level(LOG_WARN);
    assert_true(log_enabled(LOG_ERROR));
    assert_true(log_enabled(LOG_WARN));
    assert_false(log_enabled(LOG_INFO));
    log_set_level(LOG_INFO);
    assert_false(log_enabled(LOG_DEBUG));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_has_time_level_component_ids_range),
        cmocka_unit_test(test_one_event_is_one_line),
        cmocka_unit_test(test_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
