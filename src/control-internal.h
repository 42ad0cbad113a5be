/* SPDX-License-Identifier: MIT */
/* Private to the control socket: control.c (the socket, its clients, the
 * answers' form) and control-cmd.c (the commands). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "buffer.h"
#include "control-proto.h"
#include "control.h"
#include "log.h"
#include "worker.h"

/* An answer is cut short past this (a listing says how much it left out). */
#define CONTROL_ANSWER_MAX      (8u << 20)
/* Listings stop this far below the limit, so their end always fits. */
#define CONTROL_ANSWER_SLACK    (64u << 10)
/* How long the workers have to answer a query. */
#define CONTROL_QUERY_MS        2000u
/* Clients listed at most, over all workers. */
#define CONTROL_LIST_MAX        200000u

struct server;

/* What a request gets back: built whole, then written as the client reads. */
struct control_answer {
        struct buffer buf;
        bool json;
        bool full;              /* an append did not fit: something is missing */
};

struct control_client {
        struct control_client *prev, *next;
        struct control *ctl;
        int fd;
        struct ucred cred;
        size_t in_len;
        char in[CONTROL_LINE_MAX + 2];  /* the line, its '\n', the parser's NUL */
        struct control_request req;     /* its words point into in[] */
        struct worker_query *query;     /* waiting for the workers */
        uint64_t query_deadline_ms;
        struct control_answer answer;
        size_t sent;                    /* bytes of the answer written */
        bool answered;                  /* the answer is complete: close once written */
        uint64_t deadline_ms;           /* for the request, or for the client to read */
};

struct control {
        struct server *srv;
        int fd;
        char *path;
        dev_t dev;                      /* the socket file we made, to remove only it */
        ino_t ino;
        bool keep_path;                 /* handed over, not yet ours to remove (control_open_fd) */
        gid_t gid;                      /* the socket's group: its members may connect */
        struct control_client *clients;
        unsigned n_clients;
        uint64_t accept_retry_ms;       /* 0, or when to watch the socket again (EMFILE) */
        struct log_ratelimit rl_refused, rl_busy, rl_accept;
};

/* ---- control.c: the answer's form ------------------------------------------ */
/* The status line: text "ok" / "error: TEXT"; JSON {"ok":true / {"ok":false,"error":"TEXT" */
void control_ok(struct control_answer *a);
void control_error(struct control_answer *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A field: text "KEY: VALUE", JSON ,"KEY":"VALUE" (or a number, or null when value is NULL) */
void control_field(struct control_answer *a, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void control_field_u64(struct control_answer *a, const char *key, uint64_t v);
/* A text-only line, or JSON-only text, appended as is. */
void control_text(struct control_answer *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void control_json(struct control_answer *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string (quoted, escaped) appended; nothing in a text answer. */
void control_json_string(struct control_answer *a, const char *s);
/* Is there room for a listing to go on? */
bool control_room(const struct control_answer *a);
/* "1h02m03s", "45s"; buf of 32 bytes */
const char *control_duration(uint64_t seconds, char *buf);
/* "2025-01-31 12:00:00 +0000" (local time); buf of 40 bytes */
const char *control_time(time_t t, char *buf);

/* ---- control-cmd.c ------------------------------------------------------------ */
/* Run cl->req into cl->answer. Returns 0 when the answer is complete, 1
 * when it waits for a query (cl->query: control_cmd_finish() ends it). */
int control_cmd_run(struct control_client *cl);
/* The answer of a query, once every worker answered or time ran out. */
void control_cmd_finish(struct control_client *cl, bool complete);
/* Mutating requests are logged at notice, the others at debug. */
bool control_cmd_changes(const struct control_command *cmd);
