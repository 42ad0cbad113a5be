/* SPDX-License-Identifier: MIT */
/* Configuration: /etc/muxd.conf (libconfig syntax) parsed and validated into a
 * struct config. This module never logs: every problem becomes one
 * "FILE:LINE: message" string in a struct config_errors for the caller. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "proxy.h"

enum muxd_mode { MODE_ECHO, MODE_ONESHOT };
enum muxd_framing { FRAMING_LINE, FRAMING_RAW };

/* syslog-compatible priorities, so they map straight to journald's PRIORITY= */
enum log_level { LOG_LEVEL_ERR = 3, LOG_LEVEL_WARNING = 4, LOG_LEVEL_NOTICE = 5,
                 LOG_LEVEL_INFO = 6, LOG_LEVEL_DEBUG = 7 };

/* Bounds of every setting (documented in muxd.conf(5)). */
#define CONFIG_TIMEOUT_MAX          2592000u    /* 30 days, seconds */
#define CONFIG_MAX_CONNECTIONS_MAX  1000000u
#define CONFIG_SHUTDOWN_TIMEOUT_MAX 3600u
#define CONFIG_WORKERS_MAX          64u
#define CONFIG_GREETING_MAX         4096u       /* bytes */
#define CONFIG_SUFFIX_MAX           1024u       /* bytes */
#define CONFIG_MAX_MESSAGE_MAX      (1u << 20)  /* 1 MiB */
#define CONFIG_MAX_PER_SOURCE_MAX   1000000u
#define CONFIG_MAX_RATE_MAX         1000000u    /* new connections per second, and burst */
#define CONFIG_MAX_SOURCES_MAX      4194304u    /* entries of the per-source table */
#define CONFIG_ACL_MAX              1024u       /* entries per allow/deny list */
#define CONFIG_NAME_MAX             255u
#define CONFIG_PROXY_TIMEOUT_MAX    3600u       /* seconds */
/* a UNIX socket's path: sizeof(sun_path) less its NUL */
#define CONFIG_CONTROL_SOCKET_MAX   107u
/* descriptors muxd needs besides clients, listeners and workers (stdio,
 * signalfd, notify and journal sockets, a file being read...) */
#define CONFIG_RESERVED_FDS         16u
/* descriptors each worker holds: its event loop (epoll, io_uring) and its
 * wake-up eventfd */
#define CONFIG_FDS_PER_WORKER       2u

#define CONFIG_DEFAULT_TIMEOUT          60u
#define CONFIG_DEFAULT_MAX_CONNECTIONS  10000u
#define CONFIG_DEFAULT_SHUTDOWN_TIMEOUT 5u
#define CONFIG_DEFAULT_MAX_MESSAGE      4096u
#define CONFIG_DEFAULT_MAX_SOURCES      65536u
#define CONFIG_DEFAULT_PREFIX_V4        32u
#define CONFIG_DEFAULT_PREFIX_V6        64u
/* the PROXY protocol spec asks receivers to wait at least 3 seconds */
#define CONFIG_DEFAULT_PROXY_TIMEOUT    3u

/* Settings a listen entry may override; the global ones are the defaults. */
struct listener_opts {
        char *greeting;         /* never NULL; may be "" */
        size_t greeting_len;
        char *suffix;           /* never NULL */
        size_t suffix_len;
        enum muxd_mode mode;
        enum muxd_framing framing;
        uint32_t max_message;
        struct acl allow;       /* empty: everyone allowed unless denied */
        struct acl deny;
        uint32_t max_per_source; /* 0: no limit */
        uint32_t max_rate_per_source; /* new connections per second; 0: no limit */
        uint32_t rate_burst;    /* token bucket size; 0: max_rate_per_source */
        uint8_t source_prefix_v4; /* bits of a client address that make its source */
        uint8_t source_prefix_v6;
        /* behind a load balancer: the PROXY protocol versions accepted
         * (PROXY_OFF: none, the peer is the client); only peers in
         * proxy_from may connect (required when on); the header must be
         * complete within proxy_timeout seconds (at least 1) */
        enum proxy_version proxy_protocol;
        struct acl proxy_from;
        uint32_t proxy_timeout;
};

