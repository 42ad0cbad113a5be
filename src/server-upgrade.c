/* SPDX-License-Identifier: MIT */
/* The live upgrade: muxd re-executes its binary and hands every listener and
 * every connection to the new image, in two steps so that a new image that
 * refuses costs no client:
 *
 *   old image: every worker pauses (no read, no write, no accept; io_uring
 *   operations cancelled or finished) and describes its connections; the
 *   state (handover-format.h) goes to a memfd; a child clears close-on-exec
 *   on exactly the listeners, the connections, the memfd, an acknowledgement
 *   pipe and the control socket, and executes the binary with
 *   --handover=STATE,ACK,CONTROL,VERSION.
 *
 *   new image: checks the state (format, version, that every descriptor is a
 *   socket of the right kind), adopts the listeners, serves the connections,
 *   sends MAINPID=, READY=1, and writes "K" to the pipe; or writes "R" and
 *   why it refuses, and exits.
 *
 *   old image: on "K", exits 0 without touching a descriptor; on a refusal,
 *   the child's exit or silence (SERVER_UPGRADE_ACK_MS), it un-pauses its
 *   workers and goes on serving. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "handover-format.h"
#include "log.h"
#include "server-internal.h"
#include "util.h"

#define SERVER_UPGRADE_PAUSE_MS 5000u   /* for every worker to pause */
#define SERVER_UPGRADE_ACK_MS   10000u  /* for the new image's verdict */
#define SERVER_UPGRADE_REAP_MS  2000u   /* for a refusing child to exit */
#define SERVER_UPGRADE_WHY_MAX  512u

extern char **environ;

/* How this process was started, and the hand-over it was started with. */
static char *upgrade_path;              /* the binary, absolute */
static char **upgrade_argv;             /* argv without --handover */
static int upgrade_state_fd = -1, upgrade_ack_fd = -1, upgrade_control_fd = -1;
static char upgrade_from[64];           /* the previous image's version */

/* The binary's absolute path as started (symbolic links are not resolved:
 * a package upgrade replaces the file behind the same name). */
static char *server_upgrade_find_binary(const char *argv0)
{
        char cwd[PATH_MAX], *p = NULL;
        const char *path;

        if (argv0[0] == '/')
                return strdup(argv0);
        if (strchr(argv0, '/')) {
                if (!getcwd(cwd, sizeof(cwd)) || asprintf(&p, "%s/%s", cwd, argv0) < 0)
                        return NULL;
                return p;
        }
        path = getenv("PATH");
        while (path && *path) {
                size_t n = strcspn(path, ":");

                if (n > 0 && path[0] == '/' && asprintf(&p, "%.*s/%s", (int) n, path, argv0) >= 0) {
                        if (access(p, X_OK) == 0)
                                return p;
                        free(p);
                        p = NULL;
                }
                path += n + (path[n] == ':');
        }
        return NULL;
}

int server_upgrade_setup(int argc, char **argv, const char *handover)
{
        size_t k = 0;

        upgrade_path = argc > 0 ? server_upgrade_find_binary(argv[0]) : NULL;
        upgrade_argv = calloc((size_t) argc + 1, sizeof(*upgrade_argv));
        if (!upgrade_argv)
                return -ENOMEM;
        for (int i = 0; i < argc; i++) {
                if (strncmp(argv[i], "--handover=", 11) == 0)
                        continue;
                if (strcmp(argv[i], "--handover") == 0) {
                        i++;    /* and its argument */
                        continue;
                }
                upgrade_argv[k++] = argv[i];
        }
        if (!handover)
                return 0;
        if (sscanf(handover, "%d,%d,%d,%63s", &upgrade_state_fd, &upgrade_ack_fd, &upgrade_control_fd,
                   upgrade_from) != 4 || upgrade_state_fd < 3 || upgrade_ack_fd < 3) {
                upgrade_state_fd = upgrade_ack_fd = upgrade_control_fd = -1;
                return -EINVAL;
        }
        (void) fcntl(upgrade_ack_fd, F_SETFD, FD_CLOEXEC);
        (void) fcntl(upgrade_state_fd, F_SETFD, FD_CLOEXEC);
        if (upgrade_control_fd >= 0)
                (void) fcntl(upgrade_control_fd, F_SETFD, FD_CLOEXEC);
        /* systemd watches the new main process once MAINPID= says so */
        {
                const char *wp = getenv("WATCHDOG_PID");
                char pid[32];

                if (wp && atol(wp) == (long) getppid()) {
                        snprintf(pid, sizeof(pid), "%ld", (long) getpid());
                        setenv("WATCHDOG_PID", pid, 1);
                }
        }
        return 0;
}

