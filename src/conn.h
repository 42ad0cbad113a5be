/* SPDX-License-Identifier: MIT */
/* One client connection: reading and framing messages, queueing replies,
 * writing them when the socket is writable, throttling, closing. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "buffer.h"
#include "listener.h"
#include "proxy.h"
#include "source.h"
#include "idle.h"

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
        CONN_SENDING_QUEUED = 1 << 6,   /* c->io_sending counts in the queued gauge (stats.h) */
        CONN_PROXY_WAIT = 1 << 7,       /* waiting for its PROXY header: not admitted yet (no
                                         * greeting, no source held, in w->proxying) */
        CONN_WHY_SHIFT  = 8,            /* bits 8-11: why it closes, once known (conn_set_why) */
        CONN_WHY_MASK   = 0xf << 8,
        /* struct conn_proxy follows (behind a balancer). A flag, not the
         * listener's setting: a connection handed over keeps its state
         * although the new configuration may have turned proxy_protocol
         * on or off (conn_adopt()). */
        CONN_PROXIED    = 1 << 12,
        /* A oneshot listener's connection (not behind a balancer): the peer's
         * address follows (conn_kept_peer()), so that the message's log line
         * needs no getpeername(). */
        CONN_PEER_KEPT  = 1 << 13,
        /* Set by the I/O just before it passes what it read to conn_serve(),
         * which takes it off: that receive left nothing in the kernel, so a
         * close that follows in the same call needs no FIONREAD to know it
         * will not reset the connection. */
        CONN_RX_EMPTY   = 1 << 14,
        CONN_IO_FLAGS   = 1 << 15,      /* this bit and up: the I/O's own (conn-io.h) */
};

/* A connection that is closed before it was admitted: counted as refused
 * (descriptors), neither accepted nor closed. */
#define CONN_WHY_REFUSED 0xeu

/* How long a half-closed connection may wait for the client to close. */
#define CONN_LINGER_MS 5000u

struct conn {
        struct idle_link idle;          /* first: the worker's lists link conns by it */
        struct worker *w;
        struct listener_settings *set;
        struct source *src;             /* counted for max_per_source */
        struct buffer in;               /* an incomplete message */
        struct buffer out;              /* replies not yet written, nor taken by the I/O */
        void *io_data;                  /* the I/O's own (io_uring: the send in flight) */
        uint32_t io_sending;            /* bytes the I/O took from out, not written yet */
        int fd;
        uint32_t flags;
        /* when it was accepted (the worker's clock in ms, cut to 32 bits: a
         * lifetime is exact up to 49 days); it fills what was padding, so an
         * idle connection costs no more */
        uint32_t born_ms;
        uint64_t store_id;              /* its name in systemd's fd store, 0: not stored */
};

/* Behind a load balancer (the listener's proxy_protocol was on when it was
 * accepted: CONN_PROXIED), struct conn is followed by this, in the same allocation: other connections pay nothing
 * for it. */
struct conn_proxy {
        union proxy_addr balancer;      /* the peer */
        union proxy_addr client;        /* once admitted: the one the header names (or the peer) */
        uint64_t owner;                 /* the listener's serial, for max_per_source */
        uint8_t refused;                /* while waiting: the stats_refused reason if it closes */
};

static inline struct conn_proxy *conn_proxy(const struct conn *c)
{
        return c->flags & CONN_PROXIED ? (struct conn_proxy *) (void *) (c + 1) : NULL;
}

/* CONN_PEER_KEPT: the peer, in the same allocation; else NULL. */
static inline union proxy_addr *conn_kept_peer(const struct conn *c)
{
        return c->flags & CONN_PEER_KEPT ? (union proxy_addr *) (void *) (c + 1) : NULL;
}

/* The contract of every function here and in conn-io.h that returns int:
 * a negative return (-errno) means the connection was closed and c freed;
 * the caller must not touch c again. 0 means c is alive. */

/* Takes ownership of fd (already non-blocking, close-on-exec) and of one hold
 * on src. Queues the greeting and starts watching. On failure the connection
 * is closed (fd and the hold released) and -errno returned. peer (the
 * accept's address, or NULL): kept for a oneshot listener's log line. */
int conn_start(struct worker *w, int fd, struct listener_settings *set, struct source *src,
               const struct sockaddr_storage *peer, socklen_t peer_len);
/* The same for a listener with proxy_protocol on: no source held, no
 * greeting; the connection waits for its PROXY header (at most the
 * listener's proxy_timeout), then the client it names goes through
 * worker_admit() and is greeted, or is refused. peer: the load balancer. */
int conn_start_proxy(struct worker *w, int fd, struct listener_settings *set, uint64_t owner,
                     const struct sockaddr_storage *peer, socklen_t peer_len);
/* Its proxy_timeout passed without a complete header: log, close (refused). */
void conn_proxy_expired(struct conn *c);
/* Close now, whatever is queued; c is freed (on io_uring, once the ring is
 * done with it: c must not be used after this either way). It counts as
 * closed for the cause conn_set_why() recorded first, else as an error. */
void conn_close(struct conn *c);
/* Record why c will close (enum stats_closed, or CONN_WHY_REFUSED), unless
 * a cause is known already: the first one wins. */
static inline void conn_set_why(struct conn *c, unsigned why)
{
        if (!(c->flags & CONN_WHY_MASK))
                c->flags |= ((why + 1u) << CONN_WHY_SHIFT) & CONN_WHY_MASK;
}
/* conn_set_why(c, why), then conn_close(c). */
void conn_close_why(struct conn *c, unsigned why);
/* Shutdown: stop reading and close once the queued replies are written. */
void conn_drain(struct conn *c);
/* The worker's connection I/O (conn-io.c): the first of the table that can
 * run on w->loop, set up once the loop exists (on io_uring, the receive
 * buffers and the completion handler); freed after the loop. Accepts a
 * worker whose setup did not run or failed. */
int conn_io_setup(struct worker *w);
void conn_io_free(struct worker *w);
/* Has the worker's I/O work in flight for connections already closed? */
bool conn_io_busy(struct worker *w);

/* A live upgrade (server-upgrade.c), on the worker's thread. */
struct handover_conn;
/* Stop every operation on c; what arrives waits in the socket or in c->in. */
void conn_pause(struct conn *c);
/* Has paused c operations in flight still (io_uring)? */
bool conn_paused_busy(const struct conn *c);
/* Describe paused c for the next image: its descriptor, flags, idle time and
 * age, a copy of its unfinished input and of its unsent output, and behind
 * a balancer its PROXY state (the addresses; while its header is awaited,
 * the time left of proxy_timeout). The listener is left to the caller. 0 or
 * -ENOMEM. */
int conn_export(const struct conn *c, uint64_t now_ms, struct handover_conn *hc);
/* The upgrade failed: c serves again (what came meanwhile is answered).
 * -errno if c was closed. */
int conn_unpause(struct conn *c);
/* Take a connection the previous image handed over (fd, one hold on src;
 * hc's buffers are moved), paused: conn_unpause() once this image has taken
 * over for good writes its unsent output first, then answers its unfinished
 * input as if just read. One behind a balancer keeps its PROXY state,
 * whatever set's proxy_protocol says now; one still waiting for its header
 * (src NULL) waits in w->proxying for what is left of its proxy_timeout,
 * then its client is admitted by set's rules (owner: the listener's
 * serial). 0, or -ENOMEM (closed). */
int conn_adopt(struct worker *w, struct handover_conn *hc, struct listener_settings *set, struct source *src,
               uint64_t owner);

static inline struct conn *conn_from_idle(struct idle_link *l)
{
        return (struct conn *) l;
}
