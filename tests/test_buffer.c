/* SPDX-License-Identifier: MIT */
/* Unit tests for src/buffer.c: the per-connection byte queue. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buffer.h"
#include "testutil.h"
#include "testmain.h"

static void fill_pattern(char *p, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                p[i] = (char) ((i * 31u + seed * 7u + 1u) & 0xff);
}

/* The invariants every buffer must satisfy. */
static void check_invariants(const struct buffer *b)
{
        if (b->len == 0) {
                /* empty: no storage at all */
                assert_null(b->data);
                assert_int_equal(b->off, 0);
                assert_int_equal(b->cap, 0);
        } else {
                assert_non_null(b->data);
                assert_true((uint64_t) b->off + b->len <= b->cap);
        }
        assert_int_equal(buffer_len(b), b->len);
}

static void test_init_is_empty(void **state)
{
        struct buffer b = BUFFER_INIT;

        (void) state;
        assert_null(b.data);
        assert_int_equal(b.off, 0);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        assert_int_equal(buffer_len(&b), 0);
        buffer_free(&b);        /* accepts an empty buffer */
        check_invariants(&b);
        buffer_consume(&b, 0);  /* consuming nothing from nothing */
        check_invariants(&b);
        buffer_consume(&b, 10); /* consuming more than there is */
        check_invariants(&b);
}

static void test_lazy_allocation(void **state)
{
        struct buffer b = BUFFER_INIT;

        (void) state;
        assert_int_equal(buffer_append(&b, "abc", 3, 0), 0);
        assert_non_null(b.data);
        assert_int_equal(buffer_len(&b), 3);
        assert_int_equal(b.off, 0);
        assert_true(b.cap >= 3);
        assert_memory_equal(buffer_head(&b), "abc", 3);

        buffer_consume(&b, 1);
        assert_int_equal(buffer_len(&b), 2);
        assert_int_equal(b.off, 1);
        assert_memory_equal(buffer_head(&b), "bc", 2);

        buffer_consume(&b, 2);  /* everything consumed: storage released */
        check_invariants(&b);
        assert_null(b.data);

        /* and allocated again on the next append */
        assert_int_equal(buffer_append(&b, "xyz", 3, 0), 0);
        assert_non_null(b.data);
        assert_memory_equal(buffer_head(&b), "xyz", 3);

        buffer_consume(&b, 1000);       /* more than queued: also empties */
        check_invariants(&b);

        assert_int_equal(buffer_append(&b, "q", 1, 0), 0);
        buffer_free(&b);
        check_invariants(&b);
}

static void test_append_zero(void **state)
{
        struct buffer b = BUFFER_INIT;
        char *data;
        uint32_t cap;

        (void) state;
        /* nothing appended to an empty buffer: still no allocation */
        assert_int_equal(buffer_append(&b, "abc", 0, 0), 0);
        check_invariants(&b);
        assert_null(b.data);
        assert_int_equal(buffer_append(&b, NULL, 0, 0), 0);
        assert_null(b.data);
        assert_int_equal(buffer_append(&b, NULL, 0, 1), 0);
        assert_null(b.data);

        /* nothing appended to a non-empty buffer: unchanged */
        assert_int_equal(buffer_append(&b, "hello", 5, 0), 0);
        buffer_consume(&b, 2);
        data = b.data;
        cap = b.cap;
        assert_int_equal(buffer_append(&b, "zzz", 0, 0), 0);
        assert_ptr_equal(b.data, data);
        assert_int_equal(b.cap, cap);
        assert_int_equal(b.off, 2);
        assert_int_equal(b.len, 3);
        assert_memory_equal(buffer_head(&b), "llo", 3);
        buffer_free(&b);
}

static void test_growth(void **state)
{
        enum { TOTAL = 300000 };
        struct buffer b = BUFFER_INIT;
        char *ref = malloc(TOTAL);
        size_t n = 0;
        unsigned step = 0;

        (void) state;
        assert_non_null(ref);
        fill_pattern(ref, TOTAL, 3);
        /* appends of varying sizes, from 1 byte to a few KiB */
        while (n < TOTAL) {
                size_t k = (size_t) (step % 37u) * (step % 5u == 0 ? 97u : 1u) + 1u;

                if (k > TOTAL - n)
                        k = TOTAL - n;
                assert_int_equal(buffer_append(&b, ref + n, k, 0), 0);
                n += k;
                step++;
                assert_int_equal(buffer_len(&b), n);
                assert_true(b.cap >= n);
                assert_int_equal(b.off, 0);
        }
        assert_memory_equal(buffer_head(&b), ref, TOTAL);
        buffer_consume(&b, TOTAL);
        check_invariants(&b);
        free(ref);
}

