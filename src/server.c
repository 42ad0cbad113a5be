/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "control.h"
#include "control-proto.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "server-internal.h"
#include "systemd.h"
#include "util.h"

#define SERVER_SETSIZE_MAX      (1 << 20)
#define SERVER_STATUS_MS        1000u   /* STATUS= at most this often */
#define SERVER_NOTIFY_RETRY_MS  100u
#define SERVER_RETIRE_POLL_MS   20u     /* while workers drop removed listeners */
#define SERVER_LOG_RETRY_MS     20u     /* while log lines wait for the journal or stderr */
#define SERVER_RATE_WINDOW_MS   60000u  /* STATUS='s accepted/s and refused/s */


static uint64_t server_now(const struct server *s)
{
        return s->now_ms;
}

void server_worker_exited(struct server *s, struct worker *w, int status)
{
        if (status != 0) {
                atomic_store(&s->exit_code, 1);
                atomic_store(&s->worker_failed, true);
        }
        atomic_fetch_sub(&s->workers_running, 1);
        server_wake(s);
}

void server_resume_accepting(struct server *s, const struct worker *w)
{
        for (unsigned i = 0; i < s->n_workers; i++)
                if (s->workers[i] != w)
                        worker_request(s->workers[i], WORKER_RESUME);
}

/* what the configuration allows, the table computes without overflow */
_Static_assert(CONFIG_MAX_RATE_MAX <= SOURCE_RATE_MAX, "max_rate_per_source beyond source.c's arithmetic");

int server_source_hold(struct server *s, uint64_t owner, const struct listener_opts *o,
                       const struct sockaddr *sa, uint64_t now_ms, struct source **ret,
                       unsigned *evicted)
{
        const struct source_limits lim = {
                .max_per_source = o->max_per_source,
                .rate = o->max_rate_per_source,
                .burst = o->rate_burst,
                .prefix4 = o->source_prefix_v4,
                .prefix6 = o->source_prefix_v6,
        };
        int r;

        pthread_mutex_lock(&s->sources_lock);
        r = source_admit(&s->sources, owner, sa, &lim, now_ms, ret, evicted);
        pthread_mutex_unlock(&s->sources_lock);
        return r;
}

void server_source_release(struct server *s, struct source *src, uint64_t now_ms)
{
        if (!src)
                return;         /* a connection still waiting for its PROXY header holds none */
        pthread_mutex_lock(&s->sources_lock);
        source_release(&s->sources, src, now_ms);
        pthread_mutex_unlock(&s->sources_lock);
}

/* The settings workers read without the configuration itself. */
static void server_publish_settings(struct server *s)
{
        atomic_store(&s->max_connections, s->cfg->max_connections);
        atomic_store(&s->timeout_s, s->cfg->timeout);
        atomic_store(&s->shutdown_timeout_s, s->cfg->shutdown_timeout);
        atomic_store(&s->preserve, s->cfg->preserve_connections);
        pthread_mutex_lock(&s->sources_lock);
        s->sources.max = s->cfg->max_sources;
        pthread_mutex_unlock(&s->sources_lock);
        log_set_level(s->cfg->log_level);
        /* each client holds one entry at most: only below max_connections
         * can the table fill with entries that all have clients */
        if (s->cfg->max_sources < s->cfg->max_connections)
                log_notice("max_sources (%u) is below max_connections (%u): a new source is refused "
                           "(sources_full) while every entry has clients", s->cfg->max_sources,
                           s->cfg->max_connections);
}

static void server_log_stats(struct server *s)
{
        struct stats_counts t;
        uint64_t refused = 0, closed = 0;

        stats_total(s->stats, &t);
        for (size_t i = 0; i < STATS_REFUSED_N; i++)
                refused += t.refused[i];
        for (size_t i = 0; i < STATS_CLOSED_N; i++)
                closed += t.closed[i];
        log_info("statistics: %u connections open, %zu listeners, %u workers, %llu accepted, %llu refused, "
                 "%llu closed, %llu messages, %llu timeouts, %llu oversized, %llu bytes in, %llu bytes out, "
                 "%llu log messages dropped",
                 atomic_load(&s->n_conns_total), s->n_listeners, s->n_workers,
                 (unsigned long long) t.accepted, (unsigned long long) refused,
                 (unsigned long long) closed, (unsigned long long) t.messages,
                 (unsigned long long) t.closed[STATS_CLOSED_IDLE],
                 (unsigned long long) t.closed[STATS_CLOSED_MAX_MESSAGE],
                 (unsigned long long) t.bytes_in, (unsigned long long) t.bytes_out,
                 (unsigned long long) log_dropped_total());
}

/* ---- the metrics endpoint (metrics.c) ---- */

static int server_metrics_render(void *ctx, struct buffer *out)
{
        struct stats_snapshot snap;
        int r = stats_snapshot(ctx, &snap);

        if (r < 0)
                return r;
        r = stats_render_prometheus(&snap, out);
        stats_snapshot_free(&snap);
        return r;
}

