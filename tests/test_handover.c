/* SPDX-License-Identifier: MIT */
/* Unit tests for src/handover-format.c: the state one muxd image hands to
 * the next. What is encoded is decoded unchanged; a state that is cut short
 * anywhere, damaged, of another version or beyond a bound is refused with a
 * reason and nothing allocated (ASan and valgrind watch that). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>
#include "testmain.h"

#include "handover-format.h"

static struct handover_listener listeners[2];
static struct handover_conn conns[3];
static struct handover_state state;
static struct buffer encoded;

static int setup(void **s)
{
        (void) s;
        listeners[0] = (struct handover_listener) { .fd = 3, .serial = 1, .family = AF_INET,
                .addr = { 127, 0, 0, 1 }, .port = 8088, .bound_port = 8088, .name = (char *) "echo" };
        listeners[1] = (struct handover_listener) { .fd = 4, .serial = 7, .family = AF_UNSPEC,
                .port = 0, .bound_port = 41234, .flags = HANDOVER_L_PASSED | HANDOVER_L_DUAL_STACK };
        for (size_t i = 0; i < 3; i++) {
                conns[i] = (struct handover_conn) { .fd = 10 + (int) i, .listener = (uint32_t) (i % 2),
                        .idle_ms = 1000 * i, .age_ms = 5000 + i, .in = BUFFER_INIT, .out = BUFFER_INIT };
        }
        conns[1].flags = HANDOVER_C_THROTTLED;
        assert_int_equal(buffer_append(&conns[1].in, "half a li", 9, 0), 0);
        assert_int_equal(buffer_append(&conns[2].out, "reply!\nmore\n", 12, 0), 0);
        conns[2].flags = HANDOVER_C_EOF | HANDOVER_C_CLOSING;
        /* behind a balancer: the first still waits for its PROXY header,
         * the second was admitted (an IPv6 client through an IPv4 balancer) */
        conns[0].proxy = HANDOVER_P_WAITING;
        conns[0].balancer = (struct handover_addr) { AF_INET, { 127, 0, 0, 2 }, 5000, 0 };
        conns[0].proxy_wait_ms = 2500;
        conns[1].proxy = HANDOVER_P_ADMITTED;
        conns[1].balancer = (struct handover_addr) { AF_INET, { 127, 0, 0, 3 }, 5001, 0 };
        conns[1].client = (struct handover_addr) { AF_INET6, { [15] = 1 }, 4444, 7 };
        state = (struct handover_state) { listeners, 2, conns, 3 };
        encoded = (struct buffer) BUFFER_INIT;
        assert_int_equal(handover_encode(&state, &encoded), 0);
        return 0;
}

static int teardown(void **s)
{
        (void) s;
        for (size_t i = 0; i < 3; i++) {
                buffer_free(&conns[i].in);
                buffer_free(&conns[i].out);
        }
        buffer_free(&encoded);
        return 0;
}

static int decode(const void *p, size_t n, struct handover_state *st, char *why)
{
        return handover_decode(p, n, st, why, 256);
}

static void test_round_trip(void **s)
{
        struct handover_state st;
        char why[256] = "";

        (void) s;
        assert_int_equal(decode(buffer_head(&encoded), buffer_len(&encoded), &st, why), 0);
        assert_int_equal(st.n_listeners, 2);
        assert_int_equal(st.listeners[0].fd, 3);
        assert_int_equal(st.listeners[0].serial, 1);
        assert_int_equal(st.listeners[0].family, AF_INET);
        assert_memory_equal(st.listeners[0].addr, listeners[0].addr, 16);
        assert_int_equal(st.listeners[0].port, 8088);
        assert_string_equal(st.listeners[0].name, "echo");
        assert_null(st.listeners[1].name);
        assert_int_equal(st.listeners[1].bound_port, 41234);
        assert_int_equal(st.listeners[1].flags, HANDOVER_L_PASSED | HANDOVER_L_DUAL_STACK);
        assert_int_equal(st.n_conns, 3);
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(st.conns[i].fd, conns[i].fd);
                assert_int_equal(st.conns[i].listener, conns[i].listener);
                assert_int_equal(st.conns[i].flags, conns[i].flags);
                assert_int_equal(st.conns[i].idle_ms, conns[i].idle_ms);
                assert_int_equal(st.conns[i].age_ms, conns[i].age_ms);
                assert_int_equal(buffer_len(&st.conns[i].in), buffer_len(&conns[i].in));
                assert_int_equal(buffer_len(&st.conns[i].out), buffer_len(&conns[i].out));
        }
        assert_memory_equal(buffer_head(&st.conns[1].in), "half a li", 9);
        assert_memory_equal(buffer_head(&st.conns[2].out), "reply!\nmore\n", 12);
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(st.conns[i].proxy, conns[i].proxy);
                assert_memory_equal(&st.conns[i].balancer, &conns[i].balancer, sizeof(struct handover_addr));
                assert_memory_equal(&st.conns[i].client, &conns[i].client, sizeof(struct handover_addr));
                assert_int_equal(st.conns[i].proxy_wait_ms, conns[i].proxy_wait_ms);
        }
        handover_state_free(&st);
}

