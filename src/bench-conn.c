/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "bench.h"
#include "bench-conn.h"
#include "bench-request.h"
#include "buffer.h"
#include "util.h"

#define CONNECT_BATCH           512u            /* handshakes in progress at once */
#define HANDSHAKE_TIMEOUT_NS    (10ull * 1000000000ull)
#define READ_CHUNK              65536u

enum conn_state {
        CONN_UNUSED,            /* not opened yet */
        CONN_CONNECTING,        /* non-blocking connect() in progress */
        CONN_GREETING,          /* connected, reading the greeting */
        CONN_HANDSHAKE,         /* idle mode without greeting: first round trip */
        CONN_READY,             /* running (or, in idle mode, holding) */
        CONN_CLOSED,
};

struct conn {
        int fd;
        uint8_t state;
        bool bad;               /* the reply being read is wrong: skip to its '\n' */
        bool want_out;          /* EPOLLOUT armed */
        uint32_t rpos;          /* bytes of the expected greeting/reply matched */
        uint64_t sent;          /* requests sent (or queued in out) */
        uint64_t done;          /* replies read */
        uint64_t start_ns;      /* connect() time, for the handshake timeout */
        struct buffer out;      /* requests the socket did not take yet */
};

int conn_setup(struct bench *b)
{
        b->conns = calloc(b->n_conns, sizeof(*b->conns));
        b->send_ns = calloc((size_t) b->n_conns * b->depth, sizeof(*b->send_ns));
        b->rbuf = malloc(READ_CHUNK);
        b->wbuf = malloc(request_len(b) * b->depth);
        if (!b->conns || !b->send_ns || !b->rbuf || !b->wbuf)
                return -ENOMEM;
        return 0;
}

static int conn_watch(struct bench *b, struct conn *c, bool out)
{
        struct epoll_event ev = {
                .events = out ? EPOLLOUT | (c->state != CONN_CONNECTING ? EPOLLIN : 0) : EPOLLIN,
                .data.u32 = (uint32_t) (c - b->conns),
        };

        if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
                return -errno;
        c->want_out = out;
        return 0;
}

static void conn_close(struct bench *b, struct conn *c)
{
        if (c->state == CONN_CLOSED || c->state == CONN_UNUSED)
                return;
        if (c->state == CONN_CONNECTING || c->state == CONN_GREETING || c->state == CONN_HANDSHAKE)
                b->handshaking--;
        if (c->state == CONN_READY)
                b->ready--;
        close(c->fd);   /* also leaves the epoll set */
        b->open--;
        c->fd = -1;
        c->state = CONN_CLOSED;
        buffer_free(&c->out);
}

static void conn_failed_to_connect(struct bench *b, struct conn *c, int err)
{
        b->connect_errors++;
        if (!b->first_connect_errno)
                b->first_connect_errno = err;
        conn_close(b, c);
}

/* The server closed, or the socket failed, while it should not have. */
static void conn_lost(struct bench *b, struct conn *c, int err)
{
        if (c->state == CONN_READY) {
                b->disconnects++;
                if (!b->first_disconnect_errno)
                        b->first_disconnect_errno = err;
                conn_close(b, c);
        } else {
                conn_failed_to_connect(b, c, err);
        }
}

/* The server broke the protocol (counted as a wrong reply): give up on
 * this connection. Not a disconnect: we are the ones closing. */
static void conn_abort(struct bench *b, struct conn *c)
{
        if (c->state == CONN_READY)
                conn_close(b, c);
        else
                conn_failed_to_connect(b, c, EPROTO);
}

/* Queue bytes the socket did not take; written on EPOLLOUT, in order. At
 * most DEPTH requests are in flight, so the queue stays below buffer.c's
 * 4 GiB (only -P 4096 with -s 1048576 reaches it, on a socket that takes
 * nothing: then the connection fails with ENOMEM). */
static int conn_queue(struct bench *b, struct conn *c, const char *p, size_t n)
{
        int r = buffer_append(&c->out, p, n, 0);

        if (r < 0)
                return r;
        if (!c->want_out)
                return conn_watch(b, c, true);
        return 0;
}

static int conn_write(struct bench *b, struct conn *c, const char *p, size_t n)
{
        ssize_t w;

        if (buffer_len(&c->out) > 0)
                return conn_queue(b, c, p, n);
        do
                w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        if (w < 0) {
                if (errno != EAGAIN)
                        return -errno;
                w = 0;
        }
        if ((size_t) w == n)
                return 0;
        return conn_queue(b, c, p + w, n - (size_t) w);
}

