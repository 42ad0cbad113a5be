/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "bench.h"
#include "bench-churn.h"
#include "bench-conn.h"
#include "bench-loop.h"
#include "bench-report.h"
#include "cli.h"
#include "util.h"

#define EVENTS_MAX              1024
#define TICK_MS                 100             /* longest epoll wait */

int loop_setup(struct bench *b)
{
        b->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (b->epfd < 0) {
                cli_error("epoll_create1: %s", strerror(errno));
                return -errno;
        }
        return 0;
}

void loop_free(struct bench *b)
{
        if (b->epfd > 0)
                close(b->epfd);
        b->epfd = -1;
}

static void loop_start_measure(struct bench *b, uint64_t now)
{
        b->phase = PHASE_MEASURE;
        b->measure_start_ns = now;
        b->phase_end_ns = b->duration > 0 ? now + (uint64_t) (b->duration * 1e9) : UINT64_MAX;
        if (b->server_pid)
                b->server_start = proc_sample(b->server_pid);
}

/* The run is over: a window in progress ends now. */
static void loop_finish(struct bench *b, uint64_t now)
{
        if (b->phase == PHASE_MEASURE) {
                b->measure_end_ns = now;
                if (b->server_pid)
                        b->server_end = proc_sample(b->server_pid);
        }
        b->phase = PHASE_DONE;
}

/* Warm up, or measure at once. */
static void loop_begin(struct bench *b, uint64_t now)
{
        if (b->warmup > 0) {
                b->phase = PHASE_WARMUP;
                b->measure_start_ns = now + (uint64_t) (b->warmup * 1e9);
                b->phase_end_ns = b->measure_start_ns;
        } else {
                loop_start_measure(b, now);
        }
}

/* Every connection has been tried: hold them (idle mode), or warm up, or
 * measure at once; nothing to measure if none is ready. */
static void loop_connected(struct bench *b, uint64_t now)
{
        if (b->ready == 0) {
                b->phase = PHASE_DONE;
                return;
        }
        if (b->idle) {
                loop_start_measure(b, now);
                report_progress_clear(b);
                report_holding(b);
                return;
        }
        loop_begin(b, now);
}

static void loop_advance(struct bench *b, uint64_t now)
{
        if (b->phase == PHASE_CONNECT) {
                if (b->next_open < b->n_conns || b->handshaking > 0)
                        return;
                loop_connected(b, now);
                return;
        }
        if (now < b->phase_end_ns)
                return;
        if (b->phase == PHASE_WARMUP)
                loop_start_measure(b, now);
        else if (b->phase == PHASE_MEASURE)
                loop_finish(b, now);
}

/* The epoll wait: until the next tick, or the end of the phase or a slot's
 * restart if sooner. */
static int loop_timeout(const struct bench *b, uint64_t now)
{
        int timeout = TICK_MS;

        if (b->churn) {
                int t = churn_timeout_ms(b, now);

                if (t >= 0 && t < timeout)
                        timeout = t;
        }

        if (b->phase != PHASE_CONNECT && b->phase_end_ns != UINT64_MAX) {
                uint64_t left = b->phase_end_ns > now ? (b->phase_end_ns - now + 999999) / 1000000 : 0;

                if (left < (uint64_t) timeout)
                        timeout = (int) left;
        }
        return timeout;
}

int loop_run(struct bench *b)
{
        struct epoll_event events[EVENTS_MAX];
        uint64_t now = monotonic_ns();

        b->phase = PHASE_CONNECT;
        b->next_tick_ns = now + 1000000000u;
        if (b->churn) {
                /* connection mode: the slots connect all along the run */
                loop_begin(b, now);
                churn_start(b);
        } else {
                conn_open_more(b);
        }

        while (b->phase != PHASE_DONE) {
                int n;

                if (bench_interrupted) {
                        loop_finish(b, monotonic_ns());
                        break;
                }
                n = epoll_wait(b->epfd, events, EVENTS_MAX, loop_timeout(b, now));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        cli_error("epoll_wait: %s", strerror(errno));
                        return -errno;
                }
                for (int i = 0; i < n; i++) {
                        if (b->churn)
                                churn_on_event(b, events[i].data.u32, events[i].events);
                        else
                                conn_on_event(b, events[i].data.u32, events[i].events);
                }

                now = monotonic_ns();
                if (b->churn) {
                        churn_restart(b, now);
                        if (now >= b->next_tick_ns)
                                churn_check_timeouts(b, now);
                }
                if (b->phase == PHASE_CONNECT) {
                        conn_open_more(b);
                        if (b->handshaking > 0 && (n == 0 || now >= b->next_tick_ns))
                                conn_check_timeouts(b, now);
                }
                loop_advance(b, now);
                if (now >= b->next_tick_ns) {
                        report_progress_show(b, now);
                        b->next_tick_ns = now + 1000000000u;
                }
                /* everything was closed under us: nothing left to measure */
                if (!b->churn && b->open == 0 && b->phase != PHASE_CONNECT)
                        loop_finish(b, now);
        }
        report_progress_clear(b);
        return 0;
}
