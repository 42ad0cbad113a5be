/* SPDX-License-Identifier: MIT */
/* io_uring(7) backend. As a readiness backend: one one-shot IORING_OP_POLL_ADD
 * per watched fd, armed again after each CQE while the fd is still watched.
 * A multishot poll would save that SQE, but it is edge-triggered (one CQE
 * per wakeup, none while the fd merely stays ready), and the loop's users
 * rely on level triggering: an accept batch or a read that leaves data
 * behind expects to be called again. Re-arming costs no system call: the
 * SQEs of a pass go out with its wait, in one io_uring_enter(). Changes of
 * interest are applied at the next wait too, so a del-then-add in one pass
 * costs nothing. Each poll carries a generation in its user_data: the CQE of
 * a poll that was removed or replaced is recognised as stale and dropped.
 *
 * The CQEs of operations others queued (ev_uring.h) are kept until
 * ev_dispatch() hands them to their handler, after the readiness callbacks.
 *
 * An SQE names a descriptor by number, and the kernel looks the number up
 * only when it takes the SQE, at the next io_uring_enter(). A number closed
 * before then may already be another socket's (accept4() in any thread gets
 * the lowest free number): the operation would act on it. So a descriptor
 * that queued operations may name is closed on the ring (ev_uring_close():
 * IORING_OP_CLOSE, queued after them, taken in order), and a poll not taken
 * yet when its fd stops being watched is turned into a no-op, for the
 * caller may close the fd next.
 *
 * A wait the kernel refuses for want of memory or of room for CQEs (EAGAIN,
 * EBUSY), or that leaves SQEs behind, is tried again here, after a short
 * pause, for half a second at most: only a lasting or other error reaches
 * the caller. EINTR and ETIME are no errors: what came is reaped. */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "event-backend.h"
#include "ev_uring.h"

#define URING_SQ_ENTRIES        1024u
#define URING_CQ_ENTRIES        16384u  /* multishot receives post many CQEs per SQE */
#define URING_COMPL_MAX         4096u   /* handler CQEs taken per wait; more wait for the next */
/* How long a wait that submits operations expected to complete inline
 * waits for one event more than those completions (see uring_backend_poll) */
#define URING_INLINE_WAIT_MS    1
/* Under load, a wait asks for as many completions as the last one brought
 * from outside (not counting those of the sends it submitted), but for no
 * more than an eighth of the clients (URING_BATCH_SHARE) and at most
 * URING_BATCH_MAX, and for at most URING_BATCH_WAIT_NS: the clients served
 * in one pass mostly answer together, and waking once for several of them
 * saves wakeups and system calls (bench/README.md has the figures), for at
 * most that much latency. With few clients, where waiting for one more would
 * hold up the others, nothing changes. */
#define URING_BATCH_SHARE       8u
#define URING_BATCH_MAX         32u
#define URING_BATCH_WAIT_NS     50000ll
/* A wait refused for a transient reason is tried again this many times,
 * after pauses doubling from URING_RETRY_MIN_MS to URING_RETRY_MAX_MS (0.43 s
 * in all): long enough for memory or CQ room to come back, never a spin. */
#define URING_RETRIES           10u
#define URING_RETRY_MIN_MS      1u
#define URING_RETRY_MAX_MS      100u

struct uring_fd {
        uint32_t gen;           /* generation of the last poll armed */
        uint8_t armed;          /* what the armed poll watches; EV_NONE: no poll armed */
        bool dirty;             /* on the dirty list: compare armed with wanted at the next wait */
        bool exclusive;
        unsigned sq_pos;        /* where in the SQ the last poll was queued */
};

struct uring_compl {
        uint64_t user_data;
        int32_t res;
        uint32_t flags;
};

struct uring_state {
        struct io_uring ring;
        bool disabled;                  /* not enabled yet: by the first wait's thread */
        struct uring_fd *fds;           /* indexed by fd, setsize entries */
        int *dirty;                     /* fds whose poll may need arming or removal */
        size_t n_dirty;
        int *closing;                   /* to close once the kernel has taken the whole SQ */
        size_t n_closing;
        unsigned expected;              /* CQEs the next submission will post at once */
        unsigned last_batch;            /* what the last wait brought from outside */
        unsigned clients;               /* see ev_uring_set_clients() */
        struct uring_compl *compl;      /* handler CQEs of the last wait */
        size_t n_compl;
        ev_uring_handler *handler;
        void *ctx;
};

