/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define SERVER_READ_SIZE        (64u * 1024u)
#define SERVER_ACCEPT_BATCH     64      /* accepts per wakeup, so clients keep being served */
#define SERVER_ACCEPT_RETRY_MS  1000u   /* retry after descriptor exhaustion */
#define SERVER_SETSIZE_MAX      (1 << 20)

static void server_on_accept(struct ev_loop *loop, int fd, void *data, int mask);

static void server_watch_listeners(struct server *s, bool on)
{
        for (struct listener *l = s->listeners; l; l = l->next) {
                if (on && l->paused) {
                        if (ev_add(s->loop, l->fd, EV_READABLE, server_on_accept, l) < 0)
                                continue;       /* fd beyond the loop: reported at start */
                        l->paused = false;
                } else if (!on && !l->paused) {
                        ev_del(s->loop, l->fd, EV_READABLE);
                        l->paused = true;
                }
        }
}

static void server_pause_accept(struct server *s, uint64_t retry_ms)
{
        server_watch_listeners(s, false);
        s->accept_paused = true;
        s->accept_retry_ms = retry_ms;
}

static void server_resume_accept(struct server *s)
{
        if (!s->accept_paused || s->stopping)
                return;
        s->accept_paused = false;
        s->accept_retry_ms = 0;
        server_watch_listeners(s, true);
}

void server_conn_closed(struct server *s)
{
        s->n_conns--;
        s->stats.closed++;
        if (s->accept_paused && s->n_conns < s->cfg->max_connections)
                server_resume_accept(s);
}

int server_grow_wbuf(struct server *s, size_t need)
{
        size_t cap = s->wbuf_cap;
        char *p;

        if (need <= cap)
                return 0;
        while (cap < need)
                cap *= 2;
        p = realloc(s->wbuf, cap);
        if (!p)
                return -ENOMEM;
        s->wbuf = p;
        s->wbuf_cap = cap;
        return 0;
}

static const char *server_refusal(const struct listen_opts *o, const struct sockaddr_storage *ss)
{
        const void *addr;
        int family = ss->ss_family;

        if (family == AF_INET)
                addr = &((const struct sockaddr_in *) ss)->sin_addr;
        else if (family == AF_INET6)
                addr = &((const struct sockaddr_in6 *) ss)->sin6_addr;
        else
                return NULL;
        if (o->deny.n > 0 && acl_match(&o->deny, family, addr))
                return "denied";
        if (o->allow.n > 0 && !acl_match(&o->allow, family, addr))
                return "not allowed";
        return NULL;
}

static void server_accept_failed(struct server *s, struct listener *l, int err)
{
        static struct log_ratelimit rl;
        unsigned suppressed;

        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                /* Out of descriptors or memory: stop watching the listeners (the
                 * kernel keeps new clients in the backlog) and retry when a client
                 * leaves or after a pause, never in a busy loop. */
                server_pause_accept(s, s->now_ms + SERVER_ACCEPT_RETRY_MS);
                if (log_ratelimit_ok(&rl, s->now_ms, &suppressed))
                        log_warning("cannot accept on %s: %s; pausing accepts (%u connections open)%s",
                                    l->addr_str, strerror(err), s->n_conns,
                                    suppressed ? " (similar messages suppressed)" : "");
        } else if (log_ratelimit_ok(&rl, s->now_ms, &suppressed)) {
                log_warning("accept on %s failed: %s", l->addr_str, strerror(err));
        }
}

static void server_on_accept(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct listener *l = data;
        struct server *s = l->owner;

        for (int i = 0; i < SERVER_ACCEPT_BATCH; i++) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);
                const char *why;
                int cfd, one = 1, r;

                if (s->n_conns >= s->cfg->max_connections) {
                        static struct log_ratelimit rl;
                        unsigned suppressed;

                        server_pause_accept(s, 0);
                        if (log_ratelimit_ok(&rl, s->now_ms, &suppressed))
                                log_notice("max_connections (%u) reached: new clients wait until one leaves",
                                           s->cfg->max_connections);
                        return;
                }
                cfd = accept4(fd, (struct sockaddr *) &ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                                continue;
                        if (errno != EAGAIN)
                                server_accept_failed(s, l, errno);
                        return;
                }
                why = server_refusal(&l->settings->o, &ss);
                if (why) {
                        static struct log_ratelimit rl;
                        unsigned suppressed;
                        char peer[SOCKADDR_STR_MAX];

                        s->stats.refused++;
                        if (log_ratelimit_ok(&rl, s->now_ms, &suppressed))
                                log_notice("refused %s on %s: %s",
                                           sockaddr_to_string((struct sockaddr *) &ss, len, peer),
                                           l->addr_str, why);
                        close(cfd);
                        continue;
                }
                /* replies are whole messages: send them without Nagle's delay */
                (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                s->stats.accepted++;
                if (log_enabled(LOG_LEVEL_DEBUG)) {
                        char peer[SOCKADDR_STR_MAX];
                        log_debug("connection from %s on %s",
                                  sockaddr_to_string((struct sockaddr *) &ss, len, peer), l->addr_str);
                }
                r = conn_start(s, cfd, l->settings);
                if (r == -ERANGE) {
                        static struct log_ratelimit rl;
                        unsigned suppressed;

                        if (log_ratelimit_ok(&rl, s->now_ms, &suppressed))
                                log_warning("descriptor %d is beyond what backend \"%s\" can watch: connection closed",
                                            cfd, ev_loop_backend(s->loop)->name);
                }
        }
}

