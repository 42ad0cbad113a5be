/* SPDX-License-Identifier: MIT */
/* muxbench: a load generator for muxd and other line servers. Opens N
 * connections to one server from a single epoll loop, reads each one's
 * greeting, then runs request/reply round trips (DEPTH requests in flight per
 * connection) for a warm-up and a measured window. Every reply is checked
 * byte for byte; latencies go into a log-bucketed histogram (no array of
 * samples), so memory does not grow with the run. Idle mode only opens the
 * connections and holds them, for memory-per-connection measurements. */
/* The build force-includes autoconfig.h (PACKAGE_VERSION, _GNU_SOURCE); the
 * file also builds alone with plain gcc. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include "bench-hist.h"
#include "bench-proc.h"
#include "buffer.h"
#include "cli.h"
#include "util.h"

const char *cli_program = "muxbench";

#define EXIT_USAGE              2

#define CONNECTIONS_MAX         1000000u
#define SIZE_MAX_BYTES          (1u << 20)      /* -s: muxd's own max_message bound */
#define DEPTH_MAX               4096u
#define SECONDS_MAX             86400.0
#define TEMPLATE_MAX            65536u          /* --request, --reply, --greeting */
#define RESERVED_FDS            16u             /* stdio, epoll, /proc reads, ... */
#define CONNECT_BATCH           512u            /* handshakes in progress at once */
#define HANDSHAKE_TIMEOUT_NS    (10ull * 1000000000ull)
#define READ_CHUNK              65536u
#define EVENTS_MAX              1024
#define TICK_MS                 100             /* longest epoll wait */

#define DEFAULT_SIZE            16u
#define DEFAULT_DURATION        10.0
#define DEFAULT_WARMUP          1.0
#define DEFAULT_GREETING        "hello...\n"
#define DEFAULT_SUFFIX          "hi..."

/* ---- state ---------------------------------------------------------------- */

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

enum phase {
        PHASE_CONNECT,
        PHASE_WARMUP,
        PHASE_MEASURE,
        PHASE_DONE,
};

struct bench {
        /* options */
        char *target;
        unsigned n_conns;
        double duration, warmup;
        unsigned size;
        unsigned depth;
        bool size_set;
        char *greeting;
        size_t greeting_len;
        char *suffix;
        size_t suffix_len;
        char *request;          /* fixed request (--request); NULL: generated */
        size_t request_len;
        char *reply;            /* fixed reply (--reply, or derived from --request) */
        size_t reply_len;
        long server_pid;        /* 0: none */
        bool json;
        bool idle;
        bool quiet;

        /* run */
        struct sockaddr_storage addr;
        socklen_t addr_len;
        char addr_str[SOCKADDR_STR_MAX];
        int epfd;
        struct conn *conns;
        uint64_t *send_ns;      /* n_conns * depth send times, a ring per connection */
        unsigned next_open;     /* next connection to open */
        unsigned handshaking;   /* connecting + awaiting greeting/handshake */
        unsigned ready;         /* connections in CONN_READY */
        unsigned open;          /* connections with a descriptor */
        char *rbuf;
        char *wbuf;             /* requests being built, depth of them */
        char *expect;           /* expected reply being compared */
        size_t body_len;        /* generated request: bytes before the "\n" */
        char *body;             /* a body template, padding included */
        bool reply_resync;      /* the reply ends with '\n': a wrong one can be skipped */
        bool progress;          /* a \r progress line on stderr */

        enum phase phase;
        uint64_t phase_end_ns;
        uint64_t measure_start_ns, measure_end_ns;
        uint64_t next_tick_ns;
        uint64_t replies_total, replies_at_tick;
        struct proc_sample server_start, server_end;    /* of the measured window */

        /* results */
        struct histogram hist;
        uint64_t wrong_replies;         /* wrong greetings included */
        uint64_t wrong_greetings;
        uint64_t connect_errors;
        uint64_t disconnects;
        int first_connect_errno;
        int first_disconnect_errno;
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
        got_signal = sig;
}

/* ---- option values --------------------------------------------------------- */

