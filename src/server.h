/* SPDX-License-Identifier: MIT */
/* The server: configuration, listeners, workers, signals, reload and the
 * conversation with systemd. It runs in the main thread, in an event loop of
 * its own; the workers serve clients in theirs (worker.h). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ban.h"
#include "config.h"
#include "event.h"
#include "listener.h"
#include "log.h"
#include "source.h"
#include "stats.h"
#include "worker.h"

struct metrics;
struct notifier;
struct control;
struct handover_state;
struct handover_conn;
struct fdstore;

/* The outcome of the last reload (SIGHUP or the control socket). */
struct server_reload_result {
        bool done;                      /* false: no reload yet */
        bool ok;
        time_t when;                    /* wall clock */
        struct config_errors errors;    /* every "FILE:LINE: message" of a failed one */
};

/* STATUS= shows accepted/s and refused/s over the last minute: the totals
 * sampled at most once a second, kept a bit more than a minute. */
#define SERVER_RATE_SAMPLES 64u

struct server_rate_sample {
        uint64_t ms, accepted, refused;
};

struct server {
        struct config *cfg;
        const struct ev_backend *backend;       /* the workers' (a change waits for a restart) */
        struct notifier *notify;
        struct ev_loop *loop;           /* the main thread's: signals, wake-ups, timers */
        int signal_fd;
        int wake_fd;                    /* eventfd: a worker exited */
        uint64_t now_ms;                /* the main loop's time, read once per wakeup */

        /* Listeners: changed by the main thread only, under listeners_lock;
         * workers copy the list when listeners_gen moves. */
        pthread_mutex_t listeners_lock;
        pthread_cond_t synced_cond;     /* a worker took a new listener list */
        struct listener *listeners;
        size_t n_listeners;
        uint64_t listeners_gen;
        struct listener *retired;       /* closed once every worker has synced past retired_gen */
        uint64_t retired_gen;
        /* runtime bans (ban.h), handed to the workers with the listener
         * list, under listeners_lock; NULL: none */
        struct ban_list *bans;

        struct worker **workers;
        unsigned n_workers;
        _Atomic unsigned workers_running;       /* threads not yet finished */

        /* shared with the workers */
        _Atomic uint32_t max_connections;
        _Atomic uint32_t timeout_s;
        _Atomic uint32_t shutdown_timeout_s;
        _Atomic uint32_t n_conns_total;
        /* preserve_connections (server-fdstore.c): the fd store, NULL
         * without NOTIFY_SOCKET; whether new connections go there */
        struct fdstore *fdstore;
        _Atomic bool preserve;
        _Atomic bool fdstore_warned;            /* a failure was logged once */
        _Atomic uint64_t fdstore_stored, fdstore_unpreserved, fdstore_remove_failed;
        uint64_t fdstore_retaken;               /* at start, after a crash */
        struct handover_conn *fdstore_conns;    /* those retaken, till the workers adopted them */
        size_t n_fdstore_conns;
        /* Some worker stopped accepting at max_connections. The pause and
         * resume handshake (worker.c) needs sequentially consistent
         * operations on this and n_conns_total: see worker_on_accept(). */
        _Atomic bool accept_paused_any;
        _Atomic int exit_code;
        _Atomic bool worker_failed;     /* a worker's loop failed: stop (server_tick) */

        pthread_mutex_t sources_lock;
        struct source_table sources;    /* per-source limits' state */

        struct stats *stats;            /* every listener's counters (stats.h) */
        struct metrics *metrics;        /* the Prometheus endpoint, NULL when off */
        uint64_t start_ms;              /* monotonic */
        uint64_t start_time_s;          /* realtime, seconds */
        uint64_t reload_time_s;         /* realtime of the last reload (good or not), 0: none */
        struct server_rate_sample rates[SERVER_RATE_SAMPLES];
        unsigned n_rates;               /* samples taken (the next goes to n_rates % SERVER_RATE_SAMPLES) */
        struct log_ratelimit rl_metrics;

        /* sd_notify STATUS=: sent at most once a second, when it changed */
        char *reload_error;             /* first error of the last failed reload */
        uint64_t status_checked_ms;     /* when the STATUS= text was last looked at */
        char status_sent[256];
        uint64_t watchdog_interval_ms;  /* 0: no watchdog */
        uint64_t watchdog_next_ms;

        /* what the control socket shows */
        struct control *control;        /* NULL: no control socket */
        time_t cfg_loaded;              /* when s->cfg was read */
        struct server_reload_result last_reload;

        bool stopping;

