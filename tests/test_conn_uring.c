/* SPDX-License-Identifier: MIT */
/* Unit tests for closing a connection on io_uring (src/conn-uring.c): a
 * descriptor number may not be let go while an SQE naming it is still
 * queued, or the next socket to get the number (an accept in any worker)
 * receives the dead connection's replies, or loses its bytes to the dead
 * connection's receive. Each test runs one worker on its own loop, with
 * socketpairs for clients, and makes the new socket right after the close,
 * before the loop's next wait: where the number would be reused. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include "testmain.h"

#include "conn-io.h"
#include "ev_uring.h"
#include "server.h"
#include "worker.h"

/* --wrap=io_uring_submit (Makefile.am): fails while fail_submit is set, as
 * with a kernel short of memory, so that the submission queue fills up. */
int __real_io_uring_submit(struct io_uring *ring);
int __wrap_io_uring_submit(struct io_uring *ring);
static bool fail_submit;

int __wrap_io_uring_submit(struct io_uring *ring)
{
        if (fail_submit)
                return -EAGAIN;
        return __real_io_uring_submit(ring);
}

static struct server srv;
static struct worker *w;
static struct listener_settings *set;
static int first_free;          /* the lowest free descriptor before a test */

static int lowest_free_fd(void)
{
        int fd = dup(0);

        assert_true(fd >= 0);
        close(fd);
        return fd;
}

static int setup(void **state)
{
        struct listener_opts o = {
                .greeting = (char *) "", .suffix = (char *) "hi", .suffix_len = 2,
                .mode = MODE_ECHO, .framing = FRAMING_LINE, .max_message = 4096,
        };

        (void) state;
        first_free = lowest_free_fd();
        memset(&srv, 0, sizeof(srv));
        pthread_mutex_init(&srv.sources_lock, NULL);
        srv.backend = ev_backend_find("io_uring");
        assert_non_null(srv.backend);
        srv.max_connections = 100;
        srv.timeout_s = 60;
        srv.n_workers = 1;
        assert_int_equal(worker_new(&srv, 0, 1024, &w), 0);
        assert_ptr_equal(w->io, &conn_io_uring);
        assert_non_null(w->io_state);
        srv.workers = &w;
        set = listener_settings_new(&o);
        assert_non_null(set);
        assert_int_equal(stats_new(1, &srv.stats), 0);
        assert_int_equal(stats_listener_new(srv.stats, &set->stats), 0);
        return 0;
}

static int teardown(void **state)
{
        (void) state;
        fail_submit = false;
        worker_free(w);
        listener_settings_unref(set);
        stats_free(srv.stats);
        source_table_free(&srv.sources);
        pthread_mutex_destroy(&srv.sources_lock);
        /* every descriptor of the test closed, none leaked */
        assert_int_equal(lowest_free_fd(), first_free);
        return 0;
}