static void server_close_all(struct server *s)
{
        struct idle_link *l;

        while ((l = idle_oldest(&s->conns)))
                conn_close(conn_from_idle(l));
}

static void server_close_listeners(struct server *s)
{
        struct listener *l, *next;

        for (l = s->listeners; l; l = next) {
                next = l->next;
                ev_del(s->loop, l->fd, EV_READABLE);
                listener_free(l);
        }
        s->listeners = NULL;
        s->n_listeners = 0;
}

static void server_stop(struct server *s, const char *why)
{
        struct idle_link *l, *next;

        s->stopping = true;
        s->stop_deadline_ms = s->now_ms + (uint64_t) s->cfg->shutdown_timeout * 1000u;
        log_info("%s: stopping, draining %u connection%s (at most %us)", why, s->n_conns,
                 s->n_conns == 1 ? "" : "s", s->cfg->shutdown_timeout);
        server_close_listeners(s);
        for (l = s->conns.head.next; l != &s->conns.head; l = next) {
                next = l->next;
                conn_drain(conn_from_idle(l));
        }
}

static void server_log_stats(struct server *s)
{
        const struct server_stats *st = &s->stats;

        log_info("statistics: %u connections open, %zu listeners, %llu accepted, %llu refused, "
                 "%llu closed, %llu messages, %llu timeouts, %llu oversized, %llu bytes in, %llu bytes out",
                 s->n_conns, s->n_listeners,
                 (unsigned long long) st->accepted, (unsigned long long) st->refused,
                 (unsigned long long) st->closed, (unsigned long long) st->messages,
                 (unsigned long long) st->timeouts, (unsigned long long) st->oversized,
                 (unsigned long long) st->bytes_in, (unsigned long long) st->bytes_out);
}

static void server_on_signal(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct server *s = data;
        struct signalfd_siginfo si;

        while (read(fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
                switch (si.ssi_signo) {
                case SIGTERM:
                case SIGINT:
                        if (s->stopping) {
                                log_notice("%s again: exiting now", strsignal((int) si.ssi_signo));
                                s->exit_now = true;
                        } else {
                                server_stop(s, strsignal((int) si.ssi_signo));
                        }
                        break;
                case SIGHUP:
                        log_notice("SIGHUP received: configuration reload is not available in this build");
                        break;
                case SIGUSR1:
                        server_log_stats(s);
                        break;
                }
        }
}

static int server_setup_signals(struct server *s)
{
        sigset_t mask;

        /* a client that vanishes mid-write must never kill the daemon */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGUSR1);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        s->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->signal_fd < 0)
                return -errno;
        return ev_add(s->loop, s->signal_fd, EV_READABLE, server_on_signal, s);
}

/* Use every descriptor the hard limit allows; the loop is sized to match. */
static int server_fd_limit(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 1024;
        if (rl.rlim_cur < rl.rlim_max) {
                struct rlimit want = { rl.rlim_max, rl.rlim_max };
                if (want.rlim_cur > SERVER_SETSIZE_MAX)
                        want.rlim_cur = SERVER_SETSIZE_MAX;
                if (setrlimit(RLIMIT_NOFILE, &want) == 0)
                        rl.rlim_cur = want.rlim_cur;
        }
        return rl.rlim_cur > SERVER_SETSIZE_MAX ? SERVER_SETSIZE_MAX : (int) rl.rlim_cur;
}

static int server_open_listeners(struct server *s)
{
        struct listener **tail = &s->listeners;

        for (size_t i = 0; i < s->cfg->n_listeners; i++) {
                const struct listen_entry *e = &s->cfg->listeners[i];
                struct listener *l;
                int r = listener_open(e, &l);

                if (r < 0) {
                        log_err("%s:%d: cannot listen on %s%s%s:%u: %s", s->cfg->path, e->line,
                                e->address && strchr(e->address, ':') ? "[" : "",
                                e->address ? e->address : "*",
                                e->address && strchr(e->address, ':') ? "]" : "",
                                e->port, strerror(-r));
                        return r;
                }
                l->paused = true;
                l->owner = s;
                *tail = l;
                tail = &l->next;
                s->n_listeners++;
                log_info("listening on %s%s%s%s (%s, %s framing)", l->addr_str,
                         l->name ? " \"" : "", l->name ? l->name : "", l->name ? "\"" : "",
                         e->opts.mode == MODE_ONESHOT ? "oneshot" : "echo",
                         e->opts.framing == FRAMING_RAW ? "raw" : "line");
        }
        return 0;
}

