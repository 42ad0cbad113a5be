/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
        char line[1024];
        int n = snprintf(line, sizeof(line), "%s: ", cli_program);
        va_list ap;

        /* build the line first so that it reaches stderr in one write */
        if (n < 0 || (size_t) n >= sizeof(line))
                n = 0;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t) n, fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s\n", line);
}

void cli_usage_error(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "%s: ", cli_program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s --help' for more information.\n", cli_program);
}

int cli_parse_server(const char *arg, struct hostport *ret)
{
        const char *why;
        int r = hostport_parse(arg, ret, &why);

        if (r == -EINVAL)
                cli_usage_error("invalid server '%s': %s", arg, why);
        else if (r == -ERANGE)
                cli_usage_error("invalid port in '%s': %s", arg, why);
        return r == -ERANGE ? -EINVAL : r;
}
