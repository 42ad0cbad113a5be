/* SPDX-License-Identifier: MIT */
/* Unit tests for the event loop: one conformance suite, run against every
 * backend (epoll, poll, select, and io_uring when built), plus the backend
 * registry. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sys/epoll.h>

#include "event.h"
#include "ev_uring.h"
#include "testmain.h"

#ifdef HAVE_LIBURING
#include <liburing.h>
#include <sys/syscall.h>

/* Failures injected into the io_uring backend: io_uring_submit_and_wait_timeout,
 * io_uring_submit_and_get_events and syscall are wrapped (-Wl,--wrap in
 * Makefile.am); each passes through to the real one unless told to fail. */
int __real_io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
                                            unsigned wait_nr, struct __kernel_timespec *ts,
                                            sigset_t *sigmask);
int __wrap_io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
                                            unsigned wait_nr, struct __kernel_timespec *ts,
                                            sigset_t *sigmask);
int __real_io_uring_submit_and_get_events(struct io_uring *ring);
int __wrap_io_uring_submit_and_get_events(struct io_uring *ring);
long __real_syscall(long n, ...);
long __wrap_syscall(long n, ...);

static unsigned wait_calls;     /* io_uring_submit_and_wait_timeout() calls */
static unsigned wait_fails;     /* how many of the next ones fail ... */
static int wait_error;          /* ... with this (-errno), submitting nothing */
static bool get_events_fails;   /* io_uring_submit_and_get_events() fails (-EAGAIN) */
static int enable_error;        /* enabling a ring fails with this errno (0: does not) */

int __wrap_io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
                                            unsigned wait_nr, struct __kernel_timespec *ts,
                                            sigset_t *sigmask)
{
        wait_calls++;
        if (wait_fails > 0) {
                wait_fails--;
                return wait_error;
        }
        return __real_io_uring_submit_and_wait_timeout(ring, cqe_ptr, wait_nr, ts, sigmask);
}

int __wrap_io_uring_submit_and_get_events(struct io_uring *ring)
{
        if (get_events_fails)
                return -EAGAIN;
        return __real_io_uring_submit_and_get_events(ring);
}

long __wrap_syscall(long n, ...)
{
        long a[6];
        va_list ap;

        va_start(ap, n);
        for (int i = 0; i < 6; i++)
                a[i] = va_arg(ap, long);
        va_end(ap);
        if (n == __NR_io_uring_register && (int) a[1] == IORING_REGISTER_ENABLE_RINGS && enable_error) {
                errno = enable_error;
                return -1;
        }
        return __real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
#endif

/* epoll_ctl is wrapped too (Makefile.am): counted, then passed through. */
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
static unsigned epoll_ctl_calls;

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
        epoll_ctl_calls++;
        return __real_epoll_ctl(epfd, op, fd, ev);
}

#define LOOP_SETSIZE 1024
#define MAX_TRACKED 1024

/* One per backend: the suite's state. */
struct fx {
        const char *name;
        struct ev_loop *loop;
        int fds[MAX_TRACKED];   /* every descriptor a test opened, -1 once closed */
        int nfds;
};

/* Checks that name the backend in their failure message. They expect a
 * variable fx in scope. */
#define CHECK_INT(a, b) do {                                                    \
                long long a_ = (long long) (a), b_ = (long long) (b);           \
                if (a_ != b_)                                                   \
                        fail_msg("[%s backend] %s is %lld, expected %s (%lld)", \
                                 fx->name, #a, a_, #b, b_);                     \
        } while (0)
#define CHECK(cond) do {                                                        \
                if (!(cond))                                                    \
                        fail_msg("[%s backend] check failed: %s", fx->name, #cond); \
        } while (0)

/* ---- descriptors, tracked so a failing test does not leak them ----------- */

static void fx_track(struct fx *fx, int fd)
{
        CHECK(fx->nfds < MAX_TRACKED);
        fx->fds[fx->nfds++] = fd;
}

static void fx_socketpair(struct fx *fx, int sv[2])
{
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
                fail_msg("[%s backend] socketpair: %s", fx->name, strerror(errno));
        fx_track(fx, sv[0]);
        fx_track(fx, sv[1]);
}

static void fx_pipe(struct fx *fx, int p[2])
{
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
                fail_msg("[%s backend] pipe2: %s", fx->name, strerror(errno));
        fx_track(fx, p[0]);
        fx_track(fx, p[1]);
}

static void fx_close(struct fx *fx, int fd)
{
        for (int i = 0; i < fx->nfds; i++)
                if (fx->fds[i] == fd) {
                        fx->fds[i] = -1;
                        close(fd);
                        return;
                }
        fail_msg("[%s backend] closing fd %d the test did not open", fx->name, fd);
}

static void fx_write(struct fx *fx, int fd, const char *s)
{
        ssize_t n = write(fd, s, strlen(s));

        if (n != (ssize_t) strlen(s))
                fail_msg("[%s backend] write to fd %d: %zd", fx->name, fd, n);
}

/* ---- a callback that records what it was called with --------------------- */

struct rec {
        int calls;
        int fd;
        int mask;
        void *data;
};
static struct rec recs[LOOP_SETSIZE];   /* indexed by fd */
static struct ev_loop *rec_loop;

static void rec_cb(struct ev_loop *loop, int fd, void *data, int mask)
{
        assert_true(fd >= 0 && fd < LOOP_SETSIZE);
        assert_ptr_equal(loop, rec_loop);
        recs[fd].calls++;
        recs[fd].fd = fd;
        recs[fd].mask = mask;
        recs[fd].data = data;
}

static int token1, token2;      /* distinct data pointers */

static int fx_setup(void **state)
{
        struct fx *fx = *state;
        const struct ev_backend *b = ev_backend_find(fx->name);
        int r;

        CHECK(b != NULL);
        fx->loop = NULL;
        fx->nfds = 0;
        r = ev_loop_new(b, LOOP_SETSIZE, &fx->loop);
        CHECK_INT(r, 0);
        memset(recs, 0, sizeof(recs));
        rec_loop = fx->loop;
        return 0;
}

static int fx_teardown(void **state)
{
        struct fx *fx = *state;

        ev_loop_free(fx->loop);
        fx->loop = NULL;
        for (int i = 0; i < fx->nfds; i++)
                if (fx->fds[i] >= 0)
                        close(fx->fds[i]);
        fx->nfds = 0;
        return 0;
}

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* ---- the conformance suite ----------------------------------------------- */

static void test_nothing_ready(void **state)
{
        struct fx *fx = *state;
        int sv[2];

        /* an empty loop */
        CHECK_INT(ev_run_once(fx->loop, 0), 0);
        /* a watched socket nobody wrote to */
        fx_socketpair(fx, sv);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token1), 0);
        CHECK_INT(ev_run_once(fx->loop, 0), 0);
        CHECK_INT(recs[sv[0]].calls, 0);
        CHECK_INT(recs[sv[1]].calls, 0);
}

