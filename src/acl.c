/* SPDX-License-Identifier: MIT */
/* CIDR networks and the allow / deny lists made of them (see acl.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "acl.h"

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool acl_addr_is_v4mapped(const uint8_t addr[16])
{
        return memcmp(addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0;
}

static void cidr_clear_host_bits(struct cidr *c)
{
        size_t bytes = c->family == AF_INET ? 4 : 16;

        for (size_t i = 0; i < bytes; i++) {
                unsigned bit = (unsigned) i * 8;

                if (bit >= c->prefix)
                        c->addr[i] = 0;
                else if (bit + 8 > c->prefix)
                        c->addr[i] &= (uint8_t) (0xff << (8 - (c->prefix - bit)));
        }
}

int cidr_parse(const char *s, struct cidr *ret)
{
        char buf[INET6_ADDRSTRLEN];
        const char *slash;
        struct cidr c = {};
        unsigned prefix = 0;
        bool has_prefix = false;
        size_t len;

        if (!s || !ret)
                return -EINVAL;

        slash = strchr(s, '/');
        len = slash ? (size_t) (slash - s) : strlen(s);
        if (len == 0 || len >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = '\0';

        if (slash) {
                const char *d = slash + 1;

                if (*d == '\0' || strlen(d) > 3)
                        return -EINVAL;
                for (; *d; d++) {
                        if (*d < '0' || *d > '9')
                                return -EINVAL;
                        prefix = prefix * 10 + (unsigned) (*d - '0');
                }
                has_prefix = true;
        }

        if (inet_pton(AF_INET, buf, c.addr) == 1) {
                c.family = AF_INET;
                if (!has_prefix)
                        prefix = 32;
                if (prefix > 32)
                        return -EINVAL;
        } else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
                c.family = AF_INET6;
                if (!has_prefix)
                        prefix = 128;
                if (prefix > 128)
                        return -EINVAL;
                if (prefix >= 96 && acl_addr_is_v4mapped(c.addr)) {
                        memmove(c.addr, c.addr + 12, 4);
                        memset(c.addr + 4, 0, 12);
                        c.family = AF_INET;
                        prefix -= 96;
                }
        } else
                return -EINVAL;

        c.prefix = (uint8_t) prefix;
        cidr_clear_host_bits(&c);
        *ret = c;
        return 0;
}

bool cidr_match(const struct cidr *c, int family, const void *addr)
{
        const uint8_t *a = addr;
        unsigned full, rest;

        if (!c || !addr)
                return false;
        if (family == AF_INET6 && acl_addr_is_v4mapped(a)) {
                family = AF_INET;
                a += 12;
        }
        if (family != AF_INET && family != AF_INET6)
                return false;
        if (family != c->family)
                return false;

        full = c->prefix / 8;
        rest = c->prefix % 8;
        if (memcmp(a, c->addr, full) != 0)
                return false;
        if (rest) {
                uint8_t mask = (uint8_t) (0xff << (8 - rest));

                if ((a[full] & mask) != c->addr[full])
                        return false;
        }
        return true;
}

bool acl_match(const struct acl *a, int family, const void *addr)
{
        if (!a)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (cidr_match(&a->entries[i], family, addr))
                        return true;
        return false;
}

bool acl_permits(const struct acl *allow, const struct acl *deny, const struct sockaddr *sa)
{
        const void *addr;

        if (sa->sa_family == AF_INET)
                addr = &((const struct sockaddr_in *) sa)->sin_addr;
        else if (sa->sa_family == AF_INET6)
                addr = &((const struct sockaddr_in6 *) sa)->sin6_addr;
        else
                return true;
        if (deny && deny->n > 0 && acl_match(deny, sa->sa_family, addr))
                return false;
        return !allow || allow->n == 0 || acl_match(allow, sa->sa_family, addr);
}

static bool cidr_equal(const struct cidr *a, const struct cidr *b)
{
        return a->family == b->family && a->prefix == b->prefix &&
                memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

bool acl_equal(const struct acl *a, const struct acl *b)
{
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!cidr_equal(&a->entries[i], &b->entries[i]))
                        return false;
        return true;
}

void acl_done(struct acl *a)
{
        free(a->entries);
        *a = (struct acl) {};
}

int acl_copy(struct acl *dst, const struct acl *src)
{
        *dst = (struct acl) {};
        if (src->n == 0)
                return 0;
        dst->entries = malloc(src->n * sizeof(struct cidr));
        if (!dst->entries)
                return -ENOMEM;
        memcpy(dst->entries, src->entries, src->n * sizeof(struct cidr));
        dst->n = src->n;
        return 0;
}

const char *cidr_to_string(const struct cidr *c, char *buf)
{
        char a[INET6_ADDRSTRLEN];

        if (!inet_ntop(c->family, c->addr, a, sizeof(a)))
                strcpy(a, "?");
        snprintf(buf, CIDR_STR_MAX, "%s/%u", a, c->prefix);
        return buf;
}
