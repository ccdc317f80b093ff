/* Tests for src/common/conf.h: --config FILE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/conf.h"
#include "common/err.h"

static void test_forms_of_a_line(void **state)
{
    (void)state;
    conf_args a = {0};
    char err[256];
    const char *text = "# a node\n\n  id 3\n--listen 10.0.0.3:7000\n"
                       "dir=/var/lib/cairn data\n\tlog-level   debug  \n"
                       "help\n";
    assert_int_equal(conf_parse_text(text, "f", &a, err, sizeof err), 0);
    const char *want[] = {"--id", "3", "--listen", "10.0.0.3:7000", "--dir",
                          "/var/lib/cairn data", "--log-level", "debug",
                          "--help"};
    assert_int_equal(a.argc, 9);
    for (int i = 0; i < 9; i++)
        assert_string_equal(a.argv[i], want[i]);
    assert_null(a.argv[9]);
    conf_args_free(&a);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    conf_args a = {0};
    char err[256];
    assert_int_equal(conf_parse_text("id 1\n=3\n", "n.conf", &a, err,
                                     sizeof err),
                     CAIRN_ERR_INVALID);
    assert_string_equal(err, "n.conf:2: no flag name");
    conf_args_free(&a);
    assert_int_equal(conf_parse_text("config other\n", "n.conf", &a, err,
                                     sizeof err),
                     CAIRN_ERR_INVALID);
    conf_args_free(&a);
    char *argv[] = {"node", "--config", "/nonexistent/cairn.conf"};
    assert_int_equal(conf_expand(3, argv, &a, err, sizeof err), CAIRN_ERR_IO);
    assert_non_null(strstr(err, "/nonexistent/cairn.conf"));
    char *argv2[] = {"node", "--config"};
    assert_int_equal(conf_expand(2, argv2, &a, err, sizeof err),
                     CAIRN_ERR_INVALID);
}

static void test_expand_in_place_later_flags_win(void **state)
{
    (void)state;
    char path[] = "/tmp/cairn-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "id 3\nlisten 127.0.0.1:7000\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    char arg[64];
    snprintf(arg, sizeof arg, "--config=%s", path);
    char *argv[] = {"node", "--id", "1", arg, "--id", "5"};
    conf_args a;
    char err[256];
    assert_int_equal(conf_expand(6, argv, &a, err, sizeof err), 0);
    const char *want[] = {"node", "--id", "1", "--id", "3", "--listen",
                          "127.0.0.1:7000", "--id", "5"};
    assert_int_equal(a.argc, 9);
    for (int i = 0; i < 9; i++)
        assert_string_equal(a.argv[i], want[i]);
    conf_args_free(&a);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms_of_a_line),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_expand_in_place_later_flags_win),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