/* The global access list applies to the metrics endpoint too. */
static bool server_metrics_allowed(void *ctx, const struct sockaddr *sa, socklen_t len)
{
        struct server *s = ctx;
        char peer[SOCKADDR_STR_MAX];
        unsigned suppressed;

        if (acl_permits(&s->cfg->defaults.allow, &s->cfg->defaults.deny, sa))
                return true;
        if (log_ratelimit_ok(&s->rl_metrics, s->now_ms, &suppressed)) {
                sockaddr_to_string(sa, len, peer);
                log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "refused", .peer = peer },
                         "refused %s on the metrics endpoint: not allowed by allow/deny%s", peer,
                         suppressed ? " (similar messages suppressed)" : "");
        }
        return false;
}

static const struct metrics_ops server_metrics_ops = {
        .render = server_metrics_render,
        .allowed = server_metrics_allowed,
};

/* The endpoint cfg asks for, in *ret: the running one if it listens there
 * already, one bound now, or NULL (off). Returns 0, or -errno with *error
 * "FILE:LINE: metrics_listen: ..." (NULL if out of memory). */
static int server_metrics_prepare(struct server *s, const struct config *cfg, struct metrics **ret, char **error)
{
        int r;

        *ret = NULL;
        if (!cfg->metrics)
                return 0;
        if (s->metrics && metrics_listens_on(s->metrics, &cfg->metrics_key)) {
                *ret = s->metrics;
                return 0;
        }
        r = metrics_new(s->loop, &cfg->metrics_key, &server_metrics_ops, s, ret);
        if (r < 0 && asprintf(error, "%s:%d: metrics_listen: cannot listen on %s: %s",
                              cfg->metrics_file ? cfg->metrics_file : cfg->path, cfg->metrics_line,
                              cfg->metrics_listen, errno_text(-r)) < 0)
                *error = NULL;
        return r;
}

/* m (from server_metrics_prepare()) takes the running endpoint's place. */
static void server_metrics_commit(struct server *s, struct metrics *m)
{
        if (m == s->metrics)
                return;
        if (s->metrics)
                log_info("metrics endpoint on %s closed", metrics_address(s->metrics));
        metrics_free(s->metrics);
        s->metrics = m;
        if (m)
                log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "metrics", .listen = metrics_address(m) },
                         "serving metrics on http://%s/metrics", metrics_address(m));
}

/* Every worker takes the new listener list before the reload is reported
 * done, so a client that connects after READY=1 gets the new settings.
 * Workers answer within microseconds; a worker that does not within
 * SERVER_SYNC_WAIT_MS catches up on its own (its old listeners are retired,
 * not closed, until it has). */
bool server_wait_synced(struct server *s)
{
        struct timespec deadline;
        uint64_t gen = s->listeners_gen;
        bool synced = true;

        /* the condition variable runs on CLOCK_MONOTONIC (server_new): a
         * clock step must not shorten or stretch the wait */
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += SERVER_SYNC_WAIT_MS / 1000u;
        pthread_mutex_lock(&s->listeners_lock);
        for (unsigned i = 0; i < s->n_workers && synced; i++)
                while (!worker_synced(s->workers[i], gen))
                        if (pthread_cond_timedwait(&s->synced_cond, &s->listeners_lock, &deadline) != 0) {
                                synced = false;
                                break;
                        }
        pthread_mutex_unlock(&s->listeners_lock);
        server_free_retired(s, false);
        return synced;
}

/* Returns whether every worker took the new list in time. */
bool server_resync_workers(struct server *s)
{
        for (unsigned i = 0; i < s->n_workers; i++)
                worker_request(s->workers[i], WORKER_RESYNC);
        return server_wait_synced(s);
}

static void server_stop(struct server *s, const char *why)
{
        uint32_t n;

        s->stopping = true;
        notify_state(s->notify, "STOPPING=1");
        /* every listener goes: workers stop watching them, then they are closed */
        pthread_mutex_lock(&s->listeners_lock);
        for (struct listener *l = s->listeners, *next; l; l = next) {
                next = l->next;
                server_retire_listener(s, l);
        }
        s->listeners = NULL;
        s->n_listeners = 0;
        s->listeners_gen++;
        pthread_mutex_unlock(&s->listeners_lock);
        for (unsigned i = 0; i < s->n_workers; i++)
                worker_request(s->workers[i], WORKER_STOP);
        server_wait_synced(s);

        n = atomic_load(&s->n_conns_total);
        log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "stopping", .message_id = MUXD_MESSAGE_STOPPING },
                 "%s: stopping, draining %u connection%s (at most %us)", why, n, n == 1 ? "" : "s",
                 s->cfg->shutdown_timeout);
}

/* Sample the totals and give accepted/s and refused/s over the last
 * minute (or since the first sample, if that is less). */
