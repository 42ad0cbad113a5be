/* SPDX-License-Identifier: MIT */
/* What muxbench sends and what it expects back: a generated request is
 * "ID-SEQ" padded with '.' to -s bytes, "\n" included, unique per request; a
 * fixed one is --request. The reply expected is --reply, or else an echo
 * server's: the request's line, the suffix, the line's own ending. Never
 * prints. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct bench;

/* After the options: the reply to --request when --reply was not given.
 * Returns 0 or -ENOMEM. */
int request_echo_reply(struct bench *b);
/* Before the run: the body template and the space for expected replies.
 * Returns 0 or -ENOMEM; request_free() frees what was set up. */
int request_setup(struct bench *b);
void request_free(struct bench *b);

/* The size of every request. */
size_t request_len(const struct bench *b);
/* The request with sequence number seq on connection id, into out (which
 * holds request_len() bytes); returns its length. */
size_t request_build(const struct bench *b, char *out, unsigned id, uint64_t seq);
/* The reply expected for that request (valid until the next call). */
const char *request_expected_reply(struct bench *b, unsigned id, uint64_t seq, size_t *len);
