/* SPDX-License-Identifier: MIT */
/* The Prometheus endpoint: see metrics.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event.h"
#include "idle.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "util.h"

#define METRICS_ACCEPT_BATCH    16      /* accepts per wakeup */
#define METRICS_RETRY_MS        1000u   /* after descriptor exhaustion */

struct metrics_client {
        struct idle_link idle;          /* first: clients in order of arrival, so of deadline */
        struct metrics *m;
        int fd;
        bool answering;                 /* the request is read: writing the answer */
        bool lingering;                 /* answered, FIN sent: discarding input until the client closes */
        uint32_t req_len;
        struct buffer out;
        char req[METRICS_REQUEST_MAX];
};

struct metrics {
        struct ev_loop *loop;
        struct listener *l;             /* the listening socket (listener.c opens it); its key as configured */
        const struct metrics_ops *ops;
        void *ctx;
        struct idle_queue clients;
        bool paused;                    /* not accepting: too many clients, or out of descriptors */
        uint64_t retry_ms;              /* when paused out of descriptors: when to try again */
        bool closing;
};

static void metrics_on_accept(struct ev_loop *loop, int fd, void *data, int mask);
static void metrics_on_client(struct ev_loop *loop, int fd, void *data, int mask);

static void metrics_pause(struct metrics *m, uint64_t retry_ms)
{
        if (!m->paused)
                ev_del(m->loop, m->l->fd, EV_READABLE);
        m->paused = true;
        m->retry_ms = retry_ms;
}

static void metrics_resume(struct metrics *m)
{
        if (!m->paused)
                return;
        if (ev_add(m->loop, m->l->fd, EV_READABLE, metrics_on_accept, m) < 0) {
                m->retry_ms = monotonic_ms() + METRICS_RETRY_MS;        /* try again later */
                return;
        }
        m->paused = false;
        m->retry_ms = 0;
}

static void metrics_close(struct metrics_client *c)
{
        struct metrics *m = c->m;

        ev_del(m->loop, c->fd, EV_READABLE | EV_WRITABLE);
        close(c->fd);
        idle_remove(&m->clients, &c->idle);
        buffer_free(&c->out);
        free(c);
        if (m->paused && m->retry_ms == 0 && !m->closing && m->clients.count < METRICS_CLIENTS_MAX)
                metrics_resume(m);
}

/* ---- answering ---- */

static const char *metrics_reason(int status)
{
        switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 431: return "Request Header Fields Too Large";
        default: return "Internal Server Error";
        }
}

/* The whole answer into c->out; body NULL: a one-line text of the status. */
static int metrics_answer(struct metrics_client *c, int status, const struct buffer *body, bool head)
{
        char hdr[512], text[64];
        const char *type = status == 200 ? STATS_PROMETHEUS_CONTENT_TYPE : "text/plain; charset=utf-8";
        const char *p = text;
        size_t len;
        int n;

        if (body) {
                p = body->data ? buffer_head(body) : "";
                len = buffer_len(body);
        } else {
                len = (size_t) snprintf(text, sizeof(text), "%d %s\n", status, metrics_reason(status));
        }
        n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "%sConnection: close\r\n\r\n", status, metrics_reason(status), type, len,
                     status == 405 ? "Allow: GET, HEAD\r\n" : "");
        if (buffer_append(&c->out, hdr, (size_t) n, 0) < 0 ||
            (!head && buffer_append(&c->out, p, len, 0) < 0))
                return -ENOMEM;
        return 0;
}

/* Parse the request line, METHOD SP TARGET SP VERSION (RFC 9112: single
 * spaces); the status to answer with (and *head for HEAD). */
static int metrics_route(struct metrics_client *c, bool *head)
{
        char *line = c->req, *end = memchr(c->req, '\n', c->req_len), *target, *version;

        if (!end)
                return 400;
        *end = '\0';
        if (end > line && end[-1] == '\r')
                end[-1] = '\0';
        target = strchr(line, ' ');
        version = target ? strchr(target + 1, ' ') : NULL;
        if (!version || target == line || version == target + 1 || strchr(version + 1, ' '))
                return 400;
        *target++ = '\0';
        *version++ = '\0';
        if (strcmp(version, "HTTP/1.0") != 0 && strcmp(version, "HTTP/1.1") != 0)
                return 400;
        *head = strcmp(line, "HEAD") == 0;
        if (!*head && strcmp(line, "GET") != 0)
                return 405;
        target[strcspn(target, "?")] = '\0';    /* a query string changes nothing */
        return strcmp(target, "/metrics") == 0 ? 200 : 404;
}

static void metrics_flush(struct metrics_client *c);

static void metrics_respond(struct metrics_client *c, int status, bool head)
{
        struct metrics *m = c->m;
        struct buffer body = BUFFER_INIT;
        int r;

        if (status == 200 && m->ops->render(m->ctx, &body) < 0)
                status = 500;
        r = metrics_answer(c, status, status == 200 ? &body : NULL, head);
        buffer_free(&body);
        if (r < 0) {
                metrics_close(c);
                return;
        }
        log_debug("metrics: answered %d", status);
        c->answering = true;
        ev_del(m->loop, c->fd, EV_READABLE);    /* read no more until answered */
        metrics_flush(c);
}

/* ---- the socket ---- */

/* Write what is left; once all is written, send FIN and wait for the
 * client's: closing with unread input would reset the connection and could
 * drop the answer still in the send queue. */
