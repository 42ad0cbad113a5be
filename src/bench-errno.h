/* SPDX-License-Identifier: MIT */
/* muxbench's error counts by errno (connection mode): how many connects
 * failed with ECONNREFUSED, EADDRNOTAVAIL, ..., printed by name in the text
 * report and as a JSON object ({"ECONNREFUSED":3}). Never prints unasked. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Linux's errno values end below 140; anything else is counted as "other". */
#define ERRCOUNT_SLOTS          160
#define ERRCOUNT_NAME_MAX       32

struct errcount {
        uint64_t total;
        uint64_t n[ERRCOUNT_SLOTS];     /* by errno; n[0]: out of range */
};

void errcount_add(struct errcount *c, int err);
/* The symbolic name of err ("ECONNREFUSED"), or "errno N" for one this C
 * library cannot name; "other" for 0 (the out-of-range bucket). Returns buf
 * (ERRCOUNT_NAME_MAX bytes) or a constant. */
const char *errcount_name(int err, char *buf);
/* The counts in errno order: {"ECONNREFUSED":3,"ETIMEDOUT":1} with json,
 * else "ECONNREFUSED 3, ETIMEDOUT 1"; {} or nothing when there are none. */
void errcount_print(const struct errcount *c, FILE *f, bool json);