/* Seconds as a decimal number ("3", "0.5"), in [min, max]. */
static int parse_seconds(const char *s, double min, double max, double *ret)
{
        char *end;
        double v;

        if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (*end != '\0' || errno != 0 || !isfinite(v) || v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* C-style escapes: \n \r \t \\ \0 \xNN; anything else is taken as is.
 * Returns the new string (its length in *len) or NULL with errno set. */
static char *unescape(const char *s, size_t *len)
{
        size_t n = strlen(s), k = 0;
        char *out = malloc(n + 1);

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '\\' || i + 1 == n) {
                        out[k++] = s[i];
                        continue;
                }
                switch (s[++i]) {
                case 'n': out[k++] = '\n'; break;
                case 'r': out[k++] = '\r'; break;
                case 't': out[k++] = '\t'; break;
                case '0': out[k++] = '\0'; break;
                case '\\': out[k++] = '\\'; break;
                case 'x': {
                        int hi = i + 1 < n ? hex_digit(s[i + 1]) : -1;
                        int lo = i + 2 < n ? hex_digit(s[i + 2]) : -1;

                        if (hi < 0 || lo < 0) {
                                free(out);
                                errno = EINVAL;
                                return NULL;
                        }
                        out[k++] = (char) (hi * 16 + lo);
                        i += 2;
                        break;
                }
                default:
                        out[k++] = '\\';
                        out[k++] = s[i];
                }
        }
        out[k] = '\0';
        *len = k;
        return out;
}

/* The target (see hostport_parse()): the first address getaddrinfo() gives
 * is used. */
