/* SPDX-License-Identifier: MIT */
/* Logging for the daemon's top-level modules (server, conn, listener, main).
 * Library-like modules (config, buffers, event backends) never log. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include "config.h"

enum log_target { LOG_TARGET_AUTO, LOG_TARGET_JOURNAL, LOG_TARGET_STDERR };

/* auto: the journal when stderr is connected to it, else plain stderr lines.
 * Either is written without blocking (see log.c). */
void log_setup(enum log_target target);
/* Log to the journal socket at path (log_setup() uses journald's own).
 * 0 or -errno. */
int log_open_journal(const char *path);
bool log_to_journal(void);
/* Lines that could not be written at once wait in a queue of at most this
 * many bytes; beyond, they are dropped and counted. */
#define LOG_QUEUE_MAX_BYTES     (256u * 1024u)
/* Write what waits (the main loop calls it each pass): true while some is
 * left, or a drop is still to be reported. */
bool log_flush(void);
bool log_pending(void);
/* Called (from any thread) when lines start to wait: whoever calls
 * log_flush() should do it soon. NULL: nobody. */
void log_set_backlog_hook(void (*fn)(void *ctx), void *ctx);
/* At exit: try to write what waits for at most timeout_ms. */
void log_drain(unsigned timeout_ms);
/* Log lines dropped since start (statistics). */
uint64_t log_dropped_total(void);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Optional structured fields (journald); NULL when not applicable. */
struct log_fields {
        const char *event;      /* MUXD_EVENT */
        const char *listen;     /* MUXD_LISTEN */
        const char *peer;       /* MUXD_PEER: the client (behind a load balancer, the
                                 * one its PROXY header names) */
        const char *proxy;      /* MUXD_PROXY: the load balancer it came through */
        const char *message_id; /* MESSAGE_ID */
};

void log_full(enum log_level level, const struct log_fields *f, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define log_event(level, ev, ...) \
        log_full(level, &(const struct log_fields) { .event = (ev) }, __VA_ARGS__)

/* MESSAGE_IDs of the lifecycle events (journalctl MESSAGE_ID=...). */
#define MUXD_MESSAGE_STARTED       "77c0d19eaa9a4c8ea30b9d1a8fbff292"
#define MUXD_MESSAGE_RELOADED      "d887a7bd349c48a3b964f9806df6247e"
#define MUXD_MESSAGE_RELOAD_FAILED "ed663aa86d2d448b82d142807db83afe"
#define MUXD_MESSAGE_STOPPING      "db2e91152f82459f84dacefd06617bf9"

#define log_err(...)     log_full(LOG_LEVEL_ERR, NULL, __VA_ARGS__)
#define log_warning(...) log_full(LOG_LEVEL_WARNING, NULL, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_LEVEL_NOTICE, NULL, __VA_ARGS__)
#define log_info(...)    log_full(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_debug(...)   do { if (log_enabled(LOG_LEVEL_DEBUG)) \
                                log_full(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__); } while (0)

/* At most burst messages per interval from one call site; tells how many
 * were suppressed when it lets one through again. */
struct log_ratelimit {
        uint64_t begin_ms;
        unsigned count;
        unsigned suppressed;
};
#define LOG_RATELIMIT_INTERVAL_MS 10000u
#define LOG_RATELIMIT_BURST       5u
/* Returns true if a message may be logged now; *suppressed gets how many were dropped before it. */
bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms, unsigned *suppressed);