bool server_upgrade_child(void)
{
        return upgrade_ack_fd >= 0;
}

const char *server_upgrade_from(void)
{
        return upgrade_from;
}

size_t server_upgrade_n_conns(const struct server *s)
{
        return s->ho_state ? s->ho_state->n_conns : 0;
}

static void server_upgrade_answer(const char *msg, size_t len)
{
        while (len > 0) {
                ssize_t n = write(upgrade_ack_fd, msg, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;  /* the old image is gone: nobody to tell */
                msg += n;
                len -= (size_t) n;
        }
        close(upgrade_ack_fd);
        upgrade_ack_fd = -1;
}

void server_upgrade_refuse(const char *fmt, ...)
{
        char msg[SERVER_UPGRADE_WHY_MAX];
        va_list ap;
        int n;

        if (upgrade_ack_fd < 0)
                return;         /* answered already, or not a hand-over */
        msg[0] = 'R';
        va_start(ap, fmt);
        n = vsnprintf(msg + 1, sizeof(msg) - 1, fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        log_err("refusing the hand-over: %s", msg + 1);
        server_upgrade_answer(msg, 1 + ((size_t) n < sizeof(msg) - 1 ? (size_t) n : sizeof(msg) - 2));
}

/* ---- the new image ---------------------------------------------------------- */

static int server_upgrade_read_state(struct handover_state *st, char *why, size_t why_size)
{
        struct stat sb;
        char *data;
        size_t len, got = 0;
        int r;

        if (fstat(upgrade_state_fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
                snprintf(why, why_size, "descriptor %d is not the state's memfd", upgrade_state_fd);
                return -EBADF;
        }
        if ((uint64_t) sb.st_size > (uint64_t) UINT32_MAX) {
                snprintf(why, why_size, "the state is %lld bytes: too large", (long long) sb.st_size);
                return -E2BIG;
        }
        len = (size_t) sb.st_size;
        data = malloc(len + 1);
        if (!data) {
                snprintf(why, why_size, "out of memory");
                return -ENOMEM;
        }
        while (got < len) {
                ssize_t n = pread(upgrade_state_fd, data + got, len - got, (off_t) got);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        snprintf(why, why_size, "cannot read the state: %s", n < 0 ? errno_text(errno) : "short");
                        free(data);
                        return -EIO;
                }
                got += (size_t) n;
        }
        r = handover_decode(data, len, st, why, why_size);
        free(data);
        close(upgrade_state_fd);
        upgrade_state_fd = -1;
        return r;
}

static int server_upgrade_cmp_int(const void *a, const void *b)
{
        int x = *(const int *) a, y = *(const int *) b;

        return (x > y) - (x < y);
}

/* Is fd a TCP/IP stream socket, listening or connected as asked? */
static bool server_upgrade_socket_ok(int fd, bool listening)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int type = 0, acc = 0;
        socklen_t tl = sizeof(type), al = sizeof(acc);

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
                return false;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || !acc != !listening)
                return false;
        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return false;
        return ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
}

/* Every descriptor the state names: at most once, none of ours, a socket of
 * the right kind, one the backend can watch. */