static void test_readable(void **state)
{
        struct fx *fx = *state;
        int sv[2], p[2];
        char buf[16];

        fx_socketpair(fx, sv);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token1), 0);
        fx_write(fx, sv[1], "hello");
        CHECK_INT(ev_run_once(fx->loop, 1000), 1);
        CHECK_INT(recs[sv[0]].calls, 1);
        CHECK_INT(recs[sv[0]].fd, sv[0]);
        CHECK_INT(recs[sv[0]].mask, EV_READABLE);
        CHECK(recs[sv[0]].data == &token1);
        CHECK_INT(recs[sv[1]].calls, 0);

        /* level-triggered: still readable until read, even with -1 (no wait) */
        CHECK_INT(ev_run_once(fx->loop, -1), 1);
        CHECK_INT(recs[sv[0]].calls, 2);
        CHECK_INT(read(sv[0], buf, sizeof(buf)), 5);
        CHECK_INT(ev_run_once(fx->loop, 0), 0);
        CHECK_INT(recs[sv[0]].calls, 2);

        /* a pipe */
        fx_pipe(fx, p);
        CHECK_INT(ev_add(fx->loop, p[0], EV_READABLE, rec_cb, &token2), 0);
        CHECK_INT(ev_run_once(fx->loop, 0), 0);
        fx_write(fx, p[1], "x");
        CHECK_INT(ev_run_once(fx->loop, 1000), 1);
        CHECK_INT(recs[p[0]].calls, 1);
        CHECK_INT(recs[p[0]].fd, p[0]);
        CHECK_INT(recs[p[0]].mask, EV_READABLE);
        CHECK(recs[p[0]].data == &token2);
        CHECK_INT(recs[sv[0]].calls, 2);
}

static void test_writable(void **state)
{
        struct fx *fx = *state;
        int sv[2], p[2];

        fx_socketpair(fx, sv);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_WRITABLE, rec_cb, &token1), 0);
        CHECK_INT(ev_run_once(fx->loop, 0), 1);
        CHECK_INT(recs[sv[0]].calls, 1);
        CHECK_INT(recs[sv[0]].mask, EV_WRITABLE);
        CHECK(recs[sv[0]].data == &token1);

        /* both watched, nothing to read: writable only */
        CHECK_INT(ev_add(fx->loop, sv[1], EV_READABLE | EV_WRITABLE, rec_cb, &token2), 0);
        CHECK_INT(ev_run_once(fx->loop, 0), 2);
        CHECK_INT(recs[sv[0]].calls, 2);
        CHECK_INT(recs[sv[1]].calls, 1);
        CHECK_INT(recs[sv[1]].mask, EV_WRITABLE);
        CHECK(recs[sv[1]].data == &token2);

        /* the write end of a pipe */
        fx_pipe(fx, p);
        CHECK_INT(ev_add(fx->loop, p[1], EV_WRITABLE, rec_cb, &token1), 0);
        CHECK_INT(ev_add(fx->loop, p[0], EV_READABLE, rec_cb, &token2), 0);
        CHECK_INT(ev_run_once(fx->loop, 0), 3);
        CHECK_INT(recs[p[1]].calls, 1);
        CHECK_INT(recs[p[1]].mask, EV_WRITABLE);
        CHECK_INT(recs[p[0]].calls, 0);
}

static void test_del_writable_keeps_readable(void **state)
{
        struct fx *fx = *state;
        int sv[2];

        fx_socketpair(fx, sv);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE | EV_WRITABLE, rec_cb, &token1), 0);
        fx_write(fx, sv[1], "data");
        CHECK_INT(ev_run_once(fx->loop, 1000), 1);
        CHECK_INT(recs[sv[0]].mask, EV_READABLE | EV_WRITABLE);

        ev_del(fx->loop, sv[0], EV_WRITABLE);
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_READABLE);
        for (int i = 0; i < 3; i++) {
                CHECK_INT(ev_run_once(fx->loop, 0), 1);
                CHECK_INT(recs[sv[0]].calls, 2 + i);
                CHECK_INT(recs[sv[0]].mask, EV_READABLE);
                CHECK(recs[sv[0]].data == &token1);     /* data kept while watched */
        }

        ev_del(fx->loop, sv[0], EV_READABLE);
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_NONE);
        CHECK_INT(ev_run_once(fx->loop, 0), 0);
        CHECK_INT(recs[sv[0]].calls, 4);
}

static void test_mask(void **state)
{
        struct fx *fx = *state;
        int sv[2], setsize = ev_loop_setsize(fx->loop);

        fx_socketpair(fx, sv);
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_NONE);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token1), 0);
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_READABLE);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_WRITABLE, rec_cb, &token2), 0);
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_READABLE | EV_WRITABLE);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token2), 0);      /* already there */
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_READABLE | EV_WRITABLE);
        CHECK_INT(ev_mask(fx->loop, sv[1]), EV_NONE);

        /* the last ev_add's data is what callbacks get */
        CHECK_INT(ev_run_once(fx->loop, 0), 1);
        CHECK(recs[sv[0]].data == &token2);
        CHECK_INT(recs[sv[0]].mask, EV_WRITABLE);

        ev_del(fx->loop, sv[0], EV_READABLE);
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_WRITABLE);
        ev_del(fx->loop, sv[0], EV_READABLE);                   /* not watched: no-op */
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_WRITABLE);
        ev_del(fx->loop, sv[0], EV_WRITABLE);
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_NONE);
        ev_del(fx->loop, sv[0], EV_READABLE | EV_WRITABLE);     /* nothing left: no-op */
        ev_del(fx->loop, sv[1], EV_READABLE | EV_WRITABLE);     /* never watched */
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_NONE);

        /* both at once, and both removed at once */
        CHECK_INT(ev_add(fx->loop, sv[1], EV_READABLE | EV_WRITABLE, rec_cb, &token1), 0);
        CHECK_INT(ev_mask(fx->loop, sv[1]), EV_READABLE | EV_WRITABLE);
        ev_del(fx->loop, sv[1], EV_READABLE | EV_WRITABLE);
        CHECK_INT(ev_mask(fx->loop, sv[1]), EV_NONE);
        CHECK_INT(ev_run_once(fx->loop, 0), 0);

        /* out of range: nothing watched there */
        CHECK_INT(ev_mask(fx->loop, -1), EV_NONE);
        CHECK_INT(ev_mask(fx->loop, setsize), EV_NONE);
        CHECK_INT(ev_mask(fx->loop, setsize + 1000), EV_NONE);
        ev_del(fx->loop, -1, EV_READABLE);                      /* never fails */
        ev_del(fx->loop, setsize, EV_READABLE);
}

