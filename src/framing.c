/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "framing.h"

int framing_next(enum muxd_framing framing, uint32_t max_message,
                 const char *data, size_t len, bool eof, struct frame *f)
{
        const char *nl;
        size_t scan;

        if (len == 0)
                return 0;

        if (framing == FRAMING_RAW) {
                if (len > max_message)
                        return -EMSGSIZE;
                *f = (struct frame) { .body_len = len, .eol_len = 0, .consumed = len };
                return 1;
        }

        /* A body of max_message bytes may be followed by "\r\n": never look
         * further than that for the end of the line. */
        scan = len < (size_t) max_message + 2 ? len : (size_t) max_message + 2;
        nl = memchr(data, '\n', scan);
        if (nl) {
                size_t end = (size_t) (nl - data);
                size_t eol = (end > 0 && data[end - 1] == '\r') ? 2 : 1;

                f->body_len = end + 1 - eol;
                if (f->body_len > max_message)
                        return -EMSGSIZE;
                f->eol_len = eol;
                f->consumed = end + 1;
                return 1;
        }
        /* No newline yet: too long already, unless the only byte past the
         * limit is a '\r' that may start the "\r\n" ending. */
        if (len > max_message &&
            !(len == (size_t) max_message + 1 && data[max_message] == '\r'))
                return -EMSGSIZE;
        if (eof) {
                /* no newline will come: a '\r' past the limit is body, too long */
                if (len > max_message)
                        return -EMSGSIZE;
                *f = (struct frame) { .body_len = len, .eol_len = 0, .consumed = len };
                return 1;
        }
        return 0;
}

size_t framing_build_reply(char *out, const char *msg, const struct frame *f,
                           const char *suffix, size_t suffix_len)
{
        char *p = out;

        memcpy(p, msg, f->body_len);
        p += f->body_len;
        memcpy(p, suffix, suffix_len);
        p += suffix_len;
        memcpy(p, msg + f->body_len, f->eol_len);
        p += f->eol_len;
        return (size_t) (p - out);
}
