/* SPDX-License-Identifier: MIT */
/* The control socket (see control.h): the socket, who may use it, its
 * connections and the form of an answer. The commands are control-cmd.c's. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control-internal.h"
#include "server.h"
#include "util.h"

#define CONTROL_GROUP           "muxd"
#define CONTROL_MODE            0660
#define CONTROL_CLIENTS_MAX     16u
#define CONTROL_BACKLOG         16
#define CONTROL_REQUEST_MS      30000u  /* to send the request line */
#define CONTROL_STALL_MS        10000u  /* an answer waiting, the client not reading */
#define CONTROL_ACCEPT_RETRY_MS 1000u   /* after descriptor exhaustion */
#define CONTROL_GROUPS_MAX      65536u  /* supplementary groups looked at */

/* ---- the answer's form ------------------------------------------------------ */

static void control_vappend(struct control_answer *a, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
static void control_vappend(struct control_answer *a, const char *fmt, va_list ap)
{
        char small[1024], *big = NULL;
        va_list aq;
        int n;

        va_copy(aq, ap);
        n = vsnprintf(small, sizeof(small), fmt, aq);
        va_end(aq);
        if (n < 0)
                return;
        if ((size_t) n >= sizeof(small)) {
                if (vasprintf(&big, fmt, ap) < 0) {
                        a->full = true;
                        return;
                }
        }
        if (buffer_append(&a->buf, big ? big : small, (size_t) n, CONTROL_ANSWER_MAX) < 0)
                a->full = true;
        free(big);
}

static void control_append(struct control_answer *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void control_append(struct control_answer *a, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        control_vappend(a, fmt, ap);
        va_end(ap);
}

/* The length of a valid UTF-8 sequence at s, or 0. */
static size_t control_utf8_len(const unsigned char *s)
{
        size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;

        for (size_t i = 1; i < n; i++)
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
        return n;
}

/* Valid JSON whatever the bytes: a path or a message may hold anything, so
 * what is not UTF-8 becomes U+FFFD. */
void control_json_string(struct control_answer *a, const char *s)
{
        const unsigned char *p = (const unsigned char *) s;

        if (!a->json)
                return;
        control_append(a, "\"");
        while (*p) {
                size_t run = 0, n;

                while (p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
                        run++;
                if (run > 0) {
                        control_append(a, "%.*s", (int) run, (const char *) p);
                        p += run;
                        continue;
                }
                if (!*p)
                        break;
                if (*p == '"' || *p == '\\')
                        control_append(a, "\\%c", *p++);
                else if (*p < 0x20 || *p == 0x7f)
                        control_append(a, "\\u%04x", *p++);
                else if ((n = control_utf8_len(p)) > 0) {
                        control_append(a, "%.*s", (int) n, (const char *) p);
                        p += n;
                } else {
                        control_append(a, "\\ufffd");
                        p++;
                }
        }
        control_append(a, "\"");
}

void control_ok(struct control_answer *a)
{
        control_append(a, a->json ? "{\"ok\":true" : "ok\n");
}

void control_error(struct control_answer *a, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (a->json) {
                control_append(a, "{\"ok\":false,\"error\":");
                control_json_string(a, msg);
        } else {
                control_append(a, "error: %s\n", msg);
        }
}

void control_field(struct control_answer *a, const char *key, const char *fmt, ...)
{
        va_list ap;

        if (a->json) {
                char *v = NULL;

                va_start(ap, fmt);
                if (vasprintf(&v, fmt, ap) < 0)
                        v = NULL;
                va_end(ap);
                if (!v) {
                        a->full = true;
                        return;
                }
                control_append(a, ",\"%s\":", key);
                control_json_string(a, v);
                free(v);
                return;
        }
        control_append(a, "%s: ", key);
        va_start(ap, fmt);
        control_vappend(a, fmt, ap);
        va_end(ap);
        control_append(a, "\n");
}

void control_field_u64(struct control_answer *a, const char *key, uint64_t v)
{
        control_append(a, a->json ? ",\"%s\":%llu" : "%s: %llu\n", key, (unsigned long long) v);
}

void control_text(struct control_answer *a, const char *fmt, ...)
{
        va_list ap;

        if (a->json)
                return;
        va_start(ap, fmt);
        control_vappend(a, fmt, ap);
        va_end(ap);
}

void control_json(struct control_answer *a, const char *fmt, ...)
{
        va_list ap;

        if (!a->json)
                return;
        va_start(ap, fmt);
        control_vappend(a, fmt, ap);
        va_end(ap);
}

bool control_room(const struct control_answer *a)
{
        return !a->full && buffer_len(&a->buf) < CONTROL_ANSWER_MAX - CONTROL_ANSWER_SLACK;
}

const char *control_duration(uint64_t s, char *buf)
{
        unsigned long long v = s;

        if (v < 60)
                snprintf(buf, 32, "%llus", v);
        else if (v < 3600)
                snprintf(buf, 32, "%llum%02llus", v / 60, v % 60);
        else if (v < 86400)
                snprintf(buf, 32, "%lluh%02llum%02llus", v / 3600, v / 60 % 60, v % 60);
        else
                snprintf(buf, 32, "%llud%02lluh%02llum", v / 86400, v / 3600 % 24, v / 60 % 60);
        return buf;
}

const char *control_time(time_t t, char *buf)
{
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(buf, 40, "%Y-%m-%d %H:%M:%S %z", &tm) == 0)
                snprintf(buf, 40, "@%lld", (long long) t);
        return buf;
}

/* The end: an empty line (text), or the document's brace and a line end. */
static void control_answer_end(struct control_answer *a)
{
        /* the limit leaves room for this whatever came before */
        static const char text_end[] = "\n", json_end[] = "}\n\n";
        const char *end = a->json ? json_end : text_end;

        if (buffer_append(&a->buf, end, strlen(end), CONTROL_ANSWER_MAX + sizeof(json_end)) < 0)
                a->full = true;
}

/* ---- who may connect ------------------------------------------------------------ */

/* Is gid among the peer's supplementary groups? SO_PEERGROUPS gives the
 * groups the peer had when it connected, mapped into muxd's user namespace
 * (the unit's PrivateUsers= maps muxd's own group, so a member is seen as
 * one even when its user is not mapped); older kernels: the group database. */
static bool control_peer_in_group(int fd, uid_t uid, gid_t gid)
{
        gid_t small[64], *groups = small;
        socklen_t len = sizeof(small);
        bool member = false;
        int n;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
                if (errno == ERANGE && len <= CONTROL_GROUPS_MAX * sizeof(gid_t) && (groups = malloc(len)) &&
                    getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
                        goto look;
                if (groups != small)
                        free(groups);
                groups = NULL;
                if (errno == ENOPROTOOPT) {
                        struct passwd pw, *p = NULL;
                        char buf[4096];
                        gid_t list[256];

                        n = (int) ELEMENTSOF(list);
                        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &p) == 0 && p &&
                            getgrouplist(p->pw_name, p->pw_gid, list, &n) >= 0)
                                for (int i = 0; i < n && !member; i++)
                                        member = list[i] == gid;
                }
                return member;
        }
look:
        for (size_t i = 0; i < len / sizeof(gid_t) && !member; i++)
                member = groups[i] == gid;
        if (groups != small)
                free(groups);
        return member;
}

