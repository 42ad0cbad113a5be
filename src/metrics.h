/* SPDX-License-Identifier: MIT */
/* The Prometheus endpoint (metrics_listen): a small HTTP/1.0 and 1.1 server
 * on the main thread's loop that answers GET /metrics (and HEAD) with what
 * a callback renders, and closes every connection once it has answered
 * (Connection: close). Anything else gets 400, 404, 405 or 431. Everything
 * a client controls is bounded: at most METRICS_CLIENTS_MAX at once (then
 * accepting pauses: the kernel's backlog holds the rest), a request of at
 * most METRICS_REQUEST_MAX bytes, METRICS_TIMEOUT_MS from accept to close
 * for the whole exchange; sockets are non-blocking, every client has its
 * own buffers, so a slow or stuck client never blocks the loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buffer.h"
#include "config.h"

#define METRICS_CLIENTS_MAX     32u
#define METRICS_REQUEST_MAX     8192u   /* request line and headers */
#define METRICS_TIMEOUT_MS      5000u   /* from accept to close: a scrape takes milliseconds */

struct ev_loop;
struct metrics;

struct metrics_ops {
        /* Append the body of GET /metrics to out: 0 or -errno (then 500). */
        int (*render)(void *ctx, struct buffer *out);
        /* May this peer use the endpoint (the global access list)? A refused
         * client is closed without an answer, as on the listeners. */
        bool (*allowed)(void *ctx, const struct sockaddr *sa, socklen_t len);
};

/* Bind and listen on k (a numeric address; port 0: one the kernel picks)
 * and serve on loop. Returns 0 or -errno (nothing is left open). */
int metrics_new(struct ev_loop *loop, const struct listener_key *k, const struct metrics_ops *ops,
                void *ctx, struct metrics **ret);
/* Closes the listening socket and every client. Accepts NULL. */
void metrics_free(struct metrics *m);
/* "127.0.0.1:9188": where it listens (the port the kernel chose for 0). */
const char *metrics_address(const struct metrics *m);
/* Does it serve k: opened for k, or for port 0 that k now names (as a listener)? */
bool metrics_listens_on(const struct metrics *m, const struct listener_key *k);
/* Milliseconds until metrics_tick() has something to do, -1: nothing. */
int metrics_next_timeout(const struct metrics *m, uint64_t now_ms);
/* Close clients past their time; accept again after a pause. */
void metrics_tick(struct metrics *m, uint64_t now_ms);