static int server_upgrade_check_fds(struct server *s, const struct handover_state *st, char *why, size_t why_size)
{
        size_t n = 0, max = s->backend->max_fds;
        int *fds = calloc(st->n_listeners + st->n_conns + 1, sizeof(*fds));

        if (!fds) {
                snprintf(why, why_size, "out of memory");
                return -ENOMEM;
        }
        for (size_t i = 0; i < st->n_listeners; i++) {
                int fd = st->listeners[i].fd;

                if (st->listeners[i].flags & HANDOVER_L_REMOVED)
                        continue;
                if (fd < 3 || fd == upgrade_ack_fd || fd == upgrade_control_fd || !server_upgrade_socket_ok(fd, true)) {
                        snprintf(why, why_size, "listener %zu: descriptor %d is not a listening TCP socket", i, fd);
                        goto fail;
                }
                fds[n++] = fd;
        }
        for (size_t i = 0; i < st->n_conns; i++) {
                int fd = st->conns[i].fd;

                if (fd < 3 || fd == upgrade_ack_fd || fd == upgrade_control_fd || !server_upgrade_socket_ok(fd, false)) {
                        snprintf(why, why_size, "connection %zu: descriptor %d is not a connected TCP socket", i, fd);
                        goto fail;
                }
                if (st->listeners[st->conns[i].listener].fd < 0 &&
                    !(st->listeners[st->conns[i].listener].flags & HANDOVER_L_REMOVED)) {
                        snprintf(why, why_size, "connection %zu: of a listener without socket", i);
                        goto fail;
                }
                fds[n++] = fd;
        }
        qsort(fds, n, sizeof(*fds), server_upgrade_cmp_int);
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && fds[i] == fds[i - 1]) {
                        snprintf(why, why_size, "descriptor %d is named twice", fds[i]);
                        goto fail;
                }
                if (max > 0 && (size_t) fds[i] >= max) {
                        snprintf(why, why_size, "descriptor %d is beyond what backend \"%s\" can watch (%zu)",
                                 fds[i], s->backend->name, max);
                        goto fail;
                }
        }
        for (size_t i = 0; i < n; i++)
                (void) fcntl(fds[i], F_SETFD, FD_CLOEXEC);      /* ours again: not for a later child */
        free(fds);
        return 0;
fail:
        free(fds);
        return -EBADF;
}

int server_upgrade_adopt(struct server *s, char **error)
{
        struct handover_state *st = calloc(1, sizeof(*st));
        struct listener **tail = &s->listeners;
        char why[SERVER_UPGRADE_WHY_MAX] = "";
        const char *hook = getenv("MUXD_TEST_REFUSE_HANDOVER");
        int r;

        *error = NULL;
        if (!st)
                return -ENOMEM;
        s->ho_state = st;
        /* a test hook: refuse while the file it names exists */
        if (hook && hook[0] && access(hook, F_OK) == 0) {
                r = asprintf(error, "refused by the test hook MUXD_TEST_REFUSE_HANDOVER (%s exists)", hook);
                return r < 0 ? -ENOMEM : -ECANCELED;
        }
        r = server_upgrade_read_state(st, why, sizeof(why));
        if (r >= 0)
                r = server_upgrade_check_fds(s, st, why, sizeof(why));
        if (r < 0) {
                if (asprintf(error, "the state of muxd %s: %s", upgrade_from, why) < 0)
                        *error = NULL;
                return r;
        }
        s->ho_listeners = calloc(st->n_listeners + 1, sizeof(*s->ho_listeners));
        if (!s->ho_listeners)
                return -ENOMEM;
        while (*tail)
                tail = &(*tail)->next;
        for (size_t i = 0; i < st->n_listeners; i++) {
                const struct handover_listener *hl = &st->listeners[i];
                struct listener *l;

                if (hl->flags & HANDOVER_L_REMOVED)
                        continue;
                r = listener_adopt(hl->fd, hl->name, &l);
                if (r >= 0 && (r = stats_listener_new(s->stats, &l->stats)) < 0) {
                        l->fd = -1;
                        listener_free(l);
                }
                if (r < 0) {
                        if (asprintf(error, "cannot take listener %zu (descriptor %d): %s", i, hl->fd,
                                     errno_text(-r)) < 0)
                                *error = NULL;
                        return r;
                }
                /* the key it was opened for (port 0 stays ephemeral), so that
                 * the configuration's entries find it as a reload would */
                l->passed = hl->flags & HANDOVER_L_PASSED;
                l->handed = true;
                l->dual_stack = hl->flags & HANDOVER_L_DUAL_STACK;
                l->draining = hl->flags & HANDOVER_L_DRAINING;
                l->key.family = (int) hl->family;
                memcpy(l->key.addr, hl->addr, sizeof(l->key.addr));
                l->key.port = hl->port;
                s->ho_listeners[i] = l;
                *tail = l;
                tail = &l->next;
                s->n_listeners++;
        }
        return 0;
}

