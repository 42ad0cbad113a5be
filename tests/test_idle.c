/* SPDX-License-Identifier: MIT */
/* Unit tests for src/idle.c: the idle queue, driven by a hand-made clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "idle.h"
#include "testutil.h"
#include "testmain.h"

/* Walk the list both ways: it must hold exactly want[0..n) in this order. */
static void check_order(const struct idle_queue *q, struct idle_link *const *want, size_t n)
{
        const struct idle_link *l = &q->head;

        assert_int_equal(q->count, n);
        for (size_t i = 0; i < n; i++) {
                l = l->next;
                if (l != want[i])
                        fail_msg("position %zu (from the head) holds the wrong link", i);
                assert_true(idle_queued(l));
        }
        assert_ptr_equal(l->next, &q->head);
        l = &q->head;
        for (size_t i = n; i-- > 0;) {
                l = l->prev;
                if (l != want[i])
                        fail_msg("position %zu (from the tail) holds the wrong link", i);
        }
        assert_ptr_equal(l->prev, &q->head);
        if (n == 0)
                assert_null(idle_oldest(q));
        else
                assert_ptr_equal(idle_oldest(q), want[0]);
}

static void test_init_empty(void **state)
{
        struct idle_queue q;

        (void) state;
        memset(&q, 0xa5, sizeof(q));
        idle_queue_init(&q);
        assert_int_equal(q.count, 0);
        assert_null(idle_oldest(&q));
        assert_int_equal(idle_next_timeout(&q, 0, 500), -1);
        assert_int_equal(idle_next_timeout(&q, 123456, 500), -1);
        assert_int_equal(idle_next_timeout(&q, 0, 0), -1);
        assert_null(idle_pop_expired(&q, UINT64_MAX / 2, 1));
        assert_int_equal(q.count, 0);
}

static void test_touch_inserts_at_tail(void **state)
{
        struct idle_queue q;
        struct idle_link a = { 0 }, b = { 0 }, c = { 0 };

        (void) state;
        idle_queue_init(&q);
        assert_false(idle_queued(&a));
        idle_touch(&q, &a, 100);
        assert_true(idle_queued(&a));
        assert_int_equal(a.last_ms, 100);
        check_order(&q, (struct idle_link *[]) { &a }, 1);
        idle_touch(&q, &b, 200);
        check_order(&q, (struct idle_link *[]) { &a, &b }, 2);
        idle_touch(&q, &c, 300);
        check_order(&q, (struct idle_link *[]) { &a, &b, &c }, 3);
        assert_int_equal(b.last_ms, 200);
        assert_int_equal(c.last_ms, 300);
}

static void test_touch_moves_to_tail(void **state)
{
        struct idle_queue q;
        struct idle_link a = { 0 }, b = { 0 }, c = { 0 };

        (void) state;
        idle_queue_init(&q);
        idle_touch(&q, &a, 100);
        idle_touch(&q, &b, 200);
        idle_touch(&q, &c, 300);
        idle_touch(&q, &a, 400);        /* the head moves to the tail */
        check_order(&q, (struct idle_link *[]) { &b, &c, &a }, 3);
        assert_int_equal(a.last_ms, 400);
        idle_touch(&q, &c, 500);        /* a middle one too */
        check_order(&q, (struct idle_link *[]) { &b, &a, &c }, 3);

        /* expiry follows the new order */
        assert_null(idle_pop_expired(&q, 699, 500));
        assert_ptr_equal(idle_pop_expired(&q, 700, 500), &b);
        assert_int_equal(q.count, 2);
        assert_null(idle_pop_expired(&q, 700, 500));
        assert_ptr_equal(idle_pop_expired(&q, 1000, 500), &a);
        assert_ptr_equal(idle_pop_expired(&q, 1000, 500), &c);
        assert_null(idle_pop_expired(&q, 1000, 500));
        assert_int_equal(q.count, 0);
        assert_false(idle_queued(&a));
        assert_false(idle_queued(&b));
        assert_false(idle_queued(&c));
}

