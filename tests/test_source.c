/* SPDX-License-Identifier: MIT */
/* Unit tests for src/source.c: per-source limits on a fake clock (token
 * bucket refill and burst, max_per_source), keying by prefix (IPv4, IPv6,
 * IPv4-mapped), per-listener separation, and the bound of the table with
 * its overflow policy (reclaim, eviction, refusal) and lazy expiry. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "testmain.h"

#include "source.h"

/* cmocka passes every test a state it may ignore */
#pragma GCC diagnostic ignored "-Wunused-parameter"

static struct source_table t;

static int teardown(void **state)
{
        source_table_free(&t);
        t = (struct source_table) { 0 };
        return 0;
}

/* A socket address for a numeric IPv4 or IPv6 literal. */
static struct sockaddr_storage addr(const char *text)
{
        struct sockaddr_storage ss = { 0 };
        struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

        if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                sin->sin_port = htons(40000);
        } else {
                assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(40000);
        }
        return ss;
}

static const struct source_limits no_limits = { .prefix4 = 32, .prefix6 = 128 };

/* Admit one client: the verdict, and its entry in *ret when admitted. */
static int admit_ret(uint64_t owner, const char *text, const struct source_limits *lim,
                     uint64_t now_ms, struct source **ret)
{
        struct sockaddr_storage ss = addr(text);
        struct source *s = NULL;
        unsigned evicted;
        int r;

        r = source_admit(&t, owner, (struct sockaddr *) &ss, lim, now_ms, &s, &evicted);
        if (r == 0)
                assert_non_null(s);
        if (ret)
                *ret = s;
        return r;
}

static int admit(uint64_t owner, const char *text, const struct source_limits *lim, uint64_t now_ms)
{
        return admit_ret(owner, text, lim, now_ms, NULL);
}

/* Rate 2/s, burst 3: three at once, then one each 500 ms. */
static void test_bucket_burst_and_refill(void **state)
{
        const struct source_limits lim = { .rate = 2, .burst = 3, .prefix4 = 32, .prefix6 = 128 };
        struct source *s;

        for (int i = 0; i < 3; i++) {
                assert_int_equal(admit_ret(1, "10.0.0.1", &lim, 1000, &s), 0);
                source_release(&t, s, 1000);    /* closes at once: rate state stays */
        }
        assert_int_equal(admit(1, "10.0.0.1", &lim, 1000), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 1499), SOURCE_REFUSED_RATE);
        assert_int_equal(admit_ret(1, "10.0.0.1", &lim, 1500, &s), 0);
        source_release(&t, s, 1500);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 1999), SOURCE_REFUSED_RATE);
        /* a refusal takes no token: the one of 2000 is there */
        assert_int_equal(admit_ret(1, "10.0.0.1", &lim, 2000, &s), 0);
        source_release(&t, s, 2000);
        /* a long pause fills the bucket to the burst, no more */
        for (int i = 0; i < 3; i++) {
                assert_int_equal(admit_ret(1, "10.0.0.1", &lim, 1000000, &s), 0);
                source_release(&t, s, 1000000);
        }
        assert_int_equal(admit(1, "10.0.0.1", &lim, 1000000), SOURCE_REFUSED_RATE);
        assert_int_equal(t.n_sources, 1);
}

/* burst 0 is max_rate_per_source; fractions of a token add up (3/s: one
 * each 333.3 ms, so the third after the burst comes at 1000 ms, not 999). */
static void test_bucket_default_burst_and_fractions(void **state)
{
        const struct source_limits lim = { .rate = 3, .prefix4 = 32, .prefix6 = 128 };

        for (int i = 0; i < 3; i++)
                assert_int_equal(admit(1, "10.0.0.1", &lim, 0), 0);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 0), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 333), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 334), 0);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 666), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 667), 0);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 999), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 1000), 0);
        /* a clock a little behind (another worker's) takes nothing back */
        assert_int_equal(admit(1, "10.0.0.1", &lim, 990), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 1333), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 1334), 0);
}

/* An idle entry is kept until its bucket is whole again: at 333 ms (3/s)
 * it holds 0.999 of a token, not one. */
