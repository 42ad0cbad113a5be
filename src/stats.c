/* SPDX-License-Identifier: MIT */
/* Per-listener counters, their snapshot and renderings: see stats.h. */
#include <errno.h>
#include <inttypes.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "log.h"
#include "stats.h"

const char *const stats_refused_names[STATS_REFUSED_N] = {
        [STATS_REFUSED_ACCESS] = "access",
        [STATS_REFUSED_MAX_PER_SOURCE] = "max_per_source",
        [STATS_REFUSED_MAX_CONNECTIONS] = "max_connections",
        [STATS_REFUSED_DESCRIPTORS] = "descriptors",
        [STATS_REFUSED_RATE] = "rate",
        [STATS_REFUSED_SOURCES_FULL] = "sources_full",
        [STATS_REFUSED_PROXY_FROM] = "proxy_from",
        [STATS_REFUSED_PROXY_HEADER] = "proxy_header",
};

const char *const stats_closed_names[STATS_CLOSED_N] = {
        [STATS_CLOSED_CLIENT] = "client",
        [STATS_CLOSED_IDLE] = "idle",
        [STATS_CLOSED_MAX_MESSAGE] = "max_message",
        [STATS_CLOSED_ERROR] = "error",
        [STATS_CLOSED_RELOAD] = "reload",
        [STATS_CLOSED_SHUTDOWN] = "shutdown",
        [STATS_CLOSED_ONESHOT] = "oneshot",
};

const char *const stats_pause_names[STATS_PAUSE_N] = {
        [STATS_PAUSE_MAX_CONNECTIONS] = "max_connections",
        [STATS_PAUSE_DESCRIPTORS] = "descriptors",
};

/* Upper bounds of the buckets, and the same as Prometheus "le" labels.
 * Message service time: from 5 us (a reply built in the pass that read its
 * message) to 1 s (a worker stalled). */
static const uint64_t message_bounds_ns[STATS_MESSAGE_BUCKETS] = {
        5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
        5000000, 10000000, 25000000, 50000000, 100000000, 250000000, 1000000000,
};
static const char *const message_le[STATS_MESSAGE_BUCKETS + 1] = {
        "0.000005", "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1", "+Inf",
};
/* Connection lifetime: from 1 ms (refused by the protocol, a oneshot) to a week. */
static const uint64_t conn_bounds_ms[STATS_CONNECTION_BUCKETS] = {
        1, 10, 100, 1000, 10000, 60000, 300000, 1800000, 3600000, 21600000, 86400000, 604800000,
};
static const char *const conn_le[STATS_CONNECTION_BUCKETS + 1] = {
        "0.001", "0.01", "0.1", "1", "10", "60", "300", "1800", "3600", "21600", "86400", "604800", "+Inf",
};

/* ---- the registry ---- */

int stats_new(unsigned n_workers, struct stats **ret)
{
        struct stats *st = calloc(1, sizeof(*st));

        if (!st)
                return -ENOMEM;
        st->n_workers = n_workers ? n_workers : 1;
        *ret = st;
        return 0;
}

static void stats_unlink(struct stats *st, struct stats_listener *l)
{
        if (l->prev)
                l->prev->next = l->next;
        else
                st->first = l->next;
        if (l->next)
                l->next->prev = l->prev;
        else
                st->last = l->prev;
        l->prev = l->next = NULL;
}

void stats_free(struct stats *st)
{
        if (!st)
                return;
        while (st->first) {
                struct stats_listener *l = st->first;

                stats_unlink(st, l);
                free(l);
        }
        free(st);
}

int stats_listener_new(struct stats *st, struct stats_listener **ret)
{
        size_t size = sizeof(struct stats_listener) + (size_t) st->n_workers * sizeof(struct stats_block);
        struct stats_listener *l;

        /* blocks on cache lines of their own: aligned_alloc wants a multiple */
        size = (size + 63u) & ~(size_t) 63u;
        l = aligned_alloc(64, size);
        if (!l)
                return -ENOMEM;
        memset(l, 0, size);
        l->n_blocks = st->n_workers;
        atomic_init(&l->refs, 1);
        l->prev = st->last;
        if (st->last)
                st->last->next = l;
        else
                st->first = l;
        st->last = l;
        *ret = l;
        return 0;
}

