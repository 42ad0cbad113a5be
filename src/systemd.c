/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "notify.h"
#include "systemd.h"

int systemd_listen_fds(struct passed_socket **ret, size_t *n, int *bad_fd)
{
        char **names = NULL;
        struct passed_socket *p;
        int r;

        *ret = NULL;
        *n = 0;
        r = sd_listen_fds_with_names(1, &names);
        if (r <= 0)
                return r;
        p = calloc((size_t) r, sizeof(*p));
        for (int i = 0; p && i < r; i++) {
                p[i].fd = SD_LISTEN_FDS_START + i;
                p[i].name = names && names[i] ? names[i] : strdup("unknown");
                if (names)
                        names[i] = NULL;        /* p owns it now */
        }
        for (int i = 0; names && i < r; i++)
                free(names[i]);                 /* those p did not take */
        free(names);
        for (int i = 0; p && i < r; i++)
                if (!p[i].name) {
                        systemd_passed_sockets_free(p, (size_t) r);
                        p = NULL;
                }
        if (!p)
                return -ENOMEM;
        for (int i = 0; i < r; i++)
                /* a connection from the fd store is connected, not listening */
                if (sd_is_socket_inet(p[i].fd, AF_UNSPEC, SOCK_STREAM,
                                      systemd_fdstore_parse(p[i].name, &p[i].store_id) ? 0 : 1, 0) <= 0) {
                        /* on failure the caller gets nothing to free */
                        *bad_fd = p[i].fd;
                        systemd_passed_sockets_free(p, (size_t) r);
                        return -ENOTSOCK;
                }
        *ret = p;
        *n = (size_t) r;
        return r;
}

void systemd_passed_sockets_free(struct passed_socket *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(p[i].name);
        free(p);
}

bool systemd_stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

uint64_t systemd_watchdog_usec(void)
{
        uint64_t usec = 0;

        if (sd_watchdog_enabled(0, &usec) <= 0)
                return 0;
        return usec;
}

struct fdstore {
        int fd;
        struct sockaddr_un addr;
        socklen_t addr_len;
};

void systemd_fdstore_name(uint64_t id, char buf[SYSTEMD_FDSTORE_NAME_MAX])
{
        snprintf(buf, SYSTEMD_FDSTORE_NAME_MAX, "c-%" PRIu64, id);
}

bool systemd_fdstore_parse(const char *name, uint64_t *id)
{
        unsigned long long v;
        char *end;

        if (strncmp(name, "c-", 2) != 0 || name[2] < '1' || name[2] > '9')
                return false;
        errno = 0;
        v = strtoull(name + 2, &end, 10);
        if (errno || *end)
                return false;
        *id = v;
        return true;
}

int systemd_fdstore_open(struct fdstore **ret)
{
        struct sockaddr_un addr;
        socklen_t addr_len;
        struct fdstore *st;
        int r;

        *ret = NULL;
        r = notify_address(&addr, &addr_len);
        if (r <= 0)
                return r;
        st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        st->addr = addr;
        st->addr_len = addr_len;
        st->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (st->fd < 0) {
                r = -errno;
                free(st);
                return r;
        }
        *ret = st;
        return 0;
}

void systemd_fdstore_free(struct fdstore *st)
{
        if (!st)
                return;
        close(st->fd);
        free(st);
}

static int systemd_fdstore_send(struct fdstore *st, const char *msg, size_t len, int fd)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = { 0 };
        struct iovec iov = { .iov_base = (void *) msg, .iov_len = len };
        struct msghdr mh = {
                .msg_name = &st->addr, .msg_namelen = st->addr_len, .msg_iov = &iov, .msg_iovlen = 1,
        };

        if (fd >= 0) {
                struct cmsghdr *c;

                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        if (sendmsg(st->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

int systemd_fdstore_add(struct fdstore *st, int fd, uint64_t id)
{
        char name[SYSTEMD_FDSTORE_NAME_MAX], msg[64 + SYSTEMD_FDSTORE_NAME_MAX];
        int len;

        systemd_fdstore_name(id, name);
        /* FDPOLL=0: kept until removed, even once the client hung up, so
         * that systemd and muxd never disagree about what is stored */
        len = snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s\nFDPOLL=0", name);
        return systemd_fdstore_send(st, msg, (size_t) len, fd);
}

int systemd_fdstore_remove(struct fdstore *st, uint64_t id)
{
        char name[SYSTEMD_FDSTORE_NAME_MAX], msg[64 + SYSTEMD_FDSTORE_NAME_MAX];
        int len;

        systemd_fdstore_name(id, name);
        len = snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
        return systemd_fdstore_send(st, msg, (size_t) len, -1);
}
