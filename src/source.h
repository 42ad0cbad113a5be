/* SPDX-License-Identifier: MIT */
/* Per-source limits: concurrent connections (max_per_source) and the rate
 * of new connections (max_rate_per_source, a token bucket) per (listener,
 * client address prefix). A listen entry's limits apply to the connections
 * on that entry, so the key includes the listener (its serial number, never
 * reused, so a listener closed by a reload never shares state with a new
 * one) and the prefix length. The address is cut to source_prefix_v4 /
 * source_prefix_v6 bits, so that an IPv6 client cannot escape a limit by
 * rotating addresses inside its /64; IPv4-mapped IPv6 addresses count as
 * the IPv4 address.
 *
 * An entry lives while its source has connections, and after that until its
 * bucket is full again (the rate state); then nothing is lost by freeing it.
 * The table holds at most max entries (struct source_table.max): a new
 * source at the bound takes the place of the idle entry (no connections)
 * least recently used (a source being refused is being used); if that one's bucket was not yet full, its rate
 * state is lost, which is counted (evicted). If every entry has connections,
 * the new source is refused (SOURCE_REFUSED_FULL): never admitted untracked.
 * Idle entries are freed lazily, a few examined at each admission: no timer.
 *
 * Time is a monotonic clock in milliseconds passed in by the caller.
 * Not thread-safe (the server holds a lock around it). Never logs. */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

struct source {
        struct source *next;            /* hash chain */
        struct source *idle_newer;      /* the idle list (count 0) */
        struct source *idle_older;
        uint64_t owner;                 /* the listener's serial number */
        uint64_t last_ms;               /* when tokens was brought up to date */
        uint64_t full_ms;               /* when the bucket is full again */
        uint32_t count;                 /* connections open */
        uint32_t tokens;                /* in thousandths of a connection */
        uint8_t family;                 /* AF_INET or AF_INET6 */
        uint8_t prefix;                 /* bits of addr kept */
        uint8_t addr[16];               /* the address cut to prefix bits */
};

/* What a listener asks of its sources (from its struct listener_opts). */
struct source_limits {
        uint32_t max_per_source;        /* concurrent connections; 0: no limit */
        uint32_t rate;                  /* new connections per second; 0: no limit */
        uint32_t burst;                 /* bucket size in connections; 0: rate */
        uint8_t prefix4;                /* 1..32 */
        uint8_t prefix6;                /* 1..128 */
};

/* The most of rate and burst: a full bucket in thousandths still fits 32 bits. */
#define SOURCE_RATE_MAX 1000000u

/* Idle entries examined for expiry at each admission. */
#define SOURCE_EXPIRE_SCAN 4u

struct source_table {
        struct source **buckets;
        uint32_t n_buckets;             /* a power of two, or 0 before first use */
        uint32_t n_sources;
        uint32_t max;                   /* at most this many entries; 0: no bound */
        struct source *idle_newest;     /* entries without connections, by */
        struct source *idle_oldest;     /* their last use */
        uint64_t n_evicted;             /* idle entries freed with rate state, ever */
};

/* Why source_admit() refused a client. */
enum source_refusal {
        SOURCE_REFUSED_MAX_PER_SOURCE = 1,
        SOURCE_REFUSED_RATE,            /* no token left in the bucket */
        SOURCE_REFUSED_FULL,            /* max entries, each with connections */
};

/* Admit a client of listener owner from address sa at now_ms: returns 0 and
 * *ret (one hold on its entry, to give back with source_release()), a
 * positive enum source_refusal (nothing held), or -ENOMEM. *evicted is set
 * to the number of entries freed with their rate state to make room (0 or
 * more, whatever the verdict). A refused client takes no token. */
int source_admit(struct source_table *t, uint64_t owner, const struct sockaddr *sa,
                 const struct source_limits *lim, uint64_t now_ms, struct source **ret,
                 unsigned *evicted);
/* Give back the hold of one admitted connection. */
void source_release(struct source_table *t, struct source *s, uint64_t now_ms);
/* sa's address as 16 bytes (IPv4 in the first 4, IPv4-mapped as IPv4):
 * returns AF_INET, AF_INET6, or AF_UNSPEC (addr zeroed) for anything else. */
int source_addr(const struct sockaddr *sa, uint8_t addr[16]);
void source_table_free(struct source_table *t);