/* The ring set-up, best first: the CQEs of a loop's own operations are
 * completed in batches when it waits (DEFER_TASKRUN, 6.1: no task work
 * interrupting it in between), which needs a single submitting thread
 * (SINGLE_ISSUER), the one that enables the ring (R_DISABLED): a worker's
 * loop is made by the main thread but runs in the worker's. Then without
 * those (5.19), then without any optional flag. *disabled: the first wait
 * has to enable the ring. */
static int uring_init(struct io_uring *ring, unsigned entries, unsigned cq_entries, bool *disabled)
{
        static const unsigned flags[] = {
                IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                        IORING_SETUP_R_DISABLED,
                IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
                0,
        };
        struct io_uring_params p;
        int r = -EINVAL;

        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && r == -EINVAL; i++) {
                p = (struct io_uring_params) {
                        .flags = IORING_SETUP_CQSIZE | flags[i],
                        .cq_entries = cq_entries,
                };
                r = io_uring_queue_init_params(entries, ring, &p);
        }
        if (r < 0)
                return r;
        /* One system call to submit and wait with a timeout (5.11), no CQE
         * lost on overflow (5.5). */
        if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) {
                io_uring_queue_exit(ring);
                return -EOPNOTSUPP;
        }
        *disabled = p.flags & IORING_SETUP_R_DISABLED;
        return 0;
}

/* io_uring_enable_rings() is declared by liburing 2.3 but missing from its
 * library: the system call itself. */
