/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench-srcaddr.h"
#include "util.h"

static int srcaddr_error(char *err, size_t errlen, const char *why, const char *spec)
{
        snprintf(err, errlen, "invalid source addresses '%s': %s", spec, why);
        return -EINVAL;
}

/* "A-B": two IPv4 addresses, A not above B. */
static int srcaddr_parse_range(const char *spec, const char *dash, struct srcaddr_list *l,
                               char *err, size_t errlen)
{
        char a[INET_ADDRSTRLEN];
        struct in_addr lo, hi;
        size_t n = (size_t) (dash - spec);

        if (n >= sizeof(a))
                return srcaddr_error(err, errlen, "expected an IPv4 range A-B", spec);
        memcpy(a, spec, n);
        a[n] = '\0';
        if (inet_pton(AF_INET, a, &lo) != 1 || inet_pton(AF_INET, dash + 1, &hi) != 1)
                return srcaddr_error(err, errlen, "expected an IPv4 range A-B", spec);
        if (ntohl(lo.s_addr) > ntohl(hi.s_addr))
                return srcaddr_error(err, errlen, "the range ends before it starts", spec);
        if ((uint64_t) ntohl(hi.s_addr) - ntohl(lo.s_addr) + 1 > SRCADDR_COUNT_MAX)
                return srcaddr_error(err, errlen, "more than 16777213 addresses", spec);
        l->family = AF_INET;
        l->first = ntohl(lo.s_addr);
        l->count = ntohl(hi.s_addr) - ntohl(lo.s_addr) + 1;
        return 0;
}

/* One address of either family. */
static int srcaddr_parse_one(const char *spec, struct srcaddr_list *l, char *err, size_t errlen)
{
        struct in_addr v4;

        if (inet_pton(AF_INET, spec, &v4) == 1) {
                l->family = AF_INET;
                l->first = ntohl(v4.s_addr);
                l->count = 1;
                return 0;
        }
        if (inet_pton(AF_INET6, spec, &l->v6) == 1) {
                l->family = AF_INET6;
                l->count = 1;
                return 0;
        }
        return srcaddr_error(err, errlen, "expected none, a count, an address or an IPv4 range A-B",
                             spec);
}

int srcaddr_parse(const char *spec, int family, struct srcaddr_list *l, char *err, size_t errlen)
{
        const char *dash = strchr(spec, '-');
        unsigned long n;
        int r;

        memset(l, 0, sizeof(*l));
        if (strcmp(spec, "none") == 0)
                return 0;
        if (spec[0] >= '0' && spec[0] <= '9' && !strchr(spec, '.') && !strchr(spec, ':') && !dash) {
                if (parse_uint(spec, 1, SRCADDR_COUNT_MAX, &n) < 0)
                        return srcaddr_error(err, errlen, "expected a count from 1 to 16777213", spec);
                if (family != AF_INET)
                        return srcaddr_error(err, errlen, "a count needs an IPv4 loopback server; give an address", spec);
                l->family = AF_INET;
                l->first = SRCADDR_DEFAULT_FIRST;
                l->count = (uint32_t) n;
                return 0;
        }
        r = dash ? srcaddr_parse_range(spec, dash, l, err, errlen)
                 : srcaddr_parse_one(spec, l, err, errlen);
        if (r < 0)
                return r;
        if (l->family != family) {
                memset(l, 0, sizeof(*l));
                return srcaddr_error(err, errlen, family == AF_INET
                                     ? "they must be IPv4, like the server"
                                     : "they must be IPv6, like the server", spec);
        }
        return 0;
}

void srcaddr_default(const struct sockaddr *target, struct srcaddr_list *l)
{
        memset(l, 0, sizeof(*l));
        if (target->sa_family == AF_INET &&
            (ntohl(((const struct sockaddr_in *) target)->sin_addr.s_addr) >> 24) == 127) {
                l->family = AF_INET;
                l->first = SRCADDR_DEFAULT_FIRST;
                l->count = SRCADDR_DEFAULT_COUNT;
        }
}

bool srcaddr_next(struct srcaddr_list *l, struct sockaddr_storage *sa, socklen_t *len)
{
        memset(sa, 0, sizeof(*sa));
        if (l->family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) sa;

                in->sin_family = AF_INET;
                in->sin_addr.s_addr = htonl(l->first + (uint32_t) (l->next++ % l->count));
                *len = sizeof(*in);
                return true;
        }
        if (l->family == AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) sa;

                in6->sin6_family = AF_INET6;
                in6->sin6_addr = l->v6;
                *len = sizeof(*in6);
                return true;
        }
        return false;
}

void srcaddr_describe(const struct srcaddr_list *l, char *buf, size_t len)
{
        char a[INET6_ADDRSTRLEN], z[INET_ADDRSTRLEN];
        struct in_addr v4 = { htonl(l->first) }, last = { htonl(l->first + l->count - 1) };

        if (l->family == AF_INET6) {
                inet_ntop(AF_INET6, &l->v6, a, sizeof(a));
                snprintf(buf, len, "%s", a);
        } else if (l->family == AF_INET) {
                inet_ntop(AF_INET, &v4, a, sizeof(a));
                inet_ntop(AF_INET, &last, z, sizeof(z));
                if (l->count == 1)
                        snprintf(buf, len, "%s", a);
                else
                        snprintf(buf, len, "%s-%s", a, z);
        } else {
                snprintf(buf, len, "none");
        }
}
