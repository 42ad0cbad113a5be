/* SPDX-License-Identifier: MIT */
/* Connection I/O on io_uring: fewer system calls per message than recv() and
 * send() per readiness. Each connection keeps one multishot receive armed; it
 * takes its buffers from a ring of buffers the worker provides to the kernel
 * (a buffer goes back as soon as its bytes are framed, or copied to c->in).
 * Replies are copied from the worker's scratch buffer into a send buffer of
 * the connection's own (the kernel reads it when it gets to the send, after
 * the scratch buffer has served others), one send in flight per connection
 * so replies stay in order; what comes meanwhile waits in c->out, and a
 * large backlog is sent from c->out's own storage (swapped with the send
 * buffer's, so that a throttled client's batches reuse two blocks). Every SQE
 * goes out with the loop's next wait: one io_uring_enter() per pass, however
 * many clients it serves. Send buffers come from a free list, so a
 * connection in steady state allocates nothing per message.
 *
 * Closing: the descriptor number must not be let go while an SQE naming it
 * is still queued. The kernel looks the number up when it takes the SQE, at
 * the next io_uring_enter(), and by then an accept4() in any worker (they
 * share the listeners and the descriptor table) may have got the number for
 * another client: a send queued in the pass that closed the connection would
 * go to that client, a receive armed in it would take that client's bytes.
 * So uring_close() queues the cancellations and then IORING_OP_CLOSE
 * (ev_uring_close()): the kernel takes SQEs in order, so every SQE naming
 * the fd has its file before the number is released; nothing names the fd
 * after the close (a closed connection arms and sends nothing, whatever its
 * CQEs say). Simpler than submitting before each close() (a system call per
 * close) or registered files (a table to manage), and free: the close goes
 * out with the pass's wait. Operations already in the kernel hold their own
 * reference to the socket: they end with their cancellation, not with the
 * close. A closed connection's memory stays until the CQE of its last
 * operation (it is a zombie meanwhile); the close's CQE names no connection. */
#include <errno.h>
#include <liburing.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn-io.h"
#include "ev_uring.h"
#include "log.h"
#include "worker.h"

/* Receive buffers per worker, and their size: a pass reaps at most this many
 * receives before their buffers are back; beyond, a receive ends with ENOBUFS
 * and is armed again (its data waits in the socket). */
#define URING_BUF_COUNT         256u            /* a power of two */
#define URING_BUF_SIZE          (16u * 1024u)
#define URING_BUF_GROUP         0
/* A send buffer: a message of 1 KiB and its reply fit; more goes from a
 * detached c->out. At most URING_TX_KEEP free ones are kept. */
#define CONN_TX_SIZE            2048u
#define CONN_TX_CAP             (CONN_TX_SIZE - sizeof(struct conn_tx))
#define URING_TX_KEEP           4096u
#define URING_MMAP_THRESHOLD    (16 * 1024)

enum {
        URING_OP_RECV = 2,      /* user_data: the conn's address | op */
        URING_OP_SEND = 3,
        /* user_data: a struct uring_accept's address | op; run after the
         * other completions of a round (ev_uring.h) */
        URING_OP_ACCEPT = EV_URING_TAG_LAST,
};

/* A multishot accept on a listener: each client it takes posts a CQE with
 * its descriptor, until it is cancelled or fails (out of descriptors ends
 * it: the worker pauses, then arms a new one). Its own allocation, not the
 * worker_listener's, which a resync frees while the accept's last CQEs may
 * still be on their way. */
struct uring_accept {
        struct uring_accept *prev, *next;       /* on the worker's list, for the end */
        struct worker_listener *wl;             /* NULL once cancelled */
        uint64_t serial;                        /* of the listener */
};

