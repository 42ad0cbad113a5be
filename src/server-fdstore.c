/* SPDX-License-Identifier: MIT */
/* preserve_connections: every admitted connection is kept in systemd's file
 * descriptor store (FDSTORE=1, named "c-INODE", FDPOLL=0) and removed when it
 * closes (FDSTOREREMOVE=1). After a crash, systemd starts muxd again and
 * passes them back with the listeners (LISTEN_FDS, by name): each goes to
 * the listener its local address belongs to and is served as one handed over
 * by a live upgrade (worker_adopt_all()), with nothing buffered: what the
 * crashed process held in memory (an unfinished line, unsent replies) is
 * lost. Retaken ones stay stored under the name they have. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handover-format.h"
#include "log.h"
#include "server-internal.h"
#include "systemd.h"
#include "util.h"

static void server_fdstore_warn(struct server *s, const char *what, int err)
{
        /* a full notify socket fails many in a row: said once, counted always */
        if (!atomic_exchange(&s->fdstore_warned, true))
                log_warning("cannot %s systemd's fd store: %s; counted in the statistics, said only once",
                            what, errno_text(-err));
}

uint64_t server_fdstore_id(int fd)
{
        struct stat st;

        return fstat(fd, &st) < 0 ? 0 : (uint64_t) st.st_ino;
}

static bool server_fdstore_transient(int err)
{
        return err == -EAGAIN || err == -EWOULDBLOCK || err == -ENOBUFS || err == -ENOMEM || err == -EINTR;
}

static int server_fdstore_send(struct server *s, int fd, uint64_t id)
{
        if (!s->fdstore)
                return -ENOTCONN;
        return fd >= 0 ? systemd_fdstore_add(s->fdstore, fd, id) : systemd_fdstore_remove(s->fdstore, id);
}

static void server_fdstore_failed(struct server *s, bool store, int err)
{
        if (store) {
                /* not preserved: served all the same */
                atomic_fetch_add(&s->fdstore_unpreserved, 1);
                server_fdstore_warn(s, "store a connection in", err);
        } else {
                atomic_fetch_add(&s->fdstore_remove_failed, 1);
                server_fdstore_warn(s, "remove a connection from", err);
        }
}

/* Room for one more entry in q, within twice max_connections. */
static int server_fdstore_reserve(struct server *s, struct worker_fdstore_queue *q)
{
        unsigned cap = 2u * atomic_load(&s->max_connections), size;
        struct worker_fdstore_entry *e;

        if (q->n < q->size)
                return 0;
        if (cap < WORKER_FDSTORE_QUEUE_MIN)
                cap = WORKER_FDSTORE_QUEUE_MIN;
        if (q->n >= cap)
                return -ENOBUFS;
        size = q->size ? 2 * q->size : 64;
        if (size > cap)
                size = cap;
        e = reallocarray(q->e, size, sizeof(*e));
        if (!e)
                return -ENOMEM;
        q->e = e;
        q->size = size;
        return 0;
}

/* Send now, behind what waits already; queue it if the socket is full. */
static int server_fdstore_push(struct worker *w, int fd, uint64_t id)
{
        struct worker_fdstore_queue *q = &w->fdstore_queue;
        int r = q->n > 0 ? -EAGAIN : server_fdstore_send(w->srv, fd, id);

        if (r >= 0 || !server_fdstore_transient(r))
                return r;
        r = server_fdstore_reserve(w->srv, q);
        if (r < 0)
                return r;
        q->e[q->n].fd = fd;
        q->e[q->n].id = id;
        q->n++;
        return 0;
}

void server_fdstore_queue_free(struct worker *w)
{
        free(w->fdstore_queue.e);
        w->fdstore_queue = (struct worker_fdstore_queue) { 0 };
}

bool server_fdstore_flush(struct worker *w)
{
        struct worker_fdstore_queue *q = &w->fdstore_queue;
        unsigned done = 0;

        while (done < q->n) {
                int r = server_fdstore_send(w->srv, q->e[done].fd, q->e[done].id);

                if (r < 0 && server_fdstore_transient(r))
                        break;
                if (r < 0)
                        server_fdstore_failed(w->srv, q->e[done].fd >= 0, r);
                else if (q->e[done].fd >= 0)
                        atomic_fetch_add(&w->srv->fdstore_stored, 1);
                done++;
        }
        if (done > 0 && done < q->n)
                memmove(q->e, q->e + done, (q->n - done) * sizeof(q->e[0]));
        q->n -= done;
        return q->n > 0;
}

uint64_t server_fdstore_add(struct worker *w, int fd)
{
        struct server *s = w->srv;
        uint64_t id;
        int r;

        if (!s->fdstore || !atomic_load(&s->preserve))
                return 0;
        id = server_fdstore_id(fd);
        r = id ? server_fdstore_push(w, fd, id) : -EBADF;
        if (r < 0) {
                server_fdstore_failed(s, true, r);
                return 0;
        }
        if (w->fdstore_queue.n == 0 || w->fdstore_queue.e[w->fdstore_queue.n - 1].id != id)
                atomic_fetch_add(&s->fdstore_stored, 1);        /* sent (a queued one counts when it goes) */
        return id;
}