static void server_rates(struct server *s, double *accepted, double *refused)
{
        struct server_rate_sample now = { .ms = server_now(s) }, *old = NULL;
        struct stats_counts t;
        unsigned n = s->n_rates < SERVER_RATE_SAMPLES ? s->n_rates : SERVER_RATE_SAMPLES;

        stats_total(s->stats, &t);
        now.accepted = t.accepted;
        for (size_t i = 0; i < STATS_REFUSED_N; i++)
                now.refused += t.refused[i];
        for (unsigned i = 0; i < n; i++) {
                struct server_rate_sample *r = &s->rates[i];

                if (now.ms - r->ms <= SERVER_RATE_WINDOW_MS && (!old || r->ms < old->ms))
                        old = r;
        }
        *accepted = *refused = 0;
        if (old && now.ms > old->ms) {
                *accepted = (double) (now.accepted - old->accepted) * 1000.0 / (double) (now.ms - old->ms);
                *refused = (double) (now.refused - old->refused) * 1000.0 / (double) (now.ms - old->ms);
        }
        s->rates[s->n_rates++ % SERVER_RATE_SAMPLES] = now;
        if (s->n_rates >= 2 * SERVER_RATE_SAMPLES)
                s->n_rates -= SERVER_RATE_SAMPLES;      /* the same slot, no overflow */
}

/* STATUS= text: what systemctl status shows (short: it is cut to fit). */
static void server_status_text(struct server *s, char *buf, size_t size)
{
        uint32_t conns = atomic_load(&s->n_conns_total);
        char when[32] = "";
        double accepted, refused;

        server_rates(s, &accepted, &refused);
        if (s->reload_time_s && !s->reload_error) {
                time_t t = (time_t) s->reload_time_s;
                struct tm tm;

                if (localtime_r(&t, &tm))
                        strftime(when, sizeof(when), "; reload ok at %H:%M:%S", &tm);
        }
        snprintf(buf, size, "%s%s%s%s%s%s%s%s%s%s%zu listener%s, %u client%s, %.1f accepted/s, %.1f refused/s (1 min)%s",
                 s->stopping ? "stopping; " : "",
                 s->upgrade_error ? "upgrade failed: " : "",
                 s->upgrade_error ? s->upgrade_error : "",
                 s->upgrade_error ? "; " : "",
                 server_upgrade_from()[0] ? "upgraded from " : "",
                 server_upgrade_from(),
                 server_upgrade_from()[0] ? "; " : "",
                 s->reload_error ? "reload failed: " : "",
                 s->reload_error ? s->reload_error : "",
                 s->reload_error ? "; " : "",
                 s->n_listeners, s->n_listeners == 1 ? "" : "s",
                 conns, conns == 1 ? "" : "s", accepted, refused, when);
}

/* Send STATUS= if it changed, at most once a second; returns ms until the
 * next look is due (-1: nothing to send). The text is formatted at most once
 * a second too: this runs on every pass of the main thread's loop. */
static int server_update_status(struct server *s, bool force)
{
        char text[sizeof(s->status_sent)], msg[sizeof(text) + 8];
        uint64_t now = server_now(s);

        if (!s->notify || notify_disabled(s->notify))
                return -1;
        if (!force && s->status_checked_ms && now - s->status_checked_ms < SERVER_STATUS_MS)
                return (int) (s->status_checked_ms + SERVER_STATUS_MS - now);
        s->status_checked_ms = now ? now : 1;   /* a dropped update waits its turn too */
        server_status_text(s, text, sizeof(text));
        if (strcmp(text, s->status_sent) == 0)
                return -1;
        snprintf(msg, sizeof(msg), "STATUS=%s", text);
        if (notify_try(s->notify, msg) >= 0)
                memcpy(s->status_sent, text, sizeof(text));
        return -1;
}

/* The limits of the backend and the workers that are running (a change of
 * either waits for the next start), not of the ones the new file names: a
 * select loop watches descriptors below FD_SETSIZE only. Lowers a default
 * max_connections to fit; returns -EINVAL with *error set if the file's own
 * value does not fit. */
static int server_check_budget(struct server *s, struct config *cfg, char **error)
{
        size_t n_passed = 0, at_most;

        if (s->backend->max_fds == 0)
                return 0;
        for (const struct listener *l = s->listeners; l; l = l->next)
                n_passed += l->passed;
        at_most = config_client_budget(s->backend->max_fds, cfg->n_listeners + n_passed, s->n_workers);
        if (cfg->max_connections <= at_most)
                return 0;
        if (!cfg->max_connections_set && at_most > 0) {
                cfg->max_connections = (uint32_t) at_most;
                return 0;
        }
        if (asprintf(error, "%s: max_connections: %u is more than the running backend \"%s\" can watch "
                     "(%zu descriptors): at most %zu with %zu listener%s and %u worker%s "
                     "(a new backend takes effect at the next start)", cfg->path, cfg->max_connections,
                     s->backend->name, s->backend->max_fds, at_most, cfg->n_listeners + n_passed,
                     cfg->n_listeners + n_passed == 1 ? "" : "s", s->n_workers,
                     s->n_workers == 1 ? "" : "s") < 0)
                *error = NULL;
        return -EINVAL;
}