static void test_hangup(void **state)
{
        struct fx *fx = *state;
        int sv[2], p[2];
        char buf[4];

        /* the peer closes a socket */
        fx_socketpair(fx, sv);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token1), 0);
        CHECK_INT(ev_run_once(fx->loop, 0), 0);
        fx_close(fx, sv[1]);
        CHECK_INT(ev_run_once(fx->loop, 1000), 1);
        CHECK_INT(recs[sv[0]].calls, 1);
        CHECK_INT(recs[sv[0]].mask, EV_READABLE);       /* only what is watched */
        CHECK(recs[sv[0]].data == &token1);
        CHECK_INT(read(sv[0], buf, sizeof(buf)), 0);    /* end of file */

        /* the write end of a pipe is closed */
        fx_pipe(fx, p);
        CHECK_INT(ev_add(fx->loop, p[0], EV_READABLE, rec_cb, &token2), 0);
        fx_close(fx, p[1]);
        ev_del(fx->loop, sv[0], EV_READABLE);
        CHECK_INT(ev_run_once(fx->loop, 1000), 1);
        CHECK_INT(recs[p[0]].calls, 1);
        CHECK_INT(recs[p[0]].mask, EV_READABLE);
        CHECK(recs[p[0]].data == &token2);
        CHECK_INT(read(p[0], buf, sizeof(buf)), 0);
}

static void test_timeout(void **state)
{
        struct fx *fx = *state;
        int sv[2];
        uint64_t t0, elapsed;

        /* nothing watched at all */
        t0 = now_ms();
        CHECK_INT(ev_run_once(fx->loop, 50), 0);
        elapsed = now_ms() - t0;
        if (elapsed < 40)
                fail_msg("[%s backend] empty loop: 50 ms wait returned after %llu ms",
                         fx->name, (unsigned long long) elapsed);

        /* an idle watched socket */
        fx_socketpair(fx, sv);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token1), 0);
        t0 = now_ms();
        CHECK_INT(ev_run_once(fx->loop, 50), 0);
        elapsed = now_ms() - t0;
        if (elapsed < 40)
                fail_msg("[%s backend] idle loop: 50 ms wait returned after %llu ms",
                         fx->name, (unsigned long long) elapsed);
        CHECK_INT(recs[sv[0]].calls, 0);
}

/* Interest that was removed must not wake the loop either (a loop that
 * returns at once forever spins the CPU), even though dispatch would hide it. */
static void test_del_stops_wakeups(void **state)
{
        struct fx *fx = *state;
        int sv[2];
        uint64_t t0, elapsed;

        fx_socketpair(fx, sv);
        fx_write(fx, sv[1], "pending");         /* sv[0] is readable and writable */
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE | EV_WRITABLE, rec_cb, &token1), 0);
        CHECK_INT(ev_run_once(fx->loop, 0), 1);
        CHECK_INT(recs[sv[0]].mask, EV_READABLE | EV_WRITABLE);

        /* one interest left, the other dropped: only the kept one counts */
        ev_del(fx->loop, sv[0], EV_READABLE);
        CHECK_INT(ev_run_once(fx->loop, 0), 1);
        CHECK_INT(recs[sv[0]].mask, EV_WRITABLE);

        /* nothing left: the loop sleeps the whole timeout */
        ev_del(fx->loop, sv[0], EV_WRITABLE);
        t0 = now_ms();
        CHECK_INT(ev_run_once(fx->loop, 50), 0);
        elapsed = now_ms() - t0;
        if (elapsed < 40)
                fail_msg("[%s backend] all interest removed, yet the 50 ms wait returned after %llu ms",
                         fx->name, (unsigned long long) elapsed);

        /* writable dropped, readable kept on a socket with nothing to read */
        CHECK_INT(ev_add(fx->loop, sv[1], EV_READABLE | EV_WRITABLE, rec_cb, &token2), 0);
        CHECK_INT(ev_run_once(fx->loop, 0), 1);
        CHECK_INT(recs[sv[1]].mask, EV_WRITABLE);
        ev_del(fx->loop, sv[1], EV_WRITABLE);
        t0 = now_ms();
        CHECK_INT(ev_run_once(fx->loop, 50), 0);
        elapsed = now_ms() - t0;
        if (elapsed < 40)
                fail_msg("[%s backend] writable removed, yet the 50 ms wait returned after %llu ms",
                         fx->name, (unsigned long long) elapsed);
        CHECK_INT(recs[sv[1]].calls, 1);
        CHECK_INT(recs[sv[0]].calls, 2);
}

/* Random adds and removes over many descriptors that are all readable and
 * writable: after every step, one round dispatches exactly the watched
 * descriptors, each once, with exactly its watched mask and latest data. */
static void test_add_del_churn(void **state)
{
        enum { N = 40, OPS = 1500 };
        struct fx *fx = *state;
        int fds[N], want[N];
        static int tokens[N];
        uint64_t rng = 0x5851f42d4c957f2dull;

        for (int i = 0; i < N; i++) {
                int sv[2];

                fx_socketpair(fx, sv);
                fx_write(fx, sv[1], "x");       /* never read: stays readable */
                fds[i] = sv[0];
                want[i] = EV_NONE;
        }
        for (int op = 0; op < OPS; op++) {
                int i, m, expected = 0;

                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                i = (int) (rng % N);
                m = (int) ((rng >> 8) % 3) + 1;         /* R, W or both */
                if ((rng >> 16) % 2) {
                        CHECK_INT(ev_add(fx->loop, fds[i], m, rec_cb, &tokens[i]), 0);
                        want[i] |= m;
                } else {
                        ev_del(fx->loop, fds[i], m);
                        want[i] &= ~m;
                }
                memset(recs, 0, sizeof(recs));
                for (int k = 0; k < N; k++) {
                        if (ev_mask(fx->loop, fds[k]) != want[k])
                                fail_msg("[%s backend] op %d: ev_mask(fd %d) %d, expected %d",
                                         fx->name, op, fds[k], ev_mask(fx->loop, fds[k]), want[k]);
                        if (want[k])
                                expected++;
                }
                CHECK_INT(ev_run_once(fx->loop, 0), expected);
                for (int k = 0; k < N; k++) {
                        const struct rec *r = &recs[fds[k]];

                        if (r->calls != (want[k] ? 1 : 0) || r->mask != want[k] ||
                            (want[k] && r->data != &tokens[k]))
                                fail_msg("[%s backend] op %d: fd %d dispatched %d times with mask %d, "
                                         "expected %d times with mask %d", fx->name, op, fds[k],
                                         r->calls, r->mask, want[k] ? 1 : 0, want[k]);
                }
        }
}

struct many {
        int fd;
        int calls;
};

static void many_cb(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct many *m = data;
        char c;

        (void) loop;
        assert_int_equal(fd, m->fd);
        assert_int_equal(mask, EV_READABLE);
        m->calls++;
        assert_int_equal(read(fd, &c, 1), 1);   /* drained: not readable any more */
}