static bool control_allowed(const struct control *ctl, int fd, const struct ucred *cred)
{
        if (cred->uid == 0 || cred->uid == geteuid() || cred->gid == ctl->gid)
                return true;
        return control_peer_in_group(fd, cred->uid, ctl->gid);
}

/* ---- connections ------------------------------------------------------------------ */

static void control_on_client(struct ev_loop *loop, int fd, void *data, int mask);

static void control_client_free(struct control_client *cl)
{
        struct control *ctl = cl->ctl;

        if (cl->prev)
                cl->prev->next = cl->next;
        else
                ctl->clients = cl->next;
        if (cl->next)
                cl->next->prev = cl->prev;
        ctl->n_clients--;
        ev_del(ctl->srv->loop, cl->fd, EV_READABLE | EV_WRITABLE);
        close(cl->fd);
        worker_query_unref(cl->query);
        buffer_free(&cl->answer.buf);
        free(cl);
}

/* Write what the client will take; closes it once the whole answer is
 * out. Returns -1 if cl was freed. */
static int control_flush(struct control_client *cl, uint64_t now_ms)
{
        struct control *ctl = cl->ctl;
        size_t total = buffer_len(&cl->answer.buf);

        while (cl->sent < total) {
                ssize_t n = send(cl->fd, buffer_head(&cl->answer.buf) + cl->sent, total - cl->sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        control_client_free(cl);        /* gone: nobody to tell */
                        return -1;
                }
                cl->sent += (size_t) n;
                cl->deadline_ms = now_ms + CONTROL_STALL_MS;    /* it reads: more time */
        }
        if (cl->answered && cl->sent == total) {
                control_client_free(cl);
                return -1;
        }
        if (cl->sent < total && ev_add(ctl->srv->loop, cl->fd, EV_WRITABLE, control_on_client, cl) < 0) {
                control_client_free(cl);
                return -1;
        }
        return 0;
}