/* The kernel must allow the file's backend (io_uring: a seccomp filter,
 * kernel.io_uring_disabled), as at start and with -t, though it takes effect
 * at the next start only: the verdicts agree. */
static int server_check_backend(const struct config *cfg, char **error)
{
        char *why = NULL;
        int r = ev_backend_check(ev_backend_find(cfg->backend), &why);

        if (r < 0 && asprintf(error, "%s:%d: backend: %s", cfg->backend_file ? cfg->backend_file : cfg->path,
                              cfg->backend_line, why ? why : errno_text(-r)) < 0)
                *error = NULL;
        free(why);
        return r;
}

/* The outcome of a reload for the control socket (all of errs, moved) and
 * for STATUS= (the first error). */
static void server_reload_record(struct server *s, bool ok, struct config_errors *errs)
{
        free(s->reload_error);
        s->reload_error = NULL;
        if (!ok)
                s->reload_error = strdup(errs->n > 0 ? errs->msgs[0] : "out of memory");
        config_errors_clear(&s->last_reload.errors);
        s->last_reload = (struct server_reload_result) { .done = true, .ok = ok, .when = time(NULL),
                                                         .errors = *errs };
        *errs = (struct config_errors) { 0 };
}

/* Read the file and check it against what runs (backend, descriptors);
 * errors in errs, or in *error for a check after the file's own. */
static int server_load(struct server *s, struct config **ret, struct config_errors *errs, char **error)
{
        struct config *cfg = NULL;
        int r;

        *error = NULL;
        r = config_load(s->cfg->path, &cfg, errs);
        if (r < 0) {
                if (errs->n == 0 && config_errors_add(errs, errno_text(-r)) < 0)
                        return -ENOMEM;
                return r;
        }
        r = server_check_backend(cfg, error);
        if (r >= 0)
                r = server_check_budget(s, cfg, error);
        if (r < 0) {
                config_free(cfg);
                return r;
        }
        *ret = cfg;
        return 0;
}

static void server_reload_commit(struct server *s, struct config *cfg)
{
        const char *old_ctl = s->cfg->control_socket ? s->cfg->control_socket : CONTROL_SOCKET_DEFAULT;
        const char *new_ctl = cfg->control_socket ? cfg->control_socket : CONTROL_SOCKET_DEFAULT;

        if (strcmp(cfg->backend, s->backend->name) != 0)
                log_notice("backend \"%s\" takes effect at the next start; still running \"%s\"",
                           cfg->backend, s->backend->name);
        if (cfg->workers != s->cfg->workers)
                log_notice("workers = %u takes effect at the next start", cfg->workers);
        if (strcmp(old_ctl, new_ctl) != 0)
                log_notice("control_socket = \"%s\" takes effect at the next start", new_ctl);
        config_free(s->cfg);
        s->cfg = cfg;
        s->cfg_loaded = time(NULL);
        server_publish_settings(s);
        /* max_connections may have grown: let paused workers look again */
        for (unsigned i = 0; i < s->n_workers; i++)
                worker_request(s->workers[i], WORKER_RESUME);

        log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "reloaded", .message_id = MUXD_MESSAGE_RELOADED },
                 "configuration reloaded from %s: %zu listener%s", cfg->path, s->n_listeners,
                 s->n_listeners == 1 ? "" : "s");
}

int server_reload(struct server *s)
{
        static const struct log_fields failed = { .event = "reload-failed", .message_id = MUXD_MESSAGE_RELOAD_FAILED };
        struct config_errors errs = { 0 };
        struct config *cfg = NULL;
        struct metrics *metrics = NULL;
        struct timespec ts;
        char msg[64], *error = NULL;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long) ts.tv_sec * 1000000ull + (unsigned long long) ts.tv_nsec / 1000u);
        notify_state(s->notify, msg);
        s->reload_time_s = (uint64_t) time(NULL);

        r = server_load(s, &cfg, &errs, &error);
        /* the metrics endpoint is bound first: the listeners cannot be undone */
        if (r >= 0)
                r = server_metrics_prepare(s, cfg, &metrics, &error);
        if (r >= 0)
                r = server_apply_listeners(s, cfg, false, &error);
        if (r >= 0) {
                server_metrics_commit(s, metrics);
                server_reload_commit(s, cfg);
        } else if (errs.n > 0) {
                /* the file's own errors, each at its line */
                for (size_t i = 0; i < errs.n; i++)
                        log_full(LOG_LEVEL_ERR, &failed, "%s", errs.msgs[i]);
                log_full(LOG_LEVEL_ERR, &failed, "reload failed: keeping the running configuration");
        } else {
                log_full(LOG_LEVEL_ERR, &failed, "reload failed: %s; keeping the running configuration",
                         error ? error : errno_text(-r));
                (void) config_errors_add(&errs, error ? error : errno_text(-r));
                if (metrics != s->metrics)
                        metrics_free(metrics);
                config_free(cfg);
        }
        server_reload_record(s, r >= 0, &errs);
        free(error);
        notify_state(s->notify, "READY=1");
        server_update_status(s, true);
        return r;
}

