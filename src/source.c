/* SPDX-License-Identifier: MIT */
/* Per-source limits: see source.h. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

int source_addr(const struct sockaddr *sa, uint8_t addr[16])
{
        memset(addr, 0, 16);
        if (sa->sa_family == AF_INET) {
                memcpy(addr, &((const struct sockaddr_in *) sa)->sin_addr, 4);
                return AF_INET;
        }
        if (sa->sa_family == AF_INET6) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *) sa)->sin6_addr;

                if (IN6_IS_ADDR_V4MAPPED(a)) {
                        memcpy(addr, a->s6_addr + 12, 4);
                        return AF_INET;
                }
                memcpy(addr, a, 16);
                return AF_INET6;
        }
        return AF_UNSPEC;
}

/* Keep the first bits of addr, clear the rest. */
static void source_mask(uint8_t addr[16], unsigned bits)
{
        for (unsigned i = 0; i < 16; i++) {
                if (bits >= 8) {
                        bits -= 8;
                        continue;
                }
                addr[i] &= (uint8_t) (0xff00u >> bits);
                bits = 0;
        }
}

static uint32_t source_hash(uint64_t owner, int family, unsigned prefix, const uint8_t addr[16])
{
        uint32_t h = 2166136261u ^ (uint32_t) family ^ (prefix << 8);     /* FNV-1a */

        for (int i = 0; i < 16; i++)
                h = (h ^ addr[i]) * 16777619u;
        for (int i = 0; i < 64; i += 8)
                h = (h ^ (uint8_t) (owner >> i)) * 16777619u;
        return h;
}

static struct source **source_slot(struct source_table *t, const struct source *s)
{
        return &t->buckets[source_hash(s->owner, s->family, s->prefix, s->addr) & (t->n_buckets - 1)];
}

static int source_grow(struct source_table *t)
{
        uint32_t n = t->n_buckets ? t->n_buckets * 2 : 64;
        struct source **b = calloc(n, sizeof(*b));

        if (!b)
                return -ENOMEM;
        for (uint32_t i = 0; i < t->n_buckets; i++)
                for (struct source *s = t->buckets[i], *next; s; s = next) {
                        uint32_t h = source_hash(s->owner, s->family, s->prefix, s->addr) & (n - 1);

                        next = s->next;
                        s->next = b[h];
                        b[h] = s;
                }
        free(t->buckets);
        t->buckets = b;
        t->n_buckets = n;
        return 0;
}

static void source_idle_push(struct source_table *t, struct source *s)
{
        s->idle_older = t->idle_newest;
        s->idle_newer = NULL;
        if (t->idle_newest)
                t->idle_newest->idle_newer = s;
        else
                t->idle_oldest = s;
        t->idle_newest = s;
}

static void source_idle_unlink(struct source_table *t, struct source *s)
{
        if (s->idle_newer)
                s->idle_newer->idle_older = s->idle_older;
        else
                t->idle_newest = s->idle_older;
        if (s->idle_older)
                s->idle_older->idle_newer = s->idle_newer;
        else
                t->idle_oldest = s->idle_newer;
        s->idle_newer = s->idle_older = NULL;
}

/* Free an entry without connections (it is on the idle list). */
static void source_free(struct source_table *t, struct source *s)
{
        struct source **p = source_slot(t, s);

        while (*p != s)
                p = &(*p)->next;
        *p = s->next;
        source_idle_unlink(t, s);
        t->n_sources--;
        free(s);
}

/* Free the idle entries among the oldest few whose bucket is full again.
 * Those not due yet stay where they are (the list stays in the order of
 * last use, which eviction needs); the ones behind them are looked at as
 * soon as they come within the few, or when the bound needs room. */
static void source_expire(struct source_table *t, uint64_t now_ms)
{
        struct source *s = t->idle_oldest, *newer;

        for (unsigned i = 0; i < SOURCE_EXPIRE_SCAN && s; i++, s = newer) {
                newer = s->idle_newer;
                if (s->full_ms <= now_ms)
                        source_free(t, s);
        }
}

