/* SPDX-License-Identifier: MIT */
/* Unit tests for src/proxy.c: PROXY protocol v1 and v2 headers, valid,
 * incomplete (at every split point), malformed and of the wrong version. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy.h"
#include "testmain.h"

#define V2_SIG "\r\n\r\n\0\r\nQUIT\n"

/* A v2 header: signature, ver/cmd, fam/proto, length, then body. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t len)
{
        memcpy(out, V2_SIG, 12);
        out[12] = ver_cmd;
        out[13] = fam;
        out[14] = (uint8_t) (len >> 8);
        out[15] = (uint8_t) len;
        if (len)
                memcpy(out + 16, body, len);
        return 16 + len;
}

/* body of a TCP over IPv4 PROXY: 192.0.2.1:56324 -> 198.51.100.2:443, then extra */
static size_t v2_inet_body(uint8_t *b, const void *extra, size_t extra_len)
{
        static const uint8_t a[12] = { 192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb };

        memcpy(b, a, sizeof(a));
        if (extra_len)
                memcpy(b + 12, extra, extra_len);
        return 12 + extra_len;
}

static void expect_addr(const union proxy_addr *a, int family, const char *addr, unsigned port)
{
        char s[INET6_ADDRSTRLEN];

        assert_int_equal(a->sa.sa_family, family);
        if (family == AF_INET) {
                inet_ntop(AF_INET, &a->in.sin_addr, s, sizeof(s));
                assert_int_equal(ntohs(a->in.sin_port), port);
        } else {
                inet_ntop(AF_INET6, &a->in6.sin6_addr, s, sizeof(s));
                assert_int_equal(ntohs(a->in6.sin6_port), port);
        }
        assert_string_equal(s, addr);
}

/* Every proper prefix of a valid header needs more; the whole gives len. */
static void expect_split_everywhere(const void *buf, size_t len, enum proxy_version allowed)
{
        struct proxy_header h;

        for (size_t i = 0; i < len; i++) {
                /* a copy of exactly i bytes: ASan sees a read past it */
                uint8_t *p = malloc(i ? i : 1);

                assert_non_null(p);
                memcpy(p, buf, i);
                assert_int_equal(proxy_parse(p, i, allowed, &h), 0);
                free(p);
        }
        assert_int_equal(proxy_parse(buf, len, allowed, &h), (int) len);
}