int server_check(struct server *s, struct config_errors *errs)
{
        struct config *cfg = NULL;
        char *error = NULL;
        int r;

        r = server_load(s, &cfg, errs, &error);
        if (r >= 0)
                r = server_check_listeners(s, cfg, &error);
        if (r < 0 && errs->n == 0 && config_errors_add(errs, error ? error : errno_text(-r)) < 0)
                r = -ENOMEM;
        free(error);
        config_free(cfg);
        return r;
}

bool server_set_draining(struct server *s, struct listener *l, bool on)
{
        pthread_mutex_lock(&s->listeners_lock);
        l->draining = on;
        s->listeners_gen++;
        pthread_mutex_unlock(&s->listeners_lock);
        return server_resync_workers(s);
}

bool server_set_bans(struct server *s, struct ban_list *bans)
{
        struct ban_list *old;

        pthread_mutex_lock(&s->listeners_lock);
        old = s->bans;
        s->bans = bans;
        s->listeners_gen++;
        pthread_mutex_unlock(&s->listeners_lock);
        ban_list_unref(old);    /* workers hold their own references */
        return server_resync_workers(s);
}

int server_upgrade(struct server *s, char **why)
{
        uint32_t n = atomic_load(&s->n_conns_total);
        uint64_t t0 = monotonic_ms(), t_paused;
        struct metrics *metrics = NULL;
        char msg[64], *error = NULL;
        struct timespec ts;
        pid_t pid = 0;
        int r;

        *why = NULL;
        if (s->stopping) {
                *why = strdup("muxd is stopping");
                return -ESHUTDOWN;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long) ts.tv_sec * 1000000ull + (unsigned long long) ts.tv_nsec / 1000u);
        notify_state(s->notify, msg);
        log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "upgrade" },
                 "live upgrade: handing %zu listener%s and %u connection%s to a new process",
                 s->n_listeners, s->n_listeners == 1 ? "" : "s", n, n == 1 ? "" : "s");
        r = server_upgrade_pause(s, why);
        t_paused = monotonic_ms();
        if (r >= 0) {
                /* the new image binds the metrics endpoint itself */
                server_metrics_commit(s, NULL);
                r = server_upgrade_spawn(s, why, &pid);
        }
        if (r >= 0) {
                s->handed_over = true;
                s->successor = (long) pid;
                log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "upgraded" },
                         "live upgrade: process %ld took over in %llu ms (the workers paused in %llu ms, "
                         "a state of %zu bytes); exiting", (long) pid, (unsigned long long) (monotonic_ms() - t0),
                         (unsigned long long) (t_paused - t0), s->upgrade_state_bytes);
                return 0;
        }
        if (!*why)
                *why = strdup(errno_text(-r));
        server_upgrade_unpause(s);
        if (s->cfg->metrics && !s->metrics) {
                if (server_metrics_prepare(s, s->cfg, &metrics, &error) >= 0)
                        server_metrics_commit(s, metrics);
                else
                        log_err("%s", error ? error : "metrics_listen: out of memory");
                free(error);
        }
        log_full(LOG_LEVEL_ERR, &(const struct log_fields) { .event = "upgrade-failed" },
                 "live upgrade failed: %s; this process goes on serving every client", *why ? *why : "out of memory");
        free(s->upgrade_error);
        s->upgrade_error = *why ? strdup(*why) : NULL;
        notify_state(s->notify, "READY=1");
        server_update_status(s, true);
        return r;
}

void server_wake(struct server *s)
{
        uint64_t one = 1;

        if (write(s->wake_fd, &one, sizeof(one)) < 0) {
                /* the counter is saturated: the main loop wakes anyway */
        }
}

/* log.c's hook: lines a worker could not write wait for this loop */
static void server_wake_hook(void *data)
{
        server_wake(data);
}

static void server_on_signal(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct server *s = data;
        struct signalfd_siginfo si;

        while (read(fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
                switch (si.ssi_signo) {
                case SIGTERM:
                case SIGINT:
                        if (s->stopping) {
                                log_notice("%s again: exiting now", strsignal((int) si.ssi_signo));
                                for (unsigned i = 0; i < s->n_workers; i++)
                                        worker_request(s->workers[i], WORKER_EXIT);
                        } else {
                                server_stop(s, strsignal((int) si.ssi_signo));
                        }
                        break;
                case SIGHUP:
                        if (!s->stopping)
                                (void) server_reload(s);
                        break;
                case SIGUSR1:
                        server_log_stats(s);
                        break;
                case SIGUSR2:
                        if (!s->stopping && !s->handed_over) {
                                char *why = NULL;

                                (void) server_upgrade(s, &why);
                                free(why);
                        }
                        break;
                }
        }
}

static int server_setup_signals(struct server *s)
{
        sigset_t mask;

        /* a client that vanishes mid-write must never kill the daemon */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGUSR1);
        sigaddset(&mask, SIGUSR2);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        s->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->signal_fd < 0)
                return -errno;
        return ev_add(s->loop, s->signal_fd, EV_READABLE, server_on_signal, s);
}

