/* SPDX-License-Identifier: MIT */
/* The client addresses of muxbench's connection mode (--source-addrs): each
 * new socket is bound to the next address of a list before its connect(),
 * with IP_BIND_ADDRESS_NO_PORT so that connect() picks the port for the
 * whole address pair. Every source address then has its own ephemeral ports
 * and its own TIME_WAIT sockets: from one address, ports and TIME_WAIT cap
 * the rate (near 14,000 connections/s on loopback) whatever the server.
 * Never prints. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* From 127.0.0.2 up to 127.255.255.254 (the /8's broadcast left out). */
#define SRCADDR_COUNT_MAX       16777213u
/* The default for an IPv4 loopback target: 127.0.0.2 to 127.0.0.254. */
#define SRCADDR_DEFAULT_FIRST   0x7f000002u
#define SRCADDR_DEFAULT_COUNT   253u
#define SRCADDR_STR_MAX         96

struct srcaddr_list {
        int family;             /* AF_INET, AF_INET6; AF_UNSPEC: not bound (the kernel chooses) */
        uint32_t first;         /* IPv4: the first address, host byte order */
        uint32_t count;         /* addresses in the list (IPv6: 1) */
        struct in6_addr v6;     /* IPv6: the address */
        uint64_t next;          /* the next to use, modulo count */
};

/* --source-addrs for a target of that family (AF_INET or AF_INET6):
 * "none" (not bound), a count N (IPv4 loopback, from 127.0.0.2), one
 * address, or an IPv4 range "A-B". Returns 0, or -EINVAL with the reason in
 * err (errlen bytes). */
int srcaddr_parse(const char *spec, int family, struct srcaddr_list *l, char *err, size_t errlen);
/* Without --source-addrs: 127.0.0.2-127.0.0.254 for an IPv4 loopback
 * target, else not bound (for ::1 the only loopback address is ::1). */
void srcaddr_default(const struct sockaddr *target, struct srcaddr_list *l);
/* The next address (port 0) into sa; false when sockets are not bound. */
bool srcaddr_next(struct srcaddr_list *l, struct sockaddr_storage *sa, socklen_t *len);
/* "127.0.0.2-127.0.0.254", "::1" or "none", for the report. */
void srcaddr_describe(const struct srcaddr_list *l, char *buf, size_t len);
