/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "conn-io.h"
#include "handover-format.h"
#include "server.h"
#include "util.h"
#include "worker.h"

#define WORKER_READ_SIZE        (64u * 1024u)
/* Accepts per wakeup of a listener: each costs an accept, a greeting and
 * their TCP work (10-15 us), and the connections ready in the same pass wait
 * for all of them: under churn, 1.5 % of the passes took 1 ms or more with
 * 64, 0.5 % with 16, at the same CPU per connection (bench/README.md). The
 * listener stays ready: the rest are accepted in the next pass. */
#define WORKER_ACCEPT_BATCH     16
#define WORKER_PENDING_MAX      4096u   /* clients held while paused (conn_io.accept), at most */
#define WORKER_ACCEPT_RETRY_MS  1000u   /* retry after descriptor exhaustion */
#define WORKER_TRANSIENT_MAX    1000u   /* transient loop errors in a row before giving up */
#define WORKER_FINISH_PASSES    50u     /* at the end: passes while the I/O completes closes */
#define WORKER_FINISH_WAIT_MS   10


static void worker_on_accept(struct ev_loop *loop, int fd, void *data, int mask);

static void worker_watch_listeners(struct worker *w, bool on)
{
        /* several workers share a listener: wake only one per new client */
        /* EV_LAST: the clients already connected are served first in a round */
        int hints = (w->srv->n_workers > 1 ? EV_EXCLUSIVE : 0) | EV_LAST;

        if (on && w->paused)
                return;         /* a live upgrade: the next image accepts */

        for (size_t i = 0; i < w->n_listeners; i++) {
                struct worker_listener *wl = &w->listeners[i];

                if (on && !wl->watched && !wl->drained) {
                        int r = w->io && w->io->accept ? w->io->accept(wl, true) :
                                ev_add(w->loop, wl->l->fd, EV_READABLE | hints, worker_on_accept, wl);

                        if (r < 0) {
                                /* The server checks that the running backend
                                 * can watch a listener before it commits one;
                                 * anything else (out of memory) is reported
                                 * and tried again, never silently left. */
                                unsigned suppressed;

                                if (log_ratelimit_ok(&w->rl_watch, w->now_ms, &suppressed))
                                        log_err("worker %u cannot watch %s: %s; trying again each second%s",
                                                w->id, wl->l->addr_str, errno_text(-r),
                                                suppressed ? " (similar messages suppressed)" : "");
                                w->watch_retry_ms = w->now_ms + WORKER_ACCEPT_RETRY_MS;
                                continue;
                        }
                        wl->watched = true;
                } else if (!on && wl->watched) {
                        if (w->io && w->io->accept)
                                (void) w->io->accept(wl, false);
                        else
                                ev_del(w->loop, wl->l->fd, EV_READABLE);
                        wl->watched = false;
                }
        }
}

static void worker_pause_accept(struct worker *w, uint64_t retry_ms)
{
        worker_watch_listeners(w, false);
        w->accept_paused = true;
        w->accept_retry_ms = retry_ms;
}

static void worker_resume_accept(struct worker *w)
{
        if (!w->accept_paused || w->stopping)
                return;
        w->accept_paused = false;
        w->accept_retry_ms = 0;
        worker_watch_listeners(w, true);
}

void worker_request(struct worker *w, unsigned what)
{
        uint64_t one = 1;

        atomic_fetch_or(&w->requests, what);
        if (write(w->wake_fd, &one, sizeof(one)) < 0) {
                /* the counter is saturated: the worker is awake anyway */
        }
}

/* Give back a place in n_conns_total: a client closed, or one not served
 * after all. The resume side of the handshake in worker_at_limit(): room
 * again, so every worker that paused may accept. The count left. */
static uint32_t worker_release_slot(struct worker *w)
{
        struct server *s = w->srv;
        uint32_t total = atomic_fetch_sub(&s->n_conns_total, 1) - 1;

        if (total < atomic_load(&s->max_connections) && atomic_exchange(&s->accept_paused_any, false))
                server_resume_accepting(s, w);
        return total;
}

void worker_conn_closed(struct worker *w, struct source *src)
{
        struct server *s = w->srv;
        uint32_t total;

        server_source_release(s, src, w->now_ms);
        w->n_conns--;
        total = worker_release_slot(w);
        /* A descriptor was just freed: whether accepting paused at the limit
         * or on descriptor exhaustion, there is room for one more client. */
        if (w->accept_paused && total < atomic_load(&s->max_connections))
                worker_resume_accept(w);
}

int worker_grow_wbuf(struct worker *w, size_t need)
{
        size_t cap = w->wbuf_cap;
        char *p;

        if (need <= cap)
                return 0;
        while (cap < need)
                cap *= 2;
        p = realloc(w->wbuf, cap);
        if (!p)
                return -ENOMEM;
        w->wbuf = p;
        w->wbuf_cap = cap;
        return 0;
}

/* The binary address of a peer (NULL if neither IPv4 nor IPv6). */
static const void *worker_peer_addr(const struct sockaddr_storage *ss)
{
        if (ss->ss_family == AF_INET)
                return &((const struct sockaddr_in *) ss)->sin_addr;
        if (ss->ss_family == AF_INET6)
                return &((const struct sockaddr_in6 *) ss)->sin6_addr;
        return NULL;
}

/* Banned through the control socket? Read without a lock: w->bans is this
 * worker's own reference, taken at its last resync. */
static bool worker_banned(const struct worker *w, const struct sockaddr_storage *ss)
{
        const void *addr = worker_peer_addr(ss);

        return addr && ban_list_match(w->bans, ss->ss_family, addr, w->now_ms);
}