/* What the previous release writes (version 1, no PROXY state) is still
 * read: the same connections, none behind a balancer. */
static void test_version_1_read(void **s)
{
        struct handover_state st;
        struct buffer v1 = BUFFER_INIT;
        char why[256] = "";

        (void) s;
        assert_int_equal(handover_encode_version(&state, 1, &v1), 0);
        assert_int_equal(((const uint8_t *) buffer_head(&v1))[8], 1);
        /* 1 byte of PROXY state less for a connection without, 1 + 24 + 24 + 8 with */
        assert_int_equal(buffer_len(&v1), buffer_len(&encoded) - 3 - 2 * 56);
        assert_int_equal(decode(buffer_head(&v1), buffer_len(&v1), &st, why), 0);
        assert_int_equal(st.n_listeners, 2);
        assert_int_equal(st.n_conns, 3);
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(st.conns[i].fd, conns[i].fd);
                assert_int_equal(st.conns[i].flags, conns[i].flags);
                assert_int_equal(st.conns[i].age_ms, conns[i].age_ms);
                assert_int_equal(buffer_len(&st.conns[i].in), buffer_len(&conns[i].in));
                assert_int_equal(buffer_len(&st.conns[i].out), buffer_len(&conns[i].out));
                assert_int_equal(st.conns[i].proxy, HANDOVER_P_NONE);
                assert_int_equal(st.conns[i].proxy_wait_ms, 0);
        }
        assert_memory_equal(buffer_head(&st.conns[2].out), "reply!\nmore\n", 12);
        handover_state_free(&st);
        buffer_free(&v1);
        assert_int_equal(handover_encode_version(&state, 0, &v1), -EPROTONOSUPPORT);
        assert_int_equal(handover_encode_version(&state, HANDOVER_VERSION + 1, &v1), -EPROTONOSUPPORT);
        buffer_free(&v1);
}

/* Damaged PROXY fields: refused with what is wrong, nothing allocated. The
 * first connection's PROXY state follows its 36 bytes (no input, no output). */
static void test_damaged_proxy(void **s)
{
        size_t n = buffer_len(&encoded);
        char *copy = malloc(n), why[256];
        struct handover_state st;
        size_t p0 = 24 + 4 + (37 + 4 + 4) + (37 + 4) + 4 + 36;
        struct {
                size_t off;
                uint8_t byte;
                const char *why;
        } cases[] = {
                { p0, 3, "a connection's PROXY state 3" },
                { p0 + 1, 99, "a connection's balancer of family 99" },
                { p0 + 1, 0, "a connection's balancer of family 0" },
                { p0 + 1 + 2 + 4, 1, "a connection's balancer: an IPv4 address with more than 4 bytes" },
                { p0 + 1 + 24, 77, "a connection's client of family 77" },
                /* an admitted one needs a client (the waiting one has none) */
                { p0, HANDOVER_P_ADMITTED, "a connection's client of family 0" },
                /* the wait's top byte: far beyond proxy_timeout's bound */
                { p0 + 1 + 48 + 7, 1, "a connection waiting 72057594037930436 ms for its PROXY header "
                                      "(at most 3600000)" },
        };

        (void) s;
        assert_non_null(copy);
        assert_int_equal(((const uint8_t *) buffer_head(&encoded))[p0], HANDOVER_P_WAITING);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                memcpy(copy, buffer_head(&encoded), n);
                copy[cases[i].off] = (char) cases[i].byte;
                assert_int_equal(decode(copy, n, &st, why), -EBADMSG);
                assert_string_equal(why, cases[i].why);
                assert_null(st.conns);
        }
        free(copy);
}

/* Nothing is sent before the header admits the client, and an admitted one
 * waits no more: states that say otherwise are refused. */
static void test_proxy_inconsistent(void **s)
{
        struct handover_state st;
        struct buffer out = BUFFER_INIT;
        char why[256];

        (void) s;
        assert_int_equal(buffer_append(&conns[0].out, "hello\n", 6, 0), 0);
        assert_int_equal(handover_encode(&state, &out), 0);
        assert_int_equal(decode(buffer_head(&out), buffer_len(&out), &st, why), -EBADMSG);
        assert_string_equal(why, "a connection waiting for its PROXY header with 6 bytes of output");
        buffer_free(&out);
        buffer_free(&conns[0].out);

        conns[1].proxy_wait_ms = 10;
        assert_int_equal(handover_encode(&state, &out), 0);
        assert_int_equal(decode(buffer_head(&out), buffer_len(&out), &st, why), -EBADMSG);
        assert_string_equal(why, "an admitted connection still waiting 10 ms for its PROXY header");
        buffer_free(&out);
}

