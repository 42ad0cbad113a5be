/* SPDX-License-Identifier: MIT */
/* Small helpers shared by muxd, muxc and muxbench (libmuxcommon.a). libc
 * only: no libconfig, libsystemd or liburing. */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#include "util.h"

const char *sockaddr_to_string(const struct sockaddr *sa, socklen_t len, char *buf)
{
        char host[INET6_ADDRSTRLEN];

        if (!sa || len < (socklen_t) sizeof(sa_family_t)) {
                snprintf(buf, SOCKADDR_STR_MAX, "(none)");
                return buf;
        }

        switch (sa->sa_family) {

        case AF_INET: {
                const struct sockaddr_in *sin = (const struct sockaddr_in *) sa;

                if (len < (socklen_t) sizeof(*sin) ||
                    !inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)))
                        break;
                snprintf(buf, SOCKADDR_STR_MAX, "%s:%u", host, (unsigned) ntohs(sin->sin_port));
                return buf;
        }

        case AF_INET6: {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) sa;
                char addr[INET6_ADDRSTRLEN + 1 + IF_NAMESIZE];

                if (len < (socklen_t) sizeof(*sin6))
                        break;

                /* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; users
                 * (and ACLs, and logs) think of them as plain IPv4. */
                if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
                        if (!inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], host, sizeof(host)))
                                break;
                        snprintf(buf, SOCKADDR_STR_MAX, "%s:%u", host, (unsigned) ntohs(sin6->sin6_port));
                        return buf;
                }

                if (!inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)))
                        break;

                /* Link-local addresses are meaningless without their interface. */
                if (sin6->sin6_scope_id != 0) {
                        char ifname[IF_NAMESIZE];

                        if (if_indextoname(sin6->sin6_scope_id, ifname))
                                snprintf(addr, sizeof(addr), "%s%%%s", host, ifname);
                        else
                                snprintf(addr, sizeof(addr), "%s%%%" PRIu32, host, (uint32_t) sin6->sin6_scope_id);
                } else
                        snprintf(addr, sizeof(addr), "%s", host);

                /* "[" + 55 + "]:65535" fits SOCKADDR_STR_MAX; only a long
                 * interface name on the longest address form could be cut. */
                snprintf(buf, SOCKADDR_STR_MAX, "[%.55s]:%u", addr, (unsigned) ntohs(sin6->sin6_port));
                return buf;
        }

        case AF_UNIX: {
                const struct sockaddr_un *un = (const struct sockaddr_un *) sa;
                size_t n;

                if (len <= (socklen_t) offsetof(struct sockaddr_un, sun_path)) {
                        snprintf(buf, SOCKADDR_STR_MAX, "(unnamed)");
                        return buf;
                }

                n = len - offsetof(struct sockaddr_un, sun_path);
                if (n > sizeof(un->sun_path))
                        n = sizeof(un->sun_path);
                if (un->sun_path[0] == '\0')     /* abstract namespace */
                        snprintf(buf, SOCKADDR_STR_MAX, "@%.*s", (int) (n - 1), un->sun_path + 1);
                else
                        snprintf(buf, SOCKADDR_STR_MAX, "%.*s", (int) strnlen(un->sun_path, n), un->sun_path);
                return buf;
        }
        }

        if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
                snprintf(buf, SOCKADDR_STR_MAX, "(invalid address)");   /* too short */
        else
                snprintf(buf, SOCKADDR_STR_MAX, "(unknown address family %d)", (int) sa->sa_family);
        return buf;
}

/* Escape of one byte into e (at least 5 bytes); returns its length. */
static size_t escape_one(unsigned char c, char *e)
{
        switch (c) {
        case '\n': memcpy(e, "\\n", 2); return 2;
        case '\r': memcpy(e, "\\r", 2); return 2;
        case '\t': memcpy(e, "\\t", 2); return 2;
        case '\\': memcpy(e, "\\\\", 2); return 2;
        }

        if (c >= 0x20 && c < 0x7f) {
                e[0] = (char) c;
                return 1;
        }

        e[0] = '\\';
        e[1] = 'x';
        e[2] = "0123456789abcdef"[c >> 4];
        e[3] = "0123456789abcdef"[c & 15];
        return 4;
}

char *escape_bytes(const char *in, size_t len, char *out, size_t outsz)
{
        size_t limit, pos = 0, cut = 0;

        if (outsz == 0)
                return out;
        limit = outsz - 1;

        for (size_t i = 0; i < len; i++) {
                char e[5];
                size_t n = escape_one((unsigned char) in[i], e);

                if (pos + n > limit) {
                        /* Does not fit: go back to the last escape boundary that
                         * leaves room for "...", never splitting an escape. */
                        size_t dots = limit < 3 ? limit : 3;

                        memcpy(out + cut, "...", dots);
                        out[cut + dots] = '\0';
                        return out;
                }

                memcpy(out + pos, e, n);
                pos += n;
                if (pos + 3 <= limit)
                        cut = pos;
        }

        out[pos] = '\0';
        return out;
}

int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
        unsigned long v;
        char *end;

        /* strtoul() would accept leading blanks, a sign and an empty string. */
        if (!s || *s < '0' || *s > '9')
                return -EINVAL;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (*end != '\0')
                return -EINVAL;
        if (errno == ERANGE || v < min || v > max)
                return -ERANGE;

        if (ret)
                *ret = v;
        return 0;
}

int hostport_parse(const char *arg, struct hostport *ret, const char **why)
{
        const char *host = "localhost", *port;
        size_t host_len = strlen(host);
        bool numeric = false;
        unsigned long p;

        if (arg[0] != '\0' && strspn(arg, "0123456789") == strlen(arg)) {
                port = arg;
        } else if (arg[0] == '[') {
                const char *close = strchr(arg, ']');

                if (!close || close == arg + 1 || close[1] != ':') {
                        *why = "expected [IPv6]:PORT";
                        return -EINVAL;
                }
                host = arg + 1;
                host_len = (size_t) (close - host);
                port = close + 2;
                numeric = true;
        } else {
                const char *colon = strrchr(arg, ':');

                if (!colon) {
                        *why = "expected HOST:PORT or PORT";
                        return -EINVAL;
                }
                if (memchr(arg, ':', (size_t) (colon - arg))) {
                        *why = "write an IPv6 address as [ADDRESS]:PORT";
                        return -EINVAL;
                }
                if (colon > arg) {
                        host = arg;
                        host_len = (size_t) (colon - arg);
                }
                port = colon + 1;
        }
        if (parse_uint(port, 1, 65535, &p) < 0) {
                *why = "expected a number from 1 to 65535";
                return -ERANGE;
        }
        ret->host = strndup(host, host_len);
        if (!ret->host)
                return -ENOMEM;
        ret->port = (unsigned) p;
        ret->numeric_host = numeric;
        return 0;
}

int hostport_resolve(const struct hostport *hp, struct addrinfo **ret)
{
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICSERV | (hp->numeric_host ? AI_NUMERICHOST : 0),
        };
        char port[6];

        snprintf(port, sizeof(port), "%u", hp->port);
        return getaddrinfo(hp->host, port, &hints, ret);
}

const char *errno_text(int err)
{
        const char *t = strerrordesc_np(err);  /* constant strings: thread-safe */

        return t ? t : "Unknown error";
}

uint64_t monotonic_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

uint64_t monotonic_ms(void)
{
        return monotonic_ns() / 1000000u;
}