struct stats_listener *stats_listener_ref(struct stats_listener *l)
{
        atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
        return l;
}

void stats_listener_unref(struct stats_listener *l)
{
        /* release: the counts written before are there for stats_collect() */
        if (l)
                atomic_fetch_sub_explicit(&l->refs, 1, memory_order_release);
}

void stats_listener_move(struct stats *st, struct stats_listener *l, struct stats_listener *prev)
{
        struct stats_listener *next = prev ? prev->next : st->first;

        if (l == prev || l == next)
                return;         /* there already */
        stats_unlink(st, l);
        next = prev ? prev->next : st->first;
        l->prev = prev;
        l->next = next;
        if (prev)
                prev->next = l;
        else
                st->first = l;
        if (next)
                next->prev = l;
        else
                st->last = l;
}

void stats_collect(struct stats *st)
{
        struct stats_listener *l, *next;

        for (l = st->first; l; l = next) {
                next = l->next;
                /* acquire: pairs with the release of the last unref, so that
                 * every count its workers wrote is read */
                if (atomic_load_explicit(&l->refs, memory_order_acquire) != 0)
                        continue;
                /* nobody can take a new reference: it is gone from every list */
                stats_listener_read(l, &st->removed);
                st->removed.clients = 0;
                stats_unlink(st, l);
                free(l);
        }
}

/* ---- the workers' side ---- */

void stats_closed(struct stats_block *b, enum stats_closed why, uint64_t lifetime_ms)
{
        size_t i = 0;

        while (i < STATS_CONNECTION_BUCKETS && lifetime_ms > conn_bounds_ms[i])
                i++;
        STATS_ADD(b, conn_hist[i], 1);
        STATS_ADD(b, conn_ms, lifetime_ms);
        atomic_store_explicit(&b->closed[why],
                              atomic_load_explicit(&b->closed[why], memory_order_relaxed) + 1,
                              memory_order_release);
}

void stats_messages(struct stats_block *b, uint64_t n, uint64_t elapsed_ns)
{
        size_t i = 0;

        while (i < STATS_MESSAGE_BUCKETS && elapsed_ns > message_bounds_ns[i])
                i++;
        STATS_ADD(b, messages, n);
        STATS_ADD(b, message_hist[i], n);
        STATS_ADD(b, message_ns, n * elapsed_ns);
}

/* ---- reading ---- */

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void stats_block_read(const struct stats_block *b, struct stats_counts *c)
{
        uint64_t closed = 0, accepted;

        /* closes first (acquire), then accepts: a close seen implies its
         * accept is seen, so the clients gauge never goes below 0 */
        for (size_t i = 0; i < STATS_CLOSED_N; i++) {
                uint64_t v = atomic_load_explicit(&b->closed[i], memory_order_acquire);

                c->closed[i] += v;
                closed += v;
        }
        accepted = LOAD(b->accepted);
        c->accepted += accepted;
        c->clients += accepted > closed ? accepted - closed : 0;
        for (size_t i = 0; i < STATS_REFUSED_N; i++)
                c->refused[i] += LOAD(b->refused[i]);
        for (size_t i = 0; i < STATS_PAUSE_N; i++)
                c->pauses[i] += LOAD(b->pauses[i]);
        c->messages += LOAD(b->messages);
        c->bytes_in += LOAD(b->bytes_in);
        c->bytes_out += LOAD(b->bytes_out);
        c->queued += LOAD(b->queued);
        for (size_t i = 0; i <= STATS_MESSAGE_BUCKETS; i++)
                c->message_hist[i] += LOAD(b->message_hist[i]);
        c->message_ns += LOAD(b->message_ns);
        for (size_t i = 0; i <= STATS_CONNECTION_BUCKETS; i++)
                c->conn_hist[i] += LOAD(b->conn_hist[i]);
        c->conn_ms += LOAD(b->conn_ms);
}

void stats_listener_read(const struct stats_listener *l, struct stats_counts *add)
{
        for (unsigned i = 0; i < l->n_blocks; i++)
                stats_block_read(&l->blocks[i], add);
}