/* A connection's state on the ring (its bits of c->flags). */
enum {
        CONN_U_RECV     = CONN_IO_FLAGS << 0,   /* a multishot receive is armed (until its last CQE) */
        CONN_U_CANCEL   = CONN_IO_FLAGS << 1,   /* ... and its cancellation was asked for */
        CONN_U_CLOSED   = CONN_IO_FLAGS << 2,   /* closed: freed once the last operation's CQE is in */
        CONN_U_SEND     = CONN_IO_FLAGS << 3,   /* a send is in flight (from c->io_data) */
        CONN_U_BUSY     = CONN_IO_FLAGS << 4,   /* a CQE of its is being handled: not freed meanwhile */
        CONN_U_PAUSED   = CONN_IO_FLAGS << 5,   /* a live upgrade: no operation is started */
        CONN_U_SCANCEL  = CONN_IO_FLAGS << 6,   /* the send's cancellation was asked for (paused) */
};

/* Replies being sent: they must stay put until the send's CQE. The bytes
 * not yet written are c->io_sending from off. */
struct conn_tx {
        struct conn_tx *next;           /* on the worker's free list */
        /* A large backlog is sent from c->out's storage, swapped in here (and
         * this one's, emptied, becomes c->out's): two buffers that take turns
         * rather than one allocated per batch. ext.data NULL: from data[]. */
        struct buffer ext;
        uint32_t off;                   /* where the unsent bytes start */
        char data[];                    /* CONN_TX_SIZE - sizeof(struct conn_tx) bytes */
};

struct uring_io {
        struct io_uring_buf_ring *br;
        char *bufs;                     /* URING_BUF_COUNT * URING_BUF_SIZE */
        struct conn_tx *free_tx;
        unsigned n_free_tx;
        struct idle_queue zombies;      /* closed, waiting for their last CQE */
        unsigned n_recv;                /* multishot receives armed */
        struct uring_accept *accepts;   /* armed or being cancelled */
};

static struct uring_io *uring_of(const struct worker *w)
{
        return w->io_state;
}

static struct conn_tx *uring_tx(const struct conn *c)
{
        return c->io_data;
}

static uint64_t uring_data(const struct conn *c, unsigned op)
{
        return (uint64_t) (uintptr_t) c | op;
}

static void uring_buf_return(struct uring_io *u, unsigned bid)
{
        io_uring_buf_ring_add(u->br, u->bufs + (size_t) bid * URING_BUF_SIZE, URING_BUF_SIZE, (unsigned short) bid,
                              io_uring_buf_ring_mask(URING_BUF_COUNT), 0);
        io_uring_buf_ring_advance(u->br, 1);
}

static struct conn_tx *uring_tx_get(struct uring_io *u)
{
        struct conn_tx *tx = u->free_tx;

        if (tx) {
                u->free_tx = tx->next;
                u->n_free_tx--;
        } else {
                tx = malloc(CONN_TX_SIZE);
                if (!tx)
                        return NULL;
        }
        tx->next = NULL;
        tx->ext = (struct buffer) BUFFER_INIT;
        tx->off = 0;
        return tx;
}

static void uring_tx_put(struct uring_io *u, struct conn_tx *tx)
{
        buffer_free(&tx->ext);
        if (u->n_free_tx >= URING_TX_KEEP) {
                free(tx);
                return;
        }
        tx->next = u->free_tx;
        u->free_tx = tx;
        u->n_free_tx++;
}

static const char *uring_tx_head(const struct conn_tx *tx)
{
        return (tx->ext.data ? tx->ext.data : tx->data) + tx->off;
}

static int uring_submit_send(struct conn *c, bool poll_first)
{
        struct io_uring_sqe *sqe = ev_uring_get_sqe(c->w->loop);

        if (!sqe)
                return -EBUSY;
        io_uring_prep_send(sqe, c->fd, uring_tx_head(uring_tx(c)), c->io_sending, MSG_NOSIGNAL);
        if (poll_first)
                sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;      /* wait until writable */
        else
                ev_uring_expect_inline(c->w->loop);
        io_uring_sqe_set_data64(sqe, uring_data(c, URING_OP_SEND));
        c->flags |= CONN_U_SEND;
        return 0;
}