void server_fdstore_remove(struct worker *w, int fd, uint64_t id)
{
        struct worker_fdstore_queue *q = &w->fdstore_queue;
        int r = 0;

        if (!id)
                return;
        for (unsigned i = 0; i < q->n; i++)
                if (q->e[i].fd >= 0 && q->e[i].id == id) {
                        /* its store never went: nothing to remove */
                        memmove(q->e + i, q->e + i + 1, (q->n - i - 1) * sizeof(q->e[0]));
                        q->n--;
                        id = 0;
                        break;
                }
        if (id)
                r = server_fdstore_push(w, -1, id);
        if (r < 0)
                server_fdstore_failed(w->srv, false, r);
        (void) shutdown(fd, SHUT_RDWR);
}

int server_fdstore_retake(struct server *s, int fd, uint64_t id)
{
        struct handover_conn *c;

        /* the same socket stored twice (one image stored it, the next did
         * again): served once, the copy closed (the socket lives on) */
        for (size_t i = 0; i < s->n_fdstore_conns; i++)
                if (s->fdstore_conns[i].store_id == id) {
                        close(fd);
                        return 0;
                }
        c = realloc(s->fdstore_conns, (s->n_fdstore_conns + 1) * sizeof(*c));
        if (!c)
                return -ENOMEM;
        s->fdstore_conns = c;
        s->fdstore_conns[s->n_fdstore_conns++] = (struct handover_conn) {
                .fd = fd, .store_id = id, .in = BUFFER_INIT, .out = BUFFER_INIT,
        };
        return 0;
}

static bool server_fdstore_addr_any(const struct sockaddr_storage *a)
{
        static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *) a)->sin_addr.s_addr == htonl(INADDR_ANY);
        return memcmp(&((const struct sockaddr_in6 *) a)->sin6_addr, &any6, sizeof(any6)) == 0;
}

/* How well listener address l takes a connection whose local address is c:
 * 2 the same address, 1 a wildcard of its family (or [::] for an IPv4 one
 * mapped), 0 not at all. */
static int server_fdstore_match(const struct sockaddr_storage *l, const struct sockaddr_storage *c)
{
        if (l->ss_family == AF_INET && c->ss_family == AF_INET) {
                const struct sockaddr_in *x = (const void *) l, *y = (const void *) c;

                if (x->sin_port != y->sin_port)
                        return 0;
                return x->sin_addr.s_addr == y->sin_addr.s_addr ? 2 : server_fdstore_addr_any(l);
        }
        if (l->ss_family == AF_INET6 && (c->ss_family == AF_INET6 || c->ss_family == AF_INET)) {
                const struct sockaddr_in6 *x = (const void *) l;
                in_port_t port = c->ss_family == AF_INET ? ((const struct sockaddr_in *) c)->sin_port :
                                 ((const struct sockaddr_in6 *) c)->sin6_port;

                if (x->sin6_port != port)
                        return 0;
                if (c->ss_family == AF_INET6 &&
                    memcmp(&x->sin6_addr, &((const struct sockaddr_in6 *) c)->sin6_addr, sizeof(x->sin6_addr)) == 0)
                        return 2;
                return server_fdstore_addr_any(l);
        }
        return 0;
}

static struct listener *server_fdstore_listener(struct server *s, int fd)
{
        struct sockaddr_storage c, a;
        socklen_t len = sizeof(c);
        struct listener *best = NULL;
        int best_m = 0;

        if (getsockname(fd, (struct sockaddr *) &c, &len) < 0)
                return NULL;
        for (struct listener *l = s->listeners; l; l = l->next) {
                int m;

                len = sizeof(a);
                if (l->fd < 0 || getsockname(l->fd, (struct sockaddr *) &a, &len) < 0)
                        continue;
                m = server_fdstore_match(&a, &c);
                if (m > best_m) {
                        best = l;
                        best_m = m;
                }
        }
        return best;
}

int server_fdstore_distribute(struct server *s)
{
        size_t closed = 0, n = 0;

        for (unsigned k = 0; k < s->n_workers; k++) {
                struct worker *w = s->workers[k];

                w->adopt = calloc(s->n_fdstore_conns / s->n_workers + 2, sizeof(*w->adopt));
                if (!w->adopt)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < s->n_fdstore_conns; i++) {
                struct handover_conn *hc = &s->fdstore_conns[i];
                struct listener *l = server_fdstore_listener(s, hc->fd);
                struct worker *w;

                if (!l) {
                        char name[SYSTEMD_FDSTORE_NAME_MAX];

                        systemd_fdstore_name(hc->store_id, name);
                        log_notice("closing connection \"%s\" from systemd's fd store: no listener of the "
                                   "configuration has its address", name);
                        /* the workers have not started: the first one's queue is free */
                        server_fdstore_remove(s->workers[0], hc->fd, hc->store_id);
                        close(hc->fd);
                        hc->fd = -1;
                        closed++;
                        continue;
                }
                w = s->workers[n++ % s->n_workers];
                w->adopt[w->n_adopt++] = (struct worker_adopt) { .hc = hc, .l = l };
        }
        s->fdstore_retaken = n;
        if (s->n_fdstore_conns > 0)
                log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "retaken" },
                         "retook %zu connection%s from systemd's fd store (%zu closed: listener gone); "
                         "what the previous process had not yet answered or sent is lost",
                         n, n == 1 ? "" : "s", closed);
        return 0;
}

void server_fdstore_free(struct server *s)
{
        free(s->fdstore_conns);         /* the fds are the connections' now, or closed */
        s->fdstore_conns = NULL;
        s->n_fdstore_conns = 0;
        systemd_fdstore_free(s->fdstore);
        s->fdstore = NULL;
}
