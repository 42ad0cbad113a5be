/* SPDX-License-Identifier: MIT */
/* Private to conn.c and conn_uring.c: what a connection does (framing,
 * replies, backpressure, closing: conn.c) is shared; only the I/O differs.
 * On a readiness loop conn.c calls recv()/send() when the loop says so; on
 * io_uring (CONN_URING) conn_uring.c keeps a multishot receive armed and
 * sends from a buffer of its own, one send in flight at a time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* Replies being sent on io_uring: they must stay put until the send's CQE. */
struct conn_tx {
        struct conn_tx *next;           /* on the worker's free list */
        /* A large backlog is sent from c->out's storage, swapped in here (and
         * this one's, emptied, becomes c->out's): two buffers that take turns
         * rather than one allocated per batch. ext.data NULL: from data[]. */
        struct buffer ext;
        uint32_t off, len;              /* unsent: [off, off + len) of ext.data or data[] */
        char data[];                    /* CONN_TX_SIZE - sizeof(struct conn_tx) bytes */
};

/* Output queued for c, written or not. */
static inline size_t conn_queued(const struct conn *c)
{
        return buffer_len(&c->out) + (c->tx ? c->tx->len : 0);
}

/* conn.c, for the I/O paths */
/* Answer n new bytes at data plus what waits in c->in. -errno if c was closed. */
int conn_serve(struct conn *c, const char *data, size_t n);
/* Some output was written: finish a closing connection whose output is all
 * gone, or resume a throttled one. -errno if c was closed. */
int conn_sent(struct conn *c);

#ifdef HAVE_LIBURING
/* conn_uring.c */
int conn_uring_setup(struct worker *w);         /* conn_io_setup() on io_uring */
void conn_uring_free(struct worker *w);         /* conn_io_free() */
int conn_uring_send(struct conn *c, const char *p, size_t n);  /* -errno: c was closed */
int conn_uring_read(struct conn *c, bool on);   /* arm or cancel the receive */
void conn_uring_close(struct conn *c);          /* after the shared part of conn_close() */
#endif