static void test_v1_tcp4(void **state)
{
        static const char hdr[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhello\n";
        size_t len = strlen("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
        struct proxy_header h;

        (void) state;
        /* the client's first bytes after it are not the header's */
        assert_int_equal(proxy_parse(hdr, sizeof(hdr) - 1, PROXY_V1, &h), (int) len);
        assert_int_equal(h.version, PROXY_V1);
        assert_false(h.local);
        expect_addr(&h.src, AF_INET, "192.0.2.1", 56324);
        expect_addr(&h.dst, AF_INET, "198.51.100.2", 443);
        assert_int_equal(proxy_parse(hdr, sizeof(hdr) - 1, PROXY_ANY, &h), (int) len);
        expect_split_everywhere(hdr, len, PROXY_V1);
        expect_split_everywhere(hdr, len, PROXY_ANY);
}

static void test_v1_tcp6(void **state)
{
        static const char hdr[] = "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n";
        static const char longest[] =
                "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                "65535 65535\r\n";
        struct proxy_header h;

        (void) state;
        assert_int_equal(proxy_parse(hdr, sizeof(hdr) - 1, PROXY_V1, &h), (int) sizeof(hdr) - 1);
        assert_false(h.local);
        expect_addr(&h.src, AF_INET6, "2001:db8::1", 0);
        expect_addr(&h.dst, AF_INET6, "::1", 65535);
        expect_split_everywhere(hdr, sizeof(hdr) - 1, PROXY_V1);
        assert_int_equal(sizeof(longest) - 1, 104);
        assert_int_equal(proxy_parse(longest, sizeof(longest) - 1, PROXY_V1, &h), 104);
        /* an IPv4-mapped address is an IPv6 one here */
        assert_int_equal(proxy_parse("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n", 37, PROXY_V1, &h), 37);
        expect_addr(&h.src, AF_INET6, "::ffff:192.0.2.1", 1);
}

static void test_v1_unknown(void **state)
{
        static const char shortf[] = "PROXY UNKNOWN\r\n";
        /* the spec's worst case: UNKNOWN followed by anything, 107 bytes in all */
        char longest[PROXY_V1_MAX + 1];
        struct proxy_header h;

        (void) state;
        assert_int_equal(proxy_parse(shortf, 15, PROXY_V1, &h), 15);
        assert_true(h.local);
        assert_int_equal(h.version, PROXY_V1);
        expect_split_everywhere(shortf, 15, PROXY_ANY);
        memset(longest, 'x', sizeof(longest));
        memcpy(longest, "PROXY UNKNOWN ", 14);
        memcpy(longest + PROXY_V1_MAX - 2, "\r\n", 2);
        assert_int_equal(proxy_parse(longest, PROXY_V1_MAX, PROXY_V1, &h), PROXY_V1_MAX);
        assert_true(h.local);
        assert_int_equal(proxy_parse("PROXY UNKNOWN ffff::1 ::1 1 2\r\n", 31, PROXY_V1, &h), 31);
        assert_true(h.local);
}

static void expect_bad(const char *s, size_t len, enum proxy_version allowed)
{
        struct proxy_header h;
        int r = proxy_parse(s, len, allowed, &h);

        if (r != -EBADMSG)
                fail_msg("\"%.*s\": %d, expected -EBADMSG", (int) len, s, r);
        assert_non_null(h.reason);
}

static void test_v1_malformed(void **state)
{
        static const char *const bad[] = {
                "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n",       /* LF only */
                "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\rX\n",
                "PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",         /* a field missing */
                "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 1\r\n",   /* one too many */
                "PROXY TCP4 192.0.2.1  198.51.100.2 56324 443\r\n",    /* two spaces */
                "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 \r\n",
                "PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n",     /* ports */
                "PROXY TCP4 192.0.2.1 198.51.100.2 056324 443\r\n",
                "PROXY TCP4 192.0.2.1 198.51.100.2 00 443\r\n",
                "PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n",
                "PROXY TCP4 192.0.2.1 198.51.100.2 +1 443\r\n",
                "PROXY TCP4 192.0.2.1 198.51.100.2 1x 443\r\n",
                "PROXY TCP4 192.0.2.1 198.51.100.2  443\r\n",
                "PROXY TCP4 192.0.2.256 198.51.100.2 1 443\r\n",       /* addresses */
                "PROXY TCP4 192.0.2 198.51.100.2 1 443\r\n",
                "PROXY TCP4 ::1 198.51.100.2 1 443\r\n",
                "PROXY TCP6 192.0.2.1 ::1 1 443\r\n",
                "PROXY TCP6 2001:db8:::1 ::1 1 443\r\n",
                "PROXY TCP4 localhost 198.51.100.2 1 443\r\n",
                "PROXY UDP4 192.0.2.1 198.51.100.2 1 443\r\n",         /* protocols */
                "PROXY tcp4 192.0.2.1 198.51.100.2 1 443\r\n",
                "PROXY  TCP4 192.0.2.1 198.51.100.2 1 443\r\n",
                "PROXY \r\n",
                "PROXY UNKNOWNX\r\n",
                "PROXYTCP4",                                            /* signatures */
                "proxy TCP4 ",
                "GET / HTTP/1.1\r\n",
                "hello\n",
                "P\r\n",
        };
        char nul[] = "PROXY TCP4 1.2.3.4\0";

        (void) state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_bad(bad[i], strlen(bad[i]), PROXY_ANY);
        /* bytes that are not printable are refused as soon as they come */
        expect_bad(nul, sizeof(nul) - 1, PROXY_V1);
        expect_bad("PROXY TCP4 \x80", 12, PROXY_V1);
        expect_bad("PROXY TCP4 \t", 12, PROXY_V1);
        expect_bad("\x00", 1, PROXY_ANY);
        expect_bad("X", 1, PROXY_ANY);
}

static void test_v1_no_crlf(void **state)
{
        char line[200];
        struct proxy_header h;

        (void) state;
        memset(line, '1', sizeof(line));
        memcpy(line, "PROXY UNKNOWN ", 14);
        /* 106 bytes without an end: it may still end at byte 107 */
        assert_int_equal(proxy_parse(line, PROXY_V1_MAX - 1, PROXY_V1, &h), 0);
        /* 107 bytes without LF: never a header */
        expect_bad(line, PROXY_V1_MAX, PROXY_V1);
        expect_bad(line, sizeof(line), PROXY_V1);
        /* 108 bytes with CRLF at the end: one byte too long */
        memcpy(line + PROXY_V1_MAX - 1, "\r\n", 2);
        expect_bad(line, PROXY_V1_MAX + 1, PROXY_V1);
        /* a CR as byte 107 of a longer line: its LF would be byte 108 */
        memset(line + 14, '1', sizeof(line) - 14);
        line[PROXY_V1_MAX - 1] = '\r';
        assert_int_equal(proxy_parse(line, PROXY_V1_MAX, PROXY_V1, &h), -EBADMSG);
}

static void test_v2_proxy_inet(void **state)
{
        uint8_t body[64], buf[128];
        size_t blen = v2_inet_body(body, NULL, 0);
        size_t len = v2(buf, 0x21, 0x11, body, blen);
        struct proxy_header h;

        (void) state;
        assert_int_equal(len, 28);
        memcpy(buf + len, "hello\n", 6);
        assert_int_equal(proxy_parse(buf, len + 6, PROXY_V2, &h), (int) len);
        assert_int_equal(h.version, PROXY_V2);
        assert_false(h.local);
        expect_addr(&h.src, AF_INET, "192.0.2.1", 56324);
        expect_addr(&h.dst, AF_INET, "198.51.100.2", 443);
        expect_split_everywhere(buf, len, PROXY_V2);
        expect_split_everywhere(buf, len, PROXY_ANY);
}

static void test_v2_proxy_inet6(void **state)
{
        uint8_t body[36], buf[128];
        size_t len;
        struct proxy_header h;

        (void) state;
        memset(body, 0, sizeof(body));
        inet_pton(AF_INET6, "2001:db8::7", body);
        inet_pton(AF_INET6, "::1", body + 16);
        body[32] = 0x30; body[33] = 0x39;       /* 12345 */
        body[34] = 0x00; body[35] = 0x07;
        len = v2(buf, 0x21, 0x21, body, sizeof(body));
        assert_int_equal(proxy_parse(buf, len, PROXY_ANY, &h), 52);
        assert_false(h.local);
        expect_addr(&h.src, AF_INET6, "2001:db8::7", 12345);
        expect_addr(&h.dst, AF_INET6, "::1", 7);
        expect_split_everywhere(buf, len, PROXY_V2);
        /* an IPv6 block too short for its family */
        len = v2(buf, 0x21, 0x21, body, 35);
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), -EBADMSG);
}