/* Refused by the access list? (*why: for the log), or -1 if not. */
static int worker_refusal(const struct listener_opts *o, const struct sockaddr_storage *ss,
                          const char **why)
{
        const void *addr = worker_peer_addr(ss);
        int family = ss->ss_family;

        if (!addr)
                return -1;
        *why = "denied";
        if (o->deny.n > 0 && acl_match(&o->deny, family, addr))
                return STATS_REFUSED_ACCESS;
        *why = "not allowed";
        if (o->allow.n > 0 && !acl_match(&o->allow, family, addr))
                return STATS_REFUSED_ACCESS;
        return -1;
}

/* The per-source limits for a client from ss (the peer, or the client a
 * PROXY header names) on the listener whose serial is owner (listen: its
 * address for the log, or NULL): -1 and *src held if admitted, else why it
 * is refused (enum stats_refused; *why: for the log).
 * STATS_REFUSED_DESCRIPTORS means out of memory. Idle sources forgotten to
 * make room are counted by the table and logged here. */
static int worker_source_admit(struct worker *w, const struct listener_opts *o, uint64_t owner,
                               const char *listen, const struct sockaddr_storage *ss,
                               struct source **src, const char **why)
{
        unsigned evicted, suppressed;
        int r;

        r = server_source_hold(w->srv, owner, o, (const struct sockaddr *) ss, w->now_ms, src, &evicted);
        if (evicted > 0 && log_ratelimit_ok(&w->rl_evict, w->now_ms, &suppressed))
                log_warning("max_sources reached: forgot the connection rate of %u idle source%s "
                            "to make room for a new one%s%s%s", evicted,
                            evicted == 1 ? "" : "s", listen ? " on " : "", listen ? listen : "",
                            suppressed ? " (similar messages suppressed)" : "");
        switch (r) {
        case 0:
                return -1;
        case SOURCE_REFUSED_MAX_PER_SOURCE:
                *why = "too many connections from this address (max_per_source)";
                return STATS_REFUSED_MAX_PER_SOURCE;
        case SOURCE_REFUSED_RATE:
                *why = "too many new connections from this source (max_rate_per_source)";
                return STATS_REFUSED_RATE;
        case SOURCE_REFUSED_FULL:
                *why = "max_sources reached, each source with connections open";
                return STATS_REFUSED_SOURCES_FULL;
        default:
                *why = "out of memory";
                return STATS_REFUSED_DESCRIPTORS;
        }
}

/* The policy on a client's address, the same wherever it is known: at
 * accept (the peer), or once a PROXY header names the client behind a load
 * balancer (conn.c): bans, allow / deny, then the per-source limits
 * (max_per_source, max_rate_per_source, max_sources). Returns -1 with a
 * hold on *src, or the stats_refused reason with *why for the log
 * (STATS_REFUSED_DESCRIPTORS: out of memory) and no hold. */
int worker_admit(struct worker *w, const struct listener_opts *o, uint64_t owner, const char *listen,
                 const struct sockaddr_storage *ss, struct source **src, const char **why)
{
        int reason;

        *src = NULL;
        /* before the per-source limits: a banned or denied flood costs no
         * lock and takes no place in the table of sources */
        if (w->bans && worker_banned(w, ss)) {
                *why = "banned (control socket)";
                return STATS_REFUSED_ACCESS;
        }
        reason = worker_refusal(o, ss, why);
        if (reason < 0)
                reason = worker_source_admit(w, o, owner, listen, ss, src, why);
        return reason;
}

static void worker_accept_failed(struct worker *w, const struct worker_listener *wl, int err)
{
        const struct listener *l = wl->l;
        unsigned suppressed;

        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                /* Out of descriptors or memory: stop watching the listeners (the
                 * kernel keeps new clients in the backlog) and retry when a client
                 * leaves or after a pause, never in a busy loop. */
                worker_pause_accept(w, w->now_ms + WORKER_ACCEPT_RETRY_MS);
                STATS_ADD(worker_stats(w, wl->set), pauses[STATS_PAUSE_DESCRIPTORS], 1);
                if (log_ratelimit_ok(&w->rl_accept, w->now_ms, &suppressed))
                        log_warning("cannot accept on %s: %s; pausing accepts (%u connections open)%s",
                                    l->addr_str, errno_text(err), atomic_load(&w->srv->n_conns_total),
                                    suppressed ? " (similar messages suppressed)" : "");
        } else if (log_ratelimit_ok(&w->rl_accept, w->now_ms, &suppressed)) {
                log_warning("accept on %s failed: %s", l->addr_str, errno_text(err));
        }
}

void worker_log_refused(struct worker *w, const char *listen, int fd, const struct sockaddr *peer,
                        socklen_t peer_len, const struct sockaddr *proxy, socklen_t proxy_len,
                        const char *why)
{
        char peer_s[SOCKADDR_STR_MAX], proxy_s[SOCKADDR_STR_MAX], listen_s[SOCKADDR_STR_MAX];
        unsigned suppressed;

        if (!log_ratelimit_ok(&w->rl_refused, w->now_ms, &suppressed))
                return;
        sockaddr_to_string(peer, peer_len, peer_s);
        if (proxy)
                sockaddr_to_string(proxy, proxy_len, proxy_s);
        if (!listen) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);

                listen = getsockname(fd, (struct sockaddr *) &ss, &len) == 0 ?
                        sockaddr_to_string((struct sockaddr *) &ss, len, listen_s) : "?";
        }
        log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) {
                        .event = "refused", .listen = listen, .peer = peer_s, .proxy = proxy ? proxy_s : NULL },
                 "refused %s%s%s on %s: %s%s", peer_s, proxy ? " via " : "", proxy ? proxy_s : "", listen,
                 why, suppressed ? " (similar messages suppressed)" : "");
}

static void worker_refuse(struct worker *w, const struct worker_listener *wl, int cfd,
                          const struct sockaddr_storage *ss, socklen_t len, int reason, const char *why)
{
        STATS_ADD(worker_stats(w, wl->set), refused[reason], 1);
        worker_log_refused(w, wl->l->addr_str, cfd, (const struct sockaddr *) ss, len, NULL, 0, why);
        close(cfd);
}

