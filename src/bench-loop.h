/* SPDX-License-Identifier: MIT */
/* muxbench's run: one epoll loop over every connection, through its phases
 * (connect, warm-up, the measured window, done), with the server's /proc
 * sampled at both ends of the window and a progress tick a second. A
 * signal, the end of the window, or every connection closed ends it. In
 * connection mode there is no connect phase: the slots connect all along,
 * started again after each batch of events (bench-churn.c). */
#pragma once

struct bench;

/* The epoll instance. Returns 0 or -errno (said); loop_free() closes it. */
int loop_setup(struct bench *b);
void loop_free(struct bench *b);
/* Returns 0 when the run is over (b->phase is PHASE_DONE), or -errno (said). */
int loop_run(struct bench *b);
