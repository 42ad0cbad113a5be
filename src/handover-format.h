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
 *             of unfinished input, bytes of output not yet written
 *   a string or bytes: u32 length, then that many bytes */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

#define HANDOVER_MAGIC          "MUXDSTAT"
#define HANDOVER_VERSION        1u
/* Bounds a reader enforces (a state beyond them is refused, not trusted). */
#define HANDOVER_MAX_LISTENERS  4096u
#define HANDOVER_MAX_CONNS      (1u << 22)
#define HANDOVER_MAX_NAME       255u
#define HANDOVER_MAX_BYTES      (4u << 20)      /* of one connection's input or output */

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
/* Decode data[0..len) into *st (freed with handover_state_free()). 0, or
 * -errno with why (of why_size bytes) saying what is wrong:
 * -EPROTONOSUPPORT for another format or version, -EBADMSG for a damaged
 * one. Nothing is allocated on failure. */
int handover_decode(const void *data, size_t len, struct handover_state *st, char *why, size_t why_size);
void handover_state_free(struct handover_state *st);
