/* SPDX-License-Identifier: MIT */
/* Configuration errors: every problem of a load becomes one "FILE:LINE:
 * message" string in the caller's struct config_errors (config.h); nothing
 * is logged. Shared by the schema (config.c) and the pre-pass (config-scan.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"
#include "config-scan.h"
#include "util.h"

static void errors_append(struct config_parser *p, char *msg)
{
        char **m;

        p->n_errors++;
        if (!msg) {
                p->oom = true;
                return;
        }
        if (!p->errs) {
                free(msg);
                return;
        }
        m = realloc(p->errs->msgs, (p->errs->n + 1) * sizeof(char *));
        if (!m) {
                free(msg);
                p->oom = true;
                return;
        }
        m[p->errs->n++] = msg;
        p->errs->msgs = m;
}

static char *vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vformat(const char *fmt, va_list ap)
{
        va_list aq;
        char *s;
        int n;

        va_copy(aq, ap);
        n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n < 0)
                return NULL;
        s = malloc((size_t) n + 1);
        if (!s)
                return NULL;
        vsnprintf(s, (size_t) n + 1, fmt, ap);
        return s;
}

char *config_format(const char *fmt, ...)
{
        va_list ap;
        char *s;

        va_start(ap, fmt);
        s = vformat(fmt, ap);
        va_end(ap);
        return s;
}

/* Append "FILE:LINE: msg" ("FILE: msg" without a line); msg NULL: out of memory. */
static void errors_append_at(struct config_parser *p, const char *file, int line, const char *msg)
{
        if (!msg)
                errors_append(p, NULL);
        else if (line > 0)
                errors_append(p, config_format("%s:%d: %s", file, line, msg));
        else
                errors_append(p, config_format("%s: %s", file, msg));
}

void config_error_file_line(struct config_parser *p, const char *file, int line, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        msg = vformat(fmt, ap);
        va_end(ap);
        errors_append_at(p, file, line, msg);
}

void config_error_at(struct config_parser *p, const config_setting_t *s, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        msg = vformat(fmt, ap);
        va_end(ap);
        errors_append_at(p, config_file_of(p, s), config_scan_report_line(p, s), msg);
}

const char *config_quote(const char *s, char *buf)
{
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;

        buf[o++] = '"';
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;

                if (o >= CONFIG_QUOTE_MAX) {
                        memcpy(buf + o, "...", 3);
                        o += 3;
                        break;
                }
                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char) c;
                } else if (c == '\n') {
                        buf[o++] = '\\';
                        buf[o++] = 'n';
                } else if (c == '\t') {
                        buf[o++] = '\\';
                        buf[o++] = 't';
                } else if (c < 0x20 || c >= 0x7f) {
                        buf[o++] = '\\';
                        buf[o++] = 'x';
                        buf[o++] = hex[c >> 4];
                        buf[o++] = hex[c & 15];
                } else
                        buf[o++] = (char) c;
        }
        buf[o++] = '"';
        buf[o] = '\0';
        return buf;
}

void config_errors_clear(struct config_errors *e)
{
        if (!e)
                return;
        for (size_t i = 0; i < e->n; i++)
                free(e->msgs[i]);
        free(e->msgs);
        *e = (struct config_errors) {};
}

int config_errors_add(struct config_errors *e, const char *msg)
{
        char *copy = strdup(msg), **m;

        if (!copy)
                return -ENOMEM;
        m = realloc(e->msgs, (e->n + 1) * sizeof(char *));
        if (!m) {
                free(copy);
                return -ENOMEM;
        }
        m[e->n++] = copy;
        e->msgs = m;
        return 0;
}
