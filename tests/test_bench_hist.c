/* SPDX-License-Identifier: MIT */
/* Unit tests for src/bench-hist.c: muxbench's latency histogram (bucket
 * bounds, relative error, quantiles). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bench-hist.h"
#include "testutil.h"
#include "testmain.h"

static struct histogram *hist_new(void)
{
        struct histogram *h = calloc(1, sizeof(*h));

        assert_non_null(h);
        return h;
}

/* Below HIST_SUB every value has a bucket of its own. */
static void test_small_values_exact(void **state)
{
        (void) state;
        for (unsigned v = 0; v < HIST_SUB; v++) {
                assert_int_equal(hist_index(v), v);
                assert_int_equal(hist_value(v), v);
        }
        /* the first power of two above is still exact: buckets of width 1 */
        for (unsigned v = HIST_SUB; v < 2 * HIST_SUB; v++)
                assert_int_equal(hist_value(hist_index(v)), v);
}

/* The buckets cover every value once, in order: bucket i holds the values
 * from hist_value(i - 1) + 1 to hist_value(i). */
static void test_buckets_contiguous(void **state)
{
        (void) state;
        assert_int_equal(hist_index(0), 0);
        for (unsigned i = 0; i + 1 < HIST_BUCKETS; i++) {
                uint64_t top = hist_value(i);

                if (hist_value(i + 1) <= top)
                        fail_msg("bucket %u ends at %llu, bucket %u at %llu", i,
                                 (unsigned long long) top, i + 1,
                                 (unsigned long long) hist_value(i + 1));
                assert_int_equal(hist_index(top), i);
                assert_int_equal(hist_index(top + 1), i + 1);
        }
        /* the last bucket ends at the largest value */
        assert_int_equal(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
        assert_true(hist_value(HIST_BUCKETS - 1) == UINT64_MAX);
}

/* A value's bucket is at most 1/64 of it wide. */
static void test_relative_error(void **state)
{
        (void) state;
        rng_state = 0x2545f4914f6cdd1dull;
        for (int k = 0; k < 100000; k++) {
                /* values of every magnitude */
                uint64_t v = rng_next() >> rng_below(64);
                unsigned i = hist_index(v);
                uint64_t top = hist_value(i), bottom = i ? hist_value(i - 1) + 1 : 0;

                if (v < bottom || v > top)
                        fail_msg("%llu in bucket %u [%llu, %llu]", (unsigned long long) v, i,
                                 (unsigned long long) bottom, (unsigned long long) top);
                if (top - bottom > v / HIST_SUB)
                        fail_msg("%llu: bucket %u [%llu, %llu] wider than 1/%u of it",
                                 (unsigned long long) v, i, (unsigned long long) bottom,
                                 (unsigned long long) top, HIST_SUB);
        }
}

static void test_empty(void **state)
{
        struct histogram *h = hist_new();

        (void) state;
        assert_true(hist_quantile(h, 0.5) == 0);
        assert_true(hist_quantile(h, 1.0) == 0);
        free(h);
}

static void test_record(void **state)
{
        struct histogram *h = hist_new();

        (void) state;
        hist_record(h, 5);
        hist_record(h, 1000);
        hist_record(h, 0);
        assert_true(h->count == 3);
        assert_true(h->sum == 1005);
        assert_true(h->max == 1000);
        assert_true(h->buckets[hist_index(5)] == 1);
        assert_true(h->buckets[hist_index(1000)] == 1);
        assert_true(h->buckets[0] == 1);
        free(h);
}

static void test_quantiles_exact_range(void **state)
{
        struct histogram *h = hist_new();

        (void) state;
        for (uint64_t v = 1; v <= 100; v++)     /* all exact buckets */
                hist_record(h, v);
        assert_true(hist_quantile(h, 0.50) == 50);
        assert_true(hist_quantile(h, 0.99) == 99);
        assert_true(hist_quantile(h, 0.999) == 100);    /* ceil(99.9) = the 100th */
        assert_true(hist_quantile(h, 1.0) == 100);
        /* a quantile below one sample still counts one */
        assert_true(hist_quantile(h, 0.0) == 1);
        assert_true(hist_quantile(h, 0.001) == 1);
        free(h);
}

/* A quantile is the top of its bucket, but never more than the maximum. */
static void test_quantile_capped_at_max(void **state)
{
        struct histogram *h = hist_new();
        uint64_t v = 1000000;           /* 1 ms: a bucket 2^13 ns wide */

        (void) state;
        assert_true(hist_value(hist_index(v)) > v);
        hist_record(h, v);
        assert_true(hist_quantile(h, 0.5) == v);
        assert_true(hist_quantile(h, 1.0) == v);

        hist_record(h, v - 1);          /* same bucket: the top is now above both */
        assert_true(hist_quantile(h, 0.5) == v);
        free(h);
}

/* Far apart values: the quantiles fall in the right bucket, within 1/64. */
static void test_quantiles_spread(void **state)
{
        struct histogram *h = hist_new();
        uint64_t p50, p99, p999;

        (void) state;
        for (int i = 0; i < 990; i++)
                hist_record(h, 20000);          /* 20 us */
        for (int i = 0; i < 9; i++)
                hist_record(h, 3000000);        /* 3 ms */
        hist_record(h, 1000000000);             /* 1 s */

        p50 = hist_quantile(h, 0.50);
        p99 = hist_quantile(h, 0.99);
        p999 = hist_quantile(h, 0.999);
        assert_true(p50 >= 20000 && p50 <= 20000 + 20000 / HIST_SUB);
        assert_true(p99 == p50);                        /* the 990th sample */
        assert_true(p999 >= 3000000 && p999 <= 3000000 + 3000000 / HIST_SUB);
        assert_true(hist_quantile(h, 1.0) == 1000000000);
        assert_true(h->max == 1000000000);
        free(h);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_small_values_exact),
                cmocka_unit_test(test_buckets_contiguous),
                cmocka_unit_test(test_relative_error),
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_record),
                cmocka_unit_test(test_quantiles_exact_range),
                cmocka_unit_test(test_quantile_capped_at_max),
                cmocka_unit_test(test_quantiles_spread),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("bench_hist", tests, NULL, NULL);
}
