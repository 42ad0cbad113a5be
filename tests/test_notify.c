/* SPDX-License-Identifier: MIT */
/* Unit tests for src/notify.c against real datagram sockets: what goes out
 * and in which order, what a full socket does (bounded retries), and what a
 * socket nobody can reach does (notifying stops, the error is told once);
 * which NOTIFY_SOCKET values are taken, and the fd store's names. */
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
#include "systemd.h"
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

static void test_address_forms(void **state)
{
        struct sockaddr_un sa;
        socklen_t len = 0;
        char long_path[sizeof(sa.sun_path) + 2];
        struct notifier *n = (void *) 1;

        (void) state;
        unsetenv("NOTIFY_SOCKET");
        assert_int_equal(notify_address(&sa, &len), 0);         /* not under systemd */
        setenv("NOTIFY_SOCKET", "", 1);
        assert_int_equal(notify_address(&sa, &len), 0);
        setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
        assert_int_equal(notify_address(&sa, &len), 1);
        assert_int_equal(sa.sun_family, AF_UNIX);
        assert_string_equal(sa.sun_path, "/run/systemd/notify");
        assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify"));
        setenv("NOTIFY_SOCKET", "@muxd/notify", 1);
        assert_int_equal(notify_address(&sa, &len), 1);
        assert_int_equal(sa.sun_path[0], '\0');                 /* the abstract namespace */
        assert_memory_equal(sa.sun_path + 1, "muxd/notify", strlen("muxd/notify"));
        assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("@muxd/notify"));
        /* neither absolute nor abstract: refused, not taken as relative to
         * wherever muxd runs; nor one longer than a socket address holds */
        setenv("NOTIFY_SOCKET", "run/notify", 1);
        assert_int_equal(notify_address(&sa, &len), -EINVAL);
        assert_int_equal(notify_open(&n), -EINVAL);
        assert_null(n);
        memset(long_path, 'x', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = '\0';
        setenv("NOTIFY_SOCKET", long_path, 1);
        assert_int_equal(notify_address(&sa, &len), -EINVAL);
        unsetenv("NOTIFY_SOCKET");
}

static void test_fdstore_names(void **state)
{
        char name[SYSTEMD_FDSTORE_NAME_MAX];
        uint64_t id = 0;
        static const char *const bad[] = {
                "c-", "c-0", "c-012", "c-12x", "c--1", "c- 1", "x-12", "C-12", "c12", "",
                "c-99999999999999999999999",    /* beyond 64 bits */
        };

        (void) state;
        systemd_fdstore_name(1234567, name);
        assert_string_equal(name, "c-1234567");
        assert_true(systemd_fdstore_parse(name, &id));
        assert_int_equal(id, 1234567);
        systemd_fdstore_name(UINT64_MAX, name);         /* the longest: it fits */
        assert_true(systemd_fdstore_parse(name, &id));
        assert_true(id == UINT64_MAX);
        /* anything else passed by systemd is a listener's name, not a connection */
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                id = 42;
                assert_false(systemd_fdstore_parse(bad[i], &id));
                assert_int_equal(id, 42);
        }
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sends_in_order),
                cmocka_unit_test(test_unreachable_stops_notifying),
                cmocka_unit_test(test_full_socket_bounded_retries),
                cmocka_unit_test(test_address_forms),
                cmocka_unit_test(test_fdstore_names),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