static int server_upgrade_cmp_idle(const void *a, const void *b)
{
        const struct handover_conn *x = *(struct handover_conn *const *) a, *y = *(struct handover_conn *const *) b;

        return (x->idle_ms < y->idle_ms) - (x->idle_ms > y->idle_ms);
}

int server_upgrade_distribute(struct server *s)
{
        struct handover_state *st = s->ho_state;
        struct handover_conn **order;

        if (!st)
                return 0;
        /* a listener the configuration no longer has was retired: its
         * connections are closed by the worker, with a log line */
        for (size_t i = 0; i < st->n_listeners; i++) {
                bool kept = false;

                for (struct listener *l = s->listeners; l && s->ho_listeners[i] && !kept; l = l->next)
                        kept = l == s->ho_listeners[i];
                if (!kept)
                        s->ho_listeners[i] = NULL;
        }
        order = calloc(st->n_conns + 1, sizeof(*order));
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < st->n_conns; i++)
                order[i] = &st->conns[i];
        /* the least recently active first: each worker's idle queue stays in order */
        qsort(order, st->n_conns, sizeof(*order), server_upgrade_cmp_idle);
        for (unsigned k = 0; k < s->n_workers; k++) {
                struct worker *w = s->workers[k];
                size_t n = st->n_conns / s->n_workers + (k < st->n_conns % s->n_workers);

                w->adopt = calloc(n + 1, sizeof(*w->adopt));
                if (!w->adopt) {
                        free(order);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < st->n_conns; i++) {
                struct worker *w = s->workers[i % s->n_workers];

                w->adopt[w->n_adopt++] = (struct worker_adopt) {
                        .hc = order[i], .l = s->ho_listeners[order[i]->listener],
                };
        }
        free(order);
        return 0;
}

void server_upgrade_done(struct server *s)
{
        if (upgrade_ack_fd < 0)
                return;
        server_upgrade_answer("K", 1);
        /* Ours for good: the connections start moving bytes (adopted paused,
         * so that had this image given up, the previous one would have found
         * them as it left them), a listener removed later is shut down, the
         * control socket's path removed at exit. */
        for (unsigned i = 0; i < s->n_workers; i++)
                worker_request(s->workers[i], WORKER_UNPAUSE);
        control_claim_path(s->control);
        for (size_t i = 0; s->ho_listeners && i < s->ho_state->n_listeners; i++)
                if (s->ho_listeners[i])
                        s->ho_listeners[i]->handed = false;
}

int server_upgrade_control_fd(const char *path)
{
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);
        int fd = upgrade_control_fd;

        if (fd < 0)
                return -1;
        upgrade_control_fd = -1;
        /* the previous image's socket, if the path is still the same */
        if (getsockname(fd, (struct sockaddr *) &sa, &len) == 0 && sa.sun_family == AF_UNIX &&
            len > offsetof(struct sockaddr_un, sun_path) &&
            strncmp(sa.sun_path, path, sizeof(sa.sun_path)) == 0)
                return fd;
        close(fd);
        return -1;
}

void server_upgrade_free(struct server *s)
{
        if (s->ho_state)
                handover_state_free(s->ho_state);
        free(s->ho_state);
        free(s->ho_listeners);
        s->ho_state = NULL;
        s->ho_listeners = NULL;
}

