/* SPDX-License-Identifier: MIT */
/* Unit tests for src/bench-request.c: the requests muxbench sends and the
 * replies it expects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bench.h"
#include "bench-request.h"
#include "testmain.h"

/* A struct bench as the options leave it: generated requests of size bytes. */
static struct bench *bench_new(unsigned size)
{
        struct bench *b = calloc(1, sizeof(*b));

        assert_non_null(b);
        b->size = size;
        b->suffix = strdup("hi...");
        assert_non_null(b->suffix);
        b->suffix_len = 5;
        return b;
}

static void bench_delete(struct bench *b)
{
        request_free(b);
        free(b->suffix);
        free(b->request);
        free(b->reply);
        free(b);
}

static void set_request(struct bench *b, const char *request)
{
        b->request = strdup(request);
        assert_non_null(b->request);
        b->request_len = strlen(request);
}

static void expect_request(struct bench *b, unsigned id, uint64_t seq, const char *want)
{
        char out[64];
        size_t n;

        assert_true(request_len(b) < sizeof(out));
        n = request_build(b, out, id, seq);
        assert_int_equal(n, strlen(want));
        assert_int_equal(n, request_len(b));
        assert_memory_equal(out, want, n);
}

static void expect_reply(struct bench *b, unsigned id, uint64_t seq, const char *want)
{
        size_t n;
        const char *r = request_expected_reply(b, id, seq, &n);

        assert_int_equal(n, strlen(want));
        assert_memory_equal(r, want, n);
}

/* "ID-SEQ" padded with '.', then "\n"; the echo adds the suffix. */
static void test_generated(void **state)
{
        struct bench *b = bench_new(16);

        (void) state;
        assert_int_equal(request_echo_reply(b), 0);     /* nothing to derive */
        assert_null(b->reply);
        assert_int_equal(request_setup(b), 0);
        assert_true(b->reply_resync);
        assert_int_equal(request_len(b), 16);
        expect_request(b, 0, 0, "0-0............\n");
        expect_request(b, 3, 7, "3-7............\n");
        /* "999999-123456789" is one byte too long: its last 15 */
        expect_request(b, 999999, 123456789, "99999-123456789\n");
        expect_reply(b, 3, 7, "3-7............hi...\n");
        /* the next request's reply replaces the last one */
        expect_reply(b, 4, 8, "4-8............hi...\n");
        bench_delete(b);
}

/* A tag longer than the line: its last digits, still unique per sequence. */
static void test_generated_short(void **state)
{
        struct bench *b = bench_new(4);

        (void) state;
        assert_int_equal(request_setup(b), 0);
        expect_request(b, 12, 345, "345\n");
        expect_request(b, 12, 346, "346\n");
        expect_reply(b, 12, 345, "345hi...\n");
        bench_delete(b);

        b = bench_new(1);               /* the line is only its "\n" */
        assert_int_equal(request_setup(b), 0);
        expect_request(b, 1, 2, "\n");
        expect_reply(b, 1, 2, "hi...\n");
        bench_delete(b);
}

/* --request: an echo server's answer keeps the line's own ending. */
static void test_fixed_request_echo(void **state)
{
        static const struct {
                const char *request, *reply;
                bool resync;
        } cases[] = {
                { "PING\r\n", "PINGhi...\r\n", true },
                { "a\n", "ahi...\n", true },
                { "\n", "hi...\n", true },
                { "\r\n", "hi...\r\n", true },
                { "x", "xhi...", false },       /* no line end: no skipping to it */
                { "a\rb", "a\rbhi...", false },
        };

        (void) state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct bench *b = bench_new(16);

                set_request(b, cases[i].request);
                assert_int_equal(request_echo_reply(b), 0);
                assert_non_null(b->reply);
                assert_int_equal(b->reply_len, strlen(cases[i].reply));
                assert_memory_equal(b->reply, cases[i].reply, b->reply_len);
                assert_int_equal(b->reply[b->reply_len], '\0');
                assert_int_equal(request_setup(b), 0);
                assert_int_equal(b->reply_resync, cases[i].resync);
                assert_int_equal(request_len(b), strlen(cases[i].request));
                expect_request(b, 5, 9, cases[i].request);
                expect_reply(b, 5, 9, cases[i].reply);
                bench_delete(b);
        }
}

/* --reply wins over the echo. */
static void test_fixed_reply(void **state)
{
        struct bench *b = bench_new(16);

        (void) state;
        set_request(b, "PING\r\n");
        b->reply = strdup("+PONG\r\n");
        assert_non_null(b->reply);
        b->reply_len = 7;
        assert_int_equal(request_echo_reply(b), 0);
        assert_string_equal(b->reply, "+PONG\r\n");
        assert_int_equal(request_setup(b), 0);
        assert_true(b->reply_resync);
        expect_reply(b, 0, 0, "+PONG\r\n");
        bench_delete(b);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_generated),
                cmocka_unit_test(test_generated_short),
                cmocka_unit_test(test_fixed_request_echo),
                cmocka_unit_test(test_fixed_reply),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("bench_request", tests, NULL, NULL);
}
