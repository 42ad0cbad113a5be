/* SPDX-License-Identifier: MIT */
/* muxc: the muxd client. Connects to one or more TCP servers, prints what each
 * one sends (each line prefixed with the server's port when there are several)
 * and sends every line read from stdin to all of them; "q" or EOF quits.
 * One poll() loop over stdin and every socket; sends are queued per server and
 * never block, so a slow server cannot stall the others. No tty assumptions:
 * works the same at a terminal and in a pipe. */
/* The build force-includes autoconfig.h (_GNU_SOURCE); without it too: */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>

#include "buffer.h"
#include "cli.h"
#include "util.h"

const char *cli_program = "muxc";

#define TIMEOUT_DEFAULT_SEC     5u
#define TIMEOUT_MAX_SEC         2592000u        /* 30 days, as muxd's own timeouts */
#define READ_CHUNK              65536u
/* Stop reading stdin while any server has this much unsent input queued:
 * memory stays bounded and the slowest server sets the pace. */
#define SEND_QUEUE_MAX          (1024u * 1024u)
/* Longest partial line kept back (stdin for "q" detection, server output for
 * prefixing); longer ones are passed on in pieces. */
#define LINE_KEEP_MAX           65536u

enum server_state {
        SERVER_NEW,             /* parsed, not resolved yet */
        SERVER_CONNECTING,      /* non-blocking connect() in progress */
        SERVER_OPEN,
        SERVER_CLOSED,          /* closed in an orderly way */
        SERVER_FAILED,
};

struct server {
        char *name;             /* "host:port", "[v6]:port": how messages name it */
        struct hostport hostport;       /* as given: host, port, [IPv6] or not */
        char *prefix;           /* "[PORT] " when several servers are connected */

        struct addrinfo *addrs;
        struct addrinfo *next_addr;     /* next address to try */
        uint64_t deadline_ms;           /* of the connect in progress */
        int error;                      /* last errno of a failed attempt */
        const char *error_msg;          /* overrides strerror(error) when set */

        enum server_state state;
        int fd;
        bool write_shut;        /* shutdown(SHUT_WR) done */
        bool send_closed;       /* server takes no more input (EPIPE) */
        struct buffer out;      /* stdin lines not sent yet */
        struct buffer partial;  /* output after the last newline (prefix mode) */
};

struct context {
        struct server *servers;
        size_t n_servers;
        unsigned timeout_sec;   /* 0: no limit */
        bool quiet;

        bool prefix;            /* more than one server connected */
        bool any_failed;

        bool stdin_open;        /* neither EOF nor "q" yet */
        uint64_t quit_deadline_ms;
        struct buffer stdin_line;       /* stdin after the last newline */
};

/* poll() timeout until deadline (UINT64_MAX: none). */
static int poll_timeout(uint64_t deadline_ms, uint64_t now)
{
        if (deadline_ms == UINT64_MAX)
                return -1;
        if (deadline_ms <= now)
                return 0;
        return deadline_ms - now > INT_MAX ? INT_MAX : (int) (deadline_ms - now);
}

static uint64_t deadline_after(unsigned sec, uint64_t now)
{
        return sec == 0 ? UINT64_MAX : now + (uint64_t) sec * 1000u;
}

/* ---- stdout ------------------------------------------------------------ */

/* Write everything; stdout may be a pipe, a file or a terminal. Blocking here
 * is back-pressure from whoever reads us, so it is allowed (we only never
 * block on a server). A stdout left O_NONBLOCK by someone else is waited for. */
