/* SPDX-License-Identifier: MIT */
/* The server: one event loop, its listeners and connections, signals,
 * accept pausing, idle timeouts and the shutdown drain. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "listener.h"
#include "source.h"
#include "timer.h"

struct server_stats {
        uint64_t accepted;
        uint64_t refused;       /* by allow/deny */
        uint64_t closed;
        uint64_t messages;
        uint64_t timeouts;
        uint64_t oversized;
        uint64_t bytes_in;
        uint64_t bytes_out;
};

struct notifier;

struct server {
        struct config *cfg;
        struct ev_loop *loop;
        struct notifier *notify;
        struct listener *listeners;
        size_t n_listeners;
        struct idle_queue conns;        /* every connection, least recently active first */
        struct idle_queue lingering;    /* half-closed ones, oldest first (see conn_finish) */
        uint32_t n_conns;
        struct source_table sources;    /* connections per client address */
        uint64_t now_ms;                /* loop time, updated once per wakeup */

        /* accepting is paused at max_connections and on descriptor exhaustion */
        bool accept_paused;
        uint64_t accept_retry_ms;       /* 0: resume only when a client leaves */

        /* scratch space shared by all connections: nothing allocated per message */
        char *rbuf;
        size_t rbuf_size;
        char *wbuf;
        size_t wbuf_cap;

        int signal_fd;

        /* sd_notify STATUS=: sent at most once a second, when it changed */
        char *reload_error;             /* first error of the last failed reload */
        uint64_t status_sent_ms;
        char status_sent[256];
        uint64_t watchdog_interval_ms;  /* 0: no watchdog */
        uint64_t watchdog_next_ms;

        bool stopping;
        uint64_t stop_deadline_ms;
        bool exit_now;
        int exit_code;

        struct server_stats stats;
};

/* Takes ownership of cfg. Adopts the sockets systemd passed, opens the other
 * listeners, sets up signals. Returns 0 or -errno (already logged). */
int server_new(struct config *cfg, struct server **ret);
/* Reload the configuration file (SIGHUP): all or nothing. */
void server_reload(struct server *s);
/* Run until stopped; returns the process exit status. */
int server_run(struct server *s);
void server_free(struct server *s);             /* accepts NULL */

/* Connections call these. */
void server_conn_closed(struct server *s);
int server_grow_wbuf(struct server *s, size_t need);
