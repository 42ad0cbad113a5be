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
struct conn_tx;

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
        /* the io_uring completion path (conn_uring.c) */
        CONN_URING      = 1 << 6,       /* I/O as operations on the worker's ring */
        CONN_U_RECV     = 1 << 7,       /* a multishot receive is armed (until its last CQE) */
        CONN_U_CANCEL   = 1 << 8,       /* ... and its cancellation was asked for */
        CONN_U_CLOSED   = 1 << 9,       /* closed: freed once the last operation's CQE is in */
        CONN_U_SEND     = 1 << 10,      /* a send is in flight (from c->tx) */
        CONN_U_BUSY     = 1 << 11,      /* a CQE of its is being handled: not freed meanwhile */
};

/* How long a half-closed connection may wait for the client to close. */
#define CONN_LINGER_MS 5000u

struct conn {
        struct idle_link idle;          /* first: the worker's lists link conns by it */
        struct worker *w;
        struct lsettings *set;
        struct source *src;             /* counted for max_per_source */
        struct buffer in;               /* an incomplete message */
        struct buffer out;              /* replies not yet written (on io_uring: nor being sent) */
        struct conn_tx *tx;             /* io_uring: the replies being sent, NULL if none */
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
/* The worker's connection I/O: set up once its loop exists (on io_uring, the
 * receive buffers and the completion handler); freed after the loop. */
int conn_io_setup(struct worker *w);
void conn_io_free(struct worker *w);

static inline struct conn *conn_from_idle(struct idle_link *l)
{
        return (struct conn *) l;
}