void stats_counts_add(struct stats_counts *dst, const struct stats_counts *src)
{
        uint64_t *d = (uint64_t *) dst;
        const uint64_t *s = (const uint64_t *) src;

        /* every member is a uint64_t */
        for (size_t i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
                d[i] += s[i];
}

void stats_total(const struct stats *st, struct stats_counts *ret)
{
        *ret = st->removed;
        for (const struct stats_listener *l = st->first; l; l = l->next)
                stats_listener_read(l, ret);
}

/* ---- the snapshot ---- */

int stats_snapshot(struct server *s, struct stats_snapshot *ret)
{
        struct stats_snapshot snap = {
                .version = PACKAGE_VERSION,
                .backend = s->backend->name,
                .workers = s->n_workers,
                .max_connections = atomic_load(&s->max_connections),
                .clients = atomic_load(&s->n_conns_total),
                .start_time_s = s->start_time_s,
                .uptime_ms = s->now_ms - s->start_ms,
                .log_dropped = log_dropped_total(),
                .fdstore_stored = atomic_load(&s->fdstore_stored),
                .fdstore_unpreserved = atomic_load(&s->fdstore_unpreserved),
                .fdstore_remove_failed = atomic_load(&s->fdstore_remove_failed),
                .fdstore_retaken = s->fdstore_retaken,
                .stopping = s->stopping,
                .reloaded = s->reload_time_s != 0,
                .reload_ok = !s->reload_error,
                .reload_time_s = s->reload_time_s,
        };
        size_t n = 0;

        pthread_mutex_lock(&s->sources_lock);
        snap.sources = s->sources.n_sources;
        snap.max_sources = s->sources.max;
        snap.sources_evicted = s->sources.n_evicted;
        pthread_mutex_unlock(&s->sources_lock);
        if (s->reload_error && !(snap.reload_error = strdup(s->reload_error)))
                return -ENOMEM;
        for (const struct stats_listener *l = s->stats->first; l; l = l->next)
                n += l->shown;
        snap.listeners = calloc(n + 1, sizeof(*snap.listeners));
        if (!snap.listeners)
                goto nomem;
        for (const struct stats_listener *l = s->stats->first; l; l = l->next) {
                struct stats_listener_snapshot *ls = &snap.listeners[snap.n_listeners];

                if (!l->shown)
                        continue;
                snap.n_listeners++;
                ls->label = strdup(l->label);
                ls->address = strdup(l->address);
                if (!ls->label || !ls->address)
                        goto nomem;
                stats_listener_read(l, &ls->c);
        }
        stats_total(s->stats, &snap.total);
        *ret = snap;
        return 0;
nomem:
        stats_snapshot_free(&snap);
        return -ENOMEM;
}

void stats_snapshot_free(struct stats_snapshot *snap)
{
        for (size_t i = 0; snap->listeners && i < snap->n_listeners; i++) {
                free(snap->listeners[i].label);
                free(snap->listeners[i].address);
        }
        free(snap->listeners);
        free(snap->reload_error);
        *snap = (struct stats_snapshot) { 0 };
}

/* ---- rendering helpers ---- */

/* Appending fails only without memory: remember it and check once at the end. */
struct out {
        struct buffer *b;
        int error;
};

static void out_add(struct out *o, const char *p, size_t n)
{
        if (o->error == 0 && buffer_append(o->b, p, n, 0) < 0)
                o->error = -ENOMEM;
}

static void out_str(struct out *o, const char *s)
{
        out_add(o, s, strlen(s));
}

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct out *o, const char *fmt, ...)
{
        char small[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0) {
                o->error = o->error ? o->error : -EINVAL;
                return;
        }
        if ((size_t) n < sizeof(small)) {
                out_add(o, small, (size_t) n);
                return;
        }
        {
                char *big = malloc((size_t) n + 1);

                if (!big) {
                        o->error = -ENOMEM;
                        return;
                }
                va_start(ap, fmt);
                vsnprintf(big, (size_t) n + 1, fmt, ap);
                va_end(ap);
                out_add(o, big, (size_t) n);
                free(big);
        }
}

