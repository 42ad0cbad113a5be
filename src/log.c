/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "systemd.h"

static enum log_level log_max_level = LOG_LEVEL_INFO;
static bool log_journal;

void log_setup(enum log_target target)
{
        log_journal = target == LOG_TARGET_JOURNAL ||
                (target == LOG_TARGET_AUTO && systemd_stderr_is_journal());
}

bool log_to_journal(void)
{
        return log_journal;
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

static int log_journal_send(enum log_level level, const struct log_fields *f, const char *msg)
{
        char ev[80], listen[96], peer[96], id[64];
        const char *fields[5];
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
        if (f && f->message_id) {
                snprintf(id, sizeof(id), "MESSAGE_ID=%s", f->message_id);
                fields[n++] = id;
        }
        fields[n] = NULL;
        return systemd_journal_send((int) level, msg, fields);
}

/* One line, one write(2): lines from a daemon and its tests never interleave. */
void log_full(enum log_level level, const struct log_fields *f, const char *fmt, ...)
{
        static const char prefix[] = "muxd: ";
        char line[2048];
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
        if (log_journal) {
                line[n + m] = '\0';
                if (log_journal_send(level, f, line + n) >= 0)
                        goto out;
        }
        n += m;
        line[n++] = '\n';
        if (write(STDERR_FILENO, line, (size_t) n) < 0) {
                /* nowhere left to report it */
        }
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
