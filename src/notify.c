/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"
#include "util.h"

#define NOTIFY_QUEUE_MAX 8

struct notifier {
        int fd;
        struct sockaddr_un addr;
        socklen_t addr_len;
        char *queue[NOTIFY_QUEUE_MAX];  /* state changes waiting, oldest first */
        unsigned queued;
        uint64_t head_failed_ms;        /* when queue[0] first failed, 0: not yet */
        unsigned retry_ms;
        int error;                      /* permanent: notifying stopped */
        bool error_taken;
};

int notify_address(struct sockaddr_un *ret, socklen_t *ret_len)
{
        const char *path = getenv("NOTIFY_SOCKET");
        size_t len;

        if (!path || !*path)
                return 0;
        len = strlen(path);
        if ((path[0] != '/' && path[0] != '@') || len >= sizeof(ret->sun_path))
                return -EINVAL;
        *ret = (struct sockaddr_un) { .sun_family = AF_UNIX };
        memcpy(ret->sun_path, path, len);
        if (path[0] == '@')
                ret->sun_path[0] = '\0';       /* abstract namespace */
        *ret_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len);
        return 1;
}

int notify_open(struct notifier **ret)
{
        struct sockaddr_un addr;
        socklen_t addr_len;
        struct notifier *n;
        int r;

        *ret = NULL;
        r = notify_address(&addr, &addr_len);
        if (r <= 0)
                return r;
        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->retry_ms = NOTIFY_RETRY_MS;
        n->addr = addr;
        n->addr_len = addr_len;
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (n->fd < 0) {
                r = -errno;
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

/* A full socket buffer or a short moment without memory passes; anything
 * else (ENOENT, ECONNREFUSED, EACCES, ...) is the same on every try. */
static bool notify_error_is_transient(int err)
{
        return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == ENOMEM || err == EINTR;
}

static uint64_t notify_now_ms(void)
{
        return monotonic_ms() + 1;      /* never 0 */
}

void notify_set_retry_ms(struct notifier *n, unsigned ms)
{
        if (n)
                n->retry_ms = ms;
}

static void notify_drop_queue(struct notifier *n, unsigned count)
{
        for (unsigned i = 0; i < count; i++)
                free(n->queue[i]);
        memmove(n->queue, n->queue + count, (n->queued - count) * sizeof(n->queue[0]));
        n->queued -= count;
        n->head_failed_ms = 0;
}

static int notify_send(struct notifier *n, const char *msg)
{
        int r;

        if (n->error)
                return n->error;
        if (sendto(n->fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
                   (struct sockaddr *) &n->addr, n->addr_len) >= 0)
                return 0;
        r = -errno;
        if (!notify_error_is_transient(-r)) {
                n->error = r;
                notify_drop_queue(n, n->queued);
        }
        return r;
}

bool notify_flush(struct notifier *n)
{
        if (!n)
                return false;
        while (n->queued > 0) {
                int r = notify_send(n, n->queue[0]);

                if (r >= 0) {
                        notify_drop_queue(n, 1);
                        continue;
                }
                /* transient: try again later, but not forever */
                if (n->queued > 0) {
                        uint64_t now = notify_now_ms();

                        if (!n->head_failed_ms)
                                n->head_failed_ms = now;
                        else if (now - n->head_failed_ms >= n->retry_ms)
                                notify_drop_queue(n, 1);
                }
                break;
        }
        return n->queued > 0;
}

bool notify_pending(const struct notifier *n)
{
        return n && n->queued > 0;
}

int notify_take_error(struct notifier *n)
{
        if (!n || !n->error || n->error_taken)
                return 0;
        n->error_taken = true;
        return n->error;
}

bool notify_disabled(const struct notifier *n)
{
        return n && n->error != 0;
}

int notify_state(struct notifier *n, const char *msg)
{
        char *copy;

        if (!n || n->error)
                return 0;
        /* keep the order: never overtake a state change still waiting */
        if (!notify_flush(n)) {
                int r = notify_send(n, msg);

                if (r >= 0 || n->error)
                        return 0;
        }
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
        if (!n || n->error)
                return 0;
        if (n->queued > 0)
                return -EAGAIN;
        return notify_send(n, msg);
}