static void pair(int sv[2])
{
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* A connection on fd, as worker_on_accept() makes one; returns it. */
static struct conn *start(int fd)
{
        static const struct listener l = { .serial = 1 };
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct source *src = NULL;
        unsigned evicted;

        assert_int_equal(server_source_hold(&srv, l.serial, &set->o, (struct sockaddr *) &sin, 0, &src,
                                            &evicted), 0);
        assert_non_null(src);
        srv.n_conns_total++;
        assert_int_equal(conn_start(w, fd, set, src, NULL, 0), 0);
        return conn_from_idle(w->conns.head.prev);      /* the newest */
}

static void run(int timeout_ms)
{
        int n = ev_wait(w->loop, timeout_ms);

        assert_true(n >= 0);
        ev_dispatch(w->loop, n);
}

static bool fd_open(int fd)
{
        return fcntl(fd, F_GETFD) >= 0;
}

/* What is readable on fd now: its bytes, "" at EOF, NULL if nothing. */
static const char *peek(int fd)
{
        static char buf[256];
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

        if (n < 0) {
                assert_int_equal(errno, EAGAIN);
                return NULL;
        }
        buf[n] = '\0';
        return buf;
}

/* A reply queued (its send not submitted yet), then the connection closed in
 * the same pass: the reply goes to the connection's own client or nowhere,
 * never to the socket made right after the close. */
static void test_send_queued_then_closed(void **state)
{
        int a[2], b[2], fd;
        struct conn *c;
        const char *got;

        (void) state;
        pair(a);
        fd = a[0];
        c = start(fd);
        run(0);                 /* the receive is armed */
        assert_int_equal(w->io->send(c, "for a\n", 6), 0);
        conn_close(c);
        pair(b);
        run(100);
        got = peek(b[1]);
        if (got)
                fail_msg("the new socket got %s\"%s\", meant for the closed connection",
                         *got ? "" : "EOF instead of nothing: ", got);
        /* the number was not let go while the send that named it was queued */
        assert_int_not_equal(b[0], fd);
        assert_int_not_equal(b[1], fd);
        /* its own client got it, then EOF; the number is free now */
        got = peek(a[1]);
        assert_non_null(got);
        assert_string_equal(got, "for a\n");
        got = peek(a[1]);
        assert_non_null(got);
        assert_string_equal(got, "");
        assert_false(fd_open(fd));
        close(a[1]);
        close(b[0]);
        close(b[1]);
}

/* The receive armed (not submitted yet), then the connection closed: the
 * socket made right after the close keeps its bytes. */
static void test_recv_queued_then_closed(void **state)
{
        int a[2], b[2], fd;
        const char *got;

        (void) state;
        pair(a);
        fd = a[0];
        conn_close(start(fd));          /* armed and closed in one pass */
        pair(b);
        assert_int_equal(write(b[1], "for b\n", 6), 6);
        run(100);
        got = peek(b[0]);
        if (!got)
                fail_msg("the new socket's bytes were taken (by the closed connection's receive)");
        assert_string_equal(got, "for b\n");
        got = peek(a[1]);
        assert_non_null(got);
        assert_string_equal(got, "");   /* EOF */
        assert_false(fd_open(fd));
        close(a[1]);
        close(b[0]);
        close(b[1]);
}

/* A connection closed and the loop freed before any wait: the close is done
 * anyway (by hand: nothing more goes to the kernel), no descriptor leaks. */
static void test_closed_at_teardown(void **state)
{
        int a[2], b[2];
        struct conn *c;

        (void) state;
        pair(a);
        pair(b);
        run(0);
        c = start(a[0]);
        run(0);
        assert_int_equal(w->io->send(c, "x\n", 2), 0);
        conn_close(c);                                  /* queued, not submitted */
        conn_close(start(b[0]));                        /* never submitted at all */
        assert_true(fd_open(a[0]));
        assert_true(fd_open(b[0]));
        worker_free(w);
        w = NULL;
        assert_false(fd_open(a[0]));
        assert_false(fd_open(b[0]));
        close(a[1]);
        close(b[1]);
}

/* The submission queue full and the kernel taking nothing: the close waits
 * until it has taken the queue, then the number is let go. */
static void test_close_with_queue_full(void **state)
{
        struct io_uring *ring = ev_uring_ring(w->loop);
        int a[2], b[2], fd;
        struct conn *c;
        const char *got;

        (void) state;
        pair(a);
        fd = a[0];
        c = start(fd);
        run(0);
        fail_submit = true;
        assert_int_equal(w->io->send(c, "for a\n", 6), 0);
        while (io_uring_sq_space_left(ring) > 0) {
                struct io_uring_sqe *sqe = ev_uring_get_sqe(w->loop);

                assert_non_null(sqe);
                io_uring_prep_nop(sqe);
                io_uring_sqe_set_data64(sqe, 0);
        }
        assert_null(ev_uring_get_sqe(w->loop));
        conn_close(c);
        pair(b);
        assert_true(fd_open(fd));
        assert_int_not_equal(b[0], fd);
        assert_int_not_equal(b[1], fd);
        fail_submit = false;
        run(100);
        assert_null(peek(b[1]));
        assert_false(fd_open(fd));
        got = peek(a[1]);
        assert_non_null(got);
        if (*got) {                     /* the cancellation fell back to shutdown(): the send may or may not have gone */
                assert_string_equal(got, "for a\n");
                got = peek(a[1]);
                assert_non_null(got);
        }
        assert_string_equal(got, "");
        close(a[1]);
        close(b[0]);
        close(b[1]);
}

/* Accepting with a multishot accept (conn_io.accept): a loopback listener,
 * watched as worker_watch_listeners() would. */
static struct listener acc_l = { .serial = 7, .nodelay = true, .addr_str = "127.0.0.1:test" };
static struct sockaddr_in acc_sin;

static void acc_listen(void)
{
        socklen_t len = sizeof(acc_sin);

        acc_l.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(acc_l.fd >= 0);
        acc_sin = (struct sockaddr_in) { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(bind(acc_l.fd, (struct sockaddr *) &acc_sin, sizeof(acc_sin)), 0);
        assert_int_equal(listen(acc_l.fd, 16), 0);
        assert_int_equal(getsockname(acc_l.fd, (struct sockaddr *) &acc_sin, &len), 0);
        w->listeners = calloc(1, sizeof(*w->listeners));
        assert_non_null(w->listeners);
        w->listeners[0] = (struct worker_listener) { .l = &acc_l, .set = listener_settings_ref(set), .w = w };
        w->n_listeners = 1;
        assert_non_null(w->io->accept);
        assert_int_equal(w->io->accept(&w->listeners[0], true), 0);
        w->listeners[0].watched = true;
}

static int acc_client(void)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *) &acc_sin, sizeof(acc_sin)), 0);
        return fd;
}

