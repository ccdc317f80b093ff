/* Tests for src/common/prom.h: the text format and histograms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/prom.h"

static char *text(buf *b)
{
    buf_append(b, "", 1);
    b->len--;
    return (char *)b->data;
}

static void test_family_and_samples(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    char lab[128];
    assert_int_equal(prom_family(&b, "cairn_x_total", "counter", "Things."),
                     0);
    assert_int_equal(prom_u64(&b, "cairn_x_total",
                              prom_labels(lab, sizeof lab, "command", "get",
                                          "result", "OK", NULL),
                              18446744073709551615ull),
                     0);
    assert_int_equal(prom_double(&b, "cairn_y", NULL, 0.25), 0);
    assert_int_equal(prom_double(&b, "cairn_y", "", 1.0 / 0.0), 0);
    assert_string_equal(text(&b),
                        "# HELP cairn_x_total Things.\n"
                        "# TYPE cairn_x_total counter\n"
                        "cairn_x_total{command=\"get\",result=\"OK\"} "
                        "18446744073709551615\n"
                        "cairn_y 0.25\n"
                        "cairn_y +Inf\n");
    buf_free(&b);
}

static void test_label_escaping_and_cut(void **state)
{
    (void)state;
    char lab[64];
    prom_labels(lab, sizeof lab, "a", "x\"y\\z\nw", NULL);
    assert_string_equal(lab, "a=\"x\\\"y\\\\z\\nw\"");
    char small[16];
    prom_labels(small, sizeof small, "a", "1", "bb", "22222222", NULL);
    assert_string_equal(small, "a=\"1\""); /* whole labels only */
    prom_labels(small, sizeof small, NULL);
    assert_string_equal(small, "");
}

static void test_histogram_is_cumulative_in_seconds(void **state)
{
    (void)state;
    static const double bounds[] = {0.001, 0.01, 0.1};
    prom_hist h;
    prom_hist_init_seconds(&h, bounds, 3);
    prom_hist_observe_ns(&h, 500000);     /* 0.5 ms */
    prom_hist_observe_ns(&h, 1000000);    /* 1 ms: le is inclusive */
    prom_hist_observe_ns(&h, 50000000);   /* 50 ms */
    prom_hist_observe_ns(&h, 2000000000); /* 2 s: +Inf only */
    buf b = BUF_INIT;
    assert_int_equal(prom_hist_write(&b, "cairn_d_seconds", "op=\"get\"", &h),
                     0);
    assert_string_equal(text(&b),
                        "cairn_d_seconds_bucket{op=\"get\",le=\"0.001\"} 2\n"
                        "cairn_d_seconds_bucket{op=\"get\",le=\"0.01\"} 2\n"
                        "cairn_d_seconds_bucket{op=\"get\",le=\"0.1\"} 3\n"
                        "cairn_d_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
                        "cairn_d_seconds_sum{op=\"get\"} 2.0515000000000003\n"
                        "cairn_d_seconds_count{op=\"get\"} 4\n");
    buf_reset(&b);
    prom_hist g;
    static const double ones[] = {1, 10};
    prom_hist_init(&g, ones, 2);
    prom_hist_observe_value(&g, 7);
    assert_int_equal(prom_hist_write(&b, "cairn_n", NULL, &g), 0);
    assert_string_equal(text(&b), "cairn_n_bucket{le=\"1\"} 0\n"
                                  "cairn_n_bucket{le=\"10\"} 1\n"
                                  "cairn_n_bucket{le=\"+Inf\"} 1\n"
                                  "cairn_n_sum 7\n"
                                  "cairn_n_count 1\n");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_samples),
        cmocka_unit_test(test_label_escaping_and_cut),
        cmocka_unit_test(test_histogram_is_cumulative_in_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