static int resolve_target(struct bench *b)
{
        struct addrinfo *res;
        struct hostport hp;
        int r;

        r = cli_parse_server(b->target, &hp);
        if (r < 0)
                return r;
        r = hostport_resolve(&hp, &res);
        free(hp.host);
        if (r != 0) {
                cli_error("%s: %s", b->target, r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
                return -EHOSTUNREACH;
        }
        memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
        b->addr_len = res->ai_addrlen;
        freeaddrinfo(res);
        sockaddr_to_string((struct sockaddr *) &b->addr, b->addr_len, b->addr_str);
        return 0;
}

/* ---- requests and replies ------------------------------------------------ */

static size_t request_len(const struct bench *b)
{
        return b->request ? b->request_len : b->body_len + 1;
}

/* v in decimal, written so that it ends just before end; returns its start.
 * By hand: it runs twice per request (the request, then the reply it
 * expects), and snprintf() there took half of muxbench's user time. */
static char *format_decimal(char *end, uint64_t v)
{
        do {
                *--end = (char) ('0' + v % 10);
                v /= 10;
        } while (v);
        return end;
}

/* The request with sequence number seq on connection id, into out. A
 * generated request is "ID-SEQ" padded with '.' to its size (the last digits
 * kept if it does not fit), then "\n": unique per request whenever the size
 * allows, so a reply sent to the wrong request or twice is noticed. */
static size_t build_request(const struct bench *b, char *out, unsigned id, uint64_t seq)
{
        char tag[48], *end = tag + sizeof(tag), *p;
        size_t n;

        if (b->request) {
                memcpy(out, b->request, b->request_len);
                return b->request_len;
        }
        memcpy(out, b->body, b->body_len);
        p = format_decimal(end, seq);
        *--p = '-';
        p = format_decimal(p, id);
        n = (size_t) (end - p);
        if (n <= b->body_len)
                memcpy(out, p, n);
        else
                memcpy(out, end - b->body_len, b->body_len);
        out[b->body_len] = '\n';
        return b->body_len + 1;
}

/* The reply expected for that request. */
static const char *expected_reply(struct bench *b, unsigned id, uint64_t seq, size_t *len)
{
        if (b->reply) {
                *len = b->reply_len;
                return b->reply;
        }
        build_request(b, b->expect, id, seq);
        memcpy(b->expect + b->body_len, b->suffix, b->suffix_len);
        b->expect[b->body_len + b->suffix_len] = '\n';
        *len = b->body_len + b->suffix_len + 1;
        return b->expect;
}

/* ---- connections ------------------------------------------------------------ */

static bool measuring(const struct bench *b)
{
        return b->phase == PHASE_MEASURE;
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

/* Queue bytes the socket did not take; written on EPOLLOUT, in order. */
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

        if (b->phase == PHASE_DONE || got_signal)
                return 0;
        if (target > c->sent + max)
                target = c->sent + max;
        if (c->sent >= target)
                return 0;
        t = monotonic_ns();
        for (; c->sent < target; c->sent++) {
                len += build_request(b, b->wbuf + len, id, c->sent);
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
static void conns_open_more(struct bench *b)
{
        while (b->next_open < b->n_conns && b->handshaking < CONNECT_BATCH && !got_signal) {
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

static void conns_check_timeouts(struct bench *b, uint64_t now)
{
        for (unsigned i = 0; i < b->next_open && b->handshaking > 0; i++) {
                struct conn *c = &b->conns[i];

                if ((c->state == CONN_CONNECTING || c->state == CONN_GREETING ||
                     c->state == CONN_HANDSHAKE) && now > c->start_ns + HANDSHAKE_TIMEOUT_NS)
                        conn_failed_to_connect(b, c, ETIMEDOUT);
        }
}

/* A whole reply was read: its latency, then the next request. */
static void reply_done(struct bench *b, struct conn *c, uint64_t now, bool wrong)
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
        if (measuring(b) && !wrong)
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
                reply_done(b, c, now, true);
                (*completed)++;
                return nl + 1 - p;
        }
        exp = expected_reply(b, id, c->done, &len);
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
                reply_done(b, c, now, false);
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

static void conn_on_event(struct bench *b, struct conn *c, uint32_t events)
{
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

/* ---- descriptors ---------------------------------------------------------------- */

static int raise_fd_limit(unsigned n_conns)
{
        struct rlimit rl;
        uint64_t need = (uint64_t) n_conns + RESERVED_FDS;
        unsigned long lo, hi;
        FILE *f;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
                cli_error("getrlimit: %s", strerror(errno));
                return -errno;
        }
        if (rl.rlim_cur < rl.rlim_max) {
                struct rlimit want = { rl.rlim_max, rl.rlim_max };

                if (setrlimit(RLIMIT_NOFILE, &want) == 0)
                        rl.rlim_cur = rl.rlim_max;
        }
        if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
                cli_error("%u connections need %" PRIu64 " descriptors, but the limit is %llu "
                          "(hard limit %llu): use -c %llu or less, or raise the hard limit "
                          "(ulimit -Hn, LimitNOFILE=)",
                          n_conns, need, (unsigned long long) rl.rlim_cur,
                          (unsigned long long) rl.rlim_max,
                          rl.rlim_cur > RESERVED_FDS ? (unsigned long long) rl.rlim_cur - RESERVED_FDS : 0ull);
                return -EMFILE;
        }

        /* Not fatal: the server may listen on several addresses, or the
         * kernel may reuse ports; but say why connects may fail. */
        f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
        if (f) {
                if (fscanf(f, "%lu %lu", &lo, &hi) == 2 && hi >= lo && n_conns > hi - lo + 1)
                        cli_error("warning: %u connections but only %lu local ports "
                                  "(net.ipv4.ip_local_port_range): connects may fail",
                                  n_conns, hi - lo + 1);
                fclose(f);
        }
        return 0;
}

/* ---- output ------------------------------------------------------------------------ */

static void progress_clear(struct bench *b)
{
        if (b->progress)
                fprintf(stderr, "\r%-79s\r", "");
}

static void progress_show(struct bench *b, uint64_t now)
{
        uint64_t rate = b->replies_total - b->replies_at_tick;
        char line[160];

        b->replies_at_tick = b->replies_total;
        if (!b->progress)
                return;
        switch (b->phase) {
        case PHASE_CONNECT:
                snprintf(line, sizeof(line), "connecting: %u/%u ready, %" PRIu64 " failed",
                         b->ready, b->n_conns, b->connect_errors);
                break;
        case PHASE_WARMUP:
        case PHASE_MEASURE:
                if (b->idle) {
                        snprintf(line, sizeof(line), "holding %u idle connections, %" PRIu64 " closed by the server",
                                 b->ready, b->disconnects);
                        break;
                }
                snprintf(line, sizeof(line), "%s %.0fs: %" PRIu64 " req/s, %u connections, %" PRIu64 " wrong, %" PRIu64 " closed",
                         b->phase == PHASE_WARMUP ? "warm-up" : "measuring",
                         b->phase == PHASE_WARMUP ? (double) (now - b->measure_start_ns + (uint64_t) (b->warmup * 1e9)) / 1e9
                                                  : (double) (now - b->measure_start_ns) / 1e9,
                         rate, b->ready, b->wrong_replies, b->disconnects);
                break;
        default:
                return;
        }
        fprintf(stderr, "\rmuxbench: %-69s", line);
}

static void json_number(const char *key, double v, bool last)
{
        printf("\"%s\":%.3f%s", key, v, last ? "" : ",");
}

/* Write a string as JSON. */
static void json_string(const char *s, size_t n)
{
        putchar('"');
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char) s[i];

                if (ch == '"' || ch == '\\')
                        printf("\\%c", ch);
                else if (ch < 0x20 || ch >= 0x7f)
                        printf("\\u%04x", ch);
                else
                        putchar(ch);
        }
        putchar('"');
}

static void report(struct bench *b)
{
        double secs = b->measure_end_ns > b->measure_start_ns
                ? (double) (b->measure_end_ns - b->measure_start_ns) / 1e9 : 0.0;
        uint64_t reqs = b->hist.count;
        double rps = secs > 0 ? (double) reqs / secs : 0.0;
        double p50 = (double) hist_quantile(&b->hist, 0.50) / 1e3;
        double p99 = (double) hist_quantile(&b->hist, 0.99) / 1e3;
        double p999 = (double) hist_quantile(&b->hist, 0.999) / 1e3;
        double pmax = (double) b->hist.max / 1e3;
        double mean = reqs ? (double) b->hist.sum / (double) reqs / 1e3 : 0.0;
        double cpu_us = -1.0, sleeps = -1.0;
        long rss = b->server_pid ? proc_rss_kib(b->server_pid) : -1;
        unsigned connected = b->idle ? b->ready : (unsigned) (b->n_conns - b->connect_errors);

        if (b->server_pid && b->server_start.cpu_ns >= 0 && b->server_end.cpu_ns >= 0 && reqs > 0)
                cpu_us = (double) (b->server_end.cpu_ns - b->server_start.cpu_ns) / 1e3 / (double) reqs;
        if (b->server_pid && b->server_start.sleeps >= 0 && b->server_end.sleeps >= 0 && reqs > 0)
                sleeps = (double) (b->server_end.sleeps - b->server_start.sleeps) / (double) reqs;

        if (b->json) {
                printf("{\"target\":");
                json_string(b->target, strlen(b->target));
                printf(",\"mode\":\"%s\",\"connections\":%u,\"connected\":%u,"
                       "\"connect_errors\":%" PRIu64 ",\"disconnects\":%" PRIu64 ",\"wrong_replies\":%" PRIu64 ","
                       "\"wrong_greetings\":%" PRIu64 ",",
                       b->idle ? "idle" : "run", b->n_conns, connected, b->connect_errors,
                       b->disconnects, b->wrong_replies, b->wrong_greetings);
                printf("\"payload\":%zu,\"pipeline\":%u,", request_len(b), b->depth);
                json_number("warmup_s", b->warmup, false);
                json_number("duration_s", secs, false);
                printf("\"requests\":%" PRIu64 ",", reqs);
                json_number("rps", rps, false);
                json_number("lat_p50_us", p50, false);
                json_number("lat_p99_us", p99, false);
                json_number("lat_p999_us", p999, false);
                json_number("lat_max_us", pmax, false);
                json_number("lat_mean_us", mean, false);
                if (cpu_us >= 0)
                        json_number("server_cpu_us_per_req", cpu_us, false);
                else
                        printf("\"server_cpu_us_per_req\":null,");
                if (sleeps >= 0)
                        json_number("server_sleeps_per_req", sleeps, false);
                else
                        printf("\"server_sleeps_per_req\":null,");
                if (rss >= 0)
                        printf("\"server_rss_kib\":%ld}\n", rss);
                else
                        printf("\"server_rss_kib\":null}\n");
                fflush(stdout);
                return;
        }

        if (b->idle) {
                printf("muxbench: %s: held %u idle connection%s for %.1f s\n", b->target,
                       b->ready, b->ready == 1 ? "" : "s", secs);
        } else {
                printf("muxbench: %s (%s), %u connection%s, %zu-byte requests, pipeline %u\n",
                       b->target, b->addr_str, b->n_conns, b->n_conns == 1 ? "" : "s",
                       request_len(b), b->depth);
        }
        if (!b->idle && b->measure_start_ns == 0) {
                printf("  window      none: %s\n", got_signal ? "interrupted before it began" : "no connection was ready");
        } else if (!b->idle) {
                printf("  window      %.2f s measured after %.2f s of warm-up\n", secs, b->warmup);
                printf("  requests    %" PRIu64 "  (%.1f/s)\n", reqs, rps);
                printf("  latency     p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us, mean %.1f us\n",
                       p50, p99, p999, pmax, mean);
        }
        printf("  errors      %" PRIu64 " wrong repl%s", b->wrong_replies, b->wrong_replies == 1 ? "y" : "ies");
        if (b->wrong_greetings)
                printf(" (%" PRIu64 " wrong greeting%s)", b->wrong_greetings, b->wrong_greetings == 1 ? "" : "s");
        printf(", %" PRIu64 " connect error%s", b->connect_errors, b->connect_errors == 1 ? "" : "s");
        if (b->first_connect_errno && b->first_connect_errno != EPROTO)
                printf(" (%s)", strerror(b->first_connect_errno));
        printf(", %" PRIu64 " closed by the server", b->disconnects);
        if (b->first_disconnect_errno)
                printf(" (%s)", strerror(b->first_disconnect_errno));
        putchar('\n');
        if (b->server_pid) {
                if (cpu_us >= 0)
                        printf("  server      pid %ld: %.2f us CPU per request", b->server_pid, cpu_us);
                else
                        printf("  server      pid %ld", b->server_pid);
                if (sleeps >= 0)
                        printf(", %.3f sleeps per request", sleeps);
                if (rss >= 0)
                        printf(", RSS %ld KiB", rss);
                putchar('\n');
        }
        fflush(stdout);
}

/* ---- the loop ---------------------------------------------------------------------- */

static void server_sample_end(struct bench *b)
{
        b->server_end = proc_sample(b->server_pid);
}

static void phase_start_measure(struct bench *b, uint64_t now)
{
        b->phase = PHASE_MEASURE;
        b->measure_start_ns = now;
        b->phase_end_ns = b->duration > 0 ? now + (uint64_t) (b->duration * 1e9) : UINT64_MAX;
        if (b->server_pid) {
                b->server_start = proc_sample(b->server_pid);
        }
}

static void phase_advance(struct bench *b, uint64_t now)
{
        if (b->phase == PHASE_CONNECT) {
                if (b->next_open < b->n_conns || b->handshaking > 0)
                        return;
                if (b->ready == 0) {
                        b->phase = PHASE_DONE;  /* nothing to measure */
                        return;
                }
                if (b->idle) {
                        phase_start_measure(b, now);
                        progress_clear(b);
                        /* a line a script can wait for */
                        if (!b->json)
                                printf("muxbench: holding %u idle connection%s (%" PRIu64 " failed)\n",
                                       b->ready, b->ready == 1 ? "" : "s", b->connect_errors);
                        fflush(stdout);
                        return;
                }
                if (b->warmup > 0) {
                        b->phase = PHASE_WARMUP;
                        b->measure_start_ns = now + (uint64_t) (b->warmup * 1e9);
                        b->phase_end_ns = b->measure_start_ns;
                } else {
                        phase_start_measure(b, now);
                }
                return;
        }
        if (now < b->phase_end_ns)
                return;
        if (b->phase == PHASE_WARMUP) {
                phase_start_measure(b, now);
                return;
        }
        if (b->phase == PHASE_MEASURE) {
                b->measure_end_ns = now;
                if (b->server_pid)
                        server_sample_end(b);
                b->phase = PHASE_DONE;
        }
}

static int run(struct bench *b)
{
        struct epoll_event events[EVENTS_MAX];
        uint64_t now = monotonic_ns();

        b->phase = PHASE_CONNECT;
        b->next_tick_ns = now + 1000000000u;
        conns_open_more(b);

        while (b->phase != PHASE_DONE) {
                int n, timeout = TICK_MS;

                if (got_signal) {
                        if (b->phase == PHASE_MEASURE) {
                                b->measure_end_ns = monotonic_ns();
                                if (b->server_pid)
                                        server_sample_end(b);
                        }
                        b->phase = PHASE_DONE;
                        break;
                }
                if (b->phase != PHASE_CONNECT && b->phase_end_ns != UINT64_MAX) {
                        uint64_t left = b->phase_end_ns > now ? (b->phase_end_ns - now + 999999) / 1000000 : 0;

                        if (left < (uint64_t) timeout)
                                timeout = (int) left;
                }
                n = epoll_wait(b->epfd, events, EVENTS_MAX, timeout);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        cli_error("epoll_wait: %s", strerror(errno));
                        return -errno;
                }
                for (int i = 0; i < n; i++)
                        conn_on_event(b, &b->conns[events[i].data.u32], events[i].events);

                now = monotonic_ns();
                if (b->phase == PHASE_CONNECT) {
                        conns_open_more(b);
                        if (b->handshaking > 0 && (n == 0 || now >= b->next_tick_ns))
                                conns_check_timeouts(b, now);
                }
                phase_advance(b, now);
                if (now >= b->next_tick_ns) {
                        progress_show(b, now);
                        b->next_tick_ns = now + 1000000000u;
                }
                if (b->open == 0 && b->phase != PHASE_CONNECT) {
                        /* everything was closed under us: nothing left to measure */
                        if (b->phase == PHASE_MEASURE) {
                                b->measure_end_ns = now;
                                if (b->server_pid)
                                        server_sample_end(b);
                        }
                        b->phase = PHASE_DONE;
                }
        }
        progress_clear(b);
        return 0;
}