/* ---- the old image ---------------------------------------------------------- */

/* Ask every worker to pause; wait (bounded) until each has described its
 * connections. */
int server_upgrade_pause(struct server *s, char **why)
{
        struct timespec deadline;
        int r = 0;

        for (unsigned i = 0; i < s->n_workers; i++)
                worker_request(s->workers[i], WORKER_PAUSE);
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += SERVER_UPGRADE_PAUSE_MS / 1000u;
        pthread_mutex_lock(&s->listeners_lock);
        for (unsigned i = 0; i < s->n_workers && r == 0; i++)
                while (!worker_exported(s->workers[i]))
                        if (pthread_cond_timedwait(&s->synced_cond, &s->listeners_lock, &deadline) != 0) {
                                r = -ETIMEDOUT;
                                break;
                        }
        pthread_mutex_unlock(&s->listeners_lock);
        if (r < 0) {
                *why = strdup("a worker did not pause in time");
                return r;
        }
        for (unsigned i = 0; i < s->n_workers; i++) {
                r = s->workers[i]->ho_error;
                if (r < 0) {
                        *why = strdup("out of memory describing the connections");
                        return r;
                }
        }
        return 0;
}

void server_upgrade_unpause(struct server *s)
{
        struct timespec deadline;

        for (unsigned i = 0; i < s->n_workers; i++)
                worker_request(s->workers[i], WORKER_UNPAUSE);
        /* bounded: a worker that has not let go yet does before it pauses
         * again (it takes UNPAUSE first) */
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += SERVER_UPGRADE_PAUSE_MS / 1000u;
        pthread_mutex_lock(&s->listeners_lock);
        for (unsigned i = 0; i < s->n_workers; i++)
                while (!worker_unpaused(s->workers[i]))
                        if (pthread_cond_timedwait(&s->synced_cond, &s->listeners_lock, &deadline) != 0)
                                break;
        pthread_mutex_unlock(&s->listeners_lock);
}

/* The state of every listener and every connection the paused workers
 * described, encoded into out; *fds (n_fds) every descriptor it names. */
static int server_upgrade_encode(struct server *s, struct buffer *out, int **fds, size_t *n_fds)
{
        struct handover_state st = { 0 };
        size_t n_conns = 0, k = 0, removed = SIZE_MAX;
        int r = -ENOMEM;

        for (unsigned i = 0; i < s->n_workers; i++)
                n_conns += s->workers[i]->n_ho;
        st.listeners = calloc(s->n_listeners + 2, sizeof(*st.listeners));
        st.conns = calloc(n_conns + 1, sizeof(*st.conns));
        *fds = calloc(s->n_listeners + n_conns + 1, sizeof(**fds));
        *n_fds = 0;
        if (!st.listeners || !st.conns || !*fds)
                goto out;
        for (struct listener *l = s->listeners; l; l = l->next, k++) {
                struct handover_listener *hl = &st.listeners[k];

                *hl = (struct handover_listener) {
                        .fd = l->fd, .serial = l->serial, .family = (uint32_t) l->key.family,
                        .port = l->key.port, .bound_port = l->bound_port, .name = l->name,
                        .flags = (uint8_t) ((l->passed ? HANDOVER_L_PASSED : 0) |
                                            (l->dual_stack ? HANDOVER_L_DUAL_STACK : 0) |
                                            (l->draining ? HANDOVER_L_DRAINING : 0)),
                };
                memcpy(hl->addr, l->key.addr, sizeof(hl->addr));
                (*fds)[(*n_fds)++] = l->fd;
        }
        st.n_listeners = k;
        for (unsigned i = 0; i < s->n_workers; i++) {
                struct worker *w = s->workers[i];

                for (size_t j = 0; j < w->n_ho; j++) {
                        struct handover_conn *hc = &st.conns[st.n_conns++];
                        size_t idx = 0;

                        *hc = w->ho_conns[j];   /* its buffers stay the worker's */
                        for (struct listener *l = s->listeners; l && l->serial != w->ho_serials[j]; l = l->next)
                                idx++;
                        if (idx == st.n_listeners) {
                                /* its listener was removed by a reload */
                                if (removed == SIZE_MAX) {
                                        removed = st.n_listeners;
                                        st.listeners[removed] = (struct handover_listener) {
                                                .fd = -1, .flags = HANDOVER_L_REMOVED,
                                        };
                                }
                                idx = removed;
                        }
                        hc->listener = (uint32_t) idx;
                        (*fds)[(*n_fds)++] = hc->fd;
                }
        }
        if (removed != SIZE_MAX)
                st.n_listeners++;
        r = handover_encode(&st, out);
out:
        free(st.listeners);
        free(st.conns);
        return r;
}

