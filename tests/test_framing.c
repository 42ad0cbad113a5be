/* SPDX-License-Identifier: MIT */
/* Unit tests for src/framing.c: where messages end, which are too long, and
 * the shape of a reply. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "framing.h"
#include "testutil.h"
#include "testmain.h"

#define SUFFIX "hi..."
#define SUFFIX_LEN (sizeof(SUFFIX) - 1)

/* data as a C literal, for failure messages */
static const char *escaped(const char *d, size_t len)
{
        static char out[256];
        size_t o = 0;

        for (size_t i = 0; i < len && o + 5 < sizeof(out); i++) {
                unsigned char c = (unsigned char) d[i];

                if (c == '\n')
                        o += (size_t) snprintf(out + o, sizeof(out) - o, "\\n");
                else if (c == '\r')
                        o += (size_t) snprintf(out + o, sizeof(out) - o, "\\r");
                else if (c < 0x20 || c >= 0x7f)
                        o += (size_t) snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
                else
                        out[o++] = (char) c;
        }
        out[o] = '\0';
        return out;
}

/* framing_next on a C string, expecting a complete message. */
static void expect_frame(enum muxd_framing fr, uint32_t max, const char *data, size_t len,
                         bool eof, size_t body, size_t eol)
{
        struct frame f = { 99, 99, 99 };
        int r = framing_next(fr, max, data, len, eof, &f);

        if (r != 1)
                fail_msg("framing_next(\"%s\", max %u, eof %d) = %d, expected 1",
                         escaped(data, len), max, eof, r);
        assert_int_equal(f.body_len, body);
        assert_int_equal(f.eol_len, eol);
        assert_int_equal(f.consumed, body + eol);
}

static void expect_result(enum muxd_framing fr, uint32_t max, const char *data, size_t len,
                          bool eof, int want)
{
        struct frame f = { 99, 99, 99 };
        int r = framing_next(fr, max, data, len, eof, &f);

        if (r != want)
                fail_msg("framing_next(\"%s\", max %u, eof %d) = %d, expected %d",
                         escaped(data, len), max, eof, r, want);
}

#define LINE(max, s, eof, body, eol) expect_frame(FRAMING_LINE, max, s, sizeof(s) - 1, eof, body, eol)
#define LINE_R(max, s, eof, want) expect_result(FRAMING_LINE, max, s, sizeof(s) - 1, eof, want)

static void test_line_endings(void **state)
{
        (void) state;
        LINE(100, "abc\n", false, 3, 1);
        LINE(100, "abc\r\n", false, 3, 2);
        LINE(100, "a\rb\n", false, 3, 1);               /* a lone \r belongs to the body */
        LINE(100, "a\rb\r\n", false, 3, 2);
        LINE(100, "\ra\n", false, 2, 1);
        LINE(100, "ab\r\r\n", false, 3, 2);             /* only the last \r is the ending */
        LINE(100, "\n", false, 0, 1);                   /* empty line */
        LINE(100, "\r\n", false, 0, 2);
        LINE(100, "abc\nrest", false, 3, 1);            /* only the first message */
        LINE(100, "abc\n", true, 3, 1);                 /* eof changes nothing when complete */
}

static void test_line_partial(void **state)
{
        (void) state;
        LINE_R(100, "", false, 0);
        LINE_R(100, "abc", false, 0);
        LINE_R(100, "abc\r", false, 0);
        LINE_R(100, "\r", false, 0);
        LINE_R(100, "a\rb", false, 0);
}

static void test_line_several(void **state)
{
        static const char in[] = "one\ntwo\r\n\n\r\nthree\nfo\rur\r\npartial";
        static const struct { const char *body; size_t eol; } want[] = {
                { "one", 1 }, { "two", 2 }, { "", 1 }, { "", 2 }, { "three", 1 }, { "fo\rur", 2 },
        };
        size_t pos = 0, len = sizeof(in) - 1;
        struct frame f;

        (void) state;
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                assert_int_equal(framing_next(FRAMING_LINE, 100, in + pos, len - pos, false, &f), 1);
                assert_int_equal(f.body_len, strlen(want[i].body));
                assert_memory_equal(in + pos, want[i].body, f.body_len);
                assert_int_equal(f.eol_len, want[i].eol);
                assert_int_equal(f.consumed, f.body_len + f.eol_len);
                pos += f.consumed;
        }
        /* the trailing partial line: nothing yet, then a message at eof */
        assert_int_equal(framing_next(FRAMING_LINE, 100, in + pos, len - pos, false, &f), 0);
        assert_int_equal(framing_next(FRAMING_LINE, 100, in + pos, len - pos, true, &f), 1);
        assert_int_equal(f.body_len, 7);
        assert_int_equal(f.eol_len, 0);
        assert_int_equal(f.consumed, 7);
        assert_memory_equal(in + pos, "partial", 7);
        pos += f.consumed;
        assert_int_equal(pos, len);
        assert_int_equal(framing_next(FRAMING_LINE, 100, in + pos, 0, true, &f), 0);
}