static void test_v2_local(void **state)
{
        uint8_t body[64], buf[128];
        size_t len;
        struct proxy_header h;

        (void) state;
        /* a health check: no address block at all */
        len = v2(buf, 0x20, 0x00, NULL, 0);
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), 16);
        assert_true(h.local);
        expect_split_everywhere(buf, len, PROXY_V2);
        /* LOCAL with a family and addresses (HAProxy may send them): ignored,
         * even a block too short for the family */
        len = v2(buf, 0x20, 0x11, body, v2_inet_body(body, NULL, 0));
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), (int) len);
        assert_true(h.local);
        len = v2(buf, 0x20, 0x21, body, 5);
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), 21);
        assert_true(h.local);
}

static void test_v2_unspec(void **state)
{
        uint8_t body[256], buf[512];
        size_t len;
        struct proxy_header h;

        (void) state;
        memset(body, 0xab, sizeof(body));
        /* PROXY with UNSPEC, UNIX or datagrams: the peer stands */
        len = v2(buf, 0x21, 0x00, NULL, 0);
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), 16);
        assert_true(h.local);
        len = v2(buf, 0x21, 0x31, body, 216);
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), 232);
        assert_true(h.local);
        len = v2(buf, 0x21, 0x12, body, 12);
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), 28);
        assert_true(h.local);
        len = v2(buf, 0x21, 0x10, body, 12);
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), 28);
        assert_true(h.local);
}

