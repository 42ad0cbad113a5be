/* SPDX-License-Identifier: MIT */
/* A client connection's protocol, the same on every loop: greeting, framing
 * (framing.c) and answering messages, backpressure, idle bookkeeping,
 * draining and the lingering close. Bytes move through the worker's I/O
 * (conn-io.h): conn-socket.c or conn-uring.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn-io.h"
#include "framing.h"
#include "handover-format.h"
#include "log.h"
#include "server.h"
#include "worker.h"

static socklen_t conn_addr_len(const union proxy_addr *a)
{
        return a->sa.sa_family == AF_INET ? sizeof(a->in) : sizeof(a->in6);
}

/* The client: behind a load balancer, the one its header named (while the
 * header is awaited, the balancer). */
static const char *conn_peer(const struct conn *c, char *buf)
{
        const struct conn_proxy *x = conn_proxy(c);
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        const union proxy_addr *kept = conn_kept_peer(c);

        if (x) {
                const union proxy_addr *a = c->flags & CONN_PROXY_WAIT ? &x->balancer : &x->client;

                return sockaddr_to_string(&a->sa, conn_addr_len(a), buf);
        }
        if (kept)
                return sockaddr_to_string(&kept->sa, conn_addr_len(kept), buf);
        if (getpeername(c->fd, (struct sockaddr *) &ss, &len) < 0)
                return strcpy(buf, "?");
        return sockaddr_to_string((struct sockaddr *) &ss, len, buf);
}

/* The load balancer c came through (MUXD_PROXY), or NULL. */
static const char *conn_balancer(const struct conn *c, char *buf)
{
        const struct conn_proxy *x = conn_proxy(c);

        if (!x || (c->flags & CONN_PROXY_WAIT))
                return NULL;
        return sockaddr_to_string(&x->balancer.sa, conn_addr_len(&x->balancer), buf);
}

/* Count c's close (before its settings, and so its counters, may go). */
static void conn_count_close(struct conn *c)
{
        struct stats_block *b = worker_stats(c->w, c->set);
        unsigned why = (c->flags & CONN_WHY_MASK) >> CONN_WHY_SHIFT;
        size_t queued = buffer_len(&c->out) + (c->flags & CONN_SENDING_QUEUED ? c->io_sending : 0);

        if (queued > 0)
                STATS_SUB(b, queued, queued);
        if (c->flags & CONN_PROXY_WAIT) {
                /* never admitted: refused, for the reason it ended with */
                STATS_ADD(b, refused[conn_proxy(c)->refused], 1);
                return;
        }
        if (why == CONN_WHY_REFUSED + 1u) {
                STATS_ADD(b, refused[STATS_REFUSED_DESCRIPTORS], 1);
                return;
        }
        stats_closed(b, why ? why - 1u : STATS_CLOSED_ERROR, (uint32_t) c->w->now_ms - c->born_ms);
}

void conn_close_why(struct conn *c, unsigned why)
{
        conn_set_why(c, why);
        conn_close(c);
}

void conn_close(struct conn *c)
{
        struct worker *w = c->w;
        struct source *src;

        if (log_enabled(LOG_LEVEL_DEBUG)) {
                char peer[SOCKADDR_STR_MAX], proxy[SOCKADDR_STR_MAX];
                const char *via = conn_balancer(c, proxy);

                conn_peer(c, peer);
                log_full(LOG_LEVEL_DEBUG, &(const struct log_fields) {
                                .event = "closed", .peer = peer, .proxy = via },
                         "connection from %s%s%s closed", peer, via ? " via " : "", via ? via : "");
        }
        idle_remove(c->flags & CONN_LINGER ? &w->lingering :
                    c->flags & CONN_PROXY_WAIT ? &w->proxying : &w->conns, &c->idle);
        conn_count_close(c);
        buffer_free(&c->in);
        buffer_free(&c->out);
        c->flags &= ~CONN_SENDING_QUEUED;
        listener_settings_unref(c->set);
        src = c->src;
        /* out of the fd store before its end: a client gone is not retaken */
        server_fdstore_remove(w, c->fd, c->store_id);
        w->io->close(c);        /* c is gone (or a zombie of the ring's) */
        worker_conn_closed(w, src);
}

static void conn_read_off(struct conn *c)
{
        if (c->flags & CONN_READ_OFF)
                return;
        c->flags |= CONN_READ_OFF;
        (void) c->w->io->read(c, false);
}