static int uring_enable(struct io_uring *ring)
{
        if (syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
                return -errno;
        return 0;
}

/* Usable here? The kernel may lack io_uring (-ENOSYS), refuse it (-EPERM from
 * a seccomp filter or kernel.io_uring_disabled) or be too old for what the
 * connections use: multishot receive came with 6.0, as did IORING_OP_SEND_ZC,
 * which the probe can see. */
static int uring_backend_probe(void)
{
        struct io_uring ring;
        struct io_uring_probe *probe;
        bool disabled;
        int r;

        r = uring_init(&ring, 4, 8, &disabled);
        if (r < 0)
                return r;
        /* from here on every way out frees the ring */
        if (disabled)
                r = uring_enable(&ring);
        if (r == 0) {
                probe = io_uring_get_probe_ring(&ring);
                if (!probe || !io_uring_opcode_supported(probe, IORING_OP_SEND_ZC))
                        r = -EOPNOTSUPP;
                io_uring_free_probe(probe);
        }
        io_uring_queue_exit(&ring);
        return r;
}

static int uring_backend_create(struct ev_loop *loop)
{
        struct uring_state *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->fds = calloc((size_t) loop->setsize, sizeof(*s->fds));
        s->dirty = calloc((size_t) loop->setsize, sizeof(*s->dirty));
        s->closing = calloc((size_t) loop->setsize, sizeof(*s->closing));
        s->compl = calloc(URING_COMPL_MAX, sizeof(*s->compl));
        r = -ENOMEM;
        if (!s->fds || !s->dirty || !s->closing || !s->compl)
                goto fail;
        r = uring_init(&s->ring, URING_SQ_ENTRIES, URING_CQ_ENTRIES, &s->disabled);
        if (r < 0)
                goto fail;
        loop->state = s;
        return 0;
fail:
        free(s->fds);
        free(s->dirty);
        free(s->closing);
        free(s->compl);
        free(s);
        return r;
}

static uint64_t uring_close_data(int fd)
{
        return ((uint64_t) (uint32_t) fd << EV_URING_TAG_BITS) | EV_URING_TAG_CLOSE;
}

static void uring_backend_destroy(struct ev_loop *loop)
{
        struct uring_state *s = loop->state;
        struct io_uring_sq *sq = &s->ring.sq;

        /* Nothing more goes to the kernel (this may not even be the ring's
         * thread): the SQEs it has not taken are dropped with the ring, so
         * the closes among them are done here, by hand, as are those that
         * waited for the queue to empty. */
        for (unsigned pos = *sq->khead; pos != sq->sqe_tail; pos++) {
                const struct io_uring_sqe *sqe = &sq->sqes[pos & sq->ring_mask];

                if (sqe->opcode == IORING_OP_CLOSE && sqe->user_data == uring_close_data(sqe->fd))
                        (void) close(sqe->fd);
        }
        for (size_t i = 0; i < s->n_closing; i++)
                (void) close(s->closing[i]);
        io_uring_queue_exit(&s->ring);
        free(s->fds);
        free(s->dirty);
        free(s->closing);
        free(s->compl);
        free(s);
}

static void uring_mark_dirty(struct uring_state *s, int fd)
{
        if (!s->fds[fd].dirty) {
                s->fds[fd].dirty = true;
                s->dirty[s->n_dirty++] = fd;
        }
}

static int uring_backend_add(struct ev_loop *loop, int fd, int oldmask, int addmask)
{
        struct uring_state *s = loop->state;

        if (oldmask == EV_NONE)
                s->fds[fd].exclusive = addmask & EV_EXCLUSIVE;
        uring_mark_dirty(s, fd);
        return 0;
}


struct io_uring_sqe *ev_uring_get_sqe(struct ev_loop *loop)
{
        struct uring_state *s = loop->state;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

        if (!sqe) {
                /* the queue is full: send it off now rather than fail */
                if (s->disabled || io_uring_submit(&s->ring) < 0)
                        return NULL;
                sqe = io_uring_get_sqe(&s->ring);
        }
        return sqe;
}

void ev_uring_flush(struct ev_loop *loop)
{
        struct uring_state *s = loop->state;

        if (!s->disabled)
                (void) io_uring_submit_and_get_events(&s->ring);
}

/* The SQE queued at position pos of the SQ if the kernel has not taken it
 * yet, else NULL. */
static struct io_uring_sqe *uring_sqe_untaken(struct uring_state *s, unsigned pos)
{
        struct io_uring_sq *sq = &s->ring.sq;

        if ((int) (pos - *sq->khead) < 0 || (int) (pos - sq->sqe_tail) >= 0)
                return NULL;
        return &sq->sqes[pos & sq->ring_mask];
}

void ev_uring_close(struct ev_loop *loop, int fd)
{
        struct uring_state *s = loop->state;
        struct io_uring_sqe *sqe = ev_uring_get_sqe(loop);

        if (sqe) {
                /* Taken after every SQE queued before it: those that name fd
                 * get the file, then the number is let go. No CQE unless it
                 * fails (uring_backend_poll). */
                io_uring_prep_close(sqe, fd);
                sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
                io_uring_sqe_set_data64(sqe, uring_close_data(fd));
                return;
        }
        /* The queue is full and cannot be submitted now: closed by hand once
         * the kernel has taken all of it. Each entry is a descriptor still
         * open, so fewer than setsize (the descriptor limit) wait; were a
         * descriptor beyond it ever closed here, it is shut down at once and
         * its number kept (leaked) rather than risked. */
        if (s->n_closing < (size_t) loop->setsize)
                s->closing[s->n_closing++] = fd;
        else
                (void) shutdown(fd, SHUT_RDWR);
}

/* Close what waited for the kernel to take the whole SQ, if it has now. */
static void uring_close_waiting(struct uring_state *s)
{
        if (s->n_closing == 0)
                return;
        if (io_uring_sq_ready(&s->ring) > 0 &&
            (io_uring_submit(&s->ring) < 0 || io_uring_sq_ready(&s->ring) > 0))
                return;         /* not yet: at the next wait */
        for (size_t i = 0; i < s->n_closing; i++)
                (void) close(s->closing[i]);
        s->n_closing = 0;
}

static uint64_t uring_poll_data(int fd, uint32_t gen)
{
        return ((uint64_t) gen << 32) | ((uint64_t) (uint32_t) fd << EV_URING_TAG_BITS) | EV_URING_TAG_POLL;
}

static int uring_backend_del(struct ev_loop *loop, int fd, int oldmask, int delmask)
{
        struct uring_state *s = loop->state;
        struct uring_fd *f = &s->fds[fd];
        struct io_uring_sqe *sqe;

        if ((oldmask & ~delmask) == EV_NONE && f->armed != EV_NONE) {
                sqe = uring_sqe_untaken(s, f->sq_pos);
                if (sqe && sqe->opcode == IORING_OP_POLL_ADD &&
                    sqe->user_data == uring_poll_data(fd, f->gen)) {
                        /* Not taken by the kernel yet (the last wait failed):
                         * the caller may close fd next, and the number be
                         * another file's by the time the SQE goes. It never
                         * will: a no-op instead. */
                        io_uring_prep_nop(sqe);
                        io_uring_sqe_set_data64(sqe, 0);
                        f->armed = EV_NONE;
                } else if (!s->disabled && (sqe = ev_uring_get_sqe(loop))) {
                        /* Removed now, not at the next wait: an armed poll
                         * holds a reference to the file, and the caller may
                         * close the fd next, expecting, say, a listening
                         * socket to stop accepting. With DEFER_TASKRUN the
                         * cancelled poll lets go of the file only when the
                         * ring's task work runs: get events, too. */
                        io_uring_prep_poll_remove(sqe, uring_poll_data(fd, f->gen));
                        io_uring_sqe_set_data64(sqe, 0);
                        f->armed = EV_NONE;
                        (void) io_uring_submit_and_get_events(&s->ring);
                }
        }
        uring_mark_dirty(s, fd);
        return 0;
}

/* Bring the armed polls in line with what the loop watches. */
static void uring_sync(struct ev_loop *loop, struct uring_state *s)
{
        size_t kept = 0;

        for (size_t i = 0; i < s->n_dirty; i++) {
                int fd = s->dirty[i];
                struct uring_fd *f = &s->fds[fd];
                int want = loop->files[fd].mask;
                struct io_uring_sqe *sqe;

                if (f->armed != want && f->armed != EV_NONE) {
                        sqe = ev_uring_get_sqe(loop);
                        if (!sqe)
                                goto later;
                        io_uring_prep_poll_remove(sqe, uring_poll_data(fd, f->gen));
                        io_uring_sqe_set_data64(sqe, 0);
                        f->armed = EV_NONE;
                }
                if (f->armed != want) {
                        unsigned events = ((want & EV_READABLE) ? POLLIN : 0) |
                                          ((want & EV_WRITABLE) ? POLLOUT : 0);

                        sqe = ev_uring_get_sqe(loop);
                        if (!sqe)
                                goto later;
                        if (f->exclusive)
                                events |= EPOLLEXCLUSIVE;
                        f->gen++;
                        io_uring_prep_poll_add(sqe, fd, events);
                        io_uring_sqe_set_data64(sqe, uring_poll_data(fd, f->gen));
                        f->armed = (uint8_t) want;
                        f->sq_pos = s->ring.sq.sqe_tail - 1;
                }
                f->dirty = false;
                continue;
later:
                /* no SQE to be had: try again at the next wait */
                s->dirty[kept++] = fd;
        }
        s->n_dirty = kept;
}

struct ev_uring_wait ev_uring_wait_plan(int timeout_ms, unsigned expected, unsigned last_batch,
                                        unsigned clients)
{
        struct ev_uring_wait w = {
                .nr = 1 + expected,
                .ns = timeout_ms < 0 ? -1 : (long long) timeout_ms * 1000000,
        };
        unsigned batch = last_batch < URING_BATCH_MAX ? last_batch : URING_BATCH_MAX;

        /* The sends of this pass mostly complete as they are submitted,
         * which would end the wait at once, and the next pass would make a
         * second io_uring_enter() just to wait. So wait for one CQE more
         * than those, briefly: under load the clients' next messages come
         * within it, and an idle loop only handles the send completions
         * (the replies themselves are out already) a millisecond later. */
        if (expected > 0 && (w.ns < 0 || w.ns > URING_INLINE_WAIT_MS * 1000000ll))
                w.ns = URING_INLINE_WAIT_MS * 1000000ll;
        if (batch > clients / URING_BATCH_SHARE)
                batch = clients / URING_BATCH_SHARE;
        if (batch > 1) {
                w.nr += batch - 1;
                if (w.ns < 0 || w.ns > URING_BATCH_WAIT_NS)
                        w.ns = URING_BATCH_WAIT_NS;
        }
        return w;
}

static void uring_pause(unsigned ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };

        (void) nanosleep(&ts, NULL);
}

