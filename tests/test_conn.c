/* SPDX-License-Identifier: MIT */
/* Unit tests for the connection state machine (src/conn.c) against a fake
 * worker and a fake I/O: no loop, no thread. The fake I/O (conn-io.h) records
 * what conn.c asks of it and lets a test decide how much the "kernel" takes;
 * the fake worker counts what conn.c reports to it. Each connection's fd is
 * one end of a socketpair, so that the lingering close (FIONREAD, shutdown)
 * is the real one; the test holds the other end as the client. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include "testmain.h"

#include "conn-io.h"
#include "framing.h"
#include "log.h"
#include "server.h"
#include "worker.h"

/* ---- the fake I/O ---- */

static struct {
        bool reading;           /* what the last read(on/off) asked */
        unsigned read_calls;
        unsigned sends;         /* send() calls */
        size_t room;            /* bytes the "kernel" takes before it is full */
        struct buffer wire;     /* what the client has been sent, in order */
        unsigned closes;
        int fail_read;          /* -errno for the next read(on), 0: succeed */
        int fail_send;          /* -errno for the next send, 0: succeed */
} io;

static int fake_read(struct conn *c, bool on)
{
        (void) c;
        io.read_calls++;
        if (on && io.fail_read) {
                int r = io.fail_read;

                io.fail_read = 0;
                return r;
        }
        io.reading = on;
        return 0;
}

/* Like the socket I/O: straight to the wire while nothing waits, the rest
 * queued in c->out. */
static int fake_send(struct conn *c, const char *p, size_t n)
{
        size_t take = 0;

        io.sends++;
        if (io.fail_send) {
                int r = io.fail_send;

                io.fail_send = 0;
                conn_close_errno(c, -r);
                return r;
        }
        if (buffer_len(&c->out) == 0 && io.room > 0) {
                take = n < io.room ? n : io.room;
                assert_int_equal(buffer_append(&io.wire, p, take, 0), 0);
                io.room -= take;
        }
        if (take > 0)
                STATS_ADD(worker_stats(c->w, c->set), bytes_out, take);
        if (take < n) {
                assert_int_equal(buffer_append(&c->out, p + take, n - take, 0), 0);
                STATS_ADD(worker_stats(c->w, c->set), queued, n - take);
        }
        return 0;
}

static void fake_close(struct conn *c)
{
        io.closes++;
        close(c->fd);
        free(c);
}

static bool fake_usable(struct ev_loop *loop)
{
        (void) loop;
        return true;
}

static int fake_setup(struct worker *w)
{
        (void) w;
        return 0;
}

static void fake_free(struct worker *w)
{
        (void) w;
}

static const struct conn_io fake_io = {
        .name = "fake", .usable = fake_usable, .setup = fake_setup, .free = fake_free,
        .read = fake_read, .send = fake_send, .close = fake_close,
};

/* ---- the fake server: systemd's fd store is off here (preserve_connections
 * is covered by tests/integration/test_preserve.py) ---- */

uint64_t server_fdstore_add(struct worker *wk, int fd)
{
        (void) wk;
        (void) fd;
        return 0;
}

void server_fdstore_remove(struct worker *wk, int fd, uint64_t id)
{
        (void) wk;
        (void) fd;
        assert_int_equal(id, 0);        /* never stored, never removed */
}

uint64_t server_fdstore_id(int fd)
{
        (void) fd;
        return 0;
}

/* ---- the fake worker: conn.c's calls into worker.c ---- */

static struct worker w;
static unsigned conns_closed;
static bool fail_grow;

void worker_conn_closed(struct worker *wk, struct source *src)
{
        assert_ptr_equal(wk, &w);
        (void) src;
        wk->n_conns--;
        conns_closed++;
}

/* behind a load balancer: the policy's answer is the test's (admit_reason,
 * -1: admitted); the address it was asked about is kept */
static int admit_reason = -1;
static unsigned admit_calls;
static struct sockaddr_storage admitted;
static uint64_t admitted_owner;

int worker_admit(struct worker *wk, const struct listener_opts *o, uint64_t owner, const char *listen,
                 const struct sockaddr_storage *ss, struct source **src, const char **why)
{
        (void) wk; (void) o; (void) listen;
        admit_calls++;
        admitted = *ss;
        admitted_owner = owner;
        *src = NULL;
        *why = "the test says so";
        return admit_reason;
}

