/* SPDX-License-Identifier: MIT */
/* Log lines to the journal (its native protocol, journal.c) or to stderr,
 * never blocking the thread that logs. journald reads its socket at its own
 * pace (its queue holds 512 datagrams by default) and a pipe on stderr holds
 * 64 KiB: when either is full, a blocking write would stop every client of
 * the worker that logs. So every write is non-blocking; what cannot go now
 * waits in one bounded queue (LOG_QUEUE_MAX_BYTES, shared by the threads,
 * in order) that the next log call or the main loop (log_flush()) empties;
 * what does not fit there is dropped, counted, and summed up in one line
 * ("N log messages dropped") once the queue has emptied. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "systemd.h"

#define LOG_LINE_MAX            2048u
#define LOG_DGRAM_MAX           (LOG_LINE_MAX + 512u)

static enum log_level log_max_level = LOG_LEVEL_INFO;
static int log_journal_fd = -1;         /* connected to journald, non-blocking */

/* A line or datagram that could not be written yet. */
struct log_record {
        struct log_record *next;
        bool journal;
        size_t len;
        char data[];
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_record *log_head, **log_tail = &log_head;     /* under log_lock */
static size_t log_queued_bytes;                                 /* under log_lock */
static uint64_t log_dropped_unreported;                         /* under log_lock */
/* Records wait, or a drop is still to be reported: new lines go behind. */
static _Atomic bool log_backlog;
static _Atomic uint64_t log_dropped;    /* since start */
static void (*log_backlog_fn)(void *ctx);       /* under log_lock */
static void *log_backlog_ctx;

int log_open_journal(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        if (log_journal_fd >= 0)
                close(log_journal_fd);
        log_journal_fd = fd;
        return 0;
}

void log_setup(enum log_target target)
{
        struct stat st;

        if (target == LOG_TARGET_JOURNAL ||
            (target == LOG_TARGET_AUTO && systemd_stderr_is_journal())) {
                (void) log_open_journal(JOURNAL_SOCKET_PATH);  /* else: stderr */
        } else if (log_journal_fd >= 0) {
                close(log_journal_fd);
                log_journal_fd = -1;
        }
        /* A pipe or socket on stderr: written without blocking too (a
         * terminal or file is left alone: it does not fill up). */
        if (fstat(STDERR_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
                int fl = fcntl(STDERR_FILENO, F_GETFL);

                if (fl >= 0)
                        (void) fcntl(STDERR_FILENO, F_SETFL, fl | O_NONBLOCK);
        }
}

bool log_to_journal(void)
{
        return log_journal_fd >= 0;
}

/* Set by the main thread on reload, read by every worker. */
void log_set_level(enum log_level level)
{
        __atomic_store_n(&log_max_level, level, __ATOMIC_RELAXED);
}

bool log_enabled(enum log_level level)
{
        return level <= __atomic_load_n(&log_max_level, __ATOMIC_RELAXED);
}

void log_set_backlog_hook(void (*fn)(void *ctx), void *ctx)
{
        pthread_mutex_lock(&log_lock);
        log_backlog_fn = fn;
        log_backlog_ctx = ctx;
        pthread_mutex_unlock(&log_lock);
}

/* Under log_lock: something waits now. */
static void log_backlog_start(void)
{
        if (!atomic_exchange(&log_backlog, true) && log_backlog_fn)
                log_backlog_fn(log_backlog_ctx);
}

uint64_t log_dropped_total(void)
{
        return atomic_load_explicit(&log_dropped, memory_order_relaxed);
}

bool log_pending(void)
{
        return atomic_load(&log_backlog);
}

/* One write, without blocking: 0, -EAGAIN (full: try later) or another -errno. */
static int log_write(bool journal, const char *p, size_t n)
{
        ssize_t r;

        do
                r = journal ? send(log_journal_fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL)
                            : write(STDERR_FILENO, p, n);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        return 0;       /* a datagram, or a line under PIPE_BUF: all or nothing */
}

static size_t log_encode(char *dgram, enum log_level level, const struct log_fields *f, const char *msg)
{
        char ev[80], listen[96], peer[96], proxy[96], id[64];
        const char *fields[6];
        size_t n = 0;

        if (f && f->event) {
                snprintf(ev, sizeof(ev), "MUXD_EVENT=%s", f->event);
                fields[n++] = ev;
        }
        if (f && f->listen) {
                snprintf(listen, sizeof(listen), "MUXD_LISTEN=%s", f->listen);
                fields[n++] = listen;
        }
        if (f && f->peer) {
                snprintf(peer, sizeof(peer), "MUXD_PEER=%s", f->peer);
                fields[n++] = peer;
        }
        if (f && f->proxy) {
                snprintf(proxy, sizeof(proxy), "MUXD_PROXY=%s", f->proxy);
                fields[n++] = proxy;
        }
        if (f && f->message_id) {
                snprintf(id, sizeof(id), "MESSAGE_ID=%s", f->message_id);
                fields[n++] = id;
        }
        fields[n] = NULL;
        return journal_encode(dgram, LOG_DGRAM_MAX, (int) level, "muxd", msg, fields);
}

/* Under log_lock. */
static void log_enqueue(bool journal, const char *p, size_t n)
{
        struct log_record *r;

        if (log_queued_bytes + n > LOG_QUEUE_MAX_BYTES || !(r = malloc(sizeof(*r) + n))) {
                log_dropped_unreported++;
                atomic_fetch_add_explicit(&log_dropped, 1, memory_order_relaxed);
                log_backlog_start();
                return;
        }
        r->next = NULL;
        r->journal = journal;
        r->len = n;
        memcpy(r->data, p, n);
        *log_tail = r;
        log_tail = &r->next;
        log_queued_bytes += n;
        log_backlog_start();
}

/* Under log_lock: "N log messages dropped", once what waited has gone. */
static void log_report_dropped(void)
{
        char line[160], dgram[LOG_DGRAM_MAX];
        bool journal = log_journal_fd >= 0;
        int n, r;

        n = snprintf(line, sizeof(line), "muxd: warning: %llu log message%s dropped: the %s did not keep up\n",
                     (unsigned long long) log_dropped_unreported, log_dropped_unreported == 1 ? "" : "s",
                     journal ? "journal" : "log output");
        if (journal) {
                line[n - 1] = '\0';
                r = log_write(true, dgram, log_encode(dgram, LOG_LEVEL_WARNING,
                                                      &(const struct log_fields) { .event = "log-dropped" },
                                                      line + strlen("muxd: warning: ")));
        } else {
                r = log_write(false, line, (size_t) n);
        }
        if (r != -EAGAIN)
                log_dropped_unreported = 0;
}

/* Under log_lock: write what waits, in order, until something is full. */
static void log_flush_locked(void)
{
        struct log_record *r;

        while ((r = log_head)) {
                int w = log_write(r->journal, r->data, r->len);

                if (w == -EAGAIN)
                        return;
                if (w < 0) {
                        log_dropped_unreported++;       /* gone for good: count it */
                        atomic_fetch_add_explicit(&log_dropped, 1, memory_order_relaxed);
                }
                log_head = r->next;
                log_queued_bytes -= r->len;
                free(r);
        }
        log_tail = &log_head;
        if (log_dropped_unreported > 0)
                log_report_dropped();
        atomic_store(&log_backlog, log_dropped_unreported > 0);
}

bool log_flush(void)
{
        bool pending;

        if (!atomic_load(&log_backlog))
                return false;
        pthread_mutex_lock(&log_lock);
        log_flush_locked();
        pending = log_head != NULL || log_dropped_unreported > 0;
        pthread_mutex_unlock(&log_lock);
        return pending;
}

void log_drain(unsigned timeout_ms)
{
        for (unsigned waited = 0; log_flush() && waited < timeout_ms; waited += 10)
                (void) poll(NULL, 0, 10);
}

/* Write now if nothing waits, else (or if full) queue behind what waits.
 * 0, or -errno if the write failed for another reason than a full queue. */
static int log_emit(bool journal, const char *p, size_t n)
{
        int r = -EAGAIN;

        if (!atomic_load(&log_backlog))
                r = log_write(journal, p, n);
        if (r != -EAGAIN)
                return r;
        pthread_mutex_lock(&log_lock);
        log_enqueue(journal, p, n);
        log_flush_locked();
        pthread_mutex_unlock(&log_lock);
        return 0;
}

/* One line, one write(2): lines from a daemon and its tests never interleave. */
void log_full(enum log_level level, const struct log_fields *f, const char *fmt, ...)
{
        static const char prefix[] = "muxd: ";
        char line[LOG_LINE_MAX];
        int saved_errno = errno;
        int n, m;
        va_list ap;

        if (!log_enabled(level))
                return;
        n = snprintf(line, sizeof(line), "%s%s: ", prefix, log_level_to_string(level));
        va_start(ap, fmt);
        m = vsnprintf(line + n, sizeof(line) - (size_t) n - 1, fmt, ap);
        va_end(ap);
        if (m < 0)
                m = 0;
        if ((size_t) (n + m) > sizeof(line) - 2)
                m = (int) sizeof(line) - 2 - n;
        if (log_journal_fd >= 0) {
                char dgram[LOG_DGRAM_MAX];
                size_t len;

                line[n + m] = '\0';
                len = log_encode(dgram, level, f, line + n);
                /* journald gone: the line goes to stderr */
                if (len > 0 && log_emit(true, dgram, len) == 0)
                        goto out;
        }
        n += m;
        line[n++] = '\n';
        (void) log_emit(false, line, (size_t) n);      /* nowhere left to report a failure */
out:
        errno = saved_errno;
}

bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms, unsigned *suppressed)
{
        *suppressed = 0;
        if (rl->begin_ms == 0 || now_ms - rl->begin_ms >= LOG_RATELIMIT_INTERVAL_MS) {
                *suppressed = rl->suppressed;
                rl->begin_ms = now_ms ? now_ms : 1;
                rl->count = 0;
                rl->suppressed = 0;
        }
        if (rl->count < LOG_RATELIMIT_BURST) {
                rl->count++;
                return true;
        }
        rl->suppressed++;
        return false;
}
