/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the message framer (framing.c) driven the way a
 * connection drives it (conn.c: conn_read() and conn_process()), over a byte
 * stream cut into arbitrary reads, compared with an independent reference
 * framer written here from the protocol (SPEC §4, framing.h).
 *
 * Input layout:
 *   byte 0       flags: bit 0 raw framing, bit 1 oneshot mode, bit 2 the
 *                client closes (EOF) after the stream
 *   byte 1       max_message - 1 (max_message 1..64: limits are hit)
 *   byte 2       suffix length (0..7), then that many suffix bytes
 *   byte         number of read sizes k (0..31), then k bytes: read sizes 1..256,
 *                used in turn (k = 0: the whole stream in one read)
 *   the rest     the byte stream the client sends
 *
 * The driver copies conn_read()'s logic: a read goes through framing_next()
 * straight from the read buffer while no partial message is kept, otherwise
 * it is appended to the connection's input buffer first; the unconsumed tail
 * is kept; on a too-long message the error line is queued and nothing more is
 * read; EOF is a last read of 0 bytes. In raw framing a read is at most
 * max_message + 1 bytes (conn_read()'s "want"), so longer reads are cut.
 *
 * The reference, for line framing, depends on the whole stream only (never on
 * where the reads cut it): the driver's output with the fuzzer's reads and
 * with the whole stream in one read must both equal it. For raw framing every
 * read is one message: reply = read + suffix, or the error line if the read
 * is longer than max_message. Any difference aborts. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "framing.h"

#define CHECK(cond) do { \
        if (!(cond)) { \
                fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
                abort(); \
        } \
} while (0)

#define TOO_LONG FRAMING_TOO_LONG_REPLY
#define TOO_LONG_LEN (sizeof(TOO_LONG) - 1)

struct params {
        enum muxd_framing framing;
        enum muxd_mode mode;
        bool eof;
        uint32_t max_message;
        const uint8_t *suffix;
        size_t suffix_len;
        const uint8_t *sizes;
        size_t n_sizes;
        const uint8_t *stream;
        size_t stream_len;
};

/* What a client receives (after the greeting) and how the connection ends. */
struct result {
        uint8_t *out;
        size_t len, cap;
        size_t messages;        /* messages framed */
        bool too_long;          /* the error line was sent */
        bool closing;           /* muxd closes after the output is flushed */
};

static void out_reserve(struct result *r, size_t n)
{
        if (r->len + n > r->cap) {
                size_t cap = r->cap ? r->cap : 256;

                while (cap < r->len + n)
                        cap *= 2;
                r->out = realloc(r->out, cap);
                CHECK(r->out != NULL);
                r->cap = cap;
        }
}

static void out_append(struct result *r, const void *p, size_t n)
{
        out_reserve(r, n);
        if (n)
                memcpy(r->out + r->len, p, n);
        r->len += n;
}

/* ---- the daemon's way (conn.c) ------------------------------------------- */

/* conn_process(): frame messages from data, build the replies; returns the
 * bytes consumed. */
static size_t drv_process(const struct params *pr, struct result *r, const char *data,
                          size_t len, bool eof)
{
        size_t pos = 0;

        while (pos < len && !r->closing) {
                struct frame f;
                int k = framing_next(pr->framing, pr->max_message, data + pos, len - pos, eof, &f);

                if (k == 0)
                        break;
                if (k < 0) {
                        out_append(r, TOO_LONG, TOO_LONG_LEN);
                        r->too_long = true;
                        r->closing = true;
                        return len;
                }
                CHECK(k == 1);
                /* the frame is within the data and consistent */
                CHECK(f.eol_len <= 2);
                CHECK(f.consumed == f.body_len + f.eol_len);
                CHECK(f.consumed >= 1 && f.consumed <= len - pos);
                CHECK(f.body_len <= pr->max_message);
                r->messages++;
                if (pr->mode == MODE_ONESHOT) {
                        r->closing = true;
                        return len;
                }
                {
                        /* as conn_process(): grow the output, build the reply in place */
                        size_t need = framing_reply_len(&f, pr->suffix_len);

                        out_reserve(r, need);
                        CHECK(framing_build_reply((char *) r->out + r->len, data + pos, &f,
                                                  (const char *) pr->suffix, pr->suffix_len) == need);
                        r->len += need;
                }
                pos += f.consumed;
        }
        return pos;
}