/* Move what waits in c->out into the send buffer (empty) and send it. */
static int uring_send_out(struct conn *c)
{
        struct conn_tx *tx = uring_tx(c);
        size_t n = buffer_len(&c->out);

        if (n <= CONN_TX_CAP && !tx->ext.data) {
                memcpy(tx->data, buffer_head(&c->out), n);
                tx->off = 0;
                c->out.off = c->out.len = 0;    /* its storage stays for what comes next */
        } else {
                /* send from c->out's storage rather than copy a large backlog */
                struct buffer spare = tx->ext;

                tx->ext = c->out;
                tx->off = c->out.off;
                spare.off = spare.len = 0;
                c->out = spare;
        }
        c->io_sending = (uint32_t) n;
        c->flags |= CONN_SENDING_QUEUED;        /* counted as queued in c->out: they still are */
        return uring_submit_send(c, false);
}

static int uring_send(struct conn *c, const char *p, size_t n)
{
        struct uring_io *u = uring_of(c->w);

        if (n == 0)
                return 0;
        if (!(c->flags & CONN_U_SEND) && buffer_len(&c->out) == 0 && n <= CONN_TX_CAP) {
                /* the common case: straight into a send buffer, no allocation */
                struct conn_tx *tx = uring_tx(c);

                if (!tx && !(tx = c->io_data = uring_tx_get(u))) {
                        conn_close(c);
                        return -ENOMEM;
                }
                buffer_free(&tx->ext);
                memcpy(tx->data, p, n);
                tx->off = 0;
                c->io_sending = (uint32_t) n;
                if (uring_submit_send(c, false) < 0) {
                        conn_close(c);
                        return -ECONNRESET;
                }
                return 0;
        }
        if (buffer_append(&c->out, p, n, 0) < 0) {
                log_warning("out of memory queueing a reply: closing the connection");
                conn_close(c);
                return -ENOMEM;
        }
        STATS_ADD(worker_stats(c->w, c->set), queued, n);
        if (c->flags & CONN_U_SEND)
                return 0;       /* goes once the send in flight is done */
        if ((!c->io_data && !(c->io_data = uring_tx_get(u))) || uring_send_out(c) < 0) {
                conn_close(c);
                return -ECONNRESET;
        }
        return 0;
}

/* res bytes of the send in flight were written. */
static void uring_sent_bytes(struct conn *c, int32_t res)
{
        struct worker *w = c->w;
        struct stats_block *b = worker_stats(w, c->set);

        STATS_ADD(b, bytes_out, res);
        if (c->flags & CONN_SENDING_QUEUED)
                STATS_SUB(b, queued, res);
        uring_tx(c)->off += (uint32_t) res;
        c->io_sending -= (uint32_t) res;
        /* a client that reads its replies is not idle */
        idle_touch(&w->conns, &c->idle, w->now_ms);
}

/* The rest of a short send: the kernel did not take it all, so it counts as
 * queued from now (a send taken whole never does). */
static void uring_sending_queued(struct conn *c)
{
        if (c->io_sending > 0 && !(c->flags & CONN_SENDING_QUEUED)) {
                STATS_ADD(worker_stats(c->w, c->set), queued, c->io_sending);
                c->flags |= CONN_SENDING_QUEUED;
        } else if (c->io_sending == 0) {
                c->flags &= ~CONN_SENDING_QUEUED;
        }
}