static int conn_flush(struct bench *b, struct conn *c)
{
        while (buffer_len(&c->out) > 0) {
                ssize_t w = send(c->fd, buffer_head(&c->out), buffer_len(&c->out),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                buffer_consume(&c->out, (size_t) w);
        }
        return conn_watch(b, c, false);
}

/* Send requests until depth are in flight (at most max of them). */
static int conn_send_requests(struct bench *b, struct conn *c, uint64_t max)
{
        unsigned id = (unsigned) (c - b->conns);
        uint64_t target = c->done + b->depth, t;
        size_t len = 0;

        if (b->phase == PHASE_DONE || bench_interrupted)
                return 0;
        if (target > c->sent + max)
                target = c->sent + max;
        if (c->sent >= target)
                return 0;
        t = monotonic_ns();
        for (; c->sent < target; c->sent++) {
                len += request_build(b, b->wbuf + len, id, c->sent);
                b->send_ns[(size_t) id * b->depth + c->sent % b->depth] = t;
        }
        return conn_write(b, c, b->wbuf, len);
}

static void conn_ready(struct bench *b, struct conn *c)
{
        b->handshaking--;
        b->ready++;
        c->state = CONN_READY;
        c->rpos = 0;
}

/* The handshake is done: in idle mode hold the connection, else start. */
static int conn_handshake_done(struct bench *b, struct conn *c)
{
        conn_ready(b, c);
        if (b->idle)
                return 0;
        return conn_send_requests(b, c, UINT64_MAX);
}

static void conn_connected(struct bench *b, struct conn *c)
{
        int r;

        c->state = b->greeting_len > 0 ? CONN_GREETING : CONN_HANDSHAKE;
        r = conn_watch(b, c, false);
        if (r < 0) {
                conn_failed_to_connect(b, c, -r);
                return;
        }
        if (c->state == CONN_HANDSHAKE) {
                if (b->idle)
                        /* no greeting proves the server accepted us: one round trip does */
                        r = conn_send_requests(b, c, 1);
                else
                        r = conn_handshake_done(b, c);
                if (r < 0)
                        conn_lost(b, c, -r);
        }
}

/* Open the next connections, keeping at most CONNECT_BATCH handshakes. */
void conn_open_more(struct bench *b)
{
        while (b->next_open < b->n_conns && b->handshaking < CONNECT_BATCH && !bench_interrupted) {
                struct conn *c = &b->conns[b->next_open++];
                struct epoll_event ev = { .data.u32 = (uint32_t) (c - b->conns) };
                int one = 1, fd, r;

                c->fd = -1;
                fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0) {
                        b->connect_errors++;
                        if (!b->first_connect_errno)
                                b->first_connect_errno = errno;
                        c->state = CONN_CLOSED;
                        continue;
                }
                /* requests are whole messages: no Nagle delay for pipelined ones */
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c->fd = fd;
                c->state = CONN_CONNECTING;
                c->start_ns = monotonic_ns();
                b->handshaking++;
                b->open++;

                r = connect(fd, (struct sockaddr *) &b->addr, b->addr_len);
                if (r < 0 && errno != EINPROGRESS) {
                        conn_failed_to_connect(b, c, errno);
                        continue;
                }
                ev.events = r == 0 ? EPOLLIN : EPOLLOUT;
                if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        conn_failed_to_connect(b, c, errno);
                        continue;
                }
                c->want_out = r != 0;
                if (r == 0)
                        conn_connected(b, c);
        }
}

void conn_check_timeouts(struct bench *b, uint64_t now)
{
        for (unsigned i = 0; i < b->next_open && b->handshaking > 0; i++) {
                struct conn *c = &b->conns[i];

                if ((c->state == CONN_CONNECTING || c->state == CONN_GREETING ||
                     c->state == CONN_HANDSHAKE) && now > c->start_ns + HANDSHAKE_TIMEOUT_NS)
                        conn_failed_to_connect(b, c, ETIMEDOUT);
        }
}

/* A whole reply was read: its latency, then the next request. */
static void conn_reply_done(struct bench *b, struct conn *c, uint64_t now, bool wrong)
{
        unsigned id = (unsigned) (c - b->conns);
        uint64_t t0 = b->send_ns[(size_t) id * b->depth + c->done % b->depth];

        c->done++;
        c->rpos = 0;
        c->bad = false;
        if (wrong)
                b->wrong_replies++;
        else
                b->replies_total++;
        if (bench_measuring(b) && !wrong)
                hist_record(&b->hist, now > t0 ? now - t0 : 0);
}

/* Compare what was read with what was expected. Returns bytes consumed,
 * or -1 if the connection cannot go on. */