static void test_many_fds(void **state)
{
        enum { N = 200 };
        struct fx *fx = *state;
        static struct many m[N];
        int total = 0, rounds = 0;

        for (int i = 0; i < N; i++) {
                int sv[2];

                fx_socketpair(fx, sv);
                m[i].fd = sv[0];
                m[i].calls = 0;
                CHECK(sv[0] < ev_loop_setsize(fx->loop) && sv[1] < ev_loop_setsize(fx->loop));
                CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, many_cb, &m[i]), 0);
                fx_write(fx, sv[1], "x");
        }
        while (total < N && rounds < 50) {
                int n = ev_run_once(fx->loop, 1000);

                CHECK(n > 0);
                total += n;
                rounds++;
        }
        CHECK_INT(total, N);
        for (int i = 0; i < N; i++)
                if (m[i].calls != 1)
                        fail_msg("[%s backend] fd %d dispatched %d times, expected once",
                                 fx->name, m[i].fd, m[i].calls);
        CHECK_INT(ev_run_once(fx->loop, 0), 0);
}

/* Two descriptors fire in the same round; whichever callback runs first
 * removes and closes the other: the other's callback must not run. */
struct killer {
        struct fx *fx;
        int self;
        int *other;     /* the other's fd, -1 once closed */
        int calls;
};

static void killer_cb(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct killer *k = data;

        assert_int_equal(fd, k->self);
        assert_int_equal(mask, EV_READABLE);
        k->calls++;
        if (*k->other >= 0) {
                ev_del(loop, *k->other, EV_READABLE | EV_WRITABLE);
                fx_close(k->fx, *k->other);
                *k->other = -1;
        }
}

static void test_del_other_in_callback(void **state)
{
        struct fx *fx = *state;
        int p[2], q[2], fd_a, fd_b, n;
        struct killer ka, kb;

        fx_socketpair(fx, p);
        fx_socketpair(fx, q);
        fd_a = p[0];
        fd_b = q[0];
        ka = (struct killer) { fx, fd_a, &fd_b, 0 };
        kb = (struct killer) { fx, fd_b, &fd_a, 0 };
        CHECK_INT(ev_add(fx->loop, p[0], EV_READABLE, killer_cb, &ka), 0);
        CHECK_INT(ev_add(fx->loop, q[0], EV_READABLE, killer_cb, &kb), 0);
        fx_write(fx, p[1], "a");
        fx_write(fx, q[1], "b");

        n = ev_wait(fx->loop, 1000);
        CHECK_INT(n, 2);        /* both fired in the same round */
        ev_dispatch(fx->loop, n);
        CHECK_INT(ka.calls + kb.calls, 1);
        /* exactly the one that did not run is closed */
        CHECK_INT(fd_a < 0, ka.calls == 0);
        CHECK_INT(fd_b < 0, kb.calls == 0);
        CHECK_INT(ev_mask(fx->loop, ka.calls ? p[0] : q[0]), EV_READABLE);
        CHECK_INT(ev_mask(fx->loop, ka.calls ? q[0] : p[0]), EV_NONE);

        /* the survivor is still watched and (unread) still readable */
        CHECK_INT(ev_run_once(fx->loop, 0), 1);
        CHECK_INT(ka.calls + kb.calls, 2);
        CHECK(ka.calls == 2 || kb.calls == 2);
}

/* EV_LAST: such an fd is dispatched after every other one of the same round
 * (listeners after the clients already connected), whatever order the
 * backend reported them in; one removed meanwhile is not dispatched. */
static int order[8], n_order;

static void order_cb(struct ev_loop *loop, int fd, void *data, int mask)
{
        int *drop = data;

        (void) mask;
        assert_true(n_order < 8);
        order[n_order++] = fd;
        if (drop && *drop >= 0)
                ev_del(loop, *drop, EV_READABLE);
}

static void test_last_dispatched_after_others(void **state)
{
        struct fx *fx = *state;
        int a[2], b[2], c[2], n, no_drop = -1;

        /* the EV_LAST one gets the lowest fd and is added first, so that no
         * backend reports it last by chance of its own order */
        fx_socketpair(fx, a);
        fx_socketpair(fx, b);
        fx_socketpair(fx, c);
        CHECK_INT(ev_add(fx->loop, a[0], EV_READABLE | EV_LAST, order_cb, &no_drop), 0);
        CHECK_INT(ev_add(fx->loop, b[0], EV_READABLE, order_cb, &no_drop), 0);
        CHECK_INT(ev_add(fx->loop, c[0], EV_READABLE, order_cb, &no_drop), 0);
        CHECK_INT(ev_mask(fx->loop, a[0]), EV_READABLE);        /* a hint, not an event */
        fx_write(fx, a[1], "a");
        fx_write(fx, b[1], "b");
        fx_write(fx, c[1], "c");

        n_order = 0;
        n = ev_wait(fx->loop, 1000);
        CHECK_INT(n, 3);
        ev_dispatch(fx->loop, n);
        CHECK_INT(n_order, 3);
        CHECK_INT(order[2], a[0]);
        CHECK(order[0] != order[1] && order[0] != a[0] && order[1] != a[0]);

        /* added again without the hint, after being forgotten: an ordinary fd */
        ev_del(fx->loop, a[0], EV_READABLE);
        CHECK_INT(ev_add(fx->loop, a[0], EV_READABLE, order_cb, &no_drop), 0);
        ev_del(fx->loop, b[0], EV_READABLE);
        CHECK_INT(ev_add(fx->loop, b[0], EV_READABLE | EV_LAST, order_cb, &no_drop), 0);
        n_order = 0;
        n = ev_wait(fx->loop, 1000);
        CHECK_INT(n, 3);
        ev_dispatch(fx->loop, n);
        CHECK_INT(n_order, 3);
        CHECK_INT(order[2], b[0]);
}

static void test_last_removed_by_an_earlier_callback(void **state)
{
        struct fx *fx = *state;
        int a[2], b[2], n, drop;

        fx_socketpair(fx, a);
        fx_socketpair(fx, b);
        drop = a[0];
        CHECK_INT(ev_add(fx->loop, a[0], EV_READABLE | EV_LAST, order_cb, NULL), 0);
        CHECK_INT(ev_add(fx->loop, b[0], EV_READABLE, order_cb, &drop), 0);
        fx_write(fx, a[1], "a");
        fx_write(fx, b[1], "b");

        n_order = 0;
        n = ev_wait(fx->loop, 1000);
        CHECK_INT(n, 2);
        ev_dispatch(fx->loop, n);
        CHECK_INT(n_order, 1);          /* b ran first and dropped a */
        CHECK_INT(order[0], b[0]);
        CHECK_INT(ev_mask(fx->loop, a[0]), EV_NONE);
}

/* A callback that drops only part of another descriptor's interest: that
 * descriptor's callback runs with what is still watched. */