static int setup(struct bench *b)
{
        size_t max_reply;

        if (!b->request)
                b->body_len = b->size - 1;
        b->conns = calloc(b->n_conns, sizeof(*b->conns));
        b->send_ns = calloc((size_t) b->n_conns * b->depth, sizeof(*b->send_ns));
        b->rbuf = malloc(READ_CHUNK);
        b->wbuf = malloc(request_len(b) * b->depth);
        if (!b->conns || !b->send_ns || !b->rbuf || !b->wbuf)
                return -ENOMEM;

        if (!b->request) {
                b->body = malloc(b->body_len + 1);
                if (!b->body)
                        return -ENOMEM;
                memset(b->body, '.', b->body_len);
        }
        max_reply = b->reply ? b->reply_len : b->body_len + b->suffix_len + 1;
        b->expect = malloc(max_reply + 1);
        if (!b->expect)
                return -ENOMEM;
        b->reply_resync = b->reply ? b->reply[b->reply_len - 1] == '\n' : true;

        b->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (b->epfd < 0) {
                cli_error("epoll_create1: %s", strerror(errno));
                return -errno;
        }
        return 0;
}

static void bench_free(struct bench *b)
{
        /* Reset rather than close: a closing client keeps its port in
         * TIME_WAIT for a minute, and runs of thousands of connections one
         * after another would run out of local ports. */
        static const struct linger reset = { .l_onoff = 1, .l_linger = 0 };

        if (b->conns)
                for (unsigned i = 0; i < b->n_conns; i++) {
                        struct conn *c = &b->conns[i];

                        if (c->fd >= 0 && c->state != CONN_CLOSED && c->state != CONN_UNUSED)
                                (void) setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
                        conn_close(b, c);
                }
        if (b->epfd > 0)
                close(b->epfd);
        free(b->conns);
        free(b->send_ns);
        free(b->rbuf);
        free(b->wbuf);
        free(b->expect);
        free(b->body);
        free(b->greeting);
        free(b->suffix);
        free(b->request);
        free(b->reply);
}

