/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "proxy.h"

static const char proxy_v1_sig[] = "PROXY ";
#define PROXY_V1_SIG_LEN (sizeof(proxy_v1_sig) - 1)
static const uint8_t proxy_v2_sig[12] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

/* v2 byte 13 (low nibble) and 14 */
enum { PROXY_V2_LOCAL = 0x0, PROXY_V2_PROXY = 0x1 };
enum { PROXY_V2_AF_UNSPEC = 0x0, PROXY_V2_AF_INET = 0x1, PROXY_V2_AF_INET6 = 0x2, PROXY_V2_AF_UNIX = 0x3 };
enum { PROXY_V2_STREAM = 0x1, PROXY_V2_DGRAM = 0x2 };
#define PROXY_V2_INET_LEN  12u  /* two IPv4 addresses, two ports */
#define PROXY_V2_INET6_LEN 36u

static int proxy_bad(struct proxy_header *ret, const char *reason)
{
        ret->reason = reason;
        return -EBADMSG;
}

/* A decimal port: 1 to 5 digits, no leading zero (as the spec asks), at most 65535. */
static int proxy_port(const char *s, in_port_t *ret)
{
        unsigned long v = 0;
        size_t len = strlen(s);

        if (len < 1 || len > 5 || (len > 1 && s[0] == '0'))
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long) (s[i] - '0');
        }
        if (v > 65535)
                return -EINVAL;
        *ret = htons((uint16_t) v);
        return 0;
}

static int proxy_v1_addr(int family, const char *s, in_port_t port, union proxy_addr *a)
{
        memset(a, 0, sizeof(*a));
        if (family == AF_INET) {
                a->in.sin_family = AF_INET;
                a->in.sin_port = port;
                return inet_pton(AF_INET, s, &a->in.sin_addr) == 1 ? 0 : -EINVAL;
        }
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = port;
        return inet_pton(AF_INET6, s, &a->in6.sin6_addr) == 1 ? 0 : -EINVAL;
}

/* "PROXY " PROTO [" " SRC " " DST " " SPORT " " DPORT] "\r\n": fields apart
 * by exactly one space, printable ASCII only. */
