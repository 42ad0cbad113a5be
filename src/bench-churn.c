/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "bench.h"
#include "bench-churn.h"
#include "bench-request.h"
#include "util.h"

#define CHURN_RETRY_NS          1000000ull              /* after an error */
#define CHURN_TIMEOUT_NS        (10ull * 1000000000ull) /* a whole exchange */
#define CHURN_READ_CHUNK        65536u

enum slot_state {
        SLOT_IDLE,              /* queued to start again */
        SLOT_CONNECTING,        /* connect() in progress, no greeting expected */
        SLOT_GREETING,          /* connect() in progress or done, reading the greeting */
        SLOT_REPLY,             /* a request sent (or being sent), reading its reply */
        SLOT_CLOSE_WAIT,        /* oneshot: the message sent (or being sent), awaiting the close */
};

struct slot {
        int fd;
        uint8_t state;
        bool want_out;          /* EPOLLOUT watched: a request not all sent yet */
        uint32_t rpos;          /* bytes of the greeting or reply matched */
        uint32_t wpos;          /* bytes of the request sent */
        uint32_t trips;         /* round trips done on this connection */
        uint64_t seq;           /* requests of this slot, all its connections */
        uint64_t start_ns;      /* socket() time; when idle after an error, the restart time */
};

/* A FIFO of slot ids; a slot is in one queue at most, so n_conns fit. */
struct churn_queue {
        uint32_t *ids;
        uint32_t head, len, cap;
};

struct churn {
        struct slot *slots;
        struct churn_queue now;         /* done: start again after this batch */
        struct churn_queue later;       /* failed: start again CHURN_RETRY_NS later */
        unsigned open;
        char *rbuf;
        char *wbuf;
};

static void churn_queue_push(struct churn_queue *q, uint32_t id)
{
        q->ids[(q->head + q->len++) % q->cap] = id;
}

static uint32_t churn_queue_pop(struct churn_queue *q)
{
        uint32_t id = q->ids[q->head];

        q->head = (q->head + 1) % q->cap;
        q->len--;
        return id;
}

int churn_setup(struct bench *b)
{
        struct churn *ch = calloc(1, sizeof(*ch));

        if (!ch)
                return -ENOMEM;
        b->churn_run = ch;
        ch->slots = calloc(b->n_conns, sizeof(*ch->slots));
        ch->now.ids = calloc(b->n_conns, sizeof(uint32_t));
        ch->later.ids = calloc(b->n_conns, sizeof(uint32_t));
        ch->rbuf = malloc(CHURN_READ_CHUNK);
        ch->wbuf = malloc(request_len(b));
        if (!ch->slots || !ch->now.ids || !ch->later.ids || !ch->rbuf || !ch->wbuf)
                return -ENOMEM;
        ch->now.cap = ch->later.cap = b->n_conns;
        for (unsigned i = 0; i < b->n_conns; i++)
                ch->slots[i].fd = -1;
        return 0;
}

/* Close the slot's connection: with RST (SO_LINGER 0) if reset, which
 * leaves no TIME_WAIT socket on our side. */
static void churn_close(struct bench *b, struct slot *s, bool reset)
{
        static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };

        if (s->fd >= 0) {
                if (reset)
                        (void) setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
                close(s->fd);   /* also leaves the epoll set */
                b->churn_run->open--;
        }
        s->fd = -1;
        s->state = SLOT_IDLE;
        s->want_out = false;
}

void churn_free(struct bench *b)
{
        struct churn *ch = b->churn_run;

        if (!ch)
                return;
        if (ch->slots)
                for (unsigned i = 0; i < b->n_conns; i++)
                        churn_close(b, &ch->slots[i], true);
        free(ch->slots);
        free(ch->now.ids);
        free(ch->later.ids);
        free(ch->rbuf);
        free(ch->wbuf);
        free(ch);
        b->churn_run = NULL;
}

/* The exchange failed: counted (in which, by errno, unless which is NULL:
 * counted already), closed, started again a little later. */