struct trimmer {
        int self;
        int other;
        int calls;
        int mask;
        int *round_calls;
};

static void trimmer_cb(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct trimmer *t = data;

        assert_int_equal(fd, t->self);
        t->calls++;
        t->mask = mask;
        if ((*t->round_calls)++ == 0)
                ev_del(loop, t->other, EV_WRITABLE);    /* the first of the round trims the other */
}

static void test_del_part_of_other_in_callback(void **state)
{
        struct fx *fx = *state;
        int p[2], q[2], n, round_calls = 0;
        struct trimmer ta, tb;

        fx_socketpair(fx, p);
        fx_socketpair(fx, q);
        ta = (struct trimmer) { p[0], q[0], 0, 0, &round_calls };
        tb = (struct trimmer) { q[0], p[0], 0, 0, &round_calls };
        CHECK_INT(ev_add(fx->loop, p[0], EV_READABLE | EV_WRITABLE, trimmer_cb, &ta), 0);
        CHECK_INT(ev_add(fx->loop, q[0], EV_READABLE | EV_WRITABLE, trimmer_cb, &tb), 0);
        fx_write(fx, p[1], "a");
        fx_write(fx, q[1], "b");
        n = ev_wait(fx->loop, 1000);
        CHECK_INT(n, 2);
        ev_dispatch(fx->loop, n);
        CHECK_INT(ta.calls, 1);
        CHECK_INT(tb.calls, 1);
        /* one got both, the other only what was left */
        if (!((ta.mask == (EV_READABLE | EV_WRITABLE) && tb.mask == EV_READABLE) ||
              (tb.mask == (EV_READABLE | EV_WRITABLE) && ta.mask == EV_READABLE)))
                fail_msg("[%s backend] masks %d and %d, expected 3 and 1 in some order",
                         fx->name, ta.mask, tb.mask);
}

static void test_readd_after_del(void **state)
{
        struct fx *fx = *state;
        int sv[2];

        fx_socketpair(fx, sv);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token1), 0);
        ev_del(fx->loop, sv[0], EV_READABLE);
        fx_write(fx, sv[1], "x");
        CHECK_INT(ev_run_once(fx->loop, 0), 0);         /* forgotten: nothing fires */
        CHECK_INT(recs[sv[0]].calls, 0);

        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token2), 0);
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_READABLE);
        CHECK_INT(ev_run_once(fx->loop, 1000), 1);
        CHECK_INT(recs[sv[0]].calls, 1);
        CHECK_INT(recs[sv[0]].mask, EV_READABLE);
        CHECK(recs[sv[0]].data == &token2);

        /* several cycles, alternating interests */
        for (int i = 0; i < 5; i++) {
                ev_del(fx->loop, sv[0], EV_READABLE | EV_WRITABLE);
                CHECK_INT(ev_run_once(fx->loop, 0), 0);
                CHECK_INT(ev_add(fx->loop, sv[0], EV_WRITABLE, rec_cb, &token1), 0);
                CHECK_INT(ev_run_once(fx->loop, 0), 1);
                CHECK_INT(recs[sv[0]].mask, EV_WRITABLE);
                CHECK(recs[sv[0]].data == &token1);
                ev_del(fx->loop, sv[0], EV_WRITABLE);
                CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token2), 0);
                CHECK_INT(ev_run_once(fx->loop, 0), 1);
                CHECK_INT(recs[sv[0]].mask, EV_READABLE);
                CHECK(recs[sv[0]].data == &token2);
        }
        CHECK_INT(recs[sv[0]].calls, 11);
}

/* ev_close(): the descriptor is closed and forgotten (on epoll without an
 * epoll_ctl: closing ends the kernel's watch); a new descriptor that gets
 * the same number sees none of the old one's events. */
static void test_close_forgets(void **state)
{
        struct fx *fx = *state;
        unsigned ctl_before;
        int sv[2], nv[2];

        fx_socketpair(fx, sv);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE | EV_WRITABLE, rec_cb, &token1), 0);
        fx_write(fx, sv[1], "x");
        ctl_before = epoll_ctl_calls;
        ev_close(fx->loop, sv[0]);
        if (strcmp(fx->name, "epoll") == 0)
                CHECK_INT(epoll_ctl_calls - ctl_before, 0);
        CHECK_INT(fcntl(sv[0], F_GETFD), -1);           /* closed */
        CHECK_INT(ev_mask(fx->loop, sv[0]), EV_NONE);
        for (int i = 0; i < fx->nfds; i++)
                if (fx->fds[i] == sv[0])
                        fx->fds[i] = -1;                /* closed by ev_close */
        CHECK_INT(ev_run_once(fx->loop, 0), 0);         /* forgotten: nothing fires */
        CHECK_INT(recs[sv[0]].calls, 0);

        fx_socketpair(fx, nv);                          /* the lowest number: the old one's */
        CHECK_INT(nv[0], sv[0]);
        CHECK_INT(ev_add(fx->loop, nv[0], EV_READABLE, rec_cb, &token2), 0);
        CHECK_INT(ev_run_once(fx->loop, 0), 0);         /* nothing to read on the new one */
        fx_write(fx, nv[1], "y");
        CHECK_INT(ev_run_once(fx->loop, 1000), 1);
        CHECK_INT(recs[nv[0]].calls, 1);
        CHECK(recs[nv[0]].data == &token2);
}

static void test_add_out_of_range(void **state)
{
        struct fx *fx = *state;
        int setsize = ev_loop_setsize(fx->loop);

        CHECK_INT(setsize, LOOP_SETSIZE);
        CHECK_INT(ev_add(fx->loop, setsize, EV_READABLE, rec_cb, &token1), -ERANGE);
        CHECK_INT(ev_add(fx->loop, setsize + 1, EV_WRITABLE, rec_cb, &token1), -ERANGE);
        CHECK_INT(ev_add(fx->loop, INT32_MAX, EV_READABLE, rec_cb, &token1), -ERANGE);
        CHECK_INT(ev_add(fx->loop, -1, EV_READABLE, rec_cb, &token1), -ERANGE);
        CHECK_INT(ev_run_once(fx->loop, 0), 0);
}

/* A loop exactly big enough for one descriptor: the highest fd it may watch
 * works, one more is refused. */
static void test_highest_fd(void **state)
{
        struct fx *fx = *state;
        struct ev_loop *small = NULL;
        int sv[2], lo, hi;

        fx_socketpair(fx, sv);
        lo = sv[0] < sv[1] ? sv[0] : sv[1];
        hi = sv[0] < sv[1] ? sv[1] : sv[0];
        CHECK_INT(ev_loop_new(ev_backend_find(fx->name), lo + 1, &small), 0);
        CHECK_INT(ev_loop_setsize(small), lo + 1);
        rec_loop = small;
        CHECK_INT(ev_add(small, hi, EV_READABLE, rec_cb, &token1), -ERANGE);
        CHECK_INT(ev_add(small, lo, EV_READABLE, rec_cb, &token1), 0);
        fx_write(fx, hi, "x");
        CHECK_INT(ev_run_once(small, 1000), 1);
        CHECK_INT(recs[lo].calls, 1);
        CHECK_INT(recs[lo].mask, EV_READABLE);
        CHECK(recs[lo].data == &token1);
        ev_loop_free(small);
        rec_loop = fx->loop;
}