/* Take one place below max_connections (true), counted in n_conns_total at
 * once: a check now and an increment later would let two workers both take
 * the last place. */
static bool worker_take_slot(struct server *s)
{
        uint32_t n = atomic_load(&s->n_conns_total);

        while (n < atomic_load(&s->max_connections))
                if (atomic_compare_exchange_weak(&s->n_conns_total, &n, n + 1))
                        return true;
        return false;
}


/* At max_connections? Then accepting pauses until a client leaves (true).
 * Otherwise a place is taken for the next client (false): the caller serves
 * one (worker_accepted()) or gives it back (worker_release_slot()).
 * The pause side of a handshake with worker_release_slot(): here, store
 * accept_paused_any, then load n_conns_total; there, decrement
 * n_conns_total, then exchange accept_paused_any. With sequentially
 * consistent operations (the default of atomic_*), at least one side sees
 * the other's write: either this worker sees room and resumes at once, or
 * the closing worker sees the flag and wakes every worker. Weaker orders
 * would let both miss, leaving this worker paused for good. */
static bool worker_at_limit(struct worker *w, const struct worker_listener *wl)
{
        struct server *s = w->srv;
        unsigned suppressed;

        if (worker_take_slot(s))
                return false;
        worker_pause_accept(w, 0);
        atomic_store(&s->accept_paused_any, true);
        if (worker_take_slot(s)) {
                worker_resume_accept(w);
                return false;
        }
        STATS_ADD(worker_stats(w, wl->set), pauses[STATS_PAUSE_MAX_CONNECTIONS], 1);
        if (log_ratelimit_ok(&w->rl_limit, w->now_ms, &suppressed))
                log_notice("max_connections (%u) reached: new clients wait until one leaves",
                           atomic_load(&s->max_connections));
        return true;
}

/* Serve the client just accepted on cfd from ss (len bytes) in the place
 * worker_at_limit() took for it, or refuse it (and give the place back).
 * -errno: stop accepting in this pass (the worker paused). */
static int worker_accepted(struct worker *w, const struct worker_listener *wl, int cfd,
                           const struct sockaddr_storage *ss, socklen_t len)
{
        const struct listener *l = wl->l;
        struct source *src = NULL;
        const char *why = NULL;
        int one = 1, r, reason;

        if (wl->set->o.proxy_protocol != PROXY_OFF) {
                /* Behind a load balancer: only the balancers may connect;
                 * the policy waits for the client that the header names
                 * (conn.c calls worker_admit()). */
                const void *addr = worker_peer_addr(ss);

                if (!addr || !acl_match(&wl->set->o.proxy_from, ss->ss_family, addr)) {
                        (void) worker_release_slot(w);
                        worker_refuse(w, wl, cfd, ss, len, STATS_REFUSED_PROXY_FROM,
                                      "not in proxy_from (PROXY protocol)");
                        return 0;
                }
        } else {
                reason = worker_admit(w, &wl->set->o, l->serial, l->addr_str, ss, &src, &why);
                if (reason >= 0)
                        (void) worker_release_slot(w);
                if (reason == STATS_REFUSED_DESCRIPTORS) {
                        close(cfd);
                        STATS_ADD(worker_stats(w, wl->set), refused[STATS_REFUSED_DESCRIPTORS], 1);
                        worker_accept_failed(w, wl, ENOMEM);
                        return -ENOMEM;
                }
                if (reason >= 0) {
                        worker_refuse(w, wl, cfd, ss, len, reason, why);
                        return 0;
                }
        }
        /* replies are whole messages: sent without Nagle's delay (set on
         * the listener, inherited; a passed socket may have refused it) */
        if (!l->nodelay)
                (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (log_enabled(LOG_LEVEL_DEBUG)) {
                char peer[SOCKADDR_STR_MAX];

                sockaddr_to_string((const struct sockaddr *) ss, len, peer);
                log_full(LOG_LEVEL_DEBUG, &(const struct log_fields) {
                                .event = "connection", .listen = l->addr_str, .peer = peer },
                         src ? "connection from %s on %s" :
                         "connection from load balancer %s on %s: waiting for its PROXY header",
                         peer, l->addr_str);
        }
        /* its place in n_conns_total is taken; counted there: accepted
         * once it is served (behind a balancer: once
         * its header admits the client), refused if it cannot be */
        if (wl->set->o.proxy_protocol != PROXY_OFF)
                r = conn_start_proxy(w, cfd, wl->set, l->serial, ss, len);
        else
                r = conn_start(w, cfd, wl->set, src, ss, len);
        if (r == -ERANGE) {
                unsigned suppressed;

                if (log_ratelimit_ok(&w->rl_range, w->now_ms, &suppressed))
                        log_warning("descriptor %d is beyond what backend \"%s\" can watch: connection closed",
                                    cfd, ev_loop_backend(w->loop)->name);
        }
        return 0;
}

static void worker_on_accept(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct worker_listener *wl = data;
        struct worker *w = wl->w;

        /* A few clients per pass: the connections ready in the same pass
         * (and those of the next) wait for every accept of it. */
        for (int i = 0; i < WORKER_ACCEPT_BATCH; i++) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);
                int cfd;

                if (worker_at_limit(w, wl))
                        return;
                cfd = accept4(fd, (struct sockaddr *) &ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        int err = errno;

                        (void) worker_release_slot(w);
                        if (err == EINTR || err == ECONNABORTED || err == EPROTO)
                                continue;
                        if (err != EAGAIN)
                                worker_accept_failed(w, wl, err);
                        return;
                }
                if (worker_accepted(w, wl, cfd, &ss, len) < 0)
                        return;
        }
}

static struct worker_listener *worker_find_listener(struct worker *w, uint64_t serial)
{
        for (size_t i = 0; i < w->n_listeners; i++)
                if (w->listeners[i].l->serial == serial)
                        return &w->listeners[i];
        return NULL;
}

