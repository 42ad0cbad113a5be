/* SPDX-License-Identifier: MIT */
/* Unit tests for src/listener.c: giving a port back while another reference to
 * the listening socket is still open (as an io_uring poll being cancelled
 * holds one), and leaving systemd's sockets listening. Loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "listener.h"
#include "testmain.h"

static struct listener_key key_v4_loopback(uint16_t port)
{
        struct listener_key k = { .family = AF_INET, .port = port };

        assert_int_equal(inet_pton(AF_INET, "127.0.0.1", k.addr), 1);
        return k;
}

static struct listener_key key_all(uint16_t port)
{
        return (struct listener_key) { .family = AF_UNSPEC, .port = port };
}

/* Does a blocking connect to 127.0.0.1:port succeed? */
static bool connects(uint16_t port)
{
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        assert_true(fd >= 0);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == 0;
        close(fd);
        return ok;
}

/* The case the stop exists for: all addresses -> 127.0.0.1 on one port while
 * a second reference keeps the old socket open. A plain close() keeps the
 * port (the control); listener_stop() gives it back. */
static void test_stop_frees_port_despite_other_reference(void **state)
{
        struct listener *old = NULL, *again = NULL, *l = NULL;
        struct listener_key k;
        int ref;

        (void) state;
        k = key_all(0);
        assert_int_equal(listener_open(&k, &old), 0);

        /* control: close() alone, the other reference still listens */
        ref = dup(old->fd);
        assert_true(ref >= 0);
        close(old->fd);
        old->fd = -1;
        k = key_v4_loopback(old->bound_port);
        assert_int_equal(listener_open(&k, &l), -EADDRINUSE);
        close(ref);

        /* the same with listener_stop() */
        assert_int_equal(listener_reopen(old), 0);
        ref = dup(old->fd);
        assert_true(ref >= 0);
        listener_stop(old);
        assert_int_equal(old->fd, -1);
        k = key_v4_loopback(old->bound_port);
        assert_int_equal(listener_open(&k, &again), 0);
        assert_true(connects(again->bound_port));
        close(ref);
        listener_free(again);
        listener_free(old);
}

/* A stopped listener can be bound again (a reload rolled back). */
static void test_reopen_after_stop(void **state)
{
        struct listener *l = NULL;
        struct listener_key k = key_v4_loopback(0);
        uint16_t port;

        (void) state;
        assert_int_equal(listener_open(&k, &l), 0);
        port = l->bound_port;
        listener_stop(l);
        assert_false(connects(port));
        listener_stop(l);               /* twice is harmless */
        assert_int_equal(listener_reopen(l), 0);
        assert_int_equal(l->bound_port, port);
        assert_true(connects(port));
        listener_free(l);
}

/* systemd's socket: muxd closes its copy, systemd's goes on listening. */
static void test_stop_leaves_passed_socket_listening(void **state)
{
        struct listener *own = NULL, *passed = NULL;
        struct listener_key k = key_v4_loopback(0);
        int fd;

        (void) state;
        assert_int_equal(listener_open(&k, &own), 0);
        fd = dup(own->fd);              /* what systemd keeps */
        assert_true(fd >= 0);
        assert_int_equal(listener_adopt(dup(own->fd), "passed", &passed), 0);
        assert_true(passed->passed);
        listener_stop(passed);
        assert_int_equal(passed->fd, -1);
        close(own->fd);
        own->fd = -1;
        assert_true(connects(own->bound_port));
        close(fd);
        listener_free(passed);
        listener_free(own);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stop_frees_port_despite_other_reference),
                cmocka_unit_test(test_reopen_after_stop),
                cmocka_unit_test(test_stop_leaves_passed_socket_listening),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("listener", tests, NULL, NULL);
}
