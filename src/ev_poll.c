/* SPDX-License-Identifier: MIT */
/* poll(2) backend: a dense pollfd array plus an fd -> slot index, so adding
 * and removing are O(1) and a wait costs O(watched fds). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "event-backend.h"

struct poll_state {
        struct pollfd *fds;     /* n used entries */
        int *slot;              /* fd -> index in fds, -1 if not watched */
        int n;
};

static int poll_backend_create(struct ev_loop *loop)
{
        struct poll_state *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->fds = calloc((size_t) loop->setsize, sizeof(*s->fds));
        s->slot = malloc((size_t) loop->setsize * sizeof(*s->slot));
        if (!s->fds || !s->slot) {
                free(s->fds);
                free(s->slot);
                free(s);
                return -ENOMEM;
        }
        for (int i = 0; i < loop->setsize; i++)
                s->slot[i] = -1;
        loop->state = s;
        return 0;
}

static void poll_backend_destroy(struct ev_loop *loop)
{
        struct poll_state *s = loop->state;

        free(s->fds);
        free(s->slot);
        free(s);
}

static short poll_events_of(int mask)
{
        return (short) (((mask & EV_READABLE) ? POLLIN : 0) | ((mask & EV_WRITABLE) ? POLLOUT : 0));
}

static int poll_backend_add(struct ev_loop *loop, int fd, int oldmask, int addmask)
{
        struct poll_state *s = loop->state;
        int i = s->slot[fd];

        if (i < 0) {
                i = s->n++;
                s->slot[fd] = i;
                s->fds[i].fd = fd;
        }
        s->fds[i].events = poll_events_of(oldmask | addmask);
        return 0;
}

static int poll_backend_del(struct ev_loop *loop, int fd, int oldmask, int delmask)
{
        struct poll_state *s = loop->state;
        int mask = oldmask & ~delmask;
        int i = s->slot[fd];

        if (i < 0)
                return 0;
        if (mask != EV_NONE) {
                s->fds[i].events = poll_events_of(mask);
                return 0;
        }
        /* move the last entry into the hole */
        s->n--;
        if (i != s->n) {
                s->fds[i] = s->fds[s->n];
                s->slot[s->fds[i].fd] = i;
        }
        s->slot[fd] = -1;
        return 0;
}

static int poll_backend_poll(struct ev_loop *loop, int timeout_ms)
{
        struct poll_state *s = loop->state;
        int n, fired = 0;

        n = poll(s->fds, (nfds_t) s->n, timeout_ms);
        if (n < 0)
                return -errno;
        for (int i = 0; i < s->n && fired < n; i++) {
                short re = s->fds[i].revents;
                int mask = 0;

                if (!re)
                        continue;
                if (re & POLLIN)
                        mask |= EV_READABLE;
                if (re & POLLOUT)
                        mask |= EV_WRITABLE;
                if (re & (POLLERR | POLLHUP | POLLNVAL))
                        mask |= EV_READABLE | EV_WRITABLE;
                loop->fired[fired].fd = s->fds[i].fd;
                loop->fired[fired].mask = mask;
                fired++;
        }
        return fired;
}

const struct ev_backend ev_backend_poll = {
        .name = "poll",
        .max_fds = 0,
        .create = poll_backend_create,
        .destroy = poll_backend_destroy,
        .add = poll_backend_add,
        .del = poll_backend_del,
        .poll = poll_backend_poll,
};
