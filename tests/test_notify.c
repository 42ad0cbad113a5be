/* SPDX-License-Identifier: MIT */
/* Unit tests for src/notify.c against real datagram sockets: what goes out
 * and in which order, what a full socket does (bounded retries), and what a
 * socket nobody can reach does (notifying stops, the error is told once). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "notify.h"
#include "testmain.h"

struct receiver {
        char dir[64];
        char path[128];
        int fd;
};

static void receiver_open(struct receiver *r, int rcvbuf)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        snprintf(r->dir, sizeof(r->dir), "/tmp/muxd-test-notify-XXXXXX");
        assert_non_null(mkdtemp(r->dir));
        snprintf(r->path, sizeof(r->path), "%s/notify", r->dir);
        r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(r->fd >= 0);
        if (rcvbuf > 0)
                assert_int_equal(setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
        memcpy(sa.sun_path, r->path, strlen(r->path) + 1);
        assert_int_equal(bind(r->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        setenv("NOTIFY_SOCKET", r->path, 1);
}

static void receiver_close(struct receiver *r)
{
        close(r->fd);
        unlink(r->path);
        rmdir(r->dir);
        unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, or "" if none is waiting. */
static const char *receiver_next(struct receiver *r)
{
        static char buf[512];
        ssize_t n = recv(r->fd, buf, sizeof(buf) - 1, 0);

        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static void test_sends_in_order(void **state)
{
        struct receiver r;
        struct notifier *n;

        (void) state;
        receiver_open(&r, 0);
        assert_int_equal(notify_open(&n), 0);
        assert_non_null(n);
        assert_int_equal(notify_state(n, "READY=1"), 0);
        assert_int_equal(notify_try(n, "STATUS=up"), 0);
        assert_string_equal(receiver_next(&r), "READY=1");
        assert_string_equal(receiver_next(&r), "STATUS=up");
        assert_string_equal(receiver_next(&r), "");
        assert_false(notify_pending(n));
        assert_int_equal(notify_take_error(n), 0);
        notify_free(n);
        receiver_close(&r);
}

/* Nobody bound to the path any more (ECONNREFUSED) or no such path
 * (ENOENT): nothing stays queued, nothing is retried, the error is told
 * exactly once, and every later call is a no-op. */
static void test_unreachable_stops_notifying(void **state)
{
        (void) state;
        for (size_t i = 0; i < 2; i++) {
                struct receiver r;
                struct notifier *n;
                int err;

                receiver_open(&r, 0);
                if (i == 1)
                        setenv("NOTIFY_SOCKET", "/nonexistent-muxd-dir/notify", 1);
                assert_int_equal(notify_open(&n), 0);
                close(r.fd);            /* the path stays, nobody reads it */
                r.fd = -1;
                assert_int_equal(notify_state(n, "READY=1"), 0);
                assert_false(notify_pending(n));
                assert_true(notify_disabled(n));
                err = notify_take_error(n);
                assert_true(err == -ECONNREFUSED || err == -ENOENT);
                assert_int_equal(notify_take_error(n), 0);      /* once */
                assert_int_equal(notify_state(n, "RELOADING=1"), 0);
                assert_int_equal(notify_try(n, "STATUS=x"), 0);
                assert_int_equal(notify_try(n, "WATCHDOG=1"), 0);
                assert_false(notify_flush(n));
                assert_false(notify_pending(n));
                notify_free(n);
                receiver_close(&r);
        }
}

/* A receiver that does not read: its queue fills (EAGAIN), state changes
 * wait in order and are retried for a while (here 100 ms), then dropped. */
static void test_full_socket_bounded_retries(void **state)
{
        struct receiver r;
        struct notifier *n;
        unsigned filled = 0, flushes = 0;
        struct timespec pause = { 0, 10 * 1000 * 1000 };

        (void) state;
        receiver_open(&r, 1);   /* the smallest buffer the kernel allows */
        assert_int_equal(notify_open(&n), 0);
        notify_set_retry_ms(n, 100);
        while (notify_try(n, "STATUS=filling the receiver's queue") == 0 && filled < 100000)
                filled++;
        assert_true(filled < 100000);
        assert_int_equal(notify_state(n, "READY=1"), 0);
        assert_true(notify_pending(n));
        assert_false(notify_disabled(n));
        assert_int_equal(notify_try(n, "STATUS=dropped while READY waits"), -EAGAIN);
        while (notify_flush(n)) {
                assert_true(++flushes <= 500);  /* 5 s: the 100 ms must be over by far */
                nanosleep(&pause, NULL);
        }
        assert_true(flushes >= 2);
        assert_false(notify_pending(n));
        assert_false(notify_disabled(n));       /* a full queue is not the end */
        assert_int_equal(notify_take_error(n), 0);
        /* once the receiver reads, messages go again */
        while (receiver_next(&r)[0])
                ;
        assert_int_equal(notify_state(n, "READY=1"), 0);
        assert_string_equal(receiver_next(&r), "READY=1");
        notify_free(n);
        receiver_close(&r);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sends_in_order),
                cmocka_unit_test(test_unreachable_stops_notifying),
                cmocka_unit_test(test_full_socket_bounded_retries),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