static uint64_t sum_of(const uint64_t *v, size_t n)
{
        uint64_t t = 0;

        for (size_t i = 0; i < n; i++)
                t += v[i];
        return t;
}

/* "1.000000500" from nanoseconds, exactly. */
static void out_seconds_ns(struct out *o, uint64_t ns)
{
        out_printf(o, "%llu.%09llu", (unsigned long long) (ns / 1000000000u),
                   (unsigned long long) (ns % 1000000000u));
}

static void out_seconds_ms(struct out *o, uint64_t ms)
{
        out_printf(o, "%llu.%03llu", (unsigned long long) (ms / 1000u), (unsigned long long) (ms % 1000u));
}


/* The smallest bound below which at least q (0..1) of the observations
 * fall, as a bucket index (n: +Inf); -1 if there are none. */
static int hist_quantile(const uint64_t *hist, size_t n, double q)
{
        uint64_t count = sum_of(hist, n + 1), seen = 0;

        if (count == 0)
                return -1;
        for (size_t i = 0; i <= n; i++) {
                seen += hist[i];
                if ((double) seen >= q * (double) count)
                        return (int) i;
        }
        return (int) n;
}

/* ---- text: for people ---- */

static void text_reasons(struct out *o, const char *title, const uint64_t *v,
                         const char *const *names, size_t n)
{
        out_printf(o, "  %-10s", title);
        for (size_t i = 0; i < n; i++)
                out_printf(o, "%s %s %" PRIu64, i ? "," : "", names[i], v[i]);
        out_str(o, "\n");
}

/* "<= 0.001s", or "> 1s" for the +Inf bucket */
static void text_bound(struct out *o, const char *const *le, size_t n, int p)
{
        if ((size_t) p >= n)
                out_printf(o, "> %ss", le[n - 1]);
        else
                out_printf(o, "<= %ss", le[p]);
}

static void text_hist(struct out *o, const char *title, const char *what, const uint64_t *hist,
                      size_t n, const char *const *le, uint64_t sum, bool ns)
{
        uint64_t count = sum_of(hist, n + 1);

        out_printf(o, "  %-10s %" PRIu64 " %s", title, count, what);
        if (count > 0) {
                out_str(o, ", mean ");
                if (ns)
                        out_seconds_ns(o, sum / count);
                else
                        out_seconds_ms(o, sum / count);
                out_str(o, "s, 50% ");
                text_bound(o, le, n, hist_quantile(hist, n, 0.5));
                out_str(o, ", 99% ");
                text_bound(o, le, n, hist_quantile(hist, n, 0.99));
        }
        out_str(o, "\n");
}

static void text_counts(struct out *o, const struct stats_counts *c)
{
        out_printf(o, "  %-10s %12" PRIu64 "   %-10s %12" PRIu64 "   %-10s %12" PRIu64 "\n",
                   "clients", c->clients, "accepted", c->accepted, "messages", c->messages);
        out_printf(o, "  %-10s %12" PRIu64 "   %-10s %12" PRIu64 "   %-10s %12" PRIu64 "\n",
                   "received", c->bytes_in, "sent", c->bytes_out, "queued", c->queued);
        text_reasons(o, "refused", c->refused, stats_refused_names, STATS_REFUSED_N);
        text_reasons(o, "closed", c->closed, stats_closed_names, STATS_CLOSED_N);
        text_reasons(o, "paused", c->pauses, stats_pause_names, STATS_PAUSE_N);
        text_hist(o, "service", "messages", c->message_hist, STATS_MESSAGE_BUCKETS, message_le,
                  c->message_ns, true);
        text_hist(o, "lifetime", "connections", c->conn_hist, STATS_CONNECTION_BUCKETS, conn_le,
                  c->conn_ms, false);
}

