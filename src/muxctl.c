/* SPDX-License-Identifier: MIT */
/* muxctl: muxd's control socket client. Sends one request (the command line's
 * words, checked against the same table muxd uses), waits at most --timeout
 * for the whole answer, prints its body on standard output (an error's on
 * standard error) and exits 0 on "ok", 1 on an error answer or when muxd
 * cannot be reached, 2 on a usage error (its own or muxd's). */
/* The build force-includes autoconfig.h (_GNU_SOURCE); without it too: */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buffer.h"
#include "cli.h"
#include "control-proto.h"
#include "util.h"

const char *cli_program = "muxctl";

#define TIMEOUT_DEFAULT_SEC     30u
#define TIMEOUT_MAX_SEC         3600u
/* muxd cuts an answer at 8 MiB; anything much longer is not muxd's */
#define ANSWER_MAX              (64u << 20)

struct options {
        const char *socket;
        unsigned timeout_sec;   /* 0: no limit */
        bool json;
};

static void help(void)
{
        printf("Usage: muxctl [OPTIONS] COMMAND [ARGS...]\n"
               "\n"
               "Ask the running muxd through its control socket.\n"
               "\n"
               "Options:\n"
               "  -s, --socket PATH      the control socket (default %s)\n"
               "  -j, --json             the answer as one JSON document\n"
               "  -t, --timeout SECONDS  wait at most this long for the answer (default %u,\n"
               "                         0: no limit)\n"
               "  -h, --help             show this help and exit\n"
               "  -V, --version          show the version and exit\n"
               "\n"
               "Commands:\n",
               CONTROL_SOCKET_DEFAULT, TIMEOUT_DEFAULT_SEC);
        for (size_t i = 0; i < control_n_commands; i++) {
                const struct control_command *c = &control_commands[i];
                char usage[64];

                snprintf(usage, sizeof(usage), "%s%s%s", c->name, c->args[0] ? " " : "", c->args);
                printf("  %-26s %s\n", usage, c->help);
        }
        printf("\n"
               "Exit status: 0 on success, 1 if the command failed (a reload among them)\n"
               "or muxd could not be reached, 2 on a usage error. See muxctl(8).\n");
}

/* Returns 1 to go on, 0 to exit successfully (help, version), or -EINVAL. */
static int parse_options(struct options *o, int argc, char *argv[])
{
        static const struct option options[] = {
                { "socket",  required_argument, NULL, 's' },
                { "json",    no_argument,       NULL, 'j' },
                { "timeout", required_argument, NULL, 't' },
                { "help",    no_argument,       NULL, 'h' },
                { "version", no_argument,       NULL, 'V' },
                {}
        };
        unsigned long v;
        int opt;

        opterr = 0;     /* our messages say "muxctl", not argv[0] */
        /* '+': options end at the command, whose own words go to muxd as they are */
        while ((opt = getopt_long(argc, argv, "+:s:jt:hV", options, NULL)) >= 0) {
                switch (opt) {
                case 's':
                        o->socket = optarg;
                        break;
                case 'j':
                        o->json = true;
                        break;
                case 't':
                        if (parse_uint(optarg, 0, TIMEOUT_MAX_SEC, &v) < 0) {
                                cli_usage_error("invalid timeout '%s': expected seconds from 0 to %u",
                                                optarg, TIMEOUT_MAX_SEC);
                                return -EINVAL;
                        }
                        o->timeout_sec = (unsigned) v;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        cli_version();
                        return 0;
                default:
                        cli_option_error(opt, argv, "jhV");
                        return -EINVAL;
                }
        }
        if (optind >= argc) {
                cli_usage_error("no command given (try 'muxctl help' or 'muxctl --help')");
                return -EINVAL;
        }
        return 1;
}

/* The request line from the command's words, checked as muxd will check it
 * (so a typo needs no daemon to be told). Returns 0 or -EINVAL (said). */
