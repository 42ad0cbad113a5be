/* SPDX-License-Identifier: MIT */
/* epoll(7) backend, level-triggered: the default on Linux. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "event-backend.h"

struct epoll_state {
        int epfd;
        struct epoll_event *events;
};

static int epoll_backend_create(struct ev_loop *loop)
{
        struct epoll_state *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->events = calloc((size_t) loop->setsize, sizeof(*s->events));
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!s->events || s->epfd < 0) {
                int r = s->epfd < 0 ? -errno : -ENOMEM;
                if (s->epfd >= 0)
                        close(s->epfd);
                free(s->events);
                free(s);
                return r;
        }
        loop->state = s;
        return 0;
}

static void epoll_backend_destroy(struct ev_loop *loop)
{
        struct epoll_state *s = loop->state;

        close(s->epfd);
        free(s->events);
        free(s);
}

static uint32_t epoll_events_of(int mask)
{
        return ((mask & EV_READABLE) ? EPOLLIN : 0) | ((mask & EV_WRITABLE) ? EPOLLOUT : 0);
}

static int epoll_backend_add(struct ev_loop *loop, int fd, int oldmask, int addmask)
{
        struct epoll_state *s = loop->state;
        struct epoll_event ee = { .events = epoll_events_of(oldmask | addmask), .data.fd = fd };

        /* EPOLLEXCLUSIVE is only accepted when the fd is first added */
        if ((addmask & EV_EXCLUSIVE) && oldmask == EV_NONE)
                ee.events |= EPOLLEXCLUSIVE;
        if (epoll_ctl(s->epfd, oldmask == EV_NONE ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ee) < 0)
                return -errno;
        return 0;
}

static int epoll_backend_del(struct ev_loop *loop, int fd, int oldmask, int delmask)
{
        struct epoll_state *s = loop->state;
        int mask = oldmask & ~delmask;
        struct epoll_event ee = { .events = epoll_events_of(mask), .data.fd = fd };

        if (epoll_ctl(s->epfd, mask == EV_NONE ? EPOLL_CTL_DEL : EPOLL_CTL_MOD, fd, &ee) < 0)
                return -errno;
        return 0;
}

static int epoll_backend_poll(struct ev_loop *loop, int timeout_ms)
{
        struct epoll_state *s = loop->state;
        int n = epoll_wait(s->epfd, s->events, loop->setsize, timeout_ms);

        if (n < 0)
                return -errno;
        for (int i = 0; i < n; i++) {
                uint32_t ev = s->events[i].events;
                int mask = 0;

                if (ev & EPOLLIN)
                        mask |= EV_READABLE;
                if (ev & EPOLLOUT)
                        mask |= EV_WRITABLE;
                /* errors and hangups wake whichever side is watched */
                if (ev & (EPOLLERR | EPOLLHUP))
                        mask |= EV_READABLE | EV_WRITABLE;
                loop->fired[i].fd = s->events[i].data.fd;
                loop->fired[i].mask = mask;
        }
        return n;
}

const struct ev_backend ev_backend_epoll = {
        .name = "epoll",
        .max_fds = 0,
        .create = epoll_backend_create,
        .destroy = epoll_backend_destroy,
        .add = epoll_backend_add,
        .del = epoll_backend_del,
        .close_forgets = true,
        .poll = epoll_backend_poll,
};