/* Hold cfd until accepting resumes (worker_serve_pending()). */
static void worker_pend(struct worker *w, const struct worker_listener *wl, int cfd)
{
        if (w->n_pending == w->pending_cap) {
                size_t cap = w->pending_cap ? w->pending_cap * 2 : 16;
                struct worker_pending *p = NULL;

                if (cap <= WORKER_PENDING_MAX)
                        p = realloc(w->pending, cap * sizeof(*p));
                if (!p) {
                        /* accepted, then closed at once, as when out of memory */
                        STATS_ADD(worker_stats(w, wl->set), refused[STATS_REFUSED_DESCRIPTORS], 1);
                        close(cfd);
                        return;
                }
                w->pending = p;
                w->pending_cap = cap;
        }
        w->pending[w->n_pending++] = (struct worker_pending) { .fd = cfd, .serial = wl->l->serial };
}

/* Serve cfd, which the I/O accepted on wl's listener. The accept gave no
 * address (a multishot accept has one buffer for every client): the access
 * lists, the per-source counts and the logs need it. */
static void worker_serve_taken(struct worker *w, const struct worker_listener *wl, int cfd)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        if (getpeername(cfd, (struct sockaddr *) &ss, &len) < 0) {
                (void) worker_release_slot(w);
                close(cfd);     /* gone already (reset) */
                return;
        }
        (void) worker_accepted(w, wl, cfd, &ss, len);
}

/* A client the I/O accepted: served now, held while paused, or closed if
 * its listener is gone (as the clients in a closed listener's backlog are).
 * One accepted just before its listener was drained is served: drained
 * listeners accept no more, and this one the kernel accepted before. */
static void worker_take(struct worker *w, struct worker_listener *wl, int cfd)
{
        if (!wl || w->stopping) {
                close(cfd);
                return;
        }
        /* paused for a live upgrade: held, and handed over with the rest */
        if (w->paused || w->accept_paused || w->n_pending > 0 || worker_at_limit(w, wl)) {
                worker_pend(w, wl, cfd);        /* after those held before */
                return;
        }
        worker_serve_taken(w, wl, cfd);
}

/* Serve the clients held while paused, oldest first, while there is room. */
static void worker_serve_pending(struct worker *w)
{
        size_t i;

        for (i = 0; i < w->n_pending && !w->accept_paused; i++) {
                const struct worker_pending *p = &w->pending[i];
                struct worker_listener *wl = worker_find_listener(w, p->serial);

                if (!wl || w->stopping)
                        close(p->fd);
                else if (worker_at_limit(w, wl))
                        break;          /* it keeps its place */
                else
                        worker_serve_taken(w, wl, p->fd);
        }
        memmove(w->pending, w->pending + i, (w->n_pending - i) * sizeof(*w->pending));
        w->n_pending -= i;
}

/* Close the clients held for listeners this worker no longer has (a reload
 * removed them): as those in such a listener's backlog are. */
static void worker_drop_orphans(struct worker *w)
{
        size_t kept = 0;

        for (size_t i = 0; i < w->n_pending; i++) {
                if (worker_find_listener(w, w->pending[i].serial))
                        w->pending[kept++] = w->pending[i];
                else
                        close(w->pending[i].fd);
        }
        w->n_pending = kept;
}

static void worker_close_pending(struct worker *w)
{
        for (size_t i = 0; i < w->n_pending; i++)
                close(w->pending[i].fd);
        w->n_pending = 0;
}

void worker_io_accepted(struct worker *w, struct worker_listener *wl, uint64_t serial, int res, bool more)
{
        bool again = true;

        if (!more && wl) {
                wl->watched = false;    /* over: armed again below, if still wanted */
                wl->accept_op = NULL;
        }
        if (res >= 0) {
                worker_take(w, wl ? wl : worker_find_listener(w, serial), res);
        } else if (res != -ECANCELED && wl && res != -EINTR && res != -ECONNABORTED && res != -EPROTO &&
                   res != -EAGAIN) {
                worker_accept_failed(w, wl, -res);      /* out of descriptors: pauses */
                if (!w->accept_paused)
                        w->watch_retry_ms = w->now_ms + WORKER_ACCEPT_RETRY_MS;     /* never a busy loop */
                again = false;
        }
        if (!more && wl && again && !w->accept_paused)
                worker_watch_listeners(w, true);
}

/* Take the server's current listener list (and each listener's settings). */
static void worker_resync(struct worker *w)
{
        struct server *s = w->srv;
        struct worker_listener *next = NULL;
        struct ban_list *old_bans = w->bans;
        size_t n = 0;
        uint64_t gen;

        pthread_mutex_lock(&s->listeners_lock);
        gen = s->listeners_gen;
        w->bans = ban_list_ref(s->bans);
        if (!w->stopping) {
                for (struct listener *l = s->listeners; l; l = l->next)
                        n++;
                next = calloc(n + 1, sizeof(*next));
                if (next) {
                        size_t i = 0;

                        for (struct listener *l = s->listeners; l; l = l->next, i++)
                                next[i] = (struct worker_listener) { .l = l, .set = listener_settings_ref(l->settings),
                                                                     .w = w, .drained = l->draining };
                } else {
                        n = 0;  /* out of memory: stop accepting rather than guess */
                }
        }
        pthread_mutex_unlock(&s->listeners_lock);
        ban_list_unref(old_bans);

        worker_watch_listeners(w, false);
        for (size_t i = 0; i < w->n_listeners; i++)
                listener_settings_unref(w->listeners[i].set);
        free(w->listeners);
        w->listeners = next;
        w->n_listeners = n;
        worker_drop_orphans(w);
        if (!w->accept_paused)
                worker_watch_listeners(w, true);
        pthread_mutex_lock(&s->listeners_lock);
        atomic_store(&w->synced_gen, gen);
        pthread_cond_broadcast(&s->synced_cond);
        pthread_mutex_unlock(&s->listeners_lock);
}