static int output_write(const char *p, size_t n)
{
        while (n > 0) {
                ssize_t k = write(STDOUT_FILENO, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                struct pollfd pfd = { .fd = STDOUT_FILENO, .events = POLLOUT };

                                (void) poll(&pfd, 1, -1);
                                continue;
                        }
                        if (errno != EPIPE)     /* our reader left: say nothing */
                                cli_error("standard output: %s", strerror(errno));
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static int output_prefixed(const struct server *s,
                           const char *line, size_t n, bool add_newline)
{
        struct buffer o = BUFFER_INIT;  /* the whole line, for one write */
        int r;

        r = buffer_append(&o, s->prefix, strlen(s->prefix), 0);
        if (r >= 0 && buffer_len(&s->partial) > 0)
                r = buffer_append(&o, buffer_head(&s->partial), buffer_len(&s->partial), 0);
        if (r >= 0)
                r = buffer_append(&o, line, n, 0);
        if (r >= 0 && add_newline)
                r = buffer_append(&o, "\n", 1, 0);
        if (r >= 0)
                r = output_write(buffer_head(&o), buffer_len(&o));
        buffer_free(&o);
        return r;
}

/* Print what a server sent. With several servers, whole lines get the
 * server's prefix; the tail after the last newline waits for the rest of its
 * line, so two servers' partial lines never mix on one output line. */
static int server_output(struct context *c, struct server *s, const char *p, size_t n)
{
        const char *end = p + n, *nl;
        int r;

        if (!c->prefix)
                return output_write(p, n);

        while ((nl = memchr(p, '\n', (size_t) (end - p)))) {
                r = output_prefixed(s, p, (size_t) (nl + 1 - p), false);
                if (r < 0)
                        return r;
                buffer_free(&s->partial);
                p = nl + 1;
        }

        r = buffer_append(&s->partial, p, (size_t) (end - p), 0);
        if (r < 0)
                return r;

        if (buffer_len(&s->partial) >= LINE_KEEP_MAX) {
                r = output_prefixed(s, NULL, 0, true);
                buffer_free(&s->partial);
        }
        return r;
}

/* Print a last line that has no newline (server closed, or we are done). */
static int server_output_flush(struct context *c, struct server *s)
{
        int r = 0;

        if (c->prefix && buffer_len(&s->partial) > 0)
                r = output_prefixed(s, NULL, 0, true);
        buffer_free(&s->partial);
        return r;
}

/* ---- server addresses ---------------------------------------------------- */

static int server_parse(struct server *s, const char *arg)
{
        int r;

        *s = (struct server) { .fd = -1, .state = SERVER_NEW };
        r = cli_parse_server(arg, &s->hostport);
        if (r < 0)
                return r;

        if (asprintf(&s->name, s->hostport.numeric_host ? "[%s]:%u" : "%s:%u",
                     s->hostport.host, s->hostport.port) < 0) {
                s->name = NULL;
                return -ENOMEM;
        }
        return 0;
}

static void server_free(struct server *s)
{
        if (s->fd >= 0)
                close(s->fd);
        if (s->addrs)
                freeaddrinfo(s->addrs);
        buffer_free(&s->out);
        buffer_free(&s->partial);
        free(s->prefix);
        free(s->name);
        free(s->hostport.host);
}

static void server_fail(struct context *c, struct server *s, int error, const char *msg)
{
        cli_error("%s: %s", s->name, msg ?: strerror(error));
        if (s->fd >= 0)
                close(s->fd);
        s->fd = -1;
        s->state = SERVER_FAILED;
        c->any_failed = true;
}

static void server_resolve(struct context *c, struct server *s)
{
        int r = hostport_resolve(&s->hostport, &s->addrs);

        if (r != 0) {
                s->addrs = NULL;
                if (r == EAI_SYSTEM)
                        server_fail(c, s, errno, NULL);
                else
                        server_fail(c, s, 0, gai_strerror(r));
                return;
        }
        s->next_addr = s->addrs;
}

static void server_connected(struct context *c, struct server *s, const struct addrinfo *ai)
{
        char addr[SOCKADDR_STR_MAX];

        s->state = SERVER_OPEN;
        if (c->quiet)
                return;

        sockaddr_to_string(ai->ai_addr, ai->ai_addrlen, addr);
        if (strcmp(addr, s->name) == 0)
                fprintf(stderr, "muxc: connected to %s\n", s->name);
        else
                fprintf(stderr, "muxc: connected to %s (%s)\n", s->name, addr);
}

/* Start a connect to the next address of s; fail s when none is left. The
 * error reported is the last address's: usually the only one. */
static void server_connect_next(struct context *c, struct server *s, uint64_t now)
{
        while (s->next_addr) {
                const struct addrinfo *ai = s->next_addr;
                int fd;

                s->next_addr = ai->ai_next;

                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                            ai->ai_protocol);
                if (fd < 0) {
                        s->error = errno;
                        s->error_msg = NULL;
                        continue;
                }

                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                        s->fd = fd;
                        server_connected(c, s, ai);
                        return;
                }
                if (errno == EINPROGRESS) {
                        s->fd = fd;
                        s->state = SERVER_CONNECTING;
                        s->deadline_ms = deadline_after(c->timeout_sec, now);
                        return;
                }

                s->error = errno;
                s->error_msg = NULL;
                close(fd);
        }

        server_fail(c, s, s->error ?: EHOSTUNREACH, s->error_msg);
}

