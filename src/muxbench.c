/* SPDX-License-Identifier: MIT */
/* muxbench: a load generator for muxd and other line servers. Opens N
 * connections to one server from a single epoll loop, reads each one's
 * greeting, then runs request/reply round trips (DEPTH requests in flight per
 * connection) for a warm-up and a measured window. Every reply is checked
 * byte for byte; latencies go into a log-bucketed histogram (no array of
 * samples), so memory does not grow with the run. Idle mode only opens the
 * connections and holds them, for memory-per-connection measurements;
 * connection mode (--connect-rate) opens a connection per exchange, for the
 * cost of accepting and closing.
 *
 * This file: main() and the options. The rest, one job a file:
 * bench-request.c (what is sent and expected), bench-conn.c (the
 * connections), bench-churn.c (connection mode's), bench-srcaddr.c (its
 * client addresses), bench-errno.c (its errors by errno), bench-loop.c (the
 * epoll loop and its phases), bench-hist.c (latencies), bench-proc.c (the
 * server's /proc), bench-report.c (output). */
/* The build force-includes autoconfig.h (_GNU_SOURCE); without it too: */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include "bench.h"
#include "bench-churn.h"
#include "bench-conn.h"
#include "bench-loop.h"
#include "bench-proc.h"
#include "bench-report.h"
#include "bench-request.h"
#include "cli.h"
#include "util.h"

const char *cli_program = "muxbench";

#define CONNECTIONS_MAX         1000000u
#define SIZE_MAX_BYTES          (1u << 20)      /* -s: muxd's own max_message bound */
#define DEPTH_MAX               4096u
#define ROUND_TRIPS_MAX         1000000u
#define SECONDS_MAX             86400.0
#define TEMPLATE_MAX            65536u          /* --request, --reply, --greeting */
#define RESERVED_FDS            16u             /* stdio, epoll, /proc reads, ... */

#define DEFAULT_SIZE            16u
#define DEFAULT_DURATION        10.0
#define DEFAULT_WARMUP          1.0
#define DEFAULT_GREETING        "hello...\n"
#define DEFAULT_SUFFIX          "hi..."

volatile sig_atomic_t bench_interrupted;

static void bench_on_signal(int sig)
{
        bench_interrupted = sig;
}

/* ---- options ------------------------------------------------------------- */

static void options_help(void)
{
        printf("Usage: muxbench [OPTIONS] HOST:PORT\n"
               "\n"
               "Open connections to a line server (muxd by default), run request/reply\n"
               "round trips on all of them for a warm-up and a measured window, check\n"
               "every reply, and print throughput and latency percentiles.\n"
               "\n"
               "Options:\n"
               "  -c, --connections N     connections (default 1); with --connect-rate,\n"
               "                          slots, each one connection at a time\n"
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
               "      --connect-rate      connection mode: each of the -c slots connects, reads\n"
               "                          the greeting, makes its round trips, closes, and\n"
               "                          again; reports connections/s and the latency of\n"
               "                          the whole exchange\n"
               "      --round-trips N     round trips per connection (default 1; 0: connect,\n"
               "                          greeting, close)\n"
               "      --oneshot           send one message per connection and wait for the\n"
               "                          server to close it (muxd's mode = \"oneshot\")\n"
               "      --source-addrs SPEC client addresses, in turn: A-B (IPv4), one address,\n"
               "                          a count N (from 127.0.0.2), or none (default\n"
               "                          127.0.0.2-127.0.0.254 for an IPv4 loopback server)\n"
               "      --rst               close with RST (no TIME_WAIT on the client)\n"
               "      --proxy v1|v2       send a PROXY protocol header first, naming a\n"
               "                          made-up client in 198.18.0.0/15 (or fd00:bench::/64)\n"
               "                          (a listener with proxy_protocol on)\n"
               "  -q, --quiet             no progress line\n"
               "  -h, --help              show this help and exit\n"
               "  -V, --version           show the version and exit\n"
               "\n"
               "STRING values take the escapes \\n \\r \\t \\\\ \\0 and \\xNN.\n"
               "Redis, for example: --request 'PING\\r\\n' --reply '+PONG\\r\\n' --no-greeting\n"
               "\n"
               "Exit status: 0 if every reply was right, 1 if a reply was wrong, the\n"
               "server closed a connection (with --connect-rate: before the exchange\n"
               "ended, or one failed after its connect), or no connection could be made\n"
               "(no exchange completed); 2 on a usage error.\n",
               DEFAULT_DURATION, DEFAULT_WARMUP, DEFAULT_SIZE);
}