void worker_log_refused(struct worker *wk, const char *listen, int fd, const struct sockaddr *peer,
                        socklen_t peer_len, const struct sockaddr *proxy, socklen_t proxy_len,
                        const char *why)
{
        (void) wk; (void) listen; (void) fd; (void) peer; (void) peer_len; (void) proxy;
        (void) proxy_len; (void) why;
}

int worker_grow_wbuf(struct worker *wk, size_t need)
{
        char *p;

        if (need <= wk->wbuf_cap)
                return 0;
        if (fail_grow)
                return -ENOMEM;
        p = realloc(wk->wbuf, need);
        if (!p)
                return -ENOMEM;
        wk->wbuf = p;
        wk->wbuf_cap = need;
        return 0;
}

/* ---- set-up ---- */

/* the address the accept gave, passed to conn_start() (NULL: none) */
static const struct sockaddr_storage *peer_ss;
static socklen_t peer_len;


static struct stats *reg;       /* the counters' registry (one worker: block 0) */
static struct listener_settings *set;
static int client = -1;         /* the test's end of the socketpair */

static struct listener_settings *settings(enum muxd_mode mode, enum muxd_framing framing, uint32_t max_message,
                                  const char *greeting)
{
        struct listener_opts o = {
                .greeting = (char *) greeting, .greeting_len = strlen(greeting),
                .suffix = (char *) "!", .suffix_len = 1,
                .mode = mode, .framing = framing, .max_message = max_message,
        };

        struct listener_settings *s = listener_settings_new(&o);

        assert_non_null(s);
        assert_int_equal(stats_listener_new(reg, &s->stats), 0);
        return s;
}

/* What the current settings' counters say now. */
static struct stats_counts counts(void)
{
        struct stats_counts c = { 0 };

        stats_listener_read(set->stats, &c);
        return c;
}

static int setup(void **state)
{
        (void) state;
        memset(&io, 0, sizeof(io));
        io.room = SIZE_MAX;
        io.wire = (struct buffer) BUFFER_INIT;
        memset(&w, 0, sizeof(w));
        w.io = &fake_io;
        w.now_ms = 1000;
        w.now_ns = monotonic_ns();      /* message service times start here */
        idle_queue_init(&w.conns);
        idle_queue_init(&w.lingering);
        idle_queue_init(&w.proxying);
        admit_reason = -1;
        admit_calls = 0;
        peer_ss = NULL;
        peer_len = 0;
        w.wbuf_cap = 64;
        w.wbuf = malloc(w.wbuf_cap);
        assert_non_null(w.wbuf);
        conns_closed = 0;
        fail_grow = false;
        assert_int_equal(stats_new(1, &reg), 0);
        set = settings(MODE_ECHO, FRAMING_LINE, 16, "hello\n");
        assert_non_null(set);
        return 0;
}

static int teardown(void **state)
{
        struct idle_link *l;

        (void) state;
        while ((l = idle_oldest(&w.conns)))
                conn_close(conn_from_idle(l));
        while ((l = idle_oldest(&w.lingering)))
                conn_close(conn_from_idle(l));
        while ((l = idle_oldest(&w.proxying)))
                conn_close(conn_from_idle(l));
        listener_settings_unref(set);
        stats_free(reg);
        buffer_free(&io.wire);
        free(w.wbuf);
        if (client >= 0)
                close(client);
        client = -1;
        return 0;
}

/* A started connection; the client's end in `client`. */
static struct conn *start(void)
{
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        if (client >= 0)
                close(client);          /* a test's earlier connection */
        client = sv[1];
        assert_int_equal(conn_start(&w, sv[0], set, NULL, peer_ss, peer_len), 0);
        assert_int_equal(w.conns.count, 1);
        return conn_from_idle(idle_oldest(&w.conns));
}

/* Everything sent to the client so far, as a string, then forgotten. */
static char *wire_take(void)
{
        static char text[1024];
        size_t n = buffer_len(&io.wire);

        assert_true(n < sizeof(text));
        if (n > 0)
                memcpy(text, buffer_head(&io.wire), n);
        text[n] = '\0';
        buffer_consume(&io.wire, n);
        return text;
}

/* The client reads everything queued: the I/O writes c->out and says so. */
static int client_reads(struct conn *c)
{
        size_t n = buffer_len(&c->out);

        if (n > 0) {
                assert_int_equal(buffer_append(&io.wire, buffer_head(&c->out), n, 0), 0);
                buffer_consume(&c->out, n);
                STATS_ADD(worker_stats(c->w, c->set), bytes_out, n);
                STATS_SUB(worker_stats(c->w, c->set), queued, n);
        }
        return conn_sent(c);
}

