/* SPDX-License-Identifier: MIT */
/* Listening sockets: opened from config entries (or adopted from systemd),
 * identified by (address, port) so a reload can keep unchanged ones. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include "config.h"
#include "stats.h"
#include "util.h"

/* Per-listener settings shared by the listener and every connection it
 * accepted: a reload gives the listener a new one, connections keep theirs. */
struct listener_settings {
        _Atomic unsigned refs;  /* connections of every worker hold references */
        /* the listener's counters (stats.h), set by the server before any
         * worker sees these settings; a reference, dropped with them */
        struct stats_listener *stats;
        struct listener_opts o;
};

struct listener_settings *listener_settings_new(const struct listener_opts *o);
struct listener_settings *listener_settings_ref(struct listener_settings *s);
void listener_settings_unref(struct listener_settings *s);      /* accepts NULL */

struct listener {
        struct listener *next;
        int fd;
        uint64_t serial;        /* unique for the process's lifetime (per-listener counts) */
        struct listener_key key;
        uint16_t bound_port;    /* the port actually bound (differs when key.port is 0) */
        bool passed;            /* passed by systemd: never closed by muxd */
        /* handed over by a live upgrade not yet acknowledged: the previous
         * image may serve it still, so it is closed, never shut down */
        bool handed;
        bool claimed;           /* matched by a config entry (during a reload) */
        bool dual_stack;        /* an IPv6 wildcard socket that also takes IPv4 */
        bool nodelay;           /* TCP_NODELAY is set: accepted sockets inherit it */
        struct listener_settings *settings;
        struct stats_listener *stats;   /* its counters, kept across reloads (a reference) */
        char *name;             /* NULL if none */
        /* The entry it serves in the server's configuration (NULL: a passed
         * socket no entry claims): the main thread's only. */
        const struct listener_conf *conf;
        /* Drained by the control socket: workers do not watch it. Changed
         * under the server's listeners_lock; workers copy it at resync. */
        bool draining;
        char addr_str[SOCKADDR_STR_MAX]; /* "[::]:8088" */
};

bool listener_key_equal(const struct listener_key *a, const struct listener_key *b);

/* Create, bind and listen (no settings yet: the server assigns them).
 * Returns 0 or -errno (the caller reports it with the entry's address). */
int listener_open(const struct listener_key *k, struct listener **ret);
/* Wrap a listening socket systemd passed: its key comes from getsockname();
 * an IPv6 wildcard socket that is not IPV6_V6ONLY gets the key of "all
 * addresses". Sets O_NONBLOCK. */
int listener_adopt(int fd, const char *name, struct listener **ret);
/* May this listener serve an entry whose key is k? Exact (address, port) first;
 * an entry without address may also take a wildcard socket of either family. */
bool listener_matches(const struct listener *l, const struct listener_key *k, bool exact);
/* Would binding k fail with EADDRINUSE while l listens? (The same port, and
 * the same address or a wildcard on either side; port 0 never does.) */
bool listener_overlaps(const struct listener *l, const struct listener_key *k);
/* Bind a new socket for l's address and the port it had, after its own was
 * closed (undoing a reload). Returns 0 or -errno. */
int listener_reopen(struct listener *l);
/* Stop listening at once and close the socket (fd -1 after), even while
 * another reference to it is still open (an io_uring poll being cancelled
 * holds one): when it returns, the port is free to bind again. A socket
 * systemd passed is only closed: systemd's copy must go on listening. */
void listener_stop(struct listener *l);
void listener_free(struct listener *l);         /* closes the socket; accepts NULL */