static void test_touch_tail_updates_time(void **state)
{
        struct idle_queue q;
        struct idle_link a = { 0 }, b = { 0 };
        struct idle_link *prev, *next;

        (void) state;
        idle_queue_init(&q);
        idle_touch(&q, &a, 100);
        idle_touch(&q, &b, 200);
        prev = b.prev;
        next = b.next;
        idle_touch(&q, &b, 350);
        assert_int_equal(b.last_ms, 350);
        assert_ptr_equal(b.prev, prev);
        assert_ptr_equal(b.next, next);
        check_order(&q, (struct idle_link *[]) { &a, &b }, 2);

        /* a single link is both head and tail */
        idle_remove(&q, &a);
        idle_touch(&q, &b, 400);
        assert_int_equal(b.last_ms, 400);
        check_order(&q, (struct idle_link *[]) { &b }, 1);
}

static void test_next_timeout(void **state)
{
        struct idle_queue q;
        struct idle_link a = { 0 }, b = { 0 };

        (void) state;
        idle_queue_init(&q);
        idle_touch(&q, &a, 1000);
        idle_touch(&q, &b, 1100);
        assert_int_equal(idle_next_timeout(&q, 1000, 500), 500);
        assert_int_equal(idle_next_timeout(&q, 1200, 500), 300);
        assert_int_equal(idle_next_timeout(&q, 1499, 500), 1);
        assert_int_equal(idle_next_timeout(&q, 1500, 500), 0);
        assert_int_equal(idle_next_timeout(&q, 1501, 500), 0);
        assert_int_equal(idle_next_timeout(&q, 99999, 500), 0);
        assert_int_equal(idle_next_timeout(&q, 1200, 0), -1);   /* no timeout */
        assert_int_equal(idle_next_timeout(&q, 1200, 1), 0);
        /* the oldest one decides: once a is gone, b's deadline counts */
        idle_remove(&q, &a);
        assert_int_equal(idle_next_timeout(&q, 1200, 500), 400);
        /* touching b again pushes the deadline */
        idle_touch(&q, &b, 1300);
        assert_int_equal(idle_next_timeout(&q, 1300, 500), 500);
        idle_remove(&q, &b);
        assert_int_equal(idle_next_timeout(&q, 1300, 500), -1);
}

static void test_next_timeout_cap(void **state)
{
        struct idle_queue q;
        struct idle_link a = { 0 };

        (void) state;
        idle_queue_init(&q);
        idle_touch(&q, &a, 0);
        assert_int_equal(idle_next_timeout(&q, 0, (uint64_t) INT32_MAX - 1), INT32_MAX - 1);
        assert_int_equal(idle_next_timeout(&q, 0, (uint64_t) INT32_MAX), INT32_MAX);
        assert_int_equal(idle_next_timeout(&q, 0, (uint64_t) INT32_MAX + 1), INT32_MAX);
        assert_int_equal(idle_next_timeout(&q, 0, UINT64_C(1) << 40), INT32_MAX);
        assert_int_equal(idle_next_timeout(&q, 0, UINT64_C(1) << 62), INT32_MAX);
        assert_int_equal(idle_next_timeout(&q, 10, (uint64_t) INT32_MAX + 10), INT32_MAX);
        assert_int_equal(idle_next_timeout(&q, 11, (uint64_t) INT32_MAX + 10), INT32_MAX - 1);
        /* a realistic clock: days of uptime, a 30-day timeout */
        idle_touch(&q, &a, UINT64_C(86400000) * 3);
        assert_int_equal(idle_next_timeout(&q, UINT64_C(86400000) * 3, UINT64_C(2592000000)),
                         INT32_MAX);
}