enum {
        OPT_NO_GREETING = 0x100,
        OPT_SUFFIX,
        OPT_REQUEST,
        OPT_REPLY,
        OPT_PID,
        OPT_JSON,
        OPT_CONNECT_RATE,
        OPT_ROUND_TRIPS,
        OPT_ONESHOT,
        OPT_SOURCE_ADDRS,
        OPT_RST,
        OPT_PROXY,
};

/* Options given, for the checks that need to know (not their values). */
struct options_seen {
        bool duration;
        bool depth;
        bool round_trips;
};

/* Seconds as a decimal number ("3", "0.5"), in [min, max]. */
static int option_seconds(const char *s, double min, double max, double *ret)
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

static int option_hex_digit(char c)
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
static char *option_unescape(const char *s, size_t *len)
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
                        int hi = i + 1 < n ? option_hex_digit(s[i + 1]) : -1;
                        int lo = i + 2 < n ? option_hex_digit(s[i + 2]) : -1;

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

static int option_set_string(const char *opt, const char *arg, char **s, size_t *len)
{
        char *v = option_unescape(arg, len);

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

/* -c, -d, -w, -s, -P, --pid, --round-trips. Returns 0, or -EINVAL (said). */
static int option_number(struct bench *b, int opt, const char *arg, struct options_seen *seen)
{
        unsigned long v;

        switch (opt) {
        case 'c':
                if (parse_uint(arg, 1, CONNECTIONS_MAX, &v) < 0) {
                        cli_usage_error("invalid connection count '%s': expected 1 to %u",
                                        arg, CONNECTIONS_MAX);
                        return -EINVAL;
                }
                b->n_conns = (unsigned) v;
                break;
        case 'd':
                if (option_seconds(arg, 0, SECONDS_MAX, &b->duration) < 0) {
                        cli_usage_error("invalid duration '%s': expected seconds from 0 to %.0f",
                                        arg, SECONDS_MAX);
                        return -EINVAL;
                }
                seen->duration = true;
                break;
        case 'w':
                if (option_seconds(arg, 0, SECONDS_MAX, &b->warmup) < 0) {
                        cli_usage_error("invalid warm-up '%s': expected seconds from 0 to %.0f",
                                        arg, SECONDS_MAX);
                        return -EINVAL;
                }
                break;
        case 's':
                if (parse_uint(arg, 1, SIZE_MAX_BYTES, &v) < 0) {
                        cli_usage_error("invalid size '%s': expected bytes from 1 to %u",
                                        arg, SIZE_MAX_BYTES);
                        return -EINVAL;
                }
                b->size = (unsigned) v;
                b->size_set = true;
                break;
        case 'P':
                if (parse_uint(arg, 1, DEPTH_MAX, &v) < 0) {
                        cli_usage_error("invalid pipeline depth '%s': expected 1 to %u",
                                        arg, DEPTH_MAX);
                        return -EINVAL;
                }
                b->depth = (unsigned) v;
                seen->depth = true;
                break;
        case OPT_ROUND_TRIPS:
                if (parse_uint(arg, 0, ROUND_TRIPS_MAX, &v) < 0) {
                        cli_usage_error("invalid round trips '%s': expected 0 to %u", arg, ROUND_TRIPS_MAX);
                        return -EINVAL;
                }
                b->round_trips = (unsigned) v;
                seen->round_trips = true;
                break;
        case OPT_PID:
                if (parse_uint(arg, 1, INT_MAX, &v) < 0) {
                        cli_usage_error("invalid pid '%s'", arg);
                        return -EINVAL;
                }
                b->server_pid = (long) v;
                break;
        }
        return 0;
}

/* -g, --no-greeting, --suffix, --request, --reply. Returns 0, -EINVAL (said)
 * or -ENOMEM. */
static int option_string(struct bench *b, int opt, const char *arg)
{
        int r = 0;

        switch (opt) {
        case 'g':
                r = option_set_string("greeting", arg, &b->greeting, &b->greeting_len);
                break;
        case OPT_NO_GREETING:
                free(b->greeting);
                b->greeting = NULL;
                b->greeting_len = 0;
                break;
        case OPT_SUFFIX:
                r = option_set_string("suffix", arg, &b->suffix, &b->suffix_len);
                break;
        case OPT_REQUEST:
                r = option_set_string("request", arg, &b->request, &b->request_len);
                if (r >= 0 && b->request_len == 0) {
                        cli_usage_error("the request must not be empty");
                        return -EINVAL;
                }
                break;
        case OPT_REPLY:
                r = option_set_string("reply", arg, &b->reply, &b->reply_len);
                if (r >= 0 && b->reply_len == 0) {
                        cli_usage_error("the reply must not be empty");
                        return -EINVAL;
                }
                break;
        }
        return r;
}

/* Connection mode's options, with no other mode's. Returns 0, or -EINVAL
 * (said). */
static int options_check_churn(const struct bench *b, const struct options_seen *seen)
{
        if (!b->churn) {
                if (b->oneshot || b->rst || b->source_spec || seen->round_trips || b->proxy) {
                        cli_usage_error("--round-trips, --oneshot, --source-addrs, --rst and --proxy "
                                        "need --connect-rate");
                        return -EINVAL;
                }
                return 0;
        }
        if (b->idle) {
                cli_usage_error("--connect-rate and --idle exclude each other");
                return -EINVAL;
        }
        if (seen->depth) {
                cli_usage_error("--connect-rate makes one round trip at a time: no -P");
                return -EINVAL;
        }
        if (b->oneshot && seen->round_trips) {
                cli_usage_error("--oneshot sends one message and expects no reply: no --round-trips");
                return -EINVAL;
        }
        return 0;
}

/* After the options: one server, and options that agree. Returns 0, or
 * -EINVAL (said). */
static int options_check(struct bench *b, int argc, char *argv[], const struct options_seen *seen)
{
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
        if (!b->idle && seen->duration && b->duration <= 0) {
                cli_usage_error("the duration must be more than 0 seconds");
                return -EINVAL;
        }
        if (b->idle && !seen->duration)
                b->duration = 0;        /* hold until interrupted */
        return options_check_churn(b, seen);
}

/* Returns 1 to go on, 0 to exit successfully (help, version), or -errno. */
static int options_parse(struct bench *b, int argc, char *argv[])
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
                { "connect-rate", no_argument,      NULL, OPT_CONNECT_RATE },
                { "round-trips", required_argument, NULL, OPT_ROUND_TRIPS },
                { "oneshot",     no_argument,       NULL, OPT_ONESHOT },
                { "source-addrs", required_argument, NULL, OPT_SOURCE_ADDRS },
                { "rst",         no_argument,       NULL, OPT_RST },
                { "proxy",       required_argument, NULL, OPT_PROXY },
                { "help",        no_argument,       NULL, 'h' },
                { "version",     no_argument,       NULL, 'V' },
                {}
        };
        struct options_seen seen = { 0 };
        int opt, r;

        opterr = 0;     /* our messages say "muxbench", not argv[0] */
        while ((opt = getopt_long(argc, argv, ":c:d:w:s:P:g:iqhV", options, NULL)) >= 0) {
                r = 0;
                switch (opt) {
                case 'c': case 'd': case 'w': case 's': case 'P': case OPT_PID: case OPT_ROUND_TRIPS:
                        r = option_number(b, opt, optarg, &seen);
                        break;
                case 'g': case OPT_NO_GREETING: case OPT_SUFFIX: case OPT_REQUEST: case OPT_REPLY:
                        r = option_string(b, opt, optarg);
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
                case OPT_CONNECT_RATE:
                        b->churn = true;
                        break;
                case OPT_ONESHOT:
                        b->oneshot = true;
                        break;
                case OPT_RST:
                        b->rst = true;
                        break;
                case OPT_PROXY:
                        if (strcmp(optarg, "v1") == 0)
                                b->proxy = 1;
                        else if (strcmp(optarg, "v2") == 0)
                                b->proxy = 2;
                        else {
                                cli_usage_error("--proxy: \"%s\" is neither v1 nor v2", optarg);
                                return -EINVAL;
                        }
                        break;
                case OPT_SOURCE_ADDRS:
                        free(b->source_spec);
                        b->source_spec = strdup(optarg);
                        if (!b->source_spec)
                                return -ENOMEM;
                        break;
                case 'h':
                        options_help();
                        return 0;
                case 'V':
                        cli_version();
                        return 0;
                default:
                        cli_option_error(opt, argv, "iqhV");
                        return -EINVAL;
                }
                if (r < 0)
                        return r;
        }

        r = options_check(b, argc, argv, &seen);
        if (r >= 0)
                r = request_echo_reply(b);
        return r < 0 ? r : 1;
}

