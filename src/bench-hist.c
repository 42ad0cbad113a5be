/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdint.h>

#include "bench-hist.h"

unsigned hist_index(uint64_t v)
{
        unsigned e;

        if (v < HIST_SUB)
                return (unsigned) v;
        e = 63u - (unsigned) __builtin_clzll(v);        /* >= HIST_SUB_BITS */
        return (e - HIST_SUB_BITS + 1) * HIST_SUB + (unsigned) (v >> (e - HIST_SUB_BITS)) - HIST_SUB;
}

uint64_t hist_value(unsigned i)
{
        unsigned g = i / HIST_SUB, s = i % HIST_SUB, shift;

        if (g == 0)
                return i;
        shift = g - 1;
        return (((uint64_t) (HIST_SUB + s)) << shift) + (((uint64_t) 1 << shift) - 1);
}

void hist_record(struct histogram *h, uint64_t v)
{
        h->buckets[hist_index(v)]++;
        h->count++;
        h->sum += v;
        if (v > h->max)
                h->max = v;
}

uint64_t hist_quantile(const struct histogram *h, double q)
{
        uint64_t want, seen = 0;

        if (h->count == 0)
                return 0;
        want = (uint64_t) ceil(q * (double) h->count);
        if (want < 1)
                want = 1;
        for (unsigned i = 0; i < HIST_BUCKETS; i++) {
                seen += h->buckets[i];
                if (seen >= want) {
                        uint64_t v = hist_value(i);
                        return v < h->max ? v : h->max;
                }
        }
        return h->max;
}