/* Stopping (after the drain time, or at once): what is left is closed on stop. */
static void worker_close_all(struct worker *w)
{
        struct idle_link *l;

        while ((l = idle_oldest(&w->proxying)))
                conn_close(conn_from_idle(l));          /* refused: no header yet */
        while ((l = idle_oldest(&w->conns)))
                conn_close_why(conn_from_idle(l), STATS_CLOSED_SHUTDOWN);
        while ((l = idle_oldest(&w->lingering)))
                conn_close_why(conn_from_idle(l), STATS_CLOSED_SHUTDOWN);
        worker_close_pending(w);
}

/* Stop accepting and drain. */
static void worker_stop(struct worker *w)
{
        struct idle_link *l, *next;

        w->stopping = true;
        w->stop_deadline_ms = w->now_ms + (uint64_t) atomic_load(&w->srv->shutdown_timeout_s) * 1000u;
        worker_resync(w);       /* to no listener at all */
        worker_close_pending(w);        /* as the listeners' backlogs will be */
        /* still waiting for a PROXY header: nothing was sent, nothing owed */
        while ((l = idle_oldest(&w->proxying)))
                conn_close(conn_from_idle(l));
        for (l = w->conns.head.next; l != &w->conns.head; l = next) {
                next = l->next;
                conn_drain(conn_from_idle(l));
        }
}

/* ---- live upgrade (server-upgrade.c) ---- */

static void worker_free_export(struct worker *w)
{
        for (size_t i = 0; w->ho_conns && i < w->n_ho; i++) {
                buffer_free(&w->ho_conns[i].in);
                buffer_free(&w->ho_conns[i].out);
        }
        free(w->ho_conns);
        free(w->ho_serials);
        w->ho_conns = NULL;
        w->ho_serials = NULL;
        w->n_ho = 0;
        w->ho_error = 0;
}

/* Has a paused connection operations in flight still? Each is paused again
 * on the way: a cancellation a full queue did not take is asked again. */
static bool worker_paused_busy(struct worker *w)
{
        struct idle_queue *lists[] = { &w->conns, &w->lingering, &w->proxying };
        bool busy = false;

        for (size_t k = 0; k < ELEMENTSOF(lists); k++)
                for (struct idle_link *l = lists[k]->head.next; l != &lists[k]->head; l = l->next)
                        if (conn_paused_busy(conn_from_idle(l))) {
                                conn_pause(conn_from_idle(l));
                                busy = true;
                        }
        return busy;
}

/* Is an accept of the I/O's (a multishot accept being cancelled) still
 * armed? A client it takes after the export would be in no state. */
static bool worker_accepts_busy(const struct worker *w)
{
        for (size_t i = 0; i < w->n_listeners; i++)
                if (w->listeners[i].accept_op)
                        return true;
        return false;
}

/* A client accepted but held (worker_pend()) goes as a connection whose
 * greeting is still to be sent: it was never served. */
static int worker_export_held(const struct worker *w, const struct worker_pending *p,
                              struct handover_conn *hc)
{
        const struct worker_listener *wl = worker_find_listener((struct worker *) w, p->serial);

        *hc = (struct handover_conn) { .fd = p->fd, .in = BUFFER_INIT, .out = BUFFER_INIT };
        if (wl->set->o.proxy_protocol != PROXY_OFF) {
                /* its header is still to come, all of proxy_timeout for it;
                 * the next image checks proxy_from (not done yet) */
                struct sockaddr_storage ss = {};
                socklen_t len = sizeof(ss);

                hc->proxy = HANDOVER_P_WAITING;
                hc->proxy_wait_ms = (uint64_t) wl->set->o.proxy_timeout * 1000u;
                hc->balancer.family = AF_INET;  /* gone already: the next image closes it */
                if (getpeername(p->fd, (struct sockaddr *) &ss, &len) == 0 && ss.ss_family == AF_INET) {
                        const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;

                        memcpy(hc->balancer.addr, &in->sin_addr, 4);
                        hc->balancer.port = ntohs(in->sin_port);
                } else if (len <= sizeof(ss) && ss.ss_family == AF_INET6) {
                        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;

                        hc->balancer.family = AF_INET6;
                        memcpy(hc->balancer.addr, &in6->sin6_addr, 16);
                        hc->balancer.port = ntohs(in6->sin6_port);
                        hc->balancer.scope_id = in6->sin6_scope_id;
                }
                return 0;
        }
        if (wl->set->o.greeting_len > 0 &&
            buffer_append(&hc->out, wl->set->o.greeting, wl->set->o.greeting_len, 0) < 0)
                return -ENOMEM;
        return 0;
}

/* Once nothing is in flight any more: describe every connection, the least
 * recently active first (the next image keeps that order), then the clients
 * held while accepting paused, and tell the main thread. */