static void uring_send_done(struct conn *c, int32_t res)
{
        struct worker *w = c->w;
        struct conn_tx *tx = uring_tx(c);
        bool again = false;

        c->flags &= ~(CONN_U_SEND | CONN_U_SCANCEL);
        if (c->flags & CONN_U_CLOSED) {
                c->io_data = NULL;
                c->io_sending = 0;
                uring_tx_put(uring_of(w), tx);
                return;
        }
        if (c->flags & CONN_U_PAUSED) {
                /* cancelled or not, what is left waits for the next image */
                if (res > 0)
                        uring_sent_bytes(c, res);
                else if (res < 0 && res != -ECANCELED && res != -EAGAIN && res != -EINTR) {
                        conn_close_errno(c, -res);
                        return;
                }
                uring_sending_queued(c);
                return;
        }
        if (res == -EAGAIN || res == -EINTR) {
                res = 0;
                again = true;
        } else if (res < 0) {
                conn_close_errno(c, -res);
                return;
        }
        if (res > 0)
                uring_sent_bytes(c, res);
        if (c->io_sending > 0) {
                uring_sending_queued(c);
                if (uring_submit_send(c, again) < 0)
                        conn_close(c);
                return;
        }
        c->flags &= ~CONN_SENDING_QUEUED;
        if (buffer_len(&c->out) > 0 && uring_send_out(c) < 0) {
                conn_close(c);
                return;
        }
        /* The send buffer and c->out stay while conn_sent() runs: a throttled
         * client resumed now gets its next batch of replies at once, in the
         * same storage (rather than a block allocated and freed per batch). */
        if (conn_sent(c) < 0 || (c->flags & (CONN_U_CLOSED | CONN_U_SEND)))
                return;
        /* all written: an idle connection keeps no buffer */
        buffer_free(&c->out);
        c->io_data = NULL;
        uring_tx_put(uring_of(w), tx);
}

static int uring_arm_recv(struct conn *c)
{
        struct io_uring_sqe *sqe = ev_uring_get_sqe(c->w->loop);

        if (!sqe)
                return -EBUSY;
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = URING_BUF_GROUP;
        io_uring_sqe_set_data64(sqe, uring_data(c, URING_OP_RECV));
        c->flags |= CONN_U_RECV;
        ev_uring_set_clients(c->w->loop, ++uring_of(c->w)->n_recv);
        return 0;
}

/* Queue the cancellation of c's operation op; false if the queue is full
 * and cannot be submitted now. */
static bool uring_queue_cancel(struct conn *c, unsigned op)
{
        struct io_uring_sqe *sqe = ev_uring_get_sqe(c->w->loop);

        if (!sqe)
                return false;
        io_uring_prep_cancel64(sqe, uring_data(c, op), 0);
        io_uring_sqe_set_data64(sqe, 0);
        return true;
}

static void uring_cancel(struct conn *c, unsigned op)
{
        if (!uring_queue_cancel(c, op))
                (void) shutdown(c->fd, SHUT_RDWR);      /* cannot cancel: end the operations the hard way */
}

static int uring_read(struct conn *c, bool on)
{
        if (on) {
                /* armed still (its cancellation pending): the last CQE arms again */
                if (c->flags & CONN_U_RECV)
                        return 0;
                return uring_arm_recv(c);
        }
        if ((c->flags & CONN_U_RECV) && !(c->flags & CONN_U_CANCEL)) {
                c->flags |= CONN_U_CANCEL;
                uring_cancel(c, URING_OP_RECV);
        }
        return 0;
}

/* Bytes received while not reading (before the cancellation took effect). */
static void uring_recv_unwanted(struct conn *c, const char *data, size_t n)
{
        /* Throttled: they are answered with what waits in c->in. Closing,
         * draining or lingering: read no more, as on a readiness loop. */
        if ((c->flags & CONN_THROTTLED) && !(c->flags & (CONN_CLOSING | CONN_DRAINING | CONN_LINGER)) &&
            buffer_append(&c->in, data, n, 0) < 0) {
                log_warning("out of memory buffering input: closing the connection");
                conn_close(c);
        }
}

/* A receive that completes while paused (before its cancellation took
 * effect): its bytes are input the next image answers, unless c reads no
 * more anyway (as on a readiness loop). Never armed again meanwhile. */
static void uring_recv_paused(struct conn *c, const char *data, int32_t res)
{
        if (res > 0) {
                STATS_ADD(worker_stats(c->w, c->set), bytes_in, res);
                if (!(c->flags & (CONN_CLOSING | CONN_DRAINING | CONN_LINGER)) &&
                    buffer_append(&c->in, data, (size_t) res, 0) < 0) {
                        log_warning("out of memory buffering input: closing the connection");
                        conn_close(c);
                }
        } else if (res == 0) {
                if (c->flags & CONN_LINGER)
                        conn_close(c);
                else
                        c->flags |= CONN_EOF;
        } else if (res != -ENOBUFS && res != -ECANCELED && res != -EAGAIN && res != -EINTR) {
                conn_close_errno(c, -res);
        }
}