static void churn_failed(struct bench *b, uint32_t id, struct errcount *which, int err)
{
        struct churn *ch = b->churn_run;
        struct slot *s = &ch->slots[id];

        if (which)
                errcount_add(which, err);
        churn_close(b, s, true);
        s->start_ns = monotonic_ns() + CHURN_RETRY_NS;
        churn_queue_push(&ch->later, id);
}

/* The exchange is complete: its latency, then close and start again. */
static void churn_finish(struct bench *b, uint32_t id)
{
        struct churn *ch = b->churn_run;
        struct slot *s = &ch->slots[id];
        uint64_t now = monotonic_ns();

        b->cs.completed++;
        if (bench_measuring(b))
                hist_record(&b->hist, now > s->start_ns ? now - s->start_ns : 0);
        churn_close(b, s, b->rst);
        churn_queue_push(&ch->now, id);
}

static int churn_watch(struct bench *b, uint32_t id, bool out)
{
        struct slot *s = &b->churn_run->slots[id];
        struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = id };

        if (out == s->want_out)
                return 0;
        if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
                return -errno;
        s->want_out = out;
        return 0;
}

/* Send what is left of the slot's request; EPOLLOUT watched while some is. */
static void churn_send(struct bench *b, uint32_t id)
{
        struct churn *ch = b->churn_run;
        struct slot *s = &ch->slots[id];
        size_t len = request_build(b, ch->wbuf, id, s->seq);
        ssize_t w;
        int r;

        do
                w = send(s->fd, ch->wbuf + s->wpos, len - s->wpos, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        if (w < 0 && errno != EAGAIN) {
                churn_failed(b, id, &b->cs.exchange_errors, errno);
                return;
        }
        if (w > 0)
                s->wpos += (uint32_t) w;
        r = churn_watch(b, id, s->wpos < len);
        if (r < 0)
                churn_failed(b, id, &b->cs.exchange_errors, -r);
}

static void churn_next(struct bench *b, uint32_t id);

/* --proxy: the header a load balancer would send, naming a made-up client
 * (198.18.0.0/15, the benchmarking range, or fd00:bench::/64 for an IPv6
 * server: one per slot, so that max_per_source sees distinct clients).
 * Returns its length. */
static size_t churn_proxy_header(const struct bench *b, uint32_t id, char *out)
{
        static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
        bool v6 = b->addr.ss_family == AF_INET6;
        uint16_t dport = ntohs(v6 ? ((const struct sockaddr_in6 *) &b->addr)->sin6_port :
                               ((const struct sockaddr_in *) &b->addr)->sin_port);
        uint16_t sport = (uint16_t) (1024 + id % 60000);
        uint8_t src[16] = { 0 }, dst[16] = { 0 };
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
        size_t n;

        if (v6) {
                static const uint8_t net[8] = { 0xfd, 0x00, 0xbe, 0x4c, 0, 0, 0, 0 };

                memcpy(src, net, 8);
                src[12] = (uint8_t) (id >> 24); src[13] = (uint8_t) (id >> 16);
                src[14] = (uint8_t) (id >> 8); src[15] = (uint8_t) id;
                memcpy(dst, &((const struct sockaddr_in6 *) &b->addr)->sin6_addr, 16);
        } else {
                src[0] = 198; src[1] = (uint8_t) (18 + ((id >> 16) & 1));
                src[2] = (uint8_t) (id >> 8); src[3] = (uint8_t) id;
                memcpy(dst, &((const struct sockaddr_in *) &b->addr)->sin_addr, 4);
        }
        if (b->proxy == 1) {
                inet_ntop(v6 ? AF_INET6 : AF_INET, src, s, sizeof(s));
                inet_ntop(v6 ? AF_INET6 : AF_INET, dst, d, sizeof(d));
                return (size_t) snprintf(out, 108, "PROXY %s %s %s %u %u\r\n", v6 ? "TCP6" : "TCP4",
                                         s, d, sport, dport);
        }
        memcpy(out, sig, sizeof(sig));
        n = v6 ? 36 : 12;
        out[12] = 0x21;                         /* version 2, PROXY */
        out[13] = v6 ? 0x21 : 0x11;             /* TCP over IPv6 / IPv4 */
        out[14] = 0;
        out[15] = (char) n;
        memcpy(out + 16, src, v6 ? 16 : 4);
        memcpy(out + 16 + (v6 ? 16 : 4), dst, v6 ? 16 : 4);
        out[16 + n - 4] = (char) (sport >> 8);
        out[16 + n - 3] = (char) sport;
        out[16 + n - 2] = (char) (dport >> 8);
        out[16 + n - 1] = (char) dport;
        return 16 + n;
}

/* The connect is done: with --proxy, the header goes first (a few dozen
 * bytes into an empty send buffer: all or an error); then the greeting, or
 * the first request. */
static void churn_connected(struct bench *b, uint32_t id)
{
        struct slot *s = &b->churn_run->slots[id];
        char hdr[128];
        size_t len;
        ssize_t w;
        int r;

        if (!b->proxy) {
                churn_next(b, id);
                return;
        }
        len = churn_proxy_header(b, id, hdr);
        do
                w = send(s->fd, hdr, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (w < 0 && errno == EINTR);
        if (w != (ssize_t) len) {
                churn_failed(b, id, &b->cs.exchange_errors, w < 0 ? errno : EAGAIN);
                return;
        }
        if (b->greeting_len == 0) {
                churn_next(b, id);
                return;
        }
        s->state = SLOT_GREETING;
        s->rpos = 0;
        r = churn_watch(b, id, false);
        if (r < 0)
                churn_failed(b, id, &b->cs.connect_errors, -r);
}

/* The greeting or a reply is in (or the connect done, without a greeting):
 * the next request, the oneshot message, or the end. */
static void churn_next(struct bench *b, uint32_t id)
{
        struct slot *s = &b->churn_run->slots[id];

        if (!b->oneshot && s->trips >= b->round_trips) {
                churn_finish(b, id);
                return;
        }
        s->state = b->oneshot ? SLOT_CLOSE_WAIT : SLOT_REPLY;
        s->rpos = 0;
        s->wpos = 0;
        s->seq++;
        churn_send(b, id);
}

/* socket(), bound to the next source address, non-blocking connect(). With
 * a greeting, its arrival tells that the connect is done: one registration
 * and no EPOLL_CTL_MOD per connection. */
static void churn_open(struct bench *b, uint32_t id)
{
        struct churn *ch = b->churn_run;
        struct slot *s = &ch->slots[id];
        struct epoll_event ev = { .data.u32 = id };
        struct sockaddr_storage src;
        socklen_t src_len;
        int one = 1, r;

        s->start_ns = monotonic_ns();
        s->rpos = s->wpos = s->trips = 0;
        s->fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
                churn_failed(b, id, &b->cs.connect_errors, errno);
                return;
        }
        ch->open++;
        /* the port is chosen by connect(), for the address pair */
        if (srcaddr_next(&b->sources, &src, &src_len) &&
            (setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
             bind(s->fd, (struct sockaddr *) &src, src_len) < 0)) {
                churn_failed(b, id, &b->cs.connect_errors, errno);
                return;
        }
        r = connect(s->fd, (struct sockaddr *) &b->addr, b->addr_len);
        if (r < 0 && errno != EINPROGRESS) {
                churn_failed(b, id, &b->cs.connect_errors, errno);
                return;
        }
        /* with --proxy, the server greets only after the header: wait for the connect */
        s->state = b->greeting_len > 0 && !b->proxy ? SLOT_GREETING : SLOT_CONNECTING;
        s->want_out = s->state == SLOT_CONNECTING && r < 0;
        ev.events = EPOLLIN | (s->want_out ? EPOLLOUT : 0);
        if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
                churn_failed(b, id, &b->cs.connect_errors, errno);
                return;
        }
        if (s->state == SLOT_CONNECTING && r == 0)
                churn_connected(b, id);
}