        /* live upgrade (server-upgrade.c) */
        char *upgrade_error;            /* why the last one failed (STATUS=), NULL: none */
        bool handed_over;               /* the new image took over: exit (server_run) */
        long successor;                 /* its pid */
        size_t upgrade_state_bytes;
        struct handover_state *ho_state;        /* what the previous image handed over */
        struct listener **ho_listeners;         /* its listeners, adopted (NULL: none left) */
};

/* Takes ownership of cfg. Adopts the sockets systemd passed, opens the other
 * listeners, sets up signals and workers. Returns 0 or -errno (already logged). */
int server_new(struct config *cfg, struct server **ret);
/* Run until stopped; returns the process exit status. */
int server_run(struct server *s);
void server_free(struct server *s);             /* accepts NULL */
/* Reload the configuration file (SIGHUP, the control socket): all or
 * nothing. Returns 0 or -errno; s->last_reload says why. */
int server_reload(struct server *s);
/* What a reload would say about the file, changing nothing (the control
 * socket's check): 0, or -errno with every error appended to errs. */
int server_check(struct server *s, struct config_errors *errs);
/* Stop (on) or start again (off) accepting on l, for every worker; returns
 * once each has taken the change (or SERVER_SYNC_WAIT_MS passed: false). */
bool server_set_draining(struct server *s, struct listener *l, bool on);
/* Replace the runtime bans (the server takes bans; NULL: none); returns once
 * each worker has taken them, as above. */
bool server_set_bans(struct server *s, struct ban_list *bans);
/* Wake the main loop (any thread): a worker answered a query. */
void server_wake(struct server *s);

/* Live upgrade (server-upgrade.c, muxd(8) UPGRADING). main.c, first:
 * remember how muxd was started (argv; the binary's absolute path) and the
 * hand-over a previous image started this one with (--handover=...; NULL:
 * none). 0, or -EINVAL for a bad --handover, -ENOMEM. */
int server_upgrade_setup(int argc, char **argv, const char *handover);
/* Was this image started by a live upgrade (and has not answered yet)? */
bool server_upgrade_child(void);
/* This image refuses the hand-over: tell the previous one, which goes on
 * serving (once; later calls and a normal start do nothing). */
void server_upgrade_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* SIGUSR2, muxctl upgrade: hand everything to a new image of the binary on
 * disk. 0: it took over (this process exits at the end of the loop's pass);
 * -errno with *why (to free) if it did not: everything is served as before. */
int server_upgrade(struct server *s, char **why);

/* What workers call. */
/* Its loop ended (status 0, or 1 if it failed): the main loop looks. */
void server_worker_exited(struct server *s, struct worker *w, int status);
/* There is room below max_connections again: wake the workers (but w) that
 * paused accepting there. */
void server_resume_accepting(struct server *s, const struct worker *w);
/* Per-source limits (source.h), shared by all workers: admit a client of
 * the listener whose serial is owner from sa under its settings o. Returns
 * 0 and *ret (a hold to give back with server_source_release()), a positive
 * enum source_refusal, or -ENOMEM; *evicted: how many idle sources lost
 * their rate state to make room. Takes the client's address, so that it
 * applies to whichever address is the client's (the peer's, or one a PROXY
 * header gave, when the listener may be gone: hence the serial). */
int server_source_hold(struct server *s, uint64_t owner, const struct listener_opts *o,
                       const struct sockaddr *sa, uint64_t now_ms, struct source **ret,
                       unsigned *evicted);
/* accepts NULL (a connection still waiting for its PROXY header holds none) */
void server_source_release(struct server *s, struct source *src, uint64_t now_ms);

/* preserve_connections (server-fdstore.c), from w's thread (or before the
 * workers start), never blocking: store fd in systemd's fd store (or queue
 * it); its id (its socket's inode, for the removal), or 0 when it is not
 * preserved (off, no NOTIFY_SOCKET, or the store refused: counted). */
uint64_t server_fdstore_add(struct worker *w, int fd);
/* The id of fd stored already (by the image that handed it over). */
uint64_t server_fdstore_id(int fd);
/* Remove the connection id from the store (or cancel its queued store), then
 * shut fd down, so that its client sees the end when fd is closed although
 * systemd may still hold a copy (a removal that could not be sent). */
void server_fdstore_remove(struct worker *w, int fd, uint64_t id);
/* Send what w's queue holds, in order, until the socket is full again;
 * true if some is still waiting. */
bool server_fdstore_flush(struct worker *w);
/* Free w's queue (what it still holds is not sent: the process exits). */
void server_fdstore_queue_free(struct worker *w);
