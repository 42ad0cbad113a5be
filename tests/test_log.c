/* SPDX-License-Identifier: MIT */
/* Unit tests for src/journal.c (the journal's native protocol) and src/log.c
 * (writing without ever blocking): a journal socket nobody reads, and a pipe
 * on stderr nobody reads, must not stop the thread that logs; what could not
 * go waits in order or is dropped, counted and reported once the way is
 * free. alarm() turns a blocked write into a failure. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>
#include "testmain.h"

#include "journal.h"
#include "log.h"

#define LINES 3000

/* ---- journal_encode ---- */

static void test_encode_fields(void **state)
{
        const char *fields[] = { "MUXD_EVENT=message", "MUXD_PEER=127.0.0.1:5", NULL };
        char buf[512];
        size_t n;

        (void) state;
        n = journal_encode(buf, sizeof(buf), 6, "muxd", "hello", fields);
        assert_true(n > 0);
        buf[n] = '\0';
        assert_string_equal(buf, "PRIORITY=6\nSYSLOG_IDENTIFIER=muxd\nMESSAGE=hello\n"
                                 "MUXD_EVENT=message\nMUXD_PEER=127.0.0.1:5\n");
}

/* A value with a newline: NAME, newline, 64-bit little-endian length, value. */
static void test_encode_newline_value(void **state)
{
        static const char want[] = "PRIORITY=3\nSYSLOG_IDENTIFIER=muxd\nMESSAGE\n"
                                   "\x03\0\0\0\0\0\0\0" "a\nb\n";
        char buf[256];
        size_t n;

        (void) state;
        n = journal_encode(buf, sizeof(buf), 3, "muxd", "a\nb", NULL);
        assert_int_equal(n, sizeof(want) - 1);
        assert_memory_equal(buf, want, n);
}

static void test_encode_too_small(void **state)
{
        char buf[40];

        (void) state;
        assert_int_equal(journal_encode(buf, sizeof(buf), 6, "muxd", "a message that does not fit", NULL), 0);
}

/* ---- writing without blocking ---- */

static char sock_path[108];
static int journal_rx = -1;

static int setup_journal(void **state)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int small = 4096;

        (void) state;
        snprintf(sock_path, sizeof(sock_path), "/tmp/muxd-test-log.%d", (int) getpid());
        strcpy(sa.sun_path, sock_path);
        unlink(sock_path);
        journal_rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(journal_rx >= 0);
        assert_int_equal(setsockopt(journal_rx, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        assert_int_equal(bind(journal_rx, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(log_open_journal(sock_path), 0);
        return 0;
}

static int teardown_journal(void **state)
{
        (void) state;
        close(journal_rx);
        unlink(sock_path);
        return 0;
}

/* The number in "MESSAGE=line N ..." of a datagram, or -1 for another. */
static long line_number(const char *d, size_t n)
{
        const char *m = memmem(d, n, "MESSAGE=line ", 13);

        return m ? strtol(m + 13, NULL, 10) : -1;
}

static void test_journal_full_does_not_block(void **state)
{
        uint64_t dropped_before = log_dropped_total(), dropped;
        char filler[1000], d[4096];
        long last = -1, got = 0;
        bool summary = false;

        (void) state;
        memset(filler, 'x', sizeof(filler) - 1);
        filler[sizeof(filler) - 1] = '\0';
        alarm(20);
        for (int i = 0; i < LINES; i++)
                log_info("line %d %s", i, filler);      /* nobody reads yet */
        alarm(0);
        dropped = log_dropped_total() - dropped_before;
        /* 3 MB written at a socket of 4 KiB and a queue of 256 KiB */
        assert_true(dropped > 0);
        assert_true(log_pending());

        /* now read: what waited arrives in order, then the summary */
        for (int rounds = 0; rounds < 100000 && !summary; rounds++) {
                ssize_t n = recv(journal_rx, d, sizeof(d) - 1, 0);
                long k;

                if (n < 0) {
                        assert_int_equal(errno, EAGAIN);
                        (void) log_flush();
                        continue;
                }
                d[n] = '\0';
                k = line_number(d, (size_t) n);
                if (k >= 0) {
                        assert_true(k > last);          /* in order, none twice */
                        last = k;
                        got++;
                        continue;
                }
                assert_non_null(strstr(d, "MUXD_EVENT=log-dropped\n"));
                assert_int_equal(strtoull(strstr(d, "MESSAGE=") + 8, NULL, 10), dropped);
                summary = true;
        }
        assert_true(summary);
        assert_int_equal(got + (long) dropped, LINES);
        assert_false(log_flush());
        assert_false(log_pending());
}

/* With nothing waiting, a line goes out at once, and the next is not queued. */
static void test_journal_direct(void **state)
{
        char d[4096];
        ssize_t n;

        (void) state;
        log_info("line 7 direct");
        assert_false(log_pending());
        n = recv(journal_rx, d, sizeof(d) - 1, 0);
        assert_true(n > 0);
        d[n] = '\0';
        assert_non_null(strstr(d, "PRIORITY=6\n"));
        assert_non_null(strstr(d, "MESSAGE=line 7 direct\n"));
}

static void test_stderr_pipe_full_does_not_block(void **state)
{
        uint64_t dropped_before = log_dropped_total(), dropped;
        int p[2], saved = dup(STDERR_FILENO), fl;
        char buf[65536], filler[1000];
        size_t total = 0;
        long lines = 0;
        bool summary = false;

        (void) state;
        assert_true(saved >= 0);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
        close(p[1]);
        log_setup(LOG_TARGET_STDERR);           /* sees a pipe: non-blocking */
        fl = fcntl(STDERR_FILENO, F_GETFL);
        memset(filler, 'y', sizeof(filler) - 1);
        filler[sizeof(filler) - 1] = '\0';
        alarm(20);
        for (int i = 0; i < LINES; i++)
                log_info("line %d %s", i, filler);
        alarm(0);
        dropped = log_dropped_total() - dropped_before;
        assert_true(dropped > 0);

        assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
        for (int rounds = 0; rounds < 100000 && !summary; rounds++) {
                ssize_t n = read(p[0], buf, sizeof(buf) - 1);
                char *q;

                if (n <= 0) {
                        (void) log_flush();
                        continue;
                }
                buf[n] = '\0';
                total += (size_t) n;
                for (q = buf; (q = strstr(q, "muxd: info: line ")); q++)
                        lines++;
                summary = strstr(buf, "log messages dropped") != NULL;
        }
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(p[0]);
        assert_true(fl & O_NONBLOCK);
        assert_true(summary);
        assert_int_equal(lines + (long) dropped, LINES);
        assert_true(total > 0);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest encode[] = {
                cmocka_unit_test(test_encode_fields),
                cmocka_unit_test(test_encode_newline_value),
                cmocka_unit_test(test_encode_too_small),
        };
        const struct CMUnitTest journal[] = {
                cmocka_unit_test_setup_teardown(test_journal_direct, setup_journal, teardown_journal),
                cmocka_unit_test_setup_teardown(test_journal_full_does_not_block, setup_journal, teardown_journal),
        };
        const struct CMUnitTest stderr_pipe[] = {
                cmocka_unit_test(test_stderr_pipe_full_does_not_block),
        };
        int failed = 0;

        test_main_args(argc, argv);
        failed += cmocka_run_group_tests_name("journal encoding", encode, NULL, NULL);
        failed += cmocka_run_group_tests_name("log: journal", journal, NULL, NULL);
        failed += cmocka_run_group_tests_name("log: stderr", stderr_pipe, NULL, NULL);
        return failed ? 1 : 0;
}