void churn_start(struct bench *b)
{
        for (uint32_t i = 0; i < b->n_conns; i++)
                churn_queue_push(&b->churn_run->now, i);
}

void churn_restart(struct bench *b, uint64_t now)
{
        struct churn *ch = b->churn_run;
        uint32_t n = ch->now.len;       /* not those that finish on the way */

        if (b->phase == PHASE_DONE || bench_interrupted)
                return;
        while (n-- > 0)
                churn_open(b, churn_queue_pop(&ch->now));
        while (ch->later.len > 0 && ch->slots[ch->later.ids[ch->later.head]].start_ns <= now)
                churn_open(b, churn_queue_pop(&ch->later));
}

int churn_timeout_ms(const struct bench *b, uint64_t now)
{
        const struct churn *ch = b->churn_run;
        uint64_t due;

        if (ch->now.len > 0)
                return 0;
        if (ch->later.len == 0)
                return -1;
        due = ch->slots[ch->later.ids[ch->later.head]].start_ns;
        return due <= now ? 0 : (int) ((due - now + 999999) / 1000000);
}

/* Before the first byte of the greeting, or of a connect's first event
 * without one, an error is the connect's. */
static struct errcount *churn_errors_of(struct bench *b, const struct slot *s)
{
        if (s->state == SLOT_CONNECTING || (s->state == SLOT_GREETING && s->rpos == 0))
                return &b->cs.connect_errors;
        return &b->cs.exchange_errors;
}

