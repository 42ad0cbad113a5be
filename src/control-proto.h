/* SPDX-License-Identifier: MIT */
/* The control socket's requests, shared by muxd (control.c) and muxctl: the
 * commands, how many arguments each takes, and the parser of one request
 * line. libc only; never logs.
 *
 * A request is one line of words separated by spaces or tabs: COMMAND
 * [ARGS...]. A word "--json" (anywhere) asks for the answer as one JSON
 * document, "--prometheus" for stats in Prometheus's format; other words
 * that begin with "--" are refused. The answer (see
 * muxctl(8)) is a status line, "ok" or "error: TEXT", then the body, then an
 * empty line; muxd then closes the connection. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define CONTROL_SOCKET_DEFAULT RUNSTATEDIR "/muxd/control"
/* the longest request line, without its line ending */
#define CONTROL_LINE_MAX 4096u
#define CONTROL_ARGS_MAX 2u
/* the text that starts a usage error's status line ("error: usage: ..."):
 * the request was wrong and nothing was done */
#define CONTROL_USAGE_PREFIX "usage: "

struct control_command {
        const char *name;
        const char *args;       /* the arguments as the usage shows them ("" if none) */
        unsigned min_args, max_args;
        const char *help;       /* one line */
};

extern const struct control_command control_commands[];
extern const size_t control_n_commands;

const struct control_command *control_command_find(const char *name);

struct control_request {
        const struct control_command *cmd;
        const char *args[CONTROL_ARGS_MAX];     /* into the parsed line */
        unsigned n_args;
        bool json;
        bool prometheus;        /* "--prometheus": stats in the text exposition format */
};

/* Parse line (len bytes, no line ending; line[len] must be writable: the
 * words are cut in place). A trailing '\r' is ignored. Returns 0, or
 * -EINVAL with why (why_size bytes) saying what is wrong, starting with
 * CONTROL_USAGE_PREFIX. */
int control_request_parse(char *line, size_t len, struct control_request *req,
                          char *why, size_t why_size);

/* "status, stats, clients, ..." into buf (CONTROL_NAMES_MAX bytes); returns buf. */
#define CONTROL_NAMES_MAX 160u
const char *control_command_names(char *buf, size_t size);
