/* SPDX-License-Identifier: MIT */
/* What the command-line tools (muxc, muxbench) share: error messages
 * ("PROG: text" on stderr in one write), usage errors that point at --help
 * (getopt's among them, and a wrong HOST:PORT), --version. */
#pragma once

#include "util.h"

/* The exit status of a usage error (0: success, 1: failure). */
#define CLI_EXIT_USAGE 2

/* The tool's name: each tool defines it. */
extern const char *cli_program;

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A bad option or argument: the message, then "Try 'PROG --help' ...". */
void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A server named on the command line (hostport_parse()); a wrong one is a
 * usage error, said here. Returns 0, -EINVAL or -ENOMEM (not said). */
int cli_parse_server(const char *arg, struct hostport *ret);

/* After getopt_long() with an optstring that starts with ':', opt being ':'
 * (an argument missing) or '?' (an unknown option, or an argument given to
 * one that takes none): the usage error, naming the option as written.
 * no_arg: the short options that take no argument. */
void cli_option_error(int opt, char *const argv[], const char *no_arg);

/* --version: "PROG VERSION" on stdout. */
void cli_version(void);
