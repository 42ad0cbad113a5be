/* SPDX-License-Identifier: MIT */
/* What test_acl and test_config share: a struct cidr written back as text,
 * to compare against the string it came from. Include after <cmocka.h>. */
#pragma once

#include <arpa/inet.h>
#include <stdio.h>

#include "acl.h"

/* "10.0.0.0/8" from a struct cidr */
static inline const char *cidr_str(const struct cidr *c, char *buf, size_t size)
{
        char a[INET6_ADDRSTRLEN];

        assert_true(c->family == AF_INET || c->family == AF_INET6);
        assert_non_null(inet_ntop(c->family, c->addr, a, sizeof(a)));
        snprintf(buf, size, "%s/%u", a, c->prefix);
        return buf;
}
