/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "handover-format.h"

#define HANDOVER_HEADER_SIZE    24u

/* ---- writing ---------------------------------------------------------------- */

static int handover_put(struct buffer *out, const void *p, size_t n)
{
        return n == 0 ? 0 : buffer_append(out, p, n, 0);
}

static int handover_put_uint(struct buffer *out, uint64_t v, size_t size)
{
        uint8_t le[8];

        for (size_t i = 0; i < size; i++)
                le[i] = (uint8_t) (v >> (8 * i));
        return handover_put(out, le, size);
}

static int handover_put_bytes(struct buffer *out, const void *p, size_t n)
{
        if (n > HANDOVER_MAX_BYTES)
                return -E2BIG;
        if (handover_put_uint(out, n, 4) < 0)
                return -ENOMEM;
        return handover_put(out, p, n);
}

static int handover_put_listener(struct buffer *out, const struct handover_listener *l)
{
        size_t name_len = l->name ? strlen(l->name) : 0;

        if (name_len > HANDOVER_MAX_NAME)
                return -E2BIG;
        if (handover_put_uint(out, (uint32_t) l->fd, 4) < 0 || handover_put_uint(out, l->serial, 8) < 0 ||
            handover_put_uint(out, l->family, 4) < 0 || handover_put(out, l->addr, 16) < 0 ||
            handover_put_uint(out, l->port, 2) < 0 || handover_put_uint(out, l->bound_port, 2) < 0 ||
            handover_put_uint(out, l->flags, 1) < 0)
                return -ENOMEM;
        return handover_put_bytes(out, l->name, name_len);
}

static int handover_put_addr(struct buffer *out, const struct handover_addr *a)
{
        if (handover_put_uint(out, a->family, 2) < 0 || handover_put(out, a->addr, 16) < 0 ||
            handover_put_uint(out, a->port, 2) < 0 || handover_put_uint(out, a->scope_id, 4) < 0)
                return -ENOMEM;
        return 0;
}

static int handover_put_conn(struct buffer *out, const struct handover_conn *c, uint32_t version)
{
        int r;

        if (handover_put_uint(out, (uint32_t) c->fd, 4) < 0 || handover_put_uint(out, c->listener, 4) < 0 ||
            handover_put_uint(out, c->flags, 4) < 0 || handover_put_uint(out, c->idle_ms, 8) < 0 ||
            handover_put_uint(out, c->age_ms, 8) < 0)
                return -ENOMEM;
        r = handover_put_bytes(out, buffer_head(&c->in), buffer_len(&c->in));
        if (r >= 0)
                r = handover_put_bytes(out, buffer_head(&c->out), buffer_len(&c->out));
        if (r < 0 || version < 2)
                return r;
        if (handover_put_uint(out, c->proxy, 1) < 0)
                return -ENOMEM;
        if (c->proxy == HANDOVER_P_NONE)
                return 0;
        if (handover_put_addr(out, &c->balancer) < 0 || handover_put_addr(out, &c->client) < 0 ||
            handover_put_uint(out, c->proxy_wait_ms, 8) < 0)
                return -ENOMEM;
        return 0;
}

int handover_encode(const struct handover_state *st, struct buffer *out)
{
        return handover_encode_version(st, HANDOVER_VERSION, out);
}

int handover_encode_version(const struct handover_state *st, uint32_t version, struct buffer *out)
{
        size_t start = buffer_len(out), body;
        int r;

        if (version < HANDOVER_VERSION_MIN || version > HANDOVER_VERSION)
                return -EPROTONOSUPPORT;
        if (st->n_listeners > HANDOVER_MAX_LISTENERS || st->n_conns > HANDOVER_MAX_CONNS)
                return -E2BIG;
        if (handover_put(out, HANDOVER_MAGIC, 8) < 0 || handover_put_uint(out, version, 4) < 0 ||
            handover_put_uint(out, 0, 4) < 0 || handover_put_uint(out, 0, 8) < 0 ||
            handover_put_uint(out, st->n_listeners, 4) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < st->n_listeners; i++)
                if ((r = handover_put_listener(out, &st->listeners[i])) < 0)
                        return r;
        if (handover_put_uint(out, st->n_conns, 4) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < st->n_conns; i++)
                if ((r = handover_put_conn(out, &st->conns[i], version)) < 0)
                        return r;
        /* the length, now known, into the header */
        body = buffer_len(out) - start - HANDOVER_HEADER_SIZE;
        for (size_t i = 0; i < 8; i++)
                out->data[out->off + start + 16 + i] = (char) (uint8_t) ((uint64_t) body >> (8 * i));
        return 0;
}

/* ---- reading ---------------------------------------------------------------- */

struct handover_reader {
        const uint8_t *p;
        size_t left;
        char *why;
        size_t why_size;
        bool failed;
        uint32_t version;       /* of the state being read */
};