/* Submit the SQ and wait: 0, or -errno if that failed for good. */
static int uring_submit_wait(struct uring_state *s, unsigned nr, struct __kernel_timespec *tsp)
{
        unsigned pause_ms = URING_RETRY_MIN_MS;
        struct io_uring_cqe *cqe;

        for (unsigned tries = 0;; tries++) {
                int r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, nr, tsp, NULL);

                if (r == -ETIME || r == -EINTR)
                        r = 0;          /* timed out, or a signal: reap what came */
                if (r < 0 && r != -EAGAIN && r != -EBUSY)
                        return r;
                if (r >= 0 && io_uring_sq_ready(&s->ring) == 0)
                        return 0;
                /* Short of memory or of CQ room, or only part of the SQ
                 * taken. CQEs waiting are reaped first, which makes room;
                 * the rest of the SQ goes with the next wait. */
                if (io_uring_cq_ready(&s->ring) > 0)
                        return 0;
                if (tries == URING_RETRIES)
                        return r < 0 ? r : -EAGAIN;
                uring_pause(pause_ms);
                pause_ms = pause_ms * 2 < URING_RETRY_MAX_MS ? pause_ms * 2 : URING_RETRY_MAX_MS;
        }
}

/* Valgrind 3.19 (Debian 12's) keeps its big lock while a thread waits in
 * io_uring_enter (it does not know the call blocks: liburing issue 657), so
 * every other thread of muxd, the main one too, would stop for as long as a
 * worker waits. Under valgrind a wait is made of slices of at most 10 ms,
 * with a yield before each (uring_valgrind_wait); elsewhere this costs
 * nothing. */