static void test_random_operations(void **state)
{
        enum { REF_MAX = 1 << 20, OPS = 20000 };
        struct buffer b = BUFFER_INIT;
        char *ref = malloc(REF_MAX);    /* reference queue: ref[rhead..rhead+rlen) */
        char chunk[4096];
        size_t rhead = 0, rlen = 0;

        (void) state;
        assert_non_null(ref);
        rng_state = 0x9e3779b97f4a7c15ull;
        for (int op = 0; op < OPS; op++) {
                if (rng_below(100) < 55) {
                        /* mostly small appends, sometimes large ones */
                        size_t n = rng_below(8) == 0 ? rng_below(sizeof(chunk) + 1)
                                                     : rng_below(200);

                        for (size_t i = 0; i < n; i++)
                                chunk[i] = (char) rng_next();
                        if (rhead + rlen + n > REF_MAX) {
                                memmove(ref, ref + rhead, rlen);
                                rhead = 0;
                        }
                        if (rlen + n > REF_MAX)
                                n = 0;  /* keep the reference bounded */
                        assert_int_equal(buffer_append(&b, chunk, n, 0), 0);
                        memcpy(ref + rhead + rlen, chunk, n);
                        rlen += n;
                } else {
                        size_t n = rng_below(rlen + 50);

                        buffer_consume(&b, n);
                        if (n >= rlen) {
                                rhead = 0;
                                rlen = 0;
                        } else {
                                rhead += n;
                                rlen -= n;
                        }
                }
                if (buffer_len(&b) != rlen)
                        fail_msg("op %d: buffer_len %zu, expected %zu", op, buffer_len(&b), rlen);
                check_invariants(&b);
                if (rlen > 0 && memcmp(buffer_head(&b), ref + rhead, rlen) != 0)
                        fail_msg("op %d: content differs from the reference (len %zu)", op, rlen);
        }
        buffer_free(&b);
        check_invariants(&b);
        free(ref);
}

static void test_limit(void **state)
{
        struct buffer b = BUFFER_INIT;
        char big[2000];
        char *data;
        uint32_t cap, off;

        (void) state;
        fill_pattern(big, sizeof(big), 1);

        /* empty buffer, n above the limit: refused, nothing allocated */
        assert_int_equal(buffer_append(&b, big, 16, 15), -ENOMEM);
        check_invariants(&b);
        assert_null(b.data);

        /* exactly the limit is allowed */
        assert_int_equal(buffer_append(&b, big, 15, 15), 0);
        assert_int_equal(buffer_len(&b), 15);
        assert_true(b.cap >= 15);

        /* one byte more is refused, the buffer left exactly as it was */
        buffer_consume(&b, 5);
        data = b.data;
        cap = b.cap;
        off = b.off;
        assert_int_equal(buffer_append(&b, big, 6, 15), -ENOMEM);
        assert_ptr_equal(b.data, data);
        assert_int_equal(b.cap, cap);
        assert_int_equal(b.off, off);
        assert_int_equal(b.len, 10);
        assert_memory_equal(buffer_head(&b), big + 5, 10);
        /* five more fit exactly */
        assert_int_equal(buffer_append(&b, big + 15, 5, 15), 0);
        assert_int_equal(buffer_len(&b), 15);
        assert_memory_equal(buffer_head(&b), big + 5, 15);
        buffer_free(&b);

        /* the limit counts queued bytes, not consumed ones */
        assert_int_equal(buffer_append(&b, big, 100, 100), 0);
        buffer_consume(&b, 60);
        assert_int_equal(buffer_append(&b, big + 100, 60, 100), 0);
        assert_int_equal(buffer_len(&b), 100);
        assert_memory_equal(buffer_head(&b), big + 60, 100);
        assert_int_equal(buffer_append(&b, big, 1, 100), -ENOMEM);
        assert_int_equal(buffer_len(&b), 100);
        buffer_free(&b);

        /* growing close to the limit: storage is enough for the data */
        assert_int_equal(buffer_append(&b, big, 1000, 1500), 0);
        assert_int_equal(buffer_append(&b, big + 1000, 500, 1500), 0);
        assert_int_equal(buffer_len(&b), 1500);
        assert_true(b.cap >= 1500);
        assert_memory_equal(buffer_head(&b), big, 1500);
        assert_int_equal(buffer_append(&b, big, 1, 1500), -ENOMEM);
        assert_int_equal(buffer_len(&b), 1500);
        assert_memory_equal(buffer_head(&b), big, 1500);
        buffer_free(&b);

        /* limit 0 means no limit of the caller's own */
        assert_int_equal(buffer_append(&b, big, sizeof(big), 0), 0);
        assert_int_equal(buffer_len(&b), sizeof(big));
        buffer_free(&b);
}