/* The address whose connect is in progress: the one before next_addr. */
static const struct addrinfo *server_current_addr(const struct server *s)
{
        const struct addrinfo *ai = s->addrs;

        while (ai && ai->ai_next != s->next_addr)
                ai = ai->ai_next;
        return ai;
}

static void server_connect_done(struct context *c, struct server *s, uint64_t now)
{
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        if (err == 0) {
                server_connected(c, s, server_current_addr(s));
                return;
        }

        close(s->fd);
        s->fd = -1;
        s->error = err;
        s->error_msg = NULL;
        server_connect_next(c, s, now);
}

/* Connect to every server at once, so unreachable ones cost one timeout in
 * total rather than one each. Returns the number connected. */
static size_t connect_all(struct context *c)
{
        _cleanup_free_ struct pollfd *fds = NULL;
        _cleanup_free_ size_t *idx = NULL;
        uint64_t now = monotonic_ms();
        size_t n_open = 0;

        fds = calloc(c->n_servers, sizeof(*fds));
        idx = calloc(c->n_servers, sizeof(*idx));
        if (!fds || !idx) {
                cli_error("%s", strerror(ENOMEM));
                return 0;
        }

        for (size_t i = 0; i < c->n_servers; i++) {
                server_resolve(c, &c->servers[i]);
                if (c->servers[i].state == SERVER_NEW)
                        server_connect_next(c, &c->servers[i], now);
        }

        for (;;) {
                uint64_t deadline = UINT64_MAX;
                size_t n = 0;
                int r;

                for (size_t i = 0; i < c->n_servers; i++) {
                        struct server *s = &c->servers[i];

                        if (s->state != SERVER_CONNECTING)
                                continue;
                        fds[n] = (struct pollfd) { .fd = s->fd, .events = POLLOUT };
                        idx[n++] = i;
                        if (s->deadline_ms < deadline)
                                deadline = s->deadline_ms;
                }
                if (n == 0)
                        break;

                r = poll(fds, n, poll_timeout(deadline, monotonic_ms()));
                if (r < 0 && errno != EINTR) {
                        cli_error("poll: %s", strerror(errno));
                        return 0;
                }

                now = monotonic_ms();
                for (size_t k = 0; k < n; k++) {
                        struct server *s = &c->servers[idx[k]];

                        if (r > 0 && fds[k].revents != 0)
                                server_connect_done(c, s, now);
                        else if (now >= s->deadline_ms) {
                                close(s->fd);
                                s->fd = -1;
                                s->error = ETIMEDOUT;
                                s->error_msg = "connection timed out";
                                server_connect_next(c, s, now);
                        }
                }
        }

        for (size_t i = 0; i < c->n_servers; i++)
                if (c->servers[i].state == SERVER_OPEN)
                        n_open++;
        return n_open;
}

/* "[PORT] " for each server, or "[HOST:PORT] " for all when two connected
 * servers share a port and the port alone would not tell them apart. */
static int prefixes_setup(struct context *c, size_t n_open)
{
        bool by_name = false;

        c->prefix = n_open > 1;
        if (!c->prefix)
                return 0;

        for (size_t i = 0; i < c->n_servers; i++)
                for (size_t j = i + 1; j < c->n_servers; j++)
                        if (c->servers[i].state == SERVER_OPEN &&
                            c->servers[j].state == SERVER_OPEN &&
                            c->servers[i].hostport.port == c->servers[j].hostport.port)
                                by_name = true;

        for (size_t i = 0; i < c->n_servers; i++) {
                struct server *s = &c->servers[i];
                int r;

                if (s->state != SERVER_OPEN)
                        continue;
                r = by_name ? asprintf(&s->prefix, "[%s] ", s->name)
                            : asprintf(&s->prefix, "[%u] ", s->hostport.port);
                if (r < 0) {
                        s->prefix = NULL;
                        return -ENOMEM;
                }
        }
        return 0;
}

