/* SPDX-License-Identifier: MIT */
/* Address lists (allow / deny): CIDR networks parsed from the configuration
 * and matched against each accepted client's address. Used on every accept,
 * so it is plain C on binary addresses: no libconfig, no allocation when
 * matching. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr {
        int family;             /* AF_INET or AF_INET6 */
        uint8_t prefix;         /* 0..32 or 0..128 */
        uint8_t addr[16];       /* network byte order; host bits cleared */
};

struct acl {
        struct cidr *entries;
        size_t n;
};

/* Parse "a.b.c.d/n", "x::y/n", or a bare address (full-length prefix).
 * IPv4-mapped IPv6 networks (::ffff:a.b.c.d/n, n >= 96) become IPv4. */
int cidr_parse(const char *s, struct cidr *ret);

/* "10.0.0.0/8", "2001:db8::/32": the form cidr_parse() reads back. buf must
 * hold CIDR_STR_MAX bytes; returns buf. */
#define CIDR_STR_MAX 52
const char *cidr_to_string(const struct cidr *c, char *buf);

/* Does the address (AF_INET 4 bytes / AF_INET6 16 bytes) match? IPv4-mapped
 * IPv6 addresses are matched as IPv4. */
bool cidr_match(const struct cidr *c, int family, const void *addr);
bool acl_match(const struct acl *a, int family, const void *addr);

/* Is the client at sa let in: not in deny, and in allow when allow has
 * entries (an address of another family is)? */
struct sockaddr;
bool acl_permits(const struct acl *allow, const struct acl *deny, const struct sockaddr *sa);

/* Is the 16-byte IPv6 address an IPv4-mapped one (::ffff:a.b.c.d)? */
bool acl_addr_is_v4mapped(const uint8_t addr[16]);

/* Deep copy (dst is overwritten; -ENOMEM leaves it empty), comparison entry
 * by entry, and free (a is left empty). */
int acl_copy(struct acl *dst, const struct acl *src);
bool acl_equal(const struct acl *a, const struct acl *b);
void acl_done(struct acl *a);