/* Bring s's bucket up to now_ms: rate thousandths of a token per ms. */
static void source_refill(struct source *s, uint32_t rate, uint32_t cap, uint64_t now_ms)
{
        uint64_t elapsed, need;

        if (s->tokens > cap)            /* burst lowered by a reload */
                s->tokens = cap;
        /* workers' clocks differ by a little: never go back in time */
        if (now_ms <= s->last_ms)
                return;
        elapsed = now_ms - s->last_ms;
        s->last_ms = now_ms;
        need = cap - s->tokens;
        /* elapsed * rate cannot overflow: elapsed is below need / rate + 1 there */
        if (elapsed > need / rate)
                s->tokens = cap;
        else
                s->tokens += (uint32_t) (elapsed * rate);
        if (s->tokens > cap)
                s->tokens = cap;
}

int source_admit(struct source_table *t, uint64_t owner, const struct sockaddr *sa,
                 const struct source_limits *lim, uint64_t now_ms, struct source **ret,
                 unsigned *evicted)
{
        uint32_t rate = lim->rate, burst = lim->burst ? lim->burst : lim->rate;
        uint32_t cap = burst * 1000u;
        uint8_t addr[16];
        int family = source_addr(sa, addr);
        unsigned prefix = family == AF_INET ? lim->prefix4 : lim->prefix6;
        struct source *s, **slot;

        *evicted = 0;
        source_expire(t, now_ms);
        if (family == AF_INET && prefix > 32)
                prefix = 32;
        if (prefix > 128)
                prefix = 128;
        source_mask(addr, prefix);
        s = NULL;
        if (t->n_buckets > 0) {
                uint32_t h = source_hash(owner, family, prefix, addr) & (t->n_buckets - 1);

                for (s = t->buckets[h]; s; s = s->next)
                        if (s->owner == owner && s->family == family && s->prefix == prefix &&
                            memcmp(s->addr, addr, 16) == 0)
                                break;
        }
        if (!s) {
                /* at the bound (or above it, after a reload lowered it):
                 * the idle entry least recently used makes room */
                for (int i = 0; i < 2 && t->max > 0 && t->n_sources >= t->max && t->idle_oldest; i++) {
                        if (t->idle_oldest->full_ms > now_ms) {
                                t->n_evicted++;
                                (*evicted)++;
                        }
                        source_free(t, t->idle_oldest);
                }
                if (t->max > 0 && t->n_sources >= t->max)
                        return SOURCE_REFUSED_FULL;
                if (t->n_sources >= t->n_buckets && source_grow(t) < 0 && t->n_buckets == 0)
                        return -ENOMEM;
                s = calloc(1, sizeof(*s));
                if (!s)
                        return -ENOMEM;
                s->owner = owner;
                s->family = (uint8_t) family;
                s->prefix = (uint8_t) prefix;
                memcpy(s->addr, addr, 16);
                s->tokens = cap;
                s->last_ms = now_ms;
                s->full_ms = now_ms;
                slot = source_slot(t, s);
                s->next = *slot;
                *slot = s;
                t->n_sources++;
                source_idle_push(t, s);         /* count 0 until admitted below */
        } else if (s->count == 0) {
                /* used: the last to go at the bound (a source being refused
                 * keeps its rate state the longest) */
                source_idle_unlink(t, s);
                source_idle_push(t, s);
        }
        if (lim->max_per_source > 0 && s->count >= lim->max_per_source)
                return SOURCE_REFUSED_MAX_PER_SOURCE;
        if (rate > 0) {
                source_refill(s, rate, cap, now_ms);
                if (s->tokens < 1000u)
                        return SOURCE_REFUSED_RATE;
                s->tokens -= 1000u;
                s->full_ms = s->last_ms + (cap - s->tokens + rate - 1) / rate;
        } else {
                s->full_ms = 0;                 /* no rate state to keep */
        }
        if (s->count++ == 0)
                source_idle_unlink(t, s);
        *ret = s;
        return 0;
}

void source_release(struct source_table *t, struct source *s, uint64_t now_ms)
{
        if (--s->count > 0)
                return;
        source_idle_push(t, s);
        /* its rate state is spent: nothing to keep */
        if (s->full_ms <= now_ms)
                source_free(t, s);
}

void source_table_free(struct source_table *t)
{
        uint32_t max = t->max;

        for (uint32_t i = 0; i < t->n_buckets; i++)
                for (struct source *s = t->buckets[i], *next; s; s = next) {
                        next = s->next;
                        free(s);
                }
        free(t->buckets);
        *t = (struct source_table) { .max = max };
}