static void test_v2_tlvs(void **state)
{
        /* ALPN "h2", a NOOP of 0 bytes, a unique ID of 5 */
        static const uint8_t tlvs[] = { 0x01, 0x00, 0x02, 'h', '2', 0x04, 0x00, 0x00,
                                        0x05, 0x00, 0x05, 1, 2, 3, 4, 5 };
        uint8_t body[PROXY_V2_MAX], buf[PROXY_V2_MAX + 64];
        size_t len;
        struct proxy_header h;

        (void) state;
        len = v2(buf, 0x21, 0x11, body, v2_inet_body(body, tlvs, sizeof(tlvs)));
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), (int) len);
        assert_false(h.local);
        expect_addr(&h.src, AF_INET, "192.0.2.1", 56324);
        expect_split_everywhere(buf, len, PROXY_V2);
        /* a TLV whose value runs past the header, or cut in its 3 bytes */
        for (size_t cut = 1; cut < sizeof(tlvs); cut++) {
                bool whole = cut == 5 || cut == 8;     /* ends of the first TLVs */

                len = v2(buf, 0x21, 0x11, body, v2_inet_body(body, tlvs, cut));
                assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), whole ? (int) len : -EBADMSG);
        }
        /* the largest header: one TLV filling it */
        memset(body, 0, sizeof(body));
        v2_inet_body(body, NULL, 0);
        body[12] = 0xee;
        body[13] = (uint8_t) ((PROXY_V2_MAX - 16 - 15) >> 8);
        body[14] = (uint8_t) (PROXY_V2_MAX - 16 - 15);
        len = v2(buf, 0x21, 0x11, body, PROXY_V2_MAX - 16);
        assert_int_equal(len, PROXY_V2_MAX);
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), PROXY_V2_MAX);
}

static void test_v2_oversized(void **state)
{
        uint8_t buf[32];
        struct proxy_header h;

        (void) state;
        /* known too long from the 16 fixed bytes: no waiting for the rest */
        v2(buf, 0x21, 0x11, NULL, 0);
        buf[14] = (uint8_t) ((PROXY_V2_MAX - 15) >> 8);
        buf[15] = (uint8_t) (PROXY_V2_MAX - 15);
        assert_int_equal(proxy_parse(buf, 16, PROXY_V2, &h), -EBADMSG);
        assert_non_null(h.reason);
        buf[14] = 0xff;
        buf[15] = 0xff;
        assert_int_equal(proxy_parse(buf, 16, PROXY_V2, &h), -EBADMSG);
        /* one byte less is fine, and incomplete */
        buf[14] = (uint8_t) ((PROXY_V2_MAX - 16) >> 8);
        buf[15] = (uint8_t) (PROXY_V2_MAX - 16);
        assert_int_equal(proxy_parse(buf, 16, PROXY_V2, &h), 0);
}