static int build_request(struct options *o, int argc, char *argv[], struct buffer *line)
{
        char why[512], copy[CONTROL_LINE_MAX + 1];
        struct control_request req;
        size_t len;

        if (o->json && buffer_append(line, "--json ", 7, 0) < 0)
                return -ENOMEM;
        for (int i = 0; i < argc; i++) {
                const char *w = argv[i];

                if (!w[0] || strpbrk(w, " \t\r\n")) {
                        cli_usage_error("invalid argument '%s': arguments are single words", w);
                        return -EINVAL;
                }
                if (buffer_append(line, w, strlen(w), 0) < 0 ||
                    buffer_append(line, i + 1 < argc ? " " : "\n", 1, 0) < 0)
                        return -ENOMEM;
        }
        len = buffer_len(line) - 1;
        if (len > CONTROL_LINE_MAX) {
                cli_usage_error("the request is longer than %u bytes", CONTROL_LINE_MAX);
                return -EINVAL;
        }
        memcpy(copy, buffer_head(line), len);
        if (control_request_parse(copy, len, &req, why, sizeof(why)) < 0) {
                /* a known command with the wrong words: its usage */
                if (req.cmd)
                        cli_usage_error("usage: muxctl [OPTIONS] %s", why + strlen(CONTROL_USAGE_PREFIX));
                else
                        cli_usage_error("%s", why + strlen(CONTROL_USAGE_PREFIX));
                return -EINVAL;
        }
        o->json = req.json;     /* "muxctl stats --json" too */
        return 0;
}

static int poll_wait(int fd, short events, uint64_t deadline_ms)
{
        struct pollfd p = { .fd = fd, .events = events };
        uint64_t now = monotonic_ms();
        int t = deadline_ms == UINT64_MAX ? -1 : deadline_ms <= now ? 0 :
                deadline_ms - now > INT_MAX ? INT_MAX : (int) (deadline_ms - now);
        int n;

        do
                n = poll(&p, 1, t);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return n == 0 ? -ETIMEDOUT : 0;
}

static void connect_error(const char *path, int err)
{
        const char *hint = "";

        if (err == ENOENT)
                hint = " (is muxd running, with a control socket there? see control_socket in muxd.conf(5))";
        else if (err == EACCES || err == EPERM)
                hint = " (only root, muxd's user and members of the socket's group, muxd, may use it)";
        else if (err == ECONNREFUSED)
                hint = " (nothing serves it: muxd is not running)";
        else if (err == ETIMEDOUT || err == EAGAIN)
                hint = " (muxd did not accept in time)";
        cli_error("cannot connect to %s: %s%s", path, strerror(err == ETIMEDOUT ? EAGAIN : err), hint);
}

/* Connect, send the line, read the whole answer into *answer. Returns 0,
 * or -errno (said). */
static int exchange(const struct options *o, const struct buffer *line, struct buffer *answer)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        uint64_t deadline = o->timeout_sec ? monotonic_ms() + o->timeout_sec * 1000ull : UINT64_MAX;
        struct timeval tv = { .tv_sec = o->timeout_sec };
        _cleanup_close_ int fd = -1;
        size_t off = 0;
        char buf[65536];

        if (strlen(o->socket) >= sizeof(sa.sun_path)) {
                cli_error("%s: longer than a UNIX socket's path may be", o->socket);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, o->socket);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                cli_error("socket: %s", strerror(errno));
                return -errno;
        }
        /* connecting blocks while muxd's backlog is full: bounded as well */
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int err = errno == EINPROGRESS ? ETIMEDOUT : errno;

                connect_error(o->socket, err);
                return -err;
        }
        while (off < buffer_len(line)) {
                ssize_t n = send(fd, buffer_head(line) + off, buffer_len(line) - off, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && errno == EAGAIN && poll_wait(fd, POLLOUT, deadline) == 0)
                        continue;
                if (n < 0 && errno != EINTR)
                        break;          /* muxd may have answered already (permission denied): read it */
                if (n > 0)
                        off += (size_t) n;
        }
        for (;;) {
                ssize_t n;
                int r = poll_wait(fd, POLLIN, deadline);

                if (r < 0) {
                        cli_error("%s: no complete answer within %u seconds", o->socket, o->timeout_sec);
                        return r;
                }
                n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0 && errno == ECONNRESET && buffer_len(answer) > 0)
                        break;          /* muxd closed with our input unread: the answer is in */
                if (n < 0) {
                        cli_error("%s: %s", o->socket, strerror(errno));
                        return -errno;
                }
                if (n == 0)
                        break;
                if (buffer_append(answer, buf, (size_t) n, ANSWER_MAX) < 0) {
                        cli_error("%s: the answer is longer than %u bytes", o->socket, ANSWER_MAX);
                        return -EFBIG;
                }
        }
        return 0;
}

