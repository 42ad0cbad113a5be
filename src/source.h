/* SPDX-License-Identifier: MIT */
/* Concurrent connections per (listener, client address), for max_per_source:
 * a small hash table whose entries live only while an address has
 * connections. A listen entry's max_per_source limits the connections on
 * that entry, so the key includes the listener (its serial number, never
 * reused, so a listener closed by a reload never shares counts with a new
 * one). IPv4-mapped IPv6 addresses count as the IPv4 address. Never logs. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

struct source {
        struct source *next;    /* hash chain */
        uint64_t owner;         /* the listener's serial number */
        uint32_t count;
        uint8_t family;         /* AF_INET or AF_INET6 */
        uint8_t addr[16];
};

struct source_table {
        struct source **buckets;
        uint32_t n_buckets;     /* a power of two, or 0 before first use */
        uint32_t n_sources;
};

/* The entry for (owner, sa's address), created with count 0 if new, or NULL
 * if out of memory. */
struct source *source_get(struct source_table *t, uint64_t owner, const struct sockaddr *sa);
/* count++ / count-- (the entry is freed when it drops to 0). */
void source_hold(struct source *s);
void source_release(struct source_table *t, struct source *s);
void source_table_free(struct source_table *t);