/* Run the loop until the worker has n connections (bounded). */
static void acc_wait_conns(uint32_t n)
{
        for (int i = 0; i < 100 && w->n_conns < n; i++)
                run(10);
        assert_int_equal(w->n_conns, n);
}

/* Each client is accepted by the one accept armed, with no new SQE, and
 * served: a message is answered. */
static void test_accept_multishot(void **state)
{
        int fd[3];
        char buf[16];
        ssize_t n = -1;

        (void) state;
        acc_listen();
        for (int i = 0; i < 3; i++) {
                fd[i] = acc_client();
                acc_wait_conns((uint32_t) i + 1);
        }
        assert_non_null(w->listeners[0].accept_op);     /* still armed */
        assert_int_equal(send(fd[2], "x\n", 2, 0), 2);
        for (int i = 0; i < 100 && (n = recv(fd[2], buf, sizeof(buf), MSG_DONTWAIT)) < 0; i++)
                run(10);
        assert_int_equal(n, 4);
        assert_memory_equal(buf, "xhi\n", 4);
        for (int i = 0; i < 3; i++)
                close(fd[i]);
        w->io->accept(&w->listeners[0], false);
        close(acc_l.fd);
}

/* At max_connections the accept is cancelled, and a client the kernel took
 * meanwhile is held, not served (no greeting, not counted); the next one
 * waits in the backlog. */
static void test_accept_paused_holds(void **state)
{
        int a, b, c;

        (void) state;
        srv.max_connections = 1;
        acc_listen();
        a = acc_client();
        acc_wait_conns(1);
        b = acc_client();
        for (int i = 0; i < 100 && w->n_pending == 0; i++)
                run(10);
        assert_int_equal(w->n_pending, 1);
        assert_true(w->accept_paused);
        assert_null(w->listeners[0].accept_op);         /* cancelled */
        assert_int_equal(w->n_conns, 1);
        c = acc_client();
        run(50);
        assert_int_equal(w->n_pending, 1);              /* c is in the backlog */
        assert_null(peek(b));
        close(a);
        close(b);
        close(c);
        close(acc_l.fd);
}

/* A client taken by an accept just cancelled, whose listener this worker
 * no longer has (a reload removed it): closed, not leaked (the teardown
 * counts descriptors). */
static void test_accept_cancelled_listener_gone(void **state)
{
        int a;

        (void) state;
        acc_listen();
        a = acc_client();
        /* taken by the kernel before the cancellation, with nobody to serve it */
        w->io->accept(&w->listeners[0], false);
        w->listeners[0].watched = false;
        w->n_listeners = 0;
        for (int i = 0; i < 20; i++)
                run(10);
        w->n_listeners = 1;
        assert_int_equal(w->n_conns, 0);
        assert_int_equal(w->n_pending, 0);
        /* closed by muxd, or still in the backlog if the kernel had not
         * taken it: then it goes with the listener */
        close(acc_l.fd);
        for (int i = 0; i < 100 && !peek(a); i++)
                run(10);
        assert_string_equal(peek(a), "");
        close(a);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_send_queued_then_closed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_recv_queued_then_closed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_closed_at_teardown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_with_queue_full, setup, teardown),
                cmocka_unit_test_setup_teardown(test_accept_multishot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_accept_paused_holds, setup, teardown),
                cmocka_unit_test_setup_teardown(test_accept_cancelled_listener_gone, setup, teardown),
        };

        test_main_args(argc, argv);
        alarm(60);
        return cmocka_run_group_tests_name("conn on io_uring: closing, accepting", tests, NULL, NULL);
}