/* ---- the session --------------------------------------------------------- */

/* Closed by the server (EOF): not an error. */
static int server_close(struct context *c, struct server *s)
{
        int r = server_output_flush(c, s);

        if (c->stdin_open)
                cli_error("%s: connection closed by server", s->name);
        close(s->fd);
        s->fd = -1;
        s->state = SERVER_CLOSED;
        buffer_free(&s->out);
        return r;
}

static int server_read(struct context *c, struct server *s)
{
        char buf[READ_CHUNK];
        ssize_t n;

        n = recv(s->fd, buf, sizeof(buf), 0);
        if (n < 0) {
                int err = errno, r;

                if (err == EINTR || err == EAGAIN)
                        return 0;
                r = server_output_flush(c, s);
                server_fail(c, s, err, NULL);
                return r;
        }
        if (n == 0)
                return server_close(c, s);

        return server_output(c, s, buf, (size_t) n);
}

static void server_shutdown_write(struct server *s)
{
        if (s->write_shut)
                return;
        /* Tells the server we are done; it answers what it has and closes.
         * ENOTCONN after a reset is fine: the read side will report it. */
        (void) shutdown(s->fd, SHUT_WR);
        s->write_shut = true;
}

static int server_send(struct context *c, struct server *s)
{
        while (buffer_len(&s->out) > 0) {
                ssize_t n = send(s->fd, buffer_head(&s->out), buffer_len(&s->out),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        if (errno == EPIPE) {
                                /* The server stopped reading but may still
                                 * have things to say: keep reading until EOF. */
                                s->send_closed = true;
                                buffer_free(&s->out);
                                return 0;
                        } else {
                                int err = errno, r;

                                r = server_output_flush(c, s);
                                server_fail(c, s, err, NULL);
                                return r;
                        }
                }
                buffer_consume(&s->out, (size_t) n);
        }

        if (!c->stdin_open)
                server_shutdown_write(s);
        return 0;
}