static void test_line_split_everywhere(void **state)
{
        static const char in[] = "hello\r\nworld\n";
        struct frame f;

        (void) state;
        /* the first message is complete from byte 7 on, never before */
        for (size_t k = 0; k <= sizeof(in) - 1; k++) {
                int r = framing_next(FRAMING_LINE, 100, in, k, false, &f);

                if (k < 7) {
                        if (r != 0)
                                fail_msg("prefix %zu: %d, expected 0", k, r);
                } else {
                        if (r != 1)
                                fail_msg("prefix %zu: %d, expected 1", k, r);
                        assert_int_equal(f.body_len, 5);
                        assert_int_equal(f.eol_len, 2);
                        assert_int_equal(f.consumed, 7);
                }
        }
        /* and the second from byte 13 on, framed from where the first ended */
        for (size_t k = 7; k <= sizeof(in) - 1; k++) {
                int r = framing_next(FRAMING_LINE, 100, in + 7, k - 7, false, &f);

                assert_int_equal(r, k < 13 ? 0 : 1);
                if (r == 1) {
                        assert_int_equal(f.body_len, 5);
                        assert_int_equal(f.eol_len, 1);
                        assert_int_equal(f.consumed, 6);
                }
        }
}

static void test_line_max_edges(void **state)
{
        (void) state;
        /* max 8: a body of exactly 8 is fine with either ending */
        LINE(8, "12345678\n", false, 8, 1);
        LINE(8, "12345678\r\n", false, 8, 2);
        LINE(8, "1234567\r\r\n", false, 8, 2);
        LINE(8, "1234567\r\n", false, 7, 2);
        /* 9 is too long, with or without its newline */
        LINE_R(8, "123456789\n", false, -EMSGSIZE);
        LINE_R(8, "123456789\r\n", false, -EMSGSIZE);
        LINE_R(8, "12345678\r\r\n", false, -EMSGSIZE);
        LINE_R(8, "123456789", false, -EMSGSIZE);
        LINE_R(8, "12345678x", false, -EMSGSIZE);
        LINE_R(8, "123456789abcdefgh", false, -EMSGSIZE);
        LINE_R(8, "123456789abcdefgh\n", false, -EMSGSIZE);
        LINE_R(8, "123456789\r", false, -EMSGSIZE);
        /* 8 bytes then \r: the \r may start "\r\n", so wait */
        LINE_R(8, "12345678\r", false, 0);
        /* ... unless what follows the \r is not \n */
        LINE_R(8, "12345678\rx", false, -EMSGSIZE);
        LINE_R(8, "12345678\r\r", false, -EMSGSIZE);
        /* a body of exactly 8 without newline yet: wait */
        LINE_R(8, "12345678", false, 0);
        /* max 0: only empty lines */
        LINE(0, "\n", false, 0, 1);
        LINE(0, "\r\n", false, 0, 2);
        LINE_R(0, "\r", false, 0);
        LINE_R(0, "a\n", false, -EMSGSIZE);
        LINE_R(0, "a", false, -EMSGSIZE);
        LINE_R(0, "\rx", false, -EMSGSIZE);
        /* a too-long line after a good one is found once the good one is consumed */
        LINE(4, "abc\n123456\n", false, 3, 1);
        {
                static const char s[] = "abc\n123456\n";
                expect_result(FRAMING_LINE, 4, s + 4, sizeof(s) - 1 - 4, false, -EMSGSIZE);
        }
}