/* Read again (after throttling, or to discard input while lingering). */
static int conn_read_on(struct conn *c)
{
        return c->w->io->read(c, true);
}

/* Everything queued is written and nothing more will be: close. Closing a
 * socket with unread input makes the kernel send RST and drop the replies
 * still in its send queue, so when input is waiting, send FIN instead and
 * discard the input until the client closes (at most CONN_LINGER_MS). */
static void conn_finish(struct conn *c, bool rx_empty)
{
        struct worker *w = c->w;
        int unread = 0;

        /* rx_empty: the receive that led here, just now, took everything */
        if ((c->flags & CONN_EOF) || rx_empty || ioctl(c->fd, FIONREAD, &unread) < 0 || unread == 0 ||
            shutdown(c->fd, SHUT_WR) < 0) {
                conn_close(c);
                return;
        }
        idle_remove(&w->conns, &c->idle);
        c->flags |= CONN_LINGER;
        idle_touch(&w->lingering, &c->idle, w->now_ms);
        if (c->flags & CONN_READ_OFF) {
                c->flags &= ~(CONN_READ_OFF | CONN_THROTTLED);
                if (conn_read_on(c) < 0)
                        conn_close(c);
        }
}

/* Frame messages from data; assemble the replies in the worker's scratch
 * buffer. Returns the number of bytes consumed; sets CONN_CLOSING when the
 * connection is done; adds the messages framed to *messages. Stops early,
 * setting *full, once the replies built plus those queued reach
 * CONN_OUTPUT_HIGH: a short read of tiny messages with a long suffix must not
 * turn into an unbounded amount of output. */
static size_t conn_process(struct conn *c, const char *data, size_t len, bool eof,
                           size_t *wlen, bool *full, uint64_t *messages)
{
        struct worker *w = c->w;
        const struct listener_opts *o = &c->set->o;
        size_t pos = 0;

        while (pos < len && !(c->flags & CONN_CLOSING)) {
                struct frame f;
                int r;

                if (*wlen + conn_queued(c) >= CONN_OUTPUT_HIGH) {
                        *full = true;
                        break;
                }
                r = framing_next(o->framing, o->max_message, data + pos, len - pos, eof, &f);
                if (r == 0)
                        break;
                if (r < 0) {
                        static const char msg[] = FRAMING_TOO_LONG_REPLY;

                        if (worker_grow_wbuf(w, *wlen + sizeof(msg)) == 0) {
                                memcpy(w->wbuf + *wlen, msg, sizeof(msg) - 1);
                                *wlen += sizeof(msg) - 1;
                        }
                        conn_set_why(c, STATS_CLOSED_MAX_MESSAGE);
                        if (log_enabled(LOG_LEVEL_DEBUG)) {
                                char peer[SOCKADDR_STR_MAX];
                                log_debug("message from %s longer than %u bytes: closing",
                                          conn_peer(c, peer), o->max_message);
                        }
                        c->flags |= CONN_CLOSING;
                        return len;
                }
                (*messages)++;
                /* a oneshot message is logged at info, an echo one at debug:
                 * neither formatted (nor its peer looked up) for nothing */
                if (log_enabled(o->mode == MODE_ONESHOT ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG)) {
                        char peer[SOCKADDR_STR_MAX], proxy[SOCKADDR_STR_MAX], text[512];
                        const char *via = conn_balancer(c, proxy);

                        escape_bytes(data + pos, f.consumed, text, sizeof(text));
                        conn_peer(c, peer);
                        log_full(o->mode == MODE_ONESHOT ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG,
                                 &(const struct log_fields) { .event = "message", .peer = peer, .proxy = via },
                                 "message from %s%s%s: \"%s\"", peer, via ? " via " : "", via ? via : "",
                                 text);
                }
                if (o->mode == MODE_ONESHOT) {
                        conn_set_why(c, STATS_CLOSED_ONESHOT);
                        c->flags |= CONN_CLOSING;
                        return len;
                }
                if (worker_grow_wbuf(w, *wlen + framing_reply_len(&f, o->suffix_len)) < 0) {
                        log_warning("out of memory building a reply: closing the connection");
                        c->flags |= CONN_CLOSING;
                        return len;
                }
                *wlen += framing_build_reply(w->wbuf + *wlen, data + pos, &f,
                                             o->suffix, o->suffix_len);
                pos += f.consumed;
        }
        return pos;
}

