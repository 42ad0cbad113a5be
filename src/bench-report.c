/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "bench-report.h"
#include "bench-request.h"
#include "cli.h"

void report_progress_clear(const struct bench *b)
{
        if (b->progress)
                fprintf(stderr, "\r%-79s\r", "");
}

void report_progress_show(struct bench *b, uint64_t now)
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

void report_holding(const struct bench *b)
{
        if (!b->json)
                printf("muxbench: holding %u idle connection%s (%" PRIu64 " failed)\n",
                       b->ready, b->ready == 1 ? "" : "s", b->connect_errors);
        fflush(stdout);
}

/* What both forms of the report print. Times in microseconds; the server's
 * figures are negative when unknown. */
struct report_figures {
        double secs;            /* the measured window */
        uint64_t reqs;
        double rps;
        double p50, p99, p999, pmax, mean;
        double cpu_us, sleeps;  /* the server's, per request */
        long rss;               /* the server's, KiB */
        unsigned connected;
};

static void report_compute(const struct bench *b, struct report_figures *f)
{
        f->secs = b->measure_end_ns > b->measure_start_ns
                ? (double) (b->measure_end_ns - b->measure_start_ns) / 1e9 : 0.0;
        f->reqs = b->hist.count;
        f->rps = f->secs > 0 ? (double) f->reqs / f->secs : 0.0;
        f->p50 = (double) hist_quantile(&b->hist, 0.50) / 1e3;
        f->p99 = (double) hist_quantile(&b->hist, 0.99) / 1e3;
        f->p999 = (double) hist_quantile(&b->hist, 0.999) / 1e3;
        f->pmax = (double) b->hist.max / 1e3;
        f->mean = f->reqs ? (double) b->hist.sum / (double) f->reqs / 1e3 : 0.0;
        f->cpu_us = -1.0;
        f->sleeps = -1.0;
        f->rss = b->server_pid ? proc_rss_kib(b->server_pid) : -1;
        f->connected = b->idle ? b->ready : (unsigned) (b->n_conns - b->connect_errors);

        if (b->server_pid && b->server_start.cpu_ns >= 0 && b->server_end.cpu_ns >= 0 && f->reqs > 0)
                f->cpu_us = (double) (b->server_end.cpu_ns - b->server_start.cpu_ns) / 1e3 / (double) f->reqs;
        if (b->server_pid && b->server_start.sleeps >= 0 && b->server_end.sleeps >= 0 && f->reqs > 0)
                f->sleeps = (double) (b->server_end.sleeps - b->server_start.sleeps) / (double) f->reqs;
}

static void report_json_number(const char *key, double v, bool last)
{
        printf("\"%s\":%.3f%s", key, v, last ? "" : ",");
}

/* Write a string as JSON. */
static void report_json_string(const char *s, size_t n)
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

static void report_json(const struct bench *b, const struct report_figures *f)
{
        printf("{\"target\":");
        report_json_string(b->target, strlen(b->target));
        printf(",\"mode\":\"%s\",\"connections\":%u,\"connected\":%u,"
               "\"connect_errors\":%" PRIu64 ",\"disconnects\":%" PRIu64 ",\"wrong_replies\":%" PRIu64 ","
               "\"wrong_greetings\":%" PRIu64 ",",
               b->idle ? "idle" : "run", b->n_conns, f->connected, b->connect_errors,
               b->disconnects, b->wrong_replies, b->wrong_greetings);
        printf("\"payload\":%zu,\"pipeline\":%u,", request_len(b), b->depth);
        report_json_number("warmup_s", b->warmup, false);
        report_json_number("duration_s", f->secs, false);
        printf("\"requests\":%" PRIu64 ",", f->reqs);
        report_json_number("rps", f->rps, false);
        report_json_number("lat_p50_us", f->p50, false);
        report_json_number("lat_p99_us", f->p99, false);
        report_json_number("lat_p999_us", f->p999, false);
        report_json_number("lat_max_us", f->pmax, false);
        report_json_number("lat_mean_us", f->mean, false);
        if (f->cpu_us >= 0)
                report_json_number("server_cpu_us_per_req", f->cpu_us, false);
        else
                printf("\"server_cpu_us_per_req\":null,");
        if (f->sleeps >= 0)
                report_json_number("server_sleeps_per_req", f->sleeps, false);
        else
                printf("\"server_sleeps_per_req\":null,");
        if (f->rss >= 0)
                printf("\"server_rss_kib\":%ld}\n", f->rss);
        else
                printf("\"server_rss_kib\":null}\n");
}

/* The "errors" line: wrong replies, connect errors, connections closed. */
static void report_text_errors(const struct bench *b)
{
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
}

static void report_text(const struct bench *b, const struct report_figures *f)
{
        if (b->idle) {
                printf("muxbench: %s: held %u idle connection%s for %.1f s\n", b->target,
                       b->ready, b->ready == 1 ? "" : "s", f->secs);
        } else {
                printf("muxbench: %s (%s), %u connection%s, %zu-byte requests, pipeline %u\n",
                       b->target, b->addr_str, b->n_conns, b->n_conns == 1 ? "" : "s",
                       request_len(b), b->depth);
        }
        if (!b->idle && b->measure_start_ns == 0) {
                printf("  window      none: %s\n",
                       bench_interrupted ? "interrupted before it began" : "no connection was ready");
        } else if (!b->idle) {
                printf("  window      %.2f s measured after %.2f s of warm-up\n", f->secs, b->warmup);
                printf("  requests    %" PRIu64 "  (%.1f/s)\n", f->reqs, f->rps);
                printf("  latency     p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us, mean %.1f us\n",
                       f->p50, f->p99, f->p999, f->pmax, f->mean);
        }
        report_text_errors(b);
        if (b->server_pid) {
                if (f->cpu_us >= 0)
                        printf("  server      pid %ld: %.2f us CPU per request", b->server_pid, f->cpu_us);
                else
                        printf("  server      pid %ld", b->server_pid);
                if (f->sleeps >= 0)
                        printf(", %.3f sleeps per request", f->sleeps);
                if (f->rss >= 0)
                        printf(", RSS %ld KiB", f->rss);
                putchar('\n');
        }
}

void report_print(const struct bench *b)
{
        struct report_figures f;

        report_compute(b, &f);
        if (b->json)
                report_json(b, &f);
        else
                report_text(b, &f);
        fflush(stdout);
}

bool report_failure(const struct bench *b)
{
        if (b->connect_errors == b->n_conns)
                cli_error("no connection to %s could be made: %s", b->target,
                          b->first_connect_errno == EPROTO ? "wrong greeting or reply" :
                          strerror(b->first_connect_errno ? b->first_connect_errno : ECONNREFUSED));
        else if (b->wrong_replies > 0)
                cli_error("%" PRIu64 " wrong repl%s", b->wrong_replies, b->wrong_replies == 1 ? "y" : "ies");
        else if (b->disconnects > 0)
                cli_error("%" PRIu64 " connection%s closed by the server", b->disconnects,
                          b->disconnects == 1 ? " was" : "s were");
        return b->connect_errors == b->n_conns || b->wrong_replies > 0 || b->disconnects > 0;
}