#define URING_VALGRIND_WAIT_NS  (10LL * 1000000)
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define URING_HAVE_VALGRIND_H 1
#endif
#endif
static bool uring_under_valgrind(void)
{
#ifdef URING_HAVE_VALGRIND_H
        return RUNNING_ON_VALGRIND != 0;
#else
        return false;
#endif
}

static uint64_t uring_now_ns(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t) t.tv_sec * 1000000000u + (uint64_t) t.tv_nsec;
}

/* The same wait in slices of at most 10 ms, yielding before each (where
 * valgrind hands its lock to another thread), until a CQE is in or the
 * plan's time is up. */
static int uring_valgrind_wait(struct uring_state *s, struct ev_uring_wait plan)
{
        uint64_t start = uring_now_ns();

        for (;;) {
                uint64_t spent = uring_now_ns() - start;
                long long slice = URING_VALGRIND_WAIT_NS;
                struct __kernel_timespec ts;
                int r;

                if (plan.ns >= 0 && (long long) spent >= plan.ns)
                        slice = 0;
                else if (plan.ns >= 0 && plan.ns - (long long) spent < slice)
                        slice = plan.ns - (long long) spent;
                ts.tv_sec = slice / 1000000000;
                ts.tv_nsec = slice % 1000000000;
                sched_yield();
                r = uring_submit_wait(s, plan.nr, &ts);
                if (r < 0 || io_uring_cq_ready(&s->ring) > 0 || slice == 0)
                        return r;
                if (plan.ns >= 0 && (long long) (uring_now_ns() - start) >= plan.ns)
                        return 0;
        }
}