/* ---- options ------------------------------------------------------------------------ */

static void help(void)
{
        printf("Usage: muxbench [OPTIONS] HOST:PORT\n"
               "\n"
               "Open connections to a line server (muxd by default), run request/reply\n"
               "round trips on all of them for a warm-up and a measured window, check\n"
               "every reply, and print throughput and latency percentiles.\n"
               "\n"
               "Options:\n"
               "  -c, --connections N     connections (default 1)\n"
               "  -d, --duration SECONDS  measured window (default %.0f; in idle mode\n"
               "                          0 holds until interrupted)\n"
               "  -w, --warmup SECONDS    unmeasured run before the window (default %.0f)\n"
               "  -s, --size BYTES        request line size, \"\\n\" included (default %u)\n"
               "  -P, --pipeline DEPTH    requests in flight per connection (default 1)\n"
               "  -g, --greeting STRING   greeting expected on connect (default \"hello...\\n\")\n"
               "      --no-greeting       expect no greeting\n"
               "      --suffix STRING     suffix of echoed replies (default \"hi...\")\n"
               "      --request STRING    send this fixed request instead of generated lines\n"
               "      --reply STRING      expect this fixed reply\n"
               "      --pid PID           report the server's CPU time per request and its RSS\n"
               "      --json              print the result as one JSON object\n"
               "  -i, --idle              open the connections and hold them, idle\n"
               "  -q, --quiet             no progress line\n"
               "  -h, --help              show this help and exit\n"
               "  -V, --version           show the version and exit\n"
               "\n"
               "STRING values take the escapes \\n \\r \\t \\\\ \\0 and \\xNN.\n"
               "Redis, for example: --request 'PING\\r\\n' --reply '+PONG\\r\\n' --no-greeting\n"
               "\n"
               "Exit status: 0 if every reply was right, 1 if a reply was wrong, the\n"
               "server closed a connection, or no connection could be made; 2 on a\n"
               "usage error.\n",
               DEFAULT_DURATION, DEFAULT_WARMUP, DEFAULT_SIZE);
}

