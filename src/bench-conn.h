/* SPDX-License-Identifier: MIT */
/* muxbench's connections to the server (its client side; not muxd's
 * conn.c): opened a batch at a time, each one's greeting (or, in idle mode
 * without one, a first round trip), then DEPTH requests in flight, every
 * reply compared byte for byte with the one expected and its latency
 * recorded while measuring. What goes wrong is counted in struct bench:
 * connect errors, disconnects, wrong replies and greetings. */
#pragma once

#include <stdint.h>

struct bench;

/* The connections (none open yet) and their send times, read and write
 * buffers. Returns 0 or -ENOMEM; conn_free() frees what was set up. */
int conn_setup(struct bench *b);
/* Resets (RST, no TIME_WAIT) and closes every open connection, then frees. */
void conn_free(struct bench *b);

/* Open the next connections, keeping at most a batch of handshakes. */
void conn_open_more(struct bench *b);
/* Fail the handshakes that took too long (10 s). */
void conn_check_timeouts(struct bench *b, uint64_t now);
/* epoll events on connection id. */
void conn_on_event(struct bench *b, uint32_t id, uint32_t events);
