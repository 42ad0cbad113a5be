/* SPDX-License-Identifier: MIT */
/* muxbench's latency histogram: log-linear buckets as in HdrHistogram, so
 * memory does not grow with the run (no array of samples), and the quantiles
 * the report prints (p50, p99, p99.9) read from the buckets. Values are
 * nanoseconds. Never prints. */
#pragma once

#include <stdint.h>

/* Values below 2^HIST_SUB_BITS are exact; above that each power of two is
 * split in 2^HIST_SUB_BITS buckets, so a value is known to within 1/64
 * (1.6 %). */
#define HIST_SUB_BITS   6
#define HIST_SUB        (1u << HIST_SUB_BITS)
#define HIST_BUCKETS    ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct histogram {
        uint64_t count;
        uint64_t sum;
        uint64_t max;
        uint64_t buckets[HIST_BUCKETS];
};

/* The bucket value v falls in, and the highest value that falls in bucket i. */
unsigned hist_index(uint64_t v);
uint64_t hist_value(unsigned i);

void hist_record(struct histogram *h, uint64_t v);
/* The value at quantile q (0..1]: the top of its bucket, at most the largest
 * value recorded; 0 for an empty histogram. */
uint64_t hist_quantile(const struct histogram *h, double q);
