/* SPDX-License-Identifier: MIT */
/* Listening sockets: opened from config entries (or adopted from systemd),
 * identified by (address, port) so a reload can keep unchanged ones. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include "config.h"
#include "util.h"

/* Per-listener settings shared by the listener and every connection it
 * accepted: a reload gives the listener a new one, connections keep theirs. */
struct lsettings {
        _Atomic unsigned refs;  /* connections of every worker hold references */
        struct listen_opts o;
};

struct lsettings *lsettings_new(const struct listen_opts *o);
struct lsettings *lsettings_ref(struct lsettings *s);
void lsettings_unref(struct lsettings *s);      /* accepts NULL */

/* Where a listener listens: what reloads compare. */
struct listen_key {
        int family;             /* AF_INET / AF_INET6; AF_UNSPEC: all addresses */
        uint8_t addr[16];
        uint16_t port;          /* as configured (0: ephemeral) */
};

struct listener {
        struct listener *next;
        int fd;
        uint64_t serial;        /* unique for the process's lifetime (per-listener counts) */
        struct listen_key key;
        uint16_t bound_port;    /* the port actually bound (differs when key.port is 0) */
        bool passed;            /* passed by systemd: never closed by muxd */
        bool claimed;           /* matched by a config entry (during a reload) */
        bool dual_stack;        /* an IPv6 wildcard socket that also takes IPv4 */
        struct lsettings *settings;
        char *name;             /* NULL if none */
        char addr_str[SOCKADDR_STR_MAX]; /* "[::]:8088" */
};

int listen_key_from_entry(const struct listen_entry *e, struct listen_key *ret);
bool listen_key_equal(const struct listen_key *a, const struct listen_key *b);

/* Create, bind and listen (no settings yet: the server assigns them).
 * Returns 0 or -errno (the caller reports it with the entry's address). */
int listener_open(const struct listen_key *k, struct listener **ret);
/* Wrap a listening socket systemd passed: its key comes from getsockname();
 * an IPv6 wildcard socket that is not IPV6_V6ONLY gets the key of "all
 * addresses". Sets O_NONBLOCK. */
int listener_adopt(int fd, const char *name, struct listener **ret);
/* May this listener serve an entry whose key is k? Exact (address, port) first;
 * an entry without address may also take a wildcard socket of either family. */
bool listener_matches(const struct listener *l, const struct listen_key *k, bool exact);
/* Would binding k fail with EADDRINUSE while l listens? (The same port, and
 * the same address or a wildcard on either side; port 0 never does.) */
bool listener_overlaps(const struct listener *l, const struct listen_key *k);
/* Bind a new socket for l's address and the port it had, after its own was
 * closed (undoing a reload). Returns 0 or -errno. */
int listener_reopen(struct listener *l);
void listener_free(struct listener *l);         /* closes the socket; accepts NULL */