static int serve(struct conn *c, const char *text)
{
        return conn_serve(c, text, strlen(text));
}

/* ---- the tests ---- */

static void test_greeting_then_reading(void **state)
{
        (void) state;
        (void) start();
        assert_string_equal(wire_take(), "hello\n");
        assert_true(io.reading);
        assert_int_equal(w.n_conns, 1);
}

static void test_messages_answered_in_order_in_one_send(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        (void) wire_take();
        io.sends = 0;
        assert_int_equal(serve(c, "a\nbb\r\nccc\n"), 0);
        assert_string_equal(wire_take(), "a!\nbb!\r\nccc!\n");
        assert_int_equal(io.sends, 1);          /* one batch per read */
        assert_int_equal(buffer_len(&c->in), 0);
}

static void test_partial_message_waits_for_its_end(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        (void) wire_take();
        assert_int_equal(serve(c, "hel"), 0);
        assert_string_equal(wire_take(), "");
        assert_int_equal(buffer_len(&c->in), 3);
        assert_int_equal(serve(c, "lo\nnext"), 0);
        assert_string_equal(wire_take(), "hello!\n");
        assert_int_equal(buffer_len(&c->in), 4);
}

/* Only a complete message counts as activity (slowloris still times out). */
static void test_only_complete_messages_touch_idle(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        w.now_ms = 5000;
        assert_int_equal(serve(c, "trickle"), 0);
        assert_int_equal(c->idle.last_ms, 1000);
        assert_int_equal(serve(c, "\n"), 0);
        assert_int_equal(c->idle.last_ms, 5000);
}

static void test_oneshot_closes_after_one_message(void **state)
{
        struct conn *c;

        (void) state;
        listener_settings_unref(set);
        set = settings(MODE_ONESHOT, FRAMING_LINE, 16, "");
        c = start();
        assert_int_equal(io.sends, 0);          /* no greeting: nothing sent */
        assert_true(serve(c, "one\ntwo\n") < 0);        /* closed: c is gone */
        assert_int_equal(io.closes, 1);
        assert_int_equal(conns_closed, 1);
        assert_int_equal(w.n_conns, 0);
        assert_string_equal(wire_take(), "");
        assert_int_equal(counts().messages, 1);
        assert_int_equal(counts().closed[STATS_CLOSED_ONESHOT], 1);
}

static void test_too_long_is_answered_then_closed(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        (void) wire_take();
        assert_true(serve(c, "0123456789abcdefXYZ") < 0);
        assert_string_equal(wire_take(), FRAMING_TOO_LONG_REPLY);
        assert_int_equal(io.closes, 1);
        assert_int_equal(counts().closed[STATS_CLOSED_MAX_MESSAGE], 1);
        assert_int_equal(counts().messages, 0);
}

/* A message at eof without its line ending is still a message. */
static void test_eof_answers_the_last_line_then_closes(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        (void) wire_take();
        assert_int_equal(serve(c, "last"), 0);
        c->flags |= CONN_EOF;
        assert_true(conn_serve(c, NULL, 0) < 0);
        assert_string_equal(wire_take(), "last!");
        assert_int_equal(io.closes, 1);
}

/* Output over CONN_OUTPUT_HIGH: reading stops, the rest of the input waits
 * in c->in, and is answered as the client reads; then reading resumes. */
static void test_backpressure_throttles_and_resumes(void **state)
{
        struct conn *c;
        size_t n_msgs = 2 * CONN_OUTPUT_HIGH / 8, answered;
        char *input = malloc(n_msgs * 8);

        (void) state;
        assert_non_null(input);
        for (size_t i = 0; i < n_msgs; i++)
                memcpy(input + i * 8, "message\n", 8);
        c = start();
        (void) wire_take();
        io.room = 0;                            /* the client reads nothing */
        assert_int_equal(conn_serve(c, input, n_msgs * 8), 0);
        assert_true(c->flags & CONN_THROTTLED);
        assert_false(io.reading);
        assert_true(conn_queued(c) >= CONN_OUTPUT_HIGH);
        assert_true(buffer_len(&c->in) > 0);    /* unanswered messages wait */

        /* each time the client reads everything, the next batch is answered */
        answered = 0;
        for (int rounds = 0; rounds < 10 && (c->flags & CONN_THROTTLED); rounds++) {
                assert_int_equal(client_reads(c), 0);
                answered += buffer_len(&io.wire);
                buffer_consume(&io.wire, buffer_len(&io.wire));
        }
        assert_false(c->flags & CONN_THROTTLED);
        answered += buffer_len(&c->out);
        assert_int_equal(answered, n_msgs * 9);         /* "message!\n" each */
        assert_true(io.reading);
        free(input);
}