static void worker_try_export(struct worker *w)
{
        struct server *s = w->srv;
        const struct idle_queue *lists[] = { &w->conns, &w->lingering, &w->proxying };
        size_t n, i = 0;

        if (!w->export_wanted || atomic_load(&w->exported) || worker_paused_busy(w) || worker_accepts_busy(w))
                return;
        worker_drop_orphans(w);         /* held for a listener gone: as its backlog */
        n = w->conns.count + w->lingering.count + w->proxying.count + w->n_pending;
        w->ho_conns = calloc(n + 1, sizeof(*w->ho_conns));
        w->ho_serials = calloc(n + 1, sizeof(*w->ho_serials));
        if (!w->ho_error && (!w->ho_conns || !w->ho_serials))
                w->ho_error = -ENOMEM;
        for (size_t k = 0; k < ELEMENTSOF(lists) && !w->ho_error; k++)
                for (const struct idle_link *l = lists[k]->head.next; l != &lists[k]->head; l = l->next) {
                        const struct conn *c = conn_from_idle((struct idle_link *) l);

                        if (conn_export(c, w->now_ms, &w->ho_conns[i]) < 0) {
                                w->ho_error = -ENOMEM;
                                break;
                        }
                        /* still waiting for its PROXY header: no source held yet */
                        w->ho_serials[i++] = c->src ? c->src->owner : conn_proxy(c)->owner;
                        w->n_ho = i;
                }
        for (size_t k = 0; k < w->n_pending && !w->ho_error; k++) {
                int r = worker_export_held(w, &w->pending[k], &w->ho_conns[i]);

                if (r < 0) {
                        w->ho_error = r;
                        break;
                }
                w->ho_serials[i++] = w->pending[k].serial;
                w->n_ho = i;
        }
        if (w->ho_error) {
                int r = w->ho_error;

                worker_free_export(w);
                w->ho_error = r;
        }
        pthread_mutex_lock(&s->listeners_lock);
        atomic_store(&w->exported, true);
        pthread_cond_broadcast(&s->synced_cond);
        pthread_mutex_unlock(&s->listeners_lock);
}

static void worker_pause(struct worker *w)
{
        struct idle_queue *lists[] = { &w->conns, &w->lingering, &w->proxying };

        w->paused = true;
        w->export_wanted = true;
        worker_watch_listeners(w, false);
        for (size_t k = 0; k < ELEMENTSOF(lists); k++)
                for (struct idle_link *l = lists[k]->head.next; l != &lists[k]->head; l = l->next)
                        conn_pause(conn_from_idle(l));
        worker_try_export(w);   /* at once, unless operations are in flight */
}

/* The upgrade failed: every connection is served again, in the order of
 * its last activity (serving one may move it to the tail: the list is
 * taken apart first so that none is resumed twice). */
static void worker_unpause(struct worker *w)
{
        struct idle_queue pending;
        struct idle_link *l, *next;

        worker_free_export(w);
        w->paused = false;
        w->export_wanted = false;
        pthread_mutex_lock(&w->srv->listeners_lock);
        atomic_store(&w->exported, false);
        pthread_cond_broadcast(&w->srv->synced_cond);
        pthread_mutex_unlock(&w->srv->listeners_lock);
        idle_queue_init(&pending);
        while ((l = idle_oldest(&w->conns))) {
                uint64_t last = l->last_ms;

                idle_remove(&w->conns, l);
                idle_touch(&pending, l, last);
        }
        while ((l = idle_oldest(&pending))) {
                uint64_t last = l->last_ms;

                idle_remove(&pending, l);
                idle_touch(&w->conns, l, last);
                (void) conn_unpause(conn_from_idle(l));
        }
        for (l = w->lingering.head.next; l != &w->lingering.head; l = next) {
                next = l->next;
                (void) conn_unpause(conn_from_idle(l));
        }
        /* Waiting for a PROXY header, in the order of their deadlines: one
         * whose header came meanwhile is admitted (moved to w->conns). */
        while ((l = idle_oldest(&w->proxying))) {
                uint64_t deadline = l->last_ms;

                idle_remove(&w->proxying, l);
                idle_touch(&pending, l, deadline);
        }
        while ((l = idle_oldest(&pending))) {
                uint64_t deadline = l->last_ms;

                idle_remove(&pending, l);
                idle_touch(&w->proxying, l, deadline);
                (void) conn_unpause(conn_from_idle(l));
        }
        if (!w->accept_paused)
                worker_watch_listeners(w, true);
}

bool worker_exported(const struct worker *w)
{
        return !w->thread_started || atomic_load(&w->exited) || atomic_load(&w->exported);
}

bool worker_unpaused(const struct worker *w)
{
        return !w->thread_started || atomic_load(&w->exited) || !atomic_load(&w->exported);
}

/* The connections the previous image handed to this worker. */
static void worker_adopt_all(struct worker *w)
{
        struct server *s = w->srv;
        size_t lost = 0;

        /* paused until this image has taken over for good (WORKER_UNPAUSE) */
        if (w->n_adopt > 0) {
                w->paused = true;
                worker_watch_listeners(w, false);
        }
        for (size_t i = 0; i < w->n_adopt; i++) {
                struct worker_adopt *a = &w->adopt[i];
                struct worker_listener *wl = NULL;
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);
                struct source *src = NULL;
                unsigned evicted;
                bool alive;

                for (size_t j = 0; a->l && j < w->n_listeners && !wl; j++)
                        if (w->listeners[j].l == a->l)
                                wl = &w->listeners[j];
                /* A client gone meanwhile has no peer address any more. One
                 * whose listener turned proxy_protocol on or off since keeps
                 * the state it was admitted with (it is served as it was). */
                alive = wl && getpeername(a->hc->fd, (struct sockaddr *) &ss, &len) == 0;
                if (alive && a->hc->proxy == HANDOVER_P_WAITING) {
                        /* not admitted yet: this configuration's rules, as at
                         * accept; its PROXY header then meets worker_admit() */
                        const void *addr = worker_peer_addr(&ss);

                        if (wl->set->o.proxy_protocol != PROXY_OFF &&
                            (!addr || !acl_match(&wl->set->o.proxy_from, ss.ss_family, addr))) {
                                worker_refuse(w, wl, a->hc->fd, &ss, len, STATS_REFUSED_PROXY_FROM,
                                              "not in proxy_from (PROXY protocol)");
                                continue;
                        }
                        atomic_fetch_add(&s->n_conns_total, 1);
                        (void) conn_adopt(w, a->hc, wl->set, NULL, wl->l->serial);
                        continue;
                }
                if (alive && a->hc->proxy == HANDOVER_P_ADMITTED) {
                        /* counted under the client its header named */
                        struct handover_addr *h = &a->hc->client;

                        memset(&ss, 0, sizeof(ss));
                        ss.ss_family = h->family;
                        if (h->family == AF_INET) {
                                struct sockaddr_in *in = (struct sockaddr_in *) &ss;

                                memcpy(&in->sin_addr, h->addr, 4);
                                in->sin_port = htons(h->port);
                        } else {
                                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;

                                memcpy(&in6->sin6_addr, h->addr, 16);
                                in6->sin6_port = htons(h->port);
                                in6->sin6_scope_id = h->scope_id;
                        }
                }
                if (alive) {
                        /* admitted already: counted, never refused by a limit */
                        struct listener_opts o = wl->set->o;

                        o.max_per_source = 0;
                        o.max_rate_per_source = 0;
                        if (server_source_hold(s, wl->l->serial, &o, (struct sockaddr *) &ss, w->now_ms, &src,
                                               &evicted) != 0)
                                src = NULL;
                }
                if (!src) {
                        /* stored by the previous image or retaken from the store */
                        server_fdstore_remove(w, a->hc->fd, a->hc->flags & HANDOVER_C_STORED ?
                                              server_fdstore_id(a->hc->fd) : a->hc->store_id);
                        close(a->hc->fd);
                        lost++;
                        continue;
                }
                atomic_fetch_add(&s->n_conns_total, 1);
                (void) conn_adopt(w, a->hc, wl->set, src, wl->l->serial);
        }
        if (lost > 0)
                log_notice("worker %u: %zu connection%s handed over closed: the client left, or its listener "
                           "is not in the configuration any more", w->id, lost, lost == 1 ? "" : "s");
        free(w->adopt);         /* the connections' own are the state's, freed by the server */
        w->adopt = NULL;
        w->n_adopt = 0;
}