static void test_bucket_kept_until_full(void **state)
{
        const struct source_limits one = { .rate = 3, .burst = 1, .prefix4 = 32, .prefix6 = 128 };
        struct source *s;

        assert_int_equal(admit_ret(1, "10.0.0.1", &one, 0, &s), 0);
        source_release(&t, s, 333);
        assert_int_equal(t.n_sources, 1);
        assert_int_equal(admit(1, "10.0.0.1", &one, 333), SOURCE_REFUSED_RATE);
        assert_int_equal(admit_ret(1, "10.0.0.1", &one, 334, &s), 0);
        source_release(&t, s, 334);
        assert_int_equal(t.n_sources, 1);               /* full again at 668 ms */
        assert_int_equal(admit(1, "10.0.0.2", &one, 667), 0);
        assert_int_equal(t.n_sources, 2);
        assert_int_equal(admit(1, "10.0.0.3", &one, 668), 0);
        assert_int_equal(t.n_sources, 2);               /* 10.0.0.1 expired */
}

/* A reload lowered the burst: a fuller bucket is cut to the new size. */
static void test_bucket_burst_lowered(void **state)
{
        const struct source_limits big = { .rate = 1, .burst = 5, .prefix4 = 32, .prefix6 = 128 };
        const struct source_limits small = { .rate = 1, .burst = 2, .prefix4 = 32, .prefix6 = 128 };

        assert_int_equal(admit(1, "10.0.0.1", &big, 0), 0);     /* 4 left */
        assert_int_equal(admit(1, "10.0.0.1", &small, 0), 0);
        assert_int_equal(admit(1, "10.0.0.1", &small, 0), 0);
        assert_int_equal(admit(1, "10.0.0.1", &small, 0), SOURCE_REFUSED_RATE);
}

/* The largest rate and burst do not overflow, even after a long time. */
static void test_bucket_extremes(void **state)
{
        const struct source_limits lim = { .rate = SOURCE_RATE_MAX, .burst = SOURCE_RATE_MAX,
                                           .prefix4 = 32, .prefix6 = 128 };
        const struct source_limits one = { .rate = 1, .burst = 1, .prefix4 = 32, .prefix6 = 128 };

        for (unsigned i = 0; i < SOURCE_RATE_MAX; i++)
                assert_int_equal(admit(1, "10.0.0.1", &lim, 5), 0);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 5), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 6), 0);     /* 1000 per ms */
        assert_int_equal(admit(1, "10.0.0.1", &lim, UINT64_MAX / 2), 0);
        assert_int_equal(admit(2, "10.0.0.1", &one, 0), 0);
        assert_int_equal(admit(2, "10.0.0.1", &one, 999), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(2, "10.0.0.1", &one, UINT64_MAX), 0);
        assert_int_equal(admit(2, "10.0.0.1", &one, UINT64_MAX), SOURCE_REFUSED_RATE);
}

/* max_per_source counts open connections; a refusal for it takes no token. */
static void test_max_per_source(void **state)
{
        const struct source_limits lim = { .max_per_source = 2, .rate = 1, .burst = 3,
                                           .prefix4 = 32, .prefix6 = 128 };
        struct source *a, *b;

        assert_int_equal(admit_ret(1, "10.0.0.1", &lim, 0, &a), 0);
        assert_int_equal(admit_ret(1, "10.0.0.1", &lim, 0, &b), 0);
        assert_ptr_equal(a, b);
        assert_int_equal(a->count, 2);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 0), SOURCE_REFUSED_MAX_PER_SOURCE);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 0), SOURCE_REFUSED_MAX_PER_SOURCE);
        source_release(&t, a, 0);
        assert_int_equal(a->count, 1);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 0), 0);     /* the third token */
        assert_int_equal(a->count, 2);
}

/* Without a rate limit an entry lives only while it has connections. */
static void test_no_rate_frees_at_last_close(void **state)
{
        struct source *a, *b;

        assert_int_equal(admit_ret(1, "10.0.0.1", &no_limits, 0, &a), 0);
        assert_int_equal(admit_ret(1, "10.0.0.1", &no_limits, 0, &b), 0);
        assert_ptr_equal(a, b);
        assert_int_equal(t.n_sources, 1);
        source_release(&t, a, 0);
        assert_int_equal(t.n_sources, 1);
        source_release(&t, a, 0);
        assert_int_equal(t.n_sources, 0);
        assert_null(t.idle_oldest);
        assert_null(t.idle_newest);
}