/* What the child says: "K", or "R" and why; nothing if it exited first. */
static int server_upgrade_wait_ack(int fd, pid_t pid, char *why, size_t why_size)
{
        char buf[SERVER_UPGRADE_WHY_MAX];
        uint64_t deadline = monotonic_ms() + SERVER_UPGRADE_ACK_MS;
        size_t len = 0;

        for (;;) {
                uint64_t now = monotonic_ms();
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n;
                int k;

                if (now >= deadline) {
                        snprintf(why, why_size, "the new process (pid %ld) did not answer within %u s",
                                 (long) pid, SERVER_UPGRADE_ACK_MS / 1000u);
                        return -ETIMEDOUT;
                }
                k = poll(&p, 1, (int) (deadline - now));
                if (k < 0 && errno != EINTR)
                        return -errno;
                if (k <= 0)
                        continue;
                n = read(fd, buf + len, sizeof(buf) - 1 - len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n > 0) {
                        len += (size_t) n;
                        if (buf[0] == 'K')
                                return 0;
                        if (len < sizeof(buf) - 1)
                                continue;
                }
                /* the end: a refusal, or an exit without a word */
                buf[len] = '\0';
                if (len > 1 && buf[0] == 'R')
                        snprintf(why, why_size, "the new process refused: %.400s", buf + 1);
                else
                        snprintf(why, why_size, "the new process exited without taking over");
                return -ECANCELED;
        }
}

/* Reap the child that did not take over (killed if it lingers). */
static void server_upgrade_reap(pid_t pid, char *why, size_t why_size)
{
        uint64_t deadline = monotonic_ms() + SERVER_UPGRADE_REAP_MS;
        int status = 0;
        pid_t r;

        while ((r = waitpid(pid, &status, WNOHANG)) == 0 && monotonic_ms() < deadline) {
                struct timespec ts = { 0, 10 * 1000 * 1000 };

                nanosleep(&ts, NULL);   /* a bounded wait for an exit already on its way */
        }
        if (r == 0) {
                kill(pid, SIGKILL);
                r = waitpid(pid, &status, 0);
        }
        if (r == pid && strstr(why, "without taking over")) {
                size_t n = strlen(why);

                if (WIFEXITED(status))
                        snprintf(why + n, why_size - n, " (exit status %d)", WEXITSTATUS(status));
                else if (WIFSIGNALED(status))
                        snprintf(why + n, why_size - n, " (killed by signal %d)", WTERMSIG(status));
        }
}

/* Start the new image: a child that clears close-on-exec on exactly fds and
 * executes the binary. vfork(): the child borrows this process's memory
 * until its execve() rather than copy the page tables of every worker's
 * buffers and ring (3 ms less than fork() with 1,000 clients, more with
 * more). So the child only makes system calls, touches
 * no memory of ours but its own stack, and leaves with execve() or _exit().
 * Its own function, so that no variable of the caller lives across the
 * vfork(). The child's pid, or -errno. */