/* A limit below what is already queued: any further append exceeds it. */
static void test_limit_below_current_length(void **state)
{
        struct buffer b = BUFFER_INIT;
        char big[2000];
        char *data;
        uint32_t cap;

        (void) state;
        fill_pattern(big, sizeof(big), 2);

        /* in place (no growth needed) */
        assert_int_equal(buffer_append(&b, big, 200, 0), 0);
        data = b.data;
        cap = b.cap;
        assert_int_equal(buffer_append(&b, big, 1, 100), -ENOMEM);
        assert_ptr_equal(b.data, data);
        assert_int_equal(b.cap, cap);
        assert_int_equal(b.len, 200);
        assert_memory_equal(buffer_head(&b), big, 200);
        buffer_free(&b);

        /* growth needed: must not shrink the storage to the limit */
        assert_int_equal(buffer_append(&b, big, 1, 0), 0);
        assert_true(b.cap <= sizeof(big));
        assert_int_equal(buffer_append(&b, big + 1, b.cap - 1, 0), 0);
        assert_int_equal(b.len, b.cap);
        cap = b.cap;
        assert_int_equal(buffer_append(&b, big, 1, 100), -ENOMEM);
        assert_int_equal(b.cap, cap);
        assert_int_equal(b.len, cap);
        assert_memory_equal(buffer_head(&b), big, cap);
        buffer_free(&b);
}

static void test_reuses_consumed_head(void **state)
{
        struct buffer b = BUFFER_INIT;
        char ref[100], chunk[50];
        uint32_t cap;
        unsigned seq = 0;

        (void) state;
        for (size_t i = 0; i < sizeof(ref); i++)
                ref[i] = (char) seq++;
        assert_int_equal(buffer_append(&b, ref, sizeof(ref), 0), 0);
        cap = b.cap;
        /* a sliding window: 100 bytes queued, the head moves by 50 each time */
        for (int round = 0; round < 10000; round++) {
                for (size_t i = 0; i < sizeof(chunk); i++)
                        chunk[i] = (char) seq++;
                assert_int_equal(buffer_append(&b, chunk, sizeof(chunk), 0), 0);
                buffer_consume(&b, sizeof(chunk));
                memmove(ref, ref + sizeof(chunk), sizeof(ref) - sizeof(chunk));
                memcpy(ref + sizeof(ref) - sizeof(chunk), chunk, sizeof(chunk));
                if (b.cap != cap)
                        fail_msg("round %d: cap grew from %u to %u with len %u",
                                 round, cap, b.cap, b.len);
                assert_int_equal(buffer_len(&b), sizeof(ref));
                assert_memory_equal(buffer_head(&b), ref, sizeof(ref));
                check_invariants(&b);
        }
        buffer_free(&b);
}

static void test_free_resets(void **state)
{
        struct buffer b = BUFFER_INIT;

        (void) state;
        assert_int_equal(buffer_append(&b, "abcdef", 6, 0), 0);
        buffer_consume(&b, 2);
        buffer_free(&b);
        check_invariants(&b);
        assert_null(b.data);
        buffer_free(&b);        /* twice is fine */
        check_invariants(&b);
        assert_int_equal(buffer_append(&b, "gh", 2, 0), 0);
        assert_memory_equal(buffer_head(&b), "gh", 2);
        buffer_free(&b);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init_is_empty),
                cmocka_unit_test(test_lazy_allocation),
                cmocka_unit_test(test_append_zero),
                cmocka_unit_test(test_growth),
                cmocka_unit_test(test_random_operations),
                cmocka_unit_test(test_limit),
                cmocka_unit_test(test_limit_below_current_length),
                cmocka_unit_test(test_reuses_consumed_head),
                cmocka_unit_test(test_free_resets),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("buffer", tests, NULL, NULL);
}