static void test_drain_closes_once_output_is_read(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        (void) wire_take();
        io.room = 0;
        assert_int_equal(serve(c, "x\n"), 0);
        conn_drain(c);
        assert_int_equal(io.closes, 0);         /* a reply is still queued */
        assert_false(io.reading);
        assert_true(client_reads(c) < 0);
        assert_string_equal(wire_take(), "x!\n");
        assert_int_equal(io.closes, 1);
}

static void test_drain_with_nothing_queued_closes_now(void **state)
{
        (void) state;
        conn_drain(start());
        assert_int_equal(io.closes, 1);
        assert_int_equal(w.n_conns, 0);
}

/* Closing with unread input would make the kernel send RST and drop the
 * replies still queued: conn.c half-closes and lingers instead. */
static void test_close_with_unread_input_lingers(void **state)
{
        struct conn *c;
        char buf[64];

        (void) state;
        listener_settings_unref(set);
        set = settings(MODE_ONESHOT, FRAMING_LINE, 16, "");
        c = start();
        assert_int_equal(write(client, "more\n", 5), 5);        /* unread by muxd */
        assert_int_equal(serve(c, "one\n"), -ECONNRESET);       /* no longer a client */
        assert_int_equal(io.closes, 0);
        assert_int_equal(w.lingering.count, 1);
        assert_int_equal(w.conns.count, 0);
        assert_true(io.reading);                /* reading to discard */
        assert_int_equal(read(client, buf, sizeof(buf)), 0);    /* FIN seen */
}

/* Everything logged to stderr while fn(c) runs, as a string. */
static char *logged(int (*fn)(struct conn *), struct conn *c, int *ret)
{
        static char text[2048];
        char path[] = "/tmp/test_conn.XXXXXX";
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);
        ssize_t n;

        assert_true(fd >= 0 && saved >= 0);
        unlink(path);
        assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        log_setup(LOG_TARGET_STDERR);
        log_set_level(LOG_LEVEL_INFO);
        *ret = fn(c);
        assert_false(log_flush());
        assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
        close(saved);
        n = pread(fd, text, sizeof(text) - 1, 0);
        close(fd);
        assert_true(n >= 0);
        text[n] = '\0';
        return text;
}

static int serve_one(struct conn *c)
{
        return conn_serve(c, "one\n", 4);
}

/* A oneshot listener's connection keeps the accept's address: its message's
 * log line names it without asking the socket (a socketpair here, whose
 * getpeername() would name no such address). */
static void test_oneshot_logs_the_accepts_address(void **state)
{
        struct sockaddr_storage ss = { 0 };
        struct sockaddr_in *in = (struct sockaddr_in *) &ss;
        struct conn *c;
        const char *text;
        int r;

        (void) state;
        in->sin_family = AF_INET;
        in->sin_port = htons(4321);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK + 8);       /* 127.0.0.9 */
        peer_ss = &ss;
        peer_len = sizeof(*in);
        listener_settings_unref(set);
        set = settings(MODE_ONESHOT, FRAMING_LINE, 16, "");
        c = start();
        assert_true(conn_kept_peer(c) != NULL);
        text = logged(serve_one, c, &r);
        assert_int_equal(r, -ECONNRESET);
        if (!strstr(text, "message from 127.0.0.9:4321: \"one\\n\""))
                fail_msg("logged: %s", text);

        /* an echo listener's connection keeps nothing: it pays no bytes for it */
        listener_settings_unref(set);
        set = settings(MODE_ECHO, FRAMING_LINE, 16, "");
        c = start();
        assert_null(conn_kept_peer(c));
}

/* The close that follows a read which took everything the kernel had needs
 * no FIONREAD: the I/O says so (CONN_RX_EMPTY), and conn_serve() takes the
 * word off so that a later close asks the kernel again. */