static void test_wait_dispatch_split(void **state)
{
        struct fx *fx = *state;
        int sv[2], n;

        fx_socketpair(fx, sv);
        CHECK_INT(ev_add(fx->loop, sv[0], EV_READABLE, rec_cb, &token1), 0);
        CHECK_INT(ev_add(fx->loop, sv[1], EV_READABLE, rec_cb, &token2), 0);
        CHECK_INT(ev_wait(fx->loop, 0), 0);
        ev_dispatch(fx->loop, 0);
        fx_write(fx, sv[1], "x");

        n = ev_wait(fx->loop, 1000);
        CHECK_INT(n, 1);
        CHECK_INT(recs[sv[0]].calls, 0);        /* ev_wait runs no callback */
        ev_dispatch(fx->loop, n);
        CHECK_INT(recs[sv[0]].calls, 1);
        CHECK_INT(recs[sv[0]].fd, sv[0]);
        CHECK_INT(recs[sv[0]].mask, EV_READABLE);
        CHECK(recs[sv[0]].data == &token1);
        CHECK_INT(recs[sv[1]].calls, 0);

        /* both sides: the same as ev_run_once would do */
        fx_write(fx, sv[0], "y");
        n = ev_wait(fx->loop, 1000);
        CHECK_INT(n, 2);
        ev_dispatch(fx->loop, n);
        CHECK_INT(recs[sv[0]].calls, 2);
        CHECK_INT(recs[sv[1]].calls, 1);
        CHECK_INT(recs[sv[1]].mask, EV_READABLE);
        CHECK(recs[sv[1]].data == &token2);
        CHECK_INT(ev_run_once(fx->loop, 0), 2);
        CHECK_INT(recs[sv[0]].calls, 3);
        CHECK_INT(recs[sv[1]].calls, 2);
}

static void test_loop_properties(void **state)
{
        struct fx *fx = *state;
        const struct ev_backend *b = ev_backend_find(fx->name);
        struct ev_loop *big = NULL, *bad = NULL;

        CHECK(ev_loop_backend(fx->loop) == b);
        CHECK(strcmp(b->name, fx->name) == 0);
        CHECK_INT(ev_loop_setsize(fx->loop), LOOP_SETSIZE);
        CHECK_INT(ev_loop_new(b, 100000, &big), 0);
        CHECK_INT(ev_loop_setsize(big), b->max_fds ? (int) b->max_fds : 100000);
        ev_loop_free(big);
        CHECK_INT(ev_loop_new(b, 0, &bad), -EINVAL);
        CHECK_INT(ev_loop_new(b, -5, &bad), -EINVAL);
        CHECK(bad == NULL);
}

/* ---- the registry -------------------------------------------------------- */

static void test_registry(void **state)
{
        const char *names = ev_backend_names();
#ifdef HAVE_LIBURING
        static const char *const all[] = { "epoll", "poll", "select", "io_uring" };
#else
        static const char *const all[] = { "epoll", "poll", "select" };
#endif

        (void) state;
        assert_null(ev_backend_find("nope"));
        assert_null(ev_backend_find(""));
        assert_null(ev_backend_find("EPOLL"));
        assert_null(ev_backend_find("epol"));
        assert_non_null(names);
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
                const struct ev_backend *b = ev_backend_find(all[i]);

                if (!b)
                        fail_msg("backend %s not found", all[i]);
                assert_string_equal(b->name, all[i]);
                if (!strstr(names, all[i]))
                        fail_msg("backend %s missing from \"%s\"", all[i], names);
                assert_non_null(b->create);
                assert_non_null(b->destroy);
                assert_non_null(b->add);
                assert_non_null(b->del);
                assert_non_null(b->poll);
        }
#ifdef HAVE_LIBURING
        assert_string_equal(names, "epoll, poll, select, io_uring");
        assert_null(ev_backend_find("uring"));
        assert_null(ev_backend_find("io-uring"));
#else
        assert_string_equal(names, "epoll, poll, select");
        assert_null(ev_backend_find("io_uring"));
#endif
        assert_ptr_equal(ev_backend_default(), ev_backend_find("epoll"));
        assert_int_equal(ev_backend_find("epoll")->max_fds, 0);
        assert_int_equal(ev_backend_find("poll")->max_fds, 0);
        ev_loop_free(NULL);
}

/* Every backend built must run here (the suite runs each one); what a
 * refusal says is checked by tests/integration/test_cli.py (IoUringRefused). */
static void test_backend_check(void **state)
{
        static const char *const all[] = { "epoll", "poll", "select", "io_uring" };

        (void) state;
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
                const struct ev_backend *b = ev_backend_find(all[i]);
                char *why = (char *) "unset";

                if (!b)
                        continue;
                assert_int_equal(ev_backend_check(b, &why), 0);
                assert_null(why);
        }
}

static void test_select_limit(void **state)
{
        const struct ev_backend *b = ev_backend_find("select");
        struct ev_loop *loop = NULL;

        (void) state;
        assert_non_null(b);
        assert_int_equal(b->max_fds, FD_SETSIZE);
        assert_int_equal(ev_loop_new(b, 100000, &loop), 0);
        assert_int_equal(ev_loop_setsize(loop), FD_SETSIZE);
        assert_int_equal(ev_add(loop, FD_SETSIZE, EV_READABLE, rec_cb, NULL), -ERANGE);
        assert_int_equal(ev_add(loop, FD_SETSIZE + 1, EV_READABLE, rec_cb, NULL), -ERANGE);
        ev_loop_free(loop);
        /* a smaller loop is not grown */
        assert_int_equal(ev_loop_new(b, 64, &loop), 0);
        assert_int_equal(ev_loop_setsize(loop), 64);
        ev_loop_free(loop);
}

