/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "systemd.h"
#include "util.h"

#define SERVER_READ_SIZE        (64u * 1024u)
#define SERVER_ACCEPT_BATCH     64      /* accepts per wakeup, so clients keep being served */
#define SERVER_ACCEPT_RETRY_MS  1000u   /* retry after descriptor exhaustion */
#define SERVER_SETSIZE_MAX      (1 << 20)
#define SERVER_STATUS_MS        1000u   /* STATUS= at most this often */
#define SERVER_NOTIFY_RETRY_MS  100u

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

static const char *server_refusal(const struct listen_opts *o, const struct sockaddr_storage *ss,
                                  const struct source *src)
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
        if (o->max_per_source > 0 && src->count > o->max_per_source)
                return "too many connections from this address (max_per_source)";
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
                struct source *src;
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
                src = source_get(&s->sources, (struct sockaddr *) &ss);
                if (!src) {
                        close(cfd);
                        server_accept_failed(s, l, ENOMEM);
                        return;
                }
                source_hold(src);
                why = server_refusal(&l->settings->o, &ss, src);
                if (why) {
                        static struct log_ratelimit rl;
                        unsigned suppressed;
                        char peer[SOCKADDR_STR_MAX];

                        s->stats.refused++;
                        if (log_ratelimit_ok(&rl, s->now_ms, &suppressed)) {
                                sockaddr_to_string((struct sockaddr *) &ss, len, peer);
                                log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) {
                                                .event = "refused", .listen = l->addr_str, .peer = peer },
                                         "refused %s on %s: %s%s", peer, l->addr_str, why,
                                         suppressed ? " (similar messages suppressed)" : "");
                        }
                        close(cfd);
                        source_release(&s->sources, src);
                        continue;
                }
                /* replies are whole messages: send them without Nagle's delay */
                (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                s->stats.accepted++;
                if (log_enabled(LOG_LEVEL_DEBUG)) {
                        char peer[SOCKADDR_STR_MAX];

                        sockaddr_to_string((struct sockaddr *) &ss, len, peer);
                        log_full(LOG_LEVEL_DEBUG, &(const struct log_fields) {
                                        .event = "connection", .listen = l->addr_str, .peer = peer },
                                 "connection from %s on %s", peer, l->addr_str);
                }
                r = conn_start(s, cfd, l->settings, src);
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
        while ((l = idle_oldest(&s->lingering)))
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
        notify_state(s->notify, "STOPPING=1");
        log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "stopping", .message_id = MUXD_MESSAGE_STOPPING },
                 "%s: stopping, draining %u connection%s (at most %us)", why, s->n_conns,
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

static void server_log_listening(const struct listener *l, const struct listen_entry *e)
{
        const struct listen_opts *o = e ? &e->opts : &l->settings->o;
        const char *name = e ? e->name : l->name;

        log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "listening", .listen = l->addr_str },
                 "listening on %s%s%s%s%s (%s, %s framing)", l->addr_str,
                 name ? " \"" : "", name ? name : "", name ? "\"" : "",
                 l->passed ? ", passed by systemd" : "",
                 o->mode == MODE_ONESHOT ? "oneshot" : "echo",
                 o->framing == FRAMING_RAW ? "raw" : "line");
}

static void server_drop_listener(struct server *s, struct listener *l)
{
        ev_del(s->loop, l->fd, EV_READABLE);
        listener_free(l);
}

/* The listener already serving entry e, if any (not one claimed before). */
static struct listener *server_find_listener(struct server *s, const struct listen_entry *e,
                                             const struct listen_key *k, int pass)
{
        for (struct listener *l = s->listeners; l; l = l->next) {
                if (l->claimed)
                        continue;
                if (pass == 0 && e->name && l->passed && l->name && strcmp(e->name, l->name) == 0)
                        return l;       /* FileDescriptorName= claims first */
                if (pass == 1 && listener_matches(l, k, true))
                        return l;
                if (pass == 2 && listener_matches(l, k, false))
                        return l;
        }
        return NULL;
}

/* Make the listeners match cfg, all or nothing: listeners with the same
 * (address, port) keep their socket, new ones are bound, removed ones stop
 * accepting (passed sockets fall back to the global defaults). If a new
 * listener cannot be bound, the ones just opened are closed, nothing else
 * changed, and -errno is returned with *error set to a "FILE:LINE: ..." text. */
