/* SPDX-License-Identifier: MIT */
/* Unit tests for src/bench-proc.c: muxbench's /proc readings, on this very
 * process. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bench-proc.h"
#include "util.h"
#include "testmain.h"

static void test_self(void **state)
{
        long pid = (long) getpid();
        struct proc_sample a, b;
        volatile uint64_t spin = 0;
        uint64_t until;

        (void) state;
        a = proc_sample(pid);
        assert_true(a.cpu_ns >= 0);
        assert_true(a.sleeps >= 0);
        /* spin until the reading moves (sampled ticks may be 10 ms apart),
         * 5 s at most */
        until = monotonic_ns() + 5000000000u;
        do {
                for (int i = 0; i < 100000; i++)
                        spin++;
                b = proc_sample(pid);
        } while (b.cpu_ns == a.cpu_ns && monotonic_ns() < until);
        assert_true(b.cpu_ns > a.cpu_ns);
        assert_true(b.sleeps >= a.sleeps);
        assert_true(proc_rss_kib(pid) > 0);
}

/* No such process (pid_max is at most 2^22): every reading unknown. */
static void test_no_process(void **state)
{
        struct proc_sample s = proc_sample(INT_MAX);

        (void) state;
        assert_true(proc_cpu_ns(INT_MAX) == -1);
        assert_true(s.cpu_ns == -1);
        assert_true(s.sleeps == -1);
        assert_true(proc_rss_kib(INT_MAX) == -1);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_self),
                cmocka_unit_test(test_no_process),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("bench_proc", tests, NULL, NULL);
}
