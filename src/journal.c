/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "journal.h"

struct journal_out {
        char *buf;
        size_t size, len;
        bool full;
};

static void journal_put(struct journal_out *o, const void *p, size_t n)
{
        if (o->full || n > o->size - o->len) {
                o->full = true;
                return;
        }
        memcpy(o->buf + o->len, p, n);
        o->len += n;
}

/* One field; value may hold anything but a NUL. */
static void journal_field(struct journal_out *o, const char *name, size_t name_len, const char *value)
{
        size_t n = strlen(value);

        journal_put(o, name, name_len);
        if (!memchr(value, '\n', n)) {
                journal_put(o, "=", 1);
        } else {
                unsigned char le[8];

                for (int i = 0; i < 8; i++)
                        le[i] = (unsigned char) ((uint64_t) n >> (8 * i));
                journal_put(o, "\n", 1);
                journal_put(o, le, sizeof(le));
        }
        journal_put(o, value, n);
        journal_put(o, "\n", 1);
}

size_t journal_encode(char *buf, size_t size, int priority, const char *identifier,
                      const char *message, const char *const *fields)
{
        struct journal_out o = { .buf = buf, .size = size };
        char prio[16];

        snprintf(prio, sizeof(prio), "%d", priority);
        journal_field(&o, "PRIORITY", 8, prio);
        journal_field(&o, "SYSLOG_IDENTIFIER", 17, identifier);
        journal_field(&o, "MESSAGE", 7, message);
        for (size_t i = 0; fields && fields[i]; i++) {
                const char *eq = strchr(fields[i], '=');

                if (!eq)
                        continue;       /* not a field */
                journal_field(&o, fields[i], (size_t) (eq - fields[i]), eq + 1);
        }
        return o.full ? 0 : o.len;
}