static void metrics_flush(struct metrics_client *c)
{
        struct metrics *m = c->m;

        while (buffer_len(&c->out) > 0) {
                ssize_t n = send(c->fd, buffer_head(&c->out), buffer_len(&c->out), MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        if (ev_add(m->loop, c->fd, EV_WRITABLE, metrics_on_client, c) < 0)
                                metrics_close(c);
                        return;
                }
                if (n < 0) {
                        metrics_close(c);
                        return;
                }
                buffer_consume(&c->out, (size_t) n);
        }
        ev_del(m->loop, c->fd, EV_WRITABLE);
        if (shutdown(c->fd, SHUT_WR) < 0 || ev_add(m->loop, c->fd, EV_READABLE, metrics_on_client, c) < 0) {
                metrics_close(c);
                return;
        }
        c->lingering = true;
}

/* The end of the headers: an empty line. */
static bool metrics_request_done(const struct metrics_client *c)
{
        for (uint32_t i = 1; i < c->req_len; i++)
                if (c->req[i] == '\n' && (c->req[i - 1] == '\n' ||
                                          (i >= 2 && c->req[i - 1] == '\r' && c->req[i - 2] == '\n')))
                        return true;
        return false;
}

static void metrics_read(struct metrics_client *c)
{
        char discard[512];
        ssize_t n;
        bool head = false;

        if (c->lingering) {
                n = recv(c->fd, discard, sizeof(discard), 0);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                        metrics_close(c);
                return;
        }
        n = recv(c->fd, c->req + c->req_len, METRICS_REQUEST_MAX - c->req_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                metrics_close(c);       /* gone before asking anything complete */
                return;
        }
        c->req_len += (uint32_t) n;
        if (metrics_request_done(c))
                metrics_respond(c, metrics_route(c, &head), head);
        else if (c->req_len == METRICS_REQUEST_MAX)
                metrics_respond(c, 431, false);
}

static void metrics_on_client(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct metrics_client *c = data;

        (void) loop;
        (void) fd;
        if (c->answering && !c->lingering) {
                if (mask & EV_WRITABLE)
                        metrics_flush(c);
                return;
        }
        if (mask & EV_READABLE)
                metrics_read(c);
}

static void metrics_accept_one(struct metrics *m, int cfd, const struct sockaddr_storage *ss, socklen_t len)
{
        struct metrics_client *c;

        if (!m->ops->allowed(m->ctx, (const struct sockaddr *) ss, len)) {
                close(cfd);
                return;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                close(cfd);
                return;
        }
        c->m = m;
        c->fd = cfd;
        if (ev_add(m->loop, cfd, EV_READABLE, metrics_on_client, c) < 0) {
                close(cfd);
                free(c);
                return;
        }
        idle_touch(&m->clients, &c->idle, monotonic_ms());
}

static void metrics_on_accept(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct metrics *m = data;

        (void) loop;
        (void) mask;
        for (int i = 0; i < METRICS_ACCEPT_BATCH; i++) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);
                int cfd;

                if (m->clients.count >= METRICS_CLIENTS_MAX) {
                        metrics_pause(m, 0);    /* until one leaves */
                        return;
                }
                cfd = accept4(fd, (struct sockaddr *) &ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                                continue;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                                metrics_pause(m, monotonic_ms() + METRICS_RETRY_MS);
                        return;
                }
                metrics_accept_one(m, cfd, &ss, len);
        }
}

/* ---- the endpoint ---- */

int metrics_new(struct ev_loop *loop, const struct listener_key *k, const struct metrics_ops *ops,
                void *ctx, struct metrics **ret)
{
        struct metrics *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        m->loop = loop;
        m->ops = ops;
        m->ctx = ctx;
        idle_queue_init(&m->clients);
        r = listener_open(k, &m->l);
        if (r >= 0)
                r = ev_add(loop, m->l->fd, EV_READABLE, metrics_on_accept, m);
        if (r < 0) {
                listener_free(m->l);
                free(m);
                return r;
        }
        *ret = m;
        return 0;
}

void metrics_free(struct metrics *m)
{
        struct idle_link *l;

        if (!m)
                return;
        m->closing = true;      /* closing clients must not start accepting again */
        while ((l = idle_oldest(&m->clients)))
                metrics_close((struct metrics_client *) l);
        ev_del(m->loop, m->l->fd, EV_READABLE);
        listener_free(m->l);
        free(m);
}

const char *metrics_address(const struct metrics *m)
{
        return m->l->addr_str;
}

bool metrics_listens_on(const struct metrics *m, const struct listener_key *k)
{
        /* as for a listener: the same key, or the port port 0 got now written */
        return listener_matches(m->l, k, true);
}

int metrics_next_timeout(const struct metrics *m, uint64_t now_ms)
{
        int t = idle_next_timeout(&m->clients, now_ms, METRICS_TIMEOUT_MS);

        if (m->paused && m->retry_ms) {
                int r = m->retry_ms > now_ms ? (int) (m->retry_ms - now_ms) : 0;

                if (t < 0 || r < t)
                        t = r;
        }
        return t;
}

void metrics_tick(struct metrics *m, uint64_t now_ms)
{
        struct idle_link *l;

        while ((l = idle_pop_expired(&m->clients, now_ms, METRICS_TIMEOUT_MS))) {
                log_debug("metrics: closing a client after %u ms", METRICS_TIMEOUT_MS);
                metrics_close((struct metrics_client *) l);
        }
        if (m->paused && m->retry_ms && now_ms >= m->retry_ms)
                metrics_resume(m);
}