/* Use every descriptor the hard limit allows; the loops are sized to match. */
static int server_fd_limit(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 1024;
        if (rl.rlim_cur < rl.rlim_max) {
                struct rlimit want = { rl.rlim_max, rl.rlim_max };
                if (want.rlim_cur > SERVER_SETSIZE_MAX)
                        want.rlim_cur = SERVER_SETSIZE_MAX;
                if (setrlimit(RLIMIT_NOFILE, &want) == 0)
                        rl.rlim_cur = want.rlim_cur;
        }
        return rl.rlim_cur > SERVER_SETSIZE_MAX ? SERVER_SETSIZE_MAX : (int) rl.rlim_cur;
}

static void server_on_wake(struct ev_loop *loop, int fd, void *data, int mask)
{
        uint64_t n;

        if (read(fd, &n, sizeof(n)) < 0) {
                /* nothing to read: an earlier wakeup took it */
        }
        /* what woke us (a worker exited) is looked at in server_tick() */
}

/* The main thread's loop: signals and wake-ups from workers; a handful of
 * descriptors, so poll(2) whatever backend the workers use. */
static int server_setup_loop(struct server *s, int setsize)
{
        int r = ev_loop_new(ev_backend_find("poll"), setsize, &s->loop);

        if (r < 0)
                return r;
        s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wake_fd < 0)
                return -errno;
        r = ev_add(s->loop, s->wake_fd, EV_READABLE, server_on_wake, s);
        if (r < 0)
                return r;
        /* log lines a worker could not write wake this loop, which writes them */
        log_set_backlog_hook(server_wake_hook, s);
        return server_setup_signals(s);
}

/* The control socket: the configured path, else the compiled-in default. A
 * configured one that cannot be opened stops the start; the default only
 * says so (muxd run by hand, or not as root, may have no /run/muxd). */
static int server_open_control(struct server *s)
{
        const char *path = s->cfg->control_socket ? s->cfg->control_socket : CONTROL_SOCKET_DEFAULT;
        /* the previous image's socket (a live upgrade), if it listens on path */
        int fd = server_upgrade_control_fd(path), r;
        char *error = NULL;

        if (!path[0])
                return 0;       /* control_socket = "" */
        r = control_open_fd(s, path, fd, &s->control, &error);
        if (r >= 0) {
                free(error);
                return 0;
        }
        if (s->cfg->control_socket)
                log_err("%s: control_socket: %s", s->cfg->path, error ? error : errno_text(-r));
        else
                log_full(r == -ENOENT || r == -EACCES ? LOG_LEVEL_NOTICE : LOG_LEVEL_WARNING, NULL,
                         "running without a control socket: %s (set control_socket in %s, "
                         "\"\" to turn it off)", error ? error : errno_text(-r), s->cfg->path);
        free(error);
        return s->cfg->control_socket ? r : 0;
}