static void test_close_after_a_read_that_took_everything(void **state)
{
        struct conn *c;

        (void) state;
        listener_settings_unref(set);
        set = settings(MODE_ONESHOT, FRAMING_LINE, 16, "");
        c = start();
        c->flags |= CONN_RX_EMPTY;
        /* input the "I/O" did not see: the word is taken, no FIONREAD asked */
        assert_int_equal(write(client, "late\n", 5), 5);
        assert_int_equal(serve(c, "one\n"), -ECONNRESET);
        assert_int_equal(io.closes, 1);                 /* closed at once */
        assert_int_equal(w.lingering.count, 0);

        /* without the word, unread input is asked about, and lingers */
        c = start();
        assert_int_equal(write(client, "more\n", 5), 5);
        assert_int_equal(serve(c, "one\n"), -ECONNRESET);
        assert_int_equal(io.closes, 1);
        assert_int_equal(w.lingering.count, 1);

        /* the word is used once: a partial message, then the rest */
        c = start();
        c->flags |= CONN_RX_EMPTY;
        assert_int_equal(serve(c, "on"), 0);
        assert_int_equal(c->flags & CONN_RX_EMPTY, 0);
        assert_int_equal(write(client, "more\n", 5), 5);
        assert_int_equal(serve(c, "e\n"), -ECONNRESET);
        assert_int_equal(w.lingering.count, 2);
}

/* The contract of conn.h: a call that returned < 0 has freed c. Here the
 * I/O fails, and every path reports it. */
static void test_failed_send_closes(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        io.fail_send = -EPIPE;
        assert_int_equal(serve(c, "x\n"), -ECONNRESET);
        assert_int_equal(io.closes, 1);
        assert_int_equal(w.n_conns, 0);
}

static void test_failed_start_balances_the_books(void **state)
{
        int sv[2];

        (void) state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        client = sv[1];
        io.fail_read = -ENOSPC;
        assert_int_equal(conn_start(&w, sv[0], set, NULL, NULL, 0), -ENOSPC);
        assert_int_equal(io.closes, 1);
        assert_int_equal(w.n_conns, 0);
        assert_int_equal(conns_closed, 1);
        assert_int_equal(w.conns.count, 0);
}

static void test_out_of_memory_for_a_reply_closes(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        (void) wire_take();
        fail_grow = true;
        /* a reply longer than the scratch buffer's 64 bytes needs it to grow */
        assert_true(conn_serve(c, "0123456789012345\n0123456789012345\n0123456789012345\n"
                                  "0123456789012345\n", 68) < 0);
        assert_int_equal(io.closes, 1);
}


/* ---- the counters (stats.h) ---- */

static uint64_t closed_total(const struct stats_counts *c)
{
        uint64_t t = 0;

        for (size_t i = 0; i < STATS_CLOSED_N; i++)
                t += c->closed[i];
        return t;
}

static void test_counts_a_conversation(void **state)
{
        struct stats_counts k;
        struct conn *c;

        (void) state;
        c = start();
        k = counts();
        assert_int_equal(k.accepted, 1);
        assert_int_equal(k.clients, 1);
        assert_int_equal(k.bytes_out, 6);       /* "hello\n" */
        assert_int_equal(serve(c, "a\nbb\n"), 0);
        k = counts();
        assert_int_equal(k.messages, 2);
        assert_int_equal(k.bytes_out, 6 + 3 + 4);
        /* one batch, timed once: both messages in the histogram, none past 1 s */
        assert_int_equal(k.message_hist[STATS_MESSAGE_BUCKETS], 0);
        {
                uint64_t n = 0;

                for (size_t i = 0; i <= STATS_MESSAGE_BUCKETS; i++)
                        n += k.message_hist[i];
                assert_int_equal(n, 2);
        }
        w.now_ms += 2500;                       /* a lifetime of 2.5 s */
        c->flags |= CONN_EOF;
        assert_true(conn_serve(c, NULL, 0) < 0);
        k = counts();
        assert_int_equal(k.closed[STATS_CLOSED_CLIENT], 1);
        assert_int_equal(closed_total(&k), 1);
        assert_int_equal(k.clients, 0);
        assert_int_equal(k.conn_ms, 2500);
        assert_int_equal(k.conn_hist[4], 1);    /* (1 s, 10 s] */
}

