/* SPDX-License-Identifier: MIT */
/* select(2) backend: fd_set can only describe descriptors below FD_SETSIZE,
 * so the registry advertises that as max_fds and the loop never grows past it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "event-backend.h"

struct select_state {
        fd_set rfds, wfds;
        /* select() overwrites its arguments: work on copies */
        fd_set rfds_work, wfds_work;
};

static int select_backend_create(struct ev_loop *loop)
{
        struct select_state *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        FD_ZERO(&s->rfds);
        FD_ZERO(&s->wfds);
        loop->state = s;
        return 0;
}

static void select_backend_destroy(struct ev_loop *loop)
{
        free(loop->state);
}

static int select_backend_add(struct ev_loop *loop, int fd, int oldmask, int addmask)
{
        struct select_state *s = loop->state;

        if (fd >= FD_SETSIZE)
                return -ERANGE;
        if (addmask & EV_READABLE)
                FD_SET(fd, &s->rfds);
        if (addmask & EV_WRITABLE)
                FD_SET(fd, &s->wfds);
        return 0;
}

static int select_backend_del(struct ev_loop *loop, int fd, int oldmask, int delmask)
{
        struct select_state *s = loop->state;

        if (delmask & EV_READABLE)
                FD_CLR(fd, &s->rfds);
        if (delmask & EV_WRITABLE)
                FD_CLR(fd, &s->wfds);
        return 0;
}

static int select_backend_poll(struct ev_loop *loop, int timeout_ms)
{
        struct select_state *s = loop->state;
        struct timeval tv, *tvp = NULL;
        int n, fired = 0;

        memcpy(&s->rfds_work, &s->rfds, sizeof(fd_set));
        memcpy(&s->wfds_work, &s->wfds, sizeof(fd_set));
        if (timeout_ms >= 0) {
                tv.tv_sec = timeout_ms / 1000;
                tv.tv_usec = (timeout_ms % 1000) * 1000;
                tvp = &tv;
        }
        n = select(loop->maxfd + 1, &s->rfds_work, &s->wfds_work, NULL, tvp);
        if (n < 0)
                return -errno;
        for (int fd = 0; fd <= loop->maxfd && n > 0; fd++) {
                int mask = 0;

                if (loop->files[fd].mask == EV_NONE)
                        continue;
                if (FD_ISSET(fd, &s->rfds_work)) {
                        mask |= EV_READABLE;
                        n--;
                }
                if (FD_ISSET(fd, &s->wfds_work)) {
                        mask |= EV_WRITABLE;
                        n--;
                }
                if (mask) {
                        loop->fired[fired].fd = fd;
                        loop->fired[fired].mask = mask;
                        fired++;
                }
        }
        return fired;
}

const struct ev_backend ev_backend_select = {
        .name = "select",
        .max_fds = FD_SETSIZE,
        .create = select_backend_create,
        .destroy = select_backend_destroy,
        .add = select_backend_add,
        .del = select_backend_del,
        .poll = select_backend_poll,
};
