/* SPDX-License-Identifier: MIT */
/* Per-listener statistics: the counters, a snapshot of them and its
 * renderings (text, JSON, Prometheus). Library-like: never logs.
 *
 * Counters are exact and cost no lock on the message path. Each listener
 * has one counters object (struct stats_listener) with a block per worker:
 * a block is written only by its worker (a relaxed load and store, no locked
 * add) and read by the main thread, which sums the blocks. Blocks are
 * cache-line aligned, so that workers never share a line.
 *
 * Lifetime: the object is referenced by its listener and by every
 * generation of the listener's settings (struct listener_settings), which
 * every connection already holds; so a connection that outlives its
 * listener's removal still counts into live memory, and struct conn needs
 * no pointer of its own. The registry (struct stats, the main thread's)
 * keeps every object until nothing else references it, then folds its
 * counts into the "removed listeners" totals and frees it: muxd-wide totals
 * never go backwards when a listener goes. A reload that keeps a listener
 * (same socket) keeps its object, and so its counts. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "config.h"
#include "util.h"

/* Why a connection was refused (never admitted). */
enum stats_refused {
        STATS_REFUSED_ACCESS,           /* allow / deny */
        STATS_REFUSED_MAX_PER_SOURCE,
        STATS_REFUSED_MAX_CONNECTIONS,  /* always 0: muxd pauses accepting instead (see pauses) */
        STATS_REFUSED_DESCRIPTORS,      /* accepted, then closed at once: its descriptor is beyond
                                         * what the backend can watch, or memory ran out */
        STATS_REFUSED_RATE,             /* max_rate_per_source: no token in the bucket */
        STATS_REFUSED_SOURCES_FULL,     /* a new source, and max_sources entries all with
                                         * connections (source.h) */
        STATS_REFUSED_PROXY_FROM,       /* proxy_protocol on: the peer is not in proxy_from */
        STATS_REFUSED_PROXY_HEADER,     /* no valid PROXY header: malformed, of the wrong
                                         * version, not complete within proxy_timeout, or
                                         * the connection ended (or muxd stopped) first */
        STATS_REFUSED_N,
};

/* Why an admitted connection was closed: the first cause wins. */
enum stats_closed {
        STATS_CLOSED_CLIENT,            /* the client closed or reset it */
        STATS_CLOSED_IDLE,              /* idle timeout */
        STATS_CLOSED_MAX_MESSAGE,       /* a message longer than max_message */
        STATS_CLOSED_ERROR,             /* an I/O error, out of memory */
        STATS_CLOSED_RELOAD,            /* always 0: a reload never closes a connection */
        STATS_CLOSED_SHUTDOWN,          /* drained or closed on stop */
        STATS_CLOSED_ONESHOT,           /* mode "oneshot": closed after its one message */
        STATS_CLOSED_N,
};

/* Why a worker stopped accepting (clients wait in the kernel's backlog). */
enum stats_pause {
        STATS_PAUSE_MAX_CONNECTIONS,
        STATS_PAUSE_DESCRIPTORS,        /* EMFILE, ENFILE, ENOBUFS, ENOMEM on accept */
        STATS_PAUSE_N,
};

/* Histogram buckets (upper bounds; one more bucket counts the rest, +Inf). */
#define STATS_MESSAGE_BUCKETS    16     /* message service time, nanoseconds */
#define STATS_CONNECTION_BUCKETS 12     /* connection lifetime, milliseconds */

extern const char *const stats_refused_names[STATS_REFUSED_N];
extern const char *const stats_closed_names[STATS_CLOSED_N];
extern const char *const stats_pause_names[STATS_PAUSE_N];

/* One worker's counts for one listener. */
struct stats_block {
        _Atomic uint64_t accepted;
        _Atomic uint64_t closed[STATS_CLOSED_N];
        _Atomic uint64_t refused[STATS_REFUSED_N];
        _Atomic uint64_t pauses[STATS_PAUSE_N];
        _Atomic uint64_t messages;
        _Atomic uint64_t bytes_in;
        _Atomic uint64_t bytes_out;     /* greetings included */
        _Atomic uint64_t queued;        /* a gauge: reply bytes waiting in muxd's buffers */
        _Atomic uint64_t message_hist[STATS_MESSAGE_BUCKETS + 1];
        _Atomic uint64_t message_ns;    /* the histogram's sum */
        _Atomic uint64_t conn_hist[STATS_CONNECTION_BUCKETS + 1];
        _Atomic uint64_t conn_ms;       /* the histogram's sum */
} __attribute__((aligned(64)));

/* A listener's counters. label and shown are the main thread's. */
struct stats_listener {
        _Atomic unsigned refs;          /* holders besides the registry */
        unsigned n_blocks;              /* one per worker */
        struct stats_listener *prev, *next;     /* the registry's list */
        bool shown;                     /* in snapshots (a current listener, or one draining on stop) */
        char label[CONFIG_NAME_MAX + 1];        /* the entry's name, else ADDRESS:PORT */
        char address[SOCKADDR_STR_MAX];
        struct stats_block blocks[];
};

