/* SPDX-License-Identifier: MIT */
/* Message framing: where does the next message end, and is it too long?
 * Pure functions over bytes, shared by the daemon and its tests. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"

struct frame {
        size_t body_len;        /* message without its line ending */
        size_t eol_len;         /* 0, 1 ("\n") or 2 ("\r\n") */
        size_t consumed;        /* body_len + eol_len */
};

/* Look for the next message at the start of data[0..len).
 * line: a message ends at '\n'; its body (without "\n" or "\r\n") must be at
 *       most max_message bytes. At eof, trailing bytes without '\n' form a last
 *       message with eol_len 0.
 * raw:  the whole chunk is one message (at most max_message bytes).
 * Returns 1 and fills *f when a message is complete, 0 when more bytes are
 * needed, -EMSGSIZE when the message is already longer than max_message. */
int framing_next(enum muxd_framing framing, uint32_t max_message,
                 const char *data, size_t len, bool eof, struct frame *f);

/* Size of the reply to a message: body + suffix + line ending. */
static inline size_t framing_reply_len(const struct frame *f, size_t suffix_len)
{
        return f->body_len + suffix_len + f->eol_len;
}

/* Write the reply (body, suffix, the message's own line ending) to out, which
 * has room for framing_reply_len() bytes; returns the bytes written. */
size_t framing_build_reply(char *out, const char *msg, const struct frame *f,
                           const char *suffix, size_t suffix_len);

/* The error line sent before closing a client whose message is too long. */
#define FRAMING_TOO_LONG_REPLY "error: message too long\n"
