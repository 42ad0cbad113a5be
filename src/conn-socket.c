/* SPDX-License-Identifier: MIT */
/* Connection I/O on a readiness loop (every backend): recv() when the loop
 * says the socket is readable, send() at once and, for what the kernel does
 * not take, again when it says writable. Output waits in c->out; this I/O
 * never takes any (c->io_sending stays 0). */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn-io.h"
#include "worker.h"

static void socket_on_event(struct ev_loop *loop, int fd, void *data, int mask);

static bool socket_usable(struct ev_loop *loop)
{
        (void) loop;
        return true;
}

static int socket_setup(struct worker *w)
{
        (void) w;
        return 0;
}

static void socket_free(struct worker *w)
{
        (void) w;
}

static int socket_read(struct conn *c, bool on)
{
        if (on)
                return ev_add(c->w->loop, c->fd, EV_READABLE, socket_on_event, c);
        ev_del(c->w->loop, c->fd, EV_READABLE);
        return 0;
}

static void socket_close(struct conn *c)
{
        /* A socket systemd's fd store also holds (preserve_connections)
         * outlives close(), and so would its epoll registration, reporting
         * the closed peer forever: unwatch it first. Else the socket is
         * never shared and close() forgets it. */
        if (c->store_id)
                ev_del(c->w->loop, c->fd, EV_READABLE | EV_WRITABLE);
        ev_close(c->w->loop, c->fd);
        free(c);
}

/* Write what waits in c->out; watch for writability while some remains.
 * -errno if c was closed. */
static int socket_flush(struct conn *c)
{
        struct worker *w = c->w;

        while (buffer_len(&c->out) > 0) {
                ssize_t n = send(c->fd, buffer_head(&c->out), buffer_len(&c->out), MSG_NOSIGNAL);
                struct stats_block *b;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                if (ev_add(w->loop, c->fd, EV_WRITABLE, socket_on_event, c) < 0)
                                        goto fail;
                                return 0;
                        }
                        conn_close_errno(c, errno);
                        return -ECONNRESET;
                }
                /* bytes of c->out: they were counted as queued */
                b = worker_stats(w, c->set);
                STATS_ADD(b, bytes_out, n);
                STATS_SUB(b, queued, n);
                buffer_consume(&c->out, (size_t) n);
                /* a client that reads its replies is not idle */
                idle_touch(&w->conns, &c->idle, w->now_ms);
        }
        ev_del(w->loop, c->fd, EV_WRITABLE);
        return 0;
fail:
        conn_close(c);
        return -ECONNRESET;
}

/* Write directly when nothing is queued before these bytes. */
static int socket_send(struct conn *c, const char *p, size_t n)
{
        struct worker *w = c->w;

        if (buffer_len(&c->out) == 0) {
                ssize_t sent;

                do
                        sent = send(c->fd, p, n, MSG_NOSIGNAL);
                while (sent < 0 && errno == EINTR);
                if (sent < 0 && errno != EAGAIN) {
                        conn_close_errno(c, errno);
                        return -ECONNRESET;
                }
                if (sent > 0) {
                        STATS_ADD(worker_stats(w, c->set), bytes_out, sent);
                        p += sent;
                        n -= (size_t) sent;
                }
                if (n == 0)
                        return 0;       /* the common case: nothing queued, nothing more counted */
        }
        if (buffer_append(&c->out, p, n, 0) < 0) {
                log_warning("out of memory queueing a reply: closing the connection");
                conn_close(c);
                return -ENOMEM;
        }
        STATS_ADD(worker_stats(w, c->set), queued, n);
        if (ev_add(w->loop, c->fd, EV_WRITABLE, socket_on_event, c) < 0) {
                conn_close(c);
                return -ECONNRESET;
        }
        return 0;
}

/* Half-closed by us (conn.c's lingering close): discard input until the
 * client closes. */
static void socket_linger_recv(struct conn *c)
{
        ssize_t n = recv(c->fd, c->w->rbuf, c->w->rbuf_size, 0);

        if (n > 0)      /* read, if only to be discarded: received all the same */
                STATS_ADD(worker_stats(c->w, c->set), bytes_in, n);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                conn_close(c);
}

static void socket_recv(struct conn *c)
{
        struct worker *w = c->w;
        const struct listener_opts *o = &c->set->o;
        size_t want = w->rbuf_size;
        ssize_t n;

        /* raw framing: a chunk longer than max_message must be visible as such */
        if (o->framing == FRAMING_RAW && want > (size_t) o->max_message + 1)
                want = (size_t) o->max_message + 1;
        do
                n = recv(c->fd, w->rbuf, want, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                if (errno != EAGAIN)
                        conn_close_errno(c, errno);
                return;
        }
        if (n == 0)
                c->flags |= CONN_EOF;
        else if ((size_t) n < want)
                c->flags |= CONN_RX_EMPTY;      /* a short read: the kernel had no more */
        STATS_ADD(worker_stats(w, c->set), bytes_in, n);
        (void) conn_serve(c, w->rbuf, (size_t) n);
}

static void socket_on_event(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct conn *c = data;

        (void) loop;
        (void) fd;
        if (c->flags & CONN_LINGER) {
                socket_linger_recv(c);
                return;
        }
        if (mask & EV_WRITABLE) {
                bool throttled = c->flags & CONN_THROTTLED;

                if (socket_flush(c) < 0 || conn_sent(c) < 0)
                        return;
                if (throttled && !(c->flags & CONN_THROTTLED))
                        return;         /* resumed: read at the next wakeup */
        }
        if ((mask & EV_READABLE) && !(c->flags & CONN_READ_OFF))
                socket_recv(c);
}

/* The loop stops watching c: the socket keeps what arrives. */
static void socket_pause(struct conn *c)
{
        ev_del(c->w->loop, c->fd, EV_READABLE | EV_WRITABLE);
}

static int socket_unpause(struct conn *c)
{
        if (!(c->flags & (CONN_READ_OFF | CONN_EOF)) &&
            ev_add(c->w->loop, c->fd, EV_READABLE, socket_on_event, c) < 0)
                goto fail;
        if (buffer_len(&c->out) > 0 && ev_add(c->w->loop, c->fd, EV_WRITABLE, socket_on_event, c) < 0)
                goto fail;
        return 0;
fail:
        conn_close(c);
        return -ECONNRESET;
}

const struct conn_io conn_io_socket = {
        .name = "socket",
        .usable = socket_usable,
        .setup = socket_setup,
        .free = socket_free,
        .read = socket_read,
        .send = socket_send,
        .close = socket_close,
        .pause = socket_pause,
        .unpause = socket_unpause,
};
