/* SPDX-License-Identifier: MIT */
/* Queries about a worker's clients (see worker.h): the main thread puts one
 * to every worker; each lists or closes its matching connections on its own
 * thread and wakes the server. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn-io.h"
#include "log.h"
#include "server.h"
#include "util.h"
#include "worker.h"

struct worker_query *worker_query_new(enum worker_query_kind kind, unsigned n_workers)
{
        struct worker_query *q = calloc(1, sizeof(*q) + n_workers * sizeof(struct worker_job));

        if (!q)
                return NULL;
        q->kind = kind;
        q->n_jobs = n_workers;
        atomic_init(&q->refs, 1);
        for (unsigned i = 0; i < n_workers; i++) {
                q->jobs[i].q = q;
                atomic_init(&q->jobs[i].done, false);
        }
        return q;
}

void worker_query_unref(struct worker_query *q)
{
        if (!q || atomic_fetch_sub_explicit(&q->refs, 1, memory_order_acq_rel) > 1)
                return;
        for (unsigned i = 0; i < q->n_jobs; i++)
                free(q->jobs[i].clients);
        free(q);
}

bool worker_query_done(struct worker_query *q)
{
        for (unsigned i = 0; i < q->n_jobs; i++)
                if (!atomic_load_explicit(&q->jobs[i].done, memory_order_acquire))
                        return false;
        return true;
}

/* The job is final: the main thread may read it (release), and this worker
 * lets go of the query. */
static void worker_job_finish(struct worker_job *job)
{
        struct worker_query *q = job->q;

        atomic_store_explicit(&job->done, true, memory_order_release);
        worker_query_unref(q);
}

void worker_query_submit(struct worker *w, struct worker_query *q)
{
        struct worker_job *job = &q->jobs[w->id];
        bool closed;

        atomic_fetch_add_explicit(&q->refs, 1, memory_order_relaxed);
        pthread_mutex_lock(&w->jobs_lock);
        closed = w->jobs_closed || !w->thread_started;
        if (!closed) {
                job->next = w->jobs;
                w->jobs = job;
        }
        pthread_mutex_unlock(&w->jobs_lock);
        if (closed)
                worker_job_finish(job);         /* no loop, so no clients */
        else
                worker_request(w, WORKER_QUERY);
}

/* A connection's peer as the listing shows it (IPv4-mapped as IPv4). */
struct worker_peer {
        uint16_t port;                  /* 0 if unknown */
        uint8_t family;
        uint8_t addr[16];
};

/* The peer from getpeername() (behind a load balancer, the client its PROXY
 * header named): its source entry keeps only the address cut to the
 * listener's source prefix. If the socket cannot say (the client is gone),
 * the source's address stands in, with port 0. */
static bool worker_conn_matches(const struct conn *c, const struct worker_match *m, struct worker_peer *p)
{
        const struct conn_proxy *x = conn_proxy(c);
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int family = AF_UNSPEC;

        if (m->listener && c->src->owner != m->listener)
                return false;
        p->port = 0;
        if (x) {
                memcpy(&ss, &x->client, sizeof(x->client));
        } else if (getpeername(c->fd, (struct sockaddr *) &ss, &len) < 0) {
                ss.ss_family = AF_UNSPEC;
        }
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
                family = source_addr((struct sockaddr *) &ss, p->addr);
                if (ss.ss_family == AF_INET)
                        p->port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
                else if (ss.ss_family == AF_INET6)
                        p->port = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
        }
        if (family == AF_UNSPEC) {
                family = c->src->family;
                memcpy(p->addr, c->src->addr, sizeof(p->addr));
        }
        p->family = (uint8_t) family;
        if (m->by_net && !cidr_match(&m->net, p->family, p->addr))
                return false;
        return m->port == 0 || p->port == m->port;
}