/* ---- behind a load balancer: the PROXY header --------------------------- */

/* A warning about c's header, "WHAT (DETAIL)" (rate-limited: a broken or
 * hostile balancer must not flood the log), then close it, refused as
 * proxy_header. */
static void conn_proxy_fail(struct conn *c, const char *what, const char *detail)
{
        struct worker *w = c->w;
        struct conn_proxy *x = conn_proxy(c);
        unsigned suppressed;

        if (log_ratelimit_ok(&w->rl_proxy, w->now_ms, &suppressed)) {
                char peer[SOCKADDR_STR_MAX];

                sockaddr_to_string(&x->balancer.sa, conn_addr_len(&x->balancer), peer);
                log_full(LOG_LEVEL_WARNING, &(const struct log_fields) {
                                .event = "proxy-header", .proxy = peer },
                         "load balancer %s: %s%s%s%s: closing%s", peer, what, detail ? " (" : "",
                         detail ? detail : "", detail ? ")" : "",
                         suppressed ? " (similar messages suppressed)" : "");
        }
        x->refused = STATS_REFUSED_PROXY_HEADER;
        conn_close(c);
}

void conn_proxy_expired(struct conn *c)
{
        char secs[32];

        snprintf(secs, sizeof(secs), "%u s", c->set->o.proxy_timeout);
        conn_proxy_fail(c, "no complete PROXY header within proxy_timeout", secs);
}

/* The header h is complete: admit the client it names (the policy of
 * worker_admit(), as at accept), greet it. Returns -errno if c was closed. */
static int conn_proxy_admit(struct conn *c, const struct proxy_header *h)
{
        struct worker *w = c->w;
        struct conn_proxy *x = conn_proxy(c);
        struct sockaddr_storage ss = {};
        struct source *src;
        const char *why;
        int reason;

        /* LOCAL (a health check), UNKNOWN...: the balancer is the client */
        x->client = h->local ? x->balancer : h->src;
        memcpy(&ss, &x->client, conn_addr_len(&x->client));
        reason = worker_admit(w, &c->set->o, x->owner, NULL, &ss, &src, &why);
        if (reason >= 0) {
                worker_log_refused(w, NULL, c->fd, &x->client.sa, conn_addr_len(&x->client),
                                   &x->balancer.sa, conn_addr_len(&x->balancer), why);
                x->refused = (uint8_t) reason;
                conn_close(c);
                return -ECONNREFUSED;
        }
        c->src = src;
        c->flags &= ~CONN_PROXY_WAIT;
        idle_remove(&w->proxying, &c->idle);
        idle_touch(&w->conns, &c->idle, w->now_ms);
        STATS_ADD(worker_stats(w, c->set), accepted, 1);
        if (log_enabled(LOG_LEVEL_DEBUG)) {
                char peer[SOCKADDR_STR_MAX], proxy[SOCKADDR_STR_MAX];

                conn_peer(c, peer);
                conn_balancer(c, proxy);
                log_full(LOG_LEVEL_DEBUG, &(const struct log_fields) {
                                .event = "connection", .peer = peer, .proxy = proxy },
                         "connection from %s via %s (PROXY v%d%s)", peer, proxy,
                         h->version == PROXY_V1 ? 1 : 2, h->local ? ", no client address: the peer's" : "");
        }
        if (c->set->o.greeting_len > 0 && w->io->send(c, c->set->o.greeting, c->set->o.greeting_len) < 0)
                return -ECONNRESET;
        return 0;
}

/* Bytes before the header is complete: nothing is greeted or framed until
 * it is. What follows the header in the same read is the client's first
 * message, kept. At most PROXY_HEADER_MAX bytes (plus one read) wait in
 * c->in: proxy_parse() decides by then. */