/* Queue one piece of input for every server still taking input. */
static int input_queue_all(struct context *c, const char *p, size_t n)
{
        for (size_t i = 0; i < c->n_servers; i++) {
                struct server *s = &c->servers[i];
                int r;

                if (s->state != SERVER_OPEN || s->send_closed)
                        continue;
                r = buffer_append(&s->out, p, n, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool line_is_quit(const char *p, size_t n)
{
        return (n == 1 && p[0] == 'q') || (n == 2 && p[0] == 'q' && p[1] == '\r');
}

/* EOF or "q": stop reading stdin, let each server know once its queue is sent,
 * and give them all the timeout to answer and close. */
static void input_quit(struct context *c)
{
        c->stdin_open = false;
        c->quit_deadline_ms = deadline_after(c->timeout_sec, monotonic_ms());
        buffer_free(&c->stdin_line);

        for (size_t i = 0; i < c->n_servers; i++) {
                struct server *s = &c->servers[i];

                if (s->state == SERVER_OPEN && (buffer_len(&s->out) == 0 || s->send_closed))
                        server_shutdown_write(s);
        }
}

static int input_read(struct context *c)
{
        struct buffer *l = &c->stdin_line;
        char buf[READ_CHUNK];
        const char *p, *end, *nl;
        ssize_t n;
        int r;

        n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return 0;
                cli_error("standard input: %s", strerror(errno));
                n = 0;          /* as good as EOF */
        }

        if (n == 0) {
                /* A last line without newline is still sent, unless it is "q". */
                if (buffer_len(l) > 0 && !line_is_quit(buffer_head(l), buffer_len(l))) {
                        r = input_queue_all(c, buffer_head(l), buffer_len(l));
                        if (r < 0)
                                return r;
                }
                input_quit(c);
                return 0;
        }

        r = buffer_append(l, buf, (size_t) n, 0);
        if (r < 0)
                return r;

        /* Whole lines go out as they come; "q" on its own line quits. */
        p = buffer_head(l);
        end = p + buffer_len(l);
        while ((nl = memchr(p, '\n', (size_t) (end - p)))) {
                if (line_is_quit(p, (size_t) (nl - p))) {
                        input_quit(c);
                        return 0;
                }
                r = input_queue_all(c, p, (size_t) (nl + 1 - p));
                if (r < 0)
                        return r;
                p = nl + 1;
        }
        buffer_consume(l, (size_t) (p - buffer_head(l)));      /* the lines sent */

        /* A line this long cannot be "q": pass it on instead of hoarding it. */
        if (buffer_len(l) >= LINE_KEEP_MAX) {
                r = input_queue_all(c, buffer_head(l), buffer_len(l));
                if (r < 0)
                        return r;
                buffer_free(l);
        }
        return 0;
}

static bool input_throttled(const struct context *c)
{
        for (size_t i = 0; i < c->n_servers; i++)
                if (c->servers[i].state == SERVER_OPEN && buffer_len(&c->servers[i].out) >= SEND_QUEUE_MAX)
                        return true;
        return false;
}

static size_t servers_open(const struct context *c)
{
        size_t n = 0;

        for (size_t i = 0; i < c->n_servers; i++)
                if (c->servers[i].state == SERVER_OPEN)
                        n++;
        return n;
}

/* The poll() loop: fds[0] is stdin, fds[1 + i] is server i (-1: not watched). */
static int run(struct context *c)
{
        _cleanup_free_ struct pollfd *fds = calloc(c->n_servers + 1, sizeof(struct pollfd));

        if (!fds)
                return -ENOMEM;

        c->stdin_open = true;
        c->quit_deadline_ms = UINT64_MAX;

        while (servers_open(c) > 0) {
                uint64_t now = monotonic_ms();
                int r;

                if (!c->stdin_open && now >= c->quit_deadline_ms)
                        break;

                fds[0] = (struct pollfd) {
                        .fd = c->stdin_open && !input_throttled(c) ? STDIN_FILENO : -1,
                        .events = POLLIN,
                };
                for (size_t i = 0; i < c->n_servers; i++) {
                        const struct server *s = &c->servers[i];

                        fds[1 + i] = (struct pollfd) {
                                .fd = s->state == SERVER_OPEN ? s->fd : -1,
                                .events = POLLIN | (buffer_len(&s->out) > 0 ? POLLOUT : 0),
                        };
                }

                r = poll(fds, c->n_servers + 1, c->stdin_open ? -1 : poll_timeout(c->quit_deadline_ms, now));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        cli_error("poll: %s", strerror(errno));
                        return -errno;
                }
                if (r == 0)
                        continue;

                for (size_t i = 0; i < c->n_servers; i++) {
                        struct server *s = &c->servers[i];
                        short ev = fds[1 + i].revents;

                        if (ev & (POLLOUT | POLLERR) && s->state == SERVER_OPEN && buffer_len(&s->out) > 0) {
                                r = server_send(c, s);
                                if (r < 0)
                                        return r;
                        }
                        if (ev & (POLLIN | POLLHUP | POLLERR) && s->state == SERVER_OPEN) {
                                r = server_read(c, s);
                                if (r < 0)
                                        return r;
                        }
                }

                /* stdin last: what it queues goes out on the next round. */
                if (fds[0].revents != 0 && c->stdin_open) {
                        r = input_read(c);
                        if (r < 0)
                                return r;
                }
        }

        /* Done, or out of time: whatever a server did not take is lost. */
        for (size_t i = 0; i < c->n_servers; i++) {
                struct server *s = &c->servers[i];
                int r;

                if (s->state != SERVER_OPEN)
                        continue;
                r = server_output_flush(c, s);
                if (r < 0)
                        return r;
                if (buffer_len(&s->out) > 0) {
                        cli_error("%s: %zu bytes not sent", s->name, buffer_len(&s->out));
                        c->any_failed = true;
                }
        }
        return 0;
}

/* Descriptors 0-2 must be open, or the first socket would become "stdin". */
static void stdio_ensure_open(void)
{
        for (int fd = 0; fd <= 2; fd++)
                if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
                        int n = open("/dev/null", O_RDWR);

                        if (n >= 0 && n != fd)
                                close(n);
                }
}