static void worker_job_list_one(struct worker *w, struct worker_job *job, const struct conn *c,
                                const struct worker_peer *p)
{
        const struct conn_proxy *x = conn_proxy(c);
        struct worker_client *e;

        if (job->n_clients >= job->q->max_clients) {
                job->n_more++;
                return;
        }
        e = &job->clients[job->n_clients++];
        *e = (struct worker_client) {
                .listener = c->src->owner,
                .idle_ms = w->now_ms > c->idle.last_ms ? w->now_ms - c->idle.last_ms : 0,
                .queued = conn_queued(c),
                .connected_s = ((uint32_t) w->now_ms - c->born_ms) / 1000u,
                .port = p->port,
                .family = p->family,
        };
        memcpy(e->addr, p->addr, sizeof(e->addr));
        if (x && x->balancer.sa.sa_family == AF_INET) {
                e->proxy_family = AF_INET;
                e->proxy_port = ntohs(x->balancer.in.sin_port);
                memcpy(e->proxy_addr, &x->balancer.in.sin_addr, 4);
        } else if (x) {
                e->proxy_family = AF_INET6;
                e->proxy_port = ntohs(x->balancer.in6.sin6_port);
                memcpy(e->proxy_addr, &x->balancer.in6.sin6_addr, 16);
        }
}

/* "on 127.0.0.1:8088" for a log line: the listener, if this worker still has it. */
static const char *worker_listener_str(const struct worker *w, uint64_t serial)
{
        for (size_t i = 0; i < w->n_listeners; i++)
                if (w->listeners[i].l->serial == serial)
                        return w->listeners[i].l->addr_str;
        return "a removed listener";
}

static void worker_job_kick_one(struct worker *w, struct worker_job *job, struct conn *c)
{
        unsigned suppressed;

        if (log_ratelimit_ok(&w->rl_kick, w->now_ms, &suppressed)) {
                const struct conn_proxy *x = conn_proxy(c);
                char peer[SOCKADDR_STR_MAX];
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);

                if (x)          /* the client its balancer's header named */
                        sockaddr_to_string(&x->client.sa, x->client.sa.sa_family == AF_INET ?
                                           sizeof(x->client.in) : sizeof(x->client.in6), peer);
                else if (getpeername(c->fd, (struct sockaddr *) &ss, &len) < 0)
                        strcpy(peer, "?");
                else
                        sockaddr_to_string((struct sockaddr *) &ss, len, peer);
                log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "kicked", .peer = peer },
                         "closing the connection from %s on %s: kicked through the control socket%s",
                         peer, worker_listener_str(w, c->src->owner),
                         suppressed ? " (similar messages suppressed)" : "");
        }
        job->n_kicked++;
        conn_close(c);
}

/* Every connection, the lingering ones too; the next one is taken before c
 * may be closed. */
static void worker_job_run(struct worker *w, struct worker_job *job)
{
        struct worker_query *q = job->q;
        struct idle_queue *lists[] = { &w->conns, &w->lingering };

        if (q->kind == WORKER_QUERY_LIST) {
                size_t n = w->n_conns < q->max_clients ? w->n_conns : q->max_clients;

                job->clients = n ? malloc(n * sizeof(*job->clients)) : NULL;
                if (n && !job->clients)
                        return;         /* out of memory: this worker lists nothing */
        }
        for (size_t k = 0; k < ELEMENTSOF(lists); k++) {
                struct idle_link *l, *next;

                for (l = lists[k]->head.next; l != &lists[k]->head; l = next) {
                        struct conn *c = conn_from_idle(l);
                        struct worker_peer peer;

                        next = l->next;
                        if (!worker_conn_matches(c, &q->match, &peer))
                                continue;
                        if (q->kind == WORKER_QUERY_LIST)
                                worker_job_list_one(w, job, c, &peer);
                        else
                                worker_job_kick_one(w, job, c);
                }
        }
}

void worker_run_queries(struct worker *w)
{
        struct worker_job *jobs, *next;

        pthread_mutex_lock(&w->jobs_lock);
        jobs = w->jobs;
        w->jobs = NULL;
        pthread_mutex_unlock(&w->jobs_lock);
        if (!jobs)
                return;
        w->now_ms = monotonic_ms();     /* "idle for" and "connected for" as of now */
        for (; jobs; jobs = next) {
                next = jobs->next;
                worker_job_run(w, jobs);
                worker_job_finish(jobs);
        }
        server_wake(w->srv);
}

void worker_close_queries(struct worker *w)
{
        struct worker_job *jobs, *next;

        pthread_mutex_lock(&w->jobs_lock);
        w->jobs_closed = true;
        jobs = w->jobs;
        w->jobs = NULL;
        pthread_mutex_unlock(&w->jobs_lock);
        if (!jobs)
                return;
        for (; jobs; jobs = next) {
                next = jobs->next;
                worker_job_finish(jobs);
        }
        server_wake(w->srv);
}