static int conn_proxy_serve(struct conn *c, const char *data, size_t n)
{
        const struct listener_opts *o = &c->set->o;
        struct proxy_header h;
        bool buffered = buffer_len(&c->in) > 0;
        const char *p = data;
        size_t len = n;
        int r;

        if (buffered) {
                if (n > 0 && buffer_append(&c->in, data, n, 0) < 0)
                        goto nomem;
                p = buffer_head(&c->in);
                len = buffer_len(&c->in);
        }
        /* one handed over while waiting, to a listener that now expects no
         * header, finishes the header it began: any version */
        r = proxy_parse(p, len, o->proxy_protocol != PROXY_OFF ? o->proxy_protocol : PROXY_ANY, &h);
        if (r < 0) {
                conn_proxy_fail(c, "invalid PROXY header", h.reason);
                return r;
        }
        if (r == 0) {
                if (c->flags & CONN_EOF) {
                        /* a balancer's plain TCP check, or a header cut short */
                        if (len > 0)
                                conn_proxy_fail(c, "closed in the middle of its PROXY header", NULL);
                        else
                                conn_close(c);  /* no warning: nothing was sent */
                        return -ECONNRESET;
                }
                if (!buffered && n > 0 && buffer_append(&c->in, data, n, 0) < 0)
                        goto nomem;
                return 0;
        }
        if (conn_proxy_admit(c, &h) < 0)
                return -ECONNRESET;
        if (buffered) {
                buffer_consume(&c->in, (size_t) r);
                return conn_serve(c, NULL, 0);
        }
        return conn_serve(c, data + r, n - (size_t) r);
nomem:
        log_warning("out of memory buffering a PROXY header: closing the connection");
        conn_close(c);
        return -ENOMEM;
}

/* Answer what has arrived: n new bytes at data (the worker's read buffer, or
 * a receive buffer of the ring), plus whatever waits in c->in (an incomplete
 * message, or complete ones left unanswered while the client was throttled).
 * Returns -errno if the connection was closed. */
int conn_serve(struct conn *c, const char *data, size_t n)
{
        struct worker *w = c->w;
        bool eof = c->flags & CONN_EOF, stop_reading = false, rx_empty;

        if (c->flags & CONN_PROXY_WAIT)
                return conn_proxy_serve(c, data, n);
        rx_empty = c->flags & CONN_RX_EMPTY;
        c->flags &= ~CONN_RX_EMPTY;

        for (;;) {
                uint64_t messages = 0;
                size_t wlen = 0, used;
                bool full = false;
                int kept = 0;

                if (buffer_len(&c->in) == 0) {
                        /* the common case: frame straight from the read buffer */
                        used = conn_process(c, data, n, eof, &wlen, &full, &messages);
                        if (used < n && !(c->flags & CONN_CLOSING))
                                kept = buffer_append(&c->in, data + used, n - used, 0);
                } else {
                        if (n > 0 && buffer_append(&c->in, data, n, 0) < 0)
                                goto nomem;
                        used = conn_process(c, buffer_head(&c->in), buffer_len(&c->in), eof, &wlen, &full,
                                            &messages);
                        buffer_consume(&c->in, used);
                }
                n = 0;

                /* Only a complete message counts as activity: a client that trickles
                 * bytes of a message it never finishes (slowloris) still times out. */
                if (messages > 0) {
                        idle_touch(&w->conns, &c->idle, w->now_ms);
                        /* One clock read per batch: every message of it is timed from
                         * the wakeup that read it to now, its reply about to be queued
                         * (counted before the send, which may close c). */
                        stats_messages(worker_stats(w, c->set), messages, monotonic_ns() - w->now_ns);
                }
                if (kept < 0)
                        goto nomem;
                if (eof)
                        conn_set_why(c, STATS_CLOSED_CLIENT);
                if (!full && (eof || (c->flags & (CONN_CLOSING | CONN_DRAINING)))) {
                        /* nothing more will be read: answer what came, then close
                         * (reading stops below unless the close comes first, which
                         * saves telling the loop) */
                        c->flags |= CONN_CLOSING;
                        buffer_free(&c->in);
                        stop_reading = true;
                }
                if (wlen > 0 && c->w->io->send(c, w->wbuf, wlen) < 0)
                        return -ECONNRESET;
                if (!full)
                        break;
                if (conn_queued(c) > 0) {
                        /* answer the rest once the client has read enough */
                        conn_read_off(c);
                        c->flags |= CONN_THROTTLED;
                        return 0;
                }
                /* the kernel took every reply: go on with the rest */
        }

        if (conn_queued(c) == 0 && (c->flags & CONN_CLOSING)) {
                conn_finish(c, rx_empty);       /* closed, or lingering (reading on, to discard) */
                return -ECONNRESET;
        }
        if (stop_reading)
                conn_read_off(c);
        if (conn_queued(c) == 0)
                return 0;
        if (conn_queued(c) > CONN_OUTPUT_HIGH && !(c->flags & CONN_READ_OFF)) {
                /* backpressure: leave the client's data in the kernel until it reads */
                conn_read_off(c);
                c->flags |= CONN_THROTTLED;
        }
        return 0;
nomem:
        log_warning("out of memory buffering input: closing the connection");
        conn_close(c);
        return -ENOMEM;
}