static ssize_t conn_consume_reply(struct bench *b, struct conn *c, const char *p, size_t n,
                                  uint64_t now, unsigned *completed)
{
        unsigned id = (unsigned) (c - b->conns);
        const char *exp;
        size_t len, k;

        if (c->done == c->sent) {
                /* nothing asked: the server said too much */
                b->wrong_replies++;
                return -1;
        }
        if (c->bad) {
                const char *nl = memchr(p, '\n', n);

                if (!nl)
                        return (ssize_t) n;
                conn_reply_done(b, c, now, true);
                (*completed)++;
                return nl + 1 - p;
        }
        exp = request_expected_reply(b, id, c->done, &len);
        k = len - c->rpos < n ? len - c->rpos : n;
        if (memcmp(p, exp + c->rpos, k) != 0) {
                if (!b->reply_resync) {
                        b->wrong_replies++;
                        return -1;
                }
                c->bad = true;
                return 0;       /* skip from here to the end of the line */
        }
        c->rpos += (uint32_t) k;
        if (c->rpos == len) {
                conn_reply_done(b, c, now, false);
                (*completed)++;
        }
        return (ssize_t) k;
}

static void conn_on_readable(struct bench *b, struct conn *c)
{
        unsigned completed = 0;
        const char *p;
        uint64_t now;
        ssize_t n;

        do
                n = recv(c->fd, b->rbuf, READ_CHUNK, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                if (errno != EAGAIN)
                        conn_lost(b, c, errno);
                return;
        }
        if (n == 0) {
                conn_lost(b, c, ECONNRESET);
                return;
        }
        now = monotonic_ns();
        p = b->rbuf;

        while (n > 0) {
                ssize_t k;

                if (c->state == CONN_GREETING) {
                        size_t want = b->greeting_len - c->rpos;

                        k = (size_t) n < want ? n : (ssize_t) want;
                        if (memcmp(p, b->greeting + c->rpos, (size_t) k) != 0) {
                                b->wrong_replies++;
                                b->wrong_greetings++;
                                conn_abort(b, c);
                                return;
                        }
                        c->rpos += (uint32_t) k;
                        if (c->rpos == b->greeting_len) {
                                int r = conn_handshake_done(b, c);

                                if (r < 0) {
                                        conn_lost(b, c, -r);
                                        return;
                                }
                        }
                } else if (c->state == CONN_HANDSHAKE || c->state == CONN_READY) {
                        unsigned done = 0;

                        k = conn_consume_reply(b, c, p, (size_t) n, now, &done);
                        if (k < 0) {
                                conn_abort(b, c);
                                return;
                        }
                        if (done && c->state == CONN_HANDSHAKE)
                                conn_ready(b, c);       /* idle mode: held from now on */
                        else
                                completed += done;
                } else {
                        return;
                }
                p += k;
                n -= k;
        }

        if (completed > 0 && !b->idle) {
                int r = conn_send_requests(b, c, completed);

                if (r < 0)
                        conn_lost(b, c, -r);
        }
}

void conn_on_event(struct bench *b, uint32_t id, uint32_t events)
{
        struct conn *c = &b->conns[id];

        if (c->state == CONN_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);

                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err) {
                        conn_failed_to_connect(b, c, err);
                        return;
                }
                if (!(events & (EPOLLOUT | EPOLLIN)))
                        return;
                conn_connected(b, c);
                return;
        }
        if (c->state == CONN_CLOSED)
                return;
        if ((events & EPOLLOUT) && buffer_len(&c->out) > 0) {
                int r = conn_flush(b, c);

                if (r < 0) {
                        conn_lost(b, c, -r);
                        return;
                }
        }
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_on_readable(b, c);
}

/* Reset rather than close: a closing client keeps its port in TIME_WAIT for
 * a minute, and runs of thousands of connections one after another would
 * run out of local ports. */
static void conn_reset(struct bench *b, struct conn *c)
{
        static const struct linger reset = { .l_onoff = 1, .l_linger = 0 };

        if (c->fd >= 0 && c->state != CONN_CLOSED && c->state != CONN_UNUSED)
                (void) setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        conn_close(b, c);
}

void conn_free(struct bench *b)
{
        if (b->conns)
                for (unsigned i = 0; i < b->n_conns; i++)
                        conn_reset(b, &b->conns[i]);
        free(b->conns);
        b->conns = NULL;
        free(b->send_ns);
        b->send_ns = NULL;
        free(b->rbuf);
        b->rbuf = NULL;
        free(b->wbuf);
        b->wbuf = NULL;
}
