/* SPDX-License-Identifier: MIT */
/* Runtime bans (the control socket's ban / unban): networks refused at
 * accept, each until a deadline or until removed. A list is immutable once
 * made: a change makes a new one, which the server hands to every worker the
 * way it hands them a new listener list, so the accept path reads its
 * worker's list without a lock. Expired entries are skipped when matching
 * and dropped by the next change. Never logs. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"

/* entries in one list: matching is a linear scan on every accept */
#define BAN_MAX 1024u
/* the longest ban, seconds (a year) */
#define BAN_SECONDS_MAX 31536000u

struct ban {
        struct cidr net;
        uint64_t until_ms;      /* CLOCK_MONOTONIC milliseconds; 0: until removed */
};

struct ban_list {
        _Atomic unsigned refs;
        size_t n;
        struct ban bans[];
};

/* A new list: old (NULL: none) without its expired entries and with net
 * banned until until_ms (replacing an entry for the same network). Returns
 * 0, -ENOSPC (BAN_MAX entries already) or -ENOMEM. */
int ban_list_add(const struct ban_list *old, const struct cidr *net, uint64_t until_ms,
                 uint64_t now_ms, struct ban_list **ret);
/* A new list: old without net and without its expired entries. Returns 0,
 * -ENOENT (net is not banned) or -ENOMEM. */
int ban_list_remove(const struct ban_list *old, const struct cidr *net, uint64_t now_ms,
                    struct ban_list **ret);
/* Is the address (AF_INET 4 bytes, AF_INET6 16 bytes; IPv4-mapped matched as
 * IPv4) banned at now_ms? l may be NULL (no bans). */
bool ban_list_match(const struct ban_list *l, int family, const void *addr, uint64_t now_ms);
/* Entries not expired at now_ms. */
size_t ban_list_active(const struct ban_list *l, uint64_t now_ms);

struct ban_list *ban_list_ref(struct ban_list *l);      /* accepts NULL */
void ban_list_unref(struct ban_list *l);                /* accepts NULL */