int conn_sent(struct conn *c)
{
        if (conn_queued(c) == 0 && (c->flags & CONN_CLOSING)) {
                conn_finish(c, false);          /* closed, or lingering */
                return -ECONNRESET;
        }
        if ((c->flags & CONN_THROTTLED) && conn_queued(c) <= CONN_OUTPUT_LOW) {
                c->flags &= ~(CONN_THROTTLED | CONN_READ_OFF);
                /* first the messages that arrived while throttled */
                if ((buffer_len(&c->in) > 0 || (c->flags & CONN_DRAINING)) &&
                    conn_serve(c, NULL, 0) < 0)
                        return -ECONNRESET;
                if (c->flags & (CONN_READ_OFF | CONN_DRAINING))
                        return 0;
                if (conn_read_on(c) < 0) {
                        conn_close(c);
                        return -ECONNRESET;
                }
        }
        return 0;
}

static int conn_start_common(struct worker *w, int fd, struct listener_settings *set, struct source *src,
                             uint64_t owner, const struct sockaddr_storage *peer, socklen_t peer_len)
{
        bool proxied = set->o.proxy_protocol != PROXY_OFF;
        bool keep_peer = !proxied && set->o.mode == MODE_ONESHOT && peer &&
                         (peer->ss_family == AF_INET || peer->ss_family == AF_INET6);
        struct conn *c = calloc(1, sizeof(*c) + (proxied ? sizeof(struct conn_proxy) :
                                                 keep_peer ? sizeof(union proxy_addr) : 0));
        int r;

        if (!c) {
                close(fd);
                STATS_ADD(worker_stats(w, set), refused[STATS_REFUSED_DESCRIPTORS], 1);
                w->n_conns++;   /* worker_conn_closed() balances the books */
                worker_conn_closed(w, src);
                return -ENOMEM;
        }
        c->w = w;
        c->fd = fd;
        c->set = listener_settings_ref(set);
        c->src = src;
        c->born_ms = (uint32_t) w->now_ms;
        w->n_conns++;
        if (proxied) {
                struct conn_proxy *x;

                c->flags |= CONN_PROXIED;
                x = conn_proxy(c);
                memcpy(&x->balancer, peer, peer_len < sizeof(x->balancer) ? peer_len : sizeof(x->balancer));
                x->owner = owner;
                x->refused = STATS_REFUSED_PROXY_HEADER;
                c->flags |= CONN_PROXY_WAIT;
                idle_insert_sorted(&w->proxying, &c->idle, w->now_ms + (uint64_t) set->o.proxy_timeout * 1000u);
        } else {
                idle_touch(&w->conns, &c->idle, w->now_ms);
        }
        if (keep_peer) {
                c->flags |= CONN_PEER_KEPT;
                memcpy(conn_kept_peer(c), peer, peer_len < sizeof(union proxy_addr) ? peer_len :
                                                sizeof(union proxy_addr));
        }

        r = conn_read_on(c);
        if (r < 0) {
                /* not served at all (a descriptor beyond the loop's reach): refused */
                if (proxied)
                        conn_proxy(c)->refused = STATS_REFUSED_DESCRIPTORS;
                conn_close_why(c, CONN_WHY_REFUSED);
                return r;
        }
        if (proxied)
                return 0;       /* accepted (and greeted) once its header admits the client */
        STATS_ADD(worker_stats(w, set), accepted, 1);
        /* preserve_connections: not behind a load balancer (a retaken one
         * would need its PROXY header again) */
        c->store_id = server_fdstore_add(w, fd);
        if (set->o.greeting_len > 0 && c->w->io->send(c, set->o.greeting, set->o.greeting_len) < 0)
                return -ECONNRESET;
        return 0;
}

int conn_start(struct worker *w, int fd, struct listener_settings *set, struct source *src,
               const struct sockaddr_storage *peer, socklen_t peer_len)
{
        return conn_start_common(w, fd, set, src, 0, peer, peer_len);
}

int conn_start_proxy(struct worker *w, int fd, struct listener_settings *set, uint64_t owner,
                     const struct sockaddr_storage *peer, socklen_t peer_len)
{
        return conn_start_common(w, fd, set, NULL, owner, peer, peer_len);
}

