/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench-request.h"

int request_echo_reply(struct bench *b)
{
        size_t eol = 0, body;

        if (!b->request || b->reply)
                return 0;
        /* an echo server's answer: the line, the suffix, the line's own ending */
        if (b->request[b->request_len - 1] == '\n')
                eol = b->request_len >= 2 && b->request[b->request_len - 2] == '\r' ? 2 : 1;
        body = b->request_len - eol;
        b->reply_len = body + b->suffix_len + eol;
        b->reply = malloc(b->reply_len + 1);
        if (!b->reply)
                return -ENOMEM;
        memcpy(b->reply, b->request, body);
        memcpy(b->reply + body, b->suffix, b->suffix_len);
        memcpy(b->reply + body + b->suffix_len, b->request + body, eol);
        b->reply[b->reply_len] = '\0';
        return 0;
}

int request_setup(struct bench *b)
{
        size_t max_reply;

        if (!b->request) {
                b->body_len = b->size - 1;
                b->body = malloc(b->body_len + 1);
                if (!b->body)
                        return -ENOMEM;
                memset(b->body, '.', b->body_len);
        }
        max_reply = b->reply ? b->reply_len : b->body_len + b->suffix_len + 1;
        b->expect = malloc(max_reply + 1);
        if (!b->expect)
                return -ENOMEM;
        b->reply_resync = b->reply ? b->reply[b->reply_len - 1] == '\n' : true;
        return 0;
}

void request_free(struct bench *b)
{
        free(b->body);
        b->body = NULL;
        free(b->expect);
        b->expect = NULL;
}

size_t request_len(const struct bench *b)
{
        return b->request ? b->request_len : b->body_len + 1;
}

/* v in decimal, written so that it ends just before end; returns its start.
 * By hand: it runs twice per request (the request, then the reply it
 * expects), and snprintf() there took half of muxbench's user time. */
static char *request_format_decimal(char *end, uint64_t v)
{
        do {
                *--end = (char) ('0' + v % 10);
                v /= 10;
        } while (v);
        return end;
}

/* A generated request keeps the last digits of "ID-SEQ" if it does not fit:
 * unique per request whenever the size allows, so a reply sent to the wrong
 * request or twice is noticed. */
size_t request_build(const struct bench *b, char *out, unsigned id, uint64_t seq)
{
        char tag[48], *end = tag + sizeof(tag), *p;
        size_t n;

        if (b->request) {
                memcpy(out, b->request, b->request_len);
                return b->request_len;
        }
        memcpy(out, b->body, b->body_len);
        p = request_format_decimal(end, seq);
        *--p = '-';
        p = request_format_decimal(p, id);
        n = (size_t) (end - p);
        if (n <= b->body_len)
                memcpy(out, p, n);
        else
                memcpy(out, end - b->body_len, b->body_len);
        out[b->body_len] = '\n';
        return b->body_len + 1;
}

const char *request_expected_reply(struct bench *b, unsigned id, uint64_t seq, size_t *len)
{
        if (b->reply) {
                *len = b->reply_len;
                return b->reply;
        }
        request_build(b, b->expect, id, seq);
        memcpy(b->expect + b->body_len, b->suffix, b->suffix_len);
        b->expect[b->body_len + b->suffix_len] = '\n';
        *len = b->body_len + b->suffix_len + 1;
        return b->expect;
}
