/* SPDX-License-Identifier: MIT */
/* Unit tests for src/bench-srcaddr.c: muxbench's client addresses in
 * connection mode (--source-addrs), parsed and handed out in turn. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "testmain.h"

#include "bench-srcaddr.h"

/* The next address handed out, as text ("" when not bound). */
static const char *next_str(struct srcaddr_list *l, char *buf, size_t len)
{
        struct sockaddr_storage sa;
        socklen_t sl;

        if (!srcaddr_next(l, &sa, &sl))
                return strcpy(buf, "");
        if (sa.ss_family == AF_INET) {
                assert_int_equal(sl, sizeof(struct sockaddr_in));
                assert_int_equal(((struct sockaddr_in *) &sa)->sin_port, 0);
                return inet_ntop(AF_INET, &((struct sockaddr_in *) &sa)->sin_addr, buf, (socklen_t) len);
        }
        assert_int_equal(sl, sizeof(struct sockaddr_in6));
        assert_int_equal(((struct sockaddr_in6 *) &sa)->sin6_port, 0);
        return inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &sa)->sin6_addr, buf, (socklen_t) len);
}

static void describe_is(const struct srcaddr_list *l, const char *want)
{
        char buf[SRCADDR_STR_MAX];

        srcaddr_describe(l, buf, sizeof(buf));
        assert_string_equal(buf, want);
}

static void test_range_in_turn(void **state)
{
        struct srcaddr_list l;
        char err[128], buf[64];

        (void) state;
        assert_int_equal(srcaddr_parse("127.0.0.2-127.0.0.4", AF_INET, &l, err, sizeof(err)), 0);
        assert_int_equal(l.count, 3);
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "127.0.0.2");
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "127.0.0.3");
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "127.0.0.4");
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "127.0.0.2");      /* round again */
        describe_is(&l, "127.0.0.2-127.0.0.4");
}

/* A range may cross an octet. */
static void test_range_across_octets(void **state)
{
        struct srcaddr_list l;
        char err[128], buf[64];

        (void) state;
        assert_int_equal(srcaddr_parse("127.0.0.255-127.0.1.0", AF_INET, &l, err, sizeof(err)), 0);
        assert_int_equal(l.count, 2);
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "127.0.0.255");
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "127.0.1.0");
}

static void test_count(void **state)
{
        struct srcaddr_list l;
        char err[128], buf[64];

        (void) state;
        assert_int_equal(srcaddr_parse("300", AF_INET, &l, err, sizeof(err)), 0);
        assert_int_equal(l.count, 300);
        describe_is(&l, "127.0.0.2-127.0.1.45");
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "127.0.0.2");
        assert_int_equal(srcaddr_parse("1", AF_INET, &l, err, sizeof(err)), 0);
        describe_is(&l, "127.0.0.2");
        assert_int_equal(srcaddr_parse("16777213", AF_INET, &l, err, sizeof(err)), 0);
        describe_is(&l, "127.0.0.2-127.255.255.254");
}

static void test_one_address_and_none(void **state)
{
        struct srcaddr_list l;
        char err[128], buf[64];

        (void) state;
        assert_int_equal(srcaddr_parse("127.0.0.9", AF_INET, &l, err, sizeof(err)), 0);
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "127.0.0.9");
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "127.0.0.9");
        assert_int_equal(srcaddr_parse("::1", AF_INET6, &l, err, sizeof(err)), 0);
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "::1");
        describe_is(&l, "::1");
        assert_int_equal(srcaddr_parse("none", AF_INET, &l, err, sizeof(err)), 0);
        assert_string_equal(next_str(&l, buf, sizeof(buf)), "");
        describe_is(&l, "none");
}

static void test_errors(void **state)
{
        static const struct {
                const char *spec;
                int family;
                const char *says;
        } bad[] = {
                { "0", AF_INET, "a count from 1" },
                { "16777214", AF_INET, "a count from 1" },
                { "12x", AF_INET, "a count from 1" },
                { "127.0.0.5-127.0.0.4", AF_INET, "ends before it starts" },
                { "127.0.0.1-", AF_INET, "IPv4 range A-B" },
                { "-127.0.0.1", AF_INET, "IPv4 range A-B" },
                { "127.0.0.1-::1", AF_INET, "IPv4 range A-B" },
                { "0.0.0.0-255.255.255.255", AF_INET, "more than 16777213" },
                { "::1", AF_INET, "must be IPv4, like the server" },
                { "127.0.0.1", AF_INET6, "must be IPv6, like the server" },
                { "10", AF_INET6, "IPv4 loopback server" },
                { "", AF_INET, "expected none, a count" },
                { "localhost", AF_INET, "expected none, a count" },
        };
        struct srcaddr_list l;
        char err[128];

        (void) state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = '\0';
                assert_int_equal(srcaddr_parse(bad[i].spec, bad[i].family, &l, err, sizeof(err)), -EINVAL);
                if (!strstr(err, bad[i].says))
                        fail_msg("'%s': '%s' does not say '%s'", bad[i].spec, err, bad[i].says);
                assert_non_null(strstr(err, bad[i].spec));
                assert_int_equal(l.family, AF_UNSPEC);  /* nothing half set */
        }
}

static void test_default(void **state)
{
        struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = htons(8088) };
        struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        struct srcaddr_list l;

        (void) state;
        v4.sin_addr.s_addr = htonl(0x7f000001);
        srcaddr_default((struct sockaddr *) &v4, &l);
        describe_is(&l, "127.0.0.2-127.0.0.254");
        v4.sin_addr.s_addr = htonl(0x7f0a0b0c);         /* anywhere in 127/8 */
        srcaddr_default((struct sockaddr *) &v4, &l);
        assert_int_equal(l.count, SRCADDR_DEFAULT_COUNT);
        v4.sin_addr.s_addr = htonl(0xc0a80001);         /* not loopback: not bound */
        srcaddr_default((struct sockaddr *) &v4, &l);
        describe_is(&l, "none");
        srcaddr_default((struct sockaddr *) &v6, &l);   /* ::1 is the only one */
        describe_is(&l, "none");
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_range_in_turn),
                cmocka_unit_test(test_range_across_octets),
                cmocka_unit_test(test_count),
                cmocka_unit_test(test_one_address_and_none),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_default),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("bench_srcaddr", tests, NULL, NULL);
}