/* Cut short at every byte: refused, never read past the end. */
static void test_every_truncation(void **s)
{
        size_t n = buffer_len(&encoded);

        (void) s;
        for (size_t cut = 0; cut < n; cut++) {
                struct handover_state st;
                char why[256] = "";
                void *copy = malloc(cut + 1);   /* exactly cut bytes for ASan to guard */

                assert_non_null(copy);
                memcpy(copy, buffer_head(&encoded), cut);
                assert_true(decode(copy, cut, &st, why) < 0);
                assert_true(why[0] != '\0');
                assert_null(st.listeners);
                assert_null(st.conns);
                free(copy);
        }
}

static void test_other_version_or_format(void **s)
{
        struct handover_state st;
        char *copy = malloc(buffer_len(&encoded)), why[256];

        (void) s;
        assert_non_null(copy);
        memcpy(copy, buffer_head(&encoded), buffer_len(&encoded));
        copy[8] = 3;                            /* version 3 */
        assert_int_equal(decode(copy, buffer_len(&encoded), &st, why), -EPROTONOSUPPORT);
        assert_string_equal(why, "state format version 3, this muxd reads versions 1 to 2");
        copy[8] = 0;
        assert_int_equal(decode(copy, buffer_len(&encoded), &st, why), -EPROTONOSUPPORT);
        memcpy(copy, "NOTMUXD!", 8);
        assert_int_equal(decode(copy, buffer_len(&encoded), &st, why), -EPROTONOSUPPORT);
        assert_string_equal(why, "not a muxd state (no \"MUXDSTAT\" header)");
        free(copy);
}

/* Damage: a byte too many, a listener index out of range, a length past
 * its bound. The offsets follow the layout in handover-format.h. */
static void test_damaged(void **s)
{
        size_t n = buffer_len(&encoded);
        char *copy = malloc(n + 1), why[256];
        struct handover_state st;
        size_t conn0;

        (void) s;
        assert_non_null(copy);
        memcpy(copy, buffer_head(&encoded), n);
        copy[n] = 0;
        assert_int_equal(decode(copy, n + 1, &st, why), -EBADMSG);
        assert_non_null(strstr(why, "its header says"));

        /* the first connection's listener index: after the header (24), the
         * count (4), two listeners (37 bytes, a length of 4, the name: "echo"
         * and none), the count (4), its fd (4) */
        conn0 = 24 + 4 + (37 + 4 + 4) + (37 + 4) + 4 + 4;
        memcpy(copy, buffer_head(&encoded), n);
        copy[conn0] = 9;
        assert_int_equal(decode(copy, n, &st, why), -EBADMSG);
        assert_string_equal(why, "a connection of listener 9, of 2");

        memcpy(copy, buffer_head(&encoded), n);
        copy[24] = 0x7f;                        /* listeners: 127 */
        assert_int_equal(decode(copy, n, &st, why), -EBADMSG);
        assert_null(st.listeners);
        free(copy);
}

/* A listener a reload removed has no socket: allowed with its flag only. */
static void test_removed_listener(void **s)
{
        struct handover_state st;
        struct buffer out = BUFFER_INIT;
        char why[256];

        (void) s;
        listeners[1] = (struct handover_listener) { .fd = -1, .flags = HANDOVER_L_REMOVED };
        assert_int_equal(handover_encode(&state, &out), 0);
        assert_int_equal(decode(buffer_head(&out), buffer_len(&out), &st, why), 0);
        assert_int_equal(st.listeners[1].fd, -1);
        assert_int_equal(st.listeners[1].flags, HANDOVER_L_REMOVED);
        assert_int_equal(st.conns[1].listener, 1);
        handover_state_free(&st);
        buffer_free(&out);

        listeners[1].flags = 0;
        assert_int_equal(handover_encode(&state, &out), 0);
        assert_int_equal(decode(buffer_head(&out), buffer_len(&out), &st, why), -EBADMSG);
        assert_string_equal(why, "a listener without a descriptor (-1)");
        buffer_free(&out);
}

static void test_bounds_on_encode(void **s)
{
        struct handover_state big = state;
        struct buffer out = BUFFER_INIT;
        char name[HANDOVER_MAX_NAME + 2];

        (void) s;
        big.n_listeners = HANDOVER_MAX_LISTENERS + 1;
        assert_int_equal(handover_encode(&big, &out), -E2BIG);
        buffer_free(&out);
        memset(name, 'n', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        listeners[0].name = name;
        assert_int_equal(handover_encode(&state, &out), -E2BIG);
        buffer_free(&out);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_every_truncation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_version_or_format, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_removed_listener, setup, teardown),
                cmocka_unit_test_setup_teardown(test_version_1_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_proxy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_proxy_inconsistent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bounds_on_encode, setup, teardown),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("handover format", tests, NULL, NULL);
}