enum {
        OPT_NO_GREETING = 0x100,
        OPT_SUFFIX,
        OPT_REQUEST,
        OPT_REPLY,
        OPT_PID,
        OPT_JSON,
};

static int set_string(const char *opt, const char *arg, char **s, size_t *len)
{
        char *v = unescape(arg, len);

        if (!v) {
                if (errno == ENOMEM)
                        return -ENOMEM;
                cli_usage_error("invalid %s '%s': \\x needs two hex digits", opt, arg);
                return -EINVAL;
        }
        if (*len > TEMPLATE_MAX) {
                free(v);
                cli_usage_error("%s is longer than %u bytes", opt, TEMPLATE_MAX);
                return -EINVAL;
        }
        free(*s);
        *s = v;
        return 0;
}

/* Returns 1 to go on, 0 to exit successfully (help, version), or -errno. */
static int parse_argv(struct bench *b, int argc, char *argv[])
{
        static const struct option options[] = {
                { "connections", required_argument, NULL, 'c' },
                { "duration",    required_argument, NULL, 'd' },
                { "warmup",      required_argument, NULL, 'w' },
                { "size",        required_argument, NULL, 's' },
                { "pipeline",    required_argument, NULL, 'P' },
                { "greeting",    required_argument, NULL, 'g' },
                { "no-greeting", no_argument,       NULL, OPT_NO_GREETING },
                { "suffix",      required_argument, NULL, OPT_SUFFIX },
                { "request",     required_argument, NULL, OPT_REQUEST },
                { "reply",       required_argument, NULL, OPT_REPLY },
                { "pid",         required_argument, NULL, OPT_PID },
                { "json",        no_argument,       NULL, OPT_JSON },
                { "idle",        no_argument,       NULL, 'i' },
                { "quiet",       no_argument,       NULL, 'q' },
                { "help",        no_argument,       NULL, 'h' },
                { "version",     no_argument,       NULL, 'V' },
                {}
        };
        bool duration_set = false;
        unsigned long v;
        int opt, r;

        opterr = 0;     /* our messages say "muxbench", not argv[0] */
        while ((opt = getopt_long(argc, argv, ":c:d:w:s:P:g:iqhV", options, NULL)) >= 0) {
                switch (opt) {
                case 'c':
                        if (parse_uint(optarg, 1, CONNECTIONS_MAX, &v) < 0) {
                                cli_usage_error("invalid connection count '%s': expected 1 to %u",
                                            optarg, CONNECTIONS_MAX);
                                return -EINVAL;
                        }
                        b->n_conns = (unsigned) v;
                        break;
                case 'd':
                        if (parse_seconds(optarg, 0, SECONDS_MAX, &b->duration) < 0) {
                                cli_usage_error("invalid duration '%s': expected seconds from 0 to %.0f",
                                            optarg, SECONDS_MAX);
                                return -EINVAL;
                        }
                        duration_set = true;
                        break;
                case 'w':
                        if (parse_seconds(optarg, 0, SECONDS_MAX, &b->warmup) < 0) {
                                cli_usage_error("invalid warm-up '%s': expected seconds from 0 to %.0f",
                                            optarg, SECONDS_MAX);
                                return -EINVAL;
                        }
                        break;
                case 's':
                        if (parse_uint(optarg, 1, SIZE_MAX_BYTES, &v) < 0) {
                                cli_usage_error("invalid size '%s': expected bytes from 1 to %u",
                                            optarg, SIZE_MAX_BYTES);
                                return -EINVAL;
                        }
                        b->size = (unsigned) v;
                        b->size_set = true;
                        break;
                case 'P':
                        if (parse_uint(optarg, 1, DEPTH_MAX, &v) < 0) {
                                cli_usage_error("invalid pipeline depth '%s': expected 1 to %u",
                                            optarg, DEPTH_MAX);
                                return -EINVAL;
                        }
                        b->depth = (unsigned) v;
                        break;
                case 'g':
                        r = set_string("greeting", optarg, &b->greeting, &b->greeting_len);
                        if (r < 0)
                                return r;
                        break;
                case OPT_NO_GREETING:
                        free(b->greeting);
                        b->greeting = NULL;
                        b->greeting_len = 0;
                        break;
                case OPT_SUFFIX:
                        r = set_string("suffix", optarg, &b->suffix, &b->suffix_len);
                        if (r < 0)
                                return r;
                        break;
                case OPT_REQUEST:
                        r = set_string("request", optarg, &b->request, &b->request_len);
                        if (r < 0)
                                return r;
                        if (b->request_len == 0) {
                                cli_usage_error("the request must not be empty");
                                return -EINVAL;
                        }
                        break;
                case OPT_REPLY:
                        r = set_string("reply", optarg, &b->reply, &b->reply_len);
                        if (r < 0)
                                return r;
                        if (b->reply_len == 0) {
                                cli_usage_error("the reply must not be empty");
                                return -EINVAL;
                        }
                        break;
                case OPT_PID:
                        if (parse_uint(optarg, 1, INT_MAX, &v) < 0) {
                                cli_usage_error("invalid pid '%s'", optarg);
                                return -EINVAL;
                        }
                        b->server_pid = (long) v;
                        break;
                case OPT_JSON:
                        b->json = true;
                        break;
                case 'i':
                        b->idle = true;
                        break;
                case 'q':
                        b->quiet = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        cli_version();
                        return 0;
                default:
                        cli_option_error(opt, argv, "iqhV");
                        return -EINVAL;
                }
        }

        if (optind >= argc) {
                cli_usage_error("no server given");
                return -EINVAL;
        }
        if (optind + 1 < argc) {
                cli_usage_error("one server only: unexpected '%s'", argv[optind + 1]);
                return -EINVAL;
        }
        b->target = argv[optind];

        if (b->size_set && b->request) {
                cli_usage_error("-s and --request exclude each other: the request sets the size");
                return -EINVAL;
        }
        if (!b->idle && duration_set && b->duration <= 0) {
                cli_usage_error("the duration must be more than 0 seconds");
                return -EINVAL;
        }
        if (b->idle && !duration_set)
                b->duration = 0;        /* hold until interrupted */
        if (b->request && !b->reply) {
                /* an echo server's answer: the line, the suffix, the line's own ending */
                size_t eol = 0, body;

                if (b->request[b->request_len - 1] == '\n')
                        eol = b->request_len >= 2 && b->request[b->request_len - 2] == '\r' ? 2 : 1;
                body = b->request_len - eol;
                b->reply_len = body + b->suffix_len + eol;
                b->reply = malloc(b->reply_len + 1);
                if (!b->reply)
                        return -ENOMEM;
                memcpy(b->reply, b->request, body);
                memcpy(b->reply + body, b->suffix, b->suffix_len);
                memcpy(b->reply + body + b->suffix_len, b->request + body, eol);
                b->reply[b->reply_len] = '\0';
        }
        return 1;
}