static int proxy_parse_v1(const uint8_t *p, size_t n, struct proxy_header *ret)
{
        char line[PROXY_V1_MAX + 1], *field[6];
        size_t end, nf = 0, lim = n < PROXY_V1_MAX ? n : PROXY_V1_MAX;
        in_port_t sport, dport;
        int family;

        if (n <= PROXY_V1_SIG_LEN)
                return 0;
        /* the line's end, checking each byte on the way: garbage is refused at once */
        for (end = PROXY_V1_SIG_LEN; end < lim; end++) {
                if (p[end] == '\n')
                        break;
                if (p[end] == '\r') {
                        if (end + 1 < n && p[end + 1] != '\n')
                                return proxy_bad(ret, "v1: CR not followed by LF");
                        continue;
                }
                if (p[end] < 0x20 || p[end] > 0x7e)
                        return proxy_bad(ret, "v1: a byte that is not printable ASCII");
        }
        if (end == lim) {
                if (n >= PROXY_V1_MAX)
                        return proxy_bad(ret, "v1: no CRLF within 107 bytes");
                return 0;
        }
        if (p[end - 1] != '\r')
                return proxy_bad(ret, "v1: line ends with LF, not CRLF");

        /* the fields after "PROXY ", split at each space */
        memcpy(line, p + PROXY_V1_SIG_LEN, end - 1 - PROXY_V1_SIG_LEN);
        line[end - 1 - PROXY_V1_SIG_LEN] = '\0';
        field[nf++] = line;
        for (char *s = line; *s; s++) {
                if (*s != ' ')
                        continue;
                *s = '\0';
                if (nf == 6)
                        break;          /* too many: UNKNOWN ignores them, TCP refuses */
                field[nf++] = s + 1;
        }
        if (strcmp(field[0], "UNKNOWN") == 0) {
                /* the spec: whatever follows up to CRLF is ignored */
                *ret = (struct proxy_header) { .version = PROXY_V1, .local = true };
                return (int) end + 1;
        }
        if (strcmp(field[0], "TCP4") == 0)
                family = AF_INET;
        else if (strcmp(field[0], "TCP6") == 0)
                family = AF_INET6;
        else
                return proxy_bad(ret, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
        if (nf != 5)
                return proxy_bad(ret, "v1: not 4 fields after the protocol");
        if (proxy_port(field[3], &sport) < 0 || proxy_port(field[4], &dport) < 0)
                return proxy_bad(ret, "v1: invalid port");
        *ret = (struct proxy_header) { .version = PROXY_V1 };
        if (proxy_v1_addr(family, field[1], sport, &ret->src) < 0 ||
            proxy_v1_addr(family, field[2], dport, &ret->dst) < 0)
                return proxy_bad(ret, family == AF_INET ? "v1: invalid IPv4 address" :
                                 "v1: invalid IPv6 address");
        return (int) end + 1;
}

static int proxy_parse_v2(const uint8_t *p, size_t n, struct proxy_header *ret)
{
        size_t len, addr_len;
        unsigned cmd, fam, proto;

        /* each fixed byte is checked as soon as it is there */
        if (n > 12 && (p[12] >> 4) != 2)
                return proxy_bad(ret, "v2: version is not 2");
        if (n > 12 && (p[12] & 0xf) > PROXY_V2_PROXY)
                return proxy_bad(ret, "v2: command is neither LOCAL nor PROXY");
        if (n > 13 && ((p[13] >> 4) > PROXY_V2_AF_UNIX || (p[13] & 0xf) > PROXY_V2_DGRAM))
                return proxy_bad(ret, "v2: unknown address family or transport");
        if (n < PROXY_V2_FIXED)
                return 0;
        len = (size_t) p[14] << 8 | p[15];
        if (PROXY_V2_FIXED + len > PROXY_V2_MAX)
                return proxy_bad(ret, "v2: header longer than 2048 bytes");
        if (n < PROXY_V2_FIXED + len)
                return 0;

        cmd = p[12] & 0xf;
        fam = p[13] >> 4;
        proto = p[13] & 0xf;
        *ret = (struct proxy_header) { .version = PROXY_V2, .local = true };
        /* LOCAL: the spec says to ignore the address block, whatever it holds */
        if (cmd == PROXY_V2_LOCAL)
                return (int) (PROXY_V2_FIXED + len);
        /* PROXY over something other than TCP/IP (UNSPEC, UNIX, datagrams):
         * no client muxd could name; the connection's own peer stands */
        if (proto != PROXY_V2_STREAM || (fam != PROXY_V2_AF_INET && fam != PROXY_V2_AF_INET6))
                return (int) (PROXY_V2_FIXED + len);

        p += PROXY_V2_FIXED;
        addr_len = fam == PROXY_V2_AF_INET ? PROXY_V2_INET_LEN : PROXY_V2_INET6_LEN;
        if (len < addr_len)
                return proxy_bad(ret, "v2: address block shorter than its family needs");
        ret->local = false;
        if (fam == PROXY_V2_AF_INET) {
                ret->src.in.sin_family = ret->dst.in.sin_family = AF_INET;
                memcpy(&ret->src.in.sin_addr, p, 4);
                memcpy(&ret->dst.in.sin_addr, p + 4, 4);
                memcpy(&ret->src.in.sin_port, p + 8, 2);
                memcpy(&ret->dst.in.sin_port, p + 10, 2);
        } else {
                ret->src.in6.sin6_family = ret->dst.in6.sin6_family = AF_INET6;
                memcpy(&ret->src.in6.sin6_addr, p, 16);
                memcpy(&ret->dst.in6.sin6_addr, p + 16, 16);
                memcpy(&ret->src.in6.sin6_port, p + 32, 2);
                memcpy(&ret->dst.in6.sin6_port, p + 34, 2);
        }
        /* TLVs: none is used, but each must fit in the block (type, 16-bit
         * length, value): a balancer that sends a broken one is broken */
        for (size_t i = addr_len; i < len;) {
                size_t tlv_len;

                if (len - i < 3)
                        return proxy_bad(ret, "v2: truncated TLV");
                tlv_len = (size_t) p[i + 1] << 8 | p[i + 2];
                if (len - i - 3 < tlv_len)
                        return proxy_bad(ret, "v2: TLV longer than the header");
                i += 3 + tlv_len;
        }
        return (int) (PROXY_V2_FIXED + len);
}

int proxy_parse(const void *buf, size_t n, enum proxy_version allowed, struct proxy_header *ret)
{
        const uint8_t *p = buf;
        size_t m;

        ret->reason = NULL;
        if (n == 0)
                return 0;
        if (p[0] == proxy_v1_sig[0]) {
                m = n < PROXY_V1_SIG_LEN ? n : PROXY_V1_SIG_LEN;
                if (memcmp(p, proxy_v1_sig, m) != 0)
                        return proxy_bad(ret, "not a PROXY protocol header");
                if (!(allowed & PROXY_V1)) {
                        if (m < PROXY_V1_SIG_LEN)
                                return 0;
                        ret->reason = "a v1 header where only v2 is accepted";
                        return -EPROTO;
                }
                return proxy_parse_v1(p, n, ret);
        }
        m = n < sizeof(proxy_v2_sig) ? n : sizeof(proxy_v2_sig);
        if (memcmp(p, proxy_v2_sig, m) != 0)
                return proxy_bad(ret, "not a PROXY protocol header");
        if (!(allowed & PROXY_V2)) {
                if (m < sizeof(proxy_v2_sig))
                        return 0;
                ret->reason = "a v2 header where only v1 is accepted";
                return -EPROTO;
        }
        return proxy_parse_v2(p, n, ret);
}

static const char *const proxy_version_names[] = {
        [PROXY_OFF] = "off", [PROXY_V1] = "v1", [PROXY_V2] = "v2", [PROXY_ANY] = "any",
};

const char *proxy_version_to_string(enum proxy_version v)
{
        return (unsigned) v < 4 ? proxy_version_names[v] : "?";
}

int proxy_version_from_string(const char *s, enum proxy_version *ret)
{
        for (unsigned i = 0; i < 4; i++)
                if (strcmp(s, proxy_version_names[i]) == 0) {
                        *ret = (enum proxy_version) i;
                        return 0;
                }
        return -EINVAL;
}