/* IPv4 by source_prefix_v4 bits. */
static void test_prefix_v4(void **state)
{
        const struct source_limits lim = { .rate = 1, .prefix4 = 24, .prefix6 = 128 };

        assert_int_equal(admit(1, "192.0.2.1", &lim, 0), 0);
        assert_int_equal(admit(1, "192.0.2.254", &lim, 0), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "192.0.3.1", &lim, 0), 0);
        assert_int_equal(t.n_sources, 2);

        /* 31 bits: .2 and .3 share, .4 does not */
        const struct source_limits l31 = { .rate = 1, .prefix4 = 31, .prefix6 = 128 };

        assert_int_equal(admit(2, "198.51.100.2", &l31, 0), 0);
        assert_int_equal(admit(2, "198.51.100.3", &l31, 0), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(2, "198.51.100.4", &l31, 0), 0);
        /* 32 bits (the default): each address alone */
        const struct source_limits l32 = { .rate = 1, .prefix4 = 32, .prefix6 = 128 };

        assert_int_equal(admit(3, "198.51.100.2", &l32, 0), 0);
        assert_int_equal(admit(3, "198.51.100.3", &l32, 0), 0);
        assert_int_equal(admit(3, "198.51.100.2", &l32, 0), SOURCE_REFUSED_RATE);
        /* 1 bit: two halves of the space */
        const struct source_limits l1 = { .rate = 1, .prefix4 = 1, .prefix6 = 128 };

        assert_int_equal(admit(4, "1.2.3.4", &l1, 0), 0);
        assert_int_equal(admit(4, "127.255.255.255", &l1, 0), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(4, "128.0.0.0", &l1, 0), 0);
}

/* IPv6 by source_prefix_v6 bits: rotating addresses inside the /64 (the
 * default) does not escape; a prefix not on a byte boundary works too. */
static void test_prefix_v6(void **state)
{
        const struct source_limits lim = { .rate = 1, .prefix4 = 32, .prefix6 = 64 };
        const struct source_limits l60 = { .rate = 1, .prefix4 = 32, .prefix6 = 60 };
        const struct source_limits l128 = { .rate = 1, .prefix4 = 32, .prefix6 = 128 };

        assert_int_equal(admit(1, "2001:db8:1:2::1", &lim, 0), 0);
        assert_int_equal(admit(1, "2001:db8:1:2:ffff:ffff:ffff:ffff", &lim, 0), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "2001:db8:1:2:1234::99", &lim, 0), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "2001:db8:1:3::1", &lim, 0), 0);

        assert_int_equal(admit(2, "2001:db8:1:10::1", &l60, 0), 0);
        assert_int_equal(admit(2, "2001:db8:1:1f::1", &l60, 0), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(2, "2001:db8:1:20::1", &l60, 0), 0);

        assert_int_equal(admit(3, "2001:db8::1", &l128, 0), 0);
        assert_int_equal(admit(3, "2001:db8::2", &l128, 0), 0);
        assert_int_equal(admit(3, "2001:db8::1", &l128, 0), SOURCE_REFUSED_RATE);
        /* the v4 prefix does not apply to IPv6 */
        assert_int_equal(admit(3, "::1", &l128, 0), 0);
}

/* An IPv4-mapped peer (a dual-stack listener) is its IPv4 address, under the
 * IPv4 prefix; its entry shows it as IPv4. */
static void test_v4mapped(void **state)
{
        const struct source_limits lim = { .rate = 1, .prefix4 = 24, .prefix6 = 128 };
        struct source *s;

        assert_int_equal(admit_ret(1, "::ffff:192.0.2.7", &lim, 0, &s), 0);
        assert_int_equal(s->family, AF_INET);
        assert_int_equal(s->prefix, 24);
        assert_memory_equal(s->addr, ((const uint8_t[16]) { 192, 0, 2, 0 }), 16);
        assert_int_equal(admit(1, "192.0.2.200", &lim, 0), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "::ffff:192.0.2.99", &lim, 0), SOURCE_REFUSED_RATE);
        assert_int_equal(t.n_sources, 1);
}