static void worker_on_wake(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct worker *w = data;
        uint64_t n;
        unsigned req;

        if (read(fd, &n, sizeof(n)) < 0) {
                /* nothing to read: another wakeup took it */
        }
        req = atomic_exchange(&w->requests, 0);
        if (req & WORKER_EXIT)
                w->exit_now = true;
        if ((req & WORKER_STOP) && !w->stopping)
                worker_stop(w);
        if ((req & WORKER_RESYNC) && !w->stopping)
                worker_resync(w);
        if ((req & WORKER_RESUME) && w->accept_paused && w->accept_retry_ms == 0)
                worker_resume_accept(w);
        if (req & WORKER_QUERY)
                worker_run_queries(w);
        /* an upgrade that failed is undone before the next one starts */
        if ((req & WORKER_UNPAUSE) && w->paused)
                worker_unpause(w);
        if ((req & WORKER_PAUSE) && !w->export_wanted && !w->stopping)
                worker_pause(w);
}

/* Errors a loop may see once and then not again (io_uring_enter's EBUSY
 * and EAGAIN: completions or memory are short for a moment): the pass is
 * tried again. Anything else means the loop itself is broken. */
bool worker_loop_error_is_transient(int err)
{
        return err == EINTR || err == EAGAIN || err == EBUSY || err == ENOMEM;
}

/* One clock read per wakeup: idle times, and where message service times start. */
static void worker_clock(struct worker *w)
{
        w->now_ns = monotonic_ns();
        w->now_ms = w->now_ns / 1000000u;
}

static void worker_wait_until(int *wait, uint64_t deadline_ms, uint64_t now_ms)
{
        int t = deadline_ms > now_ms ? (int) (deadline_ms - now_ms) : 0;

        if (*wait < 0 || t < *wait)
                *wait = t;
}