static int uring_backend_poll(struct ev_loop *loop, int timeout_ms)
{
        struct uring_state *s = loop->state;
        struct __kernel_timespec ts, *tsp = NULL;
        struct io_uring_cqe *cqe;
        struct ev_uring_wait plan;
        unsigned head, seen = 0, inline_done;
        int n = 0, r;

        if (s->disabled) {
                r = uring_enable(&s->ring);
                if (r < 0)
                        return r;
                s->disabled = false;
        }
        uring_sync(loop, s);
        uring_close_waiting(s);
        plan = ev_uring_wait_plan(timeout_ms, s->expected, s->last_batch, s->clients);
        inline_done = s->expected;
        s->expected = 0;
        if (plan.ns >= 0) {
                ts.tv_sec = plan.ns / 1000000000;
                ts.tv_nsec = plan.ns % 1000000000;
                tsp = &ts;
        }
        r = uring_under_valgrind() ? uring_valgrind_wait(s, plan) : uring_submit_wait(s, plan.nr, tsp);
        if (r < 0)
                return r;

        s->n_compl = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
                uint64_t ud = cqe->user_data;

                if ((ud & EV_URING_TAG_MASK) == EV_URING_TAG_POLL) {
                        int fd = (int) ((uint32_t) ud >> EV_URING_TAG_BITS);
                        struct uring_fd *f;
                        int mask = 0;

                        seen++;
                        if (fd >= loop->setsize)
                                continue;
                        f = &s->fds[fd];
                        if ((uint32_t) (ud >> 32) != f->gen || f->armed == EV_NONE)
                                continue;       /* removed or replaced since */
                        f->armed = EV_NONE;     /* one-shot: armed again at the next wait if still wanted */
                        uring_mark_dirty(s, fd);
                        if (cqe->res == -ECANCELED)
                                continue;
                        if (cqe->res < 0) {
                                mask = EV_READABLE | EV_WRITABLE;
                        } else {
                                if (cqe->res & POLLIN)
                                        mask |= EV_READABLE;
                                if (cqe->res & POLLOUT)
                                        mask |= EV_WRITABLE;
                                /* errors and hangups wake whichever side is watched */
                                if (cqe->res & (POLLERR | POLLHUP | POLLNVAL))
                                        mask |= EV_READABLE | EV_WRITABLE;
                        }
                        if (mask) {
                                loop->fired[n].fd = fd;
                                loop->fired[n].mask = mask;
                                n++;
                        }
                } else if ((ud & EV_URING_TAG_MASK) == EV_URING_TAG_CLOSE) {
                        /* A close that failed (one that worked posts no CQE).
                         * EINVAL: the kernel refused the SQE itself, and the
                         * descriptor is still open; the SQEs before it are
                         * taken now, so it is closed by hand. */
                        seen++;
                        if (cqe->res == -EINVAL)
                                (void) close((int) (uint32_t) (ud >> EV_URING_TAG_BITS));
                } else if (ud != 0) {
                        if (s->n_compl == URING_COMPL_MAX)
                                break;
                        s->compl[s->n_compl++] = (struct uring_compl) {
                                .user_data = ud, .res = cqe->res, .flags = cqe->flags,
                        };
                        seen++;
                } else {
                        seen++;
                }
        }
        io_uring_cq_advance(&s->ring, seen);
        /* what came from outside: not the completions of our own sends */
        s->last_batch = (unsigned) n + (unsigned) s->n_compl -
                        ((unsigned) s->n_compl < inline_done ? (unsigned) s->n_compl : inline_done);
        return n;
}

static void uring_backend_complete(struct ev_loop *loop)
{
        struct uring_state *s = loop->state;
        size_t n = s->n_compl;

        size_t n_last = 0;

        s->n_compl = 0;
        if (!s->handler)
                return;
        for (size_t i = 0; i < n; i++) {
                struct uring_compl c = s->compl[i];

                if ((c.user_data & EV_URING_TAG_MASK) == EV_URING_TAG_LAST)
                        s->compl[n_last++] = c;         /* an entry already read: n_last <= i */
                else
                        s->handler(s->ctx, c.user_data, c.res, c.flags);
        }
        for (size_t i = 0; i < n_last; i++)
                s->handler(s->ctx, s->compl[i].user_data, s->compl[i].res, s->compl[i].flags);
}

void ev_uring_expect_inline(struct ev_loop *loop)
{
        struct uring_state *s = loop->state;

        s->expected++;
}

void ev_uring_set_clients(struct ev_loop *loop, unsigned n)
{
        struct uring_state *s = loop->state;

        s->clients = n;
}

struct io_uring *ev_uring_ring(struct ev_loop *loop)
{
        if (loop->backend != &ev_backend_uring)
                return NULL;
        return &((struct uring_state *) loop->state)->ring;
}

void ev_uring_set_handler(struct ev_loop *loop, ev_uring_handler *fn, void *ctx)
{
        struct uring_state *s = loop->state;

        s->handler = fn;
        s->ctx = ctx;
}

const struct ev_backend ev_backend_uring = {
        .name = "io_uring",
        .max_fds = 0,
        .probe = uring_backend_probe,
        .create = uring_backend_create,
        .destroy = uring_backend_destroy,
        .add = uring_backend_add,
        .del = uring_backend_del,
        .poll = uring_backend_poll,
        .complete = uring_backend_complete,
};