void churn_check_timeouts(struct bench *b, uint64_t now)
{
        struct churn *ch = b->churn_run;

        for (uint32_t i = 0; i < b->n_conns; i++) {
                struct slot *s = &ch->slots[i];

                if (s->state != SLOT_IDLE && now > s->start_ns + CHURN_TIMEOUT_NS)
                        churn_failed(b, i, churn_errors_of(b, s), ETIMEDOUT);
        }
}

/* Match what was read with what this state expects. Returns 1 when it is
 * complete, 0 when more is to come, -1 when it is wrong or more than asked
 * for (in oneshot, anything before the close). */
static int churn_match(struct bench *b, uint32_t id, const char *p, size_t n)
{
        struct slot *s = &b->churn_run->slots[id];
        const char *exp;
        size_t len;

        if (s->state == SLOT_GREETING) {
                exp = b->greeting;
                len = b->greeting_len;
        } else if (s->state == SLOT_REPLY && s->wpos == request_len(b)) {
                exp = request_expected_reply(b, id, s->seq, &len);
        } else {
                return -1;
        }
        if (n > len - s->rpos || memcmp(p, exp + s->rpos, n) != 0)
                return -1;
        s->rpos += (uint32_t) n;
        return s->rpos == len;
}

static void churn_on_readable(struct bench *b, uint32_t id)
{
        struct churn *ch = b->churn_run;
        struct slot *s = &ch->slots[id];
        ssize_t n;
        int r;

        do
                n = recv(s->fd, ch->rbuf, CHURN_READ_CHUNK, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                if (errno != EAGAIN)
                        churn_failed(b, id, churn_errors_of(b, s), errno);
                return;
        }
        if (n == 0) {
                if (s->state == SLOT_CLOSE_WAIT && s->wpos == request_len(b)) {
                        churn_finish(b, id);
                } else {
                        b->cs.early_closes++;
                        churn_failed(b, id, NULL, 0);
                }
                return;
        }
        r = churn_match(b, id, ch->rbuf, (size_t) n);
        if (r < 0) {
                b->wrong_replies++;
                if (s->state == SLOT_GREETING)
                        b->wrong_greetings++;
                churn_failed(b, id, NULL, 0);
        } else if (r > 0) {
                if (s->state == SLOT_REPLY) {
                        s->trips++;
                        if (bench_measuring(b))
                                b->cs.round_trips++;
                }
                churn_next(b, id);
        }
}

void churn_on_event(struct bench *b, uint32_t id, uint32_t events)
{
        struct slot *s = &b->churn_run->slots[id];

        if (s->state == SLOT_IDLE)
                return;
        if (s->state == SLOT_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);

                if (events & (EPOLLERR | EPOLLHUP)) {
                        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                                err = errno;
                        churn_failed(b, id, &b->cs.connect_errors, err ? err : ECONNREFUSED);
                } else {
                        churn_connected(b, id);
                }
                return;
        }
        if ((events & EPOLLOUT) && s->want_out) {
                churn_send(b, id);
                if (s->state == SLOT_IDLE)
                        return;
        }
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                churn_on_readable(b, id);
}

unsigned churn_open_count(const struct bench *b)
{
        return b->churn_run ? b->churn_run->open : 0;
}