/* The answer is complete: write it. */
static int control_answered(struct control_client *cl, uint64_t now_ms)
{
        control_answer_end(&cl->answer);
        cl->answered = true;
        cl->deadline_ms = now_ms + CONTROL_STALL_MS;
        return control_flush(cl, now_ms);
}

static void control_log_request(const struct control_client *cl, const char *line)
{
        char text[256];

        escape_bytes(line, strlen(line), text, sizeof(text));
        log_full(cl->req.cmd && control_cmd_changes(cl->req.cmd) ? LOG_LEVEL_NOTICE : LOG_LEVEL_DEBUG,
                 &(const struct log_fields) { .event = "control" },
                 "control socket: \"%s\" from uid %u, pid %d", text, (unsigned) cl->cred.uid, (int) cl->cred.pid);
}

/* The request line is in[0..len): read no more, answer it. */
static int control_take(struct control_client *cl, size_t len, uint64_t now_ms)
{
        char why[512], copy[CONTROL_LINE_MAX + 1];

        ev_del(cl->ctl->srv->loop, cl->fd, EV_READABLE);
        memcpy(copy, cl->in, len);
        copy[len] = '\0';
        if (control_request_parse(cl->in, len, &cl->req, why, sizeof(why)) < 0) {
                cl->answer.json = cl->req.json;
                control_log_request(cl, copy);
                control_error(&cl->answer, "%s", why);
                return control_answered(cl, now_ms);
        }
        cl->answer.json = cl->req.json;
        control_log_request(cl, copy);
        if (control_cmd_run(cl) == 0)
                return control_answered(cl, now_ms);
        cl->query_deadline_ms = now_ms + CONTROL_QUERY_MS;
        return 0;
}

/* Read until the request line is complete (or too long, or the client
 * stops sending: what it sent is the request). Returns -1 if cl was freed. */
static int control_read(struct control_client *cl, uint64_t now_ms)
{
        size_t room = sizeof(cl->in) - 1 - cl->in_len;
        ssize_t n = recv(cl->fd, cl->in + cl->in_len, room, MSG_DONTWAIT);
        char *nl;

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n < 0 || (n == 0 && cl->in_len == 0)) {
                control_client_free(cl);
                return -1;
        }
        if (n == 0)
                return control_take(cl, cl->in_len, now_ms);
        nl = memchr(cl->in + cl->in_len, '\n', (size_t) n);
        cl->in_len += (size_t) n;
        if (nl)
                return control_take(cl, (size_t) (nl - cl->in), now_ms);
        if (cl->in_len == sizeof(cl->in) - 1) {
                ev_del(cl->ctl->srv->loop, cl->fd, EV_READABLE);
                control_error(&cl->answer, "%srequest longer than %u bytes", CONTROL_USAGE_PREFIX,
                              CONTROL_LINE_MAX);
                return control_answered(cl, now_ms);
        }
        return 0;
}

static void control_on_client(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct control_client *cl = data;
        uint64_t now = monotonic_ms();

        if ((mask & EV_WRITABLE) && control_flush(cl, now) < 0)
                return;
        if ((mask & EV_READABLE) && ev_mask(loop, fd) & EV_READABLE)
                (void) control_read(cl, now);
}

/* Refused before it could say anything: one line, best effort, and close. */
static void control_turn_away(int fd, const char *answer)
{
        if (send(fd, answer, strlen(answer), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
                /* it will see the connection close */
        }
        close(fd);
}

static void control_new_client(struct control *ctl, int fd, uint64_t now_ms)
{
        struct ucred cred = { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        socklen_t len = sizeof(cred);
        struct control_client *cl;
        unsigned suppressed;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || !control_allowed(ctl, fd, &cred)) {
                if (log_ratelimit_ok(&ctl->rl_refused, now_ms, &suppressed))
                        log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "control-refused" },
                                 "control socket: refused uid %d, gid %d, pid %d: neither root, muxd's user "
                                 "nor a member of group %u%s", (int) cred.uid, (int) cred.gid, (int) cred.pid,
                                 (unsigned) ctl->gid, suppressed ? " (similar messages suppressed)" : "");
                control_turn_away(fd, "error: permission denied\n\n");
                return;
        }
        if (ctl->n_clients >= CONTROL_CLIENTS_MAX) {
                if (log_ratelimit_ok(&ctl->rl_busy, now_ms, &suppressed))
                        log_notice("control socket: %u connections already: turning one away%s",
                                   CONTROL_CLIENTS_MAX, suppressed ? " (similar messages suppressed)" : "");
                control_turn_away(fd, "error: busy: too many control connections, try again\n\n");
                return;
        }
        cl = calloc(1, sizeof(*cl));
        if (!cl || ev_add(ctl->srv->loop, fd, EV_READABLE, control_on_client, cl) < 0) {
                free(cl);
                control_turn_away(fd, "error: out of memory\n\n");
                return;
        }
        *cl = (struct control_client) { .ctl = ctl, .fd = fd, .cred = cred, .next = ctl->clients,
                                        .deadline_ms = now_ms + CONTROL_REQUEST_MS };
        if (ctl->clients)
                ctl->clients->prev = cl;
        ctl->clients = cl;
        ctl->n_clients++;
}

