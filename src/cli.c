/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

void cli_option_error(int opt, char *const argv[], const char *no_arg)
{
        /* getopt_long() always moves past a long option, so then
         * argv[optind - 1] is it; a short one may sit inside "-qw". An
         * argument missing is only ever noticed at the end of an element, so
         * argv[optind - 1] is the option there too. */
        const char *arg = argv[optind - 1];

        if (opt == ':') {
                if (strncmp(arg, "--", 2) == 0)
                        cli_usage_error("option '%s' requires an argument", arg);
                else
                        cli_usage_error("option requires an argument -- '%c'", optopt);
        } else if (optopt == 0) {
                cli_usage_error("unrecognized option '%s'", arg);
        } else if (optopt >= 0x100 || strchr(no_arg, optopt)) {
                /* a valid option, so it was "--quiet=..." */
                cli_usage_error("option '%.*s' doesn't allow an argument",
                                (int) strcspn(arg, "="), arg);
        } else {
                cli_usage_error("invalid option -- '%c'", optopt);
        }
}

void cli_version(void)
{
#ifdef PACKAGE_VERSION
        printf("%s %s\n", cli_program, PACKAGE_VERSION);
#else
        printf("%s\n", cli_program);
#endif
}