struct listener_conf {
        char *name;             /* NULL when not given */
        char *address;          /* NULL: all addresses (dual-stack); else a numeric literal */
        uint16_t port;          /* 0: an ephemeral port chosen by the kernel */
        char *file;             /* NULL: written in the main file (path); else the
                                 * @include'd file it is written in */
        int line;               /* line of the entry in its file, for messages */
        struct listener_opts opts;
};

/* Where a listener listens, in binary: what a reload compares, and what the
 * kernel may refuse to bind twice. */
struct listener_key {
        int family;             /* AF_INET / AF_INET6; AF_UNSPEC: all addresses */
        uint8_t addr[16];
        uint16_t port;          /* as configured (0: ephemeral) */
};

/* The key of an entry: 0, or -EINVAL if its address is not a numeric literal. */
int config_listener_key(const struct listener_conf *e, struct listener_key *ret);

struct config {
        char *path;
        uint32_t timeout;               /* seconds, 0: never */
        char *backend;                  /* a name from the event backend table */
        char *backend_file;             /* NULL: "backend" is in the main file (path) or not
                                         * written; else the @include'd file it is in */
        int backend_line;               /* its line in that file, for messages; 0: not written */
        uint32_t max_connections;
        bool max_connections_set;       /* written in the file (else the default, maybe lowered) */
        enum log_level log_level;
        uint32_t shutdown_timeout;      /* seconds */
        uint32_t workers;
        uint32_t max_sources;           /* entries of the per-source table */
        char *control_socket;           /* NULL: not written (the compiled-in default);
                                         * "": no control socket */
        struct listener_opts defaults;
        struct listener_conf *listeners; /* "ports" entries first, then "listen" entries */
        size_t n_listeners;
        /* metrics_listen: the Prometheus endpoint, off unless written */
        bool metrics;
        struct listener_key metrics_key;
        char *metrics_listen;           /* as written, for messages */
        char *metrics_file;             /* NULL: the main file (path); else the @include'd one */
        int metrics_line;
        /* each connection kept in systemd's fd store, so that it survives a crash */
        bool preserve_connections;
};

struct config_errors {
        char **msgs;            /* each "FILE:LINE: message" (or "FILE: message") */
        size_t n;
};

/* Parse and validate PATH. On success returns 0 and *ret owns a new config.
 * On failure returns -EINVAL (invalid file, every problem appended to errs),
 * or another -errno if the file cannot be read (one message appended to errs).
 * Never logs and has no side effects besides reading the file. */
int config_load(const char *path, struct config **ret, struct config_errors *errs);

/* Same, from an in-memory text; path is used for messages only. */
int config_load_string(const char *text, const char *path, struct config **ret,
                       struct config_errors *errs);

void config_free(struct config *c);             /* accepts NULL */

/* How many clients a backend that watches descriptors below max_fds can
 * serve next to n_listeners listeners and workers, counting every other
 * descriptor muxd holds (0: none). */
size_t config_client_budget(size_t max_fds, size_t n_listeners, unsigned workers);
void config_errors_clear(struct config_errors *e);
/* Append a copy of msg (for errors found outside the file's own checks);
 * 0 or -ENOMEM. */
int config_errors_add(struct config_errors *e, const char *msg);

/* Deep copy / free of a listener_opts (used to share settings with connections). */
int listener_opts_copy(struct listener_opts *dst, const struct listener_opts *src);
void listener_opts_done(struct listener_opts *o);

bool listener_opts_equal(const struct listener_opts *a, const struct listener_opts *b);

const char *log_level_to_string(enum log_level l);
int log_level_from_string(const char *s);       /* -EINVAL if unknown */