/* Each listener (owner) has its own entries; so has each prefix length. */
static void test_per_listener(void **state)
{
        const struct source_limits lim = { .max_per_source = 1, .rate = 1, .prefix4 = 32, .prefix6 = 128 };
        const struct source_limits l24 = { .max_per_source = 1, .rate = 1, .prefix4 = 24, .prefix6 = 128 };

        assert_int_equal(admit(1, "10.0.0.1", &lim, 0), 0);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 0), SOURCE_REFUSED_MAX_PER_SOURCE);
        assert_int_equal(admit(2, "10.0.0.1", &lim, 0), 0);
        assert_int_equal(admit(3, "10.0.0.1", &lim, 0), 0);
        assert_int_equal(t.n_sources, 3);
        /* a reload changed listener 1's prefix: a new key, 10.0.0.0/24 */
        assert_int_equal(admit(1, "10.0.0.0", &l24, 0), 0);
        assert_int_equal(t.n_sources, 4);
        source_table_free(&t);

        /* enough keys that some share a hash chain: the key, not the hash, decides */
        for (uint64_t owner = 1; owner <= 300; owner++)
                assert_int_equal(admit(owner, "10.0.0.1", &lim, 0), 0);
        for (uint64_t owner = 1; owner <= 300; owner++)
                assert_int_equal(admit(owner, "10.0.0.1", &lim, 0), SOURCE_REFUSED_MAX_PER_SOURCE);
        for (uint8_t bits = 1; bits <= 128; bits++) {
                const struct source_limits lp = { .max_per_source = 1, .prefix4 = 32, .prefix6 = bits };

                assert_int_equal(admit(1000, "::", &lp, 0), 0);
        }
        assert_int_equal(t.n_sources, 300 + 128);
}

/* An idle entry stays while its bucket refills, then goes at the next
 * admission that looks at it (lazily: no timer). */
static void test_idle_expiry(void **state)
{
        const struct source_limits lim = { .rate = 10, .burst = 2, .prefix4 = 32, .prefix6 = 128 };
        struct source *s;

        assert_int_equal(admit_ret(1, "10.0.0.1", &lim, 0, &s), 0);
        source_release(&t, s, 0);
        assert_int_equal(t.n_sources, 1);               /* 100 ms to full */
        assert_int_equal(admit(1, "10.0.0.2", &no_limits, 99), 0);
        assert_int_equal(t.n_sources, 2);
        assert_int_equal(admit(1, "10.0.0.3", &no_limits, 100), 0);
        assert_int_equal(t.n_sources, 2);               /* 10.0.0.1 expired */

        /* released once full again: freed at once */
        assert_int_equal(admit_ret(1, "10.0.0.4", &lim, 1000, &s), 0);
        assert_int_equal(t.n_sources, 3);
        source_release(&t, s, 1100);
        assert_int_equal(t.n_sources, 2);
}

/* Expiry looks at a few of the oldest idle entries per admission, so one
 * slow to refill does not keep the others behind it in the table. */
static void test_expiry_turns_over(void **state)
{
        const struct source_limits slow = { .rate = 1, .burst = 100, .prefix4 = 32, .prefix6 = 128 };
        const struct source_limits fast = { .rate = 1000, .prefix4 = 32, .prefix6 = 128 };
        char a[32];
        struct source *s;

        assert_int_equal(admit_ret(1, "10.0.0.1", &slow, 0, &s), 0);
        source_release(&t, s, 0);                       /* due at 1000 ms */
        for (int i = 0; i < 20; i++) {
                snprintf(a, sizeof(a), "10.1.0.%d", i);
                assert_int_equal(admit_ret(2, a, &fast, 0, &s), 0);
                source_release(&t, s, 0);               /* due at 1 ms */
        }
        assert_int_equal(t.n_sources, 21);
        for (int i = 0; i < 10; i++)
                assert_int_equal(admit(3, "10.2.0.1", &no_limits, 10), 0);
        assert_int_equal(t.n_sources, 2);               /* the slow one and 10.2.0.1 */
}