static void test_line_eof(void **state)
{
        (void) state;
        LINE(100, "abc", true, 3, 0);           /* trailing partial: a last message */
        LINE(100, "a\rb", true, 3, 0);
        LINE(100, "\r", true, 1, 0);            /* no newline follows: \r is the body */
        LINE_R(100, "", true, 0);               /* eof with nothing: no message */
        LINE(8, "12345678", true, 8, 0);        /* exactly max at eof */
        LINE_R(8, "123456789", true, -EMSGSIZE);
        /* max bytes then \r, and then eof: the newline will never come, so the
         * body is 9 bytes long: too long */
        LINE_R(8, "12345678\r", true, -EMSGSIZE);
        LINE_R(0, "\r", true, -EMSGSIZE);
        LINE(1, "\r", true, 1, 0);
}

static void test_raw(void **state)
{
        struct frame f;

        (void) state;
        expect_frame(FRAMING_RAW, 100, "abc", 3, false, 3, 0);
        expect_frame(FRAMING_RAW, 100, "a\nb\r\n", 5, false, 5, 0);    /* the chunk is the message */
        expect_frame(FRAMING_RAW, 100, "abc", 3, true, 3, 0);
        expect_frame(FRAMING_RAW, 8, "12345678", 8, false, 8, 0);
        expect_result(FRAMING_RAW, 8, "123456789", 9, false, -EMSGSIZE);
        expect_result(FRAMING_RAW, 8, "12345678\n", 9, false, -EMSGSIZE);
        expect_result(FRAMING_RAW, 8, "123456789", 9, true, -EMSGSIZE);
        assert_int_equal(framing_next(FRAMING_RAW, 8, "", 0, false, &f), 0);
        assert_int_equal(framing_next(FRAMING_RAW, 8, "", 0, true, &f), 0);
}

static void check_reply(enum muxd_framing fr, const char *in, const char *suffix,
                        const char *want)
{
        struct frame f;
        char out[256];
        size_t n, slen = strlen(suffix);

        memset(out, '#', sizeof(out));
        assert_int_equal(framing_next(fr, 100, in, strlen(in), false, &f), 1);
        assert_int_equal(framing_reply_len(&f, slen), strlen(want));
        n = framing_build_reply(out, in, &f, suffix, slen);
        assert_int_equal(n, strlen(want));
        assert_memory_equal(out, want, n);
        assert_int_equal(out[n], '#');  /* nothing written past the reply */
}

static void test_build_reply(void **state)
{
        (void) state;
        check_reply(FRAMING_LINE, "abc\r\n", SUFFIX, "abchi...\r\n");
        check_reply(FRAMING_LINE, "abc\n", SUFFIX, "abchi...\n");
        check_reply(FRAMING_LINE, "abc\nxyz\n", SUFFIX, "abchi...\n");
        check_reply(FRAMING_LINE, "a\rc\n", SUFFIX, "a\rchi...\n");
        check_reply(FRAMING_LINE, "\n", SUFFIX, "hi...\n");
        check_reply(FRAMING_LINE, "\r\n", SUFFIX, "hi...\r\n");
        check_reply(FRAMING_RAW, "abc", SUFFIX, "abchi...");
        check_reply(FRAMING_RAW, "ab\n", SUFFIX, "ab\nhi...");
        /* empty suffix: the message comes back as it was */
        check_reply(FRAMING_LINE, "abc\r\n", "", "abc\r\n");
        check_reply(FRAMING_LINE, "abc\n", "", "abc\n");
        check_reply(FRAMING_RAW, "abc", "", "abc");
        assert_string_equal(FRAMING_TOO_LONG_REPLY, "error: message too long\n");
}

/* ---- the reference framer ------------------------------------------------ */

/* Written from the specification, as simply as possible: the whole buffer is
 * searched, a message ends at '\n' with an optional '\r' before it, a body
 * longer than max is an error as soon as that is certain (more than max body
 * bytes that are not a possible "\r" ending, or eof). */
static int ref_next(uint32_t max, const char *d, size_t len, bool eof, struct frame *f)
{
        for (size_t i = 0; i < len; i++) {
                if (d[i] == '\n') {
                        size_t eol = (i > 0 && d[i - 1] == '\r') ? 2 : 1;

                        if (i + 1 - eol > max)
                                return -EMSGSIZE;
                        f->body_len = i + 1 - eol;
                        f->eol_len = eol;
                        f->consumed = i + 1;
                        return 1;
                }
        }
        if (len > (size_t) max + 1)
                return -EMSGSIZE;
        if (len == (size_t) max + 1 && (d[max] != '\r' || eof))
                return -EMSGSIZE;
        if (len > 0 && eof) {
                f->body_len = len;
                f->eol_len = 0;
                f->consumed = len;
                return 1;
        }
        return 0;
}