static void text_time(struct out *o, uint64_t t)
{
        time_t tt = (time_t) t;
        struct tm tm;
        char when[32];

        if (!localtime_r(&tt, &tm) || strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(when, sizeof(when), "%" PRIu64, t);
        out_str(o, when);
}

int stats_render_text(const struct stats_snapshot *snap, struct buffer *out)
{
        struct out o = { out, 0 };

        out_printf(&o, "muxd %s, backend %s, %u worker%s, up %" PRIu64 "s, %" PRIu64 " client%s "
                   "(max_connections %u)%s\n", snap->version, snap->backend, snap->workers,
                   snap->workers == 1 ? "" : "s", snap->uptime_ms / 1000u, snap->clients,
                   snap->clients == 1 ? "" : "s", snap->max_connections,
                   snap->stopping ? ", stopping" : "");
        if (snap->log_dropped > 0)
                out_printf(&o, "log messages dropped: %" PRIu64 "\n", snap->log_dropped);
        out_printf(&o, "sources: %" PRIu32 " of max_sources %" PRIu32 ", %" PRIu64 " evicted\n",
                   snap->sources, snap->max_sources, snap->sources_evicted);
        if (snap->fdstore_stored || snap->fdstore_unpreserved || snap->fdstore_remove_failed || snap->fdstore_retaken)
                out_printf(&o, "fd store: %" PRIu64 " stored, %" PRIu64 " not preserved, %" PRIu64
                           " removals failed, %" PRIu64 " retaken at start\n", snap->fdstore_stored,
                           snap->fdstore_unpreserved, snap->fdstore_remove_failed, snap->fdstore_retaken);
        if (snap->reloaded) {
                out_str(&o, snap->reload_ok ? "last reload: ok at " : "last reload: failed at ");
                text_time(&o, snap->reload_time_s);
                if (snap->reload_error)
                        out_printf(&o, ": %s", snap->reload_error);
                out_str(&o, "\n");
        }
        for (size_t i = 0; i < snap->n_listeners; i++) {
                const struct stats_listener_snapshot *l = &snap->listeners[i];

                if (strcmp(l->label, l->address) == 0)
                        out_printf(&o, "\nlistener %s\n", l->address);
                else
                        out_printf(&o, "\nlistener %s (%s)\n", l->label, l->address);
                text_counts(&o, &l->c);
        }
        out_str(&o, "\ntotal (every listener, removed ones included)\n");
        text_counts(&o, &snap->total);
        return o.error;
}

/* ---- JSON ---- */

static void json_string(struct out *o, const char *s)
{
        out_str(o, "\"");
        for (; *s; s++) {
                unsigned char ch = (unsigned char) *s;

                if (ch == '"' || ch == '\\')
                        out_printf(o, "\\%c", ch);
                else if (ch < 0x20 || ch == 0x7f)
                        out_printf(o, "\\u%04x", ch);
                else
                        out_add(o, s, 1);
        }
        out_str(o, "\"");
}

static void json_reasons(struct out *o, const char *key, const uint64_t *v, const char *const *names, size_t n)
{
        out_printf(o, ",\"%s\":{", key);
        for (size_t i = 0; i < n; i++)
                out_printf(o, "%s\"%s\":%" PRIu64, i ? "," : "", names[i], v[i]);
        out_str(o, "}");
}

static void json_hist(struct out *o, const char *key, const uint64_t *hist, size_t n,
                      const char *const *le, uint64_t sum, bool ns)
{
        uint64_t cum = 0;

        out_printf(o, ",\"%s\":{\"buckets\":[", key);
        for (size_t i = 0; i <= n; i++) {
                cum += hist[i];
                out_printf(o, "%s{\"le\":\"%s\",\"count\":%" PRIu64 "}", i ? "," : "", le[i], cum);
        }
        out_str(o, "],\"sum\":");
        if (ns)
                out_seconds_ns(o, sum);
        else
                out_seconds_ms(o, sum);
        out_printf(o, ",\"count\":%" PRIu64 "}", cum);
}

static void json_counts(struct out *o, const struct stats_counts *c)
{
        out_printf(o, "\"clients\":%" PRIu64 ",\"accepted\":%" PRIu64, c->clients, c->accepted);
        json_reasons(o, "refused", c->refused, stats_refused_names, STATS_REFUSED_N);
        json_reasons(o, "closed", c->closed, stats_closed_names, STATS_CLOSED_N);
        out_printf(o, ",\"messages\":%" PRIu64 ",\"received_bytes\":%" PRIu64 ",\"sent_bytes\":%" PRIu64
                   ",\"queued_bytes\":%" PRIu64, c->messages, c->bytes_in, c->bytes_out, c->queued);
        json_reasons(o, "accept_pauses", c->pauses, stats_pause_names, STATS_PAUSE_N);
        json_hist(o, "message_seconds", c->message_hist, STATS_MESSAGE_BUCKETS, message_le, c->message_ns, true);
        json_hist(o, "connection_seconds", c->conn_hist, STATS_CONNECTION_BUCKETS, conn_le, c->conn_ms, false);
}

int stats_render_json(const struct stats_snapshot *snap, struct buffer *out)
{
        struct out o = { out, 0 };

        out_str(&o, "{\"version\":");
        json_string(&o, snap->version);
        out_str(&o, ",\"backend\":");
        json_string(&o, snap->backend);
        out_printf(&o, ",\"workers\":%u,\"max_connections\":%u,\"clients\":%" PRIu64
                   ",\"start_time\":%" PRIu64 ",\"uptime_seconds\":", snap->workers,
                   snap->max_connections, snap->clients, snap->start_time_s);
        out_seconds_ms(&o, snap->uptime_ms);
        out_printf(&o, ",\"log_messages_dropped\":%" PRIu64 ",\"sources\":%" PRIu32
                   ",\"max_sources\":%" PRIu32 ",\"sources_evicted\":%" PRIu64
                   ",\"fd_store\":{\"stored\":%" PRIu64 ",\"not_preserved\":%" PRIu64
                   ",\"remove_failed\":%" PRIu64 ",\"retaken\":%" PRIu64 "}"
                   ",\"stopping\":%s,\"last_reload\":", snap->log_dropped, snap->sources,
                   snap->max_sources, snap->sources_evicted, snap->fdstore_stored, snap->fdstore_unpreserved,
                   snap->fdstore_remove_failed, snap->fdstore_retaken, snap->stopping ? "true" : "false");
        if (!snap->reloaded) {
                out_str(&o, "null");
        } else {
                out_printf(&o, "{\"ok\":%s,\"time\":%" PRIu64 ",\"error\":",
                           snap->reload_ok ? "true" : "false", snap->reload_time_s);
                if (snap->reload_error)
                        json_string(&o, snap->reload_error);
                else
                        out_str(&o, "null");
                out_str(&o, "}");
        }
        out_str(&o, ",\"listeners\":[");
        for (size_t i = 0; i < snap->n_listeners; i++) {
                const struct stats_listener_snapshot *l = &snap->listeners[i];

                out_str(&o, i ? ",{\"listener\":" : "{\"listener\":");
                json_string(&o, l->label);
                out_str(&o, ",\"address\":");
                json_string(&o, l->address);
                out_str(&o, ",");
                json_counts(&o, &l->c);
                out_str(&o, "}");
        }
        out_str(&o, "],\"total\":{");
        json_counts(&o, &snap->total);
        out_str(&o, "}}\n");
        return o.error;
}

/* ---- Prometheus text exposition format 0.0.4 ---- */

/* A label value: backslash, double quote and line feed escaped. */
static void prom_label_value(struct out *o, const char *s)
{
        for (; *s; s++) {
                if (*s == '\\')
                        out_str(o, "\\\\");
                else if (*s == '"')
                        out_str(o, "\\\"");
                else if (*s == '\n')
                        out_str(o, "\\n");
                else
                        out_add(o, s, 1);
        }
}

static void prom_head(struct out *o, const char *name, const char *type, const char *help)
{
        out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* NAME{listener="L"[,KEY="VALUE"]} */
static void prom_series(struct out *o, const char *name, const char *label, const char *key, const char *value)
{
        out_printf(o, "%s{listener=\"", name);
        prom_label_value(o, label);
        if (key)
                out_printf(o, "\",%s=\"%s\"} ", key, value);
        else
                out_str(o, "\"} ");
}

/* A family with one number per listener, at offset off of struct stats_counts. */
static void prom_simple(struct out *o, const struct stats_snapshot *snap, const char *name, const char *type,
                        const char *help, size_t off)
{
        prom_head(o, name, type, help);
        for (size_t i = 0; i < snap->n_listeners; i++) {
                const struct stats_listener_snapshot *l = &snap->listeners[i];

                prom_series(o, name, l->label, NULL, NULL);
                out_printf(o, "%" PRIu64 "\n", *(const uint64_t *) ((const char *) &l->c + off));
        }
}

/* A family with one number per listener and reason: n of them at offset off. */
static void prom_reasons(struct out *o, const struct stats_snapshot *snap, const char *name, const char *help,
                         size_t off, const char *const *names, size_t n)
{
        prom_head(o, name, "counter", help);
        for (size_t i = 0; i < snap->n_listeners; i++) {
                const struct stats_listener_snapshot *l = &snap->listeners[i];
                const uint64_t *v = (const uint64_t *) ((const char *) &l->c + off);

                for (size_t r = 0; r < n; r++) {
                        prom_series(o, name, l->label, "reason", names[r]);
                        out_printf(o, "%" PRIu64 "\n", v[r]);
                }
        }
}

static void prom_hist(struct out *o, const struct stats_snapshot *snap, const char *name, const char *help,
                      bool message)
{
        size_t n = message ? STATS_MESSAGE_BUCKETS : STATS_CONNECTION_BUCKETS;
        const char *const *le = message ? message_le : conn_le;
        char series[96];

        prom_head(o, name, "histogram", help);
        for (size_t i = 0; i < snap->n_listeners; i++) {
                const struct stats_listener_snapshot *l = &snap->listeners[i];
                const uint64_t *hist = message ? l->c.message_hist : l->c.conn_hist;
                uint64_t cum = 0;

                snprintf(series, sizeof(series), "%s_bucket", name);
                for (size_t b = 0; b <= n; b++) {
                        cum += hist[b];
                        prom_series(o, series, l->label, "le", le[b]);
                        out_printf(o, "%" PRIu64 "\n", cum);
                }
                snprintf(series, sizeof(series), "%s_sum", name);
                prom_series(o, series, l->label, NULL, NULL);
                if (message)
                        out_seconds_ns(o, l->c.message_ns);
                else
                        out_seconds_ms(o, l->c.conn_ms);
                snprintf(series, sizeof(series), "%s_count", name);
                out_str(o, "\n");
                prom_series(o, series, l->label, NULL, NULL);
                out_printf(o, "%" PRIu64 "\n", cum);
        }
}

static void prom_gauge(struct out *o, const char *name, const char *help, uint64_t v)
{
        prom_head(o, name, "gauge", help);
        out_printf(o, "%s %" PRIu64 "\n", name, v);
}

static void prom_process(struct out *o, const struct stats_snapshot *snap)
{
        prom_head(o, "muxd_build_info", "gauge", "Always 1: the version and event loop backend of this muxd.");
        out_str(o, "muxd_build_info{version=\"");
        prom_label_value(o, snap->version);
        out_str(o, "\",backend=\"");
        prom_label_value(o, snap->backend);
        out_str(o, "\"} 1\n");
        prom_gauge(o, "muxd_start_time_seconds", "When muxd started, in seconds since the Unix epoch.",
                   snap->start_time_s);
        prom_gauge(o, "muxd_workers", "Event loop threads serving clients.", snap->workers);
        prom_gauge(o, "muxd_max_connections", "The max_connections setting in force.", snap->max_connections);
        prom_gauge(o, "muxd_stopping", "1 while muxd drains its clients on stop, else 0.", snap->stopping);
        prom_head(o, "muxd_log_messages_dropped_total", "counter", "Log lines dropped because the journal "
                  "(or a pipe on stderr) did not keep up; each drop is also summed up in the log.");
        out_printf(o, "muxd_log_messages_dropped_total %" PRIu64 "\n", snap->log_dropped);
        prom_gauge(o, "muxd_sources", "Entries of the per-source table (sources with connections or "
                   "rate state).", snap->sources);
        prom_gauge(o, "muxd_max_sources", "The max_sources setting in force.", snap->max_sources);
        prom_head(o, "muxd_fdstore_stored_total", "counter", "Connections put in systemd's fd store "
                  "(preserve_connections).");
        out_printf(o, "muxd_fdstore_stored_total %" PRIu64 "\n", snap->fdstore_stored);
        prom_head(o, "muxd_fdstore_not_preserved_total", "counter", "Connections the fd store could not "
                  "take: served, but not preserved across a crash.");
        out_printf(o, "muxd_fdstore_not_preserved_total %" PRIu64 "\n", snap->fdstore_unpreserved);
        prom_head(o, "muxd_fdstore_remove_failed_total", "counter", "Removals from the fd store that could "
                  "not be sent.");
        out_printf(o, "muxd_fdstore_remove_failed_total %" PRIu64 "\n", snap->fdstore_remove_failed);
        prom_gauge(o, "muxd_fdstore_retaken", "Connections retaken from the fd store at start, after a crash "
                   "(what the crashed process held in memory for them is lost).", snap->fdstore_retaken);
        prom_head(o, "muxd_sources_evicted_total", "counter", "Idle sources forgotten before their "
                  "rate state expired, to make room for new ones at max_sources.");
        out_printf(o, "muxd_sources_evicted_total %" PRIu64 "\n", snap->sources_evicted);
        prom_gauge(o, "muxd_last_reload_successful", "0 if the last reload failed (muxd serves with the "
                   "configuration before it), else 1.", !snap->reloaded || snap->reload_ok);
        prom_gauge(o, "muxd_last_reload_timestamp_seconds", "When the last reload was tried, in seconds "
                   "since the Unix epoch (0: none yet).", snap->reloaded ? snap->reload_time_s : 0);
}

int stats_render_prometheus(const struct stats_snapshot *snap, struct buffer *out)
{
        struct out o = { out, 0 };

        prom_simple(&o, snap, "muxd_connections_accepted_total", "counter",
                    "Clients admitted (a refused connection counts only as refused).",
                    offsetof(struct stats_counts, accepted));
        prom_reasons(&o, snap, "muxd_connections_refused_total",
                     "Connections refused, by reason: access (allow/deny), max_per_source, descriptors "
                     "(no descriptor or memory for it), rate (max_rate_per_source), sources_full "
                     "(max_sources reached), proxy_from (a peer not in proxy_from), proxy_header "
                     "(no valid PROXY header in time); max_connections stays 0.",
                     offsetof(struct stats_counts, refused), stats_refused_names, STATS_REFUSED_N);
        prom_reasons(&o, snap, "muxd_connections_closed_total",
                     "Admitted connections closed, by the first cause: client, idle, max_message, error, "
                     "shutdown, oneshot; reload stays 0.",
                     offsetof(struct stats_counts, closed), stats_closed_names, STATS_CLOSED_N);
        prom_simple(&o, snap, "muxd_clients", "gauge", "Clients connected now.",
                    offsetof(struct stats_counts, clients));
        prom_simple(&o, snap, "muxd_messages_total", "counter", "Messages received and answered.",
                    offsetof(struct stats_counts, messages));
        prom_simple(&o, snap, "muxd_received_bytes_total", "counter", "Bytes received from clients.",
                    offsetof(struct stats_counts, bytes_in));
        prom_simple(&o, snap, "muxd_sent_bytes_total", "counter", "Bytes sent to clients, greetings included.",
                    offsetof(struct stats_counts, bytes_out));
        prom_simple(&o, snap, "muxd_queued_bytes", "gauge",
                    "Reply bytes waiting in muxd's output buffers for clients to read them.",
                    offsetof(struct stats_counts, queued));
        prom_reasons(&o, snap, "muxd_accept_pauses_total",
                     "Times a worker stopped accepting (clients wait in the kernel's backlog), by reason.",
                     offsetof(struct stats_counts, pauses), stats_pause_names, STATS_PAUSE_N);
        prom_hist(&o, snap, "muxd_message_seconds",
                  "Message service time: from the loop pass that read the message to its reply queued.", true);
        prom_hist(&o, snap, "muxd_connection_seconds", "Lifetime of closed connections.", false);
        prom_process(&o, snap);
        return o.error;
}
