/* SPDX-License-Identifier: MIT */
/* muxbench's view of the server process (--pid), from /proc: the CPU time
 * and the sleeps of all its threads, sampled at both ends of the measured
 * window, and its resident memory. Never prints. */
#pragma once

#include <stdint.h>

struct proc_sample {
        int64_t cpu_ns;         /* CPU time, all threads; -1: unknown */
        int64_t sleeps;         /* voluntary context switches, all threads; -1: unknown */
};

#define PROC_SAMPLE_UNKNOWN { -1, -1 }

/* CPU time of a process in nanoseconds (exact per-thread run times, or else
 * sampled clock ticks); -1 if unknown, as when the process does not exist. */
int64_t proc_cpu_ns(long pid);
/* How often its threads went to sleep; -1 if unknown. */
int64_t proc_sleeps(long pid);
/* Both, in that order. */
struct proc_sample proc_sample(long pid);
/* VmRSS of a process in KiB; -1 if unknown. */
long proc_rss_kib(long pid);