void conn_drain(struct conn *c)
{
        if (c->flags & CONN_LINGER)
                return;
        conn_set_why(c, STATS_CLOSED_SHUTDOWN);
        c->flags |= CONN_DRAINING;
        if (c->flags & CONN_THROTTLED) {
                /* complete messages may wait in c->in: they are answered (and
                 * the connection closed) as the client reads its replies */
                return;
        }
        c->flags |= CONN_CLOSING;
        buffer_free(&c->in);
        conn_read_off(c);
        if (conn_queued(c) == 0)
                conn_finish(c, false);
}

/* ---- live upgrade ------------------------------------------------------------- */

void conn_pause(struct conn *c)
{
        if (c->w->io->pause)
                c->w->io->pause(c);
}

bool conn_paused_busy(const struct conn *c)
{
        return c->w->io->paused_busy && c->w->io->paused_busy(c);
}

static void conn_addr_export(const union proxy_addr *a, struct handover_addr *h)
{
        *h = (struct handover_addr) { .family = a->sa.sa_family };
        if (a->sa.sa_family == AF_INET) {
                memcpy(h->addr, &a->in.sin_addr, 4);
                h->port = ntohs(a->in.sin_port);
        } else if (a->sa.sa_family == AF_INET6) {
                memcpy(h->addr, &a->in6.sin6_addr, 16);
                h->port = ntohs(a->in6.sin6_port);
                h->scope_id = a->in6.sin6_scope_id;
        }
}

static void conn_addr_adopt(const struct handover_addr *h, union proxy_addr *a)
{
        memset(a, 0, sizeof(*a));
        if (h->family == AF_INET) {
                a->in.sin_family = AF_INET;
                memcpy(&a->in.sin_addr, h->addr, 4);
                a->in.sin_port = htons(h->port);
        } else if (h->family == AF_INET6) {
                a->in6.sin6_family = AF_INET6;
                memcpy(&a->in6.sin6_addr, h->addr, 16);
                a->in6.sin6_port = htons(h->port);
                a->in6.sin6_scope_id = h->scope_id;
        }
}

int conn_export(const struct conn *c, uint64_t now_ms, struct handover_conn *hc)
{
        const struct conn_proxy *x = conn_proxy(c);
        const char *p = NULL;
        size_t sending = c->w->io->sending ? c->w->io->sending(c, &p) : 0;
        uint32_t age = (uint32_t) now_ms - c->born_ms;

        *hc = (struct handover_conn) {
                .fd = c->fd,
                .idle_ms = now_ms > c->idle.last_ms ? now_ms - c->idle.last_ms : 0,
                .age_ms = age,
                .in = BUFFER_INIT,
                .out = BUFFER_INIT,
        };
        if (c->flags & CONN_EOF)
                hc->flags |= HANDOVER_C_EOF;
        if (c->flags & CONN_CLOSING)
                hc->flags |= HANDOVER_C_CLOSING;
        if (c->flags & CONN_THROTTLED)
                hc->flags |= HANDOVER_C_THROTTLED;
        if (c->flags & CONN_LINGER)
                hc->flags |= HANDOVER_C_LINGER;
        if (x) {
                conn_addr_export(&x->balancer, &hc->balancer);
                if (c->flags & CONN_PROXY_WAIT) {
                        /* in w->proxying, last_ms is the header's deadline */
                        hc->proxy = HANDOVER_P_WAITING;
                        hc->proxy_wait_ms = c->idle.last_ms > now_ms ? c->idle.last_ms - now_ms : 0;
                        hc->idle_ms = 0;
                } else {
                        hc->proxy = HANDOVER_P_ADMITTED;
                        conn_addr_export(&x->client, &hc->client);
                }
        }
        if (c->store_id)
                hc->flags |= HANDOVER_C_STORED;
        /* the bytes being sent come before those still in c->out */
        if ((sending > 0 && buffer_append(&hc->out, p, sending, 0) < 0) ||
            (buffer_len(&c->out) > 0 && buffer_append(&hc->out, buffer_head(&c->out), buffer_len(&c->out), 0) < 0) ||
            (buffer_len(&c->in) > 0 && buffer_append(&hc->in, buffer_head(&c->in), buffer_len(&c->in), 0) < 0)) {
                buffer_free(&hc->in);
                buffer_free(&hc->out);
                return -ENOMEM;
        }
        return 0;
}