/* The first cause wins: a message too long, then the client's EOF. */
static void test_first_close_cause_wins(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        io.room = 0;                            /* the error reply stays queued */
        assert_int_equal(serve(c, "0123456789abcdefXYZ"), 0);
        c->flags |= CONN_EOF;
        assert_int_equal(conn_serve(c, NULL, 0), 0);
        io.room = SIZE_MAX;
        assert_true(client_reads(c) < 0);
        assert_int_equal(counts().closed[STATS_CLOSED_MAX_MESSAGE], 1);
        assert_int_equal(counts().closed[STATS_CLOSED_CLIENT], 0);
}

static void test_close_causes(void **state)
{
        struct conn *c;

        (void) state;
        conn_close_why(start(), STATS_CLOSED_IDLE);
        conn_drain(start());
        c = start();
        io.fail_send = -EPIPE;                  /* the client went away */
        assert_true(serve(c, "x\n") < 0);
        c = start();
        io.fail_send = -EIO;
        assert_true(serve(c, "x\n") < 0);
        conn_close(start());                    /* no cause given: an error */
        assert_int_equal(counts().closed[STATS_CLOSED_IDLE], 1);
        assert_int_equal(counts().closed[STATS_CLOSED_SHUTDOWN], 1);
        assert_int_equal(counts().closed[STATS_CLOSED_CLIENT], 1);
        assert_int_equal(counts().closed[STATS_CLOSED_ERROR], 2);
        assert_int_equal(counts().closed[STATS_CLOSED_RELOAD], 0);
        assert_int_equal(counts().accepted, 5);
        assert_int_equal(counts().clients, 0);
}

/* Not served at all: refused (descriptors), neither accepted nor closed. */
static void test_failed_start_counts_as_refused(void **state)
{
        struct stats_counts k;
        int sv[2];

        (void) state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        client = sv[1];
        io.fail_read = -ERANGE;
        assert_int_equal(conn_start(&w, sv[0], set, NULL, NULL, 0), -ERANGE);
        k = counts();
        assert_int_equal(k.refused[STATS_REFUSED_DESCRIPTORS], 1);
        assert_int_equal(k.accepted, 0);
        assert_int_equal(closed_total(&k), 0);
        assert_int_equal(k.conn_hist[0], 0);
}

/* Queued bytes: what waits in c->out, back to 0 when read or closed. */
static void test_queued_gauge(void **state)
{
        struct conn *c;

        (void) state;
        c = start();
        (void) wire_take();
        io.room = 2;
        assert_int_equal(serve(c, "abc\n"), 0);       /* "abc!\n": 2 go, 3 wait */
        assert_int_equal(counts().queued, 3);
        assert_int_equal(client_reads(c), 0);
        assert_int_equal(counts().queued, 0);
        io.room = 0;
        assert_int_equal(serve(c, "de\n"), 0);
        assert_int_equal(counts().queued, 4);
        conn_close(c);
        assert_int_equal(counts().queued, 0);
        assert_int_equal(counts().bytes_out, 6 + 5);
}

/* ---- behind a load balancer: the PROXY header stage ---- */

/* A connection on a listener with proxy_protocol "any" and proxy_timeout
 * 3 s, from the "balancer" 127.0.0.1:5555. */
static struct conn *start_proxied(void)
{
        struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(5555),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct sockaddr_storage ss = {};
        int sv[2];

        if (set->o.proxy_protocol == PROXY_OFF) {
                listener_settings_unref(set);
                set = settings(MODE_ECHO, FRAMING_LINE, 16, "hello\n");
                set->o.proxy_protocol = PROXY_ANY;
                set->o.proxy_timeout = 3;
        }
        memcpy(&ss, &peer, sizeof(peer));
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        if (client >= 0)
                close(client);
        client = sv[1];
        assert_int_equal(conn_start_proxy(&w, sv[0], set, 42, &ss, sizeof(peer)), 0);
        assert_int_equal(w.conns.count, 0);
        assert_int_equal(w.proxying.count, 1);
        assert_true(io.reading);
        return conn_from_idle(idle_oldest(&w.proxying));
}

