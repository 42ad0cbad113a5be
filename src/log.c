/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static enum log_level log_max_level = LOG_LEVEL_INFO;

void log_setup(enum log_target target)
{
        (void) target;  /* stderr is the only target until journald support lands */
}

void log_set_level(enum log_level level)
{
        log_max_level = level;
}

bool log_enabled(enum log_level level)
{
        return level <= log_max_level;
}

/* One line, one write(2): lines from a daemon and its tests never interleave. */
void log_full(enum log_level level, const struct log_fields *f, const char *fmt, ...)
{
        char line[2048];
        int saved_errno = errno;
        int n, m;
        va_list ap;

        (void) f;
        if (!log_enabled(level))
                return;
        n = snprintf(line, sizeof(line), "muxd: %s: ", log_level_to_string(level));
        va_start(ap, fmt);
        m = vsnprintf(line + n, sizeof(line) - (size_t) n - 1, fmt, ap);
        va_end(ap);
        if (m < 0)
                m = 0;
        n += m;
        if ((size_t) n > sizeof(line) - 2)
                n = sizeof(line) - 2;
        line[n++] = '\n';
        if (write(STDERR_FILENO, line, (size_t) n) < 0) {
                /* nowhere left to report it */
        }
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