/* ---- setting up ------------------------------------------------------------ */

/* The target (see hostport_parse()): the first address getaddrinfo() gives
 * is used. */
static int bench_resolve_target(struct bench *b)
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

/* Connection mode: the client addresses, of the target's family. Returns 0
 * or -EINVAL (said). */
static int bench_source_addrs(struct bench *b)
{
        char err[160];

        if (!b->source_spec) {
                srcaddr_default((struct sockaddr *) &b->addr, &b->sources);
                return 0;
        }
        if (srcaddr_parse(b->source_spec, b->addr.ss_family, &b->sources, err, sizeof(err)) < 0) {
                cli_usage_error("%s", err);
                return -EINVAL;
        }
        return 0;
}

static int bench_raise_fd_limit(unsigned n_conns)
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

static int bench_setup(struct bench *b)
{
        int r = request_setup(b);

        if (r >= 0)
                r = b->churn ? churn_setup(b) : conn_setup(b);
        if (r >= 0)
                r = loop_setup(b);
        return r;
}

static void bench_free(struct bench *b)
{
        conn_free(b);           /* before the epoll instance they are in */
        churn_free(b);
        loop_free(b);
        request_free(b);
        free(b->greeting);
        free(b->suffix);
        free(b->request);
        free(b->reply);
        free(b->source_spec);
}

