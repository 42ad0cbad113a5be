/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "bench-churn.h"
#include "bench-report.h"
#include "bench-request.h"
#include "cli.h"

/* Connection mode: everything that went wrong, of every kind. */
static uint64_t report_churn_errors(const struct bench *b)
{
        return b->cs.connect_errors.total + b->cs.exchange_errors.total + b->cs.early_closes +
               b->wrong_replies;
}

void report_progress_clear(const struct bench *b)
{
        if (b->progress)
                fprintf(stderr, "\r%-79s\r", "");
}

/* Seconds into the warm-up or the window, for the progress line. */
static double report_phase_seconds(const struct bench *b, uint64_t now)
{
        if (b->phase == PHASE_WARMUP)
                return (double) (now - b->measure_start_ns + (uint64_t) (b->warmup * 1e9)) / 1e9;
        return (double) (now - b->measure_start_ns) / 1e9;
}

/* Connection mode: connections per second since the last tick, errors. */
static void report_churn_progress(struct bench *b, uint64_t now)
{
        uint64_t rate = b->cs.completed - b->cs.completed_at_tick;
        char line[160];

        b->cs.completed_at_tick = b->cs.completed;
        if (!b->progress || (b->phase != PHASE_WARMUP && b->phase != PHASE_MEASURE))
                return;
        snprintf(line, sizeof(line), "%s %.0fs: %" PRIu64 " connections/s, %u open, %" PRIu64 " errors",
                 b->phase == PHASE_WARMUP ? "warm-up" : "measuring", report_phase_seconds(b, now),
                 rate, churn_open_count(b), report_churn_errors(b));
        fprintf(stderr, "\rmuxbench: %-69s", line);
}

