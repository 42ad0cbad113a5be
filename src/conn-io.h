/* SPDX-License-Identifier: MIT */
/* How a connection's bytes move: private to the conn*.c files. What a
 * connection does with them (framing, replies, backpressure, closing) is
 * conn.c's, the same on every loop; only the I/O differs, as nginx keeps its
 * OS I/O (ngx_os_io_t) apart from its event actions. A worker picks its I/O
 * once, when its loop exists (conn_io_setup()):
 *
 *   conn-socket.c  recv()/send() when the loop says the socket is ready
 *                  (every backend)
 *   conn-uring.c   receives and sends as operations on the loop's ring
 *                  (io_uring backend only)
 *
 * An I/O keeps its per-worker state in w->io_state and its per-connection
 * state in c->io_data and the flag bits from CONN_IO_FLAGS up. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

struct ev_loop;
struct worker_listener;

struct conn_io {
        const char *name;
        /* Can it run on this loop? */
        bool (*usable)(struct ev_loop *loop);
        /* Per-worker state, once the loop exists; freed after the loop. */
        int (*setup)(struct worker *w);
        void (*free)(struct worker *w);
        /* Start (on) or stop reading c; -errno if it cannot start. */
        int (*read)(struct conn *c, bool on);
        /* Send n bytes after whatever is queued, queueing what cannot go now
         * (in c->out, or taken into c->io_sending). On failure c is closed
         * and -errno returned. */
        int (*send)(struct conn *c, const char *p, size_t n);
        /* The end of conn_close(): stop watching c, release its descriptor,
         * free c (now or once the I/O no longer needs it). */
        void (*close)(struct conn *c);
        /* Optional (NULL: accept when the loop says a listener is
         * readable): accept on wl's listener by the I/O's own means (on io_uring
         * a multishot accept), reporting each client to worker_io_accepted().
         * on: arm it (wl->accept_op); off: cancel it (clients it took
         * meanwhile still come, with no wl). -errno if it cannot arm. */
        int (*accept)(struct worker_listener *wl, bool on);
        /* Has it operations in flight for connections already closed (whose
         * descriptors the kernel still holds)? NULL: never. */
        bool (*busy)(struct worker *w);

        /* A live upgrade (server-upgrade.c): stop every operation on c,
         * reading and writing alike. Bytes that arrive meanwhile are kept in
         * c->in, what is not written stays in c->out or c->io_sending. */
        void (*pause)(struct conn *c);
        /* Has paused c operations still in flight? NULL: never. */
        bool (*paused_busy)(const struct conn *c);
        /* The bytes taken from c->out and not written yet (*p: where),
         * ahead of c->out. NULL: this I/O never takes any. */
        size_t (*sending)(const struct conn *c, const char **p);
        /* Undo pause() (the upgrade failed): c reads and writes again.
         * -errno if c was closed. */
        int (*unpause)(struct conn *c);
};

extern const struct conn_io conn_io_socket;
#ifdef HAVE_LIBURING
extern const struct conn_io conn_io_uring;
#endif

/* Output queued for c, written or not. */
static inline size_t conn_queued(const struct conn *c)
{
        return buffer_len(&c->out) + c->io_sending;
}

/* Close c after the I/O error err (a positive errno): a reset or a closed
 * pipe is the client's doing, anything else an error (stats.h). */
static inline void conn_close_errno(struct conn *c, int err)
{
        conn_close_why(c, err == ECONNRESET || err == EPIPE ? STATS_CLOSED_CLIENT : STATS_CLOSED_ERROR);
}

/* conn.c, called by the I/O: */
/* Answer n new bytes at data plus what waits in c->in. -errno if c was closed. */
int conn_serve(struct conn *c, const char *data, size_t n);
/* Some output was written: finish a closing connection whose output is all
 * gone, or resume a throttled one. -errno if c was closed. */
int conn_sent(struct conn *c);
