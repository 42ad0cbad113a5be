/* SPDX-License-Identifier: MIT */
/* HAProxy's PROXY protocol (doc/proxy-protocol.txt), versions 1 and 2: the
 * header a load balancer sends first on each connection to name the client
 * it relays. A pure parser over bytes: no I/O, never logs (the caller logs
 * the reason it returns, once, with the connection's context). */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Which versions a listener accepts (a bit mask: PROXY_ANY is both). */
enum proxy_version {
        PROXY_OFF = 0,
        PROXY_V1  = 1 << 0,
        PROXY_V2  = 1 << 1,
        PROXY_ANY = PROXY_V1 | PROXY_V2,
};

/* v1: a line of at most 107 bytes, CRLF included (the spec's bound). */
#define PROXY_V1_MAX 107u
/* v2: the 16 fixed bytes, then the address block and TLVs. The length field
 * allows 65535 bytes; muxd reads no TLV, so it accepts at most
 * PROXY_V2_MAX in all (IPv6 addresses take 36 bytes: 1996 are left for TLVs
 * a balancer may add, e.g. HAProxy's unique-id, ALPN, authority, SSL). A
 * longer header is malformed: a client cannot make muxd buffer more. */
#define PROXY_V2_FIXED 16u
#define PROXY_V2_MAX   2048u
/* The most bytes a header can take: what a connection buffers at most
 * before proxy_parse() gives an answer other than "more". */
#define PROXY_HEADER_MAX PROXY_V2_MAX

union proxy_addr {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
};

struct proxy_header {
        enum proxy_version version;     /* PROXY_V1 or PROXY_V2 */
        /* true: the header names no client (v2 LOCAL, a balancer's health
         * check; v1 UNKNOWN; v2 PROXY with family UNSPEC or UNIX, or a
         * transport other than STREAM): the connection's own peer is the
         * client. false: src / dst hold the client's and the address it
         * connected to (AF_INET or AF_INET6, ports set). */
        bool local;
        union proxy_addr src, dst;
        /* on -EBADMSG / -EPROTO: why, a static string for a log line */
        const char *reason;
};

/* Parse the header at the start of buf[0..n) (the first bytes a connection
 * received; more may follow it). allowed: the versions the listener accepts
 * (not PROXY_OFF). Returns:
 *   > 0        the header is complete: its length (the bytes after it are the
 *              client's own), *ret filled
 *   0          need more bytes: what is there is a valid beginning (so the
 *              caller keeps at most PROXY_HEADER_MAX bytes)
 *   -EBADMSG   not a valid header (ret->reason says why)
 *   -EPROTO    a valid signature of a version the listener does not accept
 * A wrong first byte is answered at once, never after a wait. */
int proxy_parse(const void *buf, size_t n, enum proxy_version allowed, struct proxy_header *ret);

/* "off", "v1", "v2", "any" */
const char *proxy_version_to_string(enum proxy_version v);
int proxy_version_from_string(const char *s, enum proxy_version *ret);     /* -EINVAL if unknown */