static __attribute__((noinline)) pid_t server_upgrade_exec(const int *fds, size_t n_fds, char **argv, int ack_fd)
{
        static const char fail[] = "Rcannot execute the binary";
        pid_t pid = vfork();

        if (pid != 0)
                return pid < 0 ? -errno : pid;
        for (size_t i = 0; i < n_fds; i++)
                (void) fcntl(fds[i], F_SETFD, 0);       /* FD_CLOEXEC is the only descriptor flag */
        execve(upgrade_path, argv, environ);
        if (write(ack_fd, fail, sizeof(fail) - 1) < 0) {
                /* nobody to tell: the old image sees the exit */
        }
        _exit(127);
}

int server_upgrade_spawn(struct server *s, char **why, pid_t *ret_pid)
{
        struct buffer state = BUFFER_INIT;
        char reason[SERVER_UPGRADE_WHY_MAX] = "", arg[96];
        int *fds = NULL, ack[2] = { -1, -1 }, memfd = -1, ctl = s->control ? control_fd(s->control) : -1;
        size_t n_fds = 0, argc = 0, off = 0;
        char **argv = NULL;
        pid_t pid;
        int r;

        *why = NULL;
        if (!upgrade_path) {
                *why = strdup("the path of muxd's binary is not known");
                return -ENOENT;
        }
        r = server_upgrade_encode(s, &state, &fds, &n_fds);
        if (r < 0) {
                snprintf(reason, sizeof(reason), "cannot write the state: %s", errno_text(-r));
                goto fail;
        }
        memfd = memfd_create("muxd-state", MFD_CLOEXEC);
        if (memfd < 0 || pipe2(ack, O_CLOEXEC) < 0) {
                r = -errno;
                snprintf(reason, sizeof(reason), "cannot pass the state: %s", errno_text(-r));
                goto fail;
        }
        while (off < buffer_len(&state)) {
                ssize_t n = write(memfd, buffer_head(&state) + off, buffer_len(&state) - off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? -errno : -EIO;
                        snprintf(reason, sizeof(reason), "cannot write the state: %s", errno_text(-r));
                        goto fail;
                }
                off += (size_t) n;
        }
        /* the state, the pipe and the control socket go too */
        {
                int *more = realloc(fds, (n_fds + 3) * sizeof(*fds));

                if (!more) {
                        r = -ENOMEM;
                        snprintf(reason, sizeof(reason), "out of memory");
                        goto fail;
                }
                fds = more;
                fds[n_fds++] = memfd;
                fds[n_fds++] = ack[1];
                if (ctl >= 0)
                        fds[n_fds++] = ctl;
        }
        snprintf(arg, sizeof(arg), "--handover=%d,%d,%d,%s", memfd, ack[1], ctl, PACKAGE_VERSION);
        while (upgrade_argv[argc])
                argc++;
        argv = calloc(argc + 2, sizeof(*argv));
        if (!argv) {
                r = -ENOMEM;
                snprintf(reason, sizeof(reason), "out of memory");
                goto fail;
        }
        memcpy(argv, upgrade_argv, argc * sizeof(*argv));
        argv[argc] = arg;
        pid = server_upgrade_exec(fds, n_fds, argv, ack[1]);
        if (pid < 0) {
                r = pid;
                snprintf(reason, sizeof(reason), "cannot fork: %s", errno_text(-r));
                goto fail;
        }
        close(ack[1]);
        ack[1] = -1;
        close(memfd);
        memfd = -1;
        r = server_upgrade_wait_ack(ack[0], pid, reason, sizeof(reason));
        if (r < 0) {
                if (r == -ETIMEDOUT)
                        kill(pid, SIGKILL);
                server_upgrade_reap(pid, reason, sizeof(reason));
                goto fail;
        }
        *ret_pid = pid;
        s->upgrade_state_bytes = buffer_len(&state);
        goto out;
fail:
        *why = strdup(reason[0] ? reason : errno_text(-r));
out:
        if (ack[0] >= 0)
                close(ack[0]);
        if (ack[1] >= 0)
                close(ack[1]);
        if (memfd >= 0)
                close(memfd);
        buffer_free(&state);
        free(fds);
        free(argv);
        return r;
}
