/* SPDX-License-Identifier: MIT */
/* Private to the event loop and its backends. */
#pragma once

#include "event.h"

struct ev_file {
        int mask;               /* EV_READABLE | EV_WRITABLE */
        bool last;              /* EV_LAST: dispatched after the others */
        ev_proc *proc;
        void *data;
};

struct ev_fired {
        int fd;
        int mask;
};

struct ev_loop {
        const struct ev_backend *backend;
        void *state;            /* the backend's own */
        int setsize;
        int maxfd;              /* highest fd watched, -1 if none */
        struct ev_file *files;  /* indexed by fd, setsize entries */
        struct ev_fired *fired; /* filled by backend->poll */
};

extern const struct ev_backend ev_backend_epoll;
extern const struct ev_backend ev_backend_poll;
extern const struct ev_backend ev_backend_select;
#ifdef HAVE_LIBURING
extern const struct ev_backend ev_backend_uring;
#endif