int server_new(struct config *cfg, struct server **ret)
{
        const struct ev_backend *b;
        struct server *s;
        int setsize, r;

        s = calloc(1, sizeof(*s));
        if (!s) {
                config_free(cfg);
                return -ENOMEM;
        }
        s->cfg = cfg;
        s->signal_fd = -1;
        s->now_ms = timer_now_ms();
        idle_queue_init(&s->conns);

        s->rbuf_size = SERVER_READ_SIZE;
        s->wbuf_cap = SERVER_READ_SIZE;
        s->rbuf = malloc(s->rbuf_size);
        s->wbuf = malloc(s->wbuf_cap);
        if (!s->rbuf || !s->wbuf) {
                r = -ENOMEM;
                log_err("out of memory");
                goto fail;
        }

        b = ev_backend_find(cfg->backend);
        setsize = server_fd_limit();
        r = ev_loop_new(b, setsize, &s->loop);
        if (r < 0) {
                log_err("cannot start the \"%s\" event loop: %s", cfg->backend, strerror(-r));
                goto fail;
        }
        if ((uint64_t) cfg->max_connections + cfg->n_listeners + CONFIG_RESERVED_FDS >
            (uint64_t) ev_loop_setsize(s->loop))
                log_warning("max_connections (%u) is more than the %d descriptors available; "
                            "accepting pauses when they run out",
                            cfg->max_connections, ev_loop_setsize(s->loop));

        r = server_setup_signals(s);
        if (r < 0) {
                log_err("cannot set up signal handling: %s", strerror(-r));
                goto fail;
        }
        r = server_open_listeners(s);
        if (r < 0)
                goto fail;
        if (s->n_listeners == 0) {
                log_err("%s: no listeners: set \"ports\" or \"listen\"", cfg->path);
                r = -EINVAL;
                goto fail;
        }
        s->accept_paused = true;
        server_resume_accept(s);
        *ret = s;
        return 0;
fail:
        server_free(s);
        return r;
}

int server_run(struct server *s)
{
        log_set_level(s->cfg->log_level);
        log_info("ready: %zu listener%s, backend %s, max_connections %u", s->n_listeners,
                 s->n_listeners == 1 ? "" : "s", ev_loop_backend(s->loop)->name,
                 s->cfg->max_connections);

        while (!s->exit_now) {
                uint64_t timeout_ms = (uint64_t) s->cfg->timeout * 1000u;
                struct idle_link *l;
                int wait, n;

                if (s->stopping && s->n_conns == 0)
                        break;

                wait = idle_next_timeout(&s->conns, s->now_ms, timeout_ms);
                if (s->accept_retry_ms) {
                        int t = s->accept_retry_ms > s->now_ms ? (int) (s->accept_retry_ms - s->now_ms) : 0;
                        if (wait < 0 || t < wait)
                                wait = t;
                }
                if (s->stopping) {
                        int t = s->stop_deadline_ms > s->now_ms ? (int) (s->stop_deadline_ms - s->now_ms) : 0;
                        if (wait < 0 || t < wait)
                                wait = t;
                }

                n = ev_wait(s->loop, wait);
                if (n < 0) {
                        log_err("event loop failed: %s", strerror(-n));
                        s->exit_code = 1;
                        break;
                }
                s->now_ms = timer_now_ms();
                ev_dispatch(s->loop, n);

                while ((l = idle_pop_expired(&s->conns, s->now_ms, timeout_ms))) {
                        struct conn *c = conn_from_idle(l);

                        s->stats.timeouts++;
                        log_debug("closing a connection idle for %us", s->cfg->timeout);
                        conn_close(c);
                }
                if (s->accept_retry_ms && s->now_ms >= s->accept_retry_ms)
                        server_resume_accept(s);
                if (s->stopping && s->now_ms >= s->stop_deadline_ms) {
                        if (s->n_conns > 0)
                                log_notice("shutdown_timeout reached: closing %u connection%s with unsent replies",
                                           s->n_conns, s->n_conns == 1 ? "" : "s");
                        break;
                }
        }
        server_close_all(s);
        log_info("stopped");
        return s->exit_code;
}

void server_free(struct server *s)
{
        if (!s)
                return;
        if (s->loop) {
                server_close_all(s);
                server_close_listeners(s);
                if (s->signal_fd >= 0)
                        ev_del(s->loop, s->signal_fd, EV_READABLE);
        }
        if (s->signal_fd >= 0)
                close(s->signal_fd);
        ev_loop_free(s->loop);
        free(s->rbuf);
        free(s->wbuf);
        config_free(s->cfg);
        free(s);
}