/* conn_read() for one read of n bytes (n == 0: EOF). */
static void drv_read(const struct params *pr, struct result *r, struct buffer *in,
                     const char *rbuf, size_t n)
{
        bool eof = n == 0;
        size_t used;

        if (buffer_len(in) == 0) {
                used = drv_process(pr, r, rbuf, n, eof);
                CHECK(used <= n);
                if (used < n && !r->closing)
                        CHECK(buffer_append(in, rbuf + used, n - used, 0) == 0);
        } else {
                CHECK(buffer_append(in, rbuf, n, 0) == 0);
                used = drv_process(pr, r, buffer_head(in), buffer_len(in), eof);
                CHECK(used <= buffer_len(in));
                buffer_consume(in, used);
        }
        if (eof || r->closing) {
                r->closing = true;
                buffer_free(in);
        }
        /* what is kept is never a complete message: the framer said "more" */
        if (!r->closing && pr->framing == FRAMING_LINE) {
                CHECK(buffer_len(in) <= (size_t) pr->max_message + 1);
                CHECK(buffer_len(in) == 0 || !memchr(buffer_head(in), '\n', buffer_len(in)));
        }
        if (pr->framing == FRAMING_RAW)
                CHECK(buffer_len(in) == 0);
}

/* The whole conversation; reads of the given sizes (n_sizes 0: one read). */
static void drive(const struct params *pr, const uint8_t *sizes, size_t n_sizes,
                  struct result *r)
{
        struct buffer in = BUFFER_INIT;
        size_t pos = 0, k = 0;
        size_t want = pr->framing == FRAMING_RAW ? (size_t) pr->max_message + 1 : SIZE_MAX;

        while (pos < pr->stream_len && !r->closing) {
                size_t n = n_sizes ? (size_t) sizes[k++ % n_sizes] + 1 : pr->stream_len;
                char *rbuf;

                if (n > pr->stream_len - pos)
                        n = pr->stream_len - pos;
                if (n > want)
                        n = want;
                /* a separate allocation per read: ASan sees any access past it */
                rbuf = malloc(n);
                CHECK(rbuf != NULL);
                memcpy(rbuf, pr->stream + pos, n);
                drv_read(pr, r, &in, rbuf, n);
                free(rbuf);
                pos += n;
        }
        if (pr->eof && !r->closing)
                drv_read(pr, r, &in, NULL, 0);
        buffer_free(&in);
}

/* ---- the reference --------------------------------------------------------- */

static void ref_message(const struct params *pr, struct result *r, const uint8_t *body,
                        size_t body_len, const uint8_t *eol, size_t eol_len)
{
        r->messages++;
        if (pr->mode == MODE_ONESHOT) {
                r->closing = true;
                return;
        }
        out_append(r, body, body_len);
        out_append(r, pr->suffix, pr->suffix_len);
        out_append(r, eol, eol_len);
}

static void ref_too_long(struct result *r)
{
        out_append(r, TOO_LONG, TOO_LONG_LEN);
        r->too_long = true;
        r->closing = true;
}

/* Line framing from the whole stream: a message ends at "\n" (its ending is
 * "\r\n" or "\n"); its body may have max_message bytes. Without a "\n", the
 * tail is a message at EOF; before EOF it is already too long once it cannot
 * become a body of max_message bytes (more than max_message + 1 bytes, or
 * max_message + 1 bytes not ending with the '\r' of a "\r\n"). */
