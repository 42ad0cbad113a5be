/* SPDX-License-Identifier: MIT */
/* Unit tests for src/util.c: number and HOST:PORT parsing, address and byte
 * formatting for log lines. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"
#include "testmain.h"

static void test_parse_uint(void **state)
{
        unsigned long v = 7;

        (void) state;
        assert_int_equal(parse_uint("0", 0, 10, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_uint("65535", 1, 65535, &v), 0);
        assert_int_equal(v, 65535);
        assert_int_equal(parse_uint("65536", 1, 65535, &v), -ERANGE);
        assert_int_equal(parse_uint("0", 1, 65535, &v), -ERANGE);
        assert_int_equal(parse_uint("99999999999999999999999", 0, 100, &v), -ERANGE);
        assert_int_equal(v, 65535);     /* untouched on failure */
        assert_int_equal(parse_uint("", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_uint(" 1", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_uint("+1", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_uint("-1", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_uint("1x", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_uint(NULL, 0, 10, &v), -EINVAL);
}

static void expect_hostport(const char *arg, const char *host, unsigned port, bool numeric)
{
        struct hostport hp = { 0 };
        const char *why = NULL;

        assert_int_equal(hostport_parse(arg, &hp, &why), 0);
        assert_string_equal(hp.host, host);
        assert_int_equal(hp.port, port);
        assert_int_equal(hp.numeric_host, numeric);
        assert_null(why);
        free(hp.host);
}

static void expect_hostport_error(const char *arg, int error, const char *why_expected)
{
        struct hostport hp = { 0 };
        const char *why = NULL;

        assert_int_equal(hostport_parse(arg, &hp, &why), error);
        assert_null(hp.host);
        assert_string_equal(why, why_expected);
}

static void test_hostport(void **state)
{
        (void) state;
        expect_hostport("8088", "localhost", 8088, false);
        expect_hostport(":8088", "localhost", 8088, false);
        expect_hostport("127.0.0.1:1", "127.0.0.1", 1, false);
        expect_hostport("example.org:65535", "example.org", 65535, false);
        expect_hostport("[::1]:8080", "::1", 8080, true);
        expect_hostport("[fe80::1%lo]:8080", "fe80::1%lo", 8080, true);

        expect_hostport_error("localhost", -EINVAL, "expected HOST:PORT or PORT");
        expect_hostport_error("", -EINVAL, "expected HOST:PORT or PORT");
        expect_hostport_error("::1:8080", -EINVAL, "write an IPv6 address as [ADDRESS]:PORT");
        expect_hostport_error("[::1]8080", -EINVAL, "expected [IPv6]:PORT");
        expect_hostport_error("[]:8080", -EINVAL, "expected [IPv6]:PORT");
        expect_hostport_error("[::1", -EINVAL, "expected [IPv6]:PORT");
        expect_hostport_error("host:0", -ERANGE, "expected a number from 1 to 65535");
        expect_hostport_error("host:65536", -ERANGE, "expected a number from 1 to 65535");
        expect_hostport_error("host:", -ERANGE, "expected a number from 1 to 65535");
        expect_hostport_error("[::1]:x", -ERANGE, "expected a number from 1 to 65535");
        expect_hostport_error("99999", -ERANGE, "expected a number from 1 to 65535");
}

static void test_sockaddr_to_string(void **state)
{
        struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons(8088) };
        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(8080) };
        char buf[SOCKADDR_STR_MAX];

        (void) state;
        inet_pton(AF_INET, "127.0.0.1", &in4.sin_addr);
        assert_string_equal(sockaddr_to_string((struct sockaddr *) &in4, sizeof(in4), buf), "127.0.0.1:8088");
        inet_pton(AF_INET6, "::1", &in6.sin6_addr);
        assert_string_equal(sockaddr_to_string((struct sockaddr *) &in6, sizeof(in6), buf), "[::1]:8080");
        /* an IPv4 client of a dual-stack socket is shown as IPv4 */
        inet_pton(AF_INET6, "::ffff:192.0.2.7", &in6.sin6_addr);
        assert_string_equal(sockaddr_to_string((struct sockaddr *) &in6, sizeof(in6), buf), "192.0.2.7:8080");
}

static void test_escape_bytes(void **state)
{
        char out[16];

        (void) state;
        assert_string_equal(escape_bytes("hi\r\n", 4, out, sizeof(out)), "hi\\r\\n");
        assert_string_equal(escape_bytes("a\tb\\\x01\xff", 6, out, sizeof(out)), "a\\tb\\\\\\x01\\xff");
        assert_string_equal(escape_bytes("", 0, out, sizeof(out)), "");
        /* too long: cut at an escape boundary, never inside one, with "..." */
        assert_string_equal(escape_bytes("abcdefghijklmnopqrstuvwxyz", 26, out, sizeof(out)),
                            "abcdefghijkl...");
        assert_string_equal(escape_bytes("abcdefghijk\x01\x02", 13, out, sizeof(out)), "abcdefghijk...");
        assert_int_equal(strlen(out), 14);
}

static void expect_resolved(const char *host, bool numeric, const char *addr)
{
        const struct hostport hp = { .host = (char *) host, .port = 8088, .numeric_host = numeric };
        struct addrinfo *res = NULL;
        char buf[SOCKADDR_STR_MAX];

        assert_int_equal(hostport_resolve(&hp, &res), 0);
        assert_non_null(res);
        assert_int_equal(res->ai_socktype, SOCK_STREAM);
        assert_string_equal(sockaddr_to_string(res->ai_addr, res->ai_addrlen, buf), addr);
        freeaddrinfo(res);
}

/* Addresses only: the test must not depend on DNS or /etc/hosts. */
static void test_hostport_resolve(void **state)
{
        const struct hostport name = { .host = (char *) "localhost", .port = 1, .numeric_host = true };
        struct addrinfo *res = NULL;

        (void) state;
        expect_resolved("127.0.0.1", false, "127.0.0.1:8088");
        expect_resolved("::1", true, "[::1]:8088");
        /* written in brackets: an address, never looked up as a name */
        assert_int_equal(hostport_resolve(&name, &res), EAI_NONAME);
}

static void test_monotonic_clock(void **state)
{
        uint64_t ms0, ns0, ns1, ms1;

        (void) state;
        ms0 = monotonic_ms();
        ns0 = monotonic_ns();
        ns1 = monotonic_ns();
        ms1 = monotonic_ms();
        assert_true(ns0 > 0);
        assert_true(ns1 >= ns0);
        /* the same clock in two units */
        assert_true(ms0 <= ns0 / 1000000u);
        assert_true(ns1 / 1000000u <= ms1);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_uint),
                cmocka_unit_test(test_hostport),
                cmocka_unit_test(test_hostport_resolve),
                cmocka_unit_test(test_sockaddr_to_string),
                cmocka_unit_test(test_escape_bytes),
                cmocka_unit_test(test_monotonic_clock),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
