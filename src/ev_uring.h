/* SPDX-License-Identifier: MIT */
/* The io_uring backend beyond readiness. As a readiness backend it serves
 * every fd of the loop (listeners, eventfds, signalfd); besides, code that
 * knows the loop runs on io_uring may queue its own operations on the loop's
 * ring: their SQEs go out with the loop's next wait (one system call), and
 * their CQEs come back through a handler, called from ev_dispatch(). */
#pragma once

#include <stdint.h>

struct ev_loop;
struct io_uring;
struct io_uring_sqe;

/* The low bits of user_data say whose an operation is (8-aligned pointers
 * leave them free). 0: nobody's (its CQE is dropped); 1: the backend's own
 * polls; 7: the backend's closes (ev_uring_close()); the others: the
 * handler's, and the handler gets those tagged LAST after the others reaped
 * in the same round (accepts: the clients already connected first). */
#define EV_URING_TAG_BITS       3u
#define EV_URING_TAG_MASK       ((1u << EV_URING_TAG_BITS) - 1u)
#define EV_URING_TAG_NONE       0u
#define EV_URING_TAG_POLL       1u
#define EV_URING_TAG_LAST       6u
#define EV_URING_TAG_CLOSE      7u

typedef void ev_uring_handler(void *ctx, uint64_t user_data, int32_t res, uint32_t flags);

#ifdef HAVE_LIBURING
/* The loop's ring, or NULL if the loop does not run on io_uring. */
struct io_uring *ev_uring_ring(struct ev_loop *loop);
/* Where the CQEs of operations not tagged NONE or POLL go. */
void ev_uring_set_handler(struct ev_loop *loop, ev_uring_handler *fn, void *ctx);
/* A free SQE (submitting the queued ones first if the queue is full), or NULL. */
struct io_uring_sqe *ev_uring_get_sqe(struct ev_loop *loop);
/* Close fd, which operations queued on the ring name, once the kernel has
 * taken every SQE queued so far: until then the number stays ours, so that
 * no accept (in any thread) gets it while an SQE naming it is still to be
 * submitted. Queue nothing naming fd after this. */
void ev_uring_close(struct ev_loop *loop, int fd);
/* Submit what is queued now and let the kernel finish what it owes the
 * ring (with DEFER_TASKRUN, a cancelled operation lets go of its file only
 * then): for an operation cancelled on a file about to be closed. Its CQEs
 * come with the next wait. */
void ev_uring_flush(struct ev_loop *loop);
/* An operation just queued will most likely complete as it is submitted
 * (a send to a socket with room): its CQE should not end the wait. */
void ev_uring_expect_inline(struct ev_loop *loop);
/* n operations are armed that complete when clients send (a receive per
 * connection): under load a wait may ask for a share of them at once. */
void ev_uring_set_clients(struct ev_loop *loop, unsigned n);

/* How many CQEs a wait asks for, and for how long at most (ns, -1: no
 * limit), given the caller's timeout, the sends expected to complete at
 * once, what the last wait brought from outside, and the clients (see
 * ev_uring.c). Separate so that tests can check it. */
struct ev_uring_wait {
        unsigned nr;
        long long ns;
};
struct ev_uring_wait ev_uring_wait_plan(int timeout_ms, unsigned expected, unsigned last_batch,
                                        unsigned clients);
#else
static inline struct io_uring *ev_uring_ring(struct ev_loop *loop) { (void) loop; return NULL; }
#endif