static void test_proxy_header_then_greeting(void **state)
{
        static const char hdr[] = "PROXY TCP4 192.0.2.7 127.0.0.1 40001 8088\r\n";
        struct conn *c;
        struct sockaddr_in *sin = (struct sockaddr_in *) &admitted;
        char addr[INET_ADDRSTRLEN];

        (void) state;
        c = start_proxied();
        /* its deadline: accepted + proxy_timeout */
        assert_int_equal(c->idle.last_ms, 1000 + 3000);
        /* nothing before the header, nor counted as accepted */
        assert_string_equal(wire_take(), "");
        assert_int_equal(conn_serve(c, hdr, 10), 0);
        assert_string_equal(wire_take(), "");
        assert_int_equal(admit_calls, 0);
        assert_int_equal(counts().accepted, 0);
        /* the rest of the header and the first message in one read */
        assert_int_equal(conn_serve(c, " 192.0.2.7 127.0.0.1 40001 8088\r\nhi\nthe", 39), 0);
        assert_int_equal(admit_calls, 1);
        assert_int_equal(admitted_owner, 42);
        assert_int_equal(sin->sin_family, AF_INET);
        assert_int_equal(ntohs(sin->sin_port), 40001);
        assert_string_equal(inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr)), "192.0.2.7");
        assert_string_equal(wire_take(), "hello\nhi!\n");
        assert_int_equal(counts().accepted, 1);
        assert_int_equal(w.proxying.count, 0);
        assert_int_equal(w.conns.count, 1);
        assert_false(c->flags & CONN_PROXY_WAIT);
        /* the partial message after it was kept */
        assert_int_equal(conn_serve(c, "re\n", 3), 0);
        assert_string_equal(wire_take(), "there!\n");
}

static void test_proxy_header_straight_from_the_read(void **state)
{
        static const char v2_local[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00" "a\n";
        struct conn *c;

        (void) state;
        c = start_proxied();
        assert_int_equal(conn_serve(c, v2_local, sizeof(v2_local) - 1), 0);
        /* LOCAL: the balancer's own address goes to the policy */
        assert_int_equal(((struct sockaddr_in *) &admitted)->sin_port, htons(5555));
        assert_string_equal(wire_take(), "hello\na!\n");
}

static void test_proxy_refusals(void **state)
{
        static const char hdr[] = "PROXY TCP4 192.0.2.7 127.0.0.1 40001 8088\r\n";
        struct stats_counts k;
        struct conn *c;

        (void) state;
        /* the policy refuses the client the header names */
        c = start_proxied();
        admit_reason = STATS_REFUSED_MAX_PER_SOURCE;
        assert_true(conn_serve(c, hdr, sizeof(hdr) - 1) < 0);
        /* malformed */
        c = start_proxied();
        assert_true(conn_serve(c, "GET / HTTP/1.0\r\n", 16) < 0);
        /* cut short by the client's end */
        c = start_proxied();
        assert_int_equal(conn_serve(c, hdr, 20), 0);
        c->flags |= CONN_EOF;
        assert_true(conn_serve(c, NULL, 0) < 0);
        /* too late */
        c = start_proxied();
        conn_proxy_expired(c);
        k = counts();
        assert_int_equal(io.closes, 4);
        assert_int_equal(w.proxying.count, 0);
        assert_string_equal(wire_take(), "");
        /* never admitted: refused, neither accepted nor closed */
        assert_int_equal(k.refused[STATS_REFUSED_MAX_PER_SOURCE], 1);
        assert_int_equal(k.refused[STATS_REFUSED_PROXY_HEADER], 3);
        assert_int_equal(k.accepted, 0);
        for (unsigned i = 0; i < STATS_CLOSED_N; i++)
                assert_int_equal(k.closed[i], 0);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_greeting_then_reading, setup, teardown),
                cmocka_unit_test_setup_teardown(test_messages_answered_in_order_in_one_send, setup, teardown),
                cmocka_unit_test_setup_teardown(test_partial_message_waits_for_its_end, setup, teardown),
                cmocka_unit_test_setup_teardown(test_only_complete_messages_touch_idle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oneshot_closes_after_one_message, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_long_is_answered_then_closed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_eof_answers_the_last_line_then_closes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backpressure_throttles_and_resumes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drain_closes_once_output_is_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drain_with_nothing_queued_closes_now, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_with_unread_input_lingers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oneshot_logs_the_accepts_address, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_after_a_read_that_took_everything, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_send_closes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_start_balances_the_books, setup, teardown),
                cmocka_unit_test_setup_teardown(test_out_of_memory_for_a_reply_closes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_counts_a_conversation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_first_close_cause_wins, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_causes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_start_counts_as_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_queued_gauge, setup, teardown),
                cmocka_unit_test_setup_teardown(test_proxy_header_then_greeting, setup, teardown),
                cmocka_unit_test_setup_teardown(test_proxy_header_straight_from_the_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_proxy_refusals, setup, teardown),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