int main(int argc, char *argv[])
{
        struct bench b = {
                .n_conns = 1,
                .duration = DEFAULT_DURATION,
                .warmup = DEFAULT_WARMUP,
                .size = DEFAULT_SIZE,
                .depth = 1,
                .epfd = -1,
                .server_start = PROC_SAMPLE_UNKNOWN,
                .server_end = PROC_SAMPLE_UNKNOWN,
        };
        struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };
        int r, ret = EXIT_FAILURE;

        signal(SIGPIPE, SIG_IGN);
        b.greeting = strdup(DEFAULT_GREETING);
        b.greeting_len = strlen(DEFAULT_GREETING);
        b.suffix = strdup(DEFAULT_SUFFIX);
        b.suffix_len = strlen(DEFAULT_SUFFIX);
        if (!b.greeting || !b.suffix) {
                cli_error("%s", strerror(ENOMEM));
                goto finish;
        }

        r = parse_argv(&b, argc, argv);
        if (r <= 0) {
                if (r == -ENOMEM)
                        cli_error("%s", strerror(ENOMEM));
                ret = r == 0 ? EXIT_SUCCESS : r == -ENOMEM ? EXIT_FAILURE : EXIT_USAGE;
                goto finish;
        }
        r = resolve_target(&b);
        if (r < 0) {
                ret = r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
                goto finish;
        }
        if (raise_fd_limit(b.n_conns) < 0)
                goto finish;
        if (b.server_pid && proc_cpu_ns(b.server_pid) < 0) {
                cli_error("cannot read /proc/%ld: is process %ld running?", b.server_pid, b.server_pid);
                goto finish;
        }
        r = setup(&b);
        if (r < 0) {
                if (r == -ENOMEM)
                        cli_error("%s", strerror(ENOMEM));
                goto finish;
        }
        b.progress = !b.quiet && isatty(STDERR_FILENO);

        /* SIGINT/SIGTERM end the run (and the report covers what was measured);
         * a second one kills at once. */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        r = run(&b);
        if (r < 0)
                goto finish;
        if (got_signal && b.phase != PHASE_DONE)
                b.phase = PHASE_DONE;
        report(&b);

        if (b.connect_errors == b.n_conns)
                cli_error("no connection to %s could be made: %s", b.target,
                          b.first_connect_errno == EPROTO ? "wrong greeting or reply" :
                          strerror(b.first_connect_errno ? b.first_connect_errno : ECONNREFUSED));
        else if (b.wrong_replies > 0)
                cli_error("%" PRIu64 " wrong repl%s", b.wrong_replies, b.wrong_replies == 1 ? "y" : "ies");
        else if (b.disconnects > 0)
                cli_error("%" PRIu64 " connection%s closed by the server", b.disconnects,
                          b.disconnects == 1 ? " was" : "s were");
        ret = b.connect_errors == b.n_conns || b.wrong_replies > 0 || b.disconnects > 0
                ? EXIT_FAILURE : EXIT_SUCCESS;

finish:
        bench_free(&b);
        return ret;
}
