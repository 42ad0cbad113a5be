/* SPDX-License-Identifier: MIT */
/* Unit tests for src/bench-errno.c: connection mode's errors counted by
 * errno and printed by name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "testmain.h"

#include "bench-errno.h"

/* What errcount_print() writes, as a string (to be freed). */
static char *printed(const struct errcount *c, bool json)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_non_null(f);
        errcount_print(c, f, json);
        assert_int_equal(fclose(f), 0);
        return buf;
}

static void assert_printed(const struct errcount *c, bool json, const char *want)
{
        char *s = printed(c, json);

        assert_string_equal(s, want);
        free(s);
}

static void test_counts_in_errno_order(void **state)
{
        struct errcount c = { 0 };

        (void) state;
        errcount_add(&c, ETIMEDOUT);
        errcount_add(&c, ECONNREFUSED);
        errcount_add(&c, ECONNREFUSED);
        errcount_add(&c, ECONNREFUSED);
        errcount_add(&c, EADDRNOTAVAIL);
        assert_int_equal(c.total, 5);
        assert_int_equal(c.n[ECONNREFUSED], 3);
        /* EADDRNOTAVAIL 99 < ETIMEDOUT 110 < ECONNREFUSED 111 on Linux */
        assert_printed(&c, true, "{\"EADDRNOTAVAIL\":1,\"ETIMEDOUT\":1,\"ECONNREFUSED\":3}");
        assert_printed(&c, false, "EADDRNOTAVAIL 1, ETIMEDOUT 1, ECONNREFUSED 3");
}

static void test_none(void **state)
{
        struct errcount c = { 0 };

        (void) state;
        assert_printed(&c, true, "{}");
        assert_printed(&c, false, "");
}

/* Out of the table's range (and 0, or a negative value): "other", last. */
static void test_out_of_range(void **state)
{
        struct errcount c = { 0 };

        (void) state;
        errcount_add(&c, ERRCOUNT_SLOTS);
        errcount_add(&c, -1);
        errcount_add(&c, 0);
        errcount_add(&c, ECONNRESET);
        assert_int_equal(c.total, 4);
        assert_int_equal(c.n[0], 3);
        assert_printed(&c, true, "{\"ECONNRESET\":1,\"other\":3}");
}

static void test_names(void **state)
{
        char buf[ERRCOUNT_NAME_MAX];

        (void) state;
        assert_string_equal(errcount_name(ECONNREFUSED, buf), "ECONNREFUSED");
        assert_string_equal(errcount_name(EMFILE, buf), "EMFILE");
        assert_string_equal(errcount_name(0, buf), "other");
        /* not a Linux errno: named by number */
        assert_string_equal(errcount_name(ERRCOUNT_SLOTS - 1, buf), "errno 159");
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_counts_in_errno_order),
                cmocka_unit_test(test_none),
                cmocka_unit_test(test_out_of_range),
                cmocka_unit_test(test_names),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("bench_errno", tests, NULL, NULL);
}