static void test_pop_expired(void **state)
{
        struct idle_queue q;
        struct idle_link a = { 0 }, b = { 0 }, c = { 0 };

        (void) state;
        idle_queue_init(&q);
        idle_touch(&q, &a, 1000);
        idle_touch(&q, &b, 1100);
        idle_touch(&q, &c, 1200);
        assert_null(idle_pop_expired(&q, 1499, 500));
        assert_int_equal(q.count, 3);
        assert_null(idle_pop_expired(&q, 5000, 0));     /* timeout 0: never */
        assert_int_equal(q.count, 3);
        assert_ptr_equal(idle_pop_expired(&q, 1500, 500), &a);  /* exactly timeout_ms idle */
        assert_int_equal(q.count, 2);
        assert_false(idle_queued(&a));
        assert_null(idle_pop_expired(&q, 1500, 500));
        assert_int_equal(q.count, 2);
        assert_ptr_equal(idle_pop_expired(&q, 1650, 500), &b);
        assert_null(idle_pop_expired(&q, 1650, 500));
        assert_int_equal(q.count, 1);
        check_order(&q, (struct idle_link *[]) { &c }, 1);
        assert_ptr_equal(idle_pop_expired(&q, 1700, 500), &c);
        assert_int_equal(q.count, 0);
        assert_null(idle_pop_expired(&q, 1700, 500));
        check_order(&q, NULL, 0);
        /* a popped link can be queued again */
        idle_touch(&q, &b, 2000);
        check_order(&q, (struct idle_link *[]) { &b }, 1);
}

static void test_remove(void **state)
{
        struct idle_queue q;
        struct idle_link a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, never = { 0 };

        (void) state;
        idle_queue_init(&q);
        idle_touch(&q, &a, 1);
        idle_touch(&q, &b, 2);
        idle_touch(&q, &c, 3);
        idle_touch(&q, &d, 4);

        idle_remove(&q, &b);                                    /* middle */
        assert_false(idle_queued(&b));
        check_order(&q, (struct idle_link *[]) { &a, &c, &d }, 3);
        idle_remove(&q, &a);                                    /* head */
        check_order(&q, (struct idle_link *[]) { &c, &d }, 2);
        idle_remove(&q, &d);                                    /* tail */
        check_order(&q, (struct idle_link *[]) { &c }, 1);

        idle_remove(&q, &never);                                /* never queued: no-op */
        idle_remove(&q, &b);                                    /* already removed: no-op */
        assert_false(idle_queued(&never));
        check_order(&q, (struct idle_link *[]) { &c }, 1);

        idle_remove(&q, &c);                                    /* the last one */
        check_order(&q, NULL, 0);
        assert_int_equal(idle_next_timeout(&q, 10, 5), -1);
        idle_remove(&q, &c);
        assert_int_equal(q.count, 0);

        /* removed links can be touched back in, at the tail */
        idle_touch(&q, &d, 10);
        idle_touch(&q, &a, 11);
        check_order(&q, (struct idle_link *[]) { &d, &a }, 2);
}

/* 10,000 links, random touches and removals with a clock that never goes
 * back: expiry always comes in non-decreasing last_ms order, pops exactly
 * the expired links, and the queue matches a reference kept in the test. */
/* Deadlines that differ per link: kept in order, ties in insertion order. */
static void test_insert_sorted(void **state)
{
        struct idle_queue q;
        struct idle_link l[6] = {};

        (void) state;
        idle_queue_init(&q);
        idle_insert_sorted(&q, &l[0], 3000);    /* into the empty queue */
        idle_insert_sorted(&q, &l[1], 3000);    /* a tie goes after */
        idle_insert_sorted(&q, &l[2], 10000);   /* the tail */
        idle_insert_sorted(&q, &l[3], 1000);    /* the head */
        idle_insert_sorted(&q, &l[4], 5000);    /* the middle */
        idle_insert_sorted(&q, &l[5], 10000);
        {
                struct idle_link *const want[] = { &l[3], &l[0], &l[1], &l[4], &l[2], &l[5] };

                check_order(&q, want, 6);
        }
        assert_int_equal(l[4].last_ms, 5000);
        /* they expire by their own time */
        assert_ptr_equal(idle_pop_expired(&q, 5000, 1), &l[3]);
        assert_ptr_equal(idle_pop_expired(&q, 5000, 1), &l[0]);
        assert_ptr_equal(idle_pop_expired(&q, 5000, 1), &l[1]);
        assert_null(idle_pop_expired(&q, 5000, 1));
        idle_remove(&q, &l[2]);
        {
                struct idle_link *const want[] = { &l[4], &l[5] };

                check_order(&q, want, 2);
        }
}