static void uring_recv_done(struct conn *c, int32_t res, uint32_t flags)
{
        struct worker *w = c->w;
        struct uring_io *u = uring_of(w);
        const char *data = NULL;
        int bid = -1;

        if (flags & IORING_CQE_F_BUFFER) {
                bid = (int) (flags >> IORING_CQE_BUFFER_SHIFT);
                data = u->bufs + (size_t) bid * URING_BUF_SIZE;
        }
        if (!(flags & IORING_CQE_F_MORE)) {
                c->flags &= ~(CONN_U_RECV | CONN_U_CANCEL);     /* the receive is over */
                ev_uring_set_clients(w->loop, --u->n_recv);
        }
        if (c->flags & CONN_U_CLOSED)
                goto out;
        if (c->flags & CONN_U_PAUSED) {
                uring_recv_paused(c, data, res);
                goto out;
        }

        if (res > 0) {
                STATS_ADD(worker_stats(w, c->set), bytes_in, res);
                if (c->flags & CONN_LINGER)
                        ;       /* discarded */
                else if (c->flags & CONN_READ_OFF)
                        uring_recv_unwanted(c, data, (size_t) res);
                else {
                        if ((uint32_t) res < URING_BUF_SIZE)
                                c->flags |= CONN_RX_EMPTY;      /* the kernel had no more */
                        (void) conn_serve(c, data, (size_t) res);
                }
        } else if (res == 0) {
                /* the client closed its side */
                if (c->flags & CONN_LINGER)
                        conn_close(c);
                else {
                        c->flags |= CONN_EOF;
                        if (!(c->flags & CONN_READ_OFF))
                                (void) conn_serve(c, NULL, 0);
                }
        } else if (res != -ENOBUFS && res != -ECANCELED && res != -EAGAIN && res != -EINTR) {
                conn_close_errno(c, -res);
        }
        /* A receive that ended (cancelled, out of buffers: they are back by
         * the next wait) is armed again if the connection still reads
         * (lingering counts: it reads to discard). */
        if (!(c->flags & (CONN_U_RECV | CONN_U_CLOSED | CONN_READ_OFF | CONN_EOF)) &&
            uring_arm_recv(c) < 0)
                conn_close(c);
out:
        if (bid >= 0)
                uring_buf_return(u, (unsigned) bid);
}

static void uring_accept_unlink(struct uring_io *u, struct uring_accept *a)
{
        if (a->prev)
                a->prev->next = a->next;
        else
                u->accepts = a->next;
        if (a->next)
                a->next->prev = a->prev;
}

static int uring_accept(struct worker_listener *wl, bool on)
{
        struct worker *w = wl->w;
        struct uring_io *u = uring_of(w);
        struct uring_accept *a = wl->accept_op;
        struct io_uring_sqe *sqe;

        if (!on) {
                if (!a)
                        return 0;
                sqe = ev_uring_get_sqe(w->loop);
                if (sqe) {
                        io_uring_prep_cancel64(sqe, (uint64_t) (uintptr_t) a | URING_OP_ACCEPT, 0);
                        io_uring_sqe_set_data64(sqe, 0);
                }
                /* Now, not at the next wait: the caller may close the
                 * listener next, and an armed accept holds its file. The
                 * clients it took meanwhile come with no listener named. */
                ev_uring_flush(w->loop);
                a->wl = NULL;
                wl->accept_op = NULL;
                return 0;
        }
        if (a)
                return 0;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        sqe = ev_uring_get_sqe(w->loop);
        if (!sqe) {
                free(a);
                return -EBUSY;
        }
        io_uring_prep_multishot_accept(sqe, wl->l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, (uint64_t) (uintptr_t) a | URING_OP_ACCEPT);
        a->wl = wl;
        a->serial = wl->l->serial;
        a->next = u->accepts;
        if (a->next)
                a->next->prev = a;
        u->accepts = a;
        wl->accept_op = a;
        return 0;
}

