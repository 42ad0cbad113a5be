/* SPDX-License-Identifier: MIT */
/* A worker: one event-loop thread with its own connections, timers and
 * scratch buffers. All workers watch the same listening sockets (with
 * EPOLLEXCLUSIVE on epoll, so one wakes per new client); each runs in a
 * thread of its own, the main thread keeps the server's own loop (signals,
 * reload, notifications: server.c). The server talks to a worker only
 * through the functions below: requests (flags plus an eventfd that wakes
 * its loop) and whether it has taken a listener list. Its counters are
 * per listener (stats.h): block w->id of each listener's. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "acl.h"
#include "ban.h"
#include "event.h"
#include "listener.h"
#include "log.h"
#include "source.h"
#include "idle.h"

struct server;
struct conn_io;

/* What the server asks of a worker (bits of worker.requests). */
enum {
        WORKER_RESYNC = 1 << 0,         /* the listener list changed */
        WORKER_RESUME = 1 << 1,         /* a connection left: accept again */
        WORKER_STOP   = 1 << 2,         /* stop accepting, drain, exit */
        WORKER_EXIT   = 1 << 3,         /* close everything now */
        WORKER_QUERY  = 1 << 4,         /* a query waits in its queue */
        WORKER_PAUSE  = 1 << 5,         /* live upgrade: pause every connection, describe them */
        WORKER_UNPAUSE = 1 << 6,        /* the upgrade failed: serve again */
};

struct handover_conn;

/* A connection the previous image handed over, for this worker to serve as
 * its loop starts (l: the listener it came from, NULL if none is left). */
struct worker_adopt {
        struct handover_conn *hc;
        struct listener *l;
};

/* Queries about the clients (the control socket's clients and kick): one
 * query is put to every worker, each answers in a job of its own on its own
 * thread, and wakes the server; the main thread reads a job once it is done
 * and never waits for one (a worker that does not answer in time is left
 * out). A query is freed when the main thread and every worker that took a
 * job have let go of it. */
enum worker_query_kind {
        WORKER_QUERY_LIST,      /* describe the matching clients */
        WORKER_QUERY_KICK,      /* close them */
};

/* Which clients: every field is optional. */
struct worker_match {
        uint64_t listener;      /* the serial of the listener that accepted them; 0: any */
        bool by_net;
        struct cidr net;        /* their address is in this network */
        uint16_t port;          /* and their port is this one; 0: any */
};

/* One client as a query lists it. */
struct worker_client {
        uint64_t listener;      /* serial of the listener that accepted it */
        uint64_t idle_ms;       /* since its last complete message (or its connect) */
        uint64_t queued;        /* output bytes not yet written */
        uint32_t connected_s;   /* seconds since accepted */
        uint16_t port;          /* the peer's, 0 if unknown */
        uint8_t family;         /* AF_INET (IPv4-mapped peers too) or AF_INET6 */
        uint8_t addr[16];
        /* behind a load balancer: the client above is the one its PROXY
         * header named, and this is the balancer; proxy_family 0: none */
        uint8_t proxy_family;
        uint16_t proxy_port;
        uint8_t proxy_addr[16];
};

struct worker_query;

struct worker_job {
        struct worker_job *next;        /* in the worker's queue */
        struct worker_query *q;
        struct worker_client *clients;  /* LIST: at most q->max_clients */
        size_t n_clients;
        size_t n_more;                  /* LIST: matching clients left out (the cap) */
        size_t n_kicked;                /* KICK */
        _Atomic bool done;              /* the fields above are final */
};

struct worker_query {
        enum worker_query_kind kind;
        struct worker_match match;
        size_t max_clients;             /* LIST: per worker */
        _Atomic unsigned refs;
        unsigned n_jobs;
        struct worker_job jobs[];       /* jobs[i]: workers[i]'s */
};

/* A listener as one worker sees it: the settings it accepts with are the
 * ones in force at its last resync (a reload gives the listener new ones). */
struct worker_listener {
        struct listener *l;
        struct listener_settings *set;
        struct worker *w;
        bool watched;
        bool drained;           /* the listener's draining, as of the resync */
        void *accept_op;        /* the I/O's own accept armed for it (conn_io.accept), or NULL */
};

/* A client the I/O accepted while accepting was paused (conn_io.accept: the
 * kernel accepts before muxd can say no): served when there is room, as
 * one in the kernel's backlog would be. */
struct worker_pending {
        int fd;
        uint64_t serial;        /* of the listener that accepted it */
};

/* preserve_connections: messages to systemd's fd store that could not go at
 * once (its notify socket queues only a few hundred datagrams, and systemd
 * reads them slower the more it stores), retried in order from the worker's
 * loop. The queue grows as needed: a connection's store waits behind the
 * others rather than be lost. Each connection has at most one message
 * waiting (its removal cancels its store), and removals of closed ones at
 * most max_connections more: the queue is bounded by twice max_connections
 * (at least WORKER_FDSTORE_QUEUE_MIN), beyond which a message is dropped and
 * counted. Each entry's fd is its connection's, which cancels the entry when
 * it closes first. */
#define WORKER_FDSTORE_QUEUE_MIN 512u
#define WORKER_FDSTORE_RETRY_MS 5u
#define WORKER_FDSTORE_FINISH_TRIES 200u        /* a second, at the end */
struct worker_fdstore_entry {
        int fd;                 /* -1: a removal */
        uint64_t id;
};
struct worker_fdstore_queue {
        struct worker_fdstore_entry *e;
        unsigned n, size;
};

struct worker {
        struct server *srv;
        unsigned id;
        pthread_t thread;
        bool thread_started;
        struct ev_loop *loop;
        int wake_fd;                    /* eventfd, written after setting requests */
        _Atomic unsigned requests;      /* WORKER_* bits */
        _Atomic bool exited;            /* its thread has left its loop for good */