static int server_apply_listeners(struct server *s, const struct config *cfg, bool starting,
                                  char **error)
{
        size_t n = cfg->n_listeners, n_old = s->n_listeners;
        struct listener **match = calloc(n + 1, sizeof(*match));
        struct listener **old = calloc(n_old + 1, sizeof(*old));
        struct lsettings **set = calloc(n + 1, sizeof(*set));
        bool *opened = calloc(n + 1, sizeof(*opened));
        struct lsettings *defaults = lsettings_new(&cfg->defaults);
        struct listener *list = NULL, **tail = &list, *l;
        size_t k = 0;
        int r = -ENOMEM;

        *error = NULL;
        for (l = s->listeners; l; l = l->next)
                l->claimed = false;
        if (!match || !old || !set || !opened || !defaults)
                goto rollback;
        for (l = s->listeners; l; l = l->next)
                old[k++] = l;

        /* three passes so that a name or an exact (address, port) wins over a
         * wildcard socket that an entry for all addresses could also take */
        for (int pass = 0; pass < 3; pass++)
                for (size_t i = 0; i < n; i++) {
                        const struct listen_entry *e = &cfg->listeners[i];
                        struct listen_key key;

                        if (match[i] || listen_key_from_entry(e, &key) < 0)
                                continue;
                        match[i] = server_find_listener(s, e, &key, pass);
                        if (match[i])
                                match[i]->claimed = true;
                }

        for (size_t i = 0; i < n; i++) {
                const struct listen_entry *e = &cfg->listeners[i];
                struct listen_key key;

                set[i] = lsettings_new(&e->opts);
                if (!set[i])
                        goto rollback;
                if (match[i])
                        continue;
                r = listen_key_from_entry(e, &key);
                if (r >= 0)
                        r = listener_open(&key, &match[i]);
                if (r < 0) {
                        const char *a = e->address;
                        bool v6 = a && strchr(a, ':');

                        if (asprintf(error, "%s:%d: cannot listen on %s%s%s:%u: %s", cfg->path, e->line,
                                     v6 ? "[" : "", a ? a : "*", v6 ? "]" : "", e->port, strerror(-r)) < 0)
                                *error = NULL;
                        goto rollback;
                }
                match[i]->owner = s;
                match[i]->paused = true;
                opened[i] = true;
        }

        /* commit: nothing below can fail */
        for (size_t i = 0; i < n; i++) {
                l = match[i];
                lsettings_unref(l->settings);
                l->settings = set[i];
                set[i] = NULL;
                if (starting || opened[i])
                        server_log_listening(l, &cfg->listeners[i]);
                *tail = l;
                tail = &l->next;
        }
        for (size_t j = 0; j < n_old; j++) {
                l = old[j];
                if (l->claimed)
                        continue;
                if (l->passed) {
                        /* systemd holds this socket for us: keep serving it */
                        lsettings_unref(l->settings);
                        l->settings = lsettings_ref(defaults);
                        if (starting)
                                server_log_listening(l, NULL);
                        log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "unclaimed-socket", .listen = l->addr_str },
                                 "socket %s (\"%s\") passed by systemd matches no entry in %s: serving it with the global defaults",
                                 l->addr_str, l->name ? l->name : "", cfg->path);
                        *tail = l;
                        tail = &l->next;
                } else {
                        log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "unlistening", .listen = l->addr_str },
                                 "no longer listening on %s", l->addr_str);
                        server_drop_listener(s, l);
                }
        }
        *tail = NULL;
        s->listeners = list;
        s->n_listeners = 0;
        for (l = list; l; l = l->next) {
                l->claimed = false;
                s->n_listeners++;
        }
        r = 0;
        goto out;

rollback:
        for (size_t i = 0; match && opened && i < n; i++)
                if (opened[i])
                        listener_free(match[i]);
        for (l = s->listeners; l; l = l->next)
                l->claimed = false;
out:
        for (size_t i = 0; set && i < n; i++)
                lsettings_unref(set[i]);
        lsettings_unref(defaults);
        free(match);
        free(old);
        free(set);
        free(opened);
        return r;
}

/* Sockets systemd passed become listeners before any config entry is matched. */
static int server_adopt_passed(struct server *s)
{
        struct passed_socket *p;
        struct listener **tail = &s->listeners;
        size_t n;
        int bad = -1, r;

        r = systemd_listen_fds(&p, &n, &bad);
        if (r == -ENOTSOCK) {
                log_err("descriptor %d passed by systemd is not a listening TCP socket", bad);
                goto out;
        }
        if (r < 0) {
                log_err("cannot take the sockets passed by systemd: %s", strerror(-r));
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                struct listener *l;

                r = listener_adopt(p[i].fd, p[i].name, &l);
                if (r < 0) {
                        log_err("cannot use descriptor %d (\"%s\") passed by systemd: %s",
                                p[i].fd, p[i].name, strerror(-r));
                        goto out;
                }
                l->owner = s;
                l->paused = true;
                *tail = l;
                tail = &l->next;
                s->n_listeners++;
        }
        r = 0;
out:
        systemd_passed_sockets_free(p, n);
        return r;
}