static void uring_accept_done(struct worker *w, struct uring_accept *a, int32_t res, uint32_t flags)
{
        struct worker_listener *wl = a->wl;
        uint64_t serial = a->serial;
        bool more = flags & IORING_CQE_F_MORE;

        if (!more) {
                uring_accept_unlink(uring_of(w), a);
                free(a);
        }
        worker_io_accepted(w, wl, serial, res, more);
}

static void uring_complete(void *ctx, uint64_t user_data, int32_t res, uint32_t flags)
{
        struct worker *w = ctx;
        struct conn *c = (struct conn *) (uintptr_t) (user_data & ~(uint64_t) EV_URING_TAG_MASK);

        if ((user_data & EV_URING_TAG_MASK) == URING_OP_ACCEPT) {
                uring_accept_done(w, (struct uring_accept *) c, res, flags);
                return;
        }
        c->flags |= CONN_U_BUSY;
        switch (user_data & EV_URING_TAG_MASK) {
        case URING_OP_RECV:
                uring_recv_done(c, res, flags);
                break;
        case URING_OP_SEND:
                uring_send_done(c, res);
                break;
        }
        c->flags &= ~CONN_U_BUSY;
        if ((c->flags & CONN_U_CLOSED) && !(c->flags & (CONN_U_RECV | CONN_U_SEND))) {
                idle_remove(&uring_of(w)->zombies, &c->idle);
                free(c);
        }
}

static void uring_close(struct conn *c)
{
        struct worker *w = c->w;

        c->flags |= CONN_U_CLOSED;
        if ((c->flags & CONN_U_RECV) && !(c->flags & CONN_U_CANCEL)) {
                c->flags |= CONN_U_CANCEL;
                uring_cancel(c, URING_OP_RECV);
        }
        if (c->flags & CONN_U_SEND) {
                uring_cancel(c, URING_OP_SEND);
        } else if (c->io_data) {
                uring_tx_put(uring_of(w), c->io_data);
                c->io_data = NULL;
                c->io_sending = 0;
        }
        /* after the SQEs that name the fd, never before (see the top) */
        ev_uring_close(w->loop, c->fd);
        c->fd = -1;
        if (c->flags & (CONN_U_RECV | CONN_U_SEND))
                idle_touch(&uring_of(w)->zombies, &c->idle, w->now_ms);
        else if (!(c->flags & CONN_U_BUSY))
                free(c);
}

/* Called again while operations are in flight (worker.c): a cancellation
 * the full queue could not take is tried again, never the hard way (the
 * socket is the next image's). A send waiting for a client that does not
 * read could wait for ever: cancelled too, its unsent bytes handed over. */
static void uring_pause(struct conn *c)
{
        c->flags |= CONN_U_PAUSED;
        if ((c->flags & CONN_U_RECV) && !(c->flags & CONN_U_CANCEL) && uring_queue_cancel(c, URING_OP_RECV))
                c->flags |= CONN_U_CANCEL;
        if ((c->flags & CONN_U_SEND) && !(c->flags & CONN_U_SCANCEL) && uring_queue_cancel(c, URING_OP_SEND))
                c->flags |= CONN_U_SCANCEL;
}

static bool uring_paused_busy(const struct conn *c)
{
        return c->flags & (CONN_U_RECV | CONN_U_SEND);
}

static size_t uring_sending(const struct conn *c, const char **p)
{
        if (!c->io_data || c->io_sending == 0)
                return 0;
        *p = uring_tx_head(uring_tx(c));
        return c->io_sending;
}

static int uring_unpause(struct conn *c)
{
        struct uring_io *u = uring_of(c->w);
        int r = 0;

        c->flags &= ~CONN_U_PAUSED;
        if (c->io_sending > 0)
                r = uring_submit_send(c, false);
        else if (buffer_len(&c->out) > 0)
                r = (!c->io_data && !(c->io_data = uring_tx_get(u))) ? -ENOMEM : uring_send_out(c);
        if (r >= 0 && !(c->flags & (CONN_U_RECV | CONN_READ_OFF | CONN_EOF)))
                r = uring_arm_recv(c);
        if (r < 0) {
                conn_close(c);
                return -ECONNRESET;
        }
        return 0;
}

