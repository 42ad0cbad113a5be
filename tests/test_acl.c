/* SPDX-License-Identifier: MIT */
/* Unit tests for src/acl.c: CIDR parsing, matching of client addresses
 * (IPv4, IPv6, IPv4-mapped) and the allow / deny lists' copy, comparison
 * and free. */
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

#include "testcidr.h"
#include "testmain.h"

#include "acl.h"

/* cmocka passes every test a state it may ignore */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static void test_cidr_parse(void **state)
{
        static const struct {
                const char *in;
                int family;
                const char *out;
        } good[] = {
                { "10.0.0.0/8", AF_INET, "10.0.0.0/8" },
                { "10.1.2.3/8", AF_INET, "10.0.0.0/8" },            /* host bits cleared */
                { "192.168.1.255/23", AF_INET, "192.168.0.0/23" },
                { "1.2.3.4", AF_INET, "1.2.3.4/32" },
                { "1.2.3.4/32", AF_INET, "1.2.3.4/32" },
                { "255.255.255.255/0", AF_INET, "0.0.0.0/0" },
                { "0.0.0.0/0", AF_INET, "0.0.0.0/0" },
                { "::1", AF_INET6, "::1/128" },
                { "::1/128", AF_INET6, "::1/128" },
                { "::/0", AF_INET6, "::/0" },
                { "ffff::1/0", AF_INET6, "::/0" },
                { "2001:db8:abcd:12::1/50", AF_INET6, "2001:db8:abcd::/50" },
                { "fe80::1:2:3:4/64", AF_INET6, "fe80::/64" },
                { "2001:DB8::/32", AF_INET6, "2001:db8::/32" },
                { "10.0.0.0/08", AF_INET, "10.0.0.0/8" },
                /* IPv4-mapped networks become IPv4 */
                { "::ffff:10.1.2.3/104", AF_INET, "10.0.0.0/8" },
                { "::ffff:10.1.2.3", AF_INET, "10.1.2.3/32" },
                { "::ffff:0.0.0.0/96", AF_INET, "0.0.0.0/0" },
                { "::ffff:0:0/95", AF_INET6, "::fffe:0:0/95" },
        };
        static const char *const bad[] = {
                "", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8",
                "10.0.0.0/8/8", "10.0.0.0/ 8", " 10.0.0.0/8", "10.0.0.0/8 ", "10.0.0/8",
                "10.0.0.256", "::1/129", "::1/1000", "::1/", "localhost", "10.0.0.0/8x",
                "::g", "1.2.3.4/0x10", "fe80::1%eth0",
                "0000:0000:0000:0000:0000:0000:0000:0000:1/128",
        };
        char buf[INET6_ADDRSTRLEN + 8];

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                struct cidr c;

                memset(&c, 0xaa, sizeof(c));
                if (cidr_parse(good[i].in, &c) != 0)
                        print_message("cidr_parse(\"%s\") failed\n", good[i].in);
                assert_int_equal(cidr_parse(good[i].in, &c), 0);
                assert_int_equal(c.family, good[i].family);
                assert_string_equal(cidr_str(&c, buf, sizeof(buf)), good[i].out);
                if (c.family == AF_INET)
                        for (size_t j = 4; j < 16; j++)
                                assert_int_equal(c.addr[j], 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct cidr c = { .family = 12345 };

                if (cidr_parse(bad[i], &c) != -EINVAL)
                        print_message("cidr_parse(\"%s\") did not fail\n", bad[i]);
                assert_int_equal(cidr_parse(bad[i], &c), -EINVAL);
                assert_int_equal(c.family, 12345);    /* untouched */
        }
        assert_int_equal(cidr_parse(NULL, &(struct cidr) {}), -EINVAL);
}

/* peer address in binary form, as accept() gives it */
struct peer {
        int family;
        uint8_t addr[16];
};

static struct peer peer(const char *s)
{
        struct peer p = {};

        if (inet_pton(AF_INET, s, p.addr) == 1)
                p.family = AF_INET;
        else {
                assert_int_equal(inet_pton(AF_INET6, s, p.addr), 1);
                p.family = AF_INET6;
        }
        return p;
}