int main(int argc, char *argv[])
{
        struct bench b = {
                .n_conns = 1,
                .duration = DEFAULT_DURATION,
                .warmup = DEFAULT_WARMUP,
                .size = DEFAULT_SIZE,
                .depth = 1,
                .round_trips = 1,
                .epfd = -1,
                .server_start = PROC_SAMPLE_UNKNOWN,
                .server_end = PROC_SAMPLE_UNKNOWN,
        };
        struct sigaction sa = { .sa_handler = bench_on_signal, .sa_flags = SA_RESETHAND };
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

        r = options_parse(&b, argc, argv);
        if (r <= 0) {
                if (r == -ENOMEM)
                        cli_error("%s", strerror(ENOMEM));
                ret = r == 0 ? EXIT_SUCCESS : r == -ENOMEM ? EXIT_FAILURE : CLI_EXIT_USAGE;
                goto finish;
        }
        r = bench_resolve_target(&b);
        if (r >= 0 && b.churn)
                r = bench_source_addrs(&b);
        if (r < 0) {
                ret = r == -EINVAL ? CLI_EXIT_USAGE : EXIT_FAILURE;
                goto finish;
        }
        if (bench_raise_fd_limit(b.n_conns) < 0)
                goto finish;
        if (b.server_pid && proc_cpu_ns(b.server_pid) < 0) {
                cli_error("cannot read /proc/%ld: is process %ld running?", b.server_pid, b.server_pid);
                goto finish;
        }
        r = bench_setup(&b);
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

        r = loop_run(&b);
        if (r < 0)
                goto finish;
        report_print(&b);
        ret = report_failure(&b) ? EXIT_FAILURE : EXIT_SUCCESS;

finish:
        bench_free(&b);
        return ret;
}