#ifdef HAVE_LIBURING
/* How long an io_uring wait waits, and for how many completions. */
static void test_uring_wait_plan(void **state)
{
        struct ev_uring_wait w;

        (void) state;
        /* idle: one completion, as long as the caller allows */
        w = ev_uring_wait_plan(-1, 0, 0, 0);
        assert_int_equal(w.nr, 1);
        assert_int_equal(w.ns, -1);
        w = ev_uring_wait_plan(250, 0, 0, 0);
        assert_int_equal(w.ns, 250000000ll);
        /* sends submitted with the wait: one more than those, 1 ms at most */
        w = ev_uring_wait_plan(-1, 3, 0, 0);
        assert_int_equal(w.nr, 4);
        assert_int_equal(w.ns, 1000000ll);
        w = ev_uring_wait_plan(0, 3, 0, 0);             /* a timer due now wins */
        assert_int_equal(w.ns, 0);
        /* one busy client: no batching */
        w = ev_uring_wait_plan(-1, 1, 1, 1);
        assert_int_equal(w.nr, 2);
        assert_int_equal(w.ns, 1000000ll);
        /* ten clients all served last time: an eighth of ten is one, no batching */
        w = ev_uring_wait_plan(-1, 10, 10, 10);
        assert_int_equal(w.nr, 11);
        assert_int_equal(w.ns, 1000000ll);
        /* 100 clients, 20 served last time: as many as an eighth of them (12) */
        w = ev_uring_wait_plan(-1, 20, 20, 100);
        assert_int_equal(w.nr, 1 + 20 + 11);
        assert_int_equal(w.ns, 50000ll);
        /* 500 clients, 5 last time: 5 */
        w = ev_uring_wait_plan(-1, 5, 5, 500);
        assert_int_equal(w.nr, 1 + 5 + 4);
        assert_int_equal(w.ns, 50000ll);
        /* 5,000 clients, 900 last time: at most 32 */
        w = ev_uring_wait_plan(-1, 900, 900, 5000);
        assert_int_equal(w.nr, 1 + 900 + 31);
        assert_int_equal(w.ns, 50000ll);
        /* batching never waits longer than the caller's timeout */
        w = ev_uring_wait_plan(0, 900, 900, 5000);
        assert_int_equal(w.ns, 0);
        w = ev_uring_wait_plan(-1, 0, 900, 5000);       /* nothing sent: still 50 us */
        assert_int_equal(w.nr, 32);
        assert_int_equal(w.ns, 50000ll);
}
#endif

#ifdef HAVE_LIBURING
/* The lowest free descriptor: what a leak would move. */
static int lowest_free_fd(void)
{
        int fd = dup(0);

        assert_true(fd >= 0);
        close(fd);
        return fd;
}

/* A wait the kernel refuses for a transient reason (EAGAIN: short of memory;
 * EBUSY: no room for CQEs; EINTR: a signal) is tried again by the backend:
 * the caller gets the event, not the error. */
static void test_uring_wait_transient(void **state)
{
        static const int errors[] = { -EAGAIN, -EBUSY, -EINTR };
        struct ev_loop *loop = NULL;
        int sv[2];

        (void) state;
        assert_int_equal(ev_loop_new(ev_backend_find("io_uring"), LOOP_SETSIZE, &loop), 0);
        rec_loop = loop;
        memset(recs, 0, sizeof(recs));
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(write(sv[1], "x", 1), 1);
        assert_int_equal(ev_add(loop, sv[0], EV_READABLE, rec_cb, &token1), 0);
        for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
                int n, calls = 0;

                /* each wait has a poll to submit: armed again after each event */
                wait_calls = 0;
                wait_fails = 2;
                wait_error = errors[i];
                /* EAGAIN, EBUSY: the first ev_wait() has the event; EINTR
                 * may also end one early (the caller waits again), never
                 * with an error */
                do {
                        n = ev_wait(loop, 1000);
                        if (n < 0 || (n == 0 && errors[i] != -EINTR))
                                fail_msg("wait failing twice with %s: ev_wait returned %d, expected the event",
                                         strerrordesc_np(-errors[i]), n);
                } while (n == 0 && ++calls < 3);
                assert_int_equal(n, 1);
                assert_true(wait_calls >= 3);
                ev_dispatch(loop, n);
                assert_int_equal(recs[sv[0]].calls, (int) i + 1);
                assert_int_equal(recs[sv[0]].mask, EV_READABLE);
        }
        ev_loop_free(loop);
        close(sv[0]);
        close(sv[1]);
}

/* A transient error that lasts is given up on, after a bounded number of
 * tries spread over time (no spin); another error at once. Either way the
 * loop still works afterwards. */
static void test_uring_wait_fails(void **state)
{
        struct ev_loop *loop = NULL;
        uint64_t t0, elapsed;
        int sv[2], n;

        (void) state;
        assert_int_equal(ev_loop_new(ev_backend_find("io_uring"), LOOP_SETSIZE, &loop), 0);
        rec_loop = loop;
        memset(recs, 0, sizeof(recs));
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(ev_add(loop, sv[0], EV_READABLE, rec_cb, &token1), 0);

        wait_calls = 0;
        wait_fails = 1000;
        wait_error = -EAGAIN;
        t0 = now_ms();
        assert_int_equal(ev_wait(loop, 1000), -EAGAIN);
        elapsed = now_ms() - t0;
        wait_fails = 0;
        if (wait_calls < 3 || wait_calls > 20)
                fail_msg("a lasting EAGAIN was tried %u times", wait_calls);
        if (elapsed < 100 || elapsed > 3000)
                fail_msg("a lasting EAGAIN was given up on after %llu ms (%u tries)",
                         (unsigned long long) elapsed, wait_calls);

        wait_calls = 0;
        wait_fails = 1;
        wait_error = -EBADR;            /* CQEs were lost: no use trying again */
        assert_int_equal(ev_wait(loop, 1000), -EBADR);
        assert_int_equal(wait_calls, 1);

        assert_int_equal(write(sv[1], "x", 1), 1);
        n = ev_wait(loop, 1000);
        assert_int_equal(n, 1);
        ev_dispatch(loop, n);
        assert_int_equal(recs[sv[0]].calls, 1);
        ev_loop_free(loop);
        close(sv[0]);
        close(sv[1]);
}

/* A poll the kernel has not taken (the wait failed, and so did the removal's
 * submission) when its fd stops being watched: the fd may be closed next and
 * the number be another file's by the time the SQE goes, so no SQE may name
 * it any more. */
static void test_uring_del_untaken_poll(void **state)
{
        struct ev_loop *loop = NULL;
        struct io_uring *ring;
        int p[2], fd;

        (void) state;
        assert_int_equal(ev_loop_new(ev_backend_find("io_uring"), LOOP_SETSIZE, &loop), 0);
        rec_loop = loop;
        ring = ev_uring_ring(loop);
        assert_int_equal(ev_wait(loop, 0), 0);          /* the ring is enabled */
        assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        fd = p[0];
        assert_int_equal(ev_add(loop, fd, EV_READABLE, rec_cb, &token1), 0);
        wait_fails = 1;
        wait_error = -EBADR;
        assert_int_equal(ev_wait(loop, 0), -EBADR);     /* the poll queued, not taken */
        get_events_fails = true;
        ev_del(loop, fd, EV_READABLE);
        get_events_fails = false;
        for (unsigned pos = *ring->sq.khead; pos != ring->sq.sqe_tail; pos++) {
                const struct io_uring_sqe *sqe = &ring->sq.sqes[pos & ring->sq.ring_mask];

                if (sqe->opcode != IORING_OP_NOP && sqe->opcode != IORING_OP_POLL_REMOVE &&
                    sqe->fd == fd)
                        fail_msg("an SQE (opcode %u) still names fd %d, no longer watched",
                                 sqe->opcode, fd);
        }
        close(p[0]);
        close(p[1]);
        assert_int_equal(ev_wait(loop, 0), 0);
        ev_loop_free(loop);
}