static void help(void)
{
        printf("Usage: muxc [OPTIONS] HOST:PORT [HOST:PORT...]\n"
               "\n"
               "Connect to one or more TCP servers, print what each one sends and send\n"
               "every line read from standard input to all of them. A line \"q\" or the\n"
               "end of input quits. With several servers, each output line starts with\n"
               "the server's port in brackets.\n"
               "\n"
               "HOST is a host name, an IPv4 address or an IPv6 address in brackets\n"
               "([::1]:8088); a bare PORT means localhost:PORT.\n"
               "\n"
               "Options:\n"
               "  -w, --timeout SECONDS  connect timeout, and how long to wait for the\n"
               "                         servers to close after input ends (default %u,\n"
               "                         0: no limit)\n"
               "  -q, --quiet            do not print \"connected to\" notices\n"
               "  -h, --help             show this help and exit\n"
               "  -V, --version          show the version and exit\n"
               "\n"
               "Exit status: 0 if every server was served, 1 if one could not be reached\n"
               "or failed, 2 on a usage error.\n",
               TIMEOUT_DEFAULT_SEC);
}

/* Returns 1 to go on, 0 to exit successfully (help, version), or -EINVAL. */
static int parse_argv(struct context *c, int argc, char *argv[])
{
        static const struct option options[] = {
                { "timeout", required_argument, NULL, 'w' },
                { "quiet",   no_argument,       NULL, 'q' },
                { "help",    no_argument,       NULL, 'h' },
                { "version", no_argument,       NULL, 'V' },
                {}
        };
        unsigned long v;
        int opt;

        opterr = 0;     /* our messages say "muxc", not argv[0] */
        while ((opt = getopt_long(argc, argv, ":w:qhV", options, NULL)) >= 0) {
                switch (opt) {
                case 'w':
                        if (parse_uint(optarg, 0, TIMEOUT_MAX_SEC, &v) < 0) {
                                cli_usage_error("invalid timeout '%s': expected seconds from 0 to %u",
                                            optarg, TIMEOUT_MAX_SEC);
                                return -EINVAL;
                        }
                        c->timeout_sec = (unsigned) v;
                        break;
                case 'q':
                        c->quiet = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        cli_version();
                        return 0;
                default:
                        cli_option_error(opt, argv, "qhV");
                        return -EINVAL;
                }
        }

        if (optind >= argc) {
                cli_usage_error("no server given");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[])
{
        struct context c = {
                .timeout_sec = TIMEOUT_DEFAULT_SEC,
        };
        size_t n_open;
        int r, ret;

        stdio_ensure_open();
        /* A server that goes away must not kill us: send() reports EPIPE, and
         * a closed stdout is a write error we handle. */
        signal(SIGPIPE, SIG_IGN);

        r = parse_argv(&c, argc, argv);
        if (r <= 0)
                return r == 0 ? EXIT_SUCCESS : CLI_EXIT_USAGE;

        c.n_servers = (size_t) (argc - optind);
        c.servers = calloc(c.n_servers, sizeof(*c.servers));
        if (!c.servers) {
                cli_error("%s", strerror(ENOMEM));
                return EXIT_FAILURE;
        }
        for (size_t i = 0; i < c.n_servers; i++)
                c.servers[i].fd = -1;

        ret = CLI_EXIT_USAGE;
        for (size_t i = 0; i < c.n_servers; i++) {
                r = server_parse(&c.servers[i], argv[optind + (int) i]);
                if (r == -ENOMEM)
                        cli_error("%s", strerror(ENOMEM));
                if (r < 0) {
                        ret = r == -ENOMEM ? EXIT_FAILURE : CLI_EXIT_USAGE;
                        goto finish;
                }
        }

        ret = EXIT_FAILURE;
        n_open = connect_all(&c);
        if (n_open == 0)
                goto finish;

        r = prefixes_setup(&c, n_open);
        if (r >= 0)
                r = run(&c);
        if (r == -ENOMEM)
                cli_error("%s", strerror(ENOMEM));
        if (r < 0)
                goto finish;    /* anything else was reported where it happened */

        ret = c.any_failed ? EXIT_FAILURE : EXIT_SUCCESS;

finish:
        for (size_t i = 0; i < c.n_servers; i++)
                server_free(&c.servers[i]);
        free(c.servers);
        buffer_free(&c.stdin_line);
        return ret;
}