static void test_many_random(void **state)
{
        enum { N = 10000, OPS = 200000 };
        static struct idle_link links[N];
        static bool queued[N];
        struct idle_queue q;
        uint64_t now = 1000, timeout = 5000;
        size_t nqueued = 0;
        size_t popped_total = 0;

        (void) state;
        memset(links, 0, sizeof(links));
        memset(queued, 0, sizeof(queued));
        rng_state = 0xdeadbeefcafef00dull;
        idle_queue_init(&q);
        for (int op = 0; op < OPS; op++) {
                size_t i = rng_below(N);
                unsigned kind = (unsigned) rng_below(100);

                now += rng_below(4);
                if (kind < 80) {
                        idle_touch(&q, &links[i], now);
                        if (!queued[i])
                                nqueued++;
                        queued[i] = true;
                        assert_int_equal(links[i].last_ms, now);
                        assert_ptr_equal(q.head.prev, &links[i]);
                } else if (kind < 90) {
                        idle_remove(&q, &links[i]);
                        if (queued[i])
                                nqueued--;
                        queued[i] = false;
                } else {
                        struct idle_link *l;
                        uint64_t prev_ms = 0;

                        /* pop everything expired, in order */
                        while ((l = idle_pop_expired(&q, now, timeout)) != NULL) {
                                size_t k = (size_t) (l - links);

                                assert_true(k < N);
                                assert_true(queued[k]);
                                if (l->last_ms < prev_ms)
                                        fail_msg("op %d: popped last_ms %llu after %llu", op,
                                                 (unsigned long long) l->last_ms,
                                                 (unsigned long long) prev_ms);
                                assert_true(l->last_ms + timeout <= now);
                                assert_false(idle_queued(l));
                                prev_ms = l->last_ms;
                                queued[k] = false;
                                nqueued--;
                                popped_total++;
                        }
                        /* nothing still queued is expired */
                        if (op % 97 == 0)
                                for (size_t k = 0; k < N; k++)
                                        if (queued[k] && links[k].last_ms + timeout <= now)
                                                fail_msg("op %d: link %zu expired but not popped", op, k);
                }
                if (q.count != nqueued)
                        fail_msg("op %d: count %u, expected %zu", op, q.count, nqueued);
        }
        assert_true(popped_total > 0);

        /* the list is sorted by last_ms from head to tail, and the oldest
         * is the minimum of the reference set */
        {
                const struct idle_link *l;
                uint64_t prev_ms = 0, min_ms = UINT64_MAX;
                size_t n = 0;

                for (size_t k = 0; k < N; k++)
                        if (queued[k] && links[k].last_ms < min_ms)
                                min_ms = links[k].last_ms;
                for (l = q.head.next; l != &q.head; l = l->next) {
                        assert_true(l->last_ms >= prev_ms);
                        assert_true(queued[l - links]);
                        prev_ms = l->last_ms;
                        n++;
                }
                assert_int_equal(n, nqueued);
                if (n > 0) {
                        assert_int_equal(idle_oldest(&q)->last_ms, min_ms);
                        assert_int_equal(idle_next_timeout(&q, now, timeout),
                                         min_ms + timeout <= now ? 0 : (int) (min_ms + timeout - now));
                }
        }

        /* far in the future everything expires, oldest first */
        {
                struct idle_link *l;
                uint64_t prev_ms = 0;
                size_t n = 0;

                while ((l = idle_pop_expired(&q, now + timeout, timeout)) != NULL) {
                        assert_true(l->last_ms >= prev_ms);
                        prev_ms = l->last_ms;
                        n++;
                }
                assert_int_equal(n, nqueued);
                assert_int_equal(q.count, 0);
                assert_null(idle_oldest(&q));
        }
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init_empty),
                cmocka_unit_test(test_touch_inserts_at_tail),
                cmocka_unit_test(test_touch_moves_to_tail),
                cmocka_unit_test(test_touch_tail_updates_time),
                cmocka_unit_test(test_next_timeout),
                cmocka_unit_test(test_next_timeout_cap),
                cmocka_unit_test(test_pop_expired),
                cmocka_unit_test(test_remove),
                cmocka_unit_test(test_insert_sorted),
                cmocka_unit_test(test_many_random),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("idle", tests, NULL, NULL);
}