/* The loop of one worker thread: until stopped and drained, or told to exit. */
static int worker_run(struct worker *w)
{
        struct server *s = w->srv;
        unsigned transient = 0;
        int exit_code = 0;

        worker_clock(w);
        worker_resync(w);
        worker_adopt_all(w);
        while (!w->exit_now) {
                uint64_t timeout_ms = (uint64_t) atomic_load(&s->timeout_s) * 1000u;
                struct idle_link *l;
                int wait, n;

                if (w->stopping && w->n_conns == 0)
                        break;          /* drained */

                /* paused for a live upgrade: no timer runs, the next image
                 * takes the deadlines over */
                wait = w->paused ? -1 : idle_next_timeout(&w->conns, w->now_ms, timeout_ms);
                n = w->paused ? -1 : idle_next_timeout(&w->lingering, w->now_ms, CONN_LINGER_MS);
                if (n >= 0)
                        worker_wait_until(&wait, w->now_ms + (uint64_t) n, w->now_ms);
                if (!w->paused && (l = idle_oldest(&w->proxying)))
                        worker_wait_until(&wait, l->last_ms, w->now_ms);        /* its deadline */
                if (w->accept_retry_ms && !w->paused)
                        worker_wait_until(&wait, w->accept_retry_ms, w->now_ms);
                if (w->watch_retry_ms && !w->paused)
                        worker_wait_until(&wait, w->watch_retry_ms, w->now_ms);
                if (w->stopping)
                        worker_wait_until(&wait, w->stop_deadline_ms, w->now_ms);
                if (w->n_pending > 0 && !w->accept_paused)
                        wait = 0;       /* room again for the clients held */
                if (w->fdstore_queue.n > 0)
                        worker_wait_until(&wait, w->now_ms + WORKER_FDSTORE_RETRY_MS, w->now_ms);

                n = ev_wait(w->loop, wait);
                if (n < 0) {
                        if (worker_loop_error_is_transient(-n) && ++transient < WORKER_TRANSIENT_MAX) {
                                worker_clock(w);
                                continue;
                        }
                        /* Nothing this worker watches can be served any more:
                         * the daemon stops (exit status 1, so that systemd's
                         * Restart=on-failure starts it again) rather than
                         * run on with part of its clients and listeners dead. */
                        log_err("worker %u: the %s event loop failed: %s%s; stopping muxd",
                                w->id, ev_loop_backend(w->loop)->name, errno_text(-n),
                                transient ? " (again and again)" : "");
                        exit_code = 1;
                        break;
                }
                transient = 0;
                worker_clock(w);
                ev_dispatch(w->loop, n);
                if (w->fdstore_queue.n > 0)
                        (void) server_fdstore_flush(w);
                if (w->paused) {
                        worker_try_export(w);
                        continue;
                }
                if (w->n_pending > 0 && !w->accept_paused)
                        worker_serve_pending(w);

                while ((l = idle_pop_expired(&w->conns, w->now_ms, timeout_ms))) {
                        log_debug("closing a connection idle for %llus",
                                  (unsigned long long) timeout_ms / 1000u);
                        conn_close_why(conn_from_idle(l), STATS_CLOSED_IDLE);
                }
                while ((l = idle_pop_expired(&w->lingering, w->now_ms, CONN_LINGER_MS)))
                        conn_close(conn_from_idle(l));
                while ((l = idle_oldest(&w->proxying)) && l->last_ms <= w->now_ms)
                        conn_proxy_expired(conn_from_idle(l));
                if (w->accept_retry_ms && w->now_ms >= w->accept_retry_ms)
                        worker_resume_accept(w);
                if (w->watch_retry_ms && w->now_ms >= w->watch_retry_ms) {
                        w->watch_retry_ms = 0;
                        if (!w->accept_paused)
                                worker_watch_listeners(w, true);
                }
                if (w->stopping && w->now_ms >= w->stop_deadline_ms) {
                        if (w->n_conns > 0)
                                log_notice("shutdown_timeout reached: closing %u connection%s with unsent replies",
                                           w->n_conns, w->n_conns == 1 ? "" : "s");
                        break;
                }
        }
        worker_close_all(w);
        worker_watch_listeners(w, false);
        /* the removals of the connections just closed: at the end only, a
         * short wait (bounded) for a manager slow to read them is fine */
        for (unsigned i = 0; i < WORKER_FDSTORE_FINISH_TRIES && server_fdstore_flush(w); i++)
                (void) poll(NULL, 0, WORKER_FDSTORE_RETRY_MS);
        /* On io_uring, a closed connection's socket is let go once the ring
         * has completed the operations that named it, at a wait: the loop
         * runs a little longer for that (bounded), or its client would see
         * the close only when muxd exits, which other workers still draining
         * may delay by shutdown_timeout. */
        for (unsigned i = 0; i < WORKER_FINISH_PASSES && !w->exit_now && conn_io_busy(w); i++)
                (void) ev_run_once(w->loop, WORKER_FINISH_WAIT_MS);
        return exit_code;
}

static void *worker_thread(void *arg)
{
        struct worker *w = arg;
        struct server *s = w->srv;
        char name[16];
        int r;

        /* what top -H, ps -L and a debugger show */
        snprintf(name, sizeof(name), "muxd-worker-%u", w->id);
        (void) pthread_setname_np(pthread_self(), name);
        r = worker_run(w);
        worker_close_queries(w);        /* what comes later is answered at once */

        atomic_store(&w->exited, true);
        server_worker_exited(s, w, r);
        return NULL;
}

int worker_start(struct worker *w)
{
        int r = pthread_create(&w->thread, NULL, worker_thread, w);

        if (r != 0)
                return -r;
        w->thread_started = true;
        return 0;
}

bool worker_synced(const struct worker *w, uint64_t gen)
{
        /* a worker that has not started takes the list when it does; one
         * that has exited watches nothing */
        return !w->thread_started || atomic_load(&w->exited) || atomic_load(&w->synced_gen) >= gen;
}

int worker_new(struct server *srv, unsigned id, int setsize, struct worker **ret)
{
        struct worker *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->srv = srv;
        w->id = id;
        w->wake_fd = -1;
        pthread_mutex_init(&w->jobs_lock, NULL);
        w->accept_paused = false;
        idle_queue_init(&w->conns);
        idle_queue_init(&w->lingering);
        idle_queue_init(&w->proxying);
        w->rbuf_size = WORKER_READ_SIZE;
        w->wbuf_cap = WORKER_READ_SIZE;
        w->rbuf = malloc(w->rbuf_size);
        w->wbuf = malloc(w->wbuf_cap);
        r = -ENOMEM;
        if (!w->rbuf || !w->wbuf)
                goto fail;
        r = ev_loop_new(srv->backend, setsize, &w->loop);
        if (r < 0)
                goto fail;
        r = conn_io_setup(w);
        if (r < 0)
                goto fail;
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->wake_fd < 0) {
                r = -errno;
                goto fail;
        }
        r = ev_add(w->loop, w->wake_fd, EV_READABLE, worker_on_wake, w);
        if (r < 0)
                goto fail;
        *ret = w;
        return 0;
fail:
        worker_free(w);
        return r;
}

void worker_free(struct worker *w)
{
        if (!w)
                return;
        if (w->thread_started)
                pthread_join(w->thread, NULL);
        if (w->loop) {
                worker_close_all(w);
                worker_watch_listeners(w, false);
                if (w->wake_fd >= 0)
                        ev_del(w->loop, w->wake_fd, EV_READABLE);
        }
        for (size_t i = 0; i < w->n_listeners; i++)
                listener_settings_unref(w->listeners[i].set);
        free(w->listeners);
        free(w->pending);
        ban_list_unref(w->bans);
        worker_free_export(w);
        for (size_t i = 0; i < w->n_adopt; i++)
                close(w->adopt[i].hc->fd);      /* a thread that never ran: nobody serves them */
        free(w->adopt);
        server_fdstore_queue_free(w);
        worker_close_queries(w);        /* a thread that never ran left them */
        pthread_mutex_destroy(&w->jobs_lock);
        if (w->wake_fd >= 0)
                close(w->wake_fd);
        ev_loop_free(w->loop);
        conn_io_free(w);        /* after the ring: what the kernel still used */
        free(w->rbuf);
        free(w->wbuf);
        free(w);
}