static int uring_setup(struct worker *w)
{
        struct io_uring *ring = ev_uring_ring(w->loop);
        struct uring_io *u = calloc(1, sizeof(*u));
        struct io_uring_buf_reg reg = { 0 };
        size_t ring_size = URING_BUF_COUNT * sizeof(struct io_uring_buf);
        int r;

        if (!u)
                return -ENOMEM;
        idle_queue_init(&u->zombies);
        u->br = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        /* zeroed (mmapped pages: no cost until used) so that valgrind, which
         * does not see the kernel write into them, finds them defined */
        u->bufs = calloc(URING_BUF_COUNT, URING_BUF_SIZE);
        if (u->br == MAP_FAILED || !u->bufs) {
                r = -ENOMEM;
                goto fail;
        }
        reg.ring_addr = (unsigned long) u->br;
        reg.ring_entries = URING_BUF_COUNT;
        reg.bgid = URING_BUF_GROUP;
        r = io_uring_register_buf_ring(ring, &reg, 0);
        if (r < 0)
                goto fail;
        io_uring_buf_ring_init(u->br);
        for (unsigned i = 0; i < URING_BUF_COUNT; i++)
                io_uring_buf_ring_add(u->br, u->bufs + (size_t) i * URING_BUF_SIZE, URING_BUF_SIZE,
                                      (unsigned short) i, io_uring_buf_ring_mask(URING_BUF_COUNT), (int) i);
        io_uring_buf_ring_advance(u->br, URING_BUF_COUNT);
        ev_uring_set_handler(w->loop, uring_complete, w);
        /* A client that does not read has up to CONN_OUTPUT_HIGH queued in
         * c->out plus as much being sent from a detached one: allocations
         * that glibc would keep in the heap once freed (its mmap threshold
         * rises to the largest block freed), so that memory stayed with
         * muxd after such clients left. Large blocks mmap'd, always. */
        (void) mallopt(M_MMAP_THRESHOLD, URING_MMAP_THRESHOLD);
        w->io_state = u;
        return 0;
fail:
        if (u->br != MAP_FAILED)
                munmap(u->br, ring_size);
        free(u->bufs);
        free(u);
        return r;
}

static void uring_free(struct worker *w)
{
        struct uring_io *u = uring_of(w);
        struct idle_link *l;

        if (!u)
                return;
        /* the ring is gone, and with it every operation: free what waited for them */
        while ((l = idle_oldest(&u->zombies))) {
                struct conn *c = conn_from_idle(l);

                idle_remove(&u->zombies, l);
                struct conn_tx *tx = uring_tx(c);

                if (tx) {
                        buffer_free(&tx->ext);
                        free(tx);
                }
                free(c);
        }
        while (u->accepts) {
                struct uring_accept *a = u->accepts;

                u->accepts = a->next;
                free(a);
        }
        while (u->free_tx) {
                struct conn_tx *tx = u->free_tx;

                u->free_tx = tx->next;
                free(tx);
        }
        munmap(u->br, URING_BUF_COUNT * sizeof(struct io_uring_buf));
        free(u->bufs);
        free(u);
        w->io_state = NULL;
}

/* Closed connections wait for the CQEs of their operations (their sockets
 * stay open until the kernel lets go of them too). */
static bool uring_busy(struct worker *w)
{
        return uring_of(w)->zombies.count > 0;
}

static bool uring_usable(struct ev_loop *loop)
{
        return ev_uring_ring(loop) != NULL;
}

const struct conn_io conn_io_uring = {
        .name = "io_uring",
        .usable = uring_usable,
        .setup = uring_setup,
        .free = uring_free,
        .read = uring_read,
        .send = uring_send,
        .close = uring_close,
        .busy = uring_busy,
        .accept = uring_accept,
        .pause = uring_pause,
        .paused_busy = uring_paused_busy,
        .sending = uring_sending,
        .unpause = uring_unpause,
};
