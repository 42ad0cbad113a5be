/* SPDX-License-Identifier: MIT */
/* A byte queue for one connection: allocated on first use, released when it
 * empties, so an idle connection holds no buffer memory. Never logs. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct buffer {
        char *data;
        uint32_t off;   /* first unconsumed byte */
        uint32_t len;   /* bytes queued, starting at off */
        uint32_t cap;
};

#define BUFFER_INIT { NULL, 0, 0, 0 }

static inline size_t buffer_len(const struct buffer *b) { return b->len; }
static inline const char *buffer_head(const struct buffer *b) { return b->data + b->off; }

/* Append n bytes; -ENOMEM (buffer unchanged) if memory is short or the
 * result would exceed limit bytes (limit 0: UINT32_MAX). */
int buffer_append(struct buffer *b, const void *p, size_t n, size_t limit);
/* Drop n bytes from the front; frees the storage once empty. */
void buffer_consume(struct buffer *b, size_t n);
void buffer_free(struct buffer *b);     /* accepts an empty buffer */
