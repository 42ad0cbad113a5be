/* SPDX-License-Identifier: MIT */
/* One client connection: reading and framing messages, queueing replies,
 * writing them when the socket is writable, throttling, closing. */
#pragma once

#include <stdint.h>

#include "buffer.h"
#include "listener.h"
#include "source.h"
#include "timer.h"

struct worker;

/* Stop reading a client while this much output is queued for it; resume
 * once the queue has drained below the low mark. */
#define CONN_OUTPUT_HIGH (256u * 1024u)
#define CONN_OUTPUT_LOW  (64u * 1024u)

enum {
        CONN_READ_OFF   = 1 << 0,       /* not reading (throttled, done or closing) */
        CONN_THROTTLED  = 1 << 1,       /* reading paused by backpressure */
        CONN_CLOSING    = 1 << 2,       /* close once the output is flushed */
        CONN_EOF        = 1 << 3,       /* the client closed its sending side */
        CONN_LINGER     = 1 << 4,       /* half-closed by us, discarding input until the client closes */
        CONN_DRAINING   = 1 << 5,       /* shutting down: answer what was read, read no more */
};

/* How long a half-closed connection may wait for the client to close. */
#define CONN_LINGER_MS 5000u

struct conn {
        struct idle_link idle;          /* first: the worker's lists link conns by it */
        struct worker *w;
        struct lsettings *set;
        struct source *src;             /* counted for max_per_source */
        struct buffer in;               /* an incomplete message */
        struct buffer out;              /* replies not yet written */
        int fd;
        uint32_t flags;
};

/* Takes ownership of fd (already non-blocking, close-on-exec) and of one hold
 * on src. Queues the greeting and starts watching. On failure the connection
 * is closed and -errno returned. */
int conn_start(struct worker *w, int fd, struct lsettings *set, struct source *src);
void conn_close(struct conn *c);
/* Shutdown: stop reading and close once the queued replies are written. */
void conn_drain(struct conn *c);

static inline struct conn *conn_from_idle(struct idle_link *l)
{
        return (struct conn *) l;
}