/* Input that came while paused, or an end of input: answered now, as a
 * read would have. */
static int conn_serve_pending(struct conn *c)
{
        if ((c->flags & (CONN_READ_OFF | CONN_LINGER)) || (buffer_len(&c->in) == 0 && !(c->flags & CONN_EOF)))
                return 0;
        return conn_serve(c, NULL, 0);
}

int conn_unpause(struct conn *c)
{
        if (c->w->io->unpause && c->w->io->unpause(c) < 0)
                return -ECONNRESET;
        /* a closing one whose output is all gone finishes; a throttled one
         * whose client has read enough resumes (no write will tell) */
        if ((c->flags & (CONN_CLOSING | CONN_THROTTLED)) && conn_queued(c) <= CONN_OUTPUT_LOW)
                return conn_sent(c);
        return conn_serve_pending(c);
}

int conn_adopt(struct worker *w, struct handover_conn *hc, struct listener_settings *set, struct source *src,
               uint64_t owner)
{
        bool proxied = hc->proxy != HANDOVER_P_NONE, waiting = hc->proxy == HANDOVER_P_WAITING;
        struct conn *c = calloc(1, sizeof(*c) + (proxied ? sizeof(struct conn_proxy) : 0));
        uint64_t last = w->now_ms > hc->idle_ms ? w->now_ms - hc->idle_ms : 0;

        if (!c) {
                buffer_free(&hc->in);
                buffer_free(&hc->out);
                close(hc->fd);
                w->n_conns++;   /* worker_conn_closed() balances the books */
                worker_conn_closed(w, src);
                return -ENOMEM;
        }
        c->w = w;
        c->fd = hc->fd;
        c->set = listener_settings_ref(set);
        c->src = src;
        c->born_ms = (uint32_t) (w->now_ms - hc->age_ms);
        /* its unsent output waits in c->out, its unfinished input in c->in */
        c->in = hc->in;
        c->out = hc->out;
        hc->in = (struct buffer) BUFFER_INIT;
        hc->out = (struct buffer) BUFFER_INIT;
        if (hc->flags & HANDOVER_C_EOF)
                c->flags |= CONN_EOF;
        if (hc->flags & HANDOVER_C_CLOSING)
                c->flags |= CONN_CLOSING | CONN_READ_OFF;
        if (hc->flags & HANDOVER_C_THROTTLED)
                c->flags |= CONN_THROTTLED | CONN_READ_OFF;
        if (hc->flags & HANDOVER_C_LINGER)
                c->flags = (c->flags & ~(CONN_READ_OFF | CONN_THROTTLED)) | CONN_LINGER;
        if (proxied) {
                struct conn_proxy *x;

                c->flags |= CONN_PROXIED;
                x = conn_proxy(c);
                conn_addr_adopt(&hc->balancer, &x->balancer);
                conn_addr_adopt(&hc->client, &x->client);
                x->owner = owner;
                x->refused = STATS_REFUSED_PROXY_HEADER;
        }
        /* stored by the previous image, retaken from the store, or new there */
        if (hc->flags & HANDOVER_C_STORED)
                c->store_id = server_fdstore_id(c->fd);
        else if (hc->store_id)
                c->store_id = hc->store_id;
        else if (!proxied)      /* a balancer's: not preserved (a retaken one would
                                 * need its header again) */
                c->store_id = server_fdstore_add(w, c->fd);
        w->n_conns++;
        if (waiting) {
                /* not admitted yet: neither accepted nor greeted; what it
                 * sent of its header waits in c->in */
                c->flags |= CONN_PROXY_WAIT;
                idle_insert_sorted(&w->proxying, &c->idle, w->now_ms + hc->proxy_wait_ms);
                conn_pause(c);
                return 0;
        }
        /* its idle deadline is kept: the caller adopts the least recently
         * active first, so the queue stays in order */
        idle_touch(c->flags & CONN_LINGER ? &w->lingering : &w->conns, &c->idle, last);
        /* counted as accepted by this image, so that its closes balance */
        STATS_ADD(worker_stats(w, set), accepted, 1);
        if (buffer_len(&c->out) > 0)
                STATS_ADD(worker_stats(w, set), queued, buffer_len(&c->out));
        /* Paused, as the previous image left it: no byte moves before this
         * image has taken over for good (conn_unpause(), then), so that one
         * that gives up never leaves the previous one a reply sent twice. */
        conn_pause(c);
        return 0;
}
