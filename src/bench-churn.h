/* SPDX-License-Identifier: MIT */
/* muxbench's connection mode (--connect-rate): -c slots, each one a cycle of
 * connect, greeting, --round-trips request/reply round trips (or, with
 * --oneshot, one message and then the server's close), close, and again.
 * The latency recorded is the whole exchange, from socket() to its last
 * byte (or the server's FIN); what goes wrong is counted in b->cs, by errno.
 * A slot starts again after the epoll batch that finished it, never inside
 * it, and 1 ms after an error, so that a server refusing every connect does
 * not turn the client into a busy loop. */
#pragma once

#include <stdint.h>

struct bench;

/* The slots (none connected yet) and their buffers. Returns 0 or -ENOMEM;
 * churn_free() frees what was set up. */
int churn_setup(struct bench *b);
/* Resets (RST, no TIME_WAIT) every open connection, then frees. */
void churn_free(struct bench *b);

/* Every slot is queued to start. */
void churn_start(struct bench *b);
/* Start the slots whose turn has come (after each epoll batch). */
void churn_restart(struct bench *b, uint64_t now);
/* The longest epoll wait that does not delay a restart, in ms; -1: any. */
int churn_timeout_ms(const struct bench *b, uint64_t now);
/* Fail the exchanges that took too long (10 s). */
void churn_check_timeouts(struct bench *b, uint64_t now);
/* epoll events on slot id. */
void churn_on_event(struct bench *b, uint32_t id, uint32_t events);
/* Connections open now (for the progress line). */
unsigned churn_open_count(const struct bench *b);
