/* SPDX-License-Identifier: MIT */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

static int source_key(const struct sockaddr *sa, uint8_t addr[16])
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

static uint32_t source_hash(uint64_t owner, int family, const uint8_t addr[16])
{
        uint32_t h = 2166136261u ^ (uint32_t) family;     /* FNV-1a */

        for (int i = 0; i < 16; i++)
                h = (h ^ addr[i]) * 16777619u;
        for (int i = 0; i < 64; i += 8)
                h = (h ^ (uint8_t) (owner >> i)) * 16777619u;
        return h;
}

static int source_grow(struct source_table *t)
{
        uint32_t n = t->n_buckets ? t->n_buckets * 2 : 64;
        struct source **b = calloc(n, sizeof(*b));

        if (!b)
                return -1;
        for (uint32_t i = 0; i < t->n_buckets; i++)
                for (struct source *s = t->buckets[i], *next; s; s = next) {
                        uint32_t h = source_hash(s->owner, s->family, s->addr) & (n - 1);

                        next = s->next;
                        s->next = b[h];
                        b[h] = s;
                }
        free(t->buckets);
        t->buckets = b;
        t->n_buckets = n;
        return 0;
}

struct source *source_get(struct source_table *t, uint64_t owner, const struct sockaddr *sa)
{
        uint8_t addr[16];
        int family = source_key(sa, addr);
        struct source *s;
        uint32_t h;

        if (t->n_sources >= t->n_buckets && source_grow(t) < 0 && t->n_buckets == 0)
                return NULL;
        h = source_hash(owner, family, addr) & (t->n_buckets - 1);
        for (s = t->buckets[h]; s; s = s->next)
                if (s->owner == owner && s->family == family && memcmp(s->addr, addr, 16) == 0)
                        return s;
        s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->owner = owner;
        s->family = (uint8_t) family;
        memcpy(s->addr, addr, 16);
        s->next = t->buckets[h];
        t->buckets[h] = s;
        t->n_sources++;
        return s;
}

void source_hold(struct source *s)
{
        s->count++;
}

void source_release(struct source_table *t, struct source *s)
{
        struct source **p;

        if (--s->count > 0)
                return;
        p = &t->buckets[source_hash(s->owner, s->family, s->addr) & (t->n_buckets - 1)];
        while (*p != s)
                p = &(*p)->next;
        *p = s->next;
        t->n_sources--;
        free(s);
}

void source_table_free(struct source_table *t)
{
        for (uint32_t i = 0; i < t->n_buckets; i++)
                for (struct source *s = t->buckets[i], *next; s; s = next) {
                        next = s->next;
                        free(s);
                }
        free(t->buckets);
        *t = (struct source_table) { 0 };
}
