/* SPDX-License-Identifier: MIT */
/* What the unit tests share: a small deterministic PRNG (xorshift64), so a
 * failure is reproducible. Each test program seeds rng_state itself. */
#pragma once

#include <stddef.h>
#include <stdint.h>

static uint64_t rng_state;

static inline uint64_t rng_next(void)
{
        uint64_t x = rng_state;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return rng_state = x;
}

static inline size_t rng_below(size_t n)
{
        return n ? (size_t) (rng_next() % n) : 0;
}