static void handover_fail(struct handover_reader *rd, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void handover_fail(struct handover_reader *rd, const char *fmt, ...)
{
        va_list ap;

        if (rd->failed)
                return;         /* the first problem is the one to tell */
        rd->failed = true;
        va_start(ap, fmt);
        vsnprintf(rd->why, rd->why_size, fmt, ap);
        va_end(ap);
}

static uint64_t handover_get_uint(struct handover_reader *rd, size_t size, const char *what)
{
        uint64_t v = 0;

        if (rd->failed)
                return 0;
        if (rd->left < size) {
                handover_fail(rd, "truncated in %s", what);
                return 0;
        }
        for (size_t i = 0; i < size; i++)
                v |= (uint64_t) rd->p[i] << (8 * i);
        rd->p += size;
        rd->left -= size;
        return v;
}

/* Bytes of at most max into *dst (a buffer) or, if str, a new string. */
static void handover_get_bytes(struct handover_reader *rd, size_t max, struct buffer *dst, char **str,
                               const char *what)
{
        size_t n = (size_t) handover_get_uint(rd, 4, what);

        if (rd->failed)
                return;
        if (n > max || n > rd->left) {
                handover_fail(rd, "%s of %zu bytes: %s", what, n, n > max ? "too long" : "truncated");
                return;
        }
        if (str) {
                if (n > 0 && memchr(rd->p, '\0', n)) {
                        handover_fail(rd, "%s holds a NUL byte", what);
                        return;
                }
                *str = n > 0 ? strndup((const char *) rd->p, n) : NULL;
                if (n > 0 && !*str)
                        handover_fail(rd, "out of memory");
        } else if (n > 0 && buffer_append(dst, rd->p, n, 0) < 0) {
                handover_fail(rd, "out of memory");
        }
        rd->p += n;
        rd->left -= n;
}

static void handover_get_listener(struct handover_reader *rd, struct handover_listener *l)
{
        l->fd = (int) (int32_t) handover_get_uint(rd, 4, "a listener");
        l->serial = handover_get_uint(rd, 8, "a listener");
        l->family = (uint32_t) handover_get_uint(rd, 4, "a listener");
        for (size_t i = 0; i < 16; i++)
                l->addr[i] = (uint8_t) handover_get_uint(rd, 1, "a listener");
        l->port = (uint16_t) handover_get_uint(rd, 2, "a listener");
        l->bound_port = (uint16_t) handover_get_uint(rd, 2, "a listener");
        l->flags = (uint8_t) handover_get_uint(rd, 1, "a listener");
        handover_get_bytes(rd, HANDOVER_MAX_NAME, NULL, &l->name, "a listener's name");
        if (!rd->failed && l->fd < 0 && !(l->flags & HANDOVER_L_REMOVED))
                handover_fail(rd, "a listener without a descriptor (%d)", l->fd);
}

static void handover_get_addr(struct handover_reader *rd, struct handover_addr *a, bool optional,
                              const char *what)
{
        a->family = (uint16_t) handover_get_uint(rd, 2, what);
        for (size_t i = 0; i < 16; i++)
                a->addr[i] = (uint8_t) handover_get_uint(rd, 1, what);
        a->port = (uint16_t) handover_get_uint(rd, 2, what);
        a->scope_id = (uint32_t) handover_get_uint(rd, 4, what);
        if (rd->failed)
                return;
        if (a->family != AF_INET && a->family != AF_INET6 && !(optional && a->family == 0))
                handover_fail(rd, "%s of family %u", what, a->family);
        else if (a->family == AF_INET && (memcmp(a->addr + 4, (const uint8_t[12]) { 0 }, 12) != 0 || a->scope_id))
                handover_fail(rd, "%s: an IPv4 address with more than 4 bytes", what);
}

/* The PROXY state of a connection (version 2 on). */
static void handover_get_conn_proxy(struct handover_reader *rd, struct handover_conn *c)
{
        c->proxy = (uint8_t) handover_get_uint(rd, 1, "a connection's PROXY state");
        if (rd->failed || c->proxy == HANDOVER_P_NONE)
                return;
        if (c->proxy != HANDOVER_P_ADMITTED && c->proxy != HANDOVER_P_WAITING) {
                handover_fail(rd, "a connection's PROXY state %u", c->proxy);
                return;
        }
        handover_get_addr(rd, &c->balancer, false, "a connection's balancer");
        handover_get_addr(rd, &c->client, c->proxy == HANDOVER_P_WAITING, "a connection's client");
        c->proxy_wait_ms = handover_get_uint(rd, 8, "a connection's PROXY state");
        if (rd->failed)
                return;
        if (c->proxy == HANDOVER_P_ADMITTED && c->proxy_wait_ms != 0)
                handover_fail(rd, "an admitted connection still waiting %llu ms for its PROXY header",
                              (unsigned long long) c->proxy_wait_ms);
        else if (c->proxy_wait_ms > HANDOVER_MAX_PROXY_WAIT_MS)
                handover_fail(rd, "a connection waiting %llu ms for its PROXY header (at most %u)",
                              (unsigned long long) c->proxy_wait_ms, HANDOVER_MAX_PROXY_WAIT_MS);
        else if (c->proxy == HANDOVER_P_WAITING && buffer_len(&c->out) > 0)
                /* nothing is sent before the header admits the client */
                handover_fail(rd, "a connection waiting for its PROXY header with %zu bytes of output",
                              buffer_len(&c->out));
}

static void handover_get_conn(struct handover_reader *rd, size_t n_listeners, struct handover_conn *c)
{
        c->in = (struct buffer) BUFFER_INIT;
        c->out = (struct buffer) BUFFER_INIT;
        c->fd = (int) (int32_t) handover_get_uint(rd, 4, "a connection");
        c->listener = (uint32_t) handover_get_uint(rd, 4, "a connection");
        c->flags = (uint32_t) handover_get_uint(rd, 4, "a connection");
        c->idle_ms = handover_get_uint(rd, 8, "a connection");
        c->age_ms = handover_get_uint(rd, 8, "a connection");
        handover_get_bytes(rd, HANDOVER_MAX_BYTES, &c->in, NULL, "a connection's input");
        handover_get_bytes(rd, HANDOVER_MAX_BYTES, &c->out, NULL, "a connection's output");
        if (rd->version >= 2)
                handover_get_conn_proxy(rd, c);
        if (rd->failed)
                return;
        if (c->fd < 0)
                handover_fail(rd, "a connection without a descriptor (%d)", c->fd);
        else if (c->listener >= n_listeners)
                handover_fail(rd, "a connection of listener %u, of %zu", c->listener, n_listeners);
}

/* The header: 0, or -errno (said in rd). */
static int handover_get_header(struct handover_reader *rd)
{
        uint32_t version;
        uint64_t body;

        if (rd->left < HANDOVER_HEADER_SIZE || memcmp(rd->p, HANDOVER_MAGIC, 8) != 0) {
                handover_fail(rd, "not a muxd state (no \"%s\" header)", HANDOVER_MAGIC);
                return -EPROTONOSUPPORT;
        }
        rd->p += 8;
        rd->left -= 8;
        version = (uint32_t) handover_get_uint(rd, 4, "the header");
        (void) handover_get_uint(rd, 4, "the header");
        body = handover_get_uint(rd, 8, "the header");
        if (version < HANDOVER_VERSION_MIN || version > HANDOVER_VERSION) {
                handover_fail(rd, "state format version %u, this muxd reads versions %u to %u", version,
                              HANDOVER_VERSION_MIN, HANDOVER_VERSION);
                return -EPROTONOSUPPORT;
        }
        if (body != rd->left) {
                handover_fail(rd, "the state is %zu bytes, its header says %llu", rd->left,
                              (unsigned long long) body);
                return -EBADMSG;
        }
        rd->version = version;
        return 0;
}

int handover_decode(const void *data, size_t len, struct handover_state *st, char *why, size_t why_size)
{
        struct handover_reader rd = { .p = data, .left = len, .why = why, .why_size = why_size };
        struct handover_state s = { 0 };
        int r;

        *st = s;
        r = handover_get_header(&rd);
        if (r < 0)
                return r;
        s.n_listeners = (size_t) handover_get_uint(&rd, 4, "the listeners");
        if (!rd.failed && s.n_listeners > HANDOVER_MAX_LISTENERS)
                handover_fail(&rd, "%zu listeners (at most %u)", s.n_listeners, HANDOVER_MAX_LISTENERS);
        if (!rd.failed && !(s.listeners = calloc(s.n_listeners + 1, sizeof(*s.listeners))))
                handover_fail(&rd, "out of memory");
        for (size_t i = 0; i < s.n_listeners && !rd.failed; i++)
                handover_get_listener(&rd, &s.listeners[i]);
        s.n_conns = (size_t) handover_get_uint(&rd, 4, "the connections");
        if (!rd.failed && s.n_conns > HANDOVER_MAX_CONNS)
                handover_fail(&rd, "%zu connections (at most %u)", s.n_conns, HANDOVER_MAX_CONNS);
        /* each takes at least 36 bytes: a count beyond what is left is a lie */
        if (!rd.failed && s.n_conns > rd.left / 36)
                handover_fail(&rd, "%zu connections in %zu bytes", s.n_conns, rd.left);
        if (!rd.failed && !(s.conns = calloc(s.n_conns + 1, sizeof(*s.conns))))
                handover_fail(&rd, "out of memory");
        for (size_t i = 0; i < s.n_conns && !rd.failed; i++)
                handover_get_conn(&rd, s.n_listeners, &s.conns[i]);
        if (!rd.failed && rd.left > 0)
                handover_fail(&rd, "%zu bytes after the connections", rd.left);
        if (rd.failed) {
                handover_state_free(&s);
                return -EBADMSG;
        }
        *st = s;
        return 0;
}

void handover_state_free(struct handover_state *st)
{
        for (size_t i = 0; st->listeners && i < st->n_listeners; i++)
                free(st->listeners[i].name);
        for (size_t i = 0; st->conns && i < st->n_conns; i++) {
                buffer_free(&st->conns[i].in);
                buffer_free(&st->conns[i].out);
        }
        free(st->listeners);
        free(st->conns);
        *st = (struct handover_state) { 0 };
}