void report_progress_show(struct bench *b, uint64_t now)
{
        uint64_t rate = b->replies_total - b->replies_at_tick;
        char line[160];

        b->replies_at_tick = b->replies_total;
        if (b->churn) {
                report_churn_progress(b, now);
                return;
        }
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
                         b->phase == PHASE_WARMUP ? "warm-up" : "measuring", report_phase_seconds(b, now),
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

/* The server's figures, shared by both modes' JSON; the last keys. */
static void report_json_server(const struct report_figures *f, const char *per)
{
        if (f->cpu_us >= 0)
                printf("\"server_cpu_us_per_%s\":%.3f,", per, f->cpu_us);
        else
                printf("\"server_cpu_us_per_%s\":null,", per);
        if (f->sleeps >= 0)
                printf("\"server_sleeps_per_%s\":%.3f,", per, f->sleeps);
        else
                printf("\"server_sleeps_per_%s\":null,", per);
        if (f->rss >= 0)
                printf("\"server_rss_kib\":%ld}\n", f->rss);
        else
                printf("\"server_rss_kib\":null}\n");
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
        report_json_server(f, "req");
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

/* The "server" line: CPU and sleeps per request (or connection), RSS. */
static void report_text_server(const struct bench *b, const struct report_figures *f, const char *per)
{
        if (f->cpu_us >= 0)
                printf("  server      pid %ld: %.2f us CPU per %s", b->server_pid, f->cpu_us, per);
        else
                printf("  server      pid %ld", b->server_pid);
        if (f->sleeps >= 0)
                printf(", %.3f sleeps per %s", f->sleeps, per);
        if (f->rss >= 0)
                printf(", RSS %ld KiB", f->rss);
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
        if (b->server_pid)
                report_text_server(b, f, "request");
}

static void report_churn_json(const struct bench *b, const struct report_figures *f)
{
        char src[SRCADDR_STR_MAX];

        srcaddr_describe(&b->sources, src, sizeof(src));
        printf("{\"target\":");
        report_json_string(b->target, strlen(b->target));
        printf(",\"mode\":\"churn\",\"connections\":%u,\"round_trips\":%u,\"oneshot\":%s,"
               "\"rst\":%s,\"source_addrs\":\"%s\",\"payload\":%zu,",
               b->n_conns, b->oneshot ? 1 : b->round_trips, b->oneshot ? "true" : "false",
               b->rst ? "true" : "false", src, request_len(b));
        report_json_number("warmup_s", b->warmup, false);
        report_json_number("duration_s", f->secs, false);
        printf("\"completed\":%" PRIu64 ",", f->reqs);
        report_json_number("cps", f->rps, false);
        printf("\"requests\":%" PRIu64 ",", b->cs.round_trips);
        report_json_number("lat_p50_us", f->p50, false);
        report_json_number("lat_p99_us", f->p99, false);
        report_json_number("lat_p999_us", f->p999, false);
        report_json_number("lat_max_us", f->pmax, false);
        report_json_number("lat_mean_us", f->mean, false);
        printf("\"connect_errors\":%" PRIu64 ",\"connect_errors_by_errno\":", b->cs.connect_errors.total);
        errcount_print(&b->cs.connect_errors, stdout, true);
        printf(",\"exchange_errors\":%" PRIu64 ",\"exchange_errors_by_errno\":", b->cs.exchange_errors.total);
        errcount_print(&b->cs.exchange_errors, stdout, true);
        printf(",\"early_closes\":%" PRIu64 ",\"wrong_replies\":%" PRIu64 ",\"wrong_greetings\":%" PRIu64 ",",
               b->cs.early_closes, b->wrong_replies, b->wrong_greetings);
        report_json_server(f, "conn");
}

/* "connect, greeting, 1 round trip of 16 bytes, close" */
static void report_churn_exchange(const struct bench *b)
{
        printf("connect, %s", b->greeting_len > 0 ? "greeting, " : "");
        if (b->oneshot)
                printf("one %zu-byte message, the server's close", request_len(b));
        else if (b->round_trips > 0)
                printf("%u round trip%s of %zu bytes, close", b->round_trips,
                       b->round_trips == 1 ? "" : "s", request_len(b));
        else
                printf("close");
}

static void report_churn_text(const struct bench *b, const struct report_figures *f)
{
        char src[SRCADDR_STR_MAX];

        srcaddr_describe(&b->sources, src, sizeof(src));
        printf("muxbench: %s (%s), %u connection slot%s, from %s\n", b->target, b->addr_str,
               b->n_conns, b->n_conns == 1 ? "" : "s",
               strcmp(src, "none") == 0 ? "the kernel's choice of address" : src);
        printf("  exchange    ");
        report_churn_exchange(b);
        printf("%s\n", b->rst ? " (with RST)" : "");
        if (b->measure_start_ns == 0) {
                printf("  window      none: interrupted before it began\n");
        } else {
                printf("  window      %.2f s measured after %.2f s of warm-up\n", f->secs, b->warmup);
                printf("  connections %" PRIu64 "  (%.1f/s)\n", f->reqs, f->rps);
                printf("  latency     p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us, mean %.1f us"
                       " (whole exchange)\n", f->p50, f->p99, f->p999, f->pmax, f->mean);
        }
        printf("  errors      %" PRIu64 " connect error%s, %" PRIu64 " closed early, %" PRIu64
               " exchange error%s, %" PRIu64 " wrong repl%s\n",
               b->cs.connect_errors.total, b->cs.connect_errors.total == 1 ? "" : "s",
               b->cs.early_closes, b->cs.exchange_errors.total, b->cs.exchange_errors.total == 1 ? "" : "s",
               b->wrong_replies, b->wrong_replies == 1 ? "y" : "ies");
        for (int i = 0; i < 2; i++) {
                const struct errcount *c = i == 0 ? &b->cs.connect_errors : &b->cs.exchange_errors;

                if (c->total == 0)
                        continue;
                printf("              %s errors: ", i == 0 ? "connect" : "exchange");
                errcount_print(c, stdout, false);
                putchar('\n');
        }
        if (b->server_pid)
                report_text_server(b, f, "connection");
}

void report_print(const struct bench *b)
{
        struct report_figures f;

        report_compute(b, &f);
        if (b->churn && b->json)
                report_churn_json(b, &f);
        else if (b->churn)
                report_churn_text(b, &f);
        else if (b->json)
                report_json(b, &f);
        else
                report_text(b, &f);
        fflush(stdout);
}

static bool report_churn_failure(const struct bench *b)
{
        if (b->cs.completed == 0) {
                cli_error("no exchange with %s completed (%" PRIu64 " connect errors, %" PRIu64
                          " closed early, %" PRIu64 " exchange errors, %" PRIu64 " wrong replies)",
                          b->target, b->cs.connect_errors.total, b->cs.early_closes,
                          b->cs.exchange_errors.total, b->wrong_replies);
                return true;
        }
        if (b->wrong_replies > 0)
                cli_error("%" PRIu64 " wrong repl%s", b->wrong_replies, b->wrong_replies == 1 ? "y" : "ies");
        else if (b->cs.early_closes > 0)
                cli_error("%" PRIu64 " connection%s closed by the server before the end of the exchange",
                          b->cs.early_closes, b->cs.early_closes == 1 ? " was" : "s were");
        else if (b->cs.exchange_errors.total > 0)
                cli_error("%" PRIu64 " exchange%s failed after the connect", b->cs.exchange_errors.total,
                          b->cs.exchange_errors.total == 1 ? "" : "s");
        return b->wrong_replies > 0 || b->cs.early_closes > 0 || b->cs.exchange_errors.total > 0;
}

bool report_failure(const struct bench *b)
{
        if (b->churn)
                return report_churn_failure(b);
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