static bool match(const char *cidr, const char *addr)
{
        struct cidr c;
        struct peer p = peer(addr);

        assert_int_equal(cidr_parse(cidr, &c), 0);
        return cidr_match(&c, p.family, p.addr);
}

static void test_cidr_match(void **state)
{
        static const struct {
                const char *cidr, *addr;
                bool match;
        } cases[] = {
                { "10.0.0.0/8", "10.1.2.3", true },
                { "10.0.0.0/8", "10.255.255.255", true },
                { "10.0.0.0/8", "11.0.0.0", false },
                { "10.0.0.0/8", "9.255.255.255", false },
                { "10.0.0.0/8", "::ffff:10.1.2.3", true },      /* mapped: as IPv4 */
                { "10.0.0.0/8", "::ffff:11.1.2.3", false },
                { "10.0.0.0/8", "::10.1.2.3", false },           /* compatible, not mapped */
                { "192.168.0.0/23", "192.168.1.200", true },
                { "192.168.0.0/23", "192.168.2.1", false },
                { "1.2.3.4/32", "1.2.3.4", true },
                { "1.2.3.4/32", "1.2.3.5", false },
                { "1.2.3.4", "::ffff:1.2.3.4", true },
                { "0.0.0.0/0", "203.0.113.9", true },
                { "0.0.0.0/0", "::ffff:203.0.113.9", true },
                { "0.0.0.0/0", "::1", false },                   /* IPv4 never matches IPv6 */
                { "::/0", "2001:db8::1", true },
                { "::/0", "::1", true },
                { "::/0", "127.0.0.1", false },                  /* IPv6 never matches IPv4 */
                { "::/0", "::ffff:127.0.0.1", false },
                { "::1/128", "::1", true },
                { "::1/128", "::2", false },
                { "::1", "127.0.0.1", false },
                { "2001:db8::/32", "2001:db8:ffff::1", true },
                { "2001:db8::/32", "2001:db9::1", false },
                { "2001:db8::/33", "2001:db8:7fff::1", true },
                { "2001:db8::/33", "2001:db8:8000::1", false },
                { "fe80::/10", "febf::1", true },
                { "fe80::/10", "fec0::1", false },
                { "::ffff:10.0.0.0/104", "10.9.9.9", true },
                { "::ffff:10.0.0.0/104", "::ffff:10.9.9.9", true },
                { "::ffff:0:0/96", "192.0.2.1", true },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                if (match(cases[i].cidr, cases[i].addr) != cases[i].match)
                        print_message("cidr_match(%s, %s) != %d\n", cases[i].cidr,
                                      cases[i].addr, cases[i].match);
                assert_int_equal(match(cases[i].cidr, cases[i].addr), cases[i].match);
        }

        /* unknown families never match */
        {
                struct cidr c;
                uint8_t a[16] = {};

                assert_int_equal(cidr_parse("::/0", &c), 0);
                assert_false(cidr_match(&c, AF_UNIX, a));
                assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
                assert_false(cidr_match(&c, AF_UNSPEC, a));
        }
}

/* the list of allow = [ "10.0.0.0/8", "192.168.1.1", "2001:db8::/32" ]; */
static struct acl acl_of(const char *const *cidrs, size_t n)
{
        struct acl a = { .entries = calloc(n, sizeof(struct cidr)), .n = n };

        assert_non_null(a.entries);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(cidr_parse(cidrs[i], &a.entries[i]), 0);
        return a;
}

static void test_acl_match(void **state)
{
        static const char *const allow[] = { "10.0.0.0/8", "192.168.1.1", "2001:db8::/32" };
        struct acl list = acl_of(allow, ELEMENTSOF(allow));
        const struct acl *a = &list;
        struct acl empty = {};
        struct peer p;

        p = peer("10.2.3.4");
        assert_true(acl_match(a, p.family, p.addr));
        p = peer("::ffff:10.2.3.4");
        assert_true(acl_match(a, p.family, p.addr));
        p = peer("192.168.1.1");
        assert_true(acl_match(a, p.family, p.addr));
        p = peer("::ffff:192.168.1.1");
        assert_true(acl_match(a, p.family, p.addr));
        p = peer("192.168.1.2");
        assert_false(acl_match(a, p.family, p.addr));
        p = peer("2001:db8::77");
        assert_true(acl_match(a, p.family, p.addr));
        p = peer("::1");
        assert_false(acl_match(a, p.family, p.addr));
        p = peer("127.0.0.1");
        assert_false(acl_match(a, p.family, p.addr));
        /* an empty list matches nothing (the caller treats it as "not set") */
        assert_false(acl_match(&empty, p.family, p.addr));
        assert_false(acl_match(NULL, p.family, p.addr));
        acl_done(&list);
}

