/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the PROXY protocol parser (proxy.c) over any bytes, with
 * each listener setting, checking what a connection relies on (conn.c):
 *
 *   - it never reads past the bytes given (each call gets a buffer of its
 *     exact size: ASan sees an overread);
 *   - a complete header's length is within the bytes and at most
 *     PROXY_HEADER_MAX; "need more" only below PROXY_HEADER_MAX bytes (so a
 *     connection buffers a bounded amount);
 *   - the answer does not depend on how the bytes arrive: every prefix of a
 *     complete header needs more, and bytes after a header (the client's
 *     own) change nothing;
 *   - an error comes with a reason; a named client is IPv4 or IPv6, and a v1
 *     header written back from it parses to the same addresses.
 *
 * Input layout: byte 0 selects the setting (v1, v2, any), byte 1 the stride
 * of the prefixes checked, the rest is what the balancer sends. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define CHECK(cond) do { \
        if (!(cond)) { \
                fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
                abort(); \
        } \
} while (0)

/* proxy_parse() on an exact copy of data[0..n) */
static int parse(const uint8_t *data, size_t n, enum proxy_version allowed, struct proxy_header *h)
{
        uint8_t *p = malloc(n ? n : 1);
        int r;

        CHECK(p != NULL);
        if (n)
                memcpy(p, data, n);
        memset(h, 0x5a, sizeof(*h));
        r = proxy_parse(p, n, allowed, h);
        free(p);
        return r;
}

static void same_addr(const union proxy_addr *a, const union proxy_addr *b)
{
        CHECK(a->sa.sa_family == b->sa.sa_family);
        if (a->sa.sa_family == AF_INET)
                CHECK(a->in.sin_port == b->in.sin_port &&
                      a->in.sin_addr.s_addr == b->in.sin_addr.s_addr);
        else
                CHECK(a->in6.sin6_port == b->in6.sin6_port &&
                      memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0);
}

static size_t format_addr(const union proxy_addr *a, char *out, size_t cap)
{
        if (a->sa.sa_family == AF_INET) {
                CHECK(inet_ntop(AF_INET, &a->in.sin_addr, out, (socklen_t) cap) != NULL);
        } else {
                CHECK(a->sa.sa_family == AF_INET6);
                CHECK(inet_ntop(AF_INET6, &a->in6.sin6_addr, out, (socklen_t) cap) != NULL);
        }
        return strlen(out);
}

/* A v1 header naming h's addresses parses back to them. */
static void round_trip(const struct proxy_header *h)
{
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], line[PROXY_V1_MAX + 1];
        struct proxy_header back;
        int len;
        unsigned sp, dp;

        format_addr(&h->src, s, sizeof(s));
        format_addr(&h->dst, d, sizeof(d));
        if (h->src.sa.sa_family != h->dst.sa.sa_family)
                abort();
        sp = ntohs(h->src.sa.sa_family == AF_INET ? h->src.in.sin_port : h->src.in6.sin6_port);
        dp = ntohs(h->dst.sa.sa_family == AF_INET ? h->dst.in.sin_port : h->dst.in6.sin6_port);
        len = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
                       h->src.sa.sa_family == AF_INET ? "TCP4" : "TCP6", s, d, sp, dp);
        CHECK(len > 0 && (size_t) len <= PROXY_V1_MAX);
        CHECK(parse((const uint8_t *) line, (size_t) len, PROXY_V1, &back) == len);
        CHECK(!back.local);
        same_addr(&h->src, &back.src);
        same_addr(&h->dst, &back.dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const enum proxy_version settings[] = { PROXY_V1, PROXY_V2, PROXY_ANY };
        enum proxy_version allowed;
        struct proxy_header h, h2;
        size_t stride, n;
        const uint8_t *in;
        int r;

        if (size < 2)
                return -1;
        allowed = settings[data[0] % 3];
        stride = (size_t) data[1] % 16 + 1;
        in = data + 2;
        n = size - 2;

        r = parse(in, n, allowed, &h);
        if (r == 0) {
                CHECK(n < PROXY_HEADER_MAX);
                return 0;
        }
        if (r < 0) {
                CHECK(r == -EBADMSG || r == -EPROTO);
                CHECK(h.reason != NULL && h.reason[0] != '\0');
                if (r == -EPROTO)
                        CHECK(allowed != PROXY_ANY);
                /* a longer stream cannot make it valid */
                return 0;
        }
        CHECK((size_t) r <= n && r <= (int) PROXY_HEADER_MAX);
        CHECK(h.version == PROXY_V1 || h.version == PROXY_V2);
        CHECK(h.version & allowed);
        if (h.version == PROXY_V1)
                CHECK(r <= (int) PROXY_V1_MAX);
        /* what follows the header is the client's: it changes nothing */
        CHECK(parse(in, (size_t) r, allowed, &h2) == r);
        CHECK(h2.local == h.local && h2.version == h.version);
        if (!h.local) {
                same_addr(&h.src, &h2.src);
                same_addr(&h.dst, &h2.dst);
                round_trip(&h);
        }
        /* any setting that takes this version reads it the same way */
        CHECK(parse(in, (size_t) r, PROXY_ANY, &h2) == r);
        /* split: every prefix needs more */
        for (size_t i = 0; i < (size_t) r; i += stride)
                CHECK(parse(in, i, allowed, &h2) == 0);
        CHECK(parse(in, (size_t) r - 1, allowed, &h2) == 0);
        return 0;
}