/* Every string over { 'a', '\r', '\n' } up to 7 bytes, every small max, with
 * and without eof: framing_next and the reference agree. */
static void test_exhaustive_small(void **state)
{
        static const char alphabet[3] = { 'a', '\r', '\n' };
        char s[8];

        (void) state;
        for (size_t len = 0; len <= 7; len++) {
                size_t total = 1;

                for (size_t i = 0; i < len; i++)
                        total *= 3;
                for (size_t code = 0; code < total; code++) {
                        size_t c = code;

                        for (size_t i = 0; i < len; i++) {
                                s[i] = alphabet[c % 3];
                                c /= 3;
                        }
                        for (uint32_t max = 0; max <= 6; max++) {
                                for (int eof = 0; eof <= 1; eof++) {
                                        struct frame a = { 0, 0, 0 }, b = { 0, 0, 0 };
                                        int ra = framing_next(FRAMING_LINE, max, s, len, eof, &a);
                                        int rb = ref_next(max, s, len, eof, &b);

                                        if (ra == rb && (ra != 1 || (a.body_len == b.body_len &&
                                                                     a.eol_len == b.eol_len &&
                                                                     a.consumed == b.consumed)))
                                                continue;
                                        fail_msg("\"%s\" max %u eof %d: framing_next %d (body %zu eol %zu), "
                                                 "reference %d (body %zu eol %zu)", escaped(s, len), max, eof,
                                                 ra, a.body_len, a.eol_len, rb, b.body_len, b.eol_len);
                                }
                        }
                }
        }
}

/* The whole stream framed at once by the reference: the expected output. */
static size_t ref_replies(uint32_t max, const char *in, size_t len, char *out)
{
        size_t pos = 0, o = 0;
        struct frame f;

        while (pos < len) {
                int r = ref_next(max, in + pos, len - pos, true, &f);

                assert_int_equal(r, 1);
                o += framing_build_reply(out + o, in + pos, &f, SUFFIX, SUFFIX_LEN);
                pos += f.consumed;
        }
        return o;
}

/* A random body byte: never '\n', often '\r'. */
static char random_body_byte(void)
{
        static const char set[] = "abcxyz \t\r\r\x01\xff";

        return set[rng_below(sizeof(set) - 1)];
}

/* Random lines (lengths up to max, random endings), split at random points
 * and fed to framing_next on an accumulating buffer, as the daemon does:
 * the replies equal the reference's, and no message is ever too long. */
static void test_random_lines(void **state)
{
        enum { ITER = 2000, STREAM_MAX = 8192 };
        static char in[STREAM_MAX], acc[STREAM_MAX], want[4 * STREAM_MAX], got[4 * STREAM_MAX];

        (void) state;
        rng_state = 0x2545f4914f6cdd1dull;
        for (int it = 0; it < ITER; it++) {
                uint64_t seed = rng_state;
                uint32_t max = (uint32_t) rng_below(40);
                size_t len = 0, want_len, got_len = 0, acc_len = 0, fed = 0;
                size_t nlines = rng_below(30);

                for (size_t l = 0; l < nlines; l++) {
                        size_t body = rng_below(max + 1);

                        if (len + body + 2 > STREAM_MAX)
                                break;
                        for (size_t i = 0; i < body; i++)
                                in[len++] = random_body_byte();
                        if (rng_below(2))
                                in[len++] = '\r';
                        in[len++] = '\n';
                }
                if (rng_below(3) == 0) {
                        /* a last line without newline */
                        size_t body = rng_below(max + 1);

                        for (size_t i = 0; i < body && len < STREAM_MAX; i++)
                                in[len++] = random_body_byte();
                }
                want_len = ref_replies(max, in, len, want);

                while (fed < len || fed == 0) {
                        size_t chunk = rng_below(2) ? rng_below(4) + 1 : rng_below(len - fed + 1);
                        bool eof;
                        size_t pos = 0;

                        if (chunk > len - fed)
                                chunk = len - fed;
                        memcpy(acc + acc_len, in + fed, chunk);
                        acc_len += chunk;
                        fed += chunk;
                        eof = fed == len;
                        for (;;) {
                                struct frame f;
                                int r = framing_next(FRAMING_LINE, max, acc + pos, acc_len - pos, eof, &f);

                                if (r < 0)
                                        fail_msg("iteration %d (seed %#llx, max %u): framing_next %d at "
                                                 "stream offset %zu", it, (unsigned long long) seed,
                                                 max, r, fed - acc_len + pos);
                                if (r == 0)
                                        break;
                                got_len += framing_build_reply(got + got_len, acc + pos, &f,
                                                               SUFFIX, SUFFIX_LEN);
                                pos += f.consumed;
                        }
                        memmove(acc, acc + pos, acc_len - pos);
                        acc_len -= pos;
                        if (eof)
                                break;
                }
                if (acc_len != 0)
                        fail_msg("iteration %d (seed %#llx): %zu bytes left unframed at eof",
                                 it, (unsigned long long) seed, acc_len);
                if (got_len != want_len || memcmp(got, want, want_len) != 0)
                        fail_msg("iteration %d (seed %#llx, max %u): replies differ (%zu bytes, expected %zu)",
                                 it, (unsigned long long) seed, max, got_len, want_len);
        }
}