        struct worker_listener *listeners;
        size_t n_listeners;
        _Atomic uint64_t synced_gen;    /* server listener generation seen */
        struct ban_list *bans;          /* taken with the listener list; NULL: none */

        /* queries waiting for this worker (worker_query_submit) */
        pthread_mutex_t jobs_lock;
        struct worker_job *jobs;
        bool jobs_closed;               /* its loop is over: answered at once */

        struct idle_queue conns;        /* every connection, least recently active first */
        struct idle_queue lingering;    /* half-closed ones, oldest first */
        /* waiting for their PROXY header (not admitted yet), in order of
         * their deadline (last_ms: accepted + proxy_timeout) */
        struct idle_queue proxying;
        uint32_t n_conns;
        uint64_t now_ms;                /* loop time, read once per wakeup */
        uint64_t now_ns;                /* the same in nanoseconds (message service times) */

        /* accepting is paused at max_connections and on descriptor exhaustion */
        bool accept_paused;
        uint64_t accept_retry_ms;       /* 0: resume only when a client leaves */
        struct worker_pending *pending; /* see struct worker_pending */
        size_t n_pending, pending_cap;

        /* scratch space shared by this worker's connections */
        char *rbuf;
        size_t rbuf_size;
        char *wbuf;
        size_t wbuf_cap;
        const struct conn_io *io;       /* how its connections read and write (conn-io.h) */
        void *io_state;                 /* that I/O's own, per worker */

        bool stopping;
        uint64_t stop_deadline_ms;
        bool exit_now;

        uint64_t watch_retry_ms;        /* 0, or when to try watching listeners again */

        /* A live upgrade (server-upgrade.c): paused, every connection is
         * described in ho_conns (with its listener's serial in ho_serials)
         * once no operation is in flight any more; then exported is set
         * (under the server's listeners_lock, with synced_cond). */
        bool paused;
        bool export_wanted;             /* paused by the server (not a new image's adoption) */
        _Atomic bool exported;
        struct handover_conn *ho_conns;
        uint64_t *ho_serials;
        size_t n_ho;
        int ho_error;                   /* 0, or -ENOMEM: nothing was described */
        /* handed over by the previous image, served once the loop runs */
        struct worker_fdstore_queue fdstore_queue;
        struct worker_adopt *adopt;
        size_t n_adopt;

        struct log_ratelimit rl_accept, rl_limit, rl_refused, rl_range, rl_watch, rl_kick, rl_evict, rl_proxy;
};

int worker_new(struct server *srv, unsigned id, int setsize, struct worker **ret);
/* Asks the thread to exit (if it runs), joins it, frees. Accepts NULL. */
void worker_free(struct worker *w);

/* Has the paused worker described its connections (WORKER_PAUSE)? Any thread. */
bool worker_exported(const struct worker *w);
/* ... and has it let go of that description again (WORKER_UNPAUSE)? */
bool worker_unpaused(const struct worker *w);

/* Start the worker's thread: it takes the server's listener list and serves
 * until asked to stop (then drains) or exit; when its loop ends it calls
 * server_worker_exited(). */
int worker_start(struct worker *w);
/* Ask the worker for something (any thread): WORKER_* bits. */
void worker_request(struct worker *w, unsigned what);
/* Has it taken listener generation gen (or does it watch nothing: not
 * started, or exited)? Any thread. */
bool worker_synced(const struct worker *w, uint64_t gen);

/* A query with n_workers jobs, one reference held by the caller; NULL if
 * out of memory. */
struct worker_query *worker_query_new(enum worker_query_kind kind, unsigned n_workers);
/* Put q to w (its job q->jobs[w->id]); a worker whose loop is over answers
 * at once, with nothing. Main thread. */
void worker_query_submit(struct worker *w, struct worker_query *q);
/* Has every job been answered? */
bool worker_query_done(struct worker_query *q);
void worker_query_unref(struct worker_query *q);        /* accepts NULL */

/* May the loop try again after ev_wait() returned -err? */
bool worker_loop_error_is_transient(int err);

/* worker-query.c, on the worker's thread: answer the queries waiting
 * (WORKER_QUERY); close the queue, answering what waits with nothing, when
 * the loop is over. */
void worker_run_queries(struct worker *w);
void worker_close_queries(struct worker *w);

/* The I/O's own accept (conn_io.accept) on wl's listener (serial) got the
 * client res (a descriptor), or failed (-errno); more: it stays armed. wl
 * is NULL once the accept was cancelled (its last clients still come). */
void worker_io_accepted(struct worker *w, struct worker_listener *wl, uint64_t serial, int res, bool more);

/* Connections call these. */
void worker_conn_closed(struct worker *w, struct source *src);
/* The admission policy on a client's address (worker.c) on the listener
 * whose serial is owner (listen: its address for a log line, or NULL): -1
 * with a hold on *src, or a stats_refused reason with *why for the log. */
int worker_admit(struct worker *w, const struct listener_opts *o, uint64_t owner, const char *listen,
                 const struct sockaddr_storage *ss, struct source **src, const char **why);
/* The (rate-limited) log line of a refusal of peer on listen (NULL: fd's
 * local address); proxy: the load balancer it came through, or NULL. */
void worker_log_refused(struct worker *w, const char *listen, int fd, const struct sockaddr *peer,
                        socklen_t peer_len, const struct sockaddr *proxy, socklen_t proxy_len,
                        const char *why);
/* The block of counters c's settings count into, for this worker. */
static inline struct stats_block *worker_stats(struct worker *w, struct listener_settings *set)
{
        return stats_block(set->stats, w->id);
}
int worker_grow_wbuf(struct worker *w, size_t need);