static void control_on_accept(struct ev_loop *loop, int fd, void *data, int mask)
{
        struct control *ctl = data;
        uint64_t now = monotonic_ms();

        for (unsigned i = 0; i < CONTROL_CLIENTS_MAX; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                unsigned suppressed;

                if (cfd >= 0) {
                        control_new_client(ctl, cfd, now);
                        continue;
                }
                if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                if (errno == EAGAIN)
                        return;
                /* out of descriptors: look again in a while, not in a busy loop */
                if (log_ratelimit_ok(&ctl->rl_accept, now, &suppressed))
                        log_warning("control socket: accept failed: %s%s", errno_text(errno),
                                    suppressed ? " (similar messages suppressed)" : "");
                ev_del(loop, fd, EV_READABLE);
                ctl->accept_retry_ms = now + CONTROL_ACCEPT_RETRY_MS;
                return;
        }
}

/* ---- deadlines ---------------------------------------------------------------------- */

int control_next_timeout(struct control *ctl, uint64_t now_ms)
{
        uint64_t next = UINT64_MAX;

        if (!ctl)
                return -1;
        if (ctl->accept_retry_ms)
                next = ctl->accept_retry_ms;
        for (struct control_client *cl = ctl->clients; cl; cl = cl->next) {
                uint64_t d = cl->query ? cl->query_deadline_ms : cl->deadline_ms;

                if (d < next)
                        next = d;
        }
        if (next == UINT64_MAX)
                return -1;
        return next <= now_ms ? 0 : next - now_ms > INT32_MAX ? INT32_MAX : (int) (next - now_ms);
}

void control_tick(struct control *ctl, uint64_t now_ms)
{
        struct control_client *cl, *next;

        if (!ctl)
                return;
        if (ctl->accept_retry_ms && now_ms >= ctl->accept_retry_ms) {
                ctl->accept_retry_ms = 0;
                if (ev_add(ctl->srv->loop, ctl->fd, EV_READABLE, control_on_accept, ctl) < 0)
                        ctl->accept_retry_ms = now_ms + CONTROL_ACCEPT_RETRY_MS;
        }
        for (cl = ctl->clients; cl; cl = next) {
                next = cl->next;
                if (cl->query) {
                        bool complete = worker_query_done(cl->query);

                        if (complete || now_ms >= cl->query_deadline_ms) {
                                control_cmd_finish(cl, complete);
                                worker_query_unref(cl->query);
                                cl->query = NULL;
                                (void) control_answered(cl, now_ms);
                        }
                } else if (now_ms >= cl->deadline_ms) {
                        /* no request in time, or an answer nobody reads */
                        log_debug("control socket: closing the connection of pid %d: %s", (int) cl->cred.pid,
                                  cl->answered ? "it does not read its answer" : "no request");
                        control_client_free(cl);
                }
        }
}

/* ---- the socket ---------------------------------------------------------------------- */

static void control_error_text(char **error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void control_error_text(char **error, const char *fmt, ...)
{
        va_list ap;

        free(*error);
        va_start(ap, fmt);
        if (vasprintf(error, fmt, ap) < 0)
                *error = NULL;
        va_end(ap);
}

/* A socket file left by a muxd that did not exit cleanly: nothing accepts
 * on it (ECONNREFUSED), so it may go. Anything else stays. */
static int control_remove_stale(const char *path, const struct sockaddr_un *sa, char **error)
{
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                control_error_text(error, "cannot listen on %s: the file exists and is not a socket", path);
                return -EEXIST;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) == 0 || errno == EAGAIN) {
                control_error_text(error, "cannot listen on %s: another process (a muxd still running?) "
                                   "serves it", path);
                return -EADDRINUSE;
        }
        if (errno != ECONNREFUSED) {
                control_error_text(error, "cannot listen on %s: it exists and cannot be checked: %s",
                                   path, errno_text(errno));
                return -EADDRINUSE;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
                control_error_text(error, "cannot remove the stale socket %s: %s", path, errno_text(errno));
                return -errno;
        }
        return 0;
}

