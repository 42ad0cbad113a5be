/* SPDX-License-Identifier: MIT */
/* Small helpers shared by muxd, muxc and muxbench. Never log. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))
#define _cleanup_(f) __attribute__((cleanup(f)))

/* CLOCK_MONOTONIC in nanoseconds and in milliseconds. */
uint64_t monotonic_ns(void);
uint64_t monotonic_ms(void);

/* strerror() for any thread: glibc's strerror() formats unknown numbers in a
 * static buffer, and the workers log from their own threads. */
const char *errno_text(int err);

/* "[::1]:8088", "127.0.0.1:8088"; IPv4-mapped IPv6 shown as IPv4.
 * buf must hold SOCKADDR_STR_MAX bytes; returns buf. */
#define SOCKADDR_STR_MAX 64
const char *sockaddr_to_string(const struct sockaddr *sa, socklen_t len, char *buf);

/* Escape bytes for a log line as the lesson's server prints what it reads:
 * printable ASCII as is, \n \r \t \\ and \xNN otherwise; at most outsz-1 chars,
 * "..." when cut. Returns out. */
char *escape_bytes(const char *in, size_t len, char *out, size_t outsz);

/* Parse a decimal number in [min, max]; -EINVAL / -ERANGE. */
int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret);

/* A server named on a command line: HOST:PORT, [IPv6]:PORT, :PORT or a bare
 * PORT (the last two mean localhost). */
struct hostport {
        char *host;             /* malloc'd, without brackets */
        unsigned port;          /* 1..65535 */
        bool numeric_host;      /* written in brackets: an address, not a name */
};

/* Returns 0; -EINVAL (the form is wrong) or -ERANGE (the port is wrong) with
 * *why saying what was expected; or -ENOMEM. */
int hostport_parse(const char *arg, struct hostport *ret, const char **why);

/* getaddrinfo() for a TCP connection to hp (a bracketed host is never looked
 * up by name). Returns getaddrinfo()'s result: 0 with *ret to free with
 * freeaddrinfo(), or an EAI_* code (EAI_SYSTEM: see errno). */
struct addrinfo;
int hostport_resolve(const struct hostport *hp, struct addrinfo **ret);