static void test_v2_malformed(void **state)
{
        /* versions 1 and 3, commands 2 and 15; families 4 and 15, transports 3 and 15 */
        static const uint8_t vc[] = { 0x11, 0x31, 0x22, 0x2f, 0x01 };
        static const uint8_t fp[] = { 0x41, 0x13, 0xf1, 0x1f };
        uint8_t body[64], buf[128];
        size_t len = v2(buf, 0x21, 0x11, body, v2_inet_body(body, NULL, 0));
        struct proxy_header h;

        (void) state;
        /* each byte of the signature */
        for (size_t i = 0; i < 12; i++) {
                uint8_t b[128];

                memcpy(b, buf, len);
                b[i] ^= 0x40;
                assert_int_equal(proxy_parse(b, len, PROXY_ANY, &h), -EBADMSG);
                /* refused as soon as the wrong byte is there */
                assert_int_equal(proxy_parse(b, i + 1, PROXY_ANY, &h), -EBADMSG);
        }
        /* refused with 13 bytes */
        for (size_t i = 0; i < sizeof(vc); i++) {
                buf[12] = vc[i];
                assert_int_equal(proxy_parse(buf, 13, PROXY_V2, &h), -EBADMSG);
                assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), -EBADMSG);
        }
        buf[12] = 0x21;
        /* refused with 14 bytes */
        for (size_t i = 0; i < sizeof(fp); i++) {
                buf[13] = fp[i];
                assert_int_equal(proxy_parse(buf, 14, PROXY_V2, &h), -EBADMSG);
        }
        /* an IPv4 block too short */
        len = v2(buf, 0x21, 0x11, body, 11);
        assert_int_equal(proxy_parse(buf, len, PROXY_V2, &h), -EBADMSG);
}

static void test_wrong_version(void **state)
{
        uint8_t body[64], buf[128];
        size_t len = v2(buf, 0x21, 0x11, body, v2_inet_body(body, NULL, 0));
        static const char v1[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
        struct proxy_header h;

        (void) state;
        assert_int_equal(proxy_parse(buf, len, PROXY_V1, &h), -EPROTO);
        assert_non_null(h.reason);
        /* known once the signature is complete, not before */
        assert_int_equal(proxy_parse(buf, 11, PROXY_V1, &h), 0);
        assert_int_equal(proxy_parse(buf, 12, PROXY_V1, &h), -EPROTO);
        assert_int_equal(proxy_parse(v1, sizeof(v1) - 1, PROXY_V2, &h), -EPROTO);
        assert_int_equal(proxy_parse(v1, 5, PROXY_V2, &h), 0);
        assert_int_equal(proxy_parse(v1, 6, PROXY_V2, &h), -EPROTO);
        /* garbage is malformed whatever the setting */
        assert_int_equal(proxy_parse("hello", 5, PROXY_V2, &h), -EBADMSG);
        assert_int_equal(proxy_parse("hello", 5, PROXY_V1, &h), -EBADMSG);
}

static void test_version_names(void **state)
{
        enum proxy_version v;

        (void) state;
        assert_int_equal(proxy_version_from_string("off", &v), 0);
        assert_int_equal(v, PROXY_OFF);
        assert_int_equal(proxy_version_from_string("v1", &v), 0);
        assert_int_equal(v, PROXY_V1);
        assert_int_equal(proxy_version_from_string("v2", &v), 0);
        assert_int_equal(v, PROXY_V2);
        assert_int_equal(proxy_version_from_string("any", &v), 0);
        assert_int_equal(v, PROXY_ANY);
        assert_int_equal(proxy_version_from_string("V1", &v), -EINVAL);
        assert_int_equal(proxy_version_from_string("", &v), -EINVAL);
        assert_string_equal(proxy_version_to_string(PROXY_ANY), "any");
        assert_string_equal(proxy_version_to_string(PROXY_OFF), "off");
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_v1_tcp4),
                cmocka_unit_test(test_v1_tcp6),
                cmocka_unit_test(test_v1_unknown),
                cmocka_unit_test(test_v1_malformed),
                cmocka_unit_test(test_v1_no_crlf),
                cmocka_unit_test(test_v2_proxy_inet),
                cmocka_unit_test(test_v2_proxy_inet6),
                cmocka_unit_test(test_v2_local),
                cmocka_unit_test(test_v2_unspec),
                cmocka_unit_test(test_v2_tlvs),
                cmocka_unit_test(test_v2_oversized),
                cmocka_unit_test(test_v2_malformed),
                cmocka_unit_test(test_wrong_version),
                cmocka_unit_test(test_version_names),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("proxy", tests, NULL, NULL);
}