int server_new(struct config *cfg, struct server **ret)
{
        pthread_condattr_t cattr;
        struct metrics *metrics = NULL;
        struct server *s;
        char *error = NULL;
        int setsize, r;

        s = calloc(1, sizeof(*s));
        if (!s) {
                config_free(cfg);
                return -ENOMEM;
        }
        s->cfg = cfg;
        s->signal_fd = -1;
        s->wake_fd = -1;
        pthread_mutex_init(&s->listeners_lock, NULL);
        pthread_condattr_init(&cattr);
        pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
        pthread_cond_init(&s->synced_cond, &cattr);
        pthread_condattr_destroy(&cattr);
        pthread_mutex_init(&s->sources_lock, NULL);
        s->backend = ev_backend_find(cfg->backend);
        s->cfg_loaded = time(NULL);
        s->start_ms = s->now_ms = monotonic_ms();
        s->start_time_s = (uint64_t) time(NULL);
        server_publish_settings(s);

        setsize = server_fd_limit();
        /* signals are blocked before any worker thread exists, so that
         * every thread inherits the mask and only the signalfd sees them */
        r = server_setup_loop(s, setsize);
        if (r < 0) {
                log_err("cannot set up the main loop and signal handling: %s", errno_text(-r));
                goto fail;
        }
        s->workers = calloc(cfg->workers, sizeof(*s->workers));
        if (!s->workers || stats_new(cfg->workers, &s->stats) < 0) {
                r = -ENOMEM;
                log_err("out of memory");
                goto fail;
        }
        for (unsigned i = 0; i < cfg->workers; i++) {
                r = worker_new(s, i, setsize, &s->workers[i]);
                if (r < 0) {
                        log_err("cannot start the \"%s\" event loop: %s", cfg->backend, errno_text(-r));
                        goto fail;
                }
                s->n_workers++;
        }
        if ((uint64_t) cfg->max_connections + cfg->n_listeners + CONFIG_RESERVED_FDS > (uint64_t) setsize)
                log_warning("max_connections (%u) is more than the %d descriptors available; "
                            "accepting pauses when they run out", cfg->max_connections, setsize);

        /* preserve_connections: the fd store, and the connections a crashed
         * process left there (a reload may turn preserving on later) */
        r = systemd_fdstore_open(&s->fdstore);
        if (r < 0)
                log_warning("NOTIFY_SOCKET is unusable for the fd store: %s", errno_text(-r));
        r = server_adopt_passed(s);
        if (r < 0)
                goto fail;
        /* a live upgrade: the previous image's listeners first, so that the
         * configuration's entries take them as a reload would */
        if (server_upgrade_child())
                r = server_upgrade_adopt(s, &error);
        if (r >= 0)
                r = server_apply_listeners(s, cfg, true, &error);
        if (r >= 0 && !server_upgrade_child() && s->n_fdstore_conns > 0 && server_fdstore_distribute(s) < 0) {
                r = -ENOMEM;
                error = strdup("out of memory");
        }
        if (r >= 0 && server_upgrade_child() && server_upgrade_distribute(s) < 0) {
                r = -ENOMEM;
                error = strdup("out of memory");
        }
        if (r >= 0)
                r = server_metrics_prepare(s, cfg, &metrics, &error);
        if (r < 0) {
                log_err("%s", error ? error : errno_text(-r));
                server_upgrade_refuse("%s", error ? error : errno_text(-r));
                free(error);
                goto fail;
        }
        server_metrics_commit(s, metrics);
        r = server_open_control(s);
        if (r < 0) {
                server_upgrade_refuse("cannot open the control socket: %s", errno_text(-r));
                goto fail;
        }
        r = notify_open(&s->notify);
        if (r < 0)
                log_warning("NOTIFY_SOCKET is unusable: %s", errno_text(-r));
        s->watchdog_interval_ms = systemd_watchdog_usec() / 2000u;
        *ret = s;
        return 0;
fail:
        server_free(s);
        return r;
}

/* Say once that the service manager cannot be told anything. */
static void server_check_notify(struct server *s)
{
        int r = notify_take_error(s->notify);

        if (r < 0)
                log_warning("cannot notify the service manager (NOTIFY_SOCKET=%s): %s; "
                            "no more notifications will be sent", getenv("NOTIFY_SOCKET"),
                            errno_text(-r));
}

static void server_bound_wait(int *wait, int t)
{
        if (t >= 0 && (*wait < 0 || t < *wait))
                *wait = t;
}

/* How long the main thread's loop may sleep for the server's own sake. */
static int server_main_wait(struct server *s)
{
        uint64_t now = server_now(s);
        bool notifying;
        int wait = -1;

        server_check_notify(s);         /* a send since the last pass may have failed for good */
        notifying = s->notify && !notify_disabled(s->notify);

        if (server_retired_pending(s))
                server_bound_wait(&wait, SERVER_RETIRE_POLL_MS);
        if (log_pending())
                server_bound_wait(&wait, SERVER_LOG_RETRY_MS);
        server_bound_wait(&wait, control_next_timeout(s->control, now));
        if (s->metrics)
                server_bound_wait(&wait, metrics_next_timeout(s->metrics, now));
        if (!notifying)
                return wait;    /* nothing to send any more: no reason to wake for it */
        if (s->watchdog_interval_ms)
                server_bound_wait(&wait, s->watchdog_next_ms > now ? (int) (s->watchdog_next_ms - now) : 0);
        if (notify_pending(s->notify))
                server_bound_wait(&wait, SERVER_NOTIFY_RETRY_MS);
        server_bound_wait(&wait, server_update_status(s, false));
        /* the workers' clients do not wake this loop: look at them each second */
        server_bound_wait(&wait, SERVER_STATUS_MS);
        return wait;
}

static void server_tick(struct server *s)
{
        uint64_t now = server_now(s);

        if (atomic_load(&s->worker_failed) && !s->stopping)
                server_stop(s, "a worker failed");      /* exits with status 1 */
        if (s->watchdog_interval_ms && now >= s->watchdog_next_ms) {
                notify_try(s->notify, "WATCHDOG=1");
                s->watchdog_next_ms = now + s->watchdog_interval_ms;
        }
        notify_flush(s->notify);
        server_check_notify(s);
        server_free_retired(s, false);
        control_tick(s->control, now);  /* queries the workers have answered */
        (void) log_flush();     /* lines the journal or stderr could not take at once */
        if (s->metrics)
                metrics_tick(s->metrics, now);
        /* listeners gone for good, and their last connection too: their
         * counts go to the totals (kept while stopping, to be shown draining) */
        if (!s->stopping)
                stats_collect(s->stats);
}