static int control_bind(const char *path, int *ret_fd, char **error)
{
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                control_error_text(error, "%s: longer than a UNIX socket's path may be", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (errno != EADDRINUSE) {
                        r = -errno;
                        control_error_text(error, "cannot listen on %s: %s%s", path, errno_text(-r),
                                           r == -ENOENT ? " (its directory does not exist)" : "");
                        return r;
                }
                r = control_remove_stale(path, &sa, error);
                if (r < 0)
                        return r;
                if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                        r = -errno;
                        control_error_text(error, "cannot listen on %s: %s", path, errno_text(-r));
                        return r;
                }
        }
        *ret_fd = fd;
        fd = -1;
        return 0;
}

/* Group "muxd" where it exists (members may connect), else the process's
 * own; mode 0660. Set before listen(), so nobody connects before. */
static int control_set_owner(struct control *ctl, char **error)
{
        struct group gr, *g = NULL;
        char buf[4096];
        struct stat st;

        if (getgrnam_r(CONTROL_GROUP, &gr, buf, sizeof(buf), &g) != 0 || !g)
                log_debug("control socket: no group \"%s\": keeping group %u", CONTROL_GROUP, (unsigned) getegid());
        else if (chown(ctl->path, (uid_t) -1, g->gr_gid) < 0)
                log_debug("control socket: cannot give %s to group \"%s\": %s", ctl->path, CONTROL_GROUP,
                          errno_text(errno));
        if (chmod(ctl->path, CONTROL_MODE) < 0 || stat(ctl->path, &st) < 0) {
                int r = -errno;

                control_error_text(error, "cannot set the mode of %s: %s", ctl->path, errno_text(-r));
                return r;
        }
        ctl->gid = st.st_gid;
        ctl->dev = st.st_dev;
        ctl->ino = st.st_ino;
        return 0;
}

int control_open_fd(struct server *s, const char *path, int fd, struct control **ret, char **error)
{
        struct control *ctl = calloc(1, sizeof(*ctl));
        int r = 0;

        *error = NULL;
        if (!ctl) {
                if (fd >= 0)
                        close(fd);
                return -ENOMEM;
        }
        ctl->srv = s;
        ctl->fd = fd;
        ctl->path = strdup(path);
        if (!ctl->path) {
                if (fd >= 0)
                        close(fd);
                free(ctl);
                return -ENOMEM;
        }
        if (fd < 0)
                r = control_bind(path, &ctl->fd, error);
        if (r >= 0) {
                r = control_set_owner(ctl, error);
                if (r < 0 && fd < 0)
                        unlink(path);
        }
        /* a handed-over socket's path is the previous image's until this
         * one has taken over for good (control_claim_path()) */
        ctl->keep_path = fd >= 0;
        if (r >= 0 && listen(ctl->fd, CONTROL_BACKLOG) < 0) {
                r = -errno;
                control_error_text(error, "cannot listen on %s: %s", path, errno_text(-r));
        }
        if (r >= 0 && (r = ev_add(s->loop, ctl->fd, EV_READABLE, control_on_accept, ctl)) < 0)
                control_error_text(error, "cannot watch %s: %s", path, errno_text(-r));
        if (r < 0) {
                control_free(ctl);
                return r;
        }
        log_info("control socket: listening on %s", path);
        *ret = ctl;
        return 0;
}

int control_open(struct server *s, const char *path, struct control **ret, char **error)
{
        return control_open_fd(s, path, -1, ret, error);
}

void control_claim_path(struct control *ctl)
{
        if (ctl)
                ctl->keep_path = false;
}

int control_fd(const struct control *ctl)
{
        return ctl->fd;
}

const char *control_path(const struct control *ctl)
{
        return ctl->path;
}

void control_free(struct control *ctl)
{
        struct stat st;

        if (!ctl)
                return;
        while (ctl->clients)
                control_client_free(ctl->clients);
        if (ctl->fd >= 0) {
                ev_del(ctl->srv->loop, ctl->fd, EV_READABLE);
                close(ctl->fd);
                /* only the file we made: a muxd started since may own the path */
                if (ctl->ino && !ctl->keep_path && stat(ctl->path, &st) == 0 && st.st_dev == ctl->dev && st.st_ino == ctl->ino)
                        unlink(ctl->path);
        }
        free(ctl->path);
        free(ctl);
}
