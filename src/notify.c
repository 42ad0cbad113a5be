/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

#define NOTIFY_QUEUE_MAX 8

struct notifier {
        int fd;
        struct sockaddr_un addr;
        socklen_t addr_len;
        char *queue[NOTIFY_QUEUE_MAX];  /* state changes waiting, oldest first */
        unsigned queued;
};

int notify_open(struct notifier **ret)
{
        const char *path = getenv("NOTIFY_SOCKET");
        struct notifier *n;
        size_t len;

        *ret = NULL;
        if (!path || !*path)
                return 0;
        len = strlen(path);
        if ((path[0] != '/' && path[0] != '@') || len >= sizeof(n->addr.sun_path))
                return -EINVAL;
        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->addr.sun_family = AF_UNIX;
        memcpy(n->addr.sun_path, path, len);
        if (path[0] == '@')
                n->addr.sun_path[0] = '\0';     /* abstract namespace */
        n->addr_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len);
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (n->fd < 0) {
                int r = -errno;
                free(n);
                return r;
        }
        *ret = n;
        return 0;
}

void notify_free(struct notifier *n)
{
        if (!n)
                return;
        for (unsigned i = 0; i < n->queued; i++)
                free(n->queue[i]);
        close(n->fd);
        free(n);
}

static int notify_send(struct notifier *n, const char *msg)
{
        if (sendto(n->fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
                   (struct sockaddr *) &n->addr, n->addr_len) < 0)
                return -errno;
        return 0;
}

bool notify_flush(struct notifier *n)
{
        unsigned sent = 0;

        if (!n)
                return false;
        while (sent < n->queued && notify_send(n, n->queue[sent]) >= 0)
                free(n->queue[sent++]);
        memmove(n->queue, n->queue + sent, (n->queued - sent) * sizeof(n->queue[0]));
        n->queued -= sent;
        return n->queued > 0;
}

bool notify_pending(const struct notifier *n)
{
        return n && n->queued > 0;
}

int notify_state(struct notifier *n, const char *msg)
{
        char *copy;

        if (!n)
                return 0;
        /* keep the order: never overtake a state change still waiting */
        if (!notify_flush(n) && notify_send(n, msg) >= 0)
                return 0;
        if (n->queued == NOTIFY_QUEUE_MAX)
                return -ENOBUFS;
        copy = strdup(msg);
        if (!copy)
                return -ENOMEM;
        n->queue[n->queued++] = copy;
        return 0;
}

int notify_try(struct notifier *n, const char *msg)
{
        if (!n)
                return 0;
        if (n->queued > 0)
                return -EAGAIN;
        return notify_send(n, msg);
}