/* Operations tagged EV_URING_TAG_LAST (accepts) reach the handler after the
 * others reaped in the same round, each group in the order of its CQEs. */
static uint64_t handled[8];
static int n_handled;

static void order_handler(void *ctx, uint64_t user_data, int32_t res, uint32_t flags)
{
        (void) ctx;
        (void) res;
        (void) flags;
        assert_true(n_handled < 8);
        handled[n_handled++] = user_data;
}

static void test_uring_last_completions_after_others(void **state)
{
        /* 8-aligned "pointers" with their tags: two LAST first, two others */
        static const uint64_t sent[] = {
                0x100 | EV_URING_TAG_LAST, 0x200 | 2u, 0x300 | EV_URING_TAG_LAST, 0x400 | 3u,
        };
        static const uint64_t expected[] = { 0x200 | 2u, 0x400 | 3u, 0x100 | EV_URING_TAG_LAST, 0x300 | EV_URING_TAG_LAST };
        struct ev_loop *loop = NULL;

        (void) state;
        assert_int_equal(ev_loop_new(ev_backend_find("io_uring"), LOOP_SETSIZE, &loop), 0);
        ev_uring_set_handler(loop, order_handler, NULL);
        for (size_t i = 0; i < 4; i++) {
                struct io_uring_sqe *sqe = ev_uring_get_sqe(loop);

                assert_non_null(sqe);
                io_uring_prep_nop(sqe);
                io_uring_sqe_set_data64(sqe, sent[i]);
        }
        /* NOPs complete as they are submitted, in order: one round reaps them all */
        n_handled = 0;
        assert_true(ev_run_once(loop, 100) >= 0);
        assert_int_equal(n_handled, 4);
        for (int i = 0; i < 4; i++)
                if (handled[i] != expected[i])
                        fail_msg("completion %d: user_data %#llx, expected %#llx", i,
                                 (unsigned long long) handled[i], (unsigned long long) expected[i]);
        ev_loop_free(loop);
}

/* The probe's ring is freed whatever fails (it was kept when enabling it did). */
static void test_uring_probe_fails(void **state)
{
        struct ev_loop *loop = NULL;
        int before = lowest_free_fd();

        (void) state;
        enable_error = EPERM;
        assert_int_equal(ev_loop_new(ev_backend_find("io_uring"), LOOP_SETSIZE, &loop), -EPERM);
        enable_error = 0;
        assert_null(loop);
        assert_int_equal(lowest_free_fd(), before);
}
#endif

/* ---- one suite per backend ----------------------------------------------- */

static struct fx fx_epoll = { .name = "epoll" };
static struct fx fx_poll = { .name = "poll" };
static struct fx fx_select = { .name = "select" };
#ifdef HAVE_LIBURING
static struct fx fx_io_uring = { .name = "io_uring" };
#endif

/* named "epoll/test_readable" etc., so every failure names its backend */
#define EV_TEST(f, be) { #be "/" #f, f, fx_setup, fx_teardown, &fx_##be }
#define EV_SUITE(be) {                                          \
        EV_TEST(test_nothing_ready, be),                        \
        EV_TEST(test_readable, be),                             \
        EV_TEST(test_writable, be),                             \
        EV_TEST(test_del_writable_keeps_readable, be),          \
        EV_TEST(test_mask, be),                                 \
        EV_TEST(test_hangup, be),                               \
        EV_TEST(test_timeout, be),                              \
        EV_TEST(test_del_stops_wakeups, be),                    \
        EV_TEST(test_add_del_churn, be),                        \
        EV_TEST(test_many_fds, be),                             \
        EV_TEST(test_del_other_in_callback, be),                \
        EV_TEST(test_del_part_of_other_in_callback, be),        \
        EV_TEST(test_last_dispatched_after_others, be),         \
        EV_TEST(test_last_removed_by_an_earlier_callback, be),  \
        EV_TEST(test_readd_after_del, be),                      \
        EV_TEST(test_close_forgets, be),                        \
        EV_TEST(test_add_out_of_range, be),                     \
        EV_TEST(test_highest_fd, be),                           \
        EV_TEST(test_wait_dispatch_split, be),                  \
        EV_TEST(test_loop_properties, be),                      \
}

int main(int argc, char **argv)
{
        const struct CMUnitTest epoll_tests[] = EV_SUITE(epoll);
        const struct CMUnitTest poll_tests[] = EV_SUITE(poll);
        const struct CMUnitTest select_tests[] = EV_SUITE(select);
#ifdef HAVE_LIBURING
        /* built with io_uring: it must work here (a kernel that refuses it fails the suite) */
        const struct CMUnitTest io_uring_tests[] = EV_SUITE(io_uring);
#endif
        const struct CMUnitTest registry_tests[] = {
                cmocka_unit_test(test_registry),
                cmocka_unit_test(test_select_limit),
#ifdef HAVE_LIBURING
                cmocka_unit_test(test_uring_wait_plan),
#endif
        };
#ifdef HAVE_LIBURING
        /* Last: once a ring is freed, the kernel interrupts the thread's
         * next blocking call (EINTR, 10-20 ms later, from the ring's exit
         * work; 6.18), which the other backends' timing checks would see. */
        const struct CMUnitTest io_uring_failure_tests[] = {
                cmocka_unit_test(test_uring_wait_transient),
                cmocka_unit_test(test_uring_wait_fails),
                cmocka_unit_test(test_uring_del_untaken_poll),
                cmocka_unit_test(test_uring_probe_fails),
                cmocka_unit_test(test_uring_last_completions_after_others),
        };
#endif
        const struct CMUnitTest check_tests[] = {
                cmocka_unit_test(test_backend_check),
        };
        int failed = 0;

        test_main_args(argc, argv);
        alarm(120);     /* a backend that blocks forever fails instead of hanging */
        failed += cmocka_run_group_tests_name("event: registry", registry_tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("event: epoll backend", epoll_tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("event: poll backend", poll_tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("event: select backend", select_tests, NULL, NULL);
#ifdef HAVE_LIBURING
        failed += cmocka_run_group_tests_name("event: io_uring backend", io_uring_tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("event: io_uring failures", io_uring_failure_tests, NULL, NULL);
#endif
        /* last: the teardown of io_uring's probe ring interrupts the process's
         * next wait once (EINTR), which the timeout tests would take for a
         * short wait */
        failed += cmocka_run_group_tests_name("event: backend check", check_tests, NULL, NULL);
        return failed;
}