/* Print the answer; returns the exit status. */
static int show(const struct options *o, const char *a, size_t len)
{
        const char *nl, *body;
        size_t status_len, body_len;
        bool usage;

        if (len == 0) {
                cli_error("%s: muxd closed the connection without an answer", o->socket);
                return EXIT_FAILURE;
        }
        nl = memchr(a, '\n', len);
        /* every answer ends with an empty line: anything else was cut short */
        if (!nl || len < 2 || a[len - 1] != '\n' || a[len - 2] != '\n') {
                cli_error("%s: the answer was cut short", o->socket);
                return EXIT_FAILURE;
        }
        if (a[0] == '{') {
                if (fwrite(a, 1, len - 1, stdout) != len - 1)
                        return EXIT_FAILURE;
                if (strncmp(a, "{\"ok\":true", 10) == 0)
                        return EXIT_SUCCESS;
                usage = strncmp(a, "{\"ok\":false,\"error\":\"" CONTROL_USAGE_PREFIX, 21 + strlen(CONTROL_USAGE_PREFIX)) == 0;
                return usage ? CLI_EXIT_USAGE : EXIT_FAILURE;
        }
        status_len = (size_t) (nl - a);
        body = nl + 1;
        body_len = len - 1 - (size_t) (body - a);       /* without the empty line */
        if (status_len == 2 && memcmp(a, "ok", 2) == 0) {
                if (fwrite(body, 1, body_len, stdout) != body_len)
                        return EXIT_FAILURE;
                return EXIT_SUCCESS;
        }
        if (status_len > 7 && memcmp(a, "error: ", 7) == 0) {
                usage = status_len > 7 + strlen(CONTROL_USAGE_PREFIX) &&
                        memcmp(a + 7, CONTROL_USAGE_PREFIX, strlen(CONTROL_USAGE_PREFIX)) == 0;
                fflush(stdout);
                fprintf(stderr, "%s: %.*s\n", cli_program, (int) (status_len - 7), a + 7);
                fwrite(body, 1, body_len, stderr);
                return usage ? CLI_EXIT_USAGE : EXIT_FAILURE;
        }
        cli_error("%s: not an answer muxd gives: %.*s", o->socket, (int) (status_len > 80 ? 80 : status_len), a);
        return EXIT_FAILURE;
}

int main(int argc, char *argv[])
{
        struct options o = { .socket = CONTROL_SOCKET_DEFAULT, .timeout_sec = TIMEOUT_DEFAULT_SEC };
        struct buffer line = BUFFER_INIT, answer = BUFFER_INIT;
        int r, ret;

        signal(SIGPIPE, SIG_IGN);
        r = parse_options(&o, argc, argv);
        if (r <= 0)
                return r == 0 ? EXIT_SUCCESS : CLI_EXIT_USAGE;
        r = build_request(&o, argc - optind, argv + optind, &line);
        if (r == -ENOMEM)
                cli_error("%s", strerror(ENOMEM));
        if (r < 0) {
                buffer_free(&line);
                return r == -ENOMEM ? EXIT_FAILURE : CLI_EXIT_USAGE;
        }
        r = exchange(&o, &line, &answer);
        ret = r < 0 ? EXIT_FAILURE : show(&o, buffer_head(&answer), buffer_len(&answer));
        if (fflush(stdout) != 0 && ret == EXIT_SUCCESS) {
                cli_error("standard output: %s", strerror(errno));
                ret = EXIT_FAILURE;
        }
        buffer_free(&line);
        buffer_free(&answer);
        return ret;
}