/* At max_sources a new source takes the place of the idle entry that waited
 * longest; losing rate state that way is counted. */
static void test_bound_reclaims_and_evicts(void **state)
{
        const struct source_limits lim = { .rate = 1, .burst = 5, .prefix4 = 32, .prefix6 = 128 };
        struct source *s;
        struct sockaddr_storage ss = addr("10.0.0.9");
        unsigned evicted;

        t.max = 3;
        for (int i = 1; i <= 3; i++) {
                char a[32];

                snprintf(a, sizeof(a), "10.0.0.%d", i);
                assert_int_equal(admit_ret(1, a, &lim, 0, &s), 0);
                source_release(&t, s, (uint64_t) i);    /* idle, not full: kept */
        }
        assert_int_equal(t.n_sources, 3);
        assert_int_equal(source_admit(&t, 1, (struct sockaddr *) &ss, &lim, 10, &s, &evicted), 0);
        assert_int_equal(evicted, 1);
        assert_int_equal(t.n_evicted, 1);
        assert_int_equal(t.n_sources, 3);
        /* 10.0.0.1 was the oldest: it starts again with a full bucket */
        for (int i = 0; i < 5; i++)
                assert_int_equal(admit(1, "10.0.0.2", &lim, 10), i < 4 ? 0 : SOURCE_REFUSED_RATE);
        assert_int_equal(t.n_evicted, 1);
        assert_int_equal(t.n_sources, 3);
        for (int i = 0; i < 5; i++)
                assert_int_equal(admit(1, "10.0.0.1", &lim, 10), 0);
        assert_int_equal(t.n_evicted, 2);
}

/* A source being refused for its rate is in use: at the bound, it is not
 * the one whose state is forgotten. */
