/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"

#define BUFFER_MIN_CAP 512u

int buffer_append(struct buffer *b, const void *p, size_t n, size_t limit)
{
        size_t need;

        if (n == 0)
                return 0;
        if (limit == 0 || limit > UINT32_MAX)
                limit = UINT32_MAX;
        if (b->len > limit || n > limit - b->len)
                return -ENOMEM;
        need = (size_t) b->len + n;

        if ((size_t) b->off + need > b->cap) {
                if (need <= b->cap) {
                        /* enough room once the consumed head is reclaimed */
                        memmove(b->data, b->data + b->off, b->len);
                } else {
                        size_t cap = b->cap ? b->cap : BUFFER_MIN_CAP;
                        char *d;

                        while (cap < need)
                                cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
                        if (cap > limit)
                                cap = limit;
                        if (b->off == 0) {
                                d = realloc(b->data, cap);
                                if (!d)
                                        return -ENOMEM;
                        } else {
                                d = malloc(cap);
                                if (!d)
                                        return -ENOMEM;
                                memcpy(d, b->data + b->off, b->len);
                                free(b->data);
                        }
                        b->data = d;
                        b->cap = (uint32_t) cap;
                }
                b->off = 0;
        }
        memcpy(b->data + b->off + b->len, p, n);
        b->len += (uint32_t) n;
        return 0;
}

void buffer_consume(struct buffer *b, size_t n)
{
        if (n >= b->len) {
                buffer_free(b);
                return;
        }
        b->off += (uint32_t) n;
        b->len -= (uint32_t) n;
}

void buffer_free(struct buffer *b)
{
        free(b->data);
        *b = (struct buffer) BUFFER_INIT;
}