static int server_start_workers(struct server *s)
{
        for (unsigned i = 0; i < s->n_workers; i++) {
                int r;

                atomic_fetch_add(&s->workers_running, 1);
                r = worker_start(s->workers[i]);
                if (r < 0) {
                        atomic_fetch_sub(&s->workers_running, 1);
                        log_err("cannot start worker thread %u: %s", i, errno_text(-r));
                        return r;
                }
        }
        /* each takes the listeners as it starts: READY=1 waits for that */
        if (!server_wait_synced(s))
                log_warning("a worker did not start within %u ms", SERVER_SYNC_WAIT_MS);
        return 0;
}

int server_run(struct server *s)
{
        unsigned transient = 0;
        char workers[32];
        int r;

        s->now_ms = monotonic_ms();
        if (server_start_workers(s) < 0)
                return 1;       /* server_free() stops the ones that started */
        if (server_upgrade_child()) {
                char msg[128];

                /* systemd follows the new main process (NotifyAccess=all) */
                snprintf(msg, sizeof(msg), "MAINPID=%ld\nREADY=1\nSTATUS=upgraded from %s",
                         (long) getpid(), server_upgrade_from());
                notify_state(s->notify, msg);
                (void) notify_flush(s->notify);
                log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "upgraded" },
                         "took over from muxd %s (process %ld): %zu listener%s, %zu connection%s",
                         server_upgrade_from(), (long) getppid(), s->n_listeners, s->n_listeners == 1 ? "" : "s",
                         server_upgrade_n_conns(s), server_upgrade_n_conns(s) == 1 ? "" : "s");
                server_upgrade_done(s);
        } else {
                notify_state(s->notify, "READY=1");
                /* connections retaken from the fd store were adopted paused,
                 * as a hand-over's are: nothing waits for a verdict here */
                for (unsigned i = 0; s->fdstore_retaken > 0 && i < s->n_workers; i++)
                        worker_request(s->workers[i], WORKER_UNPAUSE);
        }
        snprintf(workers, sizeof(workers), ", %u workers", s->n_workers);
        log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "started", .message_id = MUXD_MESSAGE_STARTED },
                 "ready: %zu listener%s, backend %s, max_connections %u%s", s->n_listeners,
                 s->n_listeners == 1 ? "" : "s", s->backend->name, s->cfg->max_connections,
                 s->n_workers > 1 ? workers : "");
        s->watchdog_next_ms = s->now_ms;
        server_update_status(s, true);

        /* until stopped and every worker has drained (or exited) */
        while (!s->stopping || atomic_load(&s->workers_running) > 0) {
                int n = ev_wait(s->loop, server_main_wait(s));

                if (n < 0) {
                        if (worker_loop_error_is_transient(-n) && ++transient < 1000u)
                                continue;
                        log_err("the main loop failed: %s; stopping muxd at once", errno_text(-n));
                        atomic_store(&s->exit_code, 1);
                        break;
                }
                transient = 0;
                s->now_ms = monotonic_ms();
                ev_dispatch(s->loop, n);
                server_tick(s);
                if (s->handed_over) {
                        /* The new image serves every listener and connection
                         * now: exit without closing, shutting down or draining
                         * any of them (nothing of server_free()). */
                        log_info("exiting: process %ld serves every client now", s->successor);
                        log_drain(1000);
                        _exit(0);
                }
        }
        r = atomic_load(&s->exit_code);
        log_info("stopped");
        return r;
}

void server_free(struct server *s)
{
        if (!s)
                return;
        control_free(s->control);
        for (unsigned i = 0; i < s->n_workers; i++)
                worker_request(s->workers[i], WORKER_EXIT);
        for (unsigned i = s->n_workers; i-- > 0; )
                worker_free(s->workers[i]);     /* joins the threads */
        free(s->workers);
        server_free_retired(s, true);
        for (struct listener *l = s->listeners, *next; l; l = next) {
                next = l->next;
                listener_free(l);
        }
        metrics_free(s->metrics);
        if (s->loop) {
                if (s->signal_fd >= 0)
                        ev_del(s->loop, s->signal_fd, EV_READABLE);
                if (s->wake_fd >= 0)
                        ev_del(s->loop, s->wake_fd, EV_READABLE);
        }
        ev_loop_free(s->loop);
        if (s->signal_fd >= 0)
                close(s->signal_fd);
        log_set_backlog_hook(NULL, NULL);
        if (s->wake_fd >= 0)
                close(s->wake_fd);
        notify_free(s->notify);
        free(s->reload_error);
        free(s->upgrade_error);
        config_errors_clear(&s->last_reload.errors);
        ban_list_unref(s->bans);
        source_table_free(&s->sources);
        pthread_mutex_destroy(&s->listeners_lock);
        pthread_cond_destroy(&s->synced_cond);
        pthread_mutex_destroy(&s->sources_lock);
        server_upgrade_free(s);         /* after the workers, which adopted from it */
        server_fdstore_free(s);         /* the same */
        stats_free(s->stats);           /* after everything that referenced the counters */
        config_free(s->cfg);
        free(s);
}
