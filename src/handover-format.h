/* SPDX-License-Identifier: MIT */
/* The state one muxd image hands to the next (a live upgrade): every
 * listener and every client connection, in a versioned binary format that a
 * later version can still read or refuse cleanly. Encoding and decoding
 * only, into and from a byte buffer: no descriptor is touched, nothing is
 * logged (the caller says what went wrong, with the text handover_decode()
 * gives).
 *
 * Layout (all integers little endian):
 *   header    "MUXDSTAT" (8 bytes), u32 version, u32 reserved (0), u64 length
 *             of what follows the header
 *   listeners u32 count, then per listener: i32 fd, u64 serial, u32 family,
 *             16 bytes address, u16 port, u16 bound port, u8 flags
 *             (HANDOVER_L_*), string name
 *   conns     u32 count, then per connection: i32 fd, u32 listener (index
 *             above), u32 flags (HANDOVER_C_*), u64 milliseconds since its
 *             last activity, u64 milliseconds since it was accepted, bytes
 *             of unfinished input, bytes of output not yet written, and
 *             (version 2 on) u8 PROXY state (HANDOVER_P_*); unless none:
 *             the balancer's address, the client's address (as its PROXY
 *             header named it; all zero while the header is awaited), u64
 *             milliseconds left of its proxy_timeout (0 once admitted)
 *   a string or bytes: u32 length, then that many bytes
 *   an address: u16 family (AF_INET, AF_INET6; 0: none), 16 bytes address
 *             (IPv4: the first 4), u16 port, u32 IPv6 scope id
 *
 * Version 1 (muxd before PROXY connections could be handed over) is still
 * read: it is version 2 without the PROXY state. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

#define HANDOVER_MAGIC          "MUXDSTAT"
#define HANDOVER_VERSION        2u
#define HANDOVER_VERSION_MIN    1u      /* the oldest version still read */
/* Bounds a reader enforces (a state beyond them is refused, not trusted). */
#define HANDOVER_MAX_LISTENERS  4096u
#define HANDOVER_MAX_CONNS      (1u << 22)
#define HANDOVER_MAX_NAME       255u
#define HANDOVER_MAX_BYTES      (4u << 20)      /* of one connection's input or output */
#define HANDOVER_MAX_PROXY_WAIT_MS (3600u * 1000u) /* proxy_timeout's bound (config.h), in ms */

enum {
        HANDOVER_L_PASSED       = 1 << 0,       /* passed by systemd */
        HANDOVER_L_DUAL_STACK   = 1 << 1,
        HANDOVER_L_DRAINING     = 1 << 2,
        /* No socket (fd -1): a reload removed the listener while some of
         * its connections stayed; they refer to this entry. */
        HANDOVER_L_REMOVED      = 1 << 3,
};

enum {
        HANDOVER_C_EOF          = 1 << 0,       /* the client closed its sending side */
        HANDOVER_C_CLOSING      = 1 << 1,       /* close once the output is written */
        HANDOVER_C_THROTTLED    = 1 << 2,       /* reading paused by backpressure */
        HANDOVER_C_LINGER       = 1 << 3,       /* half-closed by muxd, discarding input */
        /* kept in systemd's fd store (preserve_connections) under the name
         * of its socket's inode: the new image removes it when it closes */
        HANDOVER_C_STORED       = 1 << 4,
};

enum {
        HANDOVER_P_NONE         = 0,            /* not behind a balancer */
        HANDOVER_P_ADMITTED     = 1,            /* its PROXY header admitted the client */
        HANDOVER_P_WAITING      = 2,            /* its header is still awaited (the input is its start) */
};

struct handover_addr {
        uint16_t family;                /* AF_INET, AF_INET6, 0: none */
        uint8_t addr[16];
        uint16_t port;
        uint32_t scope_id;
};

struct handover_listener {
        int fd;
        uint64_t serial;
        uint32_t family;                /* AF_INET, AF_INET6, AF_UNSPEC (all addresses) */
        uint8_t addr[16];
        uint16_t port, bound_port;
        uint8_t flags;                  /* HANDOVER_L_* */
        char *name;                     /* NULL: none */
};

struct handover_conn {
        int fd;
        uint32_t listener;              /* index into the listeners */
        uint32_t flags;                 /* HANDOVER_C_* */
        uint64_t idle_ms, age_ms;
        struct buffer in, out;
        uint8_t proxy;                  /* HANDOVER_P_* */
        struct handover_addr balancer, client;
        uint64_t proxy_wait_ms;         /* HANDOVER_P_WAITING: left of its proxy_timeout */
        /* Not in the format: the id in systemd's fd store of a connection
         * retaken from there after a crash (server-fdstore.c), else 0. */
        uint64_t store_id;
};

struct handover_state {
        struct handover_listener *listeners;
        size_t n_listeners;
        struct handover_conn *conns;
        size_t n_conns;
};

/* Append the encoded state to out. 0 or -ENOMEM (or -E2BIG past a bound). */
int handover_encode(const struct handover_state *st, struct buffer *out);
/* The same in an older format version (HANDOVER_VERSION_MIN..VERSION):
 * what it cannot hold is left out. For tests of the older reader. */
int handover_encode_version(const struct handover_state *st, uint32_t version, struct buffer *out);
/* Decode data[0..len) into *st (freed with handover_state_free()). 0, or
 * -errno with why (of why_size bytes) saying what is wrong:
 * -EPROTONOSUPPORT for another format or version, -EBADMSG for a damaged
 * one. Nothing is allocated on failure. */
int handover_decode(const void *data, size_t len, struct handover_state *st, char *why, size_t why_size);
void handover_state_free(struct handover_state *st);