static void test_bound_keeps_refused_source(void **state)
{
        const struct source_limits lim = { .rate = 1, .burst = 1, .prefix4 = 32, .prefix6 = 128 };
        struct source *s;

        t.max = 3;
        for (int i = 1; i <= 3; i++) {
                char a[32];

                snprintf(a, sizeof(a), "10.0.0.%d", i);
                assert_int_equal(admit_ret(1, a, &lim, 0, &s), 0);
                source_release(&t, s, 0);
        }
        assert_int_equal(admit(1, "10.0.0.1", &lim, 5), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.9", &lim, 6), 0);   /* forgets 10.0.0.2 */
        assert_int_equal(t.n_evicted, 1);
        assert_int_equal(admit(1, "10.0.0.1", &lim, 7), SOURCE_REFUSED_RATE);
        assert_int_equal(admit(1, "10.0.0.3", &lim, 8), SOURCE_REFUSED_RATE);
        assert_int_equal(t.n_evicted, 1);
        /* 10.0.0.9 has its connection: 10.0.0.1 is now the least recent */
        assert_int_equal(admit(1, "10.0.0.2", &lim, 9), 0);
        assert_int_equal(t.n_evicted, 2);
        assert_int_equal(admit(1, "10.0.0.3", &lim, 10), SOURCE_REFUSED_RATE);
}

/* A reclaimed entry whose bucket was full again is no loss: not evicted. */
static void test_bound_reclaims_full_without_eviction(void **state)
{
        const struct source_limits lim = { .rate = 1000, .prefix4 = 32, .prefix6 = 128 };
        struct sockaddr_storage ss = addr("10.0.0.9");
        struct source *s;
        unsigned evicted;

        t.max = 1;
        assert_int_equal(admit_ret(1, "10.0.0.1", &lim, 0, &s), 0);
        source_release(&t, s, 0);                       /* full at 1 ms */
        assert_int_equal(t.n_sources, 1);
        assert_int_equal(source_admit(&t, 1, (struct sockaddr *) &ss, &lim, 1, &s, &evicted), 0);
        assert_int_equal(evicted, 0);
        assert_int_equal(t.n_evicted, 0);
        assert_int_equal(t.n_sources, 1);
}

/* Every entry with connections: a new source is refused, never admitted
 * untracked; a known source still is. Room again once one closes. */
static void test_bound_full_refuses(void **state)
{
        struct source *a, *b;

        t.max = 2;
        assert_int_equal(admit_ret(1, "10.0.0.1", &no_limits, 0, &a), 0);
        assert_int_equal(admit_ret(1, "10.0.0.2", &no_limits, 0, &b), 0);
        assert_int_equal(admit(1, "10.0.0.3", &no_limits, 0), SOURCE_REFUSED_FULL);
        assert_int_equal(admit(2, "10.0.0.1", &no_limits, 0), SOURCE_REFUSED_FULL);
        assert_int_equal(admit(1, "10.0.0.1", &no_limits, 0), 0);
        assert_int_equal(t.n_sources, 2);
        assert_int_equal(t.n_evicted, 0);
        source_release(&t, b, 0);
        assert_int_equal(admit(1, "10.0.0.3", &no_limits, 0), 0);
}

/* A bound lowered below the entries (a reload): new sources shrink it. */
static void test_bound_lowered(void **state)
{
        const struct source_limits lim = { .rate = 1, .prefix4 = 32, .prefix6 = 128 };
        struct source *s;
        char a[32];

        for (int i = 0; i < 8; i++) {
                snprintf(a, sizeof(a), "10.0.0.%d", i);
                assert_int_equal(admit_ret(1, a, &lim, 0, &s), 0);
                source_release(&t, s, 0);
        }
        t.max = 4;
        assert_int_equal(admit(1, "10.0.1.1", &lim, 0), SOURCE_REFUSED_FULL);
        assert_int_equal(t.n_sources, 6);               /* two gone; still above */
        assert_int_equal(admit(1, "10.0.1.1", &lim, 0), SOURCE_REFUSED_FULL);
        assert_int_equal(admit(1, "10.0.1.1", &lim, 0), 0);
        assert_int_equal(t.n_sources, 4);
        assert_int_equal(t.n_evicted, 5);
}

/* Many sources: the hash table grows and every entry is found again. */
static void test_many_sources(void **state)
{
        const struct source_limits lim = { .max_per_source = 1, .prefix4 = 32, .prefix6 = 128 };
        struct source **held = calloc(5000, sizeof(*held));
        char a[64];

        assert_non_null(held);
        for (int i = 0; i < 5000; i++) {
                snprintf(a, sizeof(a), "2001:db8::%x", i);
                assert_int_equal(admit_ret(1, a, &lim, 0, &held[i]), 0);
        }
        assert_int_equal(t.n_sources, 5000);
        for (int i = 0; i < 5000; i++) {
                snprintf(a, sizeof(a), "2001:db8::%x", i);
                assert_int_equal(admit(1, a, &lim, 0), SOURCE_REFUSED_MAX_PER_SOURCE);
        }
        for (int i = 0; i < 5000; i++)
                source_release(&t, held[i], 0);
        assert_int_equal(t.n_sources, 0);
        free(held);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_bucket_burst_and_refill, teardown),
                cmocka_unit_test_teardown(test_bucket_default_burst_and_fractions, teardown),
                cmocka_unit_test_teardown(test_bucket_kept_until_full, teardown),
                cmocka_unit_test_teardown(test_bucket_burst_lowered, teardown),
                cmocka_unit_test_teardown(test_bucket_extremes, teardown),
                cmocka_unit_test_teardown(test_max_per_source, teardown),
                cmocka_unit_test_teardown(test_no_rate_frees_at_last_close, teardown),
                cmocka_unit_test_teardown(test_prefix_v4, teardown),
                cmocka_unit_test_teardown(test_prefix_v6, teardown),
                cmocka_unit_test_teardown(test_v4mapped, teardown),
                cmocka_unit_test_teardown(test_per_listener, teardown),
                cmocka_unit_test_teardown(test_idle_expiry, teardown),
                cmocka_unit_test_teardown(test_expiry_turns_over, teardown),
                cmocka_unit_test_teardown(test_bound_reclaims_and_evicts, teardown),
                cmocka_unit_test_teardown(test_bound_keeps_refused_source, teardown),
                cmocka_unit_test_teardown(test_bound_reclaims_full_without_eviction, teardown),
                cmocka_unit_test_teardown(test_bound_full_refuses, teardown),
                cmocka_unit_test_teardown(test_bound_lowered, teardown),
                cmocka_unit_test_teardown(test_many_sources, teardown),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