/* STATUS= text: what systemctl status shows. */
static void server_status_text(struct server *s, char *buf, size_t size)
{
        snprintf(buf, size, "%s%s%s%s%zu listener%s, %u client%s, %llu message%s served",
                 s->stopping ? "stopping; " : "",
                 s->reload_error ? "reload failed: " : "",
                 s->reload_error ? s->reload_error : "",
                 s->reload_error ? "; " : "",
                 s->n_listeners, s->n_listeners == 1 ? "" : "s",
                 s->n_conns, s->n_conns == 1 ? "" : "s",
                 (unsigned long long) s->stats.messages, s->stats.messages == 1 ? "" : "s");
}

/* Send STATUS= if it changed, at most once a second; returns ms until the
 * next send is due (-1: nothing to send). */
static int server_update_status(struct server *s, bool force)
{
        char text[sizeof(s->status_sent)], msg[sizeof(text) + 8];

        if (!s->notify)
                return -1;
        server_status_text(s, text, sizeof(text));
        if (strcmp(text, s->status_sent) == 0)
                return -1;
        if (!force && s->status_sent_ms && s->now_ms - s->status_sent_ms < SERVER_STATUS_MS)
                return (int) (s->status_sent_ms + SERVER_STATUS_MS - s->now_ms);
        snprintf(msg, sizeof(msg), "STATUS=%s", text);
        if (notify_try(s->notify, msg) >= 0)
                memcpy(s->status_sent, text, sizeof(text));
        s->status_sent_ms = s->now_ms ? s->now_ms : 1;  /* a dropped update waits its turn too */
        return -1;
}

static void server_reload_failed(struct server *s, const char *error)
{
        free(s->reload_error);
        s->reload_error = strdup(error);
}

void server_reload(struct server *s)
{
        struct config_errors errs = { 0 };
        struct config *cfg = NULL;
        struct timespec ts;
        char msg[64], *error = NULL;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long) ts.tv_sec * 1000000ull + (unsigned long long) ts.tv_nsec / 1000u);
        notify_state(s->notify, msg);

        r = config_load(s->cfg->path, &cfg, &errs);
        if (r < 0) {
                for (size_t i = 0; i < errs.n; i++)
                        log_full(LOG_LEVEL_ERR, &(const struct log_fields) { .event = "reload-failed", .message_id = MUXD_MESSAGE_RELOAD_FAILED },
                                 "%s", errs.msgs[i]);
                log_full(LOG_LEVEL_ERR, &(const struct log_fields) { .event = "reload-failed", .message_id = MUXD_MESSAGE_RELOAD_FAILED },
                         "reload failed: keeping the running configuration");
                server_reload_failed(s, errs.n > 0 ? errs.msgs[0] : strerror(-r));
                config_errors_clear(&errs);
                goto done;
        }
        r = server_apply_listeners(s, cfg, false, &error);
        if (r < 0) {
                log_full(LOG_LEVEL_ERR, &(const struct log_fields) { .event = "reload-failed", .message_id = MUXD_MESSAGE_RELOAD_FAILED },
                         "reload failed: %s; keeping the running configuration", error ? error : strerror(-r));
                server_reload_failed(s, error ? error : strerror(-r));
                free(error);
                config_free(cfg);
                goto done;
        }

        if (strcmp(cfg->backend, ev_loop_backend(s->loop)->name) != 0)
                log_notice("backend \"%s\" takes effect at the next start; still running \"%s\"",
                           cfg->backend, ev_loop_backend(s->loop)->name);
        if (cfg->workers != s->cfg->workers)
                log_notice("workers = %u takes effect at the next start", cfg->workers);
        config_free(s->cfg);
        s->cfg = cfg;
        log_set_level(cfg->log_level);
        free(s->reload_error);
        s->reload_error = NULL;

        /* max_connections may have moved either way */
        if (s->n_conns >= cfg->max_connections)
                server_pause_accept(s, 0);
        else if (s->accept_paused && s->accept_retry_ms == 0)
                server_resume_accept(s);
        else if (!s->accept_paused)
                server_watch_listeners(s, true);        /* the new listeners */

        log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "reloaded", .message_id = MUXD_MESSAGE_RELOADED },
                 "configuration reloaded from %s: %zu listener%s", cfg->path, s->n_listeners,
                 s->n_listeners == 1 ? "" : "s");