/* Random lines some of which are too long, fed in random pieces: at every
 * step framing_next gives the reference's answer, so a too-long line is
 * reported exactly when that becomes certain, never earlier or later. */
static void test_random_too_long(void **state)
{
        enum { ITER = 3000, STREAM_MAX = 4096 };
        static char in[STREAM_MAX], acc[STREAM_MAX];
        int errors_seen = 0;

        (void) state;
        rng_state = 0x853c49e6748fea9bull;
        for (int it = 0; it < ITER; it++) {
                uint64_t seed = rng_state;
                uint32_t max = (uint32_t) rng_below(20);
                size_t len = 0, acc_len = 0, fed = 0;
                size_t nlines = rng_below(10) + 1;
                bool stop = false;

                for (size_t l = 0; l < nlines; l++) {
                        size_t body = rng_below(max + 4);

                        if (len + body + 2 > STREAM_MAX)
                                break;
                        for (size_t i = 0; i < body; i++)
                                in[len++] = random_body_byte();
                        if (rng_below(2))
                                in[len++] = '\r';
                        if (rng_below(8) != 0 || l + 1 < nlines)
                                in[len++] = '\n';
                }
                while (!stop && fed < len) {
                        size_t chunk = rng_below(3) + 1;
                        bool eof;
                        size_t pos = 0;

                        if (chunk > len - fed)
                                chunk = len - fed;
                        memcpy(acc + acc_len, in + fed, chunk);
                        acc_len += chunk;
                        fed += chunk;
                        eof = fed == len && rng_below(2);
                        for (;;) {
                                struct frame a = { 0, 0, 0 }, b = { 0, 0, 0 };
                                int ra = framing_next(FRAMING_LINE, max, acc + pos, acc_len - pos, eof, &a);
                                int rb = ref_next(max, acc + pos, acc_len - pos, eof, &b);

                                if (ra != rb || (ra == 1 && (a.body_len != b.body_len ||
                                                             a.eol_len != b.eol_len ||
                                                             a.consumed != b.consumed)))
                                        fail_msg("iteration %d (seed %#llx, max %u) at stream offset %zu, "
                                                 "%zu bytes buffered, eof %d: framing_next %d (body %zu eol %zu), "
                                                 "reference %d (body %zu eol %zu)", it,
                                                 (unsigned long long) seed, max, fed - acc_len + pos,
                                                 acc_len - pos, eof, ra, a.body_len, a.eol_len,
                                                 rb, b.body_len, b.eol_len);
                                if (ra < 0) {
                                        errors_seen++;
                                        stop = true;    /* the daemon closes the connection */
                                }
                                if (ra != 1)
                                        break;
                                pos += a.consumed;
                        }
                        memmove(acc, acc + pos, acc_len - pos);
                        acc_len -= pos;
                }
        }
        /* the generator does produce too-long lines */
        assert_true(errors_seen > ITER / 4);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_line_endings),
                cmocka_unit_test(test_line_partial),
                cmocka_unit_test(test_line_several),
                cmocka_unit_test(test_line_split_everywhere),
                cmocka_unit_test(test_line_max_edges),
                cmocka_unit_test(test_line_eof),
                cmocka_unit_test(test_raw),
                cmocka_unit_test(test_build_reply),
                cmocka_unit_test(test_exhaustive_small),
                cmocka_unit_test(test_random_lines),
                cmocka_unit_test(test_random_too_long),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("framing", tests, NULL, NULL);
}