/* The sums, plain numbers. */
struct stats_counts {
        uint64_t accepted, clients;
        uint64_t closed[STATS_CLOSED_N];
        uint64_t refused[STATS_REFUSED_N];
        uint64_t pauses[STATS_PAUSE_N];
        uint64_t messages, bytes_in, bytes_out, queued;
        uint64_t message_hist[STATS_MESSAGE_BUCKETS + 1];      /* per bucket, not cumulative */
        uint64_t message_ns;
        uint64_t conn_hist[STATS_CONNECTION_BUCKETS + 1];
        uint64_t conn_ms;
};

struct stats {
        unsigned n_workers;
        struct stats_listener *first, *last;   /* every object, in listener order */
        struct stats_counts removed;    /* what the objects freed had counted */
};


/* Updates, by the worker that owns the block: a relaxed load and store (the
 * block has one writer), so no locked instruction. */
#define STATS_ADD(b, field, n) \
        atomic_store_explicit(&(b)->field, \
                              atomic_load_explicit(&(b)->field, memory_order_relaxed) + (uint64_t) (n), \
                              memory_order_relaxed)
#define STATS_SUB(b, field, n) \
        atomic_store_explicit(&(b)->field, \
                              atomic_load_explicit(&(b)->field, memory_order_relaxed) - (uint64_t) (n), \
                              memory_order_relaxed)

static inline struct stats_block *stats_block(struct stats_listener *l, unsigned worker)
{
        return &l->blocks[worker];
}

/* The registry (main thread). */
int stats_new(unsigned n_workers, struct stats **ret);
/* Frees every object: call once nothing references them any more. Accepts NULL. */
void stats_free(struct stats *st);
/* A new counters object, at the end of the list, with one reference for the caller. */
int stats_listener_new(struct stats *st, struct stats_listener **ret);
/* Any thread. Dropping the last reference frees nothing: stats_collect() does. */
struct stats_listener *stats_listener_ref(struct stats_listener *l);
void stats_listener_unref(struct stats_listener *l);    /* accepts NULL */
/* Put l after prev in the list (prev NULL: first), to keep listener order. */
void stats_listener_move(struct stats *st, struct stats_listener *l, struct stats_listener *prev);
/* Fold the objects nothing references into the removed totals, free them. */
void stats_collect(struct stats *st);

/* Worker side: the events that take more than one counter. */
/* A connection admitted / closed after lifetime_ms. Closing is a release
 * store, so that a reader that sees a close also sees its accept (clients
 * = accepted - closed never goes below 0). */
void stats_closed(struct stats_block *b, enum stats_closed why, uint64_t lifetime_ms);
/* n messages whose replies were built elapsed_ns after their bytes were read. */
void stats_messages(struct stats_block *b, uint64_t n, uint64_t elapsed_ns);

/* Reading (any thread; the main thread in muxd). */
void stats_listener_read(const struct stats_listener *l, struct stats_counts *add);
void stats_counts_add(struct stats_counts *dst, const struct stats_counts *src);
/* Every object's counts plus the removed ones': muxd-wide totals. */
void stats_total(const struct stats *st, struct stats_counts *ret);

/* What the main thread shows: stats_snapshot() fills it from the server. */
struct stats_listener_snapshot {
        char *label;
        char *address;
        struct stats_counts c;
};

struct stats_snapshot {
        const char *version;
        const char *backend;
        unsigned workers;
        uint32_t max_connections;
        uint64_t clients;               /* every connection open, on any listener */
        uint64_t start_time_s;          /* CLOCK_REALTIME, seconds */
        uint64_t uptime_ms;
        uint64_t log_dropped;           /* log lines dropped since start (log.c) */
        uint32_t sources;               /* entries of the per-source table now */
        uint32_t max_sources;
        uint64_t sources_evicted;       /* entries freed with rate state to make room */
        /* preserve_connections: connections put in systemd's fd store, those
         * it could not take (served, not preserved), removals that could not
         * be sent, and those retaken at start after a crash (each may have
         * lost what the crashed process held: unfinished input, unsent output) */
        uint64_t fdstore_stored, fdstore_unpreserved, fdstore_remove_failed, fdstore_retaken;
        bool stopping;
        bool reloaded;                  /* a reload happened: the next three say how it went */
        bool reload_ok;
        uint64_t reload_time_s;         /* CLOCK_REALTIME, seconds */
        char *reload_error;             /* NULL, or the first error of the last failed reload */
        struct stats_listener_snapshot *listeners;
        size_t n_listeners;
        struct stats_counts total;      /* every listener, removed ones included */
};

struct server;
/* Main thread. Returns 0 or -ENOMEM. */
int stats_snapshot(struct server *s, struct stats_snapshot *ret);
void stats_snapshot_free(struct stats_snapshot *snap);

/* Renderings, appended to out; 0 or -ENOMEM. */
/* One block per listener and one for the total, for people. */
int stats_render_text(const struct stats_snapshot *snap, struct buffer *out);
/* One JSON object (see muxd(8)), with a final newline. */
int stats_render_json(const struct stats_snapshot *snap, struct buffer *out);
/* Prometheus text exposition format 0.0.4. */
#define STATS_PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
int stats_render_prometheus(const struct stats_snapshot *snap, struct buffer *out);