done:
        notify_state(s->notify, "READY=1");
        server_update_status(s, true);
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
                        if (!s->stopping)
                                server_reload(s);
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
        idle_queue_init(&s->lingering);

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
        r = server_adopt_passed(s);
        if (r < 0)
                goto fail;
        {
                char *error;

                r = server_apply_listeners(s, cfg, true, &error);
                if (r < 0) {
                        log_err("%s", error ? error : strerror(-r));
                        free(error);
                        goto fail;
                }
        }
        if (s->n_listeners == 0) {
                log_err("%s: no listeners: set \"ports\" or \"listen\"", cfg->path);
                r = -EINVAL;
                goto fail;
        }
        r = notify_open(&s->notify);
        if (r < 0)
                log_warning("NOTIFY_SOCKET is unusable: %s", strerror(-r));
        s->watchdog_interval_ms = systemd_watchdog_usec() / 2000u;
        s->watchdog_next_ms = s->now_ms;
        s->accept_paused = true;
        server_resume_accept(s);
        *ret = s;
        return 0;
fail:
        server_free(s);
        return r;
}

static void server_wait_until(int *wait, uint64_t deadline_ms, uint64_t now_ms)
{
        int t = deadline_ms > now_ms ? (int) (deadline_ms - now_ms) : 0;

        if (*wait < 0 || t < *wait)
                *wait = t;
}

int server_run(struct server *s)
{
        notify_state(s->notify, "READY=1");
        log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "started", .message_id = MUXD_MESSAGE_STARTED },
                 "ready: %zu listener%s, backend %s, max_connections %u", s->n_listeners,
                 s->n_listeners == 1 ? "" : "s", ev_loop_backend(s->loop)->name,
                 s->cfg->max_connections);
        server_update_status(s, true);

        while (!s->exit_now) {
                uint64_t timeout_ms = (uint64_t) s->cfg->timeout * 1000u;
                struct idle_link *l;
                int wait, status_wait, n;

                if (s->stopping && s->n_conns == 0)
                        break;

                wait = idle_next_timeout(&s->conns, s->now_ms, timeout_ms);
                n = idle_next_timeout(&s->lingering, s->now_ms, CONN_LINGER_MS);
                if (n >= 0 && (wait < 0 || n < wait))
                        wait = n;
                if (s->accept_retry_ms)
                        server_wait_until(&wait, s->accept_retry_ms, s->now_ms);
                if (s->stopping)
                        server_wait_until(&wait, s->stop_deadline_ms, s->now_ms);
                if (s->watchdog_interval_ms)
                        server_wait_until(&wait, s->watchdog_next_ms, s->now_ms);
                if (notify_pending(s->notify))
                        server_wait_until(&wait, s->now_ms + SERVER_NOTIFY_RETRY_MS, s->now_ms);
                status_wait = server_update_status(s, false);
                if (status_wait >= 0)
                        server_wait_until(&wait, s->now_ms + (uint64_t) status_wait, s->now_ms);

                n = ev_wait(s->loop, wait);
                if (n < 0) {
                        log_err("event loop failed: %s", strerror(-n));
                        s->exit_code = 1;
                        break;
                }
                s->now_ms = timer_now_ms();
                ev_dispatch(s->loop, n);

                while ((l = idle_pop_expired(&s->conns, s->now_ms, timeout_ms))) {
                        s->stats.timeouts++;
                        log_debug("closing a connection idle for %us", s->cfg->timeout);
                        conn_close(conn_from_idle(l));
                }
                while ((l = idle_pop_expired(&s->lingering, s->now_ms, CONN_LINGER_MS)))
                        conn_close(conn_from_idle(l));
                if (s->accept_retry_ms && s->now_ms >= s->accept_retry_ms)
                        server_resume_accept(s);
                if (s->watchdog_interval_ms && s->now_ms >= s->watchdog_next_ms) {
                        notify_try(s->notify, "WATCHDOG=1");
                        s->watchdog_next_ms = s->now_ms + s->watchdog_interval_ms;
                }
                notify_flush(s->notify);
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
        notify_free(s->notify);
        free(s->reload_error);
        free(s->rbuf);
        free(s->wbuf);
        source_table_free(&s->sources);
        config_free(s->cfg);
        free(s);
}