/* The rule of every listener and the metrics endpoint: deny wins, then an
 * allow list (when set) must match; IPv4-mapped peers count as IPv4. */
static struct sockaddr_storage sockaddr_of(const char *text)
{
        struct sockaddr_storage ss = { 0 };
        struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

        if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
        } else {
                assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
                sin6->sin6_family = AF_INET6;
        }
        return ss;
}

static bool permits(const struct acl *allow, const struct acl *deny, const char *text)
{
        struct sockaddr_storage ss = sockaddr_of(text);

        return acl_permits(allow, deny, (const struct sockaddr *) &ss);
}

static void test_acl_permits(void **state)
{
        static const char *const allow_v[] = { "127.0.0.0/8" };
        static const char *const deny_v[] = { "127.0.0.2" };
        struct acl allow = acl_of(allow_v, 1), deny = acl_of(deny_v, 1), none = {};
        struct sockaddr unix_sa = { .sa_family = AF_UNIX };

        assert_true(permits(&none, &none, "192.0.2.1"));        /* no lists: everyone */
        assert_true(permits(NULL, NULL, "::1"));
        assert_true(permits(&allow, &none, "127.0.0.3"));
        assert_true(permits(&allow, &none, "::ffff:127.0.0.3"));
        assert_false(permits(&allow, &none, "192.0.2.1"));
        assert_false(permits(&allow, &none, "::1"));
        assert_false(permits(&allow, &deny, "127.0.0.2"));      /* deny wins */
        assert_false(permits(&none, &deny, "::ffff:127.0.0.2"));
        assert_true(permits(&none, &deny, "127.0.0.1"));
        assert_true(acl_permits(&allow, &deny, &unix_sa));
        acl_done(&allow);
        acl_done(&deny);
}

static void test_acl_copy_equal_done(void **state)
{
        static const char *const two[] = { "10.0.0.0/8", "2001:db8::/32" };
        static const char *const other[] = { "10.0.0.0/8", "2001:db8::/33" };
        struct acl a = acl_of(two, ELEMENTSOF(two)), b = acl_of(other, ELEMENTSOF(other));
        struct acl copy, empty = {}, empty_copy;

        assert_int_equal(acl_copy(&copy, &a), 0);
        assert_int_equal(copy.n, 2);
        assert_ptr_not_equal(copy.entries, a.entries);
        assert_true(acl_equal(&copy, &a));
        assert_true(acl_equal(&a, &copy));
        assert_false(acl_equal(&a, &b));
        assert_false(acl_equal(&a, &empty));
        /* an empty list copies to an empty list, without allocating */
        memset(&empty_copy, 0xaa, sizeof(empty_copy));
        assert_int_equal(acl_copy(&empty_copy, &empty), 0);
        assert_null(empty_copy.entries);
        assert_int_equal(empty_copy.n, 0);
        assert_true(acl_equal(&empty_copy, &empty));
        acl_done(&copy);
        assert_null(copy.entries);
        assert_int_equal(copy.n, 0);
        acl_done(&a);
        acl_done(&b);
}

static void test_v4mapped(void **state)
{
        uint8_t a[16];

        assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.3", a), 1);
        assert_true(acl_addr_is_v4mapped(a));
        assert_int_equal(inet_pton(AF_INET6, "::10.1.2.3", a), 1);
        assert_false(acl_addr_is_v4mapped(a));
        assert_int_equal(inet_pton(AF_INET6, "::1", a), 1);
        assert_false(acl_addr_is_v4mapped(a));
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cidr_parse),
                cmocka_unit_test(test_cidr_match),
                cmocka_unit_test(test_acl_match),
                cmocka_unit_test(test_acl_permits),
                cmocka_unit_test(test_acl_copy_equal_done),
                cmocka_unit_test(test_v4mapped),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests(tests, NULL, NULL) == 0 ? 0 : 1;
}