static void reference_line(const struct params *pr, struct result *r)
{
        const uint8_t *s = pr->stream;
        size_t len = pr->stream_len, pos = 0, max = pr->max_message;

        while (pos < len && !r->closing) {
                const uint8_t *nl = memchr(s + pos, '\n', len - pos);

                if (nl) {
                        size_t end = (size_t) (nl - s);         /* index of '\n' */
                        size_t eol = (end > pos && s[end - 1] == '\r') ? 2 : 1;
                        size_t body = end + 1 - eol - pos;

                        if (body > max) {
                                ref_too_long(r);
                                break;
                        }
                        ref_message(pr, r, s + pos, body, s + pos + body, eol);
                        pos = end + 1;
                        continue;
                }
                /* the tail, no newline */
                {
                        size_t tail = len - pos;

                        if (tail > max + 1 || (tail == max + 1 && s[len - 1] != '\r')) {
                                ref_too_long(r);
                                break;
                        }
                        if (pr->eof) {
                                if (tail > max)
                                        ref_too_long(r);
                                else
                                        ref_message(pr, r, s + pos, tail, NULL, 0);
                        }
                        break;
                }
        }
        if (pr->eof)
                r->closing = true;
}

/* Raw framing: each read is one message. */
static void reference_raw(const struct params *pr, struct result *r)
{
        size_t pos = 0, k = 0;

        while (pos < pr->stream_len && !r->closing) {
                size_t n = pr->n_sizes ? (size_t) pr->sizes[k++ % pr->n_sizes] + 1 : pr->stream_len;

                if (n > pr->stream_len - pos)
                        n = pr->stream_len - pos;
                if (n > (size_t) pr->max_message) {
                        /* the daemon reads max_message + 1 bytes: too long */
                        ref_too_long(r);
                        break;
                }
                ref_message(pr, r, pr->stream + pos, n, NULL, 0);
                pos += n;
        }
        if (pr->eof)
                r->closing = true;
}

/* ---------------------------------------------------------------------------- */

static void dump(const char *what, const struct result *r)
{
        fprintf(stderr, "%s: %zu bytes, %zu messages, too_long %d, closing %d: \"",
                what, r->len, r->messages, r->too_long, r->closing);
        for (size_t i = 0; i < r->len; i++) {
                uint8_t c = r->out[i];

                if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
                        fputc(c, stderr);
                else
                        fprintf(stderr, "\\x%02x", c);
        }
        fputs("\"\n", stderr);
}

static void expect_same(const struct result *a, const char *an, const struct result *b,
                        const char *bn)
{
        if (a->len == b->len && (a->len == 0 || memcmp(a->out, b->out, a->len) == 0) &&
            a->messages == b->messages && a->too_long == b->too_long && a->closing == b->closing)
                return;
        dump(an, a);
        dump(bn, b);
        abort();
}

static bool parse_params(const uint8_t *data, size_t size, struct params *p)
{
        size_t i = 0;

        if (size < 4)
                return false;
        p->framing = (data[0] & 1) ? FRAMING_RAW : FRAMING_LINE;
        p->mode = (data[0] & 2) ? MODE_ONESHOT : MODE_ECHO;
        p->eof = (data[0] & 4) != 0;
        p->max_message = (uint32_t) (data[1] % 64) + 1;
        p->suffix_len = data[2] % 8;
        i = 3;
        if (size - i < p->suffix_len + 1)
                return false;
        p->suffix = data + i;
        i += p->suffix_len;
        p->n_sizes = data[i++] % 32;
        if (size - i < p->n_sizes)
                return false;
        p->sizes = data + i;
        i += p->n_sizes;
        p->stream = data + i;
        p->stream_len = size - i;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct params p;
        struct result got = {0}, whole = {0}, ref = {0};

        if (!parse_params(data, size, &p))
                return -1;

        drive(&p, p.sizes, p.n_sizes, &got);
        if (p.framing == FRAMING_LINE) {
                reference_line(&p, &ref);
                expect_same(&got, "daemon (reads as given)", &ref, "reference");
                /* the split points do not matter */
                drive(&p, NULL, 0, &whole);
                expect_same(&whole, "daemon (one read)", &ref, "reference");
        } else {
                reference_raw(&p, &ref);
                expect_same(&got, "daemon", &ref, "reference");
        }
        /* the error line, if any, is the very last thing sent */
        if (got.too_long)
                CHECK(got.len >= TOO_LONG_LEN &&
                      memcmp(got.out + got.len - TOO_LONG_LEN, TOO_LONG, TOO_LONG_LEN) == 0);

        free(got.out);
        free(whole.out);
        free(ref.out);
        return 0;
}
