/* SPDX-License-Identifier: MIT */
/* What muxbench prints: the progress line on a terminal (stderr), the
 * "holding" line of idle mode, the report (text, or one JSON object with
 * --json) on stdout, and the one line on stderr that says why a run failed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct bench;

/* Once a second: the phase, replies per second since the last call, errors.
 * Keeps the count for the rate even when there is no progress line. */
void report_progress_show(struct bench *b, uint64_t now);
void report_progress_clear(const struct bench *b);
/* Idle mode: every connection is open (a line a script can wait for). */
void report_holding(const struct bench *b);
void report_print(const struct bench *b);
/* Says why the run failed, if it did: no connection, a wrong reply, a
 * connection closed by the server. Returns whether it did. */
bool report_failure(const struct bench *b);
